//! The node simulator as a process, for this crate's tests: `firebreak-node-sim` on socat PTY
//! pairs, its feed on stdin/stdout or a PTY.

#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)] // test code

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use crate::common::{Peer, wait_until};

/// The simulator, its feed on stdin/stdout or on a PTY (`--feed`).
pub struct Sim {
    pub child: Child,
    pub input: Box<dyn Write + Send>,
    pub lines: Receiver<String>,
    pub banner: String,
}

/// Sends every line `from` gives to a channel.
pub fn lines_of(from: impl std::io::Read + Send + 'static) -> Receiver<String> {
    let (tx, lines) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(from).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    lines
}

impl Sim {
    pub fn start(serial: &Path) -> Sim {
        Sim::with(serial, &[])
    }

    /// With more arguments; the feed on stdin/stdout.
    pub fn with(serial: &Path, args: &[&str]) -> Sim {
        let mut child = Command::new(env!("CARGO_BIN_EXE_firebreak-node-sim"))
            .arg("--serial")
            .arg(serial)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let input = Box::new(child.stdin.take().unwrap());
        let lines = lines_of(child.stdout.take().unwrap());
        Sim::ready(child, input, lines)
    }

    pub fn ready(child: Child, input: Box<dyn Write + Send>, lines: Receiver<String>) -> Sim {
        let mut sim = Sim {
            child,
            input,
            lines,
            banner: String::new(),
        };
        sim.banner = sim.expect(|l| l.contains("ready"), Duration::from_secs(10));
        sim
    }

    pub fn expect(&mut self, matches: impl Fn(&str) -> bool, within: Duration) -> String {
        self.until(matches, within).pop().unwrap()
    }

    /// Every line up to the first that `matches`, that one included.
    pub fn until(&mut self, matches: impl Fn(&str) -> bool, within: Duration) -> Vec<String> {
        let until = Instant::now() + within;
        let mut seen = Vec::new();
        loop {
            match self
                .lines
                .recv_timeout(until.saturating_duration_since(Instant::now()))
            {
                Ok(line) => {
                    let done = matches(&line);
                    seen.push(line);
                    if done {
                        return seen;
                    }
                }
                Err(_) => panic!("the simulator did not answer within {within:?}: {seen:?}"),
            }
        }
    }

    pub fn write(&mut self, line: &str) {
        writeln!(self.input, "{line}").unwrap();
        self.input.flush().unwrap();
    }

    pub fn send(&mut self, line: &str) -> String {
        self.write(line);
        self.expect(
            |l| l == "ok" || l.starts_with("err"),
            Duration::from_secs(5),
        )
    }

    /// Asks for the status line; every line said before it, and it.
    pub fn status(&mut self) -> Vec<String> {
        self.write("status");
        self.until(|l| l.starts_with("status "), Duration::from_secs(10))
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A socat PTY pair in `dir`: the two ends' paths, once both exist.
pub fn pty_pair(dir: &Path, a: &str, b: &str) -> (Peer, PathBuf, PathBuf) {
    let (a, b) = (dir.join(a), dir.join(b));
    // A killed socat leaves its links behind.
    let _ = std::fs::remove_file(&a);
    let _ = std::fs::remove_file(&b);
    let socat = Peer::spawn(
        "socat",
        Command::new("socat").args([
            &format!("pty,raw,echo=0,link={}", a.display()),
            &format!("pty,raw,echo=0,link={}", b.display()),
        ]),
    );
    assert!(wait_until(Duration::from_secs(5), || a.exists() && b.exists()).is_some());
    (socat, a, b)
}
