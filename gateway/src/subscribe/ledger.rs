//! What a controller has accepted, kept across its restarts.
//!
//! A [`Verifier`](super::Verifier) tells a replay from a new trigger by the last `seq` it
//! accepted from each gateway. In memory only, a restarted controller has forgotten them, and
//! only the maximum age stands between it and an old trigger published again. A [`Ledger`] is
//! that memory on disk: per gateway, the last accepted `seq` and the window of accepted `seq`s
//! that tells a duplicate (the same trigger from another broker) from a replay.
//!
//! The file is JSON, replaced atomically on every save (a temporary file beside it, fsync'd,
//! renamed over it, the directory fsync'd): a crash leaves the old file or the new one, never
//! half of one. A file that cannot be read or is not a ledger is an error that names the file
//! and the problem; it is never taken for an empty ledger, which would forget every `seq`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use firebreak_protocols::{GatewayId, ZoneId};
use serde::{Deserialize, Serialize};

use super::DEDUP_WINDOW;

/// The `schema` of a ledger file.
pub const LEDGER_SCHEMA: &str = "firebreak.watch-ledger/1";

/// Per gateway, what was accepted from it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ledger {
    /// The site the controller watches, when it watches one.
    pub site: Option<String>,
    pub(super) gateways: BTreeMap<GatewayId, Accepted>,
}

/// What was accepted from one gateway.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Accepted {
    pub(super) last: u64,
    pub(super) recent: BTreeSet<u64>,
    /// The highest boot epoch accepted.
    pub(super) epoch: Option<u64>,
    /// Per scope (`None`: the site), the highest `seq` accepted or taken from a state.
    pub(super) scopes: BTreeMap<Option<ZoneId>, u64>,
}

