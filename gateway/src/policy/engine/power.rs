//! Time to power loss: what each UPS says, and the estimate the `power-budget` rules use.

use firebreak_protocols::Signal;
use firebreak_protocols::series::RateOfRise;

use super::super::rules::RATE_POINTS;

/// The signals a UPS estimate reads.
pub(super) const UPS_SIGNALS: [Signal; 4] = [
    Signal::UpsOnBattery,
    Signal::UpsRuntimeRemaining,
    Signal::UpsInputVoltage,
    Signal::UpsLoad,
];

/// What the engine knows of one UPS.
#[derive(Debug, Clone, Default)]
pub(super) struct Ups {
    on_battery: Option<bool>,
    /// When it last went on battery.
    on_battery_since: Option<u64>,
    runtime: Option<(f32, u64)>,
    input_v: Option<f32>,
    load: Option<f32>,
    load_trend: Option<Box<RateOfRise<RATE_POINTS>>>,
    /// Its estimate was at or under the `power-budget` threshold at the last evaluation.
    pub(super) under: bool,
    /// It was under, then its estimate became unknown (the UPS went silent, its readings
    /// lost quality): holds a `power-budget` level, never raises one.
    pub(super) lost_under: bool,
}

/// One UPS's outlook.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Outlook {
    /// Known to be on the utility: not on battery, or on battery with the utility present
    /// (a self-test).
    Safe,
    /// On battery with the utility gone: seconds to power loss.
    Seconds(f32),
    /// Not known: the UPS is silent, or its readings have no good quality.
    Unknown,
}

impl Ups {
    /// Takes one reading of a UPS signal; `evidence` is false when its quality is not good or
    /// it is implausible (it then makes that part unknown).
    pub(super) fn take(&mut self, now_ms: u64, signal: Signal, value: f32, evidence: bool) {
        match signal {
            Signal::UpsOnBattery => {
                let on = evidence.then_some(value >= 0.5);
                if on == Some(true) && self.on_battery != Some(true) {
                    self.on_battery_since = Some(now_ms);
                }
                self.on_battery = on;
            }
            Signal::UpsRuntimeRemaining => self.runtime = evidence.then_some((value, now_ms)),
            Signal::UpsInputVoltage => self.input_v = evidence.then_some(value),
            Signal::UpsLoad => {
                self.load = evidence.then_some(value);
                let trend = self
                    .load_trend
                    .get_or_insert_with(|| Box::new(RateOfRise::new(120_000, 30_000)));
                if evidence {
                    trend.push(now_ms, value);
                } else {
                    trend.clear();
                }
            }
            _ => {}
        }
    }

    /// Whether it went on battery within the last `ms` (it recalculates its runtime then).
    pub(super) fn just_on_battery(&self, now_ms: u64, ms: u64) -> bool {
        self.on_battery == Some(true)
            && self
                .on_battery_since
                .is_some_and(|t| now_ms.saturating_sub(t) <= ms)
    }

    /// Seconds to power loss, or why there is no such number.
    ///
    /// The reported runtime is aged by the time since it was read, and corrected for a rising
    /// load: runtime scales with the inverse of load, so over the remaining `T` seconds with
    /// load `L` rising `r` %/min the mean load is `L + r·T/120`, and `T' = T·L / (L + r·T/120)`.
    pub(super) fn outlook(&self, comm_lost: bool, now_ms: u64, present_v: f32) -> Outlook {
        if comm_lost {
            return Outlook::Unknown;
        }
        match self.on_battery {
            None => return Outlook::Unknown,
            Some(false) => return Outlook::Safe,
            Some(true) => {}
        }
        if self.input_v.is_some_and(|v| v >= present_v) {
            return Outlook::Safe; // a self-test: the utility is there
        }
        let Some((runtime, at)) = self.runtime else {
            return Outlook::Unknown;
        };
        // Aged by the time on battery since it was read: readings are reported when they
        // change, so a runtime that held still on the utility is current, not old.
        let since = at.max(self.on_battery_since.unwrap_or(at));
        let t = (runtime - now_ms.saturating_sub(since) as f32 / 1000.0).max(0.0);
        let rise = self.load_trend.as_ref().and_then(|r| r.per_minute());
        Outlook::Seconds(match (self.load, rise) {
            (Some(l), Some(r)) if l > 1.0 && r > 0.0 => t * l / (l + r * t / 120.0),
            _ => t,
        })
    }

    /// Updates `under` and `lost_under` from the outlook against `threshold_s`.
    pub(super) fn judge(&mut self, outlook: Outlook, threshold_s: f32) {
        match outlook {
            Outlook::Seconds(e) => {
                self.under = e <= threshold_s;
                self.lost_under = false;
            }
            Outlook::Safe => {
                self.under = false;
                self.lost_under = false;
            }
            Outlook::Unknown => {
                self.lost_under |= self.under;
                self.under = false;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn back_on_utility_is_safe_and_clears_what_was_under() {
        let mut u = Ups::default();
        u.take(0, Signal::UpsOnBattery, 1.0, true);
        u.take(0, Signal::UpsInputVoltage, 0.0, true);
        u.take(0, Signal::UpsRuntimeRemaining, 200.0, true);
        let o = u.outlook(false, 10_000, 100.0);
        assert_eq!(o, Outlook::Seconds(190.0));
        u.judge(o, 360.0);
        assert!(u.under);
        // The UPS goes silent: unknown, and what was under holds.
        u.judge(u.outlook(true, 20_000, 100.0), 360.0);
        assert!(!u.under && u.lost_under);
        // Utility back: safe, nothing holds.
        u.take(30_000, Signal::UpsOnBattery, 0.0, true);
        u.take(30_000, Signal::UpsInputVoltage, 230.0, true);
        u.take(30_000, Signal::UpsRuntimeRemaining, 1800.0, true);
        let o = u.outlook(false, 30_000, 100.0);
        assert_eq!(o, Outlook::Safe);
        u.judge(o, 360.0);
        assert!(!u.under && !u.lost_under);
    }

    #[test]
    fn a_runtime_that_held_still_on_the_utility_is_current() {
        let mut u = Ups::default();
        u.take(0, Signal::UpsOnBattery, 0.0, true);
        u.take(0, Signal::UpsInputVoltage, 230.0, true);
        u.take(0, Signal::UpsRuntimeRemaining, 732.0, true);
        // Ten minutes later the utility goes: 732 s left, not 132.
        u.take(600_000, Signal::UpsOnBattery, 1.0, true);
        u.take(600_000, Signal::UpsInputVoltage, 0.0, true);
        assert_eq!(u.outlook(false, 600_300, 100.0), Outlook::Seconds(731.7));
    }

    #[test]
    fn a_self_test_is_safe_and_a_rising_load_shortens_the_runtime() {
        let mut u = Ups::default();
        u.take(0, Signal::UpsOnBattery, 1.0, true);
        u.take(0, Signal::UpsInputVoltage, 231.0, true);
        u.take(0, Signal::UpsRuntimeRemaining, 100.0, true);
        assert_eq!(u.outlook(false, 0, 100.0), Outlook::Safe);
        u.take(0, Signal::UpsInputVoltage, 0.0, true);
        u.take(0, Signal::UpsRuntimeRemaining, 600.0, true);
        for s in 0..=120u64 {
            u.take(s * 1000, Signal::UpsLoad, 50.0 + s as f32 / 6.0, true);
        }
        match u.outlook(false, 120_000, 100.0) {
            Outlook::Seconds(e) => assert!(e < 480.0, "{e}"),
            o => panic!("{o:?}"),
        }
    }
}
