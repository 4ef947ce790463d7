//! One broker's task: its own connection, its own outbox, its own pace.
//!
//! Per connection, one task owns `EventLoop::poll()` and forwards what matters (ConnAck,
//! the packet id given to each publish, PubAck, errors) to this task, which decides what to
//! publish. A connection is never reused after an error: the broker's state in rumqttc is
//! dropped with it, and the outbox on disk is the truth from which the next connection
//! re-sends every waiting trigger in `seq` order. A broker whose TLS files or password cannot
//! be read is reported (the `broker-config` fault) and tried again; its outbox fills meanwhile.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use firebreak_protocols::message::encode_vec;
use firebreak_protocols::signed::signed_vec;
use firebreak_protocols::{GatewayId, GatewayStatus, Presence, SiteId};
use rumqttc::{
    AsyncClient, ConnectionError, Event, LastWill, Outgoing, Packet, QoS, SubscribeReasonCode,
};
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{debug, error, info, warn};

use super::book::Book;
use super::fault::{BROKER_CONFIG, Faults};
use super::link::Link;
use super::{BrokerStats, DeliveryOptions};
use crate::acquire::now_ms;
use crate::config::BrokerConfig;
use crate::keys::SigningKey;

/// What the delivery handle shares with one broker's task.
#[derive(Debug)]
pub(crate) struct BrokerShared {
    pub(crate) name: String,
    /// Its index in the book.
    pub(crate) index: usize,
    pub(crate) url: String,
    pub(crate) stats: Mutex<BrokerStats>,
}

impl BrokerShared {
    pub(crate) fn update(&self, f: impl FnOnce(&mut BrokerStats)) {
        if let Ok(mut s) = self.stats.lock() {
            f(&mut s);
        }
    }

    /// Records the outbox length and reports crossing the warning threshold.
    pub(crate) fn set_pending(&self, len: u64) {
        self.update(|s| {
            s.pending = len;
            let near = len >= u64::from(s.warn_at);
            if near && !s.near_full {
                warn!(broker = %self.name, pending = len, capacity = s.capacity, warn_at = s.warn_at, "outbox near full: the broker is not acknowledging triggers");
            } else if !near && s.near_full {
                info!(broker = %self.name, pending = len, "outbox below its warning threshold again");
            }
            s.near_full = near;
        });
    }
}

/// Everything one broker's task needs.
#[derive(Debug)]
pub(crate) struct BrokerCtx {
    pub(crate) shared: Arc<BrokerShared>,
    pub(crate) config: BrokerConfig,
    /// `None` until its TLS files and password could be read.
    pub(crate) link: Option<Link>,
    pub(crate) book: Arc<Book>,
    pub(crate) faults: Arc<Faults>,
    pub(crate) faults_changed: watch::Receiver<u64>,
    pub(crate) site: SiteId,
    pub(crate) gateway: GatewayId,
    pub(crate) triggers_topic: String,
    pub(crate) status_topic: String,
    pub(crate) wake: watch::Receiver<u64>,
    pub(crate) shutdown: watch::Receiver<bool>,
    pub(crate) devices: Arc<AtomicU32>,
    pub(crate) options: DeliveryOptions,
    /// Signs the statuses (and the will) as it signs triggers.
    pub(crate) key: Arc<SigningKey>,
    /// This start's boot epoch.
    pub(crate) epoch: u64,
    /// Connections made since the start, over every broker: numbers each connection.
    pub(crate) sessions: Arc<AtomicU64>,
    /// The gateway's drill topic: drills are published there, and the connection subscribes
    /// to it to time each drill's round trip.
    pub(crate) drill_topic: String,
    /// Drills to publish on this broker (`firebreak drill`).
    pub(crate) drills: mpsc::Receiver<DrillJob>,
}

/// One drill for one broker: its signed payload, and where to say how it went (the round
/// trip from the moment the task took it to the broker sending it back, or why not).
#[derive(Debug)]
pub(crate) struct DrillJob {
    pub(crate) payload: Arc<[u8]>,
    pub(crate) reply: oneshot::Sender<Result<Duration, String>>,
}

/// A drill published on this connection, waiting for its echo.
#[derive(Debug)]
struct PendingDrill {
    payload: Arc<[u8]>,
    started: tokio::time::Instant,
    reply: oneshot::Sender<Result<Duration, String>>,
}

enum Ended {
    Shutdown,
    Lost { was_up: bool, reason: String },
}

