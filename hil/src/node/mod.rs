//! The sensor node in the loop: the rig drives the firmware itself, not only a stand-in.
//!
//! A scenario's `node` devices are brought up by one of four back-ends ([`NodeBackend`]):
//!
//! | back-end | the node | the gateway reads it over |
//! |---|---|---|
//! | `stand-in` | its register map served from the scenario (`sim::modbus`), no firmware logic | Modbus TCP |
//! | `host` | `firebreak-node-sim`, the firmware library on the host, its RTU on a socat PTY | Modbus RTU, through the [`line`](mod@line) |
//! | `qemu` | the `thumbv7em` image under `qemu-system-arm` (`mps2-an386`), RTU on UART1 | Modbus RTU, through the [`line`](mod@line) |
//! | `serial:PATH` | a physical node on a serial adapter (tested here through a PTY) | Modbus RTU, through the [`line`](mod@line) |
//!
//! With the firmware back-ends the scenario's values reach the node through its **sensor
//! feed** ([`feed`]), and so does the scenario's **clock**: every [`FEED_STEP`] of scenario
//! time the rig sends `clock <ms>` and then the inputs that changed, in scenario order. The
//! node runs its 100 ms cycles on that fed clock only, so its rate-of-rise windows,
//! debounces and latch see the same inputs at the same node times whatever the replay speed:
//! a replay at x60 gives the node the decisions it makes at x1 (`hil/tests/firmware_loop.rs`
//! proves it). A rig that falls behind sends the missed steps in order, never skips one.
//!
//! The node's own decisions are recorded from its `alarm at=… state=…` lines (the status
//! block's alarm-state register, at fed-clock time): when it latched, and why, beside the
//! gateway's levels ([`NodeReport`]).

pub mod feed;
pub mod line;

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::clock::ScenarioClock;
use crate::scenario::{Bus, Fault, RebootReason, Scenario};
use crate::sim::SimDevice;
use crate::time::ScenarioTime;
use feed::{Output, StatusCounters, inputs, parse_output, reading};
use line::{Line, LineFigures, LineNode, Parity, PortSpec, PtyPair};

/// How often, in scenario time, the rig advances the node's clock and sets its inputs.
pub const FEED_STEP: Duration = Duration::from_millis(250);

/// The node's cycle (`docs/firmware.md`): it judges its inputs every 100 ms of its clock.
const NODE_CYCLE: Duration = Duration::from_millis(100);

/// How long a node may take to say it is ready (QEMU boots in well under a second; a loaded
/// CI machine can be slow to start it).
const BOOT_TIMEOUT: Duration = Duration::from_secs(20);

/// The environment variable with the firmware host build's path.
pub const NODE_SIM_ENV: &str = "FIREBREAK_NODE_SIM";
/// The environment variable with the QEMU image's path.
pub const NODE_QEMU_ENV: &str = "FIREBREAK_NODE_QEMU";

/// How a scenario's sensor nodes are brought up, as a rig is told (`--node`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum NodeChoice {
    /// Each scenario's own `node` key (the stand-in when it has none).
    #[default]
    PerScenario,
    /// The stand-in.
    StandIn,
    /// The firmware's host build.
    Host,
    /// The firmware image under QEMU.
    Qemu,
    /// A physical node on serial adapters.
    Serial(SerialNode),
}

/// A physical node: its RS-485 adapter and, on a bench node, the adapter of its feed UART.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SerialNode {
    /// The RS-485 adapter the node is on.
    pub rtu: PathBuf,
    /// The node's feed UART (a bench node); without it the node reads its own sensors and
    /// the scenario's values do not reach it.
    pub feed: Option<PathBuf>,
    /// Line speed.
    pub baud: u32,
    /// Parity.
    pub parity: Parity,
}

impl std::str::FromStr for NodeChoice {
    type Err = String;

