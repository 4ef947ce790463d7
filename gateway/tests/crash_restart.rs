//! The gateway process killed with SIGKILL right after a level change, then restarted: the
//! trigger it had decided is delivered, no `seq` is used twice, the retained state is right,
//! and `firebreak watch` (the subscriber side) accepts each trigger once.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test code

mod common;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use common::*;
use firebreak_protocols::message::decode;
use firebreak_protocols::{Level, Trigger};

#[test]
fn kill_9_after_a_level_change_loses_and_duplicates_nothing() {
    if !require_peer("mosquitto") || !require_peer("mosquitto_pub") || !require_peer("stdbuf") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (_broker, port) = mosquitto(dir.path());
    let keygen = Command::new(firebreak_bin())
        .args(["keygen", "--out"])
        .arg(dir.path())
        .args(["--key-id", "k1"])
        .output()
        .unwrap();
    assert!(keygen.status.success(), "{keygen:?}");
    std::fs::write(dir.path().join("rules.toml"), FIRE_RULES).unwrap();
    let config = format!(
        "[site]\nname = \"crash\"\ngateway = \"gw-crash\"\n[[zones]]\nname = \"battery-room\"\n\
         [http]\nbind = \"{{HTTP}}\"\n[policy]\nrules_file = \"rules.toml\"\nhold_s = 1\n\
         [[mqtt_sources]]\nname = \"sensor\"\nzone = \"battery-room\"\n\
         broker = \"mqtt://127.0.0.1:{port}\"\ntopic = \"building/br\"\nfreshness_ms = 600000\n\
         [[mqtt_sources.signals]]\nsignal = \"off-gas\"\nfield = \"ppm\"\n\
         [[mqtt_sources.signals]]\nsignal = \"smoke-alarm\"\nfield = \"smoke\"\n\
         [[brokers]]\nname = \"site\"\nurl = \"mqtt://127.0.0.1:{port}\"\n\
         [signing]\nkey_file = \"{}\"\nkey_id = \"k1\"\n[outbox]\ndir = \"{}\"\n",
        dir.path().join("k1.key").display(),
        dir.path().join("outbox").display()
    );
    let port_s = port.to_string();
    let mut triggers = Sub::start(
        &["-h", "127.0.0.1", "-p", &port_s],
        "firebreak/v1/crash/triggers",
    );
    let publish = |payload: &str| {
        let ok = Command::new("mosquitto_pub")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &port_s,
                "-t",
                "building/br",
                "-m",
                payload,
            ])
            .status()
            .unwrap()
            .success();
        assert!(ok);
    };
    let level = |gw: &Gateway| gw.status()["policy"]["site"].as_str().unwrap().to_string();

    // Off-gas: prepare. Kill -9 the moment the gateway shows it and its writer has stored it
    // (a kill between the decision and that commit, a few ms, may lose it: see the contract).
    let mut gw = Gateway::start(dir.path(), &config);
    let stored = |gw: &Gateway| {
        let d = &gw.status()["delivery"];
        d["last_seq"].as_u64().is_some()
            && d["outbox"]["committed_seq"].as_u64() >= d["last_seq"].as_u64()
    };
    let prepared = wait_until(Duration::from_secs(15), || {
        publish(r#"{"ppm": 45, "smoke": 0}"#);
        level(&gw) == "prepare" && stored(&gw)
    });
    assert!(prepared.is_some(), "{}", gw.status());
    gw.peer.kill();

    // Restart on the same outbox: evidence again, then smoke: evacuate.
    let gw = Gateway::start(dir.path(), &config);
    let evacuated = wait_until(Duration::from_secs(15), || {
        publish(r#"{"ppm": 60, "smoke": 1}"#);
        level(&gw) == "evacuate"
    });
    assert!(evacuated.is_some(), "{}", gw.status());

    // The subscriber gets: zone and site prepare (first run), then after the restart zone and
    // site prepare... or straight to evacuate; at least the first run's two and the two
    // evacuates, in seq order, each seq with one payload only.
    let arrived = triggers.wait(Duration::from_secs(15), |got| {
        got.iter()
            .filter(|(_, _, p)| p.contains("\"level\":\"evacuate\""))
            .count()
            >= 2
    });
    assert!(arrived, "{:?}", triggers.got);
    let mut by_seq: BTreeMap<u64, String> = BTreeMap::new();
    let mut order = Vec::new();
    for (_, _, payload) in &triggers.got {
        let t: Trigger = decode(payload.as_bytes()).unwrap();
        assert_eq!(t.gateway.as_str(), "gw-crash");
        assert!(t.signature.is_some(), "unsigned: {payload}");
        if let Some(before) = by_seq.insert(t.seq, payload.clone()) {
            // A re-send after the crash is the same trigger, byte for byte.
            assert_eq!(before, *payload, "seq {} used for two triggers", t.seq);
        } else {
            order.push((t.seq, t.zone.is_some(), t.level));
        }
    }
    let seqs: Vec<u64> = order.iter().map(|o| o.0).collect();
    let mut sorted = seqs.clone();
    sorted.sort_unstable();
    assert_eq!(seqs, sorted, "triggers out of order: {order:?}");
    // The first run's site prepare arrived, though the gateway died right after deciding it.
    assert!(
        order
            .iter()
            .any(|&(_, zone, level)| !zone && level == Level::Prepare),
        "{order:?}"
    );
    assert!(
        order
            .iter()
            .any(|&(_, zone, level)| !zone && level == Level::Evacuate),
        "{order:?}"
    );

    // The retained site state is the current level.
    let state = Command::new("mosquitto_sub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port_s,
            "-t",
            "firebreak/v1/crash/state",
        ])
        .args(["-C", "1", "-W", "10"])
        .output()
        .unwrap();
    let state: Trigger =
        decode(String::from_utf8(state.stdout).unwrap().trim().as_bytes()).unwrap();
    assert_eq!(state.level, Level::Evacuate);
    assert_eq!(state.zone, None);

    // /metrics carries delivery's counters.
    let metrics = gw.get("/metrics").unwrap();
    assert!(metrics.contains("firebreak_delivery"), "{metrics}");
}

