//! Scenarios as data: `hil/scenarios/*.toml`, read and checked before anything runs.
//!
//! Parsing is two steps, like the gateway's site configuration: serde reads [`RawScenario`]
//! (every unknown key an error), then [`Scenario::from_raw`] checks what types cannot. Every
//! error names the file, the key path and the problem:
//! `battery-fire.toml: timeline[3].device: no device named "ups-b9" (devices: node-b1, ups-b1)`.
//!
//! The format is described with an example in `docs/hil.md`; moments are [`ScenarioTime`]s.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use firebreak_protocols::{
    DeviceId, DeviceProfile, GENERIC_PDU, GENERIC_UPS, IdError, Level, RegisterDescriptor,
    SENSOR_NODE, Signal, SignalKind, SiteId, ZoneId, encode_raw,
};
use serde::Deserialize;

use crate::time::{ScenarioTime, human};
use crate::timeline::{Segment, Timeline};

pub mod builtin;
mod raw;

pub use raw::{
    NodeBackendKind, RawChange, RawDevice, RawEvent, RawEventKind, RawExpect, RawFault,
    RawFaultKind, RawLine, RawScenario, RawValue, RebootReason,
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

/// What a simulated device is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeviceKind {
    /// A UPS network card: Modbus TCP, the `generic-ups` profile.
    Ups,
    /// A metered PDU: Modbus TCP, the `generic-pdu` profile.
    Pdu,
    /// The battery-room sensor node: the `firebreak-sensor-node` profile (see
    /// [`node`](crate::node): a stand-in over Modbus TCP, or the firmware itself).
    Node,
    /// A building sensor publishing JSON over MQTT.
    RoomMqtt,
}

impl DeviceKind {
    /// The name scenario files use.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Ups => "ups",
            Self::Pdu => "pdu",
            Self::Node => "node",
            Self::RoomMqtt => "room-mqtt",
        }
    }

    /// The built-in register map a Modbus device serves; `None` for MQTT devices.
    pub const fn profile(self) -> Option<&'static DeviceProfile<'static>> {
        match self {
            Self::Ups => Some(&GENERIC_UPS),
            Self::Pdu => Some(&GENERIC_PDU),
            Self::Node => Some(&SENSOR_NODE),
            Self::RoomMqtt => None,
        }
    }

    /// Whether the device is read over Modbus.
    pub const fn is_modbus(self) -> bool {
        self.profile().is_some()
    }
}

impl fmt::Display for DeviceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

/// The value a signal has when a scenario does not set it: a healthy site at ordinary load.
///
/// A UPS at 45 % load with 10 minutes of runtime (DOMAIN.md: 5–15 minutes is typical at
/// data-center load), 230 V in and out; a PDU drawing 8 A at 230 V; a battery room at 23 °C
/// and 40 %RH with racks at 24 °C and no off-gas.
pub fn nominal(signal: Signal) -> f32 {
    match signal {
        Signal::UpsRuntimeRemaining => 600.0,
        Signal::UpsBatteryCharge => 100.0,
        Signal::UpsBatteryTemperature => 25.0,
        Signal::UpsInputVoltage | Signal::UpsOutputVoltage | Signal::PduInputVoltage => 230.0,
        Signal::UpsLoad => 45.0,
        Signal::PduCurrent => 8.0,
        Signal::PduPower => 1840.0,
        Signal::RoomTemperature => 23.0,
        Signal::RoomHumidity => 40.0,
        Signal::RackTemperature => 24.0,
        // States are off, codes 0 (the transfer switch on utility), off-gas 0 ppm.
        _ => 0.0,
    }
}

/// A span of scenario time: from `from` up to (not including) `to`; to the end when `to` is
/// `None`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Start, included.
    pub from: ScenarioTime,
    /// End, excluded; `None` for "until the scenario ends".
    pub to: Option<ScenarioTime>,
}

impl Window {
    /// Whether `t` is inside.
    pub fn contains(&self, t: ScenarioTime) -> bool {
        t >= self.from && self.to.is_none_or(|to| t < to)
    }

    fn overlaps(&self, other: &Window) -> bool {
        let ends_after = |w: &Window, t: ScenarioTime| w.to.is_none_or(|to| to > t);
        ends_after(self, other.from) && ends_after(other, self.from)
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.to {
            Some(to) => write!(f, "{}..{}", self.from, to),
            None => write!(f, "{}..end", self.from),
        }
    }
}

/// What goes wrong with a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// No answer at all: requests time out (MQTT: nothing is published).
    Silent,
    /// Every request is answered with this Modbus exception code.
    Exception(u8),
    /// Random register contents (MQTT: a payload that is not JSON).
    Garbage,
    /// Every register reads 0xFFFF (MQTT: every field is 65535).
    AllOnes,
    /// The TCP connection is closed at the next request (MQTT: the sensor disconnects).
    Drop,
    /// Answers come this much real time late (MQTT: publications come late).
    Slow(Duration),
    /// Values freeze at what they were when the fault started.
    Stuck,
}

impl Fault {
    /// The name scenario files use.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Silent => "silent",
            Self::Exception(_) => "exception",
            Self::Garbage => "garbage",
            Self::AllOnes => "all-ones",
            Self::Drop => "drop",
            Self::Slow(_) => "slow",
            Self::Stuck => "stuck",
        }
    }

    /// Whether the fault can apply to one signal's registers rather than the whole device.
    pub const fn can_target_a_value(self) -> bool {
        matches!(self, Self::Garbage | Self::AllOnes | Self::Stuck)
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exception(code) => write!(f, "exception 0x{code:02X}"),
            Self::Slow(d) => write!(f, "slow ({} ms)", d.as_millis()),
            other => f.pad(other.name()),
        }
    }
}

