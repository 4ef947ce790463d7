//! A signal's value over a scenario's time: steps and linear ramps.
//!
//! A later segment overrides the earlier ones from its start on; a ramp holds its end value
//! after it ends; before the first segment there is no value (the simulator serves its
//! default).

use std::time::Duration;

/// One change of a signal's value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Segment {
    /// From `at` on, the value is `value`.
    Step {
        /// When.
        at: Duration,
        /// The value.
        value: f32,
    },
    /// From `from` to `to`, the value moves linearly from `start` to `end`, then holds `end`.
    Ramp {
        /// Start time.
        from: Duration,
        /// End time, after `from`.
        to: Duration,
        /// Value at `from`.
        start: f32,
        /// Value at `to` and after.
        end: f32,
    },
}

impl Segment {
    fn begins(&self) -> Duration {
        match *self {
            Segment::Step { at, .. } => at,
            Segment::Ramp { from, .. } => from,
        }
    }

    fn value_at(&self, t: Duration) -> f32 {
        match *self {
            Segment::Step { value, .. } => value,
            Segment::Ramp {
                from,
                to,
                start,
                end,
            } => {
                let span = (to - from).as_secs_f64();
                let done = (t.saturating_sub(from).as_secs_f64() / span).clamp(0.0, 1.0);
                (f64::from(start) + (f64::from(end) - f64::from(start)) * done) as f32
            }
        }
    }
}

/// Why a timeline is refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TimelineError {
    /// Segments must start in time order.
    #[error("segments[{index}] starts at {at:?}, before segments[{previous}] at {previous_at:?}")]
    OutOfOrder {
        /// The segment.
        index: usize,
        /// Its start.
        at: Duration,
        /// The one before.
        previous: usize,
        /// Its start.
        previous_at: Duration,
    },
    /// A ramp must end after it starts.
    #[error("segments[{index}]: a ramp must end after it starts")]
    EmptyRamp {
        /// The segment.
        index: usize,
    },
    /// Values must be finite.
    #[error("segments[{index}]: values must be finite numbers")]
    NotFinite {
        /// The segment.
        index: usize,
    },
}

/// The segments of one signal, checked.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Timeline {
    segments: Vec<Segment>,
}

impl Timeline {
    /// Checks and keeps `segments`.
    pub fn new(segments: Vec<Segment>) -> Result<Timeline, TimelineError> {
        for (index, s) in segments.iter().enumerate() {
            let finite = match *s {
                Segment::Step { value, .. } => value.is_finite(),
                Segment::Ramp {
                    from,
                    to,
                    start,
                    end,
                } => {
                    if to <= from {
                        return Err(TimelineError::EmptyRamp { index });
                    }
                    start.is_finite() && end.is_finite()
                }
            };
            if !finite {
                return Err(TimelineError::NotFinite { index });
            }
            if let Some(prev) = index.checked_sub(1).and_then(|p| segments.get(p))
                && prev.begins() > s.begins()
            {
                return Err(TimelineError::OutOfOrder {
                    index,
                    at: s.begins(),
                    previous: index - 1,
                    previous_at: prev.begins(),
                });
            }
        }
        Ok(Timeline { segments })
    }

    /// The segments, in time order.
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// The value at `t`, or `None` before the first segment.
    pub fn value_at(&self, t: Duration) -> Option<f32> {
        self.segments
            .iter()
            .rev()
            .find(|s| s.begins() <= t)
            .map(|s| s.value_at(t))
    }

    /// The times at which the value starts to change: every step, and every ramp's start and
    /// end. A rig updates a simulator at least at these times.
    pub fn change_points(&self) -> Vec<Duration> {
        let mut points: Vec<Duration> = self
            .segments
            .iter()
            .flat_map(|s| match *s {
                Segment::Step { at, .. } => vec![at],
                Segment::Ramp { from, to, .. } => vec![from, to],
            })
            .collect();
        points.sort();
        points.dedup();
        points
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MIN: Duration = Duration::from_secs(60);

    #[test]
    fn a_rack_warming_like_the_2022_fire() {
        // 25 °C, then from T-5 min a few °C per minute: 25 → 40 °C over 5 minutes.
        let rack = Timeline::new(vec![
            Segment::Step {
                at: Duration::ZERO,
                value: 25.0,
            },
            Segment::Ramp {
                from: 10 * MIN,
                to: 15 * MIN,
                start: 25.0,
                end: 40.0,
            },
        ])
        .unwrap();
        assert_eq!(rack.value_at(5 * MIN), Some(25.0));
        assert_eq!(rack.value_at(10 * MIN), Some(25.0));
        assert_eq!(rack.value_at(11 * MIN), Some(28.0));
        assert_eq!(rack.value_at(12 * MIN + MIN / 2), Some(32.5));
        assert_eq!(rack.value_at(15 * MIN), Some(40.0));
        assert_eq!(rack.value_at(90 * MIN), Some(40.0), "holds after the ramp");
        assert_eq!(
            rack.change_points(),
            vec![Duration::ZERO, 10 * MIN, 15 * MIN]
        );
    }

    #[test]
    fn later_segments_override() {
        let t = Timeline::new(vec![
            Segment::Ramp {
                from: MIN,
                to: 3 * MIN,
                start: 0.0,
                end: 100.0,
            },
            Segment::Step {
                at: 2 * MIN,
                value: 7.0,
            },
        ])
        .unwrap();
        assert_eq!(t.value_at(Duration::ZERO), None);
        assert_eq!(t.value_at(MIN + MIN / 2), Some(25.0));
        assert_eq!(t.value_at(2 * MIN), Some(7.0));
        assert_eq!(t.value_at(10 * MIN), Some(7.0));
    }

    #[test]
    fn bad_timelines_are_named() {
        let e = Timeline::new(vec![
            Segment::Step {
                at: 2 * MIN,
                value: 1.0,
            },
            Segment::Step {
                at: MIN,
                value: 2.0,
            },
        ])
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "segments[1] starts at 60s, before segments[0] at 120s"
        );
        assert_eq!(
            Timeline::new(vec![Segment::Ramp {
                from: MIN,
                to: MIN,
                start: 0.0,
                end: 1.0
            }]),
            Err(TimelineError::EmptyRamp { index: 0 })
        );
        assert_eq!(
            Timeline::new(vec![Segment::Step {
                at: MIN,
                value: f32::NAN
            }]),
            Err(TimelineError::NotFinite { index: 0 })
        );
    }

    proptest! {
        #[test]
        fn ramps_stay_between_their_ends(start in -100f32..100.0, end in -100f32..100.0, secs in 0u64..1000) {
            let t = Timeline::new(vec![Segment::Ramp { from: MIN, to: 5 * MIN, start, end }]).unwrap();
            let v = t.value_at(MIN + Duration::from_secs(secs)).unwrap();
            prop_assert!(v >= start.min(end) - 1e-3 && v <= start.max(end) + 1e-3, "{v}");
        }
    }
}
