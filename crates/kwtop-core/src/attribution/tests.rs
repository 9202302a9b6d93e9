use proptest::prelude::*;

use super::*;
use crate::sample::{CpuEstimate, ProcessReading};
use crate::testing;

pub(super) fn proc(pid: u32, starttime: u64, ticks: u64) -> ProcessReading {
    testing::process(pid, starttime, ticks)
        .comm(format!("p{pid}"))
        .build()
}

pub(super) fn rapl(id: &str, uj: u64, wrap: Option<u64>) -> DeviceReading {
    testing::wrapping(
        testing::counter(id, DeviceKind::Cpu, "package-0 (RAPL)", uj),
        wrap,
    )
}

pub(super) fn sample(
    t: f64,
    busy: u64,
    idle: u64,
    procs: Vec<ProcessReading>,
    devices: Vec<DeviceReading>,
) -> Sample {
    testing::sample_at(t)
        .uptime_origin(1000.0)
        .cpu(busy, idle)
        .procs(procs)
        .devices(devices)
        .build()
}

pub(super) fn share(d: &DeviceEnergy, pid: u32) -> f64 {
    d.shares
        .iter()
        .filter(|(k, _)| k.pid == pid)
        .map(|(_, j)| j)
        .sum()
}

#[test]
fn cpu_split_exact() {
    // 100 J over 1 s; 60 busy ticks of 100; p1 used 30 ticks, p2 15: active 60 J, idle 40 J.
    let a = sample(
        0.0,
        1000,
        1000,
        vec![proc(1, 5, 100), proc(2, 5, 100)],
        vec![rapl("cpu0", 0, None)],
    );
    let b = sample(
        1.0,
        1060,
        1040,
        vec![proc(1, 5, 130), proc(2, 5, 115)],
        vec![rapl("cpu0", 100_000_000, None)],
    );
    let iv = Attributor::default().attribute(&a, &b);
    let d = &iv.devices[0];
    assert_eq!(d.energy_j, Some(100.0));
    assert_eq!(d.provenance, Provenance::Measured);
    assert!((d.idle_j - 40.0).abs() < 1e-9);
    assert!((share(d, 1) - 30.0).abs() < 1e-9);
    assert!((share(d, 2) - 15.0).abs() < 1e-9);
    assert!((d.unattributed_j - 15.0).abs() < 1e-9);
    assert!(d.conservation_error_j().abs() < 1e-9);
    assert_eq!(iv.cpu_load, Some(0.6));
}

#[test]
fn rapl_wraparound_is_corrected() {
    let max = 262_143_328_850;
    let a = sample(0.0, 0, 0, vec![], vec![rapl("cpu0", max - 5_000_000, Some(max))]);
    let b = sample(1.0, 10, 90, vec![], vec![rapl("cpu0", 7_000_000, Some(max))]);
    let iv = Attributor::default().attribute(&a, &b);
    assert_eq!(iv.devices[0].energy_j, Some(12.0));
    assert_eq!(iv.devices[0].provenance, Provenance::Measured);
}

#[test]
fn counter_going_backwards_without_wrap_is_na_not_energy() {
    let mut g0 = DeviceReading::new("gpu0", DeviceKind::Gpu, "GPU");
    g0.energy = Some(EnergyCounter {
        value_uj: 5_000_000,
        wrap_uj: None,
    });
    let mut g1 = g0.clone();
    g1.energy = Some(EnergyCounter {
        value_uj: 1_000_000,
        wrap_uj: None,
    });
    let iv = Attributor::default().attribute(
        &sample(0.0, 0, 0, vec![], vec![g0]),
        &sample(1.0, 0, 0, vec![], vec![g1]),
    );
    let d = &iv.devices[0];
    assert_eq!(d.energy_j, None);
    assert!(
        d.status.as_deref().unwrap_or("").contains("backwards"),
        "{:?}",
        d.status
    );
}

#[test]
fn implausible_jump_is_rejected() {
    let a = sample(0.0, 0, 0, vec![], vec![rapl("cpu0", 0, None)]);
    let b = sample(1.0, 0, 0, vec![], vec![rapl("cpu0", 50_000_000_000, None)]);
    let iv = Attributor::default().attribute(&a, &b);
    assert_eq!(iv.devices[0].energy_j, None);
}