#[derive(Debug, Clone)]
enum Item {
    /// A part of a trigger: its publish on the triggers topic or on its state topic.
    Trigger {
        seq: u64,
        topic: String,
        retain: bool,
        payload: Arc<[u8]>,
    },
    /// A re-publication of the latest trigger of a state topic, after a (re)connect.
    State { topic: String, payload: Arc<[u8]> },
    /// The gateway's status.
    Status { payload: Vec<u8> },
    /// A drill, on the drill topic (never retained, never in the outbox).
    Drill { payload: Arc<[u8]> },
}

#[derive(Default)]
struct Session {
    /// This connection's number (the status's `session`).
    number: u64,
    /// The last status's `beat` on this connection.
    beat: u64,
    connected: bool,
    queue: VecDeque<Item>,
    /// Handed to rumqttc, waiting for the packet id it gives them.
    sent: VecDeque<Item>,
    /// By packet id, waiting for the broker's PubAck.
    inflight: HashMap<u16, Item>,
    /// Parts of each loaded trigger not yet acknowledged.
    outstanding: BTreeMap<u64, u8>,
    last_loaded: Option<u64>,
    wake_closed: bool,
    /// The drill waiting for its echo.
    drill: Option<PendingDrill>,
    /// Why this connection cannot time a drill (its subscription to the drill topic was
    /// refused), once the broker said so.
    drill_refused: Option<String>,
    drills_closed: bool,
}

/// Runs one broker's delivery until shutdown.
pub(crate) async fn run(mut ctx: BrokerCtx) {
    let mut failures: u32 = 0;
    loop {
        if *ctx.shutdown.borrow() {
            return;
        }
        if ctx.link.is_none() {
            match Link::prepare(&ctx.config) {
                Ok(link) => {
                    if ctx.faults.clear(BROKER_CONFIG, Some(&ctx.shared.name)) {
                        info!(broker = %ctx.shared.name, "broker settings readable again");
                    }
                    ctx.link = Some(link);
                }
                Err(e) => {
                    if ctx
                        .faults
                        .raise(BROKER_CONFIG, Some(&ctx.shared.name), e.to_string())
                    {
                        error!(broker = %ctx.shared.name, error = %e, retry_s = ctx.options.link_retry.as_secs_f64(), "broker cannot be used: its triggers wait in its outbox; the other brokers are not affected; tried again");
                    }
                    ctx.shared.update(|s| {
                        s.connected = false;
                        s.last_error = Some(e.to_string());
                    });
                    tokio::select! {
                        _ = tokio::time::sleep(ctx.options.link_retry) => continue,
                        _ = ctx.shutdown.changed() => return,
                    }
                }
            }
        }
        match connection(&mut ctx).await {
            Ended::Shutdown => return,
            Ended::Lost { was_up, reason } => {
                if was_up || failures == 0 {
                    warn!(broker = %ctx.shared.name, url = %ctx.shared.url, error = %reason, "broker link lost; triggers wait in its outbox");
                } else {
                    debug!(broker = %ctx.shared.name, error = %reason, "broker still unreachable");
                }
                ctx.shared.update(|s| {
                    s.connected = false;
                    s.connection_errors += 1;
                    s.last_error = Some(reason);
                });
                failures = if was_up {
                    1
                } else {
                    failures.saturating_add(1)
                };
            }
        }
        let base = Duration::from_millis(100u64.saturating_mul(1 << failures.min(8)));
        let backoff = base
            .min(ctx.options.max_backoff)
            .mul_f64(0.8 + 0.4 * fastrand::f64());
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = ctx.shutdown.changed() => return,
        }
    }
}

/// The signed status of connection `session`, its `beat`-th: see `docs/contract.md`.
fn status_payload(ctx: &BrokerCtx, state: Presence, session: u64, beat: u64) -> Vec<u8> {
    let d = ctx.devices.load(Ordering::Relaxed);
    let (healthy, total) = ((d >> 16) as u16, (d & 0xFFFF) as u16);
    let mut status = GatewayStatus::new(
        ctx.gateway.clone(),
        ctx.site.clone(),
        state,
        env!("CARGO_PKG_VERSION"),
        healthy.min(total),
        total,
        now_ms(),
    );
    if state == Presence::Online {
        for f in ctx.faults.list() {
            status.push_fault(f.kind);
        }
        for m in ctx.faults.maintenance() {
            // The gateway keeps at most as many as a status lists.
            let _ = status.maintenance.push(m);
        }
    }
    status.epoch = Some(ctx.epoch);
    status.session = Some(session);
    status.beat = Some(beat);
    status.heartbeat_s = Some(ctx.options.heartbeat.as_secs().max(1) as u32);
    let signed = encode_vec(&status).and_then(|canonical| {
        let signature = ctx.key.sign(&canonical);
        signed_vec(&canonical, &signature)
    });
    signed.unwrap_or_else(|e| {
        error!(broker = %ctx.shared.name, error = %e, "the status cannot be encoded; sent unsigned");
        encode_vec(&status).unwrap_or_default()
    })
}

