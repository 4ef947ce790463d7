//! `firebreak drill` against a running gateway and two real Mosquitto brokers: the drill goes
//! through each broker and comes back, with its round trip per broker on the command line, in
//! `/status` and `/metrics`; `firebreak watch` prints it as `DRILL` and never as a level, with
//! no missed `seq` and the next real trigger accepted; a forged drill is rejected; the Python
//! verifier reports it as a drill, and the one from before drills refuses it; a broker that is
//! down fails the drill and the command.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test code

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use common::*;
use firebreak_gateway::keys::SigningKey;
use firebreak_protocols::message::encode_vec;
use firebreak_protocols::signed::signed_vec;
use firebreak_protocols::{Drill, GatewayId, IncidentId, KeyId, Level, SiteId, Trigger};

const SITE: &str = "drill-site";
const DRILL_TOPIC: &str = "firebreak/v1/drill-site/drill/gw-d";

fn peers() -> bool {
    require_peer("mosquitto") && require_peer("mosquitto_pub") && require_peer("mosquitto_sub")
}

fn drill(config: &Path, extra: &[&str]) -> Output {
    Command::new(firebreak_bin())
        .args(["drill", "--config"])
        .arg(config)
        .args(extra)
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The lines about triggers, levels, drills and rejections (statuses and staleness aside).
fn about_levels(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .filter(|l| {
            !l.starts_with("STATUS ") && !l.starts_with("STALE ") && !l.starts_with("LIVE ")
        })
        .cloned()
        .collect()
}

fn verify(python: &Path, script: &Path, keys: &Path, lines: &[String]) -> Vec<String> {
    use std::io::Write;
    let mut child = Command::new(python)
        .arg(script)
        .args(["payloads", "--topics", "--site", SITE, "--keys"])
        .arg(keys)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        let mut stdin = child.stdin.take().unwrap();
        for l in lines {
            writeln!(stdin, "{l}").unwrap();
        }
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout).lines().map(String::from).collect()
}

