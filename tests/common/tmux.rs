//! Shared driver for the end-to-end tests that run the real binary in a real terminal (tmux):
//! a private tmux server with one pane, keys, screen captures, polling with a deadline, and the
//! check that a session summary written by the live monitor is complete and conserves energy.
//!
//! Included with `#[path = "common/tmux.rs"] mod tmux;`; not every test uses every helper.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// Poll `f` until it holds, or fail naming `what`.
pub fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100)); // real-time: the binary runs in a real terminal on real sensors.
    }
}

/// A private tmux server (`tmux -L socket`) with one session; killed on drop.
pub struct Tmux {
    pub socket: String,
    pub target: String,
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .output();
    }
}

impl Tmux {
    /// A detached `width`x`height` session running `command` (an argv), no user config.
    pub fn start(name: &str, width: u16, height: u16, command: &[&str]) -> Tmux {
        let t = Tmux {
            socket: format!("kwtop-{name}-{}", std::process::id()),
            target: name.to_string(),
        };
        let (w, h) = (width.to_string(), height.to_string());
        let out = t.run(
            &[
                "-f",
                "/dev/null",
                "new-session",
                "-d",
                "-x",
                &w,
                "-y",
                &h,
                "-s",
                name,
            ]
            .into_iter()
            .chain(command.iter().copied())
            .collect::<Vec<_>>(),
        );
        assert!(
            out.status.success(),
            "tmux new-session: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        t
    }

    /// A session running `sh` with the prompt `prompt` and TERM=xterm-256color.
    pub fn shell(name: &str, width: u16, height: u16, prompt: &str) -> Tmux {
        let ps1 = format!("PS1={prompt} ");
        let t = Tmux::start(name, width, height, &["env", &ps1, "TERM=xterm-256color", "sh"]);
        t.wait("the shell prompt", Duration::from_secs(10), |s| {
            s.contains(prompt)
        });
        t
    }

    /// Run `tmux -L socket ARGS`.
    pub fn run(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("tmux runs")
    }

    /// Run a tmux command and return its stdout.
    pub fn out(&self, args: &[&str]) -> String {
        String::from_utf8_lossy(&self.run(args).stdout).into_owned()
    }

    /// `send-keys` to the pane (key names such as `Enter`, `C-c`, or `-l` and literal text).
    pub fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", &self.target];
        args.extend_from_slice(keys);
        self.run(&args);
    }

    /// Type `line` literally and press Enter.
    pub fn type_line(&self, line: &str) {
        self.keys(&["-l", line]);
        self.keys(&["Enter"]);
    }

    /// The visible screen as text.
    pub fn screen(&self) -> String {
        self.out(&["capture-pane", "-p", "-t", &self.target])
    }

    /// The scrollback and the screen, wrapped lines joined.
    pub fn history(&self) -> String {
        self.out(&["capture-pane", "-p", "-J", "-S", "-", "-t", &self.target])
    }

    /// `display -p FORMAT` for the pane, e.g. `#{pane_title}`, `#{alternate_on}`.
    pub fn display(&self, format: &str) -> String {
        self.out(&["display", "-p", "-t", &self.target, format])
            .trim_end_matches('\n')
            .to_string()
    }

    /// Wait until the screen satisfies `pred`, or fail showing it.
    pub fn wait(&self, what: &str, timeout: Duration, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let s = self.screen();
            if pred(&s) {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; screen:\n{s}"
            );
            std::thread::sleep(Duration::from_millis(100)); // real-time: polling a real terminal driven by a real process.
        }
    }

    /// The pid of the pane's first process (the shell, or the command it was started with).
    pub fn pane_pid(&self) -> u32 {
        self.display("#{pane_pid}").trim().parse().expect("pane pid")
    }

    /// The first child of the pane's process (the program the shell is running), if any.
    pub fn foreground_child(&self) -> Option<u32> {
        let shell = self.pane_pid();
        let children = std::fs::read_to_string(format!("/proc/{shell}/task/{shell}/children")).ok()?;
        children.split_whitespace().next()?.parse().ok()
    }
}

/// The newest `*.json` file in `dir`.
pub fn json_in(dir: &Path) -> Option<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files.pop()
}

/// Check the session summary the live monitor wrote into `dir`: the JSON parses as
/// `kwtop.summary/1` with at least `min_intervals` intervals, totals equal the device totals, each
/// device's energy equals its processes + idle + unattributed, the Markdown twin is complete and the
/// CSV has one row per process. Returns the JSON path and document.
pub fn check_summary(dir: &Path, min_intervals: u64) -> (PathBuf, serde_json::Value) {
    let json = json_in(dir).unwrap_or_else(|| panic!("no JSON summary in {}", dir.display()));
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).expect("summary JSON parses");
    assert_eq!(doc["schema"], "kwtop.summary/1");
    assert!(doc["intervals"].as_u64().unwrap() >= min_intervals, "{doc}");
    let devices = doc["devices"].as_array().unwrap();
    let dev_sum: f64 = devices.iter().map(|d| d["energy_j"].as_f64().unwrap()).sum();
    let total = doc["totals"]["energy_j"].as_f64().unwrap();
    assert!(total > 0.0, "{doc}");
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
            (d["energy_j"].as_f64().unwrap() - parts).abs() < 1e-6 * parts.max(1.0),
            "{id}: {d}"
        );
    }
    let md = std::fs::read_to_string(json.with_extension("md")).expect("the Markdown summary");
    assert!(md.contains("## Method and provenance"), "{md}");
    let csv = std::fs::read_to_string(json.with_extension("csv")).expect("the CSV summary");
    assert_eq!(
        csv.lines().count(),
        1 + doc["processes"].as_array().unwrap().len()
    );
    (json, doc)
}
