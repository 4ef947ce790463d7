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

#[test]
fn config_default_passes_config_check() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("site.toml");
    let example = firebreak(&["config", "default"]);
    assert!(example.status.success());
    std::fs::write(&path, &example.stdout).unwrap();
    let check = firebreak(&["config", "check", path.to_str().unwrap()]);
    let text = String::from_utf8(check.stdout).unwrap();
    assert!(check.status.success(), "{text}");
    assert!(text.contains("device node-b1"), "{text}");
    assert!(
        text.ends_with("ok: 4 devices, 1 mqtt sources, 2 zones\n"),
        "{text}"
    );
}

#[test]
fn config_check_names_file_key_and_problem() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("site.toml");
    let example = String::from_utf8(firebreak(&["config", "default"]).stdout).unwrap();
    std::fs::write(&path, example.replace("\"generic-pdu\"", "\"apc-smt\"")).unwrap();
    let check = firebreak(&["config", "check", path.to_str().unwrap()]);
    assert_eq!(check.status.code(), Some(2));
    assert_eq!(
        String::from_utf8(check.stderr).unwrap(),
        format!(
            "firebreak: {}: devices[2].profile: no profile named \"apc-smt\"\n",
            path.display()
        )
    );
}
