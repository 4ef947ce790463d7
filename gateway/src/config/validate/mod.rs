//! The checks types cannot make, one module per section of the configuration: the site and
//! its zones here; [`delivery`] (brokers, signing, outbox, HTTP), [`policy`], [`devices`]
//! (profiles, devices, transports, shared RS-485 lines), [`sources`] (MQTT, NUT and SNMP
//! sources) and
//! [`telemetry`]. Every
//! error names the file, the key path and the problem.

mod delivery;
mod devices;
mod policy;
mod sources;
mod telemetry;

use super::*;

/// Every built-in profile, Modbus and SNMP, by name.
pub(super) fn builtin_profiles() -> BTreeMap<String, Arc<OwnedProfile>> {
    BUILTIN_PROFILES
        .iter()
        .map(|p| (p.name.to_string(), Arc::new(OwnedProfile::from_builtin(p))))
        .chain(BUILTIN_OID_PROFILES.iter().map(|p| {
            (
                p.name.to_string(),
                Arc::new(OwnedProfile::from_builtin_oids(p)),
            )
        }))
        .collect()
}

pub(super) struct Validator<'a> {
    pub(super) origin: &'a str,
}

impl Validator<'_> {
    pub(super) fn err(&self, path: impl Into<String>, problem: impl Into<String>) -> ConfigError {
        ConfigError {
            origin: self.origin.to_string(),
            line: None,
            path: path.into(),
            problem: problem.into(),
        }
    }

    pub(super) fn id<T: std::str::FromStr<Err = IdError>>(
        &self,
        path: &str,
        s: &str,
    ) -> Result<T, ConfigError> {
        s.parse()
            .map_err(|e: IdError| self.err(path, format!("{s:?} {e}")))
    }

    pub(super) fn site(&self, raw: RawSiteConfig) -> Result<SiteConfig, ConfigError> {
        let site: SiteId = self.id("site.name", &raw.site.name)?;
        let gateway: GatewayId = self.id("site.gateway", &raw.site.gateway)?;

        let mut zones = Vec::new();
        for (i, z) in raw.zones.iter().enumerate() {
            let zone: ZoneId = self.id(&format!("zones[{i}].name"), &z.name)?;
            if zones.contains(&zone) {
                return Err(self.err(
                    format!("zones[{i}].name"),
                    format!("zone {zone:?} is declared twice"),
                ));
            }
            zones.push(zone);
        }

        let http_bind = match &raw.http {
            Some(h) => h.bind.parse::<SocketAddr>().map_err(|_| {
                self.err(
                    "http.bind",
                    format!(
                        "{:?} is not an address:port such as \"127.0.0.1:9186\"",
                        h.bind
                    ),
                )
            })?,
            None => DEFAULT_HTTP_BIND
                .parse()
                .map_err(|_| self.err("http.bind", "bad built-in default"))?,
        };

        let mut profiles = builtin_profiles();
        for (i, p) in raw.profiles.into_iter().enumerate() {
            let profile = self.profile(i, p)?;
            let path = format!("profiles[{i}].name");
            if BUILTIN_PROFILES.iter().any(|b| b.name == profile.name)
                || BUILTIN_OID_PROFILES.iter().any(|b| b.name == profile.name)
            {
                return Err(self.err(
                    path,
                    format!(
                        "{:?} is a built-in profile; choose another name",
                        profile.name
                    ),
                ));
            }
            if profiles.contains_key(&profile.name) {
                return Err(self.err(path, format!("profile {:?} is defined twice", profile.name)));
            }
            profiles.insert(profile.name.clone(), Arc::new(profile));
        }

        let defaults = raw.defaults.unwrap_or_default();
        let mut devices: Vec<DeviceConfig> = Vec::new();
        for (i, d) in raw.devices.into_iter().enumerate() {
            let device = self.device(i, d, &defaults, &zones, &profiles)?;
            if devices.iter().any(|o| o.name == device.name) {
                return Err(self.err(
                    format!("devices[{i}].name"),
                    format!("device {:?} is defined twice", device.name.as_str()),
                ));
            }
            self.shared_line(i, &device, &devices)?;
            devices.push(device);
        }

        let mut mqtt_sources: Vec<MqttSourceConfig> = Vec::new();
        for (i, s) in raw.mqtt_sources.into_iter().enumerate() {
            let source = self.mqtt_source(i, s, &zones)?;
            if devices.iter().any(|d| d.name == source.name)
                || mqtt_sources.iter().any(|o| o.name == source.name)
            {
                return Err(self.err(
                    format!("mqtt_sources[{i}].name"),
                    format!("device {:?} is defined twice", source.name.as_str()),
                ));
            }
            mqtt_sources.push(source);
        }
        let mut nut_sources: Vec<NutSourceConfig> = Vec::new();
        for (i, s) in raw.nut_sources.into_iter().enumerate() {
            let source = self.nut_source(i, s, &defaults, &zones)?;
            if devices.iter().any(|d| d.name == source.name)
                || mqtt_sources.iter().any(|o| o.name == source.name)
                || nut_sources.iter().any(|o| o.name == source.name)
            {
                return Err(self.err(
                    format!("nut_sources[{i}].name"),
                    format!("device {:?} is defined twice", source.name.as_str()),
                ));
            }
            nut_sources.push(source);
        }
        let mut snmp_sources: Vec<SnmpSourceConfig> = Vec::new();
        for (i, s) in raw.snmp_sources.into_iter().enumerate() {
            let source = self.snmp_source(i, s, &defaults, &zones, &profiles)?;
            if devices.iter().any(|d| d.name == source.name)
                || mqtt_sources.iter().any(|o| o.name == source.name)
                || nut_sources.iter().any(|o| o.name == source.name)
                || snmp_sources.iter().any(|o| o.name == source.name)
            {
                return Err(self.err(
                    format!("snmp_sources[{i}].name"),
                    format!("device {:?} is defined twice", source.name.as_str()),
                ));
            }
            snmp_sources.push(source);
        }
        let snmp_traps = match raw.snmp_traps {
            None => None,
            Some(t) => {
                let bind = t.bind.parse::<SocketAddr>().map_err(|_| {
                    self.err(
                        "snmp_traps.bind",
                        format!(
                            "{:?} is not an address:port such as \"0.0.0.0:1162\"",
                            t.bind
                        ),
                    )
                })?;
                if snmp_sources.is_empty() {
                    return Err(self.err(
                        "snmp_traps",
                        "traps only make SNMP sources poll at once, and the site has no snmp_sources",
                    ));
                }
                if t.communities.iter().any(String::is_empty) {
                    return Err(self.err("snmp_traps.communities", "an empty community"));
                }
                Some(SnmpTrapsConfig {
                    bind,
                    communities: t.communities,
                })
            }
        };
        if devices.is_empty()
            && mqtt_sources.is_empty()
            && nut_sources.is_empty()
            && snmp_sources.is_empty()
        {
            return Err(self.err(
                "devices",
                "the site has no devices, mqtt_sources, nut_sources or snmp_sources: nothing to watch",
            ));
        }
        let policy = self.policy(raw.policy.unwrap_or_default())?;
        let (brokers, signing, outbox) = self.delivery(raw.brokers, raw.signing, raw.outbox)?;
        let telemetry = self.telemetry(raw.telemetry)?;
        let control_socket = match raw.control.and_then(|c| c.socket) {
            Some(s) if s.is_empty() => return Err(self.err("control.socket", "is empty")),
            Some(s) => Some(std::path::PathBuf::from(s)),
            None => outbox
                .as_ref()
                .map(|o| o.dir.join(crate::control::DEFAULT_SOCKET_NAME)),
        };
        Ok(SiteConfig {
            site,
            gateway,
            zones,
            http_bind,
            devices,
            mqtt_sources,
            nut_sources,
            snmp_sources,
            snmp_traps,
            profiles,
            policy,
            brokers,
            signing,
            outbox,
            telemetry,
            control_socket,
        })
    }
}
