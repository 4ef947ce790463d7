//! The configuration as TOML spells it: serde types, every unknown key an error.

use firebreak_protocols::{ByteOrder, Signal, Table, WordOrder};
use serde::Deserialize;

use super::Parity;

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSiteConfig {
    /// `[site]`.
    pub site: RawSite,
    /// `[[zones]]`.
    #[serde(default)]
    pub zones: Vec<RawZone>,
    /// `[http]`.
    pub http: Option<RawHttp>,
    /// `[policy]`: the evacuation budget and the rules.
    pub policy: Option<RawPolicy>,
    /// `[defaults]`: per-device settings that devices may override.
    pub defaults: Option<RawDefaults>,
    /// `[[devices]]`.
    #[serde(default)]
    pub devices: Vec<RawDevice>,
    /// `[[profiles]]`: user-defined register maps.
    #[serde(default)]
    pub profiles: Vec<RawProfile>,
    /// `[[mqtt_sources]]`.
    #[serde(default)]
    pub mqtt_sources: Vec<RawMqttSource>,
    /// `[[brokers]]`: where triggers are delivered.
    #[serde(default)]
    pub brokers: Vec<RawBroker>,
    /// `[signing]`: the key that signs triggers.
    pub signing: Option<RawSigning>,
    /// `[outbox]`: where triggers wait for each broker's acknowledgement.
    pub outbox: Option<RawOutbox>,
    /// `[telemetry]`: devices' values out to the brokers.
    pub telemetry: Option<RawTelemetry>,
    /// `[[nut_sources]]`: UPSes served by Network UPS Tools' `upsd`.
    #[serde(default)]
    pub nut_sources: Vec<RawNutSource>,
    /// `[[snmp_sources]]`: UPS cards and rack PDUs read over SNMP.
    #[serde(default)]
    pub snmp_sources: Vec<RawSnmpSource>,
    /// `[snmp_traps]`: where SNMP traps from the SNMP sources are received.
    pub snmp_traps: Option<RawSnmpTraps>,
    /// `[control]`: the local control socket (`firebreak drill`).
    pub control: Option<RawControl>,
}

/// `[control]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawControl {
    /// The Unix socket's path (default: `control.sock` in the outbox directory).
    pub socket: Option<String>,
}

/// `[snmp_traps]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSnmpTraps {
    /// `address:port` to receive traps on (162 needs CAP_NET_BIND_SERVICE).
    pub bind: String,
    /// The communities accepted (v1/v2c); any when empty.
    #[serde(default)]
    pub communities: Vec<String>,
}

/// `[site]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSite {
    /// The site id.
    pub name: String,
    /// This gateway's id.
    pub gateway: String,
}

/// `[[zones]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawZone {
    /// The zone id.
    pub name: String,
}

/// `[policy]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPolicy {
    /// Seconds the failover controllers need to move traffic out of the site.
    pub evacuation_budget_s: Option<u32>,
    /// Seconds added to the budget before the time to power loss calls for `evacuate`.
    pub margin_s: Option<u32>,
    /// Seconds a level is held after its cause cleared.
    pub hold_s: Option<u32>,
    /// A rules file (relative to this file); the built-in rules when absent.
    pub rules_file: Option<String>,
}

/// `[http]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHttp {
    /// `address:port` to listen on.
    pub bind: String,
}

/// `[defaults]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDefaults {
    /// Milliseconds between polls.
    pub poll_interval_ms: Option<u64>,
    /// Milliseconds one request may take.
    pub timeout_ms: Option<u64>,
    /// Retries of a failed request within a poll.
    pub retries: Option<u8>,
    /// Missed polls before `comm-lost`.
    pub comm_lost_after: Option<u32>,
    /// Milliseconds before a value is `stale`.
    pub freshness_ms: Option<u64>,
    /// Unused registers a read may span.
    pub max_gap: Option<u16>,
    /// Most registers per request.
    pub max_registers: Option<u16>,
}

/// How a device is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TransportKind {
    /// Modbus TCP.
    Tcp,
    /// Modbus RTU on a serial line.
    Rtu,
}

