//! The gateway faults delivery raises: conditions that make the gateway less trustworthy than
//! it should be, reported in `/healthz`, `/status`, `/metrics` and the status topic.

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde::Serialize;
use tokio::sync::watch;

/// The outbox store fails, hangs, or never opened: triggers are kept in memory only.
pub const OUTBOX: &str = "outbox";
/// A broker cannot be used for a configuration problem (TLS files, password).
pub const BROKER_CONFIG: &str = "broker-config";

/// One fault.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Fault {
    /// Its kind: [`OUTBOX`] or [`BROKER_CONFIG`].
    pub kind: &'static str,
    /// What it is about (the broker's name), when not the gateway as a whole.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// What is wrong, for a person.
    pub detail: String,
    /// Since when, in milliseconds since the Unix epoch.
    pub since_ms: u64,
}

/// The faults raised now, and the maintenance the status lists. Every change bumps a
/// generation, so the brokers' tasks publish the status again at once.
#[derive(Debug)]
pub(crate) struct Faults {
    now: Mutex<BTreeMap<(&'static str, Option<String>), Fault>>,
    maintenance: Mutex<Vec<firebreak_protocols::MaintenanceNote>>,
    changed: watch::Sender<u64>,
}

impl Faults {
    pub(crate) fn new() -> Faults {
        Faults {
            now: Mutex::new(BTreeMap::new()),
            maintenance: Mutex::new(Vec::new()),
            changed: watch::channel(0).0,
        }
    }

    /// Raises (or updates the detail of) a fault; returns whether it is new.
    pub(crate) fn raise(&self, kind: &'static str, subject: Option<&str>, detail: String) -> bool {
        let mut now = self.now.lock().unwrap_or_else(|p| p.into_inner());
        let key = (kind, subject.map(str::to_string));
        let new = match now.get_mut(&key) {
            Some(f) => {
                f.detail = detail;
                false
            }
            None => {
                now.insert(
                    key.clone(),
                    Fault {
                        kind,
                        subject: key.1,
                        detail,
                        since_ms: crate::acquire::now_ms(),
                    },
                );
                true
            }
        };
        drop(now);
        if new {
            self.changed.send_modify(|g| *g += 1);
        }
        new
    }

    /// Clears a fault; returns whether it was raised.
    pub(crate) fn clear(&self, kind: &'static str, subject: Option<&str>) -> bool {
        let mut now = self.now.lock().unwrap_or_else(|p| p.into_inner());
        let was = now.remove(&(kind, subject.map(str::to_string))).is_some();
        drop(now);
        if was {
            self.changed.send_modify(|g| *g += 1);
        }
        was
    }

    /// Whether a fault of `kind` about `subject` is raised.
    pub(crate) fn is_raised(&self, kind: &'static str, subject: Option<&str>) -> bool {
        let now = self.now.lock().unwrap_or_else(|p| p.into_inner());
        now.contains_key(&(kind, subject.map(str::to_string)))
    }

    /// Every fault raised now.
    pub(crate) fn list(&self) -> Vec<Fault> {
        let now = self.now.lock().unwrap_or_else(|p| p.into_inner());
        now.values().cloned().collect()
    }

    /// Sets the maintenance entries the status lists; a change publishes it again.
    pub(crate) fn set_maintenance(&self, notes: Vec<firebreak_protocols::MaintenanceNote>) {
        let mut now = self.maintenance.lock().unwrap_or_else(|p| p.into_inner());
        if *now != notes {
            *now = notes;
            drop(now);
            self.changed.send_modify(|g| *g += 1);
        }
    }

    /// The maintenance entries the status lists.
    pub(crate) fn maintenance(&self) -> Vec<firebreak_protocols::MaintenanceNote> {
        self.maintenance
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// A receiver told of every change.
    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }
}
