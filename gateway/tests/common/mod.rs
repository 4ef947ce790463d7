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

/// SNMP peers (snmpsim, snmpd), net-snmp's tools and `.snmprec` recordings.
pub mod browser;
pub mod snmp;

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
    mosquitto_on_a_free_port(dir, "allow_anonymous true\npersistence false\n")
}

/// Mosquitto with `extra` configuration lines (TLS, passwords) on a free port, as
/// [`mosquitto`] starts it.
pub fn mosquitto_on_a_free_port(dir: &Path, extra: &str) -> (Peer, u16) {
    for _ in 0..5 {
        if let Some(started) = mosquitto_with(dir, free_port(), extra) {
            return started;
        }
    }
    panic!("mosquitto could not open a listener on five free ports");
}

/// Mosquitto on `port` with `extra` configuration lines (TLS, passwords, persistence), its
/// files in `dir`; `None` when the port is taken. Call again with the same port to restart a
/// stopped broker where its clients expect it.
pub fn mosquitto_with(dir: &Path, port: u16, extra: &str) -> Option<(Peer, u16)> {
    let conf = dir.join(format!("mosquitto-{port}.conf"));
    std::fs::write(
        &conf,
        format!(
            "listener {port} 127.0.0.1\n{extra}\n\
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
        let _ = tx.send(false); // exited: the port was taken, or the configuration is wrong
    });
    match rx.recv_timeout(Duration::from_secs(10)) {
        Ok(true) => Some((
            Peer {
                child,
                name: "mosquitto".into(),
            },
            port,
        )),
        Ok(false) => {
            let _ = child.wait();
            None
        }
        Err(_) => {
            let _ = child.kill();
            panic!("mosquitto did not start within 10 s on port {port}");
        }
    }
}

/// Restarts Mosquitto on the port it had (a broker coming back where clients expect it);
/// retries while the old socket lingers.
pub fn mosquitto_again(dir: &Path, port: u16, extra: &str) -> Peer {
    for _ in 0..20 {
        if let Some((peer, _)) = mosquitto_with(dir, port, extra) {
            return peer;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    panic!("mosquitto could not listen on port {port} again");
}

impl Peer {
    /// Stops the process with SIGTERM (a clean stop: Mosquitto saves its persistence file)
    /// and waits for it, at most 10 s.
    pub fn terminate(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill();
    }
}

/// A `mosquitto_sub` process whose lines (`-v`: topic, space, payload) are collected with the
/// instant each arrived.
pub struct Sub {
    pub peer: Peer,
    lines: std::sync::mpsc::Receiver<(Instant, String)>,
    pub got: Vec<(Instant, String, String)>,
}

impl Sub {
    /// Starts `mosquitto_sub -d -v -q 1 -t FILTER` with `args` (port, TLS, client id…) and
    /// returns once the broker acknowledged the subscription.
    pub fn start(args: &[&str], filter: &str) -> Sub {
        // stdbuf: mosquitto_sub's lines are block-buffered when stdout is a pipe.
        let mut child = Command::new("stdbuf")
            .args(["-oL", "mosquitto_sub", "-d", "-v", "-q", "1", "-t", filter])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send((Instant::now(), line)).is_err() {
                    break;
                }
            }
        });
        let mut got = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines.recv_timeout(left) {
                Ok((_, line)) if line.contains("received SUBACK") => break,
                // A persistent session's queued messages may come before the SUBACK.
                Ok((at, line)) => {
                    if let Some(m) = Sub::message(at, &line) {
                        got.push(m);
                    }
                }
                Err(e) => panic!("mosquitto_sub did not subscribe to {filter}: {e}"),
            }
        }
        Sub {
            peer: Peer {
                child,
                name: "mosquitto_sub".into(),
            },
            lines,
            got,
        }
    }

    fn message(at: Instant, line: &str) -> Option<(Instant, String, String)> {
        if line.starts_with("Client ") || line.starts_with("Subscribed (") {
            return None;
        }
        line.split_once(' ')
            .map(|(t, p)| (at, t.to_string(), p.to_string()))
    }

    /// Collects lines until `done` holds for the messages so far, or `within` passes.
    pub fn wait(
        &mut self,
        within: Duration,
        done: impl Fn(&[(Instant, String, String)]) -> bool,
    ) -> bool {
        let deadline = Instant::now() + within;
        loop {
            if done(&self.got) {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            match self
                .lines
                .recv_timeout(left.min(Duration::from_millis(100)))
            {
                Ok((at, line)) => {
                    if let Some(m) = Sub::message(at, &line) {
                        self.got.push(m);
                    }
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                Err(_) => return done(&self.got),
            }
        }
    }
}

/// `firebreak watch` as a process, its stdout lines collected.
pub struct Watch {
    pub peer: Peer,
    out: std::sync::mpsc::Receiver<String>,
    pub lines: Vec<String>,
    /// What it wrote to stderr until it had subscribed on every broker.
    pub stderr: Vec<String>,
}

impl Watch {
    /// Starts `firebreak watch ARGS` and waits until it subscribed on `brokers` brokers. Only
    /// its lines about triggers and states are kept (`ACCEPTED`, `REJECTED`, `STATE`,
    /// `missed:`, and their JSON): tests of triggers need not know when heartbeats come or a
    /// gateway turns stale; [`Watch::start_with_status`] keeps every line.
    pub fn start(args: &[String], brokers: usize, env: &[(&str, &Path)]) -> Watch {
        Watch::starting(args, brokers, env, false)
    }

    /// [`Watch::start`], keeping every line.
    pub fn start_with_status(args: &[String], brokers: usize, env: &[(&str, &Path)]) -> Watch {
        Watch::starting(args, brokers, env, true)
    }

    fn starting(args: &[String], brokers: usize, env: &[(&str, &Path)], status: bool) -> Watch {
        let mut cmd = Command::new(firebreak_bin());
        cmd.arg("watch")
            .args(args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let (tx, out) = std::sync::mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let about_triggers = ["ACCEPTED ", "REJECTED ", "STATE ", "missed: "]
                    .iter()
                    .any(|p| line.starts_with(p))
                    || ["accepted", "rejected", "state", "missed"]
                        .iter()
                        .any(|e| line.contains(&format!("\"event\":\"{e}\"")));
                if status || about_triggers {
                    let _ = tx.send(line);
                }
            }
        });
        let (etx, err) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = etx.send(line);
            }
        });
        let peer = Peer {
            child,
            name: "firebreak watch".into(),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut subscribed = 0;
        let mut stderr = Vec::new();
        while subscribed < brokers {
            let left = deadline.saturating_duration_since(Instant::now());
            match err.recv_timeout(left) {
                Ok(line) => {
                    subscribed += usize::from(line.starts_with("watch: subscribed to"));
                    stderr.push(line);
                }
                Err(e) => panic!(
                    "watch subscribed on {subscribed} of {brokers} brokers: {e}; stderr: {stderr:#?}"
                ),
            }
        }
        Watch {
            peer,
            out,
            lines: Vec::new(),
            stderr,
        }
    }

    /// Collects lines until `done` holds for them; fails the test when `within` passes first.
    /// Every line so far.
    pub fn wait_for(&mut self, within: Duration, done: impl Fn(&[String]) -> bool) -> Vec<String> {
        let deadline = Instant::now() + within;
        while !done(&self.lines) {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "timed out: {:#?}", self.lines);
            let n = self.lines.len() + 1;
            self.wait(n, left.min(Duration::from_millis(200)));
        }
        self.lines.clone()
    }

    /// Collects lines until `count` are there or `within` passes.
    pub fn wait(&mut self, count: usize, within: Duration) -> &[String] {
        let deadline = Instant::now() + within;
        while self.lines.len() < count {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.out.recv_timeout(left) {
                Ok(line) => self.lines.push(line),
                Err(_) => break,
            }
        }
        &self.lines
    }
}

