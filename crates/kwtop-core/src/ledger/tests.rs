use proptest::prelude::*;

use super::*;
use crate::attribution::{AttributionConfig, Attributor};
use crate::sample::{GpuProcess, ProcessReading};
use crate::testing;

fn proc(pid: u32, starttime: u64, ticks: u64, comm: &str) -> ProcessReading {
    testing::process(pid, starttime, ticks)
        .comm(comm)
        .user("ana")
        .build()
}

fn cpu(uj: u64) -> DeviceReading {
    testing::counter("cpu0", DeviceKind::Cpu, "package-0", uj)
}

fn sample(t: f64, busy: u64, procs: Vec<ProcessReading>, devices: Vec<DeviceReading>) -> Sample {
    testing::sample_at(t)
        .wall_origin_ms(1_700_000_000_000)
        .uptime_origin(10_000.0)
        .cpu(busy, 0)
        .procs(procs)
        .devices(devices)
        .build()
}

fn run(samples: &[Sample], cfg: IdleHolderConfig) -> Ledger {
    let mut at = Attributor::new(AttributionConfig {
        gpu_idle_w: Some(50.0),
        ..Default::default()
    });
    let mut l = Ledger::new(cfg);
    l.observe_devices(&samples[0]);
    for w in samples.windows(2) {
        let iv = at.attribute(&w[0], &w[1]);
        l.apply(&w[1], &iv);
    }
    l
}

fn session_conservation(l: &Ledger) {
    for (i, d) in l.devices.iter().enumerate() {
        let procs: f64 = l
            .processes()
            .map(|e| e.energy_by_dev.get(i).copied().unwrap_or(0.0))
            .sum::<f64>()
            + l.folded()
                .values()
                .map(|f| f.energy_by_dev.get(i).copied().unwrap_or(0.0))
                .sum::<f64>();
        let err = d.energy_j - (procs + d.idle_j + d.unattributed_j);
        assert!(
            err.abs() <= 1e-6 * d.energy_j.max(1.0),
            "device {}: error {err}",
            d.id
        );
    }
}

#[test]
fn exited_process_keeps_its_energy() {
    let s = vec![
        sample(0.0, 0, vec![proc(1, 1, 0, "a"), proc(2, 1, 0, "b")], vec![cpu(0)]),
        sample(
            1.0,
            100,
            vec![proc(1, 1, 50, "a"), proc(2, 1, 50, "b")],
            vec![cpu(10_000_000)],
        ),
        sample(2.0, 200, vec![proc(1, 1, 150, "a")], vec![cpu(20_000_000)]),
    ];
    let l = run(&s, IdleHolderConfig::default());
    let b = l.process(&ProcKey { pid: 2, starttime: 1 }).expect("kept");
    assert_eq!(b.state, ProcState::Exited);
    assert!((b.energy_j - 5.0).abs() < 1e-9);
    assert_eq!(b.power_w, 0.0);
    let a = l.process(&ProcKey { pid: 1, starttime: 1 }).expect("a");
    assert!((a.energy_j - 15.0).abs() < 1e-9);
    assert!((a.power_w - 10.0).abs() < 1e-9);
    assert!((a.peak_w - 10.0).abs() < 1e-9);
    assert!(
        a.avg_w() <= a.peak_w + 1e-9,
        "average {} above peak {}",
        a.avg_w(),
        a.peak_w
    );
    assert!((l.total_energy_j() - 20.0).abs() < 1e-9);
    session_conservation(&l);
}

#[test]
fn pid_reuse_closes_the_old_entry() {
    let s = vec![
        sample(0.0, 0, vec![proc(7, 10, 0, "old")], vec![cpu(0)]),
        sample(1.0, 100, vec![proc(7, 10, 100, "old")], vec![cpu(10_000_000)]),
        sample(
            2.0,
            200,
            vec![proc(7, 1_000_150, 100, "new")],
            vec![cpu(20_000_000)],
        ),
    ];
    let l = run(&s, IdleHolderConfig::default());
    let old = l
        .process(&ProcKey {
            pid: 7,
            starttime: 10,
        })
        .expect("old");
    let new = l
        .process(&ProcKey {
            pid: 7,
            starttime: 1_000_150,
        })
        .expect("new");
    assert_eq!(old.state, ProcState::Exited);
    assert_eq!(new.state, ProcState::Running);
    assert!((old.energy_j - 10.0).abs() < 1e-9);
    assert!(
        (new.energy_j - 10.0).abs() < 1e-9,
        "born in the interval: all its ticks count"
    );
    assert_eq!(new.info.comm, "new");
    session_conservation(&l);
}

