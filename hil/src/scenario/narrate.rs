//! A checked scenario told in time order: what happens when (for people watching a replay)
//! and the moments a rig reports progress at.

use firebreak_protocols::{DeviceId, Signal, SignalKind};

use super::{FaultScope, RawEventKind, RebootReason, Scenario};
use crate::time::ScenarioTime;
use crate::timeline::Segment;

impl Scenario {
    /// What happens when, for people watching a replay: signal changes, faults, events,
    /// the power loss and the end; in time order.
    pub fn happenings(&self) -> Vec<(ScenarioTime, String)> {
        let mut out: Vec<(ScenarioTime, String)> = Vec::new();
        let value = |signal: Signal, v: f32| match signal.kind() {
            SignalKind::State => (if v == 0.0 { "off" } else { "on" }).to_string(),
            _ => format!("{v} {}", signal.unit()),
        };
        for d in &self.devices {
            for s in &d.signals {
                let what = if s.channel == 0 {
                    format!("{} {}", d.name.as_str(), s.signal)
                } else {
                    format!("{} {}[{}]", d.name.as_str(), s.signal, s.channel)
                };
                for seg in s.timeline.segments() {
                    match *seg {
                        Segment::Step { at, value: v } => out.push((
                            s.origin.plus(at),
                            format!("{what} = {}", value(s.signal, v)),
                        )),
                        Segment::Ramp {
                            from,
                            to,
                            start,
                            end,
                        } => {
                            out.push((
                                s.origin.plus(from),
                                format!(
                                    "{what} ramps {} -> {} until {}",
                                    value(s.signal, start),
                                    value(s.signal, end),
                                    s.origin.plus(to)
                                ),
                            ));
                            out.push((
                                s.origin.plus(to),
                                format!("{what} reaches {}", value(s.signal, end)),
                            ));
                        }
                    }
                }
            }
            for f in &d.faults {
                let on = match f.scope {
                    FaultScope::Device => String::new(),
                    FaultScope::Value { signal, channel } => format!(" on {signal}[{channel}]"),
                };
                out.push((
                    f.window.from,
                    format!("{}: fault {}{on} starts", d.name.as_str(), f.fault),
                ));
                if let Some(to) = f.window.to {
                    out.push((
                        to,
                        format!("{}: fault {}{on} ends", d.name.as_str(), f.fault),
                    ));
                }
            }
        }
        for e in &self.events {
            let text = match e.kind {
                RawEventKind::NetworkCut => {
                    let names: Vec<&str> = e.devices.iter().map(DeviceId::as_str).collect();
                    format!("network-cut: {} stop answering", names.join(", "))
                }
                RawEventKind::NetworkRestore => "network-restore: devices answer again".into(),
                RawEventKind::NodeReboot => {
                    let names: Vec<&str> = e.devices.iter().map(DeviceId::as_str).collect();
                    format!(
                        "node-reboot ({}): {} reboot",
                        e.reason.unwrap_or(RebootReason::Watchdog),
                        names.join(", ")
                    )
                }
                kind @ (RawEventKind::MaintenanceStart | RawEventKind::MaintenanceEnd) => {
                    let what = e
                        .maintenance
                        .as_ref()
                        .map(|m| match m.duration {
                            Some(d) => format!(
                                "{} for {}",
                                m.subject(),
                                d.to_string().trim_start_matches("T+")
                            ),
                            None => m.subject(),
                        })
                        .unwrap_or_default();
                    format!("{kind}: {what} (a technician, with firebreak maintenance)")
                }
                kind if kind.names_a_gateway() => {
                    let ids: Vec<&str> = e
                        .gateways
                        .iter()
                        .filter_map(|&g| self.gateways.get(g).map(|g| g.id.as_str()))
                        .collect();
                    let by = if kind.is_simulated() {
                        "the simulators"
                    } else {
                        "the rig"
                    };
                    format!("{kind} of {} (carried out by {by})", ids.join(", "))
                }
                kind => format!("{kind} (carried out by the rig, not the simulators)"),
            };
            out.push((e.at, text));
        }
        if let Some(p) = self.power_loss_at {
            out.push((p, "power loss: the first servers lose power".into()));
        }
        out.push((self.end, "end of the scenario".into()));
        out.sort_by_key(|(t, _)| *t);
        out
    }

    /// Every moment something changes: signal changes, faults starting and ending, events
    /// and power loss; sorted, without repeats. A rig reports progress at these.
    pub fn milestones(&self) -> Vec<ScenarioTime> {
        let mut points: Vec<ScenarioTime> = vec![self.start, self.end];
        points.extend(self.power_loss_at);
        for d in &self.devices {
            for s in &d.signals {
                points.extend(s.change_points());
            }
            for f in &d.faults {
                points.push(f.window.from);
                points.extend(f.window.to);
            }
        }
        points.extend(self.events.iter().map(|e| e.at));
        points.sort();
        points.dedup();
        points
    }
}
