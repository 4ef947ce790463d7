//! `firebreak demo`: the whole system in one process, on nothing but this binary.
//!
//! An embedded MQTT broker, a simulated site replaying one of the built-in scenarios
//! (`hil/scenarios/`, compiled in), the gateway pipeline ([`run_with`]) on a generated site
//! configuration with a fresh signing key, and a controller that verifies each trigger
//! ([`Verifier`]) and prints it as it arrives: level, scope, reasons with values and
//! thresholds, the estimated seconds to power loss. At the end it prints the lead time: how
//! long before the modelled power loss `evacuate` reached the controller.
//!
//! The scenario runs [`DEFAULT_SCALE`] times faster than real time and stops a minute (of
//! scenario time) after the power loss. Broker and gateway events of a scenario (a broker
//! outage, the gateway killed) need separate processes: the demo says so and leaves them
//! out; `firebreak-hil run` carries them out.
//!
//! A scenario with `[[gateways]]` (`two-gateways-one-killed`) runs one gateway pipeline per
//! gateway, each with its own id, key, outbox and status port, and the controller merges
//! them ([`Merger`]: the highest level any gateway reports; statuses and wills make a
//! gateway stale) and prints each change of the merged level. Its `gateway-kill` events are
//! carried out in the process: the gateway's pipeline is aborted (no clean stop, its broker
//! connection dropped without a DISCONNECT, so the broker sends its will) — a crash of the
//! pipeline, not of a process; `firebreak-hil run` kills a real one with SIGKILL.

use std::io::Write;
use std::time::Duration;

use firebreak_hil::broker::EmbeddedBroker;
use firebreak_hil::rig::peers::wait_polled;
use firebreak_hil::scenario::builtin::{builtin, names};
use firebreak_hil::scenario::{EventKind, Expectation, Scenario};
use firebreak_hil::sim::{Broker, SimOptions, Simulation};
use firebreak_hil::site::{SiteOptions, site_config_with};
use firebreak_hil::time::ScenarioTime;
use firebreak_protocols::{KeyId, Level, Trigger, topic};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio::sync::mpsc;

use crate::acquire::now_ms;
use crate::config::SiteConfig;
use crate::keys::SigningKey;
use crate::run::{RunOptions, run_with};
use crate::subscribe::merge::{MergeEvent, MergeOptions, Merger};
use crate::subscribe::{StatusVerdict, Verdict, Verifier};

/// Scenario seconds per real second unless `--time-scale` says otherwise: the 30-minute
/// battery fire in about 25 seconds.
pub const DEFAULT_SCALE: f64 = 60.0;

/// Scenario time replayed after the power loss.
pub const AFTER_POWER_LOSS: Duration = Duration::from_secs(60);

/// `firebreak demo …`.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// The scenario to replay (`--list` shows them).
    #[arg(long, default_value = "battery-fire")]
    pub scenario: String,
    /// List the built-in scenarios and exit.
    #[arg(long)]
    pub list: bool,
    /// Scenario seconds per real second (0.01 to 1000).
    #[arg(long, default_value_t = DEFAULT_SCALE)]
    pub time_scale: f64,
}

/// Why the demo could not run, or failed.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// No built-in scenario of that name.
    #[error("--scenario: no built-in scenario named {name:?} (firebreak demo --list: {known})")]
    UnknownScenario {
        /// The name given.
        name: String,
        /// The names there are.
        known: String,
    },
    /// `--time-scale` out of range.
    #[error("--time-scale: {0} is not between 0.01 and 1000")]
    BadTimeScale(f64),
    /// Something the demo needs could not be set up.
    #[error("demo: {0}")]
    Setup(String),
    /// The scenario's expectation failed.
    #[error("{scenario}: expected {expected}, but {found}")]
    Expectation {
        /// The scenario.
        scenario: String,
        /// What it expected.
        expected: String,
        /// What happened.
        found: String,
    },
    /// Writing the output failed.
    #[error("writing output: {0}")]
    Io(#[from] std::io::Error),
}

fn setup(what: &str) -> impl FnOnce(String) -> DemoError + '_ {
    move |e| DemoError::Setup(format!("{what}: {e}"))
}

