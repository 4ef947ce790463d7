//! Test vectors for verifiers in any language (`docs/vectors/triggers.json`): signed triggers,
//! good and bad, with the verdict the contract (docs/contract.md, "The subscriber side")
//! calls for. The vectors are made here, from fixed keys, and must equal the committed file
//! (FIREBREAK_WRITE_VECTORS=1 writes it anew); then every vector is checked against the
//! gateway's own `Verifier`, each with a fresh verifier at the file's `now_ms`, and against
//! the reference verifier in Python written from the contract alone
//! (`docs/examples/verify_trigger.py`, PyNaCl from scripts/test.sh's venv).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test code

mod common;

use std::path::PathBuf;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use firebreak_gateway::keys::{PUBLIC_KEY_SCHEMA, PublicKey, SigningKey};
use firebreak_gateway::subscribe::{StatusVerdict, Verdict, Verifier};
use firebreak_gateway::trust::{Grant, Trust};
use firebreak_protocols::message::encode_vec;
use firebreak_protocols::signed::signed_vec;
use firebreak_protocols::{
    DeviceId, Drill, GatewayId, GatewayStatus, IncidentId, KeyId, Level, Presence, Reason, RuleId,
    Signal, SiteId, Trigger, ZoneId,
};
use serde_json::{Value, json};

/// The controller's clock for every vector: 2026-01-15T12:00:00.000Z.
const NOW: u64 = 1_768_478_400_000;
/// The maximum age the vectors assume (the default).
const MAX_AGE_MS: u64 = 600_000;

fn file() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/vectors/triggers.json")
}

fn key(id: &str, seed: u8) -> SigningKey {
    SigningKey::from_seed(KeyId::new(id).unwrap(), &[seed; 32])
}

