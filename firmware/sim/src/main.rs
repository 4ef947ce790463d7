//! `firebreak-node-sim`: the sensor node's logic (the `firebreak-firmware` library, unchanged)
//! on a host. It serves Modbus RTU on a serial line — a PTY made by `socat`, or a real RS-485
//! adapter — and reads its sensors with the feed protocol the QEMU image reads on its first
//! UART (`docs/firmware.md`): from stdin, replies and events on stdout, or from a second serial
//! line (`--feed`). The feed, the cycles, the fed clock and the event lines are the library's
//! [`Runner`]; this binary is only the host's I/O.
//!
//! ```text
//! socat pty,raw,echo=0,link=/tmp/gw pty,raw,echo=0,link=/tmp/node &
//! firebreak-node-sim --serial /tmp/node --unit 1
//! mbpoll -m rtu -b 19200 -P none -a 1 -t 3 -r 100 -c 9 -0 -1 /tmp/gw
//! ```
//!
//! `hang` on the feed plays a hung main loop: no Modbus, no feed for [`HANG`] (the QEMU
//! board's watchdog: an interrupt after 2 s, a reset 2 s later), then the node starts afresh
//! — new state, own clock from 0, counters zeroed — reporting reset reason watchdog.

use std::cell::Cell;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::io::{Read, Write};
use std::process::ExitCode;
use std::rc::Rc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use firebreak_firmware::modbus::{FrameTiming, PortCounters, Registers, RtuServer};
use firebreak_firmware::node::VERSION;
use firebreak_firmware::{Action, Board, Port, ResetReason, RtuPorts, Runner};

/// How long a hung node is silent before its watchdog resets it: the CMSDK watchdog's
/// interrupt after 2 s unfed, then its reset 2 s later.
const HANG: Duration = Duration::from_secs(4);

/// The sensor node on a host serial line, sensors fed on stdin (or `--feed`).
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// The serial device or PTY to serve Modbus RTU on: port A, the first bus.
    #[arg(long)]
    serial: String,
    /// A second serial device or PTY, RTU port B: a second bus, for a second gateway, served
    /// independently of port A (same unit, speed and parity).
    #[arg(long, value_name = "PATH")]
    rtu_b: Option<String>,
    /// Line speed.
    #[arg(long, default_value_t = 19_200)]
    baud: u32,
    /// Parity: none, even or odd (Linux PTYs accept only none).
    #[arg(long, default_value = "none")]
    parity: String,
    /// The Modbus unit address (1..=247).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=247))]
    unit: u8,
    /// The silence that ends a frame, µs; default 3.5 characters at --baud, at least 20 ms on
    /// a PTY (it keeps no baud rate, and a loaded host pauses frames).
    #[arg(long)]
    gap_us: Option<u32>,
    /// Why the node says it started (input register 108). After `hang` it is watchdog.
    #[arg(long, value_enum, default_value_t = Reason::PowerOn)]
    reset_reason: Reason,
    /// The serial device or PTY that carries the feed (lines in, replies and events out),
    /// instead of stdin and stdout: the feed UART of a real node, on a second adapter.
    #[arg(long)]
    feed: Option<String>,
    /// The feed line's speed, with --feed (8N1).
    #[arg(long, default_value_t = 115_200)]
    feed_baud: u32,
}

/// `--reset-reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Reason {
    PowerOn,
    Watchdog,
    Software,
    External,
    BrownOut,
}

impl From<Reason> for ResetReason {
    fn from(r: Reason) -> ResetReason {
        match r {
            Reason::PowerOn => ResetReason::PowerOn,
            Reason::Watchdog => ResetReason::Watchdog,
            Reason::Software => ResetReason::Software,
            Reason::External => ResetReason::External,
            Reason::BrownOut => ResetReason::BrownOut,
        }
    }
}

/// The relay, as a host sees it: set and read back.
#[derive(Debug, Clone, Default)]
struct SimRelay(Rc<Cell<bool>>);

impl embedded_hal::digital::ErrorType for SimRelay {
    type Error = Infallible;
}

impl embedded_hal::digital::OutputPin for SimRelay {
    fn set_low(&mut self) -> Result<(), Infallible> {
        self.0.set(false);
        Ok(())
    }
    fn set_high(&mut self) -> Result<(), Infallible> {
        self.0.set(true);
        Ok(())
    }
}