/// Runs the demo, writing what a controller sees to `out`.
pub fn demo(args: DemoArgs, out: &mut impl Write) -> Result<(), DemoError> {
    if args.list {
        return list(out);
    }
    let scenario = builtin(&args.scenario)
        .ok_or_else(|| DemoError::UnknownScenario {
            name: args.scenario.clone(),
            known: names().join(", "),
        })?
        .map_err(|e| DemoError::Setup(e.to_string()))?;
    let scale = args.time_scale;
    if !(scale.is_finite() && (0.01..=1000.0).contains(&scale)) {
        return Err(DemoError::BadTimeScale(scale));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(replay(scenario, scale, out))
}

fn list(out: &mut impl Write) -> Result<(), DemoError> {
    writeln!(
        out,
        "{:<34} {:<11} {:<22} what it models",
        "scenario", "power loss", "expects"
    )?;
    for name in names() {
        let Some(Ok(s)) = builtin(name) else { continue };
        writeln!(
            out,
            "{:<34} {:<11} {:<22} {}",
            s.name,
            s.power_loss_at.map_or("-".to_string(), |p| p.to_string()),
            s.expect.to_string(),
            s.description
        )?;
    }
    writeln!(
        out,
        "\nfirebreak demo --scenario NAME replays one (battery-fire by default)."
    )?;
    Ok(())
}

/// A trigger the controller accepted, and when (scenario time).
struct Arrival {
    at: ScenarioTime,
    trigger: Trigger,
}

/// What the controller tells the demo's loop.
enum Seen {
    /// A trigger it accepted.
    Trigger(Box<Arrival>),
    /// A change of its merged view (several gateways), as a line.
    Merged(ScenarioTime, String),
}

/// One gateway pipeline of the demo, running in this process.
struct DemoGateway {
    id: String,
    /// Where its page and `/status` are served.
    http_port: u16,
    /// Its control socket (`maintenance-*` events go through it, as from the command line).
    socket: Option<std::path::PathBuf>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), crate::run::RunError>>,
}