/// The next status of this connection (an online heartbeat, or the offline at a clean stop).
fn next_status(ctx: &BrokerCtx, s: &mut Session, state: Presence) -> Item {
    s.beat += 1;
    Item::Status {
        payload: status_payload(ctx, state, s.number, s.beat),
    }
}

async fn connection(ctx: &mut BrokerCtx) -> Ended {
    let client_id = super::link::deliver_client_id(ctx.gateway.as_str(), &ctx.config.name);
    let Some(link) = &ctx.link else {
        return Ended::Lost {
            was_up: false,
            reason: "the broker's settings cannot be read".into(),
        };
    };
    let mut options = link.options(&client_id, ctx.options.keep_alive);
    let mut s = Session {
        number: ctx.sessions.fetch_add(1, Ordering::Relaxed) + 1,
        ..Session::default()
    };
    // The will is signed now, for this connection: beat 0, like the online status at connect.
    options.set_last_will(LastWill::new(
        ctx.status_topic.clone(),
        status_payload(ctx, Presence::Offline, s.number, 0),
        QoS::AtLeastOnce,
        true,
    ));
    // Room for a full window, a status and the disconnect: try_publish never finds it full.
    let (client, mut eventloop) = AsyncClient::new(options, ctx.options.window * 2 + 8);
    let (tx, mut events) = mpsc::channel::<Result<Event, ConnectionError>>(64);
    let poller = tokio::spawn(async move {
        loop {
            let event = eventloop.poll().await;
            let stop = event.is_err();
            let forward = match &event {
                Ok(Event::Incoming(
                    Packet::ConnAck(_) | Packet::PubAck(_) | Packet::Publish(_) | Packet::SubAck(_),
                )) => true,
                Ok(Event::Outgoing(Outgoing::Publish(_))) => true,
                Ok(_) => false,
                Err(_) => true,
            };
            if (forward && tx.send(event).await.is_err()) || stop {
                return;
            }
        }
    });
    let _poller = AbortOnDrop(poller);
    let mut heartbeat = tokio::time::interval(ctx.options.heartbeat);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    heartbeat.reset();
    loop {
        tokio::select! {
            event = events.recv() => {
                let Some(event) = event else {
                    return Ended::Lost { was_up: s.connected, reason: "the MQTT event loop stopped".into() };
                };
                let mut done = Vec::new();
                if let Err(reason) = handle(ctx, &client, &mut s, event, &mut done) {
                    return Ended::Lost { was_up: s.connected, reason };
                }
                // Take whatever else is ready, so acknowledgements are removed in one batch.
                while let Ok(event) = events.try_recv() {
                    if let Err(reason) = handle(ctx, &client, &mut s, event, &mut done) {
                        remove(ctx, done);
                        return Ended::Lost { was_up: s.connected, reason };
                    }
                }
                remove(ctx, done);
                load(ctx, &mut s);
                fill(ctx, &client, &mut s);
            }
            // The sender lives in `ctx.faults`: this never fails.
            _ = ctx.faults_changed.changed(), if s.connected => {
                // The status says the faults and the maintenance: published again at once when
                // they change.
                s.queue.retain(|i| !matches!(i, Item::Status { .. }));
                let status = next_status(ctx, &mut s, Presence::Online);
                s.queue.push_front(status);
                fill(ctx, &client, &mut s);
            }
            changed = ctx.wake.changed(), if s.connected && !s.wake_closed => {
                if changed.is_err() {
                    s.wake_closed = true;
                }
                load(ctx, &mut s);
                fill(ctx, &client, &mut s);
            }
            job = ctx.drills.recv(), if !s.drills_closed => {
                match job {
                    None => s.drills_closed = true,
                    Some(job) => drill(ctx, &client, &mut s, job),
                }
            }
            _ = heartbeat.tick(), if s.connected => {
                // One status waiting is enough: a stalled broker does not grow the queue.
                if !s.queue.iter().any(|i| matches!(i, Item::Status { .. })) {
                    let status = next_status(ctx, &mut s, Presence::Online);
                    s.queue.push_front(status);
                }
                fill(ctx, &client, &mut s);
            }
            _ = ctx.shutdown.changed() => {
                if s.connected {
                    goodbye(ctx, &client, &mut s, &mut events).await;
                }
                return Ended::Shutdown;
            }
        }
    }
}

