//! `firebreak-hil` as a user runs it, and the gateway accepting what it generates: every
//! scenario of the suite checks, and its site configuration passes the real
//! `firebreak config check` (FIREBREAK_BIN).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test code

#[path = "../../gateway/tests/common/mod.rs"]
mod common;
mod rig_common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use firebreak_hil::scenario::{DeviceKind, Peer as DevicePeer, SNMP_PDU_PROFILE, load_dir};
use firebreak_hil::sim::{Broker, Endpoint, SimAddresses};
use firebreak_hil::site::site_config_for;
use rig_common::{HIL, gateway, scenarios as suite};

fn config_check(bin: &Path, text: &str, dir: &Path, name: &str) -> String {
    let path = dir.join(format!("{name}.site.toml"));
    std::fs::write(&path, text).unwrap();
    let out = Command::new(bin)
        .args(["config", "check"])
        .arg(&path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{name}: firebreak config check refused:\n{}\n---\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn the_suite_checks() {
    let out = Command::new(HIL)
        .arg("check")
        .arg(suite())
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success(), "{text}");
    let files = std::fs::read_dir(suite())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "toml")
        })
        .count();
    assert!(files >= 11, "the suite has {files} scenarios");
    assert!(
        text.contains(&format!("{files} scenarios, {files} valid")),
        "{text}"
    );
    for name in [
        "battery-fire",
        "battery-fire-ventilated",
        "utility-outage-generator-fails",
        "utility-outage-generator-transfer",
        "ups-self-test",
        "probe-fails-high",
        "probe-disconnected",
        "hvac-failure",
        "network-cut",
        "broker-outage-during-fire",
        "gateway-killed-during-fire",
    ] {
        assert!(
            text.contains(&format!("ok      {name}: ")),
            "{name}: {text}"
        );
    }
}

#[test]
fn check_names_the_file_key_and_problem() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("late.toml");
    std::fs::write(
        &bad,
        std::fs::read_to_string(suite().join("battery-fire.toml"))
            .unwrap()
            .replace("name = \"battery-fire\"", "name = \"late\"")
            .replace("evacuate_by = \"T+3m\"", "evacuate_by = \"T+6m\""),
    )
    .unwrap();
    let out = Command::new(HIL).arg("check").arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        text,
        format!(
            "INVALID {}: expect.evacuate_by: T+6m is 2m before power loss at T+8m, less than evacuation_budget_s (300 s): such an evacuation is not early\n1 scenario, 0 valid\n",
            bad.display()
        )
    );
    assert_eq!(
        String::from_utf8(out.stderr).unwrap(),
        "firebreak-hil: 1 of 1 scenarios are invalid\n"
    );
}

