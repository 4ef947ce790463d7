//! Local detection: the node decides on its own, with no network, whether the battery room is
//! on fire. Four causes, each built from the shared `protocols` primitives, so the node and the
//! gateway's policy judge "too hot", "rising too fast" and "held long enough" the same way:
//!
//! - **temperature**: a healthy rack probe at or above the limit ([`Hysteresis`], cleared
//!   2 °C below), held [`TEMPERATURE_HOLD_MS`] ([`Debounce`]);
//! - **rate of rise**: a healthy rack probe rising faster than the limit over a minute
//!   ([`RateOfRise`], at least [`RATE_MIN_SPAN_MS`] of readings), held [`RATE_HOLD_MS`];
//! - **off-gas**: at or above the limit (cleared at 80 % of it), held [`OFF_GAS_HOLD_MS`];
//! - **smoke**: the smoke / fire-panel contact closed for [`SMOKE_HOLD_MS`].
//!
//! Faulty or absent probes take no part: their rate history is dropped.

use firebreak_protocols::builtin::sensor_node as map;
use firebreak_protocols::{Debounce, Direction, Hysteresis, RateOfRise};

use crate::image::PROBES;
use crate::tmp117::MilliCelsius;

/// A temperature over the limit must hold this long.
pub const TEMPERATURE_HOLD_MS: u64 = 3_000;
/// A rate over the limit must hold this long.
pub const RATE_HOLD_MS: u64 = 10_000;
/// Off-gas over the limit must hold this long.
pub const OFF_GAS_HOLD_MS: u64 = 5_000;
/// The smoke contact must stay closed this long (contact bounce).
pub const SMOKE_HOLD_MS: u64 = 1_000;
/// Every cause clears only after being absent this long.
pub const CLEAR_HOLD_MS: u64 = 10_000;
/// The rate-of-rise window.
pub const RATE_WINDOW_MS: u64 = 60_000;
/// No rate until the readings span this long.
pub const RATE_MIN_SPAN_MS: u64 = 20_000;
/// Points kept per probe for the rate.
pub const RATE_POINTS: usize = 16;
/// The temperature alarm clears this far (0.1 °C) below its limit.
const TEMPERATURE_BAND: f32 = 2.0;

/// The causes of an alarm, as bits of [`map::ALARM_STATE`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Causes(pub u16);

impl Causes {
    /// No cause.
    pub const NONE: Causes = Causes(0);
    /// A rack probe passed the absolute limit.
    pub const TEMPERATURE: Causes = Causes(1 << map::ALARM_CAUSE_TEMPERATURE);
    /// A rack probe rose too fast.
    pub const RATE_OF_RISE: Causes = Causes(1 << map::ALARM_CAUSE_RATE_OF_RISE);
    /// Off-gas passed its limit.
    pub const OFF_GAS: Causes = Causes(1 << map::ALARM_CAUSE_OFF_GAS);
    /// The smoke contact closed.
    pub const SMOKE: Causes = Causes(1 << map::ALARM_CAUSE_SMOKE);

    /// Whether any cause is present.
    pub const fn any(self) -> bool {
        self.0 != 0
    }

    /// Whether every bit of `other` is set.
    pub const fn contains(self, other: Causes) -> bool {
        self.0 & other.0 == other.0
    }

    fn set(&mut self, cause: Causes, on: bool) {
        if on {
            self.0 |= cause.0;
        }
    }
}

/// The detection limits: holding registers 201..=203.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Rack temperature, 0.1 °C.
    pub rack_temperature: u16,
    /// Rate of rise, 0.1 °C per minute.
    pub rate_of_rise: u16,
    /// Off-gas, ppm.
    pub off_gas: u16,
}

impl Default for Limits {
    fn default() -> Self {
        Limits::DEFAULT
    }
}

/// Why a limit was refused (exception 03 over Modbus).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitOutOfRange;

impl Limits {
    /// The documented defaults.
    pub const DEFAULT: Limits = Limits {
        rack_temperature: map::DEFAULT_LIMIT_RACK_TEMPERATURE,
        rate_of_rise: map::DEFAULT_LIMIT_RATE_OF_RISE,
        off_gas: map::DEFAULT_LIMIT_OFF_GAS,
    };

    /// Accepted rack temperature limits, 0.1 °C: 30.0 to 150.0 °C.
    pub const RACK_TEMPERATURE: core::ops::RangeInclusive<u16> = 300..=1500;
    /// Accepted rate limits, 0.1 °C/min: 0.2 to 20.0 °C/min.
    pub const RATE_OF_RISE: core::ops::RangeInclusive<u16> = 2..=200;
    /// Accepted off-gas limits, ppm.
    pub const OFF_GAS: core::ops::RangeInclusive<u16> = 5..=10_000;

