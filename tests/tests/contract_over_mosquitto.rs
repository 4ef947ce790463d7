//! The controller contract over a real broker: what a controller written with nothing but
//! `mosquitto_sub` receives, decoded with `firebreak-protocols`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test code

#[path = "../../gateway/tests/common/mod.rs"]
mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use firebreak_protocols::message::{decode, encode_vec};
use firebreak_protocols::topic::{self, Topic};
use firebreak_protocols::{
    DeviceId, GatewayId, IncidentId, Level, Reason, RuleId, Signal, SiteId, Trigger, ZoneId,
};

fn trigger(site: &SiteId) -> Trigger {
    let mut t = Trigger::new(
        GatewayId::new("gw-1").unwrap(),
        7,
        IncidentId::new("gw-1-1700000000000").unwrap(),
        site.clone(),
        Some(ZoneId::new("battery-room").unwrap()),
        Level::Evacuate,
        Level::Prepare,
        1_700_000_123_456,
    )
    .unwrap();
    for (rule, signal, value, threshold) in [
        ("rack-temp-rise", Signal::RackTemperature, 3.5, 1.0),
        ("off-gas", Signal::OffGas, 120.0, 50.0),
    ] {
        t.push_reason(Reason {
            rule: RuleId::new(rule).unwrap(),
            signal: Some(signal),
            device: Some(DeviceId::new("node-1").unwrap()),
            channel: 0,
            value,
            threshold,
        })
        .unwrap();
    }
    t.seconds_to_power_loss = Some(420);
    t
}

fn publish(port: u16, topic: &str, payload: &[u8], retain: bool) {
    let mut args = vec![
        "-h".to_string(),
        "127.0.0.1".into(),
        "-p".into(),
        port.to_string(),
        "-q".into(),
        "1".into(),
        "-t".into(),
        topic.into(),
        "-s".into(),
    ];
    if retain {
        args.push("-r".into());
    }
    let mut child = Command::new("mosquitto_pub")
        .args(&args)
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), payload).unwrap();
    assert!(child.wait().unwrap().success());
}

/// `mosquitto_sub` for `count` messages on `filter`, started and subscribed.
struct Subscriber {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
}

/// Starts `mosquitto_sub` and returns once the broker acknowledged the subscription
/// (`-d` prints the SUBACK), so a publish that follows cannot overtake it.
fn subscribe(port: u16, filter: &str, count: usize) -> Subscriber {
    // stdbuf: mosquitto_sub's debug lines are block-buffered when stdout is a pipe.
    let mut child = Command::new("stdbuf")
        .args([
            "-oL",
            "mosquitto_sub",
            "-d",
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-q",
            "1",
            "-t",
            filter,
            "-v",
            "-C",
            &count.to_string(),
            "-W",
            "10",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) if line.contains("received SUBACK") => break,
            Ok(_) => {}
            Err(e) => panic!("mosquitto_sub did not subscribe to {filter}: {e}"),
        }
    }
    Subscriber { child, lines }
}

/// The messages the subscriber printed, each as (topic, payload), debug lines left out.
fn received(mut sub: Subscriber) -> Vec<(String, String)> {
    assert!(sub.child.wait().unwrap().success(), "mosquitto_sub failed");
    sub.lines
        .iter()
        .filter(|l| !l.starts_with("Client ") && !l.starts_with("Subscribed ("))
        .filter_map(|l| {
            l.split_once(' ')
                .map(|(t, p)| (t.to_string(), p.to_string()))
        })
        .collect()
}

fn peers() -> bool {
    require_peer("mosquitto") && require_peer("mosquitto_pub") && require_peer("mosquitto_sub")
}

#[test]
fn a_trigger_reaches_a_foreign_subscriber_intact() {
    if !peers() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (_broker, port) = mosquitto(dir.path());
    let site = SiteId::new("paris-1").unwrap();
    let sub = subscribe(port, topic::ALL_TRIGGERS_FILTER, 1);
    let sent = trigger(&site);
    let payload = encode_vec(&sent).unwrap();
    publish(port, &topic::triggers(&site), &payload, false);
    let got = received(sub);
    assert_eq!(got.len(), 1, "{got:?}");
    let (topic_name, body) = &got[0];
    assert_eq!(Topic::parse(topic_name), Ok(Topic::Triggers(site)));
    let back: Trigger = decode(body.as_bytes()).unwrap();
    assert_eq!(back, sent);
    assert_eq!(back.dedup_key(), (&GatewayId::new("gw-1").unwrap(), 7));
}

#[test]
fn a_late_controller_reads_the_retained_state() {
    if !peers() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (_broker, port) = mosquitto(dir.path());
    let site = SiteId::new("paris-1").unwrap();
    let state = trigger(&site);
    publish(
        port,
        &topic::site_state(&site),
        &encode_vec(&state).unwrap(),
        true,
    );
    // Subscribed after the fact: the broker hands over the retained state at once.
    let got = received(subscribe(port, &topic::site_filter(&site), 1));
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(Topic::parse(&got[0].0), Ok(Topic::SiteState(site)));
    assert_eq!(
        decode::<Trigger>(got[0].1.as_bytes()).unwrap().level,
        Level::Evacuate
    );
}

#[test]
fn garbage_on_the_trigger_topic_is_refused_not_a_panic() {
    if !peers() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (_broker, port) = mosquitto(dir.path());
    let site = SiteId::new("paris-1").unwrap();
    let sub = subscribe(port, &topic::triggers(&site), 2);
    publish(
        port,
        &topic::triggers(&site),
        b"{\"schema\":\"firebreak.trigger/1\",\"level\":\"panic\"}",
        false,
    );
    publish(
        port,
        &topic::triggers(&site),
        "\u{7f}évacuer".as_bytes(),
        false,
    );
    let got = received(sub);
    assert_eq!(got.len(), 2, "{got:?}");
    for (_, body) in got {
        let e = decode::<Trigger>(body.as_bytes()).unwrap_err();
        assert!(!e.to_string().is_empty());
    }
}
