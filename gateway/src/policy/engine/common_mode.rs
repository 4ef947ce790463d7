//! Common mode: several probes of one device moving together, with nothing before them.
//!
//! Two kinds of evidence from one node corroborate each other — off-gas and heat are
//! different physics (docs/policy.md, "Evidence"). But a fault of the node itself (its
//! supply, its reference voltage, a shared harness) moves every reading at once: probes on
//! different racks rise together and the gas reading with them. A fire goes in turn: off-gas
//! first (5 to 30 minutes before heat, DOMAIN.md), one rack before its neighbours. So when at
//! least three temperature channels of one device rise at 1 °C/min or more at rates within a
//! third of each other, and the device's off-gas was not already firing two minutes before,
//! the device's readings of different physics count as **one** witness (but for off-gas
//! evidence that begins two minutes or more after the probes moved) until its probes are
//! back near where they were and have stopped rising. Each reading still counts as evidence, and two devices still
//! corroborate each other. `sensor-fault` reports it (`common-mode`) for a technician.

use firebreak_protocols::Signal;

use super::Engine;
use super::plausibility::FaultKind;

/// The rise, in °C per minute, from which probes moving together are common mode.
const RISE_PER_MIN: f32 = 1.0;
/// Channels that must move together. Two probes of one burning rack rise at nearly the same
/// rate too (measured by the campaign: taking two as common mode misses real fires), so a
/// common fault that moves exactly two probes and the gas of one node is not told apart
/// from a fire on that node (docs/policy.md, "What the engine cannot tell apart").
const MIN_CHANNELS: usize = 3;
/// Rates within this fraction of the fastest count as "the same rate".
const SAME_RATE: f32 = 0.35;
/// Back within this many °C of where they were: the common mode is over.
const RETURN_C: f32 = 10.0;
/// Off-gas whose evidence began this far from the probes' common move, before or after, is
/// the fire's order, not a common fault.
pub(super) const SEQUENCE_MS: u64 = 120_000;

/// A device whose probes moved together.
#[derive(Debug, Clone)]
pub(super) struct CommonMode {
    pub(super) since_ms: u64,
    /// The channels that moved together, with where each was before.
    pub(super) channels: Vec<(usize, f32)>,
}

impl Engine {
    /// Finds devices whose probes move together, and clears those that are over.
    pub(super) fn review_common_mode(&mut self, now_ms: u64) {
        for d in 0..self.devices.len() {
            let Some(dev) = self.devices.get(d) else {
                continue;
            };
            if dev.heat_sources.len() < 2 {
                continue;
            }
            match &dev.common_mode {
                Some(cm) => {
                    // Over once the probes have stopped rising and are back near where they
                    // were: a probe left high by the fault keeps the device suspect.
                    let back = cm.channels.iter().all(|&(s, before)| {
                        self.sources.get(s).is_some_and(|src| {
                            src.last.is_some_and(|v| v - before <= RETURN_C)
                                && src
                                    .check
                                    .rise(now_ms)
                                    .is_none_or(|(rate, _)| rate < RISE_PER_MIN)
                        })
                    });
                    if back && let Some(dev) = self.devices.get_mut(d) {
                        dev.common_mode = None;
                    }
                }
                None => {
                    let rising: Vec<(usize, f32, f32)> = dev
                        .heat_sources
                        .iter()
                        .filter_map(|&s| {
                            let src = self.sources.get(s)?;
                            let (rate, before) = src.check.rise(now_ms)?;
                            (rate >= RISE_PER_MIN).then_some((s, rate, before))
                        })
                        .collect();
                    let fastest = rising.iter().map(|r| r.1).fold(0.0f32, f32::max);
                    let together: Vec<(usize, f32)> = rising
                        .iter()
                        .filter(|r| r.1 >= fastest * (1.0 - SAME_RATE))
                        .map(|r| (r.0, r.2))
                        .collect();
                    if together.len() >= MIN_CHANNELS && !self.gas_came_first(d, now_ms) {
                        if let Some(dev) = self.devices.get_mut(d) {
                            dev.common_mode = Some(CommonMode {
                                since_ms: now_ms,
                                channels: together.clone(),
                            });
                        }
                        for (s, _) in together {
                            self.note_fault(s, None);
                        }
                    }
                }
            }
        }
    }

    /// Whether the device's off-gas evidence began well before now.
    fn gas_came_first(&self, d: usize, now_ms: u64) -> bool {
        let Some(zone) = self.devices.get(d).and_then(|dev| self.zones.get(dev.zone)) else {
            return false;
        };
        zone.sources
            .iter()
            .filter_map(|&s| self.sources.get(s))
            .any(|o| {
                o.device == d
                    && o.signal == Signal::OffGas
                    && o.watches
                        .iter()
                        .any(|w| w.fired && w.since_ms.saturating_add(SEQUENCE_MS) <= now_ms)
            })
    }

    /// The common-mode fault of a source, if its device is in common mode and the source is
    /// one of the channels that moved: (kind, value, before, since).
    pub(super) fn common_fault(&self, src: usize) -> Option<(FaultKind, f32, f32, u64)> {
        let s = self.sources.get(src)?;
        let cm = self.devices.get(s.device)?.common_mode.as_ref()?;
        let before = cm.channels.iter().find(|(c, _)| *c == src)?.1;
        Some((
            FaultKind::CommonMode,
            s.last.unwrap_or(f32::NAN),
            before,
            cm.since_ms,
        ))
    }
}
