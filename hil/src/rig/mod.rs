//! The rig: replays a scenario against the gateway **as a separate process** and measures
//! what a failover controller would see.
//!
//! For each scenario it starts the simulators (paused at the scenario's start), a broker (the
//! embedded one, an external one given with `--broker`, or a Mosquitto it manages itself when
//! the scenario stops and restarts the broker), a verifying [`Subscriber`] on the site's
//! trigger topic, and `firebreak run --config GENERATED --time-scale X` with a signing key
//! made by `firebreak keygen`. When the gateway answers `/healthz` and has read every device
//! once, the scenario clock starts; the rig carries out the infrastructure events
//! (broker stop and restart, gateway `kill -9` and restart; the simulators cut and restore
//! the network themselves) and, after the end, waits until every trigger the gateway issued
//! has arrived or 10 s have passed. [`outcome::judge`] then turns what arrived into the
//! result: first watch/prepare/evacuate, lead time, false escalations, missed and duplicated
//! triggers, latencies.
//!
//! With a site configuration instead of simulators ([`RigOptions::site`]) the devices are
//! real: the rig keeps the file's devices, replaces its `[http]`, `[[brokers]]`, `[signing]`
//! and `[outbox]`, and runs in real time; the scenario gives the expectation and the
//! duration, and people (or a bench) make the timeline happen.

pub mod cause;
pub mod controller;
pub mod node_outcome;
pub mod outcome;
pub mod peers;
pub mod proxy;
pub mod subscriber;
pub mod svg;
pub mod verify;

use std::collections::{BTreeMap, BTreeSet};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use firebreak_protocols::{Level, SiteId, topic};

use crate::broker::EmbeddedBroker;
use crate::clock::ScenarioClock;
use crate::node::{NodeBackend, NodeChoice, NodePrograms};
use crate::scenario::{EventKind, GatewaySpec, RebootReason, Scenario, Window, load_dir};
use crate::sim::{Broker, SimOptions, Simulation};
use crate::site::{SiteOptions, site_config_with};
use crate::time::ScenarioTime;
use cause::Rules;
use controller::{Controller, trust_file};
use outcome::{EventRecord, GatewayRecord, Moment, Observed, ScenarioResult, judge, not_run};
use peers::{Gateway, Mosquitto, find_mosquitto, free_port};
use proxy::NetProxy;
use subscriber::Subscriber;
use verify::TrustedKey;

/// The gateway's limit on `--time-scale`.
pub const MAX_GATEWAY_SCALE: f64 = 1000.0;

/// How long the gateway may take to answer `/healthz`.
const GATEWAY_START: Duration = Duration::from_secs(20);

/// How long the rig waits after the end for triggers still on their way.
const DRAIN: Duration = Duration::from_secs(10);

/// Why the rig could not run.
#[derive(Debug, thiserror::Error)]
pub enum RigError {
    /// Something the rig needs could not be set up (names what and why).
    #[error("{0}")]
    Setup(String),
}

/// How progress is shown on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressStyle {
    /// A bar redrawn in place (a terminal).
    Bar,
    /// A line at every tenth of the scenario (logs, CI).
    Lines,
    /// Nothing.
    Off,
}

impl ProgressStyle {
    /// A bar on a terminal, lines otherwise.
    pub fn auto() -> ProgressStyle {
        if std::io::stderr().is_terminal() {
            ProgressStyle::Bar
        } else {
            ProgressStyle::Lines
        }
    }
}

/// How to run scenarios.
#[derive(Debug, Clone)]
pub struct RigOptions {
    /// Scenario seconds per real second for every scenario; each scenario's own when `None`.
    pub time_scale: Option<f64>,
    /// An external broker (`mqtt://HOST:PORT`); the embedded one when `None`.
    pub broker: Option<Broker>,
    /// The `firebreak` binary.
    pub gateway_bin: PathBuf,
    /// The Mosquitto binary for scenarios that stop the broker; found on the PATH when `None`.
    pub mosquitto: Option<PathBuf>,
    /// Keep each scenario's files (configuration, logs, outbox) under this directory.
    pub keep: Option<PathBuf>,
    /// Real devices: this site configuration instead of simulators.
    pub site: Option<PathBuf>,
    /// Progress on stderr.
    pub progress: ProgressStyle,
    /// How sensor nodes are brought up (`--node`).
    pub node: NodeChoice,
    /// Where the firmware back-ends' programs are.
    pub node_programs: NodePrograms,
}

/// Finds the `firebreak` binary: the given path, FIREBREAK_BIN, or next to this executable.
pub fn find_gateway(given: Option<&Path>) -> Result<PathBuf, RigError> {
    if let Some(p) = given {
        return Ok(p.to_path_buf());
    }
    if let Some(p) = std::env::var_os("FIREBREAK_BIN") {
        return Ok(PathBuf::from(p));
    }
    let here = std::env::current_exe()
        .map_err(|e| RigError::Setup(format!("cannot tell where this program is: {e}")))?;
    let beside = here.with_file_name("firebreak");
    if beside.is_file() {
        return Ok(beside);
    }
    Err(RigError::Setup(format!(
        "no gateway binary: {} does not exist; build it (cargo build -p firebreak-gateway) or give --gateway-bin or FIREBREAK_BIN",
        beside.display()
    )))
}

