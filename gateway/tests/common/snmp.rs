//! SNMP peers nobody here wrote, for tests of SNMP sources (issue #15):
//!
//! - [`Snmpsim`]: snmpsim (pysnmp's simulator, in the venv scripts/test.sh makes) serving
//!   recordings of real devices from PyPI's snmpsim-data over SNMP v1/v2c,
//! - [`Snmpd`]: Debian's net-snmp `snmpd` with one SNMPv3 user (SHA-256 + AES-128, authPriv),
//! - [`snmpget`] / [`snmpwalk`]: net-snmp's tools, to cross-check what a peer answers,
//! - [`Recording`]: a parser of `.snmprec` files, what snmpsim serves, to know the expected
//!   values without asking the simulator.
//!
//! Every peer runs on a free loopback UDP port, in its own temporary directory, and is killed
//! when dropped; every wait is bounded.

#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)] // test code

use std::collections::BTreeMap;
use std::fs;
use std::net::UdpSocket;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{Peer, require_peer, workspace};

/// How long a peer may take to answer its first request.
const READY_WITHIN: Duration = Duration::from_secs(20);

/// A free UDP port on 127.0.0.1 (bound, read, released: the peer binds it next; the peers'
/// starters retry on another port when it was taken in between).
pub fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Whether this process runs as root (the owner of `/proc/self` is the effective user).
fn is_root() -> bool {
    fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

/// How a starting peer's wait for its first answer ended.
enum Start {
    Ready,
    /// It exited: most likely another process took the port in between.
    Exited,
    /// Still running but no answer within [`READY_WITHIN`]: the last error.
    Silent(String),
}

/// Asks `ask` every 100 ms (each request itself bounded) until it succeeds, the process exits
/// or [`READY_WITHIN`] passes.
fn wait_answering(child: &mut Child, mut ask: impl FnMut() -> Result<(), String>) -> Start {
    let deadline = Instant::now() + READY_WITHIN;
    let mut last = String::from("no request made");
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return Start::Exited;
        }
        match ask() {
            Ok(()) => return Start::Ready,
            Err(e) => last = e,
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Start::Silent(last)
}

/// Fails the test when FIREBREAK_REQUIRE_PEERS=1, else says SKIPPED; always `None`.
fn missing<T>(what: &str) -> Option<T> {
    if std::env::var("FIREBREAK_REQUIRE_PEERS").as_deref() == Ok("1") {
        panic!("{what} is missing: run scripts/test.sh, which installs it");
    }
    eprintln!("SKIPPED: {what} is missing (run scripts/test.sh)");
    None
}

/// A temporary directory `nobody` can read (tempfile makes them 0700): snmpsim, started as
/// root, drops to nobody before it reads its recordings.
fn readable_tempdir(prefix: &str) -> tempfile::TempDir {
    let dir = tempfile::Builder::new().prefix(prefix).tempdir().unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

// ---------------------------------------------------------------------------------------------
// snmpsim and its recordings

/// The venv with snmpsim and snmpsim-data: FIREBREAK_SNMPSIM_VENV, or the one scripts/test.sh
/// makes (`.peers/snmpsim-venv`, from Debian's /usr/bin/python3 so that `nobody` can run it).
/// `None` (SKIPPED) when missing, or a failed test under FIREBREAK_REQUIRE_PEERS=1.
pub fn snmpsim_venv() -> Option<PathBuf> {
    let venv = std::env::var_os("FIREBREAK_SNMPSIM_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join(".peers/snmpsim-venv"));
    let venv = venv.canonicalize().unwrap_or(venv);
    if venv.join("bin/snmpsim-command-responder").exists() && data_dir_in(&venv).is_some() {
        Some(venv)
    } else {
        missing(&format!(
            "snmpsim with snmpsim-data ({})",
            venv.join("bin/snmpsim-command-responder").display()
        ))
    }
}

/// snmpsim-data's `data` directory inside `venv` (`lib/python3.*/site-packages/...`).
fn data_dir_in(venv: &Path) -> Option<PathBuf> {
    fs::read_dir(venv.join("lib"))
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path().join("site-packages/snmpsim_data/data"))
        .find(|p| p.is_dir())
}

/// The file of recording `name` (`UPS/apc-8641`, `network/appliance/tripplite-poweralert`):
/// `.snmprec` or `.snmprec.bz2` under snmpsim-data in `venv`.
fn recording_file(venv: &Path, name: &str) -> PathBuf {
    let data = data_dir_in(venv).expect("snmpsim-data in the venv");
    ["snmprec", "snmprec.bz2"]
        .iter()
        .map(|ext| data.join(format!("{name}.{ext}")))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "no recording {name}(.snmprec|.snmprec.bz2) in {}",
                data.display()
            )
        })
}

