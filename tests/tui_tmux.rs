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
        Session::named("e2e")
    }

    /// A session on its own tmux server `name` (tests run in parallel in one process).
    fn named(name: &str) -> Session {
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
            t: Tmux::shell(name, 160, 45, PROMPT),
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

/// Wait (polling) until `child` has ended, or fail.
fn wait_exit(child: &mut Child) -> std::process::ExitStatus {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(std::time::Instant::now() < deadline, "the process did not end");
        std::thread::sleep(Duration::from_millis(50)); // real-time: a real process ending.
    }
}

/// Issue 15 item 2: `k` on a real process asks first naming it, any other key cancels (it lives
/// on), `y` sends SIGTERM (seen in its wait status) and the status line says so; `k` on kwtop's
/// own row is refused.
#[test]
#[ignore = "needs tmux"]
fn k_asks_then_signals_the_selected_process() {
    use std::os::unix::process::{CommandExt, ExitStatusExt};
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_kwtop"));
    let t = Session::named("e2e-k");
    // `sleep 1000` under a name no other process has, to find it with the filter.
    let name = format!("kwtop-victim-{}", std::process::id());
    let mut victim = Command::new("sleep")
        .arg0(&name)
        .arg("1000")
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let pid = victim.id();
    t.start_kwtop(&bin);
    t.wait("kwtop", |s| s.contains("TOTAL W"));
    // A sleeping process has no energy yet, so its row is hidden until K.
    t.keys(&["K"]);
    t.keys(&["/"]);
    t.keys(&["-l", &name]);
    t.keys(&["Enter"]);
    t.wait("the victim's row", |s| {
        s.contains(&format!("filter \"{name}\"")) && s.contains(&format!("{name} 1000"))
    });
    t.keys(&["Down"]);
    let prompt = format!("Send SIGTERM to {pid} {name} 1000? y/N  K/9: SIGKILL");
    t.keys(&["k"]);
    t.wait("the prompt", |s| s.contains(&prompt));
    t.keys(&["n"]);
    t.wait("cancelled", |s| {
        s.contains(&format!("cancelled: {pid} not signalled"))
    });
    assert!(victim.try_wait().unwrap().is_none(), "cancel leaves it running");

    t.keys(&["k"]);
    t.wait("the prompt again", |s| s.contains(&prompt));
    t.keys(&["y"]);
    t.wait("the status line", |s| {
        s.contains(&format!("sent SIGTERM to {pid} ({name} 1000)"))
    });
    let status = wait_exit(&mut victim);
    assert_eq!(status.signal(), Some(libc::SIGTERM), "{status:?}");

    // kwtop's own row (found by its config path; another test may run a kwtop too): refused.
    let me = t.kwtop_pid().expect("kwtop's pid under the shell");
    let config = t.config.display().to_string();
    // Esc clears the filter (sent alone: `Esc /` together would read as Alt-/).
    t.keys(&["Escape"]);
    t.wait("the filter cleared", |s| !s.contains("filter \""));
    t.keys(&["/"]);
    t.keys(&["-l", &config]);
    t.keys(&["Enter"]);
    t.wait("kwtop's own row", |s| {
        s.contains(&format!("filter \"{config}\"")) && s.contains(&format!("{me} "))
    });
    t.keys(&["Down", "k"]);
    let s = t.wait("the refusal", |s| {
        s.contains(&format!("refused: {me} is kwtop itself"))
    });
    assert!(!s.contains("Send SIGTERM"), "{s}");
    t.keys(&["q"]);
    t.wait("prompt after q", prompt_back);
}
