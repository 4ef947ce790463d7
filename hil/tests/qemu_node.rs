//! The rig with the firmware's QEMU image as the node (`firebreak-hil run … --node qemu`): a
//! test binary of its own, so that the emulator does not share the CPU with the suite of
//! `rig.rs` (cargo runs test binaries one after another). Needs the gateway binary,
//! qemu-system-arm, socat and the image (FIREBREAK_NODE_QEMU, built by scripts/test.sh);
//! under FIREBREAK_REQUIRE_PEERS=1 a missing one fails the test.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test code

#[path = "../../gateway/tests/common/mod.rs"]
mod common;
mod rig_common;

use std::path::PathBuf;
use std::time::Duration;

use common::*;
use rig_common::*;
use serde_json::Value;

/// The firmware image under QEMU as the node: the battery fire at its own speed, and a probe
/// failing high (a nuisance the firmware must not latch on), each judged on the gateway's
/// levels and the firmware's own alarm.
#[test]
fn the_qemu_node_in_a_fire_and_a_nuisance() {
    let Some(gateway) = gateway() else { return };
    if !require_peer("qemu-system-arm") || !require_peer("socat") {
        return;
    }
    let image = std::env::var_os("FIREBREAK_NODE_QEMU")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            workspace().join("target/thumbv7em-none-eabihf/firmware/firebreak-node-qemu")
        });
    if !image.exists() {
        if std::env::var("FIREBREAK_REQUIRE_PEERS").as_deref() == Ok("1") {
            panic!("{} is missing: scripts/test.sh builds it", image.display());
        }
        eprintln!("SKIPPED: no QEMU image at {}", image.display());
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for (scenario, scale) in [("battery-fire", None), ("probe-fails-high", Some("60"))] {
        let json = dir.path().join(format!("{scenario}.json"));
        let file = scenarios().join(format!("{scenario}.toml"));
        let mut args = vec![
            "run",
            file.to_str().unwrap(),
            "--node",
            "qemu",
            "--node-image",
            image.to_str().unwrap(),
            "--quiet",
            "--json",
            json.to_str().unwrap(),
        ];
        if let Some(s) = scale {
            args.extend(["--time-scale", s]);
        }
        let (code, stdout, stderr) = hil(&args, &gateway, Duration::from_secs(300));
        println!("{stdout}");
        let results: Vec<Value> =
            serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
        let r = &results[0];
        assert_eq!(r["node_backend"], "qemu", "{scenario}");
        assert_eq!(
            code,
            Some(0),
            "{scenario}: {}
{stdout}
{stderr}",
            r["failures"]
        );
        let node = &r["node"]["nodes"][0];
        assert_eq!(node["boots"][0]["reset_reason"], 0, "{scenario}: power-on");
        if scenario == "battery-fire" {
            // The firmware's own alarm, reported: before ignition, with its causes.
            let first = node["first_alarm"]["s"]
                .as_f64()
                .expect("the node never latched");
            assert!(first <= -180.0, "latched at {first} s");
            assert!(!node["first_causes"].as_array().unwrap().is_empty());
            assert!(stdout.contains("latched"), "{stdout}");
        } else {
            assert_eq!(node["first_alarm"], Value::Null, "{scenario}: {node}");
        }
        assert_eq!(node["line"]["crc_errors"], 0, "{scenario}: a clean line");
    }
}
