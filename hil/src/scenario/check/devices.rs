//! `[[devices]]`, and what a device serves: the names, signals, channels and values the
//! other sections may give it.

use std::time::Duration;

use firebreak_protocols::{DeviceId, RegisterDescriptor, Signal, SignalKind, ZoneId, encode_raw};

use super::Validator;
use crate::scenario::{Device, DeviceKind, Peer, RawDevice, ScenarioError, UpsSource};

impl Validator<'_> {
    pub(super) fn devices(&self, raw: &[RawDevice]) -> Result<Vec<Device>, ScenarioError> {
        if raw.is_empty() {
            return Err(self.err("devices", "a scenario needs at least one device"));
        }
        let mut devices: Vec<Device> = Vec::new();
        for (i, d) in raw.iter().enumerate() {
            let at = format!("devices[{i}]");
            let name: DeviceId = self.id(&format!("{at}.name"), &d.name)?;
            if let Some(j) = devices.iter().position(|o| o.name == name) {
                return Err(self.err(
                    format!("{at}.name"),
                    format!("{:?} is already devices[{j}]", d.name),
                ));
            }
            let zone: ZoneId = self.id(&format!("{at}.zone"), &d.zone)?;
            let peer = self.peer(&at, d)?;
            if peer.is_some() && d.unit.is_some() {
                return Err(self.err(
                    format!("{at}.unit"),
                    "not for a device served by NUT or snmpsim: it is not read over Modbus",
                ));
            }
            let unit = match (d.kind.is_modbus(), d.unit) {
                (true, Some(u)) if (1..=247).contains(&u) => u,
                (true, Some(u)) => {
                    return Err(self.err(
                        format!("{at}.unit"),
                        format!("{u} is not a Modbus unit id (1..=247)"),
                    ));
                }
                (true, None) => 1,
                (false, Some(_)) => {
                    return Err(self.err(
                        format!("{at}.unit"),
                        "only for Modbus devices (ups, pdu, node)",
                    ));
                }
                (false, None) => 0,
            };
            let publish_interval = match (d.kind, d.publish_interval_ms) {
                (DeviceKind::RoomMqtt, Some(ms)) if (100..=600_000).contains(&ms) => {
                    Duration::from_millis(ms)
                }
                (DeviceKind::RoomMqtt, Some(ms)) => {
                    return Err(self.err(
                        format!("{at}.publish_interval_ms"),
                        format!("{ms} is not 100..=600000"),
                    ));
                }
                (DeviceKind::RoomMqtt, None) => Duration::from_secs(1),
                (_, Some(_)) => {
                    return Err(self.err(
                        format!("{at}.publish_interval_ms"),
                        "only for room-mqtt devices",
                    ));
                }
                (_, None) => Duration::ZERO,
            };
            if d.kind == DeviceKind::Node
                && let Some(other) = devices
                    .iter()
                    .find(|o| o.kind == DeviceKind::Node && o.unit == unit)
            {
                // Firmware nodes share one RS-485 line: the unit id tells them apart.
                return Err(self.err(
                    format!("{at}.unit"),
                    format!(
                        "{unit} is already the unit of node {}: nodes share one RS-485 line, give each its own unit",
                        other.name.as_str()
                    ),
                ));
            }
            devices.push(Device {
                name,
                kind: d.kind,
                zone,
                unit,
                publish_interval,
                signals: Vec::new(),
                faults: Vec::new(),
                network_cuts: Vec::new(),
                peer,
            });
        }
        Ok(devices)
    }

    /// `source` (a UPS) and `snmp` (a PDU): the program that serves the device, if not the
    /// rig's simulators.
    fn peer(&self, at: &str, d: &RawDevice) -> Result<Option<Peer>, ScenarioError> {
        if d.source.is_some() && d.kind != DeviceKind::Ups {
            return Err(self.err(format!("{at}.source"), "only for ups devices"));
        }
        let Some(recording) = &d.snmp else {
            return Ok((d.source == Some(UpsSource::Nut)).then_some(Peer::Nut));
        };
        if d.kind != DeviceKind::Pdu {
            return Err(self.err(format!("{at}.snmp"), "only for pdu devices"));
        }
        // A path under snmpsim-data's data directory, without `.snmprec`: its last part is
        // the community snmpsim answers it under.
        let valid_part = |p: &str| {
            !p.is_empty()
                && p != "."
                && p != ".."
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        };
        if !recording.split('/').all(valid_part) || recording.ends_with(".snmprec") {
            return Err(self.err(
                format!("{at}.snmp"),
                format!(
                    "{recording:?} is not a recording of snmpsim-data: a relative path without its extension, like \"UPS/apc-8641\""
                ),
            ));
        }
        Ok(Some(Peer::Snmp {
            recording: recording.clone(),
        }))
    }

    pub(super) fn device_index(
        &self,
        path: &str,
        name: &str,
        devices: &[Device],
    ) -> Result<usize, ScenarioError> {
        devices
            .iter()
            .position(|d| d.name.as_str() == name)
            .ok_or_else(|| {
                let known: Vec<&str> = devices.iter().map(|d| d.name.as_str()).collect();
                self.err(
                    path,
                    format!("no device named {name:?} (devices: {})", known.join(", ")),
                )
            })
    }

    /// The descriptor that serves `signal` `channel` on a Modbus device (`Ok(None)` for MQTT
    /// devices, which publish any signal on channel 0).
    pub(super) fn served(
        &self,
        at: &str,
        device: &Device,
        signal: Signal,
        channel: u8,
    ) -> Result<Option<&'static RegisterDescriptor>, ScenarioError> {
        let Some(profile) = device.kind.profile() else {
            if channel != 0 {
                return Err(self.err(
                    format!("{at}.channel"),
                    "a room-mqtt device publishes channel 0 only",
                ));
            }
            return Ok(None);
        };
        if let Some(d) = profile
            .registers
            .iter()
            .find(|d| d.signal == signal && d.channel == channel)
        {
            return Ok(Some(d));
        }
        let channels: Vec<u8> = profile
            .registers
            .iter()
            .filter(|d| d.signal == signal)
            .map(|d| d.channel)
            .collect();
        if let (Some(lo), Some(hi)) = (channels.iter().min(), channels.iter().max()) {
            return Err(self.err(
                format!("{at}.channel"),
                format!(
                    "{} has {signal} channels {lo}..={hi}, not {channel}",
                    device.name.as_str()
                ),
            ));
        }
        let mut serves: Vec<&str> = profile.registers.iter().map(|d| d.signal.name()).collect();
        serves.dedup();
        Err(self.err(
            format!("{at}.signal"),
            format!(
                "a {} ({}) does not serve {signal}; it serves {}",
                device.kind,
                profile.name,
                serves.join(", ")
            ),
        ))
    }

    /// Checks a value for a signal of a device: states 0/1, codes whole numbers, Modbus
    /// values encodable in their register.
    pub(super) fn value(
        &self,
        path: &str,
        signal: Signal,
        descriptor: Option<&RegisterDescriptor>,
        value: f32,
    ) -> Result<f32, ScenarioError> {
        if !value.is_finite() {
            return Err(self.err(path, format!("{value} is not a finite number")));
        }
        match signal.kind() {
            SignalKind::State if value != 0.0 && value != 1.0 => {
                return Err(self.err(
                    path,
                    format!("{signal} is a state: 0, 1, true or false, not {value}"),
                ));
            }
            SignalKind::Code if value < 0.0 || value.fract() != 0.0 => {
                return Err(self.err(
                    path,
                    format!("{signal} is a code: a whole number 0 or more, not {value}"),
                ));
            }
            _ => {}
        }
        if let Some(d) = descriptor {
            encode_raw(d, value).map_err(|e| {
                self.err(
                    path,
                    format!("{signal}: {e} ({} register {})", d.table, d.address),
                )
            })?;
        }
        Ok(value)
    }
}