    fn checked(value: u16, range: core::ops::RangeInclusive<u16>) -> Result<u16, LimitOutOfRange> {
        if range.contains(&value) {
            Ok(value)
        } else {
            Err(LimitOutOfRange)
        }
    }

    /// Sets the rack temperature limit.
    pub fn set_rack_temperature(&mut self, v: u16) -> Result<(), LimitOutOfRange> {
        self.rack_temperature = Self::checked(v, Self::RACK_TEMPERATURE)?;
        Ok(())
    }

    /// Sets the rate-of-rise limit.
    pub fn set_rate_of_rise(&mut self, v: u16) -> Result<(), LimitOutOfRange> {
        self.rate_of_rise = Self::checked(v, Self::RATE_OF_RISE)?;
        Ok(())
    }

    /// Sets the off-gas limit.
    pub fn set_off_gas(&mut self, v: u16) -> Result<(), LimitOutOfRange> {
        self.off_gas = Self::checked(v, Self::OFF_GAS)?;
        Ok(())
    }
}

/// One cycle's healthy readings, as detection sees them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Evidence {
    /// Healthy rack temperatures; `None` for absent or faulty probes.
    pub probes: [Option<MilliCelsius>; PROBES],
    /// Off-gas ppm, if the sensor is healthy.
    pub off_gas_ppm: Option<u16>,
    /// The smoke contact is closed.
    pub smoke: bool,
}

#[derive(Debug, Clone)]
struct Probe {
    over: Option<Hysteresis>,
    rate: RateOfRise<RATE_POINTS>,
    rising: Option<Hysteresis>,
}

/// The detector: its state is the hysteresis, debounce and rate history of every input.
#[derive(Debug, Clone)]
pub struct Detector {
    limits: Limits,
    probes: [Probe; PROBES],
    off_gas: Option<Hysteresis>,
    temperature_held: Debounce,
    rate_held: Debounce,
    off_gas_held: Debounce,
    smoke_held: Debounce,
}

/// A threshold above `trip`, clearing at `clear`; `None` (never trips) only if the bounds
/// were not finite or out of order, which validated [`Limits`] never give.
const fn above(trip: f32, clear: f32) -> Option<Hysteresis> {
    match Hysteresis::new(Direction::Above, trip, clear) {
        Ok(h) => Some(h),
        Err(_) => None,
    }
}

/// The thresholds for `limits`: temperature, rate of rise, off-gas.
const fn thresholds(
    limits: Limits,
) -> (Option<Hysteresis>, Option<Hysteresis>, Option<Hysteresis>) {
    let t = limits.rack_temperature as f32 / 10.0;
    let r = limits.rate_of_rise as f32 / 10.0;
    let g = limits.off_gas as f32;
    (
        above(t, t - TEMPERATURE_BAND),
        above(r, r / 2.0),
        above(g, g * 0.8),
    )
}

const fn probe(limits: Limits) -> Probe {
    let (over, rising, _) = thresholds(limits);
    Probe {
        over,
        rate: RateOfRise::new(RATE_WINDOW_MS, RATE_MIN_SPAN_MS),
        rising,
    }
}

fn feed(h: &mut Option<Hysteresis>, value: f32) -> bool {
    h.as_mut().is_some_and(|h| h.update(value))
}

fn reset(h: &mut Option<Hysteresis>) {
    if let Some(h) = h.as_mut() {
        h.reset();
    }
}

