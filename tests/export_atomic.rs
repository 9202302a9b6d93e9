#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Atomic export: a writer killed (SIGKILL) in the middle of a write leaves the previous complete
//! file, never a partial one, and its temp file is swept by the next write.

use std::io::Write;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

const CHILD_ENV: &str = "KWTOP_TEST_ATOMIC_CHILD_DIR";

/// Runs only inside the child process started by `killed_writer_leaves_no_partial_file`.
#[test]
fn child_writer_that_hangs_mid_write() {
    let Some(dir) = std::env::var_os(CHILD_ENV).map(PathBuf::from) else {
        return;
    };
    let target = dir.join("summary.md");
    let _ = kwtop::export::write_atomic_with(&target, |f| {
        f.write_all(b"# half of a new summ")?;
        f.flush()?;
        std::fs::write(dir.join("ready"), b"1")?;
        std::thread::sleep(Duration::from_secs(60)); // real-time: hang here until the parent kills us.
        f.write_all(b"ary\n")
    });
}

#[test]
fn killed_writer_leaves_no_partial_file() {
    let d = tempfile::tempdir().unwrap();
    let target = d.path().join("summary.md");
    kwtop::export::write_atomic(&target, b"# the old complete summary\n").unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_writer_that_hangs_mid_write", "--nocapture"])
        .env(CHILD_ENV, d.path())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !d.path().join("ready").exists() {
        assert!(Instant::now() < deadline, "child writer never started");
        std::thread::sleep(Duration::from_millis(20)); // real-time: waiting for the child process to reach the middle of its write.
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(
        std::fs::read_to_string(&target).unwrap(),
        "# the old complete summary\n"
    );
    let leftovers: Vec<_> = std::fs::read_dir(d.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert_eq!(leftovers.len(), 1, "the killed writer's temp file: {leftovers:?}");
    // The next write replaces the target completely and sweeps the dead writer's temp file.
    kwtop::export::write_atomic(&target, b"# new\n").unwrap();
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "# new\n");
    let tmp_left = std::fs::read_dir(d.path())
        .unwrap()
        .flatten()
        .any(|e| e.file_name().to_string_lossy().ends_with(".tmp"));
    assert!(!tmp_left);
}

#[test]
fn killed_first_writer_leaves_no_target_at_all() {
    let d = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_writer_that_hangs_mid_write", "--nocapture"])
        .env(CHILD_ENV, d.path())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !d.path().join("ready").exists() {
        assert!(Instant::now() < deadline, "child writer never started");
        std::thread::sleep(Duration::from_millis(20)); // real-time: waiting for the child process to reach the middle of its write.
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!d.path().join("summary.md").exists(), "no partial summary.md");
}

#[test]
fn full_disk_is_reported_clearly() {
    // /dev/full returns ENOSPC on write; a directory-free check of the error path with a real device.
    let d = tempfile::tempdir().unwrap();
    let e = kwtop::export::write_atomic_with(&d.path().join("x.json"), |f| {
        let mut full = std::fs::OpenOptions::new().write(true).open("/dev/full")?;
        full.write_all(b"x")?;
        full.flush()?;
        f.write_all(b"unreached")
    })
    .unwrap_err();
    assert!(e.to_string().contains("no space left"), "{e}");
    assert!(!d.path().join("x.json").exists());
    assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 0);
}
