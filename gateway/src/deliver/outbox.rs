//! The durable outbox: one redb file holding the per-gateway sequence counter, one table of
//! waiting triggers per broker, and the latest trigger of every state topic.
//!
//! Why redb rather than a hand-written append-only log: every trigger must land, in **one**
//! fsync'd step, in the outbox of every broker together with the new `seq` (so a crash can
//! never leave a trigger queued for one broker and not another, nor a `seq` used twice).
//! redb gives exactly that — ACID transactions over several tables, committed with
//! `Durability::Immediate` (fsync before `commit` returns), checksummed pages and recovery
//! after a crash — in pure Rust, without the compaction, torn-tail and checksum code a log
//! of our own would need and would need testing for. Triggers are rare (level changes), so one
//! fsync per trigger and per acknowledgement costs nothing that matters.
//!
//! Tables: `meta` (`next_seq`), `state` (state topic → latest `(seq, payload)`) and one
//! `outbox/<broker>` per broker (`seq` → `(state topic, payload)`), in `seq` order.

use std::path::{Path, PathBuf};

use redb::{
    Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition, TableHandle,
};

const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const STATE: TableDefinition<&str, (u64, &[u8])> = TableDefinition::new("state");
const NEXT_SEQ: &str = "next_seq";
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
    pub state_topic: String,
    /// The signed payload.
    pub payload: Vec<u8>,
}

/// What [`Store::issue`] did.
#[derive(Debug)]
pub struct Stored<T> {
    /// The sequence number given.
    pub seq: u64,
    /// What the builder returned.
    pub built: T,
    /// Per broker (in the order given): its outbox length after the trigger, or `None` when
    /// its outbox was full and refused the trigger.
    pub lengths: Vec<Option<u64>>,
}

/// The outbox store.
#[derive(Debug)]
pub struct Store {
    db: Database,
    path: PathBuf,
    capacity: u64,
}

fn outbox_table(broker: &str) -> String {
    format!("{OUTBOX_PREFIX}{broker}")
}

