//! The firmware nodes: `[expect] node_alarm_by` / `node_never_alarms`, and `[line]`.

use super::Validator;
use crate::scenario::{
    Device, DeviceKind, LineNoise, MAX_LINE_NOISE, NodeExpectation, RawScenario, ScenarioError,
    Window,
};

impl Validator<'_> {
    /// `[expect] node_alarm_by` / `node_never_alarms`: one of them, with a node to judge.
    pub(super) fn node_expect(
        &self,
        raw: &RawScenario,
        devices: &[Device],
    ) -> Result<Option<NodeExpectation>, ScenarioError> {
        let expect = match (raw.expect.node_alarm_by, raw.expect.node_never_alarms) {
            (None, None) => return Ok(None),
            (Some(_), Some(_)) => {
                return Err(self.err(
                    "expect",
                    "give node_alarm_by or node_never_alarms, not both",
                ));
            }
            (None, Some(false)) => {
                return Err(self.err(
                    "expect.node_never_alarms",
                    "false expects nothing: leave it out, or give node_alarm_by",
                ));
            }
            (None, Some(true)) => NodeExpectation::NeverAlarms,
            (Some(by), None) => {
                self.within("expect.node_alarm_by", by, raw)?;
                NodeExpectation::AlarmBy(by)
            }
        };
        if !devices.iter().any(|d| d.kind == DeviceKind::Node) {
            return Err(self.err(
                "expect",
                format!("{expect}: the scenario has no device of kind \"node\""),
            ));
        }
        Ok(Some(expect))
    }

    /// `[line]`: noise on the nodes' line, with a node on it.
    pub(super) fn line(
        &self,
        raw: &RawScenario,
        devices: &[Device],
    ) -> Result<Option<LineNoise>, ScenarioError> {
        let Some(line) = &raw.line else {
            return Ok(None);
        };
        if !(line.noise > 0.0 && line.noise <= MAX_LINE_NOISE) {
            return Err(self.err(
                "line.noise",
                format!(
                    "{} is not above 0 and at most {MAX_LINE_NOISE} (the chance that a byte is corrupted)",
                    line.noise
                ),
            ));
        }
        if !devices.iter().any(|d| d.kind == DeviceKind::Node) {
            return Err(self.err(
                "line",
                "the scenario has no device of kind \"node\" to put on a line",
            ));
        }
        let from = line.from.unwrap_or(raw.start);
        self.within("line.from", from, raw)?;
        if let Some(to) = line.to {
            self.within("line.to", to, raw)?;
            if to <= from {
                return Err(self.err("line.to", format!("{to} is not after from ({from})")));
            }
        }
        Ok(Some(LineNoise {
            rate: line.noise,
            window: Window { from, to: line.to },
        }))
    }
}
