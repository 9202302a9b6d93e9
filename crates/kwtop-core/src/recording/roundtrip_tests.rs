//! The property of the delta format: for any sequence of samples, writing (with deltas, any full
//! sample cadence, any compression) and reading back gives the samples exactly, every field.

use std::sync::Arc;

use proptest::prelude::*;

use super::delta_tests::{options, read_all, write_with};
use super::*;
use crate::cgroup::CgroupInfo;
use crate::sample::{
    CpuEstimate, CpuTimes, DeviceKind, DeviceReading, EnergyCounter, EstimateModel, GpuProcess, MigInstance,
};

fn finite() -> impl Strategy<Value = f64> {
    use proptest::num::f64 as f;
    prop_oneof![
        3 => (0u32..5).prop_map(f64::from),
        1 => f::POSITIVE | f::NEGATIVE | f::NORMAL | f::SUBNORMAL | f::ZERO,
    ]
}

fn word() -> impl Strategy<Value = String> {
    prop_oneof![Just(String::new()), Just("a".to_string()), "[a-z0-9 /._=-]{1,12}"]
}

fn info() -> impl Strategy<Value = ProcInfo> {
    (
        word(),
        word(),
        word(),
        proptest::option::of(0u32..3),
        word(),
        proptest::option::of(word()),
        proptest::option::of(word()),
    )
        .prop_map(|(comm, cmdline, user, uid, path, container, unit)| ProcInfo {
            comm,
            cmdline,
            user,
            uid,
            cgroup: std::sync::Arc::new(CgroupInfo {
                path,
                container,
                pod: None,
                slurm_job: None,
                unit,
            }),
        })
}

fn process() -> impl Strategy<Value = ProcessReading> {
    // Small domains, so that keys recur and most values stay unchanged from one sample to the next.
    ((0u32..8, 0u64..2), 0u32..3, 0u64..4, 0u64..3, 0usize..4, info()).prop_map(
        |((pid, starttime), ppid, cpu_ticks, child_ticks, which, extra)| {
            let fixed = ProcInfo {
                comm: format!("p{pid}"),
                user: "ana".into(),
                ..Default::default()
            };
            ProcessReading {
                key: ProcKey { pid, starttime },
                ppid,
                cpu_ticks,
                child_ticks,
                info: Arc::new(if which == 0 { extra } else { fixed }),
            }
        },
    )
}

fn device() -> impl Strategy<Value = DeviceReading> {
    let energy = proptest::option::of((0u64..3, proptest::option::of(Just(1u64 << 40))))
        .prop_map(|e| e.map(|(value_uj, wrap_uj)| EnergyCounter { value_uj, wrap_uj }));
    let holder = (
        0u32..4,
        proptest::option::of(0u64..2),
        proptest::option::of(finite()),
        any::<bool>(),
    )
        .prop_map(|(pid, used_mem_bytes, sm_util_pct, mig)| GpuProcess {
            pid,
            used_mem_bytes,
            sm_util_pct,
            mig: mig.then_some(MigInstance {
                gpu_instance_id: 1,
                compute_instance_id: None,
            }),
        });
    let estimate = proptest::option::of((finite(), finite())).prop_map(|e| {
        e.map(|(tdp_w, usable_share)| CpuEstimate {
            tdp_w,
            idle_fraction: 0.25,
            model: EstimateModel::Codecarbon,
            tdp_source: "test".into(),
            usable_share,
        })
    });
    (
        (
            energy,
            any::<bool>(),
            finite(),
            proptest::option::of(finite()),
            estimate,
        ),
        (
            proptest::option::of(finite()),
            proptest::option::of(0u64..2),
            proptest::collection::vec(holder, 0..3),
        ),
        (
            proptest::option::of(word()),
            proptest::collection::vec(word(), 0..2),
            proptest::option::of(word()),
        ),
    )
        .prop_map(
            |((energy, stale, gap, power, estimate), (util, mem, holders), (error, notes, vendor))| {
                let mut d = DeviceReading::new("dev", DeviceKind::Gpu, "name");
                d.energy = energy;
                d.energy_stale = stale;
                d.energy_gap_s = gap;
                d.power_w = power;
                d.estimate = estimate;
                d.util_pct = util;
                d.mem_used_bytes = mem;
                d.gpu_processes = holders;
                d.error = error;
                d.notes = notes;
                d.vendor = vendor;
                d
            },
        )
}

fn sample() -> impl Strategy<Value = Sample> {
    (
        (finite(), any::<i64>(), proptest::option::of(finite()), 1u64..200),
        proptest::option::of((0u64..3, 0u64..3)),
        (proptest::collection::vec(process(), 0..10), 0u8..10),
        (proptest::collection::vec(device(), 0..3), any::<bool>()),
    )
        .prop_map(
            |((t, wall_ms, uptime_s, tps), cpu, (mut processes, order), (mut devices, same_ids))| {
                // Mostly as a live source lists them: by pid, once each.
                if order < 7 {
                    processes.sort_by_key(|p| p.key);
                    processes.dedup_by_key(|p| p.key);
                }
                for (i, d) in devices.iter_mut().enumerate() {
                    d.id = if same_ids {
                        format!("gpu{i}")
                    } else {
                        format!("dev{}", (t.to_bits() % 4) as usize + i)
                    };
                }
                Sample {
                    mono_s: t,
                    wall_ms,
                    uptime_s,
                    ticks_per_s: tps,
                    cpu_times: cpu.map(|(busy, idle)| CpuTimes { busy, idle }),
                    processes,
                    devices,
                }
            },
        )
}

fn compression() -> impl Strategy<Value = Compression> {
    prop_oneof![
        Just(Compression::None),
        Just(Compression::Zstd),
        Just(Compression::Gzip)
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]
    #[test]
    fn writing_with_deltas_and_reading_back_gives_the_samples_exactly(
        samples in proptest::collection::vec(sample(), 0..12),
        full_every in 1u32..6,
        c in compression(),
    ) {
        let bytes = write_with(&samples, options(full_every, c));
        let back = read_all(bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(back.len(), samples.len());
        for (i, (b, s)) in back.iter().zip(&samples).enumerate() {
            prop_assert_eq!(b, s, "sample {}", i);
            prop_assert_eq!(b.mono_s.to_bits(), s.mono_s.to_bits(), "sample {} time bits", i);
        }
    }
}