/// What a fault applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultScope {
    /// The whole device.
    Device,
    /// One value: the registers of one signal and channel.
    Value {
        /// The signal.
        signal: Signal,
        /// Its channel.
        channel: u8,
    },
}

/// A fault during a window of scenario time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultWindow {
    /// When.
    pub window: Window,
    /// What.
    pub fault: Fault,
    /// On what.
    pub scope: FaultScope,
}

/// One signal's scripted values.
#[derive(Debug, Clone, PartialEq)]
pub struct ScriptedSignal {
    /// The signal.
    pub signal: Signal,
    /// Its channel.
    pub channel: u8,
    /// The scenario's start: the timeline counts from it.
    pub origin: ScenarioTime,
    /// The values, over time since `origin`.
    pub timeline: Timeline,
}

impl ScriptedSignal {
    /// The scripted value at `t`; `None` before the first change (the device then serves
    /// the [`nominal`] value).
    pub fn value_at(&self, t: ScenarioTime) -> Option<f32> {
        self.timeline.value_at(t.since(self.origin)?)
    }

    /// The moments the value starts or stops changing.
    pub fn change_points(&self) -> Vec<ScenarioTime> {
        self.timeline
            .change_points()
            .into_iter()
            .map(|d| self.origin.plus(d))
            .collect()
    }
}

/// A simulated device of a scenario.
#[derive(Debug, Clone, PartialEq)]
pub struct Device {
    /// Its id.
    pub name: DeviceId,
    /// What it is.
    pub kind: DeviceKind,
    /// Its zone.
    pub zone: ZoneId,
    /// Modbus unit id (1 unless the file says otherwise; unused for MQTT devices).
    pub unit: u8,
    /// MQTT devices: time between publications.
    pub publish_interval: Duration,
    /// The signals the timeline changes, in the order first mentioned.
    pub signals: Vec<ScriptedSignal>,
    /// Its faults.
    pub faults: Vec<FaultWindow>,
    /// When the network between the gateway and this device is cut.
    pub network_cuts: Vec<Window>,
}

impl Device {
    /// The scripted signal, if the timeline changes it.
    pub fn script(&self, signal: Signal, channel: u8) -> Option<&ScriptedSignal> {
        self.signals
            .iter()
            .find(|s| s.signal == signal && s.channel == channel)
    }

    /// The value of a signal at `t`: scripted, or [`nominal`].
    pub fn value_at(&self, signal: Signal, channel: u8, t: ScenarioTime) -> f32 {
        self.script(signal, channel)
            .and_then(|s| s.value_at(t))
            .unwrap_or_else(|| nominal(signal))
    }
}

/// An infrastructure event's kind.
pub type EventKind = RawEventKind;

impl RawEventKind {
    /// The name scenario files use.
    pub const fn name(self) -> &'static str {
        match self {
            Self::BrokerStop => "broker-stop",
            Self::BrokerRestart => "broker-restart",
            Self::GatewayKill => "gateway-kill",
            Self::GatewayRestart => "gateway-restart",
            Self::NetworkCut => "network-cut",
            Self::NetworkRestore => "network-restore",
            Self::NodeReboot => "node-reboot",
        }
    }

    /// Whether the simulators carry it out (a network cut silences devices) rather than the
    /// rig (brokers and the gateway are the rig's processes).
    pub const fn is_simulated(self) -> bool {
        matches!(self, Self::NetworkCut | Self::NetworkRestore)
    }
}

impl fmt::Display for RawEventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

/// An infrastructure event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// When.
    pub at: ScenarioTime,
    /// What.
    pub kind: EventKind,
    /// `network-cut`: the devices cut off; `node-reboot`: the nodes that reboot.
    pub devices: Vec<DeviceId>,
    /// `node-reboot`: why.
    pub reason: Option<RebootReason>,
}

/// What a scenario expects of the firmware nodes' own alarm (judged only when the nodes run
/// the firmware: `--node host`, `qemu` or `serial`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeExpectation {
    /// A node latches its alarm at this moment or earlier.
    AlarmBy(ScenarioTime),
    /// No node latches its alarm.
    NeverAlarms,
}

impl fmt::Display for NodeExpectation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::AlarmBy(t) => write!(f, "node alarm by {t}"),
            Self::NeverAlarms => f.write_str("node never alarms"),
        }
    }
}

/// Noise on the firmware nodes' RS-485 line.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LineNoise {
    /// The chance that a byte has one bit flipped.
    pub rate: f64,
    /// When.
    pub window: Window,
}

/// The most noise a line may be given: one byte in twenty.
pub const MAX_LINE_NOISE: f64 = 0.05;

/// What must happen for the scenario to pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expectation {
    /// `evacuate` reaches the subscriber at this moment or earlier.
    EvacuateBy(ScenarioTime),
    /// The level never goes above this one.
    NeverAbove(Level),
}