    /// `stand-in`, `host`, `qemu`, or `serial:PATH[,feed=PATH][,baud=N][,parity=none|even|odd]`.
    fn from_str(text: &str) -> Result<NodeChoice, String> {
        match text {
            "stand-in" => return Ok(NodeChoice::StandIn),
            "host" => return Ok(NodeChoice::Host),
            "qemu" => return Ok(NodeChoice::Qemu),
            _ => {}
        }
        let Some(rest) = text.strip_prefix("serial:") else {
            return Err(format!(
                "{text:?}: give stand-in, host, qemu or serial:PATH[,feed=PATH][,baud=N][,parity=P]"
            ));
        };
        let mut parts = rest.split(',');
        let rtu = parts.next().filter(|p| !p.is_empty()).ok_or_else(|| {
            "serial: give the RS-485 adapter's path (serial:/dev/ttyUSB0)".to_string()
        })?;
        let mut node = SerialNode {
            rtu: PathBuf::from(rtu),
            feed: None,
            baud: 19_200,
            parity: Parity::Even,
        };
        for part in parts {
            match part.split_once('=') {
                Some(("feed", p)) if !p.is_empty() => node.feed = Some(PathBuf::from(p)),
                Some(("baud", b)) => {
                    node.baud = b
                        .parse()
                        .ok()
                        .filter(|b| (300..=1_000_000).contains(b))
                        .ok_or_else(|| format!("serial: baud={b:?} is not 300..=1000000"))?;
                }
                Some(("parity", p)) => {
                    node.parity = Parity::parse(p)
                        .ok_or_else(|| format!("serial: parity={p:?}: none, even or odd"))?;
                }
                _ => {
                    return Err(format!(
                        "serial: {part:?} is not feed=PATH, baud=N or parity=none|even|odd"
                    ));
                }
            }
        }
        Ok(NodeChoice::Serial(node))
    }
}

/// Where the firmware back-ends' programs are.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NodePrograms {
    /// `firebreak-node-sim` (else FIREBREAK_NODE_SIM, else next to this program).
    pub sim: Option<PathBuf>,
    /// The QEMU image (else FIREBREAK_NODE_QEMU, else the `firmware` profile's build in the
    /// target directory this program was built in).
    pub image: Option<PathBuf>,
    /// `qemu-system-arm` (else on the PATH).
    pub qemu: Option<PathBuf>,
}

impl NodePrograms {
    fn beside_me(name: &str) -> Option<PathBuf> {
        let here = std::env::current_exe().ok()?;
        let dir = here.parent()?;
        // Test binaries live one level down, in target/<profile>/deps.
        [dir.join(name), dir.parent()?.join(name)]
            .into_iter()
            .find(|p| p.is_file())
    }

    /// The host build's path, or why there is none.
    pub fn sim(&self) -> Result<PathBuf, String> {
        self.sim
            .clone()
            .or_else(|| std::env::var_os(NODE_SIM_ENV).map(PathBuf::from))
            .or_else(|| Self::beside_me("firebreak-node-sim"))
            .ok_or_else(|| {
                format!("no firebreak-node-sim: build it (cargo build -p firebreak-node-sim), or give --node-sim or {NODE_SIM_ENV}")
            })
    }

    /// The QEMU image's path, or why there is none.
    pub fn image(&self) -> Result<PathBuf, String> {
        if let Some(p) = self
            .image
            .clone()
            .or_else(|| std::env::var_os(NODE_QEMU_ENV).map(PathBuf::from))
        {
            return Ok(p);
        }
        let here = std::env::current_exe().map_err(|e| e.to_string())?;
        // target/<profile>/firebreak-hil (or target/<profile>/deps/…) → target/thumbv7em-….
        let built = here
            .ancestors()
            .find(|a| a.file_name().is_some_and(|n| n == "target"))
            .map(|t| t.join("thumbv7em-none-eabihf/firmware/firebreak-node-qemu"))
            .filter(|p| p.is_file());
        built.ok_or_else(|| {
            format!("no QEMU image: build it (cargo build -p firebreak-firmware --profile firmware --target thumbv7em-none-eabihf --bin firebreak-node-qemu), or give --node-image or {NODE_QEMU_ENV}")
        })
    }

    /// `qemu-system-arm`.
    pub fn qemu(&self) -> PathBuf {
        self.qemu
            .clone()
            .unwrap_or_else(|| PathBuf::from("qemu-system-arm"))
    }
}

/// The back-end a scenario's nodes run on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeBackend {
    /// The register map over Modbus TCP.
    StandIn,
    /// `firebreak-node-sim` at this path.
    Host {
        /// The program.
        program: PathBuf,
    },
    /// The image under QEMU.
    Qemu {
        /// `qemu-system-arm`.
        qemu: PathBuf,
        /// The image.
        image: PathBuf,
    },
    /// A physical node.
    Serial(SerialNode),
}

