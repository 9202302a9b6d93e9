use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::*;
use crate::sources::estimate::EstimateConfig;
use crate::sources::powercap::cpu_source_with;

/// RAPL's scale as the kernel prints it: 2⁻³² J.
const SCALE: &str = "2.3283064365386962890625e-10";
const TYPE: u32 = 23;

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, text).expect("write");
}

/// A sysfs tree with the power PMU laid out as the kernel does on a two-socket Intel server:
/// `devices/power` with `bus/event_source/devices/power` a symlink to it, one CPU per package in
/// `cpumask`, and each CPU's package in its topology.
fn pmu_tree(events: &[(&str, &str)]) -> tempfile::TempDir {
    let t = tempfile::tempdir().expect("tempdir");
    let r = t.path();
    let pmu = r.join("devices/power");
    write(&pmu.join("type"), &format!("{TYPE}\n"));
    write(&pmu.join("cpumask"), "0,32\n");
    write(&pmu.join("format/event"), "config:0-7\n");
    write(&pmu.join("perf_event_mux_interval_ms"), "0\n");
    for (name, text) in events {
        write(&pmu.join("events").join(name), &format!("{text}\n"));
        write(
            &pmu.join("events").join(format!("{name}.scale")),
            &format!("{SCALE}\n"),
        );
        write(&pmu.join("events").join(format!("{name}.unit")), "Joules\n");
    }
    std::fs::create_dir_all(r.join("bus/event_source/devices")).expect("bus");
    std::os::unix::fs::symlink("../../../devices/power", r.join("bus/event_source/devices/power"))
        .expect("symlink");
    write(
        &r.join("devices/system/cpu/cpu0/topology/physical_package_id"),
        "0\n",
    );
    write(
        &r.join("devices/system/cpu/cpu32/topology/physical_package_id"),
        "1\n",
    );
    t
}

const SERVER: &[(&str, &str)] = &[
    ("energy-cores", "event=0x01"),
    ("energy-pkg", "event=0x02"),
    ("energy-ram", "event=0x03"),
    ("energy-psys", "event=0x05"),
];

/// What the fake kernel does for one (config, cpu): a count, or an OS error.
type Plan = Arc<Mutex<HashMap<(u64, u32), Result<u64, i32>>>>;

/// A fake `perf_event_open`: counts from a shared plan (so tests can advance them), every call logged.
#[derive(Default)]
struct Fake {
    plan: Plan,
    opened: Vec<(u32, u64, u32)>,
    /// The error for anything not in the plan (`None`: a count of 0).
    otherwise: Option<i32>,
    /// [`PerfOpen::probe_window`]: zero (no probe) unless a test sets it.
    window: std::time::Duration,
    /// Added to a count at each read of it, per config (a counter that moves by itself).
    steps: HashMap<u64, u64>,
}

struct FakeCount {
    plan: Plan,
    key: (u64, u32),
    step: u64,
    reads: u64,
}

impl PerfCount for FakeCount {
    fn read(&mut self) -> io::Result<u64> {
        self.reads += 1;
        match self.plan.lock().expect("plan").get(&self.key) {
            Some(Ok(c)) => Ok(*c + self.step * self.reads),
            Some(Err(e)) => Err(io::Error::from_raw_os_error(*e)),
            None => Ok(0),
        }
    }
}

impl PerfOpen for Fake {
    fn open(&mut self, ty: u32, config: u64, cpu: u32) -> io::Result<Box<dyn PerfCount>> {
        self.opened.push((ty, config, cpu));
        let planned = self.plan.lock().expect("plan").get(&(config, cpu)).copied();
        match (planned, self.otherwise) {
            (Some(Err(e)), _) | (None, Some(e)) => Err(io::Error::from_raw_os_error(e)),
            _ => Ok(Box::new(FakeCount {
                plan: Arc::clone(&self.plan),
                key: (config, cpu),
                step: self.steps.get(&config).copied().unwrap_or(0),
                reads: 0,
            })),
        }
    }

    fn probe_window(&self) -> std::time::Duration {
        self.window
    }
}

