//! Scenario time: moments relative to T0, the event a scenario is built around (ignition, the
//! utility failure), negative before it.
//!
//! Scenario files write a moment as a string or as a number of seconds:
//!
//! | written | means |
//! |---|---|
//! | `"T0"`, `"0"`, `0` | T0 itself |
//! | `"T-12m"`, `"-12m"`, `-720` | 12 minutes before T0 |
//! | `"T+90s"`, `"+90s"`, `"90s"`, `90` | 90 seconds after T0 |
//! | `"T+1h30m"`, `"T+8m30s"`, `"T+1.5s"`, `"T+250ms"`, `2.5` | compound and fractional |
//!
//! Units are `h`, `m`, `s` and `ms`; a string always names its units. Resolution is one
//! millisecond; moments are bounded to ±30 days.

use std::fmt;
use std::time::Duration;

/// The largest moment, in either direction: 30 days.
pub const MAX_MILLIS: i64 = 30 * 24 * 3_600_000;

/// A moment of a scenario, in milliseconds relative to T0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ScenarioTime {
    millis: i64,
}

/// Why a moment cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{text:?}: {problem} (write moments as \"T-12m\", \"T+90s\", \"T+1h30m\", \"T0\" or seconds)"
)]
pub struct TimeError {
    /// What was written.
    pub text: String,
    /// What is wrong with it.
    pub problem: String,
}

impl ScenarioTime {
    /// T0.
    pub const T0: ScenarioTime = ScenarioTime { millis: 0 };

    /// The moment `millis` milliseconds from T0 (negative before), clamped to ±30 days.
    pub const fn from_millis(millis: i64) -> ScenarioTime {
        let millis = if millis > MAX_MILLIS {
            MAX_MILLIS
        } else if millis < -MAX_MILLIS {
            -MAX_MILLIS
        } else {
            millis
        };
        ScenarioTime { millis }
    }

    /// The moment `secs` seconds from T0.
    pub const fn from_secs(secs: i64) -> ScenarioTime {
        ScenarioTime::from_millis(secs.saturating_mul(1000))
    }

    /// Milliseconds from T0.
    pub const fn millis(self) -> i64 {
        self.millis
    }

    /// Seconds from T0.
    pub fn secs_f64(self) -> f64 {
        self.millis as f64 / 1000.0
    }

    /// How long after `earlier` this moment is; `None` when it is before.
    pub fn since(self, earlier: ScenarioTime) -> Option<Duration> {
        u64::try_from(self.millis - earlier.millis)
            .ok()
            .map(Duration::from_millis)
    }

    /// The moment `d` after this one.
    pub fn plus(self, d: Duration) -> ScenarioTime {
        let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        ScenarioTime::from_millis(self.millis.saturating_add(ms))
    }

    /// The moment `d` before this one.
    pub fn minus(self, d: Duration) -> ScenarioTime {
        let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        ScenarioTime::from_millis(self.millis.saturating_sub(ms))
    }

    /// Reads a moment written as a string (see the [module](self) documentation).
    pub fn parse(text: &str) -> Result<ScenarioTime, TimeError> {
        let err = |problem: &str| TimeError {
            text: text.to_string(),
            problem: problem.to_string(),
        };
        let s = text.trim();
        let s = match s.strip_prefix('T') {
            Some("0") => return Ok(ScenarioTime::T0),
            Some(rest) if rest.starts_with(['+', '-']) => rest,
            Some(_) => return Err(err("after T comes 0, + or -")),
            None => s,
        };
        let (negative, body) = match s.as_bytes().first() {
            Some(b'-') => (true, s.get(1..).unwrap_or("")),
            Some(b'+') => (false, s.get(1..).unwrap_or("")),
            _ => (false, s),
        };
        if body == "0" {
            return Ok(ScenarioTime::T0);
        }
        if body.is_empty() {
            return Err(err("no duration"));
        }
        let mut total: f64 = 0.0;
        let mut rest = body;
        let mut last_unit = f64::INFINITY;
        while !rest.is_empty() {
            let digits = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .ok_or_else(|| err("a number needs a unit: h, m, s or ms"))?;
            let (number, after) = rest.split_at(digits);
            if number.is_empty() {
                return Err(err(&format!("expected a number at {rest:?}")));
            }
            let number: f64 = number
                .parse()
                .map_err(|_| err(&format!("{number:?} is not a number")))?;
            let unit_len = after
                .find(|c: char| c.is_ascii_digit() || c == '.')
                .unwrap_or(after.len());
            let (unit, next) = after.split_at(unit_len);
            let unit_ms = match unit {
                "h" => 3_600_000.0,
                "m" => 60_000.0,
                "s" => 1_000.0,
                "ms" => 1.0,
                _ => return Err(err(&format!("unknown unit {unit:?}: use h, m, s or ms"))),
            };
            if unit_ms >= last_unit {
                return Err(err(
                    "units go from large to small, each once (1h30m, 8m30s)",
                ));
            }
            last_unit = unit_ms;
            total += number * unit_ms;
            rest = next;
        }
        ScenarioTime::from_millis_f64(if negative { -total } else { total }).ok_or_else(|| {
            err(&format!(
                "more than {} days from T0",
                MAX_MILLIS / 86_400_000
            ))
        })
    }

    /// The moment `secs` seconds from T0, `None` when not finite or beyond ±30 days.
    pub fn from_secs_f64(secs: f64) -> Option<ScenarioTime> {
        ScenarioTime::from_millis_f64(secs * 1000.0)
    }

    fn from_millis_f64(ms: f64) -> Option<ScenarioTime> {
        (ms.is_finite() && ms.abs() <= MAX_MILLIS as f64).then(|| ScenarioTime {
            millis: ms.round() as i64,
        })
    }
}

