//! The subscriber side: what a controller does with a payload from a trigger topic.
//!
//! A [`Verifier`] holds the public keys a controller trusts (by key id) and what it has
//! accepted so far. [`Verifier::check`] turns a payload into a [`Verdict`]:
//!
//! 1. **malformed** — not a `firebreak.trigger/1` message the contract allows;
//! 2. **unsigned** — no `signature` member;
//! 3. **unknown key** — signed by a key id that is not trusted;
//! 4. **bad signature** — the signature does not verify over the canonical bytes (forged with
//!    another key, or a field changed after signing);
//! 5. **key not granted** — the key is revoked, outside its validity dates, or not granted
//!    the trigger's gateway or site ([`crate::trust`]: a trust file binds each key to what it
//!    may speak for; a bare public key speaks for the first gateway it is seen signing for);
//! 6. **future** — `issued_at_ms` more than [`MAX_SKEW_MS`] ahead of the controller's clock;
//! 7. **epoch ahead** / **seq ahead** — a boot `epoch` more than [`MAX_EPOCH_AHEAD`] above its
//!    issue time in seconds, or a `seq` more than [`MAX_SEQ_AHEAD`] above its own
//!    `issued_at_ms`: taken, it would make every later trigger of the gateway a replay (none is
//!    ever remembered);
//! 8. **wrong site** — a trigger about another site than the one watched;
//! 9. **duplicate** — the same (`gateway`, `seq`) as one accepted (another broker, a re-send):
//!    not an error, and not acted on twice;
//! 10. **replayed** — a `seq` at or below the last one accepted from that gateway, and not a
//!     duplicate: an old trigger published again;
//! 11. **superseded** — a `seq` below that of a retained state of its scope already taken: its
//!     level no longer holds;
//! 12. **old epoch** — a boot `epoch` below one already accepted from that gateway with a
//!     `seq` above: a genuine gateway's `seq` and `epoch` rise together;
//! 13. **stale** — `issued_at_ms` older than the maximum age: old news, whatever its `seq`;
//!
//! and otherwise **accepted**, once. A **drill** (`firebreak.drill/1`, `firebreak drill`) is
//! never accepted as a trigger: [`Verifier::check_drill`] checks it through step 8 and its
//! age, and says [`Verdict::Drill`], leaving every `seq` the verifier holds untouched. The trigger a controller acts on is decoded from the
//! **signed bytes** (see [`firebreak_protocols::signed`]), never from anything outside them.
//!
//! [`Verifier::check_status`] does the same for the gateways' signed `status` messages and
//! orders them by connection (`epoch`, `session`, `beat`), so that an old will replayed never
//! marks a live gateway offline, and a replayed heartbeat never revives one whose will came.
//!
//! A controller that reconnects catches up: [`Verifier::check_state`] verifies a retained
//! `state` message (never one older than what was seen for its scope), and an accepted
//! trigger or a state says which `seq`s of its gateway were **missed** — above the last one
//! accepted, never accepted. What was accepted survives a restart in a [`Ledger`] ([`Verifier::ledger`], [`Verifier::with_ledger`]), so that a replay
//! of an old trigger is still rejected as one after the restart.
//!
//! ```
//! use firebreak_gateway::keys::{PublicKey, SigningKey};
//! use firebreak_gateway::subscribe::{Verdict, Verifier};
//! # let key = SigningKey::from_seed(firebreak_protocols::KeyId::new("k1").unwrap(), &[7; 32]);
//! # let public_key_file_text = key.public().file_text();
//! let mut verifier = Verifier::new(vec![PublicKey::parse(public_key_file_text.as_bytes()).unwrap()])
//!     .max_age_ms(600_000);
//! # let payload: &[u8] = b"not json";
//! # let now_ms = 0;
//! match verifier.check(payload, now_ms) {
//!     Verdict::Accepted(a) => println!("{} from {} seq {}", a.trigger.level, a.trigger.gateway, a.trigger.seq),
//!     Verdict::Duplicate { .. } => {}
//!     Verdict::Rejected(why) => eprintln!("REJECTED: {why}"),
//!     // A drill rehearses the path: report it, never act on it as a level.
//!     Verdict::Drill(d) => println!("DRILL {} from {}", d.drill.incident, d.drill.gateway),
//! }
//! ```

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use firebreak_protocols::message::{self, MessageError, SignedMessage};
use firebreak_protocols::signed;
use firebreak_protocols::{
    Drill, GatewayId, GatewayStatus, KeyId, Presence, SiteId, Trigger, ZoneId,
};

use crate::keys::PublicKey;
use crate::trust::{Grant, Trust};

mod ledger;
pub mod merge;
pub use ledger::{LEDGER_SCHEMA, Ledger, LedgerError};
pub use merge::{MergeEvent, MergeOptions, Merger};

/// The default maximum age of a trigger: 10 minutes.
pub const DEFAULT_MAX_AGE_MS: u64 = 600_000;

/// How many accepted (`gateway`, `seq`) pairs per gateway are remembered for de-duplication.
pub const DEDUP_WINDOW: usize = 4096;

/// How far ahead of the controller's clock a trigger's `issued_at_ms` may be (clocks kept by
/// NTP are within milliseconds; a minute covers a gateway that lost it for a while).
pub const MAX_SKEW_MS: u64 = 60_000;

/// How far a `seq` may be above its own `issued_at_ms`. A gateway's store starts counting at
/// the Unix milliseconds it was created (`docs/contract.md`), and a trigger is issued after
/// that, so a genuine `seq` is at most its `issued_at_ms` plus the triggers issued since: ten
/// million leaves room for decades of them. Above it, the `seq` would make every later
/// genuine trigger of its gateway a replay (poisoned, or a store made under a wrong clock).
pub const MAX_SEQ_AHEAD: u64 = 10_000_000;

/// How far a boot `epoch` may be above its message's issue time in Unix seconds. An epoch is
/// the start time of the gateway in seconds, or one more than the last when that is not later
/// (`docs/contract.md`): a million starts within a second's worth of clock is no gateway.
pub const MAX_EPOCH_AHEAD: u64 = 1_000_000;

/// A gateway whose last `online` status is older than this many heartbeats is silent.
pub const SILENT_AFTER_HEARTBEATS: u64 = 3;

/// Why a payload is not acted on.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rejection {
    /// Not a trigger message the contract allows.
    Malformed(String),
    /// No signature.
    Unsigned,
    /// Signed with a key id that is not trusted.
    UnknownKey(String),
    /// The signature does not verify: forged with another key, or tampered with after signing.
    BadSignature(String),
    /// About another site than the one watched.
    WrongSite {
        /// The site in the trigger.
        found: String,
        /// The site watched.
        expected: String,
    },
    /// A `seq` at or below the last accepted from that gateway: an old trigger sent again.
    Replayed {
        /// The gateway.
        gateway: String,
        /// Its seq.
        seq: u64,
        /// The last seq accepted from that gateway.
        last: u64,
    },
    /// Issued longer ago than the maximum age.
    Stale {
        /// How old it is, in milliseconds.
        age_ms: u64,
        /// The maximum age, in milliseconds.
        max_age_ms: u64,
    },
    /// `issued_at_ms` further ahead of the controller's clock than [`MAX_SKEW_MS`].
    Future {
        /// How far ahead, in milliseconds.
        ahead_ms: u64,
    },
    /// A `seq` more than [`MAX_SEQ_AHEAD`] above its own `issued_at_ms`.
    SeqAhead {
        /// The gateway.
        gateway: String,
        /// Its seq.
        seq: u64,
        /// Its issue time.
        issued_at_ms: u64,
    },
    /// Signed by a key that is trusted, but not for this: revoked, outside its validity, or
    /// not granted the trigger's gateway or site.
    NotThisKeys {
        /// The key id.
        key: String,
        /// Why.
        why: String,
    },
    /// A boot `epoch` more than [`MAX_EPOCH_AHEAD`] above its issue time in seconds.
    EpochAhead {
        /// The gateway.
        gateway: String,
        /// Its epoch.
        epoch: u64,
        /// Its issue time.
        issued_at_ms: u64,
    },
    /// A trigger from an earlier boot than one accepted, with a higher `seq`.
    OldEpoch {
        /// The gateway.
        gateway: String,
        /// Its epoch.
        epoch: u64,
        /// Its seq.
        seq: u64,
        /// The highest epoch accepted from the gateway.
        last: u64,
    },
    /// A retained state older than what was seen for its scope.
    OldState {
        /// The gateway.
        gateway: String,
        /// The scope: `site`, or `zone Z`.
        scope: String,
        /// Its seq.
        seq: u64,
        /// The highest seq seen for that scope from that gateway.
        seen: u64,
    },
    /// A trigger older than a retained state already taken for its scope: its level no longer
    /// holds.
    Superseded {
        /// The gateway.
        gateway: String,
        /// The scope: `site`, or `zone Z`.
        scope: String,
        /// Its seq.
        seq: u64,
        /// The seq of the state taken for that scope.
        seen: u64,
    },
    /// A status from an earlier boot of its gateway than one seen: every connection of that
    /// boot is gone.
    OldSession {
        /// The gateway.
        gateway: String,
        /// Its (epoch, session).
        found: (u64, u64),
        /// The latest (epoch, session) seen.
        seen: (u64, u64),
    },
    /// A status of the current connection sent again out of order: a heartbeat not newer than
    /// one seen, or `online` after that connection's `offline`.
    StatusReplayed {
        /// The gateway.
        gateway: String,
        /// What is out of order.
        why: String,
    },
}