impl Store {
    /// Opens (or creates) the store in `dir`, with a table for each broker. A new store starts
    /// its `seq` at `first_seq` (the gateway passes the current Unix time in milliseconds, so a
    /// gateway whose store was lost still counts up from where controllers last saw it).
    pub fn open(
        dir: &Path,
        brokers: &[String],
        capacity: u32,
        first_seq: u64,
    ) -> Result<Store, StoreError> {
        let path = dir.join(FILE_NAME);
        let err = |problem: String| StoreError {
            path: path.clone(),
            problem,
        };
        std::fs::create_dir_all(dir)
            .map_err(|e| err(format!("cannot create the directory: {e}")))?;
        let db = Database::builder()
            .set_check_integrity_on_open(true)
            .create(&path)
            .map_err(|e| err(e.to_string()))?;
        let store = Store {
            db,
            path: path.clone(),
            capacity: u64::from(capacity),
        };
        let tx = store.db.begin_write().map_err(|e| err(e.to_string()))?;
        {
            let mut meta = tx.open_table(META).map_err(|e| err(e.to_string()))?;
            let next = meta
                .get(NEXT_SEQ)
                .map_err(|e| err(e.to_string()))?
                .map(|v| v.value());
            if next.is_none() {
                meta.insert(NEXT_SEQ, first_seq.max(1))
                    .map_err(|e| err(e.to_string()))?;
            }
            tx.open_table(STATE).map_err(|e| err(e.to_string()))?;
            for b in brokers {
                let name = outbox_table(b);
                tx.open_table(TableDefinition::<u64, (&str, &[u8])>::new(&name))
                    .map_err(|e| err(e.to_string()))?;
            }
        }
        tx.commit().map_err(|e| err(e.to_string()))?;
        Ok(store)
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

    /// Outbox tables of brokers not in `brokers`, with their waiting counts: triggers for a
    /// broker that was renamed or removed from the configuration.
    pub fn orphans(&self, brokers: &[String]) -> Result<Vec<(String, u64)>, StoreError> {
        let tx = self.db.begin_read().map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for handle in tx.list_tables().map_err(|e| self.err(e))? {
            let Some(name) = handle.name().strip_prefix(OUTBOX_PREFIX) else {
                continue;
            };
            if brokers.iter().any(|b| b == name) {
                continue;
            }
            let table = tx
                .open_table(TableDefinition::<u64, (&str, &[u8])>::new(handle.name()))
                .map_err(|e| self.err(e))?;
            out.push((name.to_string(), table.len().map_err(|e| self.err(e))?));
        }
        Ok(out)
    }

    /// The next `seq` to be given.
    pub fn next_seq(&self) -> Result<u64, StoreError> {
        let tx = self.db.begin_read().map_err(|e| self.err(e))?;
        let meta = tx.open_table(META).map_err(|e| self.err(e))?;
        let v = meta.get(NEXT_SEQ).map_err(|e| self.err(e))?;
        Ok(v.map(|v| v.value()).unwrap_or(1))
    }

    /// In one fsync'd transaction: takes the next `seq`, builds the signed payload with
    /// `build(seq)`, queues it in the outbox of every broker that has room, records it as the
    /// latest of its state topic, and counts `seq` up. Nothing is written when `build` fails
    /// or no broker has room (`Ok(None)`).
    pub fn issue<T, E>(
        &self,
        brokers: &[String],
        build: impl FnOnce(u64) -> Result<(T, String, Vec<u8>), E>,
    ) -> Result<Result<Option<Stored<T>>, E>, StoreError> {
        let tx = self.db.begin_write().map_err(|e| self.err(e))?;
        let seq;
        let built;
        let mut lengths = Vec::with_capacity(brokers.len());
        {
            let mut meta = tx.open_table(META).map_err(|e| self.err(e))?;
            seq = meta
                .get(NEXT_SEQ)
                .map_err(|e| self.err(e))?
                .map(|v| v.value())
                .unwrap_or(1);
            let (b, state_topic, payload) = match build(seq) {
                Ok(x) => x,
                Err(e) => return Ok(Err(e)),
            };
            built = b;
            for broker in brokers {
                let name = outbox_table(broker);
                let mut table = tx
                    .open_table(TableDefinition::<u64, (&str, &[u8])>::new(&name))
                    .map_err(|e| self.err(e))?;
                let len = table.len().map_err(|e| self.err(e))?;
                if len >= self.capacity {
                    lengths.push(None);
                    continue;
                }
                table
                    .insert(seq, (state_topic.as_str(), payload.as_slice()))
                    .map_err(|e| self.err(e))?;
                lengths.push(Some(len + 1));
            }
            if lengths.iter().all(Option::is_none) {
                // Dropping the transaction aborts it: seq is not used.
                return Ok(Ok(None));
            }
            let mut state = tx.open_table(STATE).map_err(|e| self.err(e))?;
            state
                .insert(state_topic.as_str(), (seq, payload.as_slice()))
                .map_err(|e| self.err(e))?;
            meta.insert(NEXT_SEQ, seq + 1).map_err(|e| self.err(e))?;
        }
        tx.commit().map_err(|e| self.err(e))?;
        Ok(Ok(Some(Stored {
            seq,
            built,
            lengths,
        })))
    }

    /// Up to `limit` triggers waiting for `broker` with a `seq` above `after`, in `seq` order.
    pub fn pending(
        &self,
        broker: &str,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<Pending>, StoreError> {
        let tx = self.db.begin_read().map_err(|e| self.err(e))?;
        let name = outbox_table(broker);
        let table = tx
            .open_table(TableDefinition::<u64, (&str, &[u8])>::new(&name))
            .map_err(|e| self.err(e))?;
        let from = after.map_or(0, |a| a.saturating_add(1));
        let mut out = Vec::new();
        for entry in table.range(from..).map_err(|e| self.err(e))?.take(limit) {
            let (k, v) = entry.map_err(|e| self.err(e))?;
            let (topic, payload) = v.value();
            out.push(Pending {
                seq: k.value(),
                state_topic: topic.to_string(),
                payload: payload.to_vec(),
            });
        }
        Ok(out)
    }

    /// How many triggers wait for `broker`.
    pub fn len(&self, broker: &str) -> Result<u64, StoreError> {
        let tx = self.db.begin_read().map_err(|e| self.err(e))?;
        let name = outbox_table(broker);
        let table = tx
            .open_table(TableDefinition::<u64, (&str, &[u8])>::new(&name))
            .map_err(|e| self.err(e))?;
        table.len().map_err(|e| self.err(e))
    }

    /// Removes acknowledged triggers from `broker`'s outbox (one fsync'd transaction); returns
    /// the outbox's length after.
    pub fn remove(&self, broker: &str, seqs: &[u64]) -> Result<u64, StoreError> {
        let tx = self.db.begin_write().map_err(|e| self.err(e))?;
        let len;
        {
            let name = outbox_table(broker);
            let mut table = tx
                .open_table(TableDefinition::<u64, (&str, &[u8])>::new(&name))
                .map_err(|e| self.err(e))?;
            for seq in seqs {
                table.remove(*seq).map_err(|e| self.err(e))?;
            }
            len = table.len().map_err(|e| self.err(e))?;
        }
        tx.commit().map_err(|e| self.err(e))?;
        Ok(len)
    }

    /// The latest trigger of every state topic: `(topic, seq, payload)`.
    pub fn states(&self) -> Result<Vec<(String, u64, Vec<u8>)>, StoreError> {
        let tx = self.db.begin_read().map_err(|e| self.err(e))?;
        let table = tx.open_table(STATE).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for entry in table.iter().map_err(|e| self.err(e))? {
            let (k, v) = entry.map_err(|e| self.err(e))?;
            let (seq, payload) = v.value();
            out.push((k.value().to_string(), seq, payload.to_vec()));
        }
        Ok(out)
    }

    /// The `seq` of the latest trigger on `topic`.
    pub fn state_seq(&self, topic: &str) -> Result<Option<u64>, StoreError> {
        let tx = self.db.begin_read().map_err(|e| self.err(e))?;
        let table = tx.open_table(STATE).map_err(|e| self.err(e))?;
        let v = table.get(topic).map_err(|e| self.err(e))?;
        Ok(v.map(|v| v.value().0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brokers() -> Vec<String> {
        vec!["a".into(), "b".into()]
    }

    fn issue(store: &Store, topic: &str) -> Option<Stored<()>> {
        store
            .issue(&brokers(), |seq| {
                Ok::<_, ()>((
                    (),
                    topic.to_string(),
                    format!("{{\"seq\":{seq}}}").into_bytes(),
                ))
            })
            .unwrap()
            .unwrap()
    }

    #[test]
    fn survives_reopening_and_counts_on() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path(), &brokers(), 10, 100).unwrap();
            assert_eq!(issue(&store, "s").unwrap().seq, 100);
            assert_eq!(issue(&store, "z").unwrap().seq, 101);
            assert_eq!(store.remove("a", &[100]).unwrap(), 1);
        }
        let store = Store::open(dir.path(), &brokers(), 10, 5).unwrap();
        assert_eq!(
            store.next_seq().unwrap(),
            102,
            "first_seq only for a new store"
        );
        let a: Vec<u64> = store
            .pending("a", None, 10)
            .unwrap()
            .iter()
            .map(|p| p.seq)
            .collect();
        let b: Vec<u64> = store
            .pending("b", None, 10)
            .unwrap()
            .iter()
            .map(|p| p.seq)
            .collect();
        assert_eq!((a, b), (vec![101], vec![100, 101]));
        assert_eq!(
            store.pending("b", Some(100), 10).unwrap()[0].payload,
            b"{\"seq\":101}"
        );
        assert_eq!(store.state_seq("z").unwrap(), Some(101));
        assert_eq!(store.states().unwrap().len(), 2);
    }

    #[test]
    fn a_full_outbox_refuses_only_for_its_broker() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &brokers(), 2, 1).unwrap();
        issue(&store, "s").unwrap();
        issue(&store, "s").unwrap();
        store.remove("a", &[1, 2]).unwrap();
        let third = issue(&store, "s").unwrap();
        assert_eq!(third.lengths, vec![Some(1), None]);
        store.remove("a", &[3]).unwrap();
        issue(&store, "s").unwrap();
        issue(&store, "s").unwrap();
        // Both full: refused, and the seq is not used.
        assert!(issue(&store, "s").is_none());
        assert_eq!(store.next_seq().unwrap(), 6);
    }

    #[test]
    fn orphans_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path(), &brokers(), 10, 1).unwrap();
            issue(&store, "s").unwrap();
        }
        let store = Store::open(dir.path(), &["a".to_string()], 10, 1).unwrap();
        assert_eq!(
            store.orphans(&["a".to_string()]).unwrap(),
            vec![("b".to_string(), 1)]
        );
    }
}
