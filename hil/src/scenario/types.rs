//! What a checked scenario is made of: devices and their scripted signals, faults, events,
//! expectations. [`Scenario`](super::Scenario) holds them; `check` builds them from the raw file.

use std::fmt;
use std::time::Duration;

use firebreak_protocols::{
    DeviceId, DeviceProfile, GENERIC_PDU, GENERIC_UPS, Level, SENSOR_NODE, Signal, ZoneId,
};
use serde::Deserialize;

use super::raw::{ControllerVerdict, RawEventKind, RebootReason};
use crate::time::ScenarioTime;
use crate::timeline::Timeline;

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

    pub(super) fn overlaps(&self, other: &Window) -> bool {
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

/// A device served by a program the rig runs rather than by its own simulators
/// ([`crate::sim::peer_devices`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Peer {
    /// A UPS behind NUT: dummy-ups reads a `.dev` file the rig rewrites from the timeline;
    /// upsd serves it; the gateway reads it as a `[[nut_sources]]` entry.
    Nut,
    /// A PDU recorded from a real device, served by snmpsim; the gateway reads it as an
    /// `[[snmp_sources]]` entry with the `apc-rpdu2` profile.
    Snmp {
        /// The snmpsim-data recording (`UPS/apc-8641`); its file name is the community.
        recording: String,
    },
}

/// The SNMP profile the gateway reads an snmpsim PDU with.
pub const SNMP_PDU_PROFILE: &str = "apc-rpdu2";

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
    /// Served by NUT or snmpsim instead of the rig's simulators.
    pub peer: Option<Peer>,
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
            Self::GatewayNetworkCut => "gateway-network-cut",
            Self::GatewayNetworkRestore => "gateway-network-restore",
            Self::BusCut => "bus-cut",
            Self::BusRestore => "bus-restore",
            Self::MaintenanceStart => "maintenance-start",
            Self::MaintenanceEnd => "maintenance-end",
        }
    }

    /// Whether the simulators carry it out (a network cut silences devices) rather than the
    /// rig (brokers and the gateway are the rig's processes).
    pub const fn is_simulated(self) -> bool {
        matches!(
            self,
            Self::NetworkCut | Self::NetworkRestore | Self::BusCut | Self::BusRestore
        )
    }

    /// Whether the event acts on gateways (and takes `gateway`).
    pub const fn names_a_gateway(self) -> bool {
        matches!(
            self,
            Self::GatewayKill
                | Self::GatewayRestart
                | Self::GatewayNetworkCut
                | Self::GatewayNetworkRestore
                | Self::BusCut
                | Self::BusRestore
                | Self::MaintenanceStart
                | Self::MaintenanceEnd
        )
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
    /// Gateway events: the gateways it acts on (indices into [`Scenario::gateways`](super::Scenario::gateways)).
    pub gateways: Vec<usize>,
    /// `maintenance-start`, `maintenance-end`: what the technician puts under maintenance.
    pub maintenance: Option<Maintenance>,
}

/// A device (or one channel of it) a `maintenance-*` event names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Maintenance {
    /// The device.
    pub device: DeviceId,
    /// One channel of it; the whole device when `None`.
    pub channel: Option<u8>,
    /// `maintenance-start`: for how long, in scenario time.
    pub duration: Option<ScenarioTime>,
}

impl Maintenance {
    /// `node-b1` or `node-b1 channel 2`.
    pub fn subject(&self) -> String {
        match self.channel {
            Some(c) => format!("{} channel {c}", self.device.as_str()),
            None => self.device.as_str().to_string(),
        }
    }
}

/// Which RS-485 port of the dual-homed sensor node a gateway reads (docs/deployment.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Bus {
    /// Port A (`--serial`): the first gateway's.
    A,
    /// Port B (`--rtu-b`): the second gateway's.
    B,
}

impl fmt::Display for Bus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            Bus::A => "A",
            Bus::B => "B",
        })
    }
}

/// A gateway process of the scenario: the one implicit gateway, or a `[[gateways]]` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct GatewaySpec {
    /// Its name in the scenario (`a`); empty for the implicit gateway.
    pub name: String,
    /// Its gateway id: `gw-<scenario>` (implicit) or `gw-<scenario>-<name>`.
    pub id: String,
    /// Its poll period as a multiple of the rig's.
    pub poll_factor: f64,
    /// The node port it reads: A for the first gateway, B for the second.
    pub bus: Bus,
    /// When its RS-485 bus is cut (`bus-cut` … `bus-restore`).
    pub bus_cuts: Vec<Window>,
    /// When its network to the broker is cut (`gateway-network-cut` … `restore`).
    pub network_cuts: Vec<Window>,
}

/// What a scenario expects of the controller's merged view (`firebreak watch`), with
/// `[[gateways]]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ControllerExpectation {
    /// The merged site level reaches `evacuate` by then.
    pub evacuate_by: Option<ScenarioTime>,
    /// This verdict by then.
    pub verdict: Option<(ControllerVerdict, ScenarioTime)>,
    /// The merged level never goes down and then up again.
    pub never_flaps: bool,
    /// The merged level (site or zone) never goes above this one.
    pub max_level: Option<Level>,
}

impl ControllerExpectation {
    /// Whether it expects anything.
    pub fn is_empty(&self) -> bool {
        *self == ControllerExpectation::default()
    }
}

impl fmt::Display for ControllerExpectation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(by) = self.evacuate_by {
            parts.push(format!("controller evacuate by {by}"));
        }
        if let Some((v, by)) = self.verdict {
            parts.push(format!("controller {v} by {by}"));
        }
        if self.never_flaps {
            parts.push("controller never flaps".to_string());
        }
        if let Some(l) = self.max_level {
            parts.push(format!("controller never above {l}"));
        }
        f.write_str(&parts.join(", "))
    }
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
