//! Room sensors against a real broker: Mosquitto, read with `mosquitto_sub`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test code

#[path = "../../gateway/tests/common/mod.rs"]
mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use firebreak_hil::scenario::Scenario;
use firebreak_hil::sim::{Broker, Endpoint, SimOptions, Simulation};
use firebreak_hil::time::ScenarioTime;

const ROOM: &str = r#"
name = "room"
description = "a building sensor"
start = "T0"
end = "T+1h"
evacuation_budget_s = 300
[expect]
never_above = "watch"
[[devices]]
name = "bms-1"
kind = "room-mqtt"
zone = "hall"
publish_interval_ms = 200
[[timeline]]
device = "bms-1"
signal = "room-temperature"
at = "T+1m"
value = 24.5
[[timeline]]
device = "bms-1"
signal = "generator-running"
at = "T+1m"
value = true
[[faults]]
device = "bms-1"
kind = "garbage"
from = "T+10m"
to = "T+11m"
[[faults]]
device = "bms-1"
kind = "drop"
from = "T+20m"
to = "T+21m"
"#;

/// One message from `topic`, waiting at most `secs`; `None` when nothing came.
fn one_message(port: u16, topic: &str, secs: u32) -> Option<Vec<u8>> {
    let out = Command::new("mosquitto_sub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-t",
            topic,
            "-C",
            "1",
            "-W",
            &secs.to_string(),
        ])
        .output()
        .unwrap();
    (out.status.success() && !out.stdout.is_empty()).then(|| {
        let mut p = out.stdout;
        if p.last() == Some(&b'\n') {
            p.pop();
        }
        p
    })
}

/// Waits (bounded) for a message that satisfies `check`.
fn wait_for(port: u16, topic: &str, mut check: impl FnMut(&[u8]) -> bool) -> Vec<u8> {
    let start = Instant::now();
    let mut last = Vec::new();
    while start.elapsed() < Duration::from_secs(15) {
        if let Some(m) = one_message(port, topic, 5) {
            if check(&m) {
                return m;
            }
            last = m;
        }
    }
    panic!(
        "no matching message on {topic}; last: {}",
        String::from_utf8_lossy(&last)
    );
}

#[test]
fn a_room_sensor_publishes_json_and_misbehaves_on_cue() {
    if !require_peer("mosquitto") || !require_peer("mosquitto_sub") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (_broker, port) = mosquitto(dir.path());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let scenario = Scenario::parse(ROOM, "room.toml").unwrap();
    let sim = rt
        .block_on(Simulation::start(
            &scenario,
            SimOptions {
                broker: Some(Broker {
                    host: "127.0.0.1".into(),
                    port,
                }),
                paused: true,
                ..SimOptions::default()
            },
        ))
        .unwrap();
    let topic = match sim.addresses().get("bms-1") {
        Some(Endpoint::Mqtt { topic, .. }) => topic.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(topic, "firebreak-hil/room/hall/bms-1");
    let json = |m: &[u8]| serde_json::from_slice::<serde_json::Value>(m).ok();

    let first = wait_for(port, &topic, |m| json(m).is_some());
    let v = json(&first).unwrap();
    assert_eq!(v["temperature"], 23.0, "{v}");
    assert_eq!(v["humidity"], 40.0);
    assert_eq!(v["generator-running"], false);

    sim.clock().jump_to(ScenarioTime::from_secs(120));
    wait_for(port, &topic, |m| {
        json(m).is_some_and(|v| v["temperature"] == 24.5 && v["generator-running"] == true)
    });

    sim.clock().jump_to(ScenarioTime::from_secs(10 * 60 + 30));
    wait_for(port, &topic, |m| json(m).is_none());

    // Dropped: the sensor disconnects and nothing is published.
    sim.clock().jump_to(ScenarioTime::from_secs(20 * 60 + 30));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(one_message(port, &topic, 2), None);
    assert!(sim.device("bms-1").unwrap().stats().dropped > 0);

    // After the fault it connects again.
    sim.clock().jump_to(ScenarioTime::from_secs(22 * 60));
    wait_for(port, &topic, |m| json(m).is_some());
}
