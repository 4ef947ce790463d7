//! `firebreak watch`: a controller in a terminal. Subscribes to a site's triggers on one or
//! more brokers, verifies and de-duplicates them with [`Verifier`], prints one line per
//! accepted or rejected trigger, and can run a command per accepted trigger.
//!
//! It catches up after a reconnect or a restart: its MQTT session is persistent, under a
//! stable client id, so a broker keeps the triggers published while it is away and delivers
//! them when it is back; it reads the retained `state` topics at every connect and says what
//! they hold (`STATE …`) and which `seq`s it never accepted (`missed: …`); and with
//! `--state-dir` the last accepted `seq` of every gateway survives its restart, so that an old
//! trigger published again is still rejected as a replay. It reads the gateways' signed
//! `status` too, and says when one goes online, offline or silent (`STATUS …`), refusing a
//! forged or replayed one. A trigger is acknowledged to the
//! broker only once it was handled (ledger saved, line printed, `--exec` run): a watch killed
//! in between gets it again.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use firebreak_protocols::topic::{self, Topic};
use firebreak_protocols::{GatewayId, SiteId};
use rumqttc::{AsyncClient, Event, Packet, Publish, QoS, SubscribeFilter};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use tracing::{debug, warn};

use crate::acquire::now_ms;
use crate::config::{BrokerConfig, PasswordSource, TlsFiles, parse_broker_url};
use crate::deliver::link::{Link, LinkError};
use crate::keys::KeyError;
use crate::subscribe::{
    Ledger, LedgerError, MergeEvent, MergeOptions, Merger, Rejection, StatusVerdict, Verdict,
    Verifier, describe,
};

/// How long `--exec` may run for one trigger before it is killed.
pub const EXEC_TIMEOUT: Duration = Duration::from_secs(60);

/// What `firebreak watch` was asked.
#[derive(Debug, Clone, clap::Args)]
pub struct WatchArgs {
    /// A broker, `mqtt://host:port` or `mqtts://host:port`; repeat for several.
    #[arg(long = "broker", required = true)]
    pub brokers: Vec<String>,
    /// The site whose triggers to watch.
    #[arg(long)]
    pub site: String,
    /// What to trust: a trust file (`firebreak.trust/1`, TOML: each key bound to its gateways
    /// and sites, with validity dates and revocation; docs/contract.md) or a bare public key
    /// file (`firebreak keygen` writes `ID.pub`: one gateway, the first it signs for); repeat
    /// for several.
    #[arg(long = "trust", required = true)]
    pub trust: Vec<PathBuf>,
    /// One JSON object per line instead of text.
    #[arg(long)]
    pub json: bool,
    /// Run this shell command for each change of the site's or a zone's merged level (the
    /// highest any trusted gateway reports), with the payload that changed it on its stdin,
    /// and when every gateway of the site falls silent during an alarm
    /// (`FIREBREAK_EVENT=site-silent-during-alarm`).
    #[arg(long)]
    pub exec: Option<String>,
    /// Report two live gateways that give one scope different levels for this long, in
    /// seconds.
    #[arg(long, default_value_t = MergeOptions::default().disagree_after_ms / 1000)]
    pub disagree_after: u64,
    /// Reject triggers issued longer ago than this, in seconds.
    #[arg(long, default_value_t = crate::subscribe::DEFAULT_MAX_AGE_MS / 1000)]
    pub max_age: u64,
    /// For mqtts:// brokers: the CA certificate (PEM) that signed theirs.
    #[arg(long)]
    pub ca_file: Option<PathBuf>,
    /// For mqtts:// brokers that ask for one: a client certificate (PEM).
    #[arg(long, requires = "client_key")]
    pub client_cert: Option<PathBuf>,
    /// The private key (PEM) of --client-cert.
    #[arg(long, requires = "client_cert")]
    pub client_key: Option<PathBuf>,
    /// The MQTT user name.
    #[arg(long)]
    pub username: Option<String>,
    /// The environment variable holding the MQTT password.
    #[arg(long, requires = "username")]
    pub password_env: Option<String>,
    /// The MQTT client id on every broker, under which the broker keeps this controller's
    /// session; one per controller [default: firebreak-watch-{site}-{hostname}].
    #[arg(long)]
    pub client_id: Option<String>,
    /// Keep the last accepted seq of each gateway in DIR/watch-{site}.json across restarts.
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
}

