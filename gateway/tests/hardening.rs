//! Hostile peers: a Modbus device that answers garbage as fast as it is asked, one that
//! answers every request after the timeout, an MQTT source flooding 10,000 messages, and a
//! broker that accepts the connection and never acknowledges it. The gateway keeps serving
//! the other devices, stays within its memory bound and reports each condition in /metrics.
//!
//! The misbehaving peers are small fixtures written here: no real device misbehaves on cue.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test code

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

/// The gateway must stay under this resident size whatever its peers do (issue 8's bound).
const RSS_LIMIT_KIB: u64 = 64 * 1024;

fn rss_kib(gw: &Gateway) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", gw.peer.child.id())).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

/// Serves `handle` on each connection of a loopback listener, in threads that end with the
/// connection (the listener thread ends with the test process).
fn serve(handle: fn(std::net::TcpStream)) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming().take(10_000).flatten() {
            std::thread::spawn(move || handle(conn));
        }
    });
    port
}

/// Answers every request with 1-300 random bytes at once.
fn garbage(mut s: std::net::TcpStream) {
    let mut buf = [0u8; 512];
    for _ in 0..100_000 {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let junk: Vec<u8> = (0..fastrand::usize(1..300))
            .map(|_| fastrand::u8(..))
            .collect();
        if s.write_all(&junk).is_err() {
            return;
        }
    }
}

/// Answers every read correctly, but 400 ms late.
fn late(mut s: std::net::TcpStream) {
    let mut req = [0u8; 12];
    for _ in 0..10_000 {
        if s.read_exact(&mut req).is_err() {
            return;
        }
        std::thread::sleep(Duration::from_millis(400));
        let (fc, count) = (req[7], u16::from_be_bytes([req[10], req[11]]));
        let data: Vec<u8> = if fc <= 2 {
            vec![0; usize::from(count).div_ceil(8)]
        } else {
            vec![0; usize::from(count) * 2]
        };
        let len = (3 + data.len()) as u16;
        let mut resp = vec![req[0], req[1], 0, 0];
        resp.extend(len.to_be_bytes());
        resp.extend([req[6], fc, data.len() as u8]);
        resp.extend(data);
        if s.write_all(&resp).is_err() {
            return;
        }
    }
}

/// Accepts, reads, never writes: an MQTT broker that never sends CONNACK.
fn mute(mut s: std::net::TcpStream) {
    let mut buf = [0u8; 512];
    while matches!(s.read(&mut buf), Ok(n) if n > 0) {}
}

fn config(devices: &str) -> String {
    format!(
        "[site]\nname = \"hard\"\ngateway = \"gw-hard\"\n[[zones]]\nname = \"room\"\n[http]\nbind = \"{{HTTP}}\"\n{devices}"
    )
}

fn tcp(name: &str, port: u16, extra: &str) -> String {
    format!(
        "[[devices]]\nname = \"{name}\"\nzone = \"room\"\ntransport = \"tcp\"\naddress = \"127.0.0.1:{port}\"\nunit = 1\nprofile = \"generic-pdu\"\n{extra}\n"
    )
}

fn mqtt(name: &str, port: u16) -> String {
    format!(
        "[[mqtt_sources]]\nname = \"{name}\"\nzone = \"room\"\nbroker = \"mqtt://127.0.0.1:{port}\"\ntopic = \"b/{name}\"\n\
         [[mqtt_sources.signals]]\nsignal = \"room-temperature\"\nfield = \"t\"\n"
    )
}

fn publish(port: u16, topic: &str, payload: &str) {
    let ok = Command::new("mosquitto_pub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-t",
            topic,
            "-m",
            payload,
        ])
        .status()
        .unwrap()
        .success();
    assert!(ok, "mosquitto_pub");
}

/// Waits until `bms` reads `value` (publishing it again each try).
fn bms_reads(gw: &Gateway, broker: u16, value: f64) -> bool {
    wait_until(Duration::from_secs(10), || {
        publish(broker, "b/bms", &format!("{{\"t\": {value}}}"));
        gw.signal("bms", "room-temperature", 0) == Some(("good".into(), Some(value)))
    })
    .is_some()
}