fn trigger(gateway: &str, site: &str, seq: u64, issued_at_ms: u64) -> Trigger {
    let mut t = Trigger::new(
        GatewayId::new(gateway).unwrap(),
        seq,
        IncidentId::new(&format!("{gateway}-1768478000000")).unwrap(),
        SiteId::new(site).unwrap(),
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

fn sign(t: &Trigger, k: &SigningKey) -> String {
    let b = encode_vec(t).unwrap();
    String::from_utf8(signed_vec(&b, &k.sign(&b)).unwrap()).unwrap()
}

/// `canonical` with a signature object `{"key_id":…,"ed25519":…}` appended as the gateway
/// does (docs/contract.md, "What is signed").
fn attach(canonical: &str, key_id: &str, signature: &[u8; 64]) -> String {
    let head = canonical.strip_suffix('}').unwrap();
    format!(
        r#"{head},"signature":{{"key_id":"{key_id}","ed25519":"{}"}}}}"#,
        BASE64.encode(signature)
    )
}

/// The group order L of Ed25519, little-endian.
const L: [u8; 32] = [
    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
];

/// The signature with S replaced by S + L: the same point equation, a non-canonical encoding
/// (RFC 8032 5.1.7 requires S < L).
fn non_canonical(sig: [u8; 64]) -> [u8; 64] {
    let mut out = sig;
    let mut carry = 0u16;
    for i in 0..32 {
        let v = u16::from(sig[32 + i]) + u16::from(L[i]) + carry;
        out[32 + i] = v as u8;
        carry = v >> 8;
    }
    out
}

/// The trusted keys and every vector, in order.
fn vectors() -> (Vec<KeyEntry>, Vec<VectorEntry>) {
    let a = key("gw-paris-1a-2026", 1);
    let revoked = key("gw-paris-1b-2025", 2);
    let stranger = key("gw-paris-1a-2026", 3); // the same key id, another key
    let unknown = key("gw-nobody", 4);
    // A small-order public key: the identity point (y = 1), which "verifies" R = identity,
    // S = 0 for any message under a lax check; RFC 8032 verifiers in strict mode refuse it.
    let weak_public = {
        let mut p = [0u8; 32];
        p[0] = 1;
        p
    };
    let grant = |key_id: &str, ed25519: String, gateway: &str, revoked: bool| KeyEntry {
        key_id: key_id.into(),
        ed25519,
        gateways: vec![gateway.into()],
        sites: vec!["paris-1".into()],
        revoked,
    };
    let keys = vec![
        grant(
            "gw-paris-1a-2026",
            a.public().base64(),
            "gw-paris-1a",
            false,
        ),
        grant(
            "gw-paris-1b-2025",
            revoked.public().base64(),
            "gw-paris-1b",
            true,
        ),
        grant("gw-weak", BASE64.encode(weak_public), "gw-weak", false),
    ];
    let good = trigger("gw-paris-1a", "paris-1", NOW - 60_000, NOW - 2_000);
    let signed_good = sign(&good, &a);
    let canonical = String::from_utf8(encode_vec(&good).unwrap()).unwrap();
    let sig = {
        let b = canonical.as_bytes();
        let s = a.sign(b);
        <[u8; 64]>::try_from(BASE64.decode(s.ed25519.as_str()).unwrap().as_slice()).unwrap()
    };
    let v = |name: &str, about: &str, payload: String, expect: &str| VectorEntry {
        name: name.to_string(),
        about: about.to_string(),
        payload,
        expect: expect.to_string(),
    };
    let mut out = vec![
        v(
            "valid",
            "signed by gw-paris-1a-2026, which is granted gateway gw-paris-1a and site paris-1",
            signed_good.clone(),
            "accepted",
        ),
        v(
            "tampered-byte",
            "the valid payload with the reason's value 180 changed to 181 after signing",
            signed_good.replacen("\"value\":180", "\"value\":181", 1),
            "bad-signature",
        ),
        v(
            "wrong-key",
            "the key id of gw-paris-1a-2026, signed by another key",
            sign(&good, &stranger),
            "bad-signature",
        ),
        v(
            "unknown-key",
            "signed by a key id nobody trusts",
            sign(&good, &unknown),
            "unknown-key",
        ),
        v(
            "unsigned",
            "the canonical bytes alone, no signature member",
            canonical.clone(),
            "unsigned",
        ),
        v(
            "key-for-another-gateway",
            "gw-paris-1a-2026 signs a trigger that says it is from gw-paris-1b",
            sign(
                &trigger("gw-paris-1b", "paris-1", NOW - 60_000, NOW - 2_000),
                &a,
            ),
            "key-not-granted",
        ),
        v(
            "key-for-another-site",
            "gw-paris-1a-2026 signs a trigger about site lyon-2",
            sign(
                &trigger("gw-paris-1a", "lyon-2", NOW - 60_000, NOW - 2_000),
                &a,
            ),
            "key-not-granted",
        ),
        v(
            "revoked-key",
            "signed by gw-paris-1b-2025, revoked in the trust list, for its own gateway",
            sign(
                &trigger("gw-paris-1b", "paris-1", NOW - 60_000, NOW - 2_000),
                &revoked,
            ),
            "key-not-granted",
        ),
        v(
            "junk-after-signature",
            "the valid payload with bytes after its final }",
            format!("{signed_good} x"),
            "malformed",
        ),
        v(
            "non-canonical-signature",
            "the valid signature with S + L for S (RFC 8032 5.1.7: S must be below L)",
            attach(&canonical, "gw-paris-1a-2026", &non_canonical(sig)),
            "bad-signature",
        ),
        v(
            "small-order-key",
            "gw-weak's public key is the identity point; R = identity, S = 0 (a lax check passes it)",
            {
                let weak = trigger("gw-weak", "paris-1", NOW - 60_000, NOW - 2_000);
                let c = String::from_utf8(encode_vec(&weak).unwrap()).unwrap();
                let mut s = [0u8; 64];
                s[0] = 1;
                attach(&c, "gw-weak", &s)
            },
            "bad-signature",
        ),
        v(
            "duplicate-json-key",
            "signed canonical bytes in which \"seq\" appears twice (a decoder must refuse, not pick one)",
            {
                let dup = canonical.replacen(
                    "\"seq\":",
                    &format!("\"seq\":{},\"seq\":", NOW - 59_999),
                    1,
                );
                let s = a.sign(dup.as_bytes());
                let sig =
                    <[u8; 64]>::try_from(BASE64.decode(s.ed25519.as_str()).unwrap().as_slice())
                        .unwrap();
                attach(&dup, "gw-paris-1a-2026", &sig)
            },
            "malformed",
        ),
        v(
            "future",
            "issued an hour after now_ms (more than the 60 s skew allowed)",
            sign(
                &trigger("gw-paris-1a", "paris-1", NOW - 60_000, NOW + 3_600_000),
                &a,
            ),
            "future",
        ),
        v(
            "seq-ahead",
            "a seq 10,000,001 above its own issued_at_ms (it would make later triggers replays)",
            sign(
                &trigger(
                    "gw-paris-1a",
                    "paris-1",
                    NOW - 2_000 + 10_000_001,
                    NOW - 2_000,
                ),
                &a,
            ),
            "seq-ahead",
        ),
        v(
            "stale",
            "issued 11 minutes before now_ms (the maximum age is 600 s)",
            sign(
                &trigger("gw-paris-1a", "paris-1", NOW - 700_000, NOW - 660_000),
                &a,
            ),
            "stale",
        ),
    ];
    out.shrink_to_fit();
    (keys, out)
}

/// A trusted key in the file.
#[derive(serde::Serialize)]
struct KeyEntry {
    key_id: String,
    ed25519: String,
    gateways: Vec<String>,
    sites: Vec<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    revoked: bool,
}

/// One vector in the file.
#[derive(serde::Serialize)]
struct VectorEntry {
    name: String,
    about: String,
    payload: String,
    expect: String,
}

/// The file: structs, so that its keys come in one order whatever features `serde_json` is
/// built with (a workspace build may turn on `preserve_order`).
#[derive(serde::Serialize)]
struct Document {
    schema: &'static str,
    about: &'static str,
    site: &'static str,
    now_ms: u64,
    max_age_ms: u64,
    keys: Vec<KeyEntry>,
    vectors: Vec<VectorEntry>,
}

fn document() -> String {
    let (keys, vectors) = vectors();
    let doc = Document {
        schema: "firebreak.trigger-vectors/1",
        about: "Signed triggers and the verdict docs/contract.md calls for. Check each vector with a fresh verifier that trusts `keys` (each bound to its gateways and sites, as a trust file would), watches site `site`, with the controller's clock at `now_ms` and the maximum age `max_age_ms`. `expect` is `accepted` or the rejection's kind. `payload` is the exact text received (UTF-8).",
        site: "paris-1",
        now_ms: NOW,
        max_age_ms: MAX_AGE_MS,
        keys,
        vectors,
    };
    serde_json::to_string_pretty(&doc).unwrap() + "\n"
}

#[test]
fn the_vectors_file_is_what_the_keys_make() {
    let made = document();
    if std::env::var("FIREBREAK_WRITE_VECTORS").as_deref() == Ok("1") {
        std::fs::create_dir_all(file().parent().unwrap()).unwrap();
        std::fs::write(file(), &made).unwrap();
    }
    let committed = std::fs::read_to_string(file()).unwrap_or_default();
    assert!(
        committed == made,
        "docs/vectors/triggers.json differs from what the keys make: FIREBREAK_WRITE_VECTORS=1 cargo test -p firebreak-gateway --test vectors, then review the diff"
    );
}

/// What a vectors file's `keys` grant, as a trust file would.
fn trust_of(doc: &Value) -> Trust {
    let mut trust = Trust::default();
    for k in doc["keys"].as_array().unwrap() {
        let text = json!({
            "schema": PUBLIC_KEY_SCHEMA, "key_id": k["key_id"], "ed25519": k["ed25519"]
        })
        .to_string();
        let ids = |field: &str| -> Vec<String> {
            k[field]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_string())
                .collect()
        };
        trust
            .add(Grant {
                key: PublicKey::parse(text.as_bytes()).unwrap(),
                gateways: Some(ids("gateways").iter().map(|g| g.parse().unwrap()).collect()),
                sites: Some(ids("sites").iter().map(|s| s.parse().unwrap()).collect()),
                not_before_ms: None,
                not_after_ms: None,
                revoked: k["revoked"].as_bool().unwrap_or(false),
            })
            .unwrap();
    }
    trust
}

#[test]
fn the_gateways_verifier_gives_every_expected_verdict() {
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(file()).unwrap()).unwrap();
    let trust = trust_of(&doc);
    let site: SiteId = doc["site"].as_str().unwrap().parse().unwrap();
    let now = doc["now_ms"].as_u64().unwrap();
    let mut seen = Vec::new();
    for vector in doc["vectors"].as_array().unwrap() {
        let name = vector["name"].as_str().unwrap();
        let payload = vector["payload"].as_str().unwrap();
        let mut verifier = Verifier::with_trust(trust.clone())
            .site(site.clone())
            .max_age_ms(doc["max_age_ms"].as_u64().unwrap());
        let got = match verifier.check(payload.as_bytes(), now) {
            Verdict::Drill(_) => "drill".to_string(),
            Verdict::Accepted(_) => "accepted".to_string(),
            Verdict::Duplicate { .. } => "duplicate".to_string(),
            Verdict::Rejected(r) => r.kind().to_string(),
        };
        assert_eq!(got, vector["expect"].as_str().unwrap(), "vector {name}");
        seen.push(name.to_string());
    }
    for needed in [
        "tampered-byte",
        "wrong-key",
        "key-for-another-site",
        "junk-after-signature",
        "non-canonical-signature",
        "small-order-key",
        "duplicate-json-key",
        "future",
    ] {
        assert!(seen.iter().any(|s| s == needed), "no {needed} vector");
    }
}

