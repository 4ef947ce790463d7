//! `firebreak-node-sim` on a socat PTY pair, read and reset by `mbpoll`, sensors fed on stdin.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test code

#[path = "../../../gateway/tests/common/mod.rs"]
mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use common::*;
use firebreak_protocols::builtin::sensor_node as map;

struct Sim {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
}

impl Sim {
    fn start(serial: &Path) -> Sim {
        let mut child = Command::new(env!("CARGO_BIN_EXE_firebreak-node-sim"))
            .arg("--serial")
            .arg(serial)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut sim = Sim {
            child,
            stdin,
            lines,
        };
        sim.expect(|l| l.contains("ready"), Duration::from_secs(10));
        sim
    }

    fn expect(&mut self, matches: impl Fn(&str) -> bool, within: Duration) -> String {
        let until = Instant::now() + within;
        loop {
            match self
                .lines
                .recv_timeout(until.saturating_duration_since(Instant::now()))
            {
                Ok(line) if matches(&line) => return line,
                Ok(_) => {}
                Err(_) => panic!("the simulator did not answer within {within:?}"),
            }
        }
    }

    fn send(&mut self, line: &str) -> String {
        writeln!(self.stdin, "{line}").unwrap();
        self.expect(
            |l| l == "ok" || l.starts_with("err"),
            Duration::from_secs(5),
        )
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

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
    let (master, node_end) = (dir.path().join("master"), dir.path().join("node"));
    let _line = Peer::spawn(
        "socat",
        Command::new("socat").args([
            &format!("pty,raw,echo=0,link={}", master.display()),
            &format!("pty,raw,echo=0,link={}", node_end.display()),
        ]),
    );
    assert!(
        wait_until(Duration::from_secs(5), || master.exists()
            && node_end.exists())
        .is_some()
    );
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
    writeln!(sim.stdin, "status").unwrap();
    let status = sim.expect(|l| l.starts_with("status"), Duration::from_secs(5));
    assert!(
        status.contains("relay=0") && status.contains("crc=0"),
        "{status}"
    );
}
