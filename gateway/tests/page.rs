//! The technician's page (`/`), in a real browser: a gateway fed a fire over a real Mosquitto
//! broker, the page loaded in headless Chromium (Debian's `chromium`), and the DOM its script
//! drew read back with `--dump-dom` — the zone must turn `prepare`, then `evacuate`, on screen,
//! with its reasons and their values. Also `/status`'s filters and the headers every answer
//! carries.
//!
//! `FIREBREAK_SCREENSHOT=PATH` also writes the page during the fire to PATH (how
//! `docs/console-during-fire.png` is made).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test code

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use common::browser::{chromium, dom};
use common::*;

/// `METHOD path` on the gateway: the status code, the head and the body.
fn request(port: u16, method: &str, path: &str) -> (u16, String, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let code = head.split(' ').nth(1).unwrap().parse().unwrap();
    (code, head.to_ascii_lowercase(), body.to_string())
}

#[test]
fn status_filters_by_device_and_zone_and_says_when_a_name_is_unknown() {
    let dir = tempfile::tempdir().unwrap();
    // Two zones, a device in each; nothing answers at their addresses, which is fine here.
    let config = "[site]\nname = \"test\"\ngateway = \"gw-page\"\n\
         [[zones]]\nname = \"battery-room\"\n[[zones]]\nname = \"hall-a\"\n\
         [http]\nbind = \"{HTTP}\"\n\
         [[devices]]\nname = \"ups-1\"\nzone = \"battery-room\"\ntransport = \"tcp\"\n\
         address = \"127.0.0.1:1\"\nunit = 1\nprofile = \"generic-ups\"\n\
         [[devices]]\nname = \"pdu-1\"\nzone = \"hall-a\"\ntransport = \"tcp\"\n\
         address = \"127.0.0.1:1\"\nunit = 1\nprofile = \"generic-ups\"\n";
    let gw = Gateway::start(dir.path(), config);
    let port = gw.http_port;
    // Wait for the policy to have stepped once, so both zones are listed.
    let stepped = wait_until(Duration::from_secs(10), || {
        gw.status()["policy"]["zones"].as_array().map(Vec::len) == Some(2)
    });
    assert!(stepped.is_some(), "{}", gw.status());

    let json = |path: &str| -> serde_json::Value {
        let (code, _, body) = request(port, "GET", path);
        assert_eq!(code, 200, "{path}: {body}");
        serde_json::from_str(&body).unwrap()
    };
    let names = |v: &serde_json::Value, list: &str, key: &str| -> Vec<String> {
        v[list]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d[key].as_str().unwrap().to_string())
            .collect()
    };

    let all = json("/status");
    assert_eq!(names(&all, "devices", "device"), ["pdu-1", "ups-1"]);

    let one = json("/status?device=ups-1");
    assert_eq!(names(&one, "devices", "device"), ["ups-1"]);
    assert!(
        one["signals"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["device"] == "ups-1")
    );

    let zone = json("/status?zone=hall-a");
    assert_eq!(names(&zone, "devices", "device"), ["pdu-1"]);
    assert_eq!(names(&zone["policy"], "zones", "zone"), ["hall-a"]);
    assert_eq!(zone["policy"]["zones"][0]["level"], "normal");
    assert_eq!(zone["policy"]["zones"][0]["reasons"], serde_json::json!([]));

    let both = json("/status?zone=hall-a&device=pdu-1");
    assert_eq!(names(&both, "devices", "device"), ["pdu-1"]);

    for (path, says) in [
        ("/status?device=nope", "no device named \"nope\""),
        ("/status?zone=nope", "no zone named \"nope\""),
        (
            "/status?zone=hall-a&device=ups-1",
            "device \"ups-1\" is not in zone \"hall-a\"",
        ),
    ] {
        let (code, _, body) = request(port, "GET", path);
        assert_eq!(code, 404, "{path}");
        assert!(body.contains(says), "{path}: {body}");
    }

    // Headers: live data is never cached; every answer has the content policy and nosniff.
    let (_, head, _) = request(port, "GET", "/status");
    assert!(head.contains("cache-control: no-store"), "{head}");
    for path in ["/", "/app.js", "/app.css", "/status"] {
        let (code, head, body) = request(port, "GET", path);
        assert_eq!(code, 200, "{path}");
        assert!(
            head.contains("content-security-policy: default-src 'self'"),
            "{path}: {head}"
        );
        assert!(head.contains("x-content-type-options: nosniff"), "{head}");
        assert!(!body.is_empty());
    }
    let (_, head, page) = request(port, "GET", "/");
    assert!(head.contains("content-type: text/html"), "{head}");
    // Everything the page loads is its own: no CDN, no external font.
    assert!(!page.contains("http://") && !page.contains("https://"));
    assert!(page.contains("name=\"viewport\""));
    let (_, _, script) = request(port, "GET", "/app.js");
    assert!(!script.contains("innerHTML"), "data is written as text");

    // Read-only: nothing but GET.
    for (method, path) in [("POST", "/"), ("PUT", "/status"), ("DELETE", "/status")] {
        let (code, _, _) = request(port, method, path);
        assert_eq!(code, 405, "{method} {path}");
    }
}

