//! MQTT sources against a real Mosquitto: over TLS with a password, with a client
//! certificate, refused credentials and an untrusted CA (logged, the source `comm-lost`), and
//! messages too large to read — one over `max_payload` is counted while the next is read, one
//! over even the packet limit never makes the source spin. The gateway runs as a process;
//! its `/status` and its log are what is checked.

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
use std::time::Duration;

use common::*;
use pki::{Pki, passwd, secret_file};

const PASSWORD: &str = "s3cret-Passw0rd";

fn peers() -> bool {
    require_peer("mosquitto") && require_peer("mosquitto_pub") && require_peer("mosquitto_passwd")
}

fn site(sources: &str) -> String {
    format!(
        "[site]\nname = \"test\"\ngateway = \"gw-test\"\n[[zones]]\nname = \"room\"\n[http]\nbind = \"{{HTTP}}\"\n{sources}"
    )
}

/// A source named `name` on `broker` with the connection keys `keys`, reading `/t` of the
/// messages under `building/{name}/`.
fn source(name: &str, broker: &str, keys: &str) -> String {
    format!(
        "[[mqtt_sources]]\nname = \"{name}\"\nzone = \"room\"\nbroker = \"{broker}\"\ntopic = \"building/{name}/#\"\n{keys}\
         [[mqtt_sources.signals]]\nsignal = \"room-temperature\"\nfield = \"t\"\n"
    )
}

/// A temporary directory with certificates, and Mosquitto over TLS with passwords (user
/// `gw-1`) asking for a client certificate when `require_certificate`.
struct TlsBroker {
    dir: tempfile::TempDir,
    pki: Pki,
    port: u16,
    _broker: Peer,
}

impl TlsBroker {
    fn start(require_certificate: bool) -> TlsBroker {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::new(&dir.path().join("pki"));
        let passwd = passwd(dir.path(), "gw-1", PASSWORD);
        let (broker, port) = mosquitto_on_a_free_port(
            dir.path(),
            &format!(
                "allow_anonymous false\npersistence false\npassword_file {}\n{}require_certificate {require_certificate}\n",
                passwd.display(),
                pki.mosquitto_tls()
            ),
        );
        TlsBroker {
            dir,
            pki,
            port,
            _broker: broker,
        }
    }
}

/// Publishes to the TLS broker as `gw-1`, with the client certificate.
fn publish_tls(port: u16, pki: &Pki, topic: &str, payload: &str) {
    mosquitto_pub_with(
        port,
        &[
            "--cafile",
            &pki.ca_file,
            "--cert",
            &pki.client_cert,
            "--key",
            &pki.client_key,
            "-u",
            "gw-1",
            "-P",
            PASSWORD,
        ],
        topic,
        payload.as_bytes(),
        false,
    );
}