/// The client id `watch` uses without `--client-id`: `firebreak-watch-{site}-{hostname}`, the
/// host name cut to 32 characters of `A-Z a-z 0-9 . _ -` (others become `_`).
pub fn default_client_id(site: &SiteId) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into());
    let host: String = host
        .chars()
        .take(32)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("firebreak-watch-{site}-{host}")
}

/// Why `watch` could not run.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// A broker URL is wrong.
    #[error("--broker: {0:?} is not mqtt://host:port or mqtts://host:port")]
    BadUrl(String),
    /// Two `--broker` for one host and port.
    #[error("--broker {0}: given twice (one session per broker and client id)")]
    SameBroker(String),
    /// The client id is not one a broker takes.
    #[error("--client-id: {0:?} must be 1 to 128 bytes without control characters or spaces")]
    BadClientId(String),
    /// The state directory cannot be used.
    #[error("--state-dir {}: {problem}", dir.display())]
    StateDir {
        /// The directory.
        dir: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// The ledger file is unreadable or corrupt.
    #[error("--state-dir: {0}")]
    Ledger(#[from] LedgerError),
    /// An mqtts:// broker without --ca-file.
    #[error("--broker {0}: mqtts:// needs --ca-file")]
    NoCa(String),
    /// The site is not a valid id.
    #[error("--site: {value:?} {error}")]
    BadSite {
        /// The value.
        value: String,
        /// Why.
        error: firebreak_protocols::IdError,
    },
    /// A trusted key could not be read.
    #[error("--trust {0}")]
    Key(#[from] KeyError),
    /// A trust file could not be used.
    #[error("--trust {0}")]
    Trust(#[from] crate::trust::TrustError),
    /// Two `--trust` files grant one key.
    #[error("--trust {path}: {problem}")]
    TrustMerge {
        /// The file that granted it again.
        path: PathBuf,
        /// What.
        problem: String,
    },
    /// A broker's secrets or TLS files could not be read.
    #[error("{0}")]
    Link(#[from] LinkError),
    /// Writing the output failed.
    #[error("writing output: {0}")]
    Io(#[from] std::io::Error),
}

struct Received {
    broker: String,
    topic: String,
    payload: Vec<u8>,
    retain: bool,
    /// To acknowledge it once handled (manual acknowledgements: see the module docs).
    ack: Option<(AsyncClient, Publish)>,
}

/// The state directory: its ledger file, and a lock held while `watch` runs so that two
/// controllers never share one ledger.
struct StateDir {
    ledger: PathBuf,
    _lock: std::fs::File,
}

impl StateDir {
    fn open(dir: &Path, site: &SiteId) -> Result<StateDir, WatchError> {
        let err = |problem: String| WatchError::StateDir {
            dir: dir.to_path_buf(),
            problem,
        };
        std::fs::create_dir_all(dir).map_err(|e| err(format!("cannot create: {e}")))?;
        let lock_path = dir.join(format!("watch-{site}.lock"));
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| err(format!("cannot open {}: {e}", lock_path.display())))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(err(format!(
                    "another firebreak watch of site {site} uses it (it holds {})",
                    lock_path.display()
                )));
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(err(format!("cannot lock {}: {e}", lock_path.display())));
            }
        }
        Ok(StateDir {
            ledger: dir.join(format!("watch-{site}.json")),
            _lock: lock,
        })
    }
}

fn check_client_id(id: &str) -> Result<(), WatchError> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && !id.chars().any(|c| c.is_control() || c.is_whitespace());
    if ok {
        Ok(())
    } else {
        Err(WatchError::BadClientId(id.to_string()))
    }
}

/// Runs until `shutdown` completes.
pub async fn watch(
    args: WatchArgs,
    out: &mut impl Write,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), WatchError> {
    let site: SiteId = args.site.parse().map_err(|error| WatchError::BadSite {
        value: args.site.clone(),
        error,
    })?;
    let mut trust = crate::trust::Trust::default();
    for path in &args.trust {
        trust
            .merge(crate::trust::Trust::load(path)?)
            .map_err(|problem| WatchError::TrustMerge {
                path: path.clone(),
                problem,
            })?;
    }
    let mut links: Vec<Link> = Vec::new();
    for (i, url) in args.brokers.iter().enumerate() {
        let (tls, host, port) =
            parse_broker_url(url).ok_or_else(|| WatchError::BadUrl(url.clone()))?;
        if links
            .iter()
            .any(|l| l.broker.host.eq_ignore_ascii_case(&host) && l.broker.port == port)
        {
            return Err(WatchError::SameBroker(url.clone()));
        }
        let tls = match (tls, &args.ca_file) {
            (false, _) => None,
            (true, None) => return Err(WatchError::NoCa(url.clone())),
            (true, Some(ca)) => Some(TlsFiles {
                ca_file: ca.clone(),
                client: args.client_cert.clone().zip(args.client_key.clone()),
            }),
        };
        let broker = BrokerConfig {
            name: format!("broker-{}", i + 1),
            host,
            port,
            tls,
            username: args.username.clone(),
            password: args.password_env.clone().map(PasswordSource::Env),
        };
        links.push(Link::prepare(&broker)?);
    }
    let client_id = args
        .client_id
        .clone()
        .unwrap_or_else(|| default_client_id(&site));
    check_client_id(&client_id)?;
    let mut merger = Merger::new(
        site.clone(),
        MergeOptions {
            disagree_after_ms: args.disagree_after.saturating_mul(1000),
            ..MergeOptions::default()
        },
    );
    // The gateways the trust file grants this site are expected: never heard, they turn
    // stale like silent ones.
    for grant in trust.grants().iter().filter(|g| !g.revoked) {
        let for_site = grant.sites.as_ref().is_none_or(|s| s.contains(&site));
        for gateway in grant.gateways.iter().flatten().filter(|_| for_site) {
            merger.expect(gateway.clone(), now_ms());
        }
    }
    let mut verifier = Verifier::with_trust(trust)
        .site(site.clone())
        .max_age_ms(args.max_age.saturating_mul(1000));
    let state_dir = match &args.state_dir {
        None => None,
        Some(dir) => {
            let state = StateDir::open(dir, &site)?;
            match Ledger::load(&state.ledger)? {
                None => eprintln!(
                    "watch: {}: none yet; nothing accepted before",
                    state.ledger.display()
                ),
                Some(ledger) => {
                    if let Some(other) = ledger.site.as_ref().filter(|s| *s != site.as_str()) {
                        return Err(WatchError::StateDir {
                            dir: dir.clone(),
                            problem: format!(
                                "{} is about site {other}, not {site}",
                                state.ledger.display()
                            ),
                        });
                    }
                    for (gateway, last) in ledger.lasts() {
                        eprintln!(
                            "watch: resuming after seq {last} from gateway {gateway} ({})",
                            state.ledger.display()
                        );
                    }
                    verifier = verifier.with_ledger(&ledger);
                }
            }
            Some(state)
        }
    };
    eprintln!("watch: client id {client_id} (persistent session)");
    let filters = vec![
        topic::triggers(&site).to_string(),
        topic::site_state(&site).to_string(),
        topic::zone_states_filter(&site).to_string(),
        topic::gateway_statuses_filter(&site).to_string(),
        // Drills (`firebreak drill`): reported, never a level.
        topic::drills_filter(&site).to_string(),
    ];
    let (tx, mut rx) = mpsc::channel::<Received>(256);
    let mut tasks = tokio::task::JoinSet::new();
    for link in links {
        tasks.spawn(subscribe(
            link,
            client_id.clone(),
            filters.clone(),
            tx.clone(),
        ));
    }
    drop(tx);
    let mut controller = Controller {
        args: &args,
        verifier,
        ledger: state_dir.as_ref().map(|s| s.ledger.clone()),
        states: HashMap::new(),
        statuses: HashMap::new(),
        merger,
    };
    tokio::pin!(shutdown);
    let mut clock = tokio::time::interval(Duration::from_secs(1));
    clock.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let r = tokio::select! {
            _ = &mut shutdown => break,
            _ = clock.tick() => {
                let events = controller.merger.tick(now_ms());
                controller.merged(events, None, out).await?;
                continue;
            }
            r = rx.recv() => match r { Some(r) => r, None => break },
        };
        controller.handle(&r, out).await?;
        if let Some((client, publish)) = &r.ack {
            // Fails only when that connection is gone: the broker sends it again.
            let _ = client.try_ack(publish);
        }
    }
    tasks.shutdown().await;
    Ok(())
}

