//! The durable outbox: one redb file holding the per-gateway sequence counter, one table of
//! waiting triggers per broker, and the latest trigger of every state topic.
//!
//! **What is promised.** The store is the disk image of the in-memory outbox (`book`), kept
//! by one writer task (`writer`), the only one that touches the disk. The writer commits
//! everything queued since its last commit — new triggers, and triggers the brokers
//! acknowledged — in **one** fsync'd transaction (group commit); the brokers publish a trigger
//! once it is committed. So acquisition and the policy never wait on the disk, and while the
//! disk works every published trigger is on disk. When a commit fails or hangs, the brokers
//! publish from memory (the `outbox` fault), and the next commit that succeeds rewrites the
//! whole image from memory, so nothing is lost or re-ordered when the disk comes back.
//!
//! Why redb rather than a hand-written append-only log: a commit must land in the outbox of
//! every broker together with the counter, atomically (so a crash never leaves a trigger queued
//! for one broker and not another). redb gives exactly that — ACID transactions over several
//! tables, committed with `Durability::Immediate` (fsync before `commit` returns), checksummed
//! pages and recovery after a crash — in pure Rust, without the compaction, torn-tail and
//! checksum code a log of our own would need and would need testing for.
//!
//! Tables: `meta` (`next_seq`, and `epoch`: the boot epoch of the latest start), `state` (state topic → latest `(seq, payload)`) and one
//! `outbox/<broker>` per broker (`seq` → `(state topic, payload)`), in `seq` order.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use redb::{Database, ReadableTable, ReadableTableMetadata, TableDefinition, TableHandle};

const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const STATE: TableDefinition<&str, (u64, &[u8])> = TableDefinition::new("state");
const NEXT_SEQ: &str = "next_seq";
const EPOCH: &str = "epoch";
const OUTBOX_PREFIX: &str = "outbox/";

/// The store's file in the outbox directory.
pub const FILE_NAME: &str = "outbox.redb";

/// A store failure: the file, and what redb or the file system said.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("outbox {path}: {problem}")]
pub struct StoreError {
    /// The store's file.
    pub path: PathBuf,
    /// What went wrong.
    pub problem: String,
}

/// A trigger waiting for a broker's acknowledgement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    /// Its sequence number.
    pub seq: u64,
    /// The state topic of its scope.
    pub state_topic: Arc<str>,
    /// The signed payload.
    pub payload: Arc<[u8]>,
}

/// What a store held when opened.
#[derive(Debug, Default)]
pub struct Loaded {
    /// The first `seq` to give.
    pub next_seq: u64,
    /// This start's boot epoch (see [`boot_epoch`]), already stored.
    pub epoch: u64,
    /// Per broker (in the order given to [`Store::open`]), its waiting triggers in `seq` order.
    pub pending: Vec<Vec<Pending>>,
    /// The latest trigger of every state topic: `(topic, seq, payload)`.
    pub states: Vec<(String, u64, Arc<[u8]>)>,
    /// Outbox tables of brokers no longer configured, with their waiting counts.
    pub orphans: Vec<(String, u64)>,
}

/// One group commit: every trigger issued and every acknowledgement since the last one.
#[derive(Debug, Default)]
pub struct Batch {
    /// New triggers, each with the brokers whose outbox took it.
    pub issued: Vec<(Pending, Vec<String>)>,
    /// Acknowledged triggers, by broker.
    pub acked: Vec<(String, Vec<u64>)>,
}

/// The whole in-memory outbox, to rewrite the store with after a failed commit.
#[derive(Debug, Default)]
pub struct Image {
    /// The next `seq` to give.
    pub next_seq: u64,
    /// Every broker's waiting triggers.
    pub brokers: Vec<(String, Vec<Pending>)>,
    /// The latest trigger of every state topic.
    pub states: Vec<(String, u64, Arc<[u8]>)>,
}

/// A failure injected into the store's writes. **For tests only**: no configuration setting
/// reaches it; the gateway's own tests use it to make the disk fail or hang while it runs
/// (tests run as root, where a read-only directory does not stop writes).
#[derive(Debug, Clone, Default)]
pub struct FaultInjection(Arc<AtomicU8>);

impl FaultInjection {
    /// Every write fails.
    pub fn fail(&self) {
        self.0.store(1, Ordering::SeqCst);
    }

    /// Every write blocks until [`heal`](Self::heal) or [`fail`](Self::fail).
    pub fn hang(&self) {
        self.0.store(2, Ordering::SeqCst);
    }

