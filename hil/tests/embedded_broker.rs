//! The embedded broker speaks MQTT to clients nobody here wrote: mosquitto_pub and _sub,
//! including the retained messages the controller contract relies on.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::process::Command;

use firebreak_hil::broker::EmbeddedBroker;

fn have(program: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found && std::env::var_os("FIREBREAK_REQUIRE_PEERS").is_some() {
        panic!("{program} is missing: run scripts/test.sh");
    }
    found
}

#[test]
fn mosquitto_clients_exchange_retained_messages_through_it() {
    if !have("mosquitto_pub") || !have("mosquitto_sub") {
        return;
    }
    let broker = EmbeddedBroker::start().unwrap();
    let port = broker.addr().port().to_string();
    let ok = Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &port, "-q", "1", "-r"])
        .args([
            "-t",
            "firebreak/v1/demo/state",
            "-m",
            "{\"level\":\"watch\"}",
        ])
        .status()
        .unwrap()
        .success();
    assert!(ok);
    // A late subscriber gets the retained state.
    let out = Command::new("mosquitto_sub")
        .args(["-h", "127.0.0.1", "-p", &port, "-q", "1", "-v"])
        .args(["-t", "firebreak/v1/demo/#", "-C", "1", "-W", "10"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8(out.stdout).unwrap().trim(),
        "firebreak/v1/demo/state {\"level\":\"watch\"}"
    );
    assert!(broker.url().starts_with("mqtt://127.0.0.1:"));
}