#[test]
fn unreadable_counter_is_na_with_reason() {
    let a = sample(0.0, 0, 0, vec![], vec![rapl("cpu0", 0, None)]);
    let mut bad = DeviceReading::new("cpu0", DeviceKind::Cpu, "package-0 (RAPL)");
    bad.error = Some("RAPL read failed: permission denied".into());
    let iv = Attributor::default().attribute(&a, &sample(1.0, 0, 0, vec![], vec![bad]));
    assert_eq!(iv.devices[0].energy_j, None);
    assert!(
        iv.devices[0]
            .status
            .as_deref()
            .unwrap_or("")
            .contains("permission denied")
    );
}

/// Issue 10 item 6: a failed read keeps the last good counter (flagged stale): that interval is N/A
/// with the reason, and the next interval recovers its energy from the kept value.
#[test]
fn stale_counter_is_na_then_the_next_interval_recovers_the_energy() {
    let a = sample(0.0, 0, 100, vec![], vec![rapl("cpu0", 0, None)]);
    let mut kept = rapl("cpu0", 0, None);
    kept.energy_stale = true;
    kept.error = Some("RAPL read failed: EIO; last good energy reading kept".into());
    let b = sample(1.0, 0, 200, vec![], vec![kept]);
    let c = sample(2.0, 0, 300, vec![], vec![rapl("cpu0", 40_000_000, None)]);
    let mut at = Attributor::default();
    let first = at.attribute(&a, &b);
    assert_eq!(first.devices[0].energy_j, None, "never a made-up 0 J");
    assert!(first.devices[0].status.as_deref().unwrap_or("").contains("kept"));
    let second = at.attribute(&b, &c);
    assert_eq!(second.devices[0].energy_j, Some(40.0), "both seconds' energy");
    assert_eq!(
        second.devices[0].recovered_s, 1.0,
        "and it says it covers the stale second"
    );
    assert!(
        second.devices[0]
            .notes
            .iter()
            .any(|n| n.contains("could not be read")),
        "{:?}",
        second.devices[0].notes
    );
    assert!(second.devices[0].conservation_error_j().abs() < 1e-9);
    let d = sample(3.0, 0, 400, vec![], vec![rapl("cpu0", 60_000_000, None)]);
    assert_eq!(at.attribute(&c, &d).devices[0].recovered_s, 0.0, "recovered once");
}

#[test]
fn power_integration_is_trapezoid() {
    let mut g0 = DeviceReading::new("gpu0", DeviceKind::Gpu, "GPU");
    g0.power_w = Some(100.0);
    let mut g1 = g0.clone();
    g1.power_w = Some(300.0);
    let iv = Attributor::default().attribute(
        &sample(0.0, 0, 0, vec![], vec![g0]),
        &sample(2.0, 0, 0, vec![], vec![g1]),
    );
    assert_eq!(iv.devices[0].energy_j, Some(400.0));
    assert_eq!(iv.devices[0].provenance, Provenance::Integrated);
    // Nobody holds a context: no idle floor known (no limit), so everything is unattributed.
    assert_eq!(iv.devices[0].unattributed_j, 400.0);
}

#[test]
fn estimate_uses_load() {
    let d = testing::estimated("cpu0", "CPU (estimated)", testing::linear(100.0, 0.1, "test"));
    let a = sample(0.0, 0, 0, vec![proc(1, 1, 0)], vec![d.clone()]);
    let b = sample(2.0, 50, 50, vec![proc(1, 1, 50)], vec![d]);
    let iv = Attributor::default().attribute(&a, &b);
    let e = &iv.devices[0];
    // load 0.5 → 100·(0.1 + 0.9·0.5) = 55 W × 2 s.
    assert!((e.energy_j.unwrap_or(0.0) - 110.0).abs() < 1e-9);
    assert_eq!(e.provenance, Provenance::Estimated);
    assert!((share(e, 1) - 55.0).abs() < 1e-9);
    assert!((e.idle_j - 55.0).abs() < 1e-9);
}