fn gpu(uj: u64, holders: Vec<GpuProcess>) -> DeviceReading {
    testing::gpu("gpu0", "H100", uj, None, holders)
}

#[test]
fn idle_holder_is_flagged_and_charged() {
    let cfg = IdleHolderConfig {
        min_memory_bytes: 1 << 30,
        max_sm_pct: 1.0,
        after_s: 3.0,
    };
    let holders = || {
        vec![
            testing::holder(1, 8 << 30, Some(97.0)),
            testing::holder(2, 8 << 30, Some(0.0)),
        ]
    };
    let procs = || vec![proc(1, 1, 0, "train"), proc(2, 1, 0, "jupyter")];
    let s: Vec<Sample> = (0..7)
        .map(|i| sample(i as f64, 0, procs(), vec![gpu(i * 300_000_000, holders())]))
        .collect();
    let l = run(&s, cfg);
    let idle = l.process(&ProcKey { pid: 2, starttime: 1 }).expect("holder");
    assert!(idle.idle().flagged);
    assert_eq!(l.idle_holders().count(), 1);
    // Static floor 50 W split evenly by memory: 25 J per interval; streak began at the first interval.
    assert!(idle.idle().wasted_j > 0.0);
    assert!((idle.energy_j - 6.0 * 25.0).abs() < 1e-9);
    let busy = l.process(&ProcKey { pid: 1, starttime: 1 }).expect("busy");
    assert!(!busy.idle().flagged);
    assert!((busy.energy_j - 6.0 * 275.0).abs() < 1e-9);
    assert_eq!(busy.gpu_util_pct(), Some(97.0));
    assert_eq!(idle.gpu_mem_bytes(), Some(8 << 30));
    session_conservation(&l);
}

fn gpu_dev(id: &str, uj: u64, holders: Vec<GpuProcess>) -> DeviceReading {
    let mut g = gpu(uj, holders);
    g.id = id.into();
    g
}

fn holds(pid: u32, mem: u64, sm: f64) -> GpuProcess {
    testing::holder(pid, mem, Some(sm))
}

/// One process busy on GPU0 (8 GiB at 97 %) that holds 40 GiB at 0 % on GPU1: an idle holder on
/// GPU1 only, and only GPU1's energy is wasted. Summed memory / maxed SM share would miss it.
#[test]
fn busy_on_one_gpu_idle_on_another_is_flagged_on_that_gpu() {
    let cfg = IdleHolderConfig {
        min_memory_bytes: 256 << 20,
        max_sm_pct: 1.0,
        after_s: 3.0,
    };
    let s: Vec<Sample> = (0..7u64)
        .map(|i| {
            sample(
                i as f64,
                0,
                vec![proc(1, 1, 0, "train")],
                vec![
                    gpu_dev("gpu0", i * 300_000_000, vec![holds(1, 8 << 30, 97.0)]),
                    gpu_dev("gpu1", i * 60_000_000, vec![holds(1, 40 << 30, 0.0)]),
                ],
            )
        })
        .collect();
    let l = run(&s, cfg);
    let p = l.process(&ProcKey { pid: 1, starttime: 1 }).expect("train");
    let (g0, g1) = (
        l.device_index("gpu0").expect("gpu0"),
        l.device_index("gpu1").expect("gpu1"),
    );
    assert!(p.idle().flagged, "{:?}", p.idle());
    assert_eq!(p.idle().flagged_on(), "gpu1");
    assert_eq!(l.idle_holders().count(), 1);
    let on = |dev: usize| p.idle().gpus.iter().find(|g| g.dev == dev).expect("held");
    assert!(!on(g0).idle.flagged);
    assert_eq!(on(g0).idle.wasted_j, 0.0);
    assert_eq!(on(g1).mem_bytes, Some(40 << 30));
    assert_eq!(on(g1).sm_pct, Some(0.0));
    // GPU1: 60 J per interval, all charged to its only holder; the whole 6-interval streak counts.
    assert!((p.energy_by_dev[g1] - 360.0).abs() < 1e-9);
    assert!((on(g1).idle.wasted_j - 360.0).abs() < 1e-9);
    assert!(
        (p.idle().wasted_j - 360.0).abs() < 1e-9,
        "GPU0's 1800 J is not waste"
    );
    assert!((p.energy_by_dev[g0] - 1800.0).abs() < 1e-9);
    let by_dev = l.idle_holder_wasted_by_dev();
    assert_eq!(by_dev[g0], 0.0);
    assert!((by_dev[g1] - 360.0).abs() < 1e-9);
    assert!((l.idle_holder_wasted_j() - 360.0).abs() < 1e-9);
    // The per-process totals stay: SM % summed over its GPUs, memory summed.
    assert_eq!(p.gpu_util_pct(), Some(97.0));
    assert_eq!(p.gpu_mem_bytes(), Some(48 << 30));
    session_conservation(&l);
}

