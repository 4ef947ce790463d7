//! Two gateway processes watching one site (A/B: each its own id, key, outbox and HTTP port,
//! both reading the same building sensor over a real Mosquitto), and one `firebreak watch`
//! trusting both through a trust file: the controller acts on the merged level — raised once
//! when the first gateway raises it, lowered once when the last one lowers it — marks a killed
//! gateway stale, and reports `site-silent-during-alarm` to `--exec` when both are gone while
//! the site is at `prepare`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test code

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use firebreak_gateway::keys::SigningKey;
use firebreak_protocols::KeyId;

fn gateway_config(d: &Path, id: &str, port: u16) -> String {
    format!(
        "[site]\nname = \"paris-1\"\ngateway = \"{id}\"\n[[zones]]\nname = \"battery-room\"\n\
         [http]\nbind = \"{{HTTP}}\"\n[policy]\nrules_file = \"rules.toml\"\nhold_s = 1\n\
         [[brokers]]\nname = \"local\"\nurl = \"mqtt://127.0.0.1:{port}\"\n\
         [signing]\nkey_file = \"{}\"\nkey_id = \"{id}-2026\"\n[outbox]\ndir = \"{}\"\n\
         [[mqtt_sources]]\nname = \"room-sensor\"\nzone = \"battery-room\"\n\
         broker = \"mqtt://127.0.0.1:{port}\"\ntopic = \"building/br/env\"\nfreshness_ms = 60000\n\
         [[mqtt_sources.signals]]\nsignal = \"off-gas\"\nfield = \"voc_ppm\"\n\
         [[mqtt_sources.signals]]\nsignal = \"smoke-alarm\"\nfield = \"smoke\"\n",
        d.join(format!("{id}-2026.key")).display(),
        d.join(format!("outbox-{id}")).display()
    )
}

fn count(lines: &[String], prefix: &str) -> usize {
    lines.iter().filter(|l| l.starts_with(prefix)).count()
}

