//! `firebreak run`: the gateway daemon.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use firebreak_protocols::{GatewayId, Sample};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tracing::{debug, error, info, warn};

use crate::acquire::table::{RebootEvent, SignalTable};
use crate::acquire::{
    EVENT_CHANNEL_CAPACITY, Event, WallClockWatch, modbus, mono_ms, mqtt, now_ms, nut, snmp,
};
use crate::config::{
    DeviceConfig, MqttSourceConfig, NutSourceConfig, SerialLine, SiteConfig, SnmpSourceConfig,
    Transport,
};
use crate::control::MaintenanceJob;
use crate::deliver::{Delivery, DeliveryOptions, TriggerDraft};
use crate::health::Health;
use crate::http;
use crate::policy::view::LevelsView;
use crate::policy::{Engine, Topology, Transition};
use crate::reload::{Acquisition, ConfigStatus, LoadedFile};
use crate::service::Notifier;
use crate::telemetry::{self, Telemetry};

/// How often the table ages its values.
pub const TICK: Duration = Duration::from_millis(250);

/// Why the gateway stopped.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Delivery could not start (outbox, key, brokers).
    #[error("delivery: {0}")]
    Delivery(#[from] crate::deliver::DeliverError),
    /// The status endpoint could not listen.
    #[error("http.bind {addr}: {error}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        error: std::io::Error,
    },
    /// SNMP traps could not be received.
    #[error("snmp_traps.bind {addr}: {error}")]
    Traps {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        error: String,
    },
}

/// How to run, besides the site configuration.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RunOptions {
    /// Test rigs only: the policy clock runs this many times faster than the wall clock, so a
    /// 30-minute incident replays in 90 s at 20. Device polling, timeouts and freshness are
    /// not scaled. 1 in production.
    pub time_scale: f64,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self { time_scale: 1.0 }
    }
}

/// The policy engine's clock: the wall clock, sped up by the time scale from `start_ms`.
#[derive(Debug, Clone, Copy)]
pub struct PolicyClock {
    start_ms: u64,
    scale: f64,
}

impl PolicyClock {
    /// A clock that starts at `start_ms` and runs `scale` times faster.
    pub fn new(start_ms: u64, scale: f64) -> Self {
        let scale = if scale.is_finite() && scale > 0.0 {
            scale
        } else {
            1.0
        };
        Self { start_ms, scale }
    }

    /// The policy time at wall time `wall_ms`.
    pub fn at(&self, wall_ms: u64) -> u64 {
        let elapsed = wall_ms.saturating_sub(self.start_ms) as f64 * self.scale;
        self.start_ms.saturating_add(elapsed as u64)
    }
}

/// The gateway as a service: the file to reload on `SIGHUP`, and systemd's notifications.
#[derive(Debug, Default)]
pub struct ServiceOptions {
    /// The configuration file the gateway runs (from [`crate::reload::load`]): `SIGHUP`
    /// reloads it ([`crate::reload`]). `None`: no reload (tests, the demo).
    pub config_file: Option<LoadedFile>,
    /// Tell systemd (`NOTIFY_SOCKET`): ready, watchdog, status, reloading, stopping.
    pub notify: bool,
}

/// One acquisition task, by what it reads: a reload compares them to restart only those whose
/// device changed. A new kind of source is a new variant here and in [`acquirers`].
#[derive(Debug, Clone, PartialEq)]
pub enum Acquirer {
    /// A Modbus TCP device.
    Tcp(DeviceConfig),
    /// A serial line and every device on it: one task, one request at a time.
    RtuBus(SerialLine, Vec<DeviceConfig>),
    /// A UPS on a NUT server.
    Nut(NutSourceConfig),
    /// A UPS card or PDU read over SNMP.
    Snmp(SnmpSourceConfig),
    /// A device that publishes over MQTT, read under this gateway's client id.
    Mqtt(MqttSourceConfig, GatewayId),
}