#[test]
fn skewed_shares_are_scaled_to_one() {
    // Processes report more ticks than /proc/stat's busy delta (read skew).
    let a = sample(
        0.0,
        0,
        0,
        vec![proc(1, 1, 0), proc(2, 1, 0)],
        vec![rapl("cpu0", 0, None)],
    );
    let b = sample(
        1.0,
        10,
        10,
        vec![proc(1, 1, 10), proc(2, 1, 10)],
        vec![rapl("cpu0", 20_000_000, None)],
    );
    let d = &Attributor::default().attribute(&a, &b).devices[0];
    assert!((share(d, 1) - 5.0).abs() < 1e-9);
    assert!((share(d, 2) - 5.0).abs() < 1e-9);
    assert!(d.unattributed_j.abs() < 1e-9);
    assert!(d.conservation_error_j().abs() < 1e-9);
}

#[test]
fn process_born_in_interval_gets_all_its_time_old_unknown_gets_none() {
    // uptime at a = 1000 s = 100_000 ticks. p10 started at 100_050 (born inside), p11 at 50 (old, unseen).
    let a = sample(0.0, 0, 0, vec![], vec![rapl("cpu0", 0, None)]);
    let b = sample(
        1.0,
        100,
        0,
        vec![proc(10, 100_050, 40), proc(11, 50, 9_999)],
        vec![rapl("cpu0", 10_000_000, None)],
    );
    let d = &Attributor::default().attribute(&a, &b).devices[0];
    assert!((share(d, 10) - 4.0).abs() < 1e-9);
    assert_eq!(share(d, 11), 0.0);
    assert!((d.unattributed_j - 6.0).abs() < 1e-9);
}

#[test]
fn pid_reuse_is_a_new_process() {
    let a = sample(0.0, 0, 0, vec![proc(7, 100, 5_000)], vec![rapl("cpu0", 0, None)]);
    // Same pid, new starttime, few ticks: must not produce a negative or huge delta.
    let b = sample(
        1.0,
        100,
        0,
        vec![proc(7, 100_020, 30)],
        vec![rapl("cpu0", 10_000_000, None)],
    );
    let d = &Attributor::default().attribute(&a, &b).devices[0];
    let k_new = ProcKey {
        pid: 7,
        starttime: 100_020,
    };
    assert!(d.shares.iter().all(|(k, _)| *k == k_new));
    assert!((share(d, 7) - 3.0).abs() < 1e-9);
}

#[test]
fn charge_idle_moves_idle_to_processes() {
    let cfg = AttributionConfig {
        charge_idle: true,
        ..Default::default()
    };
    let a = sample(0.0, 0, 0, vec![proc(1, 1, 0)], vec![rapl("cpu0", 0, None)]);
    let b = sample(
        1.0,
        50,
        50,
        vec![proc(1, 1, 25)],
        vec![rapl("cpu0", 100_000_000, None)],
    );
    let d = &Attributor::new(cfg).attribute(&a, &b).devices[0];
    assert_eq!(d.idle_j, 0.0);
    // active 50 J, p1 has half of busy → 25 J active + all 50 J idle (it is the only share).
    assert!((share(d, 1) - 75.0).abs() < 1e-9);
    assert!((d.unattributed_j - 25.0).abs() < 1e-9);
}

fn gpu(uj: u64, limit: f64, procs: Vec<GpuProcess>) -> DeviceReading {
    testing::gpu("gpu0", "NVIDIA H100", uj, Some(limit), procs)
}

fn gp(pid: u32, mem_gib: u64, sm: f64) -> GpuProcess {
    testing::holder(pid, mem_gib << 30, Some(sm))
}

#[test]
fn gpu_static_and_dynamic_split() {
    // 500 J over 1 s, idle floor 70 W (config): static 70 J by memory 3:1, dynamic 430 J by SM 100:0.
    let cfg = AttributionConfig {
        gpu_idle_w: Some(70.0),
        ..Default::default()
    };
    let holders = vec![gp(1, 6, 100.0), gp(2, 2, 0.0)];
    let a = sample(
        0.0,
        0,
        0,
        vec![proc(1, 1, 0), proc(2, 1, 0)],
        vec![gpu(0, 700.0, holders.clone())],
    );
    let b = sample(
        1.0,
        0,
        0,
        vec![proc(1, 1, 0), proc(2, 1, 0)],
        vec![gpu(500_000_000, 700.0, holders)],
    );
    let d = &Attributor::new(cfg).attribute(&a, &b).devices[0];
    assert_eq!(d.static_j, 70.0);
    assert!((share(d, 1) - (52.5 + 430.0)).abs() < 1e-9);
    assert!(
        (share(d, 2) - 17.5).abs() < 1e-9,
        "idle holder pays its static share"
    );
    assert!(d.conservation_error_j().abs() < 1e-9);
}

