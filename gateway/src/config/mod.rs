//! The site configuration: one TOML file naming the site, its zones and devices, the
//! profiles of devices nobody here has seen, and the MQTT sources.
//!
//! Parsing is two steps, after probe-rs's DUT definitions: serde reads [`RawSiteConfig`]
//! (every unknown key an error), then [`SiteConfig::from_raw`] checks what types cannot. Every
//! error names the file, the key path and the problem:
//! `site.toml: devices[2].profile: no profile named "apc-smt"`.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::policy::Witness;
use firebreak_protocols::{
    BUILTIN_OID_PROFILES, BUILTIN_PROFILES, ByteOrder, DataType, DeviceId, DeviceProfile,
    GatewayId, IdError, OidDescriptor, OidKind, OidProfile, OidShape, PlanOptions,
    RegisterDescriptor, Sentinels, Signal, SiteId, ValidRange, WordOrder, ZoneId, plan_reads,
};
use serde::Deserialize;

mod raw;

pub use raw::{
    RawBroker, RawDefaults, RawDevice, RawHttp, RawMqttSignal, RawMqttSource, RawNutSource, RawOid,
    RawOidType, RawOutbox, RawPolicy, RawProfile, RawRegister, RawSigning, RawSite, RawSiteConfig,
    RawSnmpSource, RawTelemetry, RawType, RawZone, TransportKind,
};

/// A commented example configuration that passes `firebreak config check`.
pub const EXAMPLE: &str = include_str!("example-site.toml");

/// The most read requests one device's plan may need.
pub const MAX_PLAN_REQUESTS: usize = 256;

/// A configuration that cannot be used: where, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{origin}{line}: {path}{sep}{problem}", line = line_suffix(*.line), sep = if path.is_empty() { "" } else { ": " })]
pub struct ConfigError {
    /// The file (or other origin) the configuration came from.
    pub origin: String,
    /// The line, when the TOML parser knows it.
    pub line: Option<usize>,
    /// The key path (`devices[2].profile`), empty for the whole document.
    pub path: String,
    /// What is wrong.
    pub problem: String,
}

fn line_suffix(line: Option<usize>) -> String {
    line.map(|l| format!(":{l}")).unwrap_or_default()
}

/// How the gateway reaches a Modbus device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// Modbus TCP at `host:port`.
    Tcp {
        /// Host name or address.
        host: String,
        /// TCP port.
        port: u16,
    },
    /// Modbus RTU on a serial line (usually RS-485), shared by every device on it.
    Rtu(SerialLine),
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tcp { host, port } => write!(f, "tcp://{host}:{port}"),
            Self::Rtu(line) => write!(f, "{line}"),
        }
    }
}

/// Parity of a serial line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Parity {
    /// No parity bit.
    None,
    /// Even parity (the Modbus default).
    Even,
    /// Odd parity.
    Odd,
}

/// A serial line's settings.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SerialLine {
    /// The device path (`/dev/ttyUSB0`).
    pub path: String,
    /// Bits per second.
    pub baud: u32,
    /// Parity.
    pub parity: Parity,
    /// Stop bits: 1 or 2.
    pub stop_bits: u8,
    /// Data bits: 7 or 8.
    pub data_bits: u8,
}

impl SerialLine {
    /// The silent interval that separates RTU frames: 3.5 character times, and at least
    /// 1.75 ms above 19200 baud (Modbus over serial line 1.02, 2.5.1.1).
    pub fn frame_gap(&self) -> Duration {
        if self.baud > 19_200 {
            return Duration::from_micros(1750);
        }
        let bits_per_char = 1
            + u64::from(self.data_bits)
            + u64::from(self.parity != Parity::None)
            + u64::from(self.stop_bits);
        Duration::from_micros(bits_per_char * 3_500_000 / u64::from(self.baud.max(1)))
    }
}

