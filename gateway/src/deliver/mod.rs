//! Trigger delivery that survives the failure it reports: signed triggers, a durable outbox
//! per broker, retained state, and the gateway's status with an MQTT will.
//!
//! # The interface the run loop uses
//!
//! ```no_run
//! # async fn example(config: firebreak_gateway::config::SiteConfig) -> Result<(), firebreak_gateway::deliver::DeliverError> {
//! use firebreak_gateway::deliver::{Delivery, DeliveryOptions, TriggerDraft};
//! use firebreak_protocols::{IncidentId, Level};
//!
//! // Once, at start (inside the tokio runtime): opens the outbox, reads the key, and starts
//! // one task per broker and the outbox's writer. Fails with `NotConfigured` when the site
//! // has no [[brokers]]; a store that will not open, or a broker whose TLS files or password
//! // cannot be read, is a fault (reported, retried), not an error.
//! let (delivery, tasks) = Delivery::start(&config, DeliveryOptions::default()).await?;
//!
//! // For every change of level the policy decides:
//! let trigger = delivery
//!     .issue(TriggerDraft {
//!         incident: IncidentId::new("gw-1-1700000000000").map_err(|e| firebreak_gateway::deliver::DeliverError::InvalidDraft(e.to_string()))?,
//!         zone: None,
//!         level: Level::Watch,
//!         previous: Level::Normal,
//!         reasons: Vec::new(),
//!         seconds_to_power_loss: None,
//!         issued_at_ms: 1_700_000_000_000,
//!     })
//!     .await?;
//! // `trigger` carries its seq and signature; it is in every broker's outbox (in memory, on
//! // disk with the writer's next commit), and each broker's task publishes it once stored.
//!
//! delivery.set_devices(11, 12); // for the heartbeat status
//! let _stats = delivery.stats(); // for /metrics and /status
//! tasks.shutdown().await; // on SIGTERM: `offline` status, then DISCONNECT
//! # let _ = trigger; Ok(()) }
//! ```
//!
//! - [`Delivery::start`]`(&SiteConfig, DeliveryOptions) -> Result<(Delivery, DeliveryTasks), DeliverError>`
//! - [`Delivery::issue_now`]`(&self, TriggerDraft) -> Result<Trigger, DeliverError>` (and its
//!   `async` twin [`Delivery::issue`]): assigns the next per-gateway `seq`, builds and signs the
//!   trigger, and puts it in the outbox of every broker, in memory; it never waits on the disk.
//!   The writer task commits it (with everything else queued) in one fsync'd transaction, and
//!   each broker's task publishes it once committed. `Delivery` is `Clone`.
//! - [`Delivery::stats`]`(&self) -> DeliveryStats`: a snapshot per broker (connected, pending,
//!   near full, delivered, refused…), with [`DeliveryStats::prometheus`] for `/metrics`.
//! - [`Delivery::set_devices`]`(&self, healthy, total)`: what the status heartbeat reports.
//!
//! # Guarantees
//!
//! - **Durable before published, while the disk works.** A trigger is committed to the outbox
//!   of every broker by the writer's next group commit (about a millisecond on a working disk)
//!   and published once committed; it is removed from a broker's outbox only after that broker's
//!   PUBACK for each of its publishes (QoS 1). After a broker outage, a reconnect, a restart
//!   or a `kill -9`, every waiting trigger is published again, in `seq` order, with its original
//!   `seq`, timestamps and signature (the stored bytes are re-sent as they are). A `kill -9`
//!   between the decision and its commit loses that trigger (it was not published either).
//! - **A failing disk silences nothing.** A commit that fails, or takes longer than
//!   [`DeliveryOptions::disk_hang_after`], raises the `outbox` fault ([`Delivery::faults`]):
//!   the brokers publish from memory, in `seq` order, what is not stored: not durable. The writer retries;
//!   the first commit that succeeds rewrites the whole outbox from memory and clears the fault.
//!   A store that will not open at start gives an in-memory outbox and the same fault, for
//!   the life of the process.
//! - **Independent brokers.** Each broker has its own task, connection and outbox table; a
//!   broker that is down or slow only fills its own outbox. A broker whose TLS files or
//!   password cannot be read raises the `broker-config` fault and is tried again every
//!   [`DeliveryOptions::link_retry`]; the others run.
//! - **`seq`** is counted in the transaction that stores the trigger, so it is never reused
//!   while the disk works (a crash while the disk is out can give again the `seq` of triggers
//!   published from memory); a new store starts at the current Unix time in milliseconds, so a
//!   gateway whose store was lost still counts up from where controllers last saw it.
//! - **Retained state**: each trigger is also published retained on its scope's state topic;
//!   on every (re)connect the latest trigger of every scope is published there again (a
//!   broker restarted without persistence has lost it), and a late re-send of an older trigger
//!   never goes to a state topic.
//! - **Status**: retained `online` at connect and every [`DeliveryOptions::heartbeat`];
//!   the MQTT will sets it `offline` when the connection dies; a clean shutdown publishes
//!   `offline` itself.
//! - **Bounded, never silent.** Each broker's outbox holds at most `outbox.capacity` triggers.
//!   At `outbox.warn_at` a warning is logged and [`BrokerStats::near_full`] is set. When one
//!   broker's outbox is full, the trigger is still stored for, and delivered to, the others; for
//!   the full one it is **refused**: logged at error level and counted in
//!   [`BrokerStats::refused`] (that broker still gets the current level through the retained
//!   state when it comes back). We chose this over refusing the trigger everywhere, because one
//!   dead broker must never silence the healthy ones. Only when every outbox is full does
//!   `issue` fail, with [`DeliverError::OutboxFull`], and nothing is written.
//!
//! Inside: `book` is the in-memory outbox the broker tasks read, `writer` the task that
//! mirrors it to disk, [`outbox`] the store.
//!
//! The store is redb; [`outbox`] says why.

