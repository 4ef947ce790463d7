//! What a replay measured, judged against the scenario's expectation: the result table's
//! rows, the JSON the rig writes, and the figures in docs/performance.md.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use firebreak_protocols::Level;
use serde::Serialize;

use super::cause::{Rules, cause_moment};
use super::controller::{ControllerResult, Heard, judge_controller};
use super::node_outcome::{NodeResult, judge_nodes};
use super::peers::RtuFigures;
use super::subscriber::Received;
use crate::node::NodeReport;
use crate::scenario::{Expectation, Scenario};
use crate::time::ScenarioTime;

/// A moment of scenario time, as text (`T-3m20s`) and as seconds from T0.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Moment {
    /// `T-3m20s`.
    pub at: DisplayTime,
    /// Seconds from T0 (negative before).
    pub s: f64,
}

/// A [`ScenarioTime`] serialized as its text.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DisplayTime(pub ScenarioTime);

impl Serialize for DisplayTime {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

impl Moment {
    /// The moment `t`.
    pub fn of(t: ScenarioTime) -> Moment {
        Moment {
            at: DisplayTime(t),
            s: t.secs_f64(),
        }
    }
}

/// One trigger as the subscriber received it.
#[derive(Debug, Clone, Serialize)]
pub struct TriggerRecord {
    /// The gateway that issued it.
    pub gateway: String,
    /// Its seq.
    pub seq: u64,
    /// The zone, absent for the site.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    /// The new level.
    pub level: Level,
    /// The level before.
    pub previous: Level,
    /// When it arrived at the subscriber.
    pub arrived: Moment,
    /// The rules it gives, with sensor, value and threshold.
    pub reasons: Vec<String>,
    /// Its estimate of the seconds to power loss.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seconds_to_power_loss: Option<u32>,
    /// Whether it arrived before (a re-send of a seq already received).
    pub duplicate: bool,
    /// Milliseconds from `issued_at_ms` (the gateway's decision) to the arrival.
    pub delivery_ms: i64,
    /// For a raise: milliseconds of real time from its cause in the simulator (see
    /// [`cause_moment`]) to the arrival.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
}

/// A publication that did not verify.
#[derive(Debug, Clone, Serialize)]
pub struct RejectedRecord {
    /// When it arrived.
    pub arrived: Moment,
    /// Why it was refused.
    pub why: String,
}

/// p50 and p99 (nearest rank) of a set of measurements.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Default)]
pub struct Percentiles {
    /// How many.
    pub count: usize,
    /// Median.
    pub p50: Option<f64>,
    /// 99th percentile.
    pub p99: Option<f64>,
    /// Largest.
    pub max: Option<f64>,
}

impl Percentiles {
    /// The percentiles of `values`.
    pub fn of(mut values: Vec<f64>) -> Percentiles {
        values.retain(|v| v.is_finite());
        values.sort_by(f64::total_cmp);
        let rank = |p: f64| {
            if values.is_empty() {
                return None;
            }
            let i = ((p * values.len() as f64).ceil() as usize).clamp(1, values.len()) - 1;
            values.get(i).copied()
        };
        Percentiles {
            count: values.len(),
            p50: rank(0.50),
            p99: rank(0.99),
            max: values.last().copied(),
        }
    }
}

/// An infrastructure event and what the rig did.
#[derive(Debug, Clone, Serialize)]
pub struct EventRecord {
    /// When the scenario asks for it.
    pub at: Moment,
    /// `broker-stop`, …
    pub kind: String,
    /// What happened.
    pub outcome: String,
}

/// One gateway process of a run.
#[derive(Debug, Clone, Serialize)]
pub struct GatewayRecord {
    /// Its name in the scenario (empty for the implicit gateway).
    pub name: String,
    /// Its gateway id.
    pub id: String,
    /// The nodes' bus it read (A or B).
    pub bus: String,
    /// Its poll period, real ms.
    pub poll_ms: u64,
    /// Triggers it logged as issued.
    pub issued: usize,
    /// Whether the scenario cut its bus.
    pub bus_cut: bool,
    /// How it read the sensor nodes (its `/metrics`), when the scenario has nodes and it
    /// was scraped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rtu: Option<RtuFigures>,
}

/// The result of one scenario.
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioResult {
    /// The scenario's name.
    pub scenario: String,
    /// What it models.
    pub description: String,
    /// Scenario seconds per real second.
    pub time_scale: f64,
    /// The expectation, as text.
    pub expect: String,
    /// Whether every check passed.
    pub passed: bool,
    /// What failed, one line each.
    pub failures: Vec<String>,
    /// The modelled power loss.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub power_loss_at: Option<Moment>,
    /// The controllers' budget.
    pub evacuation_budget_s: u64,
    /// When the site's first `watch` arrived.
    pub first_watch: Option<Moment>,
    /// When the site's first `prepare` arrived.
    pub first_prepare: Option<Moment>,
    /// When the site's first `evacuate` arrived.
    pub first_evacuate: Option<Moment>,
    /// The highest site level that arrived.
    pub highest: Level,
    /// `[expect] normal_by`, when the scenario asks for the site's return to normal.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub normal_by: Option<Moment>,
    /// When the site's return to `normal` arrived, if the last site level received is
    /// `normal` and the site had left it; `None` otherwise (never left, or not back).
    pub back_to_normal: Option<Moment>,
    /// The last site level received (`normal` when none arrived).
    pub last_level: Level,
    /// Power loss minus the first `evacuate` at the subscriber, in scenario seconds.
    pub lead_time_s: Option<f64>,
    /// Raises above what a nuisance scenario allows (site or zone); `None` for scenarios with a
    /// power loss, where no escalation is false.
    pub false_escalations: Option<usize>,
    /// Distinct triggers received.
    pub triggers: usize,
    /// Seqs the gateway issued (its log) or skipped, never received.
    pub missed: Vec<u64>,
    /// Receptions of a seq already received (at-least-once delivery; not a failure).
    pub duplicates: usize,
    /// Publications that did not verify.
    pub rejected: Vec<RejectedRecord>,
    /// End-to-end latency of raises, cause in the simulator → subscriber, real ms.
    pub latency_ms: Percentiles,
    /// Decision (`issued_at_ms`) → subscriber, real ms.
    pub delivery_ms: Percentiles,
    /// The infrastructure events.
    pub events: Vec<EventRecord>,
    /// Every reception, in order.
    pub received: Vec<TriggerRecord>,
    /// Real seconds the run took, setup included.
    pub wall_s: f64,
    /// The node back-end: `stand-in`, `host`, `qemu` or `serial`.
    pub node_backend: String,
    /// The firmware nodes' own decisions (firmware back-ends only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<NodeResult>,
    /// What the run could not judge, and why (not failures).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// The gateway processes (one unless the scenario has `[[gateways]]`).
    pub gateways: Vec<GatewayRecord>,
    /// The controller's merged view (with `[[gateways]]`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub controller: Option<ControllerResult>,
    /// The scenario itself (for the SVG timeline); not in the JSON.
    #[serde(skip)]
    pub source: Option<Scenario>,
}

/// What the run observed, for [`judge`].
#[derive(Debug, Clone)]
pub struct Observed {
    /// Every publication received, in order.
    pub received: Vec<Received>,
    /// The seqs each gateway (by id) logged as issued.
    pub issued: BTreeMap<String, BTreeSet<u64>>,
    /// The events and what the rig did.
    pub events: Vec<EventRecord>,
    /// Problems of the run itself (a gateway that died, an event not carried out).
    pub problems: Vec<String>,
    /// The scale the replay ran at.
    pub time_scale: f64,
    /// Whether the devices were simulated (latency from the script makes sense).
    pub simulated: bool,
    /// Real seconds.
    pub wall_s: f64,
    /// The node back-end's name.
    pub backend: &'static str,
    /// What the firmware nodes did (firmware back-ends).
    pub nodes: Option<NodeReport>,
    /// The (first) gateway's RTU figures for the nodes.
    pub gateway_rtu: Option<RtuFigures>,
    /// The gateway processes.
    pub gateways: Vec<GatewayRecord>,
    /// What the controller printed, when one ran.
    pub controller: Option<Vec<Heard>>,
}

/// Judges a run: the expectation, missed and rejected triggers, and the figures.
pub fn judge(scenario: &Scenario, rules: &Rules, observed: Observed) -> ScenarioResult {
    let mut failures = observed.problems.clone();
    // Seqs are per gateway: (gateway, seq) names a trigger.
    let mut seen: BTreeMap<(String, u64), usize> = BTreeMap::new();
    let mut records = Vec::new();
    let mut rejected = Vec::new();
    for r in &observed.received {
        let t = match &r.trigger {
            Ok(t) => t,
            Err(why) => {
                rejected.push(RejectedRecord {
                    arrived: Moment::of(r.at),
                    why: why.clone(),
                });
                continue;
            }
        };
        let count = seen.entry((t.gateway.to_string(), t.seq)).or_insert(0);
        *count += 1;
        let duplicate = *count > 1;
        let raise = t.level > t.previous;
        let latency_ms = (raise && !duplicate && observed.simulated)
            .then(|| cause_moment(scenario, rules, &t.reasons, r.at))
            .flatten()
            .map(|cause| (r.at.millis() - cause.millis()) as f64 / observed.time_scale);
        records.push(TriggerRecord {
            gateway: t.gateway.to_string(),
            seq: t.seq,
            zone: t.zone.as_ref().map(|z| z.to_string()),
            level: t.level,
            previous: t.previous,
            arrived: Moment::of(r.at),
            reasons: t.reasons.iter().map(describe_reason).collect(),
            seconds_to_power_loss: t.seconds_to_power_loss,
            duplicate,
            delivery_ms: i64::try_from(r.wall_ms).unwrap_or(i64::MAX)
                - i64::try_from(t.issued_at_ms).unwrap_or(i64::MAX),
            latency_ms,
        });
    }
    let firsts: Vec<&TriggerRecord> = records.iter().filter(|r| !r.duplicate).collect();
    let site = |level: Level| {
        firsts
            .iter()
            .find(|r| r.zone.is_none() && r.level == level)
            .map(|r| r.arrived)
    };
    let (first_watch, first_prepare, first_evacuate) = (
        site(Level::Watch),
        site(Level::Prepare),
        site(Level::Evacuate),
    );
    let highest = firsts
        .iter()
        .map(|r| r.level)
        .max()
        .unwrap_or(Level::Normal);
    // The site's last level as received: a return to normal is judged on it.
    let last_site = firsts.iter().rev().find(|r| r.zone.is_none());
    let last_level = last_site.map_or(Level::Normal, |r| r.level);
    let back_to_normal = last_site
        .filter(|r| r.level == Level::Normal)
        .map(|r| r.arrived);
    let lead_time_s = scenario
        .power_loss_at
        .zip(first_evacuate)
        .map(|(p, e)| p.secs_f64() - e.s);

    // Missed: issued and never received, and holes in the received seqs, per gateway.
    let mut by_gateway: BTreeMap<&str, BTreeSet<u64>> = BTreeMap::new();
    for (g, seq) in seen.keys() {
        by_gateway.entry(g.as_str()).or_default().insert(*seq);
    }
    for g in observed.issued.keys() {
        by_gateway.entry(g.as_str()).or_default();
    }
    let mut missed: Vec<u64> = Vec::new();
    for (g, got) in &by_gateway {
        let mut gone: BTreeSet<u64> = observed
            .issued
            .get(*g)
            .map(|issued| issued.difference(got).copied().collect())
            .unwrap_or_default();
        if let (Some(&lo), Some(&hi)) = (got.first(), got.last()) {
            gone.extend((lo..=hi).filter(|s| !got.contains(s)));
        }
        if !gone.is_empty() {
            failures.push(format!(
                "{} trigger(s) of {g} issued but never received: seq {}",
                gone.len(),
                gone.iter()
                    .map(u64::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        missed.extend(gone);
    }
    if !rejected.is_empty() {
        failures.push(format!(
            "{} publication(s) on the trigger topic did not verify: {}",
            rejected.len(),
            rejected.first().map(|r| r.why.as_str()).unwrap_or("")
        ));
    }

    let false_escalations = match scenario.expect {
        Expectation::NeverAbove(ceiling) => {
            // The site's level is the highest of its zones': count the site's raises.
            let n = firsts
                .iter()
                .filter(|r| r.zone.is_none() && r.level > ceiling && r.level > r.previous)
                .count();
            if n > 0 {
                let worst = firsts
                    .iter()
                    .filter(|r| r.level > ceiling)
                    .map(|r| {
                        format!(
                            "{} {} at {}",
                            r.zone.as_deref().unwrap_or("site"),
                            r.level,
                            r.arrived.at.0
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("; ");
                failures.push(format!(
                    "expected never above {ceiling}: {n} escalation(s) above it ({worst})"
                ));
            }
            Some(n)
        }
        Expectation::EvacuateBy(by) => {
            match first_evacuate {
                None => failures.push(format!(
                    "expected evacuate by {by}: none arrived (highest site level {highest})"
                )),
                Some(e) if e.at.0 > by => failures.push(format!(
                    "expected evacuate by {by}: it arrived at {} ({:.0} s late)",
                    e.at.0,
                    e.s - by.secs_f64()
                )),
                Some(_) => {}
            }
            None
        }
    };

    if let Some(by) = scenario.normal_by {
        match (last_site, back_to_normal) {
            (None, _) => failures.push(format!(
                "expected the site back to normal by {by}: it never left normal"
            )),
            (Some(r), None) => failures.push(format!(
                "expected the site back to normal by {by}: the last site level received is {} (at {})",
                r.level, r.arrived.at.0
            )),
            (Some(_), Some(n)) if n.at.0 > by => failures.push(format!(
                "expected the site back to normal by {by}: it arrived at {} ({:.0} s late)",
                n.at.0,
                n.s - by.secs_f64()
            )),
            (Some(_), Some(_)) => {}
        }
    }

    let mut notes = Vec::new();
    let node = match observed.nodes {
        Some(report) => {
            let (result, node_failures) = judge_nodes(scenario, report, observed.gateway_rtu);
            failures.extend(node_failures);
            Some(result)
        }
        None => {
            if let Some(e) = scenario.node_expect
                && scenario.nodes().next().is_some()
            {
                notes.push(format!(
                    "{e}: not judged, the nodes were the {} (no firmware); run with --node host or qemu",
                    observed.backend
                ));
            }
            None
        }
    };
    let controller = observed.controller.map(|heard| {
        let ids = observed.gateways.iter().map(|g| g.id.clone()).collect();
        let (result, controller_failures) = judge_controller(scenario, ids, &heard);
        failures.extend(controller_failures);
        result
    });
    // With a bus cut, a gateway whose own bus was never cut must still have read the nodes.
    if observed.gateways.iter().any(|g| g.bus_cut) {
        for g in observed.gateways.iter().filter(|g| !g.bus_cut) {
            match &g.rtu {
                Some(f) if f.polls == 0 => failures.push(format!(
                    "{} (bus {}, never cut) did not read the nodes",
                    g.id, g.bus
                )),
                Some(f) if f.errors.values().sum::<u64>() > 0 => failures.push(format!(
                    "{} (bus {}, never cut) had errors reading the nodes: {:?}",
                    g.id, g.bus, f.errors
                )),
                Some(_) => {}
                None => notes.push(format!(
                    "{}: how it read the nodes is unknown (no /metrics)",
                    g.id
                )),
            }
        }
    }
    let latency_ms = Percentiles::of(records.iter().filter_map(|r| r.latency_ms).collect());
    let delivery_ms = Percentiles::of(
        records
            .iter()
            .filter(|r| !r.duplicate)
            .map(|r| r.delivery_ms as f64)
            .collect(),
    );
    ScenarioResult {
        scenario: scenario.name.clone(),
        description: scenario.description.clone(),
        time_scale: observed.time_scale,
        expect: scenario.expectation(),
        passed: failures.is_empty(),
        failures,
        power_loss_at: scenario.power_loss_at.map(Moment::of),
        evacuation_budget_s: scenario.evacuation_budget.as_secs(),
        first_watch,
        first_prepare,
        first_evacuate,
        highest,
        normal_by: scenario.normal_by.map(Moment::of),
        back_to_normal,
        last_level,
        lead_time_s,
        false_escalations,
        triggers: seen.len(),
        missed,
        duplicates: records.iter().filter(|r| r.duplicate).count(),
        rejected,
        latency_ms,
        delivery_ms,
        events: observed.events,
        received: records,
        wall_s: observed.wall_s,
        node_backend: observed.backend.to_string(),
        node,
        notes,
        gateways: observed.gateways,
        controller,
        source: Some(scenario.clone()),
    }
}

/// A scenario that could not be run at all.
pub fn not_run(scenario: &str, description: &str, why: String) -> ScenarioResult {
    ScenarioResult {
        scenario: scenario.to_string(),
        description: description.to_string(),
        time_scale: 0.0,
        expect: String::new(),
        passed: false,
        failures: vec![why],
        power_loss_at: None,
        evacuation_budget_s: 0,
        first_watch: None,
        first_prepare: None,
        first_evacuate: None,
        highest: Level::Normal,
        normal_by: None,
        back_to_normal: None,
        last_level: Level::Normal,
        lead_time_s: None,
        false_escalations: None,
        triggers: 0,
        missed: Vec::new(),
        duplicates: 0,
        rejected: Vec::new(),
        latency_ms: Percentiles::default(),
        delivery_ms: Percentiles::default(),
        events: Vec::new(),
        received: Vec::new(),
        wall_s: 0.0,
        node_backend: String::new(),
        node: None,
        notes: Vec::new(),
        gateways: Vec::new(),
        controller: None,
        source: None,
    }
}

/// `off-gas node-b1 off-gas = 24.1 (threshold 20)`.
pub fn describe_reason(r: &firebreak_protocols::Reason) -> String {
    let mut s = r.rule.to_string();
    if let Some(d) = &r.device {
        let _ = write!(s, " {d}");
    }
    if let Some(sig) = r.signal {
        let _ = write!(s, " {sig}");
        if r.channel != 0 {
            let _ = write!(s, "[{}]", r.channel);
        }
    }
    let _ = write!(s, " = {} (threshold {})", r.value, r.threshold);
    s
}

/// A moment to the second, for the table.
fn moment(m: Option<Moment>) -> String {
    m.map_or_else(
        || "-".to_string(),
        |m| ScenarioTime::from_millis((m.s.round() as i64) * 1000).to_string(),
    )
}

fn ms(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_string(), |v| format!("{v:.0}"))
}

/// The result table, one row per scenario, then the failures.
pub fn table(results: &[ScenarioResult]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<34} {:>5} {:<6} {:>10} {:>10} {:>10} {:>10} {:<24} {:>7} {:>5} {:>6} {:>4} {:>13} {:>13}",
        "scenario",
        "scale",
        "result",
        "watch",
        "prepare",
        "evacuate",
        "normal",
        "node alarm",
        "lead",
        "false",
        "missed",
        "dup",
        "e2e p50/p99",
        "deliv p50/p99"
    );
    for r in results {
        let lead = r
            .lead_time_s
            .map_or_else(|| "-".to_string(), |l| format!("{l:.0} s"));
        let false_esc = r
            .false_escalations
            .map_or_else(|| "-".to_string(), |n| n.to_string());
        let _ = writeln!(
            out,
            "{:<34} {:>5} {:<6} {:>10} {:>10} {:>10} {:>10} {:<24} {:>7} {:>5} {:>6} {:>4} {:>13} {:>13}",
            r.scenario,
            format!("x{}", r.time_scale),
            if r.passed { "PASS" } else { "FAIL" },
            moment(r.first_watch),
            moment(r.first_prepare),
            moment(r.first_evacuate),
            moment(r.back_to_normal),
            node_cell(r),
            lead,
            false_esc,
            r.missed.len(),
            r.duplicates,
            format!("{}/{} ms", ms(r.latency_ms.p50), ms(r.latency_ms.p99)),
            format!("{}/{} ms", ms(r.delivery_ms.p50), ms(r.delivery_ms.p99)),
        );
    }
    for r in results {
        if let Some(c) = &r.controller {
            let _ = writeln!(out, "{:<34} {}", r.scenario, controller_line(c));
        }
    }
    let passed = results.iter().filter(|r| r.passed).count();
    let _ = writeln!(out, "{passed} of {} scenario(s) passed", results.len());
    for r in results.iter().filter(|r| !r.passed) {
        for f in &r.failures {
            let _ = writeln!(out, "FAIL {}: {f}", r.scenario);
        }
    }
    out
}

/// The table's node column: when the first firmware node latched, and why; `-` when none
/// did; `stand-in` when no firmware ran.
fn node_cell(r: &ScenarioResult) -> String {
    if r.source
        .as_ref()
        .is_some_and(|s| s.nodes().next().is_none())
    {
        return "(no node)".to_string();
    }
    match &r.node {
        None if r.node_backend.is_empty() || r.node_backend == "stand-in" => {
            "(stand-in)".to_string()
        }
        None => "?".to_string(),
        Some(n) => match n.first_alarm() {
            None => format!("- ({})", n.backend),
            Some((_, at, why)) => format!("{} {}", moment(Some(at)), why.join("+")),
        },
    }
}

/// The controller's merged view in one line: `controller (gw-a, gw-b): merged evacuate
/// T+12s by gw-b, lead 468 s, highest evacuate, 0 flaps, site silent T-2m30s`.
pub fn controller_line(c: &ControllerResult) -> String {
    let mut s = format!("controller ({}):", c.gateways.join(", "));
    match (c.first_evacuate, &c.evacuate_by_gateway) {
        (Some(e), Some(by)) => {
            let _ = write!(s, " merged evacuate {} by {by}", moment(Some(e)));
        }
        _ => s.push_str(" no merged evacuate"),
    }
    if let Some(l) = c.lead_time_s {
        let _ = write!(s, ", lead {l:.0} s");
    }
    let _ = write!(s, ", highest {}, {} flap(s)", c.highest, c.flaps);
    if let Some(t) = c.site_silent {
        let _ = write!(s, ", site silent during alarm {}", moment(Some(t)));
    }
    let stale: Vec<String> = c
        .notes
        .iter()
        .filter(|n| n.event == "stale")
        .map(|n| format!("{} {}", moment(Some(n.at)), n.detail))
        .collect();
    if !stale.is_empty() {
        let _ = write!(s, ", stale: {}", stale.join("; "));
    }
    s
}

/// The controller's merged levels and notes of one run, one line each.
pub fn controller_lines(c: &ControllerResult) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "  controller (firebreak watch) merging {}:",
        c.gateways.join(", ")
    );
    let mut lines: Vec<(f64, String)> = c
        .levels
        .iter()
        .map(|l| {
            (
                l.at.s,
                format!(
                    "  {:>12}  merged site {} -> {} (changed by {})",
                    l.at.at.0.to_string(),
                    l.previous,
                    l.level,
                    l.by
                ),
            )
        })
        .collect();
    lines.extend(c.notes.iter().map(|n| {
        (
            n.at.s,
            format!("  {:>12}  {} {}", n.at.at.0.to_string(), n.event, n.detail),
        )
    }));
    lines.sort_by(|a, b| a.0.total_cmp(&b.0));
    for (_, l) in lines {
        let _ = writeln!(out, "{l}");
    }
    let _ = writeln!(out, "  {}", controller_line(c));
    out
}

/// The firmware nodes' decisions of one run, one line each.
pub fn node_lines(n: &NodeResult) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "  firmware nodes ({}):", n.backend);
    for node in &n.nodes {
        for b in &node.boots {
            let _ = writeln!(
                out,
                "  {:>12}  {} (unit {}) booted, reset reason {}",
                b.at.at.0.to_string(),
                node.device,
                node.unit,
                b.reset_reason
                    .map_or_else(|| "not said".to_string(), |r| r.to_string())
            );
        }
        for a in &node.alarms {
            let _ = writeln!(
                out,
                "  {:>12}  {} alarm-state 0x{:04X}{} {}",
                a.at.at.0.to_string(),
                node.device,
                a.state,
                if a.latched { " latched" } else { "" },
                a.causes.join(", ")
            );
        }
        if let Some(l) = node.line {
            let _ = writeln!(
                out,
                "  {:>12}  {} saw {} CRC and {} framing error(s), answered {} request(s); {} feed steps",
                "end", node.device, l.crc_errors, l.framing_errors, l.answered, node.feed_steps
            );
        }
    }
    for (name, l) in std::iter::once(("line", Some(n.line))).chain([("bus B line", n.line_b)]) {
        let Some(l) = l else { continue };
        let _ = writeln!(
            out,
            "  {name}: {} bytes to the nodes, {} to the gateway, {} corrupted, {} withheld",
            l.bytes_to_nodes, l.bytes_to_gateway, l.bytes_corrupted, l.bytes_withheld
        );
    }
    if let Some(g) = &n.gateway {
        let errors: Vec<String> = g.errors.iter().map(|(k, v)| format!("{v} {k}")).collect();
        let reboots: Vec<String> = g.reboots.iter().map(|(k, v)| format!("{v} {k}")).collect();
        let list = |v: Vec<String>| {
            if v.is_empty() {
                "none".to_string()
            } else {
                v.join(", ")
            }
        };
        let _ = writeln!(
            out,
            "  gateway: {} RTU polls of the nodes, mean {} ms, errors: {}, reboots seen: {}",
            g.polls,
            ms(g.mean_poll_ms),
            list(errors),
            list(reboots)
        );
    }
    out
}

/// The triggers of one scenario as a controller saw them, one line each.
pub fn trigger_lines(r: &ScenarioResult) -> String {
    let mut out = String::new();
    for t in &r.received {
        let _ = writeln!(
            out,
            "  {:>12}  {}seq {}{} {:<14} {} -> {}{}  | {}{}",
            t.arrived.at.0.to_string(),
            if r.gateways.len() > 1 {
                format!("{} ", t.gateway)
            } else {
                String::new()
            },
            t.seq,
            if t.duplicate { " (again)" } else { "" },
            t.zone.as_deref().unwrap_or("site"),
            t.previous,
            t.level,
            t.seconds_to_power_loss
                .map_or_else(String::new, |s| format!(", power loss in ~{s} s")),
            t.reasons.first().map_or("no reason", String::as_str),
            t.latency_ms
                .map_or_else(String::new, |l| format!("  [{l:.0} ms after its cause]")),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A site trigger (no zone) from `previous` to `level`, received at `at` seconds.
    fn site(seq: u64, previous: &str, level: &str, at: i64) -> Received {
        let json = format!(
            r#"{{"schema":"firebreak.trigger/1","gateway":"gw-t","seq":{seq},"incident":"gw-t-1","site":"hil-t","level":"{level}","previous":"{previous}","reasons":[],"issued_at":"2026-01-01T00:00:00.000Z","issued_at_ms":1767225600000}}"#
        );
        Received {
            at: ScenarioTime::from_secs(at),
            wall_ms: 1_767_225_600_000,
            trigger: Ok(serde_json::from_str(&json).unwrap()),
        }
    }

    fn judged(normal_by: &str, received: Vec<Received>) -> ScenarioResult {
        let text = format!(
            r#"name = "t"
description = "evacuates, then recovers"
start = "T-1m"
end = "T+6m"
evacuation_budget_s = 300
hold_s = 10

[expect]
evacuate_by = "T+2m30s"
normal_by = "{normal_by}"

[[devices]]
name = "ups-1"
kind = "ups"
zone = "hall"
"#
        );
        let scenario = Scenario::parse(&text, "t.toml").unwrap();
        let observed = Observed {
            issued: BTreeMap::from([(
                "gw-t".to_string(),
                received
                    .iter()
                    .filter_map(|r| r.trigger.as_ref().ok().map(|t| t.seq))
                    .collect(),
            )]),
            received,
            events: Vec::new(),
            problems: Vec::new(),
            time_scale: 10.0,
            simulated: true,
            wall_s: 1.0,
            backend: "stand-in",
            nodes: None,
            gateway_rtu: None,
            gateways: Vec::new(),
            controller: None,
        };
        judge(&scenario, &Rules::default(), observed)
    }

    #[test]
    fn the_return_to_normal_is_judged_on_the_last_site_level() {
        let evacuated = || {
            vec![
                site(1, "normal", "prepare", 30),
                site(2, "prepare", "evacuate", 125),
            ]
        };
        let mut back = evacuated();
        back.extend([
            site(3, "evacuate", "prepare", 195),
            site(4, "prepare", "normal", 215),
        ]);
        let r = judged("T+4m", back);
        assert!(r.passed, "{:?}", r.failures);
        assert_eq!(r.back_to_normal.map(|m| m.s), Some(215.0));
        assert_eq!(r.last_level, Level::Normal);
        assert_eq!(r.expect, "evacuate by T+2m30s, normal by T+4m");
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["normal_by"]["at"], "T+4m");
        assert_eq!(json["back_to_normal"]["at"], "T+3m35s");
        assert!(table(&[r]).contains("T+3m35s"));

        let late = judged("T+3m30s", {
            let mut v = evacuated();
            v.push(site(3, "evacuate", "normal", 215));
            v
        });
        assert_eq!(
            late.failures,
            ["expected the site back to normal by T+3m30s: it arrived at T+3m35s (5 s late)"]
        );

        let stuck = judged("T+4m", evacuated());
        assert_eq!(
            stuck.failures,
            [
                "expected the site back to normal by T+4m: the last site level received is evacuate (at T+2m5s)"
            ]
        );
        assert_eq!(stuck.back_to_normal, None);

        // Back to normal, then up again: the last level counts.
        let mut again = evacuated();
        again.extend([
            site(3, "evacuate", "normal", 200),
            site(4, "normal", "watch", 230),
        ]);
        let again = judged("T+4m", again);
        assert_eq!(
            again.failures,
            [
                "expected the site back to normal by T+4m: the last site level received is watch (at T+3m50s)"
            ]
        );
    }

    #[test]
    fn percentiles_by_nearest_rank() {
        let p = Percentiles::of((1..=100).map(f64::from).collect());
        assert_eq!((p.p50, p.p99, p.max), (Some(50.0), Some(99.0), Some(100.0)));
        let one = Percentiles::of(vec![7.0]);
        assert_eq!((one.p50, one.p99), (Some(7.0), Some(7.0)));
        assert_eq!(Percentiles::of(Vec::new()).p50, None);
    }
}
