//! Issue 14 items 5 and 7 through the real binary: CPU energy from the perf_event `power` PMU when
//! powercap cannot be read, and a clean estimate with the reason when there is no such PMU.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use serde_json::Value;

fn config(dir: &Path, powercap: &Path, sysfs: &Path) -> PathBuf {
    let p = dir.join("kwtop.toml");
    std::fs::write(
        &p,
        format!(
            "[sources]\nnvml = false\npowercap_root = \"{}\"\nsysfs_root = \"{}\"\n",
            powercap.display(),
            sysfs.display()
        ),
    )
    .unwrap();
    p
}

fn snapshot(cfg: &Path) -> Value {
    let out = Command::cargo_bin("kwtop")
        .unwrap()
        .args(["snapshot", "--json", "--interval", "500ms", "--config"])
        .arg(cfg)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn cpu0(doc: &Value) -> &Value {
    doc["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["id"] == "cpu0")
        .unwrap()
}

fn notices(doc: &Value) -> Vec<String> {
    doc["notices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap().to_string())
        .collect()
}

/// As on this VM: no RAPL zones, no power PMU. The estimate, with both reasons in one notice.
#[test]
fn no_power_pmu_is_a_clean_notice_and_a_labelled_estimate() {
    let dir = tempfile::tempdir().unwrap();
    let empty = tempfile::tempdir().unwrap();
    let doc = snapshot(&config(dir.path(), empty.path(), empty.path()));
    assert_eq!(cpu0(&doc)["provenance"], "estimated");
    let n = notices(&doc);
    let said: Vec<&String> = n.iter().filter(|n| n.contains("no power PMU")).collect();
    assert_eq!(said.len(), 1, "{n:?}");
    assert!(
        said[0].contains("estimated, not measured")
            && said[0].contains("bus/event_source/devices/power absent"),
        "{said:?}"
    );
}

/// A stand-in `power` PMU whose number is the kernel's software PMU and whose `energy-pkg` is
/// cpu-clock (ns) at 10⁻⁹ J per count: CPU 0's clock reads as 1 W, through the real
/// `perf_event_open`. Where CPU-wide events are refused (unprivileged, paranoid > 0) kwtop must say
/// so with the paranoid level and estimate instead.
#[test]
fn the_real_perf_event_open_measures_through_a_stand_in_pmu() {
    let ty = std::fs::read_to_string("/sys/bus/event_source/devices/software/type").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let powercap = tempfile::tempdir().unwrap();
    let sys = tempfile::tempdir().unwrap();
    let pmu = sys.path().join("devices/power");
    std::fs::create_dir_all(pmu.join("events")).unwrap();
    std::fs::create_dir_all(pmu.join("format")).unwrap();
    std::fs::write(pmu.join("type"), ty).unwrap();
    std::fs::write(pmu.join("cpumask"), "0\n").unwrap();
    std::fs::write(pmu.join("format/event"), "config:0-7\n").unwrap();
    std::fs::write(pmu.join("events/energy-pkg"), "event=0x00\n").unwrap();
    std::fs::write(pmu.join("events/energy-pkg.scale"), "1e-9\n").unwrap();
    std::fs::write(pmu.join("events/energy-pkg.unit"), "Joules\n").unwrap();
    std::fs::create_dir_all(sys.path().join("bus/event_source/devices")).unwrap();
    std::os::unix::fs::symlink(
        "../../../devices/power",
        sys.path().join("bus/event_source/devices/power"),
    )
    .unwrap();
    let doc = snapshot(&config(dir.path(), powercap.path(), sys.path()));
    let cpu = cpu0(&doc);
    let n = notices(&doc);
    if cpu["provenance"] == "measured" {
        assert_eq!(cpu["name"], "package-0 (perf_event)", "{cpu}");
        let w = cpu["energy_j"].as_f64().unwrap() / doc["interval_s"].as_f64().unwrap();
        // The counters and the interval are read a few ms apart (around the /proc scan): ±30 %.
        assert!(
            (0.7..1.3).contains(&w),
            "CPU 0's clock at 1 nJ/ns is 1 W, got {w} W: {cpu}"
        );
        assert!(
            n.iter()
                .any(|n| n.contains("measured through perf_event (power/energy-pkg on CPU 0)")),
            "{n:?}"
        );
    } else {
        assert_eq!(cpu["provenance"], "estimated");
        assert!(n.iter().any(|n| n.contains("perf_event_paranoid")), "{n:?}");
    }
}