mod book;
mod broker;
pub mod drill;
pub mod fault;
pub mod link;
pub mod outbox;
mod writer;

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use firebreak_protocols::message::{MAX_REASONS, encode_vec};
use firebreak_protocols::signed::signed_vec;
use firebreak_protocols::{GatewayId, IncidentId, Level, Reason, SiteId, Trigger, ZoneId, topic};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tracing::{error, info, warn};

use crate::config::SiteConfig;
use crate::keys::{KeyError, PublicKey, SigningKey};
use book::Book;
use broker::{BrokerCtx, BrokerShared};
pub use drill::{BrokerDrill, DRILL_TIMEOUT, DrillReport};
pub use fault::Fault;
use fault::Faults;
pub use link::{Link, LinkError, Secret};
use outbox::{FaultInjection, Loaded, Store, StoreError};
use writer::{Stop, Writer, WriterStats};

/// A change of level, as the policy decides it; delivery adds the gateway, site, `seq` and
/// signature.
#[derive(Debug, Clone, PartialEq)]
pub struct TriggerDraft {
    /// The incident it belongs to.
    pub incident: IncidentId,
    /// The zone, or `None` for the site as a whole.
    pub zone: Option<ZoneId>,
    /// The new level.
    pub level: Level,
    /// The level before.
    pub previous: Level,
    /// The rules that fired, strongest first (at most 8).
    pub reasons: Vec<Reason>,
    /// Estimated seconds until servers lose power.
    pub seconds_to_power_loss: Option<u32>,
    /// When the change was decided, in milliseconds since the Unix epoch.
    pub issued_at_ms: u64,
}

/// Tunables of delivery; the defaults suit a real site.
#[derive(Debug, Clone)]
pub struct DeliveryOptions {
    /// Time between two `online` status publications.
    pub heartbeat: Duration,
    /// MQTT keep-alive: a dead connection is noticed, and the will published, within 1.5 × this.
    pub keep_alive: Duration,
    /// Longest wait between two connection attempts to a broker.
    pub max_backoff: Duration,
    /// Publishes in flight (not yet acknowledged) per broker.
    pub window: usize,
    /// How long a clean shutdown waits for the `offline` status to be acknowledged.
    pub shutdown_grace: Duration,
    /// An outbox write (or the opening of the store) slower than this raises the `outbox`
    /// fault: the disk hangs, and the brokers publish from memory. So it is also the longest a
    /// trigger waits for a hung disk.
    pub disk_hang_after: Duration,
    /// Time between two tries of a failed outbox write.
    pub disk_retry: Duration,
    /// Time between two tries to read a broker's TLS files and password.
    pub link_retry: Duration,
    /// **Tests only**: makes the store's writes fail or hang on demand.
    pub inject: FaultInjection,
}

