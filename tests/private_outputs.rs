//! Private by default: recordings are created 0600 and never through a symlink, and `[export]
//! cmdline` (default `redacted`) applies to recordings, `report` and `snapshot`; `--cmdline full`
//! opts in. Checked with a real process whose command line holds a token.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};

use assert_cmd::cargo::CommandCargoExt;
use serde_json::Value;

const SECRET: &str = "SECRET_kw7Q";

/// A busy loop (so it has energy and shows in snapshots) whose command line holds `--token=SECRET`:
/// `sh -c SCRIPT sh --token=…` keeps the arguments in sh's own /proc/PID/cmdline.
struct Busy(Child);

impl Busy {
    fn start() -> Self {
        let child = Command::new("sh")
            .args(["-c", "while :; do :; done", "sh"])
            .arg(format!("--token={SECRET}"))
            .spawn()
            .unwrap();
        // Wait until it has exec'd and /proc shows its arguments (at most 5 s).
        let cmdline = format!("/proc/{}/cmdline", child.id());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while !std::fs::read(&cmdline).is_ok_and(|b| String::from_utf8_lossy(&b).contains(SECRET))
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(std::time::Duration::from_millis(10)); // real-time: a real child process starting.
        }
        Busy(child)
    }
    fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// No NVML, no powercap, no perf PMU: the CPU estimate, the same on every host.
fn config(dir: &Path) -> PathBuf {
    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let p = dir.join("kwtop.toml");
    std::fs::write(
        &p,
        format!(
            "[sources]\nnvml = false\npowercap_root = \"{0}\"\nsysfs_root = \"{0}\"\n",
            empty.display()
        ),
    )
    .unwrap();
    p
}

fn kwtop(cfg: &Path, args: &[&str]) -> Output {
    let out = Command::cargo_bin("kwtop")
        .unwrap()
        .arg("--config")
        .arg(cfg)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "kwtop {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn record(cfg: &Path, path: &Path, extra: &[&str]) -> String {
    let mut args = vec!["record", "--interval", "100ms", "--duration", "500ms", "-o"];
    args.push(path.to_str().unwrap());
    args.extend_from_slice(extra);
    kwtop(cfg, &args);
    std::fs::read_to_string(path).unwrap()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// The command line the recording holds for `pid`.
fn recorded_cmdline(text: &str, pid: u32) -> String {
    for line in text.lines().skip(1) {
        let v: Value = serde_json::from_str(line).unwrap();
        // Full samples list every process, delta samples the new and changed ones.
        let procs = v["procs"].as_array().or(v["delta"]["procs"].as_array());
        for p in procs.into_iter().flatten() {
            if p["pid"].as_u64() == Some(u64::from(pid)) && p["info"].is_object() {
                return p["info"]["cmdline"].as_str().unwrap().to_string();
            }
        }
    }
    panic!("pid {pid} not in the recording")
}

#[test]
fn recordings_are_0600_and_redacted_unless_asked_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let busy = Busy::start();

    // An existing world-readable file is narrowed too.
    let path = dir.path().join("run.jsonl");
    std::fs::write(&path, "old").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let text = record(&cfg, &path, &[]);
    assert_eq!(mode(&path), 0o600, "recording mode {:o}", mode(&path));
    let header: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(header["cmdline"], "redacted");
    assert!(!text.contains(SECRET), "secret in a default recording");
    let cmd = recorded_cmdline(&text, busy.pid());
    assert!(cmd.contains("--token=***"), "{cmd}");

    let full = dir.path().join("full.jsonl");
    let text = record(&cfg, &full, &["--cmdline", "full"]);
    assert_eq!(mode(&full), 0o600);
    let header: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(header["cmdline"], "full");
    assert!(
        recorded_cmdline(&text, busy.pid()).contains(&format!("--token={SECRET}")),
        "--cmdline full keeps the command line"
    );

    // `report` of the full recording under the default config: the stricter mode wins.
    let out = kwtop(&cfg, &["report", full.to_str().unwrap(), "--json"]);
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["cmdline_mode"], "redacted");
    assert!(!String::from_utf8_lossy(&out.stdout).contains(SECRET));
    // With [export] cmdline = "full" it shows what the recording holds.
    let full_cfg = dir.path().join("full.toml");
    let base = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(&full_cfg, format!("{base}[export]\ncmdline = \"full\"\n")).unwrap();
    let out = kwtop(&full_cfg, &["report", full.to_str().unwrap(), "--json"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains(SECRET));
    // …but cannot un-redact a redacted recording.
    let out = kwtop(&full_cfg, &["report", path.to_str().unwrap(), "--json"]);
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["cmdline_mode"], "redacted");
    assert!(!String::from_utf8_lossy(&out.stdout).contains(SECRET));
}

#[test]
fn a_symlink_at_the_recording_path_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let target = dir.path().join("victim");
    std::fs::write(&target, "keep me").unwrap();
    let link = dir.path().join("run.jsonl");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let out = Command::cargo_bin("kwtop")
        .unwrap()
        .arg("--config")
        .arg(&cfg)
        .args(["record", "--duration", "100ms", "-o"])
        .arg(&link)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("symbolic link"), "{err}");
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep me");
}

#[test]
fn snapshot_redacts_command_lines_unless_asked_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let busy = Busy::start();
    let find = |out: &Output| -> Value {
        let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
        doc["processes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["pid"].as_u64() == Some(u64::from(busy.pid())))
            .cloned()
            .unwrap_or_else(|| panic!("busy loop not in the snapshot: {doc}"))
    };

    let out = kwtop(&cfg, &["snapshot", "--json", "--interval", "500ms"]);
    assert!(!String::from_utf8_lossy(&out.stdout).contains(SECRET));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["cmdline_mode"], "redacted");
    let p = find(&out);
    assert!(p["cmdline"].as_str().unwrap().contains("--token=***"), "{p}");

    let out = kwtop(
        &cfg,
        &["snapshot", "--json", "--interval", "500ms", "--cmdline", "full"],
    );
    let p = find(&out);
    assert!(
        p["cmdline"]
            .as_str()
            .unwrap()
            .contains(&format!("--token={SECRET}")),
        "{p}"
    );

    let out = kwtop(
        &cfg,
        &["snapshot", "--json", "--interval", "500ms", "--cmdline", "name"],
    );
    assert_eq!(find(&out)["cmdline"], "sh");

    // The table shows command lines too.
    let out = kwtop(&cfg, &["snapshot", "--interval", "500ms", "--top", "1000"]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("--token=***"), "{table}");
    assert!(!table.contains(SECRET));
}
