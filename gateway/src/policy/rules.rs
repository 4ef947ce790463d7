//! Policy rules: the TOML form, and the checked form the engine runs.
//!
//! Parsing is two steps, like the site configuration: serde reads [`RawRules`] (unknown keys
//! are errors), then [`Rules::from_raw`] checks what types cannot, and every error names the
//! file, the key path and the problem:
//! `rules.toml: rules[3].signal: no signal named "rack-temp"`.

use firebreak_protocols::series::{Direction, Hysteresis};
use firebreak_protocols::{Level, RuleId, Signal, SignalKind};
use serde::Deserialize;

use crate::config::{ConfigError, parse_toml};

/// The built-in rules, as `firebreak policy default` prints them.
pub const DEFAULT_RULES: &str = include_str!("default-rules.toml");

/// The most rules one policy may have.
pub const MAX_RULES: usize = 128;

/// Most points a rate rule keeps per sensor: enough to cover its window evenly.
pub const RATE_POINTS: usize = 16;

/// A rules file as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRules {
    /// `[[rules]]`.
    #[serde(default)]
    pub rules: Vec<RawRule>,
}

/// `need` of a combine rule: `"all"`, `"any"` or a count.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RawNeed {
    /// A count of rules.
    Count(i64),
    /// `"all"` or `"any"`.
    Word(String),
}

/// One `[[rules]]` entry as written; which keys apply depends on `kind`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    /// The rule's id, as triggers name it.
    pub id: String,
    /// `threshold`, `rate`, `state`, `share`, `comm-lost`, `power-budget` or `combine`.
    pub kind: String,
    /// The level it raises; absent for a building block.
    pub level: Option<String>,
    /// Seconds the condition must hold before the rule fires.
    pub for_s: Option<f64>,
    /// Another rule that must be firing for this one to fire.
    pub when: Option<String>,
    /// The signal (threshold, rate, state, share).
    pub signal: Option<String>,
    /// Fires at or above this value (threshold, share).
    pub above: Option<f64>,
    /// Fires at or below this value (threshold, share).
    pub below: Option<f64>,
    /// Clears once the value is back past this one (threshold, share).
    pub clear: Option<f64>,
    /// Independent witnesses that must agree (threshold, rate, state: distinct failure
    /// groups; combine: distinct failure groups or physics).
    pub corroborate: Option<i64>,
    /// Fires at this rise per minute or more (rate).
    pub rise_per_min: Option<f64>,
    /// Clears below this rise per minute (rate).
    pub clear_per_min: Option<f64>,
    /// The window the rate is measured over, in seconds (rate).
    pub window_s: Option<f64>,
    /// The share of the zone's devices that must agree, 0 to 1 (share).
    pub share: Option<f64>,
    /// At least this many devices must agree (share).
    pub min_devices: Option<i64>,
    /// `any` or `all` devices of the zone (comm-lost).
    pub devices: Option<String>,
    /// The rules it combines (combine).
    pub of: Option<Vec<String>>,
    /// How many of them must fire (combine).
    pub need: Option<RawNeed>,
    /// Utility voltage above which the utility counts as present, so a UPS on battery is
    /// only testing itself (power-budget).
    pub input_present_above: Option<f64>,
}

