//! The simulators as foreign Modbus masters see them: mbpoll, pymodbus and the gateway's own
//! `firebreak probe` read a running simulation, each fault kind included.
//!
//! Every test starts its own simulation on ports the kernel picks, in its own runtime, and
//! every wait is bounded. Under scripts/test.sh (FIREBREAK_REQUIRE_PEERS=1) a missing peer
//! fails the test; under plain `cargo test` it is skipped with a note.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test code

#[path = "../../gateway/tests/common/mod.rs"]
mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use firebreak_hil::scenario::Scenario;
use firebreak_hil::sim::{Endpoint, Layout, SimOptions, Simulation};
use firebreak_hil::site::{SiteOptions, site_config_with};
use firebreak_hil::time::ScenarioTime;

/// One UPS per fault kind, each faulty for the whole scenario, a healthy UPS, a PDU with a
/// 32-bit value, and the sensor node stand-in.
const FAULTS: &str = r#"
name = "faults"
description = "one device per fault kind"
start = "T0"
end = "T+1h"
evacuation_budget_s = 300
[expect]
never_above = "watch"

[[devices]]
name = "healthy"
kind = "ups"
zone = "z"
[[devices]]
name = "pdu"
kind = "pdu"
zone = "z"
unit = 2
[[devices]]
name = "node"
kind = "node"
zone = "z"
unit = 7
[[devices]]
name = "exception"
kind = "ups"
zone = "z"
unit = 3
[[devices]]
name = "silent"
kind = "ups"
zone = "z"
unit = 4
[[devices]]
name = "dropper"
kind = "ups"
zone = "z"
unit = 5
[[devices]]
name = "ones"
kind = "ups"
zone = "z"
unit = 6
[[devices]]
name = "slow"
kind = "ups"
zone = "z"
unit = 8
[[devices]]
name = "garbage"
kind = "ups"
zone = "z"
unit = 9

[[timeline]]
device = "pdu"
signal = "pdu-power"
at = "T0"
value = 123456
[[timeline]]
device = "node"
signal = "rack-temperature"
channel = 3
from = "T+10m"
to = "T+20m"
start = 25
end = 55

[[faults]]
device = "exception"
kind = "exception"
code = 6
from = "T0"
[[faults]]
device = "silent"
kind = "silent"
from = "T0"
[[faults]]
device = "dropper"
kind = "drop"
from = "T0"
[[faults]]
device = "ones"
kind = "all-ones"
from = "T0"
[[faults]]
device = "slow"
kind = "slow"
delay_ms = 1500
from = "T0"
[[faults]]
device = "garbage"
kind = "garbage"
from = "T0"
"#;

/// A simulation running in its own runtime, kept alive with it.
struct Running {
    sim: Simulation,
    scenario: Scenario,
    _rt: tokio::runtime::Runtime,
}

impl Running {
    fn start(layout: Layout) -> Running {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let scenario = Scenario::parse(FAULTS, "faults.toml").unwrap();
        let sim = rt
            .block_on(Simulation::start(
                &scenario,
                SimOptions {
                    layout,
                    paused: true,
                    ..SimOptions::default()
                },
            ))
            .unwrap();
        Running {
            sim,
            scenario,
            _rt: rt,
        }
    }

    /// Port and unit of a device.
    fn at(&self, device: &str) -> (u16, u8) {
        match self.sim.addresses().get(device) {
            Some(Endpoint::ModbusTcp { addr, unit }) => (addr.port(), *unit),
            other => panic!("{device}: {other:?}"),
        }
    }
}

struct Output {
    ok: bool,
    stdout: String,
    stderr: String,
    took: Duration,
}

/// mbpoll, once, 0-based addresses; `table` is mbpoll's -t (4 holding, 3 input, 3:int …).
fn mbpoll(port: u16, unit: u8, table: &str, start: u16, count: u16, timeout_s: &str) -> Output {
    mbpoll_with(port, unit, table, start, count, timeout_s, &[])
}

fn mbpoll_with(
    port: u16,
    unit: u8,
    table: &str,
    start: u16,
    count: u16,
    timeout_s: &str,
    extra: &[&str],
) -> Output {
    let begun = Instant::now();
    let out = Command::new("mbpoll")
        .args([
            "-m",
            "tcp",
            "-p",
            &port.to_string(),
            "-a",
            &unit.to_string(),
            "-0",
            "-t",
            table,
            "-r",
            &start.to_string(),
            "-c",
            &count.to_string(),
            "-1",
            "-o",
            timeout_s,
        ])
        .args(extra)
        .arg("127.0.0.1")
        .output()
        .unwrap();
    Output {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        took: begun.elapsed(),
    }
}

