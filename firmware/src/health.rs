//! Sensor health: a probe that cannot be read, that reads something impossible, or whose value
//! has not moved by a single bit for too long is **faulty**. A faulty probe is reported (as
//! 0x8000 and a bit of the faults register) and is never evidence of a fire.
//!
//! A TMP117 resolves 7.8 m°C; a live probe in a ventilated room never repeats the exact same
//! result for minutes, so an unchanged value is a stuck sensor or a stuck bus.

use firebreak_protocols::{Debounce, SENSOR_NODE, Signal};

use crate::image::{DeciCelsius, ProbeState};
use crate::sensors::ProbeSample;
use crate::tmp117::MilliCelsius;

/// Why a probe is faulty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeFault {
    /// It did not answer on the bus.
    Bus,
    /// Its value has not changed for [`HealthLimits::stuck_after_ms`].
    Stuck,
    /// Outside the range the register map accepts, or a jump no rack can make.
    Impossible,
}

/// What counts as healthy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthLimits {
    /// The lowest believable reading, m°C.
    pub min: MilliCelsius,
    /// The highest believable reading, m°C.
    pub max: MilliCelsius,
    /// The largest believable change between two readings at most `step_window_ms` apart.
    pub max_step: MilliCelsius,
    /// See `max_step`.
    pub step_window_ms: u64,
    /// An unchanged value for this long is a stuck probe; 0 turns the check off.
    pub stuck_after_ms: u64,
}

/// The valid range the sensor-node profile gives `signal`, in m°C (`fallback` if it has none):
/// one definition for what the node calls impossible and what the gateway calls out of range.
pub(crate) const fn profile_range(
    signal: Signal,
    fallback: (MilliCelsius, MilliCelsius),
) -> (MilliCelsius, MilliCelsius) {
    let mut rest = SENSOR_NODE.registers;
    while let [d, tail @ ..] = rest {
        if d.signal as u8 == signal as u8 {
            return (
                MilliCelsius((d.valid.min * 1000.0) as i32),
                MilliCelsius((d.valid.max * 1000.0) as i32),
            );
        }
        rest = tail;
    }
    fallback
}

impl HealthLimits {
    /// Rack probes: the profile's valid range (−40..=200 °C); a jump of more than 20 °C
    /// within 5 s (a rack in air does not do that, a probe failing high does); stuck after
    /// 15 minutes without a single-bit change.
    pub const fn rack() -> HealthLimits {
        let (min, max) = profile_range(
            Signal::RackTemperature,
            (MilliCelsius(-40_000), MilliCelsius(200_000)),
        );
        HealthLimits {
            min,
            max,
            max_step: MilliCelsius(20_000),
            step_window_ms: 5_000,
            stuck_after_ms: 15 * 60_000,
        }
    }
}

/// How many slices the jump window is kept in: the lowest and highest reading of each fifth
/// of [`HealthLimits::step_window_ms`], so a rise made in many small steps is judged over the
/// whole window, in a few words of RAM a probe.
const SLICES: usize = 6;

/// The lowest and highest readings of one slice of the jump window.
#[derive(Debug, Clone, Copy)]
struct Slice {
    index: u64,
    lo: i32,
    hi: i32,
}

/// One probe's health.
#[derive(Debug, Clone)]
pub struct ProbeHealth {
    limits: HealthLimits,
    unchanged: Debounce,
    last: Option<(u64, MilliCelsius)>,
    fault: Option<ProbeFault>,
    /// The readings of about the last [`HealthLimits::step_window_ms`], by slice.
    recent: heapless::Deque<Slice, SLICES>,
    /// The reading a probe jumped away from: it stays impossible until it is back within
    /// [`HealthLimits::max_step`] of it, or an independent witness of fire excuses the rise.
    jumped_from: Option<i32>,
}

impl ProbeHealth {
    /// A probe not yet seen.
    pub const fn new(limits: HealthLimits) -> Self {
        ProbeHealth {
            limits,
            unchanged: Debounce::new(limits.stuck_after_ms, 0),
            last: None,
            fault: None,
            recent: heapless::Deque::new(),
            jumped_from: None,
        }
    }