/// Publishes until the source's temperature reads `value` (it subscribes shortly after the
/// gateway starts).
fn until_read(gw: &Gateway, device: &str, mut publish: impl FnMut(&str)) {
    let read = wait_until(Duration::from_secs(15), || {
        publish(r#"{"t": 23.5}"#);
        gw.signal(device, "room-temperature", 0) == Some(("good".into(), Some(23.5)))
    });
    assert!(
        read.is_some(),
        "{device} read nothing: {}",
        gw.device(device)
    );
}

fn log_text(log: &Path) -> String {
    std::fs::read_to_string(log).unwrap_or_default()
}

#[test]
fn a_source_over_tls_with_a_password_reads_samples() {
    if !peers() {
        return;
    }
    let tls = TlsBroker::start(false);
    let (d, pki, port) = (tls.dir.path(), &tls.pki, tls.port);
    let password_file = secret_file(d, "bms.password", &format!("{PASSWORD}\n"));
    let keys = format!(
        "ca_file = \"{}\"\nusername = \"gw-1\"\npassword_file = \"{password_file}\"\n",
        pki.ca_file
    );
    let log = d.join("gateway.log");
    let gw = Gateway::start_logging(
        d,
        &site(&source("bms", &format!("mqtts://127.0.0.1:{port}"), &keys)),
        Some(&log),
    );
    until_read(&gw, "bms", |p| {
        publish_tls(port, pki, "building/bms/env", p)
    });
    let device = gw.device("bms");
    assert_eq!(device["comm_lost"], false, "{device}");
    assert_eq!(device["errors"], serde_json::json!({}), "{device}");
    assert!(!log_text(&log).contains(PASSWORD));
    assert!(!gw.get("/status").unwrap().contains(PASSWORD));
}

#[test]
fn a_source_with_a_client_certificate_reads_samples() {
    if !peers() {
        return;
    }
    let tls = TlsBroker::start(true);
    let (d, pki, port) = (tls.dir.path(), &tls.pki, tls.port);
    let broker = format!("mqtts://localhost:{port}");
    let keys = format!(
        "ca_file = \"{}\"\nclient_cert = \"{}\"\nclient_key = \"{}\"\nusername = \"gw-1\"\npassword_env = \"BMS_PW\"\n",
        pki.ca_file, pki.client_cert, pki.client_key
    );
    // The same settings without the certificate: the broker asks for one, so it is refused.
    let no_cert = format!(
        "ca_file = \"{}\"\nusername = \"gw-1\"\npassword_env = \"BMS_PW\"\n",
        pki.ca_file
    );
    let log = d.join("gateway.log");
    let config = site(&format!(
        "{}{}",
        source("bms", &broker, &keys),
        source("no-cert", &broker, &no_cert)
    ));
    let gw = Gateway::start_with_env(d, &config, Some(&log), &[("BMS_PW", PASSWORD)]);
    until_read(&gw, "bms", |p| {
        publish_tls(port, pki, "building/bms/env", p)
    });
    let lost = wait_until(Duration::from_secs(10), || {
        let d = gw.device("no-cert");
        d["comm_lost"] == true && d["last_error"].as_str().unwrap_or("").starts_with("TLS: ")
    });
    // TLS 1.3: the broker's refusal comes as an alert after the handshake.
    assert!(lost.is_some(), "{}", gw.device("no-cert"));
    publish_tls(port, pki, "building/no-cert/env", r#"{"t": 23.5}"#);
    assert_eq!(gw.signal("no-cert", "room-temperature", 0), None);
    let text = log_text(&log);
    assert!(
        text.lines().any(|l| l.contains("ERROR")
            && l.contains("mqtt source cannot connect")
            && l.contains("device=no-cert")
            && l.contains("CertificateRequired")),
        "{text}"
    );
}

#[test]
fn refused_credentials_and_an_untrusted_ca_are_logged_and_the_source_is_comm_lost() {
    if !peers() {
        return;
    }
    let tls = TlsBroker::start(false);
    let (d, pki, port) = (tls.dir.path(), &tls.pki, tls.port);
    let stranger = Pki::new(&d.join("stranger"));
    let broker = format!("mqtts://127.0.0.1:{port}");
    let good = secret_file(d, "good.password", &format!("{PASSWORD}\n"));
    let wrong = secret_file(d, "wrong.password", "not-it\n");
    let loose = d.join("loose.password");
    std::fs::write(&loose, format!("{PASSWORD}\n")).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&loose, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let keys = |ca: &str, password_file: &str| {
        format!("ca_file = \"{ca}\"\nusername = \"gw-1\"\npassword_file = \"{password_file}\"\n")
    };
    let sources = [
        source("good", &broker, &keys(&pki.ca_file, &good)),
        source("wrong-pw", &broker, &keys(&pki.ca_file, &wrong)),
        source("wrong-ca", &broker, &keys(&stranger.ca_file, &good)),
        source(
            "loose-pw",
            &broker,
            &keys(&pki.ca_file, &loose.display().to_string()),
        ),
    ];
    let log = d.join("gateway.log");
    let gw = Gateway::start_logging(d, &site(&sources.concat()), Some(&log));
    // The source that can connect is not held up by the others.
    until_read(&gw, "good", |p| {
        publish_tls(port, pki, "building/good/env", p)
    });
    let expected = [
        ("wrong-pw", "the broker refused the connection"),
        ("wrong-ca", "TLS: "),
        (
            "loose-pw",
            "lets other users read this secret; make it 0600 (chmod 600",
        ),
    ];
    for (name, problem) in expected {
        let seen = wait_until(Duration::from_secs(10), || {
            let d = gw.device(name);
            d["comm_lost"] == true && d["last_error"].as_str().unwrap_or("").contains(problem)
        });
        assert!(seen.is_some(), "{name}: {}", gw.device(name));
        publish_tls(port, pki, &format!("building/{name}/env"), r#"{"t": 23.5}"#);
        assert_eq!(gw.signal(name, "room-temperature", 0), None, "{name}");
    }
    let logged = wait_until(Duration::from_secs(5), || {
        let text = log_text(&log);
        expected.iter().all(|(name, problem)| {
            text.lines().any(|l| {
                l.contains("ERROR") && l.contains(&format!("device={name}")) && l.contains(problem)
            })
        })
    });
    let text = log_text(&log);
    assert!(logged.is_some(), "{text}");
    // Each problem is logged once, not at every attempt.
    let refusals = text
        .lines()
        .filter(|l| l.contains("device=wrong-pw") && l.contains("refused"))
        .count();
    assert_eq!(refusals, 1, "{text}");
    assert!(
        !text.contains(PASSWORD) && !text.contains("not-it"),
        "{text}"
    );
    assert!(!gw.get("/status").unwrap().contains("not-it"));
}

#[test]
fn a_payload_over_max_payload_is_counted_and_the_next_one_read() {
    if !peers() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (_broker, port) = mosquitto(d);
    // Retained before the gateway starts: it arrives first, at the subscribe, as after every
    // reconnect — the case that used to make the source reconnect forever.
    let mut big = br#"{"t": 99.0, "pad": ""#.to_vec();
    big.resize(100 * 1024, b'x');
    big.extend_from_slice(br#""}"#);
    mosquitto_pub(port, "building/bms/big", &big, true);
    let log = d.join("gateway.log");
    let gw = Gateway::start_logging(
        d,
        &site(&source("bms", &format!("mqtt://127.0.0.1:{port}"), "")),
        Some(&log),
    );
    until_read(&gw, "bms", |p| {
        mosquitto_pub(port, "building/bms/env", p.as_bytes(), false)
    });
    let device = gw.device("bms");
    assert_eq!(device["errors"]["malformed"], 1, "{device}");
    assert_eq!(
        device["last_error"],
        format!(
            "payload is {} bytes, more than max_payload (65536)",
            big.len()
        )
    );
    assert!(
        log_text(&log)
            .lines()
            .any(|l| l.contains("malformed payload")
                && l.contains("topic=building/bms/big")
                && l.contains(&format!("bytes={}", big.len()))),
        "{}",
        log_text(&log)
    );
    // The connection never dropped for it, and the next messages are read.
    std::thread::sleep(Duration::from_secs(2));
    mosquitto_pub(port, "building/bms/env", br#"{"t": 24.0}"#, false);
    let read = wait_until(Duration::from_secs(5), || {
        gw.signal("bms", "room-temperature", 0) == Some(("good".into(), Some(24.0)))
    });
    assert!(read.is_some(), "{}", gw.status());
    let device = gw.device("bms");
    assert_eq!(device["errors"].get("link"), None, "{device}");
    assert_eq!(device["errors"]["malformed"], 1, "{device}");
    assert_eq!(device["comm_lost"], false, "{device}");
}

#[test]
fn a_message_over_the_packet_limit_is_logged_once_and_never_makes_the_source_spin() {
    if !peers() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (_broker, port) = mosquitto(d);
    let size = firebreak_gateway::acquire::mqtt::RECEIVE_LIMIT + 1024;
    mosquitto_pub(port, "building/bms/huge", &vec![b'x'; size], true);
    let log = d.join("gateway.log");
    let gw = Gateway::start_logging(
        d,
        &site(&source("bms", &format!("mqtt://127.0.0.1:{port}"), "")),
        Some(&log),
    );
    let counted = wait_until(Duration::from_secs(10), || {
        gw.device("bms")["errors"]["malformed"].as_u64() >= Some(1)
    });
    assert!(counted.is_some(), "{}", gw.device("bms"));
    std::thread::sleep(Duration::from_secs(6));
    let device = gw.device("bms");
    // Back-off that grows (0.4, 0.8, 1.6, 3.2 s …): a handful of attempts in 6 s, where a
    // reconnect at each CONNACK would make dozens.
    let attempts = device["errors"]["link"].as_u64().unwrap_or(0);
    assert!((1..=6).contains(&attempts), "{device}");
    assert_eq!(device["comm_lost"], true, "{device}");
    let last = device["last_error"].as_str().unwrap_or("");
    assert!(
        last.contains("a packet of ") && last.contains("mosquitto_pub -r -n -t"),
        "{device}"
    );
    let text = log_text(&log);
    let errors: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("mqtt message too large to receive"))
        .collect();
    assert_eq!(errors.len(), 1, "{text}");
    assert!(
        errors[0].contains("device=bms") && errors[0].contains("size="),
        "{text}"
    );

    // Cleared on the broker, as the log says: the source reads again.
    mosquitto_pub(port, "building/bms/huge", b"", true);
    until_read(&gw, "bms", |p| {
        mosquitto_pub(port, "building/bms/env", p.as_bytes(), false)
    });
}
