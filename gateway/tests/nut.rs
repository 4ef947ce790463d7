//! NUT sources against the real Network UPS Tools: Debian's `upsd` with the `dummy-ups` driver
//! serving a UPS from a file. `firebreak probe nut://…` and `upsc` read the same values; the
//! gateway follows an outage replayed from a `.seq` file (on battery, runtime falling, low
//! battery) into its signals; an unknown UPS name is comm-lost with upsd's error.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test code

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;

/// Where Debian puts NUT's daemons (not on PATH: `/sbin/upsd` is a wrapper that reads
/// `/etc/nut/nut.conf`).
const NUT_LIB: &str = "/lib/nut";

fn nut_installed() -> bool {
    let found =
        Path::new(NUT_LIB).join("upsd").exists() && Path::new(NUT_LIB).join("dummy-ups").exists();
    if !found {
        if std::env::var("FIREBREAK_REQUIRE_PEERS").as_deref() == Ok("1") {
            panic!(
                "NUT's upsd and dummy-ups are not installed: run scripts/test.sh, which installs nut-server"
            );
        }
        eprintln!("SKIPPED: nut-server not installed (run scripts/test.sh)");
    }
    found && require_peer("upsc")
}

/// `upsd` and `dummy-ups` serving `ups1` from `file` (a `.dev` or `.seq` text) in `dir`, on a
/// free port.
struct Nut {
    _driver: Peer,
    _upsd: Peer,
    port: u16,
}

