//! The sensor node's firmware image, booted in QEMU (`mps2-an386`), read over Modbus RTU by
//! masters nobody here wrote (`mbpoll`) and by the gateway's `firebreak probe`, through a socat
//! PTY, while a rising rack temperature is fed on its sensor UART; driven by the fed clock and
//! compared with the host simulator; hung on purpose so its real watchdog resets it; dual-homed:
//! RTU port B on UART2 answers beside port A, and noise on B leaves A's polls and counters
//! clean.
//!
//! The image is built by `scripts/test.sh` (`cargo build -p firebreak-firmware --profile firmware
//! --target thumbv7em-none-eabihf --bin firebreak-node-qemu`); FIREBREAK_NODE_QEMU overrides
//! its path. The simulator is `target/debug/firebreak-node-sim` (built by `cargo test
//! --workspace` or `-p firebreak-node-sim`); FIREBREAK_NODE_SIM overrides it. Under
//! FIREBREAK_REQUIRE_PEERS=1 a missing QEMU, socat, mbpoll, image, simulator or gateway binary
//! fails the test.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test code

#[path = "../../gateway/tests/common/mod.rs"]
mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use common::*;
use firebreak_firmware::detect::{RATE_HOLD_MS, RATE_MIN_SPAN_MS};
use firebreak_firmware::runner::CYCLE_MS;
use firebreak_protocols::builtin::sensor_node as map;
use firebreak_protocols::{
    DeviceId, PlanOptions, Quality, RawData, SENSOR_NODE, Signal, decode_samples, plan_reads,
};

fn required(what: &str, path: &Path) -> bool {
    if path.exists() {
        return true;
    }
    if std::env::var("FIREBREAK_REQUIRE_PEERS").as_deref() == Ok("1") {
        panic!("{what} {} is missing: run scripts/test.sh", path.display());
    }
    eprintln!(
        "SKIPPED: {what} {} not built (run scripts/test.sh)",
        path.display()
    );
    false
}

fn image() -> PathBuf {
    std::env::var_os("FIREBREAK_NODE_QEMU")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            workspace().join("target/thumbv7em-none-eabihf/firmware/firebreak-node-qemu")
        })
}

/// QEMU running the image: its sensor UART on stdin/stdout, its Modbus UARTs on sockets.
struct Qemu {
    child: Child,
    feed: ChildStdin,
    lines: Receiver<String>,
}

impl Qemu {
    fn boot(image: &Path, socket: &Path) -> Qemu {
        Qemu::boot_on(image, &[socket])
    }

    /// RTU port A (UART1) on the first socket, port B (UART2) on the second if given: QEMU
    /// gives its `-serial`s to UART0, 1, 2 in order.
    fn boot_on(image: &Path, sockets: &[&Path]) -> Qemu {
        let mut command = Command::new("qemu-system-arm");
        command
            .args(["-M", "mps2-an386", "-display", "none", "-monitor", "none"])
            .args(["-serial", "stdio"]);
        for (i, socket) in sockets.iter().enumerate() {
            command
                .arg("-chardev")
                .arg(format!(
                    "socket,id=rtu{i},path={},server=on,wait=off",
                    socket.display()
                ))
                .args(["-serial", &format!("chardev:rtu{i}")]);
        }
        let mut child = command
            .arg("-kernel")
            .arg(image)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start qemu-system-arm");
        let feed = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                eprintln!("node: {line}");
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut qemu = Qemu { child, feed, lines };
        qemu.expect(|l| l.contains("ready"), Duration::from_secs(20));
        qemu
    }

    /// Waits for a line `matches` accepts; the line.
    fn expect(&mut self, matches: impl Fn(&str) -> bool, within: Duration) -> String {
        let until = Instant::now() + within;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if matches(&line) => return line,
                Ok(_) => {}
                Err(_) => panic!("the node did not say what was expected within {within:?}"),
            }
        }
    }

    /// Every line up to the first that `matches`, that one included.
    fn until(&mut self, matches: impl Fn(&str) -> bool, within: Duration) -> Vec<String> {
        let until = Instant::now() + within;
        let mut seen = Vec::new();
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let done = matches(&line);
                    seen.push(line);
                    if done {
                        return seen;
                    }
                }
                Err(_) => panic!("the node did not say what was expected within {within:?}"),
            }
        }
    }

    /// Sends a feed line and waits for its `ok`.
    fn send(&mut self, line: &str) {
        writeln!(self.feed, "{line}").unwrap();
        self.feed.flush().unwrap();
        self.expect(|l| l == "ok", Duration::from_secs(5));
    }
}

