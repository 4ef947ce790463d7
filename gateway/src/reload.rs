//! Reloading the site configuration (`SIGHUP`, `systemctl reload firebreak`).
//!
//! The file is read and checked exactly as at start ([`SiteConfig::load`]'s path: every error
//! names the file, the line when known and the key). A reload is all or nothing: a file that
//! does not pass, or that changes what only a restart can change ([`needs_restart`]: the
//! site and gateway ids, the HTTP address, the brokers, the signing key, the outbox, the
//! control socket, whether
//! telemetry is published and its queue), is **rejected** and the running configuration is
//! kept whole, so what runs is always one file's content, the one whose hash `/status` shows.
//!
//! What a reload applies live: devices, MQTT and NUT sources, profiles, zones, the policy
//! (`[policy]` and its rules file) and telemetry's timings. Only the acquisition tasks whose
//! device changed are restarted ([`Acquisition::apply`]); the others keep their connections,
//! values and counters. When the policy or the devices the engine judges changed, the engine
//! is rebuilt and resumed at the levels it had, exactly as after a restart
//! ([`crate::policy::Engine::resume`]): each raised level is held until every device has been
//! read again and then for `hold_s`, lowered only when its cause is gone, never raised again
//! from `normal`. A zone that is above `normal` cannot be removed by a reload.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use firebreak_protocols::{DeviceId, Level};
use serde::Serialize;
use sha2::Digest;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::acquire::Event;
use crate::acquire::table::SignalTable;
use crate::config::{
    ConfigError, DeviceConfig, MqttSourceConfig, NutSourceConfig, SiteConfig, SnmpSourceConfig,
};
use crate::health::Health;
use crate::policy::{Engine, Topology, Transition};
use crate::run::Acquirer;

/// The configuration file a gateway runs: where, its content's hash, when it was loaded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LoadedFile {
    /// The file, as given to `--config`.
    pub file: PathBuf,
    /// SHA-256 of its bytes, hex (as `sha256sum` prints it).
    pub sha256: String,
    /// Its modification time, in ms since the epoch, when known.
    pub modified_ms: Option<u64>,
    /// When it was loaded, in ms since the epoch.
    pub loaded_at_ms: u64,
}

/// Reads and checks `path` as `firebreak run --config` does, with its hash and times.
pub fn load(path: &Path) -> Result<(SiteConfig, LoadedFile), ConfigError> {
    let (text, origin) = crate::config::read_text(path)?;
    let config = SiteConfig::parse(&text, &origin)?;
    let modified_ms = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let file = LoadedFile {
        file: path.to_path_buf(),
        sha256: hex(&sha2::Sha256::digest(text.as_bytes())),
        modified_ms,
        loaded_at_ms: crate::acquire::now_ms(),
    };
    Ok((config, file))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// The last reload's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReloadOutcome {
    /// When, in ms since the epoch.
    pub at_ms: u64,
    /// `ok` or `rejected`.
    pub result: &'static str,
    /// What was applied, or why it was rejected.
    pub detail: String,
}

/// What `/status` shows under `config`, and `/metrics` counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConfigStatus {
    /// The file running now.
    #[serde(flatten)]
    pub running: LoadedFile,
    /// Reloads applied.
    pub reloads_ok: u64,
    /// Reloads rejected (the running configuration kept).
    pub reloads_rejected: u64,
    /// The last reload, if any.
    pub last_reload: Option<ReloadOutcome>,
}

impl ConfigStatus {
    /// At start, running `file`.
    pub fn new(file: LoadedFile) -> ConfigStatus {
        ConfigStatus {
            running: file,
            reloads_ok: 0,
            reloads_rejected: 0,
            last_reload: None,
        }
    }

    /// A reload applied `file`.
    pub fn applied(&mut self, file: LoadedFile, detail: String) {
        self.last_reload = Some(ReloadOutcome {
            at_ms: file.loaded_at_ms,
            result: "ok",
            detail,
        });
        self.running = file;
        self.reloads_ok += 1;
    }

