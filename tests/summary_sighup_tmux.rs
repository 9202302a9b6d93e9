#![allow(clippy::unwrap_used, clippy::expect_used)]
//! End to end in a real terminal: start the live `kwtop` in tmux, send it SIGHUP as a dropped SSH
//! link would, and find a complete session summary whose totals add up.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn tmux(sock: &str, args: &[&str]) -> std::process::Output {
    Command::new("tmux")
        .arg("-L")
        .arg(sock)
        .args(args)
        .output()
        .expect("tmux runs")
}

fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        // real-time: the binary runs in a real terminal on real sensors.
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn json_in(dir: &Path) -> Option<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "json"))
}

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
    let sock = format!("kwtop-sighup-{}", std::process::id());
    let cmd = format!("exec {} --config {}", env!("CARGO_BIN_EXE_kwtop"), cfg.display());
    let st = tmux(&sock, &["new-session", "-d", "-x", "100", "-y", "30", &cmd]);
    assert!(st.status.success(), "{}", String::from_utf8_lossy(&st.stderr));
    let pid: i32 = String::from_utf8_lossy(&tmux(&sock, &["list-panes", "-F", "#{pane_pid}"]).stdout)
        .trim()
        .parse()
        .unwrap();
    // Let a few intervals be accounted (the header shows the session clock once samples arrive).
    wait_for("the monitor to draw", Duration::from_secs(10), || {
        String::from_utf8_lossy(&tmux(&sock, &["capture-pane", "-p"]).stdout).contains("kwtop")
    });
    // real-time: a second of sampling at 200 ms.
    std::thread::sleep(Duration::from_millis(1200));
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGHUP).unwrap();
    wait_for("kwtop to exit", Duration::from_secs(10), || {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_err()
    });
    let _ = tmux(&sock, &["kill-server"]);

    let json = json_in(&out).expect("a JSON summary was written on SIGHUP");
    let doc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(doc["schema"], "kwtop.summary/1");
    assert!(doc["intervals"].as_u64().unwrap() >= 2, "{doc}");
    // Totals equal the ledger's device totals, which equal processes + idle + unattributed.
    let devices = doc["devices"].as_array().unwrap();
    let dev_sum: f64 = devices.iter().map(|d| d["energy_j"].as_f64().unwrap()).sum();
    let total = doc["totals"]["energy_j"].as_f64().unwrap();
    assert!(total > 0.0);
    assert!(
        (total - dev_sum).abs() < 1e-6 * total.max(1.0),
        "{total} vs {dev_sum}"
    );
    for d in devices {
        let id = d["id"].as_str().unwrap();
        let procs: f64 = doc["processes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["energy_by_device_j"][id].as_f64().unwrap_or(0.0))
            .sum();
        let parts = procs + d["idle_j"].as_f64().unwrap() + d["unattributed_j"].as_f64().unwrap();
        assert!(
            (d["energy_j"].as_f64().unwrap() - parts).abs() < 1e-6,
            "{id}: {d}"
        );
    }
    // The Markdown twin is complete (its last section is there) and agrees with the JSON.
    let md = std::fs::read_to_string(json.with_extension("md")).unwrap();
    assert!(md.contains("## Method and provenance"), "{md}");
    let csv = std::fs::read_to_string(json.with_extension("csv")).unwrap();
    assert_eq!(
        csv.lines().count(),
        1 + doc["processes"].as_array().unwrap().len()
    );
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
