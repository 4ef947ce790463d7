//! `firebreak-node-sim` dual-homed: RTU port A on one socat PTY pair, port B (`--rtu-b`) on
//! another, polled by `mbpoll` on both at once; then B flooded with line noise, and B cut (its
//! line's socat killed) and restored, while A is polled: every poll on A succeeds, A's counters
//! stay clean, B's show what happened to B.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test code

#[path = "../../../gateway/tests/common/mod.rs"]
mod common;
mod sim_common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use common::*;
use firebreak_protocols::builtin::sensor_node as map;
use sim_common::*;

/// One `mbpoll` read of input registers `start..start+count` (`-1`: one poll, 1 s timeout):
/// the values, or what mbpoll said when it did not get them all.
fn mbpoll(dev: &Path, start: u16, count: u16) -> Result<Vec<u16>, String> {
    let out = Command::new("mbpoll")
        .args([
            "-m", "rtu", "-b", "19200", "-P", "none", "-a", "1", "-t", "3",
        ])
        .args(["-r", &start.to_string(), "-c", &count.to_string()])
        .args(["-0", "-1", "-o", "1"])
        .arg(dev)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let values: Vec<u16> = text
        .lines()
        .filter_map(|l| {
            let (_, rest) = l.trim().strip_prefix('[')?.split_once("]:")?;
            rest.split_whitespace().next()?.parse().ok()
        })
        .collect();
    if out.status.success() && values.len() == usize::from(count) {
        Ok(values)
    } else {
        Err(text)
    }
}

/// Reads the readings block `n` times on `dev`; every result.
fn poll_readings(dev: PathBuf, n: usize) -> std::thread::JoinHandle<Vec<Result<Vec<u16>, String>>> {
    std::thread::spawn(move || (0..n).map(|_| mbpoll(&dev, 0, 12)).collect())
}

/// A port's link counters in the status block read from 100.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Link {
    frames_ok: u16,
    crc: u16,
    framing: u16,
    exceptions: u16,
    bytes: u32,
}

fn link(status: &[u16], first: u16) -> Link {
    let at = |offset: u16| status[usize::from(first + offset - map::FIRMWARE_VERSION)];
    Link {
        frames_ok: at(map::LINK_FRAMES_OK),
        crc: at(map::LINK_CRC_ERRORS),
        framing: at(map::LINK_FRAMING_ERRORS),
        exceptions: at(map::LINK_EXCEPTIONS),
        bytes: u32::from(at(map::LINK_BYTES)) << 16 | u32::from(at(map::LINK_BYTES + 1)),
    }
}

/// The whole status block, 100..=120, read on `dev`: port A's link and port B's.
fn links(dev: &Path) -> (Link, Link, Vec<u16>) {
    let status = mbpoll(dev, map::FIRMWARE_VERSION, 21).unwrap();
    (
        link(&status, map::PORT_A_LINK),
        link(&status, map::PORT_B_LINK),
        status,
    )
}

fn all_ok(results: &[Result<Vec<u16>, String>], port: &str) {
    for (i, r) in results.iter().enumerate() {
        match r {
            Ok(v) => assert_eq!(v[0], 225, "port {port} poll {i}: {v:?}"),
            Err(e) => panic!("port {port} poll {i} failed: {e}"),
        }
    }
}

/// Writes line noise on `dev` until `stop`: bursts of pseudo-random bytes; with `pauses`,
/// every other one ends in a silence long enough to end a frame, else they run into each
/// other as fast as the line takes them (a flood: one endless frame). The bytes written.
fn noise(dev: PathBuf, stop: Arc<AtomicBool>, pauses: bool) -> std::thread::JoinHandle<u64> {
    let written = Arc::new(AtomicU64::new(0));
    std::thread::spawn(move || {
        let mut line = std::fs::OpenOptions::new().write(true).open(&dev).unwrap();
        let mut x: u32 = 0x1234_5678;
        let mut burst = [0u8; 512];
        let mut round = 0u32;
        while !stop.load(Ordering::Relaxed) {
            for b in burst.iter_mut() {
                // xorshift32
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                *b = x as u8;
            }
            let len = 3 + (x as usize % (burst.len() - 3));
            if line.write_all(&burst[..len]).is_err() {
                break;
            }
            written.fetch_add(len as u64, Ordering::Relaxed);
            round += 1;
            // Every other burst runs straight into the next (one endless frame, overrunning
            // the buffer); the others end in a silence, a frame with a bad CRC or length.
            if pauses && round.is_multiple_of(2) {
                std::thread::sleep(Duration::from_millis(25 + u64::from(x % 10)));
            }
        }
        written.load(Ordering::Relaxed)
    })
}