impl Rejection {
    /// A short machine name: `malformed`, `unsigned`, `unknown-key`, `bad-signature`,
    /// `wrong-site`, `replayed`, `stale`, `key-not-granted`, `future`, `seq-ahead`,
    /// `epoch-ahead`, `old-epoch`, `old-state`, `superseded`, `old-session`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "malformed",
            Self::Unsigned => "unsigned",
            Self::UnknownKey(_) => "unknown-key",
            Self::BadSignature(_) => "bad-signature",
            Self::WrongSite { .. } => "wrong-site",
            Self::Replayed { .. } => "replayed",
            Self::Stale { .. } => "stale",
            Self::NotThisKeys { .. } => "key-not-granted",
            Self::Future { .. } => "future",
            Self::SeqAhead { .. } => "seq-ahead",
            Self::EpochAhead { .. } => "epoch-ahead",
            Self::OldEpoch { .. } => "old-epoch",
            Self::OldState { .. } => "old-state",
            Self::Superseded { .. } => "superseded",
            Self::OldSession { .. } => "old-session",
            Self::StatusReplayed { .. } => "replayed",
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed(why) => write!(f, "malformed: {why}"),
            Self::Unsigned => f.write_str("unsigned: the message carries no signature"),
            Self::EpochAhead {
                gateway,
                epoch,
                issued_at_ms,
            } => write!(
                f,
                "epoch ahead: boot epoch {epoch} from gateway {gateway} is more than {MAX_EPOCH_AHEAD} above its issue time ({} s): taken, it would make every later message of {gateway} old; poisoned, or the gateway's store was made under a wrong clock",
                issued_at_ms / 1000
            ),
            Self::OldEpoch {
                gateway,
                epoch,
                seq,
                last,
            } => write!(
                f,
                "old epoch: seq {seq} from gateway {gateway} is from boot epoch {epoch}, before epoch {last} already accepted, yet its seq is higher: a gateway's seq and epoch rise together"
            ),
            Self::OldState {
                gateway,
                scope,
                seq,
                seen,
            } => write!(
                f,
                "old state: the retained state of {scope} at seq {seq} from gateway {gateway} is older than seq {seen} already seen for it"
            ),
            Self::Superseded {
                gateway,
                scope,
                seq,
                seen,
            } => write!(
                f,
                "superseded: seq {seq} from gateway {gateway} about {scope} is older than its retained state at seq {seen}, already taken: its level no longer holds"
            ),
            Self::OldSession {
                gateway,
                found,
                seen,
            } => write!(
                f,
                "old session: a status of gateway {gateway} from epoch {} session {}, after epoch {} session {} was seen (a status or will of an earlier boot sent again)",
                found.0, found.1, seen.0, seen.1
            ),
            Self::StatusReplayed { gateway, why } => {
                write!(f, "replayed: a status of gateway {gateway} {why}")
            }
            Self::UnknownKey(k) => {
                write!(f, "unknown key: signed by key {k:?}, which is not trusted")
            }
            Self::BadSignature(k) => write!(
                f,
                "bad signature: does not verify with trusted key {k:?} (forged, or changed after signing)"
            ),
            Self::Future { ahead_ms } => write!(
                f,
                "future: issued {} s ahead of this controller's clock (more than {} s: a gateway or controller clock is wrong, or the message was made to outlive its time)",
                ahead_ms / 1000,
                MAX_SKEW_MS / 1000
            ),
            Self::SeqAhead {
                gateway,
                seq,
                issued_at_ms,
            } => write!(
                f,
                "seq ahead: seq {seq} from gateway {gateway} is more than {MAX_SEQ_AHEAD} above its issue time {issued_at_ms} (a gateway's seq counts from the Unix ms its store was created): taken, it would make every later trigger of {gateway} a replay; poisoned, or the gateway's store was made under a wrong clock"
            ),
            Self::NotThisKeys { key, why } => {
                write!(f, "key not granted: trusted key {key:?} {why}")
            }
            Self::WrongSite { found, expected } => {
                write!(f, "wrong site: about site {found}, watching {expected}")
            }
            Self::Replayed { gateway, seq, last } => write!(
                f,
                "replayed: seq {seq} from gateway {gateway} is not above the last accepted ({last})"
            ),
            Self::Stale { age_ms, max_age_ms } => write!(
                f,
                "stale: issued {} s ago, more than the maximum age of {} s",
                age_ms / 1000,
                max_age_ms / 1000
            ),
        }
    }
}

impl std::error::Error for Rejection {}

/// A trigger that passed every check.
#[derive(Debug, Clone, PartialEq)]
pub struct Accepted {
    /// The trigger, decoded from the signed bytes, with its signature.
    pub trigger: Trigger,
    /// The key that signed it.
    pub key_id: KeyId,
    /// The payload as received.
    pub payload: Vec<u8>,
    /// The `seq`s of its gateway between the last one accepted (or noted missed) and this one,
    /// inclusive: triggers this controller never accepted. `None` when there is no gap, or
    /// when nothing was accepted from that gateway before.
    pub missed: Option<(u64, u64)>,
}

/// A verified retained `state` message: what holds now for its scope.
#[derive(Debug, Clone, PartialEq)]
pub struct State {
    /// The trigger that last changed the scope's level, decoded from the signed bytes.
    pub trigger: Trigger,
    /// The key that signed it.
    pub key_id: KeyId,
    /// The `seq`s of its gateway above the last one accepted (or noted missed), up to and
    /// including this one: changes this controller never accepted. `None` when it holds
    /// nothing new, or when nothing was accepted from that gateway before.
    pub missed: Option<(u64, u64)>,
}

/// A verified `status` message of a gateway.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusAccepted {
    /// The status, decoded from the signed bytes, with its signature.
    pub status: GatewayStatus,
    /// The key that signed it.
    pub key_id: KeyId,
    /// How old it is by the controller's clock, in milliseconds.
    pub age_ms: u64,
    /// An `online` status older than [`SILENT_AFTER_HEARTBEATS`] heartbeats: the gateway was
    /// alive then, and has said nothing since (a retained status of a gateway whose will the
    /// broker never sent).
    pub silent: bool,
}

/// What to do with a `status` payload.
#[derive(Debug, Clone, PartialEq)]
pub enum StatusVerdict {
    /// The gateway's presence changed or was confirmed: take it.
    Accepted(Box<StatusAccepted>),
    /// The same status again (another subscription, a retained copy): nothing new.
    Duplicate {
        /// The gateway.
        gateway: GatewayId,
    },
    /// Do not take it; say why.
    Rejected(Rejection),
}