/// What the rig sets up once for many scenarios: the signing key, the policy's rules, the
/// embedded broker.
#[derive(Debug)]
pub struct Rig {
    options: RigOptions,
    rules: Rules,
    key_file: PathBuf,
    key_id: String,
    trusted: TrustedKey,
    embedded: tokio::sync::OnceCell<EmbeddedBroker>,
    _keys: tempfile::TempDir,
}

/// Runs a command and returns its stdout, or why it failed.
async fn output(bin: &Path, args: &[&str]) -> Result<String, RigError> {
    let out = tokio::process::Command::new(bin)
        .args(args)
        .output()
        .await
        .map_err(|e| {
            RigError::Setup(format!(
                "cannot run {} {}: {e} (build it, or give --gateway-bin or FIREBREAK_BIN)",
                bin.display(),
                args.join(" ")
            ))
        })?;
    if !out.status.success() {
        return Err(RigError::Setup(format!(
            "{} {} failed ({}): {}",
            bin.display(),
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

impl Rig {
    /// Makes the signing key (`firebreak keygen`) and reads the default rules (`firebreak
    /// policy default`).
    pub async fn new(options: RigOptions) -> Result<Rig, RigError> {
        let keys = tempfile::Builder::new()
            .prefix("firebreak-hil-keys-")
            .tempdir()
            .map_err(|e| RigError::Setup(format!("no temporary directory for keys: {e}")))?;
        let key_id = "hil-rig".to_string();
        let dir = keys.path().to_string_lossy().into_owned();
        output(
            &options.gateway_bin,
            &["keygen", "--out", &dir, "--key-id", &key_id],
        )
        .await?;
        let trusted = TrustedKey::load(&keys.path().join(format!("{key_id}.pub")))
            .map_err(RigError::Setup)?;
        let rules_text = output(&options.gateway_bin, &["policy", "default"]).await?;
        let rules = Rules::parse(&rules_text)
            .map_err(|e| RigError::Setup(format!("firebreak policy default: {e}")))?;
        Ok(Rig {
            key_file: keys.path().join(format!("{key_id}.key")),
            key_id,
            trusted,
            rules,
            options,
            embedded: tokio::sync::OnceCell::new(),
            _keys: keys,
        })
    }

    /// The options.
    pub fn options(&self) -> &RigOptions {
        &self.options
    }

    async fn embedded(&self) -> Result<Broker, RigError> {
        let b = self
            .embedded
            .get_or_try_init(|| async {
                tokio::task::spawn_blocking(EmbeddedBroker::start)
                    .await
                    .map_err(|e| RigError::Setup(format!("embedded broker: {e}")))?
                    .map_err(|e| RigError::Setup(e.to_string()))
            })
            .await?;
        Ok(Broker {
            host: "127.0.0.1".into(),
            port: b.addr().port(),
        })
    }

    /// Runs every `*.toml` of `dir` (at most `jobs` at once), sorted by name; an invalid file
    /// is a failed result.
    pub async fn suite(self: &Arc<Self>, dir: &Path, jobs: usize) -> Vec<ScenarioResult> {
        let loaded = match load_dir(dir) {
            Ok(l) => l,
            Err(e) => return vec![not_run(&dir.display().to_string(), "", e.to_string())],
        };
        let permits = Arc::new(tokio::sync::Semaphore::new(jobs.max(1)));
        let mut tasks = tokio::task::JoinSet::new();
        for (i, (path, scenario)) in loaded.into_iter().enumerate() {
            let rig = self.clone();
            let permits = permits.clone();
            tasks.spawn(async move {
                let Ok(_permit) = permits.acquire_owned().await else {
                    return (
                        i,
                        not_run(&path.display().to_string(), "", "cancelled".into()),
                    );
                };
                let result = match scenario {
                    Ok(s) => rig.run(&s).await,
                    Err(e) => not_run(
                        path.file_stem().and_then(|s| s.to_str()).unwrap_or("?"),
                        "",
                        format!("invalid: {e}"),
                    ),
                };
                (i, result)
            });
        }
        let mut results = Vec::new();
        while let Some(r) = tasks.join_next().await {
            match r {
                Ok(r) => results.push(r),
                Err(e) => results.push((usize::MAX, not_run("?", "", e.to_string()))),
            }
        }
        results.sort_by_key(|(i, _)| *i);
        results.into_iter().map(|(_, r)| r).collect()
    }

    /// Runs one scenario; a setup failure is a failed result that says what failed.
    pub async fn run(&self, scenario: &Scenario) -> ScenarioResult {
        let started = Instant::now();
        match self.replay(scenario, started).await {
            Ok(r) => r,
            Err(e) => {
                let mut r = not_run(&scenario.name, &scenario.description, e.to_string());
                r.expect = scenario.expectation();
                r.wall_s = started.elapsed().as_secs_f64();
                r
            }
        }
    }

    fn work_dir(&self, scenario: &Scenario) -> Result<WorkDir, RigError> {
        match &self.options.keep {
            Some(root) => {
                let dir = root.join(&scenario.name);
                if dir.exists() {
                    std::fs::remove_dir_all(&dir).map_err(|e| {
                        RigError::Setup(format!("{}: cannot clear: {e}", dir.display()))
                    })?;
                }
                std::fs::create_dir_all(&dir).map_err(|e| {
                    RigError::Setup(format!("{}: cannot create: {e}", dir.display()))
                })?;
                Ok(WorkDir::Kept(dir))
            }
            None => tempfile::Builder::new()
                .prefix(&format!("firebreak-hil-{}-", scenario.name))
                .tempdir()
                .map(WorkDir::Temp)
                .map_err(|e| RigError::Setup(format!("no temporary directory: {e}"))),
        }
    }

    async fn replay(
        &self,
        scenario: &Scenario,
        started: Instant,
    ) -> Result<ScenarioResult, RigError> {
        let real_devices = self.options.site.is_some();
        let scale = if real_devices {
            if self.options.time_scale.is_some_and(|s| s != 1.0) {
                return Err(RigError::Setup(
                    "real devices run in real time: leave out --time-scale (or give 1)".into(),
                ));
            }
            1.0
        } else {
            let wanted = self.options.time_scale.unwrap_or(scenario.time_scale);
            scenario
                .max_time_scale
                .map_or(wanted, |max| wanted.min(max))
        };
        if !(scale > 0.0 && scale <= MAX_GATEWAY_SCALE) {
            return Err(RigError::Setup(format!(
                "time scale {scale} is not above 0 and at most {MAX_GATEWAY_SCALE} (the gateway's limit)"
            )));
        }
        let work = self.work_dir(scenario)?;
        let dir = work.path().to_path_buf();

        // The broker.
        let stops_broker = scenario
            .events
            .iter()
            .any(|e| matches!(e.kind, EventKind::BrokerStop | EventKind::BrokerRestart));
        let mut mosquitto = None;
        // Several gateways and a controller get a Mosquitto of their own too: the will a
        // broker sends for a dead or partitioned gateway is what the controller judges.
        let managed = stops_broker || (scenario.with_controller && self.options.broker.is_none());
        let broker = if managed {
            if self.options.broker.is_some() {
                return Err(RigError::Setup(
                    "the scenario stops and restarts the broker; the rig cannot do that to an external one: run it without --broker (the rig then manages a Mosquitto)".into(),
                ));
            }
            let bin = self
                .options
                .mosquitto
                .clone()
                .or_else(find_mosquitto)
                .ok_or_else(|| RigError::Setup("the scenario stops and restarts the broker, or merges [[gateways]] in a controller that needs their wills, which needs Mosquitto (apt-get install mosquitto, or --mosquitto PATH)".into()))?;
            let mdir = dir.join("mosquitto");
            std::fs::create_dir_all(&mdir)
                .map_err(|e| RigError::Setup(format!("{}: {e}", mdir.display())))?;
            let m = Mosquitto::start(&bin, &mdir).await?;
            let b = Broker {
                host: "127.0.0.1".into(),
                port: m.port(),
            };
            mosquitto = Some(m);
            b
        } else if let Some(b) = &self.options.broker {
            b.clone()
        } else {
            self.embedded().await?
        };

        // The devices and the site configuration of each gateway.
        if real_devices && scenario.with_controller {
            return Err(RigError::Setup(
                "[[gateways]] need simulated devices: the rig cannot give real devices to several gateways of its own".into(),
            ));
        }
        let backend = match self.options.site {
            Some(_) => NodeBackend::StandIn,
            None => NodeBackend::resolve(&self.options.node, scenario, &self.options.node_programs)
                .map_err(RigError::Setup)?,
        };
        // Keys: the rig's for the one implicit gateway; one per gateway (made here) with a
        // controller, which trusts each for its own gateway id.
        let keys: Vec<(PathBuf, String, TrustedKey)> = if scenario.with_controller {
            let kdir = dir.join("keys");
            std::fs::create_dir_all(&kdir)
                .map_err(|e| RigError::Setup(format!("{}: {e}", kdir.display())))?;
            let mut keys = Vec::new();
            for g in &scenario.gateways {
                let key_id = format!("key-{}", g.name);
                output(
                    &self.options.gateway_bin,
                    &[
                        "keygen",
                        "--out",
                        &kdir.to_string_lossy(),
                        "--key-id",
                        &key_id,
                    ],
                )
                .await?;
                let trusted = TrustedKey::load(&kdir.join(format!("{key_id}.pub")))
                    .map_err(RigError::Setup)?;
                keys.push((kdir.join(format!("{key_id}.key")), key_id, trusted));
            }
            keys
        } else {
            vec![(
                self.key_file.clone(),
                self.key_id.clone(),
                self.trusted.clone(),
            )]
        };
        let (sim, clock) = match &self.options.site {
            None => {
                let nodes_dir = dir.join("nodes");
                std::fs::create_dir_all(&nodes_dir)
                    .map_err(|e| RigError::Setup(format!("{}: {e}", nodes_dir.display())))?;
                let sim = Simulation::start(
                    scenario,
                    SimOptions {
                        time_scale: Some(scale),
                        broker: Some(broker.clone()),
                        paused: true,
                        node: backend.clone(),
                        work_dir: Some(nodes_dir),
                        ..SimOptions::default()
                    },
                )
                .await
                .map_err(|e| RigError::Setup(format!("simulators: {e}")))?;
                peers_started(scenario, &sim)?;
                let clock = sim.clock().clone();
                (Some(sim), clock)
            }
            Some(_) => (None, ScenarioClock::paused(scenario.start)),
        };
        let base_poll_ms = ((2000.0 / scale).round() as u64).clamp(250, 1000);
        let mut site_id = format!("hil-{}", scenario.name);
        let mut runs: Vec<GatewayRun> = Vec::new();
        for (g, (key_file, key_id, _)) in scenario.gateways.iter().zip(&keys) {
            let suffix = if g.name.is_empty() {
                String::new()
            } else {
                format!("-{}", g.name)
            };
            // A gateway whose network the scenario cuts reaches the broker through a relay
            // the rig can cut.
            let proxy = if g.network_cuts.is_empty() {
                None
            } else {
                Some(NetProxy::start((broker.host.clone(), broker.port)).await?)
            };
            let url = match &proxy {
                Some(p) => format!("mqtt://127.0.0.1:{}", p.port()),
                None => broker.url(),
            };
            let brokers = vec![("hil".to_string(), url)];
            let signing = Some((key_file.clone(), key_id.clone()));
            let outbox_dir = Some(dir.join(format!("outbox{suffix}")));
            // After the simulators took their ports.
            let http_port = free_port()?;
            let poll_ms = ((base_poll_ms as f64) * g.poll_factor).round() as u64;
            let text = match (&self.options.site, &sim) {
                (None, Some(sim)) => {
                    let options = SiteOptions {
                        // Unique per scenario: replays that share a broker must not share
                        // MQTT client ids.
                        gateway: g.id.clone(),
                        http_bind: format!("127.0.0.1:{http_port}"),
                        poll_interval_ms: poll_ms,
                        timeout_ms: (poll_ms * 4 / 5).min(base_poll_ms * 4 / 5 * 2),
                        freshness_ms: (poll_ms * 3).max(1000),
                        brokers,
                        signing,
                        outbox_dir,
                        bus: g.bus,
                        ..SiteOptions::default()
                    };
                    site_config_with(scenario, sim.addresses(), &options)
                }
                (Some(file), _) => {
                    let (text, site) = real_site(
                        file,
                        scenario,
                        http_port,
                        &brokers,
                        signing.as_ref(),
                        outbox_dir.as_deref(),
                    )?;
                    site_id = site;
                    text
                }
                (None, None) => return Err(RigError::Setup("no simulation".into())),
            };
            let config = dir.join(format!("site{suffix}.toml"));
            std::fs::write(&config, &text)
                .map_err(|e| RigError::Setup(format!("{}: {e}", config.display())))?;
            let log = dir.join(format!("gateway{suffix}.log"));
            runs.push(GatewayRun {
                spec: g.clone(),
                process: Gateway::new(&self.options.gateway_bin, &config, &log, scale, http_port),
                config,
                log,
                proxy,
                down: false,
                poll_ms,
            });
        }
        let site: SiteId = site_id
            .parse()
            .map_err(|e| RigError::Setup(format!("site id {site_id:?}: {e}")))?;

        // The controllers, then the gateways.
        let mut sub = Subscriber::start(
            &broker,
            topic::triggers(&site).to_string(),
            keys.iter().map(|(_, _, k)| k.clone()).collect(),
            clock.clone(),
            mosquitto.is_some(),
        );
        if !sub.subscribed(Duration::from_secs(10)).await {
            return Err(RigError::Setup(format!(
                "the subscriber could not subscribe on {} within 10 s",
                broker.url()
            )));
        }
        let mut controller = if scenario.with_controller {
            let trust = dir.join("trust.toml");
            let pairs: Vec<(String, PathBuf)> = runs
                .iter()
                .zip(&keys)
                .map(|(r, (key, _, _))| (r.spec.id.clone(), key.with_extension("pub")))
                .collect();
            std::fs::write(&trust, trust_file(site.as_str(), &pairs))
                .map_err(|e| RigError::Setup(format!("{}: {e}", trust.display())))?;
            Some(Controller::start(
                &self.options.gateway_bin,
                &broker.url(),
                site.as_str(),
                &trust,
                &format!(
                    "firebreak-hil-watch-{}-{}",
                    std::process::id(),
                    fastrand::u32(..)
                ),
                clock.clone(),
                &dir.join("controller.log"),
            )?)
        } else {
            None
        };
        for run in &mut runs {
            run.process.start(GATEWAY_START).await?;
        }
        for run in &runs {
            peers::wait_polled(run.process.http_port(), Duration::from_secs(10)).await;
        }
        if let Some(c) = &controller {
            let ids: Vec<String> = runs.iter().map(|r| r.spec.id.clone()).collect();
            if !c.wait_for_statuses(&ids, Duration::from_secs(10)).await {
                return Err(RigError::Setup(format!(
                    "the controller (firebreak watch) did not hear every gateway's status within 10 s; its log: {}",
                    dir.join("controller.log").display()
                )));
            }
        }

        // The replay.
        let mut progress = Progress::new(self.options.progress, scenario);
        let mut problems = Vec::new();
        let mut events = Vec::new();
        let mut pending = scenario.events.iter().peekable();
        let mut controller_died = false;
        clock.resume();
        loop {
            let now = clock.now();
            while let Some(e) = pending.next_if(|e| e.at <= now) {
                let outcome = match e.kind {
                    EventKind::BrokerStop => match mosquitto.as_mut() {
                        Some(m) => {
                            m.stop().await;
                            "Mosquitto stopped (SIGTERM)".to_string()
                        }
                        None => "no broker the rig manages".to_string(),
                    },
                    EventKind::BrokerRestart => match mosquitto.as_mut() {
                        Some(m) => match m.restart().await {
                            Ok(()) => format!("Mosquitto restarted at {}", clock.now()),
                            Err(err) => {
                                problems.push(format!("broker-restart at {}: {err}", e.at));
                                err.to_string()
                            }
                        },
                        None => "no broker the rig manages".to_string(),
                    },
                    EventKind::GatewayKill => {
                        let mut done = Vec::new();
                        for run in targets(&mut runs, &e.gateways) {
                            run.process.kill().await;
                            run.down = true;
                            done.push(format!("{} killed (SIGKILL)", run.spec.id));
                        }
                        done.join("; ")
                    }
                    EventKind::GatewayRestart => {
                        let mut done = Vec::new();
                        for run in targets(&mut runs, &e.gateways) {
                            let t = Instant::now();
                            match run.process.start(GATEWAY_START).await {
                                Ok(()) => {
                                    run.down = false;
                                    done.push(format!(
                                        "{} restarted, /healthz after {} ms (at {})",
                                        run.spec.id,
                                        t.elapsed().as_millis(),
                                        clock.now()
                                    ));
                                }
                                Err(err) => {
                                    problems.push(format!("gateway-restart at {}: {err}", e.at));
                                    done.push(err.to_string());
                                }
                            }
                        }
                        done.join("; ")
                    }
                    EventKind::GatewayNetworkCut | EventKind::GatewayNetworkRestore => {
                        let cut = e.kind == EventKind::GatewayNetworkCut;
                        let mut done = Vec::new();
                        for run in targets(&mut runs, &e.gateways) {
                            match &run.proxy {
                                Some(p) if cut => {
                                    p.cut();
                                    done.push(format!("{}: network to the broker cut (no byte passes, nothing closed)", run.spec.id));
                                }
                                Some(p) => {
                                    p.restore();
                                    done.push(format!(
                                        "{}: network restored (held connections closed)",
                                        run.spec.id
                                    ));
                                }
                                None => done.push(format!("{}: no relay", run.spec.id)),
                            }
                        }
                        done.join("; ")
                    }
                    EventKind::NodeReboot => {
                        let reason = e.reason.unwrap_or(RebootReason::Watchdog);
                        let mut outcomes = Vec::new();
                        for node in &e.devices {
                            let name = node.as_str();
                            let outcome = match sim.as_ref() {
                                None => "not carried out (real devices)".to_string(),
                                Some(sim) => match sim.firmware() {
                                    Some(f) => f.reboot(name, reason).await,
                                    None => stand_in_reboot(sim, name, &clock),
                                },
                            };
                            outcomes.push(format!("{name}: {outcome}"));
                        }
                        if real_devices {
                            problems.push(format!(
                                "node-reboot at {}: the rig cannot reboot real devices",
                                e.at
                            ));
                        }
                        outcomes.join("; ")
                    }
                    EventKind::MaintenanceStart | EventKind::MaintenanceEnd => {
                        let mut done = Vec::new();
                        for run in targets(&mut runs, &e.gateways) {
                            let said = maintenance(
                                &self.options.gateway_bin,
                                run,
                                e,
                                scale,
                                &scenario.name,
                            )
                            .await;
                            match said {
                                Ok(line) => done.push(format!("{}: {line}", run.spec.id)),
                                Err(err) => {
                                    problems.push(format!("{} at {}: {err}", e.kind, e.at));
                                    done.push(format!("{}: {err}", run.spec.id));
                                }
                            }
                        }
                        done.join("; ")
                    }
                    EventKind::NetworkCut
                    | EventKind::NetworkRestore
                    | EventKind::BusCut
                    | EventKind::BusRestore => {
                        if real_devices {
                            problems.push(format!(
                                "{} at {}: the rig cannot cut the network or bus of real devices",
                                e.kind, e.at
                            ));
                            "not carried out (real devices)".to_string()
                        } else if e.gateways.is_empty() {
                            "carried out by the simulators".to_string()
                        } else {
                            let ids: Vec<&str> = e
                                .gateways
                                .iter()
                                .filter_map(|&g| runs.get(g).map(|r| r.spec.id.as_str()))
                                .collect();
                            format!("carried out by the simulators (bus of {})", ids.join(", "))
                        }
                    }
                };
                events.push(EventRecord {
                    at: Moment::of(e.at),
                    kind: e.kind.to_string(),
                    outcome,
                });
            }
            if now >= scenario.end {
                break;
            }
            for run in &mut runs {
                if !run.down && !run.process.running() {
                    problems.push(format!(
                        "the gateway {} died at {now} without being asked; its log: {}\n{}",
                        run.spec.id,
                        run.log.display(),
                        peers::tail(&run.log, 8)
                    ));
                    run.down = true;
                }
            }
            if let Some(c) = controller.as_mut()
                && !controller_died
                && !c.running()
            {
                problems.push(format!(
                    "the controller (firebreak watch) died at {now}; its log: {}",
                    dir.join("controller.log").display()
                ));
                controller_died = true;
            }
            progress.draw(now, &sub);
            let next = pending
                .peek()
                .map_or(scenario.end, |e| e.at.min(scenario.end));
            let wait = clock
                .real_until(next)
                .unwrap_or(Duration::from_millis(100))
                .clamp(Duration::from_millis(1), Duration::from_millis(200));
            tokio::time::sleep(wait).await;
        }
        progress.finish(&sub);

        // Triggers still on their way.
        let issued = |runs: &[GatewayRun]| -> BTreeMap<String, BTreeSet<u64>> {
            runs.iter()
                .map(|r| (r.spec.id.clone(), r.process.issued()))
                .collect()
        };
        let drain = Instant::now();
        while drain.elapsed() < DRAIN {
            let got: BTreeSet<(String, u64)> = sub
                .received()
                .iter()
                .filter_map(|r| {
                    r.trigger
                        .as_ref()
                        .ok()
                        .map(|t| (t.gateway.to_string(), t.seq))
                })
                .collect();
            let all_in = issued(&runs)
                .iter()
                .all(|(g, seqs)| seqs.iter().all(|s| got.contains(&(g.clone(), *s))));
            if drain.elapsed() > Duration::from_millis(500) && all_in {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let node_names: Vec<String> = scenario.nodes().map(|d| d.name.to_string()).collect();
        let firmware = sim.as_ref().and_then(Simulation::firmware);
        let mut gateway_records = Vec::new();
        for run in &runs {
            let rtu = if firmware.is_some() || (runs.len() > 1 && !node_names.is_empty()) {
                peers::rtu_figures(run.process.http_port(), &node_names).await
            } else {
                None
            };
            gateway_records.push(GatewayRecord {
                name: run.spec.name.clone(),
                id: run.spec.id.clone(),
                bus: run.spec.bus.to_string(),
                poll_ms: run.poll_ms,
                issued: run.process.issued().len(),
                bus_cut: !run.spec.bus_cuts.is_empty(),
                rtu,
            });
        }
        let gateway_rtu = match firmware {
            Some(_) => gateway_records.first().and_then(|g| g.rtu.clone()),
            None => None,
        };
        // The controller first: the gateways' clean stops after the end are not the run's.
        let heard = match controller.as_mut() {
            Some(c) => {
                c.stop().await;
                Some(c.heard())
            }
            None => None,
        };
        for run in &mut runs {
            run.process.stop().await;
        }
        let received = sub.received();
        drop(sub);
        let nodes = match firmware {
            Some(f) => Some(f.report().await),
            None => None,
        };
        let peer_notes: Vec<String> = sim
            .as_ref()
            .and_then(Simulation::nut)
            .map(|n| n.figures().summary())
            .into_iter()
            .collect();
        drop(sim);
        if let Some(m) = mosquitto.as_mut() {
            m.stop().await;
        }
        let observed = Observed {
            received,
            issued: issued(&runs),
            events,
            problems,
            time_scale: scale,
            simulated: !real_devices,
            wall_s: started.elapsed().as_secs_f64(),
            backend: backend.name(),
            nodes,
            gateway_rtu,
            gateways: gateway_records,
            controller: heard,
        };
        let mut result = judge(scenario, &self.rules, observed);
        result.notes.extend(peer_notes);
        Ok(result)
    }
}

/// Refuses a replay whose NUT UPS or snmpsim PDUs could not start (the programs missing):
/// without them the scenario is not the one written.
fn peers_started(scenario: &Scenario, sim: &Simulation) -> Result<(), RigError> {
    for d in scenario.devices.iter().filter(|d| d.peer.is_some()) {
        if let Some(crate::sim::Endpoint::NotStarted { reason }) =
            sim.addresses().get(d.name.as_str())
        {
            return Err(RigError::Setup(format!(
                "peer missing: {} is served by {}, which did not start: {reason}",
                d.name.as_str(),
                match d.peer {
                    Some(crate::scenario::Peer::Nut) => "NUT (upsd, dummy-ups)",
                    _ => "snmpsim",
                }
            )));
        }
    }
    Ok(())
}

/// One gateway process of a replay.
struct GatewayRun {
    spec: GatewaySpec,
    process: Gateway,
    /// Its site configuration (`firebreak maintenance` finds the control socket there).
    config: PathBuf,
    log: PathBuf,
    /// Its relay to the broker, when the scenario cuts its network.
    proxy: Option<NetProxy>,
    /// Killed on purpose (not a death to report).
    down: bool,
    poll_ms: u64,
}

/// Carries out a `maintenance-*` event on one gateway, as a technician would:
/// `firebreak maintenance start|end --config SITE …`, the duration in real seconds (scenario
/// time over the time scale, at least 1 s). The command's first line, or why it failed.
async fn maintenance(
    bin: &Path,
    run: &GatewayRun,
    e: &crate::scenario::Event,
    scale: f64,
    scenario: &str,
) -> Result<String, RigError> {
    let Some(m) = &e.maintenance else {
        return Err(RigError::Setup("the event names no device".into()));
    };
    if run.down {
        return Err(RigError::Setup(format!(
            "{} is down: nobody to ask",
            run.spec.id
        )));
    }
    let config = run.config.display().to_string();
    let channel = m.channel.map(|c| c.to_string());
    let secs = m.duration.map(|d| {
        ((d.millis() as f64 / 1000.0 / scale).ceil() as u64)
            .max(1)
            .to_string()
    });
    let reason = format!("scenario {scenario}");
    let mut args = vec![
        "maintenance",
        if e.kind == EventKind::MaintenanceStart {
            "start"
        } else {
            "end"
        },
        "--config",
        &config,
        "--device",
        m.device.as_str(),
        "--by",
        "firebreak-hil",
    ];
    if let Some(c) = &channel {
        args.extend(["--channel", c]);
    }
    if let Some(s) = &secs {
        args.extend(["--for", s, "--reason", &reason]);
    }
    let out = output(bin, &args).await?;
    Ok(out.lines().next().unwrap_or_default().to_string())
}

/// The gateways an event acts on.
fn targets<'a>(runs: &'a mut [GatewayRun], which: &[usize]) -> Vec<&'a mut GatewayRun> {
    runs.iter_mut()
        .enumerate()
        .filter(|(i, _)| which.contains(i))
        .map(|(_, r)| r)
        .collect()
}

/// A `node-reboot` of a stand-in: it cannot reboot, so it does what a rebooting node looks
/// like from the gateway's side of the line: silent for the 4 s (real time) a watchdog reset
/// takes.
fn stand_in_reboot(sim: &Simulation, name: &str, clock: &ScenarioClock) -> String {
    let Some(device) = sim.device(name) else {
        return "no such device".into();
    };
    let now = clock.now();
    let down = Duration::from_secs_f64(4.0 * clock.scale());
    device.inject_window(
        crate::scenario::Fault::Silent,
        crate::scenario::FaultScope::Device,
        Window {
            from: now,
            to: Some(now.plus(down)),
        },
    );
    device.boot(now.plus(down), RebootReason::Watchdog.code());
    "the stand-in has no firmware: silent for 4 s, as a watchdog reset is, then back with its uptime from 0 and reset reason 1".into()
}

/// A scenario's working directory: kept (`--keep`) or removed afterwards.
enum WorkDir {
    Kept(PathBuf),
    Temp(tempfile::TempDir),
}

impl WorkDir {
    fn path(&self) -> &Path {
        match self {
            WorkDir::Kept(p) => p,
            WorkDir::Temp(t) => t.path(),
        }
    }
}

/// A site configuration for real devices: the file's devices, zones, profiles, MQTT sources
/// and policy, with the rig's `[http]`, `[[brokers]]`, `[signing]` and `[outbox]`, the
/// scenario's evacuation budget (and hold time, when it sets one), and `rules_file` made
/// absolute. Returns the text and the
/// site id.
fn real_site(
    file: &Path,
    scenario: &Scenario,
    http_port: u16,
    brokers: &[(String, String)],
    signing: Option<&(PathBuf, String)>,
    outbox: Option<&Path>,
) -> Result<(String, String), RigError> {
    let bad = |problem: String| RigError::Setup(format!("{}: {problem}", file.display()));
    let text = std::fs::read_to_string(file).map_err(|e| bad(e.to_string()))?;
    let mut doc: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| bad(e.message().to_string()))?;
    let site = doc
        .get("site")
        .and_then(|s| s.get("name"))
        .and_then(|n| n.as_str())
        .ok_or_else(|| bad("site.name: missing".into()))?
        .to_string();
    let table = |pairs: Vec<(&str, toml::Value)>| {
        toml::Value::Table(pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
    };
    let s = |v: &str| toml::Value::String(v.to_string());
    doc.insert(
        "http".into(),
        table(vec![("bind", s(&format!("127.0.0.1:{http_port}")))]),
    );
    doc.insert(
        "brokers".into(),
        toml::Value::Array(
            brokers
                .iter()
                .map(|(n, u)| table(vec![("name", s(n)), ("url", s(u))]))
                .collect(),
        ),
    );
    if let Some((key_file, key_id)) = signing {
        doc.insert(
            "signing".into(),
            table(vec![
                ("key_file", s(&key_file.display().to_string())),
                ("key_id", s(key_id)),
            ]),
        );
    }
    if let Some(dir) = outbox {
        doc.insert(
            "outbox".into(),
            table(vec![("dir", s(&dir.display().to_string()))]),
        );
    }
    let policy = doc
        .entry("policy")
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    if let Some(p) = policy.as_table_mut() {
        p.insert(
            "evacuation_budget_s".into(),
            toml::Value::Integer(
                i64::try_from(scenario.evacuation_budget.as_secs()).unwrap_or(300),
            ),
        );
        if let Some(hold) = scenario.hold {
            p.insert(
                "hold_s".into(),
                toml::Value::Integer(i64::try_from(hold.as_secs()).unwrap_or(300)),
            );
        }
        if let Some(rules) = p.get("rules_file").and_then(|r| r.as_str()) {
            let base = file.parent().unwrap_or(Path::new("."));
            let abs = base.join(rules);
            p.insert("rules_file".into(), s(&abs.display().to_string()));
        }
    }
    let text = format!(
        "# firebreak-hil: {} with the rig's broker, key and outbox, for scenario {}\n{}",
        file.display(),
        scenario.name,
        toml::to_string(&doc).map_err(|e| bad(e.to_string()))?
    );
    Ok((text, site))
}

/// Progress on stderr.
struct Progress {
    style: ProgressStyle,
    name: String,
    start: ScenarioTime,
    end: ScenarioTime,
    shown: i64,
}

impl Progress {
    fn new(style: ProgressStyle, scenario: &Scenario) -> Progress {
        Progress {
            style,
            name: scenario.name.clone(),
            start: scenario.start,
            end: scenario.end,
            shown: -1,
        }
    }

    fn state(sub: &Subscriber) -> (Level, usize) {
        let received = sub.received();
        let level = received
            .iter()
            .rev()
            .filter_map(|r| r.trigger.as_ref().ok())
            .find(|t| t.zone.is_none())
            .map_or(Level::Normal, |t| t.level);
        (level, received.len())
    }

    fn fraction(&self, now: ScenarioTime) -> f64 {
        let span = (self.end.millis() - self.start.millis()).max(1) as f64;
        ((now.millis() - self.start.millis()) as f64 / span).clamp(0.0, 1.0)
    }

    fn draw(&mut self, now: ScenarioTime, sub: &Subscriber) {
        let f = self.fraction(now);
        let now = ScenarioTime::from_millis(now.millis() / 1000 * 1000);
        match self.style {
            ProgressStyle::Off => {}
            ProgressStyle::Bar => {
                let (level, n) = Progress::state(sub);
                let filled = (f * 30.0).round() as usize;
                eprint!(
                    "\r{:<34} [{}{}] {:>10}  site {:<8} {n} received ",
                    self.name,
                    "#".repeat(filled),
                    ".".repeat(30 - filled.min(30)),
                    now.to_string(),
                    level.to_string()
                );
            }
            ProgressStyle::Lines => {
                let decile = (f * 10.0).floor() as i64;
                if decile > self.shown {
                    self.shown = decile;
                    let (level, n) = Progress::state(sub);
                    eprintln!(
                        "{:<34} {:>3}% {:>10}  site {:<8} {n} received",
                        self.name,
                        decile * 10,
                        now.to_string(),
                        level.to_string()
                    );
                }
            }
        }
    }

    fn finish(&mut self, sub: &Subscriber) {
        self.draw(self.end, sub);
        if self.style == ProgressStyle::Bar {
            eprintln!();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_real_site_gets_the_rigs_broker_key_outbox_and_budget() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("site.toml");
        std::fs::write(
            &file,
            r#"
[site]
name = "paris-1"
gateway = "gw-1"

[http]
bind = "0.0.0.0:9186"

[policy]
evacuation_budget_s = 900
rules_file = "rules.toml"

[[brokers]]
name = "site-b"
url = "mqtts://b.example:8883"

[[devices]]
name = "ups-b1"
zone = "z"
transport = "tcp"
address = "192.0.2.10:502"
profile = "generic-ups"
"#,
        )
        .unwrap();
        let text = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/ups-self-test.toml"),
        )
        .unwrap();
        let scenario = Scenario::parse(&text, "ups-self-test.toml").unwrap();
        let key = (PathBuf::from("/k/hil.key"), "hil".to_string());
        let (out, site) = real_site(
            &file,
            &scenario,
            4242,
            &[("hil".into(), "mqtt://127.0.0.1:1883".into())],
            Some(&key),
            Some(Path::new("/o")),
        )
        .unwrap();
        assert_eq!(site, "paris-1");
        let doc: toml::Table = out.parse().unwrap();
        assert_eq!(doc["http"]["bind"].as_str(), Some("127.0.0.1:4242"));
        let brokers = doc["brokers"].as_array().unwrap();
        assert_eq!(brokers.len(), 1, "only the rig's broker: {out}");
        assert_eq!(brokers[0]["url"].as_str(), Some("mqtt://127.0.0.1:1883"));
        assert_eq!(doc["signing"]["key_id"].as_str(), Some("hil"));
        assert_eq!(doc["outbox"]["dir"].as_str(), Some("/o"));
        assert_eq!(doc["policy"]["evacuation_budget_s"].as_integer(), Some(300));
        assert_eq!(
            doc["policy"]["rules_file"].as_str(),
            Some(dir.path().join("rules.toml").to_str().unwrap())
        );
        assert_eq!(
            doc["devices"][0]["address"].as_str(),
            Some("192.0.2.10:502")
        );
    }
}
