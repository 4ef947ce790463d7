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
//! 5. **wrong site** — a trigger about another site than the one watched;
//! 6. **duplicate** — the same (`gateway`, `seq`) as one accepted (another broker, a re-send):
//!    not an error, and not acted on twice;
//! 7. **replayed** — a `seq` at or below the last one accepted from that gateway, and not a
//!    duplicate: an old trigger published again;
//! 8. **stale** — `issued_at_ms` older than the maximum age: old news, whatever its `seq`;
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

mod ledger;
pub use ledger::{LEDGER_SCHEMA, Ledger, LedgerError};

/// The default maximum age of a trigger: 10 minutes.
pub const DEFAULT_MAX_AGE_MS: u64 = 600_000;

/// How many accepted (`gateway`, `seq`) pairs per gateway are remembered for de-duplication.
pub const DEDUP_WINDOW: usize = 4096;

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
}

impl Rejection {
    /// A short machine name: `malformed`, `unsigned`, `unknown-key`, `bad-signature`,
    /// `wrong-site`, `replayed`, `stale`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "malformed",
            Self::Unsigned => "unsigned",
            Self::UnknownKey(_) => "unknown-key",
            Self::BadSignature(_) => "bad-signature",
            Self::WrongSite { .. } => "wrong-site",
            Self::Replayed { .. } => "replayed",
            Self::Stale { .. } => "stale",
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
    keys: HashMap<KeyId, PublicKey>,
    site: Option<SiteId>,
    max_age_ms: u64,
    seen: HashMap<GatewayId, Seen>,
}

impl Verifier {
    /// A verifier trusting `keys`, any site, with the default maximum age.
    pub fn new(keys: Vec<PublicKey>) -> Verifier {
        Verifier {
            keys: keys.into_iter().map(|k| (k.key_id().clone(), k)).collect(),
            site: None,
            max_age_ms: DEFAULT_MAX_AGE_MS,
            seen: HashMap::new(),
        }
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
        let key = self
            .keys
            .get(&signature.key_id)
            .ok_or_else(|| Rejection::UnknownKey(signature.key_id.to_string()))?;
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
