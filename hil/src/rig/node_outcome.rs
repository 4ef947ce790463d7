//! The firmware nodes' own decisions in a result: when each latched its alarm and why, its
//! reboots, what the line and the gateway's RTU polling saw, and the scenario's node
//! expectation (`node_alarm_by`, `node_never_alarms`) judged against them.

use serde::Serialize;

use super::outcome::Moment;
use super::peers::RtuFigures;
use crate::node::NodeReport;
use crate::node::feed::{StatusCounters, causes};
use crate::node::line::LineFigures;
use crate::scenario::{NodeExpectation, Scenario};

/// A change of a node's alarm-state register.
#[derive(Debug, Clone, Serialize)]
pub struct NodeAlarmRecord {
    /// When.
    pub at: Moment,
    /// The register.
    pub state: u16,
    /// Bit 0: the relay is latched.
    pub latched: bool,
    /// The causes present.
    pub causes: Vec<&'static str>,
    /// The faults register (bit n probe n; 8 off-gas, 9 room, 10 humidity).
    pub faults: u16,
}

/// A node's boot.
#[derive(Debug, Clone, Serialize)]
pub struct NodeBootRecord {
    /// When.
    pub at: Moment,
    /// The reset reason it reported (0 power-on, 1 watchdog, …).
    pub reset_reason: Option<u16>,
}

/// One firmware node in a result.
#[derive(Debug, Clone, Serialize)]
pub struct NodeOutcome {
    /// The device.
    pub device: String,
    /// Its unit id.
    pub unit: u8,
    /// When it first latched its alarm.
    pub first_alarm: Option<Moment>,
    /// Why: the causes when it latched.
    pub first_causes: Vec<&'static str>,
    /// Every change of its alarm state.
    pub alarms: Vec<NodeAlarmRecord>,
    /// Its boots: the first, and reboots.
    pub boots: Vec<NodeBootRecord>,
    /// Its line counters at the end (CRC and framing errors it saw, requests answered).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<StatusCounters>,
    /// Feed steps the rig sent it.
    pub feed_steps: u64,
}

/// The firmware nodes of a run.
#[derive(Debug, Clone, Serialize)]
pub struct NodeResult {
    /// The back-end: `host`, `qemu`, `serial`.
    pub backend: String,
    /// Each node.
    pub nodes: Vec<NodeOutcome>,
    /// The RS-485 line: bytes each way, corrupted, withheld.
    pub line: LineFigures,
    /// Bus B's line (the second gateway's), when there was one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line_b: Option<LineFigures>,
    /// The gateway's RTU polls of the nodes (from its /metrics).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway: Option<RtuFigures>,
}

impl NodeResult {
    /// The earliest latch of any node: (node, moment, causes).
    pub fn first_alarm(&self) -> Option<(&str, Moment, &[&'static str])> {
        self.nodes
            .iter()
            .filter_map(|n| {
                n.first_alarm
                    .map(|m| (n.device.as_str(), m, &n.first_causes[..]))
            })
            .min_by(|a, b| a.1.s.total_cmp(&b.1.s))
    }
}

/// Builds the node result from what the nodes reported; the failures it shows (a node that
/// refused the feed, died, or missed its expectation).
pub fn judge_nodes(
    scenario: &Scenario,
    report: NodeReport,
    gateway: Option<RtuFigures>,
) -> (NodeResult, Vec<String>) {
    let mut failures = Vec::new();
    let nodes: Vec<NodeOutcome> = report
        .nodes
        .into_iter()
        .map(|n| {
            for p in &n.problems {
                failures.push(p.clone());
            }
            if let Some(first) = n.refused.first() {
                failures.push(format!(
                    "{} refused {} feed line(s), first {first}",
                    n.device,
                    n.refused.len()
                ));
            }
            let first = n.first_latch();
            NodeOutcome {
                first_alarm: first.map(|a| Moment::of(a.at)),
                first_causes: first.map(|a| causes(a.state)).unwrap_or_default(),
                alarms: n
                    .alarms
                    .iter()
                    .map(|a| NodeAlarmRecord {
                        at: Moment::of(a.at),
                        state: a.state,
                        latched: a.state & 1 != 0,
                        causes: causes(a.state),
                        faults: a.faults,
                    })
                    .collect(),
                boots: n
                    .boots
                    .iter()
                    .map(|b| NodeBootRecord {
                        at: Moment::of(b.at),
                        reset_reason: b.reset_reason,
                    })
                    .collect(),
                line: n.status,
                feed_steps: n.steps,
                device: n.device,
                unit: n.unit,
            }
        })
        .collect();
    let result = NodeResult {
        backend: report.backend,
        nodes,
        line: report.line,
        line_b: report.line_b,
        gateway,
    };
    match scenario.node_expect {
        Some(NodeExpectation::AlarmBy(by)) => match result.first_alarm() {
            None => failures.push(format!(
                "expected a node alarm by {by}: no node latched its alarm"
            )),
            Some((node, at, why)) if at.at.0 > by => failures.push(format!(
                "expected a node alarm by {by}: {node} latched at {} ({}), {:.0} s late",
                at.at.0,
                why.join(", "),
                at.s - by.secs_f64()
            )),
            Some(_) => {}
        },
        Some(NodeExpectation::NeverAlarms) => {
            for n in &result.nodes {
                if let Some(at) = n.first_alarm {
                    failures.push(format!(
                        "expected no node alarm: {} latched at {} ({})",
                        n.device,
                        at.at.0,
                        n.first_causes.join(", ")
                    ));
                }
            }
        }
        None => {}
    }
    (result, failures)
}