impl NodeBackend {
    /// The back-end's name in results: `stand-in`, `host`, `qemu`, `serial`.
    pub fn name(&self) -> &'static str {
        match self {
            NodeBackend::StandIn => "stand-in",
            NodeBackend::Host { .. } => "host",
            NodeBackend::Qemu { .. } => "qemu",
            NodeBackend::Serial(_) => "serial",
        }
    }

    /// Whether the node runs the firmware.
    pub fn is_firmware(&self) -> bool {
        !matches!(self, NodeBackend::StandIn)
    }

    /// The back-end for `scenario` under `choice`, with the programs found.
    pub fn resolve(
        choice: &NodeChoice,
        scenario: &Scenario,
        programs: &NodePrograms,
    ) -> Result<NodeBackend, String> {
        use crate::scenario::NodeBackendKind as K;
        let kind = match choice {
            NodeChoice::PerScenario => scenario.node.unwrap_or(K::StandIn),
            NodeChoice::StandIn => K::StandIn,
            NodeChoice::Host => K::Host,
            NodeChoice::Qemu => K::Qemu,
            NodeChoice::Serial(s) => return Ok(NodeBackend::Serial(s.clone())),
        };
        Ok(match kind {
            K::StandIn => NodeBackend::StandIn,
            K::Host => NodeBackend::Host {
                program: programs.sim()?,
            },
            K::Qemu => NodeBackend::Qemu {
                qemu: programs.qemu(),
                image: programs.image()?,
            },
        })
    }
}

/// A node booting, as the rig saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Boot {
    /// When (scenario time).
    pub at: ScenarioTime,
    /// The reset reason the node reported (`None` when its banner does not say).
    pub reset_reason: Option<u16>,
}

/// A change of the node's alarm-state register.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlarmChange {
    /// When, in scenario time (the fed clock mapped back).
    pub at: ScenarioTime,
    /// The register: bit 0 latched, bits 1–4 the causes.
    pub state: u16,
    /// The faults register.
    pub faults: u16,
}

/// What one firmware node did during a replay.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeRecord {
    /// The device.
    pub device: String,
    /// Its unit id.
    pub unit: u8,
    /// Its boots (the first, and any reboot).
    pub boots: Vec<Boot>,
    /// Its alarm-state changes.
    pub alarms: Vec<AlarmChange>,
    /// Feed lines it refused, with why.
    pub refused: Vec<String>,
    /// Its line counters at the end (`status`).
    pub status: Option<StatusCounters>,
    /// Feed steps sent.
    pub steps: u64,
    /// Problems of its process (exited, did not boot).
    pub problems: Vec<String>,
}

impl NodeRecord {
    /// When it first latched its alarm, and the state then.
    pub fn first_latch(&self) -> Option<AlarmChange> {
        self.alarms.iter().find(|a| a.state & 1 != 0).copied()
    }
}

/// What the firmware nodes did, for the result.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeReport {
    /// The back-end.
    pub backend: String,
    /// Each node.
    pub nodes: Vec<NodeRecord>,
    /// The RS-485 line (bus A).
    pub line: LineFigures,
    /// Bus B's line, when a second gateway read the nodes on it.
    pub line_b: Option<LineFigures>,
}

enum Request {
    Reboot(RebootReason, oneshot::Sender<String>),
    Status(oneshot::Sender<()>),
}

/// How to (re)start one node's program.
#[derive(Debug, Clone)]
enum Launch {
    Host {
        program: PathBuf,
        serial: PathBuf,
        /// Port B (`--rtu-b`), when a second gateway reads the node.
        serial_b: Option<PathBuf>,
        unit: u8,
    },
    Qemu {
        qemu: PathBuf,
        image: PathBuf,
        socket: PathBuf,
    },
    Serial {
        feed: Option<PathBuf>,
        baud: u32,
        parity: Parity,
    },
}

/// A node program's feed: where to write lines, and the lines it writes.
struct Io {
    writer: Option<Box<dyn AsyncWrite + Unpin + Send>>,
    lines: mpsc::UnboundedReceiver<String>,
    child: Option<Child>,
}

