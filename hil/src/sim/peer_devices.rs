//! Devices served by programs nobody here wrote, started per run on free loopback ports and
//! killed when dropped:
//!
//! - [`NutServer`]: Debian's NUT, `upsd` with one `dummy-ups` driver per UPS. The rig rewrites
//!   each UPS's `.dev` file from the scenario clock (every [`FEED_EVERY`] of real time, when a
//!   value changed); dummy-ups, in its `dummy-once` mode (NUT 2.8: `.dev` files), reads the
//!   file again when its modification time changes, at most once per driver poll
//!   (`pollinterval = 1`, its minimum: one second). It compares that time in whole seconds,
//!   so the rig stamps each version one second after the last (`set_modified`), else a second
//!   write within a second of the first is never read (seen here with wall-clock times).
//!   A probe reads upsd back every [`PROBE_EVERY`] and measures how long a written version
//!   took to be served ([`NutFigures`]).
//! - [`SnmpServer`]: snmpsim (from PyPI, in a venv) serving recordings of real devices from
//!   snmpsim-data, each under its file name as community.
//!
//! `gateway/tests/common/snmp.rs` starts snmpsim the same way for the gateway's tests; `hil`
//! cannot use test files of another crate, so the few lines it needs are here: a data
//! directory `nobody` can read (snmpsim drops to it when started as root), a cache directory
//! of its own (the default is shared under /tmp), readiness by `snmpgetnext`.

use std::collections::{BTreeMap, VecDeque};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use firebreak_protocols::Signal;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

use super::SimDevice;
use crate::clock::ScenarioClock;
use crate::time::ScenarioTime;

/// How often the rig looks at the scenario clock and rewrites a `.dev` file that changed.
pub const FEED_EVERY: Duration = Duration::from_millis(100);
/// How often the probe reads upsd back.
pub const PROBE_EVERY: Duration = Duration::from_millis(50);
/// How long a peer may take to serve its first answer.
const READY_WITHIN: Duration = Duration::from_secs(20);

/// Where NUT's daemons are: FIREBREAK_NUT_DIR, else Debian's `/lib/nut`.
pub fn nut_dir() -> PathBuf {
    std::env::var_os("FIREBREAK_NUT_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/lib/nut"))
}

/// The venv with snmpsim and snmpsim-data: FIREBREAK_SNMPSIM_VENV, else the one
/// scripts/test.sh makes in the workspace (`.peers/snmpsim-venv`).
pub fn snmpsim_venv() -> PathBuf {
    std::env::var_os("FIREBREAK_SNMPSIM_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../.peers/snmpsim-venv"))
}

/// Whether this process runs as root (the owner of `/proc/self`).
fn is_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// A temporary directory others can read (snmpsim drops to `nobody`).
fn readable_tempdir(prefix: &str) -> Result<tempfile::TempDir, String> {
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .map_err(|e| format!("no temporary directory: {e}"))?;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
        .map_err(|e| format!("{}: {e}", dir.path().display()))?;
    Ok(dir)
}

fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free loopback port: {e}"))
}

fn free_udp_port() -> Result<u16, String> {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free loopback UDP port: {e}"))
}

// ---------------------------------------------------------------------------------------------
// NUT

/// The variables of a UPS's `.dev` file at `t`: what the Modbus simulator would serve,
/// in NUT's names, quantized as a UPS card reports them (runtime, charge and load whole,
/// voltages and temperature to a tenth).
pub fn nut_vars(device: &SimDevice, t: ScenarioTime) -> Vec<(&'static str, String)> {
    let v = |s: Signal| device.value_at(s, 0, t);
    let on = |s: Signal| v(s) >= 0.5;
    let mut status = vec![if on(Signal::UpsOnBattery) {
        "OB DISCHRG"
    } else {
        "OL"
    }];
    if on(Signal::UpsLowBattery) {
        status.push("LB");
    }
    if on(Signal::UpsReplaceBattery) {
        status.push("RB");
    }
    vec![
        ("ups.status", status.join(" ")),
        (
            "battery.runtime",
            format!("{:.0}", v(Signal::UpsRuntimeRemaining)),
        ),
        (
            "battery.charge",
            format!("{:.0}", v(Signal::UpsBatteryCharge)),
        ),
        (
            "battery.temperature",
            format!("{:.1}", v(Signal::UpsBatteryTemperature)),
        ),
        (
            "input.voltage",
            format!("{:.1}", v(Signal::UpsInputVoltage)),
        ),
        (
            "output.voltage",
            format!("{:.1}", v(Signal::UpsOutputVoltage)),
        ),
        ("ups.load", format!("{:.0}", v(Signal::UpsLoad))),
    ]
}