impl fmt::Display for SerialLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parity = match self.parity {
            Parity::None => 'N',
            Parity::Even => 'E',
            Parity::Odd => 'O',
        };
        write!(
            f,
            "rtu://{}?baud={}&format={}{}{}",
            self.path, self.baud, self.data_bits, parity, self.stop_bits
        )
    }
}

/// A device map owned by the configuration: a built-in profile or a user-defined one; a
/// Modbus register map or an SNMP map (one of `registers` and `oids` is empty).
#[derive(Debug, Clone, PartialEq)]
pub struct OwnedProfile {
    /// Its name.
    pub name: String,
    /// One line for humans.
    pub description: String,
    /// Its Modbus values.
    pub registers: Vec<RegisterDescriptor>,
    /// Its SNMP values.
    pub oids: Vec<OwnedOid>,
}

/// One SNMP object or column of an [`OwnedProfile`]: an [`OidDescriptor`] that owns its OID
/// and value lists.
#[derive(Debug, Clone, PartialEq)]
pub struct OwnedOid {
    /// The signal it feeds.
    pub signal: Signal,
    /// The dotted OID.
    pub oid: String,
    /// A scalar or a column.
    pub shape: OidShape,
    /// A number or a flag.
    pub kind: OidKind,
    /// For a flag: the raw values meaning 1.
    pub on: Vec<i64>,
    /// Multiplier.
    pub scale: f64,
    /// Offset.
    pub offset: f64,
    /// Valid engineering values.
    pub valid: ValidRange,
    /// Raw values meaning "no reading".
    pub sentinels: Vec<i64>,
}

impl OwnedOid {
    /// A borrowed view, for the `protocols` functions.
    pub fn view(&self) -> OidDescriptor<'_> {
        OidDescriptor {
            signal: self.signal,
            oid: &self.oid,
            shape: self.shape,
            kind: self.kind,
            on: &self.on,
            scale: self.scale,
            offset: self.offset,
            valid: self.valid,
            sentinels: &self.sentinels,
        }
    }

    fn from_builtin(d: &OidDescriptor<'_>) -> OwnedOid {
        OwnedOid {
            signal: d.signal,
            oid: d.oid.to_string(),
            shape: d.shape,
            kind: d.kind,
            on: d.on.to_vec(),
            scale: d.scale,
            offset: d.offset,
            valid: d.valid,
            sentinels: d.sentinels.to_vec(),
        }
    }
}

impl OwnedProfile {
    /// A borrowed view, for the `protocols` functions.
    pub fn view(&self) -> DeviceProfile<'_> {
        DeviceProfile {
            name: &self.name,
            description: &self.description,
            registers: &self.registers,
        }
    }

    fn from_builtin(p: &DeviceProfile<'_>) -> OwnedProfile {
        OwnedProfile {
            name: p.name.to_string(),
            description: p.description.to_string(),
            registers: p.registers.to_vec(),
            oids: Vec::new(),
        }
    }

    /// An owned copy of a built-in SNMP profile.
    pub fn from_builtin_oids(p: &OidProfile<'_>) -> OwnedProfile {
        OwnedProfile {
            name: p.name.to_string(),
            description: p.description.to_string(),
            registers: Vec::new(),
            oids: p.oids.iter().map(OwnedOid::from_builtin).collect(),
        }
    }

    /// Whether it is an SNMP map.
    pub fn is_snmp(&self) -> bool {
        !self.oids.is_empty()
    }
}

/// One Modbus device.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceConfig {
    /// Its id, in samples and topics.
    pub name: DeviceId,
    /// Its zone.
    pub zone: ZoneId,
    /// How to reach it.
    pub transport: Transport,
    /// Its Modbus unit id (1..=247).
    pub unit: u8,
    /// Its register map.
    pub profile: Arc<OwnedProfile>,
    /// How reads are merged.
    pub plan: PlanOptions,
    /// Time between polls.
    pub poll_interval: Duration,
    /// How long one request may take.
    pub timeout: Duration,
    /// Retries of a failed request within one poll.
    pub retries: u8,
    /// Missed polls after which its signals turn `comm-lost`.
    pub comm_lost_after: u32,
    /// Age after which a value turns `stale`.
    pub freshness: Duration,
    /// What it fails together with.
    pub witness: Witness,
}