/// A verified drill ([`firebreak_protocols::Drill`]): signed, granted and in time like a
/// trigger, and **never a level**. Taking it changes nothing the verifier holds: no `seq` is
/// remembered or counted missed, no scope, no epoch.
#[derive(Debug, Clone, PartialEq)]
pub struct DrillSeen {
    /// The drill's body (schema `firebreak.drill/1`, `drill: true`): the level it rehearses,
    /// its scope, gateway, `incident` (its drill id) and time.
    pub drill: Trigger,
    /// The key that signed it.
    pub key_id: KeyId,
    /// The payload as received.
    pub payload: Vec<u8>,
    /// How long after its `issued_at_ms` it was checked, by the controller's clock (0 when
    /// the clocks put it ahead).
    pub age_ms: u64,
}

/// What to do with a payload.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Act on it.
    Accepted(Box<Accepted>),
    /// Already accepted (from another broker, or re-sent): do nothing.
    Duplicate {
        /// The gateway.
        gateway: GatewayId,
        /// Its seq.
        seq: u64,
    },
    /// Do not act on it; say why.
    Rejected(Rejection),
    /// A genuine drill: report it, never act on it as a level ([`Verifier::check_drill`]).
    Drill(Box<DrillSeen>),
}

#[derive(Debug, Default)]
struct Seen {
    last: u64,
    recent: BTreeSet<u64>,
    /// The highest `seq` reported missed: a gap is reported once.
    noted: u64,
    /// The highest boot epoch accepted.
    epoch: Option<u64>,
    /// Per scope (`None`: the site), the highest `seq` accepted or taken from a state.
    scopes: BTreeMap<Option<ZoneId>, u64>,
}

/// What was taken of one gateway's statuses: its latest boot epoch, and per connection of
/// that boot, the last beat and presence.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct StatusSeen {
    epoch: u64,
    sessions: BTreeMap<u64, (u64, Presence)>,
}

/// How many connections of one boot are remembered per gateway (the oldest are forgotten).
const SESSIONS_KEPT: usize = 64;

impl Seen {
    /// The highest `seq` accounted for (accepted or reported missed), once one was accepted.
    fn known(&self) -> Option<u64> {
        (!self.recent.is_empty()).then_some(self.last.max(self.noted))
    }
}

/// Who a signed message speaks for, and when it was issued: what a key must be granted.
#[derive(Debug, Clone, Copy)]
struct Speaks<'a> {
    gateway: &'a GatewayId,
    site: &'a SiteId,
    issued_at_ms: u64,
}

impl<'a> From<&'a Trigger> for Speaks<'a> {
    fn from(t: &'a Trigger) -> Self {
        Speaks {
            gateway: &t.gateway,
            site: &t.site,
            issued_at_ms: t.issued_at_ms,
        }
    }
}

impl<'a> From<&'a GatewayStatus> for Speaks<'a> {
    fn from(s: &'a GatewayStatus) -> Self {
        Speaks {
            gateway: &s.gateway,
            site: &s.site,
            issued_at_ms: s.issued_at_ms,
        }
    }
}

/// Verifies, de-duplicates and orders triggers for one controller.
#[derive(Debug)]
pub struct Verifier {
    trust: Trust,
    /// The gateway each bare public key was first seen signing for.
    pinned: HashMap<KeyId, GatewayId>,
    site: Option<SiteId>,
    max_age_ms: u64,
    seen: HashMap<GatewayId, Seen>,
    /// Per gateway: its connections, whichever broker or bridge their statuses came through.
    statuses: HashMap<GatewayId, StatusSeen>,
}

impl Verifier {
    /// A verifier trusting bare public `keys` (each for one gateway, the first it is seen
    /// signing for), any site, with the default maximum age.
    pub fn new(keys: Vec<PublicKey>) -> Verifier {
        let mut trust = Trust::default();
        for k in keys {
            // The same key twice is trusted once.
            let _ = trust.add(Grant::bare(k));
        }
        Verifier::with_trust(trust)
    }

    /// A verifier trusting what `trust` grants, any site, with the default maximum age.
    pub fn with_trust(trust: Trust) -> Verifier {
        Verifier {
            trust,
            pinned: HashMap::new(),
            site: None,
            max_age_ms: DEFAULT_MAX_AGE_MS,
            seen: HashMap::new(),
            statuses: HashMap::new(),
        }
    }

    /// Whether the key that signed `trigger` may speak for it: not revoked, within its dates
    /// at `now_ms` (the controller's clock; the trigger's own time for a retained state,
    /// which is as old as its last change), granted its gateway and site.
    fn authorize(
        &self,
        key_id: &KeyId,
        speaks: Speaks<'_>,
        now_ms: Option<u64>,
    ) -> Result<(), Rejection> {
        let not = |why: String| Rejection::NotThisKeys {
            key: key_id.to_string(),
            why,
        };
        let Some(grant) = self.trust.get(key_id) else {
            return Err(Rejection::UnknownKey(key_id.to_string()));
        };
        if grant.revoked {
            return Err(not("is revoked: nothing it signs is taken".into()));
        }
        let at = now_ms.unwrap_or(speaks.issued_at_ms);
        let date = |ms: u64| {
            firebreak_protocols::time::format_rfc3339(ms)
                .map_or_else(|| ms.to_string(), |d| d.to_string())
        };
        if let Some(b) = grant.not_before_ms.filter(|&b| at < b) {
            return Err(not(format!("is not valid before {}", date(b))));
        }
        if let Some(a) = grant.not_after_ms.filter(|&a| at >= a) {
            return Err(not(format!("expired at {}", date(a))));
        }
        match &grant.gateways {
            Some(allowed) if !allowed.contains(speaks.gateway) => {
                let list: Vec<&str> = allowed.iter().map(GatewayId::as_str).collect();
                return Err(not(format!(
                    "may sign for gateway {} only, not {}",
                    list.join(", "),
                    speaks.gateway
                )));
            }
            None => {
                if let Some(first) = self.pinned.get(key_id).filter(|g| *g != speaks.gateway) {
                    return Err(not(format!(
                        "is a bare public key, bound to gateway {first} (the first it signed for), not {}: a trust file grants a key more gateways",
                        speaks.gateway
                    )));
                }
            }
            Some(_) => {}
        }
        if let Some(sites) = grant.sites.as_ref().filter(|s| !s.contains(speaks.site)) {
            let list: Vec<&str> = sites.iter().map(SiteId::as_str).collect();
            return Err(not(format!(
                "may sign for site {} only, not {}",
                list.join(", "),
                speaks.site
            )));
        }
        Ok(())
    }

    /// Accepts triggers about `site` only.
    pub fn site(mut self, site: SiteId) -> Verifier {
        self.site = Some(site);
        self
    }

    /// Rejects triggers issued more than `ms` before the time given to [`Verifier::check`].
    pub fn max_age_ms(mut self, ms: u64) -> Verifier {
        self.max_age_ms = ms;
        self
    }

    /// Checks the signature alone and decodes the signed trigger: for the retained state
    /// topics, whose messages are as old as the last change and may come in any order.
    pub fn verify_signature(&self, payload: &[u8]) -> Result<(Trigger, KeyId), Rejection> {
        self.verify_signed(payload)
    }

    /// Checks the signature of any signed message of the contract and decodes the signed
    /// bytes: what is acted on is exactly what was signed.
    fn verify_signed<M>(&self, payload: &[u8]) -> Result<(M, KeyId), Rejection>
    where
        M: SignedMessage + serde::de::DeserializeOwned,
    {
        let whole: M = message::decode(payload).map_err(malformed)?;
        let Some(signature) = whole.signature().cloned() else {
            return Err(Rejection::Unsigned);
        };
        let parts = signed::split(payload).map_err(|e| Rejection::Malformed(e.to_string()))?;
        let found = signed::decode_signature(parts.signature).map_err(malformed)?;
        if found != signature {
            return Err(Rejection::Malformed(
                "the signature is not the last member of the payload".into(),
            ));
        }
        let key = &self
            .trust
            .get(&signature.key_id)
            .ok_or_else(|| Rejection::UnknownKey(signature.key_id.to_string()))?
            .key;
        let canonical = parts.canonical_vec();
        if !key.verifies(&canonical, &signature.ed25519) {
            return Err(Rejection::BadSignature(signature.key_id.to_string()));
        }
        let mut m: M = message::decode(&canonical).map_err(malformed)?;
        let key_id = signature.key_id.clone();
        m.set_signature(Some(signature));
        Ok((m, key_id))
    }