impl Default for DeliveryOptions {
    fn default() -> Self {
        DeliveryOptions {
            heartbeat: Duration::from_secs(10),
            keep_alive: Duration::from_secs(10),
            max_backoff: Duration::from_secs(5),
            window: 32,
            shutdown_grace: Duration::from_secs(2),
            disk_hang_after: Duration::from_secs(1),
            disk_retry: Duration::from_secs(1),
            link_retry: Duration::from_secs(10),
            inject: FaultInjection::default(),
        }
    }
}

/// Why delivery could not start or a trigger could not be issued.
#[derive(Debug, thiserror::Error)]
pub enum DeliverError {
    /// The site configuration lacks a section delivery needs.
    #[error("delivery is not configured: the site has no {0}")]
    NotConfigured(&'static str),
    /// The signing key could not be read.
    #[error("signing.key_file {0}")]
    Key(#[from] KeyError),
    /// The key file holds another key id than `signing.key_id`.
    #[error("signing.key_id is {configured:?} but the key file holds {found:?}")]
    KeyIdMismatch {
        /// What the configuration says.
        configured: String,
        /// What the file holds.
        found: String,
    },
    /// A broker's password or TLS files could not be read.
    #[error("{0}")]
    Link(#[from] LinkError),
    /// The outbox store failed.
    #[error("{0}")]
    Store(#[from] StoreError),
    /// Every broker's outbox is full: the trigger was not stored (and not given a seq).
    #[error(
        "trigger refused: the outbox of every broker is full ({capacity} triggers each); no broker has acknowledged anything for a long time"
    )]
    OutboxFull {
        /// The capacity of each outbox.
        capacity: u32,
    },
    /// The draft breaks the contract (level equal to previous, too many reasons…).
    #[error("trigger draft: {0}")]
    InvalidDraft(String),
    /// A background step failed (the runtime is shutting down).
    #[error("delivery task failed: {0}")]
    Task(String),
}

/// One broker's delivery figures.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct BrokerStats {
    /// The broker's name.
    pub name: String,
    /// Its URL (no user name, no secret).
    pub url: String,
    /// Whether its connection is up.
    pub connected: bool,
    /// Triggers waiting in its outbox.
    pub pending: u64,
    /// Its outbox's capacity.
    pub capacity: u32,
    /// The waiting count at which it is reported near full.
    pub warn_at: u32,
    /// Whether `pending >= warn_at`.
    pub near_full: bool,
    /// Triggers published on the triggers topic (re-sends included).
    pub published: u64,
    /// Triggers acknowledged and removed from its outbox.
    pub delivered: u64,
    /// Triggers refused because its outbox was full.
    pub refused: u64,
    /// The seq of the last trigger acknowledged.
    pub last_delivered_seq: Option<u64>,
    /// Connections made.
    pub connects: u64,
    /// Connections lost or refused.
    pub connection_errors: u64,
    /// The last connection error.
    pub last_error: Option<String>,
}

/// The outbox store's figures.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct OutboxStats {
    /// `ok`, `failing` (the `outbox` fault is raised) or `memory-only` (the store never
    /// opened).
    pub state: &'static str,
    /// The store's file.
    pub path: String,
    /// Group commits made (each stores every change queued since the one before).
    pub commits: u64,
    /// Commits that failed.
    pub failures: u64,
    /// Rewrites of the whole outbox after a failure.
    pub rewrites: u64,
    /// The most changes one commit stored.
    pub largest_batch: u64,
    /// When the last commit completed, in milliseconds since the Unix epoch.
    pub last_commit_ms: Option<u64>,
    /// Every trigger up to this `seq` is on disk (none since start: `None`).
    pub committed_seq: Option<u64>,
    /// How long the write under way has been running, in milliseconds.
    pub writing_ms: Option<u64>,
}

