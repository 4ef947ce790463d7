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
    BUILTIN_PROFILES, ByteOrder, DataType, DeviceId, DeviceProfile, GatewayId, IdError,
    PlanOptions, RegisterDescriptor, Sentinels, Signal, SiteId, ValidRange, WordOrder, ZoneId,
    plan_reads,
};
use serde::Deserialize;

mod raw;

pub use raw::{
    RawBroker, RawDefaults, RawDevice, RawHttp, RawMqttSignal, RawMqttSource, RawOutbox, RawPolicy,
    RawProfile, RawRegister, RawSigning, RawSite, RawSiteConfig, RawType, RawZone, TransportKind,
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

/// A register map owned by the configuration: a built-in profile or a user-defined one.
#[derive(Debug, Clone, PartialEq)]
pub struct OwnedProfile {
    /// Its name.
    pub name: String,
    /// One line for humans.
    pub description: String,
    /// Its values.
    pub registers: Vec<RegisterDescriptor>,
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
        }
    }
}

/// One Modbus device.
#[derive(Debug, Clone)]
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
#[derive(Debug, Clone)]
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

    /// A device by name.
    pub fn device(&self, name: &str) -> Option<&DeviceConfig> {
        self.devices.iter().find(|d| d.name.as_str() == name)
    }
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

/// Reads any TOML document into `T`; errors name `origin`, the key path and the line.
pub fn parse_toml<T: serde::de::DeserializeOwned>(
    text: &str,
    origin: &str,
) -> Result<T, ConfigError> {
    let line_of = |span: Option<std::ops::Range<usize>>| {
        span.map(|s| text.get(..s.start).unwrap_or("").matches('\n').count() + 1)
    };
    let de = toml::Deserializer::parse(text).map_err(|e| ConfigError {
        origin: origin.to_string(),
        line: line_of(e.span()),
        path: String::new(),
        problem: e.message().trim().to_string(),
    })?;
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        ConfigError {
            origin: origin.to_string(),
            line: line_of(inner.span()),
            path: if path == "." { String::new() } else { path },
            problem: inner.message().trim().to_string(),
        }
    })
}

struct Validator<'a> {
    origin: &'a str,
}

