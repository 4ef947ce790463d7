//! The `firebreak` command line.

use std::io::Write;

use clap::{Parser, Subcommand};

use crate::config::{ConfigError, EXAMPLE, SiteConfig};
use firebreak_protocols::{
    BUILTIN_PROFILES, DataType, DeviceId, DeviceProfile, GatewayId, IdError, PlanError,
    PlanOptions, SiteId, ZoneId, builtin_profile, plan_reads, topic,
};

/// Most requests a device's read plan may need.
pub const MAX_PLAN_REQUESTS: usize = 256;

/// Early warning of power loss for data centers: reads UPS, PDU and battery-room sensors,
/// publishes evacuation triggers to failover controllers.
#[derive(Debug, Parser)]
#[command(name = "firebreak", version)]
pub struct Cli {
    /// More log output: -v debug, -vv trace. RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Log lines as `text` (for people) or `json` (one object a line: timestamp, level,
    /// fields with the message, target; for journald and log shippers).
    #[arg(long, value_enum, default_value_t = LogFormat::Text, env = "FIREBREAK_LOG_FORMAT", global = true)]
    pub log_format: LogFormat,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// How log lines are written (to stderr).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One human-readable line per event.
    Text,
    /// One JSON object per line.
    Json,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the whole system in one process: a simulated site replaying a fire, an embedded
    /// broker, the gateway and a controller printing the triggers it receives.
    Demo(crate::demo::DemoArgs),
    /// List the built-in device profiles, or show one's register map and read plan.
    Profiles {
        /// A profile name, as `firebreak profiles` lists them.
        name: Option<String>,
        /// Unused registers a read may span to join two values into one request.
        #[arg(long, default_value_t = PlanOptions::default().max_gap)]
        max_gap: u16,
    },
    /// Run the gateway on a site configuration.
    Run {
        /// The site configuration file.
        #[arg(long)]
        config: std::path::PathBuf,
        /// Test rigs only: run the policy clock this many times faster (docs/hil.md).
        #[arg(long, default_value_t = 1.0, hide = true)]
        time_scale: f64,
    },
    /// Read a device by hand: raw registers of a target, or a configured device's signals.
    Probe(ProbeArgs),
    /// Check a site configuration, or print a commented example of one.
    Config {
        /// What to do with it.
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// Print the built-in policy rules, or check a rules file and list its rules.
    Policy {
        /// What to do.
        #[command(subcommand)]
        action: PolicyAction,
    },
    /// Make a signing key pair: DIR/ID.key (mode 0600, for the gateway) and DIR/ID.pub (for
    /// controllers).
    Keygen {
        /// The directory to write the two files into.
        #[arg(long)]
        out: std::path::PathBuf,
        /// The key id, as triggers will name it (`gw-paris-1a-2026`).
        #[arg(long)]
        key_id: String,
    },
    /// Subscribe to a site's triggers, verify and de-duplicate them, print each one.
    Watch(crate::watch::WatchArgs),
    /// Ask the running gateway to issue a signed drill through every broker (never a level
    /// for any controller) and print each broker's round trip; non-zero when one failed.
    Drill(crate::drill::DrillArgs),
    /// Put a device or one of its channels under maintenance in the running gateway (its
    /// readings stop counting as evidence for a bounded time), end it, or list it.
    Maintenance(crate::maintenance::cli::MaintenanceArgs),
    /// Print the MQTT topics a site's gateway publishes and controllers subscribe to.
    Topics {
        /// The site id.
        #[arg(long)]
        site: String,
        /// A zone id, to show its state topic.
        #[arg(long)]
        zone: Option<String>,
        /// A device id, to show its telemetry topic.
        #[arg(long)]
        device: Option<String>,
        /// A gateway id, to show its status and drill topics.
        #[arg(long)]
        gateway: Option<String>,
    },
}

/// `firebreak probe …`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("what").args(["target", "config"]).required(true)))]
pub struct ProbeArgs {
    /// `tcp://HOST:PORT`, `rtu:///dev/ttyX?baud=9600&parity=even&stop_bits=1`,
    /// `nut://HOST[:PORT]/UPS` (a UPS on a Network UPS Tools server: its variables and signals)
    /// or `snmp://HOST[:PORT]` (an SNMP agent, read through --profile).
    pub target: Option<String>,
    /// SNMP: the built-in profile to read through (`ups-mib`, `apc-rpdu`, `apc-rpdu2`, …).
    #[arg(long)]
    pub profile: Option<String>,
    /// SNMP: `2c` (default) or `3`.
    #[arg(long)]
    pub snmp_version: Option<String>,
    /// SNMPv2c: the community.
    #[arg(long)]
    pub community: Option<String>,
    /// SNMPv3: the user name.
    #[arg(long)]
    pub snmp_user: Option<String>,
    /// SNMPv3: `sha256` (default), `sha`, `sha224`, `sha384`, `sha512` or `md5`.
    #[arg(long)]
    pub auth_protocol: Option<String>,
    /// SNMPv3: an environment variable holding the authentication password.
    #[arg(long)]
    pub auth_password_env: Option<String>,
    /// SNMPv3: `aes` (default), `aes192`, `aes256` or `des`.
    #[arg(long)]
    pub priv_protocol: Option<String>,
    /// SNMPv3: an environment variable holding the privacy password.
    #[arg(long)]
    pub priv_password_env: Option<String>,
    /// The unit id to address.
    #[arg(long, default_value_t = 1)]
    pub unit: u8,
    /// Holding registers to read: `100..120`, `100..=119` or `100`.
    #[arg(long)]
    pub holding: Option<String>,
    /// Input registers to read.
    #[arg(long)]
    pub input: Option<String>,
    /// Coils to read.
    #[arg(long)]
    pub coils: Option<String>,
    /// Discrete inputs to read.
    #[arg(long)]
    pub discrete: Option<String>,
    /// Milliseconds to wait for each answer.
    #[arg(long, default_value_t = 1000)]
    pub timeout_ms: u64,
    /// Find the unit ids that answer (1..=247, or --units) and, with --holding/--input/
    /// --coils/--discrete, which of those addresses each can read.
    #[arg(long)]
    pub scan: bool,
    /// With --scan: the unit ids to try: `1..=247` (default), `1..10` or `7`.
    #[arg(long, requires = "scan")]
    pub units: Option<String>,
    /// With --scan: milliseconds between two requests (polite to the device and the bus).
    #[arg(long, default_value_t = 20, requires = "scan")]
    pub gap_ms: u64,
    /// Also show each register as the first word of a 32-bit value (u32, i32, f32) in the
    /// four word and byte orders: ABCD, CDAB, BADC, DCBA.
    #[arg(long)]
    pub decode: bool,
    /// A site configuration: probe one of its devices through its profile.
    #[arg(long, requires = "device", conflicts_with = "target")]
    pub config: Option<std::path::PathBuf>,
    /// The device to probe, with --config.
    #[arg(long, requires = "config")]
    pub device: Option<String>,
}

/// `firebreak config …`.
#[derive(Debug, Subcommand)]
pub enum ConfigAction {
    /// Validate a site configuration file and print a summary of it.
    Check {
        /// The file.
        file: std::path::PathBuf,
    },
    /// Print a commented example configuration that passes the check.
    Default,
}

/// `firebreak policy …`.
#[derive(Debug, clap::Subcommand)]
pub enum PolicyAction {
    /// Print the built-in rules, commented: a starting point for a site's rules file.
    Default,
    /// Check a rules file and list its rules.
    Check {
        /// The rules file.
        file: std::path::PathBuf,
    },
    /// Run the generated campaign: seeded nuisance and fire/outage timelines through the
    /// engine (docs/campaign.md). Exits non-zero when a goal is missed.
    Campaign(crate::campaign::CampaignArgs),
}

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// `firebreak drill` failed, or a broker did not send the drill back.
    #[error("drill: {0}")]
    Drill(#[from] crate::drill::DrillError),
    /// `firebreak maintenance` failed or was refused.
    #[error("maintenance: {0}")]
    Maintenance(#[from] crate::maintenance::cli::MaintenanceError),
    /// `--time-scale` out of range.
    #[error("--time-scale: {0} is not between 0.01 and 1000")]
    BadTimeScale(f64),
    /// A name given on the command line is not a valid id.
    #[error("{option}: {value:?} {error}")]
    BadId {
        /// The option.
        option: &'static str,
        /// The value given.
        value: String,
        /// Why it is refused.
        error: IdError,
    },
    /// No built-in profile has that name.
    #[error("no built-in profile named {name:?} (built-in: {known})")]
    UnknownProfile {
        /// The name given.
        name: String,
        /// The names there are.
        known: String,
    },
    /// A read plan could not be made.
    #[error("profile {profile}: {error}")]
    Plan {
        /// The profile.
        profile: String,
        /// Why.
        error: PlanError,
    },
    /// The site configuration is wrong.
    #[error("{0}")]
    Config(#[from] ConfigError),
    /// A probe failed.
    #[error("probe: {0}")]
    Probe(#[from] crate::probe::ProbeError),
    /// The gateway stopped with an error.
    #[error("{0}")]
    Run(#[from] crate::run::RunError),
    /// No device of that name in the configuration.
    #[error("{file}: no device named {name:?} (devices: {known})")]
    UnknownDevice {
        /// The configuration file.
        file: String,
        /// The name given.
        name: String,
        /// The names there are.
        known: String,
    },
    /// Probe without anything to read.
    #[error("probe: say what to read: --holding, --input, --coils or --discrete")]
    NothingToRead,
    /// The command exists but is not built yet.
    #[error("{0} is not built yet: see the open issues")]
    NotBuilt(&'static str),
    /// A key could not be made or written.
    #[error("keygen: {0}")]
    Key(#[from] crate::keys::KeyError),
    /// `demo` failed.
    #[error("{0}")]
    Demo(#[from] crate::demo::DemoError),
    /// `watch` failed.
    #[error("watch: {0}")]
    Watch(#[from] crate::watch::WatchError),
    /// The campaign could not run.
    #[error("campaign: {0}")]
    Campaign(#[from] crate::campaign::CampaignError),
    /// The campaign ran and missed a goal.
    #[error("campaign: goals missed (see the report)")]
    CampaignGoalsMissed,
    /// Writing the output failed.
    #[error("writing output: {0}")]
    Io(#[from] std::io::Error),
}

/// Runs a parsed command line, writing its output to `out`.
pub fn run(cli: Cli, out: &mut impl Write) -> Result<(), CliError> {
    match cli.command {
        Command::Demo(args) => Ok(crate::demo::demo(args, out)?),
        Command::Profiles { name: None, .. } => {
            for p in BUILTIN_PROFILES {
                writeln!(out, "{:<24} {}", p.name, p.description)?;
            }
            Ok(())
        }
        Command::Profiles {
            name: Some(name),
            max_gap,
        } => {
            let profile = builtin_profile(&name).ok_or_else(|| CliError::UnknownProfile {
                known: BUILTIN_PROFILES
                    .iter()
                    .map(|p| p.name)
                    .collect::<Vec<_>>()
                    .join(", "),
                name,
            })?;
            print_profile(profile, max_gap, out)
        }
        Command::Run { config, time_scale } => {
            if !(time_scale.is_finite() && (0.01..=1000.0).contains(&time_scale)) {
                return Err(CliError::BadTimeScale(time_scale));
            }
            let (config, file) = crate::reload::load(&config)?;
            let options = crate::run::RunOptions { time_scale };
            let service = crate::run::ServiceOptions {
                config_file: Some(file),
                notify: true,
            };
            runtime()?.block_on(crate::run::run_service(
                config,
                options,
                crate::deliver::DeliveryOptions::default(),
                service,
                shutdown_signal(),
            ))?;
            Ok(())
        }
        Command::Probe(args) => probe(args, out),
        Command::Keygen { out: dir, key_id } => {
            let key_id: firebreak_protocols::KeyId = parse_id("--key-id", &key_id)?;
            let key = crate::keys::SigningKey::generate(key_id)?;
            let (private, public) = key.write_pair(&dir)?;
            writeln!(
                out,
                "private key {} (mode 0600: keep it on the gateway)",
                private.display()
            )?;
            writeln!(
                out,
                "public key  {} (give it to controllers: --trust)",
                public.display()
            )?;
            writeln!(
                out,
                "in the site configuration:\n[signing]\nkey_file = {:?}\nkey_id = \"{}\"",
                private.display().to_string(),
                key.key_id()
            )?;
            Ok(())
        }
        Command::Drill(args) => Ok(crate::drill::run(args, out)?),
        Command::Maintenance(args) => Ok(crate::maintenance::cli::run(args, out)?),
        Command::Watch(args) => {
            runtime()?.block_on(crate::watch::watch(args, out, shutdown_signal()))?;
            Ok(())
        }
        Command::Config {
            action: ConfigAction::Default,
        } => Ok(out.write_all(EXAMPLE.as_bytes())?),
        Command::Config {
            action: ConfigAction::Check { file },
        } => {
            let config = SiteConfig::load(&file)?;
            print_summary(&config, out)
        }
        Command::Policy {
            action: PolicyAction::Default,
        } => Ok(out.write_all(crate::policy::DEFAULT_RULES.as_bytes())?),
        Command::Policy {
            action: PolicyAction::Check { file },
        } => {
            let rules = crate::policy::Rules::load(&file)?;
            print_rules(&rules, out)
        }
        Command::Policy {
            action: PolicyAction::Campaign(args),
        } => {
            let mut policy = crate::policy::Policy::default_policy()?;
            if let Some(file) = &args.rules {
                policy.rules = crate::policy::Rules::load(file)?;
            }
            if crate::campaign::campaign(args, policy, out)? {
                Ok(())
            } else {
                Err(CliError::CampaignGoalsMissed)
            }
        }
        Command::Topics {
            site,
            zone,
            device,
            gateway,
        } => {
            let site: SiteId = parse_id("--site", &site)?;
            writeln!(out, "{}", topic::triggers(&site))?;
            writeln!(out, "{}", topic::site_state(&site))?;
            if let Some(zone) = zone {
                let zone: ZoneId = parse_id("--zone", &zone)?;
                writeln!(out, "{}", topic::zone_state(&site, &zone))?;
            }
            if let Some(device) = device {
                let device: DeviceId = parse_id("--device", &device)?;
                writeln!(out, "{}", topic::telemetry(&site, &device))?;
            }
            if let Some(gateway) = gateway {
                let gateway: GatewayId = parse_id("--gateway", &gateway)?;
                writeln!(out, "{}", topic::gateway_status(&site, &gateway))?;
                writeln!(out, "{}", topic::drill(&site, &gateway))?;
            }
            Ok(())
        }
    }
}

fn parse_id<T>(option: &'static str, value: &str) -> Result<T, CliError>
where
    T: std::str::FromStr<Err = IdError>,
{
    value.parse().map_err(|error| CliError::BadId {
        option,
        value: value.to_string(),
        error,
    })
}

fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

fn probe(args: ProbeArgs, out: &mut impl Write) -> Result<(), CliError> {
    let timeout = std::time::Duration::from_millis(args.timeout_ms.max(1));
    let rt = runtime()?;
    if let (Some(file), Some(name)) = (&args.config, &args.device) {
        let config = SiteConfig::load(file)?;
        if let Some(source) = config.snmp_sources.iter().find(|s| s.name.as_str() == name) {
            return Ok(rt.block_on(crate::probe::snmp(source, out))?);
        }
        let device = config.device(name).ok_or_else(|| CliError::UnknownDevice {
            file: file.display().to_string(),
            name: name.clone(),
            known: config
                .devices
                .iter()
                .map(|d| d.name.as_str())
                .chain(config.snmp_sources.iter().map(|s| s.name.as_str()))
                .collect::<Vec<_>>()
                .join(", "),
        })?;
        return Ok(rt.block_on(crate::probe::device(device, out))?);
    }
    if let Some(t) = args.target.as_deref().filter(|t| t.starts_with("nut://")) {
        return Ok(rt.block_on(crate::probe::nut(t, timeout, out))?);
    }
    if let Some(t) = args.target.as_deref().filter(|t| t.starts_with("snmp://")) {
        let profile = args.profile.clone().ok_or_else(|| {
            CliError::Probe(crate::probe::ProbeError::Connect(format!(
                "{t}: give --profile, the SNMP profile to read it through (built-in: {})",
                firebreak_protocols::BUILTIN_OID_PROFILES
                    .iter()
                    .map(|p| p.name)
                    .collect::<Vec<_>>()
                    .join(", ")
            )))
        })?;
        let raw = crate::config::RawSnmpSource {
            name: "probe".into(),
            zone: "probe".into(),
            url: t.to_string(),
            profile,
            version: args.snmp_version.clone(),
            community: args.community.clone(),
            community_file: None,
            community_env: None,
            username: args.snmp_user.clone(),
            auth_protocol: args.auth_protocol.clone(),
            auth_password_file: None,
            auth_password_env: args.auth_password_env.clone(),
            priv_protocol: args.priv_protocol.clone(),
            priv_password_file: None,
            priv_password_env: args.priv_password_env.clone(),
            poll_interval_ms: Some(args.timeout_ms.max(1).saturating_mul(4).max(1000)),
            timeout_ms: Some(args.timeout_ms.max(1)),
            retries: Some(1),
            comm_lost_after: None,
            freshness_ms: None,
            witness_group: None,
            independent_channels: None,
        };
        let source = crate::config::standalone_snmp_source(raw, "probe").map_err(|mut e| {
            // Name the option the key came from.
            if let Some(key) = e.path.strip_prefix("snmp_sources[0].") {
                e.path = match key {
                    "url" => "target".to_string(),
                    "username" => "--snmp-user".to_string(),
                    "version" => "--snmp-version".to_string(),
                    other => format!("--{}", other.replace('_', "-")),
                };
            }
            e
        })?;
        return Ok(rt.block_on(crate::probe::snmp(&source, out))?);
    }
    let target = crate::probe::parse_target(args.target.as_deref().unwrap_or_default())?;
    let reads = [
        (
            firebreak_protocols::Table::Holding,
            "--holding",
            &args.holding,
        ),
        (firebreak_protocols::Table::Input, "--input", &args.input),
        (firebreak_protocols::Table::Coil, "--coils", &args.coils),
        (
            firebreak_protocols::Table::DiscreteInput,
            "--discrete",
            &args.discrete,
        ),
    ];
    let mut ranges = Vec::new();
    for (table, option, value) in reads {
        if let Some(v) = value {
            ranges.push((table, crate::probe::parse_range(option, v)?));
        }
    }
    if args.scan {
        let units = match &args.units {
            Some(u) => crate::probe::parse_range("--units", u)?,
            None => 1..248,
        };
        let scan = crate::probe::Scan {
            units,
            ranges,
            timeout,
            gap: std::time::Duration::from_millis(args.gap_ms),
        };
        rt.block_on(crate::probe::scan(&target, &scan, out))?;
        return Ok(());
    }
    if ranges.is_empty() {
        return Err(CliError::NothingToRead);
    }
    rt.block_on(async {
        let mut ctx = crate::probe::connect(&target, args.unit, timeout).await?;
        for (table, range) in ranges {
            crate::probe::raw(&mut ctx, table, range, timeout, args.decode, out).await?;
        }
        Ok::<(), crate::probe::ProbeError>(())
    })?;
    Ok(())
}

fn print_rules(rules: &crate::policy::Rules, out: &mut impl Write) -> Result<(), CliError> {
    use crate::policy::RuleKind;
    use firebreak_protocols::series::{Direction, Hysteresis};
    let side = |b: &Hysteresis| match b.direction() {
        Direction::Above => "at or above",
        Direction::Below => "at or below",
    };
    for r in &rules.rules {
        let what = match &r.kind {
            RuleKind::Threshold {
                signal,
                band,
                corroborate,
            } => format!(
                "{signal} {} {} (clears at {}) on {corroborate} witness(es)",
                side(band),
                band.trip(),
                band.clear()
            ),
            RuleKind::Rate {
                signal,
                band,
                window_ms,
                corroborate,
            } => format!(
                "{signal} rising {}/min or more over {} s on {corroborate} witness(es)",
                band.trip(),
                window_ms / 1000
            ),
            RuleKind::State {
                signal,
                corroborate,
            } => format!("{signal} on, on {corroborate} witness(es)"),
            RuleKind::Share {
                signal,
                band,
                share,
                min_devices,
            } => format!(
                "{signal} {} {} on {}% of the zone's devices (at least {min_devices})",
                side(band),
                band.trip(),
                share * 100.0
            ),
            RuleKind::CommLost { all: true } => "every device of the zone silent".into(),
            RuleKind::CommLost { all: false } => "a device of the zone silent".into(),
            RuleKind::PowerBudget { .. } => {
                "estimated time to power loss within budget + margin".into()
            }
            RuleKind::Combine {
                of,
                need,
                corroborate,
            } => format!(
                "{need} of [{}] on {corroborate} independent witness(es)",
                of.iter()
                    .filter_map(|&i| rules.rules.get(i).map(|o| o.id.as_str()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            RuleKind::SensorFault => "a reading of the zone implausible or reported faulty".into(),
            RuleKind::EvidenceLost { of, any_device } => format!(
                "the sensors behind one of [{}] silent or faulty while it holds its level{}",
                of.iter()
                    .filter_map(|&i| rules.rules.get(i).map(|o| o.id.as_str()))
                    .collect::<Vec<_>>()
                    .join(", "),
                if *any_device {
                    ", or any device of the zone silent since"
                } else {
                    ""
                }
            ),
        };
        let level = r.level.map_or("-".to_string(), |l| l.to_string());
        let held = if r.for_ms > 0 {
            format!(" for {} s", r.for_ms as f64 / 1000.0)
        } else {
            String::new()
        };
        let when = r
            .when
            .and_then(|w| rules.rules.get(w))
            .map(|w| format!(" while {}", w.id))
            .unwrap_or_default();
        writeln!(out, "{:<9} {:<20} {what}{held}{when}", level, r.id.as_str())?;
    }
    writeln!(out, "ok: {} rules", rules.rules.len())?;
    Ok(())
}

fn print_summary(c: &SiteConfig, out: &mut impl Write) -> Result<(), CliError> {
    writeln!(out, "site {} watched by gateway {}", c.site, c.gateway)?;
    writeln!(out, "http status on {}", c.http_bind)?;
    writeln!(
        out,
        "policy: {} rules, evacuation budget {} s + margin {} s, hold {} s",
        c.policy.rules.rules.len(),
        c.policy.evacuation_budget_s,
        c.policy.margin_s,
        c.policy.hold_ms / 1000
    )?;
    for zone in &c.zones {
        writeln!(out, "zone {zone}")?;
        for d in c.devices.iter().filter(|d| &d.zone == zone) {
            writeln!(
                out,
                "  device {:<16} {} unit {} profile {} every {} ms",
                d.name.as_str(),
                d.transport,
                d.unit,
                d.profile.name,
                d.poll_interval.as_millis()
            )?;
        }
        for s in c.mqtt_sources.iter().filter(|s| &s.zone == zone) {
            writeln!(
                out,
                "  mqtt   {:<16} {}{} topic {} ({} signals, payloads up to {} bytes)",
                s.name.as_str(),
                s.broker.url(),
                how_connected(&s.broker),
                s.topic,
                s.signals.len(),
                s.max_payload
            )?;
        }
        for s in c.nut_sources.iter().filter(|s| &s.zone == zone) {
            writeln!(
                out,
                "  nut    {:<16} {}{} every {} ms",
                s.name.as_str(),
                s.url(),
                s.username
                    .as_ref()
                    .map_or(String::new(), |u| format!(" (user {u})")),
                s.poll_interval.as_millis()
            )?;
        }
        for s in c.snmp_sources.iter().filter(|s| &s.zone == zone) {
            let version = match &s.auth {
                crate::config::SnmpAuth::V2c { .. } => "v2c".to_string(),
                crate::config::SnmpAuth::V3 {
                    username,
                    auth,
                    privacy,
                } => format!(
                    "v3 user {username} {}",
                    match (auth, privacy) {
                        (Some(_), Some(_)) => "authPriv",
                        (Some(_), None) => "authNoPriv",
                        _ => "noAuthNoPriv",
                    }
                ),
            };
            writeln!(
                out,
                "  snmp   {:<16} {} {version} profile {} every {} ms",
                s.name.as_str(),
                s.url(),
                s.profile.name,
                s.poll_interval.as_millis()
            )?;
        }
    }
    for b in &c.brokers {
        writeln!(out, "broker {:<16} {}{}", b.name, b.url(), how_connected(b))?;
    }
    if let Some(s) = &c.signing {
        writeln!(out, "signing key {}", s.key_file.display())?;
    }
    if let Some(o) = &c.outbox {
        writeln!(
            out,
            "outbox {} (capacity {} per broker, warning at {})",
            o.dir.display(),
            o.capacity,
            o.warn_at
        )?;
    }
    writeln!(
        out,
        "ok: {} devices, {} mqtt sources, {} nut sources, {} snmp sources, {} zones",
        c.devices.len(),
        c.mqtt_sources.len(),
        c.nut_sources.len(),
        c.snmp_sources.len(),
        c.zones.len()
    )?;
    Ok(())
}

/// ` (CA …, client certificate, user …)`, or nothing for a plain anonymous connection.
fn how_connected(b: &crate::config::BrokerConfig) -> String {
    let mut how = Vec::new();
    if let Some(tls) = &b.tls {
        how.push(format!("CA {}", tls.ca_file.display()));
        if tls.client.is_some() {
            how.push("client certificate".to_string());
        }
    }
    if let Some(user) = &b.username {
        how.push(format!("user {user}"));
    }
    if how.is_empty() {
        String::new()
    } else {
        format!(" ({})", how.join(", "))
    }
}

fn print_profile(
    profile: &DeviceProfile<'_>,
    max_gap: u16,
    out: &mut impl Write,
) -> Result<(), CliError> {
    writeln!(out, "{}: {}", profile.name, profile.description)?;
    writeln!(
        out,
        "{:<14} {:>5}  {:<6} {:<24} {:>2}  {:<5} {:>6}",
        "table", "addr", "type", "signal", "ch", "unit", "scale"
    )?;
    for d in profile.registers {
        let ty = match d.data_type {
            DataType::Bit(n) => format!("bit{n}"),
            other => format!("{other:?}").to_lowercase(),
        };
        writeln!(
            out,
            "{:<14} {:>5}  {:<6} {:<24} {:>2}  {:<5} {:>6}",
            d.table.name(),
            d.address,
            ty,
            d.signal.name(),
            d.channel,
            d.signal.unit().symbol(),
            d.scale
        )?;
    }
    let options = PlanOptions {
        max_gap,
        ..PlanOptions::default()
    };
    let plan = plan_reads::<MAX_PLAN_REQUESTS>(profile.registers, &options).map_err(|error| {
        CliError::Plan {
            profile: profile.name.to_string(),
            error,
        }
    })?;
    writeln!(out, "read plan (max gap {max_gap}):")?;
    for r in &plan {
        writeln!(out, "  {r}")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn output(args: &[&str]) -> Result<String, CliError> {
        let cli = Cli::try_parse_from(std::iter::once("firebreak").chain(args.iter().copied()))
            .map_err(|e| CliError::Io(std::io::Error::other(e.to_string())))?;
        let mut out = Vec::new();
        run(cli, &mut out)?;
        Ok(String::from_utf8(out).unwrap())
    }

    #[test]
    fn profile_shows_map_and_plan() {
        let text = output(&["profiles", "generic-ups"]).unwrap();
        assert!(text.contains("holding            1  u16    ups-runtime-remaining"));
        assert!(
            text.ends_with("read plan (max gap 8):\n  03 holding 0..7\n"),
            "{text}"
        );
        let tight = output(&["profiles", "firebreak-sensor-node", "--max-gap", "0"]).unwrap();
        assert!(
            tight.contains("  04 input 0..12\n  04 input 102..104\n  04 input 107..109\n"),
            "{tight}"
        );
    }

    #[test]
    fn errors_name_the_option_and_the_problem() {
        let e = output(&["topics", "--site", "paris-1", "--zone", "a+b"]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "--zone: \"a+b\" contains forbidden character '+' at byte 1"
        );
        let e = output(&["profiles", "apc-smt"]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "no built-in profile named \"apc-smt\" (built-in: firebreak-sensor-node, generic-ups, generic-pdu)"
        );
    }

    #[test]
    fn topics_follow_the_layout() {
        let text = output(&["topics", "--site", "paris-1", "--gateway", "gw-1"]).unwrap();
        assert_eq!(
            text,
            "firebreak/v1/paris-1/triggers\nfirebreak/v1/paris-1/state\n\
             firebreak/v1/paris-1/gateways/gw-1/status\n\
             firebreak/v1/paris-1/drill/gw-1\n"
        );
    }
}