    /// Continues from what a previous run accepted (see [`Ledger`]).
    pub fn with_ledger(mut self, ledger: &Ledger) -> Verifier {
        for (gateway, a) in &ledger.gateways {
            self.seen.insert(
                gateway.clone(),
                Seen {
                    last: a.last,
                    recent: a.recent.clone(),
                    noted: 0,
                    epoch: a.epoch,
                    scopes: a.scopes.clone(),
                },
            );
        }
        self
    }

    /// What was accepted so far, per gateway, for a [`Ledger`] file.
    pub fn ledger(&self) -> Ledger {
        Ledger {
            site: self.site.as_ref().map(|s| s.to_string()),
            gateways: self
                .seen
                .iter()
                .filter(|(_, s)| !s.recent.is_empty() || !s.scopes.is_empty())
                .map(|(g, s)| {
                    (
                        g.clone(),
                        ledger::Accepted {
                            last: s.last,
                            recent: s.recent.clone(),
                            epoch: s.epoch,
                            scopes: s.scopes.clone(),
                        },
                    )
                })
                .collect(),
        }
    }

    /// The last `seq` accepted from `gateway`.
    pub fn last_accepted(&self, gateway: &GatewayId) -> Option<u64> {
        self.seen
            .get(gateway)
            .filter(|s| !s.recent.is_empty())
            .map(|s| s.last)
    }

    /// Checks a retained `state` message: its signature, key, site, that it is not from the
    /// future by more than [`MAX_SKEW_MS`] at `now_ms` (the controller's clock), and that it
    /// is not older than what was seen for its scope (the highest `seq` of that scope from
    /// that gateway, accepted as a trigger or taken from a state: `old-state`). It is as old as
    /// the last change, so its age is not checked, and it comes in any order among scopes.
    /// Says what was missed. Accepts no trigger: the trigger itself may still arrive, and is
    /// then checked as any other.
    pub fn check_state(&mut self, payload: &[u8], now_ms: u64) -> Result<State, Rejection> {
        let (trigger, key_id) = self.verify_signature(payload)?;
        self.authorize(&key_id, Speaks::from(&trigger), None)?;
        in_time(Speaks::from(&trigger), trigger.epoch, now_ms)?;
        seq_in_time(&trigger)?;
        if let Some(site) = self.site.as_ref().filter(|s| **s != trigger.site) {
            return Err(Rejection::WrongSite {
                found: trigger.site.to_string(),
                expected: site.to_string(),
            });
        }
        let seen = self.seen.entry(trigger.gateway.clone()).or_default();
        if let Some(&highest) = seen.scopes.get(&trigger.zone)
            && trigger.seq < highest
        {
            return Err(Rejection::OldState {
                gateway: trigger.gateway.to_string(),
                scope: scope_name(trigger.zone.as_ref()),
                seq: trigger.seq,
                seen: highest,
            });
        }
        seen.scopes.insert(trigger.zone.clone(), trigger.seq);
        let mut missed = None;
        if let Some(known) = seen.known()
            && trigger.seq > known
        {
            missed = Some((known + 1, trigger.seq));
            seen.noted = trigger.seq;
        }
        Ok(State {
            trigger,
            key_id,
            missed,
        })
    }

    /// Checks a gateway's `status` message at `now_ms` on the controller's clock: signature,
    /// key, site, not from the future, and its order among the statuses of that gateway. A
    /// gateway has one connection per broker at a time, each with its own will, and their
    /// statuses share one topic (and meet on a broker that bridges several), so each
    /// connection (`epoch`, `session`) is followed on its own: a status of an earlier boot
    /// (`epoch` below the latest seen) is `old-session` — every connection of that boot is
    /// gone; on one connection, a heartbeat not newer than the last, or `online` after its
    /// `offline`, is `replayed`. The first status of a connection is taken as it is.
    pub fn check_status(&mut self, payload: &[u8], now_ms: u64) -> StatusVerdict {
        match self.status_order(payload, now_ms) {
            Ok(v) => v,
            Err(r) => StatusVerdict::Rejected(r),
        }
    }

    fn status_order(&mut self, payload: &[u8], now_ms: u64) -> Result<StatusVerdict, Rejection> {
        let (status, key_id) = self.verify_signed::<GatewayStatus>(payload)?;
        self.authorize(&key_id, Speaks::from(&status), Some(now_ms))?;
        let (Some(epoch), Some(session), Some(beat)) = (status.epoch, status.session, status.beat)
        else {
            return Err(Rejection::Malformed(
                "a signed status names its epoch, session and beat".into(),
            ));
        };
        in_time(Speaks::from(&status), Some(epoch), now_ms)?;
        if let Some(site) = self.site.as_ref().filter(|s| **s != status.site) {
            return Err(Rejection::WrongSite {
                found: status.site.to_string(),
                expected: site.to_string(),
            });
        }
        let gateway = status.gateway.to_string();
        let seen = self.statuses.entry(status.gateway.clone()).or_default();
        if epoch < seen.epoch {
            return Err(Rejection::OldSession {
                gateway,
                found: (epoch, session),
                seen: (
                    seen.epoch,
                    seen.sessions.keys().last().copied().unwrap_or(0),
                ),
            });
        }
        if epoch > seen.epoch {
            *seen = StatusSeen {
                epoch,
                sessions: BTreeMap::new(),
            };
        }
        let duplicate = || {
            Ok(StatusVerdict::Duplicate {
                gateway: status.gateway.clone(),
            })
        };
        if let Some(&(last_beat, last)) = seen.sessions.get(&session) {
            match (last, status.state) {
                (Presence::Offline, Presence::Offline) => return duplicate(),
                (Presence::Offline, Presence::Online) => {
                    return Err(Rejection::StatusReplayed {
                        gateway,
                        why: format!(
                            "says online for epoch {epoch} session {session}, whose offline was already taken"
                        ),
                    });
                }
                (Presence::Online, Presence::Online) if beat == last_beat => return duplicate(),
                (Presence::Online, Presence::Online) if beat < last_beat => {
                    return Err(Rejection::StatusReplayed {
                        gateway,
                        why: format!(
                            "beat {beat} of epoch {epoch} session {session} is not after beat {last_beat} already taken"
                        ),
                    });
                }
                // A later heartbeat; or the will (beat 0) or a clean stop, which end the
                // connection whatever their beat.
                _ => {}
            }
        }
        seen.sessions.insert(session, (beat, status.state));
        while seen.sessions.len() > SESSIONS_KEPT {
            seen.sessions.pop_first();
        }
        let age_ms = now_ms.saturating_sub(status.issued_at_ms);
        let heartbeat_ms = u64::from(status.heartbeat_s.unwrap_or(10).max(1)) * 1000;
        let silent = status.state == Presence::Online
            && age_ms > SILENT_AFTER_HEARTBEATS.saturating_mul(heartbeat_ms);
        Ok(StatusVerdict::Accepted(Box::new(StatusAccepted {
            status,
            key_id,
            age_ms,
            silent,
        })))
    }

