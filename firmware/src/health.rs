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

/// One probe's health.
#[derive(Debug, Clone)]
pub struct ProbeHealth {
    limits: HealthLimits,
    unchanged: Debounce,
    last: Option<(u64, MilliCelsius)>,
    fault: Option<ProbeFault>,
}

impl ProbeHealth {
    /// A probe not yet seen.
    pub const fn new(limits: HealthLimits) -> Self {
        ProbeHealth {
            limits,
            unchanged: Debounce::new(limits.stuck_after_ms, 0),
            last: None,
            fault: None,
        }
    }

    /// The fault found at the last [`ProbeHealth::judge`], if any.
    pub fn fault(&self) -> Option<ProbeFault> {
        self.fault
    }

    /// Judges this cycle's sample: what the register image shows, and the temperature that
    /// detection may use (only a healthy reading).
    pub fn judge(
        &mut self,
        now_ms: u64,
        sample: ProbeSample,
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
        let jump = previous.is_some_and(|(at, p)| {
            now_ms.saturating_sub(at) <= self.limits.step_window_ms
                && (t.0 - p.0).abs() > self.limits.max_step.0
        });
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
            h.judge(0, reading(25_000)),
            (
                ProbeState::Reading(DeciCelsius(250)),
                Some(MilliCelsius(25_000))
            )
        );
        assert_eq!(
            h.judge(1000, ProbeSample::BusError),
            (ProbeState::Faulty, None)
        );
        assert_eq!(h.fault(), Some(ProbeFault::Bus));
        assert_eq!(h.judge(2000, reading(25_010)).1, Some(MilliCelsius(25_010)));
        assert_eq!(h.fault(), None);
        assert_eq!(h.judge(3000, reading(250_000)), (ProbeState::Faulty, None));
        assert_eq!(h.fault(), Some(ProbeFault::Impossible));
        assert_eq!(h.judge(4000, reading(-60_000)).0, ProbeState::Faulty);
    }

    #[test]
    fn a_probe_failing_high_is_a_jump_not_a_fire() {
        let mut h = ProbeHealth::new(HealthLimits::rack());
        h.judge(0, reading(24_000));
        assert_eq!(h.judge(1000, reading(127_000)).0, ProbeState::Faulty);
        assert_eq!(h.fault(), Some(ProbeFault::Impossible));
        // Staying there, it is no longer a jump, but a real rise is gradual: 10 °C steps pass.
        let mut g = ProbeHealth::new(HealthLimits::rack());
        for (i, t) in [25_000, 35_000, 45_000, 55_000, 65_000].iter().enumerate() {
            assert!(g.judge(i as u64 * 1000, reading(*t)).1.is_some());
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
            assert!(h.judge(s * 1000, reading(22_000)).1.is_some(), "{s}");
        }
        assert_eq!(h.judge(61_000, reading(22_000)).0, ProbeState::Faulty);
        assert_eq!(h.fault(), Some(ProbeFault::Stuck));
        assert!(h.judge(62_000, reading(22_008)).1.is_some());
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