/// The text of a recording file, `.bz2` ones decompressed with `bzcat`.
fn recording_text(file: &Path) -> String {
    if file.extension().is_some_and(|e| e == "bz2") {
        let out = Command::new("bzcat").arg(file).output().expect("run bzcat");
        assert!(out.status.success(), "bzcat {}: {:?}", file.display(), out);
        String::from_utf8(out.stdout).expect("a UTF-8 recording")
    } else {
        fs::read_to_string(file).unwrap()
    }
}

/// The SNMP v2c community snmpsim answers a recording under: its file name without
/// `.snmprec` (`UPS/apc-8641` → `apc-8641`).
pub fn community_of(recording: &str) -> &str {
    recording.rsplit('/').next().unwrap_or(recording)
}

/// snmpsim-command-responder serving recordings of real devices on a free UDP port on
/// 127.0.0.1, SNMP v1/v2c, each recording under its own community ([`community_of`]). Killed
/// when dropped.
pub struct Snmpsim {
    peer: Peer,
    /// The UDP port on 127.0.0.1.
    pub port: u16,
    /// The recordings served, as given to [`Snmpsim::start`].
    pub recordings: Vec<String>,
    /// Its log (stdout and stderr): every request and response.
    pub log: PathBuf,
    dir: tempfile::TempDir,
}