/// `[[devices]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDevice {
    /// The device id.
    pub name: String,
    /// Its zone.
    pub zone: String,
    /// `tcp` or `rtu`.
    pub transport: TransportKind,
    /// For `tcp`: `host:port`.
    pub address: Option<String>,
    /// For `rtu`: the serial device path.
    pub serial: Option<String>,
    /// For `rtu`: bits per second (19200).
    pub baud: Option<u32>,
    /// For `rtu`: `none`, `even` (default) or `odd`.
    pub parity: Option<Parity>,
    /// For `rtu`: 1 (default) or 2.
    pub stop_bits: Option<u8>,
    /// For `rtu`: 8 (default) or 7.
    pub data_bits: Option<u8>,
    /// The Modbus unit id.
    pub unit: u8,
    /// A built-in or user-defined profile name.
    pub profile: String,
    /// See [`RawDefaults`].
    pub poll_interval_ms: Option<u64>,
    /// See [`RawDefaults`].
    pub timeout_ms: Option<u64>,
    /// See [`RawDefaults`].
    pub retries: Option<u8>,
    /// See [`RawDefaults`].
    pub comm_lost_after: Option<u32>,
    /// See [`RawDefaults`].
    pub freshness_ms: Option<u64>,
    /// See [`RawDefaults`].
    pub max_gap: Option<u16>,
    /// See [`RawDefaults`].
    pub max_registers: Option<u16>,
    /// What it fails together with: devices of one group are one witness (docs/policy.md,
    /// "Evidence"). Default: the device alone.
    pub witness_group: Option<String>,
    /// Its channels are independent witnesses (separately wired and powered probes).
    /// Default false: two channels of one device are one witness.
    pub independent_channels: Option<bool>,
}

/// `[[profiles]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProfile {
    /// The name devices refer to.
    pub name: String,
    /// One line for humans.
    pub description: Option<String>,
    /// `[[profiles.registers]]`: a Modbus register map.
    #[serde(default)]
    pub registers: Vec<RawRegister>,
    /// `[[profiles.oids]]`: an SNMP map (a profile has registers or oids, not both).
    #[serde(default)]
    pub oids: Vec<RawOid>,
}

/// How an SNMP value is read, as configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RawOidType {
    /// A number (any integer type, or a string holding a decimal number).
    Number,
    /// 0 or 1: 1 when the raw value is one of `on`.
    Flag,
}

/// `[[profiles.oids]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOid {
    /// The signal it feeds.
    pub signal: Signal,
    /// Dotted OID: a scalar's instance (`…1.2.3.0`), or with `table`, a column.
    pub oid: String,
    /// The OID is a table column: its rows are walked, row `first_index` feeds channel 0.
    #[serde(default)]
    pub table: bool,
    /// With `table`: the index of the row feeding channel 0 (1).
    pub first_index: Option<u32>,
    /// Without `table`: the channel (0).
    pub channel: Option<u8>,
    /// `number` (default) or `flag`.
    pub r#type: Option<RawOidType>,
    /// For `flag`: the raw values meaning 1.
    #[serde(default)]
    pub on: Vec<i64>,
    /// Multiplier to the signal's unit (default 1).
    #[serde(default = "one")]
    pub scale: f64,
    /// Added after scaling (default 0).
    #[serde(default)]
    pub offset: f64,
    /// The lowest valid engineering value.
    pub min: Option<f32>,
    /// The highest valid engineering value.
    pub max: Option<f32>,
    /// Raw values meaning "no reading" (APC's −1).
    #[serde(default)]
    pub sentinels: Vec<i64>,
}

/// A register's data type as configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RawType {
    /// A coil or discrete input.
    Bool,
    /// One bit of a 16-bit register; give `bit`.
    Bit,
    /// Unsigned 16-bit.
    U16,
    /// Signed 16-bit.
    I16,
    /// Unsigned 32-bit, two registers.
    U32,
    /// Signed 32-bit, two registers.
    I32,
    /// IEEE 754 single, two registers.
    F32,
}

