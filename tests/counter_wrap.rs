//! Issue 10 items 1 and 6 through the real binary: a RAPL counter that wraps more than once per
//! `snapshot` interval is read often enough to book all of its energy, and one unreadable RAPL zone
//! drops only that zone, named once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use assert_cmd::cargo::CommandCargoExt;
use serde_json::Value;

/// 60 J: the smallest RAPL range in issue 10 (wraps every 1.2 s at 50 W).
const RANGE_UJ: u64 = 60_000_000;
const WATTS: f64 = 50.0;

fn kwtop() -> Command {
    let mut c = Command::cargo_bin("kwtop").expect("binary");
    c.env_remove("NO_COLOR");
    c
}

/// A config file that disables NVML and points powercap at `powercap`.
fn config(dir: &Path, powercap: &Path) -> PathBuf {
    let p = dir.join("kwtop.toml");
    std::fs::write(
        &p,
        format!(
            "[sources]\nnvml = false\npowercap_root = \"{}\"\n",
            powercap.display()
        ),
    )
    .unwrap();
    p
}

/// One zone laid out like `/sys/class/powercap/intel-rapl:N`.
fn zone(root: &Path, dir: &str, name: &str, uj: u64) -> PathBuf {
    let z = root.join(dir);
    std::fs::create_dir_all(&z).unwrap();
    std::fs::write(z.join("name"), format!("{name}\n")).unwrap();
    std::fs::write(z.join("max_energy_range_uj"), format!("{RANGE_UJ}\n")).unwrap();
    std::fs::write(z.join("energy_uj"), format!("{uj}\n")).unwrap();
    z
}

fn device<'a>(doc: &'a Value, id: &str) -> &'a Value {
    doc["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["id"] == id)
        .unwrap_or_else(|| panic!("no {id} in {doc}"))
}

#[test]
fn snapshot_books_every_wrap_of_a_fast_wrapping_rapl_counter() {
    let dir = tempfile::tempdir().unwrap();
    let pc = dir.path().join("powercap");
    let z = zone(&pc, "intel-rapl:0", "package-0", 0);
    let cfg = config(dir.path(), &pc);

    // The counter draws 50 W: rewritten every ~20 ms (temp file + rename, as sysfs reads are atomic).
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let start = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                let uj = (WATTS * start.elapsed().as_secs_f64() * 1e6) as u64 % (RANGE_UJ + 1);
                let tmp = z.join("energy_uj.tmp");
                std::fs::write(&tmp, format!("{uj}\n")).unwrap();
                std::fs::rename(&tmp, z.join("energy_uj")).unwrap();
                std::thread::sleep(Duration::from_millis(20)); // real-time: the counter must advance while kwtop samples it.
            }
        })
    };
    // real-time: one 3 s interval (2.5 wraps), the case issue 10 reports.
    let out = kwtop()
        .args(["snapshot", "--interval", "3s", "--json", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let cpu = device(&doc, "cpu0");
    let dt = doc["interval_s"].as_f64().unwrap();
    let got = cpu["energy_j"].as_f64().unwrap();
    let want = WATTS * dt;
    eprintln!("60 J counter at 50 W over {dt:.3} s: kwtop booked {got:.2} J, drawn {want:.2} J");
    assert_eq!(cpu["provenance"], "measured");
    assert!(
        (got - want).abs() <= 0.1 * want,
        "kwtop booked {got} J of {want} J (before issue 10: one wrap at most, ~30 J)"
    );
}

#[test]
fn one_unreadable_zone_is_left_out_and_named_once() {
    let dir = tempfile::tempdir().unwrap();
    let pc = dir.path().join("powercap");
    zone(&pc, "intel-rapl:0", "package-0", 1_000);
    let broken = zone(&pc, "intel-rapl:1", "package-1", 2_000);
    // A directory where the counter should be: unreadable even for root (chmod 000 is not).
    std::fs::remove_file(broken.join("energy_uj")).unwrap();
    std::fs::create_dir(broken.join("energy_uj")).unwrap();
    let cfg = config(dir.path(), &pc);
    // real-time: one short measured interval.
    let out = kwtop()
        .args(["snapshot", "--interval", "200ms", "--json", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let ids: Vec<&str> = doc["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["cpu0"], "only the unreadable zone is dropped");
    assert_eq!(device(&doc, "cpu0")["provenance"], "measured");
    let notices: Vec<&str> = doc["notices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    let named: Vec<&&str> = notices
        .iter()
        .filter(|n| n.contains("intel-rapl:1/energy_uj"))
        .collect();
    assert_eq!(named.len(), 1, "{notices:?}");
    assert!(
        named[0].contains("(cpu1)") && !named[0].contains("intel-rapl:0/"),
        "{named:?}"
    );
    assert!(
        !notices.iter().any(|n| n.contains("estimated")),
        "the readable package stays measured: {notices:?}"
    );
}