/// 200 MiB at 0 % on each of two GPUs with a 256 MiB threshold: under the threshold on each GPU,
/// so not an idle holder (the summed 400 MiB would have flagged it).
#[test]
fn small_holdings_on_two_gpus_are_not_summed() {
    let cfg = IdleHolderConfig {
        min_memory_bytes: 256 << 20,
        max_sm_pct: 1.0,
        after_s: 3.0,
    };
    let s: Vec<Sample> = (0..7u64)
        .map(|i| {
            sample(
                i as f64,
                0,
                vec![proc(1, 1, 0, "notebook")],
                vec![
                    gpu_dev("gpu0", i * 60_000_000, vec![holds(1, 200 << 20, 0.0)]),
                    gpu_dev("gpu1", i * 60_000_000, vec![holds(1, 200 << 20, 0.0)]),
                ],
            )
        })
        .collect();
    let l = run(&s, cfg);
    let p = l.process(&ProcKey { pid: 1, starttime: 1 }).expect("notebook");
    assert!(!p.idle().flagged, "{:?}", p.idle());
    assert_eq!(p.idle().wasted_j, 0.0);
    assert_eq!(l.idle_holders().count(), 0);
    assert_eq!(l.idle_holder_wasted_j(), 0.0);
    assert_eq!(p.gpu_mem_bytes(), Some(400 << 20));
    assert_eq!(p.idle().gpus.len(), 2);
}

/// An idle holder that exits and is folded keeps its waste, per GPU, in the ledger's totals.
#[test]
fn folded_idle_holder_keeps_its_waste() {
    let cfg = IdleHolderConfig {
        min_memory_bytes: 1 << 30,
        max_sm_pct: 1.0,
        after_s: 2.0,
    };
    let mut s: Vec<Sample> = (0..5u64)
        .map(|i| {
            sample(
                i as f64,
                0,
                vec![proc(7, 1, 0, "kernel")],
                vec![gpu_dev("gpu0", i * 60_000_000, vec![holds(7, 2 << 30, 0.0)])],
            )
        })
        .collect();
    // It exits; then short jobs exit one by one until the exited rows are folded.
    for i in 5..12u64 {
        s.push(sample(
            i as f64,
            0,
            vec![proc(100 + i as u32, 1, 0, "job")],
            vec![gpu_dev("gpu0", i * 60_000_000, vec![])],
        ));
    }
    let mut at = Attributor::new(AttributionConfig {
        gpu_idle_w: Some(50.0),
        ..Default::default()
    });
    let mut l = Ledger::new(cfg);
    // Keep none individually: every exited process is folded once two have exited.
    l.max_exited = 1;
    l.observe_devices(&s[0]);
    for w in s.windows(2) {
        let iv = at.attribute(&w[0], &w[1]);
        l.apply(&w[1], &iv);
    }
    assert!(l.process(&ProcKey { pid: 7, starttime: 1 }).is_none(), "folded");
    let f = l.folded().get("kernel").expect("folded kernel");
    // 4 intervals of 60 J on gpu0, all in the flagged streak.
    assert!((f.idle_wasted_j - 240.0).abs() < 1e-9, "{f:?}");
    assert!((f.idle_wasted_by_dev[0] - 240.0).abs() < 1e-9);
    assert!((l.idle_holder_wasted_j() - 240.0).abs() < 1e-9);
    assert!((l.idle_holder_wasted_by_dev()[0] - 240.0).abs() < 1e-9);
    session_conservation(&l);
}

#[test]
fn exited_rows_fold_past_the_cap_without_losing_energy() {
    let mut samples = vec![sample(0.0, 0, vec![], vec![cpu(0)])];
    for i in 1..=40u64 {
        // A new short-lived process each interval, gone in the next.
        samples.push(sample(
            i as f64,
            i * 100,
            vec![proc(1000 + i as u32, 1_000_000 + i, 100, "job")],
            vec![cpu(i * 10_000_000)],
        ));
    }
    let mut at = Attributor::default();
    let mut l = Ledger::new(IdleHolderConfig::default());
    l.max_exited = 10;
    for w in samples.windows(2) {
        let iv = at.attribute(&w[0], &w[1]);
        l.apply(&w[1], &iv);
    }
    assert!(l.exited().len() <= 10);
    assert!(!l.folded().is_empty());
    session_conservation(&l);
    let rows = l.groups(GroupBy::Command);
    let job = rows.iter().find(|r| r.key == "job").expect("job group");
    assert_eq!(job.processes, 40);
}

