//! The writer task: the only one that touches the disk. It commits every change queued since
//! its last commit in one transaction (group commit), off the async threads, then lets the
//! brokers publish what it stored. A commit that fails or hangs raises the `outbox` fault and
//! lets the brokers publish from memory; the next one that succeeds clears it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tracing::{debug, error, info, warn};

use super::book::{Book, Op};
use super::fault::{Faults, OUTBOX};
use super::outbox::Store;
use crate::acquire::now_ms;

/// How the writer is asked to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    Run,
    /// Commit what is queued, store the counter, stop.
    Clean,
    /// Stop after the commit under way, as a crash would.
    Crash,
}

/// The writer's figures, for `/metrics` and `/status`.
#[derive(Debug, Default)]
pub(crate) struct WriterStats {
    pub(crate) commits: AtomicU64,
    pub(crate) failures: AtomicU64,
    pub(crate) rewrites: AtomicU64,
    pub(crate) largest_batch: AtomicU64,
    pub(crate) last_commit_ms: AtomicU64,
    /// Every trigger up to this `seq` is stored (0: none since start).
    pub(crate) committed_seq: AtomicU64,
    /// When the commit under way started (0: none).
    pub(crate) busy_since_ms: AtomicU64,
}

pub(crate) struct Writer {
    pub(crate) store: Arc<Store>,
    pub(crate) book: Arc<Book>,
    pub(crate) ops: mpsc::Receiver<Op>,
    pub(crate) faults: Arc<Faults>,
    pub(crate) stats: Arc<WriterStats>,
    pub(crate) stop: watch::Receiver<Stop>,
    /// A commit slower than this raises the fault (it clears when the commit completes).
    pub(crate) hang_after: Duration,
    /// Time between two tries after a failure.
    pub(crate) retry: Duration,
}

enum Job {
    Commit(super::outbox::Batch),
    Rewrite(super::outbox::Image),
    Close(u64),
}

impl Writer {
    pub(crate) async fn run(mut self) {
        loop {
            let mut ops = Vec::new();
            let stop = *self.stop.borrow();
            match stop {
                Stop::Crash => return,
                Stop::Clean => {}
                Stop::Run if self.book.rewrite_asked() => {}
                Stop::Run => {
                    tokio::select! {
                        op = self.ops.recv() => match op {
                            Some(op) => ops.push(op),
                            None => return,
                        },
                        _ = self.book.wake_writer.notified() => {}
                        changed = self.stop.changed() => {
                            // The tasks' handle was dropped without a stop: as a crash.
                            if changed.is_err() {
                                return;
                            }
                            continue;
                        }
                    }
                }
            }
            while let Ok(op) = self.ops.try_recv() {
                ops.push(op);
            }
            let job = if self.book.take_rewrite() {
                Job::Rewrite(self.book.image(&mut self.ops))
            } else if ops.is_empty() {
                if stop == Stop::Clean {
                    Job::Close(self.book.next_seq())
                } else {
                    continue;
                }
            } else {
                Job::Commit(self.book.batch(ops))
            };
            let closing = matches!(job, Job::Close(_));
            let ok = self.apply(job).await;
            if !ok {
                // Whatever the failed transaction held is lost: the next try rewrites the
                // whole book.
                self.book.ask_rewrite();
                if stop == Stop::Clean {
                    warn!("outbox: the last changes could not be stored before stopping");
                    return;
                }
                tokio::select! {
                    _ = tokio::time::sleep(self.retry) => {}
                    changed = self.stop.changed() => {
                        if changed.is_err() {
                            return;
                        }
                    }
                }
            } else if closing {
                return;
            }
        }
    }

    /// Runs one job off the async threads; true when it was committed.
    async fn apply(&mut self, job: Job) -> bool {
        let (kind, size, top) = match &job {
            Job::Commit(b) => (
                "commit",
                (b.issued.len() + b.acked.len()) as u64,
                b.issued.iter().map(|(p, _)| p.seq).max().unwrap_or(0),
            ),
            Job::Rewrite(i) => (
                "rewrite",
                i.brokers.iter().map(|(_, p)| p.len() as u64).sum(),
                i.next_seq.saturating_sub(1),
            ),
            Job::Close(_) => ("close", 0, 0),
        };
        let store = self.store.clone();
        let started = now_ms();
        self.stats.busy_since_ms.store(started, Ordering::Relaxed);
        let mut task = tokio::task::spawn_blocking(move || match &job {
            Job::Commit(b) => store.commit(b),
            Job::Rewrite(i) => store.rewrite(i),
            Job::Close(next) => store.close(*next),
        });
        let mut hung = false;
        let result = loop {
            tokio::select! {
                r = &mut task => break r,
                _ = tokio::time::sleep(self.hang_after), if !hung => {
                    hung = true;
                    let detail = format!(
                        "a write has not completed for {} ms: the disk hangs; triggers are delivered from memory and not stored",
                        self.hang_after.as_millis()
                    );
                    error!(store = %self.store.path().display(), "outbox {detail}");
                    self.faults.raise(OUTBOX, None, detail);
                    self.book.set_from_memory(true);
                }
            }
        };
        self.stats.busy_since_ms.store(0, Ordering::Relaxed);
        let error = match result {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(e) => Some(format!("the write task failed: {e}")),
        };
        match error {
            None => {
                let s = &self.stats;
                s.commits.fetch_add(1, Ordering::Relaxed);
                s.largest_batch.fetch_max(size, Ordering::Relaxed);
                s.last_commit_ms.store(now_ms(), Ordering::Relaxed);
                s.committed_seq.fetch_max(top, Ordering::Relaxed);
                self.book.stored(top);
                self.book.set_from_memory(false);
                if kind == "rewrite" {
                    s.rewrites.fetch_add(1, Ordering::Relaxed);
                }
                debug!(
                    kind,
                    size,
                    ms = now_ms().saturating_sub(started),
                    "outbox committed"
                );
                if self.faults.clear(OUTBOX, None) {
                    info!(store = %self.store.path().display(), "outbox writable again: every waiting trigger is stored; fault cleared");
                }
                true
            }
            Some(problem) => {
                self.stats.failures.fetch_add(1, Ordering::Relaxed);
                self.book.set_from_memory(true);
                let detail = format!(
                    "cannot write: {problem}; triggers are delivered from memory and not stored"
                );
                if self.faults.raise(OUTBOX, None, detail.clone()) {
                    error!(kind, "outbox {detail}");
                } else {
                    debug!(kind, error = %problem, "outbox still failing");
                }
                false
            }
        }
    }
}
