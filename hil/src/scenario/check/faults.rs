//! `[[faults]]`: what goes wrong with a device or one of its values, one at a time.

use std::time::Duration;

use super::Validator;
use crate::scenario::{
    Device, EXCEPTION_CODES, Fault, FaultScope, FaultWindow, MAX_DELAY_MS, RawFaultKind,
    RawScenario, ScenarioError, Window,
};

impl Validator<'_> {
    pub(super) fn faults(
        &self,
        raw: &RawScenario,
        devices: &mut [Device],
    ) -> Result<(), ScenarioError> {
        // (device, scope, window, raw index) of the faults seen so far, for overlaps.
        let mut seen: Vec<(usize, FaultScope, Window, usize)> = Vec::new();
        for (i, f) in raw.faults.iter().enumerate() {
            let at = format!("faults[{i}]");
            let index = self.device_index(&format!("{at}.device"), &f.device, devices)?;
            let device = devices
                .get(index)
                .ok_or_else(|| self.err(&at, "no device"))?;
            if device.peer.is_some() {
                return Err(self.err(
                    format!("{at}.device"),
                    format!(
                        "{} is served by {}: the rig cannot inject faults into it",
                        f.device,
                        peer_name(device)
                    ),
                ));
            }
            self.within(&format!("{at}.from"), f.from, raw)?;
            if f.from >= raw.end {
                return Err(self.err(
                    format!("{at}.from"),
                    format!(
                        "{} is at the scenario's end: the fault would never act",
                        f.from
                    ),
                ));
            }
            if let Some(to) = f.to {
                self.within(&format!("{at}.to"), to, raw)?;
                if to <= f.from {
                    return Err(self.err(
                        format!("{at}.to"),
                        format!("{to} is not after from ({})", f.from),
                    ));
                }
            }
            let only = |key: &str, kinds: &str| {
                self.err(format!("{at}.{key}"), format!("only for kind {kinds}"))
            };
            if f.code.is_some() && f.kind != RawFaultKind::Exception {
                return Err(only("code", "\"exception\""));
            }
            if f.delay_ms.is_some() && f.kind != RawFaultKind::Slow {
                return Err(only("delay_ms", "\"slow\""));
            }
            let fault = match f.kind {
                RawFaultKind::Silent => Fault::Silent,
                RawFaultKind::Exception => {
                    if !device.kind.is_modbus() {
                        return Err(self.err(
                            format!("{at}.kind"),
                            format!(
                                "{} is a room-mqtt device: it publishes over MQTT and has no Modbus exceptions",
                                device.name.as_str()
                            ),
                        ));
                    }
                    let code = f.code.unwrap_or(0x04);
                    if !EXCEPTION_CODES.contains(&code) {
                        return Err(self.err(
                            format!("{at}.code"),
                            format!(
                                "{code} is not a Modbus exception code (1, 2, 3, 4, 5, 6, 8, 10, 11)"
                            ),
                        ));
                    }
                    Fault::Exception(code)
                }
                RawFaultKind::Garbage => Fault::Garbage,
                RawFaultKind::AllOnes => Fault::AllOnes,
                RawFaultKind::Drop => Fault::Drop,
                RawFaultKind::Slow => {
                    let ms = f.delay_ms.ok_or_else(|| {
                        self.err(
                            format!("{at}.delay_ms"),
                            "kind \"slow\" needs delay_ms (real milliseconds)",
                        )
                    })?;
                    if !(1..=MAX_DELAY_MS).contains(&ms) {
                        return Err(self.err(
                            format!("{at}.delay_ms"),
                            format!("{ms} is not 1..={MAX_DELAY_MS}"),
                        ));
                    }
                    Fault::Slow(Duration::from_millis(ms))
                }
                RawFaultKind::Stuck => Fault::Stuck,
            };
            let scope = match (f.signal, f.channel) {
                (None, Some(_)) => {
                    return Err(self.err(format!("{at}.channel"), "goes with signal"));
                }
                (None, None) => FaultScope::Device,
                (Some(signal), channel) => {
                    if !fault.can_target_a_value() {
                        return Err(only("signal", "garbage, all-ones or stuck"));
                    }
                    let channel = channel.unwrap_or(0);
                    self.served(&at, device, signal, channel)?;
                    FaultScope::Value { signal, channel }
                }
            };
            let window = Window {
                from: f.from,
                to: f.to,
            };
            if let Some((_, _, w, j)) = seen
                .iter()
                .find(|(d, s, w, _)| *d == index && *s == scope && w.overlaps(&window))
            {
                return Err(self.err(
                    &at,
                    format!(
                        "overlaps faults[{j}] ({w}) on {} {}: one fault at a time on a device, or on a value",
                        device.name.as_str(),
                        match scope {
                            FaultScope::Device => "as a whole".to_string(),
                            FaultScope::Value { signal, channel } =>
                                format!("{signal} channel {channel}"),
                        }
                    ),
                ));
            }
            seen.push((index, scope, window, i));
            if let Some(d) = devices.get_mut(index) {
                d.faults.push(FaultWindow {
                    window,
                    fault,
                    scope,
                });
            }
        }
        Ok(())
    }
}

/// What serves a device that is not the rig's simulator, for error messages.
pub(super) fn peer_name(device: &Device) -> &'static str {
    match device.peer {
        Some(crate::scenario::Peer::Nut) => "NUT (dummy-ups and upsd)",
        Some(crate::scenario::Peer::Snmp { .. }) => "snmpsim",
        None => "the rig's simulators",
    }
}
