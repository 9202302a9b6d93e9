//! kwtop as an unprivileged user: RAPL counters readable by root only (as since Linux 5.10) and other
//! users' /proc entries partly hidden. kwtop must run, explain what it cannot see, and attribute what it
//! can. Needs root to create the user and the root-only files; CI runs as root.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

const USER: &str = "kwtop-test";

fn ensure_user() {
    let exists = Command::new("id").arg(USER).output().unwrap().status.success();
    if !exists {
        let st = Command::new("useradd")
            .args([
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                USER,
            ])
            .status()
            .unwrap();
        assert!(st.success(), "useradd failed");
    }
}

fn uid_of(user: &str) -> u32 {
    let out = Command::new("id").args(["-u", user]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

fn write(path: &Path, text: &str, mode: u32) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// `/proc/stat` in the kernel's format (all lines procfs expects).
fn kernel_stat(busy: u64, idle: u64) -> String {
    format!(
        "cpu  {busy} 0 0 {idle} 0 0 0 0 0 0\ncpu0 {busy} 0 0 {idle} 0 0 0 0 0 0\nintr 0\nctxt 0\nbtime 1700000000\n\
         processes 1\nprocs_running 1\nprocs_blocked 0\nsoftirq 0 0 0 0 0 0 0 0 0 0 0\n"
    )
}

/// One /proc/PID entry in the kernel's formats.
fn proc_entry(root: &Path, pid: u32, comm: &str, ticks: u64, uid: u32, dir_mode: u32) {
    let d = root.join(pid.to_string());
    std::fs::create_dir_all(&d).unwrap();
    let stat = format!(
        "{pid} ({comm}) S 1 {pid} {pid} 0 -1 4194304 100 0 0 0 {ticks} 0 0 0 20 0 1 0 100 3133440 379 \
         18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n"
    );
    write(&d.join("stat"), &stat, 0o444);
    write(
        &d.join("status"),
        &format!("Name:\t{comm}\nUid:\t{uid}\t{uid}\t{uid}\t{uid}\n"),
        0o444,
    );
    write(&d.join("cmdline"), &format!("{comm}\0"), 0o444);
    write(&d.join("cgroup"), "0::/user.slice\n", 0o444);
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(dir_mode)).unwrap();
}

#[test]
#[ignore = "needs root: creates an unprivileged user and root-only files"]
fn unprivileged_user_gets_an_explained_estimate_and_what_it_can_see() {
    assert!(nix::unistd::geteuid().is_root(), "run as root (CI does)");
    ensure_user();
    let uid = uid_of(USER);
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();

    // RAPL as on a kernel ≥ 5.10: energy_uj 0400 root.
    let zone = dir.path().join("powercap/intel-rapl:0");
    std::fs::create_dir_all(&zone).unwrap();
    write(&zone.join("name"), "package-0\n", 0o444);
    write(&zone.join("max_energy_range_uj"), "262143328850\n", 0o444);
    write(&zone.join("energy_uj"), "123456\n", 0o400);

    // A /proc tree: our user's busy process, and another user's process hidden (hidepid-like: 0700 root).
    let proc_root = dir.path().join("proc");
    std::fs::create_dir_all(&proc_root).unwrap();
    write(&proc_root.join("stat"), &kernel_stat(0, 100), 0o644);
    write(&proc_root.join("uptime"), "10.00 5.00\n", 0o644);
    write(
        &proc_root.join("cpuinfo"),
        "model name\t: Test CPU\nphysical id\t: 0\n",
        0o444,
    );
    proc_entry(&proc_root, 100, "mine", 0, uid, 0o755);
    proc_entry(&proc_root, 200, "theirs", 0, 0, 0o700);

    let cfg = dir.path().join("kwtop.toml");
    write(
        &cfg,
        &format!(
            "[sources]\nnvml = false\nproc_root = \"{}\"\npowercap_root = \"{}\"\n",
            proc_root.display(),
            dir.path().join("powercap").display()
        ),
        0o644,
    );

    // Advance the fixture's counters while kwtop measures, so our process has CPU time to be charged.
    let bin = env!("CARGO_BIN_EXE_kwtop");
    let child = Command::new("setpriv")
        .args([
            "--reuid",
            &uid.to_string(),
            "--regid",
            &uid.to_string(),
            "--clear-groups",
            "--",
        ])
        .arg(bin)
        .args(["snapshot", "--json", "--interval", "1s", "--config"])
        .arg(&cfg)
        .env("HOME", "/nonexistent")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(400)); // real-time: the first sample happens right after start; change the counters before the second.
    write(&proc_root.join("stat"), &kernel_stat(60, 140), 0o644);
    std::fs::set_permissions(proc_root.join("100"), std::fs::Permissions::from_mode(0o755)).unwrap();
    write(
        &proc_root.join("100/stat"),
        "100 (mine) S 1 100 100 0 -1 4194304 100 0 0 0 30 0 0 0 20 0 1 0 100 3133440 379 \
         18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n",
        0o444,
    );
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "kwtop must run unprivileged: {stderr}");
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();

    let cpu = &doc["devices"][0];
    assert_eq!(cpu["provenance"], "estimated", "{doc}");
    let notices: Vec<String> = doc["notices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap().to_string())
        .collect();
    let all = notices.join("\n");
    assert!(
        all.contains("Permission denied") || all.contains("permission denied"),
        "{all}"
    );
    assert!(
        all.contains("CVE-2020-8694") && all.contains("chmod"),
        "how to grant access: {all}"
    );
    assert!(
        all.contains("could not be read"),
        "hidden processes explained: {all}"
    );

    let mine = doc["processes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["pid"] == 100)
        .expect("own process attributed");
    assert!(mine["energy_j"].as_f64().unwrap() > 0.0);
    assert_eq!(mine["user"], USER);
    assert!(
        doc["processes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["pid"] != 200),
        "hidden process not invented"
    );
    let e = cpu["energy_j"].as_f64().unwrap();
    let parts = mine["energy_j"].as_f64().unwrap()
        + doc["idle_j"]["cpu0"].as_f64().unwrap()
        + doc["unattributed_j"]["cpu0"].as_f64().unwrap();
    assert!((e - parts).abs() <= 1e-6 * e, "conservation: {e} vs {parts}");
}