/// A boxed acquisition task.
pub type AcquisitionTask = Pin<Box<dyn Future<Output = ()> + Send>>;

impl Acquirer {
    /// The task, sending what it reads to `tx`.
    pub fn task(self, tx: mpsc::Sender<Event>) -> AcquisitionTask {
        match self {
            Acquirer::Tcp(d) => Box::pin(modbus::run_tcp_device(d, tx)),
            Acquirer::RtuBus(line, devices) => Box::pin(modbus::run_rtu_bus(line, devices, tx)),
            Acquirer::Nut(s) => Box::pin(nut::run_source(s, tx)),
            Acquirer::Snmp(s) => Box::pin(snmp::run_source(s, tx)),
            Acquirer::Mqtt(s, gateway) => Box::pin(mqtt::run_source(s, gateway, tx)),
        }
    }
}

/// The acquisition tasks a configuration needs: at start, and again at each reload.
pub fn acquirers(config: &SiteConfig) -> Vec<Acquirer> {
    let mut out = Vec::new();
    for d in config
        .devices
        .iter()
        .filter(|d| matches!(d.transport, Transport::Tcp { .. }))
    {
        out.push(Acquirer::Tcp(d.clone()));
    }
    for devices in config.rtu_buses().into_values() {
        let Some(Transport::Rtu(line)) = devices.first().map(|d| d.transport.clone()) else {
            continue;
        };
        out.push(Acquirer::RtuBus(
            line,
            devices.into_iter().cloned().collect(),
        ));
    }
    for s in &config.nut_sources {
        out.push(Acquirer::Nut(s.clone()));
    }
    for s in &config.snmp_sources {
        out.push(Acquirer::Snmp(s.clone()));
    }
    for s in &config.mqtt_sources {
        out.push(Acquirer::Mqtt(s.clone(), config.gateway.clone()));
    }
    out
}

/// How long a resumed level is held before its hold starts: long enough to read every device
/// again — two poll periods of the slowest Modbus device, the freshness window of the MQTT
/// sources up to 30 s — and at least 2 s.
pub fn resume_grace(config: &SiteConfig) -> Duration {
    let polled = config
        .devices
        .iter()
        .map(|d| d.poll_interval)
        .chain(config.nut_sources.iter().map(|s| s.poll_interval))
        .chain(config.snmp_sources.iter().map(|s| s.poll_interval))
        .map(|p| p * 2)
        .max()
        .unwrap_or_default();
    let mqtt = config
        .mqtt_sources
        .iter()
        .map(|s| s.freshness.min(Duration::from_secs(30)))
        .max()
        .unwrap_or_default();
    polled.max(mqtt).max(Duration::from_secs(2))
}

/// Runs the gateway until `shutdown` completes.
pub async fn run(
    config: SiteConfig,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), RunError> {
    run_with(config, RunOptions::default(), shutdown).await
}

/// Runs the gateway with `options` until `shutdown` completes.
pub async fn run_with(
    config: SiteConfig,
    options: RunOptions,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), RunError> {
    run_with_delivery(config, options, DeliveryOptions::default(), shutdown).await
}

/// [`run_with`], with delivery's tunables (tests shorten its timings and inject disk faults).
pub async fn run_with_delivery(
    config: SiteConfig,
    options: RunOptions,
    delivery_options: DeliveryOptions,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), RunError> {
    run_service(
        config,
        options,
        delivery_options,
        ServiceOptions::default(),
        shutdown,
    )
    .await
}

