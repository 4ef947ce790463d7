//! The load run (`firebreak-hil load`): N simulated Modbus TCP devices of R registers on
//! loopback, the gateway polling them as a separate process, every sample through its policy
//! engine, and level changes delivered through an embedded broker to a subscriber here.
//!
//! It reports the gateway's CPU time per million register reads, its peak resident size, the
//! poll rate achieved against the target, poll lateness p99 (from the gateway's own
//! histogram) and the end-to-end latency of a register change to the trigger arriving at the
//! subscriber. Everything is bounded: the run lasts `warmup + duration` seconds.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use firebreak_protocols::message::decode;
use firebreak_protocols::{DataType, DeviceId, Level, RegisterDescriptor, Signal, Table, Trigger};
use rumqttc::{AsyncClient, Event as MqttEvent, MqttOptions, Packet, QoS};
use serde::Serialize;
use tokio::sync::mpsc;

use crate::broker::EmbeddedBroker;
use crate::clock::ScenarioClock;
use crate::sim::{ModbusServer, SimDevice};
use crate::time::ScenarioTime;

/// Devices per zone in the generated site.
pub const DEVICES_PER_ZONE: usize = 100;

/// What to run.
#[derive(Debug, Clone, clap::Args)]
pub struct LoadArgs {
    /// Simulated devices.
    #[arg(long, default_value_t = 2000)]
    pub devices: usize,
    /// Registers per device (one input voltage, the rest outlet power).
    #[arg(long, default_value_t = 32)]
    pub registers: u16,
    /// Poll interval of every device, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub interval: u64,
    /// Seconds measured, after the warm-up.
    #[arg(long, default_value_t = 60)]
    pub duration: u64,
    /// Seconds before measuring: connections open, first polls done.
    #[arg(long, default_value_t = 10)]
    pub warmup: u64,
    /// End-to-end latency probes (a PDU losing its feed, and back) during the measurement.
    #[arg(long, default_value_t = 20)]
    pub probes: usize,
    /// The gateway binary (default: FIREBREAK_BIN, or `firebreak` next to this program).
    #[arg(long)]
    pub gateway_bin: Option<PathBuf>,
    /// Turn the gateway's telemetry off (`[telemetry] enabled = false`), to measure what it
    /// costs; it is on by default, as in a site configuration.
    #[arg(long)]
    pub no_telemetry: bool,
    /// Also write the report as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// What a load run measured.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LoadReport {
    /// Devices simulated.
    pub devices: usize,
    /// Registers per device.
    pub registers: u16,
    /// Poll interval, ms.
    pub interval_ms: u64,
    /// Seconds measured.
    pub measured_s: f64,
    /// Polls the gateway made in the measured window, per second.
    pub polls_per_s: f64,
    /// Polls per second the configuration asks for.
    pub target_polls_per_s: f64,
    /// Register reads per second.
    pub registers_per_s: f64,
    /// Gateway CPU (user + system) as a share of one core.
    pub cpu_share_of_one_core: f64,
    /// Gateway CPU seconds per million register reads.
    pub cpu_s_per_million_registers: f64,
    /// Peak resident size of the gateway, MiB.
    pub peak_rss_mib: f64,
    /// Poll lateness p99 (upper bound of its histogram bucket), ms.
    pub lateness_p99_ms: f64,
    /// End-to-end latency, register change to trigger at the subscriber: p50, ms.
    pub latency_p50_ms: Option<f64>,
    /// The same, p99.
    pub latency_p99_ms: Option<f64>,
    /// Probes whose trigger never arrived (within 10 s).
    pub probes_missed: usize,
    /// Probes made.
    pub probes: usize,
}

/// Why a load run could not be made.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// Setting something up failed.
    #[error("load run: {0}")]
    Setup(String),
}

fn setup<E: std::fmt::Display>(what: &str) -> impl Fn(E) -> LoadError + '_ {
    move |e| LoadError::Setup(format!("{what}: {e}"))
}