/// A snapshot of delivery, for `/metrics` and `/status`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryStats {
    /// Triggers issued since start.
    pub issued: u64,
    /// Triggers refused everywhere ([`DeliverError::OutboxFull`]).
    pub refused: u64,
    /// The seq of the last trigger issued since start.
    pub last_seq: Option<u64>,
    /// Per broker.
    pub brokers: Vec<BrokerStats>,
    /// The store.
    pub outbox: OutboxStats,
    /// The faults raised now.
    pub faults: Vec<Fault>,
}

impl DeliveryStats {
    /// Prometheus text lines (`firebreak_delivery_…`), to append to `/metrics`.
    pub fn prometheus(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# TYPE firebreak_triggers_issued_total counter\nfirebreak_triggers_issued_total {}",
            self.issued
        );
        let _ = writeln!(
            out,
            "# TYPE firebreak_triggers_refused_total counter\nfirebreak_triggers_refused_total {}",
            self.refused
        );
        type Series = (&'static str, &'static str, fn(&BrokerStats) -> u64);
        let series: [Series; 7] = [
            ("firebreak_delivery_connected", "gauge", |b| {
                u64::from(b.connected)
            }),
            ("firebreak_delivery_pending", "gauge", |b| b.pending),
            ("firebreak_delivery_capacity", "gauge", |b| {
                u64::from(b.capacity)
            }),
            ("firebreak_delivery_near_full", "gauge", |b| {
                u64::from(b.near_full)
            }),
            ("firebreak_delivery_delivered_total", "counter", |b| {
                b.delivered
            }),
            ("firebreak_delivery_refused_total", "counter", |b| b.refused),
            (
                "firebreak_delivery_connection_errors_total",
                "counter",
                |b| b.connection_errors,
            ),
        ];
        for (name, kind, value) in series {
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for b in &self.brokers {
                let _ = writeln!(out, "{name}{{broker=\"{}\"}} {}", b.name, value(b));
            }
        }
        let o = &self.outbox;
        let _ = writeln!(
            out,
            "# TYPE firebreak_outbox_commits_total counter\nfirebreak_outbox_commits_total {}\n\
             # TYPE firebreak_outbox_failures_total counter\nfirebreak_outbox_failures_total {}\n\
             # TYPE firebreak_outbox_largest_batch gauge\nfirebreak_outbox_largest_batch {}\n\
             # TYPE firebreak_outbox_writing_seconds gauge\nfirebreak_outbox_writing_seconds {}",
            o.commits,
            o.failures,
            o.largest_batch,
            o.writing_ms.unwrap_or(0) as f64 / 1000.0
        );
        let _ = writeln!(
            out,
            "# HELP firebreak_gateway_fault Faults raised, by kind (outbox: triggers not stored; broker-config: a broker's settings unreadable).\n# TYPE firebreak_gateway_fault gauge"
        );
        for kind in [fault::OUTBOX, fault::BROKER_CONFIG] {
            let n = self.faults.iter().filter(|f| f.kind == kind).count();
            let _ = writeln!(out, "firebreak_gateway_fault{{kind=\"{kind}\"}} {n}");
        }
        out
    }
}

/// The handle the run loop issues triggers through. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Delivery {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    site: SiteId,
    gateway: GatewayId,
    key: Arc<SigningKey>,
    /// This start's boot epoch, carried by every trigger and status.
    epoch: u64,
    book: Arc<Book>,
    store_path: String,
    memory_only: bool,
    faults: Arc<Faults>,
    writer: Arc<WriterStats>,
    brokers: Vec<Arc<BrokerShared>>,
    capacity: u32,
    devices: Arc<AtomicU32>,
    issued: AtomicU64,
    refused: AtomicU64,
    last_seq: AtomicU64,
    /// Per broker, in order: where its task takes drills.
    drills: Vec<mpsc::Sender<broker::DrillJob>>,
    /// One drill at a time.
    drill_lock: tokio::sync::Mutex<()>,
    drill_book: Mutex<drill::DrillBook>,
}