/// [`run_with_delivery`] as a service: reloads on `SIGHUP` and tells systemd how it is
/// ([`ServiceOptions`]).
pub async fn run_service(
    config: SiteConfig,
    options: RunOptions,
    delivery_options: DeliveryOptions,
    service: ServiceOptions,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), RunError> {
    // SIGHUP's default action ends the process: it is taken from the first moment.
    let mut hangup = match &service.config_file {
        Some(_) => hangup_signal(),
        None => None,
    };
    let notifier = Arc::new(if service.notify {
        Notifier::from_env()
    } else {
        Notifier::default()
    });
    let config_status = service
        .config_file
        .clone()
        .map(|f| Arc::new(Mutex::new(ConfigStatus::new(f))));
    let mut config = config;
    let clock = PolicyClock::new(mono_ms(), options.time_scale);
    if options.time_scale != 1.0 {
        warn!(
            time_scale = options.time_scale,
            "policy clock scaled: for test rigs only"
        );
    }
    let (tx, mut rx) = mpsc::channel::<Event>(EVENT_CHANNEL_CAPACITY);
    let table = {
        let mut table = SignalTable::new(&config);
        table.set_time_scale(options.time_scale);
        Arc::new(Mutex::new(table))
    };
    let mut engine = Engine::new(config.policy.clone(), &Topology::from_config(&config));
    let levels = Arc::new(Mutex::new(LevelsView::default()));
    let delivery = if config.brokers.is_empty() {
        warn!(
            "no [[brokers]] configured: levels are decided and shown, but no trigger is published"
        );
        None
    } else {
        let (d, tasks) = Delivery::start(&config, delivery_options).await?;
        Some((d, tasks))
    };
    let publisher = delivery.as_ref().map(|(d, _)| d.clone());
    if let Some(d) = &publisher {
        let resumed: Vec<_> = d
            .resumed()
            .into_iter()
            .map(|t| (t.zone, t.level, t.incident))
            .collect();
        if resumed
            .iter()
            .any(|(_, l, _)| *l > firebreak_protocols::Level::Normal)
        {
            let grace = resume_grace(&config);
            for (zone, level, incident) in &resumed {
                info!(zone = zone.as_ref().map_or("(site)", |z| z.as_str()), %level, %incident, grace_ms = grace.as_millis() as u64, "resumed from the outbox: held until every device has been read again and the hold has passed");
            }
            engine.resume(
                &resumed,
                clock.at(mono_ms()),
                u64::try_from(grace.as_millis()).unwrap_or(u64::MAX),
            );
        }
    }
    // Maintenance: the entries kept across a restart count from the first step.
    let maintenance = Arc::new(Mutex::new(match crate::maintenance::file_of(&config) {
        Some(file) => crate::maintenance::Maintenance::load(file, &config, now_ms(), mono_ms()),
        None => crate::maintenance::Maintenance::default(),
    }));
    if let Ok(mut m) = maintenance.lock() {
        apply_maintenance(&mut m, &mut engine, publisher.as_ref());
    }
    let (maintenance_tx, mut maintenance_rx) = mpsc::channel::<MaintenanceJob>(8);
    // The local control channel (`firebreak drill`, `firebreak maintenance`): a problem with
    // it is logged, never a reason not to run.
    let drill_zones = publisher
        .as_ref()
        .map(|_| Arc::new(Mutex::new(config.zones.clone())));
    let control = match (&config.control_socket, &publisher, &drill_zones) {
        (Some(path), Some(d), Some(zones)) => match crate::control::ControlSocket::bind(path) {
            Ok(socket) => Some((
                socket,
                crate::control::Handler {
                    delivery: d.clone(),
                    zones: zones.clone(),
                    maintenance: maintenance_tx.clone(),
                },
            )),
            Err(e) => {
                error!(error = %e, "no control socket: `firebreak drill` and `firebreak maintenance` cannot reach this gateway");
                None
            }
        },
        _ => None,
    };
    let mut outbox = Outbox::new(publisher.clone());
    let health = Health::new(mono_ms());
    let mut wall_watch = WallClockWatch::default();
    let mut tasks = JoinSet::new();
    // Telemetry: its own connections and queue per broker, so it never delays a trigger.
    let telemetry_out = (config.telemetry.enabled && !config.brokers.is_empty()).then(|| {
        telemetry::start(
            &config.brokers,
            &config.gateway,
            config.telemetry.queue,
            &mut tasks,
        )
    });
    let mut telemetry = Telemetry::new(
        config.telemetry.clone(),
        config.site.clone(),
        config.gateway.clone(),
        telemetry::zones_of(&config),
    );

    let listener = tokio::net::TcpListener::bind(config.http_bind)
        .await
        .map_err(|error| RunError::Bind {
            addr: config.http_bind,
            error,
        })?;
    let local = listener.local_addr().map_err(|error| RunError::Bind {
        addr: config.http_bind,
        error,
    })?;
    let traps = match &config.snmp_traps {
        Some(t) => Some(
            snmp::TrapListener::bind(t)
                .await
                .map_err(|error| RunError::Traps {
                    addr: t.bind,
                    error: error.to_string(),
                })?,
        ),
        None => None,
    };
    if let Some(traps) = traps {
        tasks.spawn(traps.run());
    }
    info!(site = %config.site, gateway = %config.gateway, http = %local, "gateway starting");
    let app = http::router(http::Shared {
        site: config.site.to_string(),
        gateway: config.gateway.to_string(),
        table: table.clone(),
        levels: levels.clone(),
        delivery: publisher.clone(),
        health: health.clone(),
        telemetry: telemetry_out.as_ref().map(|t| t.stats.clone()),
        config: config_status.clone(),
        maintenance: maintenance.clone(),
    });
    tasks.spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            warn!(error = %e, "http endpoint stopped");
        }
    });

    if let Some((socket, handler)) = control {
        tasks.spawn(socket.serve(handler));
    }
    let mut acquisition = Acquisition::new(health.clone(), tx);
    acquisition.apply(acquirers(&config)).await;
    if notifier.enabled() {
        notifier
            .ready(&crate::service::status_line(&health, publisher.as_ref(), &table, &levels).2);
        tasks.spawn(crate::service::watchdog(
            notifier.clone(),
            health.clone(),
            publisher.clone(),
            table.clone(),
            levels.clone(),
        ));
    }

    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    loop {
        // `now` is read when the event or the tick arrives, not before waiting for it: a
        // trigger's `issued_at_ms` is the moment of the decision.
        // The table's link changes are taken under the same lock: devices that went silent
        // (or never answered) reach the engine with the samples of that turn.
        let (input, links, ticked, now) = tokio::select! {
            _ = &mut shutdown => break,
            Some(()) = next_hangup(&mut hangup) => {
                let Some(status) = &config_status else { continue };
                notifier.reloading();
                let file = status.lock().map(|s| s.running.file.clone()).unwrap_or_default();
                match crate::reload::plan(&config, &engine, &file) {
                    Err(why) => {
                        error!(file = %file.display(), error = %why, "configuration NOT reloaded: the running one is kept");
                        if let Ok(mut s) = status.lock() {
                            s.rejected(why);
                        }
                    }
                    Ok(plan) => {
                        let summary = plan.summary();
                        if let Ok(mut t) = table.lock() {
                            t.reconfigure(&plan.config, &plan.changed);
                        }
                        let (stopped, started) = acquisition.apply(acquirers(&plan.config)).await;
                        // Maintenance of devices the new configuration lost ends; the rest is
                        // given to a rebuilt engine before it sees any reading.
                        let maintained = match maintenance.lock() {
                            Ok(mut m) => {
                                m.retain_configured(&plan.config, now_ms());
                                m.for_engine()
                            }
                            Err(_) => Vec::new(),
                        };
                        if plan.engine {
                            let now = mono_ms();
                            let grace = u64::try_from(resume_grace(&plan.config).as_millis()).unwrap_or(u64::MAX);
                            let rebuilt = table.lock().ok().map(|t| {
                                crate::reload::rebuilt_engine(&engine, &plan.config, &t, &maintained, (clock.at(now), now), grace)
                            });
                            if let Some((rebuilt, transitions)) = rebuilt {
                                engine = rebuilt;
                                let wall = now_ms();
                                for t in &transitions {
                                    log_transition(t);
                                    outbox.push(t, wall);
                                }
                                outbox.flush();
                                if let Ok(mut l) = levels.lock() {
                                    l.update(&engine, &transitions);
                                }
                            }
                        }
                        if plan.telemetry {
                            telemetry = Telemetry::new(
                                plan.config.telemetry.clone(),
                                plan.config.site.clone(),
                                plan.config.gateway.clone(),
                                telemetry::zones_of(&plan.config),
                            );
                        }
                        info!(file = %file.display(), sha256 = %plan.file.sha256, tasks_stopped = stopped, tasks_started = started, "configuration reloaded: {summary}");
                        if let Ok(mut s) = status.lock() {
                            s.applied(plan.file, summary);
                        }
                        config = plan.config;
                        if let Ok(mut m) = maintenance.lock() {
                            apply_maintenance(&mut m, &mut engine, publisher.as_ref());
                        }
                        if let Some(zones) = &drill_zones
                            && let Ok(mut z) = zones.lock()
                        {
                            z.clone_from(&config.zones);
                        }
                    }
                }
                notifier.ready(&crate::service::status_line(&health, publisher.as_ref(), &table, &levels).2);
                continue;
            }
            Some(job) = maintenance_rx.recv() => {
                // One lock at a time: `/status` takes the table, then the maintenance.
                let seen = match &job.request {
                    crate::control::Request::MaintenanceStart(r) => {
                        match (table.lock(), firebreak_protocols::DeviceId::new(&r.device)) {
                            (Ok(t), Ok(d)) => t.channels_of(&d),
                            _ => Vec::new(),
                        }
                    }
                    _ => Vec::new(),
                };
                let answer = match maintenance.lock() {
                    Ok(mut m) => answer_maintenance(&job, &mut m, &mut engine, &config, &seen, publisher.as_ref()),
                    Err(_) => crate::control::Answer::error("the gateway's state is unavailable"),
                };
                let _ = job.reply.send(answer);
                continue;
            }
            event = rx.recv() => {
                let Some(event) = event else { break };
                let now = mono_ms();
                let (changed, links, reboots) = match table.lock() {
                    Ok(mut t) => (t.apply(&event, now), t.take_link_changes(), t.take_reboots()),
                    Err(_) => break,
                };
                for r in &reboots {
                    log_reboot(r);
                }
                (policy_input(&event, changed), links, false, now)
            }
            _ = tick.tick() => {
                let now = mono_ms();
                if let Ok(mut m) = maintenance.lock()
                    && !m.expire(now_ms(), now).is_empty()
                {
                    apply_maintenance(&mut m, &mut engine, publisher.as_ref());
                }
                match table.lock() {
                    Ok(mut t) => (t.tick(now), t.take_link_changes(), true, now),
                    Err(_) => break,
                }
            }
        };
        for (device, lost) in links {
            engine.set_link(&device, lost);
        }
        for s in input.iter().filter(|s| !s.quality.is_evidence()) {
            debug!(device = %s.device, signal = %s.signal, channel = s.channel, quality = %s.quality, "signal quality");
        }
        let wall = now_ms();
        if let Some(step) = wall_watch.check(wall, now) {
            warn!(
                step_ms = step,
                steps = wall_watch.steps,
                "wall clock stepped: judging runs on the monotonic clock and is unaffected; only issued_at_ms follows the wall clock"
            );
            health.wall_clock_stepped();
        }
        let transitions = engine.step(clock.at(now), &input);
        health.stepped(now);
        if let Some(out) = &telemetry_out {
            telemetry.offer(&input);
            if ticked {
                for m in telemetry.due(wall) {
                    out.send(&m);
                }
            }
        }
        for f in engine.drain_fault_events() {
            warn!(
                device = %f.device,
                zone = %f.zone,
                signal = %f.signal,
                channel = f.channel,
                value = f.value,
                reference = f.reference,
                "sensor-fault: {}: not evidence until plausible again",
                f.kind.name()
            );
        }
        for t in &transitions {
            log_transition(t);
            outbox.push(t, wall);
        }
        outbox.flush();
        // The views cost a walk over every device and zone: refreshed on ticks and on
        // changes of level, not on every poll.
        if !ticked && transitions.is_empty() {
            continue;
        }
        if let Some(d) = &publisher
            && let Ok(t) = table.lock()
        {
            let devices = t.devices();
            let healthy = devices.values().filter(|h| !h.comm_lost).count();
            d.set_devices(
                u16::try_from(healthy).unwrap_or(u16::MAX),
                u16::try_from(devices.len()).unwrap_or(u16::MAX),
            );
        }
        if let Ok(mut l) = levels.lock() {
            l.update(&engine, &transitions);
        }
    }
    info!("gateway stopping");
    notifier.stopping();
    outbox.flush();
    acquisition.shutdown().await;
    if let Some((_, delivery_tasks)) = delivery {
        delivery_tasks.shutdown().await;
    }
    tasks.shutdown().await;
    Ok(())
}