impl Snmpsim {
    /// Kills the simulator now: its agent stops answering.
    pub fn stop(&mut self) {
        self.peer.kill();
    }
    /// Starts snmpsim serving `recordings` (paths under snmpsim-data without the extension:
    /// `"UPS/apc-8641"`, `"UPS/eaton-93e-80"`; `.bz2` ones are decompressed) and returns once
    /// it answers for every one of them. `None` when snmpsim is not installed (SKIPPED), a
    /// failed test when FIREBREAK_REQUIRE_PEERS=1.
    ///
    /// As root it runs as `nobody:nogroup` (snmpsim refuses to run as root): its directory is
    /// made readable for it.
    pub fn start(recordings: &[&str]) -> Option<Snmpsim> {
        let venv = snmpsim_venv()?;
        if !require_peer("snmpgetnext") {
            return None;
        }
        let mut dir = readable_tempdir("firebreak-snmpsim-");
        let data = dir.path().join("data");
        fs::create_dir(&data).unwrap();
        fs::set_permissions(&data, fs::Permissions::from_mode(0o755)).unwrap();
        for name in recordings {
            let community = community_of(name);
            assert!(
                recordings
                    .iter()
                    .filter(|r| community_of(r) == community)
                    .count()
                    == 1,
                "two recordings answer to community {community}"
            );
            let text = recording_text(&recording_file(&venv, name));
            let file = data.join(format!("{community}.snmprec"));
            fs::write(&file, text).unwrap();
            fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();
        }
        // Its index files: by default under /tmp/snmpsim, shared by every simulator.
        let cache = dir.path().join("cache");
        fs::create_dir(&cache).unwrap();
        fs::set_permissions(&cache, fs::Permissions::from_mode(0o777)).unwrap();
        let log = dir.path().join("snmpsim.log");
        for _ in 0..5 {
            let port = free_udp_port();
            let mut cmd = Command::new(venv.join("bin/snmpsim-command-responder"));
            cmd.arg("--data-dir")
                .arg(&data)
                .arg("--cache-dir")
                .arg(&cache)
                .arg(format!("--agent-udpv4-endpoint=127.0.0.1:{port}"));
            if is_root() {
                cmd.args(["--process-user", "nobody", "--process-group", "nogroup"]);
            }
            let out = fs::File::create(&log).unwrap();
            let child = cmd
                .stdin(Stdio::null())
                .stdout(out.try_clone().unwrap())
                .stderr(out)
                .spawn()
                .unwrap_or_else(|e| panic!("start snmpsim: {e}"));
            let mut sim = Snmpsim {
                peer: Peer {
                    child,
                    name: "snmpsim".into(),
                },
                port,
                recordings: recordings.iter().map(|r| r.to_string()).collect(),
                log: log.clone(),
                dir,
            };
            // Ready when every recording answers a GETNEXT from the top: its index is built
            // (snmpsim builds it at start, and again on the first request).
            let address = sim.address();
            let ready = wait_answering(&mut sim.peer.child, || {
                for r in recordings {
                    let args = ["-t", "0.5", "-r", "0", "-v2c", "-c", community_of(r)];
                    let out = net_snmp("snmpgetnext", &[&args[..], &[&address, "1.3.6"]].concat())?;
                    if !out.starts_with('.') {
                        return Err(format!("{r}: {out}"));
                    }
                }
                Ok(())
            });
            match ready {
                Start::Ready => return Some(sim),
                // Most likely another process took the port: try another one.
                Start::Exited => {
                    let Snmpsim {
                        mut peer, dir: d, ..
                    } = sim;
                    peer.kill();
                    dir = d;
                }
                Start::Silent(last) => panic!(
                    "snmpsim did not answer within {READY_WITHIN:?} on port {port}: {last}; log:\n{}",
                    sim.log_text()
                ),
            }
        }
        panic!(
            "snmpsim could not listen on five free ports; log:\n{}",
            fs::read_to_string(&log).unwrap_or_default()
        );
    }

    /// `127.0.0.1:PORT`, as net-snmp's tools take it.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The community `recording` (as given to [`Snmpsim::start`], or its file name) is
    /// served under.
    pub fn community(&self, recording: &str) -> String {
        let c = community_of(recording);
        assert!(
            self.recordings.iter().any(|r| community_of(r) == c),
            "snmpsim does not serve {recording}: {:?}",
            self.recordings
        );
        c.to_string()
    }

    /// net-snmp tool arguments for `recording` over v2c: `-v2c -c COMMUNITY 127.0.0.1:PORT`.
    pub fn v2c_args(&self, recording: &str) -> Vec<String> {
        vec![
            "-v2c".into(),
            "-c".into(),
            self.community(recording),
            self.address(),
        ]
    }