    /// Adds a reading to the jump window and drops slices older than the window.
    fn remember(&mut self, now_ms: u64, t: i32) {
        let slice_ms = (self.limits.step_window_ms / (SLICES as u64 - 1)).max(1);
        let index = now_ms / slice_ms;
        match self.recent.back_mut() {
            Some(s) if s.index == index => {
                s.lo = s.lo.min(t);
                s.hi = s.hi.max(t);
            }
            _ => {
                if self.recent.is_full() {
                    self.recent.pop_front();
                }
                // A full deque was just popped: this cannot fail.
                let _ = self.recent.push_back(Slice {
                    index,
                    lo: t,
                    hi: t,
                });
            }
        }
        let oldest = index.saturating_sub(SLICES as u64 - 1);
        while self.recent.front().is_some_and(|s| s.index < oldest) {
            self.recent.pop_front();
        }
    }

    /// Whether `t` is a jump no rack makes: more than `max_step` away from a reading of the
    /// window; the reading it jumped from.
    fn jump(&self, t: i32) -> Option<i32> {
        let lo = self.recent.iter().map(|s| s.lo).min()?;
        let hi = self.recent.iter().map(|s| s.hi).max()?;
        let step = self.limits.max_step.0;
        if t - lo > step {
            Some(lo)
        } else if hi - t > step {
            Some(hi)
        } else {
            None
        }
    }

    /// The fault found at the last [`ProbeHealth::judge`], if any.
    pub fn fault(&self) -> Option<ProbeFault> {
        self.fault
    }