/// Gives the maintenance entries to the engine and the status, and keeps them in their file
/// when they changed (a failure to write it is logged and returned: the entries apply all the
/// same).
fn apply_maintenance(
    m: &mut crate::maintenance::Maintenance,
    engine: &mut Engine,
    publisher: Option<&Delivery>,
) -> Option<String> {
    for d in engine.set_maintenance(&m.for_engine()) {
        warn!(device = %d, "maintenance names a device the policy engine does not judge");
    }
    if let Some(p) = publisher {
        p.set_maintenance(m.notes());
    }
    m.save()
        .inspect_err(|e| error!(error = %e, "maintenance applies but is not kept across a restart"))
        .err()
}

/// Carries out a maintenance request in the main loop, which owns the engine.
fn answer_maintenance(
    job: &MaintenanceJob,
    m: &mut crate::maintenance::Maintenance,
    engine: &mut Engine,
    config: &SiteConfig,
    seen: &[u8],
    publisher: Option<&Delivery>,
) -> crate::control::Answer {
    use crate::control::Request;
    let (now, mono) = (now_ms(), mono_ms());
    let change = match &job.request {
        Request::MaintenanceStart(r) => m
            .start(r, job.uid, config, engine, seen, (now, mono))
            .map(Some),
        Request::MaintenanceEnd(r) => m.end(r, job.uid, now).map(Some),
        _ => Ok(None),
    };
    let change = match change {
        Ok(c) => c,
        Err(why) => return crate::control::Answer::error(why),
    };
    let warning = change
        .as_ref()
        .and_then(|_| apply_maintenance(m, engine, publisher));
    crate::control::Answer {
        ok: true,
        error: None,
        drill: None,
        maintenance: Some(crate::maintenance::Report {
            change,
            entries: m.entries().to_vec(),
            warning,
        }),
    }
}