/// `[[profiles.registers]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRegister {
    /// The signal it feeds.
    pub signal: Signal,
    /// Which instance of the signal (probe, phase).
    #[serde(default)]
    pub channel: u8,
    /// `coil`, `discrete-input`, `holding` or `input`.
    pub table: Table,
    /// 0-based protocol address.
    pub address: u16,
    /// The data type.
    pub r#type: RawType,
    /// For `bit`: which bit, 0 = least significant.
    pub bit: Option<u8>,
    /// For 32-bit types: `high-first` (default) or `low-first`.
    pub word_order: Option<WordOrder>,
    /// `big` (default) or `swapped`.
    pub byte_order: Option<ByteOrder>,
    /// Multiplier to the signal's unit (default 1).
    #[serde(default = "one")]
    pub scale: f64,
    /// Added after scaling (default 0).
    #[serde(default)]
    pub offset: f64,
    /// The lowest valid engineering value.
    pub min: Option<f32>,
    /// The highest valid engineering value.
    pub max: Option<f32>,
    /// Raw values meaning "no sensor" (at most 4).
    #[serde(default)]
    pub sentinels: Vec<u32>,
}

fn one() -> f64 {
    1.0
}

/// `[[mqtt_sources]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMqttSource {
    /// The device id its samples carry.
    pub name: String,
    /// Its zone.
    pub zone: String,
    /// `mqtt://host:port` or `mqtts://host:port` (TLS).
    pub broker: String,
    /// See [`RawBroker::ca_file`].
    pub ca_file: Option<String>,
    /// See [`RawBroker::client_cert`].
    pub client_cert: Option<String>,
    /// See [`RawBroker::client_key`].
    pub client_key: Option<String>,
    /// See [`RawBroker::username`].
    pub username: Option<String>,
    /// See [`RawBroker::password_file`].
    pub password_file: Option<String>,
    /// See [`RawBroker::password_env`].
    pub password_env: Option<String>,
    /// The topic filter.
    pub topic: String,
    /// Milliseconds before a value is `stale` (60000).
    pub freshness_ms: Option<u64>,
    /// The largest payload, in bytes, that is read as JSON; larger ones are counted as
    /// malformed (65536).
    pub max_payload: Option<u64>,
    /// `[[mqtt_sources.signals]]`.
    #[serde(default)]
    pub signals: Vec<RawMqttSignal>,
    /// See [`RawDevice::witness_group`].
    pub witness_group: Option<String>,
    /// See [`RawDevice::independent_channels`].
    pub independent_channels: Option<bool>,
}

/// `[[mqtt_sources.signals]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMqttSignal {
    /// The signal.
    pub signal: Signal,
    /// The channel.
    #[serde(default)]
    pub channel: u8,
    /// JSON pointer to the value (`/sensors/0/temperature`); or give `field`.
    pub pointer: Option<String>,
    /// A top-level field of the payload (`temperature`); or give `pointer`.
    pub field: Option<String>,
    /// Multiplier (default 1).
    #[serde(default = "one")]
    pub scale: f64,
    /// Offset (default 0).
    #[serde(default)]
    pub offset: f64,
    /// Lowest valid value.
    pub min: Option<f32>,
    /// Highest valid value.
    pub max: Option<f32>,
}

/// `[[brokers]]`: one MQTT broker triggers are delivered to. Secrets are named, never inline.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBroker {
    /// An id for logs, metrics and the broker's outbox (`site-b`).
    pub name: String,
    /// `mqtt://host:port` or `mqtts://host:port` (TLS).
    pub url: String,
    /// For `mqtts://`: the CA certificate (PEM) that signed the broker's certificate.
    pub ca_file: Option<String>,
    /// For `mqtts://`: this gateway's certificate (PEM), for brokers that ask for one.
    pub client_cert: Option<String>,
    /// For `mqtts://`: the private key (PEM) of `client_cert`.
    pub client_key: Option<String>,
    /// The MQTT user name.
    pub username: Option<String>,
    /// A file holding the MQTT password (its first line); or give `password_env`.
    pub password_file: Option<String>,
    /// The name of an environment variable holding the MQTT password.
    pub password_env: Option<String>,
}

impl RawMqttSource {
    /// How to reach its broker, as a `[[brokers]]` entry named after the source, so that one
    /// validator checks both (serde's `flatten` cannot share the keys: it would lose
    /// `deny_unknown_fields`). The connection keys are taken out of `self`.
    pub fn take_broker(&mut self) -> RawBroker {
        RawBroker {
            name: self.name.clone(),
            url: std::mem::take(&mut self.broker),
            ca_file: self.ca_file.take(),
            client_cert: self.client_cert.take(),
            client_key: self.client_key.take(),
            username: self.username.take(),
            password_file: self.password_file.take(),
            password_env: self.password_env.take(),
        }
    }
}