#[test]
fn a_drill_goes_through_every_broker_and_is_never_a_level() {
    if !peers() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let key = SigningKey::generate(KeyId::new("gw-d-2026").unwrap()).unwrap();
    key.write_pair(d).unwrap();
    std::fs::create_dir_all(d.join("a")).unwrap();
    std::fs::create_dir_all(d.join("b")).unwrap();
    let (_a, port_a) = mosquitto(&d.join("a"));
    let (mut b, port_b) = mosquitto(&d.join("b"));
    let pa = port_a.to_string();
    let mut sub = Sub::start(&["-h", "127.0.0.1", "-p", &pa], "firebreak/v1/drill-site/#");
    std::fs::write(d.join("rules.toml"), FIRE_RULES).unwrap();
    let config = format!(
        "[site]\nname = \"{SITE}\"\ngateway = \"gw-d\"\n[[zones]]\nname = \"battery-room\"\n\
         [http]\nbind = \"{{HTTP}}\"\n[policy]\nrules_file = \"rules.toml\"\nhold_s = 1\n\
         [[brokers]]\nname = \"a\"\nurl = \"mqtt://127.0.0.1:{port_a}\"\n\
         [[brokers]]\nname = \"b\"\nurl = \"mqtt://127.0.0.1:{port_b}\"\n\
         [signing]\nkey_file = \"{}\"\nkey_id = \"gw-d-2026\"\n[outbox]\ndir = \"{}\"\n\
         [[mqtt_sources]]\nname = \"room-sensor\"\nzone = \"battery-room\"\n\
         broker = \"mqtt://127.0.0.1:{port_a}\"\ntopic = \"building/br/env\"\nfreshness_ms = 60000\n\
         [[mqtt_sources.signals]]\nsignal = \"off-gas\"\nfield = \"voc_ppm\"\n\
         [[mqtt_sources.signals]]\nsignal = \"smoke-alarm\"\nfield = \"smoke\"\n",
        d.join("gw-d-2026.key").display(),
        d.join("outbox").display()
    );
    let gw = Gateway::start(d, &config);
    let site_toml = d.join("site.toml");
    let connected = |gw: &Gateway, n: usize| {
        gw.status()["delivery"]["brokers"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|b| b["connected"] == true)
            .count()
            == n
    };
    assert!(wait_until(Duration::from_secs(10), || connected(&gw, 2)).is_some());
    // The socket is next to the outbox, for the gateway's user only.
    let socket = d.join("outbox/control.sock");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&socket).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);

    let watch_args: Vec<String> = vec![
        "--broker".into(),
        format!("mqtt://127.0.0.1:{port_a}"),
        "--broker".into(),
        format!("mqtt://127.0.0.1:{port_b}"),
        "--site".into(),
        SITE.into(),
        "--trust".into(),
        d.join("gw-d-2026.pub").display().to_string(),
        "--client-id".into(),
        "drill-watch".into(),
    ];
    let mut watch = Watch::start_with_status(&watch_args, 2, &[]);
    // The same, for machines: one JSON object a line, on broker a only.
    let mut json_args = watch_args.clone();
    json_args.drain(2..4);
    json_args.extend(["--json".to_string()]);
    if let Some(id) = json_args.iter_mut().find(|a| *a == "drill-watch") {
        *id = "drill-watch-json".into();
    }
    let mut json_watch = Watch::start_with_status(&json_args, 1, &[]);
    let publish =
        |payload: &str| mosquitto_pub(port_a, "building/br/env", payload.as_bytes(), false);

    // A real change first: prepare, accepted and a LEVEL for the site and the zone.
    publish(r#"{"voc_ppm": 45.0, "smoke": 0}"#);
    let lines = watch.wait_for(Duration::from_secs(15), |l| {
        l.iter().filter(|l| l.starts_with("LEVEL PREPARE")).count() >= 2
    });
    let before = lines.len();

    // The drill: both brokers send it back; the command says each round trip.
    let out = drill(&site_toml, &["--zone", "battery-room"]);
    let said = text(&out.stdout);
    assert!(out.status.success(), "{said}{}", text(&out.stderr));
    println!("firebreak drill:\n{said}");
    for broker in ["a", "b"] {
        assert!(
            said.lines()
                .any(|l| l.starts_with(&format!("  broker {broker} ("))
                    && l.contains(": ok, round trip ")),
            "{said}"
        );
    }
    assert!(
        said.contains("2 of 2 brokers sent the drill back"),
        "{said}"
    );
    assert!(
        said.starts_with("DRILL drill-") && said.contains("EVACUATE zone battery-room"),
        "{said}"
    );

    // watch: one DRILL per broker, and nothing else about levels.
    let lines = watch.wait_for(Duration::from_secs(10), |l| {
        l.iter().filter(|l| l.starts_with("DRILL ")).count() >= 2
    });
    let after = about_levels(&lines[before..]);
    println!("firebreak watch after the drill:\n{}", after.join("\n"));
    assert!(after.iter().all(|l| l.starts_with("DRILL ")), "{after:#?}");
    assert!(
        after[0].contains("EVACUATE site drill-site zone battery-room")
            && after[0].contains("not a level: nothing changes"),
        "{after:#?}"
    );

    let json_lines = json_watch.wait_for(Duration::from_secs(10), |l| {
        l.iter().any(|l| l.contains("\"event\":\"drill\""))
    });
    let event: serde_json::Value = serde_json::from_str(
        json_lines
            .iter()
            .find(|l| l.contains("\"event\":\"drill\""))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(event["topic"], DRILL_TOPIC, "{event}");
    assert_eq!(event["key_id"], "gw-d-2026", "{event}");
    assert_eq!(event["drill"]["schema"], "firebreak.drill/1", "{event}");
    assert_eq!(event["drill"]["drill"], true, "{event}");
    assert!(event["age_ms"].as_u64().is_some(), "{event}");
    let levels_json = json_lines
        .iter()
        .filter(|l| l.contains("\"event\":\"level\""))
        .count();
    assert_eq!(levels_json, 2, "{json_lines:#?}");

    // The next real change is accepted, with no missed seq and no rejection anywhere.
    publish(r#"{"voc_ppm": 60.0, "smoke": 1}"#);
    let lines = watch.wait_for(Duration::from_secs(15), |l| {
        l.iter().filter(|l| l.starts_with("LEVEL EVACUATE")).count() >= 2
    });
    assert!(
        !lines
            .iter()
            .any(|l| l.starts_with("missed:") || l.starts_with("REJECTED")),
        "{lines:#?}"
    );
    let levels: Vec<&String> = lines.iter().filter(|l| l.starts_with("LEVEL ")).collect();
    assert_eq!(levels.len(), 4, "{lines:#?}");

    // /metrics and /status know the drill and its round trip per broker.
    let metrics = gw.get("/metrics").unwrap();
    for broker in ["a", "b"] {
        assert!(
            metrics.contains(&format!(
                "firebreak_drill_round_trip_seconds{{broker=\"{broker}\"}} "
            )),
            "{metrics}"
        );
        assert!(
            metrics.contains(&format!("firebreak_drills_total{{broker=\"{broker}\"}} 1")),
            "{metrics}"
        );
        assert!(
            metrics.contains(&format!("firebreak_drill_last_ok{{broker=\"{broker}\"}} 1")),
            "{metrics}"
        );
    }
    assert!(
        !metrics.contains("firebreak_drill_last_timestamp_seconds 0\n"),
        "{metrics}"
    );
    let status = gw.status();
    let last = &status["drill"];
    assert_eq!(last["level"], "evacuate", "{status}");
    assert_eq!(last["zone"], "battery-room");
    assert_eq!(last["brokers"].as_array().unwrap().len(), 2);
    assert!(
        last["brokers"]
            .as_array()
            .unwrap()
            .iter()
            .all(|b| b["delivered"] == true && b["round_trip_ms"].as_f64().is_some()),
        "{status}"
    );

    // The technician's page shows the last drill, broker by broker.
    if require_peer("chromium") {
        let page = common::browser::dom(dir.path(), &format!("http://127.0.0.1:{}/", gw.http_port));
        let drill_id = last["drill"].as_str().unwrap();
        assert!(
            page.contains(&format!("data-drill=\"{drill_id}\" data-failed=\"0\"")),
            "{page}"
        );
        for broker in ["a", "b"] {
            assert!(
                page.contains(&format!(
                    "data-drill-broker=\"{broker}\" data-delivered=\"true\""
                )),
                "{page}"
            );
        }
    }

    // A forged drill (another key under the gateway's key id) is rejected like a forged trigger.
    let forger = SigningKey::generate(KeyId::new("gw-d-2026").unwrap()).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let body = Trigger::new(
        GatewayId::new("gw-d").unwrap(),
        1,
        IncidentId::new("drill-forged").unwrap(),
        SiteId::new(SITE).unwrap(),
        None,
        Level::Evacuate,
        Level::Normal,
        now,
    )
    .unwrap();
    let canonical = encode_vec(&Drill::new(body).unwrap()).unwrap();
    let forged = signed_vec(&canonical, &forger.sign(&canonical)).unwrap();
    mosquitto_pub(port_a, DRILL_TOPIC, &forged, false);
    let lines = watch.wait_for(Duration::from_secs(10), |l| {
        l.iter().any(|l| l.starts_with("REJECTED bad signature"))
    });
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("REJECTED bad signature") && l.contains(DRILL_TOPIC)),
        "{lines:#?}"
    );
    assert_eq!(
        lines.iter().filter(|l| l.starts_with("DRILL ")).count(),
        2,
        "{lines:#?}"
    );

    // What a controller sees on the broker: the drill only on the drill topic; the Python
    // verifier says drill, and the one from before drills refuses it.
    assert!(sub.wait(Duration::from_secs(5), |g| {
        g.iter().filter(|m| m.1 == DRILL_TOPIC).count() >= 2
            && g.iter().any(|m| {
                m.2.contains("\"level\":\"evacuate\",\"previous\":\"prepare\"")
            })
    }));
    assert!(
        sub.got
            .iter()
            .filter(|m| m.2.contains("firebreak.drill/1"))
            .all(|m| m.1 == DRILL_TOPIC),
        "{:?}",
        sub.got
    );
    if let Some(python) = python() {
        std::fs::write(
            d.join("keys.json"),
            serde_json::json!([{
                "key_id": "gw-d-2026",
                "ed25519": key.public().base64(),
                "gateways": ["gw-d"],
                "sites": [SITE],
            }])
            .to_string(),
        )
        .unwrap();
        let payloads: Vec<String> = sub.got.iter().map(|m| format!("{} {}", m.1, m.2)).collect();
        let new = verify(
            &python,
            &workspace().join("docs/examples/verify_trigger.py"),
            &d.join("keys.json"),
            &payloads,
        );
        let old = verify(
            &python,
            &workspace().join("gateway/tests/peers/verify_trigger_before_drills.py"),
            &d.join("keys.json"),
            &payloads,
        );
        assert_eq!(new.len(), payloads.len());
        assert_eq!(old.len(), payloads.len());
        let mut drills = 0;
        for ((p, n), o) in payloads.iter().zip(&new).zip(&old) {
            if !p.contains("firebreak.drill/1") {
                continue;
            }
            drills += 1;
            assert!(o.starts_with("malformed "), "before drills: {o} for {p}");
            if p.contains("drill-forged") {
                assert!(n.starts_with("bad-signature "), "{n}");
            } else {
                assert!(
                    n.starts_with("drill drill evacuate site drill-site zone battery-room"),
                    "{n}"
                );
            }
        }
        assert_eq!(drills, 2, "{payloads:#?}");
        assert!(
            new.iter()
                .any(|v| v.starts_with("accepted trigger evacuate")),
            "{new:#?}"
        );
    }

    // Broker b down: the drill fails there (and the command with it), still comes back on a.
    b.kill();
    assert!(wait_until(Duration::from_secs(15), || connected(&gw, 1)).is_some());
    let out = drill(&site_toml, &["--json", "--timeout", "3"]);
    assert!(!out.status.success());
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(answer["ok"], true, "{answer}");
    let brokers = answer["drill"]["brokers"].as_array().unwrap();
    assert_eq!(brokers[0]["delivered"], true, "{answer}");
    assert_eq!(brokers[1]["delivered"], false, "{answer}");
    assert!(
        brokers[1]["error"]
            .as_str()
            .unwrap()
            .contains("not connected"),
        "{answer}"
    );
    assert!(
        text(&out.stderr).contains("drill FAILED on 1 of 2 brokers"),
        "{}",
        text(&out.stderr)
    );
    // It carries the last trigger's seq: it took none.
    assert_eq!(
        answer["drill"]["seq"],
        gw.status()["delivery"]["last_seq"],
        "{answer}"
    );
    let metrics = gw.get("/metrics").unwrap();
    assert!(
        metrics.contains("firebreak_drill_last_ok{broker=\"b\"} 0"),
        "{metrics}"
    );
    assert!(
        metrics.contains("firebreak_drill_failures_total{broker=\"b\"} 1"),
        "{metrics}"
    );
    assert!(
        !metrics.contains("firebreak_drill_round_trip_seconds{broker=\"b\"}"),
        "{metrics}"
    );

    // A wrong zone is refused by the gateway with a clear error.
    let out = drill(&site_toml, &["--zone", "kitchen"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr)
            .contains("zone \"kitchen\" is not a zone of this site (zones: battery-room)"),
        "{}",
        text(&out.stderr)
    );
}