#[test]
fn the_python_verifier_gives_every_expected_verdict() {
    let Some(python) = common::python() else {
        return;
    };
    let out = std::process::Command::new(python)
        .arg(common::workspace().join("docs/examples/verify_trigger.py"))
        .arg("vectors")
        .arg(file())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(file()).unwrap()).unwrap();
    let count = doc["vectors"].as_array().unwrap().len();
    assert_eq!(
        text.lines().filter(|l| l.starts_with("ok ")).count(),
        count,
        "{text}"
    );
}

// ---- Sequences: statuses, states and epochs, judged in order by one verifier ----

fn sequences_file() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/vectors/sequences.json")
}

/// The boot epoch of the vectors' gateway: it started an hour before `NOW`.
const EPOCH: u64 = NOW / 1000 - 3600;

/// gw-paris-1a's online status with `ups-b1` and channel 2 of `node-b1` under maintenance.
fn with_maintenance(key: &SigningKey) -> String {
    let mut s = status("gw-paris-1a", Presence::Online, 1, 3, NOW - 5_000);
    for (device, channel) in [("ups-b1", None), ("node-b1", Some(2))] {
        s.maintenance
            .push(firebreak_protocols::MaintenanceNote {
                device: firebreak_protocols::DeviceId::new(device).unwrap(),
                channel,
                since_ms: NOW - 600_000,
                until_ms: NOW + 2_100_000,
            })
            .unwrap();
    }
    sign_status(&s, key)
}