/// The `[n]: value` lines of mbpoll's output, as (n, first number).
fn values(out: &Output) -> Vec<(u32, i64)> {
    out.stdout
        .lines()
        .filter_map(|l| {
            let (n, v) = l.trim().strip_prefix('[')?.split_once("]:")?;
            let v = v.split_whitespace().next()?;
            Some((n.parse().ok()?, v.parse().ok()?))
        })
        .collect()
}

#[test]
fn mbpoll_reads_the_profiles_through_their_descriptors() {
    if !require_peer("mbpoll") {
        return;
    }
    let r = Running::start(Layout::PortPerDevice);
    let (port, unit) = r.at("healthy");
    let out = mbpoll(port, unit, "4", 0, 7, "2");
    assert!(out.ok, "{}{}", out.stdout, out.stderr);
    // Bits 0, runtime 600 s, 100 %, 25.0 degC, 230.0 V in and out, 45 %.
    assert_eq!(
        values(&out),
        [
            (0, 0),
            (1, 600),
            (2, 100),
            (3, 250),
            (4, 2300),
            (5, 2300),
            (6, 45)
        ]
    );
    // The PDU's power is a u32, high word first: a big-endian (-B) 32-bit int to mbpoll.
    let (port, unit) = r.at("pdu");
    let out = mbpoll_with(port, unit, "3:int", 2, 1, "2", &["-B"]);
    assert!(out.ok, "{}{}", out.stdout, out.stderr);
    assert_eq!(values(&out), [(2, 123_456)], "{}", out.stdout);
    let out = mbpoll(port, unit, "3", 0, 4, "2");
    assert_eq!(values(&out), [(0, 2300), (1, 800), (2, 1), (3, 57920)]);

    // The node stand-in follows the scenario clock: probe 3 ramps 25 -> 55 degC from T+10m.
    let (port, unit) = r.at("node");
    r.sim.clock().jump_to(ScenarioTime::from_secs(15 * 60));
    let out = mbpoll(port, unit, "3", 0, 12, "2");
    let v = values(&out);
    assert_eq!(v[3], (3, 400), "{}", out.stdout);
    assert_eq!(v[0], (0, 240));
    assert_eq!(v[9], (9, 230));
}

#[test]
fn mbpoll_sees_every_fault() {
    if !require_peer("mbpoll") {
        return;
    }
    let r = Running::start(Layout::PortPerDevice);

    let (port, unit) = r.at("exception");
    let out = mbpoll(port, unit, "4", 0, 7, "2");
    assert!(!out.ok);
    assert!(
        out.stderr.contains("Slave device or server is busy"),
        "exception 06: {}",
        out.stderr
    );

    let (port, unit) = r.at("silent");
    let out = mbpoll(port, unit, "4", 0, 7, "0.5");
    assert!(!out.ok);
    assert!(out.stderr.contains("timed out"), "{}", out.stderr);
    assert!(out.took >= Duration::from_millis(450), "{:?}", out.took);

    let (port, unit) = r.at("dropper");
    let out = mbpoll(port, unit, "4", 0, 7, "2");
    assert!(!out.ok);
    assert!(
        out.stderr.contains("reset by peer") || out.stderr.contains("Connection"),
        "{}",
        out.stderr
    );
    assert!(
        out.took < Duration::from_millis(1500),
        "dropped, not timed out: {:?}",
        out.took
    );

    let (port, unit) = r.at("ones");
    let out = mbpoll(port, unit, "4", 0, 7, "2");
    assert!(out.ok, "{}", out.stderr);
    assert!(
        values(&out).iter().all(|(_, v)| *v == 65535),
        "{}",
        out.stdout
    );

    let (port, unit) = r.at("slow");
    let out = mbpoll(port, unit, "4", 1, 1, "0.5");
    assert!(!out.ok, "a 1.5 s answer misses a 0.5 s timeout");
    assert!(out.stderr.contains("timed out"), "{}", out.stderr);
    let out = mbpoll(port, unit, "4", 1, 1, "5");
    assert!(out.ok, "{}", out.stderr);
    assert_eq!(values(&out), [(1, 600)]);
    assert!(out.took >= Duration::from_millis(1400), "{:?}", out.took);

    let (port, unit) = r.at("garbage");
    let out = mbpoll(port, unit, "4", 0, 7, "2");
    assert!(out.ok, "{}", out.stderr);
    let v = values(&out);
    assert_eq!(v.len(), 7);
    assert_ne!(
        v,
        [
            (0, 0),
            (1, 600),
            (2, 100),
            (3, 250),
            (4, 2300),
            (5, 2300),
            (6, 45)
        ]
    );

    // Counters say what happened.
    let stats = r.sim.device("exception").unwrap().stats();
    assert_eq!((stats.requests, stats.exceptions), (1, 1));
    assert!(r.sim.device("dropper").unwrap().stats().dropped >= 1);
}

