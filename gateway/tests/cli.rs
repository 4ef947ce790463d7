//! The `firebreak` binary as a user runs it: exit codes and messages.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test code

use std::process::Command;

fn firebreak(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_firebreak"))
        .args(args)
        .output()
        .expect("run firebreak")
}

#[test]
fn lists_builtin_profiles() {
    let out = firebreak(&["profiles"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for name in ["firebreak-sensor-node", "generic-ups", "generic-pdu"] {
        assert!(text.contains(name), "{text}");
    }
}

#[test]
fn bad_name_exits_2_with_a_clear_message() {
    let out = firebreak(&["topics", "--site", "paris/1"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8(out.stderr).unwrap(),
        "firebreak: --site: \"paris/1\" contains forbidden character '/' at byte 5\n"
    );
}

#[test]
fn demo_says_it_is_not_built_yet() {
    let out = firebreak(&["demo"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8(out.stderr)
            .unwrap()
            .contains("demo is not built yet")
    );
}
