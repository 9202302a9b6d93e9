//! `kwtop completions SHELL` and `kwtop man` through the real binary.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::process::{Command, Stdio};

use assert_cmd::cargo::CommandCargoExt;

const SUBCOMMANDS: [&str; 8] = [
    "snapshot",
    "record",
    "replay",
    "report",
    "run",
    "serve",
    "completions",
    "man",
];

fn kwtop(args: &[&str]) -> String {
    let out = Command::cargo_bin("kwtop")
        .unwrap()
        // A config that would not load: these commands must not need one.
        .args(["--config", "/nonexistent/kwtop.toml"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "kwtop {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn every_shell_gets_a_script_naming_the_subcommands() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let script = kwtop(&["completions", shell]);
        assert!(script.len() > 200, "{shell}: {} bytes", script.len());
        for sub in SUBCOMMANDS {
            assert!(script.contains(sub), "{shell} script does not name '{sub}'");
        }
        // Options of a subcommand are completed too.
        assert!(
            script.contains("--json"),
            "{shell} script lacks snapshot's --json"
        );
    }
}

#[test]
fn an_unknown_shell_is_a_usage_error() {
    let out = Command::cargo_bin("kwtop")
        .unwrap()
        .args(["completions", "tcsh"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("tcsh"));
}

#[test]
fn bash_accepts_the_bash_script() {
    let script = kwtop(&["completions", "bash"]);
    let Ok(mut child) = Command::new("bash")
        .args(["-n", "/dev/stdin"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    else {
        eprintln!("bash not found: syntax check skipped");
        return;
    };
    child.stdin.take().unwrap().write_all(script.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "bash -n: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn man_page_is_roff_naming_the_subcommands() {
    let page = kwtop(&["man"]);
    // The roff header: after clap_mangen's quote-string definitions (.ie/.el), the title line.
    let first = page
        .lines()
        .find(|l| !l.starts_with(".ie") && !l.starts_with(".el"))
        .unwrap();
    assert!(first.starts_with(".TH kwtop 1"), "{first}");
    assert!(page.contains(".SH NAME"));
    assert!(page.contains(".SH SYNOPSIS"));
    for sub in SUBCOMMANDS {
        assert!(page.contains(sub), "man page does not mention '{sub}'");
    }
}