/// `[signing]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSigning {
    /// The private key file `firebreak keygen` wrote (mode 0600).
    pub key_file: String,
    /// The key id; when given, it must be the one in the key file.
    pub key_id: Option<String>,
}

/// `[outbox]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOutbox {
    /// The directory of the outbox store (created when missing).
    pub dir: String,
    /// The most triggers waiting for one broker (10000).
    pub capacity: Option<u32>,
    /// Waiting triggers at which a broker's outbox is reported near full (80 % of capacity).
    pub warn_at: Option<u32>,
}

/// `[telemetry]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTelemetry {
    /// Whether telemetry is published (true).
    pub enabled: Option<bool>,
    /// A device is published at least this often, in seconds (60).
    pub every_s: Option<u64>,
    /// A device is published at most this often, in milliseconds (1000).
    pub min_interval_ms: Option<u64>,
    /// Messages waiting per broker before more are dropped (256).
    pub queue: Option<usize>,
    /// Per signal name, the change worth publishing at once.
    #[serde(default)]
    pub deadbands: std::collections::BTreeMap<String, f32>,
}

/// `[[nut_sources]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNutSource {
    /// The device id.
    pub name: String,
    /// Its zone.
    pub zone: String,
    /// `nut://host[:port]/ups` (port 3493 when absent).
    pub url: String,
    /// The upsd user (`upsd.users`), when it asks for a login.
    pub username: Option<String>,
    /// A file whose first line is the password (mode 0600).
    pub password_file: Option<String>,
    /// An environment variable holding the password.
    pub password_env: Option<String>,
    /// See [`RawDefaults`].
    pub poll_interval_ms: Option<u64>,
    /// See [`RawDefaults`].
    pub timeout_ms: Option<u64>,
    /// See [`RawDefaults`].
    pub comm_lost_after: Option<u32>,
    /// See [`RawDefaults`].
    pub freshness_ms: Option<u64>,
    /// What it fails together with (docs/policy.md, "Evidence").
    pub witness_group: Option<String>,
}

/// `[[snmp_sources]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSnmpSource {
    /// The device id.
    pub name: String,
    /// Its zone.
    pub zone: String,
    /// `snmp://host[:port]` (port 161 when absent).
    pub url: String,
    /// A built-in or user-defined SNMP profile (`[[profiles.oids]]`).
    pub profile: String,
    /// `2c` (default) or `3`.
    pub version: Option<String>,
    /// SNMPv2c: the community, written here (a read-only community); or give
    /// `community_file` or `community_env`.
    pub community: Option<String>,
    /// SNMPv2c: a file whose first line is the community (mode 0600).
    pub community_file: Option<String>,
    /// SNMPv2c: an environment variable holding the community.
    pub community_env: Option<String>,
    /// SNMPv3: the USM user name.
    pub username: Option<String>,
    /// SNMPv3: `sha`, `sha224`, `sha256` (default with a password), `sha384`, `sha512` or `md5`.
    pub auth_protocol: Option<String>,
    /// SNMPv3: a file whose first line is the authentication password (mode 0600).
    pub auth_password_file: Option<String>,
    /// SNMPv3: an environment variable holding the authentication password.
    pub auth_password_env: Option<String>,
    /// SNMPv3: `aes` (AES-128, default with a password), `aes192`, `aes256` or `des`.
    pub priv_protocol: Option<String>,
    /// SNMPv3: a file whose first line is the privacy password (mode 0600).
    pub priv_password_file: Option<String>,
    /// SNMPv3: an environment variable holding the privacy password.
    pub priv_password_env: Option<String>,
    /// See [`RawDefaults`].
    pub poll_interval_ms: Option<u64>,
    /// See [`RawDefaults`].
    pub timeout_ms: Option<u64>,
    /// See [`RawDefaults`].
    pub retries: Option<u8>,
    /// See [`RawDefaults`].
    pub comm_lost_after: Option<u32>,
    /// See [`RawDefaults`].
    pub freshness_ms: Option<u64>,
    /// See [`RawDevice::witness_group`].
    pub witness_group: Option<String>,
    /// See [`RawDevice::independent_channels`].
    pub independent_channels: Option<bool>,
}