/// One mapping from a JSON payload field to a signal.
#[derive(Debug, Clone, PartialEq)]
pub struct MqttSignal {
    /// The signal it feeds.
    pub signal: Signal,
    /// The channel.
    pub channel: u8,
    /// The JSON pointer (RFC 6901) to the value in the payload (`/temperature`).
    pub pointer: String,
    /// Multiplier to the signal's unit.
    pub scale: f64,
    /// Added after scaling.
    pub offset: f64,
    /// Values outside it are `out-of-range`.
    pub valid: ValidRange,
}

/// The default [`MqttSourceConfig::max_payload`]: 64 KiB.
pub const DEFAULT_MAX_PAYLOAD: usize = 64 * 1024;

/// The values `max_payload` may take: 1 KiB to 1 MiB. A sensor's JSON is a few hundred
/// bytes; the bound keeps one source from making the gateway parse megabytes.
pub const MAX_PAYLOAD_RANGE: std::ops::RangeInclusive<usize> = 1024..=1024 * 1024;

/// A device that publishes over MQTT (building sensors).
#[derive(Debug, Clone, PartialEq)]
pub struct MqttSourceConfig {
    /// The device id its samples carry.
    pub name: DeviceId,
    /// Its zone.
    pub zone: ZoneId,
    /// How to reach its broker (named after the source); TLS and password as for
    /// `[[brokers]]`.
    pub broker: BrokerConfig,
    /// The topic filter to subscribe to.
    pub topic: String,
    /// The largest payload read as JSON, in bytes; a larger one is counted as malformed.
    pub max_payload: usize,
    /// How payload fields map to signals.
    pub signals: Vec<MqttSignal>,
    /// Age after which a value turns `stale`.
    pub freshness: Duration,
    /// What it fails together with.
    pub witness: Witness,
}

/// A validated site configuration.
#[derive(Debug, Clone)]
pub struct SiteConfig {
    /// The site.
    pub site: SiteId,
    /// This gateway's identity.
    pub gateway: GatewayId,
    /// The zones, in the order declared.
    pub zones: Vec<ZoneId>,
    /// Where the HTTP status endpoint listens.
    pub http_bind: SocketAddr,
    /// The Modbus devices.
    pub devices: Vec<DeviceConfig>,
    /// The MQTT sources.
    pub mqtt_sources: Vec<MqttSourceConfig>,
    /// The NUT sources.
    pub nut_sources: Vec<NutSourceConfig>,
    /// The SNMP sources.
    pub snmp_sources: Vec<SnmpSourceConfig>,
    /// Where SNMP traps are received, when they are.
    pub snmp_traps: Option<SnmpTrapsConfig>,
    /// Every profile by name: the built-ins and the user-defined ones.
    pub profiles: BTreeMap<String, Arc<OwnedProfile>>,
    /// The policy: evacuation budget, hold time and rules.
    pub policy: crate::policy::Policy,
    /// The brokers triggers are delivered to (none: the gateway publishes nothing).
    pub brokers: Vec<BrokerConfig>,
    /// The signing key; present whenever brokers are.
    pub signing: Option<SigningConfig>,
    /// The outbox; present whenever brokers are.
    pub outbox: Option<OutboxConfig>,
    /// Telemetry out to the brokers.
    pub telemetry: crate::telemetry::TelemetryConfig,
    /// The local control socket (`firebreak drill`): `[control] socket`, by default
    /// `control.sock` in the outbox directory; `None` without an outbox (no brokers).
    pub control_socket: Option<std::path::PathBuf>,
}

