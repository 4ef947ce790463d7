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
use firebreak_firmware::modbus::{FrameTiming, LinkCounters, RtuServer};
use firebreak_firmware::node::VERSION;
use firebreak_firmware::{Action, Board, ResetReason, Runner};

/// How long a hung node is silent before its watchdog resets it: the CMSDK watchdog's
/// interrupt after 2 s unfed, then its reset 2 s later.
const HANG: Duration = Duration::from_secs(4);

/// The sensor node on a host serial line, sensors fed on stdin (or `--feed`).
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// The serial device or PTY to serve Modbus RTU on.
    #[arg(long)]
    serial: String,
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
    link: LinkCounters,
}

impl Board for Out<'_> {
    fn say(&mut self, line: &str) {
        let _ = writeln!(self.writer, "{line}");
        let _ = self.writer.flush();
    }

    fn link_counters(&mut self) -> LinkCounters {
        self.link
    }
}

enum Event {
    /// Bytes of the feed.
    Feed(Vec<u8>),
    /// Bytes of the Modbus line, with when they arrived.
    Bytes(Instant, Vec<u8>),
    SerialFailed(String),
    FeedFailed(String),
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

/// Reads `port` into events until it fails or the receiver is gone.
fn read_port(
    mut port: serialport::TTYPort,
    tx: mpsc::Sender<Event>,
    event: fn(Instant, Vec<u8>) -> Event,
    failed: fn(String) -> Event,
) {
    let mut buf = [0u8; 256];
    loop {
        match port.read(&mut buf) {
            Ok(0) => std::thread::sleep(Duration::from_millis(5)),
            Ok(n) => {
                let bytes = buf.get(..n).unwrap_or_default().to_vec();
                if tx.send(event(Instant::now(), bytes)).is_err() {
                    break;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                let _ = tx.send(failed(e.to_string()));
                break;
            }
        }
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

fn frame_timing(args: &Args) -> FrameTiming {
    match args.gap_us {
        Some(us) => FrameTiming::from_gap_us(us),
        None => {
            let spec = FrameTiming::for_baud(args.baud);
            let is_pty = std::fs::canonicalize(&args.serial)
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

fn run(args: &Args) -> Result<(), String> {
    let mut port = open(&args.serial, args.baud, parity(&args.parity)?)?;
    let reader = port.try_clone_native().map_err(|e| e.to_string())?;
    let timing = frame_timing(args);

    let (tx, rx) = mpsc::channel();
    let mut writer: Box<dyn Write> = match &args.feed {
        None => {
            let lines = tx.clone();
            std::thread::spawn(move || {
                let mut stdin = std::io::stdin().lock();
                let mut buf = [0u8; 256];
                // At the end of stdin the node carries on, serving Modbus.
                while let Ok(n @ 1..) = stdin.read(&mut buf) {
                    let bytes = buf.get(..n).unwrap_or_default().to_vec();
                    if lines.send(Event::Feed(bytes)).is_err() {
                        break;
                    }
                }
            });
            Box::new(std::io::stdout())
        }
        Some(path) => {
            let feed = open(path, args.feed_baud, serialport::Parity::None)?;
            let feed_reader = feed.try_clone_native().map_err(|e| e.to_string())?;
            let lines = tx.clone();
            std::thread::spawn(move || {
                read_port(feed_reader, lines, |_, b| Event::Feed(b), Event::FeedFailed);
            });
            Box::new(feed)
        }
    };
    std::thread::spawn(move || read_port(reader, tx, Event::Bytes, Event::SerialFailed));

    let mut reason = ResetReason::from(args.reset_reason);
    loop {
        boot(args, timing, reason, &mut port, &rx, &mut writer)?;
        quiet(&rx, HANG)?;
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
fn fresh(unit: u8, timing: FrameTiming, reason: ResetReason) -> (Runner<SimRelay>, RtuServer) {
    let mut runner = Runner::new(SimRelay::default());
    let Ok(()) = runner.start(reason);
    (runner, RtuServer::new(unit, timing))
}

/// Runs one boot of the node until `hang`.
fn boot(
    args: &Args,
    timing: FrameTiming,
    reason: ResetReason,
    port: &mut serialport::TTYPort,
    rx: &mpsc::Receiver<Event>,
    writer: &mut Box<dyn Write>,
) -> Result<(), String> {
    let start = Instant::now();
    let us = |t: Instant| t.saturating_duration_since(start).as_micros() as u64;
    let own_ms = || start.elapsed().as_millis() as u64;
    let (mut runner, mut server) = fresh(args.unit, timing, reason);
    let mut feed: VecDeque<u8> = VecDeque::new();
    Out {
        writer: writer.as_mut(),
        link: server.counters(),
    }
    .say(&banner(args.unit, timing, reason));

    loop {
        // Feed lines in order, none while a `clock` step is still running its cycles.
        while !runner.busy()
            && let Some(b) = feed.pop_front()
        {
            let mut out = Out {
                writer: writer.as_mut(),
                link: server.counters(),
            };
            if runner.push(b, own_ms(), &mut out) == Action::Hang {
                return Ok(());
            }
        }
        if let Some(answer) = server.poll(us(Instant::now()), runner.node_mut()) {
            port.write_all(answer).map_err(|e| e.to_string())?;
        }
        let mut out = Out {
            writer: writer.as_mut(),
            link: server.counters(),
        };
        runner.poll(own_ms(), &mut out);

        let wait = if runner.busy() || !feed.is_empty() {
            Duration::ZERO
        } else {
            let mut wake = runner
                .next_cycle_ms()
                .map(|ms| start + Duration::from_millis(ms));
            if let Some(deadline) = server.deadline_us() {
                let end = start + Duration::from_micros(deadline);
                wake = Some(wake.map_or(end, |w| w.min(end)));
            }
            // Fed and idle: only a line or a Modbus byte wakes the node.
            wake.map_or(Duration::from_secs(1), |w| {
                w.saturating_duration_since(Instant::now())
            })
        };
        match rx.recv_timeout(wait) {
            Ok(Event::Bytes(at, bytes)) => {
                for b in bytes {
                    if let Some(answer) = server.receive(us(at), b, runner.node_mut()) {
                        port.write_all(answer).map_err(|e| e.to_string())?;
                    }
                }
            }
            Ok(Event::Feed(bytes)) => feed.extend(bytes),
            Ok(Event::SerialFailed(e)) => return Err(format!("{}: {e}", args.serial)),
            Ok(Event::FeedFailed(e)) => return Err(format!("feed: {e}")),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => return Err("input threads ended".into()),
        }
    }
}

/// A hung node: for `time`, whatever arrives on the Modbus line or the feed is lost, as a
/// UART nobody reads loses it.
fn quiet(rx: &mpsc::Receiver<Event>, time: Duration) -> Result<(), String> {
    let until = Instant::now() + time;
    loop {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(());
        }
        match rx.recv_timeout(left) {
            Ok(Event::Bytes(..) | Event::Feed(_)) | Err(mpsc::RecvTimeoutError::Timeout) => {}
            Ok(Event::SerialFailed(e)) => return Err(format!("serial: {e}")),
            Ok(Event::FeedFailed(e)) => return Err(format!("feed: {e}")),
            Err(mpsc::RecvTimeoutError::Disconnected) => return Err("input threads ended".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code

    use super::*;
    use firebreak_firmware::modbus::Registers;
    use firebreak_protocols::builtin::sensor_node as map;

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
            link: LinkCounters::default(),
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
            let timing = FrameTiming::from_gap_us(20_000);
            let (mut runner, _) = fresh(1, timing, args.reset_reason.into());
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
        assert!(
            Args::try_parse_from(["sim", "--serial", "x", "--reset-reason", "cosmic"]).is_err()
        );
    }

    #[test]
    fn after_a_hang_the_node_starts_afresh_on_its_own_clock() {
        let timing = FrameTiming::from_gap_us(20_000);
        let (mut runner, _) = fresh(1, timing, ResetReason::PowerOn);
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
        let (mut runner, server) = fresh(1, timing, ResetReason::Watchdog);
        assert!(!runner.is_fed());
        assert!(!runner.node().alarm_latched(), "the latch is RAM: gone");
        assert!(!runner.inputs().smoke, "so are the fed values");
        assert_eq!(server.counters(), LinkCounters::default());
        let (_, said) = say(&mut runner, 1_500, "status");
        assert_eq!(
            said,
            [
                "status relay=0 alarm=0x0000 faults=0x0000 uptime=1 crc=0 framing=0 answered=0 \
              at=1500 reset=1"
            ]
        );
        let mut r = [0];
        runner
            .node_mut()
            .read_input(map::RESET_REASON, &mut r)
            .unwrap();
        assert_eq!(r, [1]);
    }

    #[test]
    fn a_hung_node_loses_what_arrives_and_wakes_after_its_time() {
        let (tx, rx) = mpsc::channel();
        tx.send(Event::Feed(b"status\n".to_vec())).unwrap();
        tx.send(Event::Bytes(Instant::now(), vec![1, 4, 0, 0]))
            .unwrap();
        let started = Instant::now();
        quiet(&rx, Duration::from_millis(200)).unwrap();
        assert!(started.elapsed() >= Duration::from_millis(200));
        assert!(rx.try_recv().is_err(), "everything that came was dropped");
        tx.send(Event::FeedFailed("gone".into())).unwrap();
        assert!(quiet(&rx, Duration::from_secs(5)).is_err());
    }
}
