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
//! 6. **wrong site** — a trigger about another site than the one watched;
//! 7. **duplicate** — the same (`gateway`, `seq`) as one accepted (another broker, a re-send):
//!    not an error, and not acted on twice;
//! 8. **replayed** — a `seq` at or below the last one accepted from that gateway, and not a
//!    duplicate: an old trigger published again;
//! 9. **future** — `issued_at_ms` more than [`MAX_SKEW_MS`] ahead of the controller's clock;
//! 10. **seq ahead** — a `seq` more than [`MAX_SEQ_AHEAD`] above its own `issued_at_ms`:
//!     taken, it would make every later trigger of the gateway a replay (neither is ever
//!     remembered as the last `seq`);
//! 11. **stale** — `issued_at_ms` older than the maximum age: old news, whatever its `seq`;
//!
//! and otherwise **accepted**, once. The trigger a controller acts on is decoded from the
//! **signed bytes** (see [`firebreak_protocols::signed`]), never from anything outside them.
//!
//! A controller that reconnects catches up: [`Verifier::check_state`] verifies a retained
//! `state` message, and an accepted trigger or a state says which `seq`s of its gateway were
//! **missed** — above the last one accepted, never accepted. What was accepted survives a
//! restart in a [`Ledger`] ([`Verifier::ledger`], [`Verifier::with_ledger`]), so that a replay
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
//! }
//! ```

use std::collections::{BTreeSet, HashMap};
use std::fmt;

use firebreak_protocols::message::{self, MessageError};
use firebreak_protocols::signed;
use firebreak_protocols::{GatewayId, KeyId, SiteId, Trigger};

use crate::keys::PublicKey;
use crate::trust::{Grant, Trust};

mod ledger;
pub use ledger::{LEDGER_SCHEMA, Ledger, LedgerError};

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
}

impl Rejection {
    /// A short machine name: `malformed`, `unsigned`, `unknown-key`, `bad-signature`,
    /// `wrong-site`, `replayed`, `stale`, `key-not-granted`, `future`, `seq-ahead`.
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
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed(why) => write!(f, "malformed: {why}"),
            Self::Unsigned => f.write_str("unsigned: the trigger carries no signature"),
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
}

#[derive(Debug, Default)]
struct Seen {
    last: u64,
    recent: BTreeSet<u64>,
    /// The highest `seq` reported missed: a gap is reported once.
    noted: u64,
}

impl Seen {
    /// The highest `seq` accounted for (accepted or reported missed), once one was accepted.
    fn known(&self) -> Option<u64> {
        (!self.recent.is_empty()).then_some(self.last.max(self.noted))
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
        }
    }

    /// Whether the key that signed `trigger` may speak for it: not revoked, within its dates
    /// at `now_ms` (the controller's clock; the trigger's own time for a retained state,
    /// which is as old as its last change), granted its gateway and site.
    fn authorize(
        &self,
        key_id: &KeyId,
        trigger: &Trigger,
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
        let at = now_ms.unwrap_or(trigger.issued_at_ms);
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
            Some(allowed) if !allowed.contains(&trigger.gateway) => {
                let list: Vec<&str> = allowed.iter().map(GatewayId::as_str).collect();
                return Err(not(format!(
                    "may sign for gateway {} only, not {}",
                    list.join(", "),
                    trigger.gateway
                )));
            }
            None => {
                if let Some(first) = self.pinned.get(key_id).filter(|g| **g != trigger.gateway) {
                    return Err(not(format!(
                        "is a bare public key, bound to gateway {first} (the first it signed for), not {}: a trust file grants a key more gateways",
                        trigger.gateway
                    )));
                }
            }
            Some(_) => {}
        }
        if let Some(sites) = grant.sites.as_ref().filter(|s| !s.contains(&trigger.site)) {
            let list: Vec<&str> = sites.iter().map(SiteId::as_str).collect();
            return Err(not(format!(
                "may sign for site {} only, not {}",
                list.join(", "),
                trigger.site
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
        let whole: Trigger = message::decode(payload).map_err(malformed)?;
        let Some(signature) = whole.signature else {
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
        let mut trigger: Trigger = message::decode(&canonical).map_err(malformed)?;
        trigger.signature = Some(signature.clone());
        Ok((trigger, signature.key_id))
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
                .filter(|(_, s)| !s.recent.is_empty())
                .map(|(g, s)| {
                    (
                        g.clone(),
                        ledger::Accepted {
                            last: s.last,
                            recent: s.recent.clone(),
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

    /// Checks a retained `state` message: its signature and site (it is as old as the last
    /// change, so neither its age nor its order is checked), and what it says was missed.
    /// Accepts nothing: the trigger itself may still arrive, and is then checked as any other.
    pub fn check_state(&mut self, payload: &[u8]) -> Result<State, Rejection> {
        let (trigger, key_id) = self.verify_signature(payload)?;
        self.authorize(&key_id, &trigger, None)?;
        seq_in_time(&trigger)?;
        if let Some(site) = self.site.as_ref().filter(|s| **s != trigger.site) {
            return Err(Rejection::WrongSite {
                found: trigger.site.to_string(),
                expected: site.to_string(),
            });
        }
        let mut missed = None;
        if let Some(seen) = self.seen.get_mut(&trigger.gateway)
            && let Some(known) = seen.known()
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

    /// Every check, in the order of the module docs; `now_ms` is the controller's clock.
    pub fn check(&mut self, payload: &[u8], now_ms: u64) -> Verdict {
        let (trigger, key_id) = match self.verify_signature(payload) {
            Ok(v) => v,
            Err(r) => return Verdict::Rejected(r),
        };
        if let Err(r) = self.authorize(&key_id, &trigger, Some(now_ms)) {
            return Verdict::Rejected(r);
        }
        let ahead_ms = trigger.issued_at_ms.saturating_sub(now_ms);
        if ahead_ms > MAX_SKEW_MS {
            return Verdict::Rejected(Rejection::Future { ahead_ms });
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
        Verdict::Accepted(Box::new(Accepted {
            trigger,
            key_id,
            payload: payload.to_vec(),
            missed,
        }))
    }
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
            v.check_state(&sign(&of("gw-b", "paris-1", 9, NOW), &a))
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
            v.check_state(&sign(&trigger(u64::MAX - 1, NOW), &k))
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
            .check_state(&sign(&trigger(9, NOW - 900_000), &good))
            .unwrap();
        assert_eq!((state.trigger.seq, state.missed), (9, Some((7, 9))));
        let again = v
            .check_state(&sign(&trigger(9, NOW - 900_000), &good))
            .unwrap();
        assert_eq!(again.missed, None);
        // The trigger of seq 8 arrives late after all: accepted, nothing more missed.
        let Verdict::Accepted(a) = v.check(&sign(&trigger(8, NOW), &good), NOW) else {
            panic!("seq 8 not accepted");
        };
        assert_eq!(a.missed, None);
        let Verdict::Accepted(a) = v.check(&sign(&trigger(12, NOW), &good), NOW) else {
            panic!("seq 12 not accepted");
        };
        assert_eq!(a.missed, Some((10, 11)));
        assert_eq!(
            v.check_state(&sign(&trigger(12, NOW), &key("k9", 1)))
                .unwrap_err()
                .kind(),
            "unknown-key"
        );
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_payloads_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400)) {
            let _ = verifier().check(&bytes, NOW);
        }
    }
}
