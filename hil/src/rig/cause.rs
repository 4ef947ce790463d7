//! When did a trigger's cause happen in the simulator? The moment the rig measures end-to-end
//! latency from.
//!
//! A raising trigger lists every rule firing at its new level with the sensor, value and
//! threshold (docs/policy.md, "Explanations"). For each such reason the rig finds, in the
//! scenario's script, the latest moment at or before the trigger's arrival when that sensor's
//! scripted value crossed the threshold (or, for a link rule naming a device, when the device
//! went silent), and adds the rule's `for_s`, the hold the policy asks for on purpose. The
//! cause is the latest of these, plus the `for_s` of any combining rule listed. What remains
//! between the cause and the arrival is the pipeline: polling, the policy step, signing, the
//! outbox, the broker and the subscriber.
//!
//! Some reasons have no moment the script can tell: a rate of rise (it depends on the window
//! of samples), the power budget (an estimate), a link rule over several devices. A trigger
//! with such a reason gets no end-to-end latency (its delivery latency is still measured).

use std::collections::HashMap;
use std::time::Duration;

use firebreak_protocols::{DataType, Reason, Signal, SignalKind};

use crate::scenario::{Device, Fault, Scenario};
use crate::time::ScenarioTime;

/// What the rig needs to know of a policy rule.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleInfo {
    /// `threshold`, `rate`, `state`, `share`, `comm-lost`, `power-budget`, `combine`.
    pub kind: String,
    /// How long the condition must hold, in seconds (policy time).
    pub for_s: f64,
    /// The trip point of `above` rules.
    pub above: Option<f64>,
    /// The trip point of `below` rules.
    pub below: Option<f64>,
}

/// The rules of a policy, by id: read from the rules TOML the gateway uses (`firebreak
/// policy default`, or a site's rules file).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rules {
    rules: HashMap<String, RuleInfo>,
}

impl Rules {
    /// Parses a rules file's text (only the keys the rig needs; the gateway checks the rest).
    pub fn parse(text: &str) -> Result<Rules, String> {
        let doc: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| e.message().to_string())?;
        let list = doc
            .get("rules")
            .and_then(|r| r.as_array())
            .ok_or("no [[rules]]")?;
        let mut rules = HashMap::new();
        for (i, r) in list.iter().enumerate() {
            let id = r
                .get("id")
                .and_then(|v| v.as_str())
                .ok_or(format!("rules[{i}].id: missing"))?;
            let kind = r
                .get("kind")
                .and_then(|v| v.as_str())
                .ok_or(format!("rules[{i}].kind: missing"))?;
            let number = |key: &str| {
                r.get(key)
                    .and_then(|v| v.as_float().or_else(|| v.as_integer().map(|i| i as f64)))
            };
            rules.insert(
                id.to_string(),
                RuleInfo {
                    kind: kind.to_string(),
                    for_s: number("for_s").unwrap_or(0.0),
                    above: number("above"),
                    below: number("below"),
                },
            );
        }
        Ok(Rules { rules })
    }

    /// A rule by id.
    pub fn get(&self, id: &str) -> Option<&RuleInfo> {
        self.rules.get(id)
    }

    /// How many rules.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

/// The finest step the search for a crossing resolves, in scenario time.
const RESOLUTION_MS: i64 = 10;
/// The step of the backward scan before refining.
const STEP_MS: i64 = 250;

/// The moment the cause of a raising trigger with these reasons happened in the scenario, or
/// `None` when one of its reasons has no moment the script can tell (see the module docs).
/// `upto` is when the trigger arrived.
pub fn cause_moment(
    scenario: &Scenario,
    rules: &Rules,
    reasons: &[Reason],
    upto: ScenarioTime,
) -> Option<ScenarioTime> {
    let mut latest: Option<ScenarioTime> = None;
    let mut combine_hold = 0.0f64;
    for r in reasons {
        let rule = rules.get(r.rule.as_str())?;
        let onset = match rule.kind.as_str() {
            "combine" => {
                combine_hold = combine_hold.max(rule.for_s);
                continue;
            }
            "threshold" | "state" | "share" => {
                let device = scenario.device(r.device.as_ref()?.as_str())?;
                let signal = r.signal?;
                let holds = condition(rule, signal)?;
                onset(scenario.start, upto, |t| {
                    holds(served(device, signal, r.channel, t))
                })?
            }
            "comm-lost" => {
                let device = scenario.device(r.device.as_ref()?.as_str())?;
                silent_since(device, upto)?
            }
            _ => return None,
        };
        let at = onset.plus(Duration::from_secs_f64(rule.for_s.max(0.0)));
        latest = Some(latest.map_or(at, |l| l.max(at)));
    }
    latest.map(|l| l.plus(Duration::from_secs_f64(combine_hold.max(0.0))))
}

/// The value the gateway reads at `t`: the scripted one, quantized as the device's register
/// map stores it (an off-gas register of 1 ppm reads 20 from 19.5 on).
fn served(device: &Device, signal: Signal, channel: u8, t: ScenarioTime) -> f32 {
    let v = device.value_at(signal, channel, t);
    let descriptor = device.kind.profile().and_then(|p| {
        p.registers
            .iter()
            .find(|d| d.signal == signal && d.channel == channel)
    });
    match descriptor {
        Some(d) if d.data_type != DataType::F32 && d.scale != 0.0 => {
            let n = (f64::from(v) - d.offset) / d.scale;
            let n = if n >= 0.0 {
                (n + 0.5).floor()
            } else {
                (n - 0.5).ceil()
            };
            (n * d.scale + d.offset) as f32
        }
        _ => v,
    }
}