/// Every scenario's site configuration, with made-up addresses, passes the gateway's check;
/// so does the RTU form the node's host build will use.
#[test]
fn site_configs_pass_firebreak_config_check() {
    let Some(bin) = gateway() else { return };
    let dir = tempfile::tempdir().unwrap();
    let scenarios = load_dir(&suite()).unwrap();
    assert!(!scenarios.is_empty());
    for (path, scenario) in scenarios {
        let scenario = scenario.unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let addresses = SimAddresses {
            devices: scenario
                .devices
                .iter()
                .enumerate()
                .map(|(i, d)| {
                    let endpoint = match (&d.peer, d.kind) {
                        (Some(DevicePeer::Nut), _) => Endpoint::Nut {
                            url: format!("nut://127.0.0.1:3493/{}", d.name),
                        },
                        (Some(DevicePeer::Snmp { recording }), _) => Endpoint::Snmp {
                            addr: SocketAddr::from(([127, 0, 0, 1], 16100 + i as u16)),
                            community: recording.rsplit('/').next().unwrap().to_string(),
                            profile: SNMP_PDU_PROFILE,
                        },
                        (None, DeviceKind::RoomMqtt) => Endpoint::Mqtt {
                            broker: Broker {
                                host: "127.0.0.1".into(),
                                port: 1883,
                            },
                            topic: format!("firebreak-hil/{}/{}", scenario.name, d.name),
                        },
                        // As the firmware back-ends put them: every node on one line,
                        // told apart by its unit.
                        (None, DeviceKind::Node) => Endpoint::ModbusRtu {
                            serial: dir.path().join("node-pty"),
                            unit: d.unit,
                        },
                        (None, _) => Endpoint::ModbusTcp {
                            addr: SocketAddr::from(([127, 0, 0, 1], 15020 + i as u16)),
                            unit: d.unit,
                        },
                    };
                    (d.name.clone(), endpoint)
                })
                .collect(),
            bus_b: Vec::new(),
        };
        let text = site_config_for(&scenario, &addresses);
        let summary = config_check(&bin, &text, dir.path(), &scenario.name);
        let count = |f: &dyn Fn(&firebreak_hil::scenario::Device) -> bool| {
            scenario.devices.iter().filter(|d| f(d)).count()
        };
        let nut = count(&|d| d.peer == Some(DevicePeer::Nut));
        let snmp = count(&|d| matches!(d.peer, Some(DevicePeer::Snmp { .. })));
        let modbus = count(&|d| d.kind.is_modbus() && d.peer.is_none());
        let mqtt = count(&|d| d.kind == DeviceKind::RoomMqtt);
        assert!(
            summary.contains(&format!(
                "ok: {modbus} devices, {mqtt} mqtt sources, {nut} nut sources, {snmp} snmp sources, {} zones",
                scenario.zones().len()
            )),
            "{}: {summary}",
            scenario.name
        );
    }
}

/// `firebreak-hil sim` prints where its devices are and a configuration the gateway accepts;
/// mbpoll reads a device at the printed address.
#[test]
fn sim_prints_addresses_and_a_site_config() {
    let mut child = Command::new(HIL)
        .args(["sim", "--scenario"])
        .arg(suite().join("network-cut.toml"))
        .args(["--time-scale", "1", "--http-bind", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut text = String::new();
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let done = line.starts_with("running");
            text.push_str(&line);
            text.push('\n');
            if done {
                let _ = tx.send(text.clone());
            }
        }
    });
    let text = rx.recv_timeout(Duration::from_secs(20));
    let text = match text {
        Ok(t) => t,
        Err(e) => {
            let _ = child.kill();
            panic!("firebreak-hil sim did not start: {e}");
        }
    };
    let mut child = Peer {
        child,
        name: "firebreak-hil sim".into(),
    };
    assert!(text.starts_with("scenario network-cut: "), "{text}");
    assert!(text.contains("clock    T-2m, x1"), "{text}");
    let port = text
        .lines()
        .find(|l| l.trim_start().starts_with("ups-b1"))
        .and_then(|l| l.split("tcp://127.0.0.1:").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|p| p.parse::<u16>().ok())
        .unwrap_or_else(|| panic!("no ups-b1 address in {text}"));
    let site: String = text
        .lines()
        .skip_while(|l| !l.starts_with("# Generated"))
        .take_while(|l| !l.starts_with("running"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(
        site.contains(&format!("address = \"127.0.0.1:{port}\"")),
        "{site}"
    );
    if let Some(bin) = gateway() {
        let dir = tempfile::tempdir().unwrap();
        let summary = config_check(&bin, &site, dir.path(), "network-cut");
        assert!(
            summary
                .contains("ok: 4 devices, 0 mqtt sources, 0 nut sources, 0 snmp sources, 2 zones"),
            "{summary}"
        );
    }
    if require_peer("mbpoll") {
        let out = Command::new("mbpoll")
            .args(["-m", "tcp", "-p", &port.to_string(), "-0", "-t", "4"])
            .args(["-r", "1", "-c", "1", "-1", "-o", "2", "127.0.0.1"])
            .output()
            .unwrap();
        let mb = String::from_utf8_lossy(&out.stdout);
        assert!(mb.contains("[1]: \t600"), "{mb}");
    }
    child.kill();
}
