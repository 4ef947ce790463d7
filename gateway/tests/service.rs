//! The gateway as a service: systemd's notifications (`NOTIFY_SOCKET`, the watchdog fed only
//! while healthy), SIGHUP reloads of the site configuration, JSON logs, and the Debian package
//! with its unit (installed into a throwaway root, the unit checked by `systemd-analyze`).
//! The gateway runs as a process; what it sends, logs and shows in `/status` is checked.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test code

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;

/// Collects the datagrams the gateway sends to `$NOTIFY_SOCKET`.
struct NotifySocket {
    path: PathBuf,
    got: mpsc::Receiver<String>,
}

impl NotifySocket {
    fn bind(dir: &Path) -> NotifySocket {
        let path = dir.join("notify.sock");
        let sock = UnixDatagram::bind(&path).unwrap();
        let (tx, got) = mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 4096];
            while let Ok(n) = sock.recv(&mut buf) {
                if tx
                    .send(String::from_utf8_lossy(&buf[..n]).into_owned())
                    .is_err()
                {
                    return;
                }
            }
        });
        NotifySocket { path, got }
    }

    /// Waits (at most `within`) for a datagram with a line `line`; returns it.
    fn wait_for(&self, line: &str, within: Duration) -> Option<String> {
        let end = Instant::now() + within;
        while let Some(left) = end.checked_duration_since(Instant::now()) {
            match self.got.recv_timeout(left) {
                Ok(m) if m.lines().any(|l| l == line) => return Some(m),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
        None
    }

    /// Everything received during `period`.
    fn collect(&self, period: Duration) -> Vec<String> {
        let end = Instant::now() + period;
        let mut out = Vec::new();
        while let Some(left) = end.checked_duration_since(Instant::now()) {
            match self.got.recv_timeout(left) {
                Ok(m) => out.push(m),
                Err(mpsc::RecvTimeoutError::Timeout) => break,
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        out
    }

    fn drain(&self) {
        while self.got.try_recv().is_ok() {}
    }
}

fn keygen(dir: &Path, id: &str) {
    let out = Command::new(firebreak_bin())
        .args(["keygen", "--out"])
        .arg(dir)
        .args(["--key-id", id])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
}

#[test]
fn ready_then_watchdog_while_alive_even_without_brokers_then_stopping() {
    if !require_peer("mosquitto") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (mut broker, port) = mosquitto(dir.path());
    keygen(dir.path(), "k1");
    let notify = NotifySocket::bind(dir.path());
    // A device nobody answers for: it is comm-lost, which is not unhealthy; the broker is.
    let config = format!(
        "[site]\nname = \"svc\"\ngateway = \"gw-svc\"\n[[zones]]\nname = \"z\"\n\
         [http]\nbind = \"{{HTTP}}\"\n\
         [[devices]]\nname = \"ups\"\nzone = \"z\"\ntransport = \"tcp\"\naddress = \"127.0.0.1:{}\"\nunit = 1\nprofile = \"generic-ups\"\n\
         [[brokers]]\nname = \"site\"\nurl = \"mqtt://127.0.0.1:{port}\"\n\
         [signing]\nkey_file = \"{}\"\nkey_id = \"k1\"\n[outbox]\ndir = \"{}\"\n",
        free_port(),
        dir.path().join("k1.key").display(),
        dir.path().join("outbox").display()
    );
    let log = dir.path().join("gateway.log");
    let socket = notify.path.display().to_string();
    let mut gw = Gateway::start_with_env(
        dir.path(),
        &config,
        Some(&log),
        &[
            ("NOTIFY_SOCKET", socket.as_str()),
            ("WATCHDOG_USEC", "600000"),
        ],
    );

    let ready = notify
        .wait_for("READY=1", Duration::from_secs(10))
        .expect("READY=1");
    assert!(ready.contains("STATUS=level "), "{ready}");
    // Healthy (Gateway::start waited for /healthz ok): fed every 300 ms.
    let fed = notify.collect(Duration::from_millis(1500));
    let pings = fed.iter().filter(|m| m.starts_with("WATCHDOG=1")).count();
    assert!(pings >= 3, "WATCHDOG=1 while healthy: {fed:?}");
    assert!(
        fed.iter()
            .any(|m| m.contains("1 of 1 brokers connected; healthy")),
        "{fed:?}"
    );

    // The broker goes: /healthz turns 503 and STATUS says why, but the watchdog is still
    // fed: a restart cannot bring a broker back, and would restart the policy's debounces in
    // the middle of an incident (HealthReport::alive; the unfed watchdog is unit-tested in
    // health.rs on a dead task and a stalled engine).
    broker.kill();
    wait_until(Duration::from_secs(10), || gw.get("/healthz").is_none())
        .expect("/healthz unhealthy once the broker is gone");
    std::thread::sleep(Duration::from_millis(100));
    notify.drain();
    let out = notify.collect(Duration::from_millis(1800));
    assert!(
        out.iter()
            .filter(
                |m| m.starts_with("WATCHDOG=1") && m.contains("UNHEALTHY: brokers: none connected")
            )
            .count()
            >= 3,
        "WATCHDOG=1 with the broker's outage in STATUS: {out:?}"
    );

    // Back: healthy again.
    let _broker = mosquitto_again(
        dir.path(),
        port,
        "allow_anonymous true\npersistence false\n",
    );
    wait_until(Duration::from_secs(15), || gw.get("/healthz").is_some())
        .expect("/healthz ok once the broker is back");
    std::thread::sleep(Duration::from_millis(100));
    notify.drain();
    let back = notify.collect(Duration::from_millis(900));
    assert!(
        back.iter()
            .any(|m| m.starts_with("WATCHDOG=1") && m.contains("1 of 1 brokers connected; healthy")),
        "{back:?}"
    );
    assert!(
        !std::fs::read_to_string(&log)
            .unwrap()
            .contains("systemd watchdog NOT fed"),
        "a broker's outage never starves the watchdog"
    );

    gw.peer.terminate();
    notify
        .wait_for("STOPPING=1", Duration::from_secs(5))
        .expect("STOPPING=1");
    assert!(gw.peer.child.try_wait().unwrap().is_some());
}

/// A Network UPS Tools server that serves one UPS on line power, on a free port, for as long
/// as the test runs.
fn fake_upsd() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            std::thread::spawn(move || {
                let mut out = stream.try_clone().unwrap();
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    let reply = match line.strip_prefix("LIST VAR ") {
                        Some(ups) => format!(
                            "BEGIN LIST VAR {ups}\nVAR {ups} ups.status \"OL\"\nVAR {ups} battery.charge \"100\"\nVAR {ups} battery.runtime \"3600\"\nEND LIST VAR {ups}\n"
                        ),
                        None => "OK\n".to_string(),
                    };
                    if out.write_all(reply.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    port
}

fn nut_source(name: &str, port: u16) -> String {
    format!(
        "[[nut_sources]]\nname = \"{name}\"\nzone = \"ups-room\"\nurl = \"nut://127.0.0.1:{port}/ups1\"\npoll_interval_ms = 250\n"
    )
}

fn device_polls(gw: &Gateway, name: &str) -> Option<(u64, bool)> {
    let d = gw.device(name);
    Some((d["polls"].as_u64()?, d["comm_lost"].as_bool()?))
}

fn metric(gw: &Gateway, line: &str) -> bool {
    gw.get("/metrics")
        .is_some_and(|m| m.lines().any(|l| l == line))
}

#[test]
fn sighup_keeps_the_running_configuration_on_a_bad_file_and_applies_a_good_one() {
    let dir = tempfile::tempdir().unwrap();
    let (port_a, port_b) = (fake_upsd(), fake_upsd());
    let head = "[site]\nname = \"svc\"\ngateway = \"gw-reload\"\n[[zones]]\nname = \"ups-room\"\n[http]\nbind = \"{HTTP}\"\n";
    let log = dir.path().join("gateway.log");
    let mut gw = Gateway::start_with_env(
        dir.path(),
        &format!("{head}{}", nut_source("ups-a", port_a)),
        Some(&log),
        &[("RUST_LOG", "info"), ("FIREBREAK_LOG_FORMAT", "json")],
    );
    let path = dir.path().join("site.toml");
    let bind = format!("127.0.0.1:{}", gw.http_port);
    let head = head.replace("{HTTP}", &bind);
    wait_until(Duration::from_secs(10), || {
        device_polls(&gw, "ups-a").is_some_and(|(p, lost)| p > 0 && !lost)
    })
    .expect("ups-a read");
    let first = gw.status()["config"].clone();
    assert_eq!(first["file"], path.display().to_string());
    assert_eq!(first["sha256"].as_str().unwrap().len(), 64);

    // A broken file: an unknown key on line 13. Rejected, logged, the old device still read.
    std::fs::write(
        &path,
        format!("{head}{}speed = 9600\n", nut_source("ups-a", port_a)),
    )
    .unwrap();
    gw.sighup();
    wait_until(Duration::from_secs(10), || {
        gw.status()["config"]["reloads_rejected"] == 1
    })
    .expect("the reload counted as rejected");
    assert!(
        gw.peer.child.try_wait().unwrap().is_none(),
        "the gateway runs on"
    );
    let status = gw.status();
    let detail = status["config"]["last_reload"]["detail"].as_str().unwrap();
    assert!(
        detail.contains("site.toml:13") && detail.contains("speed"),
        "file, line and key: {detail}"
    );
    assert_eq!(status["config"]["sha256"], first["sha256"]);
    let (polls, _) = device_polls(&gw, "ups-a").unwrap();
    wait_until(Duration::from_secs(5), || {
        device_polls(&gw, "ups-a").is_some_and(|(p, lost)| p > polls + 2 && !lost)
    })
    .expect("ups-a still read after the rejected reload");
    assert!(metric(
        &gw,
        "firebreak_config_reloads_total{result=\"rejected\"} 1"
    ));

    // What only a restart can change: rejected as a whole, saying so.
    std::fs::write(
        &path,
        format!(
            "{}{}",
            head.replace("gw-reload", "gw-other"),
            nut_source("ups-a", port_a)
        ),
    )
    .unwrap();
    gw.sighup();
    wait_until(Duration::from_secs(10), || {
        gw.status()["config"]["reloads_rejected"] == 2
    })
    .expect("the second reload rejected");
    let detail = gw.status()["config"]["last_reload"]["detail"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(detail.contains("needs a restart: site.gateway"), "{detail}");

    // A good file adding a device: applied; the new device read, the old one kept.
    let good = format!(
        "{head}{}{}",
        nut_source("ups-a", port_a),
        nut_source("ups-b", port_b)
    );
    std::fs::write(&path, &good).unwrap();
    gw.sighup();
    wait_until(Duration::from_secs(10), || {
        device_polls(&gw, "ups-b").is_some_and(|(p, lost)| p > 0 && !lost)
    })
    .expect("ups-b, added by the reload, read");
    let status = gw.status();
    assert_eq!(status["config"]["reloads_ok"], 1);
    assert_eq!(status["config"]["last_reload"]["result"], "ok");
    use sha2::Digest;
    let hex: String = sha2::Sha256::digest(good.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(status["config"]["sha256"], hex.as_str());
    assert!(
        device_polls(&gw, "ups-a").unwrap().0 > polls,
        "ups-a kept its counters"
    );
    assert_eq!(status["health"]["healthy"], true, "{}", status["health"]);
    assert!(metric(
        &gw,
        "firebreak_config_reloads_total{result=\"ok\"} 1"
    ));

    // Removing a device: gone from /status, and its stopped task is no reason to be unhealthy.
    std::fs::write(&path, format!("{head}{}", nut_source("ups-b", port_b))).unwrap();
    gw.sighup();
    wait_until(Duration::from_secs(10), || {
        gw.status()["config"]["reloads_ok"] == 2
    })
    .expect("the removal applied");
    let status = gw.status();
    let devices: Vec<_> = status["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["device"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(devices, ["ups-b"]);
    assert_eq!(status["health"]["healthy"], true, "{}", status["health"]);
    assert_eq!(status["health"]["acquisition_total"], 1);
    assert!(gw.get("/healthz").is_some());

    // JSON logs: every line an object with level, fields.message and the fields; the rejection
    // names the file, line and key.
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let rejected = lines
        .iter()
        .find(|l| l["fields"]["message"] == "configuration NOT reloaded: the running one is kept")
        .unwrap_or_else(|| panic!("no rejection logged: {text}"));
    assert_eq!(rejected["level"], "ERROR");
    assert!(
        rejected["fields"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("site.toml:13") && e.contains("speed")),
        "{rejected}"
    );
    assert!(
        lines.iter().any(|l| l["level"] == "INFO"
            && l["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("configuration reloaded: added: ups-b"))),
        "{text}"
    );
}

/// `systemd-analyze verify` on `unit`: the problems it reports (nothing for a good unit; it
/// prints a line and goes on, exit 0, for an unknown key or a bad value).
fn verify_unit(unit: &Path) -> Result<(), String> {
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(unit)
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() && said.trim().is_empty() {
        Ok(())
    } else {
        Err(format!("{}: {said}", out.status))
    }
}

#[test]
fn the_debian_package_installs_binary_unit_config_and_a_unit_systemd_accepts() {
    if !require_peer("dpkg-deb") || !require_peer("systemd-analyze") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(workspace().join("scripts/package-deb.sh"))
        .arg("--binary")
        .arg(firebreak_bin())
        .arg("--out")
        .arg(dir.path())
        .arg("--fast")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let deb = PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());
    let name = deb.file_name().unwrap().to_str().unwrap().to_string();
    assert!(
        name.starts_with("firebreak_") && name.ends_with(".deb"),
        "{name}"
    );

    let field = |f: &str| {
        let o = Command::new("dpkg-deb")
            .arg("-f")
            .arg(&deb)
            .arg(f)
            .output()
            .unwrap();
        String::from_utf8(o.stdout).unwrap().trim().to_string()
    };
    assert_eq!(field("Package"), "firebreak");
    assert!(field("Depends").contains("adduser"));
    let control = dir.path().join("control");
    assert!(
        Command::new("dpkg-deb")
            .arg("-e")
            .arg(&deb)
            .arg(&control)
            .status()
            .unwrap()
            .success()
    );
    assert_eq!(
        std::fs::read_to_string(control.join("conffiles")).unwrap(),
        "/etc/firebreak/site.toml\n"
    );
    for script in ["postinst", "prerm", "postrm"] {
        let ok = Command::new("sh")
            .arg("-n")
            .arg(control.join(script))
            .status()
            .unwrap()
            .success();
        assert!(ok, "{script} is not valid sh");
    }

    // Installed into a throwaway root with dpkg itself (unpacked: the maintainer scripts run
    // below against stubs, never against this machine's users).
    let root = dir.path().join("root");
    let admin = root.join("var/lib/dpkg");
    std::fs::create_dir_all(admin.join("info")).unwrap();
    std::fs::create_dir_all(admin.join("updates")).unwrap();
    std::fs::write(admin.join("status"), "").unwrap();
    let unpack = Command::new("dpkg")
        .arg(format!("--root={}", root.display()))
        .args(["--force-not-root", "--log=/dev/null", "--unpack"])
        .arg(&deb)
        .output()
        .unwrap();
    assert!(unpack.status.success(), "{unpack:?}");
    let query = Command::new("dpkg-query")
        .arg(format!("--admindir={}", admin.display()))
        .args(["-W", "-f=${Status}|${Conffiles}", "firebreak"])
        .output()
        .unwrap();
    let query = String::from_utf8(query.stdout).unwrap();
    assert!(query.starts_with("install ok unpacked|"), "{query}");
    assert!(query.contains("/etc/firebreak/site.toml"), "{query}");
    let mode = |p: &str| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(root.join(p))
            .unwrap_or_else(|e| panic!("{p}: {e}"))
            .permissions()
            .mode()
            & 0o7777
    };
    assert_eq!(mode("usr/bin/firebreak"), 0o755);
    assert_eq!(mode("lib/systemd/system/firebreak.service"), 0o644);
    // A conffile waits as .dpkg-new until configured.
    assert_eq!(mode("etc/firebreak/site.toml.dpkg-new"), 0o640);
    assert_eq!(mode("usr/share/doc/firebreak/operations.md"), 0o644);
    assert_eq!(mode("usr/share/doc/firebreak/examples/site.toml"), 0o644);

    // The installed example passes the installed binary's check.
    let check = Command::new(root.join("usr/bin/firebreak"))
        .args(["config", "check"])
        .arg(root.join("etc/firebreak/site.toml.dpkg-new"))
        .output()
        .unwrap();
    assert!(check.status.success(), "{check:?}");

    // postinst configure, with every command it runs stubbed: it creates the system user and
    // the state directory, and enables or starts nothing.
    let stubs = dir.path().join("stubs");
    std::fs::create_dir_all(&stubs).unwrap();
    let calls = dir.path().join("calls.log");
    for cmd in [
        "adduser",
        "chown",
        "chmod",
        "install",
        "systemctl",
        "deb-systemd-helper",
    ] {
        let stub = stubs.join(cmd);
        std::fs::write(
            &stub,
            format!("#!/bin/sh\necho \"{cmd} $*\" >> {}\n", calls.display()),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&stub, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    // getent: no such user yet.
    std::fs::write(stubs.join("getent"), "#!/bin/sh\nexit 2\n").unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(stubs.join("getent"), std::fs::Permissions::from_mode(0o755))
            .unwrap();
    }
    let post = Command::new("/bin/sh")
        .arg(control.join("postinst"))
        .arg("configure")
        .env("PATH", &stubs)
        .output()
        .unwrap();
    assert!(post.status.success(), "{post:?}");
    let calls = std::fs::read_to_string(&calls).unwrap();
    assert!(
        calls.contains("adduser --system --group") && calls.contains("firebreak"),
        "{calls}"
    );
    assert!(
        calls.contains("install -d -o firebreak -g firebreak -m 0700 /var/lib/firebreak"),
        "{calls}"
    );
    assert!(
        !calls.contains("enable") && !calls.contains("start"),
        "nothing enabled or started: {calls}"
    );

    // The installed unit, as systemd reads it (ExecStart pointed at the installed binary).
    let unit_text =
        std::fs::read_to_string(root.join("lib/systemd/system/firebreak.service")).unwrap();
    for key in [
        "Type=notify",
        "WatchdogSec=",
        "User=firebreak",
        "StateDirectory=firebreak",
        "ExecReload=/bin/kill -HUP $MAINPID",
    ] {
        assert!(unit_text.contains(key), "{key}");
    }
    let units = dir.path().join("units");
    std::fs::create_dir_all(units.join("broken")).unwrap();
    let unit = units.join("firebreak.service");
    let here = root.join("usr/bin/firebreak").display().to_string();
    std::fs::write(&unit, unit_text.replace("/usr/bin/firebreak", &here)).unwrap();
    verify_unit(&unit).unwrap();
    // The check fails on a broken unit: a misspelt key, a bad value, a missing binary.
    for (from, to) in [
        ("NoNewPrivileges=yes", "NoNewPrivilege=yes"),
        ("Type=notify", "Type=notified"),
        (here.as_str(), "/nonexistent/firebreak"),
    ] {
        let broken = units.join("broken/firebreak.service");
        std::fs::write(
            &broken,
            unit_text
                .replace("/usr/bin/firebreak", &here)
                .replace(from, to),
        )
        .unwrap();
        assert!(verify_unit(&broken).is_err(), "{from} -> {to} not caught");
    }
}
