//! The wall clock stepped ±10 minutes under a running gateway (what NTP does to a machine
//! whose clock drifted): no level changes. Judging runs on the monotonic clock; only
//! `issued_at_ms` follows the wall clock. The step is this process's own
//! (`acquire::step_wall_clock_for_tests`), so the test needs neither root nor the machine's
//! clock.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test code

mod common;

use std::time::Duration;

use common::*;
use firebreak_gateway::acquire::step_wall_clock_for_tests;
use firebreak_gateway::config::SiteConfig;
use firebreak_gateway::run::run;

#[test]
fn stepping_the_wall_clock_either_way_changes_no_level() {
    if !require_peer("mosquitto") || !require_peer("mosquitto_pub") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (_broker, port) = mosquitto(dir.path());
    let http = free_port();
    std::fs::write(dir.path().join("rules.toml"), FIRE_RULES).unwrap();
    // A 30 s hold: a wall-clock hold would complete at once on a +10 min step.
    let text = format!(
        "[site]\nname = \"clock\"\ngateway = \"gw-clock\"\n[[zones]]\nname = \"battery-room\"\n\
         [http]\nbind = \"127.0.0.1:{http}\"\n[policy]\nrules_file = \"rules.toml\"\nhold_s = 30\n\
         [[mqtt_sources]]\nname = \"sensor\"\nzone = \"battery-room\"\n\
         broker = \"mqtt://127.0.0.1:{port}\"\ntopic = \"building/clock\"\nfreshness_ms = 600000\n\
         [[mqtt_sources.signals]]\nsignal = \"off-gas\"\nfield = \"ppm\"\n\
         [[mqtt_sources.signals]]\nsignal = \"smoke-alarm\"\nfield = \"smoke\"\n"
    );
    let path = dir.path().join("site.toml");
    std::fs::write(&path, text).unwrap();
    let cfg = SiteConfig::load(&path).unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let gateway = std::thread::spawn(move || {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
            .block_on(run(cfg, async {
                let _ = stopped.await;
            }))
    });
    let publish = |p: &str| mosquitto_pub(port, "building/clock", p.as_bytes(), false);
    let status = || -> serde_json::Value {
        serde_json::from_str(&http_get(http, "/status").unwrap_or_default()).unwrap_or_default()
    };
    let prepared = wait_until(Duration::from_secs(15), || {
        publish(r#"{"ppm": 45, "smoke": 0}"#);
        status()["policy"]["site"] == "prepare"
    });
    assert!(prepared.is_some(), "{}", status());
    // The cause goes; its 30 s hold starts.
    publish(r#"{"ppm": 0, "smoke": 0}"#);
    std::thread::sleep(Duration::from_millis(500));
    let before = status()["policy"]["transitions_total"].as_u64().unwrap();

    for step in [10 * 60 * 1000, -20 * 60 * 1000] {
        step_wall_clock_for_tests(step);
        // Publishing keeps the loop turning on fresh events; readings stay as they are.
        for _ in 0..12 {
            publish(r#"{"ppm": 0, "smoke": 0}"#);
            std::thread::sleep(Duration::from_millis(250));
            let s = status();
            assert_eq!(
                s["policy"]["site"], "prepare",
                "after a {step} ms step: {s}"
            );
            assert_eq!(
                s["policy"]["transitions_total"].as_u64(),
                Some(before),
                "{s}"
            );
        }
    }
    let metrics = http_get(http, "/metrics").unwrap();
    assert!(
        metrics.contains("firebreak_wall_clock_steps_total 2"),
        "{}",
        metrics
            .lines()
            .filter(|l| l.contains("wall_clock"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let _ = stop.send(());
    gateway.join().unwrap().unwrap();
}