#[test]
fn both_ports_answer_mbpoll_at_once() {
    if !require_peer("socat") || !require_peer("mbpoll") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (_line_a, gw_a, node_a) = pty_pair(dir.path(), "gw-a", "node-a");
    let (_line_b, gw_b, node_b) = pty_pair(dir.path(), "gw-b", "node-b");
    let mut sim = Sim::with(&node_a, &["--rtu-b", node_b.to_str().unwrap()]);
    assert_eq!(sim.send("t0 22.5"), "ok");
    std::thread::sleep(Duration::from_millis(300));

    let (a, b) = (
        poll_readings(gw_a.clone(), 15),
        poll_readings(gw_b.clone(), 15),
    );
    all_ok(&a.join().unwrap(), "A");
    all_ok(&b.join().unwrap(), "B");

    // A write on one bus is the node's, read on the other.
    let out = Command::new("mbpoll")
        .args([
            "-m", "rtu", "-b", "19200", "-P", "none", "-a", "1", "-t", "4",
        ])
        .args(["-r", &map::LIMIT_OFF_GAS.to_string(), "-0", "-1", "-o", "1"])
        .arg(&gw_b)
        .arg("80")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let read = Command::new("mbpoll")
        .args([
            "-m", "rtu", "-b", "19200", "-P", "none", "-a", "1", "-t", "4",
        ])
        .args(["-r", &map::LIMIT_OFF_GAS.to_string(), "-0", "-1", "-o", "1"])
        .arg(&gw_a)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&read.stdout);
    assert!(
        text.contains(&format!("[{}]: \t80", map::LIMIT_OFF_GAS)),
        "{text}"
    );

    let (la, lb, status) = links(&gw_a);
    assert_eq!((la.crc, la.framing, la.exceptions), (0, 0, 0), "{la:?}");
    assert_eq!((lb.crc, lb.framing, lb.exceptions), (0, 0, 0), "{lb:?}");
    assert!(la.frames_ok >= 16 && lb.frames_ok >= 16, "{la:?} {lb:?}");
    assert_eq!(status[usize::from(map::CRC_ERRORS - 100)], 0);
    let said = sim.status().pop().unwrap();
    assert!(
        said.contains(" crc=0 framing=0 ") && said.contains(" crc_b=0 framing_b=0 "),
        "{said}"
    );
}

#[test]
fn noise_on_b_and_a_cut_b_never_disturb_a() {
    if !require_peer("socat") || !require_peer("mbpoll") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (_line_a, gw_a, node_a) = pty_pair(dir.path(), "gw-a", "node-a");
    let (line_b, gw_b, node_b) = pty_pair(dir.path(), "gw-b", "node-b");
    let mut sim = Sim::with(&node_a, &["--rtu-b", node_b.to_str().unwrap()]);
    assert_eq!(sim.send("t0 22.5"), "ok");
    std::thread::sleep(Duration::from_millis(300));

    // Noise on B while A is polled, 30 times.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = noise(gw_b.clone(), stop.clone(), true);
    std::thread::sleep(Duration::from_millis(200));
    let a = poll_readings(gw_a.clone(), 30).join().unwrap();
    stop.store(true, Ordering::Relaxed);
    let written = writer.join().unwrap();
    all_ok(&a, "A");
    assert!(written > 10_000, "only {written} bytes of noise");
    // Let B's last frame end, then read both counter sets on A.
    std::thread::sleep(Duration::from_millis(200));
    let (la, lb, _) = links(&gw_a);
    eprintln!("after {written} bytes of noise on B: A {la:?}, B {lb:?}");
    assert_eq!(
        (la.crc, la.framing, la.exceptions),
        (0, 0, 0),
        "A is clean: {la:?}"
    );
    assert!(la.frames_ok >= 31, "{la:?}");
    assert!(lb.crc + lb.framing >= 10, "B counted its noise: {lb:?}");
    assert!(lb.framing >= 1, "B's endless bursts overran: {lb:?}");
    assert!(
        u64::from(lb.bytes) >= written / 2,
        "{lb:?}, {written} written"
    );
    // B itself still works once the noise is gone.
    assert_eq!(mbpoll(&gw_b, 0, 1).unwrap(), [225]);

    // A flood on B: noise as fast as the line takes it, never a silence.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = noise(gw_b.clone(), stop.clone(), false);
    std::thread::sleep(Duration::from_millis(200));
    let a = poll_readings(gw_a.clone(), 20).join().unwrap();
    let (la, lb_flooded, _) = links(&gw_a);
    stop.store(true, Ordering::Relaxed);
    let flooded = writer.join().unwrap();
    eprintln!("during a flood of {flooded} bytes on B: A {la:?}, B {lb_flooded:?}");
    all_ok(&a, "A");
    assert_eq!(
        (la.crc, la.framing, la.exceptions),
        (0, 0, 0),
        "A is clean: {la:?}"
    );
    assert!(
        lb_flooded.framing > lb.framing,
        "the flood's endless frame counted as it overran: {lb_flooded:?}"
    );
    assert!(lb_flooded.bytes > lb.bytes + 100_000, "{lb_flooded:?}");
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(mbpoll(&gw_b, 0, 1).unwrap(), [225]);

    // Cut B: its line's other end goes away. A goes on as before; the node stays up.
    drop(line_b);
    let a = poll_readings(gw_a.clone(), 15).join().unwrap();
    all_ok(&a, "A");
    assert!(
        sim.child.try_wait().unwrap().is_none(),
        "the node is still running"
    );
    let (la2, _, _) = links(&gw_a);
    assert_eq!((la2.crc, la2.framing, la2.exceptions), (0, 0, 0), "{la2:?}");

    // Restored (a new line at the same place): B answers again, A never stopped.
    let (_line_b, gw_b, _) = pty_pair(dir.path(), "gw-b", "node-b");
    assert!(
        wait_until(Duration::from_secs(10), || mbpoll(&gw_b, 0, 1).is_ok()).is_some(),
        "B never came back"
    );
    assert_eq!(mbpoll(&gw_b, 0, 1).unwrap(), [225]);
    let said = sim.status().pop().unwrap();
    assert!(said.contains(" crc=0 framing=0 "), "{said}");
}