    /// A reload was rejected.
    pub fn rejected(&mut self, why: String) {
        self.last_reload = Some(ReloadOutcome {
            at_ms: crate::acquire::now_ms(),
            result: "rejected",
            detail: why,
        });
        self.reloads_rejected += 1;
    }

    /// Prometheus text: reloads by result, and when the running file was loaded.
    pub fn prometheus(&self) -> String {
        format!(
            "# HELP firebreak_config_reloads_total Configuration reloads (SIGHUP) by result: ok (applied) or rejected (the running configuration kept).\n# TYPE firebreak_config_reloads_total counter\nfirebreak_config_reloads_total{{result=\"ok\"}} {}\nfirebreak_config_reloads_total{{result=\"rejected\"}} {}\n# HELP firebreak_config_loaded_timestamp_seconds When the running configuration was loaded.\n# TYPE firebreak_config_loaded_timestamp_seconds gauge\nfirebreak_config_loaded_timestamp_seconds {:.3}\n",
            self.reloads_ok,
            self.reloads_rejected,
            self.running.loaded_at_ms as f64 / 1000.0
        )
    }
}

/// What only a restart can change, named as in the file: empty when `new` can be applied live.
pub fn needs_restart(old: &SiteConfig, new: &SiteConfig) -> Vec<&'static str> {
    let mut out = Vec::new();
    if old.site != new.site {
        out.push("site.name");
    }
    if old.gateway != new.gateway {
        out.push("site.gateway");
    }
    if old.http_bind != new.http_bind {
        out.push("http.bind");
    }
    if old.snmp_traps != new.snmp_traps {
        out.push("[snmp_traps]");
    }
    if old.brokers != new.brokers {
        out.push("[[brokers]]");
    }
    if old.signing != new.signing {
        out.push("[signing]");
    }
    if old.outbox != new.outbox {
        out.push("[outbox]");
    }
    if old.control_socket != new.control_socket {
        out.push("control.socket");
    }
    if old.telemetry.enabled != new.telemetry.enabled {
        out.push("telemetry.enabled");
    }
    if old.telemetry.queue != new.telemetry.queue {
        out.push("telemetry.queue");
    }
    out
}

