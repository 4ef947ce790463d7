//! Time-series primitives shared by the firmware's local detection and the gateway's policy
//! engine, so both judge "rising too fast" or "held long enough" the same way.
//!
//! Every primitive takes time as an argument (`now_ms`, milliseconds on any monotonic or epoch
//! clock) and never reads a clock: the same inputs always give the same outputs, and a
//! 30-minute incident replays in microseconds. Nothing allocates.
//!
//! - [`RateOfRise`]: the slope of a value over a sliding window, in units per minute;
//! - [`Debounce`]: a condition that must hold for some time before it counts, and be absent
//!   for some time before it stops counting;
//! - [`Hysteresis`]: a threshold that trips at one value and clears at another.

use heapless::Deque;

/// Milliseconds in a minute.
const MINUTE_MS: f64 = 60_000.0;

/// The rate of change of a value over a sliding time window, by least squares.
///
/// At most `N` points are kept: a new point closer than `window / (N - 1)` to the one before
/// the newest replaces the newest, so the newest point is always the latest reading and the
/// older ones are spread over the window whatever the sample rate.
/// A rate is given only once the points span at least `min_span_ms`, so one early pair of
/// readings cannot produce a wild slope. Points with a non-finite value, or older than the
/// newest point, are refused (the caller decides what a faulty reading means).
#[derive(Debug, Clone)]
pub struct RateOfRise<const N: usize> {
    window_ms: u64,
    min_span_ms: u64,
    points: Deque<(u64, f32), N>,
}

impl<const N: usize> RateOfRise<N> {
    /// A window of `window_ms`; a rate is reported once the points span `min_span_ms`
    /// (clamped to the window).
    ///
    /// `N` must be at least 2; smaller `N` keeps one point and never reports a rate.
    pub const fn new(window_ms: u64, min_span_ms: u64) -> Self {
        let min_span_ms = if min_span_ms > window_ms {
            window_ms
        } else {
            min_span_ms
        };
        Self {
            window_ms,
            min_span_ms,
            points: Deque::new(),
        }
    }

    /// The window length.
    pub const fn window_ms(&self) -> u64 {
        self.window_ms
    }

    /// Forgets every point (after a sensor fault, for example).
    pub fn clear(&mut self) {
        self.points.clear();
    }

    /// How many points are held.
    pub fn len(&self) -> usize {
        self.points.len()
    }

    /// Whether no point is held.
    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// Adds a reading; false when it was refused (not finite, or older than the newest).
    pub fn push(&mut self, now_ms: u64, value: f32) -> bool {
        if !value.is_finite() {
            return false;
        }
        if let Some(&(last, _)) = self.points.back()
            && now_ms < last
        {
            return false;
        }
        let horizon = now_ms.saturating_sub(self.window_ms);
        while self.points.front().is_some_and(|&(t, _)| t < horizon) {
            self.points.pop_front();
        }
        let spacing = if N > 1 {
            self.window_ms / (N as u64 - 1)
        } else {
            u64::MAX
        };
        let len = self.points.len();
        let crowded = len >= 2
            && self
                .points
                .iter()
                .nth(len - 2)
                .is_some_and(|&(t, _)| now_ms.saturating_sub(t) < spacing);
        if crowded || (N < 2 && len == 1) {
            self.points.pop_back();
        } else if self.points.is_full() {
            self.points.pop_front();
        }
        // Room was made above, so this cannot fail.
        self.points.push_back((now_ms, value)).is_ok()
    }

    /// The span of time the held points cover.
    pub fn span_ms(&self) -> u64 {
        match (self.points.front(), self.points.back()) {
            (Some(&(a, _)), Some(&(b, _))) => b - a,
            _ => 0,
        }
    }

    /// The slope in units per minute, or `None` until the points span `min_span_ms`.
    pub fn per_minute(&self) -> Option<f32> {
        let span = self.span_ms();
        if self.points.len() < 2 || span == 0 || span < self.min_span_ms {
            return None;
        }
        let t0 = self.points.front().map_or(0, |&(t, _)| t);
        let n = self.points.len() as f64;
        let (mut st, mut sv) = (0.0f64, 0.0f64);
        for &(t, v) in &self.points {
            st += (t - t0) as f64;
            sv += f64::from(v);
        }
        let (mt, mv) = (st / n, sv / n);
        let (mut num, mut den) = (0.0f64, 0.0f64);
        for &(t, v) in &self.points {
            let dt = (t - t0) as f64 - mt;
            num += dt * (f64::from(v) - mv);
            den += dt * dt;
        }
        if den <= 0.0 {
            return None;
        }
        Some((num / den * MINUTE_MS) as f32)
    }

    /// The newest value held.
    pub fn latest(&self) -> Option<f32> {
        self.points.back().map(|&(_, v)| v)
    }
}

