//! The processes the rig runs: the gateway under test (`firebreak run`) and, for scenarios
//! that stop and restart the broker, a Mosquitto it starts and stops itself.

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

use super::RigError;

/// A free TCP port on 127.0.0.1 (bound and released: the caller must cope with losing it).
pub fn free_port() -> Result<u16, RigError> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| RigError::Setup(format!("no free loopback port: {e}")))
}

/// Sends SIGTERM to a process (a clean stop) by running `kill`, which every POSIX system has.
async fn terminate(child: &mut Child, within: Duration) {
    if let Some(pid) = child.id() {
        let _ = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .await;
        if tokio::time::timeout(within, child.wait()).await.is_ok() {
            return;
        }
    }
    let _ = child.kill().await;
}

/// Strips ANSI colour sequences from a log line.
fn plain(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The `seq=N` of a gateway log line that reports a trigger issued.
pub fn issued_seq(line: &str) -> Option<u64> {
    let line = plain(line);
    if !line.contains("trigger issued") {
        return None;
    }
    let rest = line.split("seq=").nth(1)?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// The status port was taken: try another.
struct Taken;

/// The gateway under test: `firebreak run --config FILE --time-scale X`, as a process.
#[derive(Debug)]
pub struct Gateway {
    bin: PathBuf,
    config: PathBuf,
    log: PathBuf,
    time_scale: f64,
    http_port: u16,
    child: Option<Child>,
    /// Every seq the gateway logged as issued (`trigger issued seq=N`), across restarts.
    issued: Arc<Mutex<BTreeSet<u64>>>,
    starts: u32,
}

impl Gateway {
    /// A gateway to start with [`Gateway::start`]: its binary, configuration, log file and
    /// status port (the one in the configuration).
    pub fn new(bin: &Path, config: &Path, log: &Path, time_scale: f64, http_port: u16) -> Self {
        Gateway {
            bin: bin.to_path_buf(),
            config: config.to_path_buf(),
            log: log.to_path_buf(),
            time_scale,
            http_port,
            child: None,
            issued: Arc::new(Mutex::new(BTreeSet::new())),
            starts: 0,
        }
    }

    /// Starts the process and waits (at most `within`) until `/healthz` answers. When its
    /// status port was taken in the meantime (ports are picked free, then bound by the
    /// gateway), it moves the configuration to another free port and tries again.
    pub async fn start(&mut self, within: Duration) -> Result<(), RigError> {
        for _ in 0..5 {
            match self.start_once(within).await {
                Err(Taken) => {
                    let port = free_port()?;
                    let text = std::fs::read_to_string(&self.config)
                        .map_err(|e| RigError::Setup(format!("{}: {e}", self.config.display())))?;
                    let text = text.replace(
                        &format!("\"127.0.0.1:{}\"", self.http_port),
                        &format!("\"127.0.0.1:{port}\""),
                    );
                    std::fs::write(&self.config, text)
                        .map_err(|e| RigError::Setup(format!("{}: {e}", self.config.display())))?;
                    self.http_port = port;
                }
                Ok(r) => return r,
            }
        }
        Err(RigError::Setup(
            "the gateway found its status port taken five times".into(),
        ))
    }

    async fn start_once(&mut self, within: Duration) -> Result<Result<(), RigError>, Taken> {
        self.starts += 1;
        let spawned = Command::new(&self.bin)
            .arg("run")
            .arg("--config")
            .arg(&self.config)
            .arg("--time-scale")
            .arg(self.time_scale.to_string())
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn();
        let mut child = match spawned {
            Ok(c) => c,
            Err(e) => {
                return Ok(Err(RigError::Setup(format!(
                    "cannot start the gateway {}: {e} (build it, or give --gateway-bin or FIREBREAK_BIN)",
                    self.bin.display()
                ))));
            }
        };
        let (taken_tx, mut taken) = tokio::sync::watch::channel(false);
        if let Some(stderr) = child.stderr.take() {
            let issued = self.issued.clone();
            let log = self.log.clone();
            let start = self.starts;
            tokio::spawn(async move {
                let mut file = tokio::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&log)
                    .await
                    .ok();
                if let Some(f) = file.as_mut() {
                    let _ = f
                        .write_all(format!("---- gateway start {start}\n").as_bytes())
                        .await;
                }
                let mut lines = BufReader::new(stderr).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    if let Some(seq) = issued_seq(&line)
                        && let Ok(mut set) = issued.lock()
                    {
                        set.insert(seq);
                    }
                    if line.contains("http.bind") && line.contains("Address already in use") {
                        let _ = taken_tx.send(true);
                    }
                    if let Some(f) = file.as_mut() {
                        let _ = f.write_all(line.as_bytes()).await;
                        let _ = f.write_all(b"\n").await;
                    }
                }
            });
        }
        self.child = Some(child);
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if http_get(self.http_port, "/healthz").await.is_some() {
                return Ok(Ok(()));
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                // Let the log reader see the last lines.
                tokio::time::sleep(Duration::from_millis(100)).await;
                if *taken.borrow_and_update() {
                    return Err(Taken);
                }
                return Ok(Err(RigError::Setup(format!(
                    "the gateway exited ({status}) before answering /healthz; its log: {}\n{}",
                    self.log.display(),
                    tail(&self.log, 12)
                ))));
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(Err(RigError::Setup(format!(
                    "the gateway did not answer /healthz on 127.0.0.1:{} within {within:?}; its log: {}",
                    self.http_port,
                    self.log.display()
                ))));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Its status port now.
    pub fn http_port(&self) -> u16 {
        self.http_port
    }

    /// `kill -9`: no clean shutdown, as a crash.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }

    /// SIGTERM, then SIGKILL after 5 s.
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            terminate(&mut child, Duration::from_secs(5)).await;
        }
    }

    /// Whether the process runs (it may have died on its own).
    pub fn running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// The seqs the gateway said it issued.
    pub fn issued(&self) -> BTreeSet<u64> {
        self.issued.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// `GET path` on its status endpoint.
    pub async fn get(&self, path: &str) -> Option<String> {
        http_get(self.http_port, path).await
    }
}

/// The last `n` lines of a file, for error messages.
pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines
        .get(lines.len().saturating_sub(n)..)
        .unwrap_or_default()
        .join("\n")
}