impl Detector {
    /// A detector with `limits` (`const`: the firmware builds it in a static).
    pub const fn new(limits: Limits) -> Self {
        let l = limits;
        Detector {
            limits,
            // One per rack probe (PROBES): a different count fails to compile.
            probes: [
                probe(l),
                probe(l),
                probe(l),
                probe(l),
                probe(l),
                probe(l),
                probe(l),
                probe(l),
            ],
            off_gas: thresholds(limits).2,
            temperature_held: Debounce::new(TEMPERATURE_HOLD_MS, CLEAR_HOLD_MS),
            rate_held: Debounce::new(RATE_HOLD_MS, CLEAR_HOLD_MS),
            off_gas_held: Debounce::new(OFF_GAS_HOLD_MS, CLEAR_HOLD_MS),
            smoke_held: Debounce::new(SMOKE_HOLD_MS, CLEAR_HOLD_MS),
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Changes the limits; thresholds restart from "not tripped", rate history is kept.
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
        let (over, rising, off_gas) = thresholds(limits);
        for p in &mut self.probes {
            p.over = over;
            p.rising = rising;
        }
        self.off_gas = off_gas;
    }

    /// Feeds one cycle; the causes present now (debounced).
    pub fn update(&mut self, now_ms: u64, evidence: &Evidence) -> Causes {
        let (mut hot, mut rising) = (false, false);
        for (p, t) in self.probes.iter_mut().zip(evidence.probes.iter()) {
            match t {
                Some(t) => {
                    let c = t.0 as f32 / 1000.0;
                    hot |= feed(&mut p.over, c);
                    p.rate.push(now_ms, c);
                    if let Some(rate) = p.rate.per_minute() {
                        rising |= feed(&mut p.rising, rate);
                    }
                }
                None => {
                    reset(&mut p.over);
                    reset(&mut p.rising);
                    p.rate.clear();
                }
            }
        }
        let gas = match evidence.off_gas_ppm {
            Some(ppm) => feed(&mut self.off_gas, f32::from(ppm)),
            None => {
                reset(&mut self.off_gas);
                false
            }
        };
        let mut causes = Causes::NONE;
        causes.set(
            Causes::TEMPERATURE,
            self.temperature_held.update(now_ms, hot),
        );
        causes.set(Causes::RATE_OF_RISE, self.rate_held.update(now_ms, rising));
        causes.set(Causes::OFF_GAS, self.off_gas_held.update(now_ms, gas));
        causes.set(
            Causes::SMOKE,
            self.smoke_held.update(now_ms, evidence.smoke),
        );
        causes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe0(c: f32) -> Evidence {
        let mut e = Evidence::default();
        e.probes[0] = Some(MilliCelsius((c * 1000.0) as i32));
        e
    }

    #[test]
    fn over_the_limit_must_hold_and_clears_below_the_band() {
        let mut d = Detector::new(Limits::default());
        assert_eq!(d.update(0, &probe0(61.0)), Causes::NONE);
        assert_eq!(d.update(2_999, &probe0(61.0)), Causes::NONE);
        assert!(d.update(3_000, &probe0(61.0)).contains(Causes::TEMPERATURE));
        // Inside the band it stays, and it clears only after CLEAR_HOLD_MS below it.
        assert!(d.update(4_000, &probe0(58.5)).contains(Causes::TEMPERATURE));
        assert!(d.update(5_000, &probe0(57.0)).contains(Causes::TEMPERATURE));
        assert!(
            !d.update(15_000, &probe0(57.0))
                .contains(Causes::TEMPERATURE)
        );
    }

    #[test]
    fn a_rack_rising_two_degrees_a_minute_is_a_rate_alarm_long_before_the_limit() {
        let mut d = Detector::new(Limits::default());
        let mut first = None;
        for s in 0..120u64 {
            let c = d.update(s * 1000, &probe0(25.0 + 2.0 * s as f32 / 60.0));
            assert!(!c.contains(Causes::TEMPERATURE));
            if c.contains(Causes::RATE_OF_RISE) && first.is_none() {
                first = Some(s);
            }
        }
        // 20 s of readings before a rate, then 10 s held.
        assert!(matches!(first, Some(30..=32)), "{first:?}");
    }

    #[test]
    fn a_steady_warm_rack_is_no_alarm() {
        let mut d = Detector::new(Limits::default());
        for s in 0..600u64 {
            let wobble = if s % 2 == 0 { 0.05 } else { -0.05 };
            assert_eq!(d.update(s * 1000, &probe0(45.0 + wobble)), Causes::NONE);
        }
    }

    #[test]
    fn off_gas_and_smoke() {
        let mut d = Detector::new(Limits::default());
        let gas = Evidence {
            off_gas_ppm: Some(80),
            ..Evidence::default()
        };
        assert_eq!(d.update(0, &gas), Causes::NONE);
        assert_eq!(d.update(5_000, &gas), Causes::OFF_GAS);
        let smoke = Evidence {
            smoke: true,
            ..Evidence::default()
        };
        d.update(6_000, &smoke);
        assert!(d.update(7_000, &smoke).contains(Causes::SMOKE));
    }

    #[test]
    fn a_faulty_probe_drops_out_of_detection() {
        let mut d = Detector::new(Limits::default());
        d.update(0, &probe0(70.0));
        d.update(2_000, &Evidence::default());
        assert_eq!(d.update(3_000, &probe0(70.0)), Causes::NONE);
    }

    #[test]
    fn limits_are_range_checked() {
        let mut l = Limits::default();
        assert_eq!(l.set_rack_temperature(299), Err(LimitOutOfRange));
        assert_eq!(l.set_rack_temperature(450), Ok(()));
        assert_eq!(l.set_rate_of_rise(0), Err(LimitOutOfRange));
        assert_eq!(l.set_off_gas(10_001), Err(LimitOutOfRange));
        let mut d = Detector::new(l);
        d.update(0, &probe0(46.0));
        assert!(d.update(3_000, &probe0(46.0)).contains(Causes::TEMPERATURE));
    }
}
