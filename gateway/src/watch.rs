//! `firebreak watch`: a controller in a terminal. Subscribes to a site's triggers on one or
//! more brokers, verifies and de-duplicates them with [`Verifier`], prints one line per
//! accepted or rejected trigger, and can run a command per accepted trigger.

use std::io::Write;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use firebreak_protocols::{SiteId, topic};
use rumqttc::{AsyncClient, Event, Packet, QoS};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use tracing::{debug, warn};

use crate::acquire::now_ms;
use crate::config::{BrokerConfig, PasswordSource, TlsFiles, parse_broker_url};
use crate::deliver::link::{Link, LinkError};
use crate::keys::{KeyError, PublicKey};
use crate::subscribe::{Verdict, Verifier, describe};

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
    /// A public key file to trust (`firebreak keygen` writes `ID.pub`); repeat for several.
    #[arg(long = "trust", required = true)]
    pub trust: Vec<PathBuf>,
    /// One JSON object per line instead of text.
    #[arg(long)]
    pub json: bool,
    /// Run this shell command for each accepted trigger, with the payload on its stdin.
    #[arg(long)]
    pub exec: Option<String>,
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
}

/// Why `watch` could not run.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// A broker URL is wrong.
    #[error("--broker: {0:?} is not mqtt://host:port or mqtts://host:port")]
    BadUrl(String),
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
    let keys = args
        .trust
        .iter()
        .map(|p| PublicKey::load(p))
        .collect::<Result<Vec<_>, _>>()?;
    let mut links = Vec::new();
    for (i, url) in args.brokers.iter().enumerate() {
        let (tls, host, port) =
            parse_broker_url(url).ok_or_else(|| WatchError::BadUrl(url.clone()))?;
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
    let mut verifier = Verifier::new(keys)
        .site(site.clone())
        .max_age_ms(args.max_age.saturating_mul(1000));
    let filter = topic::triggers(&site).to_string();
    let (tx, mut rx) = mpsc::channel::<Received>(256);
    let mut tasks = tokio::task::JoinSet::new();
    for link in links {
        tasks.spawn(subscribe(link, filter.clone(), tx.clone()));
    }
    drop(tx);
    tokio::pin!(shutdown);
    loop {
        let r = tokio::select! {
            _ = &mut shutdown => break,
            r = rx.recv() => match r { Some(r) => r, None => break },
        };
        match verifier.check(&r.payload, now_ms()) {
            Verdict::Accepted(a) => {
                if args.json {
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
                if let Some(cmd) = &args.exec {
                    run_exec(cmd, &a.trigger, &a.payload).await;
                }
            }
            Verdict::Duplicate { gateway, seq } => {
                debug!(%gateway, seq, broker = %r.broker, "duplicate dropped");
            }
            Verdict::Rejected(why) => {
                if args.json {
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
            }
        }
    }
    tasks.shutdown().await;
    Ok(())
}

async fn run_exec(cmd: &str, t: &firebreak_protocols::Trigger, payload: &[u8]) {
    let child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .env("FIREBREAK_LEVEL", t.level.name())
        .env("FIREBREAK_PREVIOUS", t.previous.name())
        .env("FIREBREAK_SITE", t.site.as_str())
        .env(
            "FIREBREAK_ZONE",
            t.zone.as_ref().map(|z| z.as_str()).unwrap_or(""),
        )
        .env("FIREBREAK_GATEWAY", t.gateway.as_str())
        .env("FIREBREAK_SEQ", t.seq.to_string())
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
        Ok(Ok(status)) => eprintln!("watch: --exec {cmd:?} for seq {}: {status}", t.seq),
        Ok(Err(e)) => eprintln!("watch: --exec {cmd:?}: {e}"),
        Err(_) => {
            let _ = child.kill().await;
            eprintln!(
                "watch: --exec {cmd:?} for seq {} did not finish within {} s: killed",
                t.seq,
                EXEC_TIMEOUT.as_secs()
            );
        }
    }
}

/// Subscribes to `filter` on one broker and forwards every message; reconnects on its own.
async fn subscribe(link: Link, filter: String, tx: mpsc::Sender<Received>) {
    let url = link.broker.url();
    let client_id = format!(
        "firebreak-watch-{}-{}",
        std::process::id(),
        fastrand::u32(..)
    );
    let mut failures = 0u32;
    loop {
        let options = link.options(&client_id, Duration::from_secs(10));
        let (client, mut eventloop) = AsyncClient::new(options, 16);
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    failures = 0;
                    if let Err(e) = client.try_subscribe(filter.clone(), QoS::AtLeastOnce) {
                        warn!(broker = %url, error = %e, "cannot subscribe");
                    }
                }
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    eprintln!("watch: subscribed to {filter} on {url}");
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let r = Received {
                        broker: url.clone(),
                        topic: p.topic.clone(),
                        payload: p.payload.to_vec(),
                    };
                    if tx.send(r).await.is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    if failures == 0 {
                        eprintln!("watch: {url}: {e}; reconnecting");
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