#[cfg(unix)]
type Hangup = tokio::signal::unix::Signal;
#[cfg(not(unix))]
type Hangup = std::convert::Infallible;

/// A stream of `SIGHUP`s, or `None` where there is none (or it cannot be had: logged).
fn hangup_signal() -> Option<Hangup> {
    #[cfg(unix)]
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            warn!(error = %e, "SIGHUP cannot be caught: no configuration reload");
            None
        }
    }
    #[cfg(not(unix))]
    None
}

/// The next `SIGHUP`; never, without a stream.
async fn next_hangup(hangup: &mut Option<Hangup>) -> Option<()> {
    match hangup {
        #[cfg(unix)]
        Some(s) => s.recv().await,
        #[cfg(not(unix))]
        Some(never) => match *never {},
        None => std::future::pending().await,
    }
}

/// The transitions waiting to be handed to delivery, in order. Handing one over never waits:
/// delivery signs it and queues it in memory (the disk and the brokers are other tasks'). A
/// trigger that delivery could not take (every outbox full) stays here and is tried again on
/// the next turn of the loop, before any newer one: none is dropped, none overtakes another.
struct Outbox {
    delivery: Option<Delivery>,
    waiting: std::collections::VecDeque<TriggerDraft>,
}

impl Outbox {
    fn new(delivery: Option<Delivery>) -> Self {
        Self {
            delivery,
            waiting: std::collections::VecDeque::new(),
        }
    }