/// A merged-view event as the controller prints it.
fn merged_line(e: &MergeEvent) -> Option<String> {
    let list = |levels: &[(firebreak_protocols::GatewayId, Level)]| {
        levels
            .iter()
            .map(|(g, l)| format!("{g} {l}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    Some(match e {
        MergeEvent::Level {
            scope: None,
            level,
            previous,
            by,
            levels,
        } => format!(
            "MERGED {} (was {previous}) site | {} (changed by {by})",
            level.name().to_uppercase(),
            list(levels)
        ),
        MergeEvent::Level { .. } => return None,
        MergeEvent::Stale { gateway, why } => format!("STALE gateway {gateway}: {why}"),
        MergeEvent::Live { gateway } => format!("LIVE gateway {gateway}"),
        MergeEvent::SiteSilentDuringAlarm { level, gateways } => format!(
            "SITE-SILENT-DURING-ALARM at {}: every gateway is silent ({})",
            level.name().to_uppercase(),
            gateways
                .iter()
                .map(|g| g.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        MergeEvent::SiteHeardAgain { gateway } => format!("SITE HEARD AGAIN: {gateway}"),
        MergeEvent::Disagree {
            scope: None,
            levels,
            for_ms,
        } => {
            format!("DISAGREE site for {} s: {}", for_ms / 1000, list(levels))
        }
        MergeEvent::Agree { scope: None, level } => format!("AGREE site at {level}"),
        _ => return None,
    })
}

async fn replay(scenario: Scenario, scale: f64, out: &mut impl Write) -> Result<(), DemoError> {
    let work = tempfile::Builder::new()
        .prefix("firebreak-demo-")
        .tempdir()
        .map_err(|e| DemoError::Setup(format!("no temporary directory: {e}")))?;
    let embedded = tokio::task::spawn_blocking(EmbeddedBroker::start)
        .await
        .map_err(|e| DemoError::Setup(e.to_string()))?
        .map_err(|e| DemoError::Setup(e.to_string()))?;
    let broker = Broker {
        host: "127.0.0.1".into(),
        port: embedded.addr().port(),
    };
    let sim = Simulation::start(
        &scenario,
        SimOptions {
            time_scale: Some(scale),
            broker: Some(broker.clone()),
            paused: true,
            ..SimOptions::default()
        },
    )
    .await
    .map_err(|e| DemoError::Setup(format!("simulators: {e}")))?;
    let clock = sim.clock().clone();

    // One gateway, or one per `[[gateways]]`: each its own signing key, id, outbox and
    // status port; the site configuration for the simulated devices.
    let site_name = format!("demo-{}", scenario.name);
    let poll_ms = ((2000.0 / scale).round() as u64).clamp(250, 1000);
    let mut configs = Vec::new();
    let mut public_keys = Vec::new();
    for g in &scenario.gateways {
        let (id, key_name, suffix) = if scenario.with_controller {
            (
                format!("gw-demo-{}", g.name),
                format!("demo-{}", g.name),
                format!("-{}", g.name),
            )
        } else {
            ("gw-demo".to_string(), "demo".to_string(), String::new())
        };
        let key_id = KeyId::new(&key_name).map_err(|e| DemoError::Setup(e.to_string()))?;
        let key = SigningKey::generate(key_id).map_err(|e| setup("keygen")(e.to_string()))?;
        let (key_file, _) = key
            .write_pair(&work.path().join("keys"))
            .map_err(|e| setup("keygen")(e.to_string()))?;
        public_keys.push(key.public());
        let http_port =
            firebreak_hil::rig::peers::free_port().map_err(|e| DemoError::Setup(e.to_string()))?;
        let gw_poll = ((poll_ms as f64) * g.poll_factor).round() as u64;
        let options = SiteOptions {
            site: Some(site_name.clone()),
            gateway: id.clone(),
            http_bind: format!("127.0.0.1:{http_port}"),
            poll_interval_ms: gw_poll,
            timeout_ms: (gw_poll * 4 / 5).min(poll_ms * 8 / 5),
            freshness_ms: (gw_poll * 3).max(1000),
            brokers: vec![("embedded".into(), broker.url())],
            signing: Some((key_file, key_name.clone())),
            outbox_dir: Some(work.path().join(format!("outbox{suffix}"))),
            bus: g.bus,
            ..SiteOptions::default()
        };
        let text = site_config_with(&scenario, sim.addresses(), &options);
        let config = SiteConfig::parse(&text, "generated demo site")
            .map_err(|e| DemoError::Setup(format!("the generated site configuration: {e}")))?;
        configs.push((id, config, http_port));
    }
    let Some((_, first, _)) = configs.first() else {
        return Err(DemoError::Setup("the scenario has no gateway".into()));
    };
    let site = first.site.clone();
    let kinds: Kinds = first
        .policy
        .rules
        .rules
        .iter()
        .map(|r| (r.id.to_string(), RuleKindName::of(&r.kind)))
        .collect();

    // The controller: subscribes, verifies, forwards what it accepts; with several gateways
    // it merges them and follows their statuses (and wills).
    let mut verifier = Verifier::new(public_keys).site(site.clone());
    let mut merger = scenario.with_controller.then(|| {
        let mut m = Merger::new(site.clone(), MergeOptions::default());
        for (id, _, _) in &configs {
            if let Ok(g) = id.parse() {
                m.expect(g, now_ms());
            }
        }
        m
    });
    let (tx, mut rx) = mpsc::channel::<Seen>(64);
    let (subscribed_tx, subscribed) = tokio::sync::oneshot::channel::<()>();
    let sub_clock = clock.clone();
    let filter = topic::triggers(&site).to_string();
    let statuses = topic::gateway_statuses_filter(&site).to_string();
    let mut options = MqttOptions::new(
        format!("firebreak-demo-controller-{}", std::process::id()),
        broker.host.clone(),
        broker.port,
    );
    options.set_keep_alive(Duration::from_secs(5));
    let (client, mut eventloop) = AsyncClient::new(options, 32);
    let controller = tokio::spawn(async move {
        let mut subscribed_tx = Some(subscribed_tx);
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            let polled = tokio::select! {
                p = eventloop.poll() => p,
                _ = tick.tick() => {
                    if let Some(m) = merger.as_mut() {
                        for e in m.tick(now_ms()) {
                            if let Some(line) = merged_line(&e)
                                && tx.send(Seen::Merged(sub_clock.now(), line)).await.is_err()
                            {
                                return;
                            }
                        }
                    }
                    continue;
                }
            };
            let mut merged = Vec::new();
            match polled {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    let _ = client.try_subscribe(filter.clone(), QoS::AtLeastOnce);
                    if merger.is_some() {
                        let _ = client.try_subscribe(statuses.clone(), QoS::AtLeastOnce);
                    }
                }
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    if let Some(t) = subscribed_tx.take() {
                        let _ = t.send(());
                    }
                }
                Ok(Event::Incoming(Packet::Publish(p))) if is_status_topic(&p.topic) => {
                    if let (Some(m), StatusVerdict::Accepted(a)) =
                        (merger.as_mut(), verifier.check_status(&p.payload, now_ms()))
                    {
                        merged = m.on_status(&a.status, a.silent, now_ms());
                    }
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let at = sub_clock.now();
                    match verifier.check(&p.payload, now_ms()) {
                        Verdict::Accepted(a) => {
                            if let Some(m) = merger.as_mut() {
                                merged = m.on_trigger(&a.trigger, now_ms());
                            }
                            if tx
                                .send(Seen::Trigger(Box::new(Arrival {
                                    at,
                                    trigger: a.trigger,
                                })))
                                .await
                                .is_err()
                            {
                                return;
                            }
                        }
                        Verdict::Duplicate { .. } => {}
                        Verdict::Drill(_) => {}
                        Verdict::Rejected(why) => eprintln!("controller: REJECTED {why}"),
                    }
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
            for e in merged {
                if let Some(line) = merged_line(&e)
                    && tx.send(Seen::Merged(sub_clock.now(), line)).await.is_err()
                {
                    return;
                }
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(10), subscribed)
        .await
        .map_err(|_| DemoError::Setup("the controller could not subscribe within 10 s".into()))?
        .map_err(|_| DemoError::Setup("the controller stopped".into()))?;

    // The gateway pipelines, in this process. A status port was picked free; if something
    // took it since, move to another.
    let mut gateways: Vec<DemoGateway> = Vec::new();
    for (id, config, http_port) in configs {
        let socket = config.control_socket.clone();
        let (mut config, mut http_port) = (config, http_port);
        let mut attempts = 0;
        let (stop_tx, task) = loop {
            let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
            let mut task = tokio::spawn(run_with(
                config.clone(),
                RunOptions { time_scale: scale },
                async {
                    let _ = stop_rx.await;
                },
            ));
            tokio::select! {
                ready = wait_polled(http_port, Duration::from_secs(10)) => {
                    if !ready {
                        return Err(DemoError::Setup(format!(
                            "the gateway {id} did not read every simulated device within 10 s"
                        )));
                    }
                    break (stop_tx, task);
                }
                ended = &mut task => {
                    attempts += 1;
                    match ended {
                        Ok(Err(crate::run::RunError::Bind { .. })) if attempts < 5 => {
                            http_port = firebreak_hil::rig::peers::free_port()
                                .map_err(|e| DemoError::Setup(e.to_string()))?;
                            config.http_bind = std::net::SocketAddr::from(([127, 0, 0, 1], http_port));
                        }
                        Ok(Err(e)) => return Err(DemoError::Setup(format!("the gateway {id}: {e}"))),
                        Ok(Ok(())) => return Err(DemoError::Setup(format!("the gateway {id} stopped at once"))),
                        Err(e) => return Err(DemoError::Setup(format!("the gateway task {id}: {e}"))),
                    }
                }
            }
        };
        gateways.push(DemoGateway {
            id,
            http_port,
            socket,
            stop: Some(stop_tx),
            task,
        });
    }

    let stop_at = scenario
        .power_loss_at
        .map_or(scenario.end, |p| p.plus(AFTER_POWER_LOSS).min(scenario.end));
    header(&scenario, scale, stop_at, out)?;
    for g in &gateways {
        writeln!(
            out,
            "  {}'s live page while it runs: http://127.0.0.1:{}/",
            g.id, g.http_port
        )?;
    }
    writeln!(out)?;
    let mut happenings = scenario
        .happenings()
        .into_iter()
        .filter(|(at, _)| *at <= stop_at)
        // The demo tells its own gateway kills (below), with its gateways' ids.
        .filter(|(_, what)| !(scenario.with_controller && what.starts_with("gateway-kill")))
        .peekable();
    let mut arrivals: Vec<Arrival> = Vec::new();
    // Gateway kills the demo carries out (several gateways): the pipeline is aborted.
    let mut kills = scenario
        .events
        .iter()
        .filter(|e| scenario.with_controller && e.kind == EventKind::GatewayKill)
        .peekable();
    // Maintenance the demo carries out: through each gateway's control socket.
    let mut maintenance = scenario
        .events
        .iter()
        .filter(|e| {
            matches!(
                e.kind,
                EventKind::MaintenanceStart | EventKind::MaintenanceEnd
            )
        })
        .peekable();
    clock.resume();
    loop {
        let now = clock.now();
        while let Some((at, what)) = happenings.next_if(|(at, _)| *at <= now) {
            writeln!(out, "{:>10}  . {what}", second(at))?;
        }
        while let Some(e) = kills.next_if(|e| e.at <= now) {
            for &g in &e.gateways {
                if let Some(gw) = gateways.get_mut(g) {
                    gw.task.abort();
                    gw.stop = None;
                    writeln!(
                        out,
                        "{:>10}  . {} killed: its pipeline aborted, no clean stop (the broker sends its will)",
                        second(now),
                        gw.id
                    )?;
                }
            }
        }
        while let Some(e) = maintenance.next_if(|e| e.at <= now) {
            for &g in &e.gateways {
                if let Some(gw) = gateways.get(g) {
                    let said = maintain(gw, e, scale, &scenario.name).await;
                    writeln!(out, "{:>10}  . {}: {said}", second(now), gw.id)?;
                }
            }
        }
        if now >= stop_at {
            break;
        }
        let wait = clock
            .real_until(
                happenings
                    .peek()
                    .map_or(stop_at, |(at, _)| (*at).min(stop_at)),
            )
            .unwrap_or(Duration::from_millis(100))
            .clamp(Duration::from_millis(1), Duration::from_millis(200));
        tokio::select! {
            a = rx.recv() => match a {
                Some(Seen::Trigger(a)) => {
                    print_trigger(&a, &scenario, &kinds, out)?;
                    arrivals.push(*a);
                }
                Some(Seen::Merged(at, line)) => writeln!(out, "{:>10}  {line}", second(at))?,
                None => break,
            },
            _ = tokio::time::sleep(wait) => {}
        }
        out.flush()?;
    }
    // Triggers decided just before the end may still be on their way.
    let drain = tokio::time::Instant::now() + Duration::from_millis(500);
    while let Ok(Some(seen)) = tokio::time::timeout_at(drain, rx.recv()).await {
        if let Seen::Trigger(a) = seen {
            print_trigger(&a, &scenario, &kinds, out)?;
            arrivals.push(*a);
        }
    }
    for gw in gateways {
        let Some(stop) = gw.stop else { continue };
        let _ = stop.send(());
        match tokio::time::timeout(Duration::from_secs(5), gw.task).await {
            Ok(Ok(Err(e))) => {
                return Err(DemoError::Setup(format!(
                    "the gateway {} stopped: {e}",
                    gw.id
                )));
            }
            Ok(Err(e)) => return Err(DemoError::Setup(format!("the gateway task {}: {e}", gw.id))),
            _ => {}
        }
    }
    controller.abort();
    drop(sim);
    summary(&scenario, &arrivals, out)
}

fn header(
    scenario: &Scenario,
    scale: f64,
    stop_at: ScenarioTime,
    out: &mut impl Write,
) -> Result<(), DemoError> {
    writeln!(out, "firebreak demo: {}", scenario.name)?;
    writeln!(out, "  {}", scenario.description)?;
    match scenario.power_loss_at {
        Some(p) => writeln!(
            out,
            "  the first servers lose power at {p}; the controllers need {} s to move traffic out",
            scenario.evacuation_budget.as_secs()
        )?,
        None => writeln!(out, "  nobody loses power: nothing should be moved")?,
    }
    writeln!(
        out,
        "  in one process: an embedded MQTT broker, {} simulated devices, {} and a controller that verifies signed triggers{}",
        scenario.devices.len(),
        if scenario.with_controller {
            format!("{} gateways", scenario.gateways.len())
        } else {
            "the gateway".to_string()
        },
        if scenario.with_controller {
            " and merges the gateways (MERGED: the highest level any of them reports)"
        } else {
            ""
        }
    )?;
    writeln!(
        out,
        "  replaying {} to {stop_at}, {scale} times faster than real time\n",
        scenario.start
    )?;
    let left_out: Vec<String> = scenario
        .events
        .iter()
        .filter(|e| !e.kind.is_simulated())
        .filter(|e| !(scenario.with_controller && e.kind == EventKind::GatewayKill))
        .filter(|e| {
            !matches!(
                e.kind,
                EventKind::MaintenanceStart | EventKind::MaintenanceEnd
            )
        })
        .map(|e| format!("{} at {}", e.kind, e.at))
        .collect();
    if !left_out.is_empty() {
        writeln!(
            out,
            "  note: the demo runs in one process and leaves out {} (firebreak-hil run carries them out)\n",
            left_out.join(", ")
        )?;
    }
    Ok(())
}

/// Carries out a `maintenance-*` event on a demo gateway, as `firebreak maintenance` would
/// (`for` in real seconds at the demo's speed); what the gateway answered, in a line.
async fn maintain(
    gw: &DemoGateway,
    e: &firebreak_hil::scenario::Event,
    scale: f64,
    scenario: &str,
) -> String {
    use crate::control::Request;
    use crate::maintenance::{EndRequest, StartRequest};
    let (Some(socket), Some(m)) = (gw.socket.clone(), e.maintenance.as_ref()) else {
        return "no control socket: maintenance not carried out".into();
    };
    let request = match m.duration {
        Some(d) => Request::MaintenanceStart(StartRequest {
            device: m.device.to_string(),
            channel: m.channel,
            for_s: (d.millis() as f64 / 1000.0 / scale).max(1.0),
            reason: format!("scenario {scenario}"),
            by: Some("firebreak demo".into()),
            force: false,
        }),
        None => Request::MaintenanceEnd(EndRequest {
            device: m.device.to_string(),
            channel: m.channel,
            by: Some("firebreak demo".into()),
        }),
    };
    let answer = tokio::task::spawn_blocking(move || {
        crate::control::request(&socket, &request, Duration::from_secs(10))
    })
    .await;
    match answer {
        Ok(Ok(a)) if a.ok => match (e.kind, &m.duration) {
            (EventKind::MaintenanceStart, Some(d)) => format!(
                "{} under maintenance for {} (scenario time): not evidence",
                m.subject(),
                d.to_string().trim_start_matches("T+")
            ),
            _ => format!("{} out of maintenance: counts again", m.subject()),
        },
        Ok(Ok(a)) => format!(
            "maintenance refused: {}",
            a.error.unwrap_or_else(|| "no reason given".into())
        ),
        Ok(Err(err)) => format!("maintenance not carried out: {err}"),
        Err(err) => format!("maintenance not carried out: {err}"),
    }
}

/// What a rule's reason counts, by rule id.
type Kinds = std::collections::HashMap<String, RuleKindName>;

/// The kinds of rule whose reasons read differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RuleKindName {
    /// A rate of rise: the value is per minute.
    Rate,
    /// Rules combined: the value counts rules.
    Combine,
    /// Devices silent: the value counts devices.
    CommLost,
    /// A value compared with a threshold.
    Other,
}

impl RuleKindName {
    fn of(kind: &crate::policy::RuleKind) -> RuleKindName {
        use crate::policy::RuleKind;
        match kind {
            RuleKind::Rate { .. } => RuleKindName::Rate,
            RuleKind::Combine { .. } => RuleKindName::Combine,
            RuleKind::CommLost { .. } => RuleKindName::CommLost,
            _ => RuleKindName::Other,
        }
    }
}

/// A figure as people read it: `22`, `1.7`, `0.35`.
fn figure(v: f32) -> String {
    if v.fract() == 0.0 && v.abs() < 1e9 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// A moment to the second.
fn second(t: ScenarioTime) -> String {
    ScenarioTime::from_millis(t.millis() / 1000 * 1000).to_string()
}

fn print_trigger(
    a: &Arrival,
    scenario: &Scenario,
    kinds: &Kinds,
    out: &mut impl Write,
) -> Result<(), DemoError> {
    let t = &a.trigger;
    let scope = t
        .zone
        .as_ref()
        .map_or_else(|| format!("site {}", t.site), |z| format!("zone {z}"));
    writeln!(
        out,
        "{:>10}  TRIGGER {:<8} {scope} (was {}), seq {} from {}, signed by {}",
        second(a.at),
        t.level.name().to_uppercase(),
        t.previous,
        t.seq,
        t.gateway,
        t.signature.as_ref().map_or("nobody", |s| s.key_id.as_str())
    )?;
    for r in &t.reasons {
        let kind = kinds
            .get(r.rule.as_str())
            .copied()
            .unwrap_or(RuleKindName::Other);
        let unit = r.signal.map(|s| s.unit().symbol()).unwrap_or("");
        let unit = match kind {
            RuleKindName::Rate => format!(" {unit}/min"),
            _ if unit.is_empty() => String::new(),
            _ => format!(" {unit}"),
        };
        let line = match (kind, &r.device, r.signal) {
            (RuleKindName::Combine, _, _) => format!(
                "{} of the rules it combines firing (needs {})",
                figure(r.value),
                figure(r.threshold)
            ),
            (RuleKindName::CommLost, Some(d), _) => format!("{d} not answering"),
            (RuleKindName::CommLost, None, _) => format!(
                "{} devices not answering (threshold {})",
                figure(r.value),
                figure(r.threshold)
            ),
            (_, device, signal) => {
                let mut what = signal.map_or_else(String::new, |s| s.to_string());
                if r.channel != 0 {
                    what.push_str(&format!("[{}]", r.channel));
                }
                if let Some(d) = device {
                    what.push_str(&format!(" on {d}"));
                }
                let rising = if kind == RuleKindName::Rate {
                    " rising"
                } else {
                    ""
                };
                if signal.is_some_and(|s| s.kind() == firebreak_protocols::SignalKind::State) {
                    format!("{what} is on")
                } else {
                    format!(
                        "{what}{rising} {}{unit} (threshold {}{unit})",
                        figure(r.value),
                        figure(r.threshold)
                    )
                }
            }
        };
        writeln!(out, "{:>10}    because {}: {line}", "", r.rule)?;
    }
    if let Some(s) = t.seconds_to_power_loss {
        writeln!(out, "{:>10}    power loss expected in ~{s} s", "")?;
    }
    if t.zone.is_none()
        && t.level == Level::Evacuate
        && let Some(p) = scenario.power_loss_at
    {
        let lead = p.secs_f64() - a.at.secs_f64();
        writeln!(
            out,
            "{:>10}    -> controllers move traffic now: {lead:.0} s before the power loss at {p}",
            ""
        )?;
    }
    Ok(())
}

fn summary(
    scenario: &Scenario,
    arrivals: &[Arrival],
    out: &mut impl Write,
) -> Result<(), DemoError> {
    let first = |level: Level| {
        arrivals
            .iter()
            .find(|a| a.trigger.zone.is_none() && a.trigger.level == level)
            .map(|a| a.at)
    };
    let highest = arrivals
        .iter()
        .map(|a| a.trigger.level)
        .max()
        .unwrap_or(Level::Normal);
    writeln!(out, "\nsummary: {}", scenario.name)?;
    for level in [Level::Watch, Level::Prepare, Level::Evacuate] {
        writeln!(
            out,
            "  first {:<9} {}",
            level.to_string(),
            first(level).map_or("-".to_string(), second)
        )?;
    }
    let budget = scenario.evacuation_budget.as_secs_f64();
    match (scenario.power_loss_at, first(Level::Evacuate)) {
        (Some(p), Some(e)) => {
            let lead = p.secs_f64() - e.secs_f64();
            writeln!(
                out,
                "  lead time {lead:.0} s: evacuate reached the controller at {}, the servers lost power at {p}; the controllers needed {budget:.0} s ({})",
                second(e),
                if lead >= budget {
                    "in time"
                } else {
                    "TOO LATE"
                }
            )?;
        }
        (Some(p), None) => writeln!(
            out,
            "  lead time: none, evacuate never reached the controller before the power loss at {p}"
        )?,
        (None, _) => writeln!(
            out,
            "  lead time: no power loss in this scenario; the highest level was {highest}"
        )?,
    }
    let failed = match scenario.expect {
        Expectation::EvacuateBy(by) => match first(Level::Evacuate) {
            Some(e) if e <= by => None,
            Some(e) => Some(format!("evacuate arrived at {e}")),
            None => Some("no evacuate arrived".to_string()),
        },
        Expectation::NeverAbove(ceiling) => {
            (highest > ceiling).then(|| format!("the level reached {highest}"))
        }
    };
    match failed {
        None => {
            writeln!(out, "  expectation met: {}", scenario.expect)?;
            Ok(())
        }
        Some(found) => Err(DemoError::Expectation {
            scenario: scenario.name.clone(),
            expected: scenario.expect.to_string(),
            found,
        }),
    }
}

/// Whether a topic is a gateway's status (`firebreak/v1/{site}/gateways/{gateway}/status`).
fn is_status_topic(topic: &str) -> bool {
    topic.ends_with("/status") && topic.contains("/gateways/")
}
