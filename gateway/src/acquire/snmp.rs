//! SNMP sources: UPS network cards and rack PDUs read over SNMPv2c or SNMPv3 (USM, authPriv),
//! with the `async-snmp` client.
//!
//! Each poll is one GET of the profile's scalar objects and one GETBULK walk of each of its
//! table columns (an outlet table, the phases), bounded to [`MAX_ROWS`] rows. The answers
//! are decoded by the profile's [`OidDescriptor`](firebreak_protocols::OidDescriptor)s ([`map_values`]): scale, valid range,
//! sentinels (APC's −1), flags (`upsOutputSource` = battery). A poll fails as a whole when
//! the agent does not answer within the timeout after its retries, or refuses the
//! credentials; like a Modbus device's, failed polls turn the device `comm-lost`, and a lost
//! device is polled again with exponential backoff. An object the agent lacks
//! (`noSuchObject`) or sends as the wrong type is logged once, named by OID and signal, and
//! gives no sample; the rest of the device still counts.
//!
//! With `[snmp_traps]`, a [`TrapListener`] receives the agents' traps, and a trap from a
//! source's agent polls that source at once: the poll, not the trap, gives the reading.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use async_snmp::notification::NotificationReceiver;
use async_snmp::{
    Auth, AuthProtocol, Client, ErrorKind, Oid, PrivProtocol, Retry, UsmConfig, Value, VarBind,
    WalkMethod, WalkOptions,
};
use firebreak_protocols::{DeviceId, OidShape, Sample, SnmpValue, ValueError};
use tokio::sync::{Notify, mpsc};
use tracing::{debug, info, warn};

use super::{Event, Polled, RequestError};
use crate::config::{
    OwnedProfile, SnmpAuth, SnmpAuthProtocol, SnmpPrivProtocol, SnmpSourceConfig, SnmpTrapsConfig,
};

/// The most rows one column walk may give: a 48-outlet PDU has 48.
pub const MAX_ROWS: usize = 512;

/// GETBULK max-repetitions of a column walk.
const MAX_REPETITIONS: u32 = 32;

/// Why an SNMPv3 agent may be silent: an agent answers a wrong authentication password with
/// an unauthenticated report, which the client must ignore (anyone could forge it), and
/// cannot decrypt a request under a wrong privacy password at all.
const V3_SILENCE: &str = " (SNMPv3: a wrong user, auth or priv password looks the same, as the agent's report of it cannot be trusted)";

/// Why an SNMP poll failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnmpError {
    /// The configuration's secrets could not be read, or the client could not be built.
    #[error("{0}")]
    Setup(String),
    /// No answer after the retries.
    #[error("no answer within {timeout_ms} ms after {retries} retries{hint}", hint = if *.v3 { V3_SILENCE } else { "" })]
    Timeout {
        /// The timeout of one request.
        timeout_ms: u64,
        /// Requests sent again.
        retries: u8,
        /// Whether the source speaks SNMPv3, where wrong credentials also look like silence.
        v3: bool,
    },
    /// The agent refused the credentials (SNMPv3: unknown user, wrong password, unsupported
    /// security level).
    #[error("refused the credentials: {0}")]
    Auth(String),
    /// The network failed.
    #[error("{0}")]
    Network(String),
    /// The agent answered, but with an error status or a malformed message.
    #[error("{0}")]
    Agent(String),
}

impl SnmpError {
    fn from_client(e: &async_snmp::Error, source: &SnmpSourceConfig) -> SnmpError {
        match e.kind() {
            ErrorKind::Timeout => SnmpError::Timeout {
                timeout_ms: source.timeout.as_millis() as u64,
                retries: source.retries,
                v3: matches!(source.auth, SnmpAuth::V3 { .. }),
            },
            ErrorKind::Auth | ErrorKind::Report => SnmpError::Auth(e.to_string()),
            ErrorKind::Network | ErrorKind::Closed => SnmpError::Network(e.to_string()),
            _ => SnmpError::Agent(e.to_string()),
        }
    }
}

/// The values one poll read: every binding received, in the order received.
pub type Readout = Vec<(Oid, Value)>;

/// A connected client for one source.
pub struct SnmpClient {
    client: Client<async_snmp::UdpHandle>,
}

impl std::fmt::Debug for SnmpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnmpClient")
            .field("peer", &self.client.peer_addr())
            .finish()
    }
}