/// A condition that counts only once it has held for `on_ms`, and stops counting only once it
/// has been absent for `off_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Debounce {
    on_ms: u64,
    off_ms: u64,
    /// When the raw condition last changed to the value it has now.
    since_ms: Option<u64>,
    raw: bool,
    state: bool,
}

impl Debounce {
    /// Needs `on_ms` of the condition to turn on and `off_ms` of its absence to turn off.
    pub const fn new(on_ms: u64, off_ms: u64) -> Self {
        Self {
            on_ms,
            off_ms,
            since_ms: None,
            raw: false,
            state: false,
        }
    }

    /// Feeds the condition as seen at `now_ms`; returns the debounced state.
    pub fn update(&mut self, now_ms: u64, condition: bool) -> bool {
        if self.since_ms.is_none() || condition != self.raw {
            self.raw = condition;
            self.since_ms = Some(now_ms);
        }
        let held = now_ms.saturating_sub(self.since_ms.unwrap_or(now_ms));
        if condition && !self.state && held >= self.on_ms {
            self.state = true;
        } else if !condition && self.state && held >= self.off_ms {
            self.state = false;
        }
        self.state
    }

    /// The debounced state.
    pub const fn state(&self) -> bool {
        self.state
    }

    /// Since when the raw condition has had its present value, if it was ever fed.
    pub const fn since_ms(&self) -> Option<u64> {
        self.since_ms
    }

    /// Back to off, as if never fed.
    pub fn reset(&mut self) {
        *self = Self::new(self.on_ms, self.off_ms);
    }
}

/// Which side of a threshold is the alarming one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "lowercase"))]
pub enum Direction {
    /// Alarming at or above the threshold (temperature, off-gas).
    Above,
    /// Alarming at or below the threshold (runtime remaining, voltage).
    Below,
}

/// A threshold that trips at `trip` and clears only once the value is back past `clear`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hysteresis {
    direction: Direction,
    trip: f32,
    clear: f32,
    active: bool,
}

/// Why a [`Hysteresis`] cannot be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HysteresisError {
    /// A bound is NaN or infinite.
    NotFinite,
    /// The clear point is on the alarming side of the trip point.
    ClearPastTrip,
}

impl core::fmt::Display for HysteresisError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Self::NotFinite => "threshold is not a finite number",
            Self::ClearPastTrip => "the clear point must be on the safe side of the trip point",
        })
    }
}

#[cfg(feature = "std")]
impl std::error::Error for HysteresisError {}

impl Hysteresis {
    /// Trips at `trip`, clears at `clear`, which must be on the safe side of `trip` (or equal).
    ///
    /// `const`, so the firmware can build its detector in a static rather than on its stack.
    pub const fn new(direction: Direction, trip: f32, clear: f32) -> Result<Self, HysteresisError> {
        if !trip.is_finite() || !clear.is_finite() {
            return Err(HysteresisError::NotFinite);
        }
        let ok = match direction {
            Direction::Above => clear <= trip,
            Direction::Below => clear >= trip,
        };
        if !ok {
            return Err(HysteresisError::ClearPastTrip);
        }
        Ok(Self {
            direction,
            trip,
            clear,
            active: false,
        })
    }

    /// Feeds a value; returns whether the threshold is tripped. A non-finite value changes
    /// nothing.
    pub fn update(&mut self, value: f32) -> bool {
        if !value.is_finite() {
            return self.active;
        }
        self.active = match (self.direction, self.active) {
            (Direction::Above, false) => value >= self.trip,
            (Direction::Above, true) => value > self.clear,
            (Direction::Below, false) => value <= self.trip,
            (Direction::Below, true) => value < self.clear,
        };
        self.active
    }

    /// Whether it is tripped.
    pub const fn active(&self) -> bool {
        self.active
    }

    /// Which side of the trip point alarms.
    pub const fn direction(&self) -> Direction {
        self.direction
    }

    /// The trip point.
    pub const fn trip(&self) -> f32 {
        self.trip
    }

    /// The clear point.
    pub const fn clear(&self) -> f32 {
        self.clear
    }

    /// Whether `value` is on the alarming side of the trip point.
    pub fn beyond_trip(&self, value: f32) -> bool {
        match self.direction {
            Direction::Above => value >= self.trip,
            Direction::Below => value <= self.trip,
        }
    }