/// QEMU with its Modbus UART on a socat PTY in `dir`: the node, the PTY's path and socat.
fn boot_with_pty(image: &Path, dir: &Path) -> (Qemu, PathBuf, Peer) {
    let socket = dir.join("rtu.sock");
    let node = Qemu::boot(image, &socket);
    let (dev, pty) = pty_on(&socket, &dir.join("node"));
    (node, dev, pty)
}

/// A socat PTY at `dev` bridged to QEMU's UART socket.
fn pty_on(socket: &Path, dev: &Path) -> (PathBuf, Peer) {
    assert!(wait_until(Duration::from_secs(10), || socket.exists()).is_some());
    let pty = Peer::spawn(
        "socat",
        Command::new("socat").args([
            &format!("pty,raw,echo=0,link={}", dev.display()),
            &format!("UNIX-CONNECT:{}", socket.display()),
        ]),
    );
    assert!(wait_until(Duration::from_secs(5), || dev.exists()).is_some());
    (dev.to_path_buf(), pty)
}

impl Drop for Qemu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `mbpoll` reads input registers `start..start+count`; the values by address.
fn mbpoll_read(dev: &Path, start: u16, count: u16) -> Vec<(u16, u16)> {
    let (values, text) = mbpoll_try(dev, start, count);
    assert_eq!(values.len(), usize::from(count), "mbpoll: {text}");
    values
}

/// `mbpoll` reads input registers; the values it got (none when nothing answered) and what it
/// said.
fn mbpoll_try(dev: &Path, start: u16, count: u16) -> (Vec<(u16, u16)>, String) {
    let out = Command::new("mbpoll")
        .args([
            "-m", "rtu", "-b", "19200", "-P", "none", "-a", "1", "-t", "3",
        ])
        .args([
            "-r",
            &start.to_string(),
            "-c",
            &count.to_string(),
            "-0",
            "-1",
        ])
        .args(["-o", "2"])
        .arg(dev)
        .output()
        .expect("run mbpoll");
    let text = String::from_utf8_lossy(&out.stdout);
    let values: Vec<(u16, u16)> = text
        .lines()
        .filter_map(|l| {
            let (address, rest) = l.trim().strip_prefix('[')?.split_once("]:")?;
            Some((
                address.parse().ok()?,
                rest.split_whitespace().next()?.parse().ok()?,
            ))
        })
        .collect();
    (
        values,
        format!("{text}{}", String::from_utf8_lossy(&out.stderr)),
    )
}

/// `mbpoll` writes one holding register.
fn mbpoll_write(dev: &Path, address: u16, value: u16) {
    let out = Command::new("mbpoll")
        .args([
            "-m", "rtu", "-b", "19200", "-P", "none", "-a", "1", "-t", "4",
        ])
        .args(["-r", &address.to_string(), "-0", "-1", "-o", "2"])
        .arg(dev)
        .arg(value.to_string())
        .output()
        .expect("run mbpoll");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("Written 1 references"),
        "mbpoll write: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `firebreak probe` reads input registers; the values by address.
fn probe_read(dev: &Path, start: u16, count: u16) -> Vec<(u16, u16)> {
    let out = Command::new(firebreak_bin())
        .arg("probe")
        .arg(format!("rtu://{}?baud=19200&parity=none", dev.display()))
        .args(["--unit", "1", "--timeout-ms", "2000", "--input"])
        .arg(format!("{start}..{}", start + count))
        .output()
        .expect("run firebreak probe");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "firebreak probe: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // `input  107  0x0003      3       3`
    let values: Vec<(u16, u16)> = text
        .lines()
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            (w.len() == 5 && w[0] == "input")
                .then(|| (w[1].parse().unwrap(), w[3].parse().unwrap()))
        })
        .collect();
    assert_eq!(values.len(), usize::from(count), "firebreak probe: {text}");
    values
}