/// How to reach an MQTT broker: a `[[brokers]]` entry triggers are delivered to, or the
/// broker an `[[mqtt_sources]]` entry reads from. Holds where secrets are, never a secret
/// itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerConfig {
    /// Its name in logs, metrics, the outbox and the MQTT client id (a source's: the
    /// source's name).
    pub name: String,
    /// Host name or address.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// TLS settings, for `mqtts://`.
    pub tls: Option<TlsFiles>,
    /// The MQTT user name.
    pub username: Option<String>,
    /// Where the MQTT password is.
    pub password: Option<PasswordSource>,
}

impl BrokerConfig {
    /// `mqtt://host:port` or `mqtts://host:port`: no user name, no secret.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "mqtts" } else { "mqtt" };
        if self.host.contains(':') {
            format!("{scheme}://[{}]:{}", self.host, self.port)
        } else {
            format!("{scheme}://{}:{}", self.host, self.port)
        }
    }
}

/// The files of a TLS connection to a broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The CA certificate (PEM) that signed the broker's certificate.
    pub ca_file: std::path::PathBuf,
    /// This gateway's certificate and private key (PEM), when the broker asks for one.
    pub client: Option<(std::path::PathBuf, std::path::PathBuf)>,
}

/// Where an MQTT password is kept: the configuration names it, never holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordSource {
    /// The first line of this file.
    File(std::path::PathBuf),
    /// This environment variable.
    Env(String),
}

impl PasswordSource {
    /// Reads the password: the file's first line (the file must be readable by its owner
    /// only) or the variable's value; else what failed and why, never the secret.
    pub fn read(&self) -> Result<String, (String, String)> {
        match self {
            PasswordSource::File(path) => {
                let what = format!("password_file {}", path.display());
                crate::secrets::check_secret_file(path).map_err(|p| (what.clone(), p))?;
                let text = std::fs::read_to_string(path)
                    .map_err(|e| (what.clone(), format!("cannot read: {e}")))?;
                let line = text.lines().next().unwrap_or_default();
                if line.is_empty() {
                    return Err((what, "the first line is empty".into()));
                }
                Ok(line.to_string())
            }
            PasswordSource::Env(name) => match std::env::var(name) {
                Ok(v) if !v.is_empty() => Ok(v),
                Ok(_) => Err((format!("password_env {name}"), "is empty".into())),
                Err(_) => Err((format!("password_env {name}"), "is not set".into())),
            },
        }
    }
}

/// A UPS served by Network UPS Tools' `upsd` (`[[nut_sources]]`).
#[derive(Debug, Clone, PartialEq)]
pub struct NutSourceConfig {
    /// Its device id.
    pub name: DeviceId,
    /// Its zone.
    pub zone: ZoneId,
    /// The upsd host.
    pub host: String,
    /// The upsd port (3493).
    pub port: u16,
    /// The UPS's name on that upsd.
    pub ups: String,
    /// The upsd user, when it asks for a login.
    pub username: Option<String>,
    /// Where its password is.
    pub password: Option<PasswordSource>,
    /// Time between polls.
    pub poll_interval: Duration,
    /// How long connecting, logging in or one `LIST VAR` may take.
    pub timeout: Duration,
    /// Missed polls after which its signals turn `comm-lost`.
    pub comm_lost_after: u32,
    /// Age after which a value turns `stale`.
    pub freshness: Duration,
    /// What it fails together with.
    pub witness: Witness,
}

impl NutSourceConfig {
    /// `nut://host:port/ups`: no user name, no secret.
    pub fn url(&self) -> String {
        format!("nut://{}:{}/{}", self.host, self.port, self.ups)
    }
}

/// A UPS card or rack PDU read over SNMP (`[[snmp_sources]]`).
#[derive(Debug, Clone, PartialEq)]
pub struct SnmpSourceConfig {
    /// Its device id.
    pub name: DeviceId,
    /// Its zone.
    pub zone: ZoneId,
    /// The agent's host.
    pub host: String,
    /// The agent's UDP port (161).
    pub port: u16,
    /// Its SNMP map.
    pub profile: Arc<OwnedProfile>,
    /// The version and its credentials.
    pub auth: SnmpAuth,
    /// Time between polls.
    pub poll_interval: Duration,
    /// How long one request may take before it is sent again.
    pub timeout: Duration,
    /// Requests sent again within a poll before it fails.
    pub retries: u8,
    /// Missed polls after which its signals turn `comm-lost`.
    pub comm_lost_after: u32,
    /// Age after which a value turns `stale`.
    pub freshness: Duration,
    /// What it fails together with.
    pub witness: Witness,
}

