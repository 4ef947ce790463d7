//! The rig end to end: `firebreak-hil suite` replays the whole suite, time-scaled, against the
//! gateway process (FIREBREAK_BIN) and fails on any failed expectation; `firebreak-hil run`
//! replays part of one scenario in real time. Both need the gateway binary, and the suite
//! needs Mosquitto (the broker outage): under scripts/test.sh (FIREBREAK_REQUIRE_PEERS=1) a
//! missing one fails the test.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test code

#[path = "../../gateway/tests/common/mod.rs"]
mod common;
mod rig_common;

use std::path::Path;
use std::time::Duration;

use common::*;
use rig_common::*;
use serde_json::Value;

/// The speed of the suite replay: the 30-minute fires in 30 s.
const SUITE_SCALE: &str = "60";

#[test]
fn the_suite_meets_its_expectations_time_scaled() {
    let Some(gateway) = gateway() else { return };
    if !require_peer("mosquitto") && !Path::new("/usr/sbin/mosquitto").exists() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("suite.json");
    let svg = dir.path().join("svg");
    let suite = suite_dir(dir.path());
    let (code, stdout, stderr) = hil(
        &[
            "suite",
            suite.to_str().unwrap(),
            "--node",
            "host",
            "--time-scale",
            SUITE_SCALE,
            "--jobs",
            "2",
            "--quiet",
            "--json",
            json.to_str().unwrap(),
            "--svg",
            svg.to_str().unwrap(),
        ],
        &gateway,
        Duration::from_secs(1200),
    );
    println!("{stdout}");
    let results: Vec<Value> = serde_json::from_str(
        &std::fs::read_to_string(&json)
            .unwrap_or_else(|e| panic!("no JSON ({e}); stderr:\n{stderr}")),
    )
    .unwrap();
    assert_eq!(
        results.len(),
        std::fs::read_dir(&suite).unwrap().count(),
        "one result per scenario"
    );
    let mut unexpected = Vec::new();
    for r in &results {
        let name = r["scenario"].as_str().unwrap();
        let passed = r["passed"].as_bool().unwrap();
        // Whatever the verdict: nothing missed, nothing that does not verify, and a timeline.
        assert_eq!(r["missed"], Value::Array(vec![]), "{name}: missed triggers");
        assert_eq!(
            r["rejected"],
            Value::Array(vec![]),
            "{name}: rejected triggers"
        );
        assert!(svg.join(format!("{name}.svg")).exists(), "{name}: no SVG");
        if r["power_loss_at"].is_object() {
            let lead = r["lead_time_s"].as_f64().unwrap_or(-1.0);
            let budget = r["evacuation_budget_s"].as_f64().unwrap();
            assert!(
                lead >= budget || !passed,
                "{name}: passed with a lead time of {lead} s, under the budget"
            );
        }
        // Every node ran the firmware, booted, was fed and reported its counters.
        let has_node = std::fs::read_to_string(scenarios().join(format!("{name}.toml")))
            .unwrap()
            .contains("kind = \"node\"");
        if has_node {
            assert_eq!(r["node_backend"], "host", "{name}");
            let nodes = r["node"]["nodes"]
                .as_array()
                .unwrap_or_else(|| panic!("{name}: no node result"));
            for n in nodes {
                assert!(!n["boots"].as_array().unwrap().is_empty(), "{name}: {n}");
                assert!(n["feed_steps"].as_u64().unwrap() > 0, "{name}: {n}");
            }
            if name == "node-reboots-during-fire" {
                // The firmware rebooted by its watchdog, said so, and the gateway saw it.
                let boots = nodes[0]["boots"].as_array().unwrap();
                assert_eq!(boots.len(), 2, "{name}: {boots:?}");
                assert_eq!(boots[1]["reset_reason"], 1, "{name}: {boots:?}");
                assert_eq!(
                    r["node"]["gateway"]["reboots"]["watchdog"], 1,
                    "{name}: the gateway did not see the reboot: {}",
                    r["node"]["gateway"]
                );
            }
        }
        // Several gateways: the controller ran and merged them.
        if name.starts_with("two-gateways-") {
            assert_eq!(r["gateways"].as_array().unwrap().len(), 2, "{name}");
            let c = &r["controller"];
            assert_eq!(c["gateways"].as_array().unwrap().len(), 2, "{name}: {c}");
            assert_eq!(c["flaps"], 0, "{name}: {c}");
            match name {
                "two-gateways-one-killed" => {
                    // The survivor brought the merged evacuate; the killed one went stale.
                    let by = c["evacuate_by_gateway"].as_str().unwrap_or("");
                    assert!(by.ends_with("-b"), "{name}: {c}");
                    assert!(
                        c["notes"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .any(|n| n["event"] == "stale"
                                && n["detail"].as_str().unwrap_or("").contains("-a,")),
                        "{name}: {c}"
                    );
                }
                "two-gateways-network-cut" => {
                    assert!(c["site_silent"].is_object(), "{name}: {c}");
                    assert!(c["first_evacuate"].is_object(), "{name}: {c}");
                }
                "two-gateways-bus-a-cut" => {
                    assert_eq!(c["highest"], "watch", "{name}: {c}");
                    let b = &r["gateways"][1];
                    assert_eq!(b["bus"], "B", "{name}");
                    assert!(b["rtu"]["polls"].as_u64().unwrap() > 0, "{name}: {b}");
                    assert_eq!(b["rtu"]["errors"], serde_json::json!({}), "{name}: {b}");
                }
                _ => {}
            }
        }
        // A UPS behind NUT: the rig fed dummy-ups and saw upsd serve what it wrote.
        if name == "utility-outage-nut-ups-snmp-pdus" {
            let notes = r["notes"].to_string();
            assert!(notes.contains("NUT: "), "{name}: {notes}");
            assert_eq!(r["time_scale"], 20.0, "{name}: capped by max_time_scale");
            // The PDUs read over SNMP never raise a level: nothing before the outage, and no
            // reason names them.
            assert!(r["first_watch"]["s"].as_f64().unwrap() > 0.0, "{name}: {r}");
            for t in r["received"].as_array().unwrap() {
                let reasons = t["reasons"].to_string();
                assert!(!reasons.contains("pdu-"), "{name}: {reasons}");
            }
        }
        if !passed {
            unexpected.push(format!("{name}: {}", r["failures"]));
        }
    }
    assert!(
        unexpected.is_empty(),
        "scenarios failed:\n{}\n\n{stdout}\n{stderr}",
        unexpected.join("\n")
    );
    // Every expectation held: the command says so.
    assert_eq!(code, Some(0), "exit status\n{stderr}");
}

/// The scenarios whose devices are served by NUT or snmpsim (`source = "nut"`, `snmp = …`).
fn needs_peers(text: &str) -> bool {
    text.contains("source = \"nut\"") || text.lines().any(|l| l.starts_with("snmp = "))
}

/// Whether NUT (upsd, dummy-ups), snmpsim with snmpsim-data, and snmpgetnext are here, as the
/// rig looks for them; when not, SKIPPED (or a failure under FIREBREAK_REQUIRE_PEERS=1).
fn device_peers_present() -> bool {
    let nut = std::env::var_os("FIREBREAK_NUT_DIR")
        .map_or_else(|| Path::new("/lib/nut").to_path_buf(), Into::into);
    let venv = std::env::var_os("FIREBREAK_SNMPSIM_VENV").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../.peers/snmpsim-venv"),
        Into::into,
    );
    let missing: Vec<String> = [
        (nut.join("upsd"), "NUT's upsd (nut-server)"),
        (nut.join("dummy-ups"), "NUT's dummy-ups (nut-server)"),
        (
            venv.join("bin/snmpsim-command-responder"),
            "snmpsim (FIREBREAK_SNMPSIM_VENV)",
        ),
    ]
    .into_iter()
    .filter(|(p, _)| !p.exists())
    .map(|(p, what)| format!("{what} at {}", p.display()))
    .collect();
    if !missing.is_empty() {
        if std::env::var("FIREBREAK_REQUIRE_PEERS").as_deref() == Ok("1") {
            panic!("{} missing: run scripts/test.sh", missing.join(", "));
        }
        eprintln!(
            "SKIPPED the scenarios with NUT or SNMP devices: {} missing (run scripts/test.sh)",
            missing.join(", ")
        );
        return false;
    }
    require_peer("snmpgetnext")
}