    /// Checks a drill (`firebreak.drill/1`, on `firebreak/v1/{site}/drill/{gateway}`) as a
    /// trigger is checked up to its age — malformed, unsigned, unknown key, bad signature, key
    /// not granted (on the controller's clock), future, epoch ahead, seq ahead, wrong site,
    /// stale — and nothing else: a drill is never a level, and it leaves every `seq`, scope
    /// and epoch the verifier holds as they were, so it makes no gap and no replay among the
    /// triggers. The same drill from several brokers is reported from each.
    pub fn check_drill(&self, payload: &[u8], now_ms: u64) -> Result<DrillSeen, Rejection> {
        let (Drill(drill), key_id) = self.verify_signed::<Drill>(payload)?;
        self.authorize(&key_id, Speaks::from(&drill), Some(now_ms))?;
        in_time(Speaks::from(&drill), drill.epoch, now_ms)?;
        seq_in_time(&drill)?;
        if let Some(site) = self.site.as_ref().filter(|s| **s != drill.site) {
            return Err(Rejection::WrongSite {
                found: drill.site.to_string(),
                expected: site.to_string(),
            });
        }
        let age_ms = now_ms.saturating_sub(drill.issued_at_ms);
        if age_ms > self.max_age_ms {
            return Err(Rejection::Stale {
                age_ms,
                max_age_ms: self.max_age_ms,
            });
        }
        Ok(DrillSeen {
            drill,
            key_id,
            payload: payload.to_vec(),
            age_ms,
        })
    }

    /// Every check, in the order of the module docs; `now_ms` is the controller's clock. A
    /// drill, from whatever topic, is checked by [`Verifier::check_drill`] and is
    /// [`Verdict::Drill`] at best: never accepted as a trigger.
    pub fn check(&mut self, payload: &[u8], now_ms: u64) -> Verdict {
        let (trigger, key_id) = match self.verify_signature(payload) {
            Ok(v) => v,
            Err(Rejection::Malformed(_)) if message::decode::<Drill>(payload).is_ok() => {
                return match self.check_drill(payload, now_ms) {
                    Ok(d) => Verdict::Drill(Box::new(d)),
                    Err(r) => Verdict::Rejected(r),
                };
            }
            Err(r) => return Verdict::Rejected(r),
        };
        if let Err(r) = self.authorize(&key_id, Speaks::from(&trigger), Some(now_ms)) {
            return Verdict::Rejected(r);
        }
        if let Err(r) = in_time(Speaks::from(&trigger), trigger.epoch, now_ms) {
            return Verdict::Rejected(r);
        }
        if let Err(r) = seq_in_time(&trigger) {
            return Verdict::Rejected(r);
        }
        if let Some(site) = self.site.as_ref().filter(|s| **s != trigger.site) {
            return Verdict::Rejected(Rejection::WrongSite {
                found: trigger.site.to_string(),
                expected: site.to_string(),
            });
        }
        let seen = self.seen.entry(trigger.gateway.clone()).or_default();
        if seen.recent.contains(&trigger.seq) {
            return Verdict::Duplicate {
                gateway: trigger.gateway,
                seq: trigger.seq,
            };
        }
        if !seen.recent.is_empty() && trigger.seq <= seen.last {
            return Verdict::Rejected(Rejection::Replayed {
                seq: trigger.seq,
                last: seen.last,
                gateway: trigger.gateway.to_string(),
            });
        }
        if let Some(&highest) = seen.scopes.get(&trigger.zone)
            && trigger.seq < highest
        {
            return Verdict::Rejected(Rejection::Superseded {
                gateway: trigger.gateway.to_string(),
                scope: scope_name(trigger.zone.as_ref()),
                seq: trigger.seq,
                seen: highest,
            });
        }
        if let (Some(epoch), Some(last)) = (trigger.epoch, seen.epoch)
            && epoch < last
        {
            return Verdict::Rejected(Rejection::OldEpoch {
                gateway: trigger.gateway.to_string(),
                epoch,
                seq: trigger.seq,
                last,
            });
        }
        let age_ms = now_ms.saturating_sub(trigger.issued_at_ms);
        if age_ms > self.max_age_ms {
            return Verdict::Rejected(Rejection::Stale {
                age_ms,
                max_age_ms: self.max_age_ms,
            });
        }
        let missed = seen
            .known()
            .filter(|&known| trigger.seq > known.saturating_add(1))
            .map(|known| (known + 1, trigger.seq - 1));
        if self
            .trust
            .get(&key_id)
            .is_some_and(|g| g.gateways.is_none())
        {
            self.pinned
                .entry(key_id.clone())
                .or_insert_with(|| trigger.gateway.clone());
        }
        seen.last = trigger.seq;
        seen.recent.insert(trigger.seq);
        while seen.recent.len() > DEDUP_WINDOW {
            seen.recent.pop_first();
        }
        seen.epoch = seen.epoch.max(trigger.epoch);
        let scope = seen.scopes.entry(trigger.zone.clone()).or_default();
        *scope = (*scope).max(trigger.seq);
        Verdict::Accepted(Box::new(Accepted {
            trigger,
            key_id,
            payload: payload.to_vec(),
            missed,
        }))
    }
}

/// The scope of a trigger in words: `site`, or `zone Z`.
fn scope_name(zone: Option<&ZoneId>) -> String {
    zone.map_or_else(|| "site".to_string(), |z| format!("zone {z}"))
}

/// Refuses a message issued more than [`MAX_SKEW_MS`] ahead of `now_ms`, and a boot `epoch`
/// more than [`MAX_EPOCH_AHEAD`] above its issue time in seconds.
fn in_time(m: Speaks<'_>, epoch: Option<u64>, now_ms: u64) -> Result<(), Rejection> {
    let ahead_ms = m.issued_at_ms.saturating_sub(now_ms);
    if ahead_ms > MAX_SKEW_MS {
        return Err(Rejection::Future { ahead_ms });
    }
    if let Some(epoch) =
        epoch.filter(|&e| e > (m.issued_at_ms / 1000).saturating_add(MAX_EPOCH_AHEAD))
    {
        return Err(Rejection::EpochAhead {
            gateway: m.gateway.to_string(),
            epoch,
            issued_at_ms: m.issued_at_ms,
        });
    }
    Ok(())
}

/// Refuses a `seq` more than [`MAX_SEQ_AHEAD`] above its own issue time.
fn seq_in_time(t: &Trigger) -> Result<(), Rejection> {
    if t.seq > t.issued_at_ms.saturating_add(MAX_SEQ_AHEAD) {
        return Err(Rejection::SeqAhead {
            gateway: t.gateway.to_string(),
            seq: t.seq,
            issued_at_ms: t.issued_at_ms,
        });
    }
    Ok(())
}

fn malformed(e: MessageError) -> Rejection {
    Rejection::Malformed(e.to_string())
}