impl Launch {
    async fn start(&self, log: &Path, reset: Option<&str>) -> Result<Io, String> {
        let (tx, lines) = mpsc::unbounded_channel();
        let spawn_reader = |r: Box<dyn tokio::io::AsyncRead + Unpin + Send>| {
            tokio::spawn(async move {
                let mut r = BufReader::new(r).lines();
                while let Ok(Some(line)) = r.next_line().await {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        };
        let stderr = || {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(log)
                .map(Stdio::from)
                .unwrap_or_else(|_| Stdio::null())
        };
        let mut command = match self {
            Launch::Serial { feed, baud, parity } => {
                let Some(feed) = feed else {
                    return Ok(Io {
                        writer: None,
                        lines,
                        child: None,
                    });
                };
                let port = line::open_serial(feed, *baud, *parity)
                    .map_err(|e| format!("the node's feed {}: {e}", feed.display()))?;
                let (r, w) = tokio::io::split(port);
                spawn_reader(Box::new(r));
                return Ok(Io {
                    writer: Some(Box::new(w)),
                    lines,
                    child: None,
                });
            }
            Launch::Host {
                program,
                serial,
                serial_b,
                unit,
            } => {
                let mut c = Command::new(program);
                c.arg("--serial")
                    .arg(serial)
                    .args(["--unit", &unit.to_string()]);
                if let Some(b) = serial_b {
                    c.arg("--rtu-b").arg(b);
                }
                if let Some(r) = reset {
                    c.args(["--reset-reason", r]);
                }
                c
            }
            Launch::Qemu {
                qemu,
                image,
                socket,
            } => {
                let _ = std::fs::remove_file(socket);
                let mut c = Command::new(qemu);
                c.args(["-M", "mps2-an386", "-display", "none", "-monitor", "none"])
                    .args(["-serial", "stdio", "-chardev"])
                    .arg(format!(
                        "socket,id=rtu,path={},server=on,wait=off",
                        socket.display()
                    ))
                    .args(["-serial", "chardev:rtu", "-kernel"])
                    .arg(image);
                c
            }
        };
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                let program = match self {
                    Launch::Host { program, .. } => program.display().to_string(),
                    Launch::Qemu { qemu, .. } => {
                        format!("{} (apt-get install qemu-system-arm)", qemu.display())
                    }
                    Launch::Serial { .. } => String::new(),
                };
                format!("cannot run {program}: {e}")
            })?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err("the node program has no stdin/stdout".into());
        };
        spawn_reader(Box::new(stdout));
        Ok(Io {
            writer: Some(Box::new(stdin)),
            lines,
            child: Some(child),
        })
    }
}

/// One node's driver: feeds it, reads it, reboots it.
struct Driver {
    name: String,
    device: Arc<SimDevice>,
    clock: ScenarioClock,
    launch: Launch,
    log: PathBuf,
    end: ScenarioTime,
    record: Arc<Mutex<NodeRecord>>,
    /// The scenario time of the node's fed-clock 0 (set at each boot).
    origin: Option<ScenarioTime>,
    next: ScenarioTime,
    sent: BTreeMap<&'static str, String>,
    /// Feed lines sent and not yet answered.
    pending: VecDeque<String>,
    /// Hung on purpose: nothing is fed until the node says it is ready again.
    rebooting: bool,
    status_waiters: Vec<oneshot::Sender<()>>,
}