impl SnmpClient {
    /// Reads the source's secrets and binds a UDP socket towards its agent (SNMPv3 discovers
    /// the agent's engine on the first request).
    pub async fn connect(source: &SnmpSourceConfig) -> Result<SnmpClient, SnmpError> {
        let auth = auth(&source.auth)?;
        let retry = Retry::fixed(u32::from(source.retries), Duration::ZERO)
            .map_err(|e| SnmpError::Setup(format!("retries: {e}")))?;
        let walk = WalkOptions {
            method: WalkMethod::GetBulk,
            max_repetitions: MAX_REPETITIONS,
            result_limit: Some(MAX_ROWS),
            ..WalkOptions::default()
        };
        let client = Client::builder((source.host.as_str(), source.port), auth)
            .request_timeout(source.timeout)
            .retry(retry)
            .walk_options(walk)
            .connect()
            .await
            .map_err(|e| SnmpError::from_client(&e, source))?;
        Ok(SnmpClient { client })
    }

    /// One GET of the profile's scalars and one walk of each of its columns.
    pub async fn read(
        &self,
        source: &SnmpSourceConfig,
        profile: &OwnedProfile,
    ) -> Result<Readout, SnmpError> {
        let mut out = Readout::new();
        let mut scalars = Vec::new();
        let mut columns = Vec::new();
        for d in &profile.oids {
            let oid = Oid::parse(&d.oid).map_err(|e| {
                SnmpError::Setup(format!("profile {}: {}: {e}", profile.name, d.oid))
            })?;
            match d.shape {
                OidShape::Scalar { .. } => scalars.push(oid),
                OidShape::Column { .. } => columns.push(oid),
            }
        }
        if !scalars.is_empty() {
            let answer = self
                .client
                .get_many(&scalars)
                .await
                .map_err(|e| SnmpError::from_client(&e, source))?;
            out.extend(answer.varbinds.into_iter().map(|v| (v.oid, v.value)));
        }
        for column in columns {
            let rows: Vec<VarBind> = self
                .client
                .walk(column)
                .map_err(|e| SnmpError::from_client(&e, source))?
                .collect()
                .await
                .map_err(|e| SnmpError::from_client(&e, source))?;
            out.extend(rows.into_iter().map(|v| (v.oid, v.value)));
        }
        Ok(out)
    }
}

/// The client's credentials from the configuration's: reads the secrets now.
fn auth(config: &SnmpAuth) -> Result<Auth, SnmpError> {
    let secret = |what: &str, read: Result<String, (String, String)>| {
        read.map_err(|(source, problem)| SnmpError::Setup(format!("{what}: {source}: {problem}")))
    };
    match config {
        SnmpAuth::V2c { community } => Ok(Auth::v2c(secret("community", community.read())?)),
        SnmpAuth::V3 {
            username,
            auth,
            privacy,
        } => {
            let usm = UsmConfig::new(username.clone().into_bytes());
            let usm = match (auth, privacy) {
                (None, _) => usm,
                (Some((a, pass)), None) => usm
                    .auth(auth_protocol(*a), secret("auth password", pass.read())?)
                    .map_err(|e| SnmpError::Setup(format!("auth password: {e}")))?,
                (Some((a, apass)), Some((p, ppass))) => usm
                    .auth_priv(
                        auth_protocol(*a),
                        secret("auth password", apass.read())?,
                        priv_protocol(*p),
                        secret("priv password", ppass.read())?,
                    )
                    .map_err(|e| SnmpError::Setup(format!("auth or priv password: {e}")))?,
            };
            Ok(Auth::from(usm))
        }
    }
}

fn auth_protocol(p: SnmpAuthProtocol) -> AuthProtocol {
    match p {
        SnmpAuthProtocol::Md5 => AuthProtocol::Md5,
        SnmpAuthProtocol::Sha1 => AuthProtocol::Sha1,
        SnmpAuthProtocol::Sha224 => AuthProtocol::Sha224,
        SnmpAuthProtocol::Sha256 => AuthProtocol::Sha256,
        SnmpAuthProtocol::Sha384 => AuthProtocol::Sha384,
        SnmpAuthProtocol::Sha512 => AuthProtocol::Sha512,
    }
}