    /// Writes work again.
    pub fn heal(&self) {
        self.0.store(0, Ordering::SeqCst);
    }

    fn check(&self) -> Result<(), String> {
        loop {
            match self.0.load(Ordering::SeqCst) {
                0 => return Ok(()),
                1 => return Err("injected failure: Input/output error".into()),
                _ => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }
}

/// The outbox store.
#[derive(Debug)]
pub struct Store {
    db: Database,
    path: PathBuf,
    inject: FaultInjection,
}

/// The boot epoch of a start at `now_ms` (Unix milliseconds) after a start with epoch
/// `previous`: the start time in Unix seconds, or one more than `previous` when that is not
/// later (restarts within a second, or a clock set back). So it rises with every start of one
/// store, and a new store (a replaced disk) starts above the old one as long as the clock is
/// right — like `seq`, which starts at the Unix milliseconds of the store's creation.
pub fn boot_epoch(previous: Option<u64>, now_ms: u64) -> u64 {
    let now_s = now_ms / 1000;
    previous.map_or(now_s, |p| now_s.max(p.saturating_add(1)))
}

fn outbox_table(broker: &str) -> String {
    format!("{OUTBOX_PREFIX}{broker}")
}

fn outbox_def(name: &str) -> TableDefinition<'_, u64, (&'static str, &'static [u8])> {
    TableDefinition::new(name)
}

impl Store {
    /// Opens (or creates) the store in `dir`, with a table for each broker, and reads what it
    /// holds. A new store starts its `seq` at
    /// `first_seq` (the gateway passes the current Unix time in milliseconds, so a gateway
    /// whose store was lost still counts up from where controllers last saw it).
    pub fn open(
        dir: &Path,
        brokers: &[String],
        first_seq: u64,
        inject: FaultInjection,
    ) -> Result<(Store, Loaded), StoreError> {
        let path = dir.join(FILE_NAME);
        let err = |problem: String| StoreError {
            path: path.clone(),
            problem,
        };
        // The gateway's alone: 0700, tightened when it was made looser (said in the log).
        if let Some(was) = crate::secrets::private_dir(dir).map_err(&err)? {
            tracing::warn!(
                dir = %dir.display(),
                "the outbox directory was mode {was:04o}: made 0700, the gateway's alone"
            );
        }
        inject.check().map_err(&err)?;
        let db = Database::builder()
            .set_check_integrity_on_open(true)
            .create(&path)
            .map_err(|e| err(e.to_string()))?;
        let store = Store {
            db,
            path: path.clone(),
            inject,
        };
        let mut loaded = Loaded::default();
        let tx = store.db.begin_write().map_err(|e| err(e.to_string()))?;
        {
            let mut meta = tx.open_table(META).map_err(|e| err(e.to_string()))?;
            let next = meta
                .get(NEXT_SEQ)
                .map_err(|e| err(e.to_string()))?
                .map(|v| v.value());
            loaded.next_seq = next.unwrap_or(first_seq.max(1));
            if next.is_none() {
                meta.insert(NEXT_SEQ, loaded.next_seq)
                    .map_err(|e| err(e.to_string()))?;
            }
            let previous = meta
                .get(EPOCH)
                .map_err(|e| err(e.to_string()))?
                .map(|v| v.value());
            loaded.epoch = boot_epoch(previous, first_seq);
            meta.insert(EPOCH, loaded.epoch)
                .map_err(|e| err(e.to_string()))?;
            let state = tx.open_table(STATE).map_err(|e| err(e.to_string()))?;
            for entry in state.iter().map_err(|e| err(e.to_string()))? {
                let (k, v) = entry.map_err(|e| err(e.to_string()))?;
                let (seq, payload) = v.value();
                loaded
                    .states
                    .push((k.value().to_string(), seq, payload.into()));
            }
            for b in brokers {
                let name = outbox_table(b);
                let table = tx
                    .open_table(outbox_def(&name))
                    .map_err(|e| err(e.to_string()))?;
                let mut pending = Vec::new();
                for entry in table.iter().map_err(|e| err(e.to_string()))? {
                    let (k, v) = entry.map_err(|e| err(e.to_string()))?;
                    let (topic, payload) = v.value();
                    pending.push(Pending {
                        seq: k.value(),
                        state_topic: topic.into(),
                        payload: payload.into(),
                    });
                }
                loaded.pending.push(pending);
            }
            for handle in tx.list_tables().map_err(|e| err(e.to_string()))? {
                let Some(name) = handle.name().strip_prefix(OUTBOX_PREFIX) else {
                    continue;
                };
                if brokers.iter().any(|b| b == name) {
                    continue;
                }
                let table = tx
                    .open_table(outbox_def(handle.name()))
                    .map_err(|e| err(e.to_string()))?;
                loaded.orphans.push((
                    name.to_string(),
                    table.len().map_err(|e| err(e.to_string()))?,
                ));
            }
        }
        tx.commit().map_err(|e| err(e.to_string()))?;
        Ok((store, loaded))
    }