fn handle(
    ctx: &BrokerCtx,
    client: &AsyncClient,
    s: &mut Session,
    event: Result<Event, ConnectionError>,
    done: &mut Vec<u64>,
) -> Result<(), String> {
    match event.map_err(|e| e.to_string())? {
        Event::Incoming(Packet::ConnAck(ack)) => {
            if ack.code != rumqttc::ConnectReturnCode::Success {
                return Err(format!("the broker refused the connection: {:?}", ack.code));
            }
            s.connected = true;
            info!(broker = %ctx.shared.name, url = %ctx.shared.url, "broker connected");
            ctx.shared.update(|st| {
                st.connected = true;
                st.connects += 1;
            });
            s.queue.push_back(Item::Status {
                payload: status_payload(ctx, Presence::Online, s.number, 0),
            });
            // The retained state of every scope, in case the broker lost it (a restart
            // without persistence); then every waiting trigger, in seq order.
            for (topic, payload) in ctx.book.states() {
                s.queue.push_back(Item::State { topic, payload });
            }
            // Its own drills come back to it: that is how a drill's round trip is timed.
            if let Err(e) = client.try_subscribe(ctx.drill_topic.clone(), QoS::AtMostOnce) {
                debug!(broker = %ctx.shared.name, error = %e, "cannot subscribe to the drill topic");
            }
            fill(ctx, client, s);
        }
        Event::Incoming(Packet::SubAck(ack))
            if ack
                .return_codes
                .iter()
                .any(|c| matches!(c, SubscribeReasonCode::Failure)) =>
        {
            let why = format!(
                "the broker refused this gateway's subscription to {} (its ACL): a drill cannot be timed there",
                ctx.drill_topic
            );
            warn!(broker = %ctx.shared.name, "{why}");
            if let Some(d) = s.drill.take() {
                let _ = d.reply.send(Err(why.clone()));
            }
            s.drill_refused = Some(why);
        }
        Event::Incoming(Packet::Publish(p)) => {
            if p.topic == ctx.drill_topic
                && s.drill
                    .as_ref()
                    .is_some_and(|d| d.payload.as_ref() == p.payload.as_ref())
                && let Some(d) = s.drill.take()
            {
                let round_trip = d.started.elapsed();
                debug!(broker = %ctx.shared.name, ms = round_trip.as_secs_f64() * 1000.0, "drill came back");
                let _ = d.reply.send(Ok(round_trip));
            }
        }
        Event::Outgoing(Outgoing::Publish(pkid)) => {
            if let Some(item) = s.sent.pop_front() {
                s.inflight.insert(pkid, item);
            }
        }
        Event::Incoming(Packet::PubAck(ack)) => match s.inflight.remove(&ack.pkid) {
            Some(Item::Trigger { seq, .. }) => {
                if let Some(left) = s.outstanding.get_mut(&seq) {
                    *left = left.saturating_sub(1);
                    if *left == 0 {
                        s.outstanding.remove(&seq);
                        done.push(seq);
                    }
                }
            }
            Some(_) => {}
            None => {
                debug!(broker = %ctx.shared.name, pkid = ack.pkid, "PubAck for no publish of ours")
            }
        },
        _ => {}
    }
    Ok(())
}

/// Queues waiting triggers from the outbox, in seq order, while the queue is short.
fn load(ctx: &BrokerCtx, s: &mut Session) {
    if !s.connected || s.queue.len() >= ctx.options.window {
        return;
    }
    let pending = ctx
        .book
        .publishable(ctx.shared.index, s.last_loaded, ctx.options.window * 4);
    for p in pending {
        let payload = p.payload;
        // Only the latest trigger of a scope goes to its retained state topic, so a late
        // re-send never puts an older level back.
        let latest = ctx.book.state_seq(&p.state_topic) == Some(p.seq);
        s.queue.push_back(Item::Trigger {
            seq: p.seq,
            topic: ctx.triggers_topic.clone(),
            retain: false,
            payload: payload.clone(),
        });
        if latest {
            s.queue.push_back(Item::Trigger {
                seq: p.seq,
                topic: p.state_topic.to_string(),
                retain: true,
                payload,
            });
        }
        s.outstanding.insert(p.seq, if latest { 2 } else { 1 });
        s.last_loaded = Some(p.seq);
    }
}

