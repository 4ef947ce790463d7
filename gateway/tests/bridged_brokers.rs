//! The reference broker topology (docs/deployment.md) with real Mosquitto processes: the
//! watched site's broker (A), a remote site's broker (B), and the controllers' site broker
//! (C) bridged to both with docs/examples/mosquitto-bridge.conf. A gateway at site A publishes
//! to A and B; a controller at site C reads only C. Broker A is killed mid-fire and started
//! again: the controller still gets every trigger exactly once (each comes on two paths), in
//! order, with nothing missed, and a controller that starts late finds the retained state and
//! status carried over the bridges.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test code

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use firebreak_gateway::keys::SigningKey;
use firebreak_protocols::KeyId;

/// Persistence saved every second. `user root`: Mosquitto started as root otherwise drops to
/// the `mosquitto` user, which cannot write in the test's directory (as another user the line
/// has no effect).
const PERSISTENT: &str = "allow_anonymous true\npersistence true\nautosave_interval 1\nuser root\n";

fn persistent(dir: &Path) -> String {
    format!(
        "{PERSISTENT}persistence_location {}/\nlog_dest file {}/broker.log\nlog_type all\n",
        dir.display(),
        dir.display()
    )
}

/// A broker on a free port with `extra` configuration, its files in `dir`.
fn broker(dir: &Path, extra: &str) -> (Peer, u16) {
    std::fs::create_dir_all(dir).unwrap();
    for _ in 0..5 {
        if let Some(started) = mosquitto_with(dir, free_port(), extra) {
            return started;
        }
    }
    panic!("mosquitto could not start");
}

/// The seq of each ACCEPTED line, with how often it was accepted.
fn accepted(lines: &[String]) -> BTreeMap<u64, usize> {
    let mut seqs = BTreeMap::new();
    for l in lines.iter().filter(|l| l.starts_with("ACCEPTED ")) {
        let seq: u64 = l
            .split(" | seq ")
            .nth(1)
            .and_then(|r| r.split(' ').next())
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no seq in {l}"));
        *seqs.entry(seq).or_default() += 1;
    }
    seqs
}