    /// Its log so far, for failure messages.
    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Its temporary directory (`data/`, `cache/`, `snmpsim.log`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// One value of a `.snmprec` recording: `OID|TAG|VALUE`, the tag an ASN.1 BER type (decimal),
/// `x` after it when the value is hex.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecValue {
    /// INTEGER (2), Counter32 (65), Gauge32 (66), TimeTicks (67), Counter64 (70).
    Integer(i64),
    /// OCTET STRING (4, `4x` hex-encoded).
    OctetString(Vec<u8>),
    /// NULL (5).
    Null,
    /// OBJECT IDENTIFIER (6), dotted, no leading dot.
    Oid(String),
    /// IpAddress (64 dotted, `64x` hex).
    IpAddress([u8; 4]),
    /// Opaque (68, `68x`).
    Opaque(Vec<u8>),
    /// A value a variation module makes (a `:` in the tag: `2:numeric`, `4:writecache`): it
    /// changes, or is not what the file says; tests skip it.
    Dynamic { tag: String, value: String },
    /// Any other tag (exceptions 128-130 and the like), or a Counter64 beyond i64.
    Other { tag: String, value: String },
}

impl RecValue {
    /// Parses the tag and value fields of a `.snmprec` line.
    pub fn parse(tag: &str, value: &str) -> RecValue {
        if tag.contains(':') {
            return RecValue::Dynamic {
                tag: tag.into(),
                value: value.into(),
            };
        }
        let other = || RecValue::Other {
            tag: tag.into(),
            value: value.into(),
        };
        let (number, hex) = match tag.strip_suffix('x') {
            Some(t) => (t, true),
            None => (tag, false),
        };
        let bytes = || {
            if hex {
                decode_hex(value)
            } else {
                Some(value.as_bytes().to_vec())
            }
        };
        let parsed = match number {
            "2" | "65" | "66" | "67" | "70" if !hex => value.parse().ok().map(RecValue::Integer),
            "4" => bytes().map(RecValue::OctetString),
            "5" => Some(RecValue::Null),
            "6" if !hex => Some(RecValue::Oid(value.trim_start_matches('.').into())),
            "64" => {
                let b = if hex {
                    decode_hex(value)
                } else {
                    value
                        .split('.')
                        .map(|o| o.parse().ok())
                        .collect::<Option<Vec<u8>>>()
                };
                b.and_then(|b| <[u8; 4]>::try_from(b).ok())
                    .map(RecValue::IpAddress)
            }
            "68" => bytes().map(RecValue::Opaque),
            _ => None,
        };
        parsed.unwrap_or_else(other)
    }

    /// Whether a variation module makes the value (tests skip it).
    pub fn is_dynamic(&self) -> bool {
        matches!(self, RecValue::Dynamic { .. })
    }

    /// How net-snmp's tools print it with the options of [`net_snmp`] (`-On -Oq -Ot -Oe -Ox`,
    /// hex continuation lines joined as [`parse_net_snmp`] joins them): numbers in decimal,
    /// strings as `"41 42 "`, OIDs with a leading dot. `None` for dynamic and other values.
    pub fn net_snmp(&self) -> Option<String> {
        Some(match self {
            RecValue::Integer(n) => n.to_string(),
            RecValue::OctetString(b) | RecValue::Opaque(b) => {
                let hex: String = b.iter().map(|b| format!("{b:02X} ")).collect();
                format!("\"{hex}\"")
            }
            RecValue::Oid(o) => format!(".{o}"),
            RecValue::IpAddress([a, b, c, d]) => format!("{a}.{b}.{c}.{d}"),
            RecValue::Null | RecValue::Dynamic { .. } | RecValue::Other { .. } => return None,
        })
    }
}

/// Bytes from hex digits (`4x`, `64x` values); `None` when not hex.
fn decode_hex(text: &str) -> Option<Vec<u8>> {
    let digits = text.as_bytes().chunks(2);
    digits
        .map(|pair| match pair {
            [h, l] if h.is_ascii_hexdigit() && l.is_ascii_hexdigit() => {
                u8::from_str_radix(std::str::from_utf8(&[*h, *l]).ok()?, 16).ok()
            }
            _ => None, // an odd number of digits, or not hex
        })
        .collect()
}

/// An OID's numeric components, for ordering (`1.3.6.1.10` after `1.3.6.1.9`); a leading dot
/// is ignored.
pub fn oid_components(oid: &str) -> Vec<u32> {
    oid.trim_start_matches('.')
        .split('.')
        .filter(|c| !c.is_empty())
        .map(|c| {
            c.parse()
                .unwrap_or_else(|_| panic!("not a numeric OID: {oid}"))
        })
        .collect()
}

/// A `.snmprec` recording: OIDs in numeric order with their values.
#[derive(Debug, Clone)]
pub struct Recording {
    /// As given to [`Recording::load`].
    pub name: String,
    entries: BTreeMap<Vec<u32>, (String, RecValue)>,
}

impl Recording {
    /// Loads recording `name` (`"UPS/apc-8641"`) from snmpsim-data in the venv of
    /// [`snmpsim_venv`]; panics when it is missing (tests that start [`Snmpsim`] first have
    /// skipped by then).
    pub fn load(name: &str) -> Recording {
        let venv = snmpsim_venv().expect("the snmpsim venv, with snmpsim-data");
        Recording::parse(name, &recording_text(&recording_file(&venv, name)))
    }

