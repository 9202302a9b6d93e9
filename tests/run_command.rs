#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `kwtop run`: exit-status pass-through, whole-tree accounting (orphans included), signal
//! forwarding, summary files.

use std::path::Path;
use std::process::Stdio;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Held by the tests that keep a CPU busy, so they do not compete with each other for the cores
/// whose energy they split.
static BUSY: Mutex<()> = Mutex::new(());

#[path = "common/run.rs"]
mod run_common;
use run_common::kwtop;

fn summary_json(dir: &Path) -> serde_json::Value {
    let out = dir.join("out");
    let f = std::fs::read_dir(&out)
        .unwrap()
        .flatten()
        .find(|e| e.path().extension().is_some_and(|x| x == "json"))
        .expect("a JSON summary in the export dir");
    serde_json::from_str(&std::fs::read_to_string(f.path()).unwrap()).unwrap()
}

#[test]
fn exit_code_zero_and_three_pass_through() {
    let d = tempfile::tempdir().unwrap();
    let st = kwtop(d.path()).args(["run", "--", "true"]).output().unwrap();
    assert_eq!(
        st.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    let st = kwtop(d.path())
        .args(["run", "--", "sh", "-c", "exit 3"])
        .output()
        .unwrap();
    assert_eq!(st.status.code(), Some(3));
    let err = String::from_utf8_lossy(&st.stderr);
    // Like `time`: a short block, not the whole summary, which is saved.
    assert!(
        err.starts_with("kwtop: exit 3 · "),
        "short block on stderr:\n{err}"
    );
    assert!(
        err.contains("\n  energy  ") && err.contains("\n  CO2e    "),
        "{err}"
    );
    assert!(err.contains("\n  saved   "), "{err}");
    assert!(!err.contains("# kwtop run:"), "{err}");
    assert!(err.lines().count() <= 10, "{err}");
    assert!(st.stdout.is_empty(), "stdout is the command's alone");
    let st = kwtop(d.path())
        .args(["run", "--report", "md", "--", "sh", "-c", "exit 3"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&st.stderr);
    assert!(
        err.contains("# kwtop run:"),
        "--report md prints the summary:\n{err}"
    );
    assert!(err.contains("exit code 3"), "{err}");
}

#[test]
fn signal_death_is_128_plus_n() {
    let d = tempfile::tempdir().unwrap();
    let st = kwtop(d.path())
        .args(["run", "--", "sh", "-c", "kill -TERM $$"])
        .output()
        .unwrap();
    assert_eq!(st.status.code(), Some(128 + 15));
    let doc = summary_json(d.path());
    assert_eq!(doc["command"]["signal"], 15);
    assert_eq!(doc["command"]["status"], 143);
}

#[test]
fn missing_command_is_127() {
    let d = tempfile::tempdir().unwrap();
    let st = kwtop(d.path())
        .args(["run", "--", "/nonexistent/kwtop-no-such-cmd"])
        .output()
        .unwrap();
    assert_eq!(st.status.code(), Some(127));
}

#[test]
fn tree_whose_parent_exits_before_its_child_is_accounted() {
    // sh → (subshell → busy loop); the subshell exits at once, orphaning the busy loop, which
    // burns CPU for ~1.5 s while the top shell waits. The busy loop must be in the summary.
    let _busy = BUSY.lock().unwrap_or_else(|e| e.into_inner());
    let d = tempfile::tempdir().unwrap();
    let script =
        "( sh -c 'end=$(( $(date +%s) + 2 )); while [ $(date +%s) -lt $end ]; do :; done' & ) ; sleep 2.3";
    let st = kwtop(d.path())
        .args([
            "run",
            "--interval",
            "200ms",
            "--format",
            "json",
            "--",
            "sh",
            "-c",
            script,
        ])
        .output()
        .unwrap();
    assert_eq!(
        st.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    let doc = summary_json(d.path());
    let procs = doc["processes"].as_array().unwrap();
    let busy: f64 = procs
        .iter()
        .filter(|p| p["ppid"].as_u64() != Some(0))
        .map(|p| p["energy_j"].as_f64().unwrap())
        .sum();
    let total = doc["totals"]["energy_j"].as_f64().unwrap();
    assert!(total > 0.0, "the tree used energy: {doc}");
    assert!((busy - total).abs() < 1e-6);
    // The orphan (child of the vanished subshell) is a member, and holds most of the energy.
    let top = &procs[0];
    assert_eq!(top["command"], "sh", "{top}");
    assert!(top["energy_j"].as_f64().unwrap() > 0.5 * total, "{doc}");
    assert!(doc["command"]["tree_processes"].as_u64().unwrap() >= 3, "{doc}");
    assert!(
        doc["totals"]["energy_j"].as_f64().unwrap() <= doc["machine"]["energy_j"].as_f64().unwrap() + 1e-9
    );
}

#[test]
fn sigint_is_forwarded_to_the_command() {
    let d = tempfile::tempdir().unwrap();
    let marker = d.path().join("got-int");
    // The command traps SIGINT, writes a marker and exits 7: proof it received the signal.
    let script = format!(
        "trap 'echo int > {}; exit 7' INT; while :; do sleep 0.05; done",
        marker.display()
    );
    let mut child = kwtop(d.path())
        .args(["run", "--interval", "200ms", "--", "sh", "-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(600)); // real-time: give kwtop time to install its handlers and start the command.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "kwtop did not exit after SIGINT");
        std::thread::sleep(Duration::from_millis(50)); // real-time: polling the child's exit.
    };
    assert_eq!(status.code(), Some(7));
    assert!(marker.exists(), "the command never saw SIGINT");
}

#[test]
fn output_file_and_saved_summaries_are_private() {
    use std::os::unix::fs::MetadataExt;
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("report.csv");
    let st = kwtop(d.path())
        .args(["run", "-o"])
        .arg(&out)
        .args(["--", "sh", "-c", "echo --token=s3cr3t > /dev/null"])
        .output()
        .unwrap();
    assert_eq!(st.status.code(), Some(0));
    let csv = std::fs::read_to_string(&out).unwrap();
    assert!(csv.starts_with("pid,starttime,ppid"), "{csv}");
    assert_eq!(std::fs::metadata(&out).unwrap().mode() & 0o777, 0o600);
    assert_eq!(
        std::fs::metadata(d.path().join("out")).unwrap().mode() & 0o777,
        0o700
    );
    let n = std::fs::read_dir(d.path().join("out")).unwrap().count();
    assert_eq!(n, 3, "md, json and csv saved");
    let err = String::from_utf8_lossy(&st.stderr);
    assert!(!err.contains("s3cr3t"), "secret printed:\n{err}");
}

#[test]
fn short_lived_children_carry_their_energy() {
    // 15 busy children of 0.2 s each, every one born and gone between two 500 ms samples: their
    // CPU time reaches the shell through its cutime + cstime, so the command holds the active energy.
    let _busy = BUSY.lock().unwrap_or_else(|e| e.into_inner());
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("run.json");
    let script =
        "for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15; do timeout 0.2 sh -c 'while :; do :; done'; done";
    let st = kwtop(d.path())
        .args(["run", "--interval", "500ms", "-o"])
        .arg(&out)
        .args(["--", "sh", "-c", script])
        .output()
        .unwrap();
    // The loop's last `timeout` killed its child: status 124, passed through.
    assert_eq!(
        st.status.code(),
        Some(124),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    let doc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let cpu = doc["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["id"] == "cpu0")
        .expect("cpu0 in the summary");
    let f = |k: &str| cpu[k].as_f64().unwrap();
    let active = f("energy_j") - f("idle_j");
    let command = f("scope_j");
    // Energy charged to processes outside the tree (kwtop itself, whatever else runs on a shared
    // test machine). On a quiet machine it is ~0 and the share below is command / active.
    let others = active - command - f("unattributed_j");
    let share = command / (active - others);
    eprintln!(
        "cpu0: active {active:.1} J, command {command:.1} J, other processes {others:.1} J, \
         unattributed {:.1} J: command share {:.1} %",
        f("unattributed_j"),
        share * 100.0
    );
    assert!(active > 0.0, "{doc}");
    assert!(
        share >= 0.9,
        "the command holds {:.1} % of the active energy: {doc}",
        share * 100.0
    );
    // The exact CPU time of the whole tree, as `time` reports it: 15 children of at most 0.2 s.
    let cpu_s = doc["command"]["cpu_s"].as_f64().expect("cpu_s");
    assert!(cpu_s > 0.3 && cpu_s < 4.0, "cpu_s {cpu_s}");
}