fn metric(metrics: &str, prefix: &str) -> f64 {
    metrics
        .lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[test]
fn garbage_and_late_modbus_answers_do_not_starve_other_devices() {
    if !require_peer("mosquitto") || !require_peer("mosquitto_pub") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (_broker, broker) = mosquitto(dir.path());
    let garbage_port = serve(garbage);
    let late_port = serve(late);
    let devices = format!(
        "{}{}{}",
        tcp(
            "junk",
            garbage_port,
            "poll_interval_ms = 50\ntimeout_ms = 40"
        ),
        tcp(
            "slow",
            late_port,
            "poll_interval_ms = 500\ntimeout_ms = 200"
        ),
        mqtt("bms", broker)
    );
    let gw = Gateway::start(dir.path(), &config(&devices));
    assert!(bms_reads(&gw, broker, 21.5), "{}", gw.status());

    // The late device turns comm-lost on timeouts; the junk one piles up errors.
    let reported = wait_until(Duration::from_secs(15), || {
        let m = gw.get("/metrics").unwrap_or_default();
        metric(&m, "firebreak_device_up{device=\"slow\"") == 0.0
            && metric(
                &m,
                "firebreak_errors_total{device=\"slow\",kind=\"timeout\"}",
            ) >= 3.0
            && metric(&m, "firebreak_device_up{device=\"junk\"") == 0.0
            && m.lines()
                .filter(|l| l.starts_with("firebreak_errors_total{device=\"junk\""))
                .map(|l| metric(l, "firebreak"))
                .sum::<f64>()
                >= 3.0
    });
    let m = gw.get("/metrics").unwrap();
    assert!(reported.is_some(), "{m}");
    // A late answer is a timeout, never mistaken for the answer to a retry.
    assert!(
        !m.contains("firebreak_errors_total{device=\"slow\",kind=\"transport\"}"),
        "{m}"
    );
    // A junk answer is never a value.
    for s in gw.status()["signals"].as_array().unwrap() {
        if s["device"] == "junk" {
            assert_ne!(s["quality"], "good", "{s}");
        }
    }
    // Meanwhile the other device is served as ever.
    assert!(bms_reads(&gw, broker, 22.5), "{}", gw.status());
    let rss = rss_kib(&gw);
    eprintln!("gateway RSS with a garbage flood: {rss} KiB");
    assert!(rss < RSS_LIMIT_KIB, "{rss} KiB");
}

#[test]
fn an_mqtt_flood_of_ten_thousand_messages_is_absorbed() {
    if !require_peer("mosquitto") || !require_peer("mosquitto_pub") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (_broker, broker) = mosquitto(dir.path());
    let devices = format!("{}{}", mqtt("bms", broker), mqtt("flood", broker));
    let gw = Gateway::start(dir.path(), &config(&devices));
    assert!(bms_reads(&gw, broker, 20.0), "{}", gw.status());

    // 10,000 messages as fast as one mosquitto_pub can send them, garbage every tenth.
    let mut pub_ = Command::new("mosquitto_pub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &broker.to_string(),
            "-t",
            "b/flood",
            "-l",
        ])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    {
        let mut stdin = pub_.stdin.take().unwrap();
        for i in 0..10_000u32 {
            let line = if i % 10 == 9 {
                "not json\n".to_string()
            } else {
                format!("{{\"t\": {}}}\n", 20 + i % 10)
            };
            stdin.write_all(line.as_bytes()).unwrap();
        }
        stdin.write_all(b"{\"t\": 33}\n").unwrap();
    }
    assert!(pub_.wait().unwrap().success());

    // The last value lands, the garbage is counted, the other source is still served.
    let settled = wait_until(Duration::from_secs(20), || {
        gw.signal("flood", "room-temperature", 0) == Some(("good".into(), Some(33.0)))
    });
    assert!(settled.is_some(), "{}", gw.device("flood"));
    let m = gw.get("/metrics").unwrap();
    let polls = metric(&m, "firebreak_polls_total{device=\"flood\"}");
    let malformed = metric(
        &m,
        "firebreak_errors_total{device=\"flood\",kind=\"malformed\"}",
    );
    eprintln!("flood: {polls} messages taken, {malformed} malformed");
    assert!(malformed >= 1.0, "{m}");
    assert!(polls + malformed >= 1000.0, "{m}");
    assert!(bms_reads(&gw, broker, 24.0), "{}", gw.status());
    let rss = rss_kib(&gw);
    eprintln!("gateway RSS after the flood: {rss} KiB");
    assert!(rss < RSS_LIMIT_KIB, "{rss} KiB");
}

#[test]
fn a_broker_that_never_acknowledges_is_reported_not_waited_on() {
    if !require_peer("mosquitto") || !require_peer("mosquitto_pub") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (_broker, broker) = mosquitto(dir.path());
    let mute_port = serve(mute);
    let devices = format!("{}{}", mqtt("bms", broker), mqtt("muted", mute_port));
    let gw = Gateway::start(dir.path(), &config(&devices));
    assert!(bms_reads(&gw, broker, 19.0), "{}", gw.status());
    let reported = wait_until(Duration::from_secs(30), || {
        let m = gw.get("/metrics").unwrap_or_default();
        metric(&m, "firebreak_errors_total{device=\"muted\",kind=\"link\"}") >= 1.0
    });
    assert!(reported.is_some(), "{}", gw.get("/metrics").unwrap());
    assert!(bms_reads(&gw, broker, 19.5), "{}", gw.status());
}