/// Publishes queued items while the window has room.
fn fill(ctx: &BrokerCtx, client: &AsyncClient, s: &mut Session) {
    while s.connected && s.sent.len() + s.inflight.len() < ctx.options.window {
        let Some(item) = s.queue.pop_front() else {
            return;
        };
        let (topic, retain, payload): (&str, bool, Vec<u8>) = match &item {
            Item::Trigger {
                topic,
                retain,
                payload,
                ..
            } => (topic, *retain, payload.to_vec()),
            Item::State { topic, payload } => (topic, true, payload.to_vec()),
            Item::Status { payload } => (&ctx.status_topic, true, payload.clone()),
            Item::Drill { payload } => (&ctx.drill_topic, false, payload.to_vec()),
        };
        match client.try_publish(topic, QoS::AtLeastOnce, retain, payload) {
            Ok(()) => {
                if let Item::Trigger {
                    seq, retain: false, ..
                } = &item
                {
                    debug!(broker = %ctx.shared.name, seq, "trigger published");
                    ctx.shared.update(|st| st.published += 1);
                }
                s.sent.push_back(item);
            }
            Err(e) => {
                debug!(broker = %ctx.shared.name, error = %e, "publish deferred");
                s.queue.push_front(item);
                return;
            }
        }
    }
}

/// Takes a drill: queued behind whatever waits (a drill never delays a trigger), timed from
/// now until the broker sends it back on this connection's subscription.
fn drill(ctx: &BrokerCtx, client: &AsyncClient, s: &mut Session, job: DrillJob) {
    if !s.connected {
        let why = ctx
            .shared
            .stats
            .lock()
            .ok()
            .and_then(|st| st.last_error.clone())
            .map_or_else(
                || "not connected to the broker".to_string(),
                |e| format!("not connected to the broker: {e}"),
            );
        let _ = job.reply.send(Err(why));
        return;
    }
    if let Some(why) = &s.drill_refused {
        let _ = job.reply.send(Err(why.clone()));
        return;
    }
    if s.drill.as_ref().is_some_and(|d| !d.reply.is_closed()) {
        let _ = job.reply.send(Err("a drill is already under way".into()));
        return;
    }
    s.queue.push_back(Item::Drill {
        payload: job.payload.clone(),
    });
    s.drill = Some(PendingDrill {
        payload: job.payload,
        started: tokio::time::Instant::now(),
        reply: job.reply,
    });
    fill(ctx, client, s);
}

/// Removes acknowledged triggers from the outbox (in memory at once; the writer stores the
/// removal with its next commit).
fn remove(ctx: &BrokerCtx, done: Vec<u64>) {
    if done.is_empty() {
        return;
    }
    let count = done.len() as u64;
    let last = done.last().copied();
    let len = ctx.book.ack(ctx.shared.index, done);
    debug!(broker = %ctx.shared.name, count, last_seq = ?last, pending = len, "acknowledged");
    ctx.shared.update(|st| {
        st.delivered += count;
        st.last_delivered_seq = last.or(st.last_delivered_seq);
    });
    ctx.shared.set_pending(len);
}

/// A clean stop: `offline` status (the will is not sent on a clean disconnect), acknowledged
/// within the grace period, then DISCONNECT.
async fn goodbye(
    ctx: &BrokerCtx,
    client: &AsyncClient,
    s: &mut Session,
    events: &mut mpsc::Receiver<Result<Event, ConnectionError>>,
) {
    s.beat += 1;
    let payload = status_payload(ctx, Presence::Offline, s.number, s.beat);
    if client
        .try_publish(&ctx.status_topic, QoS::AtLeastOnce, true, payload.clone())
        .is_ok()
    {
        s.sent.push_back(Item::Status { payload });
    }
    let deadline = tokio::time::Instant::now() + ctx.options.shutdown_grace;
    let mut done = Vec::new();
    while s
        .sent
        .iter()
        .chain(s.inflight.values())
        .any(|i| matches!(i, Item::Status { .. }))
    {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(event)) => {
                if handle(ctx, client, s, event, &mut done).is_err() {
                    break;
                }
            }
            _ => break,
        }
    }
    remove(ctx, done);
    let _ = client.try_disconnect();
    let _ = tokio::time::timeout(Duration::from_millis(500), async {
        while let Some(Ok(_)) = events.recv().await {}
    })
    .await;
    ctx.shared.update(|st| st.connected = false);
    info!(broker = %ctx.shared.name, "broker disconnected (offline status sent)");
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
