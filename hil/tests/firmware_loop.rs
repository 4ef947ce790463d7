//! The firmware in the loop: the sensor node's host build (`firebreak-node-sim`) driven by the
//! rig's feed — values and clock — on an emulated RS-485 line made of socat PTYs, read by a
//! Modbus master nobody here wrote (`mbpoll`).
//!
//! Needs `firebreak-node-sim` (built with the workspace), socat and mbpoll; under
//! scripts/test.sh (FIREBREAK_REQUIRE_PEERS=1) a missing one fails the test.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test code

#[path = "../../gateway/tests/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use firebreak_hil::node::line::Parity;
use firebreak_hil::node::{AlarmChange, NodeBackend, NodePrograms, NodeReport, SerialNode};
use firebreak_hil::scenario::{RebootReason, Scenario};
use firebreak_hil::sim::{Endpoint, SimOptions, Simulation};
use firebreak_hil::time::ScenarioTime;

/// The host build, or `None` (a failure under scripts/test.sh) when it or a peer is missing.
fn host_node() -> Option<PathBuf> {
    if !require_peer("socat") || !require_peer("mbpoll") {
        return None;
    }
    match NodePrograms::default().sim() {
        Ok(p) if p.is_file() => Some(p),
        other => {
            if std::env::var("FIREBREAK_REQUIRE_PEERS").as_deref() == Ok("1") {
                panic!("firebreak-node-sim: {other:?} (cargo build -p firebreak-node-sim)");
            }
            eprintln!("SKIPPED: firebreak-node-sim not built: {other:?}");
            None
        }
    }
}

fn t(text: &str) -> ScenarioTime {
    ScenarioTime::parse(text).unwrap()
}

/// Runs `scenario` on `backend` at `scale` to its end (plus a little), returns what the nodes
/// reported.
async fn replay(scenario: &Scenario, backend: NodeBackend, scale: f64) -> NodeReport {
    let dir = tempfile::tempdir().unwrap();
    replay_in(scenario, backend, scale, dir.path()).await
}

const DEBOUNCES: &str = r#"
name = "debounces"
description = "off-gas steps up and back down, a rack ramps past its rate and absolute limits"
start = "T0"
end = "T+50s"
evacuation_budget_s = 300
[expect]
never_above = "prepare"
[[devices]]
name = "node-b1"
kind = "node"
zone = "battery-room"
[[timeline]]
device = "node-b1"
signal = "off-gas"
at = "T+5s"
value = 80
[[timeline]]
device = "node-b1"
signal = "off-gas"
at = "T+30s"
value = 10
[[timeline]]
device = "node-b1"
signal = "rack-temperature"
from = "T0"
to = "T+40s"
start = 24
end = 70
"#;

/// The node's decisions depend on scenario time only: x1 and x60 give the same alarm-state
/// changes at the same moments.
#[tokio::test(flavor = "multi_thread")]
async fn the_node_decides_the_same_at_x1_and_x60() {
    let Some(program) = host_node() else { return };
    let scenario = Scenario::parse(DEBOUNCES, "debounces.toml").unwrap();
    let backend = NodeBackend::Host { program };
    let (slow, fast) = tokio::join!(
        replay(&scenario, backend.clone(), 1.0),
        replay(&scenario, backend, 60.0)
    );
    let changes = |r: &NodeReport| -> Vec<AlarmChange> { r.nodes[0].alarms.clone() };
    let (slow, fast) = (changes(&slow), changes(&fast));
    assert_eq!(slow, fast, "x1 and x60 decided differently");
    // And they are the firmware's rules: off-gas 80 ppm held 5 s latches at T+10s (one feed
    // step of slack), with the off-gas cause.
    let first = slow.first().expect("the node never latched");
    assert_eq!(
        first.state & 0b1_1001,
        0b0_1001,
        "latched on off-gas: {slow:?}"
    );
    let at = first.at.millis();
    assert!((10_000..=10_500).contains(&at), "latched at {}", first.at);
    // The rack's rise (69 degC/min) joins once 20 s of readings exist and 10 s have held;
    // the absolute limit (60 degC at T+31.3s) after its 3 s.
    let with = |bit: u16| slow.iter().find(|a| a.state & 1 << bit != 0).map(|a| a.at);
    let rate = with(2).expect("no rate-of-rise cause");
    assert!((t("T+20s")..=t("T+32s")).contains(&rate), "rate at {rate}");
    let hot = with(1).expect("no temperature cause");
    assert!(
        (t("T+34s")..=t("T+35s")).contains(&hot),
        "temperature at {hot}"
    );
    // Off-gas back at 10 ppm at T+30s: its cause clears 10 s later; the relay stays latched.
    let last = slow.last().unwrap();
    assert_eq!(last.state & 1 << 3, 0, "off-gas cause still set: {slow:?}");
    assert_eq!(last.state & 1, 1, "the relay holds: {slow:?}");
}

