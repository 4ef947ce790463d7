//! Signing a trigger as delivery does, and verifying it as a controller's `Verifier` does.
//!
//! `cargo bench -p firebreak-gateway --bench signing`; figures in docs/performance.md.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)] // bench code

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use firebreak_gateway::keys::SigningKey;
use firebreak_gateway::subscribe::{Verdict, Verifier};
use firebreak_protocols::message::encode_vec;
use firebreak_protocols::signed::signed_vec;
use firebreak_protocols::{
    DeviceId, GatewayId, IncidentId, KeyId, Level, Reason, RuleId, Signal, SiteId, Trigger, ZoneId,
};

fn trigger(seq: u64, at_ms: u64) -> Trigger {
    let mut t = Trigger::new(
        GatewayId::new("gw-paris-1a").unwrap(),
        seq,
        IncidentId::new("gw-paris-1a-1700000000000").unwrap(),
        SiteId::new("paris-1").unwrap(),
        Some(ZoneId::new("battery-room-b1").unwrap()),
        Level::Evacuate,
        Level::Prepare,
        at_ms,
    )
    .unwrap();
    for (rule, signal, v, th) in [
        ("off-gas", Signal::OffGas, 84.5, 20.0),
        ("rack-temp-rise", Signal::RackTemperature, 3.1, 1.0),
    ] {
        t.push_reason(Reason {
            rule: RuleId::new(rule).unwrap(),
            signal: Some(signal),
            device: Some(DeviceId::new("node-b1").unwrap()),
            channel: 0,
            value: v,
            threshold: th,
        })
        .unwrap();
    }
    t
}

fn sign(key: &SigningKey, t: &Trigger) -> Vec<u8> {
    let canonical = encode_vec(t).unwrap();
    let sig = key.sign(&canonical);
    signed_vec(&canonical, &sig).unwrap()
}

fn signing(c: &mut Criterion) {
    let key = SigningKey::from_seed(KeyId::new("k1").unwrap(), &[7; 32]);
    let now = 1_700_000_000_000u64;
    let t = trigger(1, now);
    let mut g = c.benchmark_group("trigger");
    g.bench_function("encode-and-sign", |b| b.iter(|| sign(&key, black_box(&t))));

    // Verification of fresh triggers (each seq new, so none is a duplicate or a replay).
    let payloads: Vec<Vec<u8>> = (1..=10_000).map(|s| sign(&key, &trigger(s, now))).collect();
    let mut verifier = Verifier::new(vec![key.public()]);
    let mut i = 0usize;
    g.bench_function("verify-and-accept", |b| {
        b.iter(|| {
            let p = &payloads[i % payloads.len()];
            i += 1;
            if i.is_multiple_of(payloads.len()) {
                verifier = Verifier::new(vec![key.public()]);
            }
            black_box(verifier.check(black_box(p), now))
        })
    });
    // The check itself must accept: a bench of a rejection would measure the wrong path.
    let mut v = Verifier::new(vec![key.public()]);
    assert!(matches!(v.check(&payloads[0], now), Verdict::Accepted(_)));
    g.finish();
}

criterion_group!(benches, signing);
criterion_main!(benches);