/// What `watch` knows while it runs.
struct Controller<'a> {
    args: &'a WatchArgs,
    verifier: Verifier,
    /// The ledger file, with `--state-dir`.
    ledger: Option<PathBuf>,
    /// Per state topic, the (gateway, seq) last shown: a state is shown once, whichever
    /// broker it comes from and however often it is sent again.
    states: HashMap<String, (GatewayId, u64)>,
    /// Per connection of a gateway (`epoch`, `session`), what its last status line said: a
    /// heartbeat that changes nothing is not printed.
    statuses: HashMap<(GatewayId, u64, u64), String>,
    /// The site as every gateway reports it.
    merger: Merger,
}

impl Controller<'_> {
    async fn handle(&mut self, r: &Received, out: &mut impl Write) -> Result<(), WatchError> {
        match Topic::parse(&r.topic) {
            Ok(Topic::Triggers(_)) => self.trigger(r, out).await,
            // A state is read when it is retained (sent at subscription: what holds at
            // connect); the same trigger published live also comes on the triggers topic.
            Ok(Topic::SiteState(_) | Topic::ZoneState(..)) if r.retain => self.state(r, out).await,
            Ok(Topic::GatewayStatus(..)) => self.status(r, out).await,
            Ok(Topic::Drill(..)) => match self.verifier.check_drill(&r.payload, now_ms()) {
                Ok(d) => drill_line(self.args.json, out, &d, r),
                Err(why) => rejected_line(self.args.json, out, &why, r),
            },
            _ => {
                debug!(topic = %r.topic, broker = %r.broker, "not read");
                Ok(())
            }
        }
    }

    async fn trigger(&mut self, r: &Received, out: &mut impl Write) -> Result<(), WatchError> {
        match self.verifier.check(&r.payload, now_ms()) {
            Verdict::Accepted(a) => {
                // Saved before it is acted on: a replay after a crash from here on is refused.
                if let Some(path) = &self.ledger
                    && let Err(e) = self.verifier.ledger().save(path)
                {
                    eprintln!("watch: {e}: a restart will not know seq {}", a.trigger.seq);
                }
                if let Some(range) = a.missed {
                    missed_line(
                        self.args.json,
                        out,
                        &a.trigger.gateway,
                        range,
                        r,
                        &format!(
                            "never accepted here; the next accepted is seq {}",
                            a.trigger.seq
                        ),
                    )?;
                }
                if self.args.json {
                    let trigger: serde_json::Value =
                        serde_json::from_slice(&a.payload).unwrap_or_default();
                    let line = serde_json::json!({
                        "event": "accepted",
                        "broker": r.broker,
                        "topic": r.topic,
                        "key_id": a.key_id.as_str(),
                        "trigger": trigger,
                    });
                    writeln!(out, "{line}")?;
                } else {
                    writeln!(out, "ACCEPTED {} via {}", describe(&a.trigger), r.broker)?;
                }
                out.flush()?;
                let events = self.merger.on_trigger(&a.trigger, now_ms());
                self.merged(events, Some((&a.trigger, &a.payload)), out)
                    .await?;
            }
            Verdict::Duplicate { gateway, seq } => {
                debug!(%gateway, seq, broker = %r.broker, "duplicate dropped");
            }
            Verdict::Rejected(why) => rejected_line(self.args.json, out, &why, r)?,
            // A drill where triggers go (republished there by someone): still never a level.
            Verdict::Drill(d) => drill_line(self.args.json, out, &d, r)?,
        }
        Ok(())
    }

    async fn status(&mut self, r: &Received, out: &mut impl Write) -> Result<(), WatchError> {
        let a = match self.verifier.check_status(&r.payload, now_ms()) {
            StatusVerdict::Accepted(a) => a,
            StatusVerdict::Duplicate { .. } => return Ok(()),
            StatusVerdict::Rejected(why) => return rejected_line(self.args.json, out, &why, r),
        };
        let st = &a.status;
        let mut said = format!(
            "{} epoch {} session {} | {}/{} devices healthy",
            match st.state {
                firebreak_protocols::Presence::Online => "ONLINE",
                firebreak_protocols::Presence::Offline => "OFFLINE",
            },
            st.epoch.unwrap_or(0),
            st.session.unwrap_or(0),
            st.devices_healthy,
            st.devices_total
        );
        if !st.faults.is_empty() {
            let faults: Vec<&str> = st.faults.iter().map(|f| f.as_str()).collect();
            said.push_str(&format!(" | faults: {}", faults.join(", ")));
        }
        if !st.maintenance.is_empty() {
            // The device's readings are not evidence at that gateway: a controller may want
            // to know its coverage is reduced.
            let m: Vec<String> = st
                .maintenance
                .iter()
                .map(|m| {
                    format!(
                        "{} until {}",
                        crate::maintenance::subject(&m.device, m.channel),
                        crate::maintenance::rfc3339(m.until_ms)
                    )
                })
                .collect();
            said.push_str(&format!(" | maintenance: {}", m.join(", ")));
        }
        if a.silent {
            said.push_str(&format!(" | SILENT: last heard {} s ago", a.age_ms / 1000));
        }
        let events = self.merger.on_status(st, a.silent, now_ms());
        // Per connection: with several brokers (or a bridge) a gateway has several at once.
        let slot = (
            st.gateway.clone(),
            st.epoch.unwrap_or(0),
            st.session.unwrap_or(0),
        );
        if self.statuses.get(&slot) == Some(&said) {
            return self.merged(events, None, out).await;
        }
        self.statuses.insert(slot, said.clone());
        if self.args.json {
            let status: serde_json::Value = serde_json::from_slice(&r.payload).unwrap_or_default();
            let line = serde_json::json!({
                "event": "status",
                "broker": r.broker,
                "topic": r.topic,
                "key_id": a.key_id.as_str(),
                "silent": a.silent,
                "status": status,
            });
            writeln!(out, "{line}")?;
        } else {
            writeln!(
                out,
                "STATUS gateway {} {said} (key {}) via {}",
                st.gateway, a.key_id, r.broker
            )?;
        }
        out.flush()?;
        self.merged(events, None, out).await
    }

    async fn state(&mut self, r: &Received, out: &mut impl Write) -> Result<(), WatchError> {
        let state = match self.verifier.check_state(&r.payload, now_ms()) {
            Ok(s) => s,
            Err(why) => return rejected_line(self.args.json, out, &why, r),
        };
        let t = &state.trigger;
        let key = (t.gateway.clone(), t.seq);
        if self.states.get(&r.topic) == Some(&key) {
            return Ok(());
        }
        self.states.insert(r.topic.clone(), key);
        // What was seen for the scope is kept: an older state is refused after a restart too.
        if let Some(path) = &self.ledger
            && let Err(e) = self.verifier.ledger().save(path)
        {
            eprintln!(
                "watch: {e}: a restart will not know the state at seq {}",
                t.seq
            );
        }
        if let Some(range) = state.missed {
            missed_line(
                self.args.json,
                out,
                &t.gateway,
                range,
                r,
                &format!("the retained state is at seq {}", t.seq),
            )?;
        }
        if self.args.json {
            let trigger: serde_json::Value = serde_json::from_slice(&r.payload).unwrap_or_default();
            let line = serde_json::json!({
                "event": "state",
                "broker": r.broker,
                "topic": r.topic,
                "key_id": state.key_id.as_str(),
                "trigger": trigger,
            });
            writeln!(out, "{line}")?;
        } else {
            writeln!(
                out,
                "STATE {} (retained on {} via {})",
                describe(t),
                r.topic,
                r.broker
            )?;
        }
        out.flush()?;
        let events = self.merger.on_state(t, now_ms());
        self.merged(events, Some((t, &r.payload)), out).await
    }

    /// Prints what changed in the merged view of the site, and runs `--exec` for a changed
    /// merged level (with `cause`, the trigger or state that changed it, and its payload) and
    /// for a site silent during an alarm.
    async fn merged(
        &mut self,
        events: Vec<MergeEvent>,
        cause: Option<(&firebreak_protocols::Trigger, &[u8])>,
        out: &mut impl Write,
    ) -> Result<(), WatchError> {
        let site = self.merger.site().clone();
        for event in events {
            let scope_text = |scope: &Option<firebreak_protocols::ZoneId>| match scope {
                Some(z) => format!("site {site} zone {z}"),
                None => format!("site {site}"),
            };
            let list = |levels: &[(GatewayId, firebreak_protocols::Level)]| {
                levels
                    .iter()
                    .map(|(g, l)| format!("{g} {l}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let levels_json = |levels: &[(GatewayId, firebreak_protocols::Level)]| {
                levels
                    .iter()
                    .map(|(g, l)| serde_json::json!({"gateway": g.as_str(), "level": l.name()}))
                    .collect::<Vec<_>>()
            };
            let names = |gateways: &[GatewayId]| {
                gateways
                    .iter()
                    .map(GatewayId::as_str)
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let (text, json) = match &event {
                MergeEvent::Level {
                    scope,
                    level,
                    previous,
                    by,
                    levels,
                } => (
                    format!(
                        "LEVEL {} (was {previous}) {} | {} (changed by {by})",
                        level.name().to_uppercase(),
                        scope_text(scope),
                        list(levels)
                    ),
                    serde_json::json!({
                        "event": "level", "site": site.as_str(),
                        "zone": scope.as_ref().map(|z| z.as_str()),
                        "level": level.name(), "previous": previous.name(), "by": by.as_str(),
                        "gateways": levels_json(levels),
                    }),
                ),
                MergeEvent::Stale { gateway, why } => (
                    format!("STALE gateway {gateway}: {why}"),
                    serde_json::json!({"event": "stale", "gateway": gateway.as_str(), "detail": why}),
                ),
                MergeEvent::Live { gateway } => (
                    format!("LIVE gateway {gateway}: heard again"),
                    serde_json::json!({"event": "live", "gateway": gateway.as_str()}),
                ),
                MergeEvent::SiteSilentDuringAlarm { level, gateways } => (
                    format!(
                        "SITE-SILENT-DURING-ALARM site {site} at {}: every gateway is silent ({}); check the site by your own means, and fail over if your runbook says so",
                        level.name().to_uppercase(),
                        names(gateways)
                    ),
                    serde_json::json!({
                        "event": "site-silent-during-alarm", "site": site.as_str(),
                        "level": level.name(),
                        "gateways": gateways.iter().map(GatewayId::as_str).collect::<Vec<_>>(),
                    }),
                ),
                MergeEvent::SiteHeardAgain { gateway } => (
                    format!("SITE HEARD AGAIN site {site}: gateway {gateway} is live"),
                    serde_json::json!({"event": "site-heard-again", "site": site.as_str(), "gateway": gateway.as_str()}),
                ),
                MergeEvent::Disagree {
                    scope,
                    levels,
                    for_ms,
                } => (
                    format!(
                        "DISAGREE {} for {} s: {}",
                        scope_text(scope),
                        for_ms / 1000,
                        list(levels)
                    ),
                    serde_json::json!({
                        "event": "disagree", "site": site.as_str(),
                        "zone": scope.as_ref().map(|z| z.as_str()), "for_ms": for_ms,
                        "gateways": levels_json(levels),
                    }),
                ),
                MergeEvent::Agree { scope, level } => (
                    format!("AGREE {} at {level}", scope_text(scope)),
                    serde_json::json!({
                        "event": "agree", "site": site.as_str(),
                        "zone": scope.as_ref().map(|z| z.as_str()), "level": level.name(),
                    }),
                ),
            };
            if self.args.json {
                writeln!(out, "{json}")?;
            } else {
                writeln!(out, "{text}")?;
            }
            out.flush()?;
            let Some(cmd) = &self.args.exec else {
                continue;
            };
            match &event {
                MergeEvent::Level {
                    scope,
                    level,
                    previous,
                    by,
                    ..
                } => {
                    let (seq, payload) = cause
                        .filter(|(t, _)| t.gateway == *by)
                        .map_or((String::new(), &[][..]), |(t, p)| (t.seq.to_string(), p));
                    let env = Exec {
                        event: "level",
                        level: *level,
                        previous: *previous,
                        site: site.as_str(),
                        zone: scope.as_ref().map_or("", |z| z.as_str()),
                        gateway: by.to_string(),
                        seq,
                    };
                    run_exec(cmd, &env, payload).await;
                }
                MergeEvent::SiteSilentDuringAlarm { level, gateways } => {
                    let env = Exec {
                        event: "site-silent-during-alarm",
                        level: *level,
                        previous: *level,
                        site: site.as_str(),
                        zone: "",
                        gateway: names(gateways),
                        seq: String::new(),
                    };
                    run_exec(cmd, &env, json.to_string().as_bytes()).await;
                }
                _ => {}
            }
        }
        Ok(())
    }
}

fn missed_line(
    json: bool,
    out: &mut impl Write,
    gateway: &GatewayId,
    (from, to): (u64, u64),
    r: &Received,
    why: &str,
) -> Result<(), WatchError> {
    if json {
        let line = serde_json::json!({
            "event": "missed",
            "gateway": gateway.as_str(),
            "from": from,
            "to": to,
            "broker": r.broker,
            "topic": r.topic,
            "detail": why,
        });
        writeln!(out, "{line}")?;
    } else {
        writeln!(
            out,
            "missed: seq {from}..{to} from gateway {gateway} ({why})"
        )?;
    }
    Ok(())
}

/// A verified drill: `DRILL …`, never `ACCEPTED` or `LEVEL`, and `--exec` does not run. Each
/// broker's copy is printed: the drill tests every path.
fn drill_line(
    json: bool,
    out: &mut impl Write,
    d: &crate::subscribe::DrillSeen,
    r: &Received,
) -> Result<(), WatchError> {
    if json {
        let drill: serde_json::Value = serde_json::from_slice(&d.payload).unwrap_or_default();
        let line = serde_json::json!({
            "event": "drill",
            "broker": r.broker,
            "topic": r.topic,
            "key_id": d.key_id.as_str(),
            "age_ms": d.age_ms,
            "drill": drill,
        });
        writeln!(out, "{line}")?;
    } else {
        writeln!(out, "DRILL {} via {}", describe_drill(d), r.broker)?;
    }
    out.flush()?;
    Ok(())
}

/// One line for people about a drill: what it rehearses, where from, how old; and that it
/// changes nothing.
pub fn describe_drill(d: &crate::subscribe::DrillSeen) -> String {
    let t = &d.drill;
    let zone = t
        .zone
        .as_ref()
        .map(|z| format!(" zone {z}"))
        .unwrap_or_default();
    format!(
        "{} site {}{zone} | drill {} from {} (key {}) at {}, {} ms ago | not a level: nothing changes",
        t.level.name().to_uppercase(),
        t.site,
        t.incident,
        t.gateway,
        d.key_id,
        t.issued_at,
        d.age_ms
    )
}

fn rejected_line(
    json: bool,
    out: &mut impl Write,
    why: &Rejection,
    r: &Received,
) -> Result<(), WatchError> {
    if json {
        let line = serde_json::json!({
            "event": "rejected",
            "broker": r.broker,
            "topic": r.topic,
            "reason": why.kind(),
            "detail": why.to_string(),
        });
        writeln!(out, "{line}")?;
    } else {
        writeln!(out, "REJECTED {why} (via {} on {})", r.broker, r.topic)?;
    }
    out.flush()?;
    Ok(())
}

/// What `--exec` is told, in its environment.
struct Exec<'a> {
    event: &'static str,
    level: firebreak_protocols::Level,
    previous: firebreak_protocols::Level,
    site: &'a str,
    zone: &'a str,
    gateway: String,
    seq: String,
}

async fn run_exec(cmd: &str, e: &Exec<'_>, payload: &[u8]) {
    let what = format!("{} {} {}", e.event, e.level, e.zone);
    let child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .env("FIREBREAK_EVENT", e.event)
        .env("FIREBREAK_LEVEL", e.level.name())
        .env("FIREBREAK_PREVIOUS", e.previous.name())
        .env("FIREBREAK_SITE", e.site)
        .env("FIREBREAK_ZONE", e.zone)
        .env("FIREBREAK_GATEWAY", &e.gateway)
        .env("FIREBREAK_SEQ", &e.seq)
        .stdin(Stdio::piped())
        .kill_on_drop(true)
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            eprintln!("watch: --exec {cmd:?}: cannot start: {e}");
            return;
        }
    };
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(payload).await;
        let _ = stdin.shutdown().await;
    }
    match tokio::time::timeout(EXEC_TIMEOUT, child.wait()).await {
        Ok(Ok(status)) if status.success() => {}
        Ok(Ok(status)) => eprintln!("watch: --exec {cmd:?} for {what}: {status}"),
        Ok(Err(e)) => eprintln!("watch: --exec {cmd:?}: {e}"),
        Err(_) => {
            let _ = child.kill().await;
            eprintln!(
                "watch: --exec {cmd:?} for {what} did not finish within {} s: killed",
                EXEC_TIMEOUT.as_secs()
            );
        }
    }
}