impl SnmpSourceConfig {
    /// `snmp://host:port`: no community, no secret.
    pub fn url(&self) -> String {
        if self.host.contains(':') {
            format!("snmp://[{}]:{}", self.host, self.port)
        } else {
            format!("snmp://{}:{}", self.host, self.port)
        }
    }
}

/// `[snmp_traps]`, checked: a trap from an SNMP source's agent polls that source at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnmpTrapsConfig {
    /// Where to listen (UDP).
    pub bind: SocketAddr,
    /// The communities accepted; any when empty.
    pub communities: Vec<String>,
}

/// An SNMP version and where its secrets are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnmpAuth {
    /// SNMPv2c with a community.
    V2c {
        /// The community.
        community: Community,
    },
    /// SNMPv3 with the User-based Security Model.
    V3 {
        /// The user name.
        username: String,
        /// The authentication protocol and password (authNoPriv or authPriv).
        auth: Option<(SnmpAuthProtocol, PasswordSource)>,
        /// The privacy protocol and password (authPriv).
        privacy: Option<(SnmpPrivProtocol, PasswordSource)>,
    },
}

/// An SNMPv2c community: written in the configuration (a read-only community such as
/// `public`), or kept like a password.
#[derive(Clone, PartialEq, Eq)]
pub enum Community {
    /// Written in the configuration.
    Inline(String),
    /// In a file or an environment variable.
    Secret(PasswordSource),
}

impl fmt::Debug for Community {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Inline(_) => f.write_str("Inline(…)"),
            Self::Secret(s) => f.debug_tuple("Secret").field(s).finish(),
        }
    }
}

impl Community {
    /// The community, or what failed and why (never the secret).
    pub fn read(&self) -> Result<String, (String, String)> {
        match self {
            Self::Inline(c) => Ok(c.clone()),
            Self::Secret(s) => s.read(),
        }
    }
}

/// SNMPv3 authentication protocols.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnmpAuthProtocol {
    /// HMAC-MD5-96 (legacy).
    Md5,
    /// HMAC-SHA-96.
    Sha1,
    /// HMAC-SHA-224.
    Sha224,
    /// HMAC-SHA-256.
    Sha256,
    /// HMAC-SHA-384.
    Sha384,
    /// HMAC-SHA-512.
    Sha512,
}

/// SNMPv3 privacy protocols.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnmpPrivProtocol {
    /// DES (legacy).
    Des,
    /// AES-128 (CFB).
    Aes128,
    /// AES-192.
    Aes192,
    /// AES-256.
    Aes256,
}

/// `[signing]`, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningConfig {
    /// The private key file.
    pub key_file: std::path::PathBuf,
    /// The key id the file must hold, when the configuration says.
    pub key_id: Option<firebreak_protocols::KeyId>,
}

/// `[outbox]`, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxConfig {
    /// The directory of the store.
    pub dir: std::path::PathBuf,
    /// The most triggers waiting for one broker.
    pub capacity: u32,
    /// Waiting triggers at which a broker's outbox is reported near full.
    pub warn_at: u32,
}

/// The default [`OutboxConfig::capacity`].
pub const DEFAULT_OUTBOX_CAPACITY: u32 = 10_000;

/// The HTTP endpoint's default address: loopback only.
pub const DEFAULT_HTTP_BIND: &str = "127.0.0.1:9186";

impl SiteConfig {
    /// Reads and checks a configuration file.
    pub fn load(path: &Path) -> Result<SiteConfig, ConfigError> {
        let (text, origin) = read_text(path)?;
        SiteConfig::parse(&text, &origin)
    }

