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
//! // one task per broker. Fails with `NotConfigured` when the site has no [[brokers]].
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
//! // `trigger` carries its seq and signature; it is on disk for every broker, and each
//! // broker's task publishes it as soon as its connection allows.
//!
//! delivery.set_devices(11, 12); // for the heartbeat status
//! let _stats = delivery.stats(); // for /metrics and /status
//! tasks.shutdown().await; // on SIGTERM: `offline` status, then DISCONNECT
//! # let _ = trigger; Ok(()) }
//! ```
//!
//! - [`Delivery::start`]`(&SiteConfig, DeliveryOptions) -> Result<(Delivery, DeliveryTasks), DeliverError>`
//! - [`Delivery::issue`]`(&self, TriggerDraft) -> Result<Trigger, DeliverError>`: assigns the
//!   next per-gateway `seq`, builds and signs the trigger, and writes it to the outbox of every
//!   broker in **one fsync'd transaction**, before anything is published. It returns once the
//!   trigger is on disk; delivery then proceeds per broker. `Delivery` is `Clone`.
//! - [`Delivery::stats`]`(&self) -> DeliveryStats`: a snapshot per broker (connected, pending,
//!   near full, delivered, refused…), with [`DeliveryStats::prometheus`] for `/metrics`.
//! - [`Delivery::set_devices`]`(&self, healthy, total)`: what the status heartbeat reports.
//!
//! # Guarantees
//!
//! - **Durable before published.** A trigger is published only after it is committed to the
//!   outbox of every broker, and removed from a broker's outbox only after that broker's
//!   PUBACK for each of its publishes (QoS 1). After a broker outage, a reconnect, a restart
//!   or a `kill -9`, every waiting trigger is published again, in `seq` order, with its original
//!   `seq`, timestamps and signature (the stored bytes are re-sent as they are).
//! - **Independent brokers.** Each broker has its own task, connection and outbox table; a
//!   broker that is down or slow only fills its own outbox.
//! - **`seq`** is counted in the same transaction, so it is never reused; a new store starts at
//!   the current Unix time in milliseconds, so a gateway whose store was lost still counts up
//!   from where controllers last saw it.
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
//! The store is redb; [`outbox`] says why.

mod broker;
pub mod link;
pub mod outbox;

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use firebreak_protocols::message::{MAX_REASONS, encode_vec};
use firebreak_protocols::signed::signed_vec;
use firebreak_protocols::{GatewayId, IncidentId, Level, Reason, SiteId, Trigger, ZoneId, topic};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{error, info, warn};

use crate::config::SiteConfig;
use crate::keys::{KeyError, PublicKey, SigningKey};
use broker::{BrokerCtx, BrokerShared};
pub use link::{Link, LinkError, Secret};
use outbox::{Store, StoreError};

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
}