    fn push(&mut self, t: &Transition, wall_ms: u64) {
        if self.delivery.is_none() {
            return;
        }
        self.waiting.push_back(TriggerDraft {
            incident: t.incident.clone(),
            zone: t.zone.clone(),
            level: t.level,
            previous: t.previous,
            reasons: t.reasons.clone(),
            seconds_to_power_loss: t.seconds_to_power_loss,
            issued_at_ms: wall_ms,
        });
    }

    fn flush(&mut self) {
        let Some(d) = &self.delivery else { return };
        while let Some(draft) = self.waiting.front() {
            match d.issue_now(draft.clone()) {
                Ok(trigger) => {
                    info!(seq = trigger.seq, level = %trigger.level, scope = ?trigger.zone.as_ref().map(|z| z.as_str()), "trigger issued");
                    self.waiting.pop_front();
                }
                Err(e) => {
                    tracing::error!(error = %e, waiting = self.waiting.len(), "trigger not yet issued; retrying");
                    return;
                }
            }
        }
    }
}

/// What the policy engine gets from one event: every value just read (a rate needs them all,
/// changed or not), and every quality change the table made (stale, comm-lost, recovered).
fn policy_input(event: &Event, changed: Vec<Sample>) -> Vec<Sample> {
    let fresh: &[Sample] = match event {
        Event::Poll(report) => &report.samples,
        Event::Mqtt { samples, .. } => samples,
        _ => &[],
    };
    let mut input = fresh.to_vec();
    input.extend(changed.into_iter().filter(|s| !s.quality.is_evidence()));
    input
}