impl fmt::Display for ScenarioTime {
    /// `T0`, `T-12m`, `T+8m30s`, `T+1h0m5s`, `T+250ms`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.millis == 0 {
            return f.pad("T0");
        }
        let sign = if self.millis < 0 { '-' } else { '+' };
        let mut ms = self.millis.unsigned_abs();
        let mut out = format!("T{sign}");
        let (h, m, s) = (ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60);
        ms %= 1000;
        if h > 0 {
            out.push_str(&format!("{h}h"));
        }
        if m > 0 || (h > 0 && (s > 0 || ms > 0)) {
            out.push_str(&format!("{m}m"));
        }
        match (s, ms) {
            (0, 0) => {}
            (s, 0) => out.push_str(&format!("{s}s")),
            (0, ms) if h == 0 && m == 0 => out.push_str(&format!("{ms}ms")),
            (s, ms) => out.push_str(&format!("{s}.{ms:03}s")),
        }
        f.pad(&out)
    }
}

impl std::str::FromStr for ScenarioTime {
    type Err = TimeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ScenarioTime::parse(s)
    }
}

impl<'de> serde::Deserialize<'de> for ScenarioTime {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = ScenarioTime;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a moment such as \"T-12m\", \"T+90s\" or a number of seconds")
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<ScenarioTime, E> {
                ScenarioTime::parse(v).map_err(E::custom)
            }

            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<ScenarioTime, E> {
                self.visit_f64(v as f64)
            }

            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<ScenarioTime, E> {
                self.visit_f64(v as f64)
            }

            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<ScenarioTime, E> {
                ScenarioTime::from_secs_f64(v).ok_or_else(|| {
                    E::custom(format!("{v} seconds is not a moment within 30 days of T0"))
                })
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// A duration for humans: `12m`, `8m30s`, `250ms`, `0s`.
pub fn human(d: Duration) -> String {
    if d.is_zero() {
        return "0s".to_string();
    }
    let text =
        ScenarioTime::from_millis(i64::try_from(d.as_millis()).unwrap_or(MAX_MILLIS)).to_string();
    text.trim_start_matches("T+").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_forms() {
        let t = |s: &str| ScenarioTime::parse(s).unwrap().millis();
        assert_eq!(t("T0"), 0);
        assert_eq!(t("0"), 0);
        assert_eq!(t("T-0"), 0);
        assert_eq!(t("T-12m"), -720_000);
        assert_eq!(t("-12m"), -720_000);
        assert_eq!(t("T+90s"), 90_000);
        assert_eq!(t("+90s"), 90_000);
        assert_eq!(t("90s"), 90_000);
        assert_eq!(t("T+1h30m"), 5_400_000);
        assert_eq!(t("T+8m30s"), 510_000);
        assert_eq!(t("T+1.5s"), 1_500);
        assert_eq!(t("T+250ms"), 250);
        assert_eq!(t(" T-5m "), -300_000);
    }

    #[test]
    fn bad_forms_say_why() {
        let e = |s: &str| ScenarioTime::parse(s).unwrap_err().problem;
        assert_eq!(e("T+12x"), "unknown unit \"x\": use h, m, s or ms");
        assert_eq!(e("90"), "a number needs a unit: h, m, s or ms");
        assert_eq!(e("T12m"), "after T comes 0, + or -");
        assert_eq!(e("T+"), "no duration");
        assert_eq!(
            e("T+30s5m"),
            "units go from large to small, each once (1h30m, 8m30s)"
        );
        assert_eq!(e("T+1..5s"), "\"1..5\" is not a number");
        assert_eq!(e("T+1000h"), "more than 30 days from T0");
        assert_eq!(
            ScenarioTime::parse("soon").unwrap_err().to_string(),
            "\"soon\": expected a number at \"soon\" (write moments as \"T-12m\", \"T+90s\", \"T+1h30m\", \"T0\" or seconds)"
        );
    }

    #[test]
    fn display_reads_back() {
        for (ms, text) in [
            (0, "T0"),
            (-720_000, "T-12m"),
            (510_000, "T+8m30s"),
            (3_605_000, "T+1h0m5s"),
            (5_400_000, "T+1h30m"),
            (250, "T+250ms"),
            (1_500, "T+1.500s"),
            (-61_250, "T-1m1.250s"),
        ] {
            let t = ScenarioTime::from_millis(ms);
            assert_eq!(t.to_string(), text);
            assert_eq!(ScenarioTime::parse(text), Ok(t), "{text}");
        }
        assert_eq!(human(Duration::from_secs(300)), "5m");
        assert_eq!(human(Duration::ZERO), "0s");
    }

    #[test]
    fn arithmetic() {
        let t = ScenarioTime::from_secs(-60);
        assert_eq!(t.plus(Duration::from_secs(90)), ScenarioTime::from_secs(30));
        assert_eq!(
            t.minus(Duration::from_secs(60)),
            ScenarioTime::from_secs(-120)
        );
        assert_eq!(
            ScenarioTime::from_secs(30).since(t),
            Some(Duration::from_secs(90))
        );
        assert_eq!(t.since(ScenarioTime::T0), None);
    }

    #[test]
    fn numbers_are_seconds() {
        #[derive(serde::Deserialize)]
        struct W {
            a: ScenarioTime,
            b: ScenarioTime,
            c: ScenarioTime,
        }
        let w: W = toml::from_str("a = -720\nb = 2.5\nc = \"T+1m\"").unwrap();
        assert_eq!(
            (w.a.millis(), w.b.millis(), w.c.millis()),
            (-720_000, 2_500, 60_000)
        );
    }
}