/// Decodes what a master read with the node's own profile, as the gateway does.
fn decoded(words: &[(u16, u16)], signal: Signal) -> (f64, Quality) {
    let device = DeviceId::new("node").unwrap();
    let plan = plan_reads::<4>(SENSOR_NODE.registers, &PlanOptions::default()).unwrap();
    for request in &plan {
        let raw: Option<Vec<u16>> = (request.start..request.start + request.count)
            .map(|a| words.iter().find(|(w, _)| *w == a).map(|(_, v)| *v))
            .collect();
        let Some(raw) = raw else { continue };
        for s in decode_samples(
            &device,
            SENSOR_NODE.registers,
            request,
            RawData::Words(&raw),
            0,
        )
        .map(Result::unwrap)
        {
            if s.signal == signal && s.channel == 0 {
                return (f64::from(s.value), s.quality);
            }
        }
    }
    panic!("{signal:?} not in {words:?}");
}

#[test]
fn qemu_node_raises_its_alarm_on_a_rising_rack_and_masters_see_it() {
    if !require_peer("qemu-system-arm") || !require_peer("socat") || !require_peer("mbpoll") {
        return;
    }
    let image = image();
    if !required("firmware image", &image) || !required("gateway binary", &firebreak_bin()) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (mut node, dev, _pty) = boot_with_pty(&image, dir.path());

    // A healthy rack at 25 °C: no alarm, as mbpoll and the gateway read it.
    node.send("t0 25.0");
    node.send("t1 24.0");
    std::thread::sleep(Duration::from_millis(300));
    let readings = mbpoll_read(&dev, 0, 12);
    assert_eq!(readings[0], (0, 250));
    assert_eq!(readings[1], (1, 240));
    assert_eq!(readings[2], (2, 0x7FFF), "absent probe");
    let status = probe_read(&dev, map::FIRMWARE_VERSION, 9);
    let value = |words: &[(u16, u16)], a: u16| words.iter().find(|(w, _)| *w == a).unwrap().1;
    assert_eq!(value(&status, map::ALARM_STATE), 0);
    assert_eq!(value(&status, map::RESET_REASON), 0, "power-on");
    assert_eq!(value(&status, map::FIRMWARE_VERSION), 1, "0.1");
    let (t, q) = decoded(&readings, Signal::RackTemperature);
    assert_eq!((t, q), (25.0, Quality::Good));

    // The rack warms past the 60 °C limit and stays there, by 3 °C a second: fast, but under
    // the 20 °C within about 5 s that would make the probe faulty (docs/firmware.md).
    for c in (29..=62).step_by(3) {
        node.send(&format!("t0 {c}.0"));
        std::thread::sleep(Duration::from_millis(1000));
    }
    node.expect(|l| l == "relay on", Duration::from_secs(10));
    let alarm = value(&mbpoll_read(&dev, map::ALARM_STATE, 1), map::ALARM_STATE);
    assert_eq!(
        alarm & 1 << map::ALARM_LATCHED,
        1 << map::ALARM_LATCHED,
        "{alarm:#x}"
    );
    assert_ne!(alarm & 1 << map::ALARM_CAUSE_TEMPERATURE, 0, "{alarm:#x}");
    let by_gateway = probe_read(&dev, 0, 12);
    assert_eq!(
        decoded(&by_gateway, Signal::RackTemperature),
        (62.0, Quality::Good)
    );
    let status = probe_read(&dev, map::ALARM_STATE, 1);
    assert_eq!(value(&status, map::ALARM_STATE), alarm);

    // A reset over Modbus while the rack is hot changes nothing; once it has cooled (the cause
    // clears 10 s after), the same write turns the relay off.
    mbpoll_write(&dev, map::ALARM_RESET, map::ALARM_RESET_KEY);
    node.send("t0 45.0");
    std::thread::sleep(Duration::from_millis(500));
    let latched = value(&mbpoll_read(&dev, map::ALARM_STATE, 1), map::ALARM_STATE);
    assert_eq!(latched & 1, 1, "still latched: {latched:#x}");
    assert!(
        wait_until(Duration::from_secs(20), || {
            value(&probe_read(&dev, map::ALARM_STATE, 1), map::ALARM_STATE) == 1
        })
        .is_some(),
        "the temperature cause did not clear"
    );
    mbpoll_write(&dev, map::ALARM_RESET, map::ALARM_RESET_KEY);
    node.expect(|l| l == "relay off", Duration::from_secs(5));
    assert_eq!(
        value(&mbpoll_read(&dev, map::ALARM_STATE, 1), map::ALARM_STATE),
        0
    );
    // Nothing was lost on the line.
    writeln!(node.feed, "status").unwrap();
    let status = node.expect(|l| l.starts_with("status "), Duration::from_secs(5));
    assert!(
        status.contains("relay=0") && status.contains("crc=0") && status.contains("framing=0"),
        "{status}"
    );
}

