//! Scenarios as data: `hil/scenarios/*.toml`, read and checked before anything runs.
//!
//! Parsing is two steps, like the gateway's site configuration: serde reads [`RawScenario`]
//! (every unknown key an error), then [`Scenario::from_raw`] checks what types cannot. Every
//! error names the file, the key path and the problem:
//! `battery-fire.toml: timeline[3].device: no device named "ups-b9" (devices: node-b1, ups-b1)`.
//!
//! The format is described with an example in `docs/hil.md`; moments are [`ScenarioTime`]s.
//!
//! Modules by concern: `raw` (the file as serde reads it), `types` (what a checked scenario
//! is made of), `read` (TOML and directories), `check` (one module per section of the file),
//! `narrate` (what happens when).

use std::path::Path;
use std::time::Duration;

use firebreak_protocols::ZoneId;

use crate::time::ScenarioTime;

pub mod builtin;
mod check;
mod narrate;
mod raw;
mod read;
mod types;

pub use raw::{
    ControllerVerdict, NodeBackendKind, RawChange, RawDevice, RawEvent, RawEventKind, RawExpect,
    RawFault, RawFaultKind, RawGateway, RawLine, RawScenario, RawValue, RebootReason, UpsSource,
};
pub use read::{Loaded, load_dir, parse_raw};
pub use types::{
    Bus, ControllerExpectation, Device, DeviceKind, Event, EventKind, Expectation, Fault,
    FaultScope, FaultWindow, GatewaySpec, LineNoise, MAX_LINE_NOISE, Maintenance, NodeExpectation,
    Peer, SNMP_PDU_PROFILE, ScriptedSignal, Window, nominal,
};

/// A scenario that cannot be used: where, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{origin}{line}: {path}{sep}{problem}", line = line_suffix(*.line), sep = if path.is_empty() { "" } else { ": " })]
pub struct ScenarioError {
    /// The file (or other origin) the scenario came from.
    pub origin: String,
    /// The line, when the TOML parser knows it.
    pub line: Option<usize>,
    /// The key path (`timeline[3].value`), empty for the whole document.
    pub path: String,
    /// What is wrong.
    pub problem: String,
}

fn line_suffix(line: Option<usize>) -> String {
    line.map(|l| format!(":{l}")).unwrap_or_default()
}

/// A checked scenario.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    /// Its name (the file's name without `.toml`).
    pub name: String,
    /// What it models, in one line.
    pub description: String,
    /// Where it was read from.
    pub origin: String,
    /// When the replay starts.
    pub start: ScenarioTime,
    /// When it ends.
    pub end: ScenarioTime,
    /// The speed-up a rig uses unless told otherwise.
    pub time_scale: f64,
    /// The fastest replay that stays faithful (see `docs/hil.md`); `None` when any is.
    pub max_time_scale: Option<f64>,
    /// When the first servers lose power; `None` in nuisance scenarios.
    pub power_loss_at: Option<ScenarioTime>,
    /// The controllers' evacuation budget.
    pub evacuation_budget: Duration,
    /// The pass criterion.
    pub expect: Expectation,
    /// `[expect] normal_by`: the latest moment the site's return to `normal` may arrive (the
    /// last site level received must be `normal`); `None` when the scenario does not ask.
    pub normal_by: Option<ScenarioTime>,
    /// The site's hold time (`[policy] hold_s` of the generated configuration); the
    /// gateway's default when `None`.
    pub hold: Option<Duration>,
    /// The devices.
    pub devices: Vec<Device>,
    /// The infrastructure events, in time order.
    pub events: Vec<Event>,
    /// The node back-end the scenario asks for; the rig's `--node` overrides it.
    pub node: Option<NodeBackendKind>,
    /// `[expect] node_alarm_by` / `node_never_alarms`.
    pub node_expect: Option<NodeExpectation>,
    /// `[line] noise`.
    pub line_noise: Option<LineNoise>,
    /// The gateway processes: one implicit gateway, or the `[[gateways]]` entries.
    pub gateways: Vec<GatewaySpec>,
    /// Whether the scenario has `[[gateways]]`: the rig then runs a controller
    /// (`firebreak watch`) merging them.
    pub with_controller: bool,
    /// `[expect] controller_*`.
    pub controller_expect: ControllerExpectation,
}

impl Scenario {
    /// Reads and checks a scenario file; its `name` must be the file's name.
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ScenarioError {
            origin: origin.clone(),
            line: None,
            path: String::new(),
            problem: format!("cannot read: {e}"),
        })?;
        let scenario = Scenario::parse(&text, &origin)?;
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
        if scenario.name != stem {
            return Err(ScenarioError {
                origin,
                line: None,
                path: "name".into(),
                problem: format!(
                    "{:?} differs from the file's name ({stem:?}); a suite finds scenarios by file name",
                    scenario.name
                ),
            });
        }
        Ok(scenario)
    }

    /// Parses and checks a scenario; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Scenario, ScenarioError> {
        let raw = parse_raw(text, origin)?;
        Scenario::from_raw(raw, origin)
    }

    /// Checks what the types alone cannot.
    pub fn from_raw(raw: RawScenario, origin: &str) -> Result<Scenario, ScenarioError> {
        check::Validator { origin }.scenario(raw)
    }

    /// The whole expectation as text: `evacuate by T+3m`, `never above watch`, with
    /// `, normal by T+4m` when the scenario asks for the return to normal.
    pub fn expectation(&self) -> String {
        let mut text = self.expect.to_string();
        if let Some(by) = self.normal_by {
            text.push_str(&format!(", normal by {by}"));
        }
        if let Some(node) = self.node_expect {
            text.push_str(&format!(", {node}"));
        }
        if !self.controller_expect.is_empty() {
            text.push_str(&format!(", {}", self.controller_expect));
        }
        text
    }

    /// The sensor nodes, in the scenario's order.
    pub fn nodes(&self) -> impl Iterator<Item = &Device> {
        self.devices.iter().filter(|d| d.kind == DeviceKind::Node)
    }

    /// The device with this name.
    pub fn device(&self, name: &str) -> Option<&Device> {
        self.devices.iter().find(|d| d.name.as_str() == name)
    }

    /// The zones, in the order devices first name them.
    pub fn zones(&self) -> Vec<&ZoneId> {
        let mut zones: Vec<&ZoneId> = Vec::new();
        for d in &self.devices {
            if !zones.contains(&&d.zone) {
                zones.push(&d.zone);
            }
        }
        zones
    }

    /// How long the replay lasts in scenario time.
    pub fn duration(&self) -> Duration {
        self.end.since(self.start).unwrap_or_default()
    }
}

/// The valid Modbus exception codes a fault may answer with.
pub const EXCEPTION_CODES: [u8; 9] = [0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x08, 0x0A, 0x0B];

/// The longest `slow` delay: a minute.
pub const MAX_DELAY_MS: u64 = 60_000;

/// The longest replay: a day.
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);

/// The most `[[gateways]]` a scenario may run.
pub const MAX_GATEWAYS: usize = 4;

/// The longest `[[gateways]] name`: the gateway id `gw-<scenario>-<name>` must stay an id.
pub const MAX_GATEWAY_NAME: usize = 12;

/// The range of `[[gateways]] poll_factor`.
pub const POLL_FACTORS: std::ops::RangeInclusive<f64> = 0.25..=4.0;

/// The longest `hold_s`: the gateway's own limit, a day.
pub const MAX_HOLD_S: u64 = 86_400;

#[cfg(test)]
mod tests;