#[test]
fn a_controller_merges_two_gateways_and_reports_the_site_silent_during_an_alarm() {
    if !require_peer("mosquitto") || !require_peer("mosquitto_pub") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for id in ["gw-a", "gw-b"] {
        SigningKey::generate(KeyId::new(&format!("{id}-2026")).unwrap())
            .unwrap()
            .write_pair(d)
            .unwrap();
    }
    std::fs::write(
        d.join("trust.toml"),
        "schema = \"firebreak.trust/1\"\n\
         [[keys]]\nkey_file = \"gw-a-2026.pub\"\ngateways = [\"gw-a\"]\nsites = [\"paris-1\"]\n\
         [[keys]]\nkey_file = \"gw-b-2026.pub\"\ngateways = [\"gw-b\"]\nsites = [\"paris-1\"]\n",
    )
    .unwrap();
    std::fs::write(d.join("rules.toml"), FIRE_RULES).unwrap();
    let (_broker, port) = mosquitto(d);
    let publish = |payload: &str| mosquitto_pub(port, "building/br/env", payload.as_bytes(), false);
    let exec_log = d.join("exec.log");
    let args: Vec<String> = vec![
        "--broker".into(),
        format!("mqtt://127.0.0.1:{port}"),
        "--site".into(),
        "paris-1".into(),
        "--trust".into(),
        d.join("trust.toml").display().to_string(),
        "--exec".into(),
        "echo \"$FIREBREAK_EVENT $FIREBREAK_LEVEL zone=$FIREBREAK_ZONE gw=$FIREBREAK_GATEWAY\" >> \"$EXEC_LOG\"".into(),
    ];
    let mut watch = Watch::start_with_status(&args, 1, &[("EXEC_LOG", &exec_log)]);
    let gw_dirs = [d.join("a"), d.join("b")];
    let mut gateways: Vec<Gateway> = ["gw-a", "gw-b"]
        .iter()
        .zip(&gw_dirs)
        .map(|(id, gd)| {
            std::fs::create_dir_all(gd).unwrap();
            std::fs::copy(d.join("rules.toml"), gd.join("rules.toml")).unwrap();
            Gateway::start(gd, &gateway_config(d, id, port))
        })
        .collect();
    watch.wait_for(Duration::from_secs(10), |l| {
        count(l, "STATUS gateway gw-a ONLINE") == 1 && count(l, "STATUS gateway gw-b ONLINE") == 1
    });

    // Off-gas: both gateways raise the site and the zone to prepare; the merged level rises
    // once per scope, on the first of them.
    publish(r#"{"voc_ppm": 45.0, "smoke": 0}"#);
    let lines = watch.wait_for(Duration::from_secs(10), |l| {
        count(l, "ACCEPTED PREPARE (was normal) site paris-1") == 4
    });
    assert_eq!(
        count(&lines, "LEVEL PREPARE (was normal) site paris-1 |"),
        1,
        "{lines:#?}"
    );
    assert_eq!(
        count(
            &lines,
            "LEVEL PREPARE (was normal) site paris-1 zone battery-room |"
        ),
        1,
        "{lines:#?}"
    );
    // Clean air: both lower after their hold; the merged level comes down once, when the
    // last one lowers.
    publish(r#"{"voc_ppm": 1.0, "smoke": 0}"#);
    let lines = watch.wait_for(Duration::from_secs(15), |l| {
        count(l, "ACCEPTED NORMAL (was prepare) site paris-1") == 4
            && count(l, "LEVEL NORMAL (was prepare) site paris-1") == 2
    });
    let lowered: Vec<&String> = lines
        .iter()
        .filter(|l| l.starts_with("LEVEL NORMAL (was prepare) site paris-1"))
        .collect();
    assert_eq!(lowered.len(), 2, "{lines:#?}");
    for l in &lowered {
        // When it came down, both gateways were at normal.
        assert!(l.contains("gw-a normal, gw-b normal"), "{l}\n{lines:#?}");
    }
    // The first gateway's lowering did not lower the merged level: the LEVEL line comes
    // after both gateways' lowering triggers of that scope.
    let site_lowering: Vec<usize> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| {
            l.starts_with("ACCEPTED NORMAL (was prepare) site paris-1 |")
                || l.starts_with("LEVEL NORMAL (was prepare) site paris-1 |")
        })
        .map(|(i, _)| i)
        .collect();
    assert_eq!(site_lowering.len(), 3, "{lines:#?}");
    assert!(lines[site_lowering[2]].starts_with("LEVEL"), "{lines:#?}");

    // Off-gas again, then both gateways die during the alarm.
    publish(r#"{"voc_ppm": 45.0, "smoke": 0}"#);
    watch.wait_for(Duration::from_secs(10), |l| {
        count(l, "LEVEL PREPARE (was normal) site paris-1 |") == 2
    });
    gateways[0].peer.kill();
    let lines = watch.wait_for(Duration::from_secs(20), |l| {
        count(l, "STALE gateway gw-a:") == 1
    });
    assert_eq!(count(&lines, "SITE-SILENT-DURING-ALARM"), 0, "{lines:#?}");
    gateways[1].peer.kill();
    let lines = watch.wait_for(Duration::from_secs(20), |l| {
        count(l, "SITE-SILENT-DURING-ALARM") == 1
    });
    let silent = lines
        .iter()
        .find(|l| l.starts_with("SITE-SILENT-DURING-ALARM"))
        .unwrap();
    assert!(
        silent.starts_with(
            "SITE-SILENT-DURING-ALARM site paris-1 at PREPARE: every gateway is silent (gw-a, gw-b)"
        ),
        "{silent}"
    );
    // --exec got the merged changes and the verdict, each once.
    let log = wait_until(Duration::from_secs(5), || {
        std::fs::read_to_string(&exec_log)
            .unwrap_or_default()
            .contains("site-silent-during-alarm")
    });
    assert!(log.is_some());
    let log = std::fs::read_to_string(&exec_log).unwrap();
    let log: Vec<&str> = log.lines().collect();
    assert_eq!(
        log.iter()
            .filter(|l| l.starts_with("site-silent-during-alarm prepare zone= gw=gw-a, gw-b"))
            .count(),
        1,
        "{log:#?}"
    );
    assert_eq!(
        log.iter()
            .filter(|l| l.starts_with("level prepare zone= "))
            .count(),
        2,
        "{log:#?}"
    );
    assert_eq!(
        log.iter()
            .filter(|l| l.starts_with("level normal zone=battery-room "))
            .count(),
        1,
        "{log:#?}"
    );
}