/// The register map every simulated device serves: input voltage, then outlet power.
pub fn register_map(registers: u16) -> Vec<RegisterDescriptor> {
    let mut map = vec![
        RegisterDescriptor::new(Signal::PduInputVoltage, Table::Holding, 0, DataType::U16)
            .scaled(0.1, 0.0)
            .valid(0.0, 600.0),
    ];
    for i in 1..registers.max(1) {
        map.push(
            RegisterDescriptor::new(Signal::PduPower, Table::Holding, i, DataType::U16)
                .channel(u8::try_from(i - 1).unwrap_or(u8::MAX)),
        );
    }
    map
}

/// The gateway's site configuration for the run.
pub fn site_config(
    args: &LoadArgs,
    servers: &[(SocketAddr, Vec<u8>)],
    broker: &str,
    dir: &Path,
    http: SocketAddr,
) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "[site]\nname = \"load\"\ngateway = \"gw-load\"\n\n[http]\nbind = \"{http}\"\n"
    );
    let zones = args.devices.div_ceil(DEVICES_PER_ZONE).max(1);
    for z in 0..zones {
        let _ = writeln!(s, "[[zones]]\nname = \"hall-{z}\"\n");
    }
    let timeout = (args.interval / 2).clamp(50, 500);
    let _ = writeln!(
        s,
        "[defaults]\npoll_interval_ms = {}\ntimeout_ms = {timeout}\nretries = 0\nfreshness_ms = {}\n",
        args.interval,
        args.interval * 3
    );
    let _ = writeln!(
        s,
        "[policy]\nhold_s = 0\nrules_file = \"rules.toml\"\n\n[[brokers]]\nname = \"embedded\"\nurl = \"{broker}\"\n\n\
         [signing]\nkey_file = \"{}\"\nkey_id = \"load\"\n\n[outbox]\ndir = \"{}\"\n",
        dir.join("load.key").display(),
        dir.join("outbox").display()
    );
    if args.no_telemetry {
        let _ = writeln!(s, "[telemetry]\nenabled = false\n");
    }
    let _ = writeln!(
        s,
        "[[profiles]]\nname = \"load-pdu\"\ndescription = \"load-run PDU\"\n"
    );
    for d in register_map(args.registers) {
        let _ = writeln!(
            s,
            "[[profiles.registers]]\nsignal = \"{}\"\nchannel = {}\ntable = \"holding\"\naddress = {}\ntype = \"u16\"\nscale = {}\n",
            d.signal.name(),
            d.channel,
            d.address,
            d.scale
        );
    }
    let mut n = 0;
    for (addr, units) in servers {
        for u in units {
            let _ = writeln!(
                s,
                "[[devices]]\nname = \"pdu-{n}\"\nzone = \"hall-{}\"\ntransport = \"tcp\"\naddress = \"{addr}\"\nunit = {u}\nprofile = \"load-pdu\"\n",
                n / DEVICES_PER_ZONE
            );
            n += 1;
        }
    }
    s
}

/// One rule: a PDU losing its feed raises `watch` at once; with `hold_s = 0` it drops back as
/// soon as the feed returns. The latency probes ride on it.
pub const RULES: &str = r#"
[[rules]]
id = "pdu-feed-lost"
kind = "threshold"
signal = "pdu-input-voltage"
below = 90.0
clear = 180.0
level = "watch"
"#;

fn gateway_bin(args: &LoadArgs) -> PathBuf {
    if let Some(p) = &args.gateway_bin {
        return p.clone();
    }
    if let Some(p) = std::env::var_os("FIREBREAK_BIN") {
        return PathBuf::from(p);
    }
    std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|d| d.join("firebreak")))
        .unwrap_or_else(|| PathBuf::from("firebreak"))
}

fn http_get(addr: SocketAddr, path: &str) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    text.split_once("\r\n\r\n").map(|(_, b)| b.to_string())
}

/// The sum of every sample of `name` (any labels) in a Prometheus text.
fn metric_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Cumulative (le, count) of a histogram.
fn histogram(text: &str, name: &str) -> Vec<(f64, f64)> {
    let prefix = format!("{name}_bucket{{le=\"");
    text.lines()
        .filter_map(|l| {
            let rest = l.strip_prefix(&prefix)?;
            let (le, count) = rest.split_once("\"} ")?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((le, count.parse().ok()?))
        })
        .collect()
}