/// The test a rule makes of a value.
fn condition(rule: &RuleInfo, signal: Signal) -> Option<Box<dyn Fn(f32) -> bool>> {
    if rule.kind == "state" || signal.kind() == SignalKind::State {
        return Some(Box::new(|v| v >= 0.5));
    }
    match (rule.above, rule.below) {
        (Some(a), _) => Some(Box::new(move |v| f64::from(v) >= a)),
        (None, Some(b)) => Some(Box::new(move |v| f64::from(v) <= b)),
        (None, None) => None,
    }
}

/// The latest moment in `[start, upto]` from which `holds` is true through `upto`; `None`
/// when it does not hold at `upto`.
fn onset(
    start: ScenarioTime,
    upto: ScenarioTime,
    holds: impl Fn(ScenarioTime) -> bool,
) -> Option<ScenarioTime> {
    if !holds(upto) {
        return None;
    }
    let at = ScenarioTime::from_millis;
    let mut hi = upto.millis();
    loop {
        let lo = (hi - STEP_MS).max(start.millis());
        if lo == hi {
            return Some(at(hi));
        }
        if holds(at(lo)) {
            hi = lo;
            continue;
        }
        // False at lo, true at hi: refine.
        let mut lo = lo;
        while hi - lo > RESOLUTION_MS {
            let mid = lo + (hi - lo) / 2;
            if holds(at(mid)) {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        return Some(at(hi));
    }
}

/// When a device stopped answering for good before `upto`: the start of the silent (or
/// dropping) fault or network cut acting at `upto`.
fn silent_since(device: &Device, upto: ScenarioTime) -> Option<ScenarioTime> {
    let faults = device
        .faults
        .iter()
        .filter(|f| matches!(f.fault, Fault::Silent | Fault::Drop) && f.window.contains(upto))
        .map(|f| f.window.from);
    let cuts = device
        .network_cuts
        .iter()
        .filter(|w| w.contains(upto))
        .map(|w| w.from);
    faults.chain(cuts).max()
}

#[cfg(test)]
mod tests {
    use super::*;
    use firebreak_protocols::{DeviceId, RuleId};

    fn scenario() -> Scenario {
        let text = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/battery-fire.toml"),
        )
        .unwrap();
        Scenario::parse(&text, "battery-fire.toml").unwrap()
    }

    fn rules() -> Rules {
        Rules::parse(
            r#"
[[rules]]
id = "off-gas"
kind = "threshold"
signal = "off-gas"
above = 20.0
clear = 10.0
for_s = 30
level = "prepare"

[[rules]]
id = "smoke"
kind = "state"
signal = "smoke-alarm"
for_s = 3

[[rules]]
id = "rise"
kind = "rate"
signal = "rack-temperature"
rise_per_min = 1.0

[[rules]]
id = "pdu-feeds-lost"
kind = "share"
signal = "pdu-input-voltage"
below = 90
share = 0.5
for_s = 2

[[rules]]
id = "lost"
kind = "comm-lost"
devices = "any"

[[rules]]
id = "both"
kind = "combine"
of = ["off-gas", "smoke"]
need = 2
for_s = 5
"#,
        )
        .unwrap()
    }

    fn reason(rule: &str, device: Option<&str>, signal: Option<Signal>) -> Reason {
        Reason {
            rule: RuleId::new(rule).unwrap(),
            signal,
            device: device.map(|d| DeviceId::new(d).unwrap()),
            channel: 0,
            value: 0.0,
            threshold: 0.0,
        }
    }

    #[test]
    fn finds_crossings_and_adds_holds() {
        let s = scenario();
        let r = rules();
        let t = |text: &str| ScenarioTime::parse(text).unwrap();
        // Off-gas ramps 0 -> 60 ppm from T-12m to T-2m: 19.5 ppm, which the node's 1 ppm
        // register serves as 20, at T-8m45s; held 30 s.
        let off_gas = reason("off-gas", Some("node-b1"), Some(Signal::OffGas));
        let at = cause_moment(&s, &r, std::slice::from_ref(&off_gas), t("T-5m")).unwrap();
        assert!(
            (at.millis() - t("T-8m15s").millis()).abs() <= RESOLUTION_MS,
            "{at}"
        );
        // Smoke at T0, held 3 s; with the combine's 5 s on top.
        let smoke = reason("smoke", Some("node-b1"), Some(Signal::SmokeAlarm));
        let both = reason("both", None, None);
        let at = cause_moment(&s, &r, &[both, off_gas, smoke.clone()], t("T+1m")).unwrap();
        assert!((at.millis() - 8_000).abs() <= RESOLUTION_MS, "{at}");
        // Not yet true at the arrival: no cause.
        assert_eq!(cause_moment(&s, &r, &[smoke], t("T-1s")), None);
        // The PDU feed at T+8m, a share rule, 2 s.
        let pdu = reason(
            "pdu-feeds-lost",
            Some("pdu-a1"),
            Some(Signal::PduInputVoltage),
        );
        let at = cause_moment(&s, &r, &[pdu], t("T+9m")).unwrap();
        assert!((at.millis() - t("T+8m2s").millis()).abs() <= RESOLUTION_MS);
        // The UPS goes silent at T+8m.
        let lost = reason("lost", Some("ups-b1"), None);
        assert_eq!(cause_moment(&s, &r, &[lost], t("T+9m")), Some(t("T+8m")));
        // A rate has no scripted moment; neither has an unknown rule.
        let rise = reason("rise", Some("node-b1"), Some(Signal::RackTemperature));
        assert_eq!(cause_moment(&s, &r, &[rise], t("T+1m")), None);
        let unknown = reason("nope", Some("node-b1"), Some(Signal::OffGas));
        assert_eq!(cause_moment(&s, &r, &[unknown], t("T+1m")), None);
    }
}