/// The site of the resume tests: one MQTT sensor, the fire rules, a 1 s hold, and a freshness
/// of 3 s (so a restarted gateway waits at most 3 s, its grace, to read it again).
fn resume_site(dir: &std::path::Path, port: u16, gateway: &str) -> String {
    std::fs::write(dir.join("rules.toml"), FIRE_RULES).unwrap();
    let keygen = Command::new(firebreak_bin())
        .args(["keygen", "--out"])
        .arg(dir)
        .args(["--key-id", "k1"])
        .output()
        .unwrap();
    assert!(keygen.status.success(), "{keygen:?}");
    format!(
        "[site]\nname = \"resume\"\ngateway = \"{gateway}\"\n[[zones]]\nname = \"battery-room\"\n\
         [http]\nbind = \"{{HTTP}}\"\n[policy]\nrules_file = \"rules.toml\"\nhold_s = 1\n\
         [[mqtt_sources]]\nname = \"sensor\"\nzone = \"battery-room\"\n\
         broker = \"mqtt://127.0.0.1:{port}\"\ntopic = \"building/{gateway}\"\nfreshness_ms = 3000\n\
         [[mqtt_sources.signals]]\nsignal = \"off-gas\"\nfield = \"ppm\"\n\
         [[mqtt_sources.signals]]\nsignal = \"smoke-alarm\"\nfield = \"smoke\"\n\
         [[brokers]]\nname = \"site\"\nurl = \"mqtt://127.0.0.1:{port}\"\n\
         [signing]\nkey_file = \"{}\"\nkey_id = \"k1\"\n[outbox]\ndir = \"{}\"\n",
        dir.join("k1.key").display(),
        dir.join("outbox").display()
    )
}

