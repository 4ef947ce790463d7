//! Reboots of a device, seen from its `device-uptime`.
//!
//! A device that reports how long it has been up (the sensor node's input registers 102-103)
//! tells the gateway when it restarted: its uptime falls behind the time that passed between
//! two readings. That covers an uptime that goes down from one poll to the next and a device
//! that comes back from a silence with an uptime shorter than the silence. A node that
//! rebooted mid-incident has lost its latched local alarm and its rate-of-rise history, so a
//! technician must know.
//!
//! [`UptimeWatch`] judges one device's readings, on the gateway's monotonic clock (the
//! samples' `timestamp_ms`, when the poll started). It is pure: the signal table feeds it and
//! records what it finds.
//!
//! What is *not* a reboot:
//! - the first reading after the gateway starts (nothing to compare it with);
//! - an uptime that lags by no more than [`SLACK_MS`] plus 1 % of the time between the two
//!   readings (whole seconds at both ends, when in the poll the register was read, a device
//!   clock that runs slow);
//! - an uptime too *long* to have started since the previous reading: the device did not
//!   boot in between, the value is garbage (judged inconsistent, not a reboot);
//! - a counter that wrapped at 2^16 or 2^32 seconds and kept counting;
//! - anything before the uptime has been seen to advance with the clock: a register stuck at
//!   one value (a simulator's constant, a device that does not implement it) would otherwise
//!   look like a reboot after every silence, and a garbage reading cannot be the "before" of
//!   a reboot. After a reboot, the next consistent reading confirms the clock again; so a
//!   device that reboots again within one poll of coming back, or in a boot loop shorter
//!   than the slack, is not counted every time.

/// Lag the readings of a running device may show: 1 s for whole seconds at both ends, 1 s for
/// when in its poll the register was read (a request retried after a timeout).
pub const SLACK_MS: f64 = 2000.0;

/// Share of the time between two readings a device clock may lose (1 %: a cheap crystal
/// loses far less; a device counting in coarse ticks may lose more between two polls).
pub const DRIFT: f64 = 0.01;

/// What a reading says.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Verdict {
    /// The first reading: nothing to compare with.
    First,
    /// The device kept running: its uptime followed the clock.
    Running,
    /// The device restarted since the previous reading.
    Rebooted {
        /// Its uptime at the previous reading, in seconds.
        before_s: f64,
        /// Time between the two readings, in ms.
        gap_ms: u64,
        /// When it booted, on the gateway's monotonic clock (ms), as far as its uptime says.
        boot_ms: u64,
    },
    /// The reading does not follow the previous one and cannot be a reboot either (garbage,
    /// a clock that jumped); the clock is confirmed again by the next consistent readings.
    Inconsistent,
    /// Not an uptime (negative, NaN, infinite), or older than the previous reading: ignored.
    Ignored,
}

/// One device's uptime readings.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct UptimeWatch {
    /// The previous reading: (monotonic ms, uptime in seconds).
    last: Option<(u64, f64)>,
    /// The previous reading followed the clock from the one before, and the uptime has been
    /// seen to advance: it may be the "before" of a reboot.
    confirmed: bool,
}

impl UptimeWatch {
    /// Judges a reading of `uptime_s` taken at `at_ms` (monotonic).
    pub fn observe(&mut self, at_ms: u64, uptime_s: f32) -> Verdict {
        self.observe_scaled(at_ms, uptime_s, 1.0)
    }

