//! The RS-485 line between the gateway and the firmware nodes: one master, several nodes
//! multi-dropped on it, told apart by their unit ids.
//!
//! The gateway opens a PTY that `socat` makes (`DIR/rtu`, the other end `DIR/rtu.line`),
//! exactly as it would open a USB RS-485 adapter; the line holds the other end and the nodes'
//! ports (their own socat PTYs, QEMU's UART socket, or a real serial adapter). What the
//! master sends reaches every node; what a node sends reaches the master. (On a real line
//! the nodes also hear each other's answers and ignore them as frames for another unit; the
//! emulated one does not pass them on, so a node's CRC counter counts only what the line did
//! to it.)
//!
//! On the way the line does what a real one does to bytes:
//! - **noise** (`[line] noise`): each byte has that chance of one bit flipped, independently
//!   in each direction and for each node, from a seed, so a run can be repeated;
//! - a node's **device faults** from the scenario: `silent`/`drop` and network cuts (its
//!   cable is cut: it neither hears nor is heard), `slow` (its answers come late), `garbage`
//!   and `all-ones` (its transmitter garbles every byte: random bytes, or 0xFF).
//!
//! It counts the bytes each way and the bytes it corrupted ([`LineStats`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::process::{Child, Command};
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinHandle;

use crate::clock::ScenarioClock;
use crate::scenario::{Fault, LineNoise, Window};
use crate::sim::SimDevice;

use super::feed::device_fault;

/// A byte stream a node is reached through.
pub trait Port: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Port for T {}

/// Serial parity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parity {
    /// 8N1.
    None,
    /// 8E1.
    Even,
    /// 8O1.
    Odd,
}

impl Parity {
    /// `none`, `even`, `odd` (or N, E, O).
    pub fn parse(text: &str) -> Option<Parity> {
        match text {
            "none" | "N" | "n" => Some(Parity::None),
            "even" | "E" | "e" => Some(Parity::Even),
            "odd" | "O" | "o" => Some(Parity::Odd),
            _ => None,
        }
    }

    /// The name the gateway's configuration takes.
    pub const fn name(self) -> &'static str {
        match self {
            Parity::None => "none",
            Parity::Even => "even",
            Parity::Odd => "odd",
        }
    }
}

/// Where a node's end of the line is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortSpec {
    /// A PTY (a socat pair's end).
    Pty(PathBuf),
    /// A Unix socket (QEMU's `-chardev socket,server=on`).
    Unix(PathBuf),
    /// A serial adapter.
    Serial {
        /// The device.
        path: PathBuf,
        /// Line speed.
        baud: u32,
        /// Parity.
        parity: Parity,
    },
}

/// Opens a serial device (a PTY or an adapter) without blocking the runtime.
pub fn open_serial(
    path: &Path,
    baud: u32,
    parity: Parity,
) -> std::io::Result<tokio_serial::SerialStream> {
    use tokio_serial::SerialPortBuilderExt;
    tokio_serial::new(path.to_string_lossy(), baud)
        .parity(match parity {
            Parity::None => tokio_serial::Parity::None,
            Parity::Even => tokio_serial::Parity::Even,
            Parity::Odd => tokio_serial::Parity::Odd,
        })
        .open_native_async()
        .map_err(std::io::Error::other)
}

async fn open(spec: &PortSpec) -> std::io::Result<Box<dyn Port>> {
    Ok(match spec {
        PortSpec::Pty(path) => Box::new(open_serial(path, 19_200, Parity::None)?),
        PortSpec::Serial { path, baud, parity } => Box::new(open_serial(path, *baud, *parity)?),
        PortSpec::Unix(path) => Box::new(tokio::net::UnixStream::connect(path).await?),
    })
}

/// A socat PTY pair: `a` and `b` are links to its two ends. Stays up when either side closes
/// (`ignoreeof`), so a gateway or node process can be restarted on it.
#[derive(Debug)]
pub struct PtyPair {
    /// One end.
    pub a: PathBuf,
    /// The other.
    pub b: PathBuf,
    _child: Child,
}

