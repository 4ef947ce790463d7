//! The documented Mosquitto ACL (`docs/examples/mosquitto.acl`) on a real Mosquitto with
//! passwords: a site's gateway publishes under `firebreak/v1/{site}/#` and a controller reads
//! it; the controller's publish, and a gateway of another site speaking for this one, never
//! reach the controllers.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test code

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

const PASSWORD: &str = "acl-test-Passw0rd";

/// `mosquitto_pub` as `user` (MQTT 5, QoS 1); its exit status and stderr.
fn publish_as(port: u16, user: &str, topic: &str, payload: &str) -> (bool, String) {
    let out = Command::new("mosquitto_pub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-V",
            "5",
            "-q",
            "1",
        ])
        .args(["-u", user, "-P", PASSWORD, "-t", topic, "-m", payload])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn only_a_sites_gateways_publish_and_controllers_only_read() {
    if !require_peer("mosquitto")
        || !require_peer("mosquitto_pub")
        || !require_peer("mosquitto_passwd")
    {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let passwd = d.join("passwd");
    for (i, user) in ["gw-paris-1a", "gw-lyon-2a", "ctl-site-b"]
        .iter()
        .enumerate()
    {
        let mut c = Command::new("mosquitto_passwd");
        c.arg("-b");
        if i == 0 {
            c.arg("-c");
        }
        assert!(
            c.arg(&passwd)
                .args([user, PASSWORD])
                .status()
                .unwrap()
                .success()
        );
    }
    let acl = workspace().join("docs/examples/mosquitto.acl");
    let extra = format!(
        "allow_anonymous false\npassword_file {}\nacl_file {}\npersistence false\n",
        passwd.display(),
        acl.display()
    );
    let (_broker, port) = (0..5)
        .find_map(|_| mosquitto_with(d, free_port(), &extra))
        .expect("mosquitto with the ACL");
    let port_s = port.to_string();
    let controller = [
        "-h",
        "127.0.0.1",
        "-p",
        &port_s,
        "-u",
        "ctl-site-b",
        "-P",
        PASSWORD,
        "-V",
        "5",
    ];
    let mut sub = Sub::start(&controller, "firebreak/v1/paris-1/#");

    // The controller tries to forge a trigger and a retained state; gw-lyon-2a tries to speak
    // for paris-1. Then paris-1's own gateway publishes.
    let (ok, err) = publish_as(
        port,
        "ctl-site-b",
        "firebreak/v1/paris-1/triggers",
        "forged",
    );
    assert!(
        !ok || err.to_lowercase().contains("not authorized"),
        "the broker took the controller's publish: {err}"
    );
    publish_as(
        port,
        "ctl-site-b",
        "firebreak/v1/paris-1/state",
        "forged-state",
    );
    publish_as(
        port,
        "gw-lyon-2a",
        "firebreak/v1/paris-1/triggers",
        "other-site",
    );
    let (ok, err) = publish_as(
        port,
        "gw-paris-1a",
        "firebreak/v1/paris-1/triggers",
        "genuine",
    );
    assert!(ok, "{err}");

    assert!(
        sub.wait(Duration::from_secs(10), |g| g
            .iter()
            .any(|m| m.2 == "genuine")),
        "the gateway's trigger did not arrive: {:?}",
        sub.got
    );
    // Anything else would have come before it (one broker, in order); wait a little more.
    sub.wait(Duration::from_millis(500), |_| false);
    let payloads: Vec<&str> = sub.got.iter().map(|m| m.2.as_str()).collect();
    assert_eq!(payloads, ["genuine"], "only the site's gateway got through");

    // The gateway of lyon-2 still speaks for its own site.
    let mut lyon = Sub::start(&controller, "firebreak/v1/lyon-2/#");
    assert!(publish_as(port, "gw-lyon-2a", "firebreak/v1/lyon-2/triggers", "lyon").0);
    assert!(lyon.wait(Duration::from_secs(10), |g| g.iter().any(|m| m.2 == "lyon")));
}
