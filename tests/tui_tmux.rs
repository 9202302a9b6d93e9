#![allow(clippy::unwrap_used, clippy::expect_used)]
//! End-to-end: the real binary in a real terminal (tmux). The screen shows the header, the table
//! and a known busy process; sort, filter and `q` work; after `q`, Ctrl-C and SIGTERM the shell
//! prompt is back on the main screen.
//!
//! Needs tmux (`.ci/run` installs it); run with `cargo test --test tui_tmux -- --include-ignored`.

#[path = "common/tmux.rs"]
mod tmux;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tmux::Tmux;

const PROMPT: &str = "E2E-PROMPT$";

/// A shell in tmux (`e2e`), a busy loop to look for, and a config exporting into a temp dir.
struct Session {
    t: Tmux,
    busy: Child,
    _dir: tempfile::TempDir,
    config: PathBuf,
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = self.busy.kill();
        let _ = self.busy.wait();
    }
}

impl std::ops::Deref for Session {
    type Target = Tmux;
    fn deref(&self) -> &Tmux {
        &self.t
    }
}

impl Session {
    fn start() -> Session {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("kwtop.toml");
        let export = dir.path().join("summaries");
        std::fs::write(
            &config,
            format!(
                "[sampling]\ninterval = \"500ms\"\n[sources]\nnvml = false\n[export]\ndir = \"{}\"\n",
                export.display()
            ),
        )
        .unwrap();
        let busy = Command::new("sh")
            .args(["-c", "while :; do :; done"])
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        Session {
            t: Tmux::shell("e2e", 160, 45, PROMPT),
            busy,
            _dir: dir,
            config,
        }
    }

    /// Wait until the screen satisfies `pred` (polling a real terminal), or fail showing it.
    fn wait(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        self.t.wait(what, Duration::from_secs(20), pred)
    }

    fn start_kwtop(&self, bin: &Path) {
        self.keys(&[
            &format!("{} --config {}", bin.display(), self.config.display()),
            "Enter",
        ]);
    }

    /// The process running in the pane under the shell, if any.
    fn kwtop_pid(&self) -> Option<u32> {
        self.foreground_child()
    }
}

/// kwtop has exited and the shell prompts again: the screen's last non-empty line is a fresh prompt.
/// (The old prompt line shows again as soon as kwtop leaves the alternate screen, while it still
/// writes its summary; keys typed then can be discarded when it restores the terminal mode.)
fn prompt_back(s: &str) -> bool {
    !s.contains("q quit")
        && s.lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .is_some_and(|l| l.trim_end() == PROMPT)
}

#[test]
#[ignore = "needs tmux"]
fn live_monitor_in_tmux() {
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_kwtop"));
    let t = Session::start();
    let busy = t.busy.id().to_string();
    t.start_kwtop(&bin);

    // Header, table and the busy loop near the top (it uses a whole core).
    let s = t.wait("header, table and the busy process", |s| {
        s.contains("kwtop") && s.contains("TOTAL W") && s.contains(&busy) && s.contains("while :")
    });
    assert!(s.contains("session"), "{s}");
    assert!(
        s.contains("idle") && s.contains("unattr"),
        "idle and unattributed rows: {s}"
    );

    // Sort: `s` moves from TOTAL W to the next column, `r` reverses.
    t.keys(&["s"]);
    t.wait("sort by AVG W", |s| s.contains("sort AVG W"));
    t.keys(&["r"]);
    t.wait("reversed sort", |s| s.contains("sort AVG W▲"));
    t.keys(&["r", "<"]);
    t.wait("sort back on TOTAL W", |s| s.contains("sort TOTAL W▼"));

    // Filter by the busy process's pid: it stays, the tmux server does not.
    t.keys(&["/"]);
    t.keys(&["-l", &busy]);
    t.keys(&["Enter"]);
    let s = t.wait("the filter", |s| s.contains(&format!("filter \"{busy}\"")));
    assert!(s.contains("while :"), "{s}");
    assert!(!s.contains("tmux"), "filtered out: {s}");

    // q: back to the shell on the main screen, terminal usable.
    t.keys(&["q"]);
    t.wait("prompt after q", prompt_back);
    t.keys(&["-l", "echo e2e-$((40+2))"]);
    t.keys(&["Enter"]);
    t.wait("a working shell", |s| s.contains("e2e-42"));

    // Ctrl-C restores the terminal too.
    t.keys(&["clear", "Enter"]);
    t.start_kwtop(&bin);
    t.wait("kwtop again", |s| s.contains("TOTAL W"));
    t.keys(&["C-c"]);
    t.wait("prompt after Ctrl-C", prompt_back);

    // SIGTERM (e.g. `kill`, or systemd stopping a session) restores it as well.
    t.keys(&["clear", "Enter"]);
    t.start_kwtop(&bin);
    t.wait("kwtop a third time", |s| s.contains("TOTAL W"));
    let pid = t.kwtop_pid().expect("kwtop's pid under the shell");
    let ok = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    t.wait("prompt after SIGTERM", prompt_back);
}