/// A ledger file that could not be read, parsed or written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {problem}", path.display())]
pub struct LedgerError {
    /// The file.
    pub path: PathBuf,
    /// What is wrong.
    pub problem: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLedger {
    schema: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    site: Option<String>,
    gateways: BTreeMap<String, RawAccepted>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAccepted {
    last: u64,
    /// The accepted `seq`s as inclusive ranges, ascending.
    recent: Vec<[u64; 2]>,
    /// The highest boot epoch accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    epoch: Option<u64>,
    /// Per scope, the highest `seq` seen: `""` for the site, else the zone.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    scopes: BTreeMap<String, u64>,
}

impl Ledger {
    /// The last `seq` accepted from `gateway`.
    pub fn last(&self, gateway: &GatewayId) -> Option<u64> {
        self.gateways.get(gateway).map(|a| a.last)
    }

    /// Every gateway with its last accepted `seq`, by gateway id.
    pub fn lasts(&self) -> impl Iterator<Item = (&GatewayId, u64)> {
        self.gateways.iter().map(|(g, a)| (g, a.last))
    }

    /// Reads a ledger file: `Ok(None)` when there is none yet.
    pub fn load(path: &Path) -> Result<Option<Ledger>, LedgerError> {
        let err = |problem: String| LedgerError {
            path: path.to_path_buf(),
            problem,
        };
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(err(format!("cannot read: {e}"))),
        };
        Ledger::parse(&bytes).map(Some).map_err(|problem| {
            err(format!(
                "not a usable {LEDGER_SCHEMA} file ({problem}); move it away to start afresh, \
                 which forgets the last accepted seq of every gateway"
            ))
        })
    }

    fn parse(bytes: &[u8]) -> Result<Ledger, String> {
        let raw: RawLedger = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        if raw.schema != LEDGER_SCHEMA {
            return Err(format!("schema {:?}", raw.schema));
        }
        let mut gateways = BTreeMap::new();
        for (id, a) in raw.gateways {
            let gateway = GatewayId::new(&id).map_err(|e| format!("gateway {id:?} {e}"))?;
            let mut recent = BTreeSet::new();
            for [from, to] in a.recent {
                if from > to || to > a.last || to - from >= DEDUP_WINDOW as u64 {
                    return Err(format!(
                        "gateway {id}: range {from}..{to} with last {}",
                        a.last
                    ));
                }
                recent.extend(from..=to);
                if recent.len() > DEDUP_WINDOW {
                    return Err(format!(
                        "gateway {id}: more than {DEDUP_WINDOW} recent seqs"
                    ));
                }
            }
            // Nothing accepted yet (only states taken): no last.
            let nothing_accepted = recent.is_empty() && a.last == 0;
            if !(recent.contains(&a.last) || nothing_accepted) {
                return Err(format!("gateway {id}: last {} is not among recent", a.last));
            }
            let mut scopes = BTreeMap::new();
            for (name, seq) in a.scopes {
                let zone = if name.is_empty() {
                    None
                } else {
                    Some(
                        ZoneId::new(&name)
                            .map_err(|e| format!("gateway {id}: zone {name:?} {e}"))?,
                    )
                };
                scopes.insert(zone, seq);
            }
            gateways.insert(
                gateway,
                Accepted {
                    last: a.last,
                    recent,
                    epoch: a.epoch,
                    scopes,
                },
            );
        }
        Ok(Ledger {
            site: raw.site,
            gateways,
        })
    }

    fn to_json(&self) -> Vec<u8> {
        let gateways = self
            .gateways
            .iter()
            .map(|(g, a)| {
                let mut recent: Vec<[u64; 2]> = Vec::new();
                for &s in &a.recent {
                    match recent.last_mut() {
                        Some(r) if r[1].checked_add(1) == Some(s) => r[1] = s,
                        _ => recent.push([s, s]),
                    }
                }
                (
                    g.to_string(),
                    RawAccepted {
                        last: a.last,
                        recent,
                        epoch: a.epoch,
                        scopes: a
                            .scopes
                            .iter()
                            .map(|(z, seq)| {
                                (z.as_ref().map_or_else(String::new, |z| z.to_string()), *seq)
                            })
                            .collect(),
                    },
                )
            })
            .collect();
        let raw = RawLedger {
            schema: LEDGER_SCHEMA.to_string(),
            site: self.site.clone(),
            gateways,
        };
        let mut bytes = serde_json::to_vec(&raw).unwrap_or_default();
        bytes.push(b'\n');
        bytes
    }

    /// Replaces the file at `path` with this ledger, atomically (see the module docs).
    pub fn save(&self, path: &Path) -> Result<(), LedgerError> {
        crate::durable::replace(path, &self.to_json()).map_err(|(what, e)| LedgerError {
            path: path.to_path_buf(),
            problem: format!("cannot {what}: {e}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gw(s: &str) -> GatewayId {
        GatewayId::new(s).unwrap()
    }

    #[test]
    fn round_trips_through_the_file_as_ranges() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.json");
        assert_eq!(Ledger::load(&path).unwrap(), None);
        let mut l = Ledger {
            site: Some("paris-1".into()),
            ..Ledger::default()
        };
        l.gateways.insert(
            gw("gw-1"),
            Accepted {
                last: 12,
                recent: [3, 4, 5, 9, 11, 12].into_iter().collect(),
                epoch: Some(1_700_000_000),
                scopes: [(None, 12), (Some(ZoneId::new("b1").unwrap()), 11)]
                    .into_iter()
                    .collect(),
            },
        );
        l.save(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            "{\"schema\":\"firebreak.watch-ledger/1\",\"site\":\"paris-1\",\"gateways\":{\"gw-1\":{\"last\":12,\"recent\":[[3,5],[9,9],[11,12]],\"epoch\":1700000000,\"scopes\":{\"\":12,\"b1\":11}}}}\n"
        );
        assert_eq!(Ledger::load(&path).unwrap(), Some(l));
        assert!(!dir.path().join("ledger.json.tmp").exists());
    }

    #[test]
    fn a_corrupt_file_is_an_error_naming_it_never_an_empty_ledger() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.json");
        for bad in [
            &b""[..],
            b"{\"schema\":\"firebreak.watch-ledger/1\",\"gateways\":{\"gw-1\":{\"last\":",
            b"{\"schema\":\"other/1\",\"gateways\":{}}",
            b"{\"schema\":\"firebreak.watch-ledger/1\",\"gateways\":{\"gw/1\":{\"last\":1,\"recent\":[[1,1]]}}}",
            b"{\"schema\":\"firebreak.watch-ledger/1\",\"gateways\":{\"gw-1\":{\"last\":1,\"recent\":[[2,1]]}}}",
            b"{\"schema\":\"firebreak.watch-ledger/1\",\"gateways\":{\"gw-1\":{\"last\":9,\"recent\":[[1,1]]}}}",
            b"{\"schema\":\"firebreak.watch-ledger/1\",\"gateways\":{\"gw-1\":{\"last\":99999,\"recent\":[[0,99999]]}}}",
            b"\xff\xfe",
        ] {
            std::fs::write(&path, bad).unwrap();
            let e = Ledger::load(&path).unwrap_err();
            let text = e.to_string();
            assert!(
                text.starts_with(&format!(
                    "{}: not a usable firebreak.watch-ledger/1 file (",
                    path.display()
                )),
                "{text}"
            );
            assert!(text.ends_with("move it away to start afresh, which forgets the last accepted seq of every gateway"), "{text}");
        }
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_files_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            let _ = Ledger::parse(&bytes);
        }
    }
}
