//! `firebreak watch` catching up against a real Mosquitto: killed, triggers published while it
//! is down, restarted with the same `--client-id` and `--state-dir`: the persistent session
//! delivers what it missed, the retained states say what holds, and an old trigger published
//! again is rejected as a replay thanks to the persisted `seq`. Then the session lost: the
//! retained state says which `seq`s were missed. And a corrupt or shared state directory is
//! refused with a clear error.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test code

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use firebreak_gateway::keys::SigningKey;
use firebreak_protocols::message::encode_vec;
use firebreak_protocols::signed::signed_vec;
use firebreak_protocols::{
    DeviceId, GatewayId, IncidentId, KeyId, Level, Reason, RuleId, Signal, SiteId, Trigger, ZoneId,
};

const TRIGGERS: &str = "firebreak/v1/paris-1/triggers";
const SITE_STATE: &str = "firebreak/v1/paris-1/state";
const ZONE_STATE: &str = "firebreak/v1/paris-1/zones/battery-room/state";

fn peers() -> bool {
    require_peer("mosquitto") && require_peer("mosquitto_pub")
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// A signed trigger from gw-1, as a gateway publishes it.
fn signed(key: &SigningKey, seq: u64, zone: bool, level: Level, previous: Level) -> Vec<u8> {
    let mut t = Trigger::new(
        GatewayId::new("gw-1").unwrap(),
        seq,
        IncidentId::new("gw-1-i1").unwrap(),
        SiteId::new("paris-1").unwrap(),
        zone.then(|| ZoneId::new("battery-room").unwrap()),
        level,
        previous,
        now_ms(),
    )
    .unwrap();
    t.push_reason(Reason {
        rule: RuleId::new("off-gas").unwrap(),
        signal: Some(Signal::OffGas),
        device: Some(DeviceId::new("node-b1").unwrap()),
        channel: 0,
        value: 180.0,
        threshold: 50.0,
    })
    .unwrap();
    let b = encode_vec(&t).unwrap();
    signed_vec(&b, &key.sign(&b)).unwrap()
}

/// What a gateway does with a trigger: on the triggers topic, and retained on its state topic.
fn publish_as_gateway(port: u16, payload: &[u8], zone: bool) {
    mosquitto_pub(port, TRIGGERS, payload, false);
    mosquitto_pub(
        port,
        if zone { ZONE_STATE } else { SITE_STATE },
        payload,
        true,
    );
}

fn watch_args(port: u16, dir: &Path, client_id: &str, state: &str) -> Vec<String> {
    vec![
        "--broker".into(),
        format!("mqtt://127.0.0.1:{port}"),
        "--site".into(),
        "paris-1".into(),
        "--trust".into(),
        dir.join("k1.pub").display().to_string(),
        "--client-id".into(),
        client_id.into(),
        "--state-dir".into(),
        dir.join(state).display().to_string(),
    ]
}

fn count(lines: &[String], needle: &str) -> usize {
    lines.iter().filter(|l| l.contains(needle)).count()
}

/// Runs `watch` expecting it to refuse to start; its stderr.
fn refused(args: &[String]) -> String {
    let mut child = Command::new(firebreak_bin())
        .arg("watch")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let exited = wait_until(Duration::from_secs(10), || {
        child.try_wait().unwrap().is_some()
    });
    if exited.is_none() {
        let _ = child.kill();
        panic!("watch did not refuse to start");
    }
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_restarted_watch_catches_up_and_still_rejects_a_replay() {
    if !peers() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let key = SigningKey::generate(KeyId::new("k1").unwrap()).unwrap();
    key.write_pair(d).unwrap();
    let (_broker, port) = mosquitto(d);
    let args = watch_args(port, d, "ctl-paris", "state");

    let older = signed(&key, 99, false, Level::Watch, Level::Normal);
    let first = signed(&key, 100, false, Level::Prepare, Level::Watch);
    let mut watch = Watch::start(&args, 1, &[]);
    assert!(
        watch
            .stderr
            .iter()
            .any(|l| l.ends_with("watch-paris-1.json: none yet; nothing accepted before")),
        "{:#?}",
        watch.stderr
    );
    publish_as_gateway(port, &first, false);
    let lines = watch.wait(1, Duration::from_secs(10)).to_vec();
    assert!(
        lines[0].starts_with("ACCEPTED PREPARE (was watch) site paris-1 | off-gas")
            && lines[0].contains("| seq 100 from gw-1 (key k1)"),
        "{lines:#?}"
    );
    let ledger = std::fs::read_to_string(d.join("state/watch-paris-1.json")).unwrap();
    assert!(ledger.contains("\"gw-1\":{\"last\":100"), "{ledger}");
    // A second controller on the same state directory would overwrite its ledger.
    let shared = refused(&watch_args(port, d, "ctl-other", "state"));
    assert!(
        shared.contains("state: another firebreak watch of site paris-1 uses it"),
        "{shared}"
    );

    // The controller dies; the site escalates meanwhile.
    watch.peer.kill();
    let zone = signed(&key, 101, true, Level::Evacuate, Level::Prepare);
    let site = signed(&key, 102, false, Level::Evacuate, Level::Prepare);
    publish_as_gateway(port, &zone, true);
    publish_as_gateway(port, &site, false);

    // Back, same client id and state directory, plus a controller that starts afresh.
    let mut watch = Watch::start(&args, 1, &[]);
    assert!(
        watch
            .stderr
            .iter()
            .any(|l| l.starts_with("watch: resuming after seq 100 from gateway gw-1 (")),
        "{:#?}",
        watch.stderr
    );
    assert!(
        watch
            .stderr
            .iter()
            .any(|l| l.contains("session resumed (client id ctl-paris)")),
        "{:#?}",
        watch.stderr
    );
    let mut fresh = Watch::start(&watch_args(port, d, "ctl-fresh", "fresh"), 1, &[]);
    // The session's triggers, then the retained states: nothing missed.
    let lines = watch.wait(4, Duration::from_secs(10)).to_vec();
    assert_eq!(count(&lines, "ACCEPTED EVACUATE"), 2, "{lines:#?}");
    assert!(lines[0].contains("zone battery-room") && lines[0].contains("seq 101 from gw-1"));
    assert!(lines[1].contains("seq 102 from gw-1"), "{lines:#?}");
    assert_eq!(
        count(
            &lines,
            &format!("(retained on {ZONE_STATE} via mqtt://127.0.0.1:{port})")
        ),
        1,
        "{lines:#?}"
    );
    assert!(
        lines.iter().any(
            |l| l.starts_with("STATE EVACUATE (was prepare) site paris-1 |")
                && l.contains("seq 102 from gw-1")
                && l.contains(&format!("(retained on {SITE_STATE} via"))
        ),
        "{lines:#?}"
    );
    assert_eq!(count(&lines, "missed"), 0, "{lines:#?}");

    // Old triggers published again: 99 is below the persisted last seq (a replay), 100 was
    // accepted before the restart (a duplicate, not acted on again).
    mosquitto_pub(port, TRIGGERS, &older, false);
    mosquitto_pub(port, TRIGGERS, &first, false);
    let lines = watch.wait(5, Duration::from_secs(10)).to_vec();
    assert_eq!(
        lines[4],
        format!(
            "REJECTED replayed: seq 99 from gateway gw-1 is not above the last accepted (102) (via mqtt://127.0.0.1:{port} on {TRIGGERS})"
        )
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(watch.wait(6, Duration::from_millis(200)).len(), 5);
    // Without the persisted seq, only the retained state it read stops the same replay:
    // seq 99 about the site is older than the site's state (seq 102).
    let fresh_lines = fresh.wait(4, Duration::from_secs(10)).to_vec();
    assert!(
        fresh_lines.iter().any(|l| l.starts_with(
            "REJECTED superseded: seq 99 from gateway gw-1 about site is older than its retained state at seq 102"
        )),
        "{fresh_lines:#?}"
    );
    assert_eq!(count(&fresh_lines, "ACCEPTED"), 0, "{fresh_lines:#?}");
    drop(fresh);

    // Down again, and this time its session is gone (another client id): the retained
    // state is all that tells what happened.
    watch.peer.kill();
    let lost = signed(&key, 103, true, Level::Prepare, Level::Evacuate);
    let now = signed(&key, 104, false, Level::Prepare, Level::Evacuate);
    publish_as_gateway(port, &lost, true);
    publish_as_gateway(port, &now, false);
    let mut watch = Watch::start(&watch_args(port, d, "ctl-paris-2", "state"), 1, &[]);
    let lines = watch.wait(3, Duration::from_secs(10)).to_vec();
    assert_eq!(count(&lines, "ACCEPTED"), 0, "{lines:#?}");
    // Whichever state comes first reports the gap up to its seq, the other the rest.
    let missed: Vec<&String> = lines.iter().filter(|l| l.starts_with("missed: ")).collect();
    assert!(
        missed
            == [
                &"missed: seq 103..104 from gateway gw-1 (the retained state is at seq 104)"
                    .to_string()
            ]
            || missed
                == [
                    &"missed: seq 103..103 from gateway gw-1 (the retained state is at seq 103)"
                        .to_string(),
                    &"missed: seq 104..104 from gateway gw-1 (the retained state is at seq 104)"
                        .to_string()
                ],
        "{lines:#?}"
    );
    let lines = watch
        .wait(3 + missed.len() - 1, Duration::from_secs(5))
        .to_vec();
    assert!(
        lines.iter().any(
            |l| l.starts_with("STATE PREPARE (was evacuate) site paris-1 |")
                && l.contains("seq 104")
        ),
        "{lines:#?}"
    );
    // Live again: the next trigger is news, with nothing more missed.
    let next = signed(&key, 105, false, Level::Watch, Level::Prepare);
    publish_as_gateway(port, &next, false);
    let total = lines.len() + 1;
    let lines = watch.wait(total, Duration::from_secs(10)).to_vec();
    assert!(
        lines[total - 1].starts_with("ACCEPTED WATCH (was prepare)")
            && lines[total - 1].contains("seq 105"),
        "{lines:#?}"
    );
    drop(watch);

    // A corrupt ledger is refused, naming the file, never taken for an empty one.
    let ledger = d.join("state/watch-paris-1.json");
    std::fs::write(&ledger, b"{\"schema\":\"firebreak.watch-ledger/1\",\"gat").unwrap();
    let err = refused(&args);
    assert!(
        err.contains(&format!(
            "--state-dir: {}: not a usable firebreak.watch-ledger/1 file (",
            ledger.display()
        )) && err.contains("move it away to start afresh"),
        "{err}"
    );
}

/// A trigger of `gateway` about `site`, signed by `key`.
fn signed_as(key: &SigningKey, gateway: &str, site: &str, seq: u64) -> Vec<u8> {
    signed_at(key, gateway, site, seq, now_ms())
}

/// [`signed_as`], issued at `issued_at_ms`.
fn signed_at(key: &SigningKey, gateway: &str, site: &str, seq: u64, issued_at_ms: u64) -> Vec<u8> {
    let t = Trigger::new(
        GatewayId::new(gateway).unwrap(),
        seq,
        IncidentId::new("i1").unwrap(),
        SiteId::new(site).unwrap(),
        None,
        Level::Evacuate,
        Level::Prepare,
        issued_at_ms,
    )
    .unwrap();
    let b = encode_vec(&t).unwrap();
    signed_vec(&b, &key.sign(&b)).unwrap()
}

#[test]
fn a_trust_file_binds_each_key_to_its_gateway_and_site() {
    if !peers() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let a = SigningKey::generate(KeyId::new("gw-1-2026").unwrap()).unwrap();
    let b = SigningKey::generate(KeyId::new("gw-2-2026").unwrap()).unwrap();
    a.write_pair(d).unwrap();
    b.write_pair(d).unwrap();
    std::fs::write(
        d.join("trust.toml"),
        r#"schema = "firebreak.trust/1"
[[keys]]
key_file = "gw-1-2026.pub"
gateways = ["gw-1"]
sites = ["paris-1"]
[[keys]]
key_file = "gw-2-2026.pub"
gateways = ["gw-2"]
sites = ["paris-1"]
revoked = true
"#,
    )
    .unwrap();
    let (_broker, port) = mosquitto(d);
    let args: Vec<String> = vec![
        "--broker".into(),
        format!("mqtt://127.0.0.1:{port}"),
        "--site".into(),
        "paris-1".into(),
        "--trust".into(),
        d.join("trust.toml").display().to_string(),
    ];
    let mut watch = Watch::start(&args, 1, &[]);
    // gw-1's key claiming to be gw-3; gw-1's key about another site; the revoked key; then
    // what gw-1's key is granted.
    for payload in [
        signed_as(&a, "gw-3", "paris-1", 1),
        signed_as(&a, "gw-1", "lyon-2", 1),
        signed_as(&b, "gw-2", "paris-1", 1),
        signed_as(&a, "gw-1", "paris-1", 1),
    ] {
        mosquitto_pub(port, TRIGGERS, &payload, false);
    }
    let lines = watch.wait(4, Duration::from_secs(10)).to_vec();
    let via = format!(" (via mqtt://127.0.0.1:{port} on {TRIGGERS})");
    assert_eq!(
        lines[..3],
        [
            format!(
                "REJECTED key not granted: trusted key \"gw-1-2026\" may sign for gateway gw-1 only, not gw-3{via}"
            ),
            format!(
                "REJECTED key not granted: trusted key \"gw-1-2026\" may sign for site paris-1 only, not lyon-2{via}"
            ),
            format!(
                "REJECTED key not granted: trusted key \"gw-2-2026\" is revoked: nothing it signs is taken{via}"
            ),
        ],
        "{lines:#?}"
    );
    assert!(
        lines[3].starts_with("ACCEPTED EVACUATE (was prepare) site paris-1")
            && lines[3].contains("seq 1 from gw-1 (key gw-1-2026)"),
        "{lines:#?}"
    );
    // Signed by gw-1's own key: issued an hour ahead, then a seq that would poison gw-1's
    // order; neither is taken, and gw-1's next genuine trigger still is.
    mosquitto_pub(
        port,
        TRIGGERS,
        &signed_at(&a, "gw-1", "paris-1", 2, now_ms() + 3_600_000),
        false,
    );
    mosquitto_pub(
        port,
        TRIGGERS,
        &signed_as(&a, "gw-1", "paris-1", u64::MAX - 1),
        false,
    );
    mosquitto_pub(port, TRIGGERS, &signed_as(&a, "gw-1", "paris-1", 2), false);
    let lines = watch.wait(7, Duration::from_secs(10)).to_vec();
    assert!(
        lines[4].starts_with("REJECTED future: issued 3599 s ahead")
            || lines[4].starts_with("REJECTED future: issued 3600 s ahead"),
        "{lines:#?}"
    );
    assert!(
        lines[5].starts_with(&format!(
            "REJECTED seq ahead: seq {} from gateway gw-1",
            u64::MAX - 1
        )),
        "{lines:#?}"
    );
    assert!(
        lines[6].starts_with("ACCEPTED") && lines[6].contains("seq 2 from gw-1"),
        "{lines:#?}"
    );
    // A key granted by two trust files is refused at start, naming the file.
    std::fs::copy(d.join("trust.toml"), d.join("again.toml")).unwrap();
    let mut twice = args.clone();
    twice.extend(["--trust".into(), d.join("again.toml").display().to_string()]);
    let e = refused(&twice);
    assert!(
        e.contains("again.toml: key gw-1-2026 is granted twice"),
        "{e}"
    );
}

/// Collects `watch`'s lines until one holds `needle`, or `within` passes; that line.
fn line_with(watch: &mut Watch, needle: &str, within: Duration) -> String {
    let lines = watch.wait_for(within, |l| l.iter().any(|l| l.contains(needle)));
    lines.into_iter().find(|l| l.contains(needle)).unwrap()
}

/// A live gateway's signed status, off a real Mosquitto: `watch` shows it online, refuses a
/// forged (unsigned) and an untrusted status, shows the signed will when the gateway is
/// killed (the broker sends it), refuses the connection's heartbeat sent again after its will,
/// and, once the gateway is back with a new boot epoch, refuses the old will sent again.
#[test]
fn watch_takes_a_live_gateways_signed_status_and_will_and_refuses_forged_or_replayed_ones() {
    if !peers() || !require_peer("mosquitto_sub") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let key = SigningKey::generate(KeyId::new("gw-st-2026").unwrap()).unwrap();
    key.write_pair(d).unwrap();
    let (_broker, port) = mosquitto(d);
    let status_topic = "firebreak/v1/paris-1/gateways/gw-st/status";
    let config = format!(
        "[site]\nname = \"paris-1\"\ngateway = \"gw-st\"\n[[zones]]\nname = \"battery-room\"\n\
         [http]\nbind = \"{{HTTP}}\"\n\
         [[brokers]]\nname = \"local\"\nurl = \"mqtt://127.0.0.1:{port}\"\n\
         [signing]\nkey_file = \"{}\"\nkey_id = \"gw-st-2026\"\n[outbox]\ndir = \"{}\"\n\
         [[mqtt_sources]]\nname = \"room-sensor\"\nzone = \"battery-room\"\n\
         broker = \"mqtt://127.0.0.1:{port}\"\ntopic = \"building/br/env\"\nfreshness_ms = 60000\n\
         [[mqtt_sources.signals]]\nsignal = \"off-gas\"\nfield = \"voc_ppm\"\n",
        d.join("gw-st-2026.key").display(),
        d.join("outbox").display()
    );
    let port_s = port.to_string();
    let mut sub = Sub::start(&["-h", "127.0.0.1", "-p", &port_s], status_topic);
    let mut gw = Gateway::start(d, &config);
    let args: Vec<String> = vec![
        "--broker".into(),
        format!("mqtt://127.0.0.1:{port}"),
        "--site".into(),
        "paris-1".into(),
        "--trust".into(),
        d.join("gw-st-2026.pub").display().to_string(),
    ];
    let mut watch = Watch::start_with_status(&args, 1, &[]);
    let online = line_with(
        &mut watch,
        "STATUS gateway gw-st ONLINE",
        Duration::from_secs(10),
    );
    assert!(
        online.contains("session 1 | 0/1 devices healthy (key gw-st-2026)")
            || online.contains("session 1 | 1/1 devices healthy (key gw-st-2026)"),
        "{online}"
    );
    assert!(sub.wait(Duration::from_secs(10), |g| !g.is_empty()));
    let heartbeat = sub.got[0].2.clone();
    let first: serde_json::Value = serde_json::from_str(&heartbeat).unwrap();
    let epoch = first["epoch"].as_u64().unwrap();
    assert_eq!(
        (first["session"].as_u64(), first["beat"].as_u64()),
        (Some(1), Some(0))
    );

    // Forged: "gw-st is offline", unsigned; then signed by a key nobody trusts.
    let mut forged = firebreak_protocols::GatewayStatus::new(
        GatewayId::new("gw-st").unwrap(),
        SiteId::new("paris-1").unwrap(),
        firebreak_protocols::Presence::Offline,
        "0.1.0",
        0,
        1,
        now_ms(),
    );
    forged.epoch = Some(epoch);
    forged.session = Some(2);
    forged.beat = Some(0);
    let unsigned = encode_vec(&forged).unwrap();
    mosquitto_pub(port, status_topic, &unsigned, false);
    let stranger = SigningKey::generate(KeyId::new("gw-st-2026x").unwrap()).unwrap();
    mosquitto_pub(
        port,
        status_topic,
        &signed_vec(&unsigned, &stranger.sign(&unsigned)).unwrap(),
        false,
    );
    let via = format!(" (via mqtt://127.0.0.1:{port} on {status_topic})");
    assert_eq!(
        line_with(&mut watch, "REJECTED unsigned", Duration::from_secs(10)),
        format!("REJECTED unsigned: the message carries no signature{via}")
    );
    assert_eq!(
        line_with(&mut watch, "REJECTED unknown key", Duration::from_secs(10)),
        format!("REJECTED unknown key: signed by key \"gw-st-2026x\", which is not trusted{via}")
    );
    assert!(
        !watch.lines.iter().any(|l| l.contains("OFFLINE")),
        "{:#?}",
        watch.lines
    );

    // Killed: the broker sends the will the gateway signed at connect (keep-alive 10 s).
    gw.peer.kill();
    let offline = line_with(
        &mut watch,
        "STATUS gateway gw-st OFFLINE",
        Duration::from_secs(30),
    );
    assert!(
        offline.contains(&format!("OFFLINE epoch {epoch} session 1 |")),
        "{offline}"
    );
    // The will the broker sent (not the forged offline statuses above).
    let is_will = |m: &(std::time::Instant, String, String)| {
        m.2.contains("\"offline\"") && m.2.contains("\"key_id\":\"gw-st-2026\"")
    };
    assert!(sub.wait(Duration::from_secs(5), |g| g.iter().any(is_will)));
    let will = sub.got.iter().find(|m| is_will(m)).unwrap().2.clone();
    // The connection's first heartbeat sent again: it does not revive the gateway.
    mosquitto_pub(port, status_topic, heartbeat.as_bytes(), false);
    assert_eq!(
        line_with(&mut watch, "REJECTED replayed", Duration::from_secs(10)),
        format!(
            "REJECTED replayed: a status of gateway gw-st says online for epoch {epoch} session 1, whose offline was already taken{via}"
        )
    );

    // Back, with a higher boot epoch; the old will sent again does not mark it offline.
    let _gw = Gateway::start(d, &config);
    let restarted = wait_until(Duration::from_secs(10), || {
        let n = watch.lines.len() + 1;
        watch.wait(n, Duration::from_millis(200));
        watch
            .lines
            .iter()
            .filter(|l| l.contains("STATUS gateway gw-st ONLINE"))
            .count()
            >= 2
    });
    assert!(restarted.is_some(), "{:#?}", watch.lines);
    let second = watch
        .lines
        .iter()
        .filter(|l| l.contains("STATUS gateway gw-st ONLINE"))
        .nth(1)
        .unwrap()
        .clone();
    assert!(
        !second.contains(&format!("epoch {epoch} ")),
        "a restart has a new epoch: {second}"
    );
    mosquitto_pub(port, status_topic, will.as_bytes(), false);
    let old = line_with(&mut watch, "REJECTED old session", Duration::from_secs(10));
    assert!(
        old.starts_with(&format!(
            "REJECTED old session: a status of gateway gw-st from epoch {epoch} session 1, after epoch "
        )),
        "{old}"
    );
}
