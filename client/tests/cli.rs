//! The binaries introduce themselves correctly.
#![allow(clippy::unwrap_used)]

use std::process::Command;

fn run(exe: &str, arg: &str) -> String {
    let out = Command::new(exe).arg(arg).output().unwrap();
    assert!(out.status.success(), "{exe} {arg}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn the_bot_says_it_is_the_headless_client() {
    let help = run(env!("CARGO_BIN_EXE_hallway-bot"), "--help");
    let first = help.lines().next().unwrap_or_default();
    assert!(first.starts_with("A headless Hallway client"), "{help}");
    assert!(!help.contains("desktop app"), "{help}");
    let version = run(env!("CARGO_BIN_EXE_hallway-bot"), "--version");
    assert!(version.contains(env!("CARGO_PKG_VERSION")), "{version}");
}

#[cfg(feature = "app")]
#[test]
fn the_app_says_it_is_the_app() {
    let help = run(env!("CARGO_BIN_EXE_hallway"), "--help");
    assert!(help.starts_with("Hallway: a virtual office"), "{help}");
}