/// What the probe measured: how the `.dev` versions the rig wrote reached upsd.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct NutFigures {
    /// Versions of the `.dev` files written.
    pub writes: u64,
    /// Versions upsd served (the others were replaced before dummy-ups read them).
    pub served: u64,
    /// Per version written: real milliseconds until the probe saw upsd serve it or a newer
    /// version (how stale upsd's values were), sorted.
    pub lag_ms: Vec<u64>,
}

impl NutFigures {
    /// The `q` quantile (0..=1) of the lags, ms.
    pub fn lag_quantile(&self, q: f64) -> Option<u64> {
        let n = self.lag_ms.len();
        if n == 0 {
            return None;
        }
        let i = ((n - 1) as f64 * q).round() as usize;
        self.lag_ms.get(i.min(n - 1)).copied()
    }

    /// One line for a result's notes.
    pub fn summary(&self) -> String {
        let q = |q| {
            self.lag_quantile(q)
                .map_or("-".to_string(), |v| format!("{v} ms"))
        };
        format!(
            "NUT: {} versions of the .dev file written, {} of them read by dummy-ups and served by upsd; a value written reached upsd after p50 {}, p95 {}, max {} (dummy-ups re-reads the file once a second)",
            self.writes,
            self.served,
            q(0.5),
            q(0.95),
            q(1.0)
        )
    }
}