fn status(gateway: &str, state: Presence, session: u64, beat: u64, at: u64) -> GatewayStatus {
    let mut st = GatewayStatus::new(
        GatewayId::new(gateway).unwrap(),
        SiteId::new("paris-1").unwrap(),
        state,
        "0.1.0",
        11,
        12,
        at,
    );
    st.epoch = Some(EPOCH);
    st.session = Some(session);
    st.beat = Some(beat);
    st.heartbeat_s = Some(10);
    st
}

fn sign_status(st: &GatewayStatus, k: &SigningKey) -> String {
    let b = encode_vec(st).unwrap();
    String::from_utf8(signed_vec(&b, &k.sign(&b)).unwrap()).unwrap()
}

/// A trigger of gw-paris-1a with its boot epoch, about the site or a zone.
/// A drill of gw-paris-1a carrying trigger seq `seq`, signed by `k`.
fn sign_drill(seq: u64, at: u64, gateway: &str, k: &SigningKey) -> String {
    let mut t = scoped(seq, EPOCH, Some("b1"), at);
    t.gateway = GatewayId::new(gateway).unwrap();
    t.incident = IncidentId::new(&format!("drill-{at}")).unwrap();
    t.previous = Level::Normal;
    t.reasons.clear();
    let b = encode_vec(&Drill::new(t).unwrap()).unwrap();
    String::from_utf8(signed_vec(&b, &k.sign(&b)).unwrap()).unwrap()
}

fn scoped(seq: u64, epoch: u64, zone: Option<&str>, at: u64) -> Trigger {
    let mut t = trigger("gw-paris-1a", "paris-1", seq, at);
    t.epoch = Some(epoch);
    t.zone = zone.map(|z| ZoneId::new(z).unwrap());
    t
}