/// A rack warming 3 °C/min, fed at 1 s steps of the fed clock from 0 for `seconds`: each
/// second's reading is sent after the `clock` line that ends the second before (the same
/// script as the simulator's test).
fn ramp(seconds: u64) -> Vec<String> {
    let mut lines = vec!["clock 0".to_string()];
    for s in 0..seconds {
        lines.push(format!("t0 {:.3}", 25.0 + 0.05 * s as f64));
        lines.push(format!("clock {}", (s + 1) * 1000));
    }
    lines
}

/// The `alarm` lines among `said`.
fn alarms(said: &[String]) -> Vec<String> {
    said.iter()
        .filter(|l| l.starts_with("alarm "))
        .cloned()
        .collect()
}

/// The simulator binary, fed `script` on stdin in one write; everything it said up to the
/// status line after.
fn on_the_simulator(sim: &Path, dir: &Path, script: &[String]) -> Vec<String> {
    let (master, node_end) = (dir.join("sim-master"), dir.join("sim-node"));
    let _line = Peer::spawn(
        "socat",
        Command::new("socat").args([
            &format!("pty,raw,echo=0,link={}", master.display()),
            &format!("pty,raw,echo=0,link={}", node_end.display()),
        ]),
    );
    assert!(
        wait_until(Duration::from_secs(5), || master.exists()
            && node_end.exists())
        .is_some()
    );
    let mut child = Command::new(sim)
        .arg("--serial")
        .arg(&node_end)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start firebreak-node-sim");
    let mut stdin = child.stdin.take().unwrap();
    let (tx, lines) = channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let all: String = script.iter().map(|l| format!("{l}\n")).collect();
    stdin.write_all(all.as_bytes()).unwrap();
    stdin.write_all(b"status\n").unwrap();
    stdin.flush().unwrap();
    let mut said = Vec::new();
    let until = Instant::now() + Duration::from_secs(30);
    while !said
        .last()
        .is_some_and(|l: &String| l.starts_with("status "))
    {
        match lines.recv_timeout(until.saturating_duration_since(Instant::now())) {
            Ok(line) => said.push(line),
            Err(_) => panic!("the simulator stopped short: {said:?}"),
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    said
}

fn simulator() -> PathBuf {
    std::env::var_os("FIREBREAK_NODE_SIM")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target/debug/firebreak-node-sim"))
}

#[test]
fn qemu_node_on_the_fed_clock_latches_when_the_simulator_does() {
    if !require_peer("qemu-system-arm") || !require_peer("socat") || !require_peer("mbpoll") {
        return;
    }
    let image = image();
    if !required("firmware image", &image) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (mut node, dev, _pty) = boot_with_pty(&image, dir.path());

    // 60 s of scenario, sent as fast as the UART takes it.
    let script = ramp(60);
    let all: String = script.iter().map(|l| format!("{l}\n")).collect();
    let started = Instant::now();
    node.feed.write_all(all.as_bytes()).unwrap();
    writeln!(node.feed, "status").unwrap();
    node.feed.flush().unwrap();
    let said = node.until(|l| l.starts_with("status "), Duration::from_secs(60));
    let took = started.elapsed();
    let replies: Vec<&String> = said
        .iter()
        .filter(|l| *l == "ok" || l.starts_with("err"))
        .collect();
    assert_eq!(replies.len(), script.len(), "{said:?}");
    assert!(replies.iter().all(|l| *l == "ok"), "{said:?}");
    assert!(
        took < Duration::from_secs(30),
        "60 s of scenario took {took:?}"
    );

    // The rule: first reading at fed 100 ms, a rate once readings span 20 s, held 10 s.
    let rule = CYCLE_MS + RATE_MIN_SPAN_MS + RATE_HOLD_MS;
    let latched = 1 << map::ALARM_LATCHED | 1 << map::ALARM_CAUSE_RATE_OF_RISE;
    let on_qemu = alarms(&said);
    assert_eq!(
        on_qemu,
        [format!(
            "alarm at={rule} state=0x{latched:04X} faults=0x0000"
        )],
        "{said:?}"
    );
    let relay = said.iter().position(|l| l == "relay on").unwrap();
    assert!(said[relay - 1].starts_with("alarm "), "{said:?}");
    assert!(
        said.last().unwrap().contains(" at=60000 reset=0"),
        "{said:?}"
    );
    assert_eq!(
        mbpoll_read(&dev, map::ALARM_STATE, 1),
        [(map::ALARM_STATE, latched)]
    );

    // The host simulator, same script: the same lines, the same times.
    let sim = simulator();
    if required("simulator", &sim) {
        assert_eq!(
            alarms(&on_the_simulator(&sim, dir.path(), &script)),
            on_qemu
        );
    }
}

#[test]
fn qemu_node_hung_is_reset_by_its_watchdog_and_says_so() {
    if !require_peer("qemu-system-arm") || !require_peer("socat") || !require_peer("mbpoll") {
        return;
    }
    let image = image();
    if !required("firmware image", &image) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (mut node, dev, _pty) = boot_with_pty(&image, dir.path());
    assert_eq!(
        mbpoll_read(&dev, map::RESET_REASON, 1),
        [(map::RESET_REASON, 0)],
        "power-on"
    );
    // Latched on the fed clock, so the reboot visibly starts afresh.
    for line in ["clock 0", "smoke 1", "clock 2000"] {
        node.send(line);
    }
    assert_eq!(
        mbpoll_read(&dev, map::ALARM_STATE, 1),
        [(map::ALARM_STATE, 0x11)]
    );

    let hung = Instant::now();
    node.send("hang");
    let (values, text) = mbpoll_try(&dev, map::RESET_REASON, 1);
    assert!(values.is_empty(), "a hung node answers nothing: {text}");
    let banner = node.expect(|l| l.contains("ready"), Duration::from_secs(15));
    let down = hung.elapsed();
    // The CMSDK watchdog: its interrupt 2 s after the last feed, the reset 2 s later.
    assert!(
        down >= Duration::from_millis(3_800) && down < Duration::from_secs(10),
        "rebooted {down:?} after hang"
    );
    assert!(banner.contains(" reset=1 "), "{banner}");
    // The request sent while hung was held back by QEMU (a real UART would have lost it); the
    // image drops it at boot as a damaged frame. A master retries, as this one does.
    assert!(
        wait_until(Duration::from_secs(10), || {
            mbpoll_try(&dev, map::RESET_REASON, 1).0 == [(map::RESET_REASON, 1)]
        })
        .is_some(),
        "register 108 never read 1 (watchdog)"
    );
    assert_eq!(
        mbpoll_read(&dev, map::ALARM_STATE, 1),
        [(map::ALARM_STATE, 0)],
        "RAM state is gone"
    );
    // Back on its own clock: a reading is taken with no `clock` line.
    node.send("t0 25.0");
    assert!(
        wait_until(Duration::from_secs(5), || {
            mbpoll_try(&dev, 0, 1).0 == [(0, 250)]
        })
        .is_some()
    );
    writeln!(node.feed, "status").unwrap();
    let status = node.expect(|l| l.starts_with("status "), Duration::from_secs(5));
    assert!(status.contains(" reset=1"), "{status}");
    assert!(status.contains(" stack_peak="), "{status}");
}

/// The register at `address` among `words`.
fn at(words: &[(u16, u16)], address: u16) -> u16 {
    words.iter().find(|(w, _)| *w == address).unwrap().1
}

#[test]
fn qemu_node_dual_homed_answers_on_both_uarts_and_noise_on_b_leaves_a_clean() {
    if !require_peer("qemu-system-arm") || !require_peer("socat") || !require_peer("mbpoll") {
        return;
    }
    let image = image();
    if !required("firmware image", &image) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (sock_a, sock_b) = (dir.path().join("rtu-a.sock"), dir.path().join("rtu-b.sock"));
    let mut node = Qemu::boot_on(&image, &[&sock_a, &sock_b]);
    let (dev_a, _pty_a) = pty_on(&sock_a, &dir.path().join("node-a"));
    let (dev_b, _pty_b) = pty_on(&sock_b, &dir.path().join("node-b"));
    node.send("t0 25.0");
    std::thread::sleep(Duration::from_millis(300));

    // mbpoll on UART1 and UART2 at once.
    let poll = |dev: PathBuf| {
        std::thread::spawn(move || (0..10).map(|_| mbpoll_try(&dev, 0, 12)).collect::<Vec<_>>())
    };
    let (a, b) = (poll(dev_a.clone()), poll(dev_b.clone()));
    for (port, polls) in [("A", a.join().unwrap()), ("B", b.join().unwrap())] {
        for (values, text) in polls {
            assert_eq!(values.first(), Some(&(0, 250)), "port {port}: {text}");
        }
    }

    // Noise on B (bursts, half of them ending in a silence) while A is polled.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let noise = {
        let (stop, dev) = (stop.clone(), dev_b.clone());
        std::thread::spawn(move || {
            let mut line = std::fs::OpenOptions::new().write(true).open(&dev).unwrap();
            let mut x: u32 = 0x9E37_79B9;
            let mut written = 0u64;
            let mut round = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let burst: Vec<u8> = (0..300)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 17;
                        x ^= x << 5;
                        x as u8
                    })
                    .collect();
                line.write_all(&burst).unwrap();
                written += burst.len() as u64;
                round += 1;
                if round.is_multiple_of(2) {
                    std::thread::sleep(Duration::from_millis(30));
                }
            }
            written
        })
    };
    std::thread::sleep(Duration::from_millis(200));
    for i in 0..20 {
        let (values, text) = mbpoll_try(&dev_a, 0, 12);
        assert_eq!(
            values.first(),
            Some(&(0, 250)),
            "port A poll {i} under noise on B: {text}"
        );
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let written = noise.join().unwrap();
    std::thread::sleep(Duration::from_millis(300));

    // Both counter sets, read on A.
    let status = mbpoll_read(&dev_a, map::FIRMWARE_VERSION, 21);
    let (a, b) = (map::PORT_A_LINK, map::PORT_B_LINK);
    let errors = |first: u16| {
        (
            at(&status, first + map::LINK_CRC_ERRORS),
            at(&status, first + map::LINK_FRAMING_ERRORS),
            at(&status, first + map::LINK_EXCEPTIONS),
        )
    };
    let bytes = |first: u16| {
        u32::from(at(&status, first + map::LINK_BYTES)) << 16
            | u32::from(at(&status, first + map::LINK_BYTES + 1))
    };
    eprintln!(
        "after {written} bytes of noise on B: A errors {:?}, B errors {:?}, B bytes {}",
        errors(a),
        errors(b),
        bytes(b)
    );
    assert_eq!(errors(a), (0, 0, 0), "A is clean");
    assert!(at(&status, a + map::LINK_FRAMES_OK) >= 31);
    // QEMU hands UART2 its bytes one at a time as the image reads them, so the noise held
    // back in the socket arrives as one stream, its pauses absorbed: at least the overrun.
    let (crc, framing, _) = errors(b);
    assert!(crc + framing >= 1, "B counted its noise");
    assert!(
        u64::from(bytes(b)) + 300 >= written,
        "{} of {written}",
        bytes(b)
    );
    // B still answers once it is quiet; the status line has both ports.
    assert_eq!(mbpoll_read(&dev_b, 0, 1), [(0, 250)]);
    writeln!(node.feed, "status").unwrap();
    let line = node.expect(|l| l.starts_with("status "), Duration::from_secs(5));
    assert!(line.contains(" crc=0 framing=0 "), "{line}");
    assert!(!line.contains(" crc_b=0 framing_b=0 "), "{line}");
}