fn lock(r: &Mutex<NodeRecord>) -> MutexGuard<'_, NodeRecord> {
    r.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Driver {
    /// The scenario's start-aligned grid step at or before `t`.
    fn on_grid(&self, t: ScenarioTime, start: ScenarioTime) -> ScenarioTime {
        let step = FEED_STEP.as_millis() as i64;
        let since = t.millis() - start.millis();
        ScenarioTime::from_millis(start.millis() + since.div_euclid(step) * step)
    }

    fn queue(&mut self, out: &mut String, line: String) {
        out.push_str(&line);
        out.push('\n');
        self.pending.push_back(line);
    }

    /// The inputs at `t` that differ from what was last sent.
    fn inputs_at(&mut self, out: &mut String, t: ScenarioTime) {
        for input in inputs() {
            let text = reading(&self.device, &input, t);
            if self.sent.get(input.key) != Some(&text) {
                self.queue(out, format!("{} {text}", input.key));
                self.sent.insert(input.key, text);
            }
        }
    }

    /// Feed lines due by now: every missed step, in order.
    fn due(&mut self) -> String {
        let mut out = String::new();
        let Some(origin) = self.origin.filter(|_| !self.rebooting) else {
            return out;
        };
        let now = self.clock.now().min(self.end);
        let mut steps = 0;
        while self.next <= now && steps < 4000 {
            let t = self.next;
            let ms = t.millis() - origin.millis();
            self.queue(&mut out, format!("clock {ms}"));
            self.inputs_at(&mut out, t);
            self.next = t.plus(FEED_STEP);
            steps += 1;
        }
        if steps > 0 {
            lock(&self.record).steps += steps;
        }
        out
    }

    fn booted(&mut self, reset: Option<u16>, start: ScenarioTime) -> String {
        let now = self.clock.now();
        let at = self.on_grid(now, start);
        // The node's fed clock starts one cycle before the boot's grid step: `clock 0` runs
        // a cycle on nothing fitted, the inputs at the step follow, and `clock 100` runs the
        // cycle that judges them, so the node serves them before the scenario clock moves
        // (the rig starts the gateway with the clock paused).
        let origin = at.minus(NODE_CYCLE);
        lock(&self.record).boots.push(Boot {
            at: now,
            reset_reason: reset,
        });
        self.rebooting = false;
        self.origin = Some(origin);
        self.sent.clear();
        self.pending.clear();
        let mut out = String::new();
        self.queue(&mut out, "clock 0".into());
        self.inputs_at(&mut out, at);
        self.queue(&mut out, format!("clock {}", NODE_CYCLE.as_millis()));
        self.next = at.plus(FEED_STEP);
        out
    }

    fn heard(&mut self, line: &str, start: ScenarioTime) -> String {
        match parse_output(line) {
            Output::Ready { reset } => return self.booted(reset, start),
            Output::Ok => {
                self.pending.pop_front();
            }
            Output::Err(why) => {
                let what = self.pending.pop_front().unwrap_or_default();
                let mut r = lock(&self.record);
                if r.refused.len() < 20 {
                    r.refused.push(format!("{what:?}: {why}"));
                }
            }
            Output::Alarm {
                at_ms,
                state,
                faults,
            } => {
                let at = self.origin.map_or_else(
                    || self.clock.now(),
                    |o| ScenarioTime::from_millis(o.millis() + at_ms as i64),
                );
                lock(&self.record)
                    .alarms
                    .push(AlarmChange { at, state, faults });
            }
            Output::Status(counters) => {
                self.pending.pop_front();
                lock(&self.record).status = Some(counters);
                for w in self.status_waiters.drain(..) {
                    let _ = w.send(());
                }
            }
            Output::Relay(_) | Output::Other(_) => {}
        }
        String::new()
    }

    fn problem(&self, text: String) {
        let mut r = lock(&self.record);
        if r.problems.len() < 10 {
            r.problems.push(text);
        }
    }

    async fn run(mut self, mut io: Io, mut requests: mpsc::Receiver<Request>, start: ScenarioTime) {
        let mut tick = tokio::time::interval(Duration::from_millis(5));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        if io.writer.is_none() {
            // A physical node without a feed reads its own sensors: nothing to drive.
            self.origin = None;
        }
        loop {
            let out = tokio::select! {
                line = io.lines.recv() => match line {
                    Some(line) => self.heard(&line, start),
                    None => {
                        if !self.rebooting {
                            let status = match io.child.as_mut() {
                                Some(c) => c.try_wait().ok().flatten().map(|s| s.to_string()),
                                None => None,
                            };
                            self.problem(format!(
                                "{}: the node's feed ended at {} ({}); its log: {}",
                                self.name,
                                self.clock.now(),
                                status.unwrap_or_else(|| "still running".into()),
                                self.log.display()
                            ));
                            // Nothing more will come: wait for requests only.
                            while let Some(r) = requests.recv().await {
                                match r {
                                    Request::Reboot(_, done) => {
                                        let _ = done.send("the node is gone".into());
                                    }
                                    Request::Status(done) => {
                                        let _ = done.send(());
                                    }
                                }
                            }
                            return;
                        }
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        String::new()
                    }
                },
                request = requests.recv() => match request {
                    None => return,
                    Some(Request::Status(done)) => {
                        self.status_waiters.push(done);
                        let mut out = String::new();
                        if io.writer.is_some() {
                            self.queue(&mut out, "status".into());
                        }
                        out
                    }
                    Some(Request::Reboot(reason, done)) => {
                        let (outcome, restarted) = self.reboot(reason, &mut io).await;
                        if let Some(new) = restarted {
                            io = new;
                        }
                        let _ = done.send(outcome);
                        String::new()
                    }
                },
                _ = tick.tick() => self.due(),
            };
            if out.is_empty() {
                continue;
            }
            if let Some(w) = io.writer.as_mut()
                && w.write_all(out.as_bytes()).await.is_err()
            {
                io.writer = None;
            }
            if let Some(w) = io.writer.as_mut() {
                let _ = w.flush().await;
            }
        }
    }

    async fn reboot(&mut self, reason: RebootReason, io: &mut Io) -> (String, Option<Io>) {
        let power_cycle = reason == RebootReason::PowerOn && io.child.is_some();
        if !power_cycle {
            let Some(w) = io.writer.as_mut() else {
                return (
                    "not carried out: the node has no feed to hang it through".into(),
                    None,
                );
            };
            self.rebooting = true;
            self.pending.push_back("hang".into());
            if w.write_all(b"hang\n").await.is_err() {
                return ("not carried out: its feed is closed".into(), None);
            }
            let _ = w.flush().await;
            let note = if reason == RebootReason::PowerOn {
                " (a physical node cannot be power-cycled by the rig: hung instead)"
            } else {
                ""
            };
            return (format!("fed `hang`: its watchdog resets it{note}"), None);
        }
        self.rebooting = true;
        if let Some(c) = io.child.as_mut() {
            let _ = c.kill().await;
        }
        match self.launch.start(&self.log, None).await {
            Ok(new) => (
                "power cut and restored: the program restarted".into(),
                Some(new),
            ),
            Err(e) => {
                self.problem(format!("{}: power-on reboot: {e}", self.name));
                (format!("failed: {e}"), None)
            }
        }
    }
}

