#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `kwtop run` counting work: `--progress` over the command's output (passed through unchanged,
//! on a pseudo-terminal when kwtop's output is one), the `KWTOP_WORK_FILE`, and the energy per
//! unit in the summary.

use std::io::Read;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

#[path = "common/run.rs"]
mod run_common;
use run_common::kwtop;

fn summary_json(dir: &Path) -> serde_json::Value {
    let f = std::fs::read_dir(dir.join("out"))
        .unwrap()
        .flatten()
        .find(|e| e.path().extension().is_some_and(|x| x == "json"))
        .expect("a JSON summary in the export dir");
    serde_json::from_str(&std::fs::read_to_string(f.path()).unwrap()).unwrap()
}

fn f64_at(v: &serde_json::Value, path: &[&str]) -> f64 {
    let mut v = v;
    for k in path {
        v = &v[*k];
    }
    v.as_f64()
        .unwrap_or_else(|| panic!("{path:?} is not a number: {v}"))
}

#[test]
fn steps_of_short_lived_children_give_the_energy_per_step() {
    // Each step's work runs in a child born and gone between two samples; its CPU time reaches
    // the shell through cutime, so the command's tree holds the energy the steps are charged.
    let d = tempfile::tempdir().unwrap();
    let script =
        "for i in 1 2 3 4 5 6 7 8; do timeout 0.2 sh -c 'while :; do :; done'; echo \"step $i/8\"; done";
    let st = kwtop(d.path())
        .args([
            "run",
            "--interval",
            "300ms",
            "--progress",
            r"step (\d+)",
            "--unit",
            "steps",
        ])
        .args(["--", "sh", "-c", script])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&st.stderr);
    assert_eq!(st.status.code(), Some(0), "{err}");
    let expected: String = (1..=8).map(|i| format!("step {i}/8\n")).collect();
    assert_eq!(
        String::from_utf8_lossy(&st.stdout),
        expected,
        "stdout passed through"
    );
    let doc = summary_json(d.path());
    let w = &doc["work"];
    assert_eq!(w["units"], 8, "{w}");
    assert_eq!(w["unit"], "step", "--unit made singular");
    assert_eq!(w["source"], "progress");
    let energy = f64_at(&doc, &["totals", "energy_j"]);
    assert!(energy > 0.0, "{doc}");
    let jpu = f64_at(w, &["j_per_unit"]);
    assert!(
        (jpu - energy / 8.0).abs() <= 1e-9 * energy.max(1.0),
        "{jpu} vs {energy}/8"
    );
    let wh = f64_at(w, &["wh_per_1000_units"]);
    assert!((wh - jpu / 3.6).abs() <= 1e-9 * wh.max(1.0));
    let (first, last) = (f64_at(w, &["first_unit_ms"]), f64_at(w, &["last_unit_ms"]));
    assert!(
        first < last && last - first >= 7.0 * 150.0,
        "8 steps of ≥0.2 s: {first}..{last}"
    );
    let rate = f64_at(w, &["units_per_s"]);
    assert!(rate > 0.5 && rate < 6.0, "{rate} steps/s");
    // The short block names the work.
    assert!(err.contains("  work    8 steps · "), "{err}");
    assert!(err.contains(" J per step · "), "{err}");
    eprintln!("{err}");
}

