use super::*;

/// A powercap tree laid out like /sys/class/powercap on a two-socket Intel server.
fn zone(root: &Path, name: &str, zname: &str, uj: u64, max: u64) {
    let d = root.join(name);
    std::fs::create_dir_all(&d).expect("zone dir");
    std::fs::write(d.join("name"), format!("{zname}\n")).expect("name");
    std::fs::write(d.join("energy_uj"), format!("{uj}\n")).expect("energy");
    std::fs::write(d.join("max_energy_range_uj"), format!("{max}\n")).expect("max");
    std::fs::write(d.join("enabled"), "1\n").expect("enabled");
}

const MAX: u64 = 262_143_328_850;

fn server_tree() -> tempfile::TempDir {
    let t = tempfile::tempdir().expect("tempdir");
    let r = t.path();
    std::fs::create_dir_all(r.join("intel-rapl")).expect("control type dir");
    zone(r, "intel-rapl:0", "package-0", 1_000, MAX);
    zone(r, "intel-rapl:0:0", "core", 500, MAX);
    zone(r, "intel-rapl:0:1", "dram", 300, 65_712_999_613);
    zone(r, "intel-rapl:1", "package-1", 2_000, MAX);
    zone(r, "intel-rapl:1:0", "dram", 400, 65_712_999_613);
    zone(r, "intel-rapl:2", "psys", 9_999, MAX);
    zone(r, "intel-rapl-mmio:0", "package-0", 1_001, MAX);
    t
}

#[test]
fn discovers_packages_and_dram_never_psys_or_duplicates() {
    let t = server_tree();
    let zones = discover(t.path());
    let ids: Vec<&str> = zones.iter().map(|z| z.id.as_str()).collect();
    assert_eq!(ids, ["cpu0", "cpu1", "dram0", "dram1"]);
    assert_eq!(zones[0].wrap_uj, Some(MAX));
    assert_eq!(zones[2].kind, DeviceKind::Dram);
    let mut src = RaplSource::new(zones);
    let r = src.read();
    assert_eq!(
        r[0].energy,
        Some(EnergyCounter {
            value_uj: 1_000,
            wrap_uj: Some(MAX)
        })
    );
    assert_eq!(r[3].energy.map(|e| e.value_uj), Some(400));
}

#[test]
fn psys_is_used_only_without_packages() {
    let t = tempfile::tempdir().expect("tempdir");
    zone(t.path(), "intel-rapl:0", "psys", 10, MAX);
    let zones = discover(t.path());
    assert_eq!(zones.len(), 1);
    assert!(zones[0].name.contains("psys"));
}

#[test]
fn amd_layout_package_and_core_only() {
    let t = tempfile::tempdir().expect("tempdir");
    zone(t.path(), "intel-rapl:0", "package-0", 10, MAX);
    zone(t.path(), "intel-rapl:0:0", "core", 5, MAX);
    let ids: Vec<String> = discover(t.path()).into_iter().map(|z| z.id).collect();
    assert_eq!(ids, ["cpu0"]);
}

#[test]
fn zone_that_disappears_is_na_and_comes_back() {
    let t = server_tree();
    let mut src = RaplSource::new(discover(t.path()));
    std::fs::remove_file(t.path().join("intel-rapl:1/energy_uj")).expect("rm");
    let r = src.read();
    assert!(r[1].energy.is_none());
    assert!(
        r[1].error
            .as_deref()
            .unwrap_or("")
            .contains("intel-rapl:1/energy_uj"),
        "{:?}",
        r[1].error
    );
    assert!(r[0].energy.is_some(), "the other zones keep working");
    std::fs::write(t.path().join("intel-rapl:1/energy_uj"), "2500\n").expect("back");
    assert_eq!(src.read()[1].energy.map(|e| e.value_uj), Some(2500));
}

#[test]
fn garbage_counter_is_an_error_not_zero() {
    let t = server_tree();
    std::fs::write(t.path().join("intel-rapl:0/energy_uj"), "lots\n").expect("write");
    let r = RaplSource::new(discover(t.path())).read();
    assert!(r[0].energy.is_none());
    assert!(r[0].error.as_deref().unwrap_or("").contains("not a number"));
}

#[test]
fn no_rapl_falls_back_to_estimate_with_one_notice() {
    let empty = tempfile::tempdir().expect("tempdir");
    let mut src = cpu_source(
        empty.path(),
        Path::new("/nonexistent"),
        Path::new("/nonexistent"),
        &EstimateConfig::default(),
    );
    let r = src.read();
    assert_eq!(r.len(), 1);
    assert!(r[0].estimate.is_some());
    let notices = src.take_notices();
    assert_eq!(notices.len(), 1);
    assert!(notices[0].contains("estimated"), "{notices:?}");
    assert!(src.take_notices().is_empty(), "said once");
}

#[test]
fn unreadable_counter_falls_back_and_says_why() {
    let t = server_tree();
    // A directory where the counter should be: unreadable as a file, even for root.
    let p = t.path().join("intel-rapl:0/energy_uj");
    std::fs::remove_file(&p).expect("rm");
    std::fs::create_dir(&p).expect("dir");
    let mut src = cpu_source(
        t.path(),
        Path::new("/nonexistent"),
        Path::new("/nonexistent"),
        &EstimateConfig::default(),
    );
    assert!(src.read()[0].estimate.is_some());
    let n = src.take_notices();
    assert!(
        n[0].contains("RAPL not readable") && n[0].contains("intel-rapl:0/energy_uj"),
        "{n:?}"
    );
}

#[test]
fn readable_rapl_is_used() {
    let t = server_tree();
    let mut src = cpu_source(
        t.path(),
        Path::new("/nonexistent"),
        Path::new("/nonexistent"),
        &EstimateConfig::default(),
    );
    let r = src.read();
    assert_eq!(r.len(), 4);
    assert!(r.iter().all(|d| d.estimate.is_none() && d.energy.is_some()));
    assert!(src.take_notices().is_empty());
}

#[test]
fn permission_hint_explains_how_to_grant_access() {
    assert!(RAPL_ACCESS_HINT.contains("CVE-2020-8694"));
    assert!(RAPL_ACCESS_HINT.contains("chmod"));
    assert!(RAPL_ACCESS_HINT.contains("udev"));
}