impl PtyPair {
    /// Starts `socat` and waits (up to 5 s) until both links exist.
    pub async fn start(a: PathBuf, b: PathBuf, log: &Path) -> Result<PtyPair, String> {
        let err = std::fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
        let end = |p: &Path| format!("pty,raw,echo=0,link={},ignoreeof", p.display());
        let mut child = Command::new("socat")
            .args([end(&a), end(&b)])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(err)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                format!("cannot run socat (apt-get install socat) for the RS-485 line: {e}")
            })?;
        for _ in 0..100 {
            if a.exists() && b.exists() {
                return Ok(PtyPair {
                    a,
                    b,
                    _child: child,
                });
            }
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!(
                    "socat exited ({status}) before making {}: see {}",
                    a.display(),
                    log.display()
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = child.kill().await;
        Err(format!("socat did not make {} within 5 s", a.display()))
    }
}

/// What the line carried and did.
#[derive(Debug, Default)]
pub struct LineStats {
    to_nodes: AtomicU64,
    to_gateway: AtomicU64,
    corrupted: AtomicU64,
    withheld: AtomicU64,
}

/// [`LineStats`], read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct LineFigures {
    /// Bytes from the gateway delivered to nodes (counted once per node).
    pub bytes_to_nodes: u64,
    /// Bytes from nodes delivered to the gateway.
    pub bytes_to_gateway: u64,
    /// Bytes the line corrupted (noise, a garbling node).
    pub bytes_corrupted: u64,
    /// Bytes not passed on (a cut cable, a silent node).
    pub bytes_withheld: u64,
}

impl LineStats {
    /// The counts so far.
    pub fn figures(&self) -> LineFigures {
        LineFigures {
            bytes_to_nodes: self.to_nodes.load(Ordering::Relaxed),
            bytes_to_gateway: self.to_gateway.load(Ordering::Relaxed),
            bytes_corrupted: self.corrupted.load(Ordering::Relaxed),
            bytes_withheld: self.withheld.load(Ordering::Relaxed),
        }
    }
}

/// One node on the line.
#[derive(Debug, Clone)]
pub struct LineNode {
    /// The scenario's device (its faults act on the line).
    pub device: Arc<SimDevice>,
    /// Its port.
    pub port: PortSpec,
}

/// The line, running; stops when dropped.
#[derive(Debug)]
pub struct Line {
    gateway: PathBuf,
    stats: Arc<LineStats>,
    tasks: Vec<JoinHandle<()>>,
    _pty: PtyPair,
}

/// Corrupts bytes: noise (a bit flipped at a rate) and a garbling transmitter.
struct Mangler {
    rng: fastrand::Rng,
    noise: Option<LineNoise>,
    clock: ScenarioClock,
    stats: Arc<LineStats>,
}

impl Mangler {
    fn apply(&mut self, bytes: &mut [u8], garble: Option<Fault>) {
        let now = self.clock.now();
        let rate = self
            .noise
            .filter(|n| n.window.contains(now))
            .map_or(0.0, |n| n.rate);
        let mut corrupted = 0;
        for b in bytes.iter_mut() {
            match garble {
                Some(Fault::AllOnes) => {
                    *b = 0xFF;
                    corrupted += 1;
                }
                Some(Fault::Garbage) => {
                    *b = self.rng.u8(..);
                    corrupted += 1;
                }
                _ if rate > 0.0 && self.rng.f64() < rate => {
                    *b ^= 1 << self.rng.u8(0..8);
                    corrupted += 1;
                }
                _ => {}
            }
        }
        self.stats.corrupted.fetch_add(corrupted, Ordering::Relaxed);
    }
}

/// Whether a device fault cuts a node's cable: it neither hears nor is heard.
fn cuts(fault: Option<Fault>) -> bool {
    matches!(
        fault,
        Some(Fault::Silent | Fault::Drop | Fault::Exception(_))
    )
}