#[derive(Debug, PartialEq)]
enum Definition<'a> {
    Modbus(&'a DeviceConfig),
    Mqtt(&'a MqttSourceConfig),
    Nut(&'a NutSourceConfig),
    Snmp(&'a SnmpSourceConfig),
}

fn definitions(c: &SiteConfig) -> BTreeMap<&DeviceId, Definition<'_>> {
    let mut out = BTreeMap::new();
    for d in &c.devices {
        out.insert(&d.name, Definition::Modbus(d));
    }
    for s in &c.mqtt_sources {
        out.insert(&s.name, Definition::Mqtt(s));
    }
    for s in &c.nut_sources {
        out.insert(&s.name, Definition::Nut(s));
    }
    for s in &c.snmp_sources {
        out.insert(&s.name, Definition::Snmp(s));
    }
    out
}

/// What a reload will do.
#[derive(Debug)]
pub struct Plan {
    /// The new configuration.
    pub config: SiteConfig,
    /// Its file.
    pub file: LoadedFile,
    /// Devices and sources added.
    pub added: Vec<DeviceId>,
    /// Devices and sources removed.
    pub removed: Vec<DeviceId>,
    /// Devices and sources kept under their name but defined otherwise (address, profile,
    /// zone, timings …): read afresh.
    pub changed: BTreeSet<DeviceId>,
    /// The policy, the zones or the devices the engine judges changed: the engine is rebuilt.
    pub engine: bool,
    /// Telemetry's settings or the devices' zones changed.
    pub telemetry: bool,
}

impl Plan {
    /// One line for the log and `/status`.
    pub fn summary(&self) -> String {
        let names = |v: &mut dyn Iterator<Item = &DeviceId>| {
            v.map(|d| d.as_str()).collect::<Vec<_>>().join(" ")
        };
        let mut parts = Vec::new();
        if !self.added.is_empty() {
            parts.push(format!("added: {}", names(&mut self.added.iter())));
        }
        if !self.removed.is_empty() {
            parts.push(format!("removed: {}", names(&mut self.removed.iter())));
        }
        if !self.changed.is_empty() {
            parts.push(format!("changed: {}", names(&mut self.changed.iter())));
        }
        if self.engine {
            parts.push("policy engine rebuilt, levels resumed".into());
        }
        if parts.is_empty() {
            parts.push("no change to devices or policy".into());
        }
        parts.join("; ")
    }
}

/// Reads `path` and decides what reloading it means for a gateway running `current` with
/// `engine`: the plan, or why it is rejected (the error names the file, line and key).
pub fn plan(current: &SiteConfig, engine: &Engine, path: &Path) -> Result<Plan, String> {
    let (config, file) = load(path).map_err(|e| e.to_string())?;
    let restart = needs_restart(current, &config);
    if !restart.is_empty() {
        return Err(format!(
            "{}: needs a restart: {} changed (systemctl restart firebreak); nothing was applied",
            path.display(),
            restart.join(", ")
        ));
    }
    for (zone, level) in engine.zone_levels() {
        if level > Level::Normal && !config.zones.contains(zone) {
            return Err(format!(
                "{}: zones: zone {zone} is at {level}: a raised zone cannot be removed by a reload (its controllers would never see it lowered); wait until it is normal; nothing was applied",
                path.display()
            ));
        }
    }
    let old = definitions(current);
    let new = definitions(&config);
    let added = new
        .keys()
        .filter(|d| !old.contains_key(*d))
        .map(|d| (*d).clone())
        .collect();
    let removed = old
        .keys()
        .filter(|d| !new.contains_key(*d))
        .map(|d| (*d).clone())
        .collect();
    let changed = new
        .iter()
        .filter(|(d, def)| old.get(*d).is_some_and(|o| o != *def))
        .map(|(d, _)| (*d).clone())
        .collect();
    let engine_changed = current.policy != config.policy
        || Topology::from_config(current) != Topology::from_config(&config);
    let telemetry = current.telemetry != config.telemetry
        || crate::telemetry::zones_of(current) != crate::telemetry::zones_of(&config);
    Ok(Plan {
        config,
        file,
        added,
        removed,
        changed,
        engine: engine_changed,
        telemetry,
    })
}

/// An engine for `config` that takes over from `old`: every raised level resumed in its
/// incident (held for `grace_ms`, then `hold_s`, as after a restart), every lost link marked,
/// the devices and channels under `maintenance` set, and the table's current values given to
/// it at `now` (the policy clock's milliseconds, then the table's monotonic ones). Returns it
/// with the transitions of that first step, to deliver.
pub fn rebuilt_engine(
    old: &Engine,
    config: &SiteConfig,
    table: &SignalTable,
    maintenance: &[(firebreak_protocols::DeviceId, Option<u8>)],
    now: (u64, u64),
    grace_ms: u64,
) -> (Engine, Vec<Transition>) {
    let (now_ms, mono_ms) = now;
    let mut engine = Engine::new(config.policy.clone(), &Topology::from_config(config));
    engine.set_maintenance(maintenance);
    if let Some(incident) = old.incident() {
        let mut levels = vec![(None, old.site_level(), incident.clone())];
        levels.extend(
            old.zone_levels()
                .map(|(z, l)| (Some(z.clone()), l, incident.clone())),
        );
        engine.resume(&levels, now_ms, grace_ms);
    }
    for (d, h) in table.devices() {
        if h.comm_lost {
            engine.set_link(d, true);
        }
    }
    let transitions = engine.step(now_ms, &table.samples(mono_ms));
    (engine, transitions)
}

/// The running acquisition tasks, each with what it reads, so a reload restarts only those
/// whose device changed.
#[derive(Debug)]
pub struct Acquisition {
    running: Vec<(Acquirer, JoinHandle<()>)>,
    health: Arc<Health>,
    tx: mpsc::Sender<Event>,
}

impl Acquisition {
    /// No task yet; tasks report to `health` and send to `tx`.
    pub fn new(health: Arc<Health>, tx: mpsc::Sender<Event>) -> Acquisition {
        Acquisition {
            running: Vec::new(),
            health,
            tx,
        }
    }

    /// Stops the tasks not in `wanted` (and waits until they are gone, so a serial line is
    /// free again), then starts those of `wanted` not running. Returns (stopped, started).
    pub async fn apply(&mut self, wanted: Vec<Acquirer>) -> (usize, usize) {
        let (keep, stop): (Vec<_>, Vec<_>) = std::mem::take(&mut self.running)
            .into_iter()
            .partition(|(a, _)| wanted.contains(a));
        let stopped = stop.len();
        for (_, handle) in stop {
            self.health.retire();
            handle.abort();
            let _ = handle.await;
        }
        self.running = keep;
        let mut started = 0;
        for a in wanted {
            if self.running.iter().any(|(r, _)| *r == a) {
                continue;
            }
            let task = self.health.acquisition(a.clone().task(self.tx.clone()));
            self.running.push((a, tokio::spawn(task)));
            started += 1;
        }
        (stopped, started)
    }

    /// Stops every task and waits until they are gone.
    pub async fn shutdown(mut self) {
        for (_, handle) in std::mem::take(&mut self.running) {
            handle.abort();
            let _ = handle.await;
        }
    }
}

/// A gateway's pipeline dropped without a clean stop (the demo aborts one to show a gateway
/// killed) takes its acquisition tasks with it, as the `JoinSet` they were once spawned into
/// did.
impl Drop for Acquisition {
    fn drop(&mut self) {
        for (_, handle) in &self.running {
            handle.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "[site]\nname = \"s\"\ngateway = \"g\"\n[[zones]]\nname = \"z\"\n[[devices]]\nname = \"a\"\nzone = \"z\"\ntransport = \"tcp\"\naddress = \"127.0.0.1:1\"\nunit = 1\nprofile = \"generic-ups\"\n";

    fn engine(c: &SiteConfig) -> Engine {
        Engine::new(c.policy.clone(), &Topology::from_config(c))
    }

    #[test]
    fn a_reload_names_what_needs_a_restart_and_what_changed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("site.toml");
        let old = SiteConfig::parse(BASE, "site.toml").unwrap();
        std::fs::write(
            &path,
            format!(
                "{}[[devices]]\nname = \"b\"\nzone = \"z\"\ntransport = \"tcp\"\naddress = \"127.0.0.1:2\"\nunit = 1\nprofile = \"generic-ups\"\n",
                BASE.replace("127.0.0.1:1", "127.0.0.1:3")
            ),
        )
        .unwrap();
        let p = plan(&old, &engine(&old), &path).unwrap();
        assert_eq!(p.added, vec!["b".parse::<DeviceId>().unwrap()]);
        assert!(p.removed.is_empty());
        assert!(p.changed.contains(&"a".parse::<DeviceId>().unwrap()));
        assert!(p.engine && p.telemetry);
        assert_eq!(p.file.sha256.len(), 64);
        assert!(p.summary().contains("added: b"), "{}", p.summary());

        std::fs::write(&path, BASE.replace("gateway = \"g\"", "gateway = \"h\"")).unwrap();
        let e = plan(&old, &engine(&old), &path).unwrap_err();
        assert!(e.contains("needs a restart: site.gateway"), "{e}");

        std::fs::write(&path, BASE.replace("unit = 1", "unit = 1\nbaudrate = 9600")).unwrap();
        let e = plan(&old, &engine(&old), &path).unwrap_err();
        assert!(e.contains("site.toml:") && e.contains("baudrate"), "{e}");

        std::fs::write(&path, BASE).unwrap();
        let p = plan(&old, &engine(&old), &path).unwrap();
        assert!(!p.engine && p.changed.is_empty() && p.added.is_empty());
        assert_eq!(p.summary(), "no change to devices or policy");
    }

    #[test]
    fn a_rebuilt_engine_keeps_the_raised_levels_and_the_incident() {
        let config = SiteConfig::parse(BASE, "site.toml").unwrap();
        let mut old = engine(&config);
        old.set_link(&"a".parse().unwrap(), true);
        let mut now = 1_000_000;
        while old.site_level() == Level::Normal && now < 1_200_000 {
            old.step(now, &[]);
            now += 250;
        }
        assert!(
            old.site_level() > Level::Normal,
            "a lost device raises a level"
        );
        let with_b = format!(
            "{BASE}[[devices]]\nname = \"b\"\nzone = \"z\"\ntransport = \"tcp\"\naddress = \"127.0.0.1:2\"\nunit = 1\nprofile = \"generic-pdu\"\n"
        );
        let new_config = SiteConfig::parse(&with_b, "site.toml").unwrap();
        let table = SignalTable::new(&new_config);
        let (mut new, transitions) =
            rebuilt_engine(&old, &new_config, &table, &[], (now, now), 10_000);
        assert!(transitions.is_empty(), "{transitions:?}");
        assert_eq!(new.site_level(), old.site_level());
        assert_eq!(new.incident(), old.incident());
        let zones = |e: &Engine| {
            e.zone_levels()
                .map(|(z, l)| (z.clone(), l))
                .collect::<Vec<_>>()
        };
        assert_eq!(zones(&new), zones(&old));
        // Held while every device is read again, whatever comes in meanwhile.
        assert!(new.step(now + 5_000, &[]).is_empty());
        assert_eq!(new.site_level(), old.site_level());
    }

    #[tokio::test]
    async fn only_changed_tasks_restart_and_a_dropped_set_ends_its_tasks() {
        let health = Health::new(0);
        let (tx, _rx) = mpsc::channel(16);
        let config = SiteConfig::parse(BASE, "site.toml").unwrap();
        let mut a = Acquisition::new(health.clone(), tx);
        assert_eq!(a.apply(crate::run::acquirers(&config)).await, (0, 1));
        assert_eq!(a.apply(crate::run::acquirers(&config)).await, (0, 0));
        let moved = SiteConfig::parse(&BASE.replace(":1\"", ":9\""), "site.toml").unwrap();
        assert_eq!(a.apply(crate::run::acquirers(&moved)).await, (1, 1));
        let r = health.check(None, 0);
        assert!(r.healthy, "{:?}", r.reasons);
        assert_eq!((r.acquisition_alive, r.acquisition_total), (1, 1));
        drop(a);
        for _ in 0..200 {
            if health.check(None, 0).acquisition_alive == 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert_eq!(health.check(None, 0).acquisition_alive, 0);
    }

    #[test]
    fn counters_and_metrics_follow_outcomes() {
        let f = LoadedFile {
            file: "site.toml".into(),
            sha256: "00".into(),
            modified_ms: None,
            loaded_at_ms: 1_500,
        };
        let mut s = ConfigStatus::new(f.clone());
        s.rejected("bad".into());
        s.applied(f, "ok".into());
        let m = s.prometheus();
        assert!(m.contains("firebreak_config_reloads_total{result=\"ok\"} 1"));
        assert!(m.contains("firebreak_config_reloads_total{result=\"rejected\"} 1"));
        assert!(m.contains("firebreak_config_loaded_timestamp_seconds 1.500"));
    }
}