impl Validator<'_> {
    fn err(&self, path: impl Into<String>, problem: impl Into<String>) -> ConfigError {
        ConfigError {
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
    ) -> Result<T, ConfigError> {
        s.parse()
            .map_err(|e: IdError| self.err(path, format!("{s:?} {e}")))
    }

    fn site(&self, raw: RawSiteConfig) -> Result<SiteConfig, ConfigError> {
        let site: SiteId = self.id("site.name", &raw.site.name)?;
        let gateway: GatewayId = self.id("site.gateway", &raw.site.gateway)?;

        let mut zones = Vec::new();
        for (i, z) in raw.zones.iter().enumerate() {
            let zone: ZoneId = self.id(&format!("zones[{i}].name"), &z.name)?;
            if zones.contains(&zone) {
                return Err(self.err(
                    format!("zones[{i}].name"),
                    format!("zone {zone:?} is declared twice"),
                ));
            }
            zones.push(zone);
        }

        let http_bind = match &raw.http {
            Some(h) => h.bind.parse::<SocketAddr>().map_err(|_| {
                self.err(
                    "http.bind",
                    format!(
                        "{:?} is not an address:port such as \"127.0.0.1:9186\"",
                        h.bind
                    ),
                )
            })?,
            None => DEFAULT_HTTP_BIND
                .parse()
                .map_err(|_| self.err("http.bind", "bad built-in default"))?,
        };

        let mut profiles: BTreeMap<String, Arc<OwnedProfile>> = BUILTIN_PROFILES
            .iter()
            .map(|p| (p.name.to_string(), Arc::new(OwnedProfile::from_builtin(p))))
            .collect();
        for (i, p) in raw.profiles.into_iter().enumerate() {
            let profile = self.profile(i, p)?;
            let path = format!("profiles[{i}].name");
            if BUILTIN_PROFILES.iter().any(|b| b.name == profile.name) {
                return Err(self.err(
                    path,
                    format!(
                        "{:?} is a built-in profile; choose another name",
                        profile.name
                    ),
                ));
            }
            if profiles.contains_key(&profile.name) {
                return Err(self.err(path, format!("profile {:?} is defined twice", profile.name)));
            }
            profiles.insert(profile.name.clone(), Arc::new(profile));
        }

        let defaults = raw.defaults.unwrap_or_default();
        let mut devices: Vec<DeviceConfig> = Vec::new();
        for (i, d) in raw.devices.into_iter().enumerate() {
            let device = self.device(i, d, &defaults, &zones, &profiles)?;
            if devices.iter().any(|o| o.name == device.name) {
                return Err(self.err(
                    format!("devices[{i}].name"),
                    format!("device {:?} is defined twice", device.name.as_str()),
                ));
            }
            self.shared_line(i, &device, &devices)?;
            devices.push(device);
        }

        let mut mqtt_sources: Vec<MqttSourceConfig> = Vec::new();
        for (i, s) in raw.mqtt_sources.into_iter().enumerate() {
            let source = self.mqtt_source(i, s, &zones)?;
            if devices.iter().any(|d| d.name == source.name)
                || mqtt_sources.iter().any(|o| o.name == source.name)
            {
                return Err(self.err(
                    format!("mqtt_sources[{i}].name"),
                    format!("device {:?} is defined twice", source.name.as_str()),
                ));
            }
            mqtt_sources.push(source);
        }
        if devices.is_empty() && mqtt_sources.is_empty() {
            return Err(self.err(
                "devices",
                "the site has no devices and no mqtt_sources: nothing to watch",
            ));
        }
        let policy = self.policy(raw.policy.unwrap_or_default())?;
        let (brokers, signing, outbox) = self.delivery(raw.brokers, raw.signing, raw.outbox)?;
        Ok(SiteConfig {
            site,
            gateway,
            zones,
            http_bind,
            devices,
            mqtt_sources,
            profiles,
            policy,
            brokers,
            signing,
            outbox,
        })
    }

    /// `[[brokers]]`, `[signing]` and `[outbox]`: where triggers go, signed by what, kept where.
    #[allow(clippy::type_complexity)]
    fn delivery(
        &self,
        raw_brokers: Vec<RawBroker>,
        signing: Option<RawSigning>,
        outbox: Option<RawOutbox>,
    ) -> Result<
        (
            Vec<BrokerConfig>,
            Option<SigningConfig>,
            Option<OutboxConfig>,
        ),
        ConfigError,
    > {
        let mut brokers: Vec<BrokerConfig> = Vec::new();
        for (i, b) in raw_brokers.into_iter().enumerate() {
            let broker = self.broker(i, b)?;
            if let Some(j) = brokers.iter().position(|o| o.name == broker.name) {
                return Err(self.err(
                    format!("brokers[{i}].name"),
                    format!("broker {:?} is defined twice (brokers[{j}])", broker.name),
                ));
            }
            // Host and port, whatever the scheme: two entries for one broker would share
            // nothing but the broker, and it would get every trigger twice.
            if let Some((j, other)) = brokers
                .iter()
                .enumerate()
                .find(|(_, o)| o.host.eq_ignore_ascii_case(&broker.host) && o.port == broker.port)
            {
                return Err(self.err(
                    format!("brokers[{i}].url"),
                    format!(
                        "{} is the same broker as brokers[{j}] ({:?}): one entry per broker, or it gets every trigger twice",
                        broker.url(),
                        other.name
                    ),
                ));
            }
            brokers.push(broker);
        }
        let signing = match signing {
            Some(s) => {
                if s.key_file.is_empty() {
                    return Err(self.err("signing.key_file", "is empty"));
                }
                let key_id = match &s.key_id {
                    Some(k) => Some(self.id("signing.key_id", k)?),
                    None => None,
                };
                Some(SigningConfig {
                    key_file: s.key_file.into(),
                    key_id,
                })
            }
            None => None,
        };
        let outbox = match outbox {
            Some(o) => {
                if o.dir.is_empty() {
                    return Err(self.err("outbox.dir", "is empty"));
                }
                let capacity = o.capacity.unwrap_or(DEFAULT_OUTBOX_CAPACITY);
                if capacity == 0 {
                    return Err(self.err("outbox.capacity", "must be at least 1"));
                }
                let warn_at = o
                    .warn_at
                    .unwrap_or_else(|| (u64::from(capacity) * 8 / 10).max(1) as u32);
                if warn_at == 0 || warn_at > capacity {
                    return Err(self.err(
                        "outbox.warn_at",
                        format!("{warn_at} must be from 1 to capacity ({capacity})"),
                    ));
                }
                Some(OutboxConfig {
                    dir: o.dir.into(),
                    capacity,
                    warn_at,
                })
            }
            None => None,
        };
        if !brokers.is_empty() {
            if signing.is_none() {
                return Err(self.err(
                    "signing",
                    "required with [[brokers]]: controllers refuse unsigned triggers (make a key with `firebreak keygen`)",
                ));
            }
            if outbox.is_none() {
                return Err(self.err(
                    "outbox",
                    "required with [[brokers]]: the directory where triggers wait for each broker's acknowledgement",
                ));
            }
        }
        Ok((brokers, signing, outbox))
    }

    fn broker(&self, i: usize, raw: RawBroker) -> Result<BrokerConfig, ConfigError> {
        let at = format!("brokers[{i}]");
        firebreak_protocols::id::validate_segment(&raw.name)
            .map_err(|e| self.err(format!("{at}.name"), format!("{:?} {e}", raw.name)))?;
        self.connection(&at, "url", raw)
    }

    /// The keys `[[brokers]]` and `[[mqtt_sources]]` share to reach a broker: the URL (under
    /// `url_key`), the TLS files, the user name and where the password is. `raw.name` is
    /// taken as it is.
    fn connection(
        &self,
        at: &str,
        url_key: &str,
        raw: RawBroker,
    ) -> Result<BrokerConfig, ConfigError> {
        let (tls, host, port) = parse_broker_url(&raw.url).ok_or_else(|| {
            self.err(
                format!("{at}.{url_key}"),
                format!("{:?} is not mqtt://host:port or mqtts://host:port", raw.url),
            )
        })?;
        let tls_only = [
            ("ca_file", raw.ca_file.is_some()),
            ("client_cert", raw.client_cert.is_some()),
            ("client_key", raw.client_key.is_some()),
        ];
        let tls = if tls {
            let ca_file = raw.ca_file.clone().ok_or_else(|| {
                self.err(
                    format!("{at}.ca_file"),
                    "required for mqtts://: the CA certificate (PEM) that signed the broker's certificate",
                )
            })?;
            let client = match (raw.client_cert.clone(), raw.client_key.clone()) {
                (Some(c), Some(k)) => Some((c.into(), k.into())),
                (None, None) => None,
                (Some(_), None) => {
                    return Err(self.err(
                        format!("{at}.client_key"),
                        "client_cert and client_key go together",
                    ));
                }
                (None, Some(_)) => {
                    return Err(self.err(
                        format!("{at}.client_cert"),
                        "client_cert and client_key go together",
                    ));
                }
            };
            Some(TlsFiles {
                ca_file: ca_file.into(),
                client,
            })
        } else {
            if let Some((key, _)) = tls_only.iter().find(|(_, set)| *set) {
                return Err(self.err(format!("{at}.{key}"), "only for mqtts:// brokers (TLS)"));
            }
            None
        };
        let password = match (raw.password_file, raw.password_env) {
            (Some(_), Some(_)) => {
                return Err(self.err(at, "give password_file or password_env, not both"));
            }
            (Some(f), None) if f.is_empty() => {
                return Err(self.err(format!("{at}.password_file"), "is empty"));
            }
            (Some(f), None) => Some(PasswordSource::File(f.into())),
            (None, Some(v)) if v.is_empty() || v.contains(['=', '\0']) => {
                return Err(self.err(
                    format!("{at}.password_env"),
                    format!("{v:?} is not an environment variable name"),
                ));
            }
            (None, Some(v)) => Some(PasswordSource::Env(v)),
            (None, None) => None,
        };
        if password.is_some() && raw.username.is_none() {
            return Err(self.err(
                format!("{at}.username"),
                "required with password_file or password_env",
            ));
        }
        if raw.username.as_deref() == Some("") {
            return Err(self.err(format!("{at}.username"), "is empty"));
        }
        Ok(BrokerConfig {
            name: raw.name,
            host,
            port,
            tls,
            username: raw.username,
            password,
        })
    }

    fn policy(&self, raw: RawPolicy) -> Result<crate::policy::Policy, ConfigError> {
        use crate::policy::{DEFAULT_EVACUATION_BUDGET_S, DEFAULT_HOLD_S, DEFAULT_MARGIN_S};
        let budget = raw
            .evacuation_budget_s
            .unwrap_or(DEFAULT_EVACUATION_BUDGET_S);
        if !(10..=86_400).contains(&budget) {
            return Err(self.err(
                "policy.evacuation_budget_s",
                format!("{budget} is not between 10 and 86400 seconds"),
            ));
        }
        let margin = raw.margin_s.unwrap_or(DEFAULT_MARGIN_S);
        if margin > 3600 {
            return Err(self.err(
                "policy.margin_s",
                format!("{margin} is more than 3600 seconds"),
            ));
        }
        let hold = raw.hold_s.unwrap_or(DEFAULT_HOLD_S);
        if hold > 86_400 {
            return Err(self.err(
                "policy.hold_s",
                format!("{hold} is more than 86400 seconds"),
            ));
        }
        let rules = match raw.rules_file {
            None => crate::policy::Rules::default_rules()?,
            Some(file) => {
                let path = Path::new(self.origin)
                    .parent()
                    .unwrap_or(Path::new(""))
                    .join(&file);
                if !path.is_file() {
                    return Err(self.err(
                        "policy.rules_file",
                        format!("{} is not a readable file", path.display()),
                    ));
                }
                crate::policy::Rules::load(&path)?
            }
        };
        Ok(crate::policy::Policy {
            rules,
            evacuation_budget_s: budget,
            margin_s: margin,
            hold_ms: u64::from(hold) * 1000,
        })
    }

    fn zone(&self, path: &str, name: &str, zones: &[ZoneId]) -> Result<ZoneId, ConfigError> {
        zones
            .iter()
            .find(|z| z.as_str() == name)
            .cloned()
            .ok_or_else(|| {
                let known: Vec<&str> = zones.iter().map(ZoneId::as_str).collect();
                self.err(
                    path,
                    format!(
                        "no zone named {name:?} (zones: {})",
                        if known.is_empty() {
                            "none declared".to_string()
                        } else {
                            known.join(", ")
                        }
                    ),
                )
            })
    }

    fn profile(&self, i: usize, raw: RawProfile) -> Result<OwnedProfile, ConfigError> {
        let at = format!("profiles[{i}]");
        if raw.name.is_empty() {
            return Err(self.err(format!("{at}.name"), "is empty"));
        }
        let mut registers = Vec::with_capacity(raw.registers.len());
        for (j, r) in raw.registers.into_iter().enumerate() {
            let path = format!("{at}.registers[{j}]");
            let data_type = match (r.r#type, r.bit) {
                (RawType::Bit, Some(n)) if n < 16 => DataType::Bit(n),
                (RawType::Bit, Some(n)) => {
                    return Err(self.err(
                        format!("{path}.bit"),
                        format!("{n} is not a bit of a 16-bit register (0..=15)"),
                    ));
                }
                (RawType::Bit, None) => {
                    return Err(self.err(format!("{path}.bit"), "required for type \"bit\""));
                }
                (_, Some(_)) => {
                    return Err(self.err(format!("{path}.bit"), "only for type \"bit\""));
                }
                (RawType::Bool, None) => DataType::Bool,
                (RawType::U16, None) => DataType::U16,
                (RawType::I16, None) => DataType::I16,
                (RawType::U32, None) => DataType::U32,
                (RawType::I32, None) => DataType::I32,
                (RawType::F32, None) => DataType::F32,
            };
            let mut d = RegisterDescriptor::new(r.signal, r.table, r.address, data_type)
                .channel(r.channel)
                .scaled(r.scale, r.offset)
                .order(
                    r.word_order.unwrap_or(WordOrder::HighFirst),
                    r.byte_order.unwrap_or(ByteOrder::Big),
                );
            if let (Some(min), Some(max)) = (r.min, r.max) {
                d = d.valid(min, max);
            } else if r.min.is_some() || r.max.is_some() {
                return Err(self.err(
                    format!("{path}.{}", if r.min.is_some() { "max" } else { "min" }),
                    "min and max go together",
                ));
            }
            let mut sentinels = Sentinels::NONE;
            for s in &r.sentinels {
                sentinels = sentinels.with(*s).ok_or_else(|| {
                    self.err(
                        format!("{path}.sentinels"),
                        format!(
                            "at most {} values",
                            firebreak_protocols::profile::MAX_SENTINELS
                        ),
                    )
                })?;
            }
            d.sentinels = sentinels;
            if (d.word_order != WordOrder::HighFirst) && data_type.width() != 2 {
                return Err(self.err(
                    format!("{path}.word_order"),
                    "only for 32-bit types (u32, i32, f32)",
                ));
            }
            d.validate().map_err(|e| self.err(&path, e.to_string()))?;
            registers.push(d);
        }
        let profile = OwnedProfile {
            name: raw.name,
            description: raw.description.unwrap_or_default(),
            registers,
        };
        profile
            .view()
            .validate()
            .map_err(|e| self.err(&at, e.to_string()))?;
        if profile.registers.is_empty() {
            return Err(self.err(
                format!("{at}.registers"),
                "a profile needs at least one register",
            ));
        }
        Ok(profile)
    }

    fn device(
        &self,
        i: usize,
        raw: RawDevice,
        defaults: &RawDefaults,
        zones: &[ZoneId],
        profiles: &BTreeMap<String, Arc<OwnedProfile>>,
    ) -> Result<DeviceConfig, ConfigError> {
        let at = format!("devices[{i}]");
        let name: DeviceId = self.id(&format!("{at}.name"), &raw.name)?;
        let zone = self.zone(&format!("{at}.zone"), &raw.zone, zones)?;
        let transport = self.transport(&at, &raw)?;
        if !(1..=247).contains(&raw.unit) {
            return Err(self.err(
                format!("{at}.unit"),
                format!("{} is not a Modbus unit id (1..=247)", raw.unit),
            ));
        }
        let profile = profiles.get(&raw.profile).cloned().ok_or_else(|| {
            self.err(
                format!("{at}.profile"),
                format!("no profile named {:?}", raw.profile),
            )
        })?;
        let poll_ms = raw
            .poll_interval_ms
            .or(defaults.poll_interval_ms)
            .unwrap_or(1000);
        if poll_ms < 10 {
            return Err(self.err(
                format!("{at}.poll_interval_ms"),
                format!("{poll_ms} is less than 10"),
            ));
        }
        let timeout_ms = raw
            .timeout_ms
            .or(defaults.timeout_ms)
            .unwrap_or(poll_ms.min(1000) / 2);
        if timeout_ms == 0 || timeout_ms >= poll_ms {
            return Err(self.err(
                format!("{at}.timeout_ms"),
                format!(
                    "{timeout_ms} must be more than 0 and less than poll_interval_ms ({poll_ms})"
                ),
            ));
        }
        let comm_lost_after = raw
            .comm_lost_after
            .or(defaults.comm_lost_after)
            .unwrap_or(3);
        if comm_lost_after == 0 {
            return Err(self.err(
                format!("{at}.comm_lost_after"),
                "must be at least 1 missed poll",
            ));
        }
        let freshness_ms = raw
            .freshness_ms
            .or(defaults.freshness_ms)
            .unwrap_or(poll_ms.saturating_mul(3));
        if freshness_ms < poll_ms {
            return Err(self.err(format!("{at}.freshness_ms"), format!("{freshness_ms} is less than poll_interval_ms ({poll_ms}): every value would be stale")));
        }
        let plan = PlanOptions {
            max_gap: raw
                .max_gap
                .or(defaults.max_gap)
                .unwrap_or(PlanOptions::default().max_gap),
            max_registers: raw
                .max_registers
                .or(defaults.max_registers)
                .unwrap_or(firebreak_protocols::plan::MAX_READ_REGISTERS),
            max_bits: firebreak_protocols::plan::MAX_READ_BITS,
        };
        plan_reads::<MAX_PLAN_REQUESTS>(&profile.registers, &plan).map_err(|e| {
            self.err(
                format!("{at}.profile"),
                format!("profile {:?}: {e}", profile.name),
            )
        })?;
        Ok(DeviceConfig {
            name,
            zone,
            transport,
            unit: raw.unit,
            profile,
            plan,
            poll_interval: Duration::from_millis(poll_ms),
            timeout: Duration::from_millis(timeout_ms),
            retries: raw.retries.or(defaults.retries).unwrap_or(1),
            comm_lost_after,
            freshness: Duration::from_millis(freshness_ms),
            witness: self.witness(&at, raw.witness_group, raw.independent_channels)?,
        })
    }

    /// `witness_group` and `independent_channels` of a device or MQTT source.
    fn witness(
        &self,
        at: &str,
        group: Option<String>,
        independent_channels: Option<bool>,
    ) -> Result<Witness, ConfigError> {
        let group = match group {
            None => None,
            Some(g) => {
                // The same rules as ids: short, lower-case, no spaces.
                let _: DeviceId = self.id(&format!("{at}.witness_group"), &g)?;
                Some(g)
            }
        };
        Ok(Witness {
            group,
            independent_channels: independent_channels.unwrap_or(false),
        })
    }

    fn transport(&self, at: &str, raw: &RawDevice) -> Result<Transport, ConfigError> {
        let serial_keys = [
            ("serial", raw.serial.is_some()),
            ("baud", raw.baud.is_some()),
            ("parity", raw.parity.is_some()),
            ("stop_bits", raw.stop_bits.is_some()),
            ("data_bits", raw.data_bits.is_some()),
        ];
        match raw.transport {
            TransportKind::Tcp => {
                if let Some((key, _)) = serial_keys.iter().find(|(_, set)| *set) {
                    return Err(self.err(format!("{at}.{key}"), "only for transport \"rtu\""));
                }
                let address = raw.address.as_deref().ok_or_else(|| {
                    self.err(
                        format!("{at}.address"),
                        "required for transport \"tcp\" (host:port)",
                    )
                })?;
                parse_host_port(address).ok_or_else(|| {
                    self.err(
                        format!("{at}.address"),
                        format!("{address:?} is not host:port"),
                    )
                })
            }
            TransportKind::Rtu => {
                if raw.address.is_some() {
                    return Err(self.err(
                        format!("{at}.address"),
                        "only for transport \"tcp\"; a serial device has `serial`",
                    ));
                }
                let path = raw.serial.clone().ok_or_else(|| {
                    self.err(
                        format!("{at}.serial"),
                        "required for transport \"rtu\" (a path such as /dev/ttyUSB0)",
                    )
                })?;
                let stop_bits = raw.stop_bits.unwrap_or(1);
                if !(1..=2).contains(&stop_bits) {
                    return Err(self.err(
                        format!("{at}.stop_bits"),
                        format!("{stop_bits} is not 1 or 2"),
                    ));
                }
                let data_bits = raw.data_bits.unwrap_or(8);
                if !(7..=8).contains(&data_bits) {
                    return Err(self.err(
                        format!("{at}.data_bits"),
                        format!("{data_bits} is not 7 or 8"),
                    ));
                }
                let baud = raw.baud.unwrap_or(19_200);
                if !(300..=1_000_000).contains(&baud) {
                    return Err(self.err(
                        format!("{at}.baud"),
                        format!("{baud} is not a serial speed (300..=1000000)"),
                    ));
                }
                Ok(Transport::Rtu(SerialLine {
                    path,
                    baud,
                    parity: raw.parity.unwrap_or(Parity::Even),
                    stop_bits,
                    data_bits,
                }))
            }
        }
    }

    /// Devices on one serial line share its settings, and their unit ids differ.
    fn shared_line(
        &self,
        i: usize,
        device: &DeviceConfig,
        earlier: &[DeviceConfig],
    ) -> Result<(), ConfigError> {
        let Transport::Rtu(line) = &device.transport else {
            return Ok(());
        };
        for (j, other) in earlier.iter().enumerate() {
            let Transport::Rtu(o) = &other.transport else {
                continue;
            };
            if o.path != line.path {
                continue;
            }
            if o != line {
                return Err(self.err(format!("devices[{i}].serial"), format!(
                    "{} is also used by devices[{j}] with other settings ({o}); devices on one line share baud, parity, stop and data bits",
                    line.path
                )));
            }
            if other.unit == device.unit {
                return Err(self.err(
                    format!("devices[{i}].unit"),
                    format!(
                        "unit {} is already used on {} by devices[{j}]",
                        device.unit, line.path
                    ),
                ));
            }
        }
        Ok(())
    }

    fn mqtt_source(
        &self,
        i: usize,
        mut raw: RawMqttSource,
        zones: &[ZoneId],
    ) -> Result<MqttSourceConfig, ConfigError> {
        let at = format!("mqtt_sources[{i}]");
        let name: DeviceId = self.id(&format!("{at}.name"), &raw.name)?;
        let zone = self.zone(&format!("{at}.zone"), &raw.zone, zones)?;
        let broker = self.connection(&at, "broker", raw.take_broker())?;
        let max_payload = match raw.max_payload {
            None => DEFAULT_MAX_PAYLOAD,
            Some(n) => usize::try_from(n)
                .ok()
                .filter(|n| MAX_PAYLOAD_RANGE.contains(n))
                .ok_or_else(|| {
                    self.err(
                        format!("{at}.max_payload"),
                        format!(
                            "{n} bytes is not between {} and {}",
                            MAX_PAYLOAD_RANGE.start(),
                            MAX_PAYLOAD_RANGE.end()
                        ),
                    )
                })?,
        };
        if raw.topic.is_empty() || raw.topic.contains('\0') {
            return Err(self.err(format!("{at}.topic"), "is not an MQTT topic filter"));
        }
        if raw.signals.is_empty() {
            return Err(self.err(
                format!("{at}.signals"),
                "map at least one payload field to a signal",
            ));
        }
        let mut signals: Vec<MqttSignal> = Vec::new();
        let mut seen: HashMap<(Signal, u8), usize> = HashMap::new();
        for (j, s) in raw.signals.into_iter().enumerate() {
            let path = format!("{at}.signals[{j}]");
            let pointer = match (s.pointer, s.field) {
                (Some(p), None) if p.starts_with('/') => p,
                (Some(p), None) => {
                    return Err(self.err(
                        format!("{path}.pointer"),
                        format!(
                            "{p:?} is not a JSON pointer (it starts with '/', as in \"/temperature\"; for a top-level field use field = {p:?})"
                        ),
                    ));
                }
                // RFC 6901: '~' and '/' in a name are written ~0 and ~1.
                (None, Some(f)) if !f.is_empty() => {
                    format!("/{}", f.replace('~', "~0").replace('/', "~1"))
                }
                (None, Some(_)) => return Err(self.err(format!("{path}.field"), "is empty")),
                (Some(_), Some(_)) => {
                    return Err(self.err(&path, "give pointer or field, not both"));
                }
                (None, None) => {
                    return Err(self.err(
                        &path,
                        "give pointer (\"/a/b\") or field (\"a\") for the value",
                    ));
                }
            };
            if !s.scale.is_finite() || s.scale == 0.0 || !s.offset.is_finite() {
                return Err(self.err(
                    format!("{path}.scale"),
                    "scale must be finite and not zero, offset finite",
                ));
            }
            if let Some(k) = seen.insert((s.signal, s.channel), j) {
                return Err(self.err(
                    &path,
                    format!(
                        "signal {} channel {} is already mapped by signals[{k}]",
                        s.signal, s.channel
                    ),
                ));
            }
            let valid = match (s.min, s.max) {
                (Some(min), Some(max)) if min <= max => ValidRange { min, max },
                (None, None) => ValidRange::ANY,
                _ => {
                    return Err(
                        self.err(format!("{path}.min"), "min and max go together, min <= max")
                    );
                }
            };
            signals.push(MqttSignal {
                signal: s.signal,
                channel: s.channel,
                pointer,
                scale: s.scale,
                offset: s.offset,
                valid,
            });
        }
        let freshness_ms = raw.freshness_ms.unwrap_or(60_000);
        Ok(MqttSourceConfig {
            name,
            zone,
            broker,
            topic: raw.topic,
            max_payload,
            signals,
            freshness: Duration::from_millis(freshness_ms),
            witness: self.witness(&at, raw.witness_group, raw.independent_channels)?,
        })
    }
}