/// The firmware nodes of a scenario, running, on their line; stops when dropped.
#[derive(Debug)]
pub struct FirmwareNodes {
    backend: NodeBackend,
    line: Line,
    line_b: Option<Line>,
    drivers: Vec<(String, mpsc::Sender<Request>, Arc<Mutex<NodeRecord>>)>,
    tasks: Vec<JoinHandle<()>>,
    _ptys: Vec<PtyPair>,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Request::Reboot(..) => "Reboot",
            Request::Status(_) => "Status",
        })
    }
}

/// FNV-1a of a name: the line's noise seed, the same from run to run.
fn seed(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

impl FirmwareNodes {
    /// Starts the scenario's nodes on `backend` (a firmware one), their line, and their
    /// drivers; returns once every node said it is ready (its first feed is then on its way).
    pub async fn start(
        scenario: &Scenario,
        backend: &NodeBackend,
        devices: &[Arc<SimDevice>],
        clock: ScenarioClock,
        dir: &Path,
    ) -> Result<FirmwareNodes, String> {
        let nodes: Vec<(&crate::scenario::Device, Arc<SimDevice>)> = scenario
            .nodes()
            .filter_map(|d| {
                devices
                    .iter()
                    .find(|s| s.name() == &d.name)
                    .map(|s| (d, s.clone()))
            })
            .collect();
        for (d, _) in &nodes {
            if let Some(f) = d
                .faults
                .iter()
                .find(|f| matches!(f.fault, Fault::Exception(_)))
            {
                return Err(format!(
                    "{}: fault {} cannot be played by a firmware node (it answers exceptions by its own rules only); run this scenario with --node stand-in",
                    d.name.as_str(),
                    f.fault
                ));
            }
        }
        match backend {
            NodeBackend::Qemu { .. } | NodeBackend::Serial(_) if nodes.len() > 1 => {
                return Err(format!(
                    "{} nodes on one line need --node host: the QEMU image and a serial node are one node at unit 1",
                    nodes.len()
                ));
            }
            NodeBackend::Qemu { .. } | NodeBackend::Serial(_)
                if nodes.first().is_some_and(|(d, _)| d.unit != 1) =>
            {
                return Err("the QEMU image and a serial node answer unit 1 only: give the node unit 1, or use --node host".into());
            }
            _ => {}
        }
        // A second gateway reads the nodes on their port B, on a line of its own.
        let two_buses = scenario.gateways.iter().any(|g| g.bus == Bus::B);
        if two_buses && !matches!(backend, NodeBackend::Host { .. }) {
            return Err(format!(
                "two gateways read the nodes on two RS-485 buses, which the rig wires for --node host only (it gives the {} one port)",
                backend.name()
            ));
        }
        let mut ptys = Vec::new();
        let mut on_line = Vec::new();
        let mut on_line_b = Vec::new();
        let mut launches = Vec::new();
        for (i, (d, sd)) in nodes.iter().enumerate() {
            let (port, launch) = match backend {
                NodeBackend::StandIn => {
                    return Err("the stand-in is not a firmware back-end".into());
                }
                NodeBackend::Host { program } => {
                    let pair = PtyPair::start(
                        dir.join(format!("node{i}")),
                        dir.join(format!("node{i}.line")),
                        &dir.join(format!("socat-node{i}.log")),
                    )
                    .await?;
                    let serial_b = if two_buses {
                        let b = PtyPair::start(
                            dir.join(format!("node{i}b")),
                            dir.join(format!("node{i}b.line")),
                            &dir.join(format!("socat-node{i}b.log")),
                        )
                        .await?;
                        on_line_b.push(LineNode {
                            device: sd.clone(),
                            port: PortSpec::Pty(b.b.clone()),
                        });
                        let a = b.a.clone();
                        ptys.push(b);
                        Some(a)
                    } else {
                        None
                    };
                    let launch = Launch::Host {
                        program: program.clone(),
                        serial: pair.a.clone(),
                        serial_b,
                        unit: d.unit,
                    };
                    let port = PortSpec::Pty(pair.b.clone());
                    ptys.push(pair);
                    (port, launch)
                }
                NodeBackend::Qemu { qemu, image } => {
                    let socket = dir.join(format!("node{i}.sock"));
                    (
                        PortSpec::Unix(socket.clone()),
                        Launch::Qemu {
                            qemu: qemu.clone(),
                            image: image.clone(),
                            socket,
                        },
                    )
                }
                NodeBackend::Serial(s) => (
                    PortSpec::Serial {
                        path: s.rtu.clone(),
                        baud: s.baud,
                        parity: s.parity,
                    },
                    Launch::Serial {
                        feed: s.feed.clone(),
                        baud: s.baud,
                        parity: s.parity,
                    },
                ),
            };
            on_line.push(LineNode {
                device: sd.clone(),
                port,
            });
            launches.push((d.name.to_string(), d.unit, sd.clone(), launch));
        }
        let cuts_of = |bus: Bus| {
            scenario
                .gateways
                .iter()
                .find(|g| g.bus == bus)
                .map(|g| g.bus_cuts.clone())
                .unwrap_or_default()
        };
        let line = Line::start(
            dir,
            "rtu",
            on_line,
            clock.clone(),
            scenario.line_noise,
            seed(&scenario.name),
            cuts_of(Bus::A),
        )
        .await?;
        let line_b = if two_buses {
            Some(
                Line::start(
                    dir,
                    "rtu-b",
                    on_line_b,
                    clock.clone(),
                    scenario.line_noise,
                    seed(&scenario.name) ^ 0xB,
                    cuts_of(Bus::B),
                )
                .await?,
            )
        } else {
            None
        };

        let mut drivers = Vec::new();
        let mut tasks = Vec::new();
        for (name, unit, device, launch) in launches {
            let log = dir.join(format!("{name}.log"));
            let mut io = launch.start(&log, None).await?;
            let record = Arc::new(Mutex::new(NodeRecord {
                device: name.clone(),
                unit,
                ..NodeRecord::default()
            }));
            let mut driver = Driver {
                name: name.clone(),
                device,
                clock: clock.clone(),
                launch: launch.clone(),
                log: log.clone(),
                end: scenario.end,
                record: record.clone(),
                origin: None,
                next: scenario.start,
                sent: BTreeMap::new(),
                pending: VecDeque::new(),
                rebooting: false,
                status_waiters: Vec::new(),
            };
            // The first boot: wait for the banner, then the driver takes over.
            let first = if io.writer.is_some() && io.child.is_some() {
                let banner = tokio::time::timeout(BOOT_TIMEOUT, async {
                    while let Some(l) = io.lines.recv().await {
                        if let Output::Ready { reset } = parse_output(&l) {
                            return Some(reset);
                        }
                    }
                    None
                })
                .await;
                match banner {
                    Ok(Some(reset)) => driver.booted(reset, scenario.start),
                    _ => {
                        return Err(format!(
                            "{name}: the node did not say it was ready within {} s; its log: {}",
                            BOOT_TIMEOUT.as_secs(),
                            log.display()
                        ));
                    }
                }
            } else if io.writer.is_some() {
                // A physical node is already running: what it said before the rig listened
                // (its banner, a relay line) is read first, then the rig takes it from here.
                let mut reset = None;
                let drain = tokio::time::sleep(Duration::from_millis(500));
                tokio::pin!(drain);
                loop {
                    tokio::select! {
                        () = &mut drain => break,
                        line = io.lines.recv() => match line.as_deref().map(parse_output) {
                            Some(Output::Ready { reset: r }) => reset = r,
                            Some(_) => {}
                            None => break,
                        },
                    }
                }
                driver.booted(reset, scenario.start)
            } else {
                String::new()
            };
            if let Some(w) = io.writer.as_mut() {
                w.write_all(first.as_bytes())
                    .await
                    .map_err(|e| format!("{name}: its feed: {e}"))?;
                let _ = w.flush().await;
            }
            let (tx, rx) = mpsc::channel(8);
            let start = scenario.start;
            tasks.push(tokio::spawn(driver.run(io, rx, start)));
            drivers.push((name, tx, record));
        }
        Ok(FirmwareNodes {
            backend: backend.clone(),
            line,
            line_b,
            drivers,
            tasks,
            _ptys: ptys,
        })
    }

    /// The serial device the gateway reads the nodes on (bus A).
    pub fn gateway_port(&self) -> &Path {
        self.line.gateway_port()
    }

    /// The serial device a second gateway reads the nodes' port B on, when there is one.
    pub fn gateway_port_b(&self) -> Option<&Path> {
        self.line_b.as_ref().map(Line::gateway_port)
    }

    /// Reboots `node`; what was done.
    pub async fn reboot(&self, node: &str, reason: RebootReason) -> String {
        let Some((_, tx, _)) = self.drivers.iter().find(|(n, _, _)| n == node) else {
            return format!("{node}: not a firmware node");
        };
        let (done, outcome) = oneshot::channel();
        if tx.send(Request::Reboot(reason, done)).await.is_err() {
            return format!("{node}: its driver stopped");
        }
        outcome
            .await
            .unwrap_or_else(|_| format!("{node}: its driver stopped"))
    }

    /// Asks every node for its counters (2 s at most) and reports what they did.
    pub async fn report(&self) -> NodeReport {
        for (_, tx, _) in &self.drivers {
            let (done, answered) = oneshot::channel();
            if tx.send(Request::Status(done)).await.is_ok() {
                let _ = tokio::time::timeout(Duration::from_secs(2), answered).await;
            }
        }
        NodeReport {
            backend: self.backend.name().to_string(),
            nodes: self
                .drivers
                .iter()
                .map(|(_, _, r)| lock(r).clone())
                .collect(),
            line: self.line.figures(),
            line_b: self.line_b.as_ref().map(Line::figures),
        }
    }
}

impl Drop for FirmwareNodes {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_choices_parse() {
        assert_eq!("host".parse::<NodeChoice>(), Ok(NodeChoice::Host));
        assert_eq!("qemu".parse::<NodeChoice>(), Ok(NodeChoice::Qemu));
        assert_eq!("stand-in".parse::<NodeChoice>(), Ok(NodeChoice::StandIn));
        assert_eq!(
            "serial:/dev/ttyUSB0,feed=/dev/ttyUSB1,baud=9600,parity=none".parse::<NodeChoice>(),
            Ok(NodeChoice::Serial(SerialNode {
                rtu: "/dev/ttyUSB0".into(),
                feed: Some("/dev/ttyUSB1".into()),
                baud: 9600,
                parity: Parity::None
            }))
        );
        let plain = "serial:/dev/ttyUSB0".parse::<NodeChoice>().unwrap();
        assert_eq!(
            plain,
            NodeChoice::Serial(SerialNode {
                rtu: "/dev/ttyUSB0".into(),
                feed: None,
                baud: 19_200,
                parity: Parity::Even
            }),
            "a real line's default is 19200 8E1"
        );
        assert!("serial:".parse::<NodeChoice>().is_err());
        assert!("serial:/x,baud=7".parse::<NodeChoice>().is_err());
        assert!("serial:/x,speed=1".parse::<NodeChoice>().is_err());
        assert!("firmware".parse::<NodeChoice>().is_err());
    }
}