    /// Parses the text of a `.snmprec` file: `OID|TAG|VALUE` lines (the value may contain
    /// `|`), `#` comments and blank lines skipped.
    pub fn parse(name: &str, text: &str) -> Recording {
        let mut entries = BTreeMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim_end_matches('\r');
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut fields = line.splitn(3, '|');
            let (Some(oid), Some(tag), Some(value)) = (fields.next(), fields.next(), fields.next())
            else {
                panic!("{name}: line {}: not OID|TAG|VALUE: {line}", n + 1);
            };
            let oid = oid.trim_start_matches('.').to_string();
            entries.insert(oid_components(&oid), (oid, RecValue::parse(tag, value)));
        }
        Recording {
            name: name.into(),
            entries,
        }
    }

    /// The value recorded at `oid` (with or without a leading dot).
    pub fn value(&self, oid: &str) -> Option<RecValue> {
        self.entries
            .get(&oid_components(oid))
            .map(|(_, v)| v.clone())
    }

    /// Every OID strictly under `prefix` with its value, in OID order (what a walk returns).
    pub fn walk(&self, prefix: &str) -> Vec<(String, RecValue)> {
        let prefix = oid_components(prefix);
        self.entries
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .filter(|(k, _)| k.len() > prefix.len())
            .map(|(_, (oid, v))| (oid.clone(), v.clone()))
            .collect()
    }

    /// How many OIDs it records.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether it records nothing.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

// ---------------------------------------------------------------------------------------------
// net-snmp: snmpd and the tools

/// Where Debian puts the agent (not on a non-root PATH).
pub const SNMPD: &str = "/usr/sbin/snmpd";

/// sysName.0, sysLocation.0 and sysContact.0 of every [`Snmpd`].
pub const SNMPD_SYS_NAME: &str = "firebreak-snmpd";
pub const SNMPD_SYS_LOCATION: &str = "test rack 1";
pub const SNMPD_SYS_CONTACT: &str = "firebreak tests";

/// Debian's net-snmp `snmpd` on a free UDP port on 127.0.0.1 with one SNMPv3 user, read-only,
/// authPriv required (SHA-256 authentication, AES-128 privacy), and no other access (no
/// community). Killed when dropped.
pub struct Snmpd {
    peer: Peer,
    /// The UDP port on 127.0.0.1.
    pub port: u16,
    pub user: String,
    pub auth_pass: String,
    pub priv_pass: String,
    /// Its log (`-Lf`): connections, authentication failures.
    pub log: PathBuf,
    dir: tempfile::TempDir,
}

impl Snmpd {
    /// Starts snmpd with `user` (passphrases of at least 8 characters, net-snmp's minimum)
    /// and returns once that user gets sysName.0 over authPriv. It serves the agent's own MIBs
    /// (system, interfaces, host resources …) with sysName, sysLocation and sysContact set to
    /// [`SNMPD_SYS_NAME`], [`SNMPD_SYS_LOCATION`], [`SNMPD_SYS_CONTACT`]. `None` when snmpd is
    /// not installed (SKIPPED), a failed test when FIREBREAK_REQUIRE_PEERS=1.
    pub fn start_v3(user: &str, auth_pass: &str, priv_pass: &str) -> Option<Snmpd> {
        Snmpd::start_v3_with(user, auth_pass, priv_pass, "")
    }

