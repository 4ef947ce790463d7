//! MQTT sources (their broker connection, topic, fields and freshness) and NUT sources (a
//! UPS on a Network UPS Tools server).

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
                poll_interval_ms: raw.poll_interval_ms,
                timeout_ms: raw.timeout_ms,
                comm_lost_after: raw.comm_lost_after,
                freshness_ms: raw.freshness_ms,
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
}
