//! Helpers for process tests: real peers on free loopback ports, each in its own temporary
//! directory, every wait bounded. Used by `gateway/tests/` and, through `#[path]`, by the
//! end-to-end crate in `tests/`.

#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)] // test code

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Whether `program` can be run. When it cannot and FIREBREAK_REQUIRE_PEERS=1 (scripts/test.sh
/// sets it), the test fails; otherwise it says SKIPPED and the caller returns.
pub fn require_peer(program: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !found {
        if std::env::var("FIREBREAK_REQUIRE_PEERS").as_deref() == Ok("1") {
            panic!("{program} is not installed: run scripts/test.sh, which installs it");
        }
        eprintln!("SKIPPED: {program} not installed (run scripts/test.sh)");
    }
    found
}

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The `firebreak` binary: cargo's for the gateway's own tests, else FIREBREAK_BIN (set by
/// scripts/test.sh), else the debug build.
pub fn firebreak_bin() -> PathBuf {
    option_env!("CARGO_BIN_EXE_firebreak")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("FIREBREAK_BIN").map(PathBuf::from))
        .unwrap_or_else(|| workspace().join("target/debug/firebreak"))
}

/// The Python with pymodbus: FIREBREAK_PYTHON, or the venv scripts/test.sh makes.
pub fn python() -> Option<PathBuf> {
    let path = std::env::var_os("FIREBREAK_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join(".peers/venv/bin/python"));
    if path.exists() {
        return Some(path);
    }
    if std::env::var("FIREBREAK_REQUIRE_PEERS").as_deref() == Ok("1") {
        panic!(
            "{} is missing: run scripts/test.sh, which installs pymodbus",
            path.display()
        );
    }
    eprintln!("SKIPPED: pymodbus venv not found (run scripts/test.sh)");
    None
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process killed when dropped.
pub struct Peer {
    pub child: Child,
    pub name: String,
}

impl Peer {
    /// Starts `cmd` and waits (at most `within`) for a stdout line containing `ready`.
    pub fn start(name: &str, cmd: &mut Command, ready: &str, within: Duration) -> Peer {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {name}: {e}"));
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let ready = ready.to_string();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.contains(&ready) {
                    let _ = tx.send(());
                }
            }
        });
        let peer = Peer {
            child,
            name: name.to_string(),
        };
        if rx.recv_timeout(within).is_err() {
            panic!("{name} did not get ready within {within:?}");
        }
        peer
    }

    /// Starts `cmd` without waiting for it.
    pub fn spawn(name: &str, cmd: &mut Command) -> Peer {
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {name}: {e}"));
        Peer {
            child,
            name: name.to_string(),
        }
    }

    /// Kills the process now.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The foreign UPS (pymodbus) on a TCP port.
pub fn foreign_ups_tcp(python: &Path, port: u16, args: &[&str]) -> Peer {
    let script = workspace().join("gateway/tests/peers/foreign_ups.py");
    Peer::start(
        "pymodbus foreign UPS",
        Command::new(python)
            .arg(script)
            .arg(port.to_string())
            .args(args),
        "listening",
        Duration::from_secs(20),
    )
}

/// A Mosquitto broker on a free port, configured in `dir`.
///
/// Ready means Mosquitto itself said it opened the listener: a bare TCP connect can succeed
/// against another test's process that took the port, or connect to itself on Linux when the
/// port is in the ephemeral range. If the port was taken in between, it tries another one.
pub fn mosquitto(dir: &Path) -> (Peer, u16) {
    for _ in 0..5 {
        let port = free_port();
        let conf = dir.join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n\
                 log_dest stderr\nlog_type error\nlog_type warning\nlog_type notice\n\
                 log_type information\n"
            ),
        )
        .unwrap();
        let mut child = Command::new("mosquitto")
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start mosquitto");
        // stderr, because mosquitto buffers its stdout when it is a pipe.
        let stdout = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.contains("running") {
                    let _ = tx.send(true);
                }
            }
            let _ = tx.send(false); // exited: the port was taken
        });
        match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(true) => {
                return (
                    Peer {
                        child,
                        name: "mosquitto".into(),
                    },
                    port,
                );
            }
            Ok(false) => {
                let _ = child.wait();
            }
            Err(_) => {
                let _ = child.kill();
                panic!("mosquitto did not start within 10 s on port {port}");
            }
        }
    }
    panic!("mosquitto could not open a listener on five free ports");
}

/// Calls `check` every 50 ms until it returns true or `within` passes.
pub fn wait_until(within: Duration, mut check: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < within {
        if check() {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

/// `GET path` on 127.0.0.1:port; the body, or None when nothing answers.
pub fn http_get(port: u16, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.0 200")
        .then(|| body.to_string())
        .or_else(|| head.starts_with("HTTP/1.1 200").then(|| body.to_string()))
}

/// The gateway as a process, on a configuration written into `dir`.
pub struct Gateway {
    pub peer: Peer,
    pub http_port: u16,
}

impl Gateway {
    /// Writes `config` (with `{HTTP}` replaced by a free address) and starts `firebreak run`.
    pub fn start(dir: &Path, config: &str) -> Gateway {
        let http_port = free_port();
        let path = dir.join("site.toml");
        std::fs::write(
            &path,
            config.replace("{HTTP}", &format!("127.0.0.1:{http_port}")),
        )
        .unwrap();
        let child = Command::new(firebreak_bin())
            .args(["run", "--config"])
            .arg(&path)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start firebreak run");
        let gw = Gateway {
            peer: Peer {
                child,
                name: "firebreak".into(),
            },
            http_port,
        };
        wait_until(Duration::from_secs(10), || gw.get("/healthz").is_some())
            .expect("gateway /healthz");
        gw
    }

    /// `GET path` on the gateway's status endpoint.
    pub fn get(&self, path: &str) -> Option<String> {
        http_get(self.http_port, path)
    }

    /// `/status` as JSON.
    pub fn status(&self) -> serde_json::Value {
        serde_json::from_str(&self.get("/status").expect("GET /status")).expect("/status is JSON")
    }

    /// The quality and value of one signal in `/status`.
    pub fn signal(
        &self,
        device: &str,
        signal: &str,
        channel: u64,
    ) -> Option<(String, Option<f64>)> {
        let s = self.status();
        s["signals"].as_array()?.iter().find_map(|v| {
            (v["device"] == device && v["signal"] == signal && v["channel"] == channel).then(|| {
                (
                    v["quality"].as_str().unwrap_or("").to_string(),
                    v["value"].as_f64(),
                )
            })
        })
    }

    /// One device's entry in `/status`.
    pub fn device(&self, device: &str) -> serde_json::Value {
        let s = self.status();
        s["devices"]
            .as_array()
            .and_then(|d| d.iter().find(|v| v["device"] == device).cloned())
            .unwrap_or_default()
    }
}