/// Parses `host:port` (`[::1]:502` for IPv6).
pub fn parse_host_port(s: &str) -> Option<Transport> {
    let (host, port) = s.rsplit_once(':')?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if host.is_empty() || host.contains(['/', ' ']) {
        return None;
    }
    Some(Transport::Tcp {
        host: host.to_string(),
        port: port.parse().ok().filter(|p| *p != 0)?,
    })
}

/// Parses `mqtt://host:port` or `mqtts://host:port` (ports 1883 and 8883 when absent):
/// whether it is TLS, the host and the port.
pub fn parse_broker_url(s: &str) -> Option<(bool, String, u16)> {
    let (tls, rest) = match s.strip_prefix("mqtts://") {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix("mqtt://")?),
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    // No user:password@ in a URL: secrets would end up in logs.
    if rest.contains('@') {
        return None;
    }
    let default_port = if tls { 8883 } else { 1883 };
    if let Some(v6) = rest.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        return (!v6.is_empty() && !v6.contains(['/', ' ', '[', ']']))
            .then(|| (tls, v6.to_string(), default_port));
    }
    match parse_host_port(rest) {
        Some(Transport::Tcp { host, port }) => Some((tls, host, port)),
        _ if !rest.is_empty() && !rest.contains([':', '/', ' ', '@']) => {
            Some((tls, rest.to_string(), default_port))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests;