impl Default for DeliveryOptions {
    fn default() -> Self {
        DeliveryOptions {
            heartbeat: Duration::from_secs(10),
            keep_alive: Duration::from_secs(10),
            max_backoff: Duration::from_secs(5),
            window: 32,
            shutdown_grace: Duration::from_secs(2),
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
#[derive(Debug, Clone, Default, PartialEq, Eq)]
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
    key: SigningKey,
    store: Arc<Store>,
    brokers: Vec<Arc<BrokerShared>>,
    names: Vec<String>,
    capacity: u32,
    wake: watch::Sender<u64>,
    devices: Arc<AtomicU32>,
    issued: AtomicU64,
    refused: AtomicU64,
    last_seq: AtomicU64,
}

/// The brokers' tasks. Dropping it aborts them (as a crash would: the outbox keeps what was
/// not acknowledged); [`DeliveryTasks::shutdown`] stops them cleanly.
#[derive(Debug)]
pub struct DeliveryTasks {
    tasks: JoinSet<()>,
    shutdown: watch::Sender<bool>,
    grace: Duration,
}

impl DeliveryTasks {
    /// Publishes `offline` to every connected broker, disconnects, and waits for the tasks
    /// (at most the grace period and a second).
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        let all = async { while self.tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(self.grace + Duration::from_secs(1), all)
            .await
            .is_err()
        {
            self.tasks.abort_all();
        }
    }

    /// Stops the tasks at once, as a crash would (no `offline` status: the broker publishes the
    /// will), and waits until they are gone and have let go of the outbox.
    pub async fn abort(mut self) {
        self.tasks.abort_all();
        while self.tasks.join_next().await.is_some() {}
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
        let links = config
            .brokers
            .iter()
            .map(Link::prepare)
            .collect::<Result<Vec<_>, _>>()?;
        let names: Vec<String> = config.brokers.iter().map(|b| b.name.clone()).collect();
        let (dir, capacity, first) = (
            outbox.dir.clone(),
            outbox.capacity,
            crate::acquire::now_ms(),
        );
        let open_names = names.clone();
        let store =
            tokio::task::spawn_blocking(move || Store::open(&dir, &open_names, capacity, first))
                .await
                .map_err(|e| DeliverError::Task(e.to_string()))??;
        for (name, count) in store.orphans(&names)? {
            if count > 0 {
                warn!(broker = %name, pending = count, store = %store.path().display(), "outbox of a broker no longer configured still holds triggers; they are not delivered");
            }
        }
        let store = Arc::new(store);
        let (wake, _) = watch::channel(0u64);
        let (shutdown, _) = watch::channel(false);
        let devices = Arc::new(AtomicU32::new(
            u32::try_from(config.devices.len() + config.mqtt_sources.len())
                .unwrap_or(0)
                .min(0xFFFF),
        ));
        let mut brokers = Vec::new();
        let mut tasks = JoinSet::new();
        for link in links {
            let name = link.broker.name.clone();
            let url = link.broker.url();
            let shared = Arc::new(BrokerShared {
                name: name.clone(),
                link,
                stats: Mutex::new(BrokerStats {
                    name: name.clone(),
                    url,
                    capacity: outbox.capacity,
                    warn_at: outbox.warn_at,
                    ..BrokerStats::default()
                }),
            });
            shared.set_pending(store.len(&name)?);
            tasks.spawn(broker::run(BrokerCtx {
                shared: shared.clone(),
                store: store.clone(),
                site: config.site.clone(),
                gateway: config.gateway.clone(),
                triggers_topic: topic::triggers(&config.site).to_string(),
                status_topic: topic::gateway_status(&config.site, &config.gateway).to_string(),
                wake: wake.subscribe(),
                shutdown: shutdown.subscribe(),
                devices: devices.clone(),
                options: options.clone(),
            }));
            brokers.push(shared);
        }
        info!(
            gateway = %config.gateway,
            key_id = %key.key_id(),
            brokers = names.len(),
            outbox = %store.path().display(),
            next_seq = store.next_seq()?,
            "delivery started"
        );
        let delivery = Delivery {
            inner: Arc::new(Inner {
                site: config.site.clone(),
                gateway: config.gateway.clone(),
                key,
                store,
                brokers,
                names,
                capacity: outbox.capacity,
                wake,
                devices,
                issued: AtomicU64::new(0),
                refused: AtomicU64::new(0),
                last_seq: AtomicU64::new(0),
            }),
        };
        Ok((
            delivery,
            DeliveryTasks {
                tasks,
                shutdown,
                grace: options.shutdown_grace,
            },
        ))
    }

    /// Gives the draft the next `seq`, signs it, and stores it durably for every broker before
    /// any is published; returns the signed trigger. See the module docs for what happens when
    /// outboxes are full.
    pub async fn issue(&self, draft: TriggerDraft) -> Result<Trigger, DeliverError> {
        let inner = self.inner.clone();
        let stored = tokio::task::spawn_blocking(move || inner.store_trigger(draft))
            .await
            .map_err(|e| DeliverError::Task(e.to_string()))??;
        let inner = &self.inner;
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
        inner.wake.send_replace(stored.seq);
        Ok(trigger)
    }

    /// A snapshot of every broker's figures.
    pub fn stats(&self) -> DeliveryStats {
        let last = self.inner.last_seq.load(Ordering::Relaxed);
        DeliveryStats {
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
    ) -> Result<Option<outbox::Stored<Trigger>>, DeliverError> {
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
        self.store.issue(&self.names, |seq| {
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
            let canonical =
                encode_vec(&t).map_err(|e| DeliverError::InvalidDraft(e.to_string()))?;
            let signature = self.key.sign(&canonical);
            let payload = signed_vec(&canonical, &signature)
                .map_err(|e| DeliverError::InvalidDraft(e.to_string()))?;
            t.signature = Some(signature);
            Ok::<_, DeliverError>((t, state_topic.clone(), payload))
        })?
    }
}
