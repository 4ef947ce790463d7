//! Explanations: "why did it fire?" — the reasons behind a level, strongest first.

use firebreak_protocols::message::MAX_REASONS;
use firebreak_protocols::{Level, Reason, Signal};

use super::{Device, Engine, Zone};
use crate::policy::rules::{Rule, RuleKind};

impl Engine {
    /// The reasons behind `level` in zone `z`: the rules at that level that are firing (or,
    /// when lowering, still holding), strongest first, at most [`MAX_REASONS`].
    pub(super) fn zone_reasons(&self, z: usize, level: Level) -> Vec<Reason> {
        let mut out = Vec::new();
        let Some(zone) = self.zones.get(z) else {
            return out;
        };
        let rules = &self.policy.rules.rules;
        let mut order: Vec<usize> = (0..rules.len())
            .filter(|&r| {
                rules.get(r).and_then(|x| x.level) == Some(level)
                    && zone.instances.get(r).is_some_and(|i| i.holding)
            })
            .collect();
        // Firing before merely holding.
        order.sort_by_key(|&r| !zone.instances.get(r).is_some_and(|i| i.active));
        for r in order {
            self.rule_reasons(zone, r, &mut out);
        }
        out
    }

    pub(super) fn rule_reasons(&self, zone: &Zone, r: usize, out: &mut Vec<Reason>) {
        let Some(rule) = self.policy.rules.rules.get(r) else {
            return;
        };
        let push = |out: &mut Vec<Reason>, reason: Reason| {
            if out.len() < MAX_REASONS && !out.contains(&reason) {
                out.push(reason);
            }
        };
        let reason =
            |signal, device: Option<&Device>, channel, value: f32, threshold: f32| Reason {
                rule: rule.id.clone(),
                signal,
                device: device.map(|d| d.id.clone()),
                channel,
                value: if value.is_finite() { value } else { 0.0 },
                threshold: if threshold.is_finite() {
                    threshold
                } else {
                    0.0
                },
            };
        match &rule.kind {
            RuleKind::Threshold { .. }
            | RuleKind::Rate { .. }
            | RuleKind::Share { .. }
            | RuleKind::State { .. } => {
                // The value compared and the trip point; a state says 1 against 1.
                let trip = match &rule.kind {
                    RuleKind::Threshold { band, .. }
                    | RuleKind::Rate { band, .. }
                    | RuleKind::Share { band, .. } => Some(band.trip()),
                    _ => None,
                };
                for &(s, w) in zone.watches.get(r).into_iter().flatten() {
                    let Some(src) = self.sources.get(s) else {
                        continue;
                    };
                    let Some(watch) = src.watches.get(w) else {
                        continue;
                    };
                    if watch.fired || watch.lost.is_some() {
                        let (value, threshold) = trip.map_or((1.0, 1.0), |t| (watch.value, t));
                        push(
                            out,
                            reason(
                                Some(src.signal),
                                self.devices.get(src.device),
                                src.channel,
                                value,
                                threshold,
                            ),
                        );
                    }
                }
            }
            RuleKind::SensorFault => {
                // One reason per faulty reading: the value judged, and what it was judged
                // against (the reading before a jump, the rail it crossed).
                for &i in &self.faulted {
                    let Some(src) = self.sources.get(i) else {
                        continue;
                    };
                    let dev = self.devices.get(src.device);
                    if dev.and_then(|d| self.zones.get(d.zone)).map(|zn| &zn.id) != Some(&zone.id) {
                        continue;
                    }
                    if let Some((_, value, reference, _)) = self.fault_of(i) {
                        push(
                            out,
                            reason(Some(src.signal), dev, src.channel, value, reference),
                        );
                    }
                }
            }
            RuleKind::EvidenceLost { of, any_device } => {
                let lost: Vec<usize> = of
                    .iter()
                    .copied()
                    .filter(|&c| {
                        zone.instances
                            .get(c)
                            .is_some_and(|i| i.holding && !i.active && i.lost)
                    })
                    .collect();
                // The witnesses lost, then the devices silent since the alarm began, then the
                // evidence they had given.
                let witnesses = zone
                    .instances
                    .get(r)
                    .map_or(0, |i| i.active_w.independent());
                push(out, reason(None, None, 0, witnesses as f32, 1.0));
                if *any_device {
                    let since = of
                        .iter()
                        .filter_map(|&c| zone.instances.get(c))
                        .filter(|i| i.holding)
                        .map(|i| i.since_ms)
                        .min();
                    for &d in &zone.devices {
                        if let Some(dev) = self.devices.get(d)
                            && dev.link_lost()
                            && since.is_some_and(|s| dev.lost_since >= s)
                        {
                            push(out, reason(None, Some(dev), 0, 1.0, 1.0));
                        }
                    }
                }
                for c in lost {
                    self.rule_reasons(zone, c, out);
                }
            }
            RuleKind::CommLost { all } => {
                let lost: Vec<&Device> = zone
                    .devices
                    .iter()
                    .filter_map(|&d| self.devices.get(d))
                    .filter(|d| d.link_lost())
                    .collect();
                let need = if *all {
                    zone.devices
                        .iter()
                        .filter_map(|&d| self.devices.get(d))
                        .filter(|d| !d.out_all)
                        .count()
                } else {
                    1
                };
                push(
                    out,
                    reason(
                        None,
                        if lost.len() == 1 {
                            lost.first().copied()
                        } else {
                            None
                        },
                        0,
                        lost.len() as f32,
                        need as f32,
                    ),
                );
            }
            RuleKind::PowerBudget { .. } => {
                push(
                    out,
                    reason(
                        Some(Signal::UpsRuntimeRemaining),
                        None,
                        0,
                        zone.estimate_s.unwrap_or(0.0),
                        self.policy.power_threshold_s(),
                    ),
                );
            }
            RuleKind::Combine { of, need, .. } => {
                let firing: Vec<usize> = of
                    .iter()
                    .copied()
                    .filter(|&c| zone.instances.get(c).is_some_and(|i| i.holding))
                    .collect();
                push(
                    out,
                    reason(None, None, 0, firing.len() as f32, *need as f32),
                );
                for c in firing {
                    self.rule_reasons(zone, c, out);
                }
            }
        }
    }
}

/// The rule behind a reason, for explanations: its id and the level it raises.
pub fn describe(rule: &Rule) -> String {
    match rule.level {
        Some(l) => format!("{} (raises {l})", rule.id),
        None => format!("{} (building block)", rule.id),
    }
}
