//! `firebreak maintenance` against a running gateway and a real Mosquitto: a probe under
//! maintenance reads calibration gas and nothing is raised, while another probe's fire still
//! evacuates; the state is in `/status`, `/metrics`, the log and the signed status that
//! `firebreak watch` verifies, and on the page (headless Chromium); it survives a restart, ends on request (the probe counts
//! again) or by itself; a probe behind an evacuation needs `--force`; a bad request is
//! refused naming what is wrong, and a user other than the gateway's cannot use the socket.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test code

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use common::*;
use firebreak_gateway::keys::SigningKey;
use firebreak_protocols::KeyId;

const SITE: &str = "maint-site";

fn peers() -> bool {
    require_peer("mosquitto") && require_peer("mosquitto_pub") && require_peer("mosquitto_sub")
}

fn maintenance(config: &Path, args: &[&str]) -> Output {
    Command::new(firebreak_bin())
        .arg("maintenance")
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A site of two MQTT probes in one battery room (`probe-a`, `probe-b`: off-gas and smoke
/// each), the fire rules (either alone: prepare; both: evacuate), one broker.
fn site(d: &Path, port: u16) -> String {
    let key = SigningKey::generate(KeyId::new("gw-m-2026").unwrap()).unwrap();
    key.write_pair(d).unwrap();
    std::fs::write(d.join("rules.toml"), FIRE_RULES).unwrap();
    let mut config = format!(
        "[site]\nname = \"{SITE}\"\ngateway = \"gw-m\"\n[[zones]]\nname = \"battery-room\"\n\
         [http]\nbind = \"{{HTTP}}\"\n[policy]\nrules_file = \"rules.toml\"\nhold_s = 1\n\
         [[brokers]]\nname = \"a\"\nurl = \"mqtt://127.0.0.1:{port}\"\n\
         [signing]\nkey_file = \"{}\"\nkey_id = \"gw-m-2026\"\n[outbox]\ndir = \"{}\"\n",
        d.join("gw-m-2026.key").display(),
        d.join("outbox").display()
    );
    for probe in ["a", "b"] {
        config.push_str(&format!(
            "[[mqtt_sources]]\nname = \"probe-{probe}\"\nzone = \"battery-room\"\n\
             broker = \"mqtt://127.0.0.1:{port}\"\ntopic = \"building/br/{probe}\"\nfreshness_ms = 60000\n\
             [[mqtt_sources.signals]]\nsignal = \"off-gas\"\nfield = \"voc_ppm\"\n\
             [[mqtt_sources.signals]]\nsignal = \"smoke-alarm\"\nfield = \"smoke\"\n"
        ));
    }
    config
}

fn zone(gw: &Gateway) -> serde_json::Value {
    gw.status()["policy"]["zones"][0].clone()
}

fn level(gw: &Gateway) -> String {
    zone(gw)["level"].as_str().unwrap_or_default().to_string()
}

/// The devices named by the zone's reasons now.
fn reason_devices(gw: &Gateway) -> Vec<String> {
    let mut d: Vec<String> = zone(gw)["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["device"].as_str().map(String::from))
        .collect();
    d.sort();
    d.dedup();
    d
}

/// Publishes a probe's reading and waits until `/status` shows its off-gas value.
fn reading(gw: &Gateway, port: u16, probe: &str, voc: f64, smoke: u8) {
    mosquitto_pub(
        port,
        &format!("building/br/{probe}"),
        format!(r#"{{"voc_ppm": {voc}, "smoke": {smoke}}}"#).as_bytes(),
        false,
    );
    let device = format!("probe-{probe}");
    assert!(
        wait_until(Duration::from_secs(10), || {
            gw.signal(&device, "off-gas", 0)
                .is_some_and(|(q, v)| q == "good" && v == Some(voc))
        })
        .is_some(),
        "{device} never showed {voc}"
    );
}

#[test]
fn a_probe_under_maintenance_raises_nothing_and_never_silences_another() {
    if !peers() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (_broker, port) = mosquitto(d);
    let config = site(d, port);
    let log = d.join("gateway.log");
    let mut gw = Gateway::start_logging(d, &config, Some(&log));
    let site_toml = d.join("site.toml");
    let me = std::fs::metadata(d).unwrap().uid();
    let watch_args: Vec<String> = vec![
        "--broker".into(),
        format!("mqtt://127.0.0.1:{port}"),
        "--site".into(),
        SITE.into(),
        "--trust".into(),
        d.join("gw-m-2026.pub").display().to_string(),
        "--client-id".into(),
        "maint-watch".into(),
    ];
    let mut watch = Watch::start_with_status(&watch_args, 1, &[]);
    reading(&gw, port, "a", 0.0, 0);
    reading(&gw, port, "b", 0.0, 0);

    // The technician takes probe-a out for calibration.
    let out = maintenance(
        &site_toml,
        &[
            "start",
            "--device",
            "probe-a",
            "--for",
            "1h",
            "--reason",
            "calibration gas",
            "--by",
            "alice",
        ],
    );
    let said = text(&out.stdout);
    assert!(out.status.success(), "{said}{}", text(&out.stderr));
    println!("firebreak maintenance start:\n{said}");
    assert!(
        said.starts_with("MAINTENANCE probe-a: not evidence until "),
        "{said}"
    );
    assert!(
        said.contains("probe-a (zone battery-room) until ")
            && said.contains("by alice: calibration gas"),
        "{said}"
    );
    // Shown everywhere: /status, the device, /metrics, the signed status (watch verifies it).
    let status = gw.status();
    let active = &status["maintenance"]["active"][0];
    assert_eq!(active["device"], "probe-a");
    assert_eq!(active["zone"], "battery-room");
    assert_eq!(active["by"], "alice");
    assert_eq!(active["reason"], "calibration gas");
    assert_eq!(active["uid"], me);
    assert!(active["remaining_s"].as_u64().unwrap() > 3500);
    assert_eq!(status["maintenance"]["recent"][0]["action"], "start");
    assert!(gw.device("probe-a")["maintenance"][0]["until_ms"].is_u64());
    assert!(gw.device("probe-b").get("maintenance").is_none());
    let metrics = gw.get("/metrics").unwrap();
    assert!(
        metrics.contains("firebreak_maintenance_entries{zone=\"battery-room\"} 1"),
        "{metrics}"
    );
    let lines = watch.wait_for(Duration::from_secs(10), |l| {
        l.iter()
            .any(|l| l.starts_with("STATUS ") && l.contains("| maintenance: probe-a until "))
    });
    assert!(
        lines
            .iter()
            .any(|l| l.contains("maintenance: probe-a until")),
        "{lines:#?}"
    );

    // Calibration gas and a smoke test on probe-a: seen, and nothing raised.
    let before = watch.lines.len();
    reading(&gw, port, "a", 45.0, 1);
    std::thread::sleep(Duration::from_secs(2));
    reading(&gw, port, "a", 60.0, 1);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(level(&gw), "normal", "{}", zone(&gw));
    assert!(
        !watch.lines[before..]
            .iter()
            .any(|l| l.starts_with("LEVEL ") || l.starts_with("ACCEPTED ")),
        "{:#?}",
        &watch.lines[before..]
    );

    // The technician's page says so, on the zone, the device and its own list.
    if require_peer("chromium") {
        let page = common::browser::dom(d, &format!("http://127.0.0.1:{}/", gw.http_port));
        for shown in [
            "data-maintenance=\"probe-a\"",
            "data-device-maintenance=\"probe-a\"",
            "data-maintenance-zone=\"battery-room\"",
            "under maintenance, not evidence: probe-a",
            "by alice: calibration gas",
        ] {
            assert!(page.contains(shown), "{shown} not in {page}");
        }
        assert!(
            !page.contains("data-device-maintenance=\"probe-b\""),
            "{page}"
        );
    }

    // A real fire at probe-b meanwhile: evacuate, on probe-b's evidence alone.
    reading(&gw, port, "b", 45.0, 1);
    let lines = watch.wait_for(Duration::from_secs(15), |l| {
        l.iter().any(|l| l.starts_with("LEVEL EVACUATE"))
    });
    assert!(
        lines.iter().any(|l| l.starts_with("LEVEL EVACUATE")),
        "{lines:#?}"
    );
    assert_eq!(level(&gw), "evacuate");
    assert_eq!(reason_devices(&gw), vec!["probe-b"]);
    // probe-b clears: the level comes down; probe-a's gas still counts for nothing.
    reading(&gw, port, "b", 0.0, 0);
    assert!(wait_until(Duration::from_secs(15), || level(&gw) == "normal").is_some());

    // A restart keeps the maintenance.
    gw.peer.terminate();
    let gw = Gateway::start_logging(d, &config, Some(&d.join("gateway-2.log")));
    let status = gw.status();
    assert_eq!(status["maintenance"]["active"][0]["device"], "probe-a");
    assert_eq!(status["maintenance"]["recent"][0]["action"], "restore");
    reading(&gw, port, "a", 55.0, 1);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(level(&gw), "normal", "{}", zone(&gw));

    // Ended: probe-a counts again from its next reading.
    let out = maintenance(&site_toml, &["end", "--device", "probe-a", "--by", "alice"]);
    let said = text(&out.stdout);
    assert!(out.status.success(), "{said}{}", text(&out.stderr));
    assert!(
        said.starts_with("MAINTENANCE OVER probe-a: counts again"),
        "{said}"
    );
    assert!(said.contains("nothing under maintenance"), "{said}");
    assert!(
        gw.status()["maintenance"]["active"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    reading(&gw, port, "a", 56.0, 1);
    assert!(wait_until(Duration::from_secs(10), || level(&gw) == "evacuate").is_some());
    assert_eq!(reason_devices(&gw), vec!["probe-a"]);
    let lines = watch.wait_for(Duration::from_secs(10), |l| {
        l.iter()
            .rev()
            .find(|l| l.starts_with("STATUS ") && l.contains("ONLINE"))
            .is_some_and(|l| !l.contains("maintenance"))
    });
    assert!(!lines.is_empty());

    // probe-a is now behind the evacuation: maintenance needs --force.
    let start = [
        "start",
        "--device",
        "probe-a",
        "--for",
        "10m",
        "--reason",
        "probe drifting",
    ];
    let out = maintenance(&site_toml, &start);
    let err = text(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("probe-a is behind zone battery-room's evacuate now")
            && err.contains("--force"),
        "{err}"
    );
    let out = maintenance(&site_toml, &[&start[..], &["--force"]].concat());
    let said = text(&out.stdout);
    assert!(out.status.success(), "{said}{}", text(&out.stderr));
    assert!(
        said.contains("(forced: it was behind its zone's level)"),
        "{said}"
    );
    // The zone comes down after its hold, though probe-a still reads gas.
    reading(&gw, port, "a", 57.0, 1);
    assert!(wait_until(Duration::from_secs(15), || level(&gw) == "normal").is_some());
    let out = maintenance(&site_toml, &["list"]);
    assert!(
        text(&out.stdout).contains("probe-a (zone battery-room) until"),
        "{}",
        text(&out.stdout)
    );

    // Every change is in the log, with who asked.
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        logged.contains("maintenance: probe-a is not evidence until")
            && logged.contains("calibration gas")
            && logged.contains("alice")
            && logged.contains(&format!("uid=Some({me})")),
        "{logged}"
    );
    let logged = std::fs::read_to_string(d.join("gateway-2.log")).unwrap();
    assert!(logged.contains("forced=true"), "{logged}");
}

#[test]
fn maintenance_ends_by_itself_and_bad_requests_and_strangers_are_refused() {
    if !peers() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (_broker, port) = mosquitto(d);
    let config = site(d, port);
    let gw = Gateway::start(d, &config);
    let site_toml = d.join("site.toml");
    reading(&gw, port, "b", 0.0, 0);

    // One channel, for two seconds: listed, then gone by itself.
    let out = maintenance(
        &site_toml,
        &[
            "start",
            "--device",
            "probe-b",
            "--channel",
            "0",
            "--for",
            "2s",
            "--reason",
            "swap",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("MAINTENANCE probe-b channel 0: not evidence until"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(gw.status()["maintenance"]["active"][0]["channel"], 0);
    let ended = wait_until(Duration::from_secs(10), || {
        gw.status()["maintenance"]["active"]
            .as_array()
            .unwrap()
            .is_empty()
    });
    assert!(ended.is_some());
    let recent = gw.status()["maintenance"]["recent"].clone();
    assert_eq!(recent[1]["action"], "expire", "{recent}");
    assert_eq!(recent[1]["by"], "gateway", "{recent}");
    assert!(
        gw.get("/metrics")
            .unwrap()
            .contains("firebreak_maintenance_changes_total 2")
    );

    // Refused, naming what is wrong.
    let refused = |args: &[&str], why: &str| {
        let out = maintenance(&site_toml, args);
        let err = text(&out.stderr);
        assert!(!out.status.success(), "{args:?} was accepted");
        assert!(err.contains(why), "{args:?}: {err}");
    };
    refused(
        &["start", "--device", "ghost", "--for", "5m", "--reason", "x"],
        "device \"ghost\" is not in this gateway's configuration (devices: probe-a, probe-b)",
    );
    refused(
        &[
            "start", "--device", "probe-b", "--for", "2d", "--reason", "x",
        ],
        "maintenance always ends by itself",
    );
    refused(
        &[
            "start",
            "--device",
            "probe-b",
            "--channel",
            "5",
            "--for",
            "5m",
            "--reason",
            "x",
        ],
        "device probe-b has no channel 5 (it reports channels 0)",
    );
    refused(
        &[
            "start", "--device", "probe-b", "--for", "5m", "--reason", " ",
        ],
        "reason is empty",
    );
    refused(
        &[
            "start", "--device", "probe-b", "--for", "soon", "--reason", "x",
        ],
        "\"soon\" is not a duration",
    );
    refused(
        &["end", "--device", "probe-b"],
        "probe-b is not under maintenance (none is)",
    );
    assert!(
        gw.status()["maintenance"]["active"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    // A reload that removes a device ends its maintenance (the other's stays).
    for device in ["probe-a", "probe-b"] {
        let out = maintenance(
            &site_toml,
            &[
                "start", "--device", device, "--for", "1h", "--reason", "rewiring",
            ],
        );
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    // probe-b reads a fire while maintained: a reload rebuilds the policy engine from the
    // readings it holds, and must not take probe-b's as evidence.
    reading(&gw, port, "b", 45.0, 1);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(level(&gw), "normal", "{}", zone(&gw));
    let running = std::fs::read_to_string(&site_toml).unwrap();
    let start = running
        .find("[[mqtt_sources]]\nname = \"probe-a\"")
        .unwrap();
    let end = start
        + running[start..]
            .find("[[mqtt_sources]]\nname = \"probe-b\"")
            .unwrap();
    std::fs::write(
        &site_toml,
        format!("{}{}", &running[..start], &running[end..]),
    )
    .unwrap();
    gw.sighup();
    let dropped = wait_until(Duration::from_secs(10), || {
        let m = gw.status()["maintenance"].clone();
        m["active"].as_array().unwrap().len() == 1
            && m["recent"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c["action"] == "drop" && c["device"] == "probe-a")
    });
    assert!(dropped.is_some(), "{}", gw.status()["maintenance"]);
    assert_eq!(gw.status()["maintenance"]["active"][0]["device"], "probe-b");
    for _ in 0..8 {
        assert_eq!(level(&gw), "normal", "after the reload: {}", zone(&gw));
        std::thread::sleep(Duration::from_millis(250));
    }

    // Another Unix user cannot use the socket: its mode (0600) refuses them, even where they
    // can reach it. Root only (to switch user); Python as the foreign client.
    let socket = d.join("outbox/control.sock");
    if std::fs::metadata(d).unwrap().uid() != 0 || !require_peer("setpriv") {
        return;
    }
    for p in [d, &d.join("outbox")] {
        std::fs::set_permissions(p, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    }
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/python3", "-c"])
        .arg(
            "import socket,sys\ns=socket.socket(socket.AF_UNIX)\n\
             try:\n s.connect(sys.argv[1])\nexcept PermissionError as e:\n print('denied', e); sys.exit(3)\n\
             s.sendall(b'{\"request\":\"maintenance-list\"}\\n'); print(s.recv(4096))",
        )
        .arg(&socket)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(
        text(&out.stdout).starts_with("denied"),
        "{}",
        text(&out.stdout)
    );
}
