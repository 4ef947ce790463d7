//! Plausibility before evidence: a reading that changes faster than its physics allows, sits
//! outside what its sensor can read, or flaps, is a *sensor fault*. It stops counting as
//! evidence until it is plausible again, and raises at most the `sensor-fault` rule's `watch`.
//!
//! The limits, per signal, and why (docs/policy.md, "Plausibility"):
//!
//! | signal | implausible | plausible again |
//! |---|---|---|
//! | rack, UPS battery temperature | a change of more than 10 °C + 10 °C/min within 60 s | back near the value before; a rise: an independent witness of fire in the zone; a fall, or a rise to 40 °C at most: held 30 s |
//! | room temperature | more than 6 °C + 6 °C/min within 60 s | the same, with 32 °C |
//! | UPS runtime remaining | a fall to under a quarter of a value read within 30 s, by more than 120 s, unless the UPS went on battery within the last 60 s (it recalculates then) | back above it, or the new value held for 10 s |
//! | every measurement | outside what the quantity can be (below 0 ppm, above 1000 °C …): a rail | back in range |
//! | rack and room temperatures | three implausible changes within 5 min: flapping | 5 min without one |
//! | smoke, suppression, node alarm | four changes of state within 60 s: flapping | 60 s without a change |
//!
//! Rack probes warm at a few °C per minute before a runaway (DOMAIN.md: "faster than ~1
//! °C/min is abnormal"); a probe gaining tens of degrees in seconds is a shorted or failing
//! probe — unless something independent sees the fire too, in which case the runaway has
//! begun and the reading is taken. Off-gas is not rate-limited: a venting cell releases its
//! gas at once. Voltages are not either: a utility is lost in one cycle.

use std::collections::VecDeque;

use firebreak_protocols::{Signal, SignalKind};

/// Why a reading is not plausible.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// It changed faster than its physics allows.
    Jump,
    /// It is outside what the quantity can be: a sensor pinned at a rail, or garbage.
    Rail,
    /// It keeps jumping back and forth (a loose contact, a failing detector).
    Flap,
    /// Its quality says so: the device reported a sensor fault or an out-of-range value.
    Reported,
    /// Several probes of its device moved together, with nothing before them: the device's
    /// kinds of evidence count as one witness (`common_mode`). Still evidence.
    CommonMode,
}

impl FaultKind {
    /// The word used in logs and `/status` (`sensor-fault: jump`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Jump => "jump",
            Self::Rail => "rail",
            Self::Flap => "flap",
            Self::Reported => "reported",
            Self::CommonMode => "common-mode",
        }
    }
}

/// A reading judged implausible.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Fault {
    pub(super) kind: FaultKind,
    pub(super) since_ms: u64,
    /// The implausible value.
    pub(super) value: f32,
    /// The value it was judged against (the reading before a jump, the rail crossed).
    pub(super) reference: f32,
    reference_ms: u64,
}

#[derive(Debug, Clone, Copy)]
enum Change {
    /// More than `step + rate_per_min × minutes`, either way.
    Absolute { step: f32, rate_per_min: f32 },
    /// A fall to below `ratio` of the reference, by more than `min`.
    Fall { ratio: f32, min: f32 },
}

