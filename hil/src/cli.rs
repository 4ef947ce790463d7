//! The `firebreak-hil` command line.

use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::scenario::{Scenario, ScenarioError, load_dir};
use crate::sim::{Broker, Layout, SimError, SimOptions, Simulation};
use crate::site::{SiteOptions, site_config_with};
use crate::time::human;

/// Firebreak's hardware-in-loop rig: scenario files and device simulators.
#[derive(Debug, Parser)]
#[command(name = "firebreak-hil", version)]
pub struct Cli {
    /// More log output: -v debug, -vv trace. RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check scenario files (a file, or every *.toml in a directory) and summarise them.
    Check {
        /// Files or directories.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Start a scenario's simulators, print where they are and a site configuration for
    /// the gateway, then replay the scenario until Ctrl-C.
    Sim(SimArgs),
    /// Load run: N simulated Modbus TCP devices against the gateway process; reports CPU,
    /// memory, poll rate, poll lateness and end-to-end latency (docs/performance.md).
    Load(crate::load::LoadArgs),
    /// Replay a scenario against the gateway (a separate process) and a verifying subscriber;
    /// print what arrived and the result; exit 1 when an expectation fails.
    Run(RunArgs),
    /// Replay every scenario of a directory; print the result table; exit 1 when one fails.
    Suite(SuiteArgs),
}

/// `firebreak-hil run …`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The scenario file.
    pub scenario: PathBuf,
    /// Real devices: this site configuration instead of simulators (its devices are kept;
    /// the rig sets the broker, key, outbox and status port). Runs in real time; the
    /// scenario gives the duration and the expectation.
    #[arg(long)]
    pub site: Option<PathBuf>,
    /// Replay from this moment instead of the scenario's start (`T-30s`).
    #[arg(long, allow_hyphen_values = true)]
    pub from: Option<String>,
    /// Replay until this moment instead of the scenario's end (`T+1m`).
    #[arg(long, allow_hyphen_values = true)]
    pub to: Option<String>,
    /// Rig options.
    #[command(flatten)]
    pub rig: RigArgs,
}

/// `firebreak-hil suite …`.
#[derive(Debug, clap::Args)]
pub struct SuiteArgs {
    /// The directory of scenario files.
    pub dir: PathBuf,
    /// Scenarios replayed at once.
    #[arg(long, default_value_t = 1)]
    pub jobs: usize,
    /// Rig options.
    #[command(flatten)]
    pub rig: RigArgs,
}

/// What `run` and `suite` share.
#[derive(Debug, clap::Args)]
pub struct RigArgs {
    /// Scenario seconds per real second, for every scenario (each scenario's own time_scale
    /// when absent); at most 1000, the gateway's limit.
    #[arg(long)]
    pub time_scale: Option<f64>,
    /// An MQTT broker to use (mqtt://HOST:PORT) instead of the embedded one. Scenarios that
    /// stop the broker always get a Mosquitto the rig manages.
    #[arg(long)]
    pub broker: Option<String>,
    /// The `firebreak` binary (else FIREBREAK_BIN, else next to this program).
    #[arg(long)]
    pub gateway_bin: Option<PathBuf>,
    /// The Mosquitto binary, for scenarios that stop the broker (else found on the PATH or
    /// in /usr/sbin).
    #[arg(long)]
    pub mosquitto: Option<PathBuf>,
    /// Write the results as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write an SVG timeline per scenario into this directory.
    #[arg(long)]
    pub svg: Option<PathBuf>,
    /// Keep each scenario's files (site configuration, gateway log, outbox) under this
    /// directory.
    #[arg(long)]
    pub keep: Option<PathBuf>,
    /// No progress on stderr.
    #[arg(long)]
    pub quiet: bool,
    /// Node programs and choice.
    #[command(flatten)]
    pub node: NodeArgs,
}

/// How the sensor nodes are brought up (`run`, `suite`, `sim`).
#[derive(Debug, Clone, clap::Args)]
pub struct NodeArgs {
    /// The sensor node back-end for every scenario: stand-in (its register map over Modbus
    /// TCP, no firmware), host (the firmware's host build on a socat PTY), qemu (the firmware
    /// image under qemu-system-arm), or `serial:PATH[,feed=PATH][,baud=N][,parity=P]` (a
    /// physical node). Each scenario's own `node` key (else the stand-in) when absent.
    #[arg(long)]
    pub node: Option<crate::node::NodeChoice>,
    /// firebreak-node-sim (else FIREBREAK_NODE_SIM, else next to this program).
    #[arg(long)]
    pub node_sim: Option<PathBuf>,
    /// The firmware's QEMU image (else FIREBREAK_NODE_QEMU, else the target directory's
    /// firmware-profile build).
    #[arg(long)]
    pub node_image: Option<PathBuf>,
    /// qemu-system-arm (else on the PATH).
    #[arg(long)]
    pub qemu: Option<PathBuf>,
}