    /// Judges this cycle's sample: what the register image shows, and the temperature that
    /// detection may use (only a healthy reading).
    ///
    /// A reading more than `max_step` away from any reading of the last `step_window_ms`
    /// (a probe failing high in one step or in a fast climb, failing low, flapping) makes the
    /// probe impossible until it is back within `max_step` of where it jumped from. A **rise**
    /// is believed when `excused`: the node has an independent witness of fire (off-gas, the
    /// smoke contact), as a rack in thermal runaway does climb that fast.
    pub fn judge(
        &mut self,
        now_ms: u64,
        sample: ProbeSample,
        excused: bool,
    ) -> (ProbeState, Option<MilliCelsius>) {
        let t = match sample {
            ProbeSample::Absent => {
                *self = ProbeHealth::new(self.limits);
                return (ProbeState::Absent, None);
            }
            ProbeSample::BusError => {
                self.fault = Some(ProbeFault::Bus);
                return (ProbeState::Faulty, None);
            }
            ProbeSample::Reading(t) => t,
        };
        let previous = self.last.replace((now_ms, t));
        let same = previous.is_some_and(|(_, p)| p == t);
        let stuck = self.limits.stuck_after_ms > 0 && self.unchanged.update(now_ms, same);
        let jump = match self.jumped_from {
            Some(from) if (t.0 - from).abs() <= self.limits.max_step.0 => {
                // Back where it jumped from: a healthy probe again, judged from here on.
                self.jumped_from = None;
                self.recent.clear();
                false
            }
            Some(from) if excused && t.0 > from => {
                self.jumped_from = None;
                false
            }
            Some(_) => true,
            None => match self.jump(t.0) {
                Some(from) if !(excused && t.0 > from) => {
                    self.jumped_from = Some(from);
                    true
                }
                _ => false,
            },
        };
        self.remember(now_ms, t.0);
        self.fault = if t < self.limits.min || t > self.limits.max || jump {
            Some(ProbeFault::Impossible)
        } else if stuck {
            Some(ProbeFault::Stuck)
        } else {
            None
        };
        match (self.fault, DeciCelsius::from_celsius(t.0 as f32 / 1000.0)) {
            (None, Ok(d)) => (ProbeState::Reading(d), Some(t)),
            (None, Err(_)) => {
                self.fault = Some(ProbeFault::Impossible);
                (ProbeState::Faulty, None)
            }
            (Some(_), _) => (ProbeState::Faulty, None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(mc: i32) -> ProbeSample {
        ProbeSample::Reading(MilliCelsius(mc))
    }

    #[test]
    fn bus_errors_and_impossible_readings_are_faults_until_a_good_reading() {
        let mut h = ProbeHealth::new(HealthLimits::rack());
        assert_eq!(
            h.judge(0, reading(25_000), false),
            (
                ProbeState::Reading(DeciCelsius(250)),
                Some(MilliCelsius(25_000))
            )
        );
        assert_eq!(
            h.judge(1000, ProbeSample::BusError, false),
            (ProbeState::Faulty, None)
        );
        assert_eq!(h.fault(), Some(ProbeFault::Bus));
        assert_eq!(
            h.judge(2000, reading(25_010), false).1,
            Some(MilliCelsius(25_010))
        );
        assert_eq!(h.fault(), None);
        assert_eq!(
            h.judge(3000, reading(250_000), false),
            (ProbeState::Faulty, None)
        );
        assert_eq!(h.fault(), Some(ProbeFault::Impossible));
        assert_eq!(h.judge(4000, reading(-60_000), false).0, ProbeState::Faulty);
    }

    #[test]
    fn a_probe_failing_high_is_a_jump_not_a_fire() {
        let mut h = ProbeHealth::new(HealthLimits::rack());
        h.judge(0, reading(24_000), false);
        assert_eq!(h.judge(1000, reading(127_000), false).0, ProbeState::Faulty);
        assert_eq!(h.fault(), Some(ProbeFault::Impossible));
        // Staying there, it stays impossible: it never came back to where it jumped from.
        for s in 2..200u64 {
            assert_eq!(h.judge(s * 100, reading(127_000), false).1, None, "{s}");
        }
        // Back near 24 °C, it is a probe again.
        assert!(h.judge(20_000, reading(25_000), false).1.is_some());
        assert_eq!(h.fault(), None);
        // A real rise is gradual: 3 °C a second passes (15 °C within 5 s).
        let mut g = ProbeHealth::new(HealthLimits::rack());
        for i in 0..20 {
            let t = 25_000 + i * 3_000;
            assert!(
                g.judge(i as u64 * 1000, reading(t), false).1.is_some(),
                "{i}"
            );
        }
    }

    #[test]
    fn a_fast_climb_in_small_steps_is_a_jump_too() {
        // 24 -> 150 °C in 20 s, fed every 100 ms: 0.63 °C a step, 31.5 °C within 5 s.
        let mut h = ProbeHealth::new(HealthLimits::rack());
        let mut first_fault = None;
        for i in 0..=200u64 {
            let t = 24_000 + (126_000 * i / 200) as i32;
            let (_, healthy) = h.judge(i * 100, reading(t), false);
            if healthy.is_none() && first_fault.is_none() {
                first_fault = Some((i * 100, t));
            }
            if let Some((_, at)) = first_fault {
                assert!(
                    healthy.is_none(),
                    "healthy again at {t} after a jump from {at}"
                );
            }
        }
        let (ms, t) = first_fault.expect("never judged a jump");
        assert!(t < 50_000, "faulty only at {t} m°C ({ms} ms)");
        // Its value is never used: it never reaches the 60 °C limit as evidence.
    }

    #[test]
    fn a_rise_with_a_witness_of_fire_is_believed() {
        let mut h = ProbeHealth::new(HealthLimits::rack());
        h.judge(0, reading(40_000), false);
        assert_eq!(
            h.judge(1000, reading(95_000), true).1,
            Some(MilliCelsius(95_000))
        );
        // A jump judged before the witness came is believed once it is there.
        let mut g = ProbeHealth::new(HealthLimits::rack());
        g.judge(0, reading(40_000), false);
        assert_eq!(g.judge(1000, reading(95_000), false).1, None);
        assert_eq!(
            g.judge(1100, reading(96_000), true).1,
            Some(MilliCelsius(96_000))
        );
        // A fall is never excused (a probe failing low, a connector pulled).
        let mut f = ProbeHealth::new(HealthLimits::rack());
        f.judge(0, reading(40_000), true);
        assert_eq!(f.judge(100, reading(0), true).1, None);
    }

    #[test]
    fn a_flapping_probe_is_never_healthy_high() {
        let mut h = ProbeHealth::new(HealthLimits::rack());
        for s in 0..120u64 {
            let high = (s / 10) % 2 == 1;
            let t = if high { 130_000 } else { 24_000 };
            let (_, healthy) = h.judge(s * 1000, reading(t), false);
            if high {
                assert_eq!(healthy, None, "healthy at 130 °C at {s} s");
            }
        }
    }

    #[test]
    fn an_unchanged_value_is_stuck_after_the_limit() {
        let limits = HealthLimits {
            stuck_after_ms: 60_000,
            ..HealthLimits::rack()
        };
        let mut h = ProbeHealth::new(limits);
        for s in 0..=60u64 {
            assert!(h.judge(s * 1000, reading(22_000), false).1.is_some(), "{s}");
        }
        assert_eq!(
            h.judge(61_000, reading(22_000), false).0,
            ProbeState::Faulty
        );
        assert_eq!(h.fault(), Some(ProbeFault::Stuck));
        assert!(h.judge(62_000, reading(22_008), false).1.is_some());
        assert_eq!(h.fault(), None);
    }

    #[test]
    fn the_range_comes_from_the_profile() {
        let l = HealthLimits::rack();
        assert_eq!(
            (l.min, l.max),
            (MilliCelsius(-40_000), MilliCelsius(200_000))
        );
    }
}