#[test]
fn a_controller_behind_bridges_gets_every_trigger_once_while_a_broker_dies_mid_fire() {
    if !require_peer("mosquitto")
        || !require_peer("mosquitto_pub")
        || !require_peer("mosquitto_sub")
    {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    SigningKey::generate(KeyId::new("gw-a-2026").unwrap())
        .unwrap()
        .write_pair(d)
        .unwrap();
    std::fs::write(d.join("rules.toml"), FIRE_RULES).unwrap();
    let (mut broker_a, port_a) = broker(&d.join("site-a"), &persistent(&d.join("site-a")));
    let (_broker_b, port_b) = broker(&d.join("site-b"), &persistent(&d.join("site-b")));
    let bridge = std::fs::read_to_string(workspace().join("docs/examples/mosquitto-bridge.conf"))
        .unwrap()
        .replace("SITE_A_BROKER", &format!("127.0.0.1:{port_a}"))
        .replace("SITE_B_BROKER", &format!("127.0.0.1:{port_b}"));
    let site_c = d.join("site-c");
    let (_broker_c, port_c) = broker(&site_c, &format!("{}{bridge}", persistent(&site_c)));

    // The gateway at site A: its own broker and site B's; the room sensor is on site A's.
    let config = format!(
        "[site]\nname = \"paris-1\"\ngateway = \"gw-a\"\n[[zones]]\nname = \"battery-room\"\n\
         [http]\nbind = \"{{HTTP}}\"\n[policy]\nrules_file = \"rules.toml\"\nhold_s = 1\n\
         [[brokers]]\nname = \"site-a\"\nurl = \"mqtt://127.0.0.1:{port_a}\"\n\
         [[brokers]]\nname = \"site-b\"\nurl = \"mqtt://127.0.0.1:{port_b}\"\n\
         [signing]\nkey_file = \"{}\"\nkey_id = \"gw-a-2026\"\n[outbox]\ndir = \"{}\"\n\
         [[mqtt_sources]]\nname = \"room-sensor\"\nzone = \"battery-room\"\n\
         broker = \"mqtt://127.0.0.1:{port_b}\"\ntopic = \"building/br/env\"\nfreshness_ms = 60000\n\
         [[mqtt_sources.signals]]\nsignal = \"off-gas\"\nfield = \"voc_ppm\"\n\
         [[mqtt_sources.signals]]\nsignal = \"smoke-alarm\"\nfield = \"smoke\"\n",
        d.join("gw-a-2026.key").display(),
        d.join("outbox").display()
    );
    let publish =
        |payload: &str| mosquitto_pub(port_b, "building/br/env", payload.as_bytes(), false);
    // Every copy that reaches site C, to show that de-duplication had work to do.
    let c = port_c.to_string();
    let mut copies = Sub::start(
        &["-h", "127.0.0.1", "-p", &c],
        "firebreak/v1/paris-1/triggers",
    );
    let args: Vec<String> = vec![
        "--broker".into(),
        format!("mqtt://127.0.0.1:{port_c}"),
        "--site".into(),
        "paris-1".into(),
        "--trust".into(),
        d.join("gw-a-2026.pub").display().to_string(),
        "--client-id".into(),
        "controller-site-c".into(),
    ];
    let mut watch = Watch::start(&args, 1, &[]);
    let gw = Gateway::start(d, &config);

    // Off-gas: prepare, over both paths.
    publish(r#"{"voc_ppm": 45.0, "smoke": 0}"#);
    watch.wait_for(Duration::from_secs(15), |l| accepted(l).len() == 2);
    // Site A's broker dies mid-fire — once it has saved the bridge's session (every second):
    // a broker killed before its first save forgets the sessions, as any would. Smoke comes:
    // evacuate reaches site C through site B.
    let saved = wait_until(Duration::from_secs(10), || {
        std::fs::read_to_string(d.join("site-a/broker.log"))
            .is_ok_and(|l| l.contains("Saving in-memory database"))
    });
    assert!(saved.is_some(), "site A's broker never saved its sessions");
    broker_a.kill();
    publish(r#"{"voc_ppm": 60.0, "smoke": 1}"#);
    let lines = watch.wait_for(Duration::from_secs(15), |l| {
        l.iter()
            .filter(|l| l.starts_with("ACCEPTED EVACUATE"))
            .count()
            == 2
    });
    assert_eq!(accepted(&lines).len(), 4, "{lines:#?}");
    // Site A's broker back (its persistence kept the bridge's session): the gateway re-sends
    // what site A missed, the bridge carries it to C again, and the controller drops it.
    let _broker_a = mosquitto_again(&d.join("site-a"), port_a, &persistent(&d.join("site-a")));
    publish(r#"{"voc_ppm": 1.0, "smoke": 0}"#);
    let lines = watch.wait_for(Duration::from_secs(20), |l| {
        l.iter()
            .filter(|l| l.starts_with("ACCEPTED NORMAL"))
            .count()
            == 2
    });
    // The re-sent copies through site A arrive after the gateway reconnects: wait for them.
    let resent = copies.wait(Duration::from_secs(25), |g| g.len() >= 12);
    std::thread::sleep(Duration::from_millis(500));
    let lines = watch
        .wait(lines.len() + 1, Duration::from_millis(500))
        .to_vec();
    let seqs = accepted(&lines);
    assert_eq!(seqs.len(), 6, "{lines:#?}");
    assert!(seqs.values().all(|&n| n == 1), "exactly once: {seqs:?}");
    let (first, last) = (*seqs.keys().next().unwrap(), *seqs.keys().last().unwrap());
    assert_eq!(last - first, 5, "no gap: {seqs:?}");
    assert!(
        !lines
            .iter()
            .any(|l| l.starts_with("REJECTED") || l.starts_with("missed")),
        "{lines:#?}"
    );
    // Every trigger reached site C twice (through A and through B) once A was back.
    let seqs_of = |g: &[(Instant, String, String)]| -> Vec<String> {
        g.iter()
            .map(|(at, _, p)| {
                let v: serde_json::Value = serde_json::from_str(p).unwrap_or_default();
                format!("{} at {:?}", v["seq"], at.elapsed())
            })
            .collect()
    };
    if !resent {
        for site in ["site-a", "site-c"] {
            let log = std::fs::read_to_string(d.join(site).join("broker.log")).unwrap_or_default();
            eprintln!("==== {site}\n{log}");
        }
    }
    assert!(
        resent,
        "copies at site C: {:#?}\n{}",
        seqs_of(&copies.got),
        gw.status()["delivery"]
    );
    let mut per_payload: BTreeMap<&str, usize> = BTreeMap::new();
    for (_, _, p) in &copies.got {
        *per_payload.entry(p.as_str()).or_default() += 1;
    }
    assert!(
        per_payload.values().all(|&n| n == 2),
        "{:?}",
        per_payload.values().collect::<Vec<_>>()
    );
    drop(gw);

    // A controller that starts late at site C: the retained state and status came over the
    // bridges.
    let mut late = Sub::start(&["-h", "127.0.0.1", "-p", &c], "firebreak/v1/paris-1/#");
    assert!(
        late.wait(Duration::from_secs(5), |g| {
            g.iter().any(|m| {
                m.1 == "firebreak/v1/paris-1/state" && m.2.contains("\"level\":\"normal\"")
            }) && g
                .iter()
                .any(|m| m.1 == "firebreak/v1/paris-1/gateways/gw-a/status")
        }),
        "{:#?}",
        late.got
    );
}