/// What a rule looks at.
#[derive(Debug, Clone, PartialEq)]
pub enum RuleKind {
    /// A value past a threshold, on `corroborate` sensors at once.
    Threshold {
        /// The signal.
        signal: Signal,
        /// Trip and clear points.
        band: Hysteresis,
        /// Independent sensors that must agree.
        corroborate: usize,
    },
    /// A value rising at `rise_per_min` or faster over a window.
    Rate {
        /// The signal.
        signal: Signal,
        /// Trip and clear points, in units per minute.
        band: Hysteresis,
        /// The window, in milliseconds.
        window_ms: u64,
        /// Independent sensors that must agree.
        corroborate: usize,
    },
    /// A state signal on (value 1).
    State {
        /// The signal.
        signal: Signal,
        /// Independent sensors that must agree.
        corroborate: usize,
    },
    /// A share of the zone's devices with a value past a threshold.
    Share {
        /// The signal.
        signal: Signal,
        /// Trip and clear points.
        band: Hysteresis,
        /// The share, 0 to 1.
        share: f32,
        /// The fewest devices.
        min_devices: usize,
    },
    /// Devices of the zone not answering: any, or all of them.
    CommLost {
        /// All devices, rather than any.
        all: bool,
    },
    /// The estimated time to power loss below the evacuation budget plus the margin.
    PowerBudget {
        /// Utility voltage at or above which a UPS on battery is only testing itself.
        input_present_above: f32,
    },
    /// Several rules: at least `need` of `of` firing, on at least `corroborate` independent
    /// witnesses (distinct failure groups or physics) between them.
    Combine {
        /// Indexes of the combined rules (all defined earlier).
        of: Vec<usize>,
        /// How many must fire.
        need: usize,
        /// Independent witnesses they must have between them.
        corroborate: usize,
    },
    /// A reading of the zone judged implausible (a jump, a rail, a flap) or reported faulty
    /// by its device: for a technician.
    SensorFault,
    /// One of `of` holds its level on evidence whose sensors went silent or faulty: losing
    /// the witnesses during an alarm is itself evidence.
    EvidenceLost {
        /// Indexes of the rules whose evidence is watched (all defined earlier).
        of: Vec<usize>,
        /// Also when any device of the zone goes silent while one of them holds (a UPS card
        /// dying in the fire the smoke detector sees): `devices = "any"`.
        any_device: bool,
    },
}

impl RuleKind {
    /// The signal a per-sensor rule reads.
    pub fn signal(&self) -> Option<Signal> {
        match self {
            Self::Threshold { signal, .. }
            | Self::Rate { signal, .. }
            | Self::State { signal, .. }
            | Self::Share { signal, .. } => Some(*signal),
            _ => None,
        }
    }
}

/// A checked rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// Its id.
    pub id: RuleId,
    /// The level it raises, or `None` for a building block.
    pub level: Option<Level>,
    /// How long its condition must hold, in milliseconds.
    pub for_ms: u64,
    /// The index of a rule (defined earlier) that must be firing too.
    pub when: Option<usize>,
    /// What it looks at.
    pub kind: RuleKind,
}

/// A checked rule set, in evaluation order: every rule after those it refers to.
#[derive(Debug, Clone, PartialEq)]
pub struct Rules {
    /// The rules.
    pub rules: Vec<Rule>,
}

/// The default utility-present voltage of `power-budget` rules.
pub const DEFAULT_INPUT_PRESENT_V: f32 = 100.0;

impl Rules {
    /// The built-in rules.
    pub fn default_rules() -> Result<Rules, ConfigError> {
        Rules::parse(DEFAULT_RULES, "default-rules.toml")
    }

    /// Reads and checks a rules file.
    pub fn load(path: &std::path::Path) -> Result<Rules, ConfigError> {
        let (text, origin) = crate::config::read_text(path)?;
        Rules::parse(&text, &origin)
    }

    /// Parses and checks rules; `origin` names them in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Rules, ConfigError> {
        let raw: RawRules = parse_toml(text, origin)?;
        Rules::from_raw(raw, origin)
    }

    /// Checks what the types alone cannot.
    pub fn from_raw(raw: RawRules, origin: &str) -> Result<Rules, ConfigError> {
        let err = |path: String, problem: String| ConfigError {
            origin: origin.to_string(),
            line: None,
            path,
            problem,
        };
        if raw.rules.is_empty() {
            return Err(err(
                "rules".into(),
                "no rules: nothing would ever fire".into(),
            ));
        }
        if raw.rules.len() > MAX_RULES {
            return Err(err(
                "rules".into(),
                format!("{} rules; at most {MAX_RULES}", raw.rules.len()),
            ));
        }
        let mut rules: Vec<Rule> = Vec::with_capacity(raw.rules.len());
        for (i, r) in raw.rules.into_iter().enumerate() {
            let at = format!("rules[{i}]");
            let rule = check_rule(&at, r, &rules).map_err(|(key, problem)| {
                err(
                    if key.is_empty() {
                        at.clone()
                    } else {
                        format!("{at}.{key}")
                    },
                    problem,
                )
            })?;
            if rules.iter().any(|o| o.id == rule.id) {
                return Err(err(
                    format!("{at}.id"),
                    format!("rule {:?} is defined twice", rule.id.as_str()),
                ));
            }
            rules.push(rule);
        }
        if !rules.iter().any(|r| r.level.is_some()) {
            return Err(err(
                "rules".into(),
                "no rule has a level: nothing would ever be raised".into(),
            ));
        }
        Ok(Rules { rules })
    }

    /// The index of a rule by id.
    pub fn index(&self, id: &str) -> Option<usize> {
        self.rules.iter().position(|r| r.id.as_str() == id)
    }
}