impl Line {
    /// Makes the gateway's PTY (`dir/NAME`: `rtu` for bus A, `rtu-b` for bus B) and
    /// connects the nodes; during `cuts` the whole line is cut (a gateway's bus cut: no node
    /// hears or is heard on it).
    pub async fn start(
        dir: &Path,
        name: &str,
        nodes: Vec<LineNode>,
        clock: ScenarioClock,
        noise: Option<LineNoise>,
        seed: u64,
        bus_cuts: Vec<Window>,
    ) -> Result<Line, String> {
        let pty = PtyPair::start(
            dir.join(name),
            dir.join(format!("{name}.line")),
            &dir.join(format!("socat-{name}.log")),
        )
        .await?;
        let bus_cuts = Arc::new(bus_cuts);
        let master = open_serial(&pty.b, 19_200, Parity::None)
            .map_err(|e| format!("{}: {e}", pty.b.display()))?;
        let (mut master_rx, mut master_tx) = tokio::io::split(master);
        let stats = Arc::new(LineStats::default());
        let (down, _) = broadcast::channel::<Vec<u8>>(256);
        let (up, mut up_rx) = mpsc::channel::<Vec<u8>>(256);
        let mut tasks = Vec::new();

        // The master's transmissions, to every node.
        let to_nodes = down.clone();
        tasks.push(tokio::spawn(async move {
            let mut buf = [0u8; 512];
            loop {
                match master_rx.read(&mut buf).await {
                    Ok(0) => tokio::time::sleep(Duration::from_millis(5)).await,
                    Ok(n) => {
                        let _ = to_nodes.send(buf.get(..n).unwrap_or_default().to_vec());
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                }
            }
        }));
        // The nodes' transmissions, to the master.
        let up_stats = stats.clone();
        tasks.push(tokio::spawn(async move {
            while let Some(bytes) = up_rx.recv().await {
                if master_tx.write_all(&bytes).await.is_ok() {
                    up_stats
                        .to_gateway
                        .fetch_add(bytes.len() as u64, Ordering::Relaxed);
                }
            }
        }));
        for (i, node) in nodes.into_iter().enumerate() {
            let mut heard = down.subscribe();
            let up = up.clone();
            let stats = stats.clone();
            let clock = clock.clone();
            let bus_cuts = bus_cuts.clone();
            let cut = move |clock: &ScenarioClock, fault: Option<Fault>| {
                let now = clock.now();
                cuts(fault) || bus_cuts.iter().any(|w| w.contains(now))
            };
            let mangle = |k: u64| Mangler {
                rng: fastrand::Rng::with_seed(seed ^ (i as u64) << 8 ^ k),
                noise,
                clock: clock.clone(),
                stats: stats.clone(),
            };
            let (mut down_mangler, mut up_mangler) = (mangle(1), mangle(2));
            tasks.push(tokio::spawn(async move {
                let mut buf = [0u8; 512];
                loop {
                    let Ok(port) = open(&node.port).await else {
                        // Not there yet (QEMU starting) or gone (a node power-cycled).
                        while let Ok(bytes) = heard.try_recv() {
                            stats
                                .withheld
                                .fetch_add(bytes.len() as u64, Ordering::Relaxed);
                        }
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    };
                    let (mut rx, mut tx) = tokio::io::split(port);
                    loop {
                        tokio::select! {
                            got = heard.recv() => {
                                let mut bytes = match got {
                                    Ok(b) => b,
                                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                                    Err(broadcast::error::RecvError::Closed) => return,
                                };
                                if cut(&clock, device_fault(&node.device, clock.now())) {
                                    stats.withheld.fetch_add(bytes.len() as u64, Ordering::Relaxed);
                                    continue;
                                }
                                down_mangler.apply(&mut bytes, None);
                                if tx.write_all(&bytes).await.is_err() {
                                    break;
                                }
                                stats.to_nodes.fetch_add(bytes.len() as u64, Ordering::Relaxed);
                            }
                            read = rx.read(&mut buf) => {
                                let n = match read {
                                    Ok(0) | Err(_) => break,
                                    Ok(n) => n,
                                };
                                let mut bytes = buf.get(..n).unwrap_or_default().to_vec();
                                let fault = device_fault(&node.device, clock.now());
                                if cut(&clock, fault) {
                                    stats.withheld.fetch_add(n as u64, Ordering::Relaxed);
                                    continue;
                                }
                                up_mangler.apply(&mut bytes, fault);
                                match fault {
                                    Some(Fault::Slow(d)) => {
                                        let up = up.clone();
                                        tokio::spawn(async move {
                                            tokio::time::sleep(d).await;
                                            let _ = up.send(bytes).await;
                                        });
                                    }
                                    _ => {
                                        let _ = up.send(bytes).await;
                                    }
                                }
                            }
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }));
        }
        Ok(Line {
            gateway: pty.a.clone(),
            stats,
            tasks,
            _pty: pty,
        })
    }

    /// The serial device the gateway opens.
    pub fn gateway_port(&self) -> &Path {
        &self.gateway
    }

    /// What the line carried and did so far.
    pub fn figures(&self) -> LineFigures {
        self.stats.figures()
    }
}

impl Drop for Line {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}