fn priv_protocol(p: SnmpPrivProtocol) -> PrivProtocol {
    match p {
        SnmpPrivProtocol::Des => PrivProtocol::Des,
        SnmpPrivProtocol::Aes128 => PrivProtocol::Aes128,
        SnmpPrivProtocol::Aes192 => PrivProtocol::Aes192Blumenthal,
        SnmpPrivProtocol::Aes256 => PrivProtocol::Aes256Blumenthal,
    }
}

/// What a received value is, for decoding.
fn snmp_value(v: &Value) -> SnmpValue<'_> {
    match v {
        Value::Integer(n) => SnmpValue::Integer(i64::from(*n)),
        Value::Counter32(n) | Value::Gauge32(n) | Value::UInteger32(n) | Value::TimeTicks(n) => {
            SnmpValue::Integer(i64::from(*n))
        }
        Value::Counter64(n) => i64::try_from(*n).map_or(SnmpValue::Other, SnmpValue::Integer),
        Value::OctetString(b) => SnmpValue::Text(b),
        Value::NoSuchObject | Value::NoSuchInstance | Value::EndOfMibView => SnmpValue::Missing,
        _ => SnmpValue::Other,
    }
}

/// What one poll's values gave.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Mapped {
    /// The samples.
    pub samples: Vec<Sample>,
    /// Values that could not be used, each naming the OID, the signal and the channel.
    pub problems: Vec<String>,
    /// Values the agent says it has no reading of (a sentinel such as APC's −1), named as
    /// problems are: no sample, and no fault.
    pub no_reading: Vec<String>,
}

/// Decodes a poll's values through the profile. A binding no descriptor claims (a walk's
/// neighbour) is ignored, as is a column row the agent lacks.
pub fn map_values(
    device: &DeviceId,
    profile: &OwnedProfile,
    readout: &Readout,
    at_ms: u64,
) -> Mapped {
    let mut out = Mapped::default();
    for (oid, value) in readout {
        let Some((d, channel)) = profile
            .oids
            .iter()
            .find_map(|d| d.view().channel_of(oid.arcs()).map(|c| (d, c)))
        else {
            continue;
        };
        let what = || format!("{oid} ({} channel {channel})", d.signal);
        match d.view().decode(snmp_value(value)) {
            Ok((v, quality)) => out.samples.push(Sample {
                device: device.clone(),
                signal: d.signal,
                channel,
                value: v,
                unit: d.signal.unit(),
                timestamp_ms: at_ms,
                quality,
            }),
            Err(ValueError::Missing) if matches!(d.shape, OidShape::Column { .. }) => {}
            Err(ValueError::NoReading) => out.no_reading.push(format!("{}: {value}", what())),
            Err(e) => out.problems.push(format!("{}: {e}", what())),
        }
    }
    out
}

/// Polls one SNMP source until the event channel closes; a trap from its agent
/// ([`TrapListener`]) polls it at once.
pub async fn run_source(source: SnmpSourceConfig, events: mpsc::Sender<Event>) {
    info!(device = %source.name, url = %source.url(), profile = %source.profile.name, "polling");
    let wake = register(&source).await;
    super::run_polled(
        super::Polling {
            kind: "snmp",
            device: source.name.clone(),
            url: source.url(),
            poll_interval: source.poll_interval,
            comm_lost_after: source.comm_lost_after,
        },
        events,
        SnmpPoller {
            source,
            client: None,
            told: BTreeSet::new(),
        },
        Some(wake),
    )
    .await;
}

/// A running SNMP source a trap can wake: its agent's addresses.
struct Waker {
    device: DeviceId,
    addrs: Vec<IpAddr>,
    notify: Weak<Notify>,
}

/// The running SNMP sources, for the trap listener. A source registers when its task starts
/// (again after a reload); an entry whose task ended no longer upgrades and is dropped.
static WAKERS: Mutex<Vec<Waker>> = Mutex::new(Vec::new());

/// Registers a source: resolves its agent's host (a name that does not resolve now is woken
/// by no trap, and logged).
async fn register(source: &SnmpSourceConfig) -> Arc<Notify> {
    let notify = Arc::new(Notify::new());
    let addrs: Vec<IpAddr> = match tokio::net::lookup_host((source.host.as_str(), source.port))
        .await
    {
        Ok(a) => a.map(|a| a.ip()).collect(),
        Err(e) => {
            debug!(device = %source.name, host = %source.host, error = %e, "no address for traps");
            Vec::new()
        }
    };
    if let Ok(mut w) = WAKERS.lock() {
        w.retain(|x| x.device != source.name && x.notify.strong_count() > 0);
        w.push(Waker {
            device: source.name.clone(),
            addrs,
            notify: Arc::downgrade(&notify),
        });
    }
    notify
}

