//! Brokers (and the connection settings MQTT sources share with them), signing, the outbox, the HTTP listener.

use super::*;

impl Validator<'_> {
    /// `[[brokers]]`, `[signing]` and `[outbox]`: where triggers go, signed by what, kept where.
    #[allow(clippy::type_complexity)]
    pub(super) fn delivery(
        &self,
        raw_brokers: Vec<RawBroker>,
        signing: Option<RawSigning>,
        outbox: Option<RawOutbox>,
    ) -> Result<
        (
            Vec<BrokerConfig>,
            Option<SigningConfig>,
            Option<OutboxConfig>,
        ),
        ConfigError,
    > {
        let mut brokers: Vec<BrokerConfig> = Vec::new();
        for (i, b) in raw_brokers.into_iter().enumerate() {
            let broker = self.broker(i, b)?;
            if let Some(j) = brokers.iter().position(|o| o.name == broker.name) {
                return Err(self.err(
                    format!("brokers[{i}].name"),
                    format!("broker {:?} is defined twice (brokers[{j}])", broker.name),
                ));
            }
            // Host and port, whatever the scheme: two entries for one broker would share
            // nothing but the broker, and it would get every trigger twice.
            if let Some((j, other)) = brokers
                .iter()
                .enumerate()
                .find(|(_, o)| o.host.eq_ignore_ascii_case(&broker.host) && o.port == broker.port)
            {
                return Err(self.err(
                    format!("brokers[{i}].url"),
                    format!(
                        "{} is the same broker as brokers[{j}] ({:?}): one entry per broker, or it gets every trigger twice",
                        broker.url(),
                        other.name
                    ),
                ));
            }
            brokers.push(broker);
        }
        let signing = match signing {
            Some(s) => {
                if s.key_file.is_empty() {
                    return Err(self.err("signing.key_file", "is empty"));
                }
                let key_id = match &s.key_id {
                    Some(k) => Some(self.id("signing.key_id", k)?),
                    None => None,
                };
                Some(SigningConfig {
                    key_file: s.key_file.into(),
                    key_id,
                })
            }
            None => None,
        };
        let outbox = match outbox {
            Some(o) => {
                if o.dir.is_empty() {
                    return Err(self.err("outbox.dir", "is empty"));
                }
                let capacity = o.capacity.unwrap_or(DEFAULT_OUTBOX_CAPACITY);
                if capacity == 0 {
                    return Err(self.err("outbox.capacity", "must be at least 1"));
                }
                let warn_at = o
                    .warn_at
                    .unwrap_or_else(|| (u64::from(capacity) * 8 / 10).max(1) as u32);
                if warn_at == 0 || warn_at > capacity {
                    return Err(self.err(
                        "outbox.warn_at",
                        format!("{warn_at} must be from 1 to capacity ({capacity})"),
                    ));
                }
                Some(OutboxConfig {
                    dir: o.dir.into(),
                    capacity,
                    warn_at,
                })
            }
            None => None,
        };
        if !brokers.is_empty() {
            if signing.is_none() {
                return Err(self.err(
                    "signing",
                    "required with [[brokers]]: controllers refuse unsigned triggers (make a key with `firebreak keygen`)",
                ));
            }
            if outbox.is_none() {
                return Err(self.err(
                    "outbox",
                    "required with [[brokers]]: the directory where triggers wait for each broker's acknowledgement",
                ));
            }
        }
        Ok((brokers, signing, outbox))
    }

    pub(super) fn broker(&self, i: usize, raw: RawBroker) -> Result<BrokerConfig, ConfigError> {
        let at = format!("brokers[{i}]");
        firebreak_protocols::id::validate_segment(&raw.name)
            .map_err(|e| self.err(format!("{at}.name"), format!("{:?} {e}", raw.name)))?;
        self.connection(&at, "url", raw)
    }

    /// The keys `[[brokers]]` and `[[mqtt_sources]]` share to reach a broker: the URL (under
    /// `url_key`), the TLS files, the user name and where the password is. `raw.name` is
    /// taken as it is.
    pub(super) fn connection(
        &self,
        at: &str,
        url_key: &str,
        raw: RawBroker,
    ) -> Result<BrokerConfig, ConfigError> {
        let (tls, host, port) = parse_broker_url(&raw.url).ok_or_else(|| {
            self.err(
                format!("{at}.{url_key}"),
                format!("{:?} is not mqtt://host:port or mqtts://host:port", raw.url),
            )
        })?;
        let tls_only = [
            ("ca_file", raw.ca_file.is_some()),
            ("client_cert", raw.client_cert.is_some()),
            ("client_key", raw.client_key.is_some()),
        ];
        let tls = if tls {
            let ca_file = raw.ca_file.clone().ok_or_else(|| {
                self.err(
                    format!("{at}.ca_file"),
                    "required for mqtts://: the CA certificate (PEM) that signed the broker's certificate",
                )
            })?;
            let client = match (raw.client_cert.clone(), raw.client_key.clone()) {
                (Some(c), Some(k)) => Some((c.into(), k.into())),
                (None, None) => None,
                (Some(_), None) => {
                    return Err(self.err(
                        format!("{at}.client_key"),
                        "client_cert and client_key go together",
                    ));
                }
                (None, Some(_)) => {
                    return Err(self.err(
                        format!("{at}.client_cert"),
                        "client_cert and client_key go together",
                    ));
                }
            };
            Some(TlsFiles {
                ca_file: ca_file.into(),
                client,
            })
        } else {
            if let Some((key, _)) = tls_only.iter().find(|(_, set)| *set) {
                return Err(self.err(format!("{at}.{key}"), "only for mqtts:// brokers (TLS)"));
            }
            None
        };
        let password = self.credentials(
            at,
            raw.username.as_deref(),
            raw.password_file,
            raw.password_env,
        )?;
        Ok(BrokerConfig {
            name: raw.name,
            host,
            port,
            tls,
            username: raw.username,
            password,
        })
    }

    /// A user name and where its password is (a file or an environment variable, never the
    /// password itself): both or neither, each well-formed.
    pub(super) fn credentials(
        &self,
        at: &str,
        username: Option<&str>,
        password_file: Option<String>,
        password_env: Option<String>,
    ) -> Result<Option<PasswordSource>, ConfigError> {
        let password = self.optional_secret(at, "password", password_file, password_env)?;
        if password.is_some() && username.is_none() {
            return Err(self.err(
                format!("{at}.username"),
                "required with password_file or password_env",
            ));
        }
        if username == Some("") {
            return Err(self.err(format!("{at}.username"), "is empty"));
        }
        Ok(password)
    }

    /// `{what}_file` or `{what}_env`, at most one.
    pub(super) fn optional_secret(
        &self,
        at: &str,
        what: &str,
        file: Option<String>,
        env: Option<String>,
    ) -> Result<Option<PasswordSource>, ConfigError> {
        match (file, env) {
            (Some(_), Some(_)) => {
                Err(self.err(at, format!("give {what}_file or {what}_env, not both")))
            }
            (Some(f), None) if f.is_empty() => {
                Err(self.err(format!("{at}.{what}_file"), "is empty"))
            }
            (Some(f), None) => Ok(Some(PasswordSource::File(f.into()))),
            (None, Some(v)) if v.is_empty() || v.contains(['=', '\0']) => Err(self.err(
                format!("{at}.{what}_env"),
                format!("{v:?} is not an environment variable name"),
            )),
            (None, Some(v)) => Ok(Some(PasswordSource::Env(v))),
            (None, None) => Ok(None),
        }
    }
}