/// `GET path` on 127.0.0.1:port over HTTP/1.0; the body of a 200 answer.
pub async fn http_get(port: u16, path: &str) -> Option<String> {
    let io = async {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()?;
        s.write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
            .await
            .ok()?;
        let mut text = String::new();
        s.read_to_string(&mut text).await.ok()?;
        let (head, body) = text.split_once("\r\n\r\n")?;
        let ok = head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200");
        ok.then(|| body.to_string())
    };
    tokio::time::timeout(Duration::from_secs(5), io)
        .await
        .ok()
        .flatten()
}

/// Waits until the gateway's `/status` on `port` shows every device read at least once (at
/// most `within`), so that a replay starts with the gateway's view of the site complete.
/// Returns whether it did.
pub async fn wait_polled(port: u16, within: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        if let Some(body) = http_get(port, "/status").await
            && let Ok(status) = serde_json::from_str::<serde_json::Value>(&body)
            && let Some(devices) = status.get("devices").and_then(|d| d.as_array())
            && devices
                .iter()
                .all(|d| d.get("polls").and_then(|p| p.as_u64()).unwrap_or(0) > 0)
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// What the gateway measured reading the firmware nodes over Modbus RTU, from its `/metrics`.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct RtuFigures {
    /// Polls of the nodes.
    pub polls: u64,
    /// Mean time a poll of a node took, ms.
    pub mean_poll_ms: Option<f64>,
    /// The gateway's errors reading the nodes, by kind (`timeout`, `transport`, `decode`, …).
    pub errors: std::collections::BTreeMap<String, u64>,
    /// The node reboots the gateway saw (from their uptime), by reset reason.
    pub reboots: std::collections::BTreeMap<String, u64>,
}

/// A metric line's label value: `name{device="x",kind="y"} 3` → `kind` → `y`.
fn label<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let rest = line.split(&format!("{name}=\"")).nth(1)?;
    rest.split('"').next()
}

/// Reads [`RtuFigures`] for `devices` from the gateway's `/metrics` text.
pub fn rtu_figures_of(metrics: &str, devices: &[String]) -> RtuFigures {
    let mut f = RtuFigures::default();
    let mut sum_s = 0.0;
    for line in metrics.lines().filter(|l| !l.starts_with('#')) {
        let Some(device) = label(line, "device") else {
            continue;
        };
        if !devices.iter().any(|d| d == device) {
            continue;
        }
        let Some(value) = line.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) else {
            continue;
        };
        if line.starts_with("firebreak_poll_seconds_sum{") {
            sum_s += value;
        } else if line.starts_with("firebreak_poll_seconds_count{") {
            f.polls += value as u64;
        } else if line.starts_with("firebreak_errors_total{")
            && let Some(kind) = label(line, "kind")
        {
            *f.errors.entry(kind.to_string()).or_insert(0) += value as u64;
        } else if line.starts_with("firebreak_device_reboots_total{")
            && let Some(reason) = label(line, "reason")
            && value > 0.0
        {
            *f.reboots.entry(reason.to_string()).or_insert(0) += value as u64;
        }
    }
    f.mean_poll_ms = (f.polls > 0).then(|| sum_s * 1000.0 / f.polls as f64);
    f
}

/// Scrapes the gateway's `/metrics` on `port` for [`RtuFigures`] of `devices`.
pub async fn rtu_figures(port: u16, devices: &[String]) -> Option<RtuFigures> {
    let body = http_get(port, "/metrics").await?;
    Some(rtu_figures_of(&body, devices))
}

/// The Mosquitto program: `mosquitto` on the PATH, else /usr/sbin/mosquitto (where Debian
/// puts it, often not on a user's PATH).
pub fn find_mosquitto() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join("mosquitto"))
        .chain([PathBuf::from("/usr/sbin/mosquitto")])
        .find(|p| p.is_file())
}

