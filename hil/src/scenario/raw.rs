//! A scenario file as TOML spells it: serde types, every unknown key an error.

use std::fmt;

use firebreak_protocols::{Level, Signal};
use serde::Deserialize;

use super::DeviceKind;
use crate::time::ScenarioTime;

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawScenario {
    /// The scenario's name: the file's name without `.toml`.
    pub name: String,
    /// One line: what it models.
    pub description: String,
    /// When the replay starts.
    pub start: ScenarioTime,
    /// When it ends.
    pub end: ScenarioTime,
    /// The speed-up a rig uses unless told otherwise (1 = real time).
    pub time_scale: Option<f64>,
    /// The fastest replay that stays faithful, when real-time delays of the gateway (broker
    /// reconnect backoff, restart) decide the outcome; the rig never runs faster.
    pub max_time_scale: Option<f64>,
    /// When the first servers lose power; absent in nuisance scenarios.
    pub power_loss_at: Option<ScenarioTime>,
    /// The controllers' evacuation budget, in seconds.
    pub evacuation_budget_s: u64,
    /// The site's hold time (`[policy] hold_s`), in seconds; the gateway's default when absent.
    pub hold_s: Option<u64>,
    /// `[expect]`.
    pub expect: RawExpect,
    /// `[[devices]]`.
    #[serde(default)]
    pub devices: Vec<RawDevice>,
    /// `[[timeline]]`: signal changes.
    #[serde(default)]
    pub timeline: Vec<RawChange>,
    /// `[[faults]]`.
    #[serde(default)]
    pub faults: Vec<RawFault>,
    /// `[[events]]`: infrastructure events.
    #[serde(default)]
    pub events: Vec<RawEvent>,
    /// The sensor node back-end this scenario asks for (`stand-in` when absent); a rig's
    /// `--node` overrides it.
    pub node: Option<NodeBackendKind>,
    /// `[line]`: the RS-485 line the firmware nodes share.
    pub line: Option<RawLine>,
    /// `[[gateways]]`: several gateway processes for the site (one when absent), and a
    /// controller (`firebreak watch`) merging them.
    #[serde(default)]
    pub gateways: Vec<RawGateway>,
}

/// `[[gateways]]`: one gateway process of the site.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGateway {
    /// Its short name in the scenario (`a`); its gateway id is `gw-<scenario>-<name>`.
    pub name: String,
    /// Its poll period as a multiple of the rig's (1): the gateways sample differently.
    pub poll_factor: Option<f64>,
}

/// A verdict of the controller's merged view a scenario can expect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ControllerVerdict {
    /// Every gateway of the site stale while the site is at `prepare` or above.
    SiteSilentDuringAlarm,
}

impl ControllerVerdict {
    /// The name scenario files and `firebreak watch --json` use.
    pub const fn name(self) -> &'static str {
        match self {
            Self::SiteSilentDuringAlarm => "site-silent-during-alarm",
        }
    }
}

impl fmt::Display for ControllerVerdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

/// How a scenario's sensor nodes are brought up, as a scenario names it (`--node` adds
/// `serial:…`, which needs paths a scenario file cannot know).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NodeBackendKind {
    /// The node's register map served over Modbus TCP, no firmware logic.
    StandIn,
    /// The firmware's host build (`firebreak-node-sim`) on a PTY, read over Modbus RTU.
    Host,
    /// The firmware image under `qemu-system-arm`, read over Modbus RTU.
    Qemu,
}

/// `[line]`: the RS-485 line between the gateway and the firmware nodes.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLine {
    /// The chance that a byte on the line has a bit flipped (0 < noise <= 0.05).
    pub noise: f64,
    /// From when (the start when absent).
    pub from: Option<ScenarioTime>,
    /// Until when (the end when absent).
    pub to: Option<ScenarioTime>,
}