/// Subscribes to `filters` on one broker, in a persistent session under `client_id`, and
/// forwards every message with what it takes to acknowledge it; reconnects on its own.
async fn subscribe(
    link: Link,
    client_id: String,
    filters: Vec<String>,
    tx: mpsc::Sender<Received>,
) {
    let url = link.broker.url();
    let mut failures = 0u32;
    loop {
        let mut options = link.options(&client_id, Duration::from_secs(10));
        // The broker keeps the subscriptions and what is published meanwhile for this
        // client id while it is away; a trigger is acknowledged once handled.
        options.set_clean_session(false);
        options.set_manual_acks(true);
        let (client, mut eventloop) = AsyncClient::new(options, 16);
        let mut was_up = false;
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                    failures = 0;
                    was_up = true;
                    if ack.session_present {
                        eprintln!("watch: {url}: session resumed (client id {client_id})");
                    }
                    // Again on every connect: a subscription sends the retained states.
                    let subs = filters
                        .iter()
                        .map(|f| SubscribeFilter::new(f.clone(), QoS::AtLeastOnce));
                    if let Err(e) = client.try_subscribe_many(subs) {
                        warn!(broker = %url, error = %e, "cannot subscribe");
                    }
                }
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    eprintln!("watch: subscribed to {} on {url}", filters.join(", "));
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let r = Received {
                        broker: url.clone(),
                        topic: p.topic.clone(),
                        payload: p.payload.to_vec(),
                        retain: p.retain,
                        ack: Some((client.clone(), p)),
                    };
                    if tx.send(r).await.is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    if failures == 0 {
                        let hint = if was_up {
                            format!(
                                " (if this repeats, another client may use the client id {client_id}: give each watch its own --client-id)"
                            )
                        } else {
                            String::new()
                        };
                        eprintln!("watch: {url}: {e}; reconnecting{hint}");
                    }
                    failures = failures.saturating_add(1);
                    break;
                }
            }
        }
        let backoff = Duration::from_millis(200u64.saturating_mul(1 << failures.min(5)));
        tokio::time::sleep(backoff.min(Duration::from_secs(5))).await;
    }
}