    /// [`Snmpd::start_v3`] with more snmpd.conf lines: `override OID TYPE VALUE` serves a
    /// fixed value even where the agent has none (`override .1.3.6.1.2.1.33.1.2.4.0 integer
    /// 87`: a UPS-MIB battery charge over v3), `pass`, `extend` …
    pub fn start_v3_with(
        user: &str,
        auth_pass: &str,
        priv_pass: &str,
        extra_conf: &str,
    ) -> Option<Snmpd> {
        if !Path::new(SNMPD).exists() {
            return missing(&format!("{SNMPD} (Debian package snmpd)"));
        }
        if !require_peer("snmpget") {
            return None;
        }
        assert!(
            auth_pass.len() >= 8 && priv_pass.len() >= 8,
            "net-snmp wants passphrases of 8 characters or more"
        );
        let mut dir = tempfile::Builder::new()
            .prefix("firebreak-snmpd-")
            .tempdir()
            .unwrap();
        let persist = dir.path().join("persist");
        fs::create_dir(&persist).unwrap();
        let conf = dir.path().join("snmpd.conf");
        // `[snmp] persistentDir`: the agent's persistent store (its engine boots, the users
        // createUser makes) goes here, not to /var/lib/snmp. createUser is read once and
        // stored there as a usmUser line.
        fs::write(
            &conf,
            format!(
                "[snmp] persistentDir {persist}\n\
                 createUser {user} SHA-256 {auth_pass} AES {priv_pass}\n\
                 rouser {user} priv\n\
                 sysName {SNMPD_SYS_NAME}\n\
                 sysLocation {SNMPD_SYS_LOCATION}\n\
                 sysContact {SNMPD_SYS_CONTACT}\n\
                 {extra_conf}\n",
                persist = persist.display()
            ),
        )
        .unwrap();
        let log = dir.path().join("snmpd.log");
        for _ in 0..5 {
            let port = free_udp_port();
            let child = Command::new(SNMPD)
                // -f foreground, -C only our configuration file, -I -smux: no SMUX listener
                // (a fixed TCP port, 199), -Lf its log.
                .args(["-f", "-C", "-c"])
                .arg(&conf)
                .arg("-p")
                .arg(dir.path().join("snmpd.pid"))
                .arg("-Lf")
                .arg(&log)
                .args(["-I", "-smux"])
                .arg(format!("udp:127.0.0.1:{port}"))
                // No MIB files to load: numeric OIDs only (Debian ships few MIBs, and loading
                // them fills the log with errors).
                .env("MIBS", "")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(fs::File::create(dir.path().join("snmpd.stderr")).unwrap())
                .spawn()
                .unwrap_or_else(|e| panic!("start snmpd: {e}"));
            let mut snmpd = Snmpd {
                peer: Peer {
                    child,
                    name: "snmpd".into(),
                },
                port,
                user: user.into(),
                auth_pass: auth_pass.into(),
                priv_pass: priv_pass.into(),
                log: log.clone(),
                dir,
            };
            // Ready when the user gets sysName.0 over authPriv.
            let mut args = vec!["-t".to_string(), "0.5".into(), "-r".into(), "0".into()];
            args.extend(snmpd.v3_args());
            args.push("1.3.6.1.2.1.1.5.0".into());
            match wait_answering(&mut snmpd.peer.child, || {
                net_snmp("snmpget", &args).map(drop)
            }) {
                Start::Ready => return Some(snmpd),
                // Most likely another process took the port: try another one.
                Start::Exited => {
                    let Snmpd {
                        mut peer, dir: d, ..
                    } = snmpd;
                    peer.kill();
                    dir = d;
                }
                Start::Silent(last) => panic!(
                    "snmpd did not answer within {READY_WITHIN:?} on port {port}: {last}; log:\n{}",
                    snmpd.log_text()
                ),
            }
        }
        panic!(
            "snmpd could not listen on five free ports; log:\n{}{}",
            fs::read_to_string(&log).unwrap_or_default(),
            fs::read_to_string(dir.path().join("snmpd.stderr")).unwrap_or_default()
        );
    }