impl fmt::Display for Expectation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::EvacuateBy(t) => write!(f, "evacuate by {t}"),
            Self::NeverAbove(level) => write!(f, "never above {level}"),
        }
    }
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
        Validator { origin }.scenario(raw)
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

    /// What happens when, for people watching a replay: signal changes, faults, events,
    /// the power loss and the end; in time order.
    pub fn happenings(&self) -> Vec<(ScenarioTime, String)> {
        let mut out: Vec<(ScenarioTime, String)> = Vec::new();
        let value = |signal: Signal, v: f32| match signal.kind() {
            SignalKind::State => (if v == 0.0 { "off" } else { "on" }).to_string(),
            _ => format!("{v} {}", signal.unit()),
        };
        for d in &self.devices {
            for s in &d.signals {
                let what = if s.channel == 0 {
                    format!("{} {}", d.name.as_str(), s.signal)
                } else {
                    format!("{} {}[{}]", d.name.as_str(), s.signal, s.channel)
                };
                for seg in s.timeline.segments() {
                    match *seg {
                        Segment::Step { at, value: v } => out.push((
                            s.origin.plus(at),
                            format!("{what} = {}", value(s.signal, v)),
                        )),
                        Segment::Ramp {
                            from,
                            to,
                            start,
                            end,
                        } => {
                            out.push((
                                s.origin.plus(from),
                                format!(
                                    "{what} ramps {} -> {} until {}",
                                    value(s.signal, start),
                                    value(s.signal, end),
                                    s.origin.plus(to)
                                ),
                            ));
                            out.push((
                                s.origin.plus(to),
                                format!("{what} reaches {}", value(s.signal, end)),
                            ));
                        }
                    }
                }
            }
            for f in &d.faults {
                let on = match f.scope {
                    FaultScope::Device => String::new(),
                    FaultScope::Value { signal, channel } => format!(" on {signal}[{channel}]"),
                };
                out.push((
                    f.window.from,
                    format!("{}: fault {}{on} starts", d.name.as_str(), f.fault),
                ));
                if let Some(to) = f.window.to {
                    out.push((
                        to,
                        format!("{}: fault {}{on} ends", d.name.as_str(), f.fault),
                    ));
                }
            }
        }
        for e in &self.events {
            let text = match e.kind {
                RawEventKind::NetworkCut => {
                    let names: Vec<&str> = e.devices.iter().map(DeviceId::as_str).collect();
                    format!("network-cut: {} stop answering", names.join(", "))
                }
                RawEventKind::NetworkRestore => "network-restore: devices answer again".into(),
                RawEventKind::NodeReboot => {
                    let names: Vec<&str> = e.devices.iter().map(DeviceId::as_str).collect();
                    format!(
                        "node-reboot ({}): {} reboot",
                        e.reason.unwrap_or(RebootReason::Watchdog),
                        names.join(", ")
                    )
                }
                kind => format!("{kind} (carried out by the rig, not the simulators)"),
            };
            out.push((e.at, text));
        }
        if let Some(p) = self.power_loss_at {
            out.push((p, "power loss: the first servers lose power".into()));
        }
        out.push((self.end, "end of the scenario".into()));
        out.sort_by_key(|(t, _)| *t);
        out
    }

    /// Every moment something changes: signal changes, faults starting and ending, events
    /// and power loss; sorted, without repeats. A rig reports progress at these.
    pub fn milestones(&self) -> Vec<ScenarioTime> {
        let mut points: Vec<ScenarioTime> = vec![self.start, self.end];
        points.extend(self.power_loss_at);
        for d in &self.devices {
            for s in &d.signals {
                points.extend(s.change_points());
            }
            for f in &d.faults {
                points.push(f.window.from);
                points.extend(f.window.to);
            }
        }
        points.extend(self.events.iter().map(|e| e.at));
        points.sort();
        points.dedup();
        points
    }
}

/// Reads the TOML into the raw types; errors carry the key path and line.
pub fn parse_raw(text: &str, origin: &str) -> Result<RawScenario, ScenarioError> {
    let line_of = |span: Option<std::ops::Range<usize>>| {
        span.map(|s| text.get(..s.start).unwrap_or("").matches('\n').count() + 1)
    };
    let de = toml::Deserializer::parse(text).map_err(|e| ScenarioError {
        origin: origin.to_string(),
        line: line_of(e.span()),
        path: String::new(),
        problem: e.message().trim().to_string(),
    })?;
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        ScenarioError {
            origin: origin.to_string(),
            line: line_of(inner.span()),
            path: if path == "." { String::new() } else { path },
            problem: inner.message().trim().to_string(),
        }
    })
}

/// A file of a directory, read and checked (or not).
pub type Loaded = (PathBuf, Result<Scenario, ScenarioError>);

/// Every `*.toml` file in `dir`, sorted by name, each read and checked on its own.
pub fn load_dir(dir: &Path) -> Result<Vec<Loaded>, ScenarioError> {
    let entries = std::fs::read_dir(dir).map_err(|e| ScenarioError {
        origin: dir.display().to_string(),
        line: None,
        path: String::new(),
        problem: format!("cannot list: {e}"),
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml") && p.is_file())
        .collect();
    files.sort();
    Ok(files
        .into_iter()
        .map(|p| {
            let s = Scenario::load(&p);
            (p, s)
        })
        .collect())
}

/// The valid Modbus exception codes a fault may answer with.
pub const EXCEPTION_CODES: [u8; 9] = [0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x08, 0x0A, 0x0B];

/// The longest `slow` delay: a minute.
pub const MAX_DELAY_MS: u64 = 60_000;

/// The longest replay: a day.
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);

/// The longest `hold_s`: the gateway's own limit, a day.
pub const MAX_HOLD_S: u64 = 86_400;

struct Validator<'a> {
    origin: &'a str,
}