impl embedded_hal::digital::StatefulOutputPin for SimRelay {
    fn is_set_high(&mut self) -> Result<bool, Infallible> {
        Ok(self.0.get())
    }
    fn is_set_low(&mut self) -> Result<bool, Infallible> {
        Ok(!self.0.get())
    }
}

/// Where the runner's lines go, with the Modbus counters as they are now.
struct Out<'a> {
    writer: &'a mut dyn Write,
    link: PortCounters,
}

impl Board for Out<'_> {
    fn say(&mut self, line: &str) {
        let _ = writeln!(self.writer, "{line}");
        let _ = self.writer.flush();
    }

    fn link_counters(&mut self) -> PortCounters {
        self.link
    }
}

/// How many chunks (of up to [`CHUNK`] bytes) a source may queue before its reader thread
/// waits: a bus that floods the node backs up in its own line, never in the other's.
const QUEUE: usize = 8;
/// The most bytes a reader thread reads at once.
const CHUNK: usize = 256;
/// How many queued chunks of one RTU line a pass of the main loop takes: every line gets its
/// turn every pass, a bounded one, whatever another line receives.
const CHUNKS_PER_TURN: usize = 2;
/// How often a failed RTU line is opened again.
const REOPEN: Duration = Duration::from_millis(250);

/// What an RTU line's reader thread queues.
enum Chunk {
    /// Bytes, with when they arrived.
    Bytes(Instant, Vec<u8>),
    /// The line failed (its PTY's other end went away, the adapter was unplugged): the
    /// thread opens it again every [`REOPEN`]; the other line is untouched.
    Failed(String),
    /// The line is open again: its new writing end.
    Reopened(Box<dyn Write + Send>),
}

/// What the feed's reader thread queues.
enum FeedChunk {
    Bytes(Vec<u8>),
    Failed(String),
}

/// One RTU port's line: where its answers go, and what its reader thread queued.
struct Line {
    port: Port,
    path: String,
    writer: Option<Box<dyn Write + Send>>,
    queue: mpsc::Receiver<Chunk>,
}

impl Line {
    /// Writes an answer. A line that cannot be written is left to its reader thread, which
    /// sees the same failure and opens it again; the node carries on with the other.
    fn write(&mut self, answer: &[u8]) {
        if let Some(w) = self.writer.as_mut()
            && let Err(e) = w.write_all(answer).and_then(|()| w.flush())
        {
            eprintln!(
                "firebreak-node-sim: port {} ({}): {e}",
                self.port.name(),
                self.path
            );
            self.writer = None;
        }
    }

    /// A failure or a reopening the reader thread reported.
    fn news(&mut self, chunk: Chunk) -> Option<(Instant, Vec<u8>)> {
        match chunk {
            Chunk::Bytes(at, bytes) => return Some((at, bytes)),
            Chunk::Failed(e) => {
                eprintln!(
                    "firebreak-node-sim: port {} ({}): {e}; opening it again every {} ms",
                    self.port.name(),
                    self.path,
                    REOPEN.as_millis()
                );
                self.writer = None;
            }
            Chunk::Reopened(w) => {
                eprintln!(
                    "firebreak-node-sim: port {} ({}) open again",
                    self.port.name(),
                    self.path
                );
                self.writer = Some(w);
            }
        }
        None
    }
}

/// One turn of every RTU line, A then B: at most [`CHUNKS_PER_TURN`] queued chunks each,
/// every byte to that port's server alone, answers back on that line; then, on a line whose
/// queue is empty, the end of an open frame. (A line with more queued is not polled: its
/// frame may go on in what is queued.) Whether a line still has chunks queued.
fn serve_lines<R: Registers>(
    lines: &mut [Line],
    ports: &mut RtuPorts,
    regs: &mut R,
    start: Instant,
) -> bool {
    let us = |t: Instant| t.saturating_duration_since(start).as_micros() as u64;
    let mut backlog = false;
    for line in lines.iter_mut() {
        let mut taken = 0;
        let mut drained = false;
        while taken < CHUNKS_PER_TURN {
            let chunk = match line.queue.try_recv() {
                Ok(chunk) => chunk,
                Err(_) => {
                    drained = true;
                    break;
                }
            };
            taken += 1;
            let Some((at, bytes)) = line.news(chunk) else {
                continue;
            };
            for b in bytes {
                if let Some(answer) = ports.receive(line.port, us(at), b, regs) {
                    line.write(answer);
                }
            }
        }
        if drained {
            if let Some(answer) = ports.poll(line.port, us(Instant::now()), regs) {
                line.write(answer);
            }
        } else {
            backlog = true;
        }
    }
    backlog
}