#[test]
fn gpu_all_zero_util_splits_dynamic_by_memory() {
    let cfg = AttributionConfig {
        gpu_idle_w: Some(0.0),
        ..Default::default()
    };
    let holders = vec![gp(1, 3, 0.0), gp(2, 1, 0.0)];
    let a = sample(0.0, 0, 0, vec![], vec![gpu(0, 700.0, holders.clone())]);
    let b = sample(1.0, 0, 0, vec![], vec![gpu(100_000_000, 700.0, holders)]);
    let d = &Attributor::new(cfg).attribute(&a, &b).devices[0];
    assert!((share(d, 1) - 75.0).abs() < 1e-9);
    assert!((share(d, 2) - 25.0).abs() < 1e-9);
    // pids not in /proc: keyed with starttime 0.
    assert!(d.shares.iter().all(|(k, _)| k.starttime == 0));
}

#[test]
fn gpu_without_holders_is_idle_plus_unattributed_and_floor_is_learned() {
    let mut at = Attributor::default();
    let a = sample(0.0, 0, 0, vec![], vec![gpu(0, 700.0, vec![])]);
    let b = sample(1.0, 0, 0, vec![], vec![gpu(100_000_000, 700.0, vec![])]);
    let d = at.attribute(&a, &b).devices[0].clone();
    // Floor before learning: 10 % of 700 W = 70 J static → idle; 30 J unattributed.
    assert!((d.idle_j - 70.0).abs() < 1e-9);
    assert!((d.unattributed_j - 30.0).abs() < 1e-9);
    assert_eq!(at.gpu_idle_w(&b.devices[0]).map(|x| x.1), Some("learned"));
    assert_eq!(at.gpu_idle_w(&b.devices[0]).map(|x| x.0), Some(100.0));
}

#[test]
fn duplicate_holders_are_merged() {
    let cfg = AttributionConfig {
        gpu_idle_w: Some(0.0),
        ..Default::default()
    };
    let holders = vec![gp(1, 1, 50.0), gp(1, 2, 50.0)];
    let a = sample(0.0, 0, 0, vec![], vec![gpu(0, 700.0, holders.clone())]);
    let b = sample(1.0, 0, 0, vec![], vec![gpu(10_000_000, 700.0, holders)]);
    let d = &Attributor::new(cfg).attribute(&a, &b).devices[0];
    assert_eq!(d.shares.len(), 1);
    assert!((share(d, 1) - 10.0).abs() < 1e-9);
}

#[test]
fn device_missing_in_previous_sample_is_na() {
    let a = sample(0.0, 0, 0, vec![], vec![]);
    let b = sample(1.0, 0, 0, vec![], vec![rapl("cpu0", 5, None)]);
    let iv = Attributor::default().attribute(&a, &b);
    assert_eq!(iv.devices[0].energy_j, None);
}

// ---- property tests: conservation on random inputs ----

fn arb_gpu_proc() -> impl Strategy<Value = GpuProcess> {
    (
        0u32..20,
        proptest::option::of(0u64..(80u64 << 30)),
        proptest::option::of(0.0f64..150.0),
    )
        .prop_map(|(pid, used_mem_bytes, sm_util_pct)| GpuProcess {
            pid,
            used_mem_bytes,
            sm_util_pct,
            ..Default::default()
        })
}