/// One message of a sequence.
#[derive(serde::Serialize)]
struct Step {
    kind: &'static str,
    payload: String,
    expect: &'static str,
}

/// Messages given in order to one fresh verifier.
#[derive(serde::Serialize)]
struct Sequence {
    name: &'static str,
    about: &'static str,
    steps: Vec<Step>,
}

#[derive(serde::Serialize)]
struct SequenceDocument {
    schema: &'static str,
    about: &'static str,
    site: &'static str,
    now_ms: u64,
    max_age_ms: u64,
    keys: Vec<KeyEntry>,
    vectors: Vec<Sequence>,
}

fn sequences() -> Vec<Sequence> {
    use Presence::{Offline, Online};
    let a = key("gw-paris-1a-2026", 1);
    let st = |state, session, beat, at| {
        sign_status(&status("gw-paris-1a", state, session, beat, at), &a)
    };
    let step = |kind, payload, expect| Step {
        kind,
        payload,
        expect,
    };
    let status_step = |payload, expect| step("status", payload, expect);
    let one = |name, about, s: Step| Sequence {
        name,
        about,
        steps: vec![s],
    };
    let seq = NOW - 60_000;
    // The will of connection 1 of the boot before this one (two hours earlier).
    let earlier_will = {
        let mut s = status("gw-paris-1a", Offline, 1, 0, NOW - 7_200_000);
        s.epoch = Some(EPOCH - 7_200);
        sign_status(&s, &a)
    };
    vec![
        one(
            "status-online",
            "a gateway's signed online status",
            status_step(st(Online, 1, 0, NOW - 5_000), "accepted"),
        ),
        one(
            "status-unsigned",
            "an offline status without a signature: anyone who may publish could fake it",
            status_step(
                String::from_utf8(
                    encode_vec(&status("gw-paris-1a", Offline, 1, 0, NOW - 5_000)).unwrap(),
                )
                .unwrap(),
                "unsigned",
            ),
        ),
        one(
            "status-key-for-another-gateway",
            "gw-paris-1a-2026 signs that gw-paris-1b is offline",
            status_step(
                sign_status(&status("gw-paris-1b", Offline, 1, 0, NOW - 5_000), &a),
                "key-not-granted",
            ),
        ),
        one(
            "status-tampered",
            "a signed status whose devices_healthy was changed from 11 to 10 after signing",
            status_step(
                st(Online, 1, 0, NOW - 5_000).replacen(
                    "\"devices_healthy\":11",
                    "\"devices_healthy\":10",
                    1,
                ),
                "bad-signature",
            ),
        ),
        one(
            "status-maintenance",
            "a signed online status listing a device and one channel of another under maintenance (their readings are not evidence at that gateway until until_ms)",
            status_step(with_maintenance(&a), "accepted"),
        ),
        one(
            "status-maintenance-removed",
            "that status with its maintenance list emptied after signing: a forger hiding that a witness is out",
            status_step(
                {
                    let signed = with_maintenance(&a);
                    let start = signed.find(",\"maintenance\":[").unwrap();
                    let end = start + signed[start..].find(']').unwrap() + 1;
                    format!("{}{}", &signed[..start], &signed[end..])
                },
                "bad-signature",
            ),
        ),
        one(
            "status-future",
            "a status issued an hour after now_ms",
            status_step(st(Online, 1, 0, NOW + 3_600_000), "future"),
        ),
        one(
            "status-epoch-ahead",
            "a status whose boot epoch is 1,000,001 above its issue time in seconds",
            status_step(
                {
                    let mut s = status("gw-paris-1a", Offline, 1, 0, NOW - 5_000);
                    s.epoch = Some((NOW - 5_000) / 1000 + 1_000_001);
                    sign_status(&s, &a)
                },
                "epoch-ahead",
            ),
        ),
        Sequence {
            name: "old-will-replayed",
            about: "the will of connection 1 of the boot before (epoch E-1), then connection 1 of boot E online, then that old will sent again: it must not mark the gateway offline",
            steps: vec![
                status_step(earlier_will.clone(), "accepted"),
                status_step(st(Online, 1, 0, NOW - 20_000), "accepted"),
                status_step(earlier_will.clone(), "old-session"),
            ],
        },
        Sequence {
            name: "will-again",
            about: "connection 1's will, connection 2 online, then connection 1's will again (from another broker or a bridge): nothing new",
            steps: vec![
                status_step(st(Offline, 1, 0, NOW - 120_000), "accepted"),
                status_step(st(Online, 2, 0, NOW - 20_000), "accepted"),
                status_step(st(Offline, 1, 0, NOW - 120_000), "duplicate"),
            ],
        },
        Sequence {
            name: "heartbeat-replayed",
            about: "heartbeat 3 of connection 2, then heartbeat 2 of it (older), then heartbeat 3 again",
            steps: vec![
                status_step(st(Online, 2, 3, NOW - 5_000), "accepted"),
                status_step(st(Online, 2, 2, NOW - 15_000), "replayed"),
                status_step(st(Online, 2, 3, NOW - 5_000), "duplicate"),
            ],
        },
        Sequence {
            name: "online-after-will",
            about: "connection 2 online, its will (beat 0), then a heartbeat of connection 2: a dead connection is not revived",
            steps: vec![
                status_step(st(Online, 2, 1, NOW - 15_000), "accepted"),
                status_step(st(Offline, 2, 0, NOW - 30_000), "accepted"),
                status_step(st(Online, 2, 2, NOW - 5_000), "replayed"),
            ],
        },
        Sequence {
            name: "two-connections",
            about: "a gateway has one connection per broker, each followed on its own: connection 2 online, then connection 1's will (the other broker lost it)",
            steps: vec![
                status_step(st(Online, 2, 0, NOW - 5_000), "accepted"),
                status_step(st(Offline, 1, 0, NOW - 60_000), "accepted"),
            ],
        },
        one(
            "status-silent",
            "an online status 31 s old with a 10 s heartbeat: taken, and the gateway is silent (more than 3 heartbeats)",
            status_step(st(Online, 1, 4, NOW - 31_000), "accepted"),
        ),
        Sequence {
            name: "old-state",
            about: "the trigger of zone b1 at seq S, then a retained state of zone b1 at seq S-10: older than what was seen for the zone",
            steps: vec![
                step(
                    "trigger",
                    sign(&scoped(seq, EPOCH, Some("b1"), NOW - 2_000), &a),
                    "accepted",
                ),
                step(
                    "state",
                    sign(&scoped(seq - 10, EPOCH, Some("b1"), NOW - 300_000), &a),
                    "old-state",
                ),
            ],
        },
        Sequence {
            name: "superseded",
            about: "the site's retained state at seq S, then a late trigger about the site at seq S-1: its level no longer holds",
            steps: vec![
                step(
                    "state",
                    sign(&scoped(seq, EPOCH, None, NOW - 2_000), &a),
                    "accepted",
                ),
                step(
                    "trigger",
                    sign(&scoped(seq - 1, EPOCH, None, NOW - 3_000), &a),
                    "superseded",
                ),
            ],
        },
        Sequence {
            name: "old-epoch",
            about: "a trigger of boot epoch E, then one with a higher seq from boot E-1",
            steps: vec![
                step(
                    "trigger",
                    sign(&scoped(seq, EPOCH, None, NOW - 2_000), &a),
                    "accepted",
                ),
                step(
                    "trigger",
                    sign(&scoped(seq + 1, EPOCH - 1, None, NOW - 1_000), &a),
                    "old-epoch",
                ),
            ],
        },
        one(
            "trigger-epoch-ahead",
            "a trigger whose boot epoch is 1,000,001 above its issue time in seconds",
            step(
                "trigger",
                sign(
                    &scoped(seq, (NOW - 2_000) / 1000 + 1_000_001, None, NOW - 2_000),
                    &a,
                ),
                "epoch-ahead",
            ),
        ),
        Sequence {
            name: "drill-between-triggers",
            about: "a trigger at seq S; a drill carrying seq S (the last trigger's: a drill takes no seq), on the drill topic and again on the triggers topic, is a drill both times, never a level, neither a duplicate nor a replay; on a state topic it is malformed; then the trigger at seq S+1 is accepted (no gap, no replay)",
            steps: vec![
                step(
                    "trigger",
                    sign(&scoped(seq, EPOCH, Some("b1"), NOW - 3_000), &a),
                    "accepted",
                ),
                step(
                    "drill",
                    sign_drill(seq, NOW - 2_000, "gw-paris-1a", &a),
                    "drill",
                ),
                step(
                    "trigger",
                    sign_drill(seq, NOW - 2_000, "gw-paris-1a", &a),
                    "drill",
                ),
                step(
                    "state",
                    sign_drill(seq, NOW - 2_000, "gw-paris-1a", &a),
                    "malformed",
                ),
                step(
                    "trigger",
                    sign(&scoped(seq + 1, EPOCH, Some("b1"), NOW - 1_000), &a),
                    "accepted",
                ),
            ],
        },
        one(
            "drill-forged",
            "a drill signed by another key under the gateway's key id",
            step(
                "drill",
                sign_drill(seq, NOW - 2_000, "gw-paris-1a", &key("gw-paris-1a-2026", 3)),
                "bad-signature",
            ),
        ),
        one(
            "drill-key-not-granted",
            "a drill for gateway gw-paris-1b signed by gw-paris-1a's key",
            step(
                "drill",
                sign_drill(seq, NOW - 2_000, "gw-paris-1b", &a),
                "key-not-granted",
            ),
        ),
        one(
            "drill-stale",
            "a drill issued 700 s before now_ms (a recording replayed)",
            step(
                "drill",
                sign_drill(seq, NOW - 700_000, "gw-paris-1a", &a),
                "stale",
            ),
        ),
        one(
            "trigger-marked-drill",
            "a firebreak.trigger/1 message that says drill: true (the field alone never makes a drill, nor a trigger)",
            step(
                "trigger",
                {
                    let b = encode_vec(&scoped(seq, EPOCH, None, NOW - 2_000)).unwrap();
                    let text = String::from_utf8(b).unwrap();
                    let marked = format!("{},\"drill\":true}}", text.strip_suffix('}').unwrap());
                    let s = a.sign(marked.as_bytes());
                    let sig =
                        <[u8; 64]>::try_from(BASE64.decode(s.ed25519.as_str()).unwrap().as_slice())
                            .unwrap();
                    attach(&marked, "gw-paris-1a-2026", &sig)
                },
                "malformed",
            ),
        ),
        one(
            "state-future",
            "a retained state issued an hour after now_ms",
            step(
                "state",
                sign(&scoped(seq, EPOCH, None, NOW + 3_600_000), &a),
                "future",
            ),
        ),
    ]
}