fn parity(p: &str) -> Result<serialport::Parity, String> {
    match p {
        "none" | "N" => Ok(serialport::Parity::None),
        "even" | "E" => Ok(serialport::Parity::Even),
        "odd" | "O" => Ok(serialport::Parity::Odd),
        p => Err(format!("--parity {p:?}: none, even or odd")),
    }
}

fn open(path: &str, baud: u32, parity: serialport::Parity) -> Result<serialport::TTYPort, String> {
    serialport::new(path, baud)
        .parity(parity)
        .timeout(Duration::from_millis(100))
        .open_native()
        .map_err(|e| format!("{path}: {e}"))
}

/// Reads `port` into `queue` until it fails (the error) or the queue is gone (`None`),
/// ringing `bell` after each chunk.
fn read_into(
    port: &mut serialport::TTYPort,
    queue: &mpsc::SyncSender<Chunk>,
    bell: &mpsc::SyncSender<()>,
) -> Option<String> {
    let mut buf = [0u8; CHUNK];
    loop {
        match port.read(&mut buf) {
            Ok(0) => std::thread::sleep(Duration::from_millis(5)),
            Ok(n) => {
                let bytes = buf.get(..n).unwrap_or_default().to_vec();
                // Blocks while the main loop has QUEUE chunks of this line to go: the line
                // backs up, the other does not.
                if queue.send(Chunk::Bytes(Instant::now(), bytes)).is_err() {
                    return None;
                }
                let _ = bell.try_send(());
            }
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Some(e.to_string()),
        }
    }
}

/// An RTU line's reader thread: reads, and when the line fails, says so and opens it again
/// every [`REOPEN`] until it can, handing the main loop its new writing end.
fn rtu_reader(
    path: String,
    baud: u32,
    parity: serialport::Parity,
    mut port: serialport::TTYPort,
    queue: mpsc::SyncSender<Chunk>,
    bell: mpsc::SyncSender<()>,
) {
    loop {
        let Some(e) = read_into(&mut port, &queue, &bell) else {
            return;
        };
        if queue.send(Chunk::Failed(e)).is_err() {
            return;
        }
        let _ = bell.try_send(());
        port = loop {
            std::thread::sleep(REOPEN);
            let Ok(p) = open(&path, baud, parity) else {
                continue;
            };
            let Ok(writer) = p.try_clone_native() else {
                continue;
            };
            if queue.send(Chunk::Reopened(Box::new(writer))).is_err() {
                return;
            }
            let _ = bell.try_send(());
            break p;
        };
    }
}

/// Reads the feed (stdin or a serial line) into `queue`, ringing `bell`.
fn feed_reader(
    mut from: Box<dyn Read + Send>,
    queue: mpsc::SyncSender<FeedChunk>,
    bell: mpsc::SyncSender<()>,
    stop_at_end: bool,
) {
    let mut buf = [0u8; CHUNK];
    loop {
        let chunk = match from.read(&mut buf) {
            // At the end of stdin the node carries on, serving Modbus.
            Ok(0) if stop_at_end => return,
            Ok(0) => {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            }
            Ok(n) => FeedChunk::Bytes(buf.get(..n).unwrap_or_default().to_vec()),
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => continue,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) if stop_at_end => {
                let _ = e;
                return;
            }
            Err(e) => FeedChunk::Failed(e.to_string()),
        };
        let failed = matches!(chunk, FeedChunk::Failed(_));
        if queue.send(chunk).is_err() || failed {
            let _ = bell.try_send(());
            return;
        }
        let _ = bell.try_send(());
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("firebreak-node-sim: {e}");
            ExitCode::FAILURE
        }
    }
}