#[test]
fn one_port_many_units() {
    if !require_peer("mbpoll") {
        return;
    }
    let r = Running::start(Layout::SharedPort);
    let (port, _) = r.at("healthy");
    assert!(r.sim.servers().len() == 1);
    for (device, unit, table, expected) in [
        ("healthy", 1, "4", 600),
        ("pdu", 2, "3", 800),
        ("slow", 8, "4", 600),
    ] {
        assert_eq!(r.at(device), (port, unit));
        let out = mbpoll(port, unit, table, 1, 1, "5");
        assert_eq!(values(&out), [(1, expected)], "{device}: {}", out.stderr);
    }
    // A unit nobody has: exception 0x0B, as a Modbus gateway answers.
    let out = mbpoll(port, 99, "4", 0, 1, "2");
    assert!(
        out.stderr.contains("Target device failed to respond"),
        "{}",
        out.stderr
    );
    // A silent unit does not stall the others on the same port.
    let out = mbpoll(port, 4, "4", 0, 1, "0.3");
    assert!(out.stderr.contains("timed out"), "{}", out.stderr);
    let out = mbpoll(port, 1, "4", 1, 1, "2");
    assert_eq!(values(&out), [(1, 600)]);
}

/// The gateway itself reads the simulators, through the site configuration hil generates.
#[test]
fn the_gateway_probes_the_generated_site() {
    let bin = firebreak_bin();
    if !bin.exists() {
        if std::env::var("FIREBREAK_REQUIRE_PEERS").as_deref() == Ok("1") {
            panic!(
                "{} is missing: cargo build -p firebreak-gateway (scripts/test.sh does)",
                bin.display()
            );
        }
        eprintln!("SKIPPED: {} not built", bin.display());
        return;
    }
    let r = Running::start(Layout::PortPerDevice);
    let dir = tempfile::tempdir().unwrap();
    let path: PathBuf = dir.path().join("site.toml");
    let site = site_config_with(
        &r.scenario,
        r.sim.addresses(),
        &SiteOptions {
            http_bind: "127.0.0.1:0".into(),
            ..SiteOptions::default()
        },
    );
    std::fs::write(&path, site).unwrap();
    let probe = |device: &str| {
        let out = Command::new(&bin)
            .args(["probe", "--config"])
            .arg(&path)
            .args(["--device", device])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
    };
    let line = |text: &str, signal: &str| -> Vec<String> {
        text.lines()
            .find(|l| l.trim_start().starts_with(signal))
            .unwrap_or_else(|| panic!("{signal} in {text}"))
            .split_whitespace()
            .skip(2)
            .map(String::from)
            .collect()
    };
    let healthy = probe("healthy");
    assert_eq!(
        line(&healthy, "ups-input-voltage"),
        ["230", "V", "good"],
        "{healthy}"
    );
    assert_eq!(
        line(&healthy, "ups-battery-temperature"),
        ["25", "degC", "good"]
    );
    let pdu = probe("pdu");
    assert_eq!(line(&pdu, "pdu-power"), ["123456", "W", "good"], "{pdu}");
    assert_eq!(line(&pdu, "pdu-current"), ["8", "A", "good"]);
    // 0xFFFF is the u16 sentinel: sensor-fault.
    let ones = probe("ones");
    assert_eq!(
        line(&ones, "ups-runtime-remaining"),
        ["65535", "s", "sensor-fault"],
        "{ones}"
    );
    let exception = probe("exception");
    assert!(
        exception.contains("exception 0x06 (server device busy)"),
        "{exception}"
    );
}

/// pymodbus, a foreign master in another language, reads the PDU's input registers.
#[test]
fn pymodbus_reads_the_pdu() {
    let Some(python) = python() else { return };
    let r = Running::start(Layout::PortPerDevice);
    let (port, unit) = r.at("pdu");
    let script = format!(
        "from pymodbus.client import ModbusTcpClient\n\
         c = ModbusTcpClient('127.0.0.1', port={port}, timeout=3)\n\
         assert c.connect()\n\
         r = c.read_input_registers(0, count=4, device_id={unit})\n\
         print('registers', r.registers)\n\
         r = c.read_holding_registers(0, count=1, device_id={unit})\n\
         print('exception', r.isError(), getattr(r, 'exception_code', None))\n\
         c.close()\n"
    );
    let out = Command::new(python).args(["-c", &script]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("registers [2300, 800, 1, 57920]"), "{text}");
    // The PDU has no holding registers: exception 02.
    assert!(text.contains("exception True 2"), "{text}");
}