fn arb_case() -> impl Strategy<Value = (Sample, Sample, AttributionConfig)> {
    // (pid, starttime, ppid): a starttime ≥ 100_000 ticks is after `a` (uptime 1000 s at 100 Hz).
    let ident = (0u32..20, prop_oneof![0u64..3, 100_000u64..100_003], 0u32..20);
    // Own ticks and waited-for children's ticks at `a` and added by `b`; listed in a, b or both.
    let procs = proptest::collection::vec(
        (
            ident,
            (0u64..10_000, 0u64..10_000),
            (0u64..10_000, 0u64..50_000),
            0u8..4,
        ),
        0..30,
    );
    (
        procs,
        (0u64..1_000_000, 0u64..1_000_000, 0u64..1_000_000, 0u64..1_000_000),
        (
            0u64..u64::from(u32::MAX),
            0u64..2_000_000_000,
            proptest::option::of(1u64..u64::from(u32::MAX)),
        ),
        proptest::collection::vec(arb_gpu_proc(), 0..8),
        (0u64..10_000_000_000, 0u64..5_000_000_000),
        (
            0.01f64..30.0,
            any::<bool>(),
            proptest::option::of(0.0f64..800.0),
            0.0f64..1.0,
        ),
        (
            proptest::option::of(0.0f64..1000.0),
            proptest::option::of(0.0f64..1000.0),
        ),
    )
        .prop_map(
            |(
                procs,
                (b0, i0, db, di),
                (e0, de, wrap),
                holders,
                (g0, dg),
                (dt, ci, idle_w, frac),
                (p0, p1),
            )| {
                let mk = |later: bool| -> Vec<ProcessReading> {
                    let mut seen = std::collections::HashSet::new();
                    procs
                        .iter()
                        .filter(|((pid, st, _), ..)| seen.insert((*pid, *st)))
                        // 0: in both, 1: only in a (reaped during the interval), 2: only in b.
                        .filter(|(.., listed)| *listed != if later { 1 } else { 2 })
                        .map(|((pid, st, ppid), (t0, t1), (c0, c1), _)| {
                            let mut p = proc(*pid, *st, if later { t0 + t1 } else { *t0 });
                            p.ppid = *ppid;
                            p.child_ticks = if later { c0 + c1 } else { *c0 };
                            p
                        })
                        .collect()
                };
                let wrap_uj = wrap.map(|w| w.max(e0 + 1));
                let c0 = rapl("cpu0", e0, wrap_uj);
                let c1 = rapl("cpu0", wrap_uj.map_or(e0 + de, |w| (e0 + de) % (w + 1)), wrap_uj);
                let mut gpu0 = gpu(g0, 700.0, holders.clone());
                gpu0.power_w = p0;
                let mut gpu1 = gpu(g0 + dg, 700.0, holders);
                gpu1.power_w = p1;
                if dg % 3 == 0 {
                    gpu0.energy = None; // exercise the integration path
                }
                let a = sample(0.0, b0, i0, mk(false), vec![c0, gpu0]);
                let b = sample(dt, b0 + db, i0 + di, mk(true), vec![c1, gpu1]);
                let cfg = AttributionConfig {
                    charge_idle: ci,
                    gpu_idle_w: idle_w,
                    gpu_idle_fraction_of_limit: frac,
                };
                (a, b, cfg)
            },
        )
}

proptest! {
    #[test]
    fn conservation_holds_and_every_term_is_nonnegative((a, b, cfg) in arb_case()) {
        let iv = Attributor::new(cfg).attribute(&a, &b);
        for d in &iv.devices {
            prop_assert!(d.idle_j >= 0.0 && d.unattributed_j >= 0.0 && d.static_j >= 0.0);
            prop_assert!(d.shares.iter().all(|(_, j)| *j >= 0.0 && j.is_finite()));
            match d.energy_j {
                Some(e) => {
                    prop_assert!(e >= 0.0 && e.is_finite());
                    let tol = 1e-9 * e.max(1.0);
                    prop_assert!(d.conservation_error_j().abs() <= tol,
                        "device {} energy {} error {}", d.id, e, d.conservation_error_j());
                }
                None => {
                    prop_assert!(d.shares.is_empty());
                    prop_assert_eq!(d.idle_j + d.unattributed_j, 0.0);
                    prop_assert!(d.status.is_some(), "N/A must carry a reason");
                }
            }
        }
    }
}

/// A 700 W GPU whose counter could not be read for 15 s recovers 11.2 kJ in one 1 s interval: more
/// than 10 kW over that second, but not over the 16 s it covers, so it is booked, not skipped.
#[test]
fn recovered_energy_is_judged_over_the_span_it_covers() {
    let mut at = Attributor::new(AttributionConfig {
        gpu_idle_w: Some(0.0),
        ..Default::default()
    });
    let mut prev = sample(0.0, 0, 0, vec![], vec![gpu(0, 700.0, vec![])]);
    for t in 1..=15 {
        let mut kept = gpu(0, 700.0, vec![]);
        kept.energy_stale = true;
        let cur = sample(f64::from(t), 0, 0, vec![], vec![kept]);
        assert_eq!(at.attribute(&prev, &cur).devices[0].energy_j, None);
        prev = cur;
    }
    let cur = sample(16.0, 0, 0, vec![], vec![gpu(11_200_000_000, 700.0, vec![])]);
    let d = at.attribute(&prev, &cur).devices[0].clone();
    assert_eq!(d.energy_j, Some(11_200.0), "{:?}", d.status);
    assert_eq!(d.recovered_s, 15.0);
    assert_eq!(d.covers_s(1.0), 16.0);
}

