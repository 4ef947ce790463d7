//! A battery-room sensor node that reboots, seen by the gateway running as a process.
//!
//! The node's register map (`firebreak-sensor-node`) is served over Modbus TCP by the HIL
//! rig's stand-in (`firebreak_hil::sim::SimDevice`, the simulator `firebreak demo` uses), its
//! uptime (input registers 102-103) advancing with the clock. The node then reboots twice: its
//! uptime goes back with reset reason 1 (watchdog) while it keeps answering; then it goes
//! silent and comes back up for less time than it was away, with reason 4 (brown-out).
//! `/status`, `/metrics` and the log must show each reboot with its reason; levels must not
//! move.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test code

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use firebreak_hil::clock::ScenarioClock;
use firebreak_hil::sim::{ModbusServer, SimDevice};
use firebreak_hil::time::ScenarioTime;
use firebreak_protocols::{DeviceId, SENSOR_NODE, Signal};

/// What the simulated node says of itself: up since `boot` plus `base_s`, reset for `reason`.
struct NodeClock {
    boot: Instant,
    base_s: f32,
    reason: f32,
}

impl NodeClock {
    fn uptime_s(&self) -> f32 {
        self.base_s + self.boot.elapsed().as_secs() as f32
    }
}

/// The node's reboots counted in `/metrics` for `reason`.
fn reboots(metrics: &str, reason: &str) -> Option<u64> {
    let prefix =
        format!("firebreak_device_reboots_total{{device=\"node-b1\",reason=\"{reason}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|n| n.trim().parse().ok())
}

#[test]
fn a_node_that_reboots_shows_in_status_metrics_and_log() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let node = Arc::new(SimDevice::modbus(
        DeviceId::new("node-b1").unwrap(),
        Arc::from(SENSOR_NODE.registers),
    ));
    for ch in 0..8 {
        node.set_value(Signal::RackTemperature, ch, 24.0).unwrap();
    }
    node.set_value(Signal::RoomTemperature, 0, 23.0).unwrap();
    node.set_value(Signal::RoomHumidity, 0, 40.0).unwrap();
    let server = runtime
        .block_on(ModbusServer::start(
            SocketAddr::from(([127, 0, 0, 1], 0)),
            vec![(1, Arc::clone(&node))],
            ScenarioClock::paused(ScenarioTime::T0),
        ))
        .unwrap();

    // Up for a day after a power-on; the node's clock keeps its registers current.
    let clock = Arc::new(Mutex::new(NodeClock {
        boot: Instant::now(),
        base_s: 86_400.0,
        reason: 0.0,
    }));
    let stop = Arc::new(AtomicBool::new(false));
    let ticker = {
        let (node, clock, stop) = (Arc::clone(&node), Arc::clone(&clock), Arc::clone(&stop));
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                {
                    let c = clock.lock().unwrap();
                    node.set_value(Signal::ResetReason, 0, c.reason).unwrap();
                    node.set_value(Signal::DeviceUptime, 0, c.uptime_s())
                        .unwrap();
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };
    let reboot = |base_s: f32, reason: f32| {
        let mut c = clock.lock().unwrap();
        *c = NodeClock {
            boot: Instant::now(),
            base_s,
            reason,
        };
    };

    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("gateway.log");
    let config = format!(
        "[site]\nname = \"test\"\ngateway = \"gw-test\"\n[[zones]]\nname = \"battery-room\"\n\
         [http]\nbind = \"{{HTTP}}\"\n\
         [[devices]]\nname = \"node-b1\"\nzone = \"battery-room\"\ntransport = \"tcp\"\n\
         address = \"{}\"\nunit = 1\nprofile = \"firebreak-sensor-node\"\n\
         poll_interval_ms = 200\ntimeout_ms = 100\ncomm_lost_after = 3\n",
        server.local_addr()
    );
    let gw = Gateway::start_logging(dir.path(), &config, Some(&log));

    // Running: uptime and reason in /status, no reboot for the first readings, a zero counter
    // for every known reason (so that the first reboot is an increase).
    let running = wait_until(Duration::from_secs(10), || {
        let d = gw.device("node-b1");
        d["uptime_s"].as_u64().is_some_and(|u| u >= 86_401)
    });
    let d = gw.device("node-b1");
    assert!(running.is_some(), "{d}");
    assert_eq!(d["reset_reason"], "power-on", "{d}");
    assert!(
        d["last_reboot"].is_null(),
        "the first reading is no reboot: {d}"
    );
    let metrics = gw.get("/metrics").unwrap();
    assert_eq!(reboots(&metrics, "watchdog"), Some(0), "{metrics}");
    assert!(
        metrics.contains("firebreak_device_uptime_seconds{device=\"node-b1\"} 864"),
        "{metrics}"
    );
    assert_eq!(
        gw.signal("node-b1", "device-uptime", 0).map(|(q, _)| q),
        Some("good".into())
    );
    assert_eq!(
        gw.signal("node-b1", "reset-reason", 0),
        Some(("good".into(), Some(0.0)))
    );

    // The watchdog bites: the node answers again at once, up 0 s, reset reason 1.
    let before_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    reboot(0.0, 1.0);
    let seen = wait_until(Duration::from_secs(10), || {
        !gw.device("node-b1")["last_reboot"].is_null()
    });
    let d = gw.device("node-b1");
    assert!(seen.is_some(), "{d}");
    let last = &d["last_reboot"];
    assert_eq!(last["reason"], "watchdog", "{d}");
    assert!(last["uptime_s"].as_u64().unwrap() <= 2, "{d}");
    let at_ms = last["at_ms"].as_u64().unwrap();
    assert!(
        at_ms >= before_ms && at_ms < before_ms + 10_000,
        "wall clock ms: {at_ms} vs {before_ms}"
    );
    assert_eq!(d["reset_reason"], "watchdog", "{d}");
    assert_eq!(d["reboots"]["watchdog"], 1, "{d}");
    let metrics = gw.get("/metrics").unwrap();
    assert_eq!(reboots(&metrics, "watchdog"), Some(1), "{metrics}");
    assert_eq!(reboots(&metrics, "power-on"), Some(0), "{metrics}");

    // Counted once: a few more polls of the running node add nothing.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(gw.device("node-b1")["reboots"]["watchdog"], 1);

    // A brown-out: silent long enough to be comm-lost, back up for less than it was away.
    node.set_cut(true);
    let lost = wait_until(Duration::from_secs(10), || {
        gw.device("node-b1")["comm_lost"] == true
    });
    assert!(lost.is_some(), "{}", gw.device("node-b1"));
    std::thread::sleep(Duration::from_secs(4));
    reboot(0.0, 4.0);
    node.set_cut(false);
    let seen = wait_until(Duration::from_secs(15), || {
        gw.device("node-b1")["last_reboot"]["reason"] == "brown-out"
    });
    let d = gw.device("node-b1");
    assert!(seen.is_some(), "{d}");
    assert_eq!(d["comm_lost"], false, "{d}");
    assert_eq!(d["reboots"]["watchdog"], 1, "{d}");
    assert_eq!(d["reboots"]["brown-out"], 1, "{d}");
    let metrics = gw.get("/metrics").unwrap();
    assert_eq!(reboots(&metrics, "brown-out"), Some(1), "{metrics}");
    assert_eq!(reboots(&metrics, "watchdog"), Some(1), "{metrics}");

    // The log names the device and the reason, once per reboot.
    let text = wait_until(Duration::from_secs(5), || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("device node-b1 rebooted (brown-out)")
    });
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(text.is_some(), "{logged}");
    assert_eq!(
        logged.matches("device node-b1 rebooted (watchdog)").count(),
        1,
        "{logged}"
    );
    assert!(logged.contains("WARN"), "{logged}");

    // A reboot is no evidence of fire or power loss: the levels did not move beyond the
    // `device-lost` watch of the silence.
    let status = gw.status();
    assert!(
        ["normal", "watch"].contains(&status["policy"]["site"].as_str().unwrap()),
        "{}",
        status["policy"]
    );

    stop.store(true, Ordering::Relaxed);
    ticker.join().unwrap();
    drop(gw);
    drop(server);
}
