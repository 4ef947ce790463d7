//! The `firebreak` binary as a user runs it: exit codes and messages.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)] // test code

use std::process::Command;

fn firebreak(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_firebreak"))
        .args(args)
        .output()
        .expect("run firebreak")
}

#[test]
fn lists_builtin_profiles() {
    let out = firebreak(&["profiles"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for name in ["firebreak-sensor-node", "generic-ups", "generic-pdu"] {
        assert!(text.contains(name), "{text}");
    }
}

#[test]
fn bad_name_exits_2_with_a_clear_message() {
    let out = firebreak(&["topics", "--site", "paris/1"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8(out.stderr).unwrap(),
        "firebreak: --site: \"paris/1\" contains forbidden character '/' at byte 5\n"
    );
}

#[test]
fn demo_lists_its_scenarios_and_refuses_unknown_ones() {
    let out = firebreak(&["demo", "--list"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for name in [
        "battery-fire ",
        "utility-outage-generator-fails ",
        "ups-self-test ",
    ] {
        assert!(text.contains(name), "{text}");
    }
    let out = firebreak(&["demo", "--scenario", "nope"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.starts_with("firebreak: --scenario: no built-in scenario named \"nope\""),
        "{err}"
    );
}

/// `firebreak demo --scenario NAME` to its end (at most 180 s): what it printed, once it
/// exited successfully.
fn demo(name: &str) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_firebreak"))
        .args(["demo", "--scenario", name])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > std::time::Duration::from_secs(180) {
            let _ = child.kill();
            panic!("demo did not finish within 180 s");
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// The demo with two gateways, one killed at T-2m in a fire: the controller marks it stale
/// at once (its will), and the merged level reaches evacuate from the other alone, in time.
#[test]
fn demo_shows_two_gateways_with_one_killed() {
    let text = demo("two-gateways-one-killed");
    let line = |needle: &str| {
        text.lines()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no line with {needle:?}:\n{text}"))
    };
    let killed = line("gw-demo-a killed");
    let stale = line("STALE gateway gw-demo-a: offline");
    let merged = line("MERGED EVACUATE (was watch) site");
    assert!(killed < stale && stale < merged, "{text}");
    assert!(
        text.lines()
            .nth(merged)
            .unwrap()
            .contains("(changed by gw-demo-b)"),
        "{text}"
    );
    assert!(
        text.lines()
            .enumerate()
            .all(|(i, l)| !l.contains("from gw-demo-a") || i < killed),
        "nothing from the killed gateway after its death:\n{text}"
    );
    assert!(text.contains("expectation met: evacuate by T+3m"), "{text}");
}

/// The demo in one process: a short scenario (16 minutes at x60, about 20 s) must print an
/// evacuate as a controller receives it and the lead time.
#[test]
fn demo_prints_an_evacuate_and_the_lead_time() {
    let text = demo("utility-outage-generator-fails");
    let evacuate = text
        .lines()
        .find(|l| l.contains("TRIGGER EVACUATE") && l.contains("site demo-"))
        .unwrap_or_else(|| panic!("no site evacuate:\n{text}"));
    assert!(evacuate.contains("signed by demo"), "{evacuate}");
    assert!(
        text.contains("because power-budget: ups-runtime-remaining"),
        "{text}"
    );
    let lead = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("lead time "))
        .unwrap_or_else(|| panic!("no lead time:\n{text}"));
    let seconds: f64 = lead.split(' ').next().unwrap().parse().unwrap();
    assert!(
        seconds >= 300.0,
        "lead time {seconds} s under the budget:\n{text}"
    );
    assert!(text.contains("expectation met: evacuate by T+5m"), "{text}");
}

#[test]
fn config_default_passes_config_check() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("site.toml");
    let example = firebreak(&["config", "default"]);
    assert!(example.status.success());
    std::fs::write(&path, &example.stdout).unwrap();
    let check = firebreak(&["config", "check", path.to_str().unwrap()]);
    let text = String::from_utf8(check.stdout).unwrap();
    assert!(check.status.success(), "{text}");
    assert!(text.contains("device node-b1"), "{text}");
    assert!(
        text.contains("mqtt   bms-hall-a       mqtts://192.0.2.50:8883 (CA /etc/firebreak/bms-ca.pem, user gw-paris-1a)"),
        "{text}"
    );
    assert!(
        text.ends_with("ok: 4 devices, 1 mqtt sources, 0 nut sources, 0 snmp sources, 2 zones\n"),
        "{text}"
    );
}

#[test]
fn config_check_names_file_key_and_problem() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("site.toml");
    let example = String::from_utf8(firebreak(&["config", "default"]).stdout).unwrap();
    std::fs::write(&path, example.replace("\"generic-pdu\"", "\"apc-smt\"")).unwrap();
    let check = firebreak(&["config", "check", path.to_str().unwrap()]);
    assert_eq!(check.status.code(), Some(2));
    assert_eq!(
        String::from_utf8(check.stderr).unwrap(),
        format!(
            "firebreak: {}: devices[2].profile: no profile named \"apc-smt\"\n",
            path.display()
        )
    );
    // A source's connection keys are checked as a broker's are, and named under the source.
    std::fs::write(
        &path,
        example.replace("ca_file = \"/etc/firebreak/bms-ca.pem\"", ""),
    )
    .unwrap();
    let check = firebreak(&["config", "check", path.to_str().unwrap()]);
    assert_eq!(check.status.code(), Some(2));
    assert_eq!(
        String::from_utf8(check.stderr).unwrap(),
        format!(
            "firebreak: {}: mqtt_sources[0].ca_file: required for mqtts://: the CA certificate (PEM) that signed the broker's certificate\n",
            path.display()
        )
    );
}
