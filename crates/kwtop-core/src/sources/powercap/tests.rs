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

/// A directory where the counter should be: unreadable as a file, even for root (a chmod 000 file
/// is not, and tests may run as root).
fn break_counter(root: &Path, zone: &str) {
    let p = root.join(zone).join("energy_uj");
    std::fs::remove_file(&p).expect("rm");
    std::fs::create_dir(&p).expect("dir");
}

/// Issue 10 item 6: one unreadable zone drops only that zone, named once.
#[test]
fn one_unreadable_zone_is_dropped_alone_and_named_once() {
    let t = server_tree();
    break_counter(t.path(), "intel-rapl:0");
    std::fs::write(t.path().join("intel-rapl:1:0/energy_uj"), "lots\n").expect("garbage");
    let mut src = cpu_source(
        t.path(),
        Path::new("/nonexistent"),
        Path::new("/nonexistent"),
        &EstimateConfig::default(),
    );
    let r = src.read();
    let ids: Vec<&str> = r.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(ids, ["cpu1", "dram0"], "the readable zones stay measured");
    assert!(
        r.iter()
            .all(|d| d.estimate.is_none() && d.energy.is_some() && d.error.is_none())
    );
    let n = src.take_notices();
    assert_eq!(n.len(), 1, "{n:?}");
    assert!(
        n[0].contains("intel-rapl:0/energy_uj") && n[0].contains("(cpu0)"),
        "{n:?}"
    );
    assert!(
        n[0].contains("intel-rapl:1:0/energy_uj: not a number") && n[0].contains("(dram1)"),
        "{n:?}"
    );
    assert!(!n[0].contains("(cpu1)") && !n[0].contains("(dram0)"), "{n:?}");
    assert!(
        !n[0].contains("CVE"),
        "not a permission problem: no access hint: {n:?}"
    );
    src.read();
    assert!(src.take_notices().is_empty(), "said once");
    let counters: Vec<String> = src.read_counters().into_iter().map(|(id, _)| id).collect();
    assert_eq!(counters, ["cpu1", "dram0"]);
}

/// No package zone readable, DRAM readable: the CPU is estimated (labelled), DRAM stays measured.
#[test]
fn no_readable_package_estimates_the_cpu_and_keeps_dram_measured() {
    let t = server_tree();
    break_counter(t.path(), "intel-rapl:0");
    break_counter(t.path(), "intel-rapl:1");
    let mut src = cpu_source(
        t.path(),
        Path::new("/nonexistent"),
        Path::new("/nonexistent"),
        &EstimateConfig::default(),
    );
    let r = src.read();
    let ids: Vec<&str> = r.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(ids, ["cpu0", "dram0", "dram1"]);
    assert!(r[0].estimate.is_some() && r[0].energy.is_none());
    assert!(r[1].energy.is_some() && r[2].energy.is_some());
    let n = src.take_notices();
    assert_eq!(n.len(), 1, "{n:?}");
    assert!(
        n[0].contains("estimated, not measured")
            && n[0].contains("intel-rapl:0/energy_uj")
            && n[0].contains("intel-rapl:1/energy_uj")
            && n[0].contains("DRAM is still measured (RAPL: dram0, dram1)"),
        "{n:?}"
    );
    let counters: Vec<String> = src.read_counters().into_iter().map(|(id, _)| id).collect();
    assert_eq!(counters, ["dram0", "dram1"], "only counters, no estimate");
}

#[test]
fn unreadable_counters_fall_back_and_say_why() {
    let t = tempfile::tempdir().expect("tempdir");
    zone(t.path(), "intel-rapl:0", "package-0", 1_000, MAX);
    break_counter(t.path(), "intel-rapl:0");
    let mut src = cpu_source(
        t.path(),
        Path::new("/nonexistent"),
        Path::new("/nonexistent"),
        &EstimateConfig::default(),
    );
    let r = src.read();
    assert_eq!(r.len(), 1);
    assert!(r[0].estimate.is_some());
    let n = src.take_notices();
    assert_eq!(n.len(), 1, "{n:?}");
    assert!(
        n[0].contains("RAPL not readable") && n[0].contains("intel-rapl:0/energy_uj"),
        "{n:?}"
    );
    assert!(!n[0].contains("DRAM"), "{n:?}");
}

#[test]
fn refused_zone_gets_the_access_hint() {
    let z = Zone {
        id: "cpu1".into(),
        kind: DeviceKind::Cpu,
        name: "package-1 (RAPL)".into(),
        dir: PathBuf::from("/sys/class/powercap/intel-rapl:1"),
        wrap_uj: Some(MAX),
    };
    let why = "/sys/class/powercap/intel-rapl:1/energy_uj: Permission denied (os error 13)".to_string();
    let text = describe_dropped(&[(z, ErrorKind::PermissionDenied, why)]);
    assert!(text.contains("Permission denied") && text.contains("(cpu1)") && text.contains("CVE-2020-8694"));
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

/// The zones Linux 5.11+ exposes for AMD Zen (family 17h/19h) in powercap: one `package-N` per
/// socket with a `core` subzone, no DRAM, and AMD's 65.5 kJ range.
#[test]
fn amd_zen_two_socket_powercap_is_measured() {
    const AMD_MAX: u64 = 65_532_610_987;
    let t = tempfile::tempdir().expect("tempdir");
    let r = t.path();
    std::fs::create_dir_all(r.join("intel-rapl")).expect("control type dir");
    zone(r, "intel-rapl:0", "package-0", 11_000, AMD_MAX);
    zone(r, "intel-rapl:0:0", "core", 5_000, AMD_MAX);
    zone(r, "intel-rapl:1", "package-1", 12_000, AMD_MAX);
    zone(r, "intel-rapl:1:0", "core", 6_000, AMD_MAX);
    let mut src = cpu_source(
        r,
        Path::new("/nonexistent"),
        Path::new("/nonexistent"),
        &EstimateConfig::default(),
    );
    let got: Vec<(String, String, Option<u64>)> = src
        .read()
        .into_iter()
        .map(|d| (d.id, d.name, d.energy.map(|e| e.value_uj)))
        .collect();
    assert_eq!(
        got,
        [
            ("cpu0".into(), "package-0 (RAPL)".into(), Some(11_000)),
            ("cpu1".into(), "package-1 (RAPL)".into(), Some(12_000)),
        ]
    );
    assert_eq!(discover(r)[1].wrap_uj, Some(AMD_MAX));
    assert!(src.take_notices().is_empty());
}