fn frame_timing(args: &Args, path: &str) -> FrameTiming {
    match args.gap_us {
        Some(us) => FrameTiming::from_gap_us(us),
        None => {
            let spec = FrameTiming::for_baud(args.baud);
            let is_pty = std::fs::canonicalize(path)
                .map(|p| p.starts_with("/dev/pts"))
                .unwrap_or(false);
            if is_pty {
                FrameTiming::from_gap_us(spec.gap_us().max(20_000))
            } else {
                spec
            }
        }
    }
}

/// The node's inputs: the feed, each RTU line, and the bell any of them rings.
struct Io {
    feed: mpsc::Receiver<FeedChunk>,
    lines: Vec<Line>,
    bell: mpsc::Receiver<()>,
}

fn run(args: &Args) -> Result<(), String> {
    let parity = parity(&args.parity)?;
    let (bell_tx, bell) = mpsc::sync_channel(1);
    let mut lines = Vec::new();
    let mut timings = Vec::new();
    for (port, path) in [
        (Port::A, Some(&args.serial)),
        (Port::B, args.rtu_b.as_ref()),
    ] {
        let Some(path) = path else {
            timings.push(frame_timing(args, &args.serial));
            continue;
        };
        let reader = open(path, args.baud, parity)?;
        let writer = reader.try_clone_native().map_err(|e| e.to_string())?;
        let (tx, queue) = mpsc::sync_channel(QUEUE);
        let (path2, baud, bell) = (path.clone(), args.baud, bell_tx.clone());
        std::thread::spawn(move || rtu_reader(path2, baud, parity, reader, tx, bell));
        lines.push(Line {
            port,
            path: path.clone(),
            writer: Some(Box::new(writer)),
            queue,
        });
        timings.push(frame_timing(args, path));
    }
    let (timing_a, timing_b) = match timings.as_slice() {
        [a, b] => (*a, *b),
        _ => return Err("two ports".into()),
    };

    let (feed_tx, feed) = mpsc::sync_channel(QUEUE);
    let mut writer: Box<dyn Write> = match &args.feed {
        None => {
            let bell = bell_tx.clone();
            std::thread::spawn(move || {
                feed_reader(Box::new(std::io::stdin()), feed_tx, bell, true);
            });
            Box::new(std::io::stdout())
        }
        Some(path) => {
            let port = open(path, args.feed_baud, serialport::Parity::None)?;
            let reader = port.try_clone_native().map_err(|e| e.to_string())?;
            let bell = bell_tx.clone();
            std::thread::spawn(move || feed_reader(Box::new(reader), feed_tx, bell, false));
            Box::new(port)
        }
    };
    drop(bell_tx);
    let mut io = Io { feed, lines, bell };

    let mut reason = ResetReason::from(args.reset_reason);
    loop {
        boot(
            args.unit,
            (timing_a, timing_b),
            reason,
            &mut io,
            &mut writer,
        )?;
        quiet(&mut io, HANG)?;
        reason = ResetReason::Watchdog;
    }
}

/// The ready banner.
fn banner(unit: u8, timing: FrameTiming, reason: ResetReason) -> String {
    format!(
        "firebreak-node-sim {}.{}.{} unit={unit} gap_us={} reset={} ready",
        VERSION.0,
        VERSION.1,
        VERSION.2,
        timing.gap_us(),
        reason.code()
    )
}

/// A node as it starts: fresh state, own clock, counters zeroed.
fn fresh(
    unit: u8,
    (a, b): (FrameTiming, FrameTiming),
    reason: ResetReason,
) -> (Runner<SimRelay>, RtuPorts) {
    let mut runner = Runner::new(SimRelay::default());
    let Ok(()) = runner.start(reason);
    (
        runner,
        RtuPorts::new(RtuServer::new(unit, a), RtuServer::new(unit, b)),
    )
}