fn sequences_document() -> String {
    let doc = SequenceDocument {
        schema: "firebreak.sequence-vectors/1",
        about: "Signed triggers, retained states and gateway statuses, in sequences, with the verdict docs/contract.md calls for at each step. Give the steps of one vector, in order, to one fresh verifier that trusts `keys` (each bound to its gateways and sites), watches site `site`, with the controller's clock at `now_ms` and the maximum age `max_age_ms`. `kind` is trigger (from the triggers topic), state (a retained state), status (a gateway status) or drill (from a drill topic). `expect` is `accepted`, `duplicate`, `drill` (a genuine drill: reported, never a level, nothing the verifier holds changes) or the rejection's kind.",
        site: "paris-1",
        now_ms: NOW,
        max_age_ms: MAX_AGE_MS,
        keys: vectors().0,
        vectors: sequences(),
    };
    serde_json::to_string_pretty(&doc).unwrap() + "\n"
}

#[test]
fn the_sequences_file_is_what_the_keys_make() {
    let made = sequences_document();
    if std::env::var("FIREBREAK_WRITE_VECTORS").as_deref() == Ok("1") {
        std::fs::write(sequences_file(), &made).unwrap();
    }
    let committed = std::fs::read_to_string(sequences_file()).unwrap_or_default();
    assert!(
        committed == made,
        "docs/vectors/sequences.json differs from what the keys make: FIREBREAK_WRITE_VECTORS=1 cargo test -p firebreak-gateway --test vectors, then review the diff"
    );
}