/// The brokers' tasks. Dropping it aborts them (as a crash would: the outbox keeps what was
/// not acknowledged); [`DeliveryTasks::shutdown`] stops them cleanly.
#[derive(Debug)]
pub struct DeliveryTasks {
    tasks: JoinSet<()>,
    shutdown: watch::Sender<bool>,
    grace: Duration,
    writer: Option<tokio::task::JoinHandle<()>>,
    writer_stop: watch::Sender<Stop>,
}

impl DeliveryTasks {
    /// Publishes `offline` to every connected broker, disconnects, and waits for the tasks
    /// (at most the grace period and a second); then the writer stores what is queued and
    /// stores the counter (at most 2 s more: a hung disk does not hold the stop).
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        let all = async { while self.tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(self.grace + Duration::from_secs(1), all)
            .await
            .is_err()
        {
            self.tasks.abort_all();
        }
        let _ = self.writer_stop.send(Stop::Clean);
        if let Some(mut writer) = self.writer.take()
            && tokio::time::timeout(Duration::from_secs(2), &mut writer)
                .await
                .is_err()
        {
            warn!("outbox: the last changes could not be stored before stopping (the disk hangs)");
            writer.abort();
        }
    }

    /// Stops the tasks at once, as a crash would (no `offline` status: the broker publishes the
    /// will; no clean close of the store), and waits until they are gone and have let go of
    /// the outbox (the writer finishes the commit under way, at most 5 s).
    pub async fn abort(mut self) {
        self.tasks.abort_all();
        while self.tasks.join_next().await.is_some() {}
        let _ = self.writer_stop.send(Stop::Crash);
        if let Some(mut writer) = self.writer.take()
            && tokio::time::timeout(Duration::from_secs(5), &mut writer)
                .await
                .is_err()
        {
            writer.abort();
        }
    }

    /// Waits until a task ends (they end only on shutdown); for `select!` in the run loop.
    pub async fn join_next(&mut self) -> Option<Result<(), tokio::task::JoinError>> {
        self.tasks.join_next().await
    }
}

