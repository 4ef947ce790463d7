//! Evaluating the rules of one zone: which fire, which hold, and on which witnesses.

use super::common_mode::SEQUENCE_MS;
use super::evidence::{ALL_CHANNELS, Physics, Witnesses};
use super::power::Outlook;
use super::{Device, Engine, Instance, Lost, Source};
use crate::policy::rules::{DEFAULT_INPUT_PRESENT_V, RuleKind};

impl Engine {
    pub(super) fn evaluate_zone(&mut self, z: usize, now_ms: u64) {
        let threshold = self.policy.power_threshold_s();
        let present_v = self
            .policy
            .rules
            .rules
            .iter()
            .find_map(|r| match r.kind {
                RuleKind::PowerBudget {
                    input_present_above,
                } => Some(input_present_above),
                _ => None,
            })
            .unwrap_or(DEFAULT_INPUT_PRESENT_V);
        let Engine {
            zones,
            devices,
            sources,
            policy,
            faulted,
            ..
        } = self;
        let Some(zone) = zones.get_mut(z) else {
            return;
        };
        let mut estimate: Option<f32> = None;
        for &d in &zone.devices {
            let Some(dev) = devices.get_mut(d) else {
                continue;
            };
            let comm_lost = dev.link_lost();
            if let Some(ups) = dev.ups.as_mut() {
                let o = ups.outlook(comm_lost, now_ms, present_v);
                ups.judge(o, threshold);
                if let Outlook::Seconds(e) = o {
                    estimate = Some(estimate.map_or(e, |m| m.min(e)));
                }
            }
        }
        zone.estimate_s = estimate;
        let mut scratch = Witnesses::default();
        for (r, rule) in policy.rules.rules.iter().enumerate() {
            let (before, rest) = zone.instances.split_at_mut(r);
            let Some(inst) = rest.first_mut() else {
                continue;
            };
            inst.active_w.clear();
            inst.held_w.clear();
            let mut lost = false;
            let (raw, hold_raw) = match &rule.kind {
                RuleKind::Threshold { corroborate, .. }
                | RuleKind::Rate { corroborate, .. }
                | RuleKind::State { corroborate, .. } => {
                    lost = gather(zone.watches.get(r), sources, devices, inst, None);
                    (
                        inst.active_w.groups() >= *corroborate,
                        inst.held_w.groups() >= *corroborate,
                    )
                }
                RuleKind::Share {
                    share, min_devices, ..
                } => {
                    scratch.clear();
                    lost = gather(
                        zone.watches.get(r),
                        sources,
                        devices,
                        inst,
                        Some(&mut scratch),
                    );
                    let total = scratch.groups();
                    let need = (*min_devices).max((share * total as f32).ceil() as usize);
                    (
                        total > 0 && inst.active_w.groups() >= need,
                        total > 0 && inst.held_w.groups() >= need,
                    )
                }
                RuleKind::CommLost { all } => {
                    for &d in &zone.devices {
                        if let Some(dev) = devices.get(d)
                            && dev.link_lost()
                        {
                            inst.active_w
                                .push(((dev.group, ALL_CHANNELS), Physics::Other));
                        }
                    }
                    inst.held_w.extend(&inst.active_w);
                    // Devices under maintenance are not watched: "all" is all the others.
                    let watched = || {
                        zone.devices
                            .iter()
                            .filter_map(|&d| devices.get(d))
                            .filter(|x| !x.out_all)
                    };
                    let raw = if *all {
                        watched().next().is_some() && watched().all(|x| x.comm_lost)
                    } else {
                        inst.active_w.independent() > 0
                    };
                    (raw, raw)
                }
                RuleKind::PowerBudget { .. } => {
                    let (mut raw, mut hold) = (false, false);
                    for &d in &zone.devices {
                        let Some(dev) = devices.get(d) else { continue };
                        let Some(ups) = dev.ups.as_ref() else {
                            continue;
                        };
                        let witness = ((dev.group, ALL_CHANNELS), Physics::Power);
                        if ups.under {
                            raw = true;
                            inst.active_w.push(witness);
                        }
                        if ups.under || ups.lost_under {
                            hold = true;
                            inst.held_w.push(witness);
                        }
                        lost |= ups.lost_under;
                    }
                    (raw, hold)
                }
                RuleKind::SensorFault => {
                    for &i in faulted.iter() {
                        let Some(src) = sources.get(i) else { continue };
                        let dev = devices.get(src.device);
                        let common = dev
                            .and_then(|d| d.common_mode.as_ref())
                            .is_some_and(|cm| cm.channels.iter().any(|c| c.0 == i));
                        if dev.map(|d| d.zone) == Some(z)
                            && !src.out
                            && (src.fault().is_some() || common)
                        {
                            inst.active_w.push((src.witness, src.physics));
                        }
                    }
                    inst.held_w.extend(&inst.active_w);
                    let raw = inst.active_w.independent() > 0;
                    (raw, raw)
                }
                RuleKind::EvidenceLost { of, any_device } => {
                    for &c in of {
                        let Some(ci) = before.get(c) else { continue };
                        if ci.holding && !ci.active && ci.lost {
                            inst.active_w.extend(&ci.held_w);
                        }
                        if *any_device && ci.holding {
                            // A device of the zone that went silent after the alarm began.
                            for &d in &zone.devices {
                                if let Some(dev) = devices.get(d)
                                    && dev.link_lost()
                                    && dev.lost_since >= ci.since_ms
                                {
                                    inst.active_w
                                        .push(((dev.group, ALL_CHANNELS), Physics::Other));
                                }
                            }
                        }
                    }
                    inst.held_w.extend(&inst.active_w);
                    let raw = inst.active_w.independent() > 0;
                    (raw, raw)
                }
                RuleKind::Combine {
                    of,
                    need,
                    corroborate,
                } => {
                    let (mut active, mut holding) = (0, 0);
                    for &c in of {
                        let Some(ci) = before.get(c) else { continue };
                        if ci.active {
                            active += 1;
                            inst.active_w.extend(&ci.active_w);
                        } else if ci.lost && *corroborate >= 2 {
                            // Evidence seen before its sensors went silent (burned) still
                            // corroborates fresh evidence from another witness.
                            active += 1;
                            inst.active_w.extend(&ci.held_w);
                        }
                        if ci.holding {
                            holding += 1;
                            inst.held_w.extend(&ci.held_w);
                            lost |= ci.lost;
                        }
                    }
                    (
                        active >= *need && inst.active_w.independent() >= *corroborate,
                        holding >= *need && inst.held_w.independent() >= *corroborate,
                    )
                }
            };
            let (gate_active, gate_holding) = match rule.when {
                Some(g) => before
                    .get(g)
                    .map_or((false, false), |i| (i.active, i.holding)),
                None => (true, true),
            };
            inst.active = inst.debounce.update(now_ms, raw && gate_active);
            if inst.active {
                inst.latched = true;
            } else if !(hold_raw && gate_holding) {
                inst.latched = false;
            }
            let was_holding = inst.holding;
            inst.holding = inst.active || inst.latched;
            if inst.holding && !was_holding {
                inst.since_ms = now_ms;
            }
            inst.lost = lost && inst.holding;
        }
    }
}