/// The zone's card in the DOM: its `data-level` and its text (tags removed).
fn zone_card(dom: &str, zone: &str) -> Option<(String, String)> {
    let mut rest = dom;
    while let Some(i) = rest.find("<article") {
        rest = &rest[i..];
        let tag_end = rest.find('>')?;
        let tag = &rest[..tag_end];
        let end = rest.find("</article>")?;
        if tag.contains(&format!("data-zone=\"{zone}\"")) && tag.contains("zone") {
            let level = tag.split("data-level=\"").nth(1)?.split('"').next()?;
            return Some((level.to_string(), text(&rest[..end])));
        }
        rest = &rest[end..];
    }
    None
}

/// Text of an HTML fragment: tags dropped (a space for each but `<span>`'s, which is inline),
/// the few entities the serializer writes decoded.
fn text(html: &str) -> String {
    let mut out = String::new();
    let mut tag: Option<String> = None;
    for c in html.chars() {
        match (&mut tag, c) {
            (None, '<') => tag = Some(String::new()),
            (Some(t), '>') => {
                if t.trim_start_matches('/').split_whitespace().next() != Some("span") {
                    out.push(' ');
                }
                tag = None;
            }
            (Some(t), c) => t.push(c),
            (None, c) => out.push(c),
        }
    }
    let out = out
        .replace("&gt;", ">")
        .replace("&lt;", "<")
        .replace("&quot;", "\"")
        .replace("&amp;", "&");
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Dumps the DOM until the zone shows `level` (at most `within`); the zone's text and the
/// whole DOM.
fn wait_for_level(
    dir: &Path,
    url: &str,
    zone: &str,
    level: &str,
    within: Duration,
) -> (String, String) {
    let start = Instant::now();
    let mut last = String::new();
    while start.elapsed() < within {
        last = dom(dir, url);
        if let Some((shown, text)) = zone_card(&last, zone)
            && shown == level
        {
            return (text, last);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("the page never showed {zone} at {level} within {within:?}; last DOM:\n{last}");
}

#[test]
fn the_page_shows_a_fire_turn_prepare_then_evacuate_with_its_reasons() {
    if !require_peer("mosquitto") || !require_peer("mosquitto_pub") || !require_peer("chromium") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (_broker, port) = mosquitto(d);
    let key = firebreak_gateway::keys::SigningKey::generate(
        firebreak_protocols::KeyId::new("gw-page-2026").unwrap(),
    )
    .unwrap();
    key.write_pair(d).unwrap();
    std::fs::write(d.join("rules.toml"), FIRE_RULES).unwrap();
    let config = format!(
        "[site]\nname = \"paris-1\"\ngateway = \"gw-paris-1a\"\n\
         [[zones]]\nname = \"battery-room\"\n[[zones]]\nname = \"hall-a\"\n\
         [http]\nbind = \"{{HTTP}}\"\n[policy]\nrules_file = \"rules.toml\"\nhold_s = 1\n\
         [[brokers]]\nname = \"site-broker\"\nurl = \"mqtt://127.0.0.1:{port}\"\n\
         [signing]\nkey_file = \"{}\"\nkey_id = \"gw-page-2026\"\n[outbox]\ndir = \"{}\"\n\
         [[mqtt_sources]]\nname = \"battery-room-sensor\"\nzone = \"battery-room\"\n\
         broker = \"mqtt://127.0.0.1:{port}\"\ntopic = \"building/br/env\"\nfreshness_ms = 60000\n\
         [[mqtt_sources.signals]]\nsignal = \"off-gas\"\nfield = \"voc_ppm\"\n\
         [[mqtt_sources.signals]]\nsignal = \"smoke-alarm\"\nfield = \"smoke\"\n\
         [[mqtt_sources.signals]]\nsignal = \"room-temperature\"\nfield = \"temp_c\"\n\
         [[mqtt_sources]]\nname = \"hall-a-rack-12\"\nzone = \"hall-a\"\n\
         broker = \"mqtt://127.0.0.1:{port}\"\ntopic = \"building/hall-a/rack-12\"\nfreshness_ms = 60000\n\
         [[mqtt_sources.signals]]\nsignal = \"rack-temperature\"\nfield = \"inlet_c\"\n\
         [[mqtt_sources.signals]]\nsignal = \"room-humidity\"\nfield = \"rh\"\n",
        d.join("gw-page-2026.key").display(),
        d.join("outbox").display()
    );
    let gw = Gateway::start(d, &config);
    let url = format!("http://127.0.0.1:{}/", gw.http_port);
    let publish =
        |topic: &str, payload: &str| mosquitto_pub(port, topic, payload.as_bytes(), false);
    let site_level = |gw: &Gateway| gw.status()["policy"]["site"].as_str().unwrap().to_string();

    // Clean air: the page shows the zone normal, live.
    let clean = wait_until(Duration::from_secs(10), || {
        publish(
            "building/br/env",
            r#"{"voc_ppm": 2.0, "smoke": 0, "temp_c": 24.5}"#,
        );
        publish(
            "building/hall-a/rack-12",
            r#"{"inlet_c": 23.1, "rh": 41.0}"#,
        );
        gw.signal("battery-room-sensor", "off-gas", 0) == Some(("good".into(), Some(2.0)))
            && gw.signal("hall-a-rack-12", "rack-temperature", 0).is_some()
    });
    assert!(clean.is_some(), "{}", gw.status());
    let (normal, page) = wait_for_level(d, &url, "battery-room", "normal", Duration::from_secs(30));
    assert!(normal.contains("battery-room"), "{normal}");
    assert!(
        page.contains("data-state=\"live\""),
        "the page says it is live: {page}"
    );
    assert!(
        page.contains("data-device=\"battery-room-sensor\""),
        "{page}"
    );
    assert!(page.contains("data-broker=\"site-broker\""), "{page}");

    // Off-gas: prepare, and why, with the value and the threshold in its unit.
    publish(
        "building/br/env",
        r#"{"voc_ppm": 45.0, "smoke": 0, "temp_c": 26.0}"#,
    );
    assert!(
        wait_until(Duration::from_secs(10), || site_level(&gw) == "prepare").is_some(),
        "{}",
        gw.status()
    );
    let (prepare, _) = wait_for_level(d, &url, "battery-room", "prepare", Duration::from_secs(30));
    assert!(
        prepare.contains("off-gas: off-gas on battery-room-sensor = 45 ppm (threshold 20 ppm)"),
        "{prepare}"
    );

    // Smoke as well: evacuate, both kinds of evidence named, and the change in the list of
    // transitions.
    publish(
        "building/br/env",
        r#"{"voc_ppm": 60.0, "smoke": 1, "temp_c": 29.0}"#,
    );
    assert!(
        wait_until(Duration::from_secs(10), || site_level(&gw) == "evacuate").is_some(),
        "{}",
        gw.status()
    );
    let (evacuate, page) =
        wait_for_level(d, &url, "battery-room", "evacuate", Duration::from_secs(30));
    for says in [
        "fire-corroborated: 2 (needs 2)",
        "off-gas: off-gas on battery-room-sensor = 60 ppm (threshold 20 ppm)",
        "smoke: smoke-alarm on battery-room-sensor = on",
    ] {
        assert!(evacuate.contains(says), "{says}: {evacuate}");
    }
    let hall = zone_card(&page, "hall-a").unwrap();
    assert_eq!(hall.0, "normal", "the other zone stays normal on screen");
    assert!(
        page.contains("id=\"site-level\"") && page.contains("site evacuate"),
        "{page}"
    );
    let transitions = text(
        page.split("id=\"transitions\"")
            .nth(1)
            .and_then(|t| t.split("</ol>").next())
            .unwrap(),
    );
    assert!(
        transitions.contains("battery-room: prepare → evacuate"),
        "{transitions}"
    );
    assert!(
        transitions.contains("battery-room: normal → prepare"),
        "{transitions}"
    );

    // The page during the fire, as a picture.
    let shot = d.join("console-during-fire.png");
    chromium(
        d,
        &[
            "--virtual-time-budget=3000".to_string(),
            "--hide-scrollbars".to_string(),
            "--window-size=1200,1600".to_string(),
            format!("--screenshot={}", shot.display()),
            url.clone(),
        ],
    );
    let png = std::fs::read(&shot).expect("chromium wrote the screenshot");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "{} bytes",
        png.len()
    );
    if let Some(to) = std::env::var_os("FIREBREAK_SCREENSHOT") {
        std::fs::write(&to, &png).unwrap();
    }
}

/// A stand-in for a gateway that answers `/status` once and then fails: the page must say
/// its data is old rather than pass for live.
#[test]
fn the_page_says_so_when_its_data_is_old() {
    if !require_peer("chromium") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let status = serde_json::json!({
        "site": "s", "gateway": "g", "now_ms": 1_000_000,
        "health": { "healthy": true, "reasons": [], "acquisition_alive": 0,
            "acquisition_total": 0, "brokers_connected": 0, "brokers_total": 0,
            "engine_last_step_ms": 1_000_000, "faults": [] },
        "policy": { "site": "prepare", "zones": [{ "zone": "battery-room", "level": "prepare",
            "firing": ["off-gas"], "reasons": [] }], "recent": [], "sensor_faults": [],
            "transitions_total": 1 },
        "devices": [], "signals": []
    })
    .to_string();
    std::thread::spawn(move || {
        let mut answered = false;
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut buf = [0u8; 4096];
            let n = stream.read(&mut buf).unwrap_or(0);
            let head = String::from_utf8_lossy(&buf[..n]).to_string();
            let path = head.split(' ').nth(1).unwrap_or("").to_string();
            let (code, kind, body) = match path.as_str() {
                "/" => (
                    "200 OK",
                    "text/html",
                    include_str!("../src/page/index.html").to_string(),
                ),
                "/app.js" => (
                    "200 OK",
                    "text/javascript",
                    include_str!("../src/page/app.js").to_string(),
                ),
                "/app.css" => (
                    "200 OK",
                    "text/css",
                    include_str!("../src/page/app.css").to_string(),
                ),
                p if p.starts_with("/status") && !answered => {
                    answered = true;
                    ("200 OK", "application/json", status.clone())
                }
                _ => (
                    "503 Service Unavailable",
                    "text/plain",
                    "down\n".to_string(),
                ),
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {code}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    let page = chromium(
        dir.path(),
        &[
            "--virtual-time-budget=8000".to_string(),
            "--dump-dom".to_string(),
            format!("http://127.0.0.1:{port}/"),
        ],
    );
    let (level, _) = zone_card(&page, "battery-room").expect("the one answer was drawn");
    assert_eq!(level, "prepare");
    let line = page
        .split("id=\"freshness\"")
        .nth(1)
        .and_then(|t| t.split("</p>").next())
        .unwrap();
    assert!(line.contains("data-state=\"lost\""), "{line}");
    assert!(
        text(line).contains("CONNECTION LOST — this data is"),
        "{line}"
    );
    assert!(page.contains("class=\"stale\""), "the page fades: {page}");
}