/// A device that restarted: its local state (a latched alarm, rate-of-rise history) is gone.
fn log_reboot(r: &RebootEvent) {
    warn!(
        device = %r.device,
        reason = %r.reboot.reason,
        uptime_s = r.reboot.uptime_s,
        before_s = r.before_s,
        gap_ms = r.gap_ms,
        "device {} rebooted ({}), up {} s: it lost what it held locally (a latched alarm, rate-of-rise history)",
        r.device,
        r.reboot.reason,
        r.reboot.uptime_s
    );
}

fn log_transition(t: &Transition) {
    let scope = t
        .zone
        .as_ref()
        .map_or_else(|| "site".to_string(), |z| format!("zone {z}"));
    let reasons = t
        .reasons
        .iter()
        .map(|r| {
            let what = match (&r.device, r.signal) {
                (Some(d), Some(s)) => format!("{d}/{s}[{}]", r.channel),
                (None, Some(s)) => s.to_string(),
                (Some(d), None) => d.to_string(),
                (None, None) => String::new(),
            };
            format!("{} {what} {} vs {}", r.rule, r.value, r.threshold)
        })
        .collect::<Vec<_>>()
        .join("; ");
    if t.level > t.previous {
        warn!(%scope, from = %t.previous, to = %t.level, incident = %t.incident, seconds_to_power_loss = ?t.seconds_to_power_loss, %reasons, "level raised");
    } else {
        info!(%scope, from = %t.previous, to = %t.level, incident = %t.incident, %reasons, "level lowered");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_clock_scales_from_its_start() {
        let c = PolicyClock::new(1_000_000, 20.0);
        assert_eq!(c.at(1_000_000), 1_000_000);
        assert_eq!(c.at(1_003_000), 1_060_000);
        assert_eq!(c.at(999_000), 1_000_000);
        let bad = PolicyClock::new(5, f64::NAN);
        assert_eq!(bad.at(10), 10);
    }
}