    /// `127.0.0.1:PORT`, as net-snmp's tools take it.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// net-snmp tool arguments with the right credentials: `-v3 -l authPriv -u USER -a SHA-256
    /// -A AUTH -x AES -X PRIV 127.0.0.1:PORT`.
    pub fn v3_args(&self) -> Vec<String> {
        [
            "-v3",
            "-l",
            "authPriv",
            "-u",
            &self.user,
            "-a",
            "SHA-256",
            "-A",
            &self.auth_pass,
            "-x",
            "AES",
            "-X",
            &self.priv_pass,
            &self.address(),
        ]
        .map(String::from)
        .to_vec()
    }

    /// Its log so far (and what it wrote to stderr), for failure messages.
    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
            + &fs::read_to_string(self.dir.path().join("snmpd.stderr")).unwrap_or_default()
    }

    /// Its temporary directory (`snmpd.conf`, `persist/`, `snmpd.log`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// Runs net-snmp's `tool` (`snmpget`, `snmpgetnext`, `snmpwalk`, `snmpbulkwalk` …) with
/// numeric output (`-On` numeric OIDs, `-Oq` no `=` nor type, `-Ot` raw TimeTicks, `-Oe`
/// numeric enums, `-Ox` strings in hex), a bounded wait (`-t 1 -r 1`: at most 2 s a request;
/// later `-t`/`-r` in `args` win) and `args`. Its stdout when it succeeded, else its stdout
/// and stderr. Its persistent files go to a temporary directory, not /var/lib/snmp.
pub fn net_snmp<S: AsRef<str>>(tool: &str, args: &[S]) -> Result<String, String> {
    let persist = tempfile::tempdir().unwrap();
    let out = Command::new(tool)
        .args(["-On", "-Oq", "-Ot", "-Oe", "-Ox", "-t", "1", "-r", "1"])
        .args(args.iter().map(AsRef::as_ref))
        .env("MIBS", "")
        .env("SNMP_PERSISTENT_DIR", persist.path())
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {tool}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() {
        Ok(stdout)
    } else {
        Err(format!(
            "{tool} {}: {}\n{stdout}{}",
            args.iter().map(AsRef::as_ref).collect::<Vec<_>>().join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// `snmpget` ([`net_snmp`]'s options) with `args`: its output, parsed by [`parse_net_snmp`].
/// Fails the test when snmpget fails.
pub fn snmpget<S: AsRef<str>>(args: &[S]) -> Vec<(String, String)> {
    parse_net_snmp(&net_snmp("snmpget", args).unwrap_or_else(|e| panic!("{e}")))
}

/// `snmpwalk` ([`net_snmp`]'s options) with `args`: OIDs and values in the order walked.
/// Fails the test when snmpwalk fails.
pub fn snmpwalk<S: AsRef<str>>(args: &[S]) -> Vec<(String, String)> {
    parse_net_snmp(&net_snmp("snmpwalk", args).unwrap_or_else(|e| panic!("{e}")))
}

/// The `.OID VALUE` lines of a net-snmp tool (`-On -Oq`) as (OID without the leading dot,
/// value text); a value's continuation lines (long hex strings wrap every 16 bytes) are
/// joined to it.
pub fn parse_net_snmp(text: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        match (line.strip_prefix('.'), out.last_mut()) {
            (Some(rest), _) => {
                let (oid, value) = rest.split_once(' ').unwrap_or((rest, ""));
                out.push((oid.into(), value.into()));
            }
            (None, Some((_, value))) => value.push_str(line),
            (None, None) => panic!("not net-snmp -On output: {text}"),
        }
    }
    out
}