    /// Back to not tripped.
    pub fn reset(&mut self) {
        self.active = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rate_of_a_steady_ramp_is_exact() {
        let mut r = RateOfRise::<16>::new(60_000, 30_000);
        // 25 °C rising 2 °C/min, sampled every second for two minutes.
        for s in 0..=120u64 {
            assert!(r.push(s * 1000, 25.0 + 2.0 * s as f32 / 60.0));
        }
        let rate = r.per_minute().unwrap();
        assert!((rate - 2.0).abs() < 1e-3, "{rate}");
        assert!(r.len() <= 16);
        // 16 points about 4 s apart, less one sample interval: most of the window.
        assert!(
            r.span_ms() <= 60_000 && r.span_ms() >= 40_000,
            "{}",
            r.span_ms()
        );
    }

    #[test]
    fn no_rate_until_the_points_span_enough_time() {
        let mut r = RateOfRise::<16>::new(60_000, 30_000);
        r.push(0, 20.0);
        r.push(1000, 40.0); // a jump, but over one second only
        assert_eq!(r.per_minute(), None);
        r.push(30_000, 40.0);
        assert!(r.per_minute().is_some());
    }

    #[test]
    fn refuses_nan_and_time_going_back() {
        let mut r = RateOfRise::<8>::new(10_000, 0);
        assert!(r.push(5000, 1.0));
        assert!(!r.push(4000, 2.0));
        assert!(!r.push(6000, f32::NAN));
        assert!(!r.push(6000, f32::INFINITY));
        assert_eq!(r.len(), 1);
        assert_eq!(r.latest(), Some(1.0));
    }

    #[test]
    fn old_points_leave_the_window() {
        let mut r = RateOfRise::<8>::new(10_000, 5_000);
        r.push(0, 100.0);
        r.push(5_000, 100.0);
        // A long gap: the old points no longer count.
        r.push(100_000, 20.0);
        assert_eq!(r.len(), 1);
        assert_eq!(r.per_minute(), None);
    }

    #[test]
    fn falling_values_give_a_negative_rate() {
        let mut r = RateOfRise::<8>::new(60_000, 0);
        r.push(0, 50.0);
        r.push(60_000, 45.0);
        assert!((r.per_minute().unwrap() + 5.0).abs() < 1e-4);
    }

    #[test]
    fn debounce_needs_the_condition_held() {
        let mut d = Debounce::new(10_000, 5_000);
        assert!(!d.update(0, true));
        assert!(!d.update(9_999, true));
        assert!(d.update(10_000, true));
        // A blip of absence does not clear it.
        assert!(d.update(11_000, false));
        assert!(d.update(12_000, true));
        assert!(d.update(13_000, false));
        assert!(d.update(17_999, false));
        assert!(!d.update(18_000, false));
        // Interrupted conditions restart the count.
        assert!(!d.update(20_000, true));
        assert!(!d.update(25_000, false));
        assert!(!d.update(26_000, true));
        assert!(!d.update(35_000, true));
        assert!(d.update(36_000, true));
    }

    #[test]
    fn zero_debounce_follows_the_condition() {
        let mut d = Debounce::new(0, 0);
        assert!(d.update(0, true));
        assert!(!d.update(1, false));
        assert!(d.update(2, true));
    }

    #[test]
    fn hysteresis_trips_and_clears_at_different_points() {
        let mut h = Hysteresis::new(Direction::Above, 60.0, 55.0).unwrap();
        assert!(!h.update(59.9));
        assert!(h.update(60.0));
        assert!(h.update(56.0));
        assert!(h.update(f32::NAN));
        assert!(!h.update(55.0));
        let mut low = Hysteresis::new(Direction::Below, 300.0, 360.0).unwrap();
        assert!(low.update(299.0));
        assert!(low.update(359.0));
        assert!(!low.update(360.0));
        assert_eq!(
            Hysteresis::new(Direction::Above, 60.0, 61.0),
            Err(HysteresisError::ClearPastTrip)
        );
        assert_eq!(
            Hysteresis::new(Direction::Below, f32::NAN, 1.0),
            Err(HysteresisError::NotFinite)
        );
    }

    proptest! {
        #[test]
        fn rate_never_panics_and_stays_bounded(
            steps in proptest::collection::vec((0u64..10_000, any::<f32>()), 0..200)
        ) {
            let mut r = RateOfRise::<12>::new(60_000, 10_000);
            let mut t = 0u64;
            for (dt, v) in steps {
                t += dt;
                r.push(t, v);
                prop_assert!(r.len() <= 12);
                prop_assert!(r.span_ms() <= 60_000);
                if let Some(rate) = r.per_minute() {
                    prop_assert!(!rate.is_nan());
                }
            }
        }

        #[test]
        fn a_constant_value_has_no_rise(
            value in -1000.0f32..1000.0, gaps in proptest::collection::vec(1u64..5000, 2..100)
        ) {
            let mut r = RateOfRise::<16>::new(60_000, 0);
            let mut t = 0;
            for g in gaps {
                t += g;
                r.push(t, value);
            }
            if let Some(rate) = r.per_minute() {
                prop_assert!(rate.abs() < 1e-3, "{}", rate);
            }
        }

        #[test]
        fn hysteresis_never_active_on_the_safe_side_of_clear(
            trip in 0.0f32..100.0, band in 0.0f32..10.0,
            values in proptest::collection::vec(-200.0f32..200.0, 1..50)
        ) {
            let mut h = Hysteresis::new(Direction::Above, trip, trip - band).unwrap();
            for v in values {
                let on = h.update(v);
                if v <= trip - band { prop_assert!(!on); }
                if v >= trip { prop_assert!(on); }
            }
        }
    }
}