/// `mbpoll` reads input registers `start..start+count` of `unit` on `dev`; `None` when the
/// exchange failed (a noisy line).
fn mbpoll(dev: &Path, unit: u8, start: u16, count: u16) -> Option<Vec<u16>> {
    let out = Command::new("mbpoll")
        .args([
            "-m", "rtu", "-b", "19200", "-P", "none", "-t", "3", "-0", "-1",
        ])
        .args(["-a", &unit.to_string()])
        .args([
            "-r",
            &start.to_string(),
            "-c",
            &count.to_string(),
            "-o",
            "1",
        ])
        .arg(dev)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let values: Vec<u16> = text
        .lines()
        .filter_map(|l| {
            let (_, rest) = l.trim().strip_prefix('[')?.split_once("]:")?;
            rest.split_whitespace().next()?.parse().ok()
        })
        .collect();
    (values.len() == usize::from(count)).then_some(values)
}

/// Reads until an exchange gets through (the line may be noisy), at most 40 tries.
fn mbpoll_retrying(dev: &Path, unit: u8, start: u16, count: u16) -> Vec<u16> {
    for _ in 0..40 {
        if let Some(v) = mbpoll(dev, unit, start, count) {
            return v;
        }
    }
    panic!(
        "mbpoll never read unit {unit} registers {start}+{count} on {}",
        dev.display()
    );
}

/// `scenario`'s simulation with the host build as its nodes, its clock running at x1.
async fn running(scenario: &str, program: PathBuf, dir: &Path) -> Simulation {
    let scenario = Scenario::parse(scenario, "t.toml").unwrap();
    Simulation::start(
        &scenario,
        SimOptions {
            node: NodeBackend::Host { program },
            work_dir: Some(dir.to_path_buf()),
            ..SimOptions::default()
        },
    )
    .await
    .unwrap()
}

fn gateway_port(sim: &Simulation, device: &str) -> (PathBuf, u8) {
    match sim.addresses().get(device) {
        Some(Endpoint::ModbusRtu { serial, unit }) => (serial.clone(), *unit),
        other => panic!("{device}: not on an RTU line: {other:?}"),
    }
}

const TWO_NODES: &str = r#"
name = "two-nodes"
description = "two nodes on one noisy line"
start = "T0"
end = "T+1h"
evacuation_budget_s = 300
[line]
noise = 0.02
[expect]
never_above = "watch"
[[devices]]
name = "node-a1"
kind = "node"
zone = "battery-room"
unit = 1
[[devices]]
name = "node-b1"
kind = "node"
zone = "battery-room"
unit = 7
[[timeline]]
device = "node-a1"
signal = "rack-temperature"
at = "T0"
value = 31
[[timeline]]
device = "node-b1"
signal = "rack-temperature"
at = "T0"
value = 27.5
"#;

/// Two firmware nodes multi-dropped on one line, each answering its own unit; the line's
/// noise is dropped by the CRC on both sides and counted, never read as a value.
#[tokio::test(flavor = "multi_thread")]
async fn two_nodes_share_a_noisy_line_and_a_foreign_master_reads_each() {
    let Some(program) = host_node() else { return };
    let dir = tempfile::tempdir().unwrap();
    let sim = running(TWO_NODES, program, dir.path()).await;
    let (a, unit_a) = gateway_port(&sim, "node-a1");
    let (b, unit_b) = gateway_port(&sim, "node-b1");
    assert_eq!(a, b, "one line");
    assert_eq!((unit_a, unit_b), (1, 7));
    let mut readings = Vec::new();
    for _ in 0..10 {
        let (dev, ua, ub) = (a.clone(), unit_a, unit_b);
        readings.push(
            tokio::task::spawn_blocking(move || {
                (
                    mbpoll_retrying(&dev, ua, 0, 1)[0],
                    mbpoll_retrying(&dev, ub, 0, 1)[0],
                )
            })
            .await
            .unwrap(),
        );
    }
    // Whatever got through is right: 31.0 and 27.5 degC in tenths, never a corrupted value.
    assert!(readings.iter().all(|r| *r == (310, 275)), "{readings:?}");
    let report = sim.firmware().unwrap().report().await;
    assert!(
        report.line.bytes_corrupted > 0,
        "no noise on the line: {:?}",
        report.line
    );
    let crc: u64 = report
        .nodes
        .iter()
        .map(|n| n.status.expect("no status line").crc_errors)
        .sum();
    assert!(crc > 0, "the nodes counted no CRC error: {report:?}");
    assert!(report.nodes.iter().all(|n| n.first_latch().is_none()));
}

const QUIET: &str = r#"
name = "quiet"
description = "one node, nothing happens"
start = "T0"
end = "T+1h"
evacuation_budget_s = 300
[expect]
never_above = "watch"
[[devices]]
name = "node-b1"
kind = "node"
zone = "battery-room"
"#;