/// Runs one boot of the node until `hang`.
fn boot(
    unit: u8,
    timings: (FrameTiming, FrameTiming),
    reason: ResetReason,
    io: &mut Io,
    writer: &mut Box<dyn Write>,
) -> Result<(), String> {
    let start = Instant::now();
    let own_ms = || start.elapsed().as_millis() as u64;
    let (mut runner, mut ports) = fresh(unit, timings, reason);
    let mut feed: VecDeque<u8> = VecDeque::new();
    Out {
        writer: writer.as_mut(),
        link: ports.counters(),
    }
    .say(&banner(unit, timings.0, reason));

    loop {
        // The feed, bounded like the lines: a chunk a pass (more may be queued).
        let mut feed_backlog = false;
        if feed.len() < CHUNK {
            match io.feed.try_recv() {
                Ok(FeedChunk::Bytes(bytes)) => {
                    feed.extend(bytes);
                    feed_backlog = true;
                }
                Ok(FeedChunk::Failed(e)) => return Err(format!("feed: {e}")),
                Err(_) => {}
            }
        }
        // Feed lines in order, none while a `clock` step is still running its cycles.
        while !runner.busy()
            && let Some(b) = feed.pop_front()
        {
            let mut out = Out {
                writer: writer.as_mut(),
                link: ports.counters(),
            };
            if runner.push(b, own_ms(), &mut out) == Action::Hang {
                return Ok(());
            }
        }
        let backlog = serve_lines(&mut io.lines, &mut ports, runner.node_mut(), start);
        let mut out = Out {
            writer: writer.as_mut(),
            link: ports.counters(),
        };
        runner.poll(own_ms(), &mut out);

        let wait = if backlog || feed_backlog || runner.busy() || !feed.is_empty() {
            Duration::ZERO
        } else {
            let mut wake = runner
                .next_cycle_ms()
                .map(|ms| start + Duration::from_millis(ms));
            if let Some(deadline) = ports.deadline_us() {
                let end = start + Duration::from_micros(deadline);
                wake = Some(wake.map_or(end, |w| w.min(end)));
            }
            // Fed and idle: only a line or a Modbus byte wakes the node.
            wake.map_or(Duration::from_secs(1), |w| {
                w.saturating_duration_since(Instant::now())
            })
        };
        match io.bell.recv_timeout(wait) {
            Ok(()) | Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => return Err("input threads ended".into()),
        }
    }
}