/// `[expect]`: `evacuate_by` or `never_above`, and optionally `normal_by`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawExpect {
    /// The latest acceptable moment `evacuate` reaches the subscriber.
    pub evacuate_by: Option<ScenarioTime>,
    /// The highest level allowed at any moment.
    pub never_above: Option<Level>,
    /// The latest acceptable moment the site's return to `normal` reaches the subscriber;
    /// the last site level received must be `normal`.
    pub normal_by: Option<ScenarioTime>,
    /// The latest moment a firmware node latches its own alarm (firmware back-ends only).
    pub node_alarm_by: Option<ScenarioTime>,
    /// No firmware node latches its alarm at any moment (firmware back-ends only).
    pub node_never_alarms: Option<bool>,
    /// The latest moment the controller's merged site level reaches `evacuate` (with
    /// `[[gateways]]`).
    pub controller_evacuate_by: Option<ScenarioTime>,
    /// A verdict the controller must reach, by `controller_verdict_by`.
    pub controller_verdict: Option<ControllerVerdict>,
    /// The latest moment for `controller_verdict`.
    pub controller_verdict_by: Option<ScenarioTime>,
    /// The merged level never goes down and up again.
    pub controller_never_flaps: Option<bool>,
    /// The highest merged level allowed (normal, watch, prepare).
    pub controller_max_level: Option<Level>,
}

/// `[[devices]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDevice {
    /// The device id.
    pub name: String,
    /// `ups`, `pdu`, `node` or `room-mqtt`.
    pub kind: DeviceKind,
    /// Its zone.
    pub zone: String,
    /// Modbus devices: the unit id (1).
    pub unit: Option<u8>,
    /// `room-mqtt`: milliseconds between publications (1000).
    pub publish_interval_ms: Option<u64>,
    /// `ups`: how the gateway reads it: `modbus` (the rig's simulator, the default) or `nut`
    /// (NUT's dummy-ups behind upsd, its `.dev` file rewritten from the timeline).
    pub source: Option<UpsSource>,
    /// `pdu`: a recording of snmpsim-data (`UPS/apc-8641`) that snmpsim serves; the gateway
    /// reads it over SNMP v2c with the `apc-rpdu2` profile. It serves what was recorded: no
    /// timeline, no faults.
    pub snmp: Option<String>,
}

/// How the gateway reads a scenario's UPS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UpsSource {
    /// The rig's Modbus TCP simulator (`generic-ups`).
    Modbus,
    /// NUT: dummy-ups fed a `.dev` file, served by upsd (`[[nut_sources]]`).
    Nut,
}

/// A value in a timeline: a number, or `true`/`false` for states.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RawValue(pub f32);

impl<'de> Deserialize<'de> for RawValue {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = RawValue;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number, or true/false")
            }

            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<RawValue, E> {
                Ok(RawValue(if v { 1.0 } else { 0.0 }))
            }

            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<RawValue, E> {
                Ok(RawValue(v as f32))
            }

            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<RawValue, E> {
                Ok(RawValue(v as f32))
            }

            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<RawValue, E> {
                Ok(RawValue(v as f32))
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// `[[timeline]]`: a step (`at`, `value`) or a ramp (`from`, `to`, `end`, optional `start`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawChange {
    /// The device.
    pub device: String,
    /// The signal.
    pub signal: Signal,
    /// Which instance (probe) of the signal (0).
    pub channel: Option<u8>,
    /// Step: when.
    pub at: Option<ScenarioTime>,
    /// Step: the value from then on.
    pub value: Option<RawValue>,
    /// Ramp: start time.
    pub from: Option<ScenarioTime>,
    /// Ramp: end time.
    pub to: Option<ScenarioTime>,
    /// Ramp: value at `from` (the signal's value there when absent).
    pub start: Option<RawValue>,
    /// Ramp: value at `to` and after.
    pub end: Option<RawValue>,
}

