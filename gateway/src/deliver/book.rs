//! The in-memory outbox: what the broker tasks publish from, and what the writer mirrors to
//! disk.
//!
//! Every change (a trigger issued, triggers acknowledged) is made here under one lock and, in
//! the same critical section, queued for the writer on a bounded channel, so the writer sees
//! the changes in the order they were made. When that queue is full (the disk is hung) the
//! change is not queued; the book asks the writer for a **rewrite** instead: the whole book,
//! written in one transaction once the disk answers again. Nothing here waits on the disk.
//!
//! The brokers publish a trigger once the writer has committed it ([`Book::publishable`]), so
//! a published trigger is on disk; while the `outbox` fault is raised (the disk fails or
//! hangs, or the store never opened) they publish from memory.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tokio::sync::{Notify, mpsc, watch};

use super::outbox::{Batch, Image, Loaded, Pending};

/// How many changes may wait for the writer before the book asks for a rewrite instead.
pub(crate) const WRITER_QUEUE: usize = 1024;

/// A change for the writer.
#[derive(Debug)]
pub(crate) enum Op {
    /// A trigger, and the brokers (by index) whose outbox took it.
    Issued(Pending, Vec<usize>),
    /// Triggers a broker acknowledged.
    Acked(usize, Vec<u64>),
}

/// What [`Book::issue`] did.
#[derive(Debug)]
pub(crate) struct Issued<T> {
    pub(crate) seq: u64,
    pub(crate) built: T,
    /// Per broker: its outbox length after the trigger, or `None` when it was full.
    pub(crate) lengths: Vec<Option<u64>>,
}

#[derive(Debug)]
struct State {
    next_seq: u64,
    outboxes: Vec<BTreeMap<u64, Pending>>,
    states: HashMap<String, (u64, Arc<[u8]>)>,
}

/// The in-memory outbox of every broker, the `seq` counter and the latest trigger of every
/// state topic.
#[derive(Debug)]
pub(crate) struct Book {
    state: Mutex<State>,
    names: Vec<String>,
    capacity: u64,
    /// `None` when there is no store to write to (it would not open).
    ops: Option<mpsc::Sender<Op>>,
    rewrite: AtomicBool,
    /// Wakes the writer when a rewrite is asked for.
    pub(crate) wake_writer: Notify,
    /// Every trigger up to this `seq` is stored.
    committed: AtomicU64,
    /// Publish what is not stored yet: the disk is out.
    from_memory: AtomicBool,
    /// Wakes the brokers' tasks: something new to publish.
    pub(crate) wake: watch::Sender<u64>,
}