/// Wakes every running source whose agent is at `from`; returns their names.
fn wake(from: IpAddr) -> Vec<DeviceId> {
    let Ok(w) = WAKERS.lock() else {
        return Vec::new();
    };
    w.iter()
        .filter(|x| x.addrs.contains(&from))
        .filter_map(|x| {
            let n = x.notify.upgrade()?;
            n.notify_one();
            Some(x.device.clone())
        })
        .collect()
}

/// Receives SNMP traps (v1 and v2c; informs are acknowledged) and polls the source whose
/// agent sent one at once, so a UPS's "on battery" trap is a reading within a poll's time
/// rather than a poll interval. The trap's own content is never taken as a reading: it is
/// unauthenticated, so the worst a forged trap can do is an extra poll, at most one per
/// source every [`super::EARLIEST_REPOLL`].
pub struct TrapListener {
    receiver: NotificationReceiver,
    bind: std::net::SocketAddr,
}

impl std::fmt::Debug for TrapListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrapListener")
            .field("bind", &self.bind)
            .finish()
    }
}

impl TrapListener {
    /// Binds the trap port now, so that a port in use stops the start with a clear error.
    pub async fn bind(config: &SnmpTrapsConfig) -> Result<TrapListener, async_snmp::Error> {
        let mut builder = NotificationReceiver::builder().bind(config.bind.to_string());
        if !config.communities.is_empty() {
            builder = builder.communities(config.communities.iter().cloned());
        }
        let receiver = builder.build().await.map_err(|e| *e)?;
        let bind = receiver.local_addr();
        info!(%bind, "receiving SNMP traps");
        Ok(TrapListener { receiver, bind })
    }

    /// Receives traps until the task is dropped.
    pub async fn run(self) {
        let mut strangers: BTreeSet<IpAddr> = BTreeSet::new();
        loop {
            match self.receiver.recv().await {
                Ok(r) => {
                    let trap = r
                        .notification
                        .trap_oid()
                        .map_or_else(|e| format!("<{e}>"), |o| o.to_string());
                    let woken = wake(r.source.ip());
                    if woken.is_empty() {
                        // Logged once per address, for a bounded number of addresses.
                        if strangers.len() < 1024 && strangers.insert(r.source.ip()) {
                            warn!(from = %r.source, %trap, bind = %self.bind, "SNMP trap from an address no snmp source polls: ignored");
                        }
                    } else {
                        let devices: Vec<&str> = woken.iter().map(DeviceId::as_str).collect();
                        info!(from = %r.source, %trap, devices = %devices.join(" "), "SNMP trap: polling at once");
                    }
                }
                Err(e) => debug!(error = %e, "SNMP trap not received"),
            }
        }
    }
}

/// One SNMP source's client, reconnected after a failed poll, and what was logged of it.
struct SnmpPoller {
    source: SnmpSourceConfig,
    client: Option<SnmpClient>,
    /// Values already logged as unusable or without a reading.
    told: BTreeSet<String>,
}

impl super::Poller for SnmpPoller {
    async fn poll(&mut self, at_ms: u64) -> Result<Polled, RequestError> {
        let source = &self.source;
        let readout = match poll(source, &mut self.client).await {
            Ok(r) => r,
            Err(e) => {
                self.client = None;
                return Err(match e {
                    SnmpError::Network(problem) => RequestError::Connect { problem },
                    other => RequestError::Source {
                        problem: other.to_string(),
                    },
                });
            }
        };
        let mapped = map_values(&source.name, &source.profile, &readout, at_ms);
        for p in mapped.no_reading {
            if self.told.insert(p.clone()) {
                info!(device = %source.name, value = %p, "snmp agent has no reading of this value; no sample");
            }
        }
        let mut errors = Vec::new();
        for p in mapped.problems {
            if self.told.insert(p.clone()) {
                warn!(device = %source.name, problem = %p, "snmp value unusable");
                errors.push(RequestError::Source { problem: p });
            }
        }
        Ok(Polled {
            samples: mapped.samples,
            errors,
        })
    }
}