impl Change {
    fn is_jump(self, reference: f32, value: f32, dt_ms: u64) -> bool {
        match self {
            Change::Absolute { step, rate_per_min } => {
                (value - reference).abs() > step + rate_per_min * dt_ms as f32 / 60_000.0
            }
            Change::Fall { ratio, min } => value < reference * ratio && reference - value > min,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct ChangeLimit {
    change: Change,
    window_ms: u64,
    /// A jump up held this long is accepted as real; `None`: only a return or an independent
    /// witness makes it plausible.
    confirm_ms: Option<u64>,
    /// The same for a jump down, or up to no more than `normal_max` (a UPS that
    /// recalculated; a probe back from a fault): it cannot raise anything.
    fall_confirm_ms: Option<u64>,
    /// The highest reading of normal operation: a jump that lands at or under it is no
    /// evidence of anything, and is taken after `fall_confirm_ms`.
    normal_max: f32,
    /// Jumps within [`MEASUREMENT_FLAP_MS`] that make a flap; 0 = never.
    flap_jumps: usize,
}

#[derive(Debug, Clone, Copy)]
struct Limits {
    range: Option<(f32, f32)>,
    change: Option<ChangeLimit>,
    /// State changes within [`STATE_FLAP_MS`] that make a flap; 0 = never.
    flap_edges: usize,
}

/// Window of the measurement flap count, and how long it lasts after the last jump.
const MEASUREMENT_FLAP_MS: u64 = 300_000;
/// Window of the state flap count, and how long it lasts after the last change.
const STATE_FLAP_MS: u64 = 60_000;
/// Most points kept for the change check (spaced over its window).
const POINTS: usize = 16;

fn limits(signal: Signal) -> Limits {
    use firebreak_protocols::Unit;
    let heat = |step: f32, normal_max: f32| {
        Some(ChangeLimit {
            change: Change::Absolute {
                step,
                rate_per_min: step,
            },
            window_ms: 60_000,
            confirm_ms: None,
            fall_confirm_ms: Some(30_000),
            normal_max,
            flap_jumps: 3,
        })
    };
    // Normal operation: batteries at 15-35 °C, inlets up to the ASHRAE A1 allowable 32 °C.
    let change = match signal {
        Signal::RackTemperature | Signal::UpsBatteryTemperature => heat(10.0, 40.0),
        Signal::RoomTemperature => heat(6.0, 32.0),
        Signal::UpsRuntimeRemaining => Some(ChangeLimit {
            change: Change::Fall {
                ratio: 0.25,
                min: 120.0,
            },
            window_ms: 30_000,
            confirm_ms: Some(10_000),
            fall_confirm_ms: Some(10_000),
            normal_max: f32::MAX,
            flap_jumps: 0,
        }),
        _ => None,
    };
    let range = match signal.unit() {
        Unit::Celsius => Some((-40.0, 1000.0)),
        Unit::Ppm => Some((0.0, 1_000_000.0)),
        Unit::PercentRh => Some((0.0, 100.0)),
        Unit::Percent => Some((0.0, 1000.0)),
        Unit::Seconds => Some((0.0, 30.0 * 86_400.0)),
        Unit::Volts => Some((0.0, 2000.0)),
        Unit::Amperes | Unit::Watts => Some((0.0, 1e9)),
        _ => None,
    };
    let flap_edges = match signal {
        Signal::SmokeAlarm | Signal::SuppressionReleased | Signal::NodeAlarm => 4,
        _ => 0,
    };
    Limits {
        // A device's uptime may be years (past the 30 days of a runtime): not a rail.
        range: if signal.kind() == SignalKind::Measurement && !signal.is_diagnostic() {
            range
        } else {
            None
        },
        change,
        flap_edges,
    }
}

#[derive(Debug, Clone, Default)]
struct History {
    /// Good, plausible readings, spaced at least window/POINTS apart, newest last.
    points: VecDeque<(u64, f32)>,
    /// The latest plausible reading.
    last: Option<(u64, f32)>,
    /// When recent jumps (or state changes) began, newest last.
    onsets: VecDeque<u64>,
    /// The latest state of a state signal.
    state: Option<bool>,
    /// The reading before a fall that was taken as real: coming back to it is a recovery
    /// (a probe reconnected), not a jump.
    before_fall: Option<f32>,
}

/// The plausibility judgement of one (device, signal, channel).
#[derive(Debug, Clone)]
pub(super) struct Plausibility {
    limits: Limits,
    history: Option<Box<History>>,
    fault: Option<Fault>,
}

impl Plausibility {
    pub(super) fn new(signal: Signal) -> Self {
        let limits = limits(signal);
        let history = (limits.change.is_some() || limits.flap_edges > 0)
            .then(|| Box::new(History::default()));
        Self {
            limits,
            history,
            fault: None,
        }
    }

    pub(super) fn fault(&self) -> Option<&Fault> {
        self.fault.as_ref()
    }

    /// Judges a good reading; `true` when it is plausible (evidence).
    pub(super) fn check(&mut self, now_ms: u64, value: f32) -> bool {
        if let Some((lo, hi)) = self.limits.range
            && !(lo..=hi).contains(&value)
        {
            let reference = if value < lo { lo } else { hi };
            self.raise(FaultKind::Rail, now_ms, value, reference, now_ms);
            return false;
        }
        if self.fault.is_some_and(|f| f.kind == FaultKind::Rail) {
            self.fault = None;
        }
        let Some(h) = self.history.as_deref_mut() else {
            return true;
        };
        if self.limits.flap_edges > 0 {
            return self.check_state(now_ms, value);
        }
        let Some(limit) = self.limits.change else {
            return true;
        };
        match self.fault {
            Some(f) if f.kind == FaultKind::Jump => {
                // Judged against the reading before the jump, as if at most one window had
                // passed: a probe stuck high does not become plausible with time.
                let dt = now_ms.saturating_sub(f.reference_ms).min(limit.window_ms);
                if !limit.change.is_jump(f.reference, value, dt) {
                    // Back near where it was: a glitch, over.
                    self.fault = None;
                    remember(h, limit, now_ms, value);
                    return true;
                }
                if h.before_fall
                    .is_some_and(|b| !limit.change.is_jump(b, value, 0))
                {
                    // Back where it was before an earlier fall: a recovery.
                    self.fault = None;
                    h.before_fall = None;
                    h.points.clear();
                    remember(h, limit, now_ms, value);
                    return true;
                }
                if let Some(f) = self.fault.as_mut() {
                    f.value = value;
                }
                false
            }
            Some(f) if f.kind == FaultKind::Flap => {
                // Flapping on: each jump from the reading before restarts the flap window.
                if h.last.is_some_and(|(t, v)| {
                    limit
                        .change
                        .is_jump(v, value, now_ms.saturating_sub(t).min(limit.window_ms))
                }) {
                    onset(h, now_ms);
                }
                remember(h, limit, now_ms, value);
                if let Some(f) = self.fault.as_mut() {
                    f.value = value;
                }
                false
            }
            _ => match find_jump(h, limit, now_ms, value) {
                Some(_)
                    if h.before_fall
                        .is_some_and(|b| !limit.change.is_jump(b, value, 0)) =>
                {
                    // Back where it was before the fall: the readings since do not count.
                    h.before_fall = None;
                    h.points.clear();
                    remember(h, limit, now_ms, value);
                    true
                }
                Some((t, reference)) => {
                    onset(h, now_ms);
                    let flapping = limit.flap_jumps > 0
                        && h.onsets
                            .iter()
                            .filter(|&&o| now_ms.saturating_sub(o) < MEASUREMENT_FLAP_MS)
                            .count()
                            >= limit.flap_jumps;
                    let kind = if flapping {
                        remember(h, limit, now_ms, value);
                        FaultKind::Flap
                    } else {
                        FaultKind::Jump
                    };
                    self.raise(kind, now_ms, value, reference, t);
                    false
                }
                None => {
                    remember(h, limit, now_ms, value);
                    true
                }
            },
        }
    }

    fn check_state(&mut self, now_ms: u64, value: f32) -> bool {
        let Some(h) = self.history.as_deref_mut() else {
            return true;
        };
        let on = value >= 0.5;
        if h.state.is_some_and(|s| s != on) {
            onset(h, now_ms);
        }
        h.state = Some(on);
        let edges = h
            .onsets
            .iter()
            .filter(|&&o| now_ms.saturating_sub(o) < STATE_FLAP_MS)
            .count();
        if edges >= self.limits.flap_edges {
            if self.fault.is_none() {
                self.raise(FaultKind::Flap, now_ms, value, 0.0, now_ms);
            } else if let Some(f) = self.fault.as_mut() {
                f.value = value;
            }
            return false;
        }
        self.fault.is_none()
    }

    /// Lets time pass: a flap that has calmed down, a jump held past its confirmation.
    /// Returns `true` when the fault cleared (the caller takes the latest reading again).
    pub(super) fn expire(&mut self, now_ms: u64) -> bool {
        let Some(f) = self.fault else {
            return false;
        };
        let last_onset = self
            .history
            .as_ref()
            .and_then(|h| h.onsets.back().copied())
            .unwrap_or(f.since_ms);
        let clear = match f.kind {
            FaultKind::Flap if self.limits.flap_edges > 0 => {
                now_ms.saturating_sub(last_onset) >= STATE_FLAP_MS
            }
            FaultKind::Flap => now_ms.saturating_sub(last_onset) >= MEASUREMENT_FLAP_MS,
            FaultKind::Jump => self
                .limits
                .change
                .and_then(|l| {
                    if f.value < f.reference || f.value <= l.normal_max {
                        l.fall_confirm_ms
                    } else {
                        l.confirm_ms
                    }
                })
                .is_some_and(|c| now_ms.saturating_sub(f.since_ms) >= c),
            FaultKind::Rail | FaultKind::Reported | FaultKind::CommonMode => false,
        };
        if clear {
            self.accept(now_ms, f.value);
        }
        clear
    }

    /// The rise over the recent readings, in units per minute, with the reading it rose
    /// from; `None` without 20 s of readings.
    pub(super) fn rise(&self, now_ms: u64) -> Option<(f32, f32)> {
        let h = self.history.as_deref()?;
        let window = self.limits.change?.window_ms;
        let &(t0, v0) = h
            .points
            .iter()
            .find(|(t, _)| now_ms.saturating_sub(*t) <= window)?;
        let (t1, v1) = h.last?;
        let dt = t1.saturating_sub(t0);
        if dt < 20_000 {
            return None;
        }
        Some(((v1 - v0) * 60_000.0 / dt as f32, v0))
    }

    /// Whether the reading jumped up (heat, not a fall).
    pub(super) fn jumped_up(&self) -> bool {
        self.fault
            .is_some_and(|f| f.kind == FaultKind::Jump && f.value > f.reference)
    }

    /// An independent witness corroborates a jump up: the reading is taken as real.
    pub(super) fn excuse(&mut self, now_ms: u64) -> bool {
        match self.fault {
            Some(f) if f.kind == FaultKind::Jump && f.value > f.reference => {
                self.accept(now_ms, f.value);
                true
            }
            _ => false,
        }
    }

    /// Takes `value` as plausible whatever came before (the device says why: a UPS that just
    /// went on battery recalculates its runtime).
    pub(super) fn restart(&mut self, now_ms: u64, value: f32) {
        if self
            .limits
            .range
            .is_some_and(|(lo, hi)| !(lo..=hi).contains(&value))
        {
            return;
        }
        self.fault = None;
        if let Some(h) = self.history.as_deref_mut() {
            h.points.clear();
            h.points.push_back((now_ms, value));
            h.last = Some((now_ms, value));
            h.before_fall = None;
        }
    }

    fn accept(&mut self, now_ms: u64, value: f32) {
        let before = self.fault.map(|f| f.reference);
        self.fault = None;
        if let Some(h) = self.history.as_deref_mut() {
            h.before_fall = before.filter(|&b| value < b);
            h.points.clear();
            h.points.push_back((now_ms, value));
            h.last = Some((now_ms, value));
        }
    }

    fn raise(&mut self, kind: FaultKind, now_ms: u64, value: f32, reference: f32, at: u64) {
        match self.fault.as_mut() {
            Some(f) if f.kind == kind => f.value = value,
            _ => {
                self.fault = Some(Fault {
                    kind,
                    since_ms: now_ms,
                    value,
                    reference,
                    reference_ms: at,
                });
            }
        }
    }
}

/// The earliest reading within the window that the value jumped from, if any.
fn find_jump(h: &History, limit: ChangeLimit, now_ms: u64, value: f32) -> Option<(u64, f32)> {
    // The latest reading counts however old it is: the table reports changes only, so an
    // unchanged value is not sent again; it is judged as if one window old at most.
    h.points
        .iter()
        .filter(|(t, _)| now_ms.saturating_sub(*t) <= limit.window_ms)
        .find(|&&(t, v)| limit.change.is_jump(v, value, now_ms.saturating_sub(t)))
        .or_else(|| {
            h.last.as_ref().filter(|&&(t, v)| {
                limit
                    .change
                    .is_jump(v, value, now_ms.saturating_sub(t).min(limit.window_ms))
            })
        })
        .copied()
}

fn remember(h: &mut History, limit: ChangeLimit, now_ms: u64, value: f32) {
    while h
        .points
        .front()
        .is_some_and(|(t, _)| now_ms.saturating_sub(*t) > limit.window_ms)
    {
        h.points.pop_front();
    }
    let spacing = limit.window_ms / POINTS as u64;
    if h.points
        .back()
        .is_none_or(|(t, _)| now_ms.saturating_sub(*t) >= spacing)
    {
        if h.points.len() >= POINTS {
            h.points.pop_front();
        }
        h.points.push_back((now_ms, value));
    }
    h.last = Some((now_ms, value));
}

fn onset(h: &mut History, now_ms: u64) {
    if h.onsets.len() >= 8 {
        h.onsets.pop_front();
    }
    h.onsets.push_back(now_ms);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(p: &mut Plausibility, points: &[(u64, f32)]) -> Vec<bool> {
        points.iter().map(|&(t, v)| p.check(t, v)).collect()
    }

    #[test]
    fn a_device_uptime_of_years_is_no_rail() {
        // Seconds are railed at 30 days for a UPS runtime; a device's uptime is not.
        let mut p = Plausibility::new(Signal::DeviceUptime);
        assert_eq!(
            feed(&mut p, &[(0, 40.0 * 86_400.0), (1000, 4.0e9), (2000, 0.0)]),
            [true, true, true]
        );
        assert!(p.fault().is_none());
        let mut p = Plausibility::new(Signal::UpsRuntimeRemaining);
        assert_eq!(feed(&mut p, &[(0, 40.0 * 86_400.0)]), [false]);
    }

    #[test]
    fn a_probe_warming_a_few_degrees_a_minute_is_plausible() {
        let mut p = Plausibility::new(Signal::RackTemperature);
        let pts: Vec<(u64, f32)> = (0..600)
            .map(|s| (s * 1000, 24.0 + s as f32 / 20.0))
            .collect();
        assert!(feed(&mut p, &pts).into_iter().all(|ok| ok));
        assert!(p.fault().is_none());
    }

    #[test]
    fn a_probe_gaining_tens_of_degrees_in_seconds_is_a_jump_until_it_returns() {
        let mut p = Plausibility::new(Signal::RackTemperature);
        assert!(p.check(0, 24.0));
        assert!(p.check(1000, 24.1));
        // 150 °C within 20 s, one poll a second.
        let mut oks = Vec::new();
        for s in 2..=20u64 {
            oks.push(p.check(s * 1000, 24.0 + (s - 1) as f32 * 6.6));
        }
        assert!(oks.iter().skip(1).all(|ok| !ok), "{oks:?}");
        assert_eq!(p.fault().map(|f| f.kind), Some(FaultKind::Jump));
        // It stays there: still a fault, whatever the time.
        assert!(!p.check(600_000, 150.0));
        assert!(!p.expire(3_600_000));
        // Back to the room's value: plausible again.
        assert!(p.check(3_700_000, 24.5));
        assert!(p.fault().is_none());
        // A fall that holds (a probe back from a fault, a rack cooled) is taken after 30 s.
        let mut p = Plausibility::new(Signal::RackTemperature);
        p.check(0, 24.0);
        for s in 1..=600u64 {
            p.check(s * 1000, 24.0 + s as f32 / 15.0);
        }
        assert!(p.fault().is_none());
        assert!(!p.check(601_000, 25.0));
        assert!(!p.expire(620_000));
        assert!(p.expire(631_000));
        assert!(p.check(632_000, 25.0));
        // Coming back to where it was before the fall is a recovery, not a jump.
        assert!(p.check(633_000, 63.0));
        assert!(p.fault().is_none());
    }

    #[test]
    fn an_independent_witness_excuses_a_jump() {
        let mut p = Plausibility::new(Signal::RackTemperature);
        p.check(0, 40.0);
        assert!(!p.check(5000, 90.0));
        assert!(p.excuse(6000));
        assert!(p.fault().is_none());
        assert!(p.check(7000, 95.0));
    }

    #[test]
    fn runtime_to_zero_for_one_poll_is_a_glitch_and_a_held_drop_is_accepted() {
        let mut p = Plausibility::new(Signal::UpsRuntimeRemaining);
        assert!(p.check(0, 1800.0));
        assert!(!p.check(1000, 0.0));
        assert!(p.check(2000, 1795.0));
        assert!(p.fault().is_none());
        // A drop that holds is real (a load step): accepted after the confirmation.
        assert!(!p.check(3000, 200.0));
        assert!(!p.expire(10_000));
        assert!(p.expire(13_000));
        assert!(p.check(24_000, 199.0));
        // Running down at one second a second is plausible all the way to 0.
        let mut p = Plausibility::new(Signal::UpsRuntimeRemaining);
        for s in 0..600u64 {
            assert!(p.check(s * 1000, 600.0 - s as f32), "at {s}");
        }
    }

    #[test]
    fn rails_and_flaps_are_faults_until_they_stop() {
        let mut p = Plausibility::new(Signal::RackTemperature);
        assert!(!p.check(0, 3276.7));
        assert_eq!(p.fault().map(|f| f.kind), Some(FaultKind::Rail));
        assert!(p.check(1000, 25.0));
        let mut p = Plausibility::new(Signal::SmokeAlarm);
        let oks = feed(
            &mut p,
            &[
                (0, 0.0),
                (5000, 1.0),
                (10_000, 0.0),
                (15_000, 1.0),
                (20_000, 0.0),
            ],
        );
        assert_eq!(oks, vec![true, true, true, true, false]);
        assert_eq!(p.fault().map(|f| f.kind), Some(FaultKind::Flap));
        assert!(!p.expire(60_000));
        assert!(p.expire(80_000));
        let mut p = Plausibility::new(Signal::RackTemperature);
        let mut t = 0;
        let mut last = true;
        for _ in 0..4 {
            p.check(t, 24.0);
            t += 10_000;
            p.check(t, 140.0);
            t += 10_000;
            last = p.check(t, 24.0);
            t += 10_000;
        }
        assert!(!last, "a probe flapping between 24 and 140 stays faulty");
        assert_eq!(p.fault().map(|f| f.kind), Some(FaultKind::Flap));
        assert!(p.expire(t + MEASUREMENT_FLAP_MS));
    }

    #[test]
    fn off_gas_and_voltages_may_change_at_once() {
        let mut p = Plausibility::new(Signal::OffGas);
        assert!(p.check(0, 0.5));
        assert!(p.check(1000, 400.0));
        let mut p = Plausibility::new(Signal::UpsInputVoltage);
        assert!(p.check(0, 230.0));
        assert!(p.check(20, 0.0));
    }
}
