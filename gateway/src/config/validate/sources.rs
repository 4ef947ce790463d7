//! MQTT sources (their broker connection, topic, fields and freshness), NUT sources (a UPS on
//! a Network UPS Tools server) and SNMP sources (UPS cards and rack PDUs: version,
//! credentials, profile).

use super::*;

impl Validator<'_> {
    pub(super) fn mqtt_source(
        &self,
        i: usize,
        mut raw: RawMqttSource,
        zones: &[ZoneId],
    ) -> Result<MqttSourceConfig, ConfigError> {
        let at = format!("mqtt_sources[{i}]");
        let name: DeviceId = self.id(&format!("{at}.name"), &raw.name)?;
        let zone = self.zone(&format!("{at}.zone"), &raw.zone, zones)?;
        let broker = self.connection(&at, "broker", raw.take_broker())?;
        let max_payload = match raw.max_payload {
            None => DEFAULT_MAX_PAYLOAD,
            Some(n) => usize::try_from(n)
                .ok()
                .filter(|n| MAX_PAYLOAD_RANGE.contains(n))
                .ok_or_else(|| {
                    self.err(
                        format!("{at}.max_payload"),
                        format!(
                            "{n} bytes is not between {} and {}",
                            MAX_PAYLOAD_RANGE.start(),
                            MAX_PAYLOAD_RANGE.end()
                        ),
                    )
                })?,
        };
        if raw.topic.is_empty() || raw.topic.contains('\0') {
            return Err(self.err(format!("{at}.topic"), "is not an MQTT topic filter"));
        }
        if raw.signals.is_empty() {
            return Err(self.err(
                format!("{at}.signals"),
                "map at least one payload field to a signal",
            ));
        }
        let mut signals: Vec<MqttSignal> = Vec::new();
        let mut seen: HashMap<(Signal, u8), usize> = HashMap::new();
        for (j, s) in raw.signals.into_iter().enumerate() {
            let path = format!("{at}.signals[{j}]");
            let pointer = match (s.pointer, s.field) {
                (Some(p), None) if p.starts_with('/') => p,
                (Some(p), None) => {
                    return Err(self.err(
                        format!("{path}.pointer"),
                        format!(
                            "{p:?} is not a JSON pointer (it starts with '/', as in \"/temperature\"; for a top-level field use field = {p:?})"
                        ),
                    ));
                }
                // RFC 6901: '~' and '/' in a name are written ~0 and ~1.
                (None, Some(f)) if !f.is_empty() => {
                    format!("/{}", f.replace('~', "~0").replace('/', "~1"))
                }
                (None, Some(_)) => return Err(self.err(format!("{path}.field"), "is empty")),
                (Some(_), Some(_)) => {
                    return Err(self.err(&path, "give pointer or field, not both"));
                }
                (None, None) => {
                    return Err(self.err(
                        &path,
                        "give pointer (\"/a/b\") or field (\"a\") for the value",
                    ));
                }
            };
            if !s.scale.is_finite() || s.scale == 0.0 || !s.offset.is_finite() {
                return Err(self.err(
                    format!("{path}.scale"),
                    "scale must be finite and not zero, offset finite",
                ));
            }
            if let Some(k) = seen.insert((s.signal, s.channel), j) {
                return Err(self.err(
                    &path,
                    format!(
                        "signal {} channel {} is already mapped by signals[{k}]",
                        s.signal, s.channel
                    ),
                ));
            }
            let valid = match (s.min, s.max) {
                (Some(min), Some(max)) if min <= max => ValidRange { min, max },
                (None, None) => ValidRange::ANY,
                _ => {
                    return Err(
                        self.err(format!("{path}.min"), "min and max go together, min <= max")
                    );
                }
            };
            signals.push(MqttSignal {
                signal: s.signal,
                channel: s.channel,
                pointer,
                scale: s.scale,
                offset: s.offset,
                valid,
            });
        }
        let freshness_ms = raw.freshness_ms.unwrap_or(60_000);
        Ok(MqttSourceConfig {
            name,
            zone,
            broker,
            topic: raw.topic,
            max_payload,
            signals,
            freshness: Duration::from_millis(freshness_ms),
            witness: self.witness(&at, raw.witness_group, raw.independent_channels)?,
        })
    }

    pub(super) fn nut_source(
        &self,
        i: usize,
        raw: RawNutSource,
        defaults: &RawDefaults,
        zones: &[ZoneId],
    ) -> Result<NutSourceConfig, ConfigError> {
        let at = format!("nut_sources[{i}]");
        let name: DeviceId = self.id(&format!("{at}.name"), &raw.name)?;
        let zone = self.zone(&format!("{at}.zone"), &raw.zone, zones)?;
        let (host, port, ups) = parse_nut_url(&raw.url).ok_or_else(|| {
            self.err(
                format!("{at}.url"),
                format!(
                    "{:?} is not nut://host[:port]/ups (the UPS name as in upsd's ups.conf; no user@ in the URL: give username and password_file)",
                    raw.url
                ),
            )
        })?;
        let password = self.credentials(
            &at,
            raw.username.as_deref(),
            raw.password_file,
            raw.password_env,
        )?;
        let timing = self.timing(
            &at,
            super::devices::Timing {
                poll_interval_ms: raw.poll_interval_ms.or(defaults.poll_interval_ms),
                timeout_ms: raw.timeout_ms.or(defaults.timeout_ms),
                comm_lost_after: raw.comm_lost_after.or(defaults.comm_lost_after),
                freshness_ms: raw.freshness_ms.or(defaults.freshness_ms),
            },
        )?;
        Ok(NutSourceConfig {
            name,
            zone,
            host,
            port,
            ups,
            username: raw.username,
            password,
            poll_interval: Duration::from_millis(timing.poll_interval_ms.unwrap_or(1000)),
            timeout: Duration::from_millis(timing.timeout_ms.unwrap_or(500)),
            comm_lost_after: timing.comm_lost_after.unwrap_or(3),
            freshness: Duration::from_millis(timing.freshness_ms.unwrap_or(3000)),
            witness: self.witness(&at, raw.witness_group, None)?,
        })
    }

    pub(in crate::config) fn snmp_source(
        &self,
        i: usize,
        raw: RawSnmpSource,
        defaults: &RawDefaults,
        zones: &[ZoneId],
        profiles: &BTreeMap<String, Arc<OwnedProfile>>,
    ) -> Result<SnmpSourceConfig, ConfigError> {
        let at = format!("snmp_sources[{i}]");
        let name: DeviceId = self.id(&format!("{at}.name"), &raw.name)?;
        let zone = self.zone(&format!("{at}.zone"), &raw.zone, zones)?;
        let (host, port) = parse_snmp_url(&raw.url).ok_or_else(|| {
            self.err(
                format!("{at}.url"),
                format!(
                    "{:?} is not snmp://host[:port] (no community@ in the URL: give community, community_file or community_env)",
                    raw.url
                ),
            )
        })?;
        let profile = profiles.get(&raw.profile).cloned().ok_or_else(|| {
            let snmp: Vec<&str> = profiles
                .values()
                .filter(|p| p.is_snmp())
                .map(|p| p.name.as_str())
                .collect();
            self.err(
                format!("{at}.profile"),
                format!(
                    "no profile named {:?} (SNMP profiles: {})",
                    raw.profile,
                    snmp.join(", ")
                ),
            )
        })?;
        if !profile.is_snmp() {
            return Err(self.err(
                format!("{at}.profile"),
                format!(
                    "{:?} is a Modbus register map: give an SNMP profile ([[profiles.oids]])",
                    raw.profile
                ),
            ));
        }
        let auth = self.snmp_auth(&at, &raw)?;
        let poll_ms = raw
            .poll_interval_ms
            .or(defaults.poll_interval_ms)
            .unwrap_or(2000);
        let timing = self.timing(
            &at,
            super::devices::Timing {
                poll_interval_ms: Some(poll_ms),
                timeout_ms: raw
                    .timeout_ms
                    .or(defaults.timeout_ms)
                    .or(Some((poll_ms / 2).min(1000))),
                comm_lost_after: raw.comm_lost_after.or(defaults.comm_lost_after),
                freshness_ms: raw.freshness_ms.or(defaults.freshness_ms),
            },
        )?;
        Ok(SnmpSourceConfig {
            name,
            zone,
            host,
            port,
            profile,
            auth,
            poll_interval: Duration::from_millis(poll_ms),
            timeout: Duration::from_millis(timing.timeout_ms.unwrap_or(1000)),
            retries: raw.retries.or(defaults.retries).unwrap_or(1),
            comm_lost_after: timing.comm_lost_after.unwrap_or(3),
            freshness: Duration::from_millis(timing.freshness_ms.unwrap_or(poll_ms * 3)),
            witness: self.witness(&at, raw.witness_group, raw.independent_channels)?,
        })
    }

    /// The version and where its secrets are.
    fn snmp_auth(&self, at: &str, raw: &RawSnmpSource) -> Result<SnmpAuth, ConfigError> {
        let v3_keys = [
            ("username", raw.username.is_some()),
            ("auth_protocol", raw.auth_protocol.is_some()),
            ("auth_password_file", raw.auth_password_file.is_some()),
            ("auth_password_env", raw.auth_password_env.is_some()),
            ("priv_protocol", raw.priv_protocol.is_some()),
            ("priv_password_file", raw.priv_password_file.is_some()),
            ("priv_password_env", raw.priv_password_env.is_some()),
        ];
        let v2_keys = [
            ("community", raw.community.is_some()),
            ("community_file", raw.community_file.is_some()),
            ("community_env", raw.community_env.is_some()),
        ];
        let given = |keys: &[(&'static str, bool)]| keys.iter().find(|(_, set)| *set).map(|k| k.0);
        match raw.version.as_deref().unwrap_or("2c") {
            "2c" => {
                if let Some(key) = given(&v3_keys) {
                    return Err(self.err(format!("{at}.{key}"), "only for version = \"3\""));
                }
                let community = match (&raw.community, &raw.community_file, &raw.community_env) {
                    (Some(c), None, None) if c.is_empty() => {
                        return Err(self.err(format!("{at}.community"), "is empty"));
                    }
                    (Some(c), None, None) => Community::Inline(c.clone()),
                    (None, file, env) if file.is_some() != env.is_some() => Community::Secret(
                        self.secret(at, "community", file.clone(), env.clone())?,
                    ),
                    (None, None, None) => {
                        return Err(self.err(
                            format!("{at}.community"),
                            "SNMPv2c needs a community: give community, community_file or community_env",
                        ));
                    }
                    _ => {
                        return Err(self.err(
                            format!("{at}.community"),
                            "give one of community, community_file and community_env",
                        ));
                    }
                };
                Ok(SnmpAuth::V2c { community })
            }
            "3" => {
                if let Some(key) = given(&v2_keys) {
                    return Err(self.err(format!("{at}.{key}"), "only for version = \"2c\""));
                }
                let username = match raw.username.as_deref() {
                    Some(u) if !u.is_empty() && u.len() <= 32 => u.to_string(),
                    Some(_) => {
                        return Err(self.err(format!("{at}.username"), "must be 1 to 32 bytes"));
                    }
                    None => {
                        return Err(self.err(
                            format!("{at}.username"),
                            "required for version = \"3\" (the USM user)",
                        ));
                    }
                };
                let auth = match self.optional_secret(
                    at,
                    "auth_password",
                    raw.auth_password_file.clone(),
                    raw.auth_password_env.clone(),
                )? {
                    Some(password) => Some((self.auth_protocol(at, raw)?, password)),
                    None if raw.auth_protocol.is_some() => {
                        return Err(self.err(
                            format!("{at}.auth_password_file"),
                            "auth_protocol needs auth_password_file or auth_password_env",
                        ));
                    }
                    None => None,
                };
                let privacy = match self.optional_secret(
                    at,
                    "priv_password",
                    raw.priv_password_file.clone(),
                    raw.priv_password_env.clone(),
                )? {
                    Some(_) if auth.is_none() => {
                        return Err(self.err(
                            format!("{at}.priv_password_file"),
                            "privacy needs authentication: give auth_password_file or auth_password_env too",
                        ));
                    }
                    Some(password) => Some((self.priv_protocol(at, raw)?, password)),
                    None if raw.priv_protocol.is_some() => {
                        return Err(self.err(
                            format!("{at}.priv_password_file"),
                            "priv_protocol needs priv_password_file or priv_password_env",
                        ));
                    }
                    None => None,
                };
                Ok(SnmpAuth::V3 {
                    username,
                    auth,
                    privacy,
                })
            }
            other => Err(self.err(
                format!("{at}.version"),
                format!("{other:?} is not an SNMP version this gateway speaks: \"2c\" or \"3\""),
            )),
        }
    }

    fn auth_protocol(
        &self,
        at: &str,
        raw: &RawSnmpSource,
    ) -> Result<SnmpAuthProtocol, ConfigError> {
        Ok(match raw.auth_protocol.as_deref().unwrap_or("sha256") {
            "md5" => SnmpAuthProtocol::Md5,
            "sha" | "sha1" => SnmpAuthProtocol::Sha1,
            "sha224" => SnmpAuthProtocol::Sha224,
            "sha256" => SnmpAuthProtocol::Sha256,
            "sha384" => SnmpAuthProtocol::Sha384,
            "sha512" => SnmpAuthProtocol::Sha512,
            other => {
                return Err(self.err(
                    format!("{at}.auth_protocol"),
                    format!("{other:?} is not md5, sha, sha224, sha256, sha384 or sha512"),
                ));
            }
        })
    }

    fn priv_protocol(
        &self,
        at: &str,
        raw: &RawSnmpSource,
    ) -> Result<SnmpPrivProtocol, ConfigError> {
        Ok(match raw.priv_protocol.as_deref().unwrap_or("aes") {
            "des" => SnmpPrivProtocol::Des,
            "aes" | "aes128" => SnmpPrivProtocol::Aes128,
            "aes192" => SnmpPrivProtocol::Aes192,
            "aes256" => SnmpPrivProtocol::Aes256,
            other => {
                return Err(self.err(
                    format!("{at}.priv_protocol"),
                    format!("{other:?} is not aes (aes128), aes192, aes256 or des"),
                ));
            }
        })
    }

    /// `{what}_file` or `{what}_env`, exactly one.
    fn secret(
        &self,
        at: &str,
        what: &str,
        file: Option<String>,
        env: Option<String>,
    ) -> Result<PasswordSource, ConfigError> {
        self.optional_secret(at, what, file, env)?.ok_or_else(|| {
            self.err(
                format!("{at}.{what}_file"),
                format!("give {what}_file or {what}_env"),
            )
        })
    }
}