fn user() -> String {
    let out = Command::new("id").arg("-un").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn nut(dir: &Path, file_name: &str, text: &str) -> Nut {
    std::fs::write(dir.join(file_name), text).unwrap();
    std::fs::write(
        dir.join("ups.conf"),
        format!("[ups1]\n  driver = dummy-ups\n  port = {file_name}\n  desc = \"test\"\n"),
    )
    .unwrap();
    let port = free_port();
    std::fs::write(dir.join("upsd.conf"), format!("LISTEN 127.0.0.1 {port}\n")).unwrap();
    std::fs::write(dir.join("upsd.users"), "").unwrap();
    let env = |cmd: &mut Command| {
        for var in ["NUT_CONFPATH", "NUT_STATEPATH", "NUT_ALTPIDPATH"] {
            cmd.env(var, dir);
        }
    };
    let user = user();
    let mut driver = Command::new(Path::new(NUT_LIB).join("dummy-ups"));
    driver.args(["-a", "ups1", "-u", &user, "-D"]);
    env(&mut driver);
    let driver = Peer::spawn("dummy-ups", &mut driver);
    let socket = dir.join("dummy-ups-ups1");
    assert!(
        wait_until(Duration::from_secs(10), || socket.exists()).is_some(),
        "dummy-ups did not open its socket"
    );
    let mut upsd = Command::new(Path::new(NUT_LIB).join("upsd"));
    upsd.args(["-u", &user, "-D"]);
    env(&mut upsd);
    let upsd = Peer::spawn("upsd", &mut upsd);
    let n = Nut {
        _driver: driver,
        _upsd: upsd,
        port,
    };
    assert!(
        wait_until(Duration::from_secs(10), || {
            upsc(port).get("ups.status").is_some_and(|s| s != "WAIT")
        })
        .is_some(),
        "upsd did not serve ups1's data"
    );
    n
}

/// `upsc ups1@127.0.0.1:PORT`: every variable.
fn upsc(port: u16) -> BTreeMap<String, String> {
    let Ok(out) = Command::new("upsc")
        .arg(format!("ups1@127.0.0.1:{port}"))
        .stderr(std::process::Stdio::null())
        .output()
    else {
        return BTreeMap::new();
    };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn gateway_config(port: u16, ups: &str) -> String {
    format!(
        "[site]\nname = \"paris-1\"\ngateway = \"gw-nut\"\n[[zones]]\nname = \"ups-room\"\n\
         [http]\nbind = \"{{HTTP}}\"\n\
         [[nut_sources]]\nname = \"ups-nut\"\nzone = \"ups-room\"\n\
         url = \"nut://127.0.0.1:{port}/{ups}\"\npoll_interval_ms = 500\ncomm_lost_after = 2\n"
    )
}

const STATIC_UPS: &str = "ups.status: OL CHRG\nbattery.charge: 97\nbattery.runtime: 2400\n\
     battery.temperature: 26.5\ninput.voltage: 229.8\noutput.voltage: 230.0\nups.load: 41\n";

#[test]
fn probe_and_upsc_read_the_same_ups_and_the_gateway_takes_its_signals() {
    if !nut_installed() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let n = nut(d, "ups1.dev", STATIC_UPS);
    let by_upsc = upsc(n.port);
    assert_eq!(by_upsc["ups.status"], "OL CHRG", "{by_upsc:?}");
    // The probe prints every variable as upsc does, then the signals.
    let out = Command::new(firebreak_bin())
        .args(["probe", &format!("nut://127.0.0.1:{}/ups1", n.port)])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (name, value) in &by_upsc {
        assert!(
            text.lines()
                .any(|l| l.starts_with(name.as_str()) && l[name.len()..].trim() == value.as_str()),
            "{name} = {value} not in the probe's output:\n{text}"
        );
    }
    for line in [
        "ups-on-battery               0 bool (good)",
        "ups-runtime-remaining        2400 s (good)",
        "ups-input-voltage            229.8 V (good)",
    ] {
        assert!(text.contains(line), "{line}\n{text}");
    }
    // The gateway's signals, with the values upsc shows.
    let gw = Gateway::start(d, &gateway_config(n.port, "ups1"));
    for (signal, var) in [
        ("ups-runtime-remaining", "battery.runtime"),
        ("ups-battery-charge", "battery.charge"),
        ("ups-battery-temperature", "battery.temperature"),
        ("ups-input-voltage", "input.voltage"),
        ("ups-output-voltage", "output.voltage"),
        ("ups-load", "ups.load"),
    ] {
        let expected: f64 = by_upsc[var].parse().unwrap();
        let seen = wait_until(Duration::from_secs(10), || {
            gw.signal("ups-nut", signal, 0)
                .is_some_and(|(q, v)| q == "good" && v.is_some_and(|v| (v - expected).abs() < 1e-3))
        });
        assert!(
            seen.is_some(),
            "{signal}: {:?}",
            gw.signal("ups-nut", signal, 0)
        );
    }
    assert_eq!(
        gw.signal("ups-nut", "ups-on-battery", 0),
        Some(("good".into(), Some(0.0)))
    );
}

#[test]
fn the_gateway_follows_an_outage_and_an_unknown_ups_is_comm_lost() {
    if !nut_installed() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // On utility, then on battery with the runtime falling, then low battery (held).
    let seq = "ups.status: OL\nbattery.runtime: 1800\ninput.voltage: 230\nTIMER 2\n\
               ups.status: OB DISCHRG\nbattery.runtime: 600\ninput.voltage: 0\nTIMER 2\n\
               ups.status: OB LB\nbattery.runtime: 90\nTIMER 600\n";
    let n = nut(d, "ups1.seq", seq);
    let gw = Gateway::start(d, &gateway_config(n.port, "ups1"));
    let on_battery = wait_until(Duration::from_secs(20), || {
        gw.signal("ups-nut", "ups-on-battery", 0) == Some(("good".into(), Some(1.0)))
    });
    assert!(on_battery.is_some(), "{}", gw.status());
    let low = wait_until(Duration::from_secs(20), || {
        gw.signal("ups-nut", "ups-low-battery", 0) == Some(("good".into(), Some(1.0)))
            && gw.signal("ups-nut", "ups-runtime-remaining", 0) == Some(("good".into(), Some(90.0)))
    });
    assert!(low.is_some(), "{}", gw.status());
    drop(gw);

    // The wrong UPS name: upsd's ERR UNKNOWN-UPS, and the device comm-lost.
    let wrong = tempfile::tempdir().unwrap();
    let gw = Gateway::start(wrong.path(), &gateway_config(n.port, "ups9"));
    let lost = wait_until(Duration::from_secs(10), || {
        gw.device("ups-nut")["comm_lost"] == true
    });
    assert!(lost.is_some(), "{}", gw.device("ups-nut"));
    let device = gw.device("ups-nut");
    assert!(device.to_string().contains("UNKNOWN-UPS"), "{device}");
}