/// A watchdog reboot: the node hangs, its watchdog resets it, it says why, and the rig feeds
/// it again from the moment it is back.
#[tokio::test(flavor = "multi_thread")]
async fn a_watchdog_reboot_is_seen_with_its_reason() {
    let Some(program) = host_node() else { return };
    let dir = tempfile::tempdir().unwrap();
    let sim = running(QUIET, program, dir.path()).await;
    let nodes = sim.firmware().unwrap();
    let (dev, unit) = gateway_port(&sim, "node-b1");
    let reason = {
        let dev = dev.clone();
        tokio::task::spawn_blocking(move || mbpoll_retrying(&dev, unit, 108, 1)[0])
            .await
            .unwrap()
    };
    assert_eq!(reason, 0, "power-on");
    let outcome = nodes.reboot("node-b1", RebootReason::Watchdog).await;
    assert!(outcome.contains("hang"), "{outcome}");
    let mut boots = Vec::new();
    for _ in 0..100 {
        boots = nodes.report().await.nodes[0].boots.clone();
        if boots.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(boots.len(), 2, "no second boot: {boots:?}");
    assert_eq!(boots[1].reset_reason, Some(1), "watchdog");
    let reason = tokio::task::spawn_blocking(move || mbpoll_retrying(&dev, unit, 108, 1)[0])
        .await
        .unwrap();
    assert_eq!(reason, 1, "the reset reason register says watchdog");
    let report = nodes.report().await;
    assert!(report.nodes[0].refused.is_empty(), "{report:?}");
    assert!(report.nodes[0].problems.is_empty(), "{report:?}");
}

const SMOKE: &str = r#"
name = "smoke"
description = "the smoke contact closes"
start = "T0"
end = "T+20s"
evacuation_budget_s = 300
[expect]
never_above = "prepare"
[[devices]]
name = "node-b1"
kind = "node"
zone = "battery-room"
[[timeline]]
device = "node-b1"
signal = "smoke-alarm"
at = "T+5s"
value = true
"#;

/// A physical node on serial adapters, its feed on a second one: tested through two socat
/// PTY pairs with the host build standing in for the board.
#[tokio::test(flavor = "multi_thread")]
async fn a_node_on_serial_adapters_is_driven_through_its_feed_port() {
    let Some(program) = host_node() else { return };
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n);
    let socat = |a: &Path, b: &Path| {
        Peer::spawn(
            "socat",
            Command::new("socat").args([
                format!("pty,raw,echo=0,link={}", a.display()),
                format!("pty,raw,echo=0,link={}", b.display()),
            ]),
        )
    };
    let _rtu = socat(&p("rtu-adapter"), &p("rtu-board"));
    let _feed = socat(&p("feed-adapter"), &p("feed-board"));
    assert!(
        wait_until(Duration::from_secs(5), || {
            ["rtu-adapter", "rtu-board", "feed-adapter", "feed-board"]
                .iter()
                .all(|n| p(n).exists())
        })
        .is_some()
    );
    let _board = Peer::spawn(
        "firebreak-node-sim",
        Command::new(&program)
            .arg("--serial")
            .arg(p("rtu-board"))
            .arg("--feed")
            .arg(p("feed-board")),
    );
    std::thread::sleep(Duration::from_millis(500));
    let scenario = Scenario::parse(SMOKE, "smoke.toml").unwrap();
    let work = dir.path().join("rig");
    std::fs::create_dir_all(&work).unwrap();
    let report = replay_in(
        &scenario,
        NodeBackend::Serial(SerialNode {
            rtu: p("rtu-adapter"),
            feed: Some(p("feed-adapter")),
            baud: 19_200,
            parity: Parity::None,
        }),
        10.0,
        &work,
    )
    .await;
    let node = &report.nodes[0];
    assert_eq!(report.backend, "serial");
    let first = node
        .first_latch()
        .expect("no alarm through the serial feed");
    assert_ne!(first.state & 1 << 4, 0, "smoke: {first:?}");
    assert!(
        (t("T+6s")..=t("T+7s")).contains(&first.at),
        "smoke held 1 s: latched at {}",
        first.at
    );
    assert!(node.refused.is_empty(), "{node:?}");
}

/// [`replay`] with the rig's files in `dir`, and a foreign master reading the alarm-state
/// register through the line once the replay is over.
async fn replay_in(
    scenario: &Scenario,
    backend: NodeBackend,
    scale: f64,
    dir: &Path,
) -> NodeReport {
    let sim = Simulation::start(
        scenario,
        SimOptions {
            time_scale: Some(scale),
            paused: true,
            node: backend,
            work_dir: Some(dir.to_path_buf()),
            ..SimOptions::default()
        },
    )
    .await
    .unwrap();
    sim.clock().resume();
    let real = scenario.duration().as_secs_f64() / scale;
    tokio::time::sleep(Duration::from_secs_f64(real + 0.5)).await;
    let (dev, unit) = gateway_port(&sim, "node-b1");
    let state = tokio::task::spawn_blocking(move || mbpoll_retrying(&dev, unit, 107, 1)[0])
        .await
        .unwrap();
    let report = sim.firmware().unwrap().report().await;
    let last = report.nodes[0].alarms.last().map_or(0, |a| a.state);
    assert_eq!(state, last, "the register and the reported state differ");
    report
}
