#![allow(clippy::unwrap_used, clippy::expect_used)]
//! A dropped SSH link, for real: the live monitor runs as the session leader on a pseudo-terminal
//! whose master side is then closed. The kernel hangs the terminal up (SIGHUP, and every later
//! write to it fails with EIO); kwtop must still write a complete session summary and exit 0,
//! not panic on a failed message to the vanished stderr.
//!
//! Uses `setsid --ctty` (util-linux) to make the pty the monitor's controlling terminal.

#[path = "common/tmux.rs"]
mod tmux;

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Kills the monitor if an assertion fails first, so a failed run leaves no stray process.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

#[test]
fn terminal_hangup_saves_the_summary_and_exits_zero() {
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
    let size = nix::pty::Winsize {
        ws_row: 30,
        ws_col: 100,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    let pty = nix::pty::openpty(Some(&size), None).unwrap();
    // The master must not leak into kwtop, or closing ours would not hang the terminal up.
    nix::fcntl::fcntl(
        &pty.master,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    )
    .unwrap();
    let slave = std::fs::File::from(pty.slave);
    let mut cmd = Command::new("setsid");
    cmd.arg("--ctty")
        .arg(env!("CARGO_BIN_EXE_kwtop"))
        .arg("--config")
        .arg(&cfg)
        .env("TERM", "xterm-256color")
        .stdin(Stdio::from(slave.try_clone().unwrap()))
        .stdout(Stdio::from(slave.try_clone().unwrap()))
        .stderr(Stdio::from(slave));
    let mut child = KillOnDrop(cmd.spawn().expect("setsid runs"));
    // Only the master is left open here: closing it hangs the terminal up.
    drop(cmd);

    // Drain the screen until the monitor has drawn its table and accounted ~1 s, then hang up.
    let mut master = std::fs::File::from(pty.master);
    let mut seen = Vec::new();
    let mut buf = [0u8; 65536];
    let start = Instant::now();
    let mut drawn: Option<Instant> = None;
    loop {
        let n = master.read(&mut buf).unwrap_or(0);
        assert!(n > 0, "the pty closed early: {}", String::from_utf8_lossy(&seen));
        seen.extend_from_slice(&buf[..n]);
        // Answer crossterm's cursor-position query as a terminal would.
        if buf[..n].windows(4).any(|w| w == b"\x1b[6n") {
            master.write_all(b"\x1b[1;1R").unwrap();
        }
        if drawn.is_none() && seen.windows(7).any(|w| w == b"TOTAL W") {
            drawn = Some(Instant::now());
        }
        if drawn.is_some_and(|t| t.elapsed() > Duration::from_millis(1200)) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no table drawn: {}",
            String::from_utf8_lossy(&seen)
        );
    }
    drop(master);

    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(st) = child.0.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < deadline, "kwtop did not exit after the hangup");
        std::thread::sleep(Duration::from_millis(50)); // real-time: waiting for a real process to notice its terminal is gone.
    };
    assert_eq!(status.code(), Some(0), "{status:?}");
    tmux::check_summary(&out, 2);
}