/// A fault's kind as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RawFaultKind {
    /// No answer at all.
    Silent,
    /// A Modbus exception response.
    Exception,
    /// Random register contents.
    Garbage,
    /// Every register reads 0xFFFF.
    AllOnes,
    /// The TCP connection is closed at the next request.
    Drop,
    /// Answers after `delay_ms`.
    Slow,
    /// Values freeze at their value when the fault starts.
    Stuck,
}

/// `[[faults]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFault {
    /// The device.
    pub device: String,
    /// What goes wrong.
    pub kind: RawFaultKind,
    /// When it starts.
    pub from: ScenarioTime,
    /// When it ends (absent: it lasts to the end).
    pub to: Option<ScenarioTime>,
    /// `garbage`, `all-ones`, `stuck`: only this signal's registers (else the whole device).
    pub signal: Option<Signal>,
    /// With `signal`: its channel (0).
    pub channel: Option<u8>,
    /// `exception`: the exception code (4, server device failure).
    pub code: Option<u8>,
    /// `slow`: the delay in milliseconds of real time.
    pub delay_ms: Option<u64>,
}

/// An infrastructure event's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RawEventKind {
    /// The MQTT broker stops.
    BrokerStop,
    /// The MQTT broker starts again.
    BrokerRestart,
    /// The gateway process is killed (SIGKILL).
    GatewayKill,
    /// The gateway process is started again.
    GatewayRestart,
    /// The network between the gateway and devices is cut.
    NetworkCut,
    /// The network is restored.
    NetworkRestore,
    /// Sensor nodes reboot (`reason`: `watchdog`, the default, or `power-on`).
    NodeReboot,
    /// The network between a gateway and the broker is cut (packets dropped, connections
    /// left open): the gateway keeps running, deaf and mute.
    GatewayNetworkCut,
    /// That network is back.
    GatewayNetworkRestore,
    /// A gateway's RS-485 bus to the sensor nodes is cut (the other gateway's is not).
    BusCut,
    /// That bus is mended.
    BusRestore,
    /// A technician puts `device` (or one `channel` of it) under maintenance on the gateway
    /// (`firebreak maintenance start`) `for` a while: its readings stop counting as evidence.
    MaintenanceStart,
    /// The technician ends it (`firebreak maintenance end`).
    MaintenanceEnd,
}

/// Why a node reboots in a `node-reboot` event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RebootReason {
    /// Its main loop hangs and its watchdog resets it.
    Watchdog,
    /// Its supply is cut and comes back.
    PowerOn,
}

impl RebootReason {
    /// The name scenario files use.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Watchdog => "watchdog",
            Self::PowerOn => "power-on",
        }
    }

    /// The reset-reason register value the node reports after it (`docs/firmware.md`).
    pub const fn code(self) -> u16 {
        match self {
            Self::Watchdog => 1,
            Self::PowerOn => 0,
        }
    }
}

impl fmt::Display for RebootReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

/// `[[events]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEvent {
    /// When.
    pub at: ScenarioTime,
    /// What.
    pub kind: RawEventKind,
    /// `network-cut`: the devices cut off (all when absent); `node-reboot`: the nodes that
    /// reboot (every node when absent).
    pub devices: Option<Vec<String>>,
    /// `node-reboot`: why (`watchdog` when absent).
    pub reason: Option<RebootReason>,
    /// `gateway-kill`, `gateway-restart`, `gateway-network-cut`, `gateway-network-restore`,
    /// `bus-cut`, `bus-restore`: the gateway (a `[[gateways]]` name); every gateway when
    /// absent.
    pub gateway: Option<String>,
    /// `maintenance-start`, `maintenance-end`: the device (a `[[devices]]` name).
    pub device: Option<String>,
    /// `maintenance-start`, `maintenance-end`: one channel of the device; the whole device
    /// when absent.
    pub channel: Option<u8>,
    /// `maintenance-start`: for how long, in scenario time ("10m"); it ends by itself then.
    #[serde(rename = "for")]
    pub duration: Option<ScenarioTime>,
}