    /// Parses and checks a configuration; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<SiteConfig, ConfigError> {
        let raw = parse_raw(text, origin)?;
        SiteConfig::from_raw(raw, origin)
    }

    /// Checks what the types alone cannot.
    pub fn from_raw(raw: RawSiteConfig, origin: &str) -> Result<SiteConfig, ConfigError> {
        Validator { origin }.site(raw)
    }

    /// The devices on each serial line, by path: one task serves a line, one request at a time.
    pub fn rtu_buses(&self) -> BTreeMap<&str, Vec<&DeviceConfig>> {
        let mut buses: BTreeMap<&str, Vec<&DeviceConfig>> = BTreeMap::new();
        for d in &self.devices {
            if let Transport::Rtu(line) = &d.transport {
                buses.entry(line.path.as_str()).or_default().push(d);
            }
        }
        buses
    }

    /// Every device and source of every kind (Modbus, MQTT, NUT, SNMP): its name, zone and
    /// witness group, in that order.
    pub fn all_devices(&self) -> Vec<(&DeviceId, &ZoneId, &Witness)> {
        let mut all: Vec<(&DeviceId, &ZoneId, &Witness)> = Vec::new();
        all.extend(self.devices.iter().map(|d| (&d.name, &d.zone, &d.witness)));
        all.extend(
            self.mqtt_sources
                .iter()
                .map(|s| (&s.name, &s.zone, &s.witness)),
        );
        all.extend(
            self.nut_sources
                .iter()
                .map(|s| (&s.name, &s.zone, &s.witness)),
        );
        all.extend(
            self.snmp_sources
                .iter()
                .map(|s| (&s.name, &s.zone, &s.witness)),
        );
        all
    }

    /// A device by name.
    pub fn device(&self, name: &str) -> Option<&DeviceConfig> {
        self.devices.iter().find(|d| d.name.as_str() == name)
    }
}

/// Checks one SNMP source given outside a site file (`firebreak probe snmp://…`) with the
/// checks of `[[snmp_sources]]`: its profile is a built-in one, its zone `probe`; errors name
/// `origin`.
pub fn standalone_snmp_source(
    raw: RawSnmpSource,
    origin: &str,
) -> Result<SnmpSourceConfig, ConfigError> {
    let zone: ZoneId = "probe".parse().map_err(|e: IdError| ConfigError {
        origin: origin.to_string(),
        line: None,
        path: String::new(),
        problem: e.to_string(),
    })?;
    Validator { origin }.snmp_source(
        0,
        raw,
        &RawDefaults::default(),
        &[zone],
        &validate::builtin_profiles(),
    )
}

/// Reads a configuration file: its text, and its name for errors.
pub fn read_text(path: &Path) -> Result<(String, String), ConfigError> {
    let origin = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => Ok((text, origin)),
        Err(e) => Err(ConfigError {
            origin,
            line: None,
            path: String::new(),
            problem: format!("cannot read: {e}"),
        }),
    }
}

/// Reads the TOML into the raw types; errors carry the key path and line.
pub fn parse_raw(text: &str, origin: &str) -> Result<RawSiteConfig, ConfigError> {
    parse_toml(text, origin)
}

/// Reads any TOML document into `T`; errors name `origin`, the key path and the line (the
/// project's one TOML reader, [`firebreak_protocols::toml_file`]).
pub fn parse_toml<T: serde::de::DeserializeOwned>(
    text: &str,
    origin: &str,
) -> Result<T, ConfigError> {
    firebreak_protocols::toml_file::parse(text).map_err(|e| ConfigError {
        origin: origin.to_string(),
        line: e.line,
        path: e.path,
        problem: e.problem,
    })
}

mod url;
mod validate;

pub use url::{parse_broker_url, parse_host_port, parse_nut_url, parse_snmp_url};
use validate::Validator;

#[cfg(test)]
mod tests;