async fn poll(
    source: &SnmpSourceConfig,
    client: &mut Option<SnmpClient>,
) -> Result<Readout, SnmpError> {
    let c = match client {
        Some(c) => c,
        None => client.insert(SnmpClient::connect(source).await?),
    };
    c.read(source, &source.profile).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use firebreak_protocols::{BUILTIN_OID_PROFILES, Quality, Signal};

    fn oid(s: &str) -> Oid {
        Oid::parse(s).unwrap()
    }

    #[test]
    fn an_rpdu2_readout_maps_to_phases_and_outlets() {
        let p = BUILTIN_OID_PROFILES
            .iter()
            .find(|p| p.name == "apc-rpdu2")
            .unwrap();
        let p = OwnedProfile::from_builtin_oids(p);
        let d = DeviceId::new("pdu-1").unwrap();
        let readout = vec![
            (oid("1.3.6.1.4.1.318.1.1.26.6.3.1.5.1"), Value::Integer(65)),
            (oid("1.3.6.1.4.1.318.1.1.26.6.3.1.6.1"), Value::Integer(-1)),
            (oid("1.3.6.1.4.1.318.1.1.26.9.4.3.1.6.1"), Value::Integer(9)),
            (oid("1.3.6.1.4.1.318.1.1.26.9.4.3.1.6.4"), Value::Integer(7)),
            (oid("1.3.6.1.4.1.318.1.1.26.9.4.3.1.7.2"), Value::Gauge32(4)),
            (
                oid("1.3.6.1.4.1.318.1.1.26.9.4.3.1.7.3"),
                Value::OctetString(b"x".to_vec().into()),
            ),
            (oid("1.3.6.1.4.1.318.1.1.26.9.4.3.1.8.1"), Value::Integer(1)),
        ];
        let Mapped {
            samples: s,
            problems,
            no_reading,
        } = map_values(&d, &p, &readout, 5);
        let get = |signal, channel| {
            s.iter()
                .find(|x| x.signal == signal && x.channel == channel)
                .map(|x| (x.value, x.quality))
        };
        assert_eq!(get(Signal::PduCurrent, 0), Some((6.5, Quality::Good)));
        assert_eq!(get(Signal::PduInputVoltage, 0), None);
        assert_eq!(no_reading.len(), 1);
        assert!(
            no_reading[0]
                .starts_with("1.3.6.1.4.1.318.1.1.26.6.3.1.6.1 (pdu-input-voltage channel 0)"),
            "{no_reading:?}"
        );
        assert_eq!(
            get(Signal::PduOutletCurrent, 0).map(|v| v.1),
            Some(Quality::Good)
        );
        assert!((get(Signal::PduOutletCurrent, 3).unwrap().0 - 0.7).abs() < 1e-6);
        assert_eq!(get(Signal::PduOutletPower, 1), Some((4.0, Quality::Good)));
        assert_eq!(s.len(), 4, "{s:?}");
        assert_eq!(problems.len(), 1);
        assert!(
            problems[0].contains("1.3.6.1.4.1.318.1.1.26.9.4.3.1.7.3")
                && problems[0].contains("pdu-outlet-power channel 2"),
            "{problems:?}"
        );
    }

    #[test]
    fn a_missing_scalar_is_named_and_a_wrapped_counter_is_not_a_number() {
        let p = OwnedProfile::from_builtin_oids(
            BUILTIN_OID_PROFILES
                .iter()
                .find(|p| p.name == "ups-mib")
                .unwrap(),
        );
        let d = DeviceId::new("ups-1").unwrap();
        let readout = vec![
            (oid("1.3.6.1.2.1.33.1.2.3.0"), Value::NoSuchObject),
            (oid("1.3.6.1.2.1.33.1.4.1.0"), Value::Integer(5)),
            (oid("1.3.6.1.2.1.33.1.2.4.0"), Value::Counter64(u64::MAX)),
        ];
        let Mapped {
            samples: s,
            problems,
            ..
        } = map_values(&d, &p, &readout, 0);
        assert_eq!(s.len(), 1);
        assert_eq!((s[0].signal, s[0].value), (Signal::UpsOnBattery, 1.0));
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].contains("ups-runtime-remaining"));
    }
}