fn set(plan: &Plan, config: u64, cpu: u32, v: Result<u64, i32>) {
    plan.lock().expect("plan").insert((config, cpu), v);
}

#[test]
fn describes_the_kernel_layout() {
    let t = pmu_tree(SERVER);
    let d = describe_pmu(t.path()).expect("pmu");
    assert_eq!(d.ty, TYPE);
    let doms: Vec<(u32, u32, &str)> = d
        .domains
        .iter()
        .map(|d| (d.cpu, d.index, d.label.as_str()))
        .collect();
    assert_eq!(doms, [(0, 0, "package-0"), (32, 1, "package-1")]);
    assert!(d.notes.is_empty());
    let pkg = d.pkg.expect("energy-pkg");
    assert_eq!((pkg.config, pkg.scale), (2, 2f64.powi(-32)));
    assert_eq!(d.ram.map(|e| e.config), Some(3));
    assert_eq!(d.psys.map(|e| e.config), Some(5));
}

#[test]
fn packages_from_cpumask_dram_and_psys_never_added() {
    let t = pmu_tree(SERVER);
    let mut fake = Fake::default();
    set(&fake.plan, 2, 0, Ok(5 << 32));
    set(&fake.plan, 2, 32, Ok(7 << 32));
    set(&fake.plan, 3, 0, Ok(1 << 32));
    set(&fake.plan, 3, 32, Ok(3));
    let mut src = open(t.path(), Path::new("/nonexistent"), &mut fake).expect("opened");
    assert_eq!(
        fake.opened,
        [(TYPE, 2, 0), (TYPE, 2, 32), (TYPE, 3, 0), (TYPE, 3, 32)],
        "one counter per package, energy-cores and psys not opened"
    );
    let r = src.read();
    let got: Vec<(&str, DeviceKind, &str, Option<u64>)> = r
        .iter()
        .map(|d| {
            (
                d.id.as_str(),
                d.kind,
                d.name.as_str(),
                d.energy.map(|e| e.value_uj),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("cpu0", DeviceKind::Cpu, "package-0 (perf_event)", Some(5_000_000)),
            ("cpu1", DeviceKind::Cpu, "package-1 (perf_event)", Some(7_000_000)),
            ("dram0", DeviceKind::Dram, "dram-0 (perf_event)", Some(1_000_000)),
            ("dram1", DeviceKind::Dram, "dram-1 (perf_event)", Some(0)),
        ]
    );
    assert!(
        r.iter()
            .all(|d| d.energy.and_then(|e| e.wrap_uj).is_none() && d.error.is_none())
    );
    assert_eq!(src.summary(), "power/energy-pkg on CPU 0, 32, power/energy-ram");
    let ids: Vec<String> = src.read_counters().into_iter().map(|(id, _)| id).collect();
    assert_eq!(ids, ["cpu0", "cpu1", "dram0", "dram1"]);
    assert!(src.take_notices().is_empty());
}

#[test]
fn scale_is_applied_exactly() {
    let s = 2f64.powi(-32);
    assert_eq!(scaled_uj(1 << 32, s), 1_000_000);
    // 2⁻³² J ≈ 0.000233 µJ: rounds to 0; 2147 counts ≈ 0.49988 µJ: still 0; 2148: 1 µJ.
    assert_eq!(
        (scaled_uj(1, s), scaled_uj(2147, s), scaled_uj(2148, s)),
        (0, 0, 1)
    );
    // The whole 64-bit range in integers: round(count × 10⁶ / 2³²).
    let want = (u128::from(u64::MAX) * 1_000_000 + (1 << 31)) >> 32;
    assert_eq!(u128::from(scaled_uj(u64::MAX, s)), want);
    let big = (1u64 << 62) + 12_345;
    assert_eq!(
        u128::from(scaled_uj(big, s)),
        (u128::from(big) * 1_000_000 + (1 << 31)) >> 32
    );
    // A decimal scale: the nearest µJ, not one below it.
    assert_eq!(scaled_uj(5, 1e-6), 5);
    assert_eq!(scaled_uj(3, 0.5), 1_500_000);
}

#[test]
fn counts_through_the_sampler_are_unwrapped_joules() {
    let t = pmu_tree(SERVER);
    let mut fake = Fake::default();
    let plan = Arc::clone(&fake.plan);
    set(&plan, 2, 0, Ok(u64::MAX - (3 << 32)));
    let src = open(t.path(), Path::new("/nonexistent"), &mut fake).expect("opened");
    struct NoProcs;
    impl crate::sources::ProcessSource for NoProcs {
        fn read(&mut self) -> crate::sources::ProcSnapshot {
            crate::sources::ProcSnapshot::default()
        }
    }
    let mut s = crate::sources::Sampler::new(Box::new(NoProcs), Box::new(src), None);
    let uj = |s: &crate::sample::Sample| {
        s.devices
            .iter()
            .find(|d| d.id == "cpu0")
            .and_then(|d| d.energy)
            .map(|e| e.value_uj)
    };
    let a = s.sample();
    set(&plan, 2, 0, Ok(u64::MAX - (1 << 32)));
    let b = s.sample();
    let (a, b) = (uj(&a).expect("a"), uj(&b).expect("b"));
    assert_eq!(b - a, 2_000_000, "2 J between the samples");
}

#[test]
fn psys_is_used_only_without_a_package_event() {
    let t = pmu_tree(&[("energy-psys", "event=0x05")]);
    let mut fake = Fake::default();
    let mut src = open(t.path(), Path::new("/nonexistent"), &mut fake).expect("opened");
    assert_eq!(fake.opened, [(TYPE, 5, 0)], "one platform counter");
    let r = src.read();
    assert_eq!(
        (r.len(), r[0].id.as_str(), r[0].name.as_str()),
        (1, "cpu0", "psys platform (perf_event)")
    );
}

#[test]
fn a_package_that_fails_alone_is_left_out_and_named() {
    let t = pmu_tree(SERVER);
    let mut fake = Fake::default();
    set(&fake.plan, 2, 32, Err(libc::ENODEV));
    let mut src = open(t.path(), Path::new("/nonexistent"), &mut fake).expect("opened");
    let ids: Vec<String> = src.read().into_iter().map(|d| d.id).collect();
    assert_eq!(ids, ["cpu0", "dram0", "dram1"]);
    let n = src.take_notices();
    assert_eq!(n.len(), 1, "{n:?}");
    assert!(n[0].contains("power/energy-pkg on CPU 32 (cpu1)"), "{n:?}");
}

#[test]
fn a_read_that_fails_later_is_an_error_not_zero() {
    let t = pmu_tree(SERVER);
    let mut fake = Fake::default();
    let plan = Arc::clone(&fake.plan);
    let mut src = open(t.path(), Path::new("/nonexistent"), &mut fake).expect("opened");
    set(&plan, 2, 0, Err(libc::EIO));
    let r = src.read();
    assert!(r[0].energy.is_none());
    assert!(
        r[0].error
            .as_deref()
            .unwrap_or("")
            .contains("perf_event read of package-0"),
        "{:?}",
        r[0].error
    );
    assert!(r[1].energy.is_some());
}

#[test]
fn event_terms_are_placed_by_their_format() {
    let t = pmu_tree(&[("energy-pkg", "event=0x02,umask=0x1")]);
    write(&t.path().join("devices/power/format/umask"), "config:8-15\n");
    let d = describe_pmu(t.path()).expect("pmu");
    assert_eq!(d.pkg.map(|e| e.config), Some(0x102));
    write(&t.path().join("devices/power/events/energy-pkg"), "event=0x1ff\n");
    let err = describe_pmu(t.path()).expect_err("does not fit in 8 bits");
    assert!(err.contains("does not fit"), "{err}");
}

#[test]
fn a_unit_other_than_joules_is_refused() {
    let t = pmu_tree(SERVER);
    write(&t.path().join("devices/power/events/energy-pkg.unit"), "Watts\n");
    let err = describe_pmu(t.path()).expect_err("wrong unit");
    assert!(err.contains("'Watts', not Joules"), "{err}");
}

/// A multi-die package (Cascade Lake-AP): the PMU has one CPU per die, both on package 0.
#[test]
fn dies_of_one_package_are_distinct_devices() {
    let t = pmu_tree(SERVER);
    write(
        &t.path()
            .join("devices/system/cpu/cpu32/topology/physical_package_id"),
        "0\n",
    );
    write(&t.path().join("devices/system/cpu/cpu0/topology/die_id"), "0\n");
    write(&t.path().join("devices/system/cpu/cpu32/topology/die_id"), "1\n");
    let mut src = open(t.path(), Path::new("/nonexistent"), &mut Fake::default()).expect("opened");
    let got: Vec<(String, String)> = src.read().into_iter().map(|d| (d.id, d.name)).collect();
    let want = [
        ("cpu0", "package-0-die-0 (perf_event)"),
        ("cpu1", "package-0-die-1 (perf_event)"),
        ("dram0", "dram-0 (perf_event)"),
        ("dram1", "dram-1 (perf_event)"),
    ];
    assert_eq!(got, want.map(|(a, b)| (a.to_string(), b.to_string())));
}

/// A DRAM event described wrongly is left out, said; the packages are measured.
#[test]
fn a_bad_optional_event_is_left_out_with_a_notice() {
    let t = pmu_tree(SERVER);
    std::fs::remove_file(t.path().join("devices/power/events/energy-ram.scale")).expect("rm");
    let mut src = open(t.path(), Path::new("/nonexistent"), &mut Fake::default()).expect("opened");
    let ids: Vec<String> = src.read().into_iter().map(|d| d.id).collect();
    assert_eq!(ids, ["cpu0", "cpu1"]);
    let n = src.take_notices();
    assert!(
        n.len() == 1 && n[0].contains("energy-ram left out") && n[0].contains("energy-ram.scale"),
        "{n:?}"
    );
}

#[test]
fn cpu_lists() {
    assert_eq!(parse_cpulist("0,32\n"), Some(vec![0, 32]));
    assert_eq!(parse_cpulist("0-2,8"), Some(vec![0, 1, 2, 8]));
    assert_eq!(parse_cpulist("x"), None);
}

fn proc_with_paranoid(level: &str) -> tempfile::TempDir {
    let p = tempfile::tempdir().expect("tempdir");
    write(
        &p.path().join("sys/kernel/perf_event_paranoid"),
        &format!("{level}\n"),
    );
    p
}

/// No powercap, perf refused: the estimate, said once with the paranoid level and both fixes.
#[test]
fn a_refused_open_falls_back_to_the_estimate_with_the_paranoid_hint() {
    let sys = pmu_tree(SERVER);
    let proc = proc_with_paranoid("2");
    let mut fake = Fake {
        otherwise: Some(libc::EACCES),
        ..Fake::default()
    };
    let mut src = without_powercap(proc.path(), sys.path(), &mut fake);
    let r = src.read();
    assert_eq!(r.len(), 1);
    assert!(r[0].estimate.is_some() && r[0].energy.is_none());
    let n = src.take_notices();
    assert_eq!(n.len(), 1, "{n:?}");
    for want in [
        "estimated, not measured",
        "no RAPL zones",
        "perf_event_open of power/energy-pkg on CPU 0 refused",
        "kernel.perf_event_paranoid is 2",
        "setcap cap_perfmon+ep",
        "kernel.perf_event_paranoid=0",
    ] {
        assert!(n[0].contains(want), "{want}: {n:?}");
    }
    src.read();
    assert!(src.take_notices().is_empty(), "said once");
}

/// EPERM (seccomp in a container, lockdown) is a refusal too, with where else to look.
#[test]
fn eperm_names_the_container_profile_as_well() {
    let sys = pmu_tree(SERVER);
    let proc = proc_with_paranoid("-1");
    let mut fake = Fake {
        otherwise: Some(libc::EPERM),
        ..Fake::default()
    };
    let Err(why) = open(sys.path(), proc.path(), &mut fake) else {
        panic!("refused");
    };
    assert!(
        why.contains("kernel.perf_event_paranoid is -1")
            && why.contains("seccomp")
            && why.contains("cap_perfmon"),
        "{why}"
    );
}

#[test]
fn an_absent_pmu_falls_back_to_the_estimate_with_the_reason() {
    let sys = tempfile::tempdir().expect("tempdir");
    let mut fake = Fake::default();
    let mut src = without_powercap(Path::new("/nonexistent"), sys.path(), &mut fake);
    assert!(fake.opened.is_empty());
    assert!(src.read()[0].estimate.is_some());
    let n = src.take_notices();
    assert_eq!(n.len(), 1, "{n:?}");
    assert!(
        n[0].contains("no power PMU") && n[0].contains("bus/event_source/devices/power absent"),
        "{n:?}"
    );
}

/// powercap packages refused, perf allowed: measured through perf_event, said once with powercap's why.
#[test]
fn perf_event_is_chosen_when_powercap_is_refused() {
    let sys = pmu_tree(SERVER);
    let powercap = tempfile::tempdir().expect("tempdir");
    // A package zone whose counter cannot be read (a directory: unreadable even for root).
    let z = powercap.path().join("intel-rapl:0");
    write(&z.join("name"), "package-0\n");
    write(&z.join("max_energy_range_uj"), "262143328850\n");
    std::fs::create_dir_all(z.join("energy_uj")).expect("dir");
    let mut fake = Fake::default();
    let mut src = cpu_source_with(
        powercap.path(),
        Path::new("/nonexistent"),
        sys.path(),
        &EstimateConfig::default(),
        &mut fake,
    );
    let r = src.read();
    let ids: Vec<&str> = r.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(ids, ["cpu0", "cpu1", "dram0", "dram1"]);
    assert!(r.iter().all(|d| d.estimate.is_none() && d.energy.is_some()));
    let n = src.take_notices();
    assert_eq!(n.len(), 1, "{n:?}");
    assert!(
        n[0].contains("measured through perf_event (power/energy-pkg on CPU 0, 32, power/energy-ram)")
            && n[0].contains("powercap RAPL not readable")
            && n[0].contains("intel-rapl:0/energy_uj"),
        "{n:?}"
    );
    assert_eq!(src.read_counters().len(), 4);
}

/// Readable powercap DRAM beside perf's own DRAM counters: each DRAM reported once (perf's).
#[test]
fn dram_is_not_reported_twice() {
    let sys = pmu_tree(SERVER);
    let powercap = tempfile::tempdir().expect("tempdir");
    let p = powercap.path().join("intel-rapl:0");
    write(&p.join("name"), "package-0\n");
    std::fs::create_dir_all(p.join("energy_uj")).expect("dir");
    let d = powercap.path().join("intel-rapl:0:0");
    write(&d.join("name"), "dram\n");
    write(&d.join("energy_uj"), "300\n");
    let mut fake = Fake::default();
    let mut src = cpu_source_with(
        powercap.path(),
        Path::new("/nonexistent"),
        sys.path(),
        &EstimateConfig::default(),
        &mut fake,
    );
    let ids: Vec<String> = src.read().into_iter().map(|d| d.id).collect();
    assert_eq!(ids, ["cpu0", "cpu1", "dram0", "dram1"]);
    let n = src.take_notices();
    assert!(!n[0].contains("DRAM is still measured"), "{n:?}");
}

#[test]
fn readable_powercap_wins_and_perf_is_not_tried() {
    let sys = pmu_tree(SERVER);
    let powercap = tempfile::tempdir().expect("tempdir");
    let z = powercap.path().join("intel-rapl:0");
    write(&z.join("name"), "package-0\n");
    write(&z.join("energy_uj"), "1000\n");
    let mut fake = Fake::default();
    let mut src = cpu_source_with(
        powercap.path(),
        Path::new("/nonexistent"),
        sys.path(),
        &EstimateConfig::default(),
        &mut fake,
    );
    assert!(fake.opened.is_empty());
    assert_eq!(src.read()[0].name, "package-0 (RAPL)");
    assert!(src.take_notices().is_empty());
}

/// The real attempt on this machine: whatever it has, a clean answer and no panic. On a VM without
/// the PMU (as where this was written) the reason names the missing directory.
#[test]
fn the_real_power_pmu_reports_cleanly() {
    let sys = Path::new("/sys");
    let present = sys.join("bus/event_source/devices/power").is_dir();
    match open(sys, Path::new("/proc"), &mut SysPerf) {
        Ok(mut src) => {
            assert!(present);
            let r = src.read();
            assert!(!r.is_empty() && r.iter().all(|d| d.energy.is_some() || d.error.is_some()));
        }
        Err(why) if present => assert!(why.contains("perf_event_open") || why.contains("power"), "{why}"),
        Err(why) => assert!(
            why.contains("no power PMU (/sys/bus/event_source/devices/power absent"),
            "{why}"
        ),
    }
}

/// The real `perf_event_open` with a PMU given by number: the software PMU's cpu-clock on CPU 0,
/// CPU-wide like the power PMU. Where the kernel refuses CPU-wide events the refusal is what
/// kwtop explains; any other error (EINVAL: a malformed attr) fails.
#[test]
fn the_real_opener_counts_a_dynamic_pmu_event() {
    let ty: u32 = std::fs::read_to_string("/sys/bus/event_source/devices/software/type")
        .expect("software PMU")
        .trim()
        .parse()
        .expect("type");
    match SysPerf.open(ty, 0, 0) {
        Ok(mut c) => {
            let a = c.read().expect("read");
            std::thread::sleep(std::time::Duration::from_millis(20));
            let b = c.read().expect("read");
            assert!(b > a, "cpu-clock advances: {a} → {b}");
        }
        Err(e) => assert!(is_refusal(&e), "{e}"),
    }
}

/// A VM's power PMU that counts nothing: the counter stays at 0, so it is not taken for a measured
/// 0 W; the CPU is estimated instead, with the reason.
#[test]
fn a_counter_that_does_not_move_is_not_a_measurement() {
    let sys = pmu_tree(&[("energy-psys", "event=0x05")]);
    let mut fake = Fake {
        window: std::time::Duration::from_millis(10),
        ..Fake::default()
    };
    set(&fake.plan, 5, 0, Ok(0));
    let Err(why) = open(sys.path(), Path::new("/nonexistent"), &mut fake) else {
        panic!("a still counter must not be a source");
    };
    assert!(
        why.contains("did not move in 10 ms") && why.contains("virtual machines"),
        "{why}"
    );
    let mut src = without_powercap(Path::new("/nonexistent"), sys.path(), &mut fake);
    let r = src.read();
    assert!(r[0].estimate.is_some() && r[0].energy.is_none(), "{r:?}");
    let n = src.take_notices();
    assert!(
        n[0].contains("estimated, not measured") && n[0].contains("did not move"),
        "{n:?}"
    );
}

/// A package counter that moves is kept; a DRAM counter beside it that does not is left out alone.
#[test]
fn only_the_still_counters_are_left_out() {
    let sys = pmu_tree(SERVER);
    let mut fake = Fake {
        window: std::time::Duration::from_millis(10),
        steps: HashMap::from([(2, 1000)]),
        ..Fake::default()
    };
    for cpu in [0, 32] {
        set(&fake.plan, 2, cpu, Ok(5));
        set(&fake.plan, 3, cpu, Ok(7));
    }
    let mut src = open(sys.path(), Path::new("/nonexistent"), &mut fake).expect("packages move");
    let ids: Vec<String> = src.read().into_iter().map(|r| r.id).collect();
    assert_eq!(ids, ["cpu0", "cpu1"]);
    let n = src.take_notices();
    assert!(
        n.iter()
            .any(|m| m.contains("count nothing, left out") && m.contains("(dram0): the counter did not move")),
        "{n:?}"
    );
}

/// The CPU source on a host with no powercap zones (an empty powercap directory).
fn without_powercap(proc: &Path, sys: &Path, perf: &mut dyn PerfOpen) -> Box<dyn CpuEnergySource> {
    let powercap = tempfile::tempdir().expect("tempdir");
    cpu_source_with(powercap.path(), proc, sys, &EstimateConfig::default(), perf)
}