/// One entry of a signal's timeline, as read, before the timeline is built.
struct Pending {
    device: usize,
    signal: Signal,
    channel: u8,
    segments: Vec<Segment>,
    /// The raw index and start of the last entry, for ordering errors.
    last: (usize, ScenarioTime),
}

impl Validator<'_> {
    fn err(&self, path: impl Into<String>, problem: impl Into<String>) -> ScenarioError {
        ScenarioError {
            origin: self.origin.to_string(),
            line: None,
            path: path.into(),
            problem: problem.into(),
        }
    }

    fn id<T: std::str::FromStr<Err = IdError>>(
        &self,
        path: &str,
        s: &str,
    ) -> Result<T, ScenarioError> {
        s.parse()
            .map_err(|e: IdError| self.err(path, format!("{s:?} {e}")))
    }

    fn scenario(&self, raw: RawScenario) -> Result<Scenario, ScenarioError> {
        // The name becomes part of the generated site id ("hil-<name>").
        let _: SiteId = self.id("name", &format!("hil-{}", raw.name))?;
        if raw.name.is_empty() || raw.name.len() > 48 {
            return Err(self.err("name", "must be 1 to 48 bytes long"));
        }
        if raw.description.trim().is_empty() {
            return Err(self.err("description", "say in one line what the scenario models"));
        }
        let (start, end) = (raw.start, raw.end);
        let duration = end
            .since(start)
            .filter(|d| !d.is_zero())
            .ok_or_else(|| self.err("end", format!("{end} is not after start ({start})")))?;
        if duration > MAX_DURATION {
            return Err(self.err(
                "end",
                format!("the replay lasts {}, more than a day", human(duration)),
            ));
        }
        let time_scale = match raw.time_scale {
            Some(s) => {
                crate::clock::check_scale(s).map_err(|e| self.err("time_scale", e.to_string()))?
            }
            None => 1.0,
        };
        let max_time_scale = match raw.max_time_scale {
            Some(m) => {
                let m = crate::clock::check_scale(m)
                    .map_err(|e| self.err("max_time_scale", e.to_string()))?;
                if m < time_scale {
                    return Err(self.err(
                        "max_time_scale",
                        format!("{m} is less than time_scale ({time_scale})"),
                    ));
                }
                Some(m)
            }
            None => None,
        };
        if let Some(p) = raw.power_loss_at
            && (p <= start || p > end)
        {
            return Err(self.err(
                "power_loss_at",
                format!("{p} is not after start ({start}) and at or before end ({end})"),
            ));
        }
        if !(1..=3600).contains(&raw.evacuation_budget_s) {
            return Err(self.err(
                "evacuation_budget_s",
                format!("{} is not 1..=3600 seconds", raw.evacuation_budget_s),
            ));
        }
        let evacuation_budget = Duration::from_secs(raw.evacuation_budget_s);
        let hold = match raw.hold_s {
            Some(h) if h > MAX_HOLD_S => {
                return Err(self.err(
                    "hold_s",
                    format!("{h} is more than {MAX_HOLD_S} seconds (the gateway's limit)"),
                ));
            }
            Some(h) => Some(Duration::from_secs(h)),
            None => None,
        };
        let expect = self.expect(&raw, evacuation_budget)?;
        let normal_by = self.normal_by(&raw, expect)?;

        let mut devices = self.devices(&raw.devices)?;
        self.timeline(&raw, &mut devices)?;
        self.faults(&raw, &mut devices)?;
        let events = self.events(&raw, &mut devices)?;
        let node_expect = self.node_expect(&raw, &devices)?;
        let line_noise = self.line(&raw, &devices)?;
        Ok(Scenario {
            name: raw.name,
            description: raw.description.trim().to_string(),
            origin: self.origin.to_string(),
            start,
            end,
            time_scale,
            max_time_scale,
            power_loss_at: raw.power_loss_at,
            evacuation_budget,
            expect,
            normal_by,
            hold,
            devices,
            events,
            node: raw.node,
            node_expect,
            line_noise,
        })
    }

    /// `[expect] node_alarm_by` / `node_never_alarms`: one of them, with a node to judge.
    fn node_expect(
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
    fn line(
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

    fn expect(&self, raw: &RawScenario, budget: Duration) -> Result<Expectation, ScenarioError> {
        match (raw.expect.evacuate_by, raw.expect.never_above) {
            (Some(_), Some(_)) => {
                Err(self.err("expect", "give evacuate_by or never_above, not both"))
            }
            (None, None) => Err(self.err(
                "expect",
                "give evacuate_by (a moment) or never_above (a level)",
            )),
            (Some(by), None) => {
                let Some(loss) = raw.power_loss_at else {
                    if raw.expect.normal_by.is_some() {
                        // The power came back before it was lost: evacuate was due while the
                        // estimate was under the budget, and there is no lead time to count.
                        self.within("expect.evacuate_by", by, raw)?;
                        return Ok(Expectation::EvacuateBy(by));
                    }
                    return Err(self.err(
                        "expect.evacuate_by",
                        "needs power_loss_at (lead time is counted back from the power loss), or normal_by when the power comes back before it is lost",
                    ));
                };
                if by < raw.start || by > loss {
                    return Err(self.err(
                        "expect.evacuate_by",
                        format!(
                            "{by} is not between start ({}) and power_loss_at ({loss})",
                            raw.start
                        ),
                    ));
                }
                let lead = loss.since(by).unwrap_or_default();
                if lead < budget {
                    return Err(self.err(
                        "expect.evacuate_by",
                        format!(
                            "{by} is {} before power loss at {loss}, less than evacuation_budget_s ({} s): such an evacuation is not early",
                            human(lead),
                            budget.as_secs()
                        ),
                    ));
                }
                Ok(Expectation::EvacuateBy(by))
            }
            (None, Some(level)) => {
                if level == Level::Evacuate {
                    return Err(self.err(
                        "expect.never_above",
                        "\"evacuate\" is the highest level: this expects nothing; use normal, watch or prepare",
                    ));
                }
                if raw.power_loss_at.is_some() {
                    return Err(self.err(
                        "expect.never_above",
                        "the scenario loses power (power_loss_at): expect an evacuation with evacuate_by",
                    ));
                }
                Ok(Expectation::NeverAbove(level))
            }
        }
    }

    /// `[expect] normal_by`: inside the replay, after `evacuate_by` and after the power loss.
    fn normal_by(
        &self,
        raw: &RawScenario,
        expect: Expectation,
    ) -> Result<Option<ScenarioTime>, ScenarioError> {
        let Some(by) = raw.expect.normal_by else {
            return Ok(None);
        };
        self.within("expect.normal_by", by, raw)?;
        if let Expectation::EvacuateBy(evacuate) = expect
            && by <= evacuate
        {
            return Err(self.err(
                "expect.normal_by",
                format!("{by} is not after evacuate_by ({evacuate}): the site returns to normal after it evacuated"),
            ));
        }
        if let Some(loss) = raw.power_loss_at
            && by <= loss
        {
            return Err(self.err(
                "expect.normal_by",
                format!("{by} is not after power_loss_at ({loss}): a site that is losing power is not back to normal"),
            ));
        }
        Ok(Some(by))
    }

    fn devices(&self, raw: &[RawDevice]) -> Result<Vec<Device>, ScenarioError> {
        if raw.is_empty() {
            return Err(self.err("devices", "a scenario needs at least one device"));
        }
        let mut devices: Vec<Device> = Vec::new();
        for (i, d) in raw.iter().enumerate() {
            let at = format!("devices[{i}]");
            let name: DeviceId = self.id(&format!("{at}.name"), &d.name)?;
            if let Some(j) = devices.iter().position(|o| o.name == name) {
                return Err(self.err(
                    format!("{at}.name"),
                    format!("{:?} is already devices[{j}]", d.name),
                ));
            }
            let zone: ZoneId = self.id(&format!("{at}.zone"), &d.zone)?;
            let unit = match (d.kind.is_modbus(), d.unit) {
                (true, Some(u)) if (1..=247).contains(&u) => u,
                (true, Some(u)) => {
                    return Err(self.err(
                        format!("{at}.unit"),
                        format!("{u} is not a Modbus unit id (1..=247)"),
                    ));
                }
                (true, None) => 1,
                (false, Some(_)) => {
                    return Err(self.err(
                        format!("{at}.unit"),
                        "only for Modbus devices (ups, pdu, node)",
                    ));
                }
                (false, None) => 0,
            };
            let publish_interval = match (d.kind, d.publish_interval_ms) {
                (DeviceKind::RoomMqtt, Some(ms)) if (100..=600_000).contains(&ms) => {
                    Duration::from_millis(ms)
                }
                (DeviceKind::RoomMqtt, Some(ms)) => {
                    return Err(self.err(
                        format!("{at}.publish_interval_ms"),
                        format!("{ms} is not 100..=600000"),
                    ));
                }
                (DeviceKind::RoomMqtt, None) => Duration::from_secs(1),
                (_, Some(_)) => {
                    return Err(self.err(
                        format!("{at}.publish_interval_ms"),
                        "only for room-mqtt devices",
                    ));
                }
                (_, None) => Duration::ZERO,
            };
            if d.kind == DeviceKind::Node
                && let Some(other) = devices
                    .iter()
                    .find(|o| o.kind == DeviceKind::Node && o.unit == unit)
            {
                // Firmware nodes share one RS-485 line: the unit id tells them apart.
                return Err(self.err(
                    format!("{at}.unit"),
                    format!(
                        "{unit} is already the unit of node {}: nodes share one RS-485 line, give each its own unit",
                        other.name.as_str()
                    ),
                ));
            }
            devices.push(Device {
                name,
                kind: d.kind,
                zone,
                unit,
                publish_interval,
                signals: Vec::new(),
                faults: Vec::new(),
                network_cuts: Vec::new(),
            });
        }
        Ok(devices)
    }

    fn device_index(
        &self,
        path: &str,
        name: &str,
        devices: &[Device],
    ) -> Result<usize, ScenarioError> {
        devices
            .iter()
            .position(|d| d.name.as_str() == name)
            .ok_or_else(|| {
                let known: Vec<&str> = devices.iter().map(|d| d.name.as_str()).collect();
                self.err(
                    path,
                    format!("no device named {name:?} (devices: {})", known.join(", ")),
                )
            })
    }

    /// The descriptor that serves `signal` `channel` on a Modbus device (`Ok(None)` for MQTT
    /// devices, which publish any signal on channel 0).
    fn served(
        &self,
        at: &str,
        device: &Device,
        signal: Signal,
        channel: u8,
    ) -> Result<Option<&'static RegisterDescriptor>, ScenarioError> {
        let Some(profile) = device.kind.profile() else {
            if channel != 0 {
                return Err(self.err(
                    format!("{at}.channel"),
                    "a room-mqtt device publishes channel 0 only",
                ));
            }
            return Ok(None);
        };
        if let Some(d) = profile
            .registers
            .iter()
            .find(|d| d.signal == signal && d.channel == channel)
        {
            return Ok(Some(d));
        }
        let channels: Vec<u8> = profile
            .registers
            .iter()
            .filter(|d| d.signal == signal)
            .map(|d| d.channel)
            .collect();
        if let (Some(lo), Some(hi)) = (channels.iter().min(), channels.iter().max()) {
            return Err(self.err(
                format!("{at}.channel"),
                format!(
                    "{} has {signal} channels {lo}..={hi}, not {channel}",
                    device.name.as_str()
                ),
            ));
        }
        let mut serves: Vec<&str> = profile.registers.iter().map(|d| d.signal.name()).collect();
        serves.dedup();
        Err(self.err(
            format!("{at}.signal"),
            format!(
                "a {} ({}) does not serve {signal}; it serves {}",
                device.kind,
                profile.name,
                serves.join(", ")
            ),
        ))
    }

    /// Checks a value for a signal of a device: states 0/1, codes whole numbers, Modbus
    /// values encodable in their register.
    fn value(
        &self,
        path: &str,
        signal: Signal,
        descriptor: Option<&RegisterDescriptor>,
        value: f32,
    ) -> Result<f32, ScenarioError> {
        if !value.is_finite() {
            return Err(self.err(path, format!("{value} is not a finite number")));
        }
        match signal.kind() {
            SignalKind::State if value != 0.0 && value != 1.0 => {
                return Err(self.err(
                    path,
                    format!("{signal} is a state: 0, 1, true or false, not {value}"),
                ));
            }
            SignalKind::Code if value < 0.0 || value.fract() != 0.0 => {
                return Err(self.err(
                    path,
                    format!("{signal} is a code: a whole number 0 or more, not {value}"),
                ));
            }
            _ => {}
        }
        if let Some(d) = descriptor {
            encode_raw(d, value).map_err(|e| {
                self.err(
                    path,
                    format!("{signal}: {e} ({} register {})", d.table, d.address),
                )
            })?;
        }
        Ok(value)
    }

    fn within(&self, path: &str, t: ScenarioTime, raw: &RawScenario) -> Result<(), ScenarioError> {
        if t < raw.start || t > raw.end {
            return Err(self.err(
                path,
                format!("{t} is outside the scenario ({}..{})", raw.start, raw.end),
            ));
        }
        Ok(())
    }

    fn timeline(&self, raw: &RawScenario, devices: &mut [Device]) -> Result<(), ScenarioError> {
        let origin = raw.start;
        let mut pending: Vec<Pending> = Vec::new();
        for (i, c) in raw.timeline.iter().enumerate() {
            let at = format!("timeline[{i}]");
            let index = self.device_index(&format!("{at}.device"), &c.device, devices)?;
            let device = devices
                .get(index)
                .ok_or_else(|| self.err(&at, "no device"))?;
            let channel = c.channel.unwrap_or(0);
            let descriptor = self.served(&at, device, c.signal, channel)?;
            let key = pending
                .iter()
                .position(|p| p.device == index && p.signal == c.signal && p.channel == channel);
            let begins;
            let segment = match (c.at, c.value, c.from, c.to, c.start, c.end) {
                (Some(t), Some(v), None, None, None, None) => {
                    self.within(&format!("{at}.at"), t, raw)?;
                    begins = t;
                    Segment::Step {
                        at: t.since(origin).unwrap_or_default(),
                        value: self.value(&format!("{at}.value"), c.signal, descriptor, v.0)?,
                    }
                }
                (None, None, Some(from), Some(to), start, Some(end)) => {
                    self.within(&format!("{at}.from"), from, raw)?;
                    self.within(&format!("{at}.to"), to, raw)?;
                    if to <= from {
                        return Err(self.err(
                            format!("{at}.to"),
                            format!("{to} is not after from ({from})"),
                        ));
                    }
                    if c.signal.kind() == SignalKind::State {
                        return Err(self.err(
                            &at,
                            format!(
                                "{} is a state: give it steps (at, value), not a ramp",
                                c.signal
                            ),
                        ));
                    }
                    let start = match start {
                        Some(v) => v.0,
                        // The value the signal has at `from`: its last change, or nominal.
                        None => key
                            .and_then(|k| pending.get(k))
                            .and_then(|p| Timeline::new(p.segments.clone()).ok())
                            .and_then(|t| t.value_at(from.since(origin).unwrap_or_default()))
                            .unwrap_or_else(|| nominal(c.signal)),
                    };
                    begins = from;
                    Segment::Ramp {
                        from: from.since(origin).unwrap_or_default(),
                        to: to.since(origin).unwrap_or_default(),
                        start: self.value(&format!("{at}.start"), c.signal, descriptor, start)?,
                        end: self.value(&format!("{at}.end"), c.signal, descriptor, end.0)?,
                    }
                }
                _ => {
                    return Err(self.err(
                        &at,
                        "give at and value (a step), or from, to and end (a ramp; start is optional)",
                    ));
                }
            };
            match key.and_then(|k| pending.get_mut(k)) {
                Some(p) => {
                    let (j, previous) = p.last;
                    if begins < previous {
                        return Err(self.err(
                            &at,
                            format!(
                                "starts at {begins}, before timeline[{j}] at {previous}, an earlier change of the same signal: list a signal's changes in time order"
                            ),
                        ));
                    }
                    p.segments.push(segment);
                    p.last = (i, begins);
                }
                None => pending.push(Pending {
                    device: index,
                    signal: c.signal,
                    channel,
                    segments: vec![segment],
                    last: (i, begins),
                }),
            }
        }
        for p in pending {
            let (i, _) = p.last;
            let timeline = Timeline::new(p.segments)
                .map_err(|e| self.err(format!("timeline[{i}]"), e.to_string()))?;
            if let Some(d) = devices.get_mut(p.device) {
                d.signals.push(ScriptedSignal {
                    signal: p.signal,
                    channel: p.channel,
                    origin,
                    timeline,
                });
            }
        }
        Ok(())
    }

    fn faults(&self, raw: &RawScenario, devices: &mut [Device]) -> Result<(), ScenarioError> {
        // (device, scope, window, raw index) of the faults seen so far, for overlaps.
        let mut seen: Vec<(usize, FaultScope, Window, usize)> = Vec::new();
        for (i, f) in raw.faults.iter().enumerate() {
            let at = format!("faults[{i}]");
            let index = self.device_index(&format!("{at}.device"), &f.device, devices)?;
            let device = devices
                .get(index)
                .ok_or_else(|| self.err(&at, "no device"))?;
            self.within(&format!("{at}.from"), f.from, raw)?;
            if f.from >= raw.end {
                return Err(self.err(
                    format!("{at}.from"),
                    format!(
                        "{} is at the scenario's end: the fault would never act",
                        f.from
                    ),
                ));
            }
            if let Some(to) = f.to {
                self.within(&format!("{at}.to"), to, raw)?;
                if to <= f.from {
                    return Err(self.err(
                        format!("{at}.to"),
                        format!("{to} is not after from ({})", f.from),
                    ));
                }
            }
            let only = |key: &str, kinds: &str| {
                self.err(format!("{at}.{key}"), format!("only for kind {kinds}"))
            };
            if f.code.is_some() && f.kind != RawFaultKind::Exception {
                return Err(only("code", "\"exception\""));
            }
            if f.delay_ms.is_some() && f.kind != RawFaultKind::Slow {
                return Err(only("delay_ms", "\"slow\""));
            }
            let fault = match f.kind {
                RawFaultKind::Silent => Fault::Silent,
                RawFaultKind::Exception => {
                    if !device.kind.is_modbus() {
                        return Err(self.err(
                            format!("{at}.kind"),
                            format!(
                                "{} is a room-mqtt device: it publishes over MQTT and has no Modbus exceptions",
                                device.name.as_str()
                            ),
                        ));
                    }
                    let code = f.code.unwrap_or(0x04);
                    if !EXCEPTION_CODES.contains(&code) {
                        return Err(self.err(
                            format!("{at}.code"),
                            format!(
                                "{code} is not a Modbus exception code (1, 2, 3, 4, 5, 6, 8, 10, 11)"
                            ),
                        ));
                    }
                    Fault::Exception(code)
                }
                RawFaultKind::Garbage => Fault::Garbage,
                RawFaultKind::AllOnes => Fault::AllOnes,
                RawFaultKind::Drop => Fault::Drop,
                RawFaultKind::Slow => {
                    let ms = f.delay_ms.ok_or_else(|| {
                        self.err(
                            format!("{at}.delay_ms"),
                            "kind \"slow\" needs delay_ms (real milliseconds)",
                        )
                    })?;
                    if !(1..=MAX_DELAY_MS).contains(&ms) {
                        return Err(self.err(
                            format!("{at}.delay_ms"),
                            format!("{ms} is not 1..={MAX_DELAY_MS}"),
                        ));
                    }
                    Fault::Slow(Duration::from_millis(ms))
                }
                RawFaultKind::Stuck => Fault::Stuck,
            };
            let scope = match (f.signal, f.channel) {
                (None, Some(_)) => {
                    return Err(self.err(format!("{at}.channel"), "goes with signal"));
                }
                (None, None) => FaultScope::Device,
                (Some(signal), channel) => {
                    if !fault.can_target_a_value() {
                        return Err(only("signal", "garbage, all-ones or stuck"));
                    }
                    let channel = channel.unwrap_or(0);
                    self.served(&at, device, signal, channel)?;
                    FaultScope::Value { signal, channel }
                }
            };
            let window = Window {
                from: f.from,
                to: f.to,
            };
            if let Some((_, _, w, j)) = seen
                .iter()
                .find(|(d, s, w, _)| *d == index && *s == scope && w.overlaps(&window))
            {
                return Err(self.err(
                    &at,
                    format!(
                        "overlaps faults[{j}] ({w}) on {} {}: one fault at a time on a device, or on a value",
                        device.name.as_str(),
                        match scope {
                            FaultScope::Device => "as a whole".to_string(),
                            FaultScope::Value { signal, channel } =>
                                format!("{signal} channel {channel}"),
                        }
                    ),
                ));
            }
            seen.push((index, scope, window, i));
            if let Some(d) = devices.get_mut(index) {
                d.faults.push(FaultWindow {
                    window,
                    fault,
                    scope,
                });
            }
        }
        Ok(())
    }

    fn events(
        &self,
        raw: &RawScenario,
        devices: &mut [Device],
    ) -> Result<Vec<Event>, ScenarioError> {
        let mut events: Vec<Event> = Vec::new();
        // Open outages: the raw index of the event that began each one.
        let (mut broker_down, mut gateway_down): (Option<usize>, Option<usize>) = (None, None);
        let mut cut: Option<(usize, Vec<usize>, ScenarioTime)> = None;
        let mut previous: Option<(usize, ScenarioTime)> = None;
        for (i, e) in raw.events.iter().enumerate() {
            let at = format!("events[{i}]");
            self.within(&format!("{at}.at"), e.at, raw)?;
            if let Some((j, t)) = previous
                && e.at < t
            {
                return Err(self.err(
                    format!("{at}.at"),
                    format!(
                        "{} is before events[{j}] at {t}: list events in time order",
                        e.at
                    ),
                ));
            }
            previous = Some((i, e.at));
            if e.devices.is_some()
                && !matches!(e.kind, RawEventKind::NetworkCut | RawEventKind::NodeReboot)
            {
                return Err(self.err(
                    format!("{at}.devices"),
                    "only for kind \"network-cut\" or \"node-reboot\"",
                ));
            }
            if e.reason.is_some() && e.kind != RawEventKind::NodeReboot {
                return Err(self.err(format!("{at}.reason"), "only for kind \"node-reboot\""));
            }
            let toggle =
                |open: &mut Option<usize>, opening: bool, what: &str| match (*open, opening) {
                    (Some(j), true) => Err(self.err(
                        format!("{at}.kind"),
                        format!("the {what} is already down since events[{j}]"),
                    )),
                    (None, false) => Err(self.err(
                        format!("{at}.kind"),
                        format!("the {what} is not down: no stop before this restart"),
                    )),
                    (_, true) => {
                        *open = Some(i);
                        Ok(())
                    }
                    (_, false) => {
                        *open = None;
                        Ok(())
                    }
                };
            let mut cut_off: Vec<DeviceId> = Vec::new();
            match e.kind {
                RawEventKind::BrokerStop => toggle(&mut broker_down, true, "broker")?,
                RawEventKind::BrokerRestart => toggle(&mut broker_down, false, "broker")?,
                RawEventKind::GatewayKill => toggle(&mut gateway_down, true, "gateway")?,
                RawEventKind::GatewayRestart => toggle(&mut gateway_down, false, "gateway")?,
                RawEventKind::NetworkCut => {
                    if let Some((j, _, _)) = &cut {
                        return Err(self.err(
                            format!("{at}.kind"),
                            format!(
                                "the network is already cut since events[{j}]: restore it first"
                            ),
                        ));
                    }
                    let indices: Vec<usize> = match &e.devices {
                        None => (0..devices.len()).collect(),
                        Some(names) if names.is_empty() => {
                            return Err(self.err(
                                format!("{at}.devices"),
                                "is empty; leave it out to cut every device",
                            ));
                        }
                        Some(names) => {
                            let mut v = Vec::new();
                            for (k, n) in names.iter().enumerate() {
                                let d =
                                    self.device_index(&format!("{at}.devices[{k}]"), n, devices)?;
                                if v.contains(&d) {
                                    return Err(self.err(
                                        format!("{at}.devices[{k}]"),
                                        format!("{n:?} is listed twice"),
                                    ));
                                }
                                v.push(d);
                            }
                            v
                        }
                    };
                    cut_off = indices
                        .iter()
                        .filter_map(|&d| devices.get(d).map(|d| d.name.clone()))
                        .collect();
                    cut = Some((i, indices, e.at));
                }
                RawEventKind::NodeReboot => {
                    cut_off = self.rebooted(&at, e, devices)?;
                }
                RawEventKind::NetworkRestore => {
                    let Some((_, indices, from)) = cut.take() else {
                        return Err(self.err(
                            format!("{at}.kind"),
                            "the network is not cut: no network-cut before this restore",
                        ));
                    };
                    for d in indices {
                        if let Some(d) = devices.get_mut(d) {
                            d.network_cuts.push(Window {
                                from,
                                to: Some(e.at),
                            });
                        }
                    }
                }
            }
            events.push(Event {
                at: e.at,
                kind: e.kind,
                devices: cut_off,
                reason: (e.kind == RawEventKind::NodeReboot)
                    .then(|| e.reason.unwrap_or(RebootReason::Watchdog)),
            });
        }
        if let Some((_, indices, from)) = cut {
            for d in indices {
                if let Some(d) = devices.get_mut(d) {
                    d.network_cuts.push(Window { from, to: None });
                }
            }
        }
        Ok(events)
    }

    /// The nodes a `node-reboot` event names (every node when it names none).
    fn rebooted(
        &self,
        at: &str,
        e: &RawEvent,
        devices: &[Device],
    ) -> Result<Vec<DeviceId>, ScenarioError> {
        let names: Vec<DeviceId> = match &e.devices {
            None => devices
                .iter()
                .filter(|d| d.kind == DeviceKind::Node)
                .map(|d| d.name.clone())
                .collect(),
            Some(names) => {
                let mut out: Vec<DeviceId> = Vec::new();
                for (k, n) in names.iter().enumerate() {
                    let path = format!("{at}.devices[{k}]");
                    let d = self.device_index(&path, n, devices)?;
                    let device = devices.get(d).ok_or_else(|| self.err(&path, "no device"))?;
                    if device.kind != DeviceKind::Node {
                        return Err(self.err(
                            path,
                            format!("{n:?} is a {}, not a node: only nodes reboot", device.kind),
                        ));
                    }
                    if out.contains(&device.name) {
                        return Err(self.err(path, format!("{n:?} is listed twice")));
                    }
                    out.push(device.name.clone());
                }
                out
            }
        };
        if names.is_empty() {
            return Err(self.err(
                format!("{at}.kind"),
                "node-reboot: the scenario has no node to reboot",
            ));
        }
        Ok(names)
    }
}

#[cfg(test)]
mod tests;