#[test]
fn groups_sum_to_process_totals() {
    let s = vec![
        sample(
            0.0,
            0,
            vec![proc(1, 1, 0, "a"), proc(2, 1, 0, "a"), proc(3, 1, 0, "b")],
            vec![cpu(0)],
        ),
        sample(
            1.0,
            100,
            vec![proc(1, 1, 20, "a"), proc(2, 1, 30, "a"), proc(3, 1, 50, "b")],
            vec![cpu(10_000_000)],
        ),
    ];
    let l = run(&s, IdleHolderConfig::default());
    for by in GroupBy::ALL {
        let total: f64 = l.groups(by).iter().map(|g| g.energy_j).sum();
        assert!((total - 10.0).abs() < 1e-9, "{by:?}");
    }
    let cmds = l.groups(GroupBy::Command);
    assert_eq!(cmds[0].key, "a");
    assert!((cmds[0].energy_j - 5.0).abs() < 1e-9);
    assert_eq!(l.groups(GroupBy::User)[0].key, "ana");
}

#[test]
fn na_interval_counts_unavailable_time_not_energy() {
    let mut bad = DeviceReading::new("cpu0", DeviceKind::Cpu, "package-0");
    bad.error = Some("RAPL read failed".into());
    let s = vec![
        sample(0.0, 0, vec![], vec![cpu(0)]),
        sample(1.0, 0, vec![], vec![bad]),
        sample(2.0, 0, vec![], vec![cpu(30_000_000)]),
        sample(3.0, 0, vec![], vec![cpu(40_000_000)]),
    ];
    let l = run(&s, IdleHolderConfig::default());
    let d = &l.devices[0];
    // Only the last interval pairs two readings: 10 J; the gap is not double-counted.
    assert!((d.energy_j - 10.0).abs() < 1e-9);
    assert!((d.unavailable_s - 2.0).abs() < 1e-9);
}

/// A stale reading (failed read, last good counter kept) makes its interval N/A; the next reading
/// recovers the energy and the time, so availability and average power stay right.
#[test]
fn recovered_stale_interval_gives_back_its_time() {
    let mut stale = cpu(10_000_000);
    stale.energy_stale = true;
    stale.error = Some("RAPL read failed; last good energy reading kept".into());
    let s = vec![
        sample(0.0, 0, vec![], vec![cpu(0)]),
        sample(1.0, 0, vec![], vec![cpu(10_000_000)]),
        sample(2.0, 0, vec![], vec![stale]),
        sample(3.0, 0, vec![], vec![cpu(30_000_000)]),
    ];
    let l = run(&s, IdleHolderConfig::default());
    let d = &l.devices[0];
    assert!((d.energy_j - 30.0).abs() < 1e-9, "nothing lost: {}", d.energy_j);
    assert!(
        d.unavailable_s.abs() < 1e-9,
        "the gap was recovered: {}",
        d.unavailable_s
    );
    assert!((d.available_s - 3.0).abs() < 1e-9, "{}", d.available_s);
    assert_eq!(d.power_w, Some(10.0), "20 J over the 2 s it covers, not over 1 s");
}

proptest! {
    #[test]
    fn session_conservation_over_random_churn(
        steps in proptest::collection::vec(
            (proptest::collection::vec((0u32..15, 0u64..2, 0u64..50), 0..12), 0u64..200, 0u64..50_000_000),
            2..25),
        max_exited in 2usize..6,
    ) {
        let mut samples = Vec::new();
        let (mut busy, mut energy) = (0u64, 0u64);
        let mut ticks: std::collections::HashMap<(u32, u64), u64> = Default::default();
        for (i, (procs, db, de)) in steps.iter().enumerate() {
            busy += db;
            energy += de;
            let mut seen = std::collections::HashSet::new();
            let ps = procs.iter().filter(|(p, _, _)| seen.insert(*p)).map(|(pid, st, dt)| {
                let t = ticks.entry((*pid, *st)).or_insert(0);
                *t += dt;
                proc(*pid, *st, *t, "x")
            }).collect();
            samples.push(sample(i as f64, busy, ps, vec![cpu(energy)]));
        }
        let mut at = Attributor::default();
        let mut l = Ledger::new(IdleHolderConfig::default());
        l.max_exited = max_exited;
        let mut last_total = 0.0;
        for w in samples.windows(2) {
            let iv = at.attribute(&w[0], &w[1]);
            l.apply(&w[1], &iv);
            let total: f64 = l.processes().map(|e| e.energy_j).sum::<f64>()
                + l.folded().values().map(|f| f.energy_j).sum::<f64>();
            prop_assert!(total + 1e-9 >= last_total, "process energy went down");
            last_total = total;
        }
        session_conservation(&l);
    }
}