type Problem = (String, String);

/// The shortest `for_s` of an `evacuate` rule that one witness can fire: long enough for the
/// value to be read again several times (a device's freshness window is shorter), so one
/// sample — a UPS recalculating its runtime, a glitch on the bus — never evacuates a site.
pub const MIN_SINGLE_WITNESS_MS: u64 = 10_000;

/// The fewest independent witnesses a rule can fire on.
fn witnesses(kind: &RuleKind, earlier: &[Rule]) -> usize {
    match kind {
        RuleKind::Threshold { corroborate, .. }
        | RuleKind::Rate { corroborate, .. }
        | RuleKind::State { corroborate, .. } => *corroborate,
        RuleKind::Share { min_devices, .. } => *min_devices,
        // Its own corroboration, or that of the weakest rule it combines.
        RuleKind::Combine {
            of, corroborate, ..
        } => (*corroborate).max(
            of.iter()
                .filter_map(|&c| earlier.get(c))
                .map(|r| witnesses(&r.kind, earlier))
                .min()
                .unwrap_or(1),
        ),
        _ => 1,
    }
}

/// The `of` list of a combine or evidence-lost rule, checked.
fn rule_list(
    r: &RawRule,
    kind: &str,
    find: &dyn Fn(&str, &str) -> Result<usize, Problem>,
) -> Result<Vec<usize>, Problem> {
    let names =
        r.of.as_ref()
            .ok_or_else(|| problem("", format!("a {kind} rule needs of = [rule ids]")))?;
    if names.is_empty() {
        return Err(problem("of", "names no rules"));
    }
    let mut of = Vec::with_capacity(names.len());
    for (j, name) in names.iter().enumerate() {
        let k = find(&format!("of[{j}]"), name)?;
        if of.contains(&k) {
            return Err(problem(
                &format!("of[{j}]"),
                format!("{name:?} is named twice"),
            ));
        }
        of.push(k);
    }
    Ok(of)
}

fn problem(key: &str, text: impl Into<String>) -> Problem {
    (key.to_string(), text.into())
}

/// The keys each kind uses, besides id, kind, level, for_s and when.
fn keys_of(kind: &str) -> Option<&'static [&'static str]> {
    Some(match kind {
        "threshold" => &["signal", "above", "below", "clear", "corroborate"],
        "rate" => &[
            "signal",
            "rise_per_min",
            "clear_per_min",
            "window_s",
            "corroborate",
        ],
        "state" => &["signal", "corroborate"],
        "share" => &["signal", "above", "below", "clear", "share", "min_devices"],
        "comm-lost" => &["devices"],
        "power-budget" => &["input_present_above"],
        "combine" => &["of", "need", "corroborate"],
        "sensor-fault" => &[],
        "evidence-lost" => &["of", "devices"],
        _ => return None,
    })
}

fn present_keys(r: &RawRule) -> Vec<&'static str> {
    let mut keys = Vec::new();
    let mut add = |name: &'static str, present: bool| {
        if present {
            keys.push(name);
        }
    };
    add("signal", r.signal.is_some());
    add("above", r.above.is_some());
    add("below", r.below.is_some());
    add("clear", r.clear.is_some());
    add("corroborate", r.corroborate.is_some());
    add("rise_per_min", r.rise_per_min.is_some());
    add("clear_per_min", r.clear_per_min.is_some());
    add("window_s", r.window_s.is_some());
    add("share", r.share.is_some());
    add("min_devices", r.min_devices.is_some());
    add("devices", r.devices.is_some());
    add("of", r.of.is_some());
    add("need", r.need.is_some());
    add("input_present_above", r.input_present_above.is_some());
    keys
}