/// One line for people: level, scope, reasons with values and thresholds, estimate, seq,
/// gateway, key and time.
pub fn describe(t: &Trigger) -> String {
    use std::fmt::Write;
    let mut line = format!(
        "{} (was {}) site {}",
        t.level.name().to_uppercase(),
        t.previous,
        t.site
    );
    if let Some(z) = &t.zone {
        let _ = write!(line, " zone {z}");
    }
    if t.reasons.is_empty() {
        line.push_str(" | no reason given");
    }
    for (i, r) in t.reasons.iter().enumerate() {
        line.push_str(if i == 0 { " | " } else { "; " });
        let _ = write!(line, "{}:", r.rule);
        if let Some(s) = r.signal {
            let _ = write!(line, " {s}");
        }
        if let Some(d) = &r.device {
            let _ = write!(line, " on {d}");
            if r.channel != 0 {
                let _ = write!(line, " ch{}", r.channel);
            }
        }
        let unit = r.signal.map(|s| s.unit().symbol()).unwrap_or("");
        let sep = if unit.is_empty() { "" } else { " " };
        let _ = write!(
            line,
            " = {}{sep}{unit} (threshold {}{sep}{unit})",
            r.value, r.threshold
        );
    }
    if let Some(s) = t.seconds_to_power_loss {
        let _ = write!(line, " | power loss in ~{s} s");
    }
    let _ = write!(line, " | seq {} from {}", t.seq, t.gateway);
    if let Some(sig) = &t.signature {
        let _ = write!(line, " (key {})", sig.key_id);
    }
    let _ = write!(line, " at {}", t.issued_at);
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::SigningKey;
    use firebreak_protocols::message::encode_vec;
    use firebreak_protocols::signed::signed_vec;
    use firebreak_protocols::{DeviceId, IncidentId, Level, Reason, RuleId, Signal};

    const NOW: u64 = 1_700_000_100_000;

    fn key(id: &str, seed: u8) -> SigningKey {
        SigningKey::from_seed(KeyId::new(id).unwrap(), &[seed; 32])
    }

    fn trigger(seq: u64, issued_at_ms: u64) -> Trigger {
        let mut t = Trigger::new(
            GatewayId::new("gw-1").unwrap(),
            seq,
            IncidentId::new("i-1").unwrap(),
            SiteId::new("paris-1").unwrap(),
            None,
            Level::Evacuate,
            Level::Prepare,
            issued_at_ms,
        )
        .unwrap();
        t.push_reason(Reason {
            rule: RuleId::new("off-gas").unwrap(),
            signal: Some(Signal::OffGas),
            device: Some(DeviceId::new("node-b1").unwrap()),
            channel: 0,
            value: 180.0,
            threshold: 50.0,
        })
        .unwrap();
        t
    }

    fn sign(t: &Trigger, k: &SigningKey) -> Vec<u8> {
        let b = encode_vec(t).unwrap();
        signed_vec(&b, &k.sign(&b)).unwrap()
    }

    fn verifier() -> Verifier {
        Verifier::new(vec![key("k1", 1).public()]).site(SiteId::new("paris-1").unwrap())
    }

    fn rejected(v: Verdict) -> Rejection {
        match v {
            Verdict::Rejected(r) => r,
            other => panic!("expected a rejection, got {other:?}"),
        }
    }

    /// A trigger of `gateway` about `site`.
    fn of(gateway: &str, site: &str, seq: u64, at: u64) -> Trigger {
        let mut t = trigger(seq, at);
        t.gateway = GatewayId::new(gateway).unwrap();
        t.site = SiteId::new(site).unwrap();
        t
    }

    fn grant(k: &SigningKey, gateways: &[&str], sites: &[&str]) -> Grant {
        Grant {
            key: k.public(),
            gateways: Some(
                gateways
                    .iter()
                    .map(|g| GatewayId::new(g).unwrap())
                    .collect(),
            ),
            sites: Some(sites.iter().map(|s| SiteId::new(s).unwrap()).collect()),
            not_before_ms: None,
            not_after_ms: None,
            revoked: false,
        }
    }

    fn sign_drill(t: &Trigger, k: &SigningKey) -> Vec<u8> {
        let d = Drill::new(t.clone()).unwrap();
        let b = encode_vec(&d).unwrap();
        signed_vec(&b, &k.sign(&b)).unwrap()
    }

    /// A drill is reported and changes nothing: the seq it carries (the last trigger's) is
    /// neither a duplicate nor a replay, no gap follows, and the next trigger is accepted
    /// with no missed seq; forged, unknown-key, stale and other-site drills are refused like
    /// triggers; a drill on a state topic is malformed, never a state.
    #[test]
    fn a_drill_is_verified_like_a_trigger_and_is_never_a_level() {
        let good = key("k1", 1);
        let mut v = verifier();
        assert!(matches!(
            v.check(&sign(&trigger(10, NOW), &good), NOW),
            Verdict::Accepted(_)
        ));
        let before = v.ledger();
        let drill = sign_drill(&trigger(10, NOW + 5), &good);
        for _ in 0..2 {
            // From two brokers, or on the triggers topic: a drill each time, never a level.
            let Verdict::Drill(d) = v.check(&drill, NOW + 7) else {
                panic!("not a drill")
            };
            assert!(d.drill.drill);
            assert_eq!(d.age_ms, 2);
            assert_eq!(v.check_drill(&drill, NOW + 7).unwrap().drill.seq, 10);
        }
        assert_eq!(v.ledger(), before);
        assert_eq!(
            v.check_state(&drill, NOW + 7).unwrap_err().kind(),
            "malformed"
        );
        let Verdict::Accepted(a) = v.check(&sign(&trigger(11, NOW + 9), &good), NOW + 9) else {
            panic!("the next trigger is accepted")
        };
        assert_eq!(a.missed, None);
        // A drill ahead of every trigger (seq above the last) makes no gap either.
        assert!(matches!(
            v.check(&sign_drill(&trigger(50, NOW), &good), NOW),
            Verdict::Drill(_)
        ));
        let Verdict::Accepted(a) = v.check(&sign(&trigger(12, NOW + 9), &good), NOW + 9) else {
            panic!("the next trigger is accepted")
        };
        assert_eq!(a.missed, None);
        let forged = sign_drill(&trigger(10, NOW), &key("k1", 9));
        assert_eq!(
            v.check_drill(&forged, NOW).unwrap_err().kind(),
            "bad-signature"
        );
        assert_eq!(rejected(v.check(&forged, NOW)).kind(), "bad-signature");
        let unknown = sign_drill(&trigger(10, NOW), &key("k9", 9));
        assert_eq!(
            v.check_drill(&unknown, NOW).unwrap_err().kind(),
            "unknown-key"
        );
        let stale = sign_drill(&trigger(10, NOW - 700_000), &good);
        assert_eq!(v.check_drill(&stale, NOW).unwrap_err().kind(), "stale");
        let lyon = sign_drill(&of("gw-1", "lyon-2", 10, NOW), &good);
        assert_eq!(v.check_drill(&lyon, NOW).unwrap_err().kind(), "wrong-site");
        let mut tampered = drill.clone();
        let at = tampered.windows(8).position(|w| w == b"evacuate").unwrap();
        tampered[at..at + 8].copy_from_slice(b"prepare_");
        assert!(v.check_drill(&tampered, NOW).is_err());
        // A trigger is never a drill.
        assert_eq!(
            v.check_drill(&sign(&trigger(13, NOW), &good), NOW)
                .unwrap_err()
                .kind(),
            "malformed"
        );
    }

    #[test]
    fn a_key_speaks_only_for_what_it_is_granted() {
        let (a, b) = (key("gw-a-2026", 1), key("gw-b-2026", 2));
        let mut trust = Trust::default();
        trust.add(grant(&a, &["gw-a"], &["paris-1"])).unwrap();
        trust
            .add(Grant {
                revoked: true,
                ..grant(&b, &["gw-b"], &["paris-1"])
            })
            .unwrap();
        let mut v = Verifier::with_trust(trust);
        let why = |v: &mut Verifier, p: Vec<u8>| rejected(v.check(&p, NOW)).to_string();
        // Signed by gw-a's key, claiming to be gw-b: refused, whatever the site.
        assert_eq!(
            why(&mut v, sign(&of("gw-b", "paris-1", 1, NOW), &a)),
            "key not granted: trusted key \"gw-a-2026\" may sign for gateway gw-a only, not gw-b"
        );
        // For another site.
        assert_eq!(
            why(&mut v, sign(&of("gw-a", "lyon-2", 1, NOW), &a)),
            "key not granted: trusted key \"gw-a-2026\" may sign for site paris-1 only, not lyon-2"
        );
        // A revoked key, even for its own gateway.
        assert_eq!(
            why(&mut v, sign(&of("gw-b", "paris-1", 1, NOW), &b)),
            "key not granted: trusted key \"gw-b-2026\" is revoked: nothing it signs is taken"
        );
        assert_eq!(
            rejected(v.check(&sign(&of("gw-b", "paris-1", 2, NOW), &b), NOW)).kind(),
            "key-not-granted"
        );
        // What it is granted passes; the retained state is judged the same way.
        assert!(matches!(
            v.check(&sign(&of("gw-a", "paris-1", 1, NOW), &a), NOW),
            Verdict::Accepted(_)
        ));
        assert!(
            v.check_state(&sign(&of("gw-b", "paris-1", 9, NOW), &a), NOW)
                .is_err()
        );
    }

    #[test]
    fn a_future_trigger_or_a_seq_ahead_of_its_time_is_refused_and_poisons_nothing() {
        let k = key("k1", 1);
        let mut v = verifier();
        let future = rejected(v.check(&sign(&trigger(10, NOW + 61_000), &k), NOW));
        assert_eq!(future.kind(), "future");
        assert!(
            future.to_string().starts_with("future: issued 61 s ahead"),
            "{future}"
        );
        // Within the skew: fine.
        assert!(matches!(
            v.check(&sign(&trigger(11, NOW + 30_000), &k), NOW),
            Verdict::Accepted(_)
        ));
        // One signed trigger with a huge seq is refused, and later genuine ones still pass.
        let poison = rejected(v.check(&sign(&trigger(u64::MAX - 1, NOW), &k), NOW));
        assert_eq!(poison.kind(), "seq-ahead", "{poison}");
        let ahead = rejected(v.check(&sign(&trigger(NOW + MAX_SEQ_AHEAD + 1, NOW), &k), NOW));
        assert_eq!(ahead.kind(), "seq-ahead");
        assert!(
            v.check_state(&sign(&trigger(u64::MAX - 1, NOW), &k), NOW)
                .is_err()
        );
        assert!(matches!(
            v.check(&sign(&trigger(12, NOW), &k), NOW),
            Verdict::Accepted(_)
        ));
        // A gateway whose store started at its Unix ms, many triggers later, is in time.
        assert!(matches!(
            v.check(&sign(&trigger(NOW - 5_000 + 1_000_000, NOW), &k), NOW),
            Verdict::Accepted(_)
        ));
    }

    #[test]
    fn keys_rotate_with_an_overlap() {
        let day = 86_400_000;
        let (old, new) = (key("gw-a-2026", 1), key("gw-a-2027", 2));
        let mut trust = Trust::default();
        trust
            .add(Grant {
                not_after_ms: Some(NOW + 10 * day),
                ..grant(&old, &["gw-a"], &["paris-1"])
            })
            .unwrap();
        trust
            .add(Grant {
                not_before_ms: Some(NOW + 5 * day),
                ..grant(&new, &["gw-a"], &["paris-1"])
            })
            .unwrap();
        let mut v = Verifier::with_trust(trust).max_age_ms(u64::MAX);
        let at = |d: u64| NOW + d * day;
        let check = |v: &mut Verifier, k: &SigningKey, seq: u64, day: u64| {
            v.check(&sign(&of("gw-a", "paris-1", seq, at(day)), k), at(day))
        };
        // Before the overlap: only the old key.
        assert!(matches!(check(&mut v, &old, 1, 1), Verdict::Accepted(_)));
        let early = rejected(check(&mut v, &new, 2, 1)).to_string();
        assert!(early.contains("is not valid before"), "{early}");
        // During it: both (a gateway switched to its new key, or not yet).
        assert!(matches!(check(&mut v, &old, 3, 6), Verdict::Accepted(_)));
        assert!(matches!(check(&mut v, &new, 4, 7), Verdict::Accepted(_)));
        // After it: only the new one.
        let late = rejected(check(&mut v, &old, 5, 11)).to_string();
        assert!(late.contains("expired at"), "{late}");
        assert!(matches!(check(&mut v, &new, 6, 11), Verdict::Accepted(_)));
    }

    #[test]
    fn a_bare_public_key_speaks_for_the_first_gateway_it_signs_for() {
        let k = key("k1", 1);
        let mut v = Verifier::new(vec![k.public()]);
        assert!(matches!(
            v.check(&sign(&of("gw-a", "paris-1", 1, NOW), &k), NOW),
            Verdict::Accepted(_)
        ));
        let other = rejected(v.check(&sign(&of("gw-b", "paris-1", 1, NOW), &k), NOW));
        assert!(
            other.to_string().contains("bound to gateway gw-a"),
            "{other}"
        );
        assert!(matches!(
            v.check(&sign(&of("gw-a", "lyon-2", 2, NOW), &k), NOW),
            Verdict::Accepted(_)
        ));
    }

    #[test]
    fn accepts_once_then_deduplicates() {
        let mut v = verifier();
        let p = sign(&trigger(5, NOW - 1000), &key("k1", 1));
        let Verdict::Accepted(a) = v.check(&p, NOW) else {
            panic!("not accepted");
        };
        assert_eq!(a.trigger.seq, 5);
        assert_eq!(a.key_id.as_str(), "k1");
        assert!(matches!(
            v.check(&p, NOW),
            Verdict::Duplicate { seq: 5, .. }
        ));
        assert_eq!(
            describe(&a.trigger),
            "EVACUATE (was prepare) site paris-1 | off-gas: off-gas on node-b1 = 180 ppm (threshold 50 ppm) | seq 5 from gw-1 (key k1) at 2023-11-14T22:14:59.000Z"
        );
    }

    #[test]
    fn rejects_each_kind_with_its_reason() {
        let mut v = verifier();
        let good = key("k1", 1);
        // Forged: the right key id, another key.
        let forged = sign(&trigger(5, NOW), &key("k1", 2));
        assert_eq!(rejected(v.check(&forged, NOW)).kind(), "bad-signature");
        // Tampered: a field changed after signing.
        let tampered = String::from_utf8(sign(&trigger(5, NOW), &good))
            .unwrap()
            .replace("\"evacuate\"", "\"watch\"");
        assert_eq!(
            rejected(v.check(tampered.as_bytes(), NOW)).kind(),
            "bad-signature"
        );
        let unsigned = encode_vec(&trigger(5, NOW)).unwrap();
        assert_eq!(rejected(v.check(&unsigned, NOW)), Rejection::Unsigned);
        let other = sign(&trigger(5, NOW), &key("k9", 1));
        assert_eq!(rejected(v.check(&other, NOW)).kind(), "unknown-key");
        assert_eq!(rejected(v.check(b"{\"level\":", NOW)).kind(), "malformed");
        let stale = sign(&trigger(5, NOW - 700_000), &good);
        assert_eq!(
            rejected(v.check(&stale, NOW)).to_string(),
            "stale: issued 700 s ago, more than the maximum age of 600 s"
        );
        // Nothing above was accepted: seq 5 is still new.
        assert!(matches!(
            v.check(&sign(&trigger(5, NOW), &good), NOW),
            Verdict::Accepted(_)
        ));
        assert!(matches!(
            v.check(&sign(&trigger(9, NOW), &good), NOW),
            Verdict::Accepted(_)
        ));
        let replay = sign(&trigger(7, NOW), &good);
        assert_eq!(
            rejected(v.check(&replay, NOW)).to_string(),
            "replayed: seq 7 from gateway gw-1 is not above the last accepted (9)"
        );
        // Junk after the signature member.
        let p = String::from_utf8(sign(&trigger(10, NOW), &good)).unwrap();
        let junk = format!("{},\"x\":1}}", &p[..p.len() - 1]);
        assert_eq!(rejected(v.check(junk.as_bytes(), NOW)).kind(), "malformed");
    }

    #[test]
    fn a_restored_ledger_rejects_replays_and_gaps_are_reported_once() {
        let good = key("k1", 1);
        let mut v = verifier();
        for seq in [5, 6] {
            assert!(matches!(
                v.check(&sign(&trigger(seq, NOW), &good), NOW),
                Verdict::Accepted(_)
            ));
        }
        let ledger = v.ledger();
        let gw = GatewayId::new("gw-1").unwrap();
        assert_eq!(ledger.last(&gw), Some(6));
        // A new run: without the ledger, an old trigger would be accepted again.
        let mut fresh = verifier();
        assert!(matches!(
            fresh.check(&sign(&trigger(5, NOW), &good), NOW),
            Verdict::Accepted(_)
        ));
        let mut v = verifier().with_ledger(&ledger);
        assert_eq!(v.last_accepted(&gw), Some(6));
        assert!(matches!(
            v.check(&sign(&trigger(6, NOW), &good), NOW),
            Verdict::Duplicate { seq: 6, .. }
        ));
        assert_eq!(
            rejected(v.check(&sign(&trigger(4, NOW), &good), NOW)).kind(),
            "replayed"
        );
        // The retained state is at seq 9: 7 to 9 were missed, said once.
        let state = v
            .check_state(&sign(&trigger(9, NOW - 900_000), &good), NOW)
            .unwrap();
        assert_eq!((state.trigger.seq, state.missed), (9, Some((7, 9))));
        let again = v
            .check_state(&sign(&trigger(9, NOW - 900_000), &good), NOW)
            .unwrap();
        assert_eq!(again.missed, None);
        // The trigger of seq 8 arrives late after all. About the site, whose state (seq 9)
        // was taken, it no longer holds; about a zone, it is news, and nothing more is missed.
        assert_eq!(
            rejected(v.check(&sign(&trigger(8, NOW), &good), NOW)).kind(),
            "superseded"
        );
        let mut zone = trigger(8, NOW);
        zone.zone = Some(ZoneId::new("b1").unwrap());
        let Verdict::Accepted(a) = v.check(&sign(&zone, &good), NOW) else {
            panic!("seq 8 not accepted");
        };
        assert_eq!(a.missed, None);
        // An older state of the zone is never taken after it, even after a restart.
        let mut old_zone = trigger(7, NOW - 900_000);
        old_zone.zone = zone.zone.clone();
        let mut restarted = verifier().with_ledger(&v.ledger());
        assert_eq!(
            restarted
                .check_state(&sign(&old_zone, &good), NOW)
                .unwrap_err()
                .kind(),
            "old-state"
        );
        let Verdict::Accepted(a) = v.check(&sign(&trigger(12, NOW), &good), NOW) else {
            panic!("seq 12 not accepted");
        };
        assert_eq!(a.missed, Some((10, 11)));
        assert_eq!(
            v.check_state(&sign(&trigger(12, NOW), &key("k9", 1)), NOW)
                .unwrap_err()
                .kind(),
            "unknown-key"
        );
    }

    fn status(state: Presence, epoch: u64, session: u64, beat: u64, at: u64) -> GatewayStatus {
        let mut st = GatewayStatus::new(
            GatewayId::new("gw-1").unwrap(),
            SiteId::new("paris-1").unwrap(),
            state,
            "0.1.0",
            3,
            4,
            at,
        );
        st.epoch = Some(epoch);
        st.session = Some(session);
        st.beat = Some(beat);
        st.heartbeat_s = Some(10);
        st
    }

    fn sign_status(st: &GatewayStatus, k: &SigningKey) -> Vec<u8> {
        let b = encode_vec(st).unwrap();
        signed_vec(&b, &k.sign(&b)).unwrap()
    }

    fn status_kind(v: StatusVerdict) -> String {
        match v {
            StatusVerdict::Accepted(a) => {
                format!(
                    "accepted {:?}{}",
                    a.status.state,
                    if a.silent { " silent" } else { "" }
                )
            }
            StatusVerdict::Duplicate { .. } => "duplicate".into(),
            StatusVerdict::Rejected(r) => r.kind().into(),
        }
    }

    #[test]
    fn statuses_are_ordered_per_connection_and_a_replayed_will_or_heartbeat_is_refused() {
        let k = key("k1", 1);
        let mut v = verifier();
        let e = 1_700_000_000;
        let mut check = |st: &GatewayStatus| status_kind(v.check_status(&sign_status(st, &k), NOW));
        // Connection 1's will (it died), and connection 2 online, heart-beating.
        let will_1 = status(Presence::Offline, e, 1, 0, NOW - 60_000);
        assert_eq!(check(&will_1), "accepted Offline");
        assert_eq!(
            check(&status(Presence::Online, e, 2, 0, NOW - 20_000)),
            "accepted Online"
        );
        assert_eq!(
            check(&status(Presence::Online, e, 2, 2, NOW)),
            "accepted Online"
        );
        // Connection 1's will again (another path, or sent again): nothing new.
        assert_eq!(check(&will_1), "duplicate");
        // A heartbeat of connection 2 sent again, and the same one twice.
        assert_eq!(
            check(&status(Presence::Online, e, 2, 1, NOW - 10_000)),
            "replayed"
        );
        assert_eq!(check(&status(Presence::Online, e, 2, 2, NOW)), "duplicate");
        // Another connection of the same boot (to another broker), older in number: its own.
        assert_eq!(
            check(&status(Presence::Online, e, 3, 5, NOW)),
            "accepted Online"
        );
        // Connection 2's will (beat 0) ends it; a heartbeat of it replayed cannot revive it.
        assert_eq!(
            check(&status(Presence::Offline, e, 2, 0, NOW - 20_000)),
            "accepted Offline"
        );
        assert_eq!(check(&status(Presence::Online, e, 2, 3, NOW)), "replayed");
        // A new start: a higher epoch, connections counted again; then a will of the earlier
        // boot sent again cannot mark the gateway offline.
        assert_eq!(
            check(&status(Presence::Online, e + 50, 1, 0, NOW)),
            "accepted Online"
        );
        assert_eq!(
            check(&status(Presence::Offline, e, 3, 0, NOW - 60_000)),
            "old-session"
        );
        // An online status three heartbeats old is taken, and said to be silent.
        assert_eq!(
            check(&status(Presence::Online, e + 50, 2, 9, NOW - 31_000)),
            "accepted Online silent"
        );
        // From the future, or with an epoch far beyond its time.
        assert_eq!(
            check(&status(Presence::Online, e + 50, 1, 1, NOW + 61_000)),
            "future"
        );
        assert_eq!(
            check(&status(Presence::Online, NOW, 1, 1, NOW)),
            "epoch-ahead"
        );
    }

    #[test]
    fn a_forged_status_is_refused_with_its_reason() {
        let (k, other) = (key("k1", 1), key("k2", 2));
        let mut v = Verifier::with_trust({
            let mut t = Trust::default();
            t.add(grant(&k, &["gw-1"], &["paris-1"])).unwrap();
            t.add(grant(&other, &["gw-2"], &["paris-1"])).unwrap();
            t
        })
        .site(SiteId::new("paris-1").unwrap());
        let st = status(Presence::Offline, 1_700_000_000, 1, 0, NOW);
        let unsigned = encode_vec(&st).unwrap();
        assert_eq!(status_kind(v.check_status(&unsigned, NOW)), "unsigned");
        // gw-2's key signing that gw-1 is offline.
        assert_eq!(
            status_kind(v.check_status(&sign_status(&st, &other), NOW)),
            "key-not-granted"
        );
        let mut tampered = sign_status(&st, &k);
        let field = b"\"devices_healthy\":3";
        let at = tampered
            .windows(field.len())
            .position(|w| w == field)
            .unwrap();
        tampered[at + field.len() - 1] = b'4';
        assert_eq!(status_kind(v.check_status(&tampered, NOW)), "bad-signature");
        let mut elsewhere = st.clone();
        elsewhere.site = SiteId::new("lyon-2").unwrap();
        assert_eq!(
            status_kind(v.check_status(&sign_status(&elsewhere, &k), NOW)),
            "key-not-granted"
        );
        let mut bare = st.clone();
        bare.session = None;
        assert_eq!(
            status_kind(v.check_status(&sign_status(&bare, &k), NOW)),
            "malformed"
        );
    }

    #[test]
    fn epochs_rise_with_seq_and_cannot_be_poisoned() {
        let k = key("k1", 1);
        let mut v = verifier();
        let with = |seq: u64, epoch: u64| {
            let mut t = trigger(seq, NOW);
            t.epoch = Some(epoch);
            sign(&t, &k)
        };
        let e = NOW / 1000 - 100;
        assert!(matches!(v.check(&with(10, e), NOW), Verdict::Accepted(_)));
        // A boot epoch far above its time is refused, and remembered nowhere.
        assert_eq!(rejected(v.check(&with(11, NOW), NOW)).kind(), "epoch-ahead");
        assert!(matches!(
            v.check(&with(11, e + 1), NOW),
            Verdict::Accepted(_)
        ));
        // A higher seq from an earlier boot: not a genuine gateway.
        assert_eq!(rejected(v.check(&with(12, e), NOW)).kind(), "old-epoch");
        assert!(matches!(
            v.check(&with(12, e + 1), NOW),
            Verdict::Accepted(_)
        ));
        // A trigger without an epoch (a gateway older than epochs) is judged by seq alone.
        assert!(matches!(
            v.check(&sign(&trigger(13, NOW), &k), NOW),
            Verdict::Accepted(_)
        ));
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_payloads_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400)) {
            let _ = verifier().check(&bytes, NOW);
        }
    }
}
