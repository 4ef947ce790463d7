//! Telemetry out, from the gateway process through a real Mosquitto: a building sensor's
//! values come out on `firebreak/v1/{site}/telemetry/{device}` with their units and quality,
//! at once when they move and again every `every_s` when they do not, counted in /metrics;
//! and a wrong `[telemetry]` is refused naming the key.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test code

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use firebreak_gateway::keys::SigningKey;
use firebreak_protocols::message::{Telemetry, decode};
use firebreak_protocols::{KeyId, Quality, Signal};

const TOPIC: &str = "firebreak/v1/paris-1/telemetry/room-sensor";

fn config(d: &std::path::Path, port: u16, telemetry: &str) -> String {
    format!(
        "[site]\nname = \"paris-1\"\ngateway = \"gw-t\"\n[[zones]]\nname = \"battery-room\"\n\
         [http]\nbind = \"{{HTTP}}\"\n\
         [[brokers]]\nname = \"local\"\nurl = \"mqtt://127.0.0.1:{port}\"\n\
         [signing]\nkey_file = \"{}\"\nkey_id = \"gw-t-2026\"\n[outbox]\ndir = \"{}\"\n\
         {telemetry}\n\
         [[mqtt_sources]]\nname = \"room-sensor\"\nzone = \"battery-room\"\n\
         broker = \"mqtt://127.0.0.1:{port}\"\ntopic = \"building/br/env\"\nfreshness_ms = 60000\n\
         [[mqtt_sources.signals]]\nsignal = \"off-gas\"\nfield = \"voc_ppm\"\n",
        d.join("gw-t-2026.key").display(),
        d.join("outbox").display()
    )
}

#[test]
fn a_sensors_values_come_out_as_telemetry_on_change_and_every_period() {
    if !require_peer("mosquitto")
        || !require_peer("mosquitto_pub")
        || !require_peer("mosquitto_sub")
    {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    SigningKey::generate(KeyId::new("gw-t-2026").unwrap())
        .unwrap()
        .write_pair(d)
        .unwrap();
    let (_broker, port) = mosquitto(d);
    let p = port.to_string();
    let mut sub = Sub::start(&["-h", "127.0.0.1", "-p", &p], TOPIC);
    let gw = Gateway::start(
        d,
        &config(d, port, "[telemetry]\nevery_s = 3\nmin_interval_ms = 500\n"),
    );
    let publish = |payload: &str| mosquitto_pub(port, "building/br/env", payload.as_bytes(), false);
    let off_gas = |payload: &str| -> Option<(f32, Quality)> {
        let m: Telemetry = decode(payload.as_bytes()).ok()?;
        let v = m.values.iter().find(|v| v.signal == Signal::OffGas)?;
        Some((v.value?, v.quality))
    };
    publish(r#"{"voc_ppm": 3.0}"#);
    assert!(
        sub.wait(Duration::from_secs(10), |g| g
            .iter()
            .any(|m| off_gas(&m.2) == Some((3.0, Quality::Good)))),
        "{:?}",
        sub.got
    );
    let first: Telemetry = decode(sub.got[0].2.as_bytes()).unwrap();
    assert_eq!(
        (
            first.gateway.as_str(),
            first.site.as_str(),
            first.zone.as_ref().map(|z| z.as_str())
        ),
        ("gw-t", "paris-1", Some("battery-room"))
    );
    // A move beyond the deadband (5 ppm) comes out within about a second.
    let moved = Instant::now();
    publish(r#"{"voc_ppm": 40.0}"#);
    assert!(sub.wait(Duration::from_secs(5), |g| {
        g.iter()
            .any(|m| off_gas(&m.2) == Some((40.0, Quality::Good)))
    }));
    assert!(
        moved.elapsed() < Duration::from_secs(3),
        "{:?}",
        moved.elapsed()
    );
    // Nothing moves: the same values again after every_s (3 s), and not much sooner.
    let n = sub.got.len();
    let quiet = Instant::now();
    assert!(sub.wait(Duration::from_secs(8), |g| g.len() > n));
    assert!(
        quiet.elapsed() >= Duration::from_millis(2_000),
        "republished after {:?}",
        quiet.elapsed()
    );
    assert_eq!(off_gas(&sub.got[n].2), Some((40.0, Quality::Good)));
    let metrics = gw.get("/metrics").unwrap();
    let published: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("firebreak_telemetry_published_total "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(published >= 3, "{metrics}");
    assert!(
        metrics.contains("firebreak_telemetry_dropped_total 0"),
        "{metrics}"
    );
}

#[test]
fn a_wrong_telemetry_section_is_refused_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for (section, key) in [
        ("[telemetry]\nevery_s = 0\n", "telemetry.every_s"),
        (
            "[telemetry]\nevery_s = 10\nmin_interval_ms = 20000\n",
            "telemetry.min_interval_ms",
        ),
        (
            "[telemetry]\n[telemetry.deadbands]\nsmoke = 1.0\n",
            "telemetry.deadbands.smoke",
        ),
        (
            "[telemetry]\n[telemetry.deadbands]\noff-gas = -1.0\n",
            "telemetry.deadbands.off-gas",
        ),
    ] {
        let path = d.join("site.toml");
        std::fs::write(
            &path,
            config(d, 1883, section).replace("{HTTP}", "127.0.0.1:0"),
        )
        .unwrap();
        let out = Command::new(firebreak_bin())
            .args(["config", "check"])
            .arg(&path)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{section}");
        assert!(err.contains(key), "{key}: {err}");
    }
}