impl Book {
    /// A book holding what the store held, writing to `ops` (or nowhere).
    pub(crate) fn new(
        names: Vec<String>,
        capacity: u32,
        loaded: Loaded,
        ops: Option<mpsc::Sender<Op>>,
    ) -> Book {
        let mut outboxes: Vec<BTreeMap<u64, Pending>> =
            names.iter().map(|_| BTreeMap::new()).collect();
        for (outbox, pending) in outboxes.iter_mut().zip(loaded.pending) {
            outbox.extend(pending.into_iter().map(|p| (p.seq, p)));
        }
        let memory_only = ops.is_none();
        Book {
            committed: AtomicU64::new(loaded.next_seq.saturating_sub(1)),
            from_memory: AtomicBool::new(memory_only),
            wake: watch::channel(0).0,
            state: Mutex::new(State {
                next_seq: loaded.next_seq.max(1),
                outboxes,
                states: loaded
                    .states
                    .into_iter()
                    .map(|(t, seq, p)| (t, (seq, p)))
                    .collect(),
            }),
            names,
            capacity: u64::from(capacity),
            ops,
            rewrite: AtomicBool::new(false),
            wake_writer: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock leaves the book consistent (every change is one
        // insert or remove), so a poisoned lock is used as it is.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn send(&self, op: Op) {
        if let Some(ops) = &self.ops
            && ops.try_send(op).is_err()
        {
            self.ask_rewrite();
        }
    }

    /// Asks the writer to rewrite the whole store from the book.
    pub(crate) fn ask_rewrite(&self) {
        if self.ops.is_some() {
            self.rewrite.store(true, Ordering::SeqCst);
            self.wake_writer.notify_one();
        }
    }

    /// Takes the rewrite request, if any.
    pub(crate) fn take_rewrite(&self) -> bool {
        self.rewrite.swap(false, Ordering::SeqCst)
    }

    /// Whether a rewrite is asked for.
    pub(crate) fn rewrite_asked(&self) -> bool {
        self.rewrite.load(Ordering::SeqCst)
    }

    /// Takes the next `seq`, builds the signed payload with `build(seq)`, and queues it for
    /// every broker whose outbox has room. `Ok(None)` (and no `seq` used) when none has.
    pub(crate) fn issue<T, E>(
        &self,
        build: impl FnOnce(u64) -> Result<(T, String, Vec<u8>), E>,
    ) -> Result<Option<Issued<T>>, E> {
        let mut st = self.lock();
        if st.outboxes.iter().all(|o| o.len() as u64 >= self.capacity) {
            return Ok(None);
        }
        let seq = st.next_seq;
        let (built, state_topic, payload) = build(seq)?;
        let pending = Pending {
            seq,
            state_topic: state_topic.as_str().into(),
            payload: payload.into(),
        };
        let mut lengths = Vec::with_capacity(st.outboxes.len());
        let mut took = Vec::new();
        for (i, outbox) in st.outboxes.iter_mut().enumerate() {
            if outbox.len() as u64 >= self.capacity {
                lengths.push(None);
                continue;
            }
            outbox.insert(seq, pending.clone());
            lengths.push(Some(outbox.len() as u64));
            took.push(i);
        }
        st.states
            .insert(state_topic, (seq, pending.payload.clone()));
        st.next_seq = seq + 1;
        self.send(Op::Issued(pending, took));
        Ok(Some(Issued {
            seq,
            built,
            lengths,
        }))
    }

    /// Whether `seq` may be published: it is stored, or the disk is out.
    fn may_publish(&self, seq: u64) -> bool {
        seq <= self.committed.load(Ordering::SeqCst) || self.from_memory.load(Ordering::SeqCst)
    }

    /// Up to `limit` triggers waiting for broker `i` with a `seq` above `after` that may be
    /// published, in order.
    pub(crate) fn publishable(&self, i: usize, after: Option<u64>, limit: usize) -> Vec<Pending> {
        let st = self.lock();
        let from = after.map_or(0, |a| a.saturating_add(1));
        st.outboxes
            .get(i)
            .map(|o| {
                o.range(from..)
                    .take_while(|(seq, _)| self.may_publish(**seq))
                    .take(limit)
                    .map(|(_, p)| p.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Everything up to `seq` is stored: wakes the brokers.
    pub(crate) fn stored(&self, seq: u64) {
        self.committed.fetch_max(seq, Ordering::SeqCst);
        self.wake.send_modify(|g| *g += 1);
    }

    /// The disk is out (true) or back (false): publish from memory, or only what is stored.
    pub(crate) fn set_from_memory(&self, on: bool) {
        if self.from_memory.swap(on, Ordering::SeqCst) != on {
            self.wake.send_modify(|g| *g += 1);
        }
    }

    /// The `seq` of the latest trigger of `topic`.
    pub(crate) fn state_seq(&self, topic: &str) -> Option<u64> {
        self.lock().states.get(topic).map(|(seq, _)| *seq)
    }

    /// The latest trigger of every state topic that may be published, in `seq` order (one not
    /// stored yet goes to its state topic with its trigger, once stored).
    pub(crate) fn states(&self) -> Vec<(String, Arc<[u8]>)> {
        let st = self.lock();
        let mut v: Vec<_> = st
            .states
            .iter()
            .filter(|(_, (seq, _))| self.may_publish(*seq))
            .map(|(t, (seq, p))| (*seq, t.clone(), p.clone()))
            .collect();
        v.sort_by_key(|(seq, _, _)| *seq);
        v.into_iter().map(|(_, t, p)| (t, p)).collect()
    }

    /// How many triggers wait for broker `i`.
    pub(crate) fn len(&self, i: usize) -> u64 {
        self.lock().outboxes.get(i).map_or(0, |o| o.len() as u64)
    }

    /// Removes triggers broker `i` acknowledged; returns its outbox's length after.
    pub(crate) fn ack(&self, i: usize, seqs: Vec<u64>) -> u64 {
        let mut st = self.lock();
        let Some(outbox) = st.outboxes.get_mut(i) else {
            return 0;
        };
        for seq in &seqs {
            outbox.remove(seq);
        }
        let len = outbox.len() as u64;
        self.send(Op::Acked(i, seqs));
        len
    }

    /// The next `seq` to give.
    pub(crate) fn next_seq(&self) -> u64 {
        self.lock().next_seq
    }

    /// Turns queued changes into one batch for the store.
    pub(crate) fn batch(&self, ops: Vec<Op>) -> Batch {
        let mut batch = Batch::default();
        for op in ops {
            match op {
                Op::Issued(p, took) => {
                    let names = took
                        .into_iter()
                        .filter_map(|i| self.names.get(i).cloned())
                        .collect();
                    batch.issued.push((p, names));
                }
                Op::Acked(i, seqs) => {
                    if let Some(name) = self.names.get(i) {
                        batch.acked.push((name.clone(), seqs));
                    }
                }
            }
        }
        batch
    }

    /// The whole book, for a rewrite. Under the lock, the changes still queued are dropped
    /// (the image holds them), so every change queued after it applies on top of it.
    pub(crate) fn image(&self, queued: &mut mpsc::Receiver<Op>) -> Image {
        let st = self.lock();
        while queued.try_recv().is_ok() {}
        Image {
            next_seq: st.next_seq,
            brokers: self
                .names
                .iter()
                .cloned()
                .zip(st.outboxes.iter().map(|o| o.values().cloned().collect()))
                .collect(),
            states: st
                .states
                .iter()
                .map(|(t, (seq, p))| (t.clone(), *seq, p.clone()))
                .collect(),
        }
    }
}