/// Drives a gateway to `evacuate` and kills it with SIGKILL once the trigger is stored.
fn evacuate_then_kill(dir: &std::path::Path, config: &str, publish: &dyn Fn(&str)) {
    let mut gw = Gateway::start(dir, config);
    let reached = wait_until(Duration::from_secs(20), || {
        publish(r#"{"ppm": 60, "smoke": 1}"#);
        let st = gw.status();
        let d = &st["delivery"];
        st["policy"]["site"] == "evacuate"
            && d["outbox"]["committed_seq"].as_u64() >= d["last_seq"].as_u64()
    });
    assert!(reached.is_some(), "{}", gw.status());
    gw.peer.kill();
}

fn site_states(sub: &Sub) -> Vec<Trigger> {
    sub.got
        .iter()
        .filter(|(_, t, _)| t == "firebreak/v1/resume/state")
        .map(|(_, _, p)| decode(p.as_bytes()).unwrap())
        .collect()
}

#[test]
fn restarted_after_the_cause_cleared_lowers_from_the_stored_level() {
    if !require_peer("mosquitto") || !require_peer("mosquitto_pub") || !require_peer("stdbuf") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (_broker, port) = mosquitto(dir.path());
    let config = resume_site(dir.path(), port, "gw-cleared");
    let publish = |p: &str| mosquitto_pub(port, "building/gw-cleared", p.as_bytes(), false);
    evacuate_then_kill(dir.path(), &config, &publish);

    let port_s = port.to_string();
    let mut sub = Sub::start(&["-h", "127.0.0.1", "-p", &port_s], "firebreak/v1/resume/#");
    let gw = Gateway::start(dir.path(), &config);
    // The cause is gone: a lowering trigger, from `evacuate`, within grace (3 s) + hold (1 s)
    // + a few polls; never a raise from `normal`.
    let lowered = sub.wait(Duration::from_secs(20), |got| {
        publish(r#"{"ppm": 0, "smoke": 0}"#);
        got.iter().any(|(_, t, p)| {
            t.ends_with("/triggers")
                && p.contains("\"previous\":\"evacuate\"")
                && !p.contains("\"zone\"")
        })
    });
    assert!(lowered, "{:?}\n{}", sub.got, gw.status());
    let triggers: Vec<Trigger> = sub
        .got
        .iter()
        .filter(|(_, t, _)| t.ends_with("/triggers"))
        .map(|(_, _, p)| decode(p.as_bytes()).unwrap())
        .collect();
    assert!(
        triggers.iter().all(|t| t.previous != Level::Normal),
        "re-raised from normal after the restart: {triggers:?}"
    );
    let site = triggers.iter().find(|t| t.zone.is_none()).unwrap();
    assert_eq!(
        (site.previous, site.level),
        (Level::Evacuate, Level::Normal)
    );
    // The retained site state follows.
    let followed = sub.wait(Duration::from_secs(5), |got| {
        got.iter()
            .rfind(|(_, t, _)| t == "firebreak/v1/resume/state")
            .is_some_and(|(_, _, p)| p.contains("\"level\":\"normal\""))
    });
    assert!(followed, "{:?}", sub.got);
}

#[test]
fn restarted_while_the_cause_persists_never_drops_below_evacuate() {
    if !require_peer("mosquitto") || !require_peer("mosquitto_pub") || !require_peer("stdbuf") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (_broker, port) = mosquitto(dir.path());
    let config = resume_site(dir.path(), port, "gw-persists");
    let publish = |p: &str| mosquitto_pub(port, "building/gw-persists", p.as_bytes(), false);
    evacuate_then_kill(dir.path(), &config, &publish);

    let port_s = port.to_string();
    let mut sub = Sub::start(&["-h", "127.0.0.1", "-p", &port_s], "firebreak/v1/resume/#");
    let gw = Gateway::start(dir.path(), &config);
    // Sampled every 100 ms for 10 s (grace, hold and many polls): never below evacuate, on
    // /status or on the retained state.
    let until = std::time::Instant::now() + Duration::from_secs(10);
    while std::time::Instant::now() < until {
        publish(r#"{"ppm": 60, "smoke": 1}"#);
        assert_eq!(gw.status()["policy"]["site"], "evacuate");
        std::thread::sleep(Duration::from_millis(100));
    }
    sub.wait(Duration::from_secs(1), |_| false);
    for s in site_states(&sub) {
        assert_eq!(s.level, Level::Evacuate, "retained state dropped: {s:?}");
    }
    assert!(
        sub.got.iter().all(|(_, t, _)| !t.ends_with("/triggers")),
        "the restart sent a trigger though the level never changed: {:?}",
        sub.got
    );
}