/// A Mosquitto broker the rig starts and stops, on a free loopback port, with persistence in
/// its own directory: a stop (SIGTERM) saves the sessions and a restart restores them, so the
/// rig's subscriber keeps its subscription across a `broker-stop`, as a controller with a
/// persistent session on a real broker would.
#[derive(Debug)]
pub struct Mosquitto {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl Mosquitto {
    /// Starts it on a free port, its files in `dir`.
    pub async fn start(bin: &Path, dir: &Path) -> Result<Mosquitto, RigError> {
        let mut last = String::new();
        for _ in 0..5 {
            let mut m = Mosquitto {
                bin: bin.to_path_buf(),
                dir: dir.to_path_buf(),
                port: free_port()?,
                child: None,
            };
            match m.launch().await {
                Ok(()) => return Ok(m),
                Err(e) => last = e.to_string(),
            }
        }
        Err(RigError::Setup(format!(
            "mosquitto did not start on five free ports: {last}"
        )))
    }

    /// Where it listens.
    pub fn port(&self) -> u16 {
        self.port
    }

    async fn launch(&mut self) -> Result<(), RigError> {
        let conf = self.dir.join("mosquitto.conf");
        let text = format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location {dir}/\n\
             log_dest stderr\nlog_type error\nlog_type warning\nlog_type notice\nlog_type information\n",
            port = self.port,
            dir = self.dir.display()
        );
        std::fs::write(&conf, text)
            .map_err(|e| RigError::Setup(format!("{}: {e}", conf.display())))?;
        let mut child = Command::new(&self.bin)
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| RigError::Setup(format!("cannot start {}: {e}", self.bin.display())))?;
        let stderr = child
            .stderr
            .take()
            .ok_or_else(|| RigError::Setup("mosquitto: no stderr".into()))?;
        let log = self.dir.join("mosquitto.log");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let mut tx = Some(tx);
            let mut file = tokio::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log)
                .await
                .ok();
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                // "mosquitto version 2.0.x running": the listener is open.
                if line.contains(" running")
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(());
                }
                if let Some(f) = file.as_mut() {
                    let _ = f.write_all(line.as_bytes()).await;
                    let _ = f.write_all(b"\n").await;
                }
            }
        });
        match tokio::time::timeout(Duration::from_secs(10), rx).await {
            Ok(Ok(())) => {
                self.child = Some(child);
                Ok(())
            }
            _ => {
                let _ = child.kill().await;
                Err(RigError::Setup(format!(
                    "mosquitto did not open port {} (taken, or a bad configuration)",
                    self.port
                )))
            }
        }
    }

    /// Stops it cleanly (SIGTERM: it saves its persistence file).
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            terminate(&mut child, Duration::from_secs(10)).await;
        }
    }

    /// Starts it again on the same port, retrying while the old socket lingers.
    pub async fn restart(&mut self) -> Result<(), RigError> {
        let mut last = String::new();
        for _ in 0..40 {
            match self.launch().await {
                Ok(()) => return Ok(()),
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        Err(RigError::Setup(format!(
            "mosquitto could not listen on port {} again: {last}",
            self.port
        )))
    }
}

#[cfg(test)]
mod rtu_tests {
    use super::*;

    #[test]
    fn rtu_figures_are_read_from_the_metrics() {
        let text = "# HELP x\nfirebreak_poll_seconds_sum{device=\"node-b1\"} 0.5\nfirebreak_poll_seconds_count{device=\"node-b1\"} 20\nfirebreak_poll_seconds_sum{device=\"ups-b1\"} 9\nfirebreak_errors_total{device=\"node-b1\",kind=\"timeout\"} 2\nfirebreak_errors_total{device=\"node-b1\",kind=\"decode\"} 1\nfirebreak_device_reboots_total{device=\"node-b1\",reason=\"watchdog\"} 1\nfirebreak_device_reboots_total{device=\"node-b1\",reason=\"power-on\"} 0\n";
        let f = rtu_figures_of(text, &["node-b1".to_string()]);
        assert_eq!(f.polls, 20);
        assert_eq!(f.mean_poll_ms, Some(25.0));
        assert_eq!(f.errors.get("timeout"), Some(&2));
        assert_eq!(f.errors.get("decode"), Some(&1));
        assert_eq!(f.reboots.len(), 1, "only reasons that happened");
        assert_eq!(f.reboots.get("watchdog"), Some(&1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_issued_seqs_from_the_log() {
        assert_eq!(
            issued_seq(
                "2026-01-01T00:00:00.000Z  INFO firebreak_gateway::deliver: trigger issued seq=1700000000123 level=watch previous=normal zone=None"
            ),
            Some(1_700_000_000_123)
        );
        assert_eq!(
            issued_seq(
                "\u{1b}[2m2026\u{1b}[0m INFO trigger issued \u{1b}[3mseq\u{1b}[0m\u{1b}[2m=\u{1b}[0m42 level=x"
            ),
            Some(42)
        );
        assert_eq!(issued_seq("INFO delivery started next_seq=5"), None);
    }
}