/// A hung node: for `time`, whatever arrives on the Modbus lines or the feed is lost, as a
/// UART nobody reads loses it.
fn quiet(io: &mut Io, time: Duration) -> Result<(), String> {
    let until = Instant::now() + time;
    loop {
        while let Ok(chunk) = io.feed.try_recv() {
            if let FeedChunk::Failed(e) = chunk {
                return Err(format!("feed: {e}"));
            }
        }
        for line in io.lines.iter_mut() {
            while let Ok(chunk) = line.queue.try_recv() {
                let _ = line.news(chunk);
            }
        }
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(());
        }
        match io.bell.recv_timeout(left) {
            Ok(()) | Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => return Err("input threads ended".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code

    use super::*;
    use firebreak_protocols::builtin::sensor_node as map;
    use firebreak_protocols::rtu::{Request, Response, decode_response, encode_request};
    use std::sync::{Arc, Mutex};

    const PTY: FrameTiming = FrameTiming::from_gap_us(20_000);

    struct Said(Vec<u8>);

    fn lines(said: &Said) -> Vec<String> {
        String::from_utf8_lossy(&said.0)
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn say(runner: &mut Runner<SimRelay>, own_ms: u64, line: &str) -> (Action, Vec<String>) {
        let mut said = Said(Vec::new());
        let mut out = Out {
            writer: &mut said.0,
            link: PortCounters::default(),
        };
        let action = runner.push_line(line, own_ms, &mut out);
        while runner.busy() {
            runner.poll(own_ms, &mut out);
        }
        (action, lines(&said))
    }

    #[test]
    fn every_reset_reason_reaches_register_108() {
        for (flag, code) in [
            ("power-on", 0),
            ("watchdog", 1),
            ("software", 2),
            ("external", 3),
            ("brown-out", 4),
        ] {
            let args =
                Args::try_parse_from(["sim", "--serial", "x", "--reset-reason", flag]).unwrap();
            let timing = PTY;
            let (mut runner, _) = fresh(1, (timing, timing), args.reset_reason.into());
            let mut r = [0];
            runner
                .node_mut()
                .read_input(map::RESET_REASON, &mut r)
                .unwrap();
            assert_eq!(r, [code], "{flag}");
            assert!(
                banner(1, timing, args.reset_reason.into())
                    .ends_with(&format!(" reset={code} ready"))
            );
        }
        let default = Args::try_parse_from(["sim", "--serial", "x"]).unwrap();
        assert_eq!(default.reset_reason, Reason::PowerOn);
        assert_eq!(default.feed, None);
        assert_eq!(default.rtu_b, None, "one bus unless told");
        let dual = Args::try_parse_from(["sim", "--serial", "a", "--rtu-b", "b"]).unwrap();
        assert_eq!(
            (dual.serial.as_str(), dual.rtu_b.as_deref()),
            ("a", Some("b"))
        );
        assert!(
            Args::try_parse_from(["sim", "--serial", "x", "--reset-reason", "cosmic"]).is_err()
        );
    }

    #[test]
    fn after_a_hang_the_node_starts_afresh_on_its_own_clock() {
        let (mut runner, _) = fresh(1, (PTY, PTY), ResetReason::PowerOn);
        assert_eq!(say(&mut runner, 0, "clock 5000").1, ["ok"]);
        assert_eq!(say(&mut runner, 1, "smoke 1").1, ["ok"]);
        let (_, said) = say(&mut runner, 2, "clock 9000");
        assert_eq!(said.last().map(String::as_str), Some("ok"));
        assert!(runner.node().alarm_latched());
        assert_eq!(
            say(&mut runner, 3, "hang"),
            (Action::Hang, vec!["ok".into()])
        );

        // What `run` does after `quiet`: a fresh node that says why it reset.
        let (mut runner, ports) = fresh(1, (PTY, PTY), ResetReason::Watchdog);
        assert!(!runner.is_fed());
        assert!(!runner.node().alarm_latched(), "the latch is RAM: gone");
        assert!(!runner.inputs().smoke, "so are the fed values");
        assert_eq!(ports.counters(), PortCounters::default());
        let (_, said) = say(&mut runner, 1_500, "status");
        assert_eq!(
            said,
            [
                "status relay=0 alarm=0x0000 faults=0x0000 uptime=1 crc=0 framing=0 answered=0 \
              crc_b=0 framing_b=0 answered_b=0 at=1500 reset=1"
            ]
        );
        let mut r = [0];
        runner
            .node_mut()
            .read_input(map::RESET_REASON, &mut r)
            .unwrap();
        assert_eq!(r, [1]);
    }

    /// A line's writing end that the test reads back.
    #[derive(Clone, Default)]
    struct Wire(Arc<Mutex<Vec<u8>>>);

    impl Write for Wire {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Wire {
        fn take(&self) -> Vec<u8> {
            std::mem::take(&mut self.0.lock().unwrap())
        }
    }

    /// A line whose reader thread is the test: its queue, and what the node wrote on it.
    fn line(port: Port) -> (Line, mpsc::SyncSender<Chunk>, Wire) {
        let (tx, queue) = mpsc::sync_channel(QUEUE);
        let wire = Wire::default();
        let line = Line {
            port,
            path: format!("test-{}", port.name()),
            writer: Some(Box::new(wire.clone())),
            queue,
        };
        (line, tx, wire)
    }

    fn hung(io_feed: Vec<FeedChunk>, chunks: Vec<Chunk>) -> (Io, mpsc::SyncSender<()>) {
        let (feed_tx, feed) = mpsc::sync_channel(QUEUE);
        for c in io_feed {
            feed_tx.send(c).unwrap();
        }
        drop(feed_tx);
        let (mut a, tx, _) = line(Port::A);
        for c in chunks {
            tx.send(c).unwrap();
        }
        a.writer = None;
        let (bell_tx, bell) = mpsc::sync_channel(1);
        (
            Io {
                feed,
                lines: vec![a],
                bell,
            },
            bell_tx,
        )
    }

    #[test]
    fn a_hung_node_loses_what_arrives_and_wakes_after_its_time() {
        let (mut io, _bell) = hung(
            vec![FeedChunk::Bytes(b"status\n".to_vec())],
            vec![
                Chunk::Bytes(Instant::now(), vec![1, 4, 0, 0]),
                Chunk::Reopened(Box::new(Wire::default())),
            ],
        );
        let started = Instant::now();
        quiet(&mut io, Duration::from_millis(200)).unwrap();
        assert!(started.elapsed() >= Duration::from_millis(200));
        assert!(
            io.feed.try_recv().is_err(),
            "everything that came was dropped"
        );
        assert!(io.lines[0].queue.try_recv().is_err());
        assert!(
            io.lines[0].writer.is_some(),
            "a line reopened meanwhile is kept"
        );
        let (mut io, _bell) = hung(vec![FeedChunk::Failed("gone".into())], vec![]);
        assert!(quiet(&mut io, Duration::from_secs(5)).is_err());
    }

    fn request(start: u16, count: u16) -> Vec<u8> {
        encode_request(1, &Request::ReadInputRegisters { start, count })
            .unwrap()
            .to_vec()
    }

    #[test]
    fn a_flooded_line_gets_a_bounded_turn_and_the_other_is_answered_in_the_same_pass() {
        let (a, a_tx, a_wire) = line(Port::A);
        let (b, b_tx, b_wire) = line(Port::B);
        let mut lines = [a, b];
        let (mut runner, mut ports) = fresh(1, (PTY, PTY), ResetReason::PowerOn);
        let start = Instant::now();
        // B: its queue full of noise (its reader thread would now wait); A: one request,
        // 30 ms old, so its silence has passed.
        for _ in 0..QUEUE {
            b_tx.send(Chunk::Bytes(start, vec![0x55; CHUNK])).unwrap();
        }
        let at = Instant::now() - Duration::from_millis(30);
        let start = at - Duration::from_millis(1);
        a_tx.send(Chunk::Bytes(at, request(100, 21))).unwrap();
        let backlog = serve_lines(&mut lines, &mut ports, runner.node_mut(), start);
        assert!(backlog, "B has more queued");
        let answer = a_wire.take();
        let (unit, response) = decode_response(&answer).unwrap();
        assert_eq!(unit, 1);
        let Response::Registers(_, words) = response else {
            panic!("{response:?}");
        };
        assert_eq!(words.len(), 21);
        // B took its turn, no more: two chunks of its eight.
        assert_eq!(ports.counters().b.bytes, (CHUNKS_PER_TURN * CHUNK) as u32);
        assert_eq!(lines[1].queue.try_iter().count(), QUEUE - CHUNKS_PER_TURN);
        assert!(b_wire.take().is_empty());
        assert_eq!(ports.counters().a.answered, 1);
        assert_eq!(
            ports.counters().a.crc_errors + ports.counters().a.framing_errors,
            0
        );
    }

    #[test]
    fn a_failed_line_is_reported_and_reopened_without_touching_the_other() {
        let (a, a_tx, a_wire) = line(Port::A);
        let (b, b_tx, b_wire) = line(Port::B);
        let mut lines = [a, b];
        let (mut runner, mut ports) = fresh(1, (PTY, PTY), ResetReason::PowerOn);
        let start = Instant::now() - Duration::from_secs(1);
        b_tx.send(Chunk::Failed("Input/output error".into()))
            .unwrap();
        let at = Instant::now() - Duration::from_millis(30);
        a_tx.send(Chunk::Bytes(at, request(0, 1))).unwrap();
        assert!(!serve_lines(
            &mut lines,
            &mut ports,
            runner.node_mut(),
            start
        ));
        assert!(lines[1].writer.is_none(), "B is down");
        assert!(!a_wire.take().is_empty(), "A answered");
        // B back: a request on it is answered on its new writing end.
        let fresh_wire = Wire::default();
        b_tx.send(Chunk::Reopened(Box::new(fresh_wire.clone())))
            .unwrap();
        b_tx.send(Chunk::Bytes(at, request(0, 1))).unwrap();
        // Two chunks: one turn; the end of the frame on the next pass.
        assert!(serve_lines(
            &mut lines,
            &mut ports,
            runner.node_mut(),
            start
        ));
        assert!(!serve_lines(
            &mut lines,
            &mut ports,
            runner.node_mut(),
            start
        ));
        assert!(!fresh_wire.take().is_empty());
        assert!(b_wire.take().is_empty(), "nothing on the old end");
        assert_eq!(
            (ports.counters().a.answered, ports.counters().b.answered),
            (1, 1)
        );
    }
}
