use super::*;
use crate::sources::estimate::EstimateConfig;
use crate::sources::perf_rapl::{PerfCount, PerfOpen};
use crate::sources::powercap::cpu_source_with;

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, text).expect("write");
}

/// A sysfs tree with the amd_energy hwmon laid out as the driver does: the platform device
/// `amd_energy.0` with its `hwmon/hwmonN`, `class/hwmon/hwmonN` a symlink to it, `Ecore000…` labels
/// for `cores` cores, then one `EsocketN` per NUMA node; nodes `n` → package `node_pkg[n]`, each
/// node `cpus_per_node` CPUs. A k10temp hwmon beside it (not ours).
fn amd_tree(cores: u32, node_pkg: &[u32], socket_uj: &[u64]) -> tempfile::TempDir {
    let t = tempfile::tempdir().expect("tempdir");
    let r = t.path();
    let hw = r.join("devices/platform/amd_energy.0/hwmon/hwmon3");
    write(&hw.join("name"), "amd_energy\n");
    for c in 0..cores {
        write(
            &hw.join(format!("energy{}_label", c + 1)),
            &format!("Ecore{c:03}\n"),
        );
        write(&hw.join(format!("energy{}_input", c + 1)), "123456\n");
    }
    for (n, uj) in socket_uj.iter().enumerate() {
        let ch = cores + 1 + n as u32;
        write(&hw.join(format!("energy{ch}_label")), &format!("Esocket{n}\n"));
        write(&hw.join(format!("energy{ch}_input")), &format!("{uj}\n"));
    }
    let k10 = r.join("devices/pci0000:00/0000:00:18.3/hwmon/hwmon2");
    write(&k10.join("name"), "k10temp\n");
    write(&k10.join("temp1_input"), "45000\n");
    std::fs::create_dir_all(r.join("class/hwmon")).expect("class");
    std::os::unix::fs::symlink(
        "../../devices/platform/amd_energy.0/hwmon/hwmon3",
        r.join("class/hwmon/hwmon3"),
    )
    .expect("symlink");
    std::os::unix::fs::symlink(
        "../../devices/pci0000:00/0000:00:18.3/hwmon/hwmon2",
        r.join("class/hwmon/hwmon2"),
    )
    .expect("symlink");
    let per_node = 16;
    for (n, pkg) in node_pkg.iter().enumerate() {
        let first = n as u32 * per_node;
        write(
            &r.join(format!("devices/system/node/node{n}/cpulist")),
            &format!("{first}-{}\n", first + per_node - 1),
        );
        write(
            &r.join(format!(
                "devices/system/cpu/cpu{first}/topology/physical_package_id"
            )),
            &format!("{pkg}\n"),
        );
    }
    t
}

#[test]
fn two_sockets_are_measured_cores_left_out() {
    let t = amd_tree(4, &[0, 1], &[1_000_000, 2_500_000]);
    let found = discover(t.path());
    assert!(found.notes.is_empty());
    let mut src = AmdEnergySource::open(found).expect("readable");
    let r = src.read();
    let got: Vec<(&str, &str, Option<EnergyCounter>)> = r
        .iter()
        .map(|d| (d.id.as_str(), d.name.as_str(), d.energy))
        .collect();
    let c = |value_uj| {
        Some(EnergyCounter {
            value_uj,
            wrap_uj: None,
        })
    };
    assert_eq!(
        got,
        [
            ("cpu0", "package-0 (amd_energy)", c(1_000_000)),
            ("cpu1", "package-1 (amd_energy)", c(2_500_000)),
        ]
    );
    assert_eq!(src.read_counters().len(), 2);
    assert!(src.take_notices().is_empty());
}

/// NPS2: two NUMA nodes per socket, four Esocket channels reading two packages.
#[test]
fn nodes_of_one_package_are_counted_once() {
    let t = amd_tree(2, &[0, 0, 1, 1], &[10, 10, 20, 20]);
    let found = discover(t.path());
    let ids: Vec<&str> = found.sockets.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["cpu0", "cpu1"]);
    assert!(
        found.sockets[1].input.ends_with("energy5_input"),
        "{:?}",
        found.sockets[1]
    );
    assert_eq!(found.notes.len(), 2, "{:?}", found.notes);
    assert!(
        found.notes[0].contains("Esocket1 reads the same package as Esocket0"),
        "{:?}",
        found.notes
    );
    assert!(
        found.notes[1].contains("Esocket3 reads the same package as Esocket2"),
        "{:?}",
        found.notes
    );
}

/// Without node topology the channel's node number is its id, each counted.
#[test]
fn without_topology_each_channel_is_a_package() {
    let t = amd_tree(1, &[], &[10, 20]);
    let ids: Vec<String> = discover(t.path()).sockets.into_iter().map(|s| s.id).collect();
    assert_eq!(ids, ["cpu0", "cpu1"]);
}

