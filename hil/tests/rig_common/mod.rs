//! What the rig's end-to-end tests share: the suite's directory, the gateway binary, and
//! `firebreak-hil` run as a user runs it, bounded in time.

#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)] // test code

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::*;

pub const HIL: &str = env!("CARGO_BIN_EXE_firebreak-hil");

pub fn scenarios() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios")
}

/// The gateway binary, or `None` (a failure under scripts/test.sh) when it is not built.
pub fn gateway() -> Option<PathBuf> {
    let bin = firebreak_bin();
    if bin.exists() {
        return Some(bin);
    }
    if std::env::var("FIREBREAK_REQUIRE_PEERS").as_deref() == Ok("1") {
        panic!(
            "{} is missing: cargo build -p firebreak-gateway (scripts/test.sh does)",
            bin.display()
        );
    }
    eprintln!("SKIPPED: {} not built", bin.display());
    None
}

/// Runs `firebreak-hil ARGS` with a bound on its time; returns (exit code, stdout, stderr).
pub fn hil(args: &[&str], gateway: &Path, within: Duration) -> (Option<i32>, String, String) {
    let mut child = Command::new(HIL)
        .args(args)
        .env("FIREBREAK_BIN", gateway)
        .env(
            "PATH",
            format!("{}:/usr/sbin", std::env::var("PATH").unwrap_or_default()),
        )
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    loop {
        if let Some(_status) = child.try_wait().unwrap() {
            break;
        }
        if start.elapsed() > within {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "firebreak-hil {args:?} did not finish within {within:?}\n{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
