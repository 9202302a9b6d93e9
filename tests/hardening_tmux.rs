#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Hardening, end to end in a real terminal (tmux), on this machine's real /proc (no NVML):
//!
//! - every way the live monitor ends (`q`, the Ctrl-C key, SIGINT, SIGTERM, SIGHUP, a panic in the
//!   UI loop, a panic in the sampler) leaves the terminal restored (main screen, cursor visible,
//!   cooked mode, the shell answering) and a complete session summary that conserves energy;
//! - hostile process names and command lines (OSC title changes, screen clears, cursor moves, bidi
//!   overrides, invalid UTF-8, a 64 KiB argument) never reach the terminal or the exports raw;
//! - a full export filesystem shows a clear error, the session goes on, and a later export works.
//!
//! Needs tmux (`.ci/run` installs it); the full-disk test also uses `unshare -m` and tmpfs when the
//! machine allows it (root), else a path whose component is a file. Run with
//! `cargo test --test hardening_tmux -- --include-ignored`.

#[path = "common/tmux.rs"]
mod tmux;

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tmux::{Tmux, check_summary, wait_for};

const PROMPT: &str = "HARD-PROMPT$";
const T: Duration = Duration::from_secs(20);

fn kwtop() -> &'static str {
    env!("CARGO_BIN_EXE_kwtop")
}

