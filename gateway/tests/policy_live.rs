//! The policy engine inside the running gateway: building sensors publish over a real
//! Mosquitto broker, and `/status` and `/metrics` show the levels and why.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test code

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;

#[test]
fn mqtt_evidence_raises_levels_with_reasons() {
    if !require_peer("mosquitto") || !require_peer("mosquitto_pub") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (_broker, port) = mosquitto(dir.path());
    std::fs::write(dir.path().join("rules.toml"), FIRE_RULES).unwrap();
    let config = format!(
        "[site]\nname = \"test\"\ngateway = \"gw-test\"\n[[zones]]\nname = \"battery-room\"\n\
         [http]\nbind = \"{{HTTP}}\"\n[policy]\nrules_file = \"rules.toml\"\nhold_s = 1\n\
         [[mqtt_sources]]\nname = \"room-sensor\"\nzone = \"battery-room\"\n\
         broker = \"mqtt://127.0.0.1:{port}\"\ntopic = \"building/br/env\"\nfreshness_ms = 60000\n\
         [[mqtt_sources.signals]]\nsignal = \"off-gas\"\nfield = \"voc_ppm\"\n\
         [[mqtt_sources.signals]]\nsignal = \"smoke-alarm\"\nfield = \"smoke\"\n"
    );
    let gw = Gateway::start(dir.path(), &config);
    let publish = |payload: &str| {
        let ok = Command::new("mosquitto_pub")
            .args(["-h", "127.0.0.1", "-p", &port.to_string()])
            .args(["-t", "building/br/env", "-m", payload])
            .status()
            .unwrap()
            .success();
        assert!(ok, "mosquitto_pub");
    };
    let site_level = |gw: &Gateway| gw.status()["policy"]["site"].as_str().unwrap().to_string();

    // Clean air: normal.
    let clean = wait_until(Duration::from_secs(10), || {
        publish(r#"{"voc_ppm": 2.0, "smoke": 0}"#);
        gw.signal("room-sensor", "off-gas", 0) == Some(("good".into(), Some(2.0)))
    });
    assert!(clean.is_some(), "{}", gw.status());
    assert_eq!(site_level(&gw), "normal");

    // Off-gas alone: prepare, and the reason says which rule, signal, value and threshold.
    publish(r#"{"voc_ppm": 45.0, "smoke": 0}"#);
    let prepared = wait_until(Duration::from_secs(5), || site_level(&gw) == "prepare");
    assert!(prepared.is_some(), "{}", gw.status());
    let status = gw.status();
    let last = status["policy"]["recent"]
        .as_array()
        .unwrap()
        .last()
        .unwrap();
    assert_eq!(last["level"], "prepare");
    assert_eq!(last["previous"], "normal");
    assert_eq!(last["reasons"][0]["rule"], "off-gas");
    assert_eq!(last["reasons"][0]["signal"], "off-gas");
    assert_eq!(last["reasons"][0]["device"], "room-sensor");
    assert_eq!(last["reasons"][0]["value"], 45.0);
    assert_eq!(last["reasons"][0]["threshold"], 20.0);

    // Smoke as well: two kinds of evidence, evacuate.
    publish(r#"{"voc_ppm": 60.0, "smoke": 1}"#);
    let evacuated = wait_until(Duration::from_secs(5), || site_level(&gw) == "evacuate");
    assert!(evacuated.is_some(), "{}", gw.status());
    let metrics = gw.get("/metrics").unwrap();
    assert!(
        metrics.contains("firebreak_level{scope=\"site\"} 3"),
        "{metrics}"
    );
    assert!(
        metrics.contains("firebreak_level{scope=\"zone\",zone=\"battery-room\"} 3"),
        "{metrics}"
    );
    let zones = &gw.status()["policy"]["zones"];
    assert_eq!(zones[0]["zone"], "battery-room");
    assert_eq!(
        zones[0]["firing"],
        serde_json::json!(["off-gas", "smoke", "fire-corroborated"])
    );

    // A garbage payload changes nothing.
    publish("{\"voc_ppm\": \"lots\"}");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(site_level(&gw), "evacuate");

    // All clear: back to normal after the (1 s) hold.
    publish(r#"{"voc_ppm": 1.0, "smoke": 0}"#);
    let cleared = wait_until(Duration::from_secs(10), || {
        publish(r#"{"voc_ppm": 1.0, "smoke": 0}"#);
        site_level(&gw) == "normal"
    });
    assert!(cleared.is_some(), "{}", gw.status());
    assert!(gw.status()["policy"]["incident"].is_null());
}

/// A live gateway's signed triggers, off a real Mosquitto, verified by the reference verifier
/// in Python (`docs/examples/verify_trigger.py`, written from docs/contract.md alone); the
/// same payloads with one byte changed are refused by it.
#[test]
fn a_python_verifier_accepts_a_live_gateways_triggers() {
    if !require_peer("mosquitto")
        || !require_peer("mosquitto_pub")
        || !require_peer("mosquitto_sub")
    {
        return;
    }
    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let key = firebreak_gateway::keys::SigningKey::generate(
        firebreak_protocols::KeyId::new("gw-py-2026").unwrap(),
    )
    .unwrap();
    key.write_pair(d).unwrap();
    std::fs::write(
        d.join("keys.json"),
        serde_json::json!([{
            "key_id": "gw-py-2026",
            "ed25519": key.public().base64(),
            "gateways": ["gw-py"],
            "sites": ["py-site"],
        }])
        .to_string(),
    )
    .unwrap();
    let (_broker, port) = mosquitto(d);
    let port_s = port.to_string();
    let mut sub = Sub::start(
        &["-h", "127.0.0.1", "-p", &port_s],
        "firebreak/v1/py-site/#",
    );
    std::fs::write(d.join("rules.toml"), FIRE_RULES).unwrap();
    let config = format!(
        "[site]\nname = \"py-site\"\ngateway = \"gw-py\"\n[[zones]]\nname = \"battery-room\"\n\
         [http]\nbind = \"{{HTTP}}\"\n[policy]\nrules_file = \"rules.toml\"\nhold_s = 1\n\
         [[brokers]]\nname = \"local\"\nurl = \"mqtt://127.0.0.1:{port}\"\n\
         [signing]\nkey_file = \"{}\"\nkey_id = \"gw-py-2026\"\n[outbox]\ndir = \"{}\"\n\
         [[mqtt_sources]]\nname = \"room-sensor\"\nzone = \"battery-room\"\n\
         broker = \"mqtt://127.0.0.1:{port}\"\ntopic = \"building/br/env\"\nfreshness_ms = 60000\n\
         [[mqtt_sources.signals]]\nsignal = \"off-gas\"\nfield = \"voc_ppm\"\n\
         [[mqtt_sources.signals]]\nsignal = \"smoke-alarm\"\nfield = \"smoke\"\n",
        d.join("gw-py-2026.key").display(),
        d.join("outbox").display()
    );
    let _gw = Gateway::start(d, &config);
    // Off-gas, then smoke: prepare, then evacuate, each a signed trigger for the site and
    // for the zone.
    let mut published = 0;
    let got = |sub: &mut Sub, n: usize| {
        sub.wait(Duration::from_secs(10), |g| {
            g.iter().filter(|m| m.1.ends_with("/triggers")).count() >= n
        })
    };
    for payload in [
        r#"{"voc_ppm": 45.0, "smoke": 0}"#,
        r#"{"voc_ppm": 60.0, "smoke": 1}"#,
    ] {
        let ok = Command::new("mosquitto_pub")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &port_s,
                "-t",
                "building/br/env",
                "-m",
                payload,
            ])
            .status()
            .unwrap()
            .success();
        assert!(ok);
        published += 2;
        assert!(got(&mut sub, published), "triggers: {:?}", sub.got);
    }
    // Every message of the site, as `mosquitto_sub -v` prints it: triggers, their states and
    // the gateway's signed status.
    assert!(
        sub.got.iter().any(|m| m.1.ends_with("/status")),
        "{:?}",
        sub.got
    );
    let payloads: Vec<String> = sub.got.iter().map(|m| format!("{} {}", m.1, m.2)).collect();
    let verify = |lines: &[String]| -> Vec<String> {
        let mut child = Command::new(&python)
            .arg(workspace().join("docs/examples/verify_trigger.py"))
            .args(["payloads", "--topics", "--site", "py-site", "--keys"])
            .arg(d.join("keys.json"))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        {
            use std::io::Write;
            let mut stdin = child.stdin.take().unwrap();
            for l in lines {
                writeln!(stdin, "{l}").unwrap();
            }
        }
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(String::from)
            .collect()
    };
    let verdicts = verify(&payloads);
    assert_eq!(verdicts.len(), payloads.len(), "{verdicts:?}");
    // Telemetry is not signed, and the verifier says it leaves it alone.
    let telemetry = payloads
        .iter()
        .filter(|p| p.contains("/telemetry/"))
        .count();
    assert_eq!(
        verdicts
            .iter()
            .filter(|v| v.starts_with("skipped telemetry"))
            .count(),
        telemetry,
        "{verdicts:#?}"
    );
    assert!(
        verdicts
            .iter()
            .all(|v| v.starts_with("accepted ") || v.starts_with("skipped telemetry")),
        "{verdicts:#?}\n{payloads:#?}"
    );
    for kind in [
        "trigger evacuate from gw-py",
        "state evacuate from gw-py",
        "status online from gw-py",
    ] {
        assert!(
            verdicts
                .iter()
                .any(|v| v.starts_with(&format!("accepted {kind}"))),
            "{kind}: {verdicts:#?}"
        );
    }
    // One byte changed after signing: refused.
    let tampered: Vec<String> = payloads
        .iter()
        .map(|p| {
            p.replacen("\"level\":\"", "\"level\":\"x", 1).replacen(
                "\"devices_total\":",
                "\"devices_total\":1",
                1,
            )
        })
        .collect();
    let refused = verify(&tampered);
    assert!(
        refused
            .iter()
            .all(|v| v.starts_with("bad-signature ") || v.starts_with("skipped telemetry")),
        "{refused:#?}"
    );
}