#[test]
fn the_gateways_verifier_gives_every_expected_verdict_in_sequence() {
    let doc: Value =
        serde_json::from_str(&std::fs::read_to_string(sequences_file()).unwrap()).unwrap();
    let trust = trust_of(&doc);
    let site: SiteId = doc["site"].as_str().unwrap().parse().unwrap();
    let now = doc["now_ms"].as_u64().unwrap();
    let mut kinds = Vec::new();
    for vector in doc["vectors"].as_array().unwrap() {
        let name = vector["name"].as_str().unwrap();
        let mut verifier = Verifier::with_trust(trust.clone())
            .site(site.clone())
            .max_age_ms(doc["max_age_ms"].as_u64().unwrap());
        for (i, step) in vector["steps"].as_array().unwrap().iter().enumerate() {
            let payload = step["payload"].as_str().unwrap().as_bytes();
            let got = match step["kind"].as_str().unwrap() {
                "trigger" => match verifier.check(payload, now) {
                    Verdict::Drill(_) => "drill".to_string(),
                    Verdict::Accepted(_) => "accepted".to_string(),
                    Verdict::Duplicate { .. } => "duplicate".to_string(),
                    Verdict::Rejected(r) => r.kind().to_string(),
                },
                "state" => match verifier.check_state(payload, now) {
                    Ok(_) => "accepted".to_string(),
                    Err(r) => r.kind().to_string(),
                },
                "status" => match verifier.check_status(payload, now) {
                    StatusVerdict::Accepted(_) => "accepted".to_string(),
                    StatusVerdict::Duplicate { .. } => "duplicate".to_string(),
                    StatusVerdict::Rejected(r) => r.kind().to_string(),
                },
                "drill" => match verifier.check_drill(payload, now) {
                    Ok(_) => "drill".to_string(),
                    Err(r) => r.kind().to_string(),
                },
                other => panic!("vector {name}: kind {other}"),
            };
            assert_eq!(
                got,
                step["expect"].as_str().unwrap(),
                "vector {name} step {}",
                i + 1
            );
            kinds.push(got);
        }
    }
    for needed in [
        "old-session",
        "replayed",
        "old-state",
        "superseded",
        "old-epoch",
        "epoch-ahead",
        "unsigned",
        "key-not-granted",
        "duplicate",
        "drill",
    ] {
        assert!(kinds.iter().any(|k| k == needed), "no {needed} step");
    }
}