    fn err(&self, e: impl std::fmt::Display) -> StoreError {
        StoreError {
            path: self.path.clone(),
            problem: e.to_string(),
        }
    }

    /// The store's file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Commits one batch in one fsync'd transaction: queues each new trigger for its brokers,
    /// records it as the latest of its state topic when it is, removes acknowledged triggers,
    /// and counts `seq` on past the newest trigger.
    pub fn commit(&self, batch: &Batch) -> Result<(), StoreError> {
        self.inject.check().map_err(|e| self.err(e))?;
        let tx = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut state = tx.open_table(STATE).map_err(|e| self.err(e))?;
            let mut top = None;
            for (p, brokers) in &batch.issued {
                for b in brokers {
                    let name = outbox_table(b);
                    let mut table = tx.open_table(outbox_def(&name)).map_err(|e| self.err(e))?;
                    table
                        .insert(p.seq, (&*p.state_topic, &*p.payload))
                        .map_err(|e| self.err(e))?;
                }
                let newer = state
                    .get(&*p.state_topic)
                    .map_err(|e| self.err(e))?
                    .is_none_or(|v| v.value().0 < p.seq);
                if newer {
                    state
                        .insert(&*p.state_topic, (p.seq, &*p.payload))
                        .map_err(|e| self.err(e))?;
                }
                top = top.max(Some(p.seq));
            }
            for (b, seqs) in &batch.acked {
                let name = outbox_table(b);
                let mut table = tx.open_table(outbox_def(&name)).map_err(|e| self.err(e))?;
                for seq in seqs {
                    table.remove(*seq).map_err(|e| self.err(e))?;
                }
            }
            if let Some(top) = top {
                self.set_next(&tx, top + 1)?;
            }
        }
        tx.commit().map_err(|e| self.err(e))
    }

