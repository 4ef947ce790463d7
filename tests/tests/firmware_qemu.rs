//! The sensor node's firmware image, booted in QEMU (`mps2-an386`), read over Modbus RTU by
//! masters nobody here wrote (`mbpoll`) and by the gateway's `firebreak probe`, through a socat
//! PTY, while a rising rack temperature is fed on its sensor UART.
//!
//! The image is built by `scripts/test.sh` (`cargo build -p firebreak-firmware --profile firmware
//! --target thumbv7em-none-eabihf --bin firebreak-node-qemu`); FIREBREAK_NODE_QEMU overrides
//! its path. Under FIREBREAK_REQUIRE_PEERS=1 a missing QEMU, socat, mbpoll, image or gateway
//! binary fails the test.

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

/// QEMU running the image: its sensor UART on stdin/stdout, its Modbus UART on a socket.
struct Qemu {
    child: Child,
    feed: ChildStdin,
    lines: Receiver<String>,
}

impl Qemu {
    fn boot(image: &Path, socket: &Path) -> Qemu {
        let mut child = Command::new("qemu-system-arm")
            .args(["-M", "mps2-an386", "-display", "none", "-monitor", "none"])
            .args(["-serial", "stdio", "-chardev"])
            .arg(format!(
                "socket,id=rtu,path={},server=on,wait=off",
                socket.display()
            ))
            .args(["-serial", "chardev:rtu", "-kernel"])
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

    /// Sends a feed line and waits for its `ok`.
    fn send(&mut self, line: &str) {
        writeln!(self.feed, "{line}").unwrap();
        self.feed.flush().unwrap();
        self.expect(|l| l == "ok", Duration::from_secs(5));
    }
}

impl Drop for Qemu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `mbpoll` reads input registers `start..start+count`; the values by address.
fn mbpoll_read(dev: &Path, start: u16, count: u16) -> Vec<(u16, u16)> {
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
    assert_eq!(
        values.len(),
        usize::from(count),
        "mbpoll: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    values
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
    let socket = dir.path().join("rtu.sock");
    let dev = dir.path().join("node");
    let mut node = Qemu::boot(&image, &socket);
    assert!(wait_until(Duration::from_secs(10), || socket.exists()).is_some());
    let _pty = Peer::spawn(
        "socat",
        Command::new("socat").args([
            &format!("pty,raw,echo=0,link={}", dev.display()),
            &format!("UNIX-CONNECT:{}", socket.display()),
        ]),
    );
    assert!(wait_until(Duration::from_secs(5), || dev.exists()).is_some());

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

    // The rack warms, in steps a rack can make, past the 60 °C limit and stays there.
    for c in [30, 38, 46, 54, 62, 68, 72] {
        node.send(&format!("t0 {c}.0"));
        std::thread::sleep(Duration::from_millis(300));
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
        (72.0, Quality::Good)
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