/// A version of a `.dev` file, written at `at`, not yet seen served.
struct Pending {
    vars: Vec<(&'static str, String)>,
    at: Instant,
}

/// One UPS of a [`NutServer`].
struct NutUps {
    name: String,
    device: Arc<SimDevice>,
    file: PathBuf,
    last: Option<Vec<(&'static str, String)>>,
    pending: VecDeque<Pending>,
}

/// upsd and a dummy-ups per UPS, fed from the scenario clock.
#[derive(Debug)]
pub struct NutServer {
    port: u16,
    _children: Vec<Child>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    figures: Arc<Mutex<NutFigures>>,
    _dir: tempfile::TempDir,
}

impl Drop for NutServer {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// `id -un`: the user NUT's daemons run as (they refuse to stay root without `-u`).
async fn user_name() -> Result<String, String> {
    let out = Command::new("id")
        .arg("-un")
        .output()
        .await
        .map_err(|e| format!("id -un: {e}"))?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Writes `text` to `file` through a temporary file and a rename (dummy-ups never reads half
/// a file), stamped `mtime`.
fn write_dev(file: &Path, text: &str, mtime: SystemTime) -> std::io::Result<()> {
    let tmp = file.with_extension("dev.tmp");
    {
        let mut f = std::fs::File::create(&tmp)?;
        std::io::Write::write_all(&mut f, text.as_bytes())?;
        f.set_modified(mtime)?;
    }
    std::fs::rename(&tmp, file)
}

fn dev_text(vars: &[(&'static str, String)]) -> String {
    vars.iter().map(|(k, v)| format!("{k}: {v}\n")).collect()
}

/// `LIST VAR ups` on upsd at 127.0.0.1:`port`: every variable, or why not.
pub async fn nut_list_vars(port: u16, ups: &str) -> Result<BTreeMap<String, String>, String> {
    let io = async {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .map_err(|e| e.to_string())?;
        s.write_all(format!("LIST VAR {ups}\n").as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut lines = BufReader::new(s).lines();
        let mut vars = BTreeMap::new();
        while let Some(line) = lines.next_line().await.map_err(|e| e.to_string())? {
            if line.starts_with("ERR") {
                return Err(line);
            }
            if line.starts_with("END LIST") {
                return Ok(vars);
            }
            if let Some(rest) = line.strip_prefix(&format!("VAR {ups} "))
                && let Some((name, value)) = rest.split_once(' ')
            {
                vars.insert(name.to_string(), value.trim_matches('"').to_string());
            }
        }
        Err("upsd closed the connection".to_string())
    };
    tokio::time::timeout(Duration::from_secs(2), io)
        .await
        .map_err(|_| "upsd did not answer within 2 s".to_string())?
}

impl NutServer {
    /// Starts a dummy-ups for each of `devices` (each UPS is named as its device) and upsd on
    /// a free port, writes their `.dev` files at the clock's time and returns once upsd
    /// serves every one; then keeps the files following the clock. Why not, when NUT is not
    /// installed or does not start.
    pub async fn start(
        devices: Vec<Arc<SimDevice>>,
        clock: ScenarioClock,
    ) -> Result<NutServer, String> {
        let lib = nut_dir();
        let (upsd, driver) = (lib.join("upsd"), lib.join("dummy-ups"));
        if !upsd.is_file() || !driver.is_file() {
            return Err(format!(
                "NUT's upsd and dummy-ups are not in {} (Debian package nut-server; or FIREBREAK_NUT_DIR)",
                lib.display()
            ));
        }
        let dir = tempfile::Builder::new()
            .prefix("firebreak-hil-nut-")
            .tempdir()
            .map_err(|e| format!("no temporary directory: {e}"))?;
        let d = dir.path();
        let io = |e: std::io::Error| format!("{}: {e}", d.display());
        let user = user_name().await?;
        let now = clock.now();
        let mut ups = Vec::new();
        let mut conf = String::new();
        for device in devices {
            let name = device.name().to_string();
            let file = d.join(format!("{name}.dev"));
            let vars = nut_vars(&device, now);
            write_dev(&file, &dev_text(&vars), SystemTime::now()).map_err(io)?;
            // pollinterval 1: the driver looks at the file every second, its minimum.
            conf.push_str(&format!(
                "[{name}]\n  driver = dummy-ups\n  port = {name}.dev\n  desc = \"firebreak-hil {name}\"\n  pollinterval = 1\n"
            ));
            ups.push(NutUps {
                name,
                device,
                file,
                last: Some(vars),
                pending: VecDeque::new(),
            });
        }
        std::fs::write(d.join("ups.conf"), conf).map_err(io)?;
        std::fs::write(d.join("upsd.users"), "").map_err(io)?;
        let spawn = |program: &Path, args: &[&str], log: &str| {
            let log = std::fs::File::create(d.join(log)).map_err(io)?;
            let err = log.try_clone().map_err(io)?;
            let mut cmd = Command::new(program);
            cmd.args(args);
            for var in ["NUT_CONFPATH", "NUT_STATEPATH", "NUT_ALTPIDPATH"] {
                cmd.env(var, d);
            }
            cmd.stdin(Stdio::null())
                .stdout(log)
                .stderr(err)
                .kill_on_drop(true)
                .spawn()
                .map_err(|e| format!("cannot start {}: {e}", program.display()))
        };
        let mut children = Vec::new();
        for u in &ups {
            children.push(spawn(
                &driver,
                &["-a", &u.name, "-u", &user, "-D"],
                &format!("dummy-ups-{}.log", u.name),
            )?);
            let socket = d.join(format!("dummy-ups-{}", u.name));
            let deadline = Instant::now() + READY_WITHIN;
            while !socket.exists() {
                if Instant::now() > deadline {
                    return Err(format!(
                        "dummy-ups {} did not open its socket within {READY_WITHIN:?}; its log: {}",
                        u.name,
                        std::fs::read_to_string(d.join(format!("dummy-ups-{}.log", u.name)))
                            .unwrap_or_default()
                    ));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        let mut last = String::new();
        for _ in 0..5 {
            let port = free_port()?;
            std::fs::write(d.join("upsd.conf"), format!("LISTEN 127.0.0.1 {port}\n"))
                .map_err(io)?;
            let mut upsd_child = spawn(&upsd, &["-u", &user, "-D"], "upsd.log")?;
            let deadline = Instant::now() + READY_WITHIN;
            let mut ready = true;
            for u in &ups {
                loop {
                    match nut_list_vars(port, &u.name).await {
                        Ok(v) if v.get("ups.status").is_some_and(|s| s != "WAIT") => break,
                        Ok(v) => last = format!("{}: ups.status {:?}", u.name, v.get("ups.status")),
                        Err(e) => last = format!("{}: {e}", u.name),
                    }
                    if Instant::now() > deadline || matches!(upsd_child.try_wait(), Ok(Some(_))) {
                        ready = false;
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                if !ready {
                    break;
                }
            }
            if ready {
                children.push(upsd_child);
                let figures = Arc::new(Mutex::new(NutFigures::default()));
                let ups = Arc::new(tokio::sync::Mutex::new(ups));
                let tasks = vec![
                    tokio::spawn(feed(ups.clone(), clock.clone(), figures.clone())),
                    tokio::spawn(probe(ups, port, figures.clone())),
                ];
                return Ok(NutServer {
                    port,
                    _children: children,
                    tasks,
                    figures,
                    _dir: dir,
                });
            }
            let _ = upsd_child.kill().await;
        }
        Err(format!(
            "upsd did not serve the UPS data on five free ports: {last}; its log: {}",
            std::fs::read_to_string(d.join("upsd.log")).unwrap_or_default()
        ))
    }

    /// upsd's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `nut://127.0.0.1:PORT/NAME` for the UPS named `name`.
    pub fn url(&self, name: &str) -> String {
        format!("nut://127.0.0.1:{}/{name}", self.port)
    }

    /// What the probe measured so far.
    pub fn figures(&self) -> NutFigures {
        let mut f = self.figures.lock().map(|f| f.clone()).unwrap_or_default();
        f.lag_ms.sort_unstable();
        f
    }
}

impl std::fmt::Debug for NutUps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NutUps").field("name", &self.name).finish()
    }
}

/// Rewrites each `.dev` file whose values changed, every [`FEED_EVERY`]; each version is
/// stamped one second after the previous one.
async fn feed(
    ups: Arc<tokio::sync::Mutex<Vec<NutUps>>>,
    clock: ScenarioClock,
    figures: Arc<Mutex<NutFigures>>,
) {
    let base = SystemTime::now();
    let mut version = 0u64;
    loop {
        tokio::time::sleep(FEED_EVERY).await;
        let t = clock.now();
        let mut ups = ups.lock().await;
        for u in ups.iter_mut() {
            let vars = nut_vars(&u.device, t);
            if u.last.as_ref() == Some(&vars) {
                continue;
            }
            version += 1;
            let mtime = base + Duration::from_secs(version);
            if let Err(e) = write_dev(&u.file, &dev_text(&vars), mtime) {
                tracing::warn!(ups = %u.name, "cannot write {}: {e}", u.file.display());
                continue;
            }
            u.pending.push_back(Pending {
                vars: vars.clone(),
                at: Instant::now(),
            });
            u.last = Some(vars);
            if let Ok(mut f) = figures.lock() {
                f.writes += 1;
            }
        }
    }
}

/// Reads upsd back every [`PROBE_EVERY`]. When it serves a pending version, that version and
/// the older ones still pending are done: each one's lag is the time from its write until
/// upsd served it or a newer one (the older ones were replaced before dummy-ups read them).
async fn probe(
    ups: Arc<tokio::sync::Mutex<Vec<NutUps>>>,
    port: u16,
    figures: Arc<Mutex<NutFigures>>,
) {
    loop {
        tokio::time::sleep(PROBE_EVERY).await;
        let names: Vec<String> = ups.lock().await.iter().map(|u| u.name.clone()).collect();
        for name in names {
            let Ok(served) = nut_list_vars(port, &name).await else {
                continue;
            };
            let seen = Instant::now();
            let mut ups = ups.lock().await;
            let Some(u) = ups.iter_mut().find(|u| u.name == name) else {
                continue;
            };
            let matches = |p: &Pending| {
                p.vars
                    .iter()
                    .all(|(k, v)| served.get(*k).is_some_and(|s| s == v))
            };
            if let Some(i) = u.pending.iter().rposition(matches) {
                // This version and every older one still pending: from now on upsd serves
                // their values or newer ones.
                let lags: Vec<u64> = u
                    .pending
                    .drain(..=i)
                    .map(|p| seen.duration_since(p.at).as_millis() as u64)
                    .collect();
                if let Ok(mut f) = figures.lock() {
                    f.served += 1;
                    f.lag_ms.extend(lags);
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// snmpsim

/// snmpsim-data's `data` directory in `venv`.
fn snmpsim_data(venv: &Path) -> Option<PathBuf> {
    std::fs::read_dir(venv.join("lib"))
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path().join("site-packages/snmpsim_data/data"))
        .find(|p| p.is_dir())
}

/// The community snmpsim answers a recording under: its file name (`UPS/apc-8641` →
/// `apc-8641`).
pub fn community_of(recording: &str) -> &str {
    recording.rsplit('/').next().unwrap_or(recording)
}

/// The text of recording `name` in `data` (`.snmprec`, or `.snmprec.bz2` through `bzcat`).
async fn recording_text(data: &Path, name: &str) -> Result<String, String> {
    let plain = data.join(format!("{name}.snmprec"));
    if plain.is_file() {
        return std::fs::read_to_string(&plain).map_err(|e| format!("{}: {e}", plain.display()));
    }
    let bz2 = data.join(format!("{name}.snmprec.bz2"));
    if !bz2.is_file() {
        return Err(format!(
            "snmpsim-data has no recording {name} ({}.snmprec[.bz2])",
            data.join(name).display()
        ));
    }
    let out = Command::new("bzcat")
        .arg(&bz2)
        .output()
        .await
        .map_err(|e| format!("bzcat {}: {e}", bz2.display()))?;
    if !out.status.success() {
        return Err(format!("bzcat {}: {}", bz2.display(), out.status));
    }
    String::from_utf8(out.stdout).map_err(|e| format!("{}: {e}", bz2.display()))
}

/// snmpsim serving recordings on a free UDP port on 127.0.0.1 (SNMP v1/v2c).
#[derive(Debug)]
pub struct SnmpServer {
    port: u16,
    _child: Child,
    _dir: tempfile::TempDir,
}

impl SnmpServer {
    /// Starts snmpsim with `recordings` (paths under snmpsim-data without the extension) and
    /// returns once each answers a GETNEXT; why not, when snmpsim, snmpsim-data or
    /// `snmpgetnext` is missing, or it does not answer.
    pub async fn start(recordings: &[String]) -> Result<SnmpServer, String> {
        let venv = snmpsim_venv();
        let responder = venv.join("bin/snmpsim-command-responder");
        let data = snmpsim_data(&venv);
        let (true, Some(data)) = (responder.is_file(), data) else {
            return Err(format!(
                "snmpsim with snmpsim-data is not in {} (FIREBREAK_SNMPSIM_VENV; scripts/test.sh makes .peers/snmpsim-venv)",
                venv.display()
            ));
        };
        let dir = readable_tempdir("firebreak-hil-snmpsim-")?;
        let d = dir.path();
        let io = |e: std::io::Error| format!("{}: {e}", d.display());
        let mine = d.join("data");
        std::fs::create_dir(&mine).map_err(io)?;
        std::fs::set_permissions(&mine, std::fs::Permissions::from_mode(0o755)).map_err(io)?;
        let mut communities: Vec<&str> = Vec::new();
        for r in recordings {
            let community = community_of(r);
            if communities.contains(&community) {
                continue;
            }
            communities.push(community);
            let file = mine.join(format!("{community}.snmprec"));
            std::fs::write(&file, recording_text(&data, r).await?).map_err(io)?;
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).map_err(io)?;
        }
        // Its index files; by default under /tmp/snmpsim, shared by every simulator.
        let cache = d.join("cache");
        std::fs::create_dir(&cache).map_err(io)?;
        std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o777)).map_err(io)?;
        let log = d.join("snmpsim.log");
        let mut last = String::new();
        for _ in 0..5 {
            let port = free_udp_port()?;
            let out = std::fs::File::create(&log).map_err(io)?;
            let err = out.try_clone().map_err(io)?;
            let mut cmd = Command::new(&responder);
            cmd.arg("--data-dir")
                .arg(&mine)
                .arg("--cache-dir")
                .arg(&cache)
                .arg(format!("--agent-udpv4-endpoint=127.0.0.1:{port}"));
            if is_root() {
                // snmpsim refuses to run as root.
                cmd.args(["--process-user", "nobody", "--process-group", "nogroup"]);
            }
            let mut child = cmd
                .stdin(Stdio::null())
                .stdout(out)
                .stderr(err)
                .kill_on_drop(true)
                .spawn()
                .map_err(|e| format!("cannot start {}: {e}", responder.display()))?;
            let deadline = Instant::now() + READY_WITHIN;
            'wait: loop {
                let mut all = true;
                for c in &communities {
                    match getnext(port, c).await {
                        Ok(()) => {}
                        Err(e) => {
                            last = e;
                            all = false;
                            break;
                        }
                    }
                }
                if all {
                    return Ok(SnmpServer {
                        port,
                        _child: child,
                        _dir: dir,
                    });
                }
                if Instant::now() > deadline || matches!(child.try_wait(), Ok(Some(_))) {
                    break 'wait;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            let _ = child.kill().await;
            if last.contains("No such file") {
                break;
            }
        }
        Err(format!(
            "snmpsim did not answer on five free ports: {last}; its log: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        ))
    }

    /// Its UDP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }
}

/// net-snmp's `snmpgetnext` from the top of the tree: whether `community` answers.
async fn getnext(port: u16, community: &str) -> Result<(), String> {
    let persist = tempfile::tempdir().map_err(|e| e.to_string())?;
    let out = Command::new("snmpgetnext")
        .args(["-On", "-t", "0.5", "-r", "0", "-v2c", "-c", community])
        .arg(format!("127.0.0.1:{port}"))
        .arg("1.3.6")
        .env("MIBS", "")
        .env("SNMP_PERSISTENT_DIR", persist.path())
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| format!("snmpgetnext (net-snmp's snmp tools): {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if out.status.success() && text.starts_with('.') {
        Ok(())
    } else {
        Err(format!(
            "{community}: {}{}",
            text.trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Scenario;

    #[test]
    fn a_ups_on_battery_is_written_as_nut_names_it() {
        let text = r#"
name = "t"
description = "t"
start = "T-1m"
end = "T+1m"
power_loss_at = "T+1m"
evacuation_budget_s = 30
[expect]
evacuate_by = "T+30s"
[[devices]]
name = "ups-a1"
kind = "ups"
zone = "hall"
source = "nut"
[[timeline]]
device = "ups-a1"
signal = "ups-on-battery"
at = "T0"
value = true
[[timeline]]
device = "ups-a1"
signal = "ups-low-battery"
at = "T+30s"
value = true
[[timeline]]
device = "ups-a1"
signal = "ups-runtime-remaining"
from = "T0"
to = "T+1m"
start = 600
end = 0
"#;
        let s = Scenario::parse(text, "t.toml").unwrap();
        let d = SimDevice::from_scenario(&s.devices[0]);
        let at = |secs: i64| dev_text(&nut_vars(&d, ScenarioTime::from_millis(secs * 1000)));
        assert_eq!(
            at(-10),
            "ups.status: OL\nbattery.runtime: 600\nbattery.charge: 100\nbattery.temperature: 25.0\ninput.voltage: 230.0\noutput.voltage: 230.0\nups.load: 45\n"
        );
        assert!(at(15).starts_with("ups.status: OB DISCHRG\nbattery.runtime: 450\n"));
        assert!(at(45).starts_with("ups.status: OB DISCHRG LB\nbattery.runtime: 150\n"));
    }

    #[test]
    fn lag_quantiles() {
        let f = NutFigures {
            writes: 5,
            served: 3,
            lag_ms: vec![100, 500, 900],
        };
        assert_eq!(f.lag_quantile(0.5), Some(500));
        assert_eq!(f.lag_quantile(1.0), Some(900));
        assert!(f.summary().contains("3 of them read"), "{}", f.summary());
        assert_eq!(community_of("UPS/apc-8641"), "apc-8641");
    }
}