/// Collects the witnesses of one per-sensor rule's watches into `inst` (and every sensor's,
/// fired or not, into `all`); returns whether any that had fired went silent or faulty.
fn gather(
    watches: Option<&Vec<(usize, usize)>>,
    sources: &[Source],
    devices: &[Device],
    inst: &mut Instance,
    mut all: Option<&mut Witnesses>,
) -> bool {
    let mut lost = false;
    for &(s, w) in watches.into_iter().flatten() {
        let Some(src) = sources.get(s).filter(|src| !src.out) else {
            continue;
        };
        let Some(watch) = src.watches.get(w) else {
            continue;
        };
        let witness = (src.witness, physics_of(devices, src, watch.since_ms));
        if let Some(all) = all.as_deref_mut() {
            all.push(witness);
        }
        if watch.fired {
            inst.active_w.push(witness);
        }
        if watch.fired || watch.lost.is_some() {
            inst.held_w.push(witness);
        }
        lost |= matches!(watch.lost, Some(Lost::Silent | Lost::Faulty));
    }
    lost
}

/// The physics a source's evidence counts as: its own; or, while its device is in common
/// mode, one for the whole device — but for off-gas that began well apart from the common
/// mode (a fire goes in turn; a common fault moves everything at once).
fn physics_of(devices: &[Device], src: &Source, since_ms: u64) -> Physics {
    match devices.get(src.device).and_then(|d| d.common_mode.as_ref()) {
        Some(cm) if src.physics != Physics::Gas || since_ms.abs_diff(cm.since_ms) < SEQUENCE_MS => {
            Physics::Other
        }
        _ => src.physics,
    }
}
