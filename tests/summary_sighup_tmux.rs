#![allow(clippy::unwrap_used, clippy::expect_used)]
//! End to end in a real terminal: start the live `kwtop` in tmux, send it SIGHUP as a dropped SSH
//! link would, and find a complete session summary whose totals add up.

#[path = "common/tmux.rs"]
mod tmux;

use std::process::Command;
use std::time::Duration;

use tmux::{Tmux, check_summary, wait_for};

#[test]
#[ignore = "needs tmux"]
fn sighup_writes_a_complete_summary() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("out");
    let cfg = d.path().join("kwtop.toml");
    std::fs::write(
        &cfg,
        format!(
            "[sampling]\ninterval = \"200ms\"\n[sources]\nnvml = false\n[export]\ndir = \"{}\"\n",
            out.display()
        ),
    )
    .unwrap();
    let cmd = format!("exec {} --config {}", env!("CARGO_BIN_EXE_kwtop"), cfg.display());
    let t = Tmux::start("sighup", 100, 30, &[&cmd]);
    let pid = t.pane_pid() as i32;
    // Let a few intervals be accounted (the header shows the session clock once samples arrive).
    t.wait("the monitor to draw", Duration::from_secs(10), |s| {
        s.contains("kwtop")
    });
    std::thread::sleep(Duration::from_millis(1200)); // real-time: a second of sampling at 200 ms.
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGHUP).unwrap();
    wait_for("kwtop to exit", Duration::from_secs(10), || {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_err()
    });
    drop(t);

    // Totals equal the ledger's device totals, which equal processes + idle + unattributed; the
    // Markdown twin is complete and the CSV has a row per process.
    let (json, doc) = check_summary(&out, 2);
    // `report` re-renders the saved JSON with the same totals.
    let again = Command::new(env!("CARGO_BIN_EXE_kwtop"))
        .arg("--config")
        .arg(&cfg)
        .arg("report")
        .arg(&json)
        .args(["--format", "json"])
        .output()
        .unwrap();
    let again: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(again["totals"], doc["totals"]);
}