    /// [`observe`](Self::observe) for a device whose clock runs `scale` times faster than
    /// the gateway's: a replay at `--time-scale` (the HIL rig's simulated and fed devices
    /// count their uptime in scenario time). The slack scales with it.
    pub fn observe_scaled(&mut self, at_ms: u64, uptime_s: f32, scale: f64) -> Verdict {
        let scale = if scale.is_finite() && scale > 0.0 {
            scale
        } else {
            1.0
        };
        if !uptime_s.is_finite() || uptime_s < 0.0 {
            return Verdict::Ignored;
        }
        let u = f64::from(uptime_s);
        let Some((t0, u0)) = self.last else {
            self.last = Some((at_ms, u));
            self.confirmed = false;
            return Verdict::First;
        };
        if at_ms < t0 {
            return Verdict::Ignored;
        }
        let gap_ms = at_ms - t0;
        let elapsed_ms = gap_ms as f64 * scale;
        // f32 carries whole seconds exactly up to 2^24 s (194 days); past that, its rounding
        // (2 s, 4 s, …) is part of the slack.
        let rounding_ms = (u0 + u) * f64::from(f32::EPSILON) * 1000.0;
        let slack_ms = SLACK_MS * scale + DRIFT * elapsed_ms + rounding_ms;
        let expected_s = u0 + elapsed_ms / 1000.0;
        let lag_ms = (expected_s - u) * 1000.0;
        let wrapped = [65_536.0_f64, 4_294_967_296.0].iter().any(|&m| {
            expected_s + slack_ms / 1000.0 >= m && ((expected_s - m - u) * 1000.0).abs() <= slack_ms
        });
        let consistent = lag_ms.abs() <= slack_ms || wrapped;
        let booted_since = u * 1000.0 <= elapsed_ms + slack_ms;
        self.last = Some((at_ms, u));
        if self.confirmed && !consistent && lag_ms > slack_ms && booted_since {
            self.confirmed = false;
            // `u` is at most the gap plus the slack here: the subtraction cannot go far below 0.
            let boot_ms = at_ms.saturating_sub((u * 1000.0) as u64);
            return Verdict::Rebooted {
                before_s: u0,
                gap_ms,
                boot_ms,
            };
        }
        self.confirmed = consistent && (self.confirmed || u > u0);
        if consistent {
            Verdict::Running
        } else {
            Verdict::Inconsistent
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A watch that has seen a device up for `uptime_s` at `at_ms`, polled every second.
    fn running(at_ms: u64, uptime_s: f32) -> UptimeWatch {
        let mut w = UptimeWatch::default();
        assert_eq!(w.observe(at_ms - 2000, uptime_s - 2.0), Verdict::First);
        assert_eq!(w.observe(at_ms - 1000, uptime_s - 1.0), Verdict::Running);
        assert_eq!(w.observe(at_ms, uptime_s), Verdict::Running);
        w
    }

    fn is_reboot(v: Verdict) -> bool {
        matches!(v, Verdict::Rebooted { .. })
    }

    #[test]
    fn a_device_in_scenario_time_is_judged_on_the_scaled_clock() {
        // At x60 a node fed scenario time counts 60 s of uptime per real second.
        let mut w = UptimeWatch::default();
        assert_eq!(w.observe_scaled(10_000, 600.0, 60.0), Verdict::First);
        assert_eq!(w.observe_scaled(10_250, 615.0, 60.0), Verdict::Running);
        assert_eq!(w.observe_scaled(10_500, 630.0, 60.0), Verdict::Running);
        // Unscaled, the same readings run ahead of the clock: never a running device.
        let mut plain = UptimeWatch::default();
        plain.observe(10_000, 600.0);
        assert_eq!(plain.observe(10_250, 615.0), Verdict::Inconsistent);
        // A watchdog reboot: 4 s of real time down, back up 240 s of scenario time later.
        assert!(is_reboot(w.observe_scaled(14_500, 30.0, 60.0)));
    }

    #[test]
    fn the_first_reading_is_not_a_reboot() {
        let mut w = UptimeWatch::default();
        assert_eq!(w.observe(1_000_000, 3.0), Verdict::First);
        // Even a first reading that says the device just booted; and one that then goes down
        // before the clock was ever confirmed (a garbage first reading) is not counted.
        let mut w = UptimeWatch::default();
        assert_eq!(w.observe(1_000_000, 90_000.0), Verdict::First);
        assert_eq!(w.observe(1_001_000, 2.0), Verdict::Inconsistent);
        assert_eq!(w.observe(1_002_000, 3.0), Verdict::Running);
        assert_eq!(w.observe(1_003_000, 4.0), Verdict::Running);
        // Now confirmed: a reboot counts.
        assert!(is_reboot(w.observe(1_004_000, 0.0)));
    }

    #[test]
    fn an_uptime_that_goes_down_is_a_reboot() {
        let mut w = running(10_000_000, 86_400.0);
        let v = w.observe(10_001_000, 1.0);
        assert_eq!(
            v,
            Verdict::Rebooted {
                before_s: 86_400.0,
                gap_ms: 1000,
                boot_ms: 10_000_000,
            }
        );
        // Counted once: the readings after it follow the clock again.
        assert_eq!(w.observe(10_002_000, 2.0), Verdict::Running);
        assert_eq!(w.observe(10_003_000, 3.0), Verdict::Running);
        // And a second reboot, once the clock is confirmed, counts again.
        assert!(is_reboot(w.observe(10_004_000, 0.0)));
    }

    #[test]
    fn a_device_back_from_a_silence_with_a_short_uptime_rebooted() {
        // Up 50 s, silent for 60 s, back up for 20 s: it restarted during the silence, even
        // though 20 s is not below the last reading (that is the brown-out case).
        let mut w = running(5_000_000, 50.0);
        let v = w.observe(5_060_000, 20.0);
        assert!(
            matches!(
                v,
                Verdict::Rebooted {
                    gap_ms: 60_000,
                    boot_ms: 5_040_000,
                    ..
                }
            ),
            "{v:?}"
        );
        // Back from a network cut instead: up 50 + 60 s, give or take a second.
        let mut w = running(5_000_000, 50.0);
        assert_eq!(w.observe(5_060_000, 109.0), Verdict::Running);
        // An hour's silence, the device clock 0.5 % slow: not a reboot.
        let mut w = running(5_000_000, 50.0);
        assert_eq!(
            w.observe(8_600_000, 50.0 + 3600.0 * 0.995),
            Verdict::Running
        );
    }

    #[test]
    fn rounding_and_poll_jitter_are_not_reboots() {
        let mut w = running(1_000_000, 100.0);
        // Polled every 100 ms: the whole-second uptime stands still for ten polls.
        for i in 1..=10u64 {
            assert_eq!(w.observe(1_000_000 + i * 100, 100.0), Verdict::Running);
        }
        // A register read late in one poll, early in the next: 1 s less than expected.
        assert_eq!(w.observe(1_002_000, 101.0), Verdict::Running);
        assert_eq!(w.observe(1_003_000, 101.0), Verdict::Running);
        // The same reading twice (a poll at the same instant).
        assert_eq!(w.observe(1_003_000, 101.0), Verdict::Running);
        // A year up, where f32 rounds to 2 s: no reboot either.
        let mut w = running(50_000_000, 31_536_000.0);
        for i in 1..=5u64 {
            let v = w.observe(50_000_000 + i * 1000, 31_536_000.0 + i as f32);
            assert_eq!(v, Verdict::Running, "{i}");
        }
    }

    #[test]
    fn a_stuck_uptime_is_never_a_reboot() {
        // A register that always reads 0 (a simulator's constant): after a silence it looks
        // like a device back with an uptime shorter than the silence, but it never advanced.
        let mut w = UptimeWatch::default();
        for i in 0..5u64 {
            w.observe(1_000_000 + i * 1000, 0.0);
        }
        let v = w.observe(1_100_000, 0.0);
        assert!(!is_reboot(v), "{v:?}");
        // A frozen non-zero value, the same.
        let mut w = UptimeWatch::default();
        for i in 0..5u64 {
            w.observe(1_000_000 + i * 1000, 5000.0);
        }
        assert!(!is_reboot(w.observe(1_100_000, 5000.0)));
    }

    #[test]
    fn wraps_are_not_reboots() {
        // A u16 counter of seconds: 65535 → 0 one second later.
        let mut w = running(2_000_000, 65_535.0);
        assert_eq!(w.observe(2_001_000, 0.0), Verdict::Running);
        assert_eq!(w.observe(2_002_000, 1.0), Verdict::Running);
        // A u32 counter at its end.
        let mut w = running(2_000_000, 4_294_967_040.0);
        assert_eq!(w.observe(2_300_000, 44.0), Verdict::Running);
    }

    #[test]
    fn garbage_never_panics_and_is_not_a_reboot() {
        let mut w = running(1_000_000, 1000.0);
        for (i, v) in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, -1.0, f32::MIN]
            .into_iter()
            .enumerate()
        {
            assert_eq!(w.observe(1_001_000 + i as u64, v), Verdict::Ignored, "{v}");
        }
        assert_eq!(w.observe(1_002_000, 1002.0), Verdict::Running);
        // Huge, then back to the real value: inconsistent both ways, and the garbage reading
        // was never confirmed, so coming back from it is no reboot.
        let mut w = running(1_000_000, 1000.0);
        assert_eq!(w.observe(1_001_000, 3.0e9), Verdict::Inconsistent);
        assert_eq!(w.observe(1_002_000, 1002.0), Verdict::Inconsistent);
        assert_eq!(w.observe(1_003_000, 1003.0), Verdict::Running);
        // Half the uptime one second later: too long to have booted since — not a reboot.
        let mut w = running(1_000_000, 1000.0);
        assert_eq!(w.observe(1_001_000, 500.0), Verdict::Inconsistent);
        // f32::MAX, a reading from the past, a clock at its end.
        let mut w = running(1_000_000, 1000.0);
        assert_eq!(w.observe(1_001_000, f32::MAX), Verdict::Inconsistent);
        assert_eq!(w.observe(999_000, 5.0), Verdict::Ignored);
        let _ = w.observe(u64::MAX, 0.0);
        let _ = w.observe(u64::MAX, f32::MAX);
        let mut w = UptimeWatch::default();
        let _ = w.observe(0, f32::MAX);
        let _ = w.observe(0, 0.0);
        let _ = w.observe(u64::MAX, f32::MIN_POSITIVE);
    }
}
