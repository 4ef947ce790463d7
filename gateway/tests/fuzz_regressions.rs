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
