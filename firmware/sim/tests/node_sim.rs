//! `firebreak-node-sim` on socat PTY pairs, read and reset by `mbpoll`, sensors fed on stdin or
//! on a PTY (`--feed`): the fed clock, the alarm events, the reset reason, `hang`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test code

#[path = "../../../gateway/tests/common/mod.rs"]
mod common;
mod sim_common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use firebreak_firmware::detect::{RATE_HOLD_MS, RATE_MIN_SPAN_MS};
use firebreak_firmware::runner::CYCLE_MS;
use firebreak_protocols::builtin::sensor_node as map;
use sim_common::*;

/// `mbpoll OPTIONS DEVICE [VALUE]`: stdout and stderr.
fn mbpoll(dev: &Path, args: &[&str], value: Option<u16>) -> String {
    let out = Command::new("mbpoll")
        .args([
            "-m", "rtu", "-b", "19200", "-P", "none", "-a", "1", "-0", "-1",
        ])
        .args(["-o", "2"])
        .args(args)
        .arg(dev)
        .args(value.map(|v| v.to_string()))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

fn read(dev: &Path, args: &[&str]) -> String {
    mbpoll(dev, args, None)
}

fn write(dev: &Path, address: u16, value: u16) -> String {
    mbpoll(dev, &["-t", "4", "-r", &address.to_string()], Some(value))
}

#[test]
fn smoke_latches_the_relay_and_a_modbus_reset_clears_it() {
    if !require_peer("socat") || !require_peer("mbpoll") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (_line, master, node_end) = pty_pair(dir.path(), "master", "node");
    let mut sim = Sim::start(&node_end);

    assert_eq!(sim.send("t0 22.5"), "ok");
    assert_eq!(sim.send("t9 22.5"), "err no such probe (t0..t7)");
    assert_eq!(sim.send("gas 12"), "ok");
    std::thread::sleep(Duration::from_millis(300));
    let readings = read(&master, &["-t", "3", "-r", "0", "-c", "9"]);
    assert!(readings.contains("[0]: \t225"), "{readings}");
    assert!(readings.contains("[8]: \t12"), "{readings}");
    let unmapped = read(&master, &["-t", "3", "-r", "12", "-c", "1"]);
    assert!(unmapped.contains("Illegal data address"), "{unmapped}");
    // The node's exception 03, as libmodbus reports it (not mbpoll's own argument check).
    let refused = write(&master, map::LIMIT_OFF_GAS, 0);
    assert!(
        refused.contains("Write output (holding) register failed: Illegal data value"),
        "{refused}"
    );
    assert!(write(&master, map::LIMIT_OFF_GAS, 80).contains("Written 1"));

    assert_eq!(sim.send("smoke 1"), "ok");
    sim.expect(|l| l == "relay on", Duration::from_secs(5));
    let alarm = read(
        &master,
        &["-t", "3", "-r", &map::ALARM_STATE.to_string(), "-c", "1"],
    );
    let expected = 1 | 1 << map::ALARM_CAUSE_SMOKE;
    assert!(alarm.contains(&format!("[107]: \t{expected}")), "{alarm}");

    // The contact opens; the smoke cause clears 10 s later; only then does the reset key work.
    assert_eq!(sim.send("smoke 0"), "ok");
    assert!(
        wait_until(Duration::from_secs(20), || {
            write(&master, map::ALARM_RESET, map::ALARM_RESET_KEY).contains("Written 1")
                && read(&master, &["-t", "3", "-r", "107", "-c", "1"]).contains("[107]: \t0")
        })
        .is_some(),
        "the alarm never cleared"
    );
    sim.expect(|l| l == "relay off", Duration::from_secs(5));
    let said = sim.status();
    let status = said.last().unwrap();
    assert!(
        status.contains("relay=0") && status.contains("crc=0") && status.contains(" reset=0"),
        "{status}"
    );
    // Own clock: the events and the status carry the node's ms since boot.
    assert!(sim.banner.ends_with(" reset=0 ready"), "{}", sim.banner);
}

/// The value of one input register, as mbpoll reads it; `None` when the node does not answer.
fn register(dev: &Path, address: u16) -> Option<u16> {
    let out = read(dev, &["-t", "3", "-r", &address.to_string(), "-c", "1"]);
    let prefix = format!("[{address}]: \t");
    out.lines()
        .find_map(|l| l.strip_prefix(&prefix)?.trim().parse().ok())
}

/// A rack warming 3 °C/min, fed at 1 s steps of the fed clock from 0 for `seconds`: each
/// second's reading is sent after the `clock` line that ends the second before.
fn ramp(seconds: u64) -> Vec<String> {
    let mut lines = vec!["clock 0".to_string()];
    for s in 0..seconds {
        lines.push(format!("t0 {:.3}", 25.0 + 0.05 * s as f64));
        lines.push(format!("clock {}", (s + 1) * 1000));
    }
    lines
}

/// The `alarm` lines among `said`.
fn alarms(said: &[String]) -> Vec<String> {
    said.iter()
        .filter(|l| l.starts_with("alarm "))
        .cloned()
        .collect()
}

/// Feeds `script` to a fresh simulator, with `pause` after each line (none: all in one
/// write, as fast as the pipe takes it); the simulator, and everything it said up to the
/// status line after.
fn replay(serial: &Path, script: &[String], pause: Option<Duration>) -> (Sim, Vec<String>) {
    let mut sim = Sim::start(serial);
    match pause {
        None => {
            let all: String = script.iter().map(|l| format!("{l}\n")).collect();
            sim.input.write_all(all.as_bytes()).unwrap();
            sim.input.flush().unwrap();
        }
        Some(pause) => {
            for line in script {
                sim.write(line);
                std::thread::sleep(pause);
            }
        }
    }
    let said = sim.status();
    let replies = said
        .iter()
        .filter(|l| *l == "ok" || l.starts_with("err"))
        .collect::<Vec<_>>();
    assert_eq!(replies.len(), script.len(), "{said:?}");
    assert!(replies.iter().all(|l| *l == "ok"), "{said:?}");
    (sim, said)
}

#[test]
fn the_fed_clock_latches_rate_of_rise_at_the_fed_time_however_fast_it_is_fed() {
    if !require_peer("socat") || !require_peer("mbpoll") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (_line, master, node_end) = pty_pair(dir.path(), "master", "node");
    // 40 s of scenario: the rule says the first reading is at fed 100 ms (one cycle after
    // `clock 0`), a rate exists once the readings span 20 s, and must hold 10 s.
    let script = ramp(40);
    let expected = CYCLE_MS + RATE_MIN_SPAN_MS + RATE_HOLD_MS;
    assert_eq!(expected, 30_100);

    let started = Instant::now();
    let (sim, fast) = replay(&node_end, &script, None);
    let fast_took = started.elapsed();
    let alarm = alarms(&fast);
    assert_eq!(alarm.len(), 1, "{fast:?}");
    let at: u64 = alarm[0]
        .strip_prefix("alarm at=")
        .and_then(|r| r.split_whitespace().next())
        .and_then(|ms| ms.parse().ok())
        .unwrap_or_else(|| panic!("{alarm:?}"));
    assert!(
        at.abs_diff(expected) <= CYCLE_MS,
        "latched at fed {at} ms, the rules say {expected}"
    );
    let latched = 1 << map::ALARM_LATCHED | 1 << map::ALARM_CAUSE_RATE_OF_RISE;
    assert_eq!(
        alarm[0],
        format!("alarm at={at} state=0x{latched:04X} faults=0x0000")
    );
    let after = fast.iter().position(|l| l.starts_with("alarm ")).unwrap() + 1;
    assert_eq!(fast[after], "relay on", "{fast:?}");
    // 40 s of scenario went by in far less real time, and the node holds its latch.
    assert!(fast_took < Duration::from_secs(10), "{fast_took:?}");
    assert!(fast.last().unwrap().contains(" at=40000 "), "{fast:?}");
    assert_eq!(register(&master, map::ALARM_STATE), Some(latched));
    drop(sim);

    // The same lines with pauses: a real clock moved on between them, the node did not.
    let (_sim, slow) = replay(&node_end, &script, Some(Duration::from_millis(40)));
    assert_eq!(alarms(&slow), alarm);
}

#[test]
fn the_reset_reason_given_is_read_back_over_modbus() {
    if !require_peer("socat") || !require_peer("mbpoll") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (_line, master, node_end) = pty_pair(dir.path(), "master", "node");
    let sim = Sim::with(&node_end, &["--reset-reason", "watchdog"]);
    assert!(sim.banner.ends_with(" reset=1 ready"), "{}", sim.banner);
    assert_eq!(register(&master, map::RESET_REASON), Some(1));
}

#[test]
fn hang_goes_silent_then_the_watchdog_restarts_the_node() {
    if !require_peer("socat") || !require_peer("mbpoll") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (_line, master, node_end) = pty_pair(dir.path(), "master", "node");
    let mut sim = Sim::start(&node_end);
    assert_eq!(register(&master, map::RESET_REASON), Some(0));
    // Latched, in fed time.
    for line in ["clock 0", "smoke 1", "clock 2000"] {
        assert_eq!(sim.send(line), "ok");
    }
    assert_eq!(register(&master, map::ALARM_STATE), Some(0x11));

    let hung = Instant::now();
    assert_eq!(sim.send("hang"), "ok");
    assert_eq!(
        register(&master, map::RESET_REASON),
        None,
        "a hung node answers nothing"
    );
    let banner = sim.expect(|l| l.contains("ready"), Duration::from_secs(10));
    let silent = hung.elapsed();
    assert!(
        silent >= Duration::from_millis(3_900) && silent < Duration::from_secs(8),
        "{silent:?}"
    );
    assert!(banner.ends_with(" reset=1 ready"), "{banner}");
    assert_eq!(register(&master, map::RESET_REASON), Some(1));
    assert_eq!(register(&master, map::ALARM_STATE), Some(0), "a fresh node");

    // Back on its own clock: a reading is taken with no `clock` line, time runs by itself.
    assert_eq!(sim.send("t0 22.5"), "ok");
    assert!(wait_until(Duration::from_secs(5), || register(&master, 0) == Some(225)).is_some());
    let status = sim.status().pop().unwrap();
    assert!(status.contains(" reset=1"), "{status}");
    assert!(status.contains(" answered="), "{status}");
    let at: u64 = status
        .split_once(" at=")
        .and_then(|(_, r)| r.split_whitespace().next()?.parse().ok())
        .unwrap();
    assert!(
        (100..10_000).contains(&at),
        "own ms since the restart: {status}"
    );
}

#[test]
fn the_feed_can_be_a_serial_line() {
    if !require_peer("socat") || !require_peer("mbpoll") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (_line, master, node_end) = pty_pair(dir.path(), "master", "node");
    let (_feed, rig_end, feed_end) = pty_pair(dir.path(), "rig", "feed");
    // The rig's end is open before the node speaks: nothing it says is lost.
    let rig = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&rig_end)
        .unwrap();
    let lines = lines_of(rig.try_clone().unwrap());
    let mut child = Command::new(env!("CARGO_BIN_EXE_firebreak-node-sim"))
        .arg("--serial")
        .arg(&node_end)
        .arg("--feed")
        .arg(&feed_end)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = lines_of(child.stdout.take().unwrap());
    let mut sim = Sim::ready(child, Box::new(rig), lines);
    assert!(sim.banner.ends_with(" reset=0 ready"), "{}", sim.banner);
    assert_eq!(sim.send("t0 22.5"), "ok");
    assert_eq!(sim.send("smoke 1"), "ok");
    sim.expect(|l| l == "relay on", Duration::from_secs(5));
    assert_eq!(register(&master, 0), Some(225));
    let status = sim.status().pop().unwrap();
    assert!(
        status.starts_with("status relay=1 alarm=0x0011 "),
        "{status}"
    );
    assert!(
        stdout.try_recv().is_err(),
        "nothing of the feed on stdout with --feed"
    );
}