/// Publishes `payload` on `topic` with QoS 1 (`mosquitto_pub`), retained when `retain`.
pub fn mosquitto_pub(port: u16, topic: &str, payload: &[u8], retain: bool) {
    mosquitto_pub_with(port, &[], topic, payload, retain);
}

/// [`mosquitto_pub`] with more arguments (`--cafile`, `-u`, `-P` …).
pub fn mosquitto_pub_with(port: u16, args: &[&str], topic: &str, payload: &[u8], retain: bool) {
    let mut cmd = Command::new("mosquitto_pub");
    cmd.args(args);
    cmd.args([
        "-h",
        "127.0.0.1",
        "-p",
        &port.to_string(),
        "-q",
        "1",
        "-t",
        topic,
    ]);
    // An empty payload (clearing a retained message) is `-n`: `-s` refuses empty input.
    cmd.arg(if payload.is_empty() { "-n" } else { "-s" });
    if retain {
        cmd.arg("-r");
    }
    let mut child = cmd.stdin(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(payload).unwrap();
    assert!(child.wait().unwrap().success());
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
    /// Sends the gateway `SIGHUP` (reload its configuration).
    pub fn sighup(&self) {
        let ok = Command::new("kill")
            .args(["-HUP", &self.peer.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -HUP");
    }

    /// Writes `config` (with `{HTTP}` replaced by a free address) and starts `firebreak run`.
    pub fn start(dir: &Path, config: &str) -> Gateway {
        Gateway::start_logging(dir, config, None)
    }

    /// [`Gateway::start`], its warnings and errors written to `log` when given.
    pub fn start_logging(dir: &Path, config: &str, log: Option<&Path>) -> Gateway {
        Gateway::start_with_env(dir, config, log, &[])
    }

    /// [`Gateway::start_logging`] with environment variables set for the gateway alone.
    pub fn start_with_env(
        dir: &Path,
        config: &str,
        log: Option<&Path>,
        env: &[(&str, &str)],
    ) -> Gateway {
        let http_port = free_port();
        let path = dir.join("site.toml");
        std::fs::write(
            &path,
            config.replace("{HTTP}", &format!("127.0.0.1:{http_port}")),
        )
        .unwrap();
        let stderr = match log {
            Some(log) => Stdio::from(std::fs::File::create(log).unwrap()),
            None => Stdio::null(),
        };
        let child = Command::new(firebreak_bin())
            .args(["run", "--config"])
            .arg(&path)
            .env("RUST_LOG", "warn")
            .env("NO_COLOR", "1")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(stderr)
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

/// Rules for tests that drive levels from MQTT evidence: off-gas or smoke alone raise
/// `prepare`, both together `evacuate`.
#[allow(dead_code)] // not every test binary uses it
pub const FIRE_RULES: &str = r#"
[[rules]]
id = "off-gas"
kind = "threshold"
signal = "off-gas"
above = 20.0
clear = 10.0
level = "prepare"

[[rules]]
id = "smoke"
kind = "state"
signal = "smoke-alarm"
level = "prepare"

[[rules]]
id = "fire-corroborated"
kind = "combine"
of = ["off-gas", "smoke"]
need = 2
corroborate = 2
level = "evacuate"
"#;
