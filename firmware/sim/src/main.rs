//! `firebreak-node-sim`: the sensor node's logic (the `firebreak-firmware` library, unchanged)
//! on a host. It serves Modbus RTU on a serial line — a PTY made by `socat`, or a real RS-485
//! adapter — and reads its sensors from stdin with the feed protocol the QEMU image reads on
//! its second UART (`docs/firmware.md`). Replies and `relay on|off` events go to stdout.
//!
//! ```text
//! socat pty,raw,echo=0,link=/tmp/gw pty,raw,echo=0,link=/tmp/node &
//! firebreak-node-sim --serial /tmp/node --unit 1
//! mbpoll -m rtu -b 19200 -P none -a 1 -t 3 -r 100 -c 9 -0 -1 /tmp/gw
//! ```

use std::cell::Cell;
use std::convert::Infallible;
use std::io::{BufRead, Read, Write};
use std::process::ExitCode;
use std::rc::Rc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use clap::Parser;
use firebreak_firmware::feed::{Command, Feed, StatusLine, error_reply, parse};
use firebreak_firmware::modbus::{FrameTiming, RtuServer};
use firebreak_firmware::node::VERSION;
use firebreak_firmware::{Node, ResetReason};

/// The sensor node on a host serial line, sensors fed on stdin.
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
}

/// The relay, as a host sees it.
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

enum Event {
    Line(String),
    Bytes(Instant, Vec<u8>),
    SerialFailed(String),
}

fn open(args: &Args) -> Result<serialport::TTYPort, String> {
    let parity = match args.parity.as_str() {
        "none" | "N" => serialport::Parity::None,
        "even" | "E" => serialport::Parity::Even,
        "odd" | "O" => serialport::Parity::Odd,
        p => return Err(format!("--parity {p:?}: none, even or odd")),
    };
    serialport::new(&args.serial, args.baud)
        .parity(parity)
        .timeout(Duration::from_millis(100))
        .open_native()
        .map_err(|e| format!("{}: {e}", args.serial))
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

fn run(args: &Args) -> Result<(), String> {
    let mut port = open(args)?;
    let mut reader = port.try_clone_native().map_err(|e| e.to_string())?;
    let timing = match args.gap_us {
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
    };

    let (tx, rx) = mpsc::channel();
    let lines = tx.clone();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines().map_while(Result::ok) {
            if lines.send(Event::Line(line)).is_err() {
                break;
            }
        }
    });
    std::thread::spawn(move || {
        let mut buf = [0u8; 256];
        loop {
            match reader.read(&mut buf) {
                Ok(0) => std::thread::sleep(Duration::from_millis(5)),
                Ok(n) => {
                    let bytes = buf.get(..n).unwrap_or_default().to_vec();
                    if tx.send(Event::Bytes(Instant::now(), bytes)).is_err() {
                        break;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let _ = tx.send(Event::SerialFailed(e.to_string()));
                    break;
                }
            }
        }
    });

    let start = Instant::now();
    let us = |t: Instant| t.saturating_duration_since(start).as_micros() as u64;
    let relay = SimRelay::default();
    let Ok(mut node) = Node::new(relay.clone(), ResetReason::PowerOn);
    let mut server = RtuServer::new(args.unit, timing);
    let mut feed = Feed::new();
    let mut out = std::io::stdout();
    let mut say = |line: &str| {
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    };
    say(&format!(
        "firebreak-node-sim {}.{}.{} unit={} gap_us={} ready",
        VERSION.0,
        VERSION.1,
        VERSION.2,
        args.unit,
        timing.gap_us()
    ));

    const CYCLE: Duration = Duration::from_millis(100);
    let mut next_cycle = start;
    let mut relay_was = false;
    loop {
        let now = Instant::now();
        if now >= next_cycle {
            next_cycle = now + CYCLE;
            let Ok(()) = node.update(us(now) / 1000, feed.inputs());
        }
        if let Some(answer) = server.poll(us(Instant::now()), &mut node) {
            port.write_all(answer).map_err(|e| e.to_string())?;
        }
        if relay.0.get() != relay_was {
            relay_was = relay.0.get();
            say(if relay_was { "relay on" } else { "relay off" });
        }

        let mut wake = next_cycle;
        if let Some(deadline) = server.deadline_us() {
            wake = wake.min(start + Duration::from_micros(deadline));
        }
        let wait = wake.saturating_duration_since(Instant::now());
        match rx.recv_timeout(wait) {
            Ok(Event::Bytes(at, bytes)) => {
                for b in bytes {
                    if let Some(answer) = server.receive(us(at), b, &mut node) {
                        port.write_all(answer).map_err(|e| e.to_string())?;
                    }
                }
            }
            Ok(Event::Line(line)) => {
                let reply = match parse(line.trim()) {
                    Err(e) => error_reply(e).to_string(),
                    Ok(Command::Reset) => {
                        let _ = node.local_reset();
                        "ok".to_string()
                    }
                    Ok(Command::Status) => StatusLine {
                        relay: relay.0.get(),
                        alarm_state: node.alarm_state(),
                        faults: node.faults(),
                        uptime_s: start.elapsed().as_secs() as u32,
                        link: server.counters(),
                    }
                    .to_string(),
                    Ok(command) => {
                        feed.apply(command);
                        "ok".to_string()
                    }
                };
                if !line.trim().is_empty() {
                    say(&reply);
                }
            }
            Ok(Event::SerialFailed(e)) => return Err(format!("{}: {e}", args.serial)),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => return Err("input threads ended".into()),
        }
    }
}