fn seconds_to_ms(key: &str, s: Option<f64>, default_ms: u64) -> Result<u64, Problem> {
    match s {
        None => Ok(default_ms),
        Some(s) if s.is_finite() && (0.0..=86_400.0).contains(&s) => Ok((s * 1000.0) as u64),
        Some(s) => Err(problem(
            key,
            format!("{s} is not between 0 and 86400 seconds"),
        )),
    }
}

fn finite(key: &str, v: f64) -> Result<f32, Problem> {
    if v.is_finite() && v.abs() < 1e9 {
        Ok(v as f32)
    } else {
        Err(problem(key, format!("{v} is not a usable number")))
    }
}

fn check_rule(at: &str, r: RawRule, earlier: &[Rule]) -> Result<Rule, Problem> {
    let _ = at;
    let id: RuleId =
        r.id.parse()
            .map_err(|e| problem("id", format!("{:?} {e}", r.id)))?;
    let Some(allowed) = keys_of(&r.kind) else {
        return Err(problem(
            "kind",
            format!(
                "{:?} is not a rule kind (threshold, rate, state, share, comm-lost, power-budget, combine, sensor-fault, evidence-lost)",
                r.kind
            ),
        ));
    };
    if let Some(key) = present_keys(&r).into_iter().find(|k| !allowed.contains(k)) {
        return Err(problem(key, format!("not used by a {} rule", r.kind)));
    }
    let level = match r.level.as_deref() {
        None => None,
        Some("watch") => Some(Level::Watch),
        Some("prepare") => Some(Level::Prepare),
        Some("evacuate") => Some(Level::Evacuate),
        Some(other) => {
            return Err(problem(
                "level",
                format!("{other:?} is not a level a rule can raise (watch, prepare, evacuate)"),
            ));
        }
    };
    let for_ms = seconds_to_ms("for_s", r.for_s, 0)?;
    let find = |key: &str, name: &str| -> Result<usize, Problem> {
        earlier
            .iter()
            .position(|o| o.id.as_str() == name)
            .ok_or_else(|| {
                problem(
                    key,
                    format!("no rule {name:?} is defined above this one (rules refer only to earlier rules)"),
                )
            })
    };
    let when = r.when.as_deref().map(|w| find("when", w)).transpose()?;

    let signal = |want: &[SignalKind]| -> Result<Signal, Problem> {
        let name = r
            .signal
            .as_deref()
            .ok_or_else(|| problem("", format!("a {} rule needs a signal", r.kind)))?;
        let s = Signal::from_name(name)
            .ok_or_else(|| problem("signal", format!("no signal named {name:?}")))?;
        if s.is_diagnostic() {
            return Err(problem(
                "signal",
                format!(
                    "{name:?} describes the device itself, not the site: it is never evidence, and no rule can use it (the gateway reports reboots from it)"
                ),
            ));
        }
        if !want.contains(&s.kind()) {
            return Err(problem(
                "signal",
                format!(
                    "{name:?} is a {}, which a {} rule cannot use",
                    match s.kind() {
                        SignalKind::State => "state",
                        SignalKind::Measurement => "measurement",
                        SignalKind::Code => "code",
                        _ => "signal of another kind",
                    },
                    r.kind
                ),
            ));
        }
        Ok(s)
    };
    let corroborate = || -> Result<usize, Problem> {
        match r.corroborate {
            None => Ok(1),
            Some(k) if (1..=64).contains(&k) => Ok(k as usize),
            Some(k) => Err(problem(
                "corroborate",
                format!("{k} is not between 1 and 64 sensors"),
            )),
        }
    };
    let band = || -> Result<Hysteresis, Problem> {
        let (direction, trip) = match (r.above, r.below) {
            (Some(a), None) => (Direction::Above, finite("above", a)?),
            (None, Some(b)) => (Direction::Below, finite("below", b)?),
            (Some(_), Some(_)) => return Err(problem("", "give above or below, not both")),
            (None, None) => {
                return Err(problem(
                    "",
                    format!("a {} rule needs above or below", r.kind),
                ));
            }
        };
        let clear = match r.clear {
            Some(c) => finite("clear", c)?,
            None => trip,
        };
        Hysteresis::new(direction, trip, clear).map_err(|_| {
            problem(
                "clear",
                format!(
                    "{clear} is past the trip point {trip}: it must be {} it",
                    match direction {
                        Direction::Above => "at or below",
                        Direction::Below => "at or above",
                    }
                ),
            )
        })
    };

    let kind = match r.kind.as_str() {
        "threshold" => RuleKind::Threshold {
            signal: signal(&[SignalKind::Measurement])?,
            band: band()?,
            corroborate: corroborate()?,
        },
        "rate" => {
            let signal = signal(&[SignalKind::Measurement])?;
            let rise = r
                .rise_per_min
                .ok_or_else(|| problem("", "a rate rule needs rise_per_min"))?;
            let rise = finite("rise_per_min", rise)?;
            if rise <= 0.0 {
                return Err(problem("rise_per_min", format!("{rise} is not above 0")));
            }
            let clear = match r.clear_per_min {
                Some(c) => finite("clear_per_min", c)?,
                None => rise / 2.0,
            };
            let band = Hysteresis::new(Direction::Above, rise, clear).map_err(|_| {
                problem(
                    "clear_per_min",
                    format!("{clear} is above rise_per_min {rise}"),
                )
            })?;
            let window_ms = seconds_to_ms("window_s", r.window_s, 120_000)?;
            if window_ms < 10_000 {
                return Err(problem(
                    "window_s",
                    "a rate needs a window of at least 10 s",
                ));
            }
            RuleKind::Rate {
                signal,
                band,
                window_ms,
                corroborate: corroborate()?,
            }
        }
        "state" => RuleKind::State {
            signal: signal(&[SignalKind::State])?,
            corroborate: corroborate()?,
        },
        "share" => {
            let signal = signal(&[SignalKind::Measurement])?;
            let band = band()?;
            let share = r
                .share
                .ok_or_else(|| problem("", "a share rule needs share"))?;
            if !(share > 0.0 && share <= 1.0) {
                return Err(problem(
                    "share",
                    format!("{share} is not a share above 0 and at most 1"),
                ));
            }
            let min_devices = match r.min_devices {
                None => 1,
                Some(n) if (1..=100_000).contains(&n) => n as usize,
                Some(n) => return Err(problem("min_devices", format!("{n} is not at least 1"))),
            };
            RuleKind::Share {
                signal,
                band,
                share: share as f32,
                min_devices,
            }
        }
        "comm-lost" => RuleKind::CommLost {
            all: match r.devices.as_deref() {
                Some("any") => false,
                Some("all") => true,
                Some(other) => {
                    return Err(problem(
                        "devices",
                        format!("{other:?} is neither \"any\" nor \"all\""),
                    ));
                }
                None => return Err(problem("", "a comm-lost rule needs devices (any or all)")),
            },
        },
        "power-budget" => RuleKind::PowerBudget {
            input_present_above: match r.input_present_above {
                Some(v) => finite("input_present_above", v)?,
                None => DEFAULT_INPUT_PRESENT_V,
            },
        },
        "combine" => {
            let of = rule_list(&r, "combine", &find)?;
            let need = match &r.need {
                None => of.len(),
                Some(RawNeed::Word(w)) if w == "all" => of.len(),
                Some(RawNeed::Word(w)) if w == "any" => 1,
                Some(RawNeed::Count(n)) if *n >= 1 && (*n as usize) <= of.len() => *n as usize,
                Some(RawNeed::Count(n)) => {
                    return Err(problem(
                        "need",
                        format!("{n} is not between 1 and the {} rules in of", of.len()),
                    ));
                }
                Some(RawNeed::Word(w)) => {
                    return Err(problem(
                        "need",
                        format!("{w:?} is not \"all\", \"any\" or a count"),
                    ));
                }
            };
            RuleKind::Combine {
                of,
                need,
                corroborate: corroborate()?,
            }
        }
        "sensor-fault" => {
            if level.is_some_and(|l| l > Level::Watch) {
                return Err(problem(
                    "level",
                    "a sensor fault is for a technician: it raises watch at most",
                ));
            }
            RuleKind::SensorFault
        }
        "evidence-lost" => RuleKind::EvidenceLost {
            of: rule_list(&r, "evidence-lost", &find)?,
            any_device: match r.devices.as_deref() {
                None => false,
                Some("any") => true,
                Some(other) => {
                    return Err(problem(
                        "devices",
                        format!(
                            "{other:?} is not \"any\" (or leave it out: the rules' own sensors)"
                        ),
                    ));
                }
            },
        },
        _ => return Err(problem("kind", "unknown kind")),
    };
    if level == Some(Level::Evacuate)
        && witnesses(&kind, earlier) < 2
        && for_ms < MIN_SINGLE_WITNESS_MS
    {
        return Err(problem(
            "",
            format!(
                "an evacuate rule needs two independent witnesses (corroborate = 2) or one sustained: for_s of at least {} (no evacuation from a single sample)",
                MIN_SINGLE_WITNESS_MS / 1000
            ),
        ));
    }
    Ok(Rule {
        id,
        level,
        for_ms,
        when,
        kind,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_check() {
        let rules = Rules::default_rules().unwrap();
        assert!(rules.rules.len() >= 15);
        let fire = &rules.rules[rules.index("fire-corroborated").unwrap()];
        assert_eq!(fire.level, Some(Level::Evacuate));
        assert!(
            matches!(&fire.kind, RuleKind::Combine { need: 1, of, corroborate: 2 } if of.len() == 4)
        );
        let runaway = &rules.rules[rules.index("rack-runaway").unwrap()];
        assert!(matches!(
            runaway.kind,
            RuleKind::Threshold { corroborate: 2, .. }
        ));
    }

    #[test]
    fn bad_rules_name_file_key_and_problem() {
        let cases: &[(&str, &str)] = &[
            ("", "r.toml: rules: no rules: nothing would ever fire"),
            (
                "[[rules]]\nid = \"a\"\nkind = \"thresh\"\n",
                "r.toml: rules[0].kind: \"thresh\" is not a rule kind (threshold, rate, state, share, comm-lost, power-budget, combine, sensor-fault, evidence-lost)",
            ),
            (
                "[[rules]]\nid = \"a\"\nkind = \"threshold\"\nsignal = \"rack-temp\"\nabove = 1.0\nlevel = \"watch\"\n",
                "r.toml: rules[0].signal: no signal named \"rack-temp\"",
            ),
            (
                "[[rules]]\nid = \"a\"\nkind = \"threshold\"\nsignal = \"smoke-alarm\"\nabove = 1.0\nlevel = \"watch\"\n",
                "r.toml: rules[0].signal: \"smoke-alarm\" is a state, which a threshold rule cannot use",
            ),
            (
                "[[rules]]\nid = \"a\"\nkind = \"threshold\"\nsignal = \"device-uptime\"\nbelow = 60.0\nlevel = \"watch\"\n",
                "r.toml: rules[0].signal: \"device-uptime\" describes the device itself, not the site: it is never evidence, and no rule can use it (the gateway reports reboots from it)",
            ),
            (
                "[[rules]]\nid = \"a\"\nkind = \"rate\"\nsignal = \"device-uptime\"\nrise_per_min = 1.0\nlevel = \"watch\"\n",
                "r.toml: rules[0].signal: \"device-uptime\" describes the device itself, not the site: it is never evidence, and no rule can use it (the gateway reports reboots from it)",
            ),
            (
                "[[rules]]\nid = \"a\"\nkind = \"state\"\nsignal = \"reset-reason\"\nlevel = \"watch\"\n",
                "r.toml: rules[0].signal: \"reset-reason\" describes the device itself, not the site: it is never evidence, and no rule can use it (the gateway reports reboots from it)",
            ),
            (
                "[[rules]]\nid = \"a\"\nkind = \"threshold\"\nsignal = \"off-gas\"\nabove = 10.0\nclear = 20.0\nlevel = \"watch\"\n",
                "r.toml: rules[0].clear: 20 is past the trip point 10: it must be at or below it",
            ),
            (
                "[[rules]]\nid = \"a\"\nkind = \"threshold\"\nsignal = \"off-gas\"\nlevel = \"watch\"\n",
                "r.toml: rules[0]: a threshold rule needs above or below",
            ),
            (
                "[[rules]]\nid = \"a\"\nkind = \"state\"\nsignal = \"smoke-alarm\"\nrise_per_min = 1.0\nlevel = \"watch\"\n",
                "r.toml: rules[0].rise_per_min: not used by a state rule",
            ),
            (
                "[[rules]]\nid = \"a\"\nkind = \"state\"\nsignal = \"smoke-alarm\"\nlevel = \"panic\"\n",
                "r.toml: rules[0].level: \"panic\" is not a level a rule can raise (watch, prepare, evacuate)",
            ),
            (
                "[[rules]]\nid = \"a\"\nkind = \"combine\"\nof = [\"b\"]\nlevel = \"watch\"\n",
                "r.toml: rules[0].of[0]: no rule \"b\" is defined above this one (rules refer only to earlier rules)",
            ),
            (
                "[[rules]]\nid = \"a\"\nkind = \"state\"\nsignal = \"smoke-alarm\"\n[[rules]]\nid = \"b\"\nkind = \"combine\"\nof = [\"a\"]\nneed = 2\nlevel = \"watch\"\n",
                "r.toml: rules[1].need: 2 is not between 1 and the 1 rules in of",
            ),
            (
                "[[rules]]\nid = \"a\"\nkind = \"state\"\nsignal = \"smoke-alarm\"\nlevel = \"watch\"\n[[rules]]\nid = \"a\"\nkind = \"state\"\nsignal = \"smoke-alarm\"\n",
                "r.toml: rules[1].id: rule \"a\" is defined twice",
            ),
            (
                "[[rules]]\nid = \"a\"\nkind = \"state\"\nsignal = \"smoke-alarm\"\n",
                "r.toml: rules: no rule has a level: nothing would ever be raised",
            ),
            (
                "[[rules]]\nid = \"a\"\nkind = \"rate\"\nsignal = \"rack-temperature\"\nrise_per_min = 1.0\nwindow_s = 5\nlevel = \"watch\"\n",
                "r.toml: rules[0].window_s: a rate needs a window of at least 10 s",
            ),
            (
                "[[rules]]\nid = \"a\"\nkind = \"state\"\nsignal = \"smoke-alarm\"\nfor_s = -1\nlevel = \"watch\"\n",
                "r.toml: rules[0].for_s: -1 is not between 0 and 86400 seconds",
            ),
            (
                "[[rules]]\nid = \"a\"\nkind = \"share\"\nsignal = \"pdu-input-voltage\"\nbelow = 90.0\nshare = 1.5\nlevel = \"watch\"\n",
                "r.toml: rules[0].share: 1.5 is not a share above 0 and at most 1",
            ),
            (
                "[[rules]]\nid = \"a\"\nkind = \"comm-lost\"\ndevices = \"most\"\nlevel = \"watch\"\n",
                "r.toml: rules[0].devices: \"most\" is neither \"any\" nor \"all\"",
            ),
            (
                "[[rules]]\nid = \"a\"\nkind = \"state\"\nsignal = \"smoke-alarm\"\nlevel = \"watch\"\ncolour = \"red\"\n",
                "r.toml:6: rules[0].colour: unknown field `colour`",
            ),
        ];
        for (text, want) in cases {
            let got = Rules::parse(text, "r.toml").unwrap_err().to_string();
            assert!(
                got.starts_with(want),
                "for\n{text}\nwant {want}\ngot  {got}"
            );
        }
    }
}