/// A counter that reset in the only step of an interval measured nothing: N/A with the reason, not
/// a measured 0 J. A reset in one of several steps keeps the rest, and says how long was lost.
#[test]
fn a_reset_over_the_whole_interval_is_na_and_a_partial_one_is_a_gap() {
    let a = sample(0.0, 0, 100, vec![], vec![rapl("cpu0", 50_000_000, None)]);
    let mut whole = rapl("cpu0", 50_000_000, None);
    whole.energy_gap_s = 1.0;
    whole.error = Some("energy counter reset (900 → 3 µJ): up to 1.0 s of energy not counted".into());
    let b = sample(1.0, 0, 200, vec![], vec![whole]);
    let d = Attributor::default().attribute(&a, &b).devices[0].clone();
    assert_eq!(d.energy_j, None);
    assert!(
        d.status.as_deref().unwrap_or("").contains("reset"),
        "{:?}",
        d.status
    );

    let mut part = rapl("cpu0", 80_000_000, None);
    part.energy_gap_s = 0.25;
    part.error = Some("energy counter reset (900 → 3 µJ): up to 0.2 s of energy not counted".into());
    let c = sample(2.0, 0, 300, vec![], vec![part]);
    let d = Attributor::default().attribute(&b, &c).devices[0].clone();
    assert_eq!(d.energy_j, Some(30.0));
    assert_eq!(d.gap_s, 0.25);
    assert_eq!(d.covers_s(1.0), 0.75);
    assert!(d.notes.iter().any(|n| n.contains("reset")), "{:?}", d.notes);
    assert!(d.conservation_error_j().abs() < 1e-9);
}

/// An empty process list on a GPU that reports itself busy (a vGPU guest) teaches no idle floor.
#[test]
fn busy_gpu_with_an_empty_list_teaches_no_floor() {
    let mut at = Attributor::default();
    let mut a = gpu(0, 700.0, vec![]);
    a.util_pct = Some(95.0);
    let mut b = gpu(600_000_000, 700.0, vec![]);
    b.util_pct = Some(95.0);
    at.attribute(
        &sample(0.0, 0, 0, vec![], vec![a]),
        &sample(1.0, 0, 0, vec![], vec![b.clone()]),
    );
    assert_eq!(at.gpu_idle_w(&b).map(|x| x.1), Some("share of limit"));
}

/// An estimate for 4 of 256 CPUs (a container's quota): a machine-wide load of 4/256 is those four
/// CPUs fully busy, so it models their full power, and the process running on them gets it all.
#[test]
fn estimate_of_a_cpu_quota_scales_the_load_to_its_cpus() {
    let d = testing::estimated(
        "cpu0",
        "CPU (estimated)",
        CpuEstimate {
            usable_share: 4.0 / 256.0,
            ..testing::linear(10.0, 0.1, "4/256 CPUs of 640 W TDP")
        },
    );
    // 1 s at 100 ticks/s on 256 CPUs: 25,600 ticks, 400 of them busy (pid 1's).
    let a = sample(0.0, 0, 0, vec![proc(1, 1, 0)], vec![d.clone()]);
    let b = sample(1.0, 400, 25_200, vec![proc(1, 1, 400)], vec![d]);
    let iv = Attributor::default().attribute(&a, &b);
    let e = &iv.devices[0];
    assert!(
        (e.energy_j.unwrap_or(0.0) - 10.0).abs() < 1e-9,
        "{:?}",
        e.energy_j
    );
    assert!((share(e, 1) - 10.0).abs() < 1e-9, "{}", share(e, 1));
    assert!(e.idle_j.abs() < 1e-9 && e.unattributed_j.abs() < 1e-9);
}