#[test]
fn tqdm_carriage_returns_count_and_bytes_pass_unchanged() {
    let d = tempfile::tempdir().unwrap();
    // A bar redrawn in place, a line that does not match, invalid UTF-8, no final newline.
    let script = r#"for i in 1 2 3 4 5 6 7 8 9 10; do printf '\r%d/10 it' $i; done; printf '\nplain \377 line\r\n'; printf 'to stderr\r\n' >&2; printf 'tail'"#;
    let st = kwtop(d.path())
        .args(["run", "--progress", r"(\d+)/\d+", "--report", "none"])
        .args(["--", "sh", "-c", script])
        .output()
        .unwrap();
    assert_eq!(
        st.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    let mut expected: Vec<u8> = (1..=10)
        .flat_map(|i| format!("\r{i}/10 it").into_bytes())
        .collect();
    expected.extend_from_slice(b"\nplain \xff line\r\ntail");
    assert_eq!(st.stdout, expected, "stdout byte for byte");
    assert_eq!(
        st.stderr, b"to stderr\r\n",
        "stderr byte for byte, nothing of kwtop's with --report none"
    );
    let w = &summary_json(d.path())["work"];
    assert_eq!(w["units"], 10, "{w}");
    assert_eq!(w["unit"], "unit");
}

#[test]
fn work_file_counts_and_is_removed() {
    let d = tempfile::tempdir().unwrap();
    let script = r#"echo "$KWTOP_WORK_FILE"; stat -c %a "$KWTOP_WORK_FILE" >&2; for n in 1200 2400 3000; do echo "$n tokens" >> "$KWTOP_WORK_FILE"; sleep 0.1; done"#;
    let st = kwtop(d.path())
        .args(["run", "--report", "json", "--", "sh", "-c", script])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&st.stderr);
    assert_eq!(st.status.code(), Some(0), "{err}");
    assert!(err.starts_with("600\n"), "the work file is private: {err}");
    let path = String::from_utf8_lossy(&st.stdout).trim().to_string();
    assert!(!path.is_empty(), "KWTOP_WORK_FILE is set");
    let dir = Path::new(&path).parent().unwrap();
    assert!(!dir.exists(), "{} removed after the run", dir.display());
    let doc = summary_json(d.path());
    let w = &doc["work"];
    assert_eq!(w["units"], 3000, "{w}");
    assert_eq!(w["unit"], "token");
    assert_eq!(w["source"], "work_file");
    // --report json prints the same document on stderr.
    let json_start = err.find('{').unwrap();
    let printed: serde_json::Value = serde_json::Deserializer::from_str(&err[json_start..])
        .into_iter()
        .next()
        .unwrap()
        .unwrap();
    assert_eq!(printed["work"], doc["work"]);
}

#[test]
fn no_match_no_work_and_a_notice() {
    let d = tempfile::tempdir().unwrap();
    let st = kwtop(d.path())
        .args(["run", "--progress", r"step (\d+)", "--", "sh", "-c", "echo hello"])
        .output()
        .unwrap();
    assert_eq!(st.stdout, b"hello\n");
    let doc = summary_json(d.path());
    assert!(doc.get("work").is_none(), "{doc}");
    let err = String::from_utf8_lossy(&st.stderr);
    assert!(err.contains("matched no line"), "{err}");
}

#[test]
fn bad_regex_is_a_usage_error_before_the_command_runs() {
    let d = tempfile::tempdir().unwrap();
    let marker = d.path().join("ran");
    let st = kwtop(d.path())
        .args(["run", "--progress", "step (", "--", "touch"])
        .arg(&marker)
        .output()
        .unwrap();
    assert_eq!(st.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&st.stderr).contains("invalid --progress regex"));
    assert!(!marker.exists());
}

#[test]
fn a_terminal_stays_a_terminal_for_the_command() {
    let d = tempfile::tempdir().unwrap();
    let pty = nix::pty::openpty(None, None).unwrap();
    let mut child = kwtop(d.path())
        .args(["run", "--report", "none", "--progress", r"step (\d+)"])
        .args([
            "--",
            "sh",
            "-c",
            "[ -t 1 ] && echo 'step 1 on a tty'; echo 'step 2'",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::from(pty.slave))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The Command (holding our copy of the slave) is gone: the master reads EIO once kwtop exits.
    let mut master = std::fs::File::from(pty.master);
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = master.read(&mut buf) {
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        out
    });
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    let out = String::from_utf8_lossy(&reader.join().unwrap()).into_owned();
    assert!(
        out.contains("step 1 on a tty"),
        "the command saw a terminal: {out:?}"
    );
    assert_eq!(summary_json(d.path())["work"]["units"], 2);
}

#[test]
fn a_closed_stdout_reaches_the_command() {
    // `kwtop run --progress … -- yes | head -c 10`: once the reader is gone, `yes` must get
    // SIGPIPE as it would writing there itself, not run forever into kwtop.
    let d = tempfile::tempdir().unwrap();
    let mut child = kwtop(d.path())
        .args(["run", "--report", "none", "--progress", "y", "--", "yes"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut buf = [0u8; 10];
    out.read_exact(&mut buf).unwrap();
    drop(out);
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("kwtop run -- yes did not end after its stdout closed");
        }
        std::thread::sleep(Duration::from_millis(50)); // real-time: polling the child's exit.
    };
    assert_eq!(status.code(), Some(128 + 13), "yes killed by SIGPIPE");
}
