//! Acquisition against peers nobody here wrote: pymodbus as a foreign UPS over Modbus TCP and
//! over RTU on a socat PTY pair, and Mosquitto with a building sensor published by
//! mosquitto_pub. The gateway runs as a process; its `/status` is what is checked.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test code

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;

/// A user-defined profile for the foreign UPS, with the u32 runtime low word first.
const ACME_PROFILE: &str = r#"
[[profiles]]
name = "acme-ups-9000"
description = "the foreign UPS of gateway/tests/peers/foreign_ups.py"

[[profiles.registers]]
signal = "ups-on-battery"
table = "input"
address = 10
type = "bit"
bit = 3

[[profiles.registers]]
signal = "ups-runtime-remaining"
table = "input"
address = 12
type = "u32"
word_order = "low-first"
sentinels = [0xFFFFFFFF]

[[profiles.registers]]
signal = "ups-battery-temperature"
table = "input"
address = 20
type = "i16"
scale = 0.1
min = -40.0
max = 120.0
sentinels = [0x7FFF]
"#;

fn site(devices: &str) -> String {
    format!(
        "[site]\nname = \"test\"\ngateway = \"gw-test\"\n[[zones]]\nname = \"room\"\n[http]\nbind = \"{{HTTP}}\"\n{devices}\n{ACME_PROFILE}"
    )
}

fn tcp_device(name: &str, port: u16, extra: &str) -> String {
    format!(
        "[[devices]]\nname = \"{name}\"\nzone = \"room\"\ntransport = \"tcp\"\naddress = \"127.0.0.1:{port}\"\nunit = 1\nprofile = \"acme-ups-9000\"\n{extra}\n"
    )
}