/// Without a running gateway, `firebreak drill` says where it looked and why it failed.
#[test]
fn without_a_gateway_the_drill_says_where_it_looked() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(firebreak_bin())
        .args(["drill", "--socket"])
        .arg(dir.path().join("control.sock"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("control.sock") && err.contains("is `firebreak run` running"),
        "{err}"
    );
}

/// On a broker with the documented ACL (docs/examples/mosquitto.acl, passwords), the gateway
/// reads its own drill topic back and the drill succeeds; with the same ACL lacking that read
/// grant, the drill fails there, saying it was not sent back.
#[test]
fn the_documented_acl_lets_a_drill_come_back_and_one_without_the_read_grant_does_not() {
    if !require_peer("mosquitto") || !require_peer("mosquitto_passwd") {
        return;
    }
    const PASSWORD: &str = "acl-drill-Passw0rd";
    let documented =
        std::fs::read_to_string(workspace().join("docs/examples/mosquitto.acl")).unwrap();
    assert!(documented.contains("topic read firebreak/v1/paris-1/drill/gw-paris-1a\n"));
    let without_read: String = documented
        .lines()
        .filter(|l| !l.contains("/drill/"))
        .map(|l| format!("{l}\n"))
        .collect();
    for (acl, succeeds) in [(documented, true), (without_read, false)] {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let passwd = d.join("passwd");
        let made = Command::new("mosquitto_passwd")
            .args(["-b", "-c"])
            .arg(&passwd)
            .args(["gw-paris-1a", PASSWORD])
            .status()
            .unwrap();
        assert!(made.success());
        std::fs::write(d.join("firebreak.acl"), &acl).unwrap();
        let extra = format!(
            "allow_anonymous false\npassword_file {}\nacl_file {}\npersistence false\n",
            passwd.display(),
            d.join("firebreak.acl").display()
        );
        let (_broker, port) = (0..5)
            .find_map(|_| mosquitto_with(d, free_port(), &extra))
            .expect("mosquitto with the ACL");
        let key = SigningKey::generate(KeyId::new("gw-paris-1a-2026").unwrap()).unwrap();
        key.write_pair(d).unwrap();
        // A device that never answers: the gateway runs, the drill needs no device.
        let config = format!(
            "[site]\nname = \"paris-1\"\ngateway = \"gw-paris-1a\"\n[[zones]]\nname = \"room\"\n\
             [http]\nbind = \"{{HTTP}}\"\n\
             [[devices]]\nname = \"ups\"\nzone = \"room\"\ntransport = \"tcp\"\naddress = \"127.0.0.1:{}\"\nunit = 1\nprofile = \"generic-ups\"\n\
             [[brokers]]\nname = \"site-b\"\nurl = \"mqtt://127.0.0.1:{port}\"\nusername = \"gw-paris-1a\"\npassword_env = \"FB_DRILL_PASSWORD\"\n\
             [signing]\nkey_file = \"{}\"\n[outbox]\ndir = \"{}\"\n",
            free_port(),
            d.join("gw-paris-1a-2026.key").display(),
            d.join("outbox").display()
        );
        let gw = Gateway::start_with_env(d, &config, None, &[("FB_DRILL_PASSWORD", PASSWORD)]);
        assert!(
            wait_until(Duration::from_secs(10), || {
                gw.status()["delivery"]["brokers"][0]["connected"] == true
            })
            .is_some()
        );
        let out = drill(&d.join("site.toml"), &["--timeout", "2"]);
        let said = text(&out.stdout);
        assert_eq!(
            out.status.success(),
            succeeds,
            "{said}{}",
            text(&out.stderr)
        );
        if succeeds {
            assert!(
                said.contains("  broker site-b (") && said.contains(": ok, round trip "),
                "{said}"
            );
        } else {
            assert!(
                said.contains(": FAILED: not sent back within 2 s"),
                "{said}"
            );
        }
    }
}
