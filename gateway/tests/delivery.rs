//! Trigger delivery against real Mosquitto brokers: a broker down for 20 s, a restart with
//! triggers waiting in the outbox, the documented topics as `mosquitto_sub` sees them, TLS
//! with a client certificate and a password, `firebreak watch` telling good triggers from
//! forged, tampered, replayed and malformed ones, and failure isolation: a failing or hung
//! disk, a store that will not open, a broker whose CA file is missing.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test code

mod common;
#[path = "common/pki.rs"]
mod pki;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use firebreak_gateway::config::SiteConfig;
use firebreak_gateway::deliver::{Delivery, DeliveryOptions, TriggerDraft};
use firebreak_gateway::keys::SigningKey;
use firebreak_gateway::subscribe::{StatusVerdict, Verdict, Verifier};
use firebreak_protocols::message::{decode, encode_vec};
use firebreak_protocols::signed::signed_vec;
use firebreak_protocols::{
    DeviceId, GatewayStatus, IncidentId, KeyId, Level, Presence, Reason, RuleId, Signal, Trigger,
    ZoneId,
};
use pki::{Pki, passwd, secret_file};

const TRIGGERS: &str = "firebreak/v1/paris-1/triggers";

fn peers() -> bool {
    require_peer("mosquitto") && require_peer("mosquitto_sub") && require_peer("mosquitto_pub")
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn options() -> DeliveryOptions {
    DeliveryOptions {
        heartbeat: Duration::from_secs(2),
        keep_alive: Duration::from_secs(5),
        max_backoff: Duration::from_millis(500),
        disk_hang_after: Duration::from_millis(500),
        disk_retry: Duration::from_millis(200),
        link_retry: Duration::from_millis(500),
        ..DeliveryOptions::default()
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// A key pair in `dir`: `k1.key`, `k1.pub`.
fn keys(dir: &Path) -> SigningKey {
    let key = SigningKey::generate(KeyId::new("k1").unwrap()).unwrap();
    key.write_pair(dir).unwrap();
    key
}

/// A site configuration delivering to `brokers` (`[[brokers]]` tables, written by the caller).
fn config(dir: &Path, brokers: &str) -> SiteConfig {
    config_with(dir, brokers, 100, 50)
}

fn config_with(dir: &Path, brokers: &str, capacity: u32, warn_at: u32) -> SiteConfig {
    let text = format!(
        r#"
[site]
name = "paris-1"
gateway = "gw-1"

[[zones]]
name = "battery-room"

[[devices]]
name = "ups"
zone = "battery-room"
transport = "tcp"
address = "127.0.0.1:9"
unit = 1
profile = "generic-ups"

[signing]
key_file = "{}"
key_id = "k1"

[outbox]
dir = "{}"
capacity = {capacity}
warn_at = {warn_at}

{brokers}
"#,
        dir.join("k1.key").display(),
        dir.join("outbox").display()
    );
    SiteConfig::parse(&text, "site.toml").unwrap()
}

fn plain_broker(name: &str, port: u16) -> String {
    format!("[[brokers]]\nname = \"{name}\"\nurl = \"mqtt://127.0.0.1:{port}\"\n")
}

/// The n-th change of an escalating incident: site and zone alternate.
fn draft(n: u64) -> TriggerDraft {
    let levels = [Level::Normal, Level::Watch, Level::Prepare, Level::Evacuate];
    let i = (n as usize) % 3;
    let reasons = vec![Reason {
        rule: RuleId::new("off-gas").unwrap(),
        signal: Some(Signal::OffGas),
        device: Some(DeviceId::new("node-b1").unwrap()),
        channel: 0,
        value: 60.0 + n as f32 * 10.5,
        threshold: 50.0,
    }];
    TriggerDraft {
        incident: IncidentId::new("gw-1-incident").unwrap(),
        zone: n
            .is_multiple_of(2)
            .then(|| ZoneId::new("battery-room").unwrap()),
        level: levels[i + 1],
        previous: levels[i],
        reasons,
        seconds_to_power_loss: Some(600 - n as u32),
        issued_at_ms: now_ms(),
    }
}

fn seq_of(payload: &str) -> u64 {
    let v: serde_json::Value = serde_json::from_str(payload).unwrap();
    v["seq"].as_u64().unwrap()
}

fn seqs(sub: &Sub) -> Vec<u64> {
    sub.got.iter().map(|(_, _, p)| seq_of(p)).collect()
}

fn sub_args(port: u16) -> Vec<String> {
    vec![
        "-h".into(),
        "127.0.0.1".into(),
        "-p".into(),
        port.to_string(),
    ]
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// Starts Mosquitto with `extra` on some free port; retries when the port was taken.
fn broker_with(dir: &Path, extra: &str) -> (Peer, u16) {
    mosquitto_on_a_free_port(dir, extra)
}

#[test]
fn a_broker_down_for_20_s_delays_nobody_and_gets_every_missed_trigger_in_order() {
    if !peers() {
        return;
    }
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let (dir_a, dir_b) = (dir.path().join("a"), dir.path().join("b"));
    std::fs::create_dir_all(&dir_a).unwrap();
    std::fs::create_dir_all(&dir_b).unwrap();
    keys(dir.path());
    let (_broker_a, pa) = mosquitto(&dir_a);
    // B keeps its sessions across a clean stop, so its subscriber's queue survives the outage.
    // `user root`: started as root, Mosquitto otherwise drops to the `mosquitto` user, which
    // cannot write its database into this root-owned directory, and the session would be
    // kept only by luck of timing (see bridged_brokers.rs).
    let persist_b = format!(
        "allow_anonymous true\npersistence true\npersistence_location {}/\nuser root\nlog_dest file {}/broker.log\nlog_type all\n",
        dir_b.display(),
        dir_b.display()
    );
    let (mut broker_b, pb) = broker_with(&dir_b, &persist_b);
    let mut sub_a = Sub::start(&strs(&sub_args(pa)), TRIGGERS);
    let mut b_args = sub_args(pb);
    b_args.extend(["-c".into(), "-i".into(), "controller-b".into()]);
    let mut sub_b = Sub::start(&strs(&b_args), TRIGGERS);

    let cfg = config(
        dir.path(),
        &format!("{}{}", plain_broker("a", pa), plain_broker("b", pb)),
    );
    let (delivery, tasks) = rt.block_on(Delivery::start(&cfg, options())).unwrap();
    let mut issued = Vec::new();
    let mut latency_both_up = Duration::ZERO;
    for n in 0..2 {
        let start = Instant::now();
        let t = rt.block_on(delivery.issue(draft(n))).unwrap();
        issued.push(t.seq);
        let want = t.seq;
        assert!(sub_a.wait(Duration::from_secs(5), |g| {
            g.iter().any(|(_, _, p)| seq_of(p) == want)
        }));
        latency_both_up = latency_both_up.max(start.elapsed());
    }
    assert!(sub_b.wait(Duration::from_secs(5), |g| g.len() == 2));
    assert_eq!(seqs(&sub_b), issued);

    // Site B goes dark: its broker stops, its controller with it.
    broker_b.terminate();
    sub_b.peer.kill();
    let outage = Instant::now();
    let mut missed = Vec::new();
    let mut worst = Duration::ZERO;
    for n in 2..8 {
        let start = Instant::now();
        let t = rt.block_on(delivery.issue(draft(n))).unwrap();
        let want = t.seq;
        missed.push(want);
        assert!(
            sub_a.wait(Duration::from_secs(5), |g| g
                .iter()
                .any(|(_, _, p)| seq_of(p) == want)),
            "broker A did not get seq {want} while B was down"
        );
        worst = worst.max(start.elapsed());
        std::thread::sleep(Duration::from_millis(2500));
    }
    // No extra delay: every trigger reached A's controller as fast as with both brokers up.
    assert!(
        worst < Duration::from_millis(1000),
        "A took {worst:?} with B down ({latency_both_up:?} with both up)"
    );
    let stats = delivery.stats();
    let b = stats.brokers.iter().find(|b| b.name == "b").unwrap();
    assert!(!b.connected);
    assert_eq!(b.pending, 6, "{b:?}");
    assert_eq!(seqs(&sub_a), [issued.clone(), missed.clone()].concat());

    // Site B is back 20 s later, on the same port; its controller reconnects.
    std::thread::sleep(Duration::from_secs(20).saturating_sub(outage.elapsed()));
    let _broker_b = mosquitto_again(&dir_b, pb, &persist_b);
    let mut sub_b = Sub::start(&strs(&b_args), TRIGGERS);
    assert!(
        sub_b.wait(Duration::from_secs(20), |g| g.len() >= missed.len()),
        "B got {:?}, expected {missed:?}",
        seqs(&sub_b)
    );
    assert_eq!(
        seqs(&sub_b),
        missed,
        "every missed trigger, in seq order, once"
    );
    // Original seq and timestamps: the very bytes A got.
    let a_payloads: Vec<&String> = sub_a.got.iter().skip(2).map(|(_, _, p)| p).collect();
    let b_payloads: Vec<&String> = sub_b.got.iter().map(|(_, _, p)| p).collect();
    assert_eq!(a_payloads, b_payloads);
    assert!(
        wait_until(Duration::from_secs(5), || {
            let s = delivery.stats();
            s.brokers.iter().all(|b| b.pending == 0 && b.connected)
        })
        .is_some()
    );

    // The retained state on B is the latest of each scope, though B lost it in the restart.
    let mut state = Sub::start(&strs(&sub_args(pb)), "firebreak/v1/paris-1/+/+/state");
    assert!(state.wait(Duration::from_secs(5), |g| !g.is_empty()));
    assert_eq!(
        seq_of(&state.got[0].2),
        missed[4],
        "zone state: the last zone trigger"
    );
    let mut site_state = Sub::start(&strs(&sub_args(pb)), "firebreak/v1/paris-1/state");
    assert!(site_state.wait(Duration::from_secs(5), |g| !g.is_empty()));
    assert_eq!(seq_of(&site_state.got[0].2), missed[5]);
    rt.block_on(tasks.shutdown());
}

#[test]
fn a_full_outbox_refuses_for_its_broker_only_and_says_so() {
    if !peers() {
        return;
    }
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    keys(dir.path());
    let (_broker, up) = mosquitto(dir.path());
    let down = free_port();
    let cfg = config_with(
        dir.path(),
        &format!("{}{}", plain_broker("up", up), plain_broker("down", down)),
        2,
        1,
    );
    let mut sub = Sub::start(&strs(&sub_args(up)), TRIGGERS);
    let (delivery, tasks) = rt.block_on(Delivery::start(&cfg, options())).unwrap();
    // One at a time, each acknowledged by the healthy broker before the next (its outbox
    // holds two as well: issued faster than it acknowledges, it would fill up too).
    let mut sent = Vec::new();
    for n in 0..3 {
        sent.push(rt.block_on(delivery.issue(draft(n))).unwrap().seq);
        let up_acked = wait_until(Duration::from_secs(10), || {
            delivery
                .stats()
                .brokers
                .iter()
                .any(|b| b.name == "up" && b.pending == 0)
        });
        assert!(up_acked.is_some(), "{:?}", delivery.stats());
    }
    // The healthy broker got all three; the dead one's outbox took two and refused the third.
    assert!(sub.wait(Duration::from_secs(10), |g| g.len() == 3));
    assert_eq!(seqs(&sub), sent);
    let stats = delivery.stats();
    let down = stats.brokers.iter().find(|b| b.name == "down").unwrap();
    assert_eq!(
        (down.pending, down.refused, down.near_full),
        (2, 1, true),
        "{down:?}"
    );
    assert!(
        stats
            .prometheus()
            .contains("firebreak_delivery_refused_total{broker=\"down\"} 1")
    );
    assert!(
        wait_until(Duration::from_secs(5), || delivery.stats().brokers[0]
            .pending
            == 0)
        .is_some()
    );
    rt.block_on(tasks.shutdown());
}

#[test]
fn every_outbox_full_refuses_the_trigger_without_using_a_seq() {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    keys(dir.path());
    let cfg = config_with(dir.path(), &plain_broker("down", free_port()), 1, 1);
    let (delivery, tasks) = rt.block_on(Delivery::start(&cfg, options())).unwrap();
    let first = rt.block_on(delivery.issue(draft(0))).unwrap();
    let e = rt.block_on(delivery.issue(draft(1))).unwrap_err();
    assert_eq!(
        e.to_string(),
        "trigger refused: the outbox of every broker is full (1 triggers each); no broker has acknowledged anything for a long time"
    );
    assert_eq!(delivery.stats().refused, 1);
    assert_eq!(delivery.stats().last_seq, Some(first.seq));
    rt.block_on(tasks.abort());
}

#[test]
fn two_entries_reaching_one_broker_keep_their_own_sessions() {
    if !peers() {
        return;
    }
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    keys(dir.path());
    let (_broker, port) = mosquitto(dir.path());
    // Two names for one broker (a cluster behind two addresses): `config check` cannot tell.
    let cfg = config(
        dir.path(),
        &format!(
            "{}[[brokers]]\nname = \"b\"\nurl = \"mqtt://localhost:{port}\"\n",
            plain_broker("a", port)
        ),
    );
    let mut sub = Sub::start(&strs(&sub_args(port)), TRIGGERS);
    let (delivery, tasks) = rt.block_on(Delivery::start(&cfg, options())).unwrap();
    let mut sent = Vec::new();
    for n in 0..3 {
        sent.push(rt.block_on(delivery.issue(draft(n))).unwrap().seq);
        std::thread::sleep(Duration::from_millis(300));
    }
    // Each entry delivers each trigger once: every seq twice on the one broker.
    assert!(
        sub.wait(Duration::from_secs(10), |g| g.len() >= 6),
        "{:?}",
        seqs(&sub)
    );
    // With one client id for both, the broker closed one connection whenever the other
    // connected: they took over each other's session for as long as both ran.
    std::thread::sleep(Duration::from_secs(3));
    let stats = delivery.stats();
    for b in &stats.brokers {
        assert!(b.connected, "{b:?}");
        assert_eq!((b.connects, b.connection_errors), (1, 0), "{b:?}");
        assert_eq!((b.pending, b.delivered), (0, 3), "{b:?}");
    }
    let mut got = seqs(&sub);
    got.sort();
    let mut want: Vec<u64> = sent.iter().chain(&sent).copied().collect();
    want.sort();
    assert_eq!(got, want);
    rt.block_on(tasks.shutdown());
}

#[test]
fn waiting_triggers_survive_a_restart_with_their_seq_and_timestamps() {
    if !peers() {
        return;
    }
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    keys(dir.path());
    // Nothing listens on the broker's port yet: the triggers can only wait.
    let port = free_port();
    let cfg = config(dir.path(), &plain_broker("a", port));
    let (delivery, tasks) = rt.block_on(Delivery::start(&cfg, options())).unwrap();
    let mut sent = Vec::new();
    for n in 0..3 {
        sent.push(rt.block_on(delivery.issue(draft(n))).unwrap());
    }
    assert_eq!(delivery.stats().brokers[0].pending, 3);
    assert!(sent.windows(2).all(|w| w[1].seq == w[0].seq + 1));
    // Stored by the writer (a crash before that commit could lose them: see the contract).
    assert!(
        wait_until(Duration::from_secs(5), || delivery
            .stats()
            .outbox
            .committed_seq
            == Some(sent[2].seq))
        .is_some()
    );
    // The gateway dies: tasks gone, handle dropped, store closed.
    rt.block_on(tasks.abort());
    drop(delivery);

    let mosquitto_dir = dir.path().join("broker");
    std::fs::create_dir_all(&mosquitto_dir).unwrap();
    let (_broker, _) = mosquitto_with(&mosquitto_dir, port, "allow_anonymous true\n")
        .expect("the broker's port was taken");
    let mut sub = Sub::start(&strs(&sub_args(port)), TRIGGERS);
    let (delivery, tasks) = rt.block_on(Delivery::start(&cfg, options())).unwrap();
    assert!(sub.wait(Duration::from_secs(10), |g| g.len() >= 3));
    let got: Vec<Trigger> = sub
        .got
        .iter()
        .map(|(_, _, p)| decode(p.as_bytes()).unwrap())
        .collect();
    assert_eq!(got, sent, "same seq, timestamps and signatures, in order");
    let next = rt.block_on(delivery.issue(draft(3))).unwrap();
    assert_eq!(
        next.seq,
        sent[2].seq + 1,
        "seq counts on across the restart"
    );
    assert!(sub.wait(Duration::from_secs(5), |g| g.len() == 4));
    rt.block_on(tasks.shutdown());
    drop(delivery);
    // And across a clean stop.
    let (delivery, tasks) = rt.block_on(Delivery::start(&cfg, options())).unwrap();
    assert_eq!(
        rt.block_on(delivery.issue(draft(4))).unwrap().seq,
        next.seq + 1
    );
    assert!(sub.wait(Duration::from_secs(5), |g| g.len() == 5));
    rt.block_on(tasks.shutdown());
}

#[test]
fn mosquitto_sub_sees_the_documented_topics_status_and_will() {
    if !peers() {
        return;
    }
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let key = keys(dir.path());
    let (_broker, port) = mosquitto(dir.path());
    let mut all = Sub::start(&strs(&sub_args(port)), "firebreak/v1/paris-1/#");
    let cfg = config(dir.path(), &plain_broker("a", port));
    let (delivery, tasks) = rt.block_on(Delivery::start(&cfg, options())).unwrap();
    delivery.set_devices(0, 1);
    let zone = rt.block_on(delivery.issue(draft(0))).unwrap();
    let site = rt.block_on(delivery.issue(draft(1))).unwrap();
    let topics = |g: &[(Instant, String, String)]| -> Vec<String> {
        g.iter().map(|(_, t, _)| t.clone()).collect()
    };
    assert!(all.wait(Duration::from_secs(10), |g| {
        let t = topics(g);
        t.iter().filter(|t| t.ends_with("/triggers")).count() == 2
            && t.iter().any(|t| t == "firebreak/v1/paris-1/state")
            && t.iter()
                .any(|t| t == "firebreak/v1/paris-1/zones/battery-room/state")
            && t.iter()
                .any(|t| t == "firebreak/v1/paris-1/gateways/gw-1/status")
    }));
    let mut verifier = Verifier::new(vec![key.public()]);
    for (_, topic, payload) in &all.got {
        if topic.ends_with("/status") {
            // Signed, and ordered by connection (docs/contract.md).
            let StatusVerdict::Accepted(a) = verifier.check_status(payload.as_bytes(), now_ms())
            else {
                panic!("status not taken: {payload}");
            };
            let s = &a.status;
            assert_eq!(
                (s.state, s.devices_healthy, s.devices_total),
                (Presence::Online, 0, 1)
            );
            assert_eq!((s.session, s.heartbeat_s), (Some(1), Some(2)), "{payload}");
            assert!(s.epoch.is_some_and(|e| e <= now_ms() / 1000), "{payload}");
            continue;
        }
        let (t, key_id) = verifier.verify_signature(payload.as_bytes()).unwrap();
        assert_eq!(key_id.as_str(), "k1");
        let expected = if topic.ends_with("zones/battery-room/state") {
            &zone
        } else if topic.ends_with("paris-1/state") {
            &site
        } else {
            continue;
        };
        assert_eq!(&t, expected, "{topic}");
    }
    for (_, topic, payload) in all.got.iter().filter(|(_, t, _)| t == TRIGGERS) {
        assert!(
            matches!(
                verifier.check(payload.as_bytes(), now_ms()),
                Verdict::Accepted(_)
            ),
            "{topic}"
        );
    }
    // Retained: a controller that starts late reads the current state and the status.
    let mut late = Sub::start(&strs(&sub_args(port)), "firebreak/v1/paris-1/+/+/status");
    assert!(late.wait(Duration::from_secs(5), |g| !g.is_empty()));

    // The gateway dies without a word: the broker publishes its will, `offline`.
    rt.block_on(tasks.abort());
    let offline =
        |p: &str| decode::<GatewayStatus>(p.as_bytes()).is_ok_and(|s| s.state == Presence::Offline);
    assert!(late.wait(Duration::from_secs(10), |g| {
        g.iter().any(|(_, _, p)| offline(p))
    }));
    // The will was signed at connect, for that connection: a controller takes it.
    let will = late.got.iter().find(|(_, _, p)| offline(p)).unwrap();
    assert!(matches!(
        verifier.check_status(will.2.as_bytes(), now_ms()),
        StatusVerdict::Accepted(a) if a.status.state == Presence::Offline && a.status.session == Some(1)
    ));
    drop(delivery);
}

#[test]
fn tls_with_a_client_certificate_and_a_password() {
    if !(peers() && require_peer("mosquitto_passwd")) {
        return;
    }
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    keys(dir.path());
    let d = dir.path();
    let pki = Pki::new(d);
    let (ca_file, client_cert, client_key) = (&pki.ca_file, &pki.client_cert, &pki.client_key);
    let passwd = passwd(d, "gw-1", "s3cret-Passw0rd");
    let password_file = secret_file(d, "gw.password", "s3cret-Passw0rd\n");
    let (_broker, port) = broker_with(
        d,
        &format!(
            "allow_anonymous false\npassword_file {}\n{}require_certificate true\n",
            passwd.display(),
            pki.mosquitto_tls()
        ),
    );
    let tls_args = |user: &str, pass: &str| -> Vec<String> {
        let mut a = sub_args(port);
        a.extend(
            [
                "--cafile",
                ca_file,
                "--cert",
                client_cert,
                "--key",
                client_key,
                "-u",
                user,
                "-P",
                pass,
            ]
            .map(String::from),
        );
        a
    };
    let mut sub = Sub::start(&strs(&tls_args("gw-1", "s3cret-Passw0rd")), TRIGGERS);
    let broker = format!(
        "[[brokers]]\nname = \"tls\"\nurl = \"mqtts://127.0.0.1:{port}\"\nca_file = \"{ca_file}\"\nclient_cert = \"{client_cert}\"\nclient_key = \"{client_key}\"\nusername = \"gw-1\"\npassword_file = \"{password_file}\"\n"
    );
    let cfg = config(d, &broker);
    let (delivery, tasks) = rt.block_on(Delivery::start(&cfg, options())).unwrap();
    let t = rt.block_on(delivery.issue(draft(0))).unwrap();
    assert!(
        sub.wait(Duration::from_secs(10), |g| !g.is_empty()),
        "nothing over TLS"
    );
    assert_eq!(seq_of(&sub.got[0].2), t.seq);
    assert!(delivery.stats().brokers[0].connected);
    assert!(
        !format!("{delivery:?}").contains("s3cret"),
        "the password never shows"
    );
    rt.block_on(tasks.shutdown());
    drop(delivery);

    // A wrong password is refused: the trigger waits, and the error says so without the secret.
    let wrong = secret_file(d, "wrong.password", "not-it\n");
    let cfg = config(
        d,
        &broker
            .replace(&password_file, &wrong)
            .replace("\"tls\"", "\"tls2\""),
    );
    let (delivery, tasks) = rt.block_on(Delivery::start(&cfg, options())).unwrap();
    rt.block_on(delivery.issue(draft(1))).unwrap();
    assert!(
        wait_until(Duration::from_secs(5), || delivery.stats().brokers[0]
            .connection_errors
            > 0)
        .is_some()
    );
    let b = &delivery.stats().brokers[0];
    assert!(!b.connected && b.pending == 1, "{b:?}");
    assert!(!b.last_error.clone().unwrap_or_default().contains("not-it"));
    rt.block_on(tasks.shutdown());
}

fn publish(port: u16, payload: &[u8]) {
    use std::io::Write;
    let mut child = Command::new("mosquitto_pub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-q",
            "1",
            "-t",
            TRIGGERS,
            "-s",
        ])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(payload).unwrap();
    assert!(child.wait().unwrap().success());
}

#[test]
fn watch_accepts_once_from_three_brokers_and_rejects_forged_tampered_replayed_malformed() {
    if !peers() {
        return;
    }
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // The key pair, made as an operator would.
    let out = Command::new(firebreak_bin())
        .args(["keygen", "--out"])
        .arg(d)
        .args(["--key-id", "k1"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key = SigningKey::load(&d.join("k1.key")).unwrap();
    let brokers: Vec<(Peer, u16)> = (0..3)
        .map(|i| {
            let bd = d.join(format!("broker-{i}"));
            std::fs::create_dir_all(&bd).unwrap();
            mosquitto(&bd)
        })
        .collect();
    let ports: Vec<u16> = brokers.iter().map(|(_, p)| *p).collect();
    let exec_dir = d.join("exec");
    std::fs::create_dir_all(&exec_dir).unwrap();
    let mut args: Vec<String> = Vec::new();
    for p in &ports {
        args.extend(["--broker".into(), format!("mqtt://127.0.0.1:{p}")]);
    }
    args.extend([
        "--site".into(),
        "paris-1".into(),
        "--trust".into(),
        d.join("k1.pub").display().to_string(),
    ]);
    // Two controllers on one host: each its own client id, or they take over each other's
    // session.
    let mut text_args = args.clone();
    text_args.extend([
        "--client-id".into(),
        "watch-text".into(),
        "--exec".into(),
        "cat > \"$EXEC_DIR/$FIREBREAK_SEQ-$FIREBREAK_LEVEL.json\"".into(),
    ]);
    let mut watch = Watch::start(&text_args, 3, &[("EXEC_DIR", &exec_dir)]);
    let mut json_args = args.clone();
    json_args.extend(["--json".into(), "--client-id".into(), "watch-json".into()]);
    let mut json = Watch::start(&json_args, 3, &[]);

    let cfg = config(
        d,
        &format!(
            "{}{}{}",
            plain_broker("a", ports[0]),
            plain_broker("b", ports[1]),
            plain_broker("c", ports[2])
        ),
    );
    let (delivery, tasks) = rt.block_on(Delivery::start(&cfg, options())).unwrap();
    let first = rt.block_on(delivery.issue(draft(0))).unwrap();
    let second = rt.block_on(delivery.issue(draft(1))).unwrap();
    let lines = watch.wait(2, Duration::from_secs(10)).to_vec();
    assert!(lines[0].starts_with("ACCEPTED WATCH (was normal) site paris-1 zone battery-room | off-gas: off-gas on node-b1 = 60 ppm (threshold 50 ppm) | power loss in ~600 s | seq "), "{lines:?}");
    assert!(
        lines[1].contains(&format!("seq {} from gw-1 (key k1)", second.seq)),
        "{lines:?}"
    );

    // Hostile payloads, each on one broker.
    let base = |seq: u64| {
        let mut t = Trigger::new(
            first.gateway.clone(),
            seq,
            first.incident.clone(),
            first.site.clone(),
            None,
            Level::Evacuate,
            Level::Prepare,
            now_ms(),
        )
        .unwrap();
        t.push_reason(first.reasons[0].clone()).unwrap();
        t
    };
    let sign = |t: &Trigger, k: &SigningKey| {
        let b = encode_vec(t).unwrap();
        signed_vec(&b, &k.sign(&b)).unwrap()
    };
    let forger = SigningKey::from_seed(KeyId::new("k1").unwrap(), &[9; 32]);
    publish(ports[0], &sign(&base(second.seq + 1), &forger));
    let tampered = String::from_utf8(sign(&base(second.seq + 1), &key))
        .unwrap()
        .replace("\"value\":60.0", "\"value\":6000.0");
    assert!(tampered.contains("6000"));
    publish(ports[1], tampered.as_bytes());
    publish(ports[2], &sign(&base(first.seq - 1), &key)); // older than the last accepted
    publish(
        ports[0],
        b"{\"schema\":\"firebreak.trigger/1\",\"level\":\"evacuate\"",
    );
    publish(ports[1], &encode_vec(&base(second.seq + 2)).unwrap());
    // The first trigger again, as a replaying attacker or a late broker would send it: the
    // same bytes (Ed25519 signatures are deterministic).
    let mut again = first.clone();
    again.signature = None;
    publish(ports[2], &sign(&again, &key));
    let lines = watch.wait(7, Duration::from_secs(10)).to_vec();
    // Each from another broker, so their order may vary: count them by reason.
    let count = |prefix: &str| lines.iter().filter(|l| l.starts_with(prefix)).count();
    assert_eq!(count("REJECTED"), 5, "{lines:#?}");
    assert_eq!(
        count(
            "REJECTED bad signature: does not verify with trusted key \"k1\" (forged, or changed after signing)"
        ),
        2,
        "{lines:#?}"
    );
    assert_eq!(
        count(&format!(
            "REJECTED replayed: seq {} from gateway gw-1 is not above the last accepted ({})",
            first.seq - 1,
            second.seq
        )),
        1,
        "{lines:#?}"
    );
    assert_eq!(count("REJECTED malformed: "), 1, "{lines:#?}");
    assert_eq!(
        count("REJECTED unsigned: the message carries no signature"),
        1,
        "{lines:#?}"
    );
    // Every valid trigger came from three brokers, and was accepted once.
    std::thread::sleep(Duration::from_millis(500));
    let lines = watch.wait(8, Duration::from_millis(500)).to_vec();
    assert_eq!(
        lines.iter().filter(|l| l.starts_with("ACCEPTED")).count(),
        2,
        "{lines:#?}"
    );
    assert_eq!(lines.len(), 7, "{lines:#?}");
    // --exec ran once per accepted trigger, with the payload as received.
    let mut files: Vec<String> = std::fs::read_dir(&exec_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(
        files,
        vec![
            format!("{}-watch.json", first.seq),
            format!("{}-prepare.json", second.seq)
        ]
    );
    let body = std::fs::read(exec_dir.join(&files[0])).unwrap();
    assert_eq!(decode::<Trigger>(&body).unwrap(), first);

    // --json: one object per line.
    let lines = json.wait(7, Duration::from_secs(5)).to_vec();
    let events: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events[0]["event"], "accepted");
    assert_eq!(events[0]["trigger"]["seq"], first.seq);
    assert_eq!(events[0]["key_id"], "k1");
    let mut reasons: Vec<&str> = events
        .iter()
        .filter(|e| e["event"] == "rejected")
        .map(|e| e["reason"].as_str().unwrap())
        .collect();
    reasons.sort();
    assert_eq!(
        reasons,
        [
            "bad-signature",
            "bad-signature",
            "malformed",
            "replayed",
            "unsigned"
        ]
    );
    rt.block_on(tasks.shutdown());
    drop(watch.peer);
    drop(json.peer);
}