impl Delivery {
    /// Opens the outbox, reads the signing key and the brokers' secrets, and starts one task
    /// per broker. Call inside a tokio runtime.
    pub async fn start(
        config: &SiteConfig,
        options: DeliveryOptions,
    ) -> Result<(Delivery, DeliveryTasks), DeliverError> {
        if config.brokers.is_empty() {
            return Err(DeliverError::NotConfigured("[[brokers]]"));
        }
        let signing = config
            .signing
            .as_ref()
            .ok_or(DeliverError::NotConfigured("[signing]"))?;
        let outbox = config
            .outbox
            .as_ref()
            .ok_or(DeliverError::NotConfigured("[outbox]"))?;
        let key = SigningKey::load(&signing.key_file)?;
        if let Some(id) = signing.key_id.as_ref().filter(|id| *id != key.key_id()) {
            return Err(DeliverError::KeyIdMismatch {
                configured: id.to_string(),
                found: key.key_id().to_string(),
            });
        }
        let names: Vec<String> = config.brokers.iter().map(|b| b.name.clone()).collect();
        let faults = Arc::new(Faults::new());
        let (ops_tx, ops_rx) = mpsc::channel(book::WRITER_QUEUE);
        let (dir, first, inject) = (
            outbox.dir.clone(),
            crate::acquire::now_ms(),
            options.inject.clone(),
        );
        let open_names = names.clone();
        let open =
            tokio::task::spawn_blocking(move || Store::open(&dir, &open_names, first, inject));
        let store_path = outbox.dir.join(outbox::FILE_NAME).display().to_string();
        let opened = match tokio::time::timeout(options.disk_hang_after, open).await {
            Ok(Ok(Ok(opened))) => Ok(opened),
            Ok(Ok(Err(e))) => Err(e.to_string()),
            Ok(Err(e)) => Err(format!("outbox {store_path}: {e}")),
            Err(_) => Err(format!(
                "outbox {store_path}: did not open within {} ms (the disk hangs)",
                options.disk_hang_after.as_millis()
            )),
        };
        let (book, store, epoch) = match opened {
            Ok((store, loaded)) => {
                let epoch = loaded.epoch;
                for (name, count) in &loaded.orphans {
                    if *count > 0 {
                        warn!(broker = %name, pending = count, store = %store.path().display(), "outbox of a broker no longer configured still holds triggers; they are not delivered");
                    }
                }
                let book = Book::new(names.clone(), outbox.capacity, loaded, Some(ops_tx));
                (Arc::new(book), Some(Arc::new(store)), epoch)
            }
            Err(e) => {
                error!(error = %e, "the outbox cannot be opened: running with an IN-MEMORY outbox; triggers are delivered but not stored, and those waiting are lost if the gateway stops; repair the disk and restart the gateway");
                faults.raise(
                    fault::OUTBOX,
                    None,
                    format!("{e}; triggers are kept in memory only (restart the gateway once the disk is repaired)"),
                );
                let loaded = Loaded {
                    next_seq: first,
                    ..Loaded::default()
                };
                (
                    Arc::new(Book::new(names.clone(), outbox.capacity, loaded, None)),
                    None,
                    outbox::boot_epoch(None, first),
                )
            }
        };
        let (writer_stop, stop_rx) = watch::channel(Stop::Run);
        let writer_stats = Arc::new(WriterStats::default());
        let writer = store.map(|store| {
            tokio::spawn(
                Writer {
                    store,
                    book: book.clone(),
                    ops: ops_rx,
                    faults: faults.clone(),
                    stats: writer_stats.clone(),
                    stop: stop_rx,
                    hang_after: options.disk_hang_after,
                    retry: options.disk_retry,
                }
                .run(),
            )
        });
        let (shutdown, _) = watch::channel(false);
        let devices = Arc::new(AtomicU32::new(
            u32::try_from(config.all_devices().len())
                .unwrap_or(0)
                .min(0xFFFF),
        ));
        let key = Arc::new(key);
        let sessions = Arc::new(AtomicU64::new(0));
        let mut brokers = Vec::new();
        let mut drills = Vec::new();
        let drill_topic = topic::drill(&config.site, &config.gateway).to_string();
        let mut tasks = JoinSet::new();
        for (index, broker) in config.brokers.iter().enumerate() {
            let name = broker.name.clone();
            let url = broker.url();
            // A broker whose settings cannot be read is reported and tried again by its task;
            // the others start at once.
            let link = match Link::prepare(broker) {
                Ok(link) => Some(link),
                Err(e) => {
                    error!(broker = %name, error = %e, "broker cannot be used: its triggers wait in its outbox; the other brokers are not affected; tried again");
                    faults.raise(fault::BROKER_CONFIG, Some(&name), e.to_string());
                    None
                }
            };
            let shared = Arc::new(BrokerShared {
                name: name.clone(),
                index,
                url: url.clone(),
                stats: Mutex::new(BrokerStats {
                    name: name.clone(),
                    url,
                    capacity: outbox.capacity,
                    warn_at: outbox.warn_at,
                    ..BrokerStats::default()
                }),
            });
            shared.set_pending(book.len(index));
            let (drill_tx, drill_rx) = mpsc::channel(4);
            drills.push(drill_tx);
            tasks.spawn(broker::run(BrokerCtx {
                shared: shared.clone(),
                config: broker.clone(),
                link,
                book: book.clone(),
                faults: faults.clone(),
                faults_changed: faults.subscribe(),
                site: config.site.clone(),
                gateway: config.gateway.clone(),
                triggers_topic: topic::triggers(&config.site).to_string(),
                status_topic: topic::gateway_status(&config.site, &config.gateway).to_string(),
                wake: book.wake.subscribe(),
                shutdown: shutdown.subscribe(),
                devices: devices.clone(),
                options: options.clone(),
                key: key.clone(),
                epoch,
                sessions: sessions.clone(),
                drill_topic: drill_topic.clone(),
                drills: drill_rx,
            }));
            brokers.push(shared);
        }
        info!(
            gateway = %config.gateway,
            key_id = %key.key_id(),
            brokers = names.len(),
            outbox = %store_path,
            next_seq = book.next_seq(),
            epoch,
            "delivery started"
        );
        let now = crate::acquire::now_ms();
        if book.next_seq() > now.saturating_add(crate::subscribe::MAX_SEQ_AHEAD) {
            error!(
                next_seq = book.next_seq(),
                now_ms = now,
                outbox = %store_path,
                "the outbox's next seq is far ahead of this clock (the store was made, or the clock set, wrong): controllers reject such triggers as 'seq ahead'; fix the clock, and if it was right, move the outbox away so that a new one starts at the current time (docs/contract.md)"
            );
            faults.raise(
                fault::OUTBOX,
                None,
                format!(
                    "next seq {} is more than {} above the clock ({now}): controllers will reject the triggers (seq ahead)",
                    book.next_seq(),
                    crate::subscribe::MAX_SEQ_AHEAD
                ),
            );
        }
        let delivery = Delivery {
            inner: Arc::new(Inner {
                site: config.site.clone(),
                gateway: config.gateway.clone(),
                key,
                epoch,
                memory_only: writer.is_none(),
                book,
                store_path,
                faults,
                writer: writer_stats,
                brokers,
                capacity: outbox.capacity,
                devices,
                issued: AtomicU64::new(0),
                refused: AtomicU64::new(0),
                last_seq: AtomicU64::new(0),
                drills,
                drill_lock: tokio::sync::Mutex::new(()),
                drill_book: Mutex::new(drill::DrillBook::default()),
            }),
        };
        Ok((
            delivery,
            DeliveryTasks {
                tasks,
                shutdown,
                grace: options.shutdown_grace,
                writer,
                writer_stop,
            },
        ))
    }