    /// Replaces everything the store holds with `image`, in one fsync'd transaction.
    pub fn rewrite(&self, image: &Image) -> Result<(), StoreError> {
        self.inject.check().map_err(|e| self.err(e))?;
        let tx = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            for (b, pending) in &image.brokers {
                let name = outbox_table(b);
                let mut table = tx.open_table(outbox_def(&name)).map_err(|e| self.err(e))?;
                table.retain(|_, _| false).map_err(|e| self.err(e))?;
                for p in pending {
                    table
                        .insert(p.seq, (&*p.state_topic, &*p.payload))
                        .map_err(|e| self.err(e))?;
                }
            }
            let mut state = tx.open_table(STATE).map_err(|e| self.err(e))?;
            for (topic, seq, payload) in &image.states {
                state
                    .insert(topic.as_str(), (*seq, &**payload))
                    .map_err(|e| self.err(e))?;
            }
            self.set_next(&tx, image.next_seq)?;
        }
        tx.commit().map_err(|e| self.err(e))
    }

    /// Stores the next `seq` to give (never lower than what is stored).
    pub fn close(&self, next_seq: u64) -> Result<(), StoreError> {
        self.inject.check().map_err(|e| self.err(e))?;
        let tx = self.db.begin_write().map_err(|e| self.err(e))?;
        self.set_next(&tx, next_seq)?;
        tx.commit().map_err(|e| self.err(e))
    }

    fn set_next(&self, tx: &redb::WriteTransaction, next: u64) -> Result<(), StoreError> {
        let mut meta = tx.open_table(META).map_err(|e| self.err(e))?;
        let stored = meta
            .get(NEXT_SEQ)
            .map_err(|e| self.err(e))?
            .map_or(0, |v| v.value());
        if next > stored {
            meta.insert(NEXT_SEQ, next).map_err(|e| self.err(e))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brokers() -> Vec<String> {
        vec!["a".into(), "b".into()]
    }

    fn pending(seq: u64, topic: &str) -> Pending {
        Pending {
            seq,
            state_topic: topic.into(),
            payload: format!("{{\"seq\":{seq}}}").into_bytes().into(),
        }
    }

    fn seqs(p: &[Pending]) -> Vec<u64> {
        p.iter().map(|p| p.seq).collect()
    }

    #[test]
    fn commits_survive_reopening_and_count_on() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (store, loaded) =
                Store::open(dir.path(), &brokers(), 100, FaultInjection::default()).unwrap();
            assert_eq!(loaded.next_seq, 100);
            let batch = Batch {
                issued: vec![
                    (pending(100, "s"), brokers()),
                    (pending(101, "z"), brokers()),
                ],
                acked: vec![("a".into(), vec![100])],
            };
            store.commit(&batch).unwrap();
            // No clean close: as after a crash.
        }
        let (store, loaded) =
            Store::open(dir.path(), &brokers(), 5, FaultInjection::default()).unwrap();
        assert_eq!(loaded.next_seq, 102, "first_seq only for a new store");
        assert_eq!(seqs(&loaded.pending[0]), vec![101]);
        assert_eq!(seqs(&loaded.pending[1]), vec![100, 101]);
        assert_eq!(&*loaded.pending[1][1].payload, b"{\"seq\":101}");
        assert_eq!(loaded.states.len(), 2);
        store.close(loaded.next_seq - 1).unwrap();
        drop(store);
        let (_, loaded) =
            Store::open(dir.path(), &brokers(), 5, FaultInjection::default()).unwrap();
        assert_eq!(loaded.next_seq, 102, "the counter never goes back");
    }

    #[test]
    fn every_start_has_a_higher_epoch_whatever_the_clock() {
        let dir = tempfile::tempdir().unwrap();
        let open = |now_ms| {
            Store::open(dir.path(), &brokers(), now_ms, FaultInjection::default())
                .unwrap()
                .1
                .epoch
        };
        // A new store: the start time in seconds.
        assert_eq!(open(1_700_000_000_500), 1_700_000_000);
        // Restarted within the second, then with the clock set back an hour: still higher.
        assert_eq!(open(1_700_000_000_900), 1_700_000_001);
        assert_eq!(open(1_699_996_400_000), 1_700_000_002);
        // Later starts follow the clock again.
        assert_eq!(open(1_700_000_100_000), 1_700_000_100);
        assert_eq!(boot_epoch(None, 999), 0);
        assert_eq!(boot_epoch(Some(u64::MAX), 0), u64::MAX);
    }

    #[test]
    fn a_rewrite_replaces_everything_and_an_older_trigger_never_takes_a_state() {
        let dir = tempfile::tempdir().unwrap();
        let inject = FaultInjection::default();
        let (store, _) = Store::open(dir.path(), &brokers(), 1, inject.clone()).unwrap();
        store
            .commit(&Batch {
                issued: vec![(pending(5, "s"), brokers())],
                acked: vec![],
            })
            .unwrap();
        inject.fail();
        assert!(store.commit(&Batch::default()).is_err());
        inject.heal();
        store
            .rewrite(&Image {
                next_seq: 9,
                brokers: vec![
                    ("a".into(), vec![pending(7, "s"), pending(8, "s")]),
                    ("b".into(), vec![]),
                ],
                states: vec![("s".into(), 8, pending(8, "s").payload)],
            })
            .unwrap();
        store
            .commit(&Batch {
                issued: vec![(pending(6, "s"), vec!["b".into()])],
                acked: vec![],
            })
            .unwrap();
        drop(store);
        let (_, loaded) = Store::open(dir.path(), &brokers(), 1, inject).unwrap();
        assert_eq!(seqs(&loaded.pending[0]), vec![7, 8]);
        assert_eq!(seqs(&loaded.pending[1]), vec![6]);
        assert_eq!(
            loaded.states[0].1, 8,
            "a late older trigger keeps the state"
        );
        assert_eq!(loaded.next_seq, 9);
    }

    #[test]
    fn orphans_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (store, _) =
                Store::open(dir.path(), &brokers(), 1, FaultInjection::default()).unwrap();
            store
                .commit(&Batch {
                    issued: vec![(pending(1, "s"), brokers())],
                    acked: vec![],
                })
                .unwrap();
        }
        let (_, loaded) =
            Store::open(dir.path(), &["a".to_string()], 1, FaultInjection::default()).unwrap();
        assert_eq!(loaded.orphans, vec![("b".to_string(), 1)]);
    }

    #[test]
    fn a_directory_in_place_of_the_file_fails_to_open() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join(FILE_NAME)).unwrap();
        let e = Store::open(dir.path(), &brokers(), 1, FaultInjection::default()).unwrap_err();
        assert!(e.to_string().contains(FILE_NAME), "{e}");
    }
}