#[test]
fn probe_decodes_a_foreign_ups_through_a_user_profile() {
    let Some(python) = python() else { return };
    let port = free_port();
    let _ups = foreign_ups_tcp(&python, port, &["--on-battery", "--runtime", "1234567"]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("site.toml");
    // This device rejects reads that span unmapped registers: no gap may be read.
    let config = site(&tcp_device("ups", port, "max_gap = 0")).replace("{HTTP}", "127.0.0.1:0");
    std::fs::write(&path, config).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_firebreak"))
        .args([
            "probe",
            "--config",
            path.to_str().unwrap(),
            "--device",
            "ups",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = |signal: &str| {
        text.lines()
            .find(|l| l.contains(signal))
            .unwrap_or_default()
            .split_whitespace()
            .collect::<Vec<_>>()
    };
    assert_eq!(line("ups-on-battery")[2..], ["1", "bool", "good"], "{text}");
    assert_eq!(
        line("ups-runtime-remaining")[2..],
        ["1234567", "s", "good"],
        "{text}"
    );
    assert_eq!(
        line("ups-battery-temperature")[2..],
        ["25.3", "degC", "good"],
        "{text}"
    );

    // mbpoll, a foreign Modbus master, reads the same raw registers as `firebreak probe`.
    if require_peer("mbpoll") {
        let mb = Command::new("mbpoll")
            .args([
                "-m",
                "tcp",
                "-p",
                &port.to_string(),
                "-t",
                "3",
                "-r",
                "13",
                "-c",
                "2",
                "-1",
                "127.0.0.1",
            ])
            .output()
            .unwrap();
        let mb = String::from_utf8(mb.stdout).unwrap();
        assert!(
            mb.contains("[13]: \t-10617") || mb.contains("[13]: \t54919"),
            "{mb}"
        );
        let raw = Command::new(env!("CARGO_BIN_EXE_firebreak"))
            .args([
                "probe",
                &format!("tcp://127.0.0.1:{port}"),
                "--input",
                "12..14",
            ])
            .output()
            .unwrap();
        let raw = String::from_utf8(raw.stdout).unwrap();
        assert!(
            raw.contains("input             12  0xD687  54919  -10617"),
            "{raw}"
        );
        assert!(
            raw.contains("input             13  0x0012     18      18"),
            "{raw}"
        );
    }
}

#[test]
fn exceptions_are_reported_and_do_not_stall_other_devices() {
    let Some(python) = python() else { return };
    let (good_port, gap_port) = (free_port(), free_port());
    let _good = foreign_ups_tcp(&python, good_port, &["--temperature", "300"]);
    let _gap = foreign_ups_tcp(&python, gap_port, &[]);
    let dir = tempfile::tempdir().unwrap();
    // The second device is read with the default gap: one request over unmapped registers,
    // which the device refuses with exception 02 at every poll.
    let devices = format!(
        "{}{}",
        tcp_device(
            "good",
            good_port,
            "max_gap = 0\npoll_interval_ms = 100\ntimeout_ms = 50"
        ),
        tcp_device("gappy", gap_port, "poll_interval_ms = 100\ntimeout_ms = 50")
    );
    let gw = Gateway::start(dir.path(), &site(&devices));
    let seen = wait_until(Duration::from_secs(10), || {
        gw.device("gappy")["errors"]["exception"]
            .as_u64()
            .unwrap_or(0)
            >= 5
            && gw.signal("good", "ups-battery-temperature", 0) == Some(("good".into(), Some(30.0)))
    });
    let gappy = gw.device("gappy");
    assert!(seen.is_some(), "{gappy}");
    assert_eq!(
        gappy["comm_lost"], false,
        "an exception is an answer: {gappy}"
    );
    assert!(
        gappy["last_error"]
            .as_str()
            .unwrap()
            .contains("exception 0x02 (illegal data address)"),
        "{gappy}"
    );
    let polls = gw.device("good")["polls"].as_u64().unwrap();
    assert!(polls >= 5, "the good device kept being polled: {polls}");
    let metrics = gw.get("/metrics").unwrap();
    assert!(
        metrics.contains("firebreak_errors_total{device=\"gappy\",kind=\"exception\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("firebreak_device_up{device=\"gappy\",zone=\"room\"} 1"),
        "{metrics}"
    );
}

#[test]
fn a_killed_device_turns_comm_lost_and_recovers() {
    let Some(python) = python() else { return };
    let port = free_port();
    let mut ups = foreign_ups_tcp(&python, port, &[]);
    let dir = tempfile::tempdir().unwrap();
    let gw = Gateway::start(
        dir.path(),
        &site(&tcp_device(
            "ups",
            port,
            "max_gap = 0\npoll_interval_ms = 100\ntimeout_ms = 50\ncomm_lost_after = 3\nfreshness_ms = 2000",
        )),
    );
    let runtime = || gw.signal("ups", "ups-runtime-remaining", 0);
    assert!(
        wait_until(Duration::from_secs(10), || runtime()
            == Some(("good".into(), Some(1_234_567.0))))
        .is_some()
    );

    ups.kill();
    // Three missed polls at 100 ms: comm-lost well within a second; allow for a slow machine.
    let lost = wait_until(Duration::from_secs(5), || {
        runtime().is_some_and(|(q, _)| q == "comm-lost")
    });
    assert!(lost.is_some(), "{:?} {}", runtime(), gw.device("ups"));
    assert_eq!(
        runtime().unwrap().1,
        Some(1_234_567.0),
        "the last value is kept for display"
    );
    let metrics = gw.get("/metrics").unwrap();
    assert!(
        metrics.contains("firebreak_device_up{device=\"ups\",zone=\"room\"} 0"),
        "{metrics}"
    );

    let _ups = foreign_ups_tcp(&python, port, &["--runtime", "600"]);
    let back = wait_until(Duration::from_secs(15), || {
        runtime() == Some(("good".into(), Some(600.0)))
    });
    assert!(back.is_some(), "{:?} {}", runtime(), gw.device("ups"));
}

/// A PTY carries no parity bits and Linux refuses to set even parity on one, so both ends
/// run 8N1 here; the framing, CRC, unit addressing and the 3.5-character gap are real.
#[test]
fn rtu_over_a_socat_pty_pair() {
    let Some(python) = python() else { return };
    if !require_peer("socat") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (
        dir.path().join("gateway-end"),
        dir.path().join("device-end"),
    );
    let _line = Peer::spawn(
        "socat",
        Command::new("socat").args([
            &format!("pty,raw,echo=0,link={}", a.display()),
            &format!("pty,raw,echo=0,link={}", b.display()),
        ]),
    );
    assert!(wait_until(Duration::from_secs(5), || a.exists() && b.exists()).is_some());
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/foreign_ups.py");
    let _ups = Peer::start(
        "pymodbus RTU UPS",
        Command::new(&python).arg(script).args([
            "--serial",
            b.to_str().unwrap(),
            "--unit",
            "7",
            "--parity",
            "N",
            "--runtime",
            "900",
        ]),
        "listening",
        Duration::from_secs(20),
    );
    let device = format!(
        "[[devices]]\nname = \"rtu-ups\"\nzone = \"room\"\ntransport = \"rtu\"\nserial = \"{}\"\nbaud = 19200\nparity = \"none\"\nunit = 7\nprofile = \"acme-ups-9000\"\nmax_gap = 0\npoll_interval_ms = 200\ntimeout_ms = 150\n",
        a.display()
    );
    let gw = Gateway::start(dir.path(), &site(&device));
    let got = wait_until(Duration::from_secs(10), || {
        gw.signal("rtu-ups", "ups-runtime-remaining", 0) == Some(("good".into(), Some(900.0)))
            && gw.signal("rtu-ups", "ups-battery-temperature", 0)
                == Some(("good".into(), Some(25.3)))
    });
    assert!(got.is_some(), "{}", gw.status());
}

#[test]
fn mqtt_source_maps_good_payloads_and_counts_garbage() {
    if !require_peer("mosquitto") || !require_peer("mosquitto_pub") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (_broker, port) = mosquitto(dir.path());
    let source = format!(
        "[[mqtt_sources]]\nname = \"bms\"\nzone = \"room\"\nbroker = \"mqtt://127.0.0.1:{port}\"\ntopic = \"building/room/+\"\n\
         [[mqtt_sources.signals]]\nsignal = \"room-temperature\"\npointer = \"/t\"\nmin = -40.0\nmax = 85.0\n\
         [[mqtt_sources.signals]]\nsignal = \"room-humidity\"\npointer = \"/h/rel\"\nscale = 100.0\n"
    );
    let gw = Gateway::start(dir.path(), &site(&source));
    let publish = |payload: &str| {
        let ok = Command::new("mosquitto_pub")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-t",
                "building/room/env",
                "-m",
                payload,
            ])
            .status()
            .unwrap()
            .success();
        assert!(ok, "mosquitto_pub");
    };
    // The source subscribes shortly after start: publish until the first value lands.
    let first = wait_until(Duration::from_secs(10), || {
        publish(r#"{"t": 24.5, "h": {"rel": 0.41}}"#);
        gw.signal("bms", "room-temperature", 0) == Some(("good".into(), Some(24.5)))
    });
    assert!(first.is_some(), "{}", gw.status());
    assert_eq!(
        gw.signal("bms", "room-humidity", 0),
        Some(("good".into(), Some(41.0)))
    );

    publish("\u{1}not json at all");
    publish(r#"{"t": "warm"}"#);
    let counted = wait_until(Duration::from_secs(5), || {
        gw.device("bms")["errors"]["malformed"].as_u64() == Some(2)
    });
    assert!(counted.is_some(), "{}", gw.device("bms"));
    assert!(
        gw.device("bms")["last_error"]
            .as_str()
            .unwrap()
            .contains("/t: a string is not a number")
    );

    // Still running, still mapping.
    publish(r#"{"t": 90.0, "h": {"rel": 0.40}}"#);
    let updated = wait_until(Duration::from_secs(5), || {
        gw.signal("bms", "room-temperature", 0) == Some(("out-of-range".into(), Some(90.0)))
    });
    assert!(updated.is_some(), "{}", gw.status());
    assert_eq!(gw.get("/healthz").as_deref(), Some("ok\n"));
}