#[test]
fn the_python_verifier_gives_every_expected_verdict_in_sequence() {
    let Some(python) = common::python() else {
        return;
    };
    let out = std::process::Command::new(python)
        .arg(common::workspace().join("docs/examples/verify_trigger.py"))
        .arg("vectors")
        .arg(sequences_file())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Value =
        serde_json::from_str(&std::fs::read_to_string(sequences_file()).unwrap()).unwrap();
    let steps: usize = doc["vectors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["steps"].as_array().unwrap().len())
        .sum();
    assert_eq!(
        text.lines().filter(|l| l.starts_with("ok ")).count(),
        steps,
        "{text}"
    );
}

/// A controller written before drills existed — the Python verifier as it was then, frozen in
/// gateway/tests/peers/verify_trigger_before_drills.py — never takes a drill as a level: every
/// drill of the sequences, on whatever topic, is `malformed` to it (its schema is unknown),
/// and the triggers around them keep their verdicts.
#[test]
fn a_verifier_from_before_drills_refuses_every_drill() {
    let Some(python) = common::python() else {
        return;
    };
    let mut doc: Value =
        serde_json::from_str(&std::fs::read_to_string(sequences_file()).unwrap()).unwrap();
    let mut drills = 0;
    let vectors: Vec<Value> = doc["vectors"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["name"].as_str().unwrap().starts_with("drill"))
        .cloned()
        .map(|mut v| {
            for step in v["steps"].as_array_mut().unwrap() {
                if step["payload"]
                    .as_str()
                    .unwrap()
                    .contains("firebreak.drill/1")
                {
                    // It knows no drill topic: a drill is a trigger to it, or a state.
                    if step["kind"] == "drill" {
                        step["kind"] = json!("trigger");
                    }
                    step["expect"] = json!("malformed");
                    drills += 1;
                }
            }
            v
        })
        .collect();
    assert!(drills >= 5, "{drills}");
    doc["vectors"] = json!(vectors);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("drills.json");
    std::fs::write(&path, doc.to_string()).unwrap();
    let out = std::process::Command::new(python)
        .arg(common::workspace().join("gateway/tests/peers/verify_trigger_before_drills.py"))
        .arg("vectors")
        .arg(&path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!text.contains("FAIL"), "{text}");
    assert!(
        text.contains("ok drill-between-triggers step 5: accepted"),
        "{text}"
    );
}