/// The upper bound of the bucket holding quantile `q` of the difference of two histograms.
fn quantile_bound(before: &[(f64, f64)], after: &[(f64, f64)], q: f64) -> f64 {
    let diff: Vec<(f64, f64)> = after
        .iter()
        .map(|&(le, n)| {
            let b = before
                .iter()
                .find(|(l, _)| *l == le)
                .map_or(0.0, |&(_, c)| c);
            (le, n - b)
        })
        .collect();
    let total = diff.last().map_or(0.0, |&(_, n)| n);
    diff.iter()
        .find(|&&(_, n)| total > 0.0 && n >= q * total)
        .map_or(f64::NAN, |&(le, _)| le)
}

/// (CPU seconds, peak RSS KiB) of a process, from /proc.
fn proc_usage(pid: u32) -> Option<(f64, f64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    let hz = 100.0; // USER_HZ on Linux
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let hwm = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some((ticks / hz, hwm))
}

fn percentile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted.get(i).copied()
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs the load, bounded by `warmup + duration` seconds plus set-up.
pub async fn run(args: &LoadArgs, progress: &mut impl Write) -> Result<LoadReport, LoadError> {
    if args.devices == 0 || args.devices > 20_000 || args.registers == 0 || args.registers > 125 {
        return Err(LoadError::Setup(
            "devices must be 1..=20000 and registers 1..=125".into(),
        ));
    }
    let broker = EmbeddedBroker::start().map_err(setup("embedded broker"))?;
    let map: Arc<[RegisterDescriptor]> = register_map(args.registers).into();
    let clock = ScenarioClock::paused(ScenarioTime::T0);
    let mut devices = Vec::with_capacity(args.devices);
    for i in 0..args.devices {
        let d = SimDevice::modbus(
            DeviceId::new(&format!("pdu-{i}")).map_err(setup("device id"))?,
            Arc::clone(&map),
        );
        d.set_value(Signal::PduInputVoltage, 0, 230.0)
            .map_err(setup("value"))?;
        for ch in 0..args.registers.saturating_sub(1) {
            d.set_value(
                Signal::PduPower,
                ch as u8,
                f32::from(ch) * 10.0 + (i % 7) as f32,
            )
            .map_err(setup("value"))?;
        }
        devices.push(Arc::new(d));
    }
    let mut servers = Vec::new();
    let mut layout = Vec::new();
    for chunk in devices.chunks(247) {
        let units: Vec<(u8, Arc<SimDevice>)> = chunk
            .iter()
            .enumerate()
            .map(|(u, d)| (u as u8 + 1, Arc::clone(d)))
            .collect();
        let server =
            ModbusServer::start(SocketAddr::from(([127, 0, 0, 1], 0)), units, clock.clone())
                .await
                .map_err(setup("Modbus server"))?;
        layout.push((server.local_addr(), server.units().to_vec()));
        servers.push(server);
    }

    let dir = tempfile::tempdir().map_err(setup("temporary directory"))?;
    let bin = gateway_bin(args);
    let keygen = Command::new(&bin)
        .args(["keygen", "--out"])
        .arg(dir.path())
        .args(["--key-id", "load"])
        .output()
        .map_err(|e| LoadError::Setup(format!("{}: {e}", bin.display())))?;
    if !keygen.status.success() {
        return Err(LoadError::Setup(format!(
            "firebreak keygen: {}",
            String::from_utf8_lossy(&keygen.stderr)
        )));
    }
    std::fs::write(dir.path().join("rules.toml"), RULES).map_err(setup("rules file"))?;
    let http = SocketAddr::from((
        [127, 0, 0, 1],
        std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(setup("free port"))?
            .port(),
    ));
    let config = site_config(args, &layout, &broker.url(), dir.path(), http);
    let config_path = dir.path().join("site.toml");
    std::fs::write(&config_path, config).map_err(setup("site config"))?;

    // The subscriber: triggers of the load site, with the instant each arrived.
    let (tx, mut triggers) = mpsc::unbounded_channel::<(Instant, Trigger)>();
    let mut options = MqttOptions::new("load-subscriber", "127.0.0.1", broker.addr().port());
    options.set_keep_alive(Duration::from_secs(10));
    let (client, mut eventloop) = AsyncClient::new(options, 64);
    client
        .subscribe("firebreak/v1/load/triggers", QoS::AtLeastOnce)
        .await
        .map_err(setup("subscribe"))?;
    let listener = tokio::spawn(async move {
        while let Ok(ev) = eventloop.poll().await {
            if let MqttEvent::Incoming(Packet::Publish(p)) = ev
                && let Ok(t) = decode::<Trigger>(&p.payload)
                && tx.send((Instant::now(), t)).is_err()
            {
                break;
            }
        }
    });

    let child = Command::new(&bin)
        .args(["run", "--config"])
        .arg(&config_path)
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| LoadError::Setup(format!("{}: {e}", bin.display())))?;
    let gateway = KillOnDrop(child);
    let pid = gateway.0.id();
    let up = Instant::now();
    while http_get(http, "/healthz").is_none() {
        if up.elapsed() > Duration::from_secs(30) {
            return Err(LoadError::Setup(
                "gateway /healthz did not answer in 30 s".into(),
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = writeln!(
        progress,
        "load: {} devices x {} registers every {} ms; warming up {} s",
        args.devices, args.registers, args.interval, args.warmup
    );
    tokio::time::sleep(Duration::from_secs(args.warmup)).await;

    let m0 = http_get(http, "/metrics").unwrap_or_default();
    let (cpu0, _) =
        proc_usage(pid).ok_or_else(|| LoadError::Setup("no /proc for the gateway".into()))?;
    let t0 = Instant::now();
    let _ = writeln!(progress, "load: measuring {} s", args.duration);

    // Probes: one PDU per probe loses its feed; the zone's `watch` trigger is awaited, then
    // the feed returns and the zone's `normal` is awaited too.
    let mut latencies = Vec::new();
    let mut missed = 0;
    let budget = Duration::from_secs(args.duration);
    let per_probe = budget / (args.probes.max(1) as u32);
    while triggers.try_recv().is_ok() {}
    for k in 0..args.probes {
        if t0.elapsed() + Duration::from_millis(args.interval * 3) > budget {
            break;
        }
        let started_probe = Instant::now();
        let i = (k * 37) % args.devices;
        let zone = format!("hall-{}", i / DEVICES_PER_ZONE);
        let Some(d) = devices.get(i) else { break };
        // At a random phase of the poll cycle, as a real change would come.
        tokio::time::sleep(Duration::from_millis(fastrand::u64(
            0..args.interval.max(1),
        )))
        .await;
        let changed = Instant::now();
        d.set_value(Signal::PduInputVoltage, 0, 0.0)
            .map_err(setup("value"))?;
        match await_level(&mut triggers, &zone, Level::Watch, Duration::from_secs(10)).await {
            Some(at) => latencies.push(at.duration_since(changed).as_secs_f64() * 1000.0),
            None => missed += 1,
        }
        d.set_value(Signal::PduInputVoltage, 0, 230.0)
            .map_err(setup("value"))?;
        let _ = await_level(&mut triggers, &zone, Level::Normal, Duration::from_secs(10)).await;
        tokio::time::sleep(per_probe.saturating_sub(started_probe.elapsed())).await;
    }
    tokio::time::sleep(budget.saturating_sub(t0.elapsed())).await;

    let m1 = http_get(http, "/metrics").unwrap_or_default();
    let measured = t0.elapsed().as_secs_f64();
    let (cpu1, hwm_kib) =
        proc_usage(pid).ok_or_else(|| LoadError::Setup("no /proc for the gateway".into()))?;
    drop(gateway);
    listener.abort();
    drop(servers);

    let polls = metric_sum(&m1, "firebreak_polls_total") - metric_sum(&m0, "firebreak_polls_total");
    let polls_per_s = polls / measured;
    let registers_per_s = polls_per_s * f64::from(args.registers);
    let cpu = cpu1 - cpu0;
    latencies.sort_by(f64::total_cmp);
    let report = LoadReport {
        devices: args.devices,
        registers: args.registers,
        interval_ms: args.interval,
        measured_s: measured,
        polls_per_s,
        target_polls_per_s: args.devices as f64 * 1000.0 / args.interval as f64,
        registers_per_s,
        cpu_share_of_one_core: cpu / measured,
        cpu_s_per_million_registers: if registers_per_s > 0.0 {
            cpu / (registers_per_s * measured / 1e6)
        } else {
            f64::NAN
        },
        peak_rss_mib: hwm_kib / 1024.0,
        lateness_p99_ms: quantile_bound(
            &histogram(&m0, "firebreak_poll_lateness_seconds"),
            &histogram(&m1, "firebreak_poll_lateness_seconds"),
            0.99,
        ) * 1000.0,
        latency_p50_ms: percentile(&latencies, 0.5),
        latency_p99_ms: percentile(&latencies, 0.99),
        probes_missed: missed,
        probes: latencies.len() + missed,
    };
    Ok(report)
}

async fn await_level(
    triggers: &mut mpsc::UnboundedReceiver<(Instant, Trigger)>,
    zone: &str,
    level: Level,
    within: Duration,
) -> Option<Instant> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let (at, t) = tokio::time::timeout_at(deadline, triggers.recv())
            .await
            .ok()??;
        if t.level == level && t.zone.as_ref().is_some_and(|z| z.as_str() == zone) {
            return Some(at);
        }
    }
}

/// The report as a table row set, for humans.
pub fn render(r: &LoadReport) -> String {
    let ms = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1} ms"));
    format!(
        "devices x registers      {} x {} every {} ms\n\
         polls/s achieved          {:.0} of {:.0} ({:.1} %)\n\
         register reads/s          {:.0}\n\
         gateway CPU               {:.1} % of one core; {:.2} s per million register reads\n\
         gateway peak RSS          {:.1} MiB\n\
         poll lateness p99         <= {} ms\n\
         end-to-end latency        p50 {}, p99 {} ({} probes, {} missed)\n",
        r.devices,
        r.registers,
        r.interval_ms,
        r.polls_per_s,
        r.target_polls_per_s,
        100.0 * r.polls_per_s / r.target_polls_per_s.max(f64::MIN_POSITIVE),
        r.registers_per_s,
        100.0 * r.cpu_share_of_one_core,
        r.cpu_s_per_million_registers,
        r.peak_rss_mib,
        r.lateness_p99_ms,
        ms(r.latency_p50_ms),
        ms(r.latency_p99_ms),
        r.probes,
        r.probes_missed
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_of_histogram_differences() {
        let before = [(0.001, 10.0), (0.01, 10.0), (f64::INFINITY, 10.0)];
        let after = [(0.001, 100.0), (0.01, 109.0), (f64::INFINITY, 110.0)];
        // 100 new polls: 90 within 1 ms, 99 within 10 ms, 100 in all.
        assert_eq!(quantile_bound(&before, &after, 0.5), 0.001);
        assert_eq!(quantile_bound(&before, &after, 0.99), 0.01);
        assert_eq!(quantile_bound(&before, &after, 1.0), f64::INFINITY);
    }

    #[test]
    fn metric_sums_match_whole_names_only() {
        let text = "firebreak_polls_total{device=\"a\"} 3\nfirebreak_polls_total{device=\"b\"} 4\nfirebreak_polls_total_other 100\n";
        assert_eq!(metric_sum(text, "firebreak_polls_total"), 7.0);
    }

    #[test]
    fn percentiles() {
        let v = [1.0, 2.0, 3.0, 4.0, 100.0];
        assert_eq!(percentile(&v, 0.5), Some(3.0));
        assert_eq!(percentile(&v, 0.99), Some(100.0));
        assert_eq!(percentile(&[], 0.5), None);
    }
}