impl NodeArgs {
    fn programs(&self) -> crate::node::NodePrograms {
        crate::node::NodePrograms {
            sim: self.node_sim.clone(),
            image: self.node_image.clone(),
            qemu: self.qemu.clone(),
        }
    }
}

/// `firebreak-hil sim …`.
#[derive(Debug, clap::Args)]
pub struct SimArgs {
    /// The scenario file.
    #[arg(long)]
    pub scenario: PathBuf,
    /// Scenario seconds per real second (the scenario's time_scale when absent).
    #[arg(long)]
    pub time_scale: Option<f64>,
    /// The address the Modbus servers listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: IpAddr,
    /// Serve every Modbus device on one port, told apart by unit id.
    #[arg(long)]
    pub shared_port: bool,
    /// The MQTT broker room sensors publish to (mqtt://HOST:PORT); without it they are not
    /// started.
    #[arg(long)]
    pub broker: Option<String>,
    /// The gateway status endpoint written into the site configuration.
    #[arg(long, default_value = "127.0.0.1:9186")]
    pub http_bind: String,
    /// Exit when the scenario ends instead of holding the last values.
    #[arg(long)]
    pub exit_at_end: bool,
    /// Node programs and choice.
    #[command(flatten)]
    pub node: NodeArgs,
}

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// A scenario is invalid.
    #[error("{0}")]
    Scenario(#[from] ScenarioError),
    /// Some scenarios of a check are invalid.
    #[error("{invalid} of {total} scenarios are invalid")]
    Invalid {
        /// How many.
        invalid: usize,
        /// Out of.
        total: usize,
    },
    /// The simulators could not start.
    #[error("{0}")]
    Sim(#[from] SimError),
    /// Scenarios failed their expectations.
    #[error("{failed} of {total} scenarios failed")]
    Failed {
        /// How many.
        failed: usize,
        /// Out of.
        total: usize,
    },
    /// The rig could not start.
    #[error("{0}")]
    Rig(#[from] crate::rig::RigError),
    /// The load run could not be made.
    #[error("{0}")]
    Load(crate::load::LoadError),
    /// A bad option.
    #[error("{option} {value:?}: {problem}")]
    BadOption {
        /// The option.
        option: &'static str,
        /// Its value.
        value: String,
        /// Why.
        problem: String,
    },
    /// Output or the runtime failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Runs a command, writing its output to `out`.
pub fn run(cli: Cli, out: &mut impl Write) -> Result<(), CliError> {
    match cli.command {
        Command::Check { paths } => check(&paths, out),
        Command::Sim(args) => sim(args, out),
        Command::Run(args) => {
            let mut scenario = Scenario::load(&args.scenario)?;
            clip(&mut scenario, args.from.as_deref(), args.to.as_deref())?;
            rig(&args.rig, args.site, out, |rig| async move {
                vec![rig.run(&scenario).await]
            })
        }
        Command::Suite(args) => {
            let dir = args.dir.clone();
            let jobs = args.jobs;
            rig(&args.rig, None, out, |rig| async move {
                rig.suite(&dir, jobs).await
            })
        }
        Command::Load(args) => load(&args, out),
    }
}

/// Replays only `from..to` of a scenario (both within it, `from` before `to`).
fn clip(scenario: &mut Scenario, from: Option<&str>, to: Option<&str>) -> Result<(), CliError> {
    let parse = |option: &'static str, text: &str| {
        crate::time::ScenarioTime::parse(text).map_err(|e| CliError::BadOption {
            option,
            value: text.to_string(),
            problem: e.to_string(),
        })
    };
    let start = from
        .map(|f| parse("--from", f))
        .transpose()?
        .unwrap_or(scenario.start);
    let end = to
        .map(|t| parse("--to", t))
        .transpose()?
        .unwrap_or(scenario.end);
    if start < scenario.start || end > scenario.end || start >= end {
        return Err(CliError::BadOption {
            option: "--from/--to",
            value: format!("{start}..{end}"),
            problem: format!(
                "must be a span within the scenario ({}..{})",
                scenario.start, scenario.end
            ),
        });
    }
    scenario.start = start;
    scenario.end = end;
    Ok(())
}

/// Sets up the rig, runs `what`, prints, writes JSON and SVG; fails when a scenario failed.
fn rig<F, Fut>(
    args: &RigArgs,
    site: Option<PathBuf>,
    out: &mut impl Write,
    what: F,
) -> Result<(), CliError>
where
    F: FnOnce(std::sync::Arc<crate::rig::Rig>) -> Fut,
    Fut: std::future::Future<Output = Vec<crate::rig::outcome::ScenarioResult>>,
{
    use crate::rig::{ProgressStyle, Rig, RigOptions, find_gateway};
    let broker = args
        .broker
        .as_deref()
        .map(|b| {
            Broker::parse(b).ok_or_else(|| CliError::BadOption {
                option: "--broker",
                value: b.to_string(),
                problem: "is not mqtt://HOST:PORT".into(),
            })
        })
        .transpose()?;
    let options = RigOptions {
        time_scale: args.time_scale,
        broker,
        gateway_bin: find_gateway(args.gateway_bin.as_deref())?,
        mosquitto: args.mosquitto.clone(),
        keep: args.keep.clone(),
        site,
        progress: if args.quiet {
            ProgressStyle::Off
        } else {
            ProgressStyle::auto()
        },
        node: args.node.node.clone().unwrap_or_default(),
        node_programs: args.node.programs(),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let results = runtime.block_on(async {
        let rig = std::sync::Arc::new(Rig::new(options).await?);
        Ok::<_, CliError>(what(rig).await)
    })?;
    if let [one] = results.as_slice() {
        writeln!(
            out,
            "{}: triggers as the subscriber received them",
            one.scenario
        )?;
        write!(out, "{}", crate::rig::outcome::trigger_lines(one))?;
        for e in &one.events {
            writeln!(out, "  event {:>10} {}: {}", e.at.at.0, e.kind, e.outcome)?;
        }
        if let Some(node) = &one.node {
            write!(out, "{}", crate::rig::outcome::node_lines(node))?;
        }
        if let Some(c) = &one.controller {
            write!(out, "{}", crate::rig::outcome::controller_lines(c))?;
        }
        for n in &one.notes {
            writeln!(out, "  note: {n}")?;
        }
        writeln!(out)?;
    }
    write!(out, "{}", crate::rig::outcome::table(&results))?;
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&results)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        std::fs::write(path, text + "\n")
            .map_err(|e| std::io::Error::other(format!("--json {}: {e}", path.display())))?;
    }
    if let Some(dir) = &args.svg {
        std::fs::create_dir_all(dir)
            .map_err(|e| std::io::Error::other(format!("--svg {}: {e}", dir.display())))?;
        for r in &results {
            let Some(scenario) = &r.source else {
                continue;
            };
            let path = dir.join(format!("{}.svg", r.scenario));
            std::fs::write(&path, crate::rig::svg::timeline(scenario, r))
                .map_err(|e| std::io::Error::other(format!("--svg {}: {e}", path.display())))?;
        }
        writeln!(out, "SVG timelines in {}", dir.display())?;
    }
    let failed = results.iter().filter(|r| !r.passed).count();
    if failed > 0 {
        return Err(CliError::Failed {
            failed,
            total: results.len(),
        });
    }
    Ok(())
}

fn check(paths: &[PathBuf], out: &mut impl Write) -> Result<(), CliError> {
    let mut results: Vec<(PathBuf, Result<Scenario, ScenarioError>)> = Vec::new();
    for p in paths {
        if p.is_dir() {
            results.extend(load_dir(p)?);
        } else {
            results.push((p.clone(), Scenario::load(p)));
        }
    }
    let total = results.len();
    let mut invalid = 0;
    for (_, result) in &results {
        match result {
            Ok(s) => summarise(s, out)?,
            Err(e) => {
                invalid += 1;
                writeln!(out, "INVALID {e}")?;
            }
        }
    }
    writeln!(
        out,
        "{}, {} valid",
        count(total, "scenario"),
        total - invalid
    )?;
    if invalid > 0 {
        return Err(CliError::Invalid { invalid, total });
    }
    Ok(())
}

/// `1 fault`, `2 faults`.
fn count(n: usize, what: &str) -> String {
    format!("{n} {what}{}", if n == 1 { "" } else { "s" })
}

fn summarise(s: &Scenario, out: &mut impl Write) -> std::io::Result<()> {
    let faults: usize = s.devices.iter().map(|d| d.faults.len()).sum();
    let changes: usize = s
        .devices
        .iter()
        .flat_map(|d| &d.signals)
        .map(|sig| sig.timeline.segments().len())
        .sum();
    let mut kinds: Vec<String> = Vec::new();
    for d in &s.devices {
        let k = d.kind.to_string();
        if !kinds.contains(&k) {
            kinds.push(k);
        }
    }
    writeln!(out, "ok      {}: {}", s.name, s.description)?;
    writeln!(
        out,
        "        {}..{} ({}, x{} by default{}); {} ({}) in {}; {}, {}, {}",
        s.start,
        s.end,
        human(s.duration()),
        s.time_scale,
        s.max_time_scale
            .map_or_else(String::new, |m| format!(", x{m} at most")),
        count(s.devices.len(), "device"),
        kinds.join(", "),
        count(s.zones().len(), "zone"),
        count(changes, "change"),
        count(faults, "fault"),
        count(s.events.len(), "event")
    )?;
    let power = match s.power_loss_at {
        Some(p) => format!("power loss at {p}"),
        None => "no power loss".to_string(),
    };
    let hold = s
        .hold
        .map_or_else(String::new, |h| format!("; hold {} s", h.as_secs()));
    writeln!(
        out,
        "        {power}; budget {} s{hold}; expect {}",
        s.evacuation_budget.as_secs(),
        s.expectation()
    )
}

fn sim(args: SimArgs, out: &mut impl Write) -> Result<(), CliError> {
    let scenario = Scenario::load(&args.scenario)?;
    let broker = args
        .broker
        .as_deref()
        .map(|b| {
            Broker::parse(b).ok_or_else(|| CliError::BadOption {
                option: "--broker",
                value: b.to_string(),
                problem: "is not mqtt://HOST:PORT".into(),
            })
        })
        .transpose()?;
    let options = SimOptions {
        time_scale: args.time_scale,
        host: args.host,
        layout: if args.shared_port {
            Layout::SharedPort
        } else {
            Layout::PortPerDevice
        },
        broker,
        node: crate::node::NodeBackend::resolve(
            &args.node.node.clone().unwrap_or_default(),
            &scenario,
            &args.node.programs(),
        )
        .map_err(|problem| CliError::BadOption {
            option: "--node",
            value: args
                .node
                .node
                .as_ref()
                .map_or_else(|| "(the scenario's)".to_string(), |n| format!("{n:?}")),
            problem,
        })?,
        ..SimOptions::default()
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let sim = Simulation::start(&scenario, options).await?;
        let clock = sim.clock();
        writeln!(out, "scenario {}: {}", scenario.name, scenario.description)?;
        // Where the clock started, not `clock.now()`: the clock has been running since
        // `Simulation::start`, and its reading now depends on how long the start took.
        writeln!(
            out,
            "clock    {}, x{} ({} of scenario per real second)",
            scenario.start,
            clock.scale(),
            human(Duration::from_secs(1).mul_f64(clock.scale()))
        )?;
        writeln!(out, "devices")?;
        for (name, endpoint) in &sim.addresses().devices {
            let kind = scenario
                .device(name.as_str())
                .map(|d| format!("{:<10} {}", d.kind.name(), d.zone.as_str()))
                .unwrap_or_default();
            writeln!(out, "  {:<16} {kind:<32} {endpoint}", name.as_str())?;
        }
        if scenario.nodes().next().is_some() && sim.firmware().is_none() {
            writeln!(
                out,
                "  (the node is the stand-in: its register map over Modbus TCP, no firmware; --node host runs the firmware)"
            )?;
        }
        let site = site_config_with(
            &scenario,
            sim.addresses(),
            &SiteOptions {
                http_bind: args.http_bind.clone(),
                ..SiteOptions::default()
            },
        );
        writeln!(
            out,
            "\nsite configuration (for firebreak config check / run):\n"
        )?;
        writeln!(out, "{site}")?;
        writeln!(
            out,
            "running  {} -> {}; Ctrl-C to stop",
            scenario.start, scenario.end
        )?;
        out.flush()?;
        let replay = narrate(&scenario, &sim, out);
        tokio::select! {
            r = replay => {
                r?;
                if !args.exit_at_end {
                    writeln!(out, "values hold; Ctrl-C to stop")?;
                    out.flush()?;
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
            _ = tokio::signal::ctrl_c() => {}
        }
        Ok::<(), CliError>(())
    })
}

/// Prints each happening of the scenario when the clock reaches it.
async fn narrate(
    scenario: &Scenario,
    sim: &Simulation,
    out: &mut impl Write,
) -> std::io::Result<()> {
    for (at, text) in scenario.happenings() {
        sim.clock()
            .sleep_until(at, Duration::from_millis(200))
            .await;
        writeln!(out, "{at:>10}  {text}")?;
        out.flush()?;
    }
    Ok(())
}

fn load(args: &crate::load::LoadArgs, out: &mut impl Write) -> Result<(), CliError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Load(crate::load::LoadError::Setup(format!("runtime: {e}"))))?;
    let mut progress = std::io::stderr();
    let report = rt
        .block_on(crate::load::run(args, &mut progress))
        .map_err(CliError::Load)?;
    let _ = write!(out, "{}", crate::load::render(&report));
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&report).unwrap_or_default();
        std::fs::write(path, text).map_err(|e| {
            CliError::Load(crate::load::LoadError::Setup(format!(
                "{}: {e}",
                path.display()
            )))
        })?;
    }
    Ok(())
}
