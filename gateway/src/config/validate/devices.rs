//! Zones, device profiles, devices, their transports and shared RS-485 lines, and witness groups.

use super::*;

impl Validator<'_> {
    pub(super) fn zone(
        &self,
        path: &str,
        name: &str,
        zones: &[ZoneId],
    ) -> Result<ZoneId, ConfigError> {
        zones
            .iter()
            .find(|z| z.as_str() == name)
            .cloned()
            .ok_or_else(|| {
                let known: Vec<&str> = zones.iter().map(ZoneId::as_str).collect();
                self.err(
                    path,
                    format!(
                        "no zone named {name:?} (zones: {})",
                        if known.is_empty() {
                            "none declared".to_string()
                        } else {
                            known.join(", ")
                        }
                    ),
                )
            })
    }

    pub(super) fn profile(&self, i: usize, raw: RawProfile) -> Result<OwnedProfile, ConfigError> {
        let at = format!("profiles[{i}]");
        if raw.name.is_empty() {
            return Err(self.err(format!("{at}.name"), "is empty"));
        }
        let mut registers = Vec::with_capacity(raw.registers.len());
        for (j, r) in raw.registers.into_iter().enumerate() {
            let path = format!("{at}.registers[{j}]");
            let data_type = match (r.r#type, r.bit) {
                (RawType::Bit, Some(n)) if n < 16 => DataType::Bit(n),
                (RawType::Bit, Some(n)) => {
                    return Err(self.err(
                        format!("{path}.bit"),
                        format!("{n} is not a bit of a 16-bit register (0..=15)"),
                    ));
                }
                (RawType::Bit, None) => {
                    return Err(self.err(format!("{path}.bit"), "required for type \"bit\""));
                }
                (_, Some(_)) => {
                    return Err(self.err(format!("{path}.bit"), "only for type \"bit\""));
                }
                (RawType::Bool, None) => DataType::Bool,
                (RawType::U16, None) => DataType::U16,
                (RawType::I16, None) => DataType::I16,
                (RawType::U32, None) => DataType::U32,
                (RawType::I32, None) => DataType::I32,
                (RawType::F32, None) => DataType::F32,
            };
            let mut d = RegisterDescriptor::new(r.signal, r.table, r.address, data_type)
                .channel(r.channel)
                .scaled(r.scale, r.offset)
                .order(
                    r.word_order.unwrap_or(WordOrder::HighFirst),
                    r.byte_order.unwrap_or(ByteOrder::Big),
                );
            if let (Some(min), Some(max)) = (r.min, r.max) {
                d = d.valid(min, max);
            } else if r.min.is_some() || r.max.is_some() {
                return Err(self.err(
                    format!("{path}.{}", if r.min.is_some() { "max" } else { "min" }),
                    "min and max go together",
                ));
            }
            let mut sentinels = Sentinels::NONE;
            for s in &r.sentinels {
                sentinels = sentinels.with(*s).ok_or_else(|| {
                    self.err(
                        format!("{path}.sentinels"),
                        format!(
                            "at most {} values",
                            firebreak_protocols::profile::MAX_SENTINELS
                        ),
                    )
                })?;
            }
            d.sentinels = sentinels;
            if (d.word_order != WordOrder::HighFirst) && data_type.width() != 2 {
                return Err(self.err(
                    format!("{path}.word_order"),
                    "only for 32-bit types (u32, i32, f32)",
                ));
            }
            d.validate().map_err(|e| self.err(&path, e.to_string()))?;
            registers.push(d);
        }
        let mut oids = Vec::with_capacity(raw.oids.len());
        for (j, o) in raw.oids.into_iter().enumerate() {
            oids.push(self.oid(&format!("{at}.oids[{j}]"), o)?);
        }
        let profile = OwnedProfile {
            name: raw.name,
            description: raw.description.unwrap_or_default(),
            registers,
            oids,
        };
        profile
            .view()
            .validate()
            .map_err(|e| self.err(&at, e.to_string()))?;
        let views: Vec<OidDescriptor<'_>> = profile.oids.iter().map(OwnedOid::view).collect();
        OidProfile {
            name: &profile.name,
            description: &profile.description,
            oids: &views,
        }
        .validate()
        .map_err(|e| self.err(&at, e.to_string()))?;
        match (profile.registers.is_empty(), profile.oids.is_empty()) {
            (true, true) => Err(self.err(
                format!("{at}.registers"),
                "a profile needs at least one register (Modbus) or oid (SNMP)",
            )),
            (false, false) => Err(self.err(
                format!("{at}.oids"),
                "a profile is a Modbus register map or an SNMP map, not both: make two profiles",
            )),
            _ => Ok(profile),
        }
    }

    /// One `[[profiles.oids]]` entry.
    fn oid(&self, path: &str, o: RawOid) -> Result<OwnedOid, ConfigError> {
        let shape = match (o.table, o.first_index, o.channel) {
            (true, _, Some(_)) => {
                return Err(self.err(
                    format!("{path}.channel"),
                    "a table's channels are its row indexes less first_index: no channel",
                ));
            }
            (false, Some(_), _) => {
                return Err(self.err(format!("{path}.first_index"), "only with table = true"));
            }
            (true, first, None) => OidShape::Column {
                first_index: first.unwrap_or(1),
            },
            (false, None, channel) => OidShape::Scalar {
                channel: channel.unwrap_or(0),
            },
        };
        let kind = match o.r#type.unwrap_or(RawOidType::Number) {
            RawOidType::Number if !o.on.is_empty() => {
                return Err(self.err(format!("{path}.on"), "only for type \"flag\""));
            }
            RawOidType::Number => OidKind::Number,
            RawOidType::Flag => OidKind::Flag,
        };
        let valid = match (o.min, o.max) {
            (Some(min), Some(max)) => ValidRange { min, max },
            (None, None) => ValidRange::ANY,
            (min, _) => {
                return Err(self.err(
                    format!("{path}.{}", if min.is_some() { "max" } else { "min" }),
                    "min and max go together",
                ));
            }
        };
        let oid = OwnedOid {
            signal: o.signal,
            oid: o.oid.strip_prefix('.').unwrap_or(&o.oid).to_string(),
            shape,
            kind,
            on: o.on,
            scale: o.scale,
            offset: o.offset,
            valid,
            sentinels: o.sentinels,
        };
        oid.view()
            .validate()
            .map_err(|e| self.err(path, e.to_string()))?;
        Ok(oid)
    }

    pub(super) fn device(
        &self,
        i: usize,
        raw: RawDevice,
        defaults: &RawDefaults,
        zones: &[ZoneId],
        profiles: &BTreeMap<String, Arc<OwnedProfile>>,
    ) -> Result<DeviceConfig, ConfigError> {
        let at = format!("devices[{i}]");
        let name: DeviceId = self.id(&format!("{at}.name"), &raw.name)?;
        let zone = self.zone(&format!("{at}.zone"), &raw.zone, zones)?;
        let transport = self.transport(&at, &raw)?;
        if !(1..=247).contains(&raw.unit) {
            return Err(self.err(
                format!("{at}.unit"),
                format!("{} is not a Modbus unit id (1..=247)", raw.unit),
            ));
        }
        let profile = profiles.get(&raw.profile).cloned().ok_or_else(|| {
            self.err(
                format!("{at}.profile"),
                format!("no profile named {:?}", raw.profile),
            )
        })?;
        if profile.is_snmp() {
            return Err(self.err(
                format!("{at}.profile"),
                format!(
                    "{:?} is an SNMP profile: read the device in [[snmp_sources]]",
                    raw.profile
                ),
            ));
        }
        let timing = self.timing(
            &at,
            Timing {
                poll_interval_ms: raw.poll_interval_ms.or(defaults.poll_interval_ms),
                timeout_ms: raw.timeout_ms.or(defaults.timeout_ms),
                comm_lost_after: raw.comm_lost_after.or(defaults.comm_lost_after),
                freshness_ms: raw.freshness_ms.or(defaults.freshness_ms),
            },
        )?;
        let (poll_ms, timeout_ms, comm_lost_after, freshness_ms) = (
            timing.poll_interval_ms.unwrap_or_default(),
            timing.timeout_ms.unwrap_or_default(),
            timing.comm_lost_after.unwrap_or_default(),
            timing.freshness_ms.unwrap_or_default(),
        );
        let plan = PlanOptions {
            max_gap: raw
                .max_gap
                .or(defaults.max_gap)
                .unwrap_or(PlanOptions::default().max_gap),
            max_registers: raw
                .max_registers
                .or(defaults.max_registers)
                .unwrap_or(firebreak_protocols::plan::MAX_READ_REGISTERS),
            max_bits: firebreak_protocols::plan::MAX_READ_BITS,
        };
        plan_reads::<MAX_PLAN_REQUESTS>(&profile.registers, &plan).map_err(|e| {
            self.err(
                format!("{at}.profile"),
                format!("profile {:?}: {e}", profile.name),
            )
        })?;
        Ok(DeviceConfig {
            name,
            zone,
            transport,
            unit: raw.unit,
            profile,
            plan,
            poll_interval: Duration::from_millis(poll_ms),
            timeout: Duration::from_millis(timeout_ms),
            retries: raw.retries.or(defaults.retries).unwrap_or(1),
            comm_lost_after,
            freshness: Duration::from_millis(freshness_ms),
            witness: self.witness(&at, raw.witness_group, raw.independent_channels)?,
        })
    }

    /// `witness_group` and `independent_channels` of a device or MQTT source.
    pub(super) fn witness(
        &self,
        at: &str,
        group: Option<String>,
        independent_channels: Option<bool>,
    ) -> Result<Witness, ConfigError> {
        let group = match group {
            None => None,
            Some(g) => {
                // The same rules as ids: short, lower-case, no spaces.
                let _: DeviceId = self.id(&format!("{at}.witness_group"), &g)?;
                Some(g)
            }
        };
        Ok(Witness {
            group,
            independent_channels: independent_channels.unwrap_or(false),
        })
    }

    pub(super) fn transport(&self, at: &str, raw: &RawDevice) -> Result<Transport, ConfigError> {
        let serial_keys = [
            ("serial", raw.serial.is_some()),
            ("baud", raw.baud.is_some()),
            ("parity", raw.parity.is_some()),
            ("stop_bits", raw.stop_bits.is_some()),
            ("data_bits", raw.data_bits.is_some()),
        ];
        match raw.transport {
            TransportKind::Tcp => {
                if let Some((key, _)) = serial_keys.iter().find(|(_, set)| *set) {
                    return Err(self.err(format!("{at}.{key}"), "only for transport \"rtu\""));
                }
                let address = raw.address.as_deref().ok_or_else(|| {
                    self.err(
                        format!("{at}.address"),
                        "required for transport \"tcp\" (host:port)",
                    )
                })?;
                parse_host_port(address).ok_or_else(|| {
                    self.err(
                        format!("{at}.address"),
                        format!("{address:?} is not host:port"),
                    )
                })
            }
            TransportKind::Rtu => {
                if raw.address.is_some() {
                    return Err(self.err(
                        format!("{at}.address"),
                        "only for transport \"tcp\"; a serial device has `serial`",
                    ));
                }
                let path = raw.serial.clone().ok_or_else(|| {
                    self.err(
                        format!("{at}.serial"),
                        "required for transport \"rtu\" (a path such as /dev/ttyUSB0)",
                    )
                })?;
                let stop_bits = raw.stop_bits.unwrap_or(1);
                if !(1..=2).contains(&stop_bits) {
                    return Err(self.err(
                        format!("{at}.stop_bits"),
                        format!("{stop_bits} is not 1 or 2"),
                    ));
                }
                let data_bits = raw.data_bits.unwrap_or(8);
                if !(7..=8).contains(&data_bits) {
                    return Err(self.err(
                        format!("{at}.data_bits"),
                        format!("{data_bits} is not 7 or 8"),
                    ));
                }
                let baud = raw.baud.unwrap_or(19_200);
                if !(300..=1_000_000).contains(&baud) {
                    return Err(self.err(
                        format!("{at}.baud"),
                        format!("{baud} is not a serial speed (300..=1000000)"),
                    ));
                }
                Ok(Transport::Rtu(SerialLine {
                    path,
                    baud,
                    parity: raw.parity.unwrap_or(Parity::Even),
                    stop_bits,
                    data_bits,
                }))
            }
        }
    }

    /// Devices on one serial line share its settings, and their unit ids differ.
    pub(super) fn shared_line(
        &self,
        i: usize,
        device: &DeviceConfig,
        earlier: &[DeviceConfig],
    ) -> Result<(), ConfigError> {
        let Transport::Rtu(line) = &device.transport else {
            return Ok(());
        };
        for (j, other) in earlier.iter().enumerate() {
            let Transport::Rtu(o) = &other.transport else {
                continue;
            };
            if o.path != line.path {
                continue;
            }
            if o != line {
                return Err(self.err(format!("devices[{i}].serial"), format!(
                    "{} is also used by devices[{j}] with other settings ({o}); devices on one line share baud, parity, stop and data bits",
                    line.path
                )));
            }
            if other.unit == device.unit {
                return Err(self.err(
                    format!("devices[{i}].unit"),
                    format!(
                        "unit {} is already used on {} by devices[{j}]",
                        device.unit, line.path
                    ),
                ));
            }
        }
        Ok(())
    }

    /// A polled device's timing, with the defaults filled in (poll 1 s, timeout half the poll
    /// up to 500 ms, comm-lost after 3 missed polls, stale after 3 polls) and checked.
    pub(super) fn timing(&self, at: &str, raw: Timing) -> Result<Timing, ConfigError> {
        let poll_ms = raw.poll_interval_ms.unwrap_or(1000);
        if poll_ms < 10 {
            return Err(self.err(
                format!("{at}.poll_interval_ms"),
                format!("{poll_ms} is less than 10"),
            ));
        }
        let timeout_ms = raw.timeout_ms.unwrap_or(poll_ms.min(1000) / 2);
        if timeout_ms == 0 || timeout_ms >= poll_ms {
            return Err(self.err(
                format!("{at}.timeout_ms"),
                format!(
                    "{timeout_ms} must be more than 0 and less than poll_interval_ms ({poll_ms})"
                ),
            ));
        }
        let comm_lost_after = raw.comm_lost_after.unwrap_or(3);
        if comm_lost_after == 0 {
            return Err(self.err(
                format!("{at}.comm_lost_after"),
                "must be at least 1 missed poll",
            ));
        }
        let freshness_ms = raw.freshness_ms.unwrap_or(poll_ms.saturating_mul(3));
        if freshness_ms < poll_ms {
            return Err(self.err(format!("{at}.freshness_ms"), format!("{freshness_ms} is less than poll_interval_ms ({poll_ms}): every value would be stale")));
        }
        Ok(Timing {
            poll_interval_ms: Some(poll_ms),
            timeout_ms: Some(timeout_ms),
            comm_lost_after: Some(comm_lost_after),
            freshness_ms: Some(freshness_ms),
        })
    }
}

/// A polled device's timing keys, as configured (`None`: not given).
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Timing {
    pub(super) poll_interval_ms: Option<u64>,
    pub(super) timeout_ms: Option<u64>,
    pub(super) comm_lost_after: Option<u32>,
    pub(super) freshness_ms: Option<u64>,
}