/// The suite's directory, or, when the device peers are missing (and not required), a copy
/// of it without the scenarios that need them.
fn suite_dir(tmp: &Path) -> std::path::PathBuf {
    if device_peers_present() {
        return scenarios();
    }
    let copy = tmp.join("scenarios");
    std::fs::create_dir(&copy).unwrap();
    for e in std::fs::read_dir(scenarios()).unwrap() {
        let p = e.unwrap().path();
        let text = std::fs::read_to_string(&p).unwrap();
        if !needs_peers(&text) {
            std::fs::write(copy.join(p.file_name().unwrap()), text).unwrap();
        }
    }
    copy
}

#[test]
fn a_generator_transfer_in_real_time() {
    let Some(gateway) = gateway() else { return };
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("realtime.json");
    let scenario = scenarios().join("utility-outage-generator-transfer.toml");
    // 80 s of real time: the utility fails at T0, the generator takes the load at T+12s.
    let (code, stdout, stderr) = hil(
        &[
            "run",
            scenario.to_str().unwrap(),
            "--time-scale",
            "1",
            "--from",
            "T-20s",
            "--to",
            "T+1m",
            "--quiet",
            "--json",
            json.to_str().unwrap(),
        ],
        &gateway,
        Duration::from_secs(240),
    );
    println!("{stdout}");
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    let r: Vec<Value> = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let r = &r[0];
    assert_eq!(r["time_scale"], 1.0);
    assert_eq!(r["highest"], "watch", "{r}");
    // utility-lost holds 5 s; in real time the watch arrives within a few seconds of that.
    let watch = r["first_watch"]["s"].as_f64().unwrap();
    assert!((5.0..12.0).contains(&watch), "watch at T+{watch} s");
    let p50 = r["latency_ms"]["p50"].as_f64().unwrap();
    assert!(p50 > 0.0 && p50 < 3000.0, "end-to-end latency {p50} ms");
    assert_eq!(r["missed"], Value::Array(vec![]));
}

/// An expectation that does not hold makes the rig say FAIL and exit 1: the generator
/// transfer raises `watch`, and this copy of it allows nothing above `normal`.
#[test]
fn a_failed_expectation_fails_the_run() {
    let Some(gateway) = gateway() else { return };
    let dir = tempfile::tempdir().unwrap();
    let original =
        std::fs::read_to_string(scenarios().join("utility-outage-generator-transfer.toml"))
            .unwrap();
    assert!(original.contains("never_above = \"watch\""));
    let strict = original.replace("never_above = \"watch\"", "never_above = \"normal\"");
    let scenario = dir.path().join("utility-outage-generator-transfer.toml");
    std::fs::write(&scenario, strict).unwrap();
    let (code, stdout, stderr) = hil(
        &[
            "run",
            scenario.to_str().unwrap(),
            "--time-scale",
            "10",
            "--from",
            "T-20s",
            "--to",
            "T+1m",
            "--quiet",
        ],
        &gateway,
        Duration::from_secs(240),
    );
    assert_eq!(code, Some(1), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("FAIL utility-outage-generator-transfer"),
        "{stdout}"
    );
}