    /// [`issue_now`](Self::issue_now), for callers in async code that used to await the disk.
    pub async fn issue(&self, draft: TriggerDraft) -> Result<Trigger, DeliverError> {
        self.issue_now(draft)
    }

    /// Gives the draft the next `seq`, signs it, and puts it in the outbox of every broker
    /// (in memory; the writer stores it with its next commit), then wakes the brokers' tasks;
    /// returns the signed trigger. Never waits on the disk or a broker. See the module docs for
    /// what happens when outboxes are full.
    pub fn issue_now(&self, draft: TriggerDraft) -> Result<Trigger, DeliverError> {
        let inner = &self.inner;
        let stored = inner.store_trigger(draft)?;
        let Some(stored) = stored else {
            inner.refused.fetch_add(1, Ordering::Relaxed);
            let e = DeliverError::OutboxFull {
                capacity: inner.capacity,
            };
            error!(error = %e, "trigger refused");
            return Err(e);
        };
        let trigger = stored.built;
        for (b, len) in inner.brokers.iter().zip(&stored.lengths) {
            match len {
                Some(len) => b.set_pending(*len),
                None => {
                    error!(broker = %b.name, seq = stored.seq, level = %trigger.level, capacity = inner.capacity,
                        "outbox full: trigger REFUSED for this broker (delivered to the others); it gets the current level from the retained state when it is back");
                    b.update(|s| s.refused += 1);
                }
            }
        }
        inner.issued.fetch_add(1, Ordering::Relaxed);
        inner.last_seq.store(stored.seq, Ordering::Relaxed);
        info!(seq = stored.seq, level = %trigger.level, previous = %trigger.previous, zone = ?trigger.zone.as_ref().map(ZoneId::as_str), "trigger issued");
        // Published once stored, or at once while the disk is out.
        inner.book.wake.send_modify(|g| *g += 1);
        Ok(trigger)
    }

    /// The latest trigger of every scope, as the outbox kept it across a restart: the levels
    /// the controllers were last told, which the engine resumes from.
    pub fn resumed(&self) -> Vec<Trigger> {
        self.inner
            .book
            .states()
            .into_iter()
            .filter_map(|(_, payload)| {
                firebreak_protocols::message::decode::<Trigger>(&payload).ok()
            })
            .collect()
    }