#[test]
fn an_unreadable_socket_is_left_out_alone_and_none_readable_is_an_error() {
    let t = amd_tree(1, &[0, 1], &[10, 20]);
    let input = t
        .path()
        .join("devices/platform/amd_energy.0/hwmon/hwmon3/energy3_input");
    std::fs::remove_file(&input).expect("rm");
    std::fs::create_dir(&input).expect("a directory: unreadable even for root");
    let mut src = AmdEnergySource::open(discover(t.path())).expect("one readable");
    assert_eq!(src.ids(), ["cpu0"]);
    let n = src.take_notices();
    assert!(
        n.len() == 1 && n[0].contains("energy3_input") && n[0].contains("(cpu1)"),
        "{n:?}"
    );
    std::fs::write(
        t.path()
            .join("devices/platform/amd_energy.0/hwmon/hwmon3/energy2_input"),
        "lots\n",
    )
    .expect("garbage");
    let Err(why) = AmdEnergySource::open(discover(t.path())) else {
        panic!("nothing readable");
    };
    assert!(
        why.contains("amd_energy not readable") && why.contains("not a number"),
        "{why}"
    );
}

#[test]
fn no_amd_energy_hwmon_is_nothing_found() {
    let t = tempfile::tempdir().expect("tempdir");
    assert_eq!(discover(t.path()), Found::default());
}

struct NeverOpen(u32);
impl PerfOpen for NeverOpen {
    fn open(&mut self, _: u32, _: u64, _: u32) -> std::io::Result<Box<dyn PerfCount>> {
        self.0 += 1;
        Err(std::io::Error::from_raw_os_error(libc::EACCES))
    }
}

/// No powercap zones: amd_energy is chosen before perf_event, said once with powercap's why.
#[test]
fn amd_energy_is_chosen_before_perf_event() {
    let t = amd_tree(2, &[0, 1], &[10, 20]);
    let powercap = tempfile::tempdir().expect("tempdir");
    let mut perf = NeverOpen(0);
    let mut src = cpu_source_with(
        powercap.path(),
        Path::new("/nonexistent"),
        t.path(),
        &EstimateConfig::default(),
        &mut perf,
    );
    assert_eq!(perf.0, 0, "perf_event not tried");
    let r = src.read();
    assert!(r.iter().all(|d| d.estimate.is_none() && d.energy.is_some()) && r.len() == 2);
    let n = src.take_notices();
    assert_eq!(n.len(), 1, "{n:?}");
    assert!(
        n[0].contains("measured by the amd_energy hwmon driver") && n[0].contains("no RAPL zones"),
        "{n:?}"
    );
}

/// amd_energy present but unreadable: perf_event is next, and its notice says why not amd_energy.
#[test]
fn unreadable_amd_energy_is_named_when_perf_event_is_chosen() {
    let t = amd_tree(1, &[0], &[10]);
    let input = t
        .path()
        .join("devices/platform/amd_energy.0/hwmon/hwmon3/energy2_input");
    std::fs::remove_file(&input).expect("rm");
    std::fs::create_dir(&input).expect("a directory: unreadable even for root");
    let pmu = t.path().join("devices/power");
    write(&pmu.join("type"), "23\n");
    write(&pmu.join("cpumask"), "0\n");
    write(&pmu.join("format/event"), "config:0-7\n");
    write(&pmu.join("events/energy-pkg"), "event=0x02\n");
    write(
        &pmu.join("events/energy-pkg.scale"),
        "2.3283064365386962890625e-10\n",
    );
    write(&pmu.join("events/energy-pkg.unit"), "Joules\n");
    std::fs::create_dir_all(t.path().join("bus/event_source/devices")).expect("bus");
    std::os::unix::fs::symlink(
        "../../../devices/power",
        t.path().join("bus/event_source/devices/power"),
    )
    .expect("symlink");
    /// A counter that counts (one that does not is taken for a VM's empty PMU).
    struct Counting(u64);
    impl PerfCount for Counting {
        fn read(&mut self) -> std::io::Result<u64> {
            self.0 += 1;
            Ok(self.0)
        }
    }
    struct Opens;
    impl PerfOpen for Opens {
        fn open(&mut self, _: u32, _: u64, _: u32) -> std::io::Result<Box<dyn PerfCount>> {
            Ok(Box::new(Counting(0)))
        }
    }
    let powercap = tempfile::tempdir().expect("tempdir");
    let mut src = cpu_source_with(
        powercap.path(),
        Path::new("/nonexistent"),
        t.path(),
        &EstimateConfig::default(),
        &mut Opens,
    );
    assert_eq!(src.read()[0].name, "package-0 (perf_event)");
    let n = src.take_notices();
    assert_eq!(n.len(), 1, "{n:?}");
    assert!(
        n[0].contains("measured through perf_event") && n[0].contains("amd_energy not readable"),
        "{n:?}"
    );
}
