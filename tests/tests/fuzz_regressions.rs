//! Every input kept from fuzzing (fuzz/regressions/<target>/), run through the same checks as
//! the fuzz target (fuzz/checks.rs), in the normal suite.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test code

#[path = "../../fuzz/checks.rs"]
#[allow(unreachable_pub)] // pub for the fuzz targets
mod checks;

use std::path::Path;

fn run(target: &str, check: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/regressions")
        .join(target);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let outcome = std::panic::catch_unwind(|| check(&data));
        assert!(outcome.is_ok(), "{} failed its check", path.display());
        n += 1;
    }
    assert!(n > 0, "no inputs in {}", dir.display());
}

#[test]
fn trigger_payload() {
    run("trigger_payload", checks::trigger_payload);
}

#[test]
fn decode_registers() {
    run("decode_registers", checks::decode_registers);
}

#[test]
fn mqtt_payload() {
    run("mqtt_payload", checks::mqtt_payload);
}

#[test]
fn site_config() {
    run("site_config", checks::site_config);
}

#[test]
fn rtu_frame() {
    run("rtu_frame", checks::rtu_frame);
}

#[test]
fn trigger_verify() {
    run("trigger_verify", checks::trigger_verify);
}

/// The verify check's accepting path is reached: a trigger signed by the trusted key passes,
/// and the same payload with one byte changed does not.
#[test]
fn trigger_verify_accepts_only_the_signed_bytes() {
    use firebreak_gateway::subscribe::{Verdict, Verifier};
    use firebreak_protocols::message::encode_vec;
    use firebreak_protocols::signed::signed_vec;
    use firebreak_protocols::{GatewayId, IncidentId, Level, SiteId, Trigger};

    let t = Trigger::new(
        GatewayId::new("gw-1").unwrap(),
        1,
        IncidentId::new("gw-1-1").unwrap(),
        SiteId::new("s").unwrap(),
        None,
        Level::Evacuate,
        Level::Normal,
        1_700_000_000_000,
    )
    .unwrap();
    let canonical = encode_vec(&t).unwrap();
    let payload = signed_vec(&canonical, &checks::signing_key().sign(&canonical)).unwrap();
    checks::trigger_verify(&payload);
    let mut v = Verifier::new(vec![checks::signing_key().public()]);
    assert!(matches!(
        v.check(&payload, 1_700_000_000_000),
        Verdict::Accepted(_)
    ));
    let tampered: Vec<u8> = payload
        .iter()
        .map(|&b| if b == b'7' { b'8' } else { b })
        .collect();
    assert!(!matches!(
        Verifier::new(vec![checks::signing_key().public()]).check(&tampered, 1_700_000_000_000),
        Verdict::Accepted(_)
    ));
}