/// `examples/faults.rs`: the kwtop command with a panic injected where `KWTOP_FAULT` says (built
/// here if this test run did not build it).
fn faults() -> String {
    let status = std::process::Command::new(env!("CARGO"))
        .args(["build", "--quiet", "--example", "faults"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("cargo build --example faults");
    assert!(status.success(), "cargo build --example faults: {status}");
    let bin = Path::new(kwtop()).parent().unwrap().join("examples/faults");
    assert!(bin.exists(), "{}", bin.display());
    bin.display().to_string()
}

/// A config sampling every 200 ms from /proc without NVML, exporting into `export`.
fn config(dir: &Path, name: &str, export: &Path) -> PathBuf {
    let cfg = dir.join(format!("{name}.toml"));
    std::fs::write(
        &cfg,
        format!(
            "[sampling]\ninterval = \"200ms\"\n[sources]\nnvml = false\n[export]\ndir = \"{}\"\n",
            export.display()
        ),
    )
    .unwrap();
    cfg
}

/// The exit status the shell printed as `rc=N` after the command.
fn exit_code(screen: &str) -> Option<i32> {
    screen.lines().rev().find_map(|l| {
        let rest = &l[l.find("rc=")? + 3..];
        rest.trim().parse().ok()
    })
}

/// The terminal is back to normal after kwtop exited: main screen, cursor shown, no mouse
/// reporting, cooked mode with echo, and the shell runs what is typed.
fn assert_terminal_restored(t: &Tmux, case: &str) {
    assert_eq!(
        t.display("#{alternate_on}"),
        "0",
        "{case}: still on the alternate screen"
    );
    assert_eq!(t.display("#{cursor_flag}"), "1", "{case}: cursor hidden");
    assert_eq!(
        t.display("#{mouse_any_flag}"),
        "0",
        "{case}: mouse reporting left on"
    );
    t.type_line("stty -a | tr -s ' ;' '\\n\\n' | grep -x -e -icanon -e -echo -e icanon -e echo | sort | tr '\\n' ,; echo");
    t.wait(&format!("{case}: stty shows cooked mode"), T, |s| {
        s.contains("echo,icanon,")
    });
    t.type_line(&format!("echo ok-$((6*7))-{case}"));
    t.wait(&format!("{case}: a working shell"), T, |s| {
        s.contains(&format!("ok-42-{case}"))
    });
}

#[derive(Debug, Clone, Copy)]
enum End {
    Quit,
    CtrlCKey,
    Signal(nix::sys::signal::Signal),
    /// `examples/faults.rs` with `KWTOP_FAULT` set to this value.
    Panic(&'static str),
}

#[test]
#[ignore = "needs tmux"]
fn every_ending_restores_the_terminal_and_saves_the_summary() {
    use nix::sys::signal::Signal;
    let d = tempfile::tempdir().unwrap();
    let t = Tmux::shell("ends", 120, 40, PROMPT);
    let cases: [(&str, End, i32); 7] = [
        ("quit", End::Quit, 0),
        ("ctrlc", End::CtrlCKey, 0),
        ("sigint", End::Signal(Signal::SIGINT), 0),
        ("sigterm", End::Signal(Signal::SIGTERM), 0),
        ("sighup", End::Signal(Signal::SIGHUP), 0),
        ("panic", End::Panic("ui:1500"), 101),
        ("sampler-panic", End::Panic("feed:1500"), 101),
    ];
    for (case, end, want_rc) in cases {
        let export = d.path().join(case);
        let cfg = config(d.path(), case, &export);
        let (env, bin) = match end {
            End::Panic(v) => (format!("KWTOP_FAULT={v} "), faults()),
            _ => (String::new(), kwtop().to_string()),
        };
        t.type_line("clear");
        t.wait("a clear screen", T, |s| s.trim() == PROMPT);
        t.run(&["clear-history", "-t", "ends"]);
        t.type_line(&format!("{env}{bin} --config {}; echo rc=$?", cfg.display()));
        t.wait(&format!("{case}: the monitor"), T, |s| s.contains("TOTAL W"));
        assert_eq!(
            t.display("#{alternate_on}"),
            "1",
            "{case}: kwtop uses the alternate screen"
        );
        if !matches!(end, End::Panic(_)) {
            std::thread::sleep(Duration::from_millis(1000)); // real-time: let a few 200 ms intervals be accounted first (the panics come at 1.5 s).
        }
        match end {
            End::Quit => t.keys(&["q"]),
            End::CtrlCKey => t.keys(&["C-c"]),
            End::Signal(sig) => {
                let pid = t.foreground_child().expect("kwtop's pid under the shell");
                nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig).unwrap();
            }
            End::Panic(_) => {}
        }
        let s = t.wait(&format!("{case}: kwtop's exit status"), T, |s| {
            exit_code(s).is_some()
        });
        assert_eq!(exit_code(&s), Some(want_rc), "{case}:\n{s}");
        // What kwtop printed after leaving the alternate screen (a backtrace may scroll it).
        let s = t.history();
        assert!(s.contains("session summary written"), "{case}:\n{s}");
        if let End::Panic(_) = end {
            assert!(s.contains("injected panic"), "{case}: the panic message\n{s}");
            assert!(s.contains("panicked"), "{case}: says it panicked\n{s}");
        }
        assert_terminal_restored(&t, case);
        let (_, doc) = check_summary(&export, 2);
        eprintln!(
            "{case}: exit {want_rc}, terminal restored, summary: {} intervals, {:.1} J, {} processes",
            doc["intervals"],
            doc["totals"]["energy_j"].as_f64().unwrap(),
            doc["processes"].as_array().unwrap().len()
        );
        let notices = doc["notices"].to_string();
        assert_eq!(
            notices.contains("internal error (panic)"),
            matches!(end, End::Panic(_)),
            "{case}: {notices}"
        );
    }
}

/// Hostile strings: a name for the executable (becomes `comm`, cut at 15 bytes by the kernel) and
/// argv[0] (the start of the command line).
fn hostile() -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut long = b"HOSTILE-6 long ".to_vec();
    long.extend(std::iter::repeat_n(b'A', 32 * 1024));
    long.extend_from_slice(b"\x1b]0;PWNED\x07");
    long.extend(std::iter::repeat_n(b'B', 32 * 1024));
    vec![
        (
            b"\x1b]0;PWNED\x07".to_vec(),
            b"HOSTILE-1 osc0 \x1b]0;PWNED\x07 tail".to_vec(),
        ),
        (
            b"\x1b]2;PWNED\x1b\\".to_vec(),
            b"HOSTILE-2 osc2 \x1b]2;PWNED\x1b\\ tail".to_vec(),
        ),
        (
            b"\x1b[2J\x1b[10;10H".to_vec(),
            b"HOSTILE-3 clear \x1b[2J\x1b[H\x1b[10;10Hmoved \x1b[31mred\x1b[0m".to_vec(),
        ),
        (
            "\u{202E}fdp.exe".as_bytes().to_vec(),
            "HOSTILE-4 bidi \u{202E}gnp.exe \u{2066}iso".as_bytes().to_vec(),
        ),
        (
            b"\xff\xfebad\xc3(".to_vec(),
            b"HOSTILE-5 utf8 \xff\xfe\xc3\x28 \xed\xa0\x80".to_vec(),
        ),
        (b"long".to_vec(), long),
    ]
}

struct Hostiles(Vec<Child>);

impl Drop for Hostiles {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Start one `sh` per hostile string, through a symlink named with the hostile bytes (so `comm`
/// is hostile) and with the hostile argv[0]; each is busy about 5 ms every 55 ms (~9 % of a core)
/// so that it has energy to show.
fn spawn_hostiles(dir: &Path) -> Hostiles {
    let sh = std::fs::canonicalize("/bin/sh").unwrap();
    let mut kids = Vec::new();
    for (i, (name, argv0)) in hostile().into_iter().enumerate() {
        let sub = dir.join(format!("h{i}"));
        std::fs::create_dir(&sub).unwrap();
        let exe = sub.join(OsStr::from_bytes(&name));
        std::os::unix::fs::symlink(&sh, &exe).unwrap();
        let child = Command::new(&exe)
            .arg0(OsStr::from_bytes(&argv0))
            .args([
                "-c",
                "while :; do i=0; while [ $i -lt 1500 ]; do i=$((i+1)); done; sleep 0.05; done",
                "x",
            ])
            .arg(OsStr::from_bytes(b"\x1b]0;PWNED\x07\xff"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        kids.push(child);
    }
    Hostiles(kids)
}

/// Every string in an export is free of control characters, bidi overrides and U+FFFD.
fn assert_clean_text(what: &str, text: &str, allow_newlines: bool) {
    for (i, c) in text.char_indices() {
        let bad = (c.is_control() && !(allow_newlines && c == '\n'))
            || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{FFFD}');
        assert!(
            !bad,
            "{what}: {c:?} at byte {i}: {:?}",
            &text[i.saturating_sub(40)..i]
        );
    }
    assert!(!text.contains("PWNED"), "{what}: escape parameter text leaked");
}

fn assert_clean_json(what: &str, v: &serde_json::Value) {
    match v {
        serde_json::Value::String(s) => assert_clean_text(what, s, false),
        serde_json::Value::Array(a) => a.iter().for_each(|x| assert_clean_json(what, x)),
        serde_json::Value::Object(o) => o.iter().for_each(|(k, x)| {
            assert_clean_text(what, k, false);
            assert_clean_json(what, x);
        }),
        _ => {}
    }
}

#[test]
#[ignore = "needs tmux"]
fn hostile_process_names_never_reach_the_terminal_raw() {
    let d = tempfile::tempdir().unwrap();
    let hostiles = spawn_hostiles(d.path());
    let pids: Vec<u64> = hostiles.0.iter().map(|c| u64::from(c.id())).collect();
    let export = d.path().join("out");
    let cfg = config(d.path(), "hostile", &export);
    let raw_log = d.path().join("pane.raw");
    let (w, h) = (160usize, 45usize);
    let t = Tmux::shell("hostile", w as u16, h as u16, PROMPT);

    // Control: a raw OSC 2 written to this pane does change its title.
    t.type_line("printf '\\033]2;CONTROL-TITLE\\033\\\\'");
    wait_for("the control title", T, || {
        t.display("#{pane_title}") == "CONTROL-TITLE"
    });
    t.run(&["select-pane", "-t", "hostile", "-T", "KNOWN-TITLE"]);
    assert_eq!(t.display("#{pane_title}"), "KNOWN-TITLE");
    t.type_line("clear");
    t.wait("a clear screen", T, |s| s.trim() == PROMPT);

    // Everything kwtop writes to the terminal from now on is logged.
    let pipe = format!("cat >> {}", raw_log.display());
    t.run(&["pipe-pane", "-o", "-t", "hostile", &pipe]);
    t.type_line(&format!("{} --config {}; echo rc=$?", kwtop(), cfg.display()));
    t.wait("the monitor", T, |s| s.contains("TOTAL W"));
    // Only the hostile processes: all six on screen.
    t.keys(&["/"]);
    t.keys(&["-l", "HOSTILE-"]);
    t.keys(&["Enter"]);
    let rows = |s: &str| (1..=6).filter(|i| s.contains(&format!("HOSTILE-{i} "))).count();
    let first = t.wait("the six hostile rows", T, |s| rows(s) == 6);
    std::thread::sleep(Duration::from_millis(1500)); // real-time: a few more redraws of the same rows.
    let second = t.screen();
    // And the unfiltered table, where they mix with everything else.
    t.keys(&["Escape"]);
    let third = t.wait("the unfiltered table", T, |s| !s.contains("filter \""));

    let header_row = |s: &str| {
        s.lines()
            .position(|l| l.contains("TOTAL W") && l.contains("COMMAND"))
    };
    for (n, s) in [&first, &second, &third].into_iter().enumerate() {
        let first_line = s.lines().next().unwrap_or("");
        assert!(
            first_line.trim_start().starts_with("kwtop"),
            "capture {n}: header line\n{s}"
        );
        assert_eq!(
            header_row(s),
            header_row(&first),
            "capture {n}: table header moved\n{s}"
        );
        assert!(header_row(s).is_some(), "capture {n}: no table header\n{s}");
        assert!(s.lines().count() <= h, "capture {n}: {} lines", s.lines().count());
        for l in s.lines() {
            let width = unicode_width::UnicodeWidthStr::width(l);
            assert!(width <= w, "capture {n}: a {width}-column line: {l:?}");
        }
        assert!(!s.contains("PWNED"), "capture {n}:\n{s}");
        assert_eq!(
            t.display("#{pane_title}"),
            "KNOWN-TITLE",
            "capture {n}: title changed"
        );
    }
    assert_eq!(rows(&second), 6, "{second}");

    t.keys(&["q"]);
    let s = t.wait("kwtop's exit", T, |s| exit_code(s).is_some());
    assert_eq!(exit_code(&s), Some(0), "{s}");
    t.run(&["pipe-pane", "-t", "hostile"]);
    assert_eq!(t.display("#{pane_title}"), "KNOWN-TITLE");

    // The raw bytes kwtop sent: no OSC (title, clipboard, hyperlink), no bidi override, no
    // escape parameter text, no invalid UTF-8; and the hostile rows were in there.
    wait_for("the pane log", T, || {
        std::fs::metadata(&raw_log).is_ok_and(|m| m.len() > 0)
    });
    let raw = std::fs::read(&raw_log).unwrap();
    eprintln!(
        "hostile: {} bytes written to the pty, no OSC, no bidi control",
        raw.len()
    );
    assert!(raw.windows(8).any(|w| w == b"HOSTILE-"), "the rows were drawn");
    assert!(
        !raw.windows(2).any(|w| w == b"\x1b]"),
        "an OSC sequence reached the terminal"
    );
    assert!(
        !raw.windows(3).any(|w| w == "\u{202E}".as_bytes()),
        "U+202E reached the terminal"
    );
    assert!(
        !raw.windows(3).any(|w| w == "\u{2066}".as_bytes()),
        "U+2066 reached the terminal"
    );
    assert!(
        !raw.windows(5).any(|w| w == b"PWNED"),
        "escape parameter text reached the terminal"
    );
    assert!(
        std::str::from_utf8(&raw).is_ok(),
        "invalid UTF-8 reached the terminal"
    );

    // The session summary written on exit: no raw control characters in any format.
    let (json, doc) = check_summary(&export, 1);
    assert_clean_json("summary JSON", &doc);
    let procs = doc["processes"].as_array().unwrap();
    let hostile_rows = procs
        .iter()
        .filter(|p| p.to_string().contains("HOSTILE-"))
        .count();
    assert!(
        hostile_rows >= 6,
        "{hostile_rows} hostile processes in the summary"
    );
    for ext in ["md", "csv", "json"] {
        let bytes = std::fs::read(json.with_extension(ext)).unwrap();
        let text = String::from_utf8(bytes).expect("exports are UTF-8");
        assert_clean_text(ext, &text, true);
    }

    // `kwtop snapshot --json` and the table on the same processes.
    let out = Command::new(kwtop())
        .args(["--config"])
        .arg(&cfg)
        .args(["snapshot", "--json", "--interval", "1s"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).expect("snapshot is UTF-8");
    assert_clean_text("snapshot JSON text", &text, true);
    assert!(
        !text.contains("\\u001b") && !text.contains("\\u0007"),
        "escaped controls in JSON"
    );
    let snap: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_clean_json("snapshot JSON", &snap);
    let n = snap["processes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| pids.contains(&p["pid"].as_u64().unwrap()))
        .count();
    // The snapshot names processes by `comm`: here the hostile executable names.
    assert_eq!(n, 6, "hostile processes in the snapshot: {snap}");
    let out = Command::new(kwtop())
        .args(["--config"])
        .arg(&cfg)
        .args(["snapshot", "--interval", "1s", "--top", "100000"])
        .output()
        .unwrap();
    let table = String::from_utf8(out.stdout).expect("snapshot table is UTF-8");
    assert_clean_text("snapshot table", &table, true);
}

/// How the export directory is made to fail.
enum Broken {
    /// A 64 KiB tmpfs filled to the brim, mounted at `mnt` in a private mount namespace of the
    /// shell running kwtop; reached from here through `/proc/PID/root`.
    FullTmpfs { mnt: PathBuf },
    /// `blocker` is a plain file, so `blocker/out` cannot be created (ENOTDIR).
    FileInPath { blocker: PathBuf },
}

fn can_mount_tmpfs(dir: &Path) -> bool {
    let mnt = dir.join("probe");
    std::fs::create_dir(&mnt).unwrap();
    let script = format!("mount -t tmpfs -o size=64k kwtop-probe {}", mnt.display());
    Command::new("unshare")
        .args(["-m", "sh", "-c", &script])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
#[ignore = "needs tmux"]
fn full_disk_export_fails_clearly_and_the_session_survives() {
    let d = tempfile::tempdir().unwrap();
    let broken = if can_mount_tmpfs(d.path()) {
        let mnt = d.path().join("full");
        std::fs::create_dir(&mnt).unwrap();
        Broken::FullTmpfs { mnt }
    } else {
        eprintln!("unshare -m / tmpfs unavailable: using a path through a plain file (ENOTDIR)");
        let blocker = d.path().join("blocker");
        std::fs::write(&blocker, "not a directory").unwrap();
        Broken::FileInPath { blocker }
    };
    let (export, launch, error_text) = match &broken {
        Broken::FullTmpfs { mnt } => {
            let cfg = config(d.path(), "full", mnt);
            let m = mnt.display();
            let launch = format!(
                "unshare -m sh -c 'mount -t tmpfs -o size=64k kwtop-full {m} && dd if=/dev/zero of={m}/fill bs=4k 2>/dev/null; exec {} --config {}'; echo rc=$?",
                kwtop(),
                cfg.display()
            );
            (mnt.clone(), launch, "no space left")
        }
        Broken::FileInPath { blocker } => {
            let export = blocker.join("out");
            let cfg = config(d.path(), "full", &export);
            let launch = format!("{} --config {}; echo rc=$?", kwtop(), cfg.display());
            (export, launch, "Not a directory")
        }
    };
    let t = Tmux::shell("full", 200, 40, PROMPT);
    t.type_line(&launch);
    t.wait("the monitor", T, |s| s.contains("TOTAL W"));
    let pid = t.foreground_child().expect("kwtop under the shell");
    // Where the export dir is, seen from outside kwtop's mount namespace.
    let seen = |p: &Path| -> PathBuf {
        match &broken {
            Broken::FullTmpfs { .. } => {
                Path::new(&format!("/proc/{pid}/root")).join(p.strip_prefix("/").unwrap())
            }
            Broken::FileInPath { .. } => p.to_path_buf(),
        }
    };
    std::thread::sleep(Duration::from_millis(800)); // real-time: a few intervals accounted.

    // `e` on the full disk: a clear error in the status line, nothing written.
    t.keys(&["e"]);
    let s = t.wait("the export error", T, |s| s.contains("export failed"));
    assert!(s.contains(error_text), "{s}");
    let clock = |s: &str| s.lines().next().unwrap_or("").to_string();
    let before = clock(&s);
    // The session goes on: samples keep arriving and the header's session clock moves.
    t.wait("the session to go on", T, |s| {
        clock(s) != before && s.contains("TOTAL W")
    });
    assert!(nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), None).is_ok());
    if let Broken::FullTmpfs { .. } = &broken {
        let entries: Vec<_> = std::fs::read_dir(seen(&export))
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(
            entries,
            vec![std::ffi::OsString::from("fill")],
            "nothing but the filler"
        );
    }

    // Make room, press `e` again: the whole session so far is saved.
    match &broken {
        Broken::FullTmpfs { mnt } => std::fs::remove_file(seen(&mnt.join("fill"))).unwrap(),
        Broken::FileInPath { blocker } => {
            std::fs::remove_file(blocker).unwrap();
            std::fs::create_dir(blocker).unwrap();
        }
    }
    t.keys(&["e"]);
    t.wait("a successful export", T, |s| {
        s.contains("session summary written")
    });
    let (_, doc) = check_summary(&seen(&export), 3);
    eprintln!(
        "full disk: `e` failed with {error_text:?}, then saved {} intervals after space was freed",
        doc["intervals"]
    );

    // Break it again and quit: the exit summary fails, says why, and the status is 1.
    match &broken {
        Broken::FullTmpfs { mnt } => {
            let fill = seen(&mnt.join("fill2"));
            let _ = std::fs::write(&fill, vec![0u8; 128 * 1024]);
            let _ = std::fs::write(seen(&mnt.join("fill3")), vec![0u8; 4096]);
        }
        Broken::FileInPath { blocker } => {
            std::fs::rename(blocker, d.path().join("moved")).unwrap();
            std::fs::write(blocker, "not a directory").unwrap();
        }
    }
    t.keys(&["q"]);
    let s = t.wait("kwtop's exit status", T, |s| exit_code(s).is_some());
    assert_eq!(exit_code(&s), Some(1), "{s}");
    assert!(s.contains("session summary not written"), "{s}");
    assert_terminal_restored(&t, "full-disk");
}

/// `kill -9` cannot be caught: what survives is the last periodic checkpoint (`[export] checkpoint`),
/// a complete summary written atomically while the monitor ran.
#[test]
#[ignore = "needs tmux"]
fn kill_9_leaves_the_last_checkpoint() {
    let d = tempfile::tempdir().unwrap();
    let export = d.path().join("export");
    let cfg = d.path().join("kwtop.toml");
    std::fs::write(
        &cfg,
        format!(
            "[sampling]\ninterval = \"200ms\"\n[sources]\nnvml = false\n[export]\ndir = \"{}\"\ncheckpoint = \"1s\"\n",
            export.display()
        ),
    )
    .unwrap();
    let t = Tmux::start("kill9", 120, 40, &[kwtop(), "--config", cfg.to_str().unwrap()]);
    t.wait("the monitor", T, |s| s.contains("TOTAL W"));
    // Wait until a checkpoint covering a few intervals exists, then kill without warning.
    wait_for("a checkpoint with 5 intervals", T, || {
        tmux::json_in(&export)
            .and_then(|p| std::fs::read_to_string(p).ok())
            .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
            .is_some_and(|v| v["intervals"].as_u64().unwrap_or(0) >= 5)
    });
    let pid = t.pane_pid();
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap();
    assert_eq!(
        comm.trim(),
        "kwtop",
        "the pane runs kwtop itself, so SIGKILL hits it"
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let (_, summary) = check_summary(&export, 5);
    assert!(summary["intervals"].as_u64().unwrap() >= 5);
}
