//! The scenario clock: virtual scenario time that runs at a chosen multiple of real time, and
//! that a rig can pause, jump and step.
//!
//! Every simulator of a run shares one clock and reads it when it answers (a Modbus request,
//! an MQTT publication), so a whole site moves through the scenario together. Real time is
//! tokio's clock: under `#[tokio::test(start_paused = true)]` the scenario runs in virtual
//! time too, and a test steps it with `tokio::time::advance` or [`ScenarioClock::advance`].

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

use crate::time::ScenarioTime;

/// The largest accepted speed-up: a 30-minute incident in under 0.2 s.
pub const MAX_SCALE: f64 = 10_000.0;

#[derive(Debug)]
struct State {
    /// Real time at which the clock read `anchor`.
    anchor_real: Instant,
    /// Scenario time at `anchor_real`.
    anchor: ScenarioTime,
    /// Scenario seconds per real second.
    scale: f64,
    paused: bool,
}

impl State {
    fn now(&self, real: Instant) -> ScenarioTime {
        if self.paused {
            return self.anchor;
        }
        let elapsed = real.saturating_duration_since(self.anchor_real);
        self.anchor.plus(elapsed.mul_f64(self.scale))
    }
}

/// A shared, cloneable scenario clock.
#[derive(Debug, Clone)]
pub struct ScenarioClock {
    state: Arc<Mutex<State>>,
}

/// A time scale that is not a finite number in `(0, 10000]`.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
#[error("time scale {0} is not a number above 0 and at most 10000")]
pub struct ScaleError(pub f64);

/// Checks a time scale.
pub fn check_scale(scale: f64) -> Result<f64, ScaleError> {
    if scale.is_finite() && scale > 0.0 && scale <= MAX_SCALE {
        Ok(scale)
    } else {
        Err(ScaleError(scale))
    }
}

impl ScenarioClock {
    /// A clock reading `at` now and running `scale` times faster than real time.
    pub fn running(at: ScenarioTime, scale: f64) -> Result<ScenarioClock, ScaleError> {
        Ok(ScenarioClock {
            state: Arc::new(Mutex::new(State {
                anchor_real: Instant::now(),
                anchor: at,
                scale: check_scale(scale)?,
                paused: false,
            })),
        })
    }

    /// A paused clock reading `at`: it moves only by [`advance`](Self::advance),
    /// [`jump_to`](Self::jump_to) or after [`resume`](Self::resume).
    pub fn paused(at: ScenarioTime) -> ScenarioClock {
        ScenarioClock {
            state: Arc::new(Mutex::new(State {
                anchor_real: Instant::now(),
                anchor: at,
                scale: 1.0,
                paused: true,
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is two numbers and a flag, consistent after every statement.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The scenario time now.
    pub fn now(&self) -> ScenarioTime {
        self.lock().now(Instant::now())
    }

    /// Scenario seconds per real second.
    pub fn scale(&self) -> f64 {
        self.lock().scale
    }

    /// Whether the clock is paused.
    pub fn is_paused(&self) -> bool {
        self.lock().paused
    }

    fn reanchor(state: &mut State) {
        let real = Instant::now();
        state.anchor = state.now(real);
        state.anchor_real = real;
    }

    /// Changes the speed from now on; the scenario time does not jump.
    pub fn set_scale(&self, scale: f64) -> Result<(), ScaleError> {
        let scale = check_scale(scale)?;
        let mut s = self.lock();
        ScenarioClock::reanchor(&mut s);
        s.scale = scale;
        Ok(())
    }

    /// Stops the clock where it is.
    pub fn pause(&self) {
        let mut s = self.lock();
        ScenarioClock::reanchor(&mut s);
        s.paused = true;
    }

    /// Starts a paused clock again from where it stopped.
    pub fn resume(&self) {
        let mut s = self.lock();
        s.anchor_real = Instant::now();
        s.paused = false;
    }

    /// Sets the scenario time (forward or back); a running clock runs on from there.
    pub fn jump_to(&self, at: ScenarioTime) {
        let mut s = self.lock();
        s.anchor = at;
        s.anchor_real = Instant::now();
    }

    /// Moves the scenario time forward by `d` (scenario time), paused or not.
    pub fn advance(&self, d: Duration) {
        let mut s = self.lock();
        ScenarioClock::reanchor(&mut s);
        s.anchor = s.anchor.plus(d);
    }

    /// The real time until the clock reads `at` at the present speed: zero when it already
    /// has, `None` while paused.
    pub fn real_until(&self, at: ScenarioTime) -> Option<Duration> {
        let s = self.lock();
        if s.paused {
            return None;
        }
        let now = s.now(Instant::now());
        Some(
            at.since(now)
                .map(|d| d.div_f64(s.scale))
                .unwrap_or(Duration::ZERO),
        )
    }

    /// Waits until the clock reads `at` or later, checking again at least every `poll` of
    /// real time (the scale may change, or the clock be paused, while waiting).
    pub async fn sleep_until(&self, at: ScenarioTime, poll: Duration) {
        loop {
            if self.now() >= at {
                return;
            }
            let wait = self.real_until(at).unwrap_or(poll).min(poll);
            tokio::time::sleep(wait.max(Duration::from_millis(1))).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    #[tokio::test(start_paused = true)]
    async fn runs_scaled_in_virtual_time() {
        let clock = ScenarioClock::running(ScenarioTime::from_secs(-900), 20.0).unwrap();
        tokio::time::advance(Duration::from_secs(3)).await;
        assert_eq!(clock.now(), ScenarioTime::from_secs(-840));
        clock.set_scale(1.0).unwrap();
        tokio::time::advance(Duration::from_secs(3)).await;
        assert_eq!(clock.now(), ScenarioTime::from_secs(-837));
        clock.pause();
        tokio::time::advance(MIN).await;
        assert_eq!(clock.now(), ScenarioTime::from_secs(-837));
        clock.advance(MIN);
        assert_eq!(clock.now(), ScenarioTime::from_secs(-777));
        clock.resume();
        tokio::time::advance(Duration::from_secs(7)).await;
        assert_eq!(clock.now(), ScenarioTime::from_secs(-770));
        clock.jump_to(ScenarioTime::T0);
        assert_eq!(clock.now(), ScenarioTime::T0);
    }

    #[tokio::test(start_paused = true)]
    async fn sleeps_until_a_scenario_moment() {
        let clock = ScenarioClock::running(ScenarioTime::T0, 60.0).unwrap();
        let start = Instant::now();
        clock
            .sleep_until(ScenarioTime::from_secs(600), Duration::from_secs(1))
            .await;
        assert_eq!(start.elapsed(), Duration::from_secs(10));
        assert_eq!(
            clock.real_until(ScenarioTime::from_secs(1200)),
            Some(Duration::from_secs(10))
        );
        assert_eq!(clock.real_until(ScenarioTime::T0), Some(Duration::ZERO));
    }

    #[test]
    fn scales_are_checked() {
        assert_eq!(
            ScenarioClock::running(ScenarioTime::T0, 0.0).unwrap_err(),
            ScaleError(0.0)
        );
        assert!(ScenarioClock::running(ScenarioTime::T0, f64::NAN).is_err());
        assert_eq!(
            ScaleError(20_000.0).to_string(),
            "time scale 20000 is not a number above 0 and at most 10000"
        );
    }
}