    /// The faults raised now (the `outbox`, a broker's configuration).
    pub fn faults(&self) -> Vec<Fault> {
        self.inner.faults.list()
    }

    /// A snapshot of every broker's figures.
    pub fn stats(&self) -> DeliveryStats {
        let inner = &self.inner;
        let last = inner.last_seq.load(Ordering::Relaxed);
        let w = &inner.writer;
        let busy = w.busy_since_ms.load(Ordering::Relaxed);
        let last_commit = w.last_commit_ms.load(Ordering::Relaxed);
        let outbox = OutboxStats {
            state: if inner.memory_only {
                "memory-only"
            } else if inner.faults.is_raised(fault::OUTBOX, None) {
                "failing"
            } else {
                "ok"
            },
            path: inner.store_path.clone(),
            commits: w.commits.load(Ordering::Relaxed),
            failures: w.failures.load(Ordering::Relaxed),
            rewrites: w.rewrites.load(Ordering::Relaxed),
            largest_batch: w.largest_batch.load(Ordering::Relaxed),
            last_commit_ms: (last_commit != 0).then_some(last_commit),
            committed_seq: Some(w.committed_seq.load(Ordering::Relaxed)).filter(|s| *s != 0),
            writing_ms: (busy != 0).then(|| crate::acquire::now_ms().saturating_sub(busy)),
        };
        DeliveryStats {
            outbox,
            faults: inner.faults.list(),
            issued: self.inner.issued.load(Ordering::Relaxed),
            refused: self.inner.refused.load(Ordering::Relaxed),
            last_seq: (last != 0).then_some(last),
            brokers: self
                .inner
                .brokers
                .iter()
                .map(|b| b.stats.lock().map(|s| s.clone()).unwrap_or_default())
                .collect(),
        }
    }

    /// Sets the devices and channels under maintenance the status lists (at most
    /// [`firebreak_protocols::message::MAX_MAINTENANCE`]); a change publishes the status again
    /// at once on every broker.
    pub fn set_maintenance(&self, notes: Vec<firebreak_protocols::MaintenanceNote>) {
        self.inner.faults.set_maintenance(notes);
    }

    /// Sets the device counts the status heartbeat reports.
    pub fn set_devices(&self, healthy: u16, total: u16) {
        self.inner.devices.store(
            (u32::from(healthy.min(total)) << 16) | u32::from(total),
            Ordering::Relaxed,
        );
    }

    /// The public half of the signing key (what controllers trust).
    pub fn public_key(&self) -> PublicKey {
        self.inner.key.public()
    }
}

impl Inner {
    fn store_trigger(
        &self,
        draft: TriggerDraft,
    ) -> Result<Option<book::Issued<Trigger>>, DeliverError> {
        if draft.reasons.len() > MAX_REASONS {
            return Err(DeliverError::InvalidDraft(format!(
                "{} reasons, more than {MAX_REASONS}",
                draft.reasons.len()
            )));
        }
        let state_topic = match &draft.zone {
            Some(z) => topic::zone_state(&self.site, z),
            None => topic::site_state(&self.site),
        }
        .to_string();
        self.book.issue(|seq| {
            let mut t = Trigger::new(
                self.gateway.clone(),
                seq,
                draft.incident.clone(),
                self.site.clone(),
                draft.zone.clone(),
                draft.level,
                draft.previous,
                draft.issued_at_ms,
            )
            .map_err(|e| DeliverError::InvalidDraft(e.to_string()))?;
            for r in &draft.reasons {
                t.push_reason(r.clone())
                    .map_err(|e| DeliverError::InvalidDraft(e.to_string()))?;
            }
            t.seconds_to_power_loss = draft.seconds_to_power_loss;
            t.epoch = Some(self.epoch);
            let canonical =
                encode_vec(&t).map_err(|e| DeliverError::InvalidDraft(e.to_string()))?;
            let signature = self.key.sign(&canonical);
            let payload = signed_vec(&canonical, &signature)
                .map_err(|e| DeliverError::InvalidDraft(e.to_string()))?;
            t.signature = Some(signature);
            Ok::<_, DeliverError>((t, state_topic.clone(), payload))
        })
    }
}
