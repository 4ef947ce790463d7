//! `firebreak probe --scan` and `--decode` against a Modbus server nobody here wrote: the
//! pymodbus foreign UPS, serving unit 7 only, its input registers sparse (10, 12–13, 20) and
//! its runtime a u32 sent low word first.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test code

mod common;

use std::process::Command;

use common::*;

fn probe(args: &[&str]) -> (String, String, bool) {
    let out = Command::new(firebreak_bin())
        .arg("probe")
        .args(args)
        .output()
        .unwrap();
    (
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
        out.status.success(),
    )
}

#[test]
fn scan_finds_the_unit_and_its_sparse_map_and_decode_shows_the_word_order() {
    let Some(python) = python() else {
        return;
    };
    let port = free_port();
    let _ups = foreign_ups_tcp(&python, port, &["--unit", "7"]);
    let target = format!("tcp://127.0.0.1:{port}");
    let (out, err, ok) = probe(&[
        &target,
        "--scan",
        "--units",
        "4..=9",
        "--input",
        "0..=24",
        "--timeout-ms",
        "300",
        "--gap-ms",
        "5",
    ]);
    assert!(ok, "{err}");
    // Unit 7 answers; pymodbus answers 0x04 for the units it does not have.
    assert!(
        out.contains("answering: 7; failure 0x04: 4..=6, 8..=9; silent: none"),
        "{out}"
    );
    assert!(
        out.contains("unit 7 input 0..=24: readable 10, 12..=13, 20; 21 refused or silent"),
        "{out}"
    );
    // The runtime, 1,234,567 s, reads right only low word first: the order for the profile.
    let (out, err, ok) = probe(&[&target, "--unit", "7", "--input", "12..=13", "--decode"]);
    assert!(ok, "{err}");
    let line = |order: &str| {
        out.lines()
            .find(|l| l.contains(&format!("12..=13 {order}")))
            .unwrap_or_else(|| panic!("{order}: {out}"))
            .to_string()
    };
    assert!(line("CDAB").contains("u32    1234567"), "{out}");
    assert!(line("ABCD").contains("u32 3599171602"), "{out}");
    assert_eq!(out.lines().filter(|l| l.contains("12..=13")).count(), 4);
    // Bounded: a scan that could send thousands of requests is refused before it starts.
    let (_, err, ok) = probe(&[&target, "--scan", "--input", "0..=9999"]);
    assert!(!ok);
    assert!(err.contains("more than 5000 requests"), "{err}");
}
