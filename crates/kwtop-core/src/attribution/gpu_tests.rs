//! GPU attribution when NVML's process lists fail or MIG hides per-process utilisation.

use proptest::prelude::*;

use super::*;
use crate::sample::MigInstance;
use crate::testing;

/// A GPU reading at `t` seconds: counter `j` joules, limit 700 W, the given holders.
fn gpu(j: f64, holders: Vec<GpuProcess>) -> DeviceReading {
    testing::gpu("gpu0", "NVIDIA H100", (j * 1e6) as u64, Some(700.0), holders)
}

fn refused(mut g: DeviceReading) -> DeviceReading {
    g.holders_error = Some("compute process list failed: no permission (NVML refused this query)".into());
    g
}

fn at(t: f64, devices: Vec<DeviceReading>) -> Sample {
    testing::sample_at(t).devices(devices).build()
}

fn holder(pid: u32, mem_gib: u64, sm: Option<f64>, mig: Option<u32>) -> GpuProcess {
    let gp = testing::holder(pid, mem_gib << 30, sm);
    match mig {
        Some(gi) => testing::in_mig(gp, gi, Some(0)),
        None => gp,
    }
}

fn share(d: &DeviceEnergy, pid: u32) -> f64 {
    d.shares
        .iter()
        .filter(|(k, _)| k.pid == pid)
        .map(|(_, j)| j)
        .sum()
}

#[test]
fn refused_list_books_static_as_unattributed_never_idle_and_learns_no_floor() {
    // A busy GPU (500 W) whose compute list is refused: before, the 70 W floor (10 % of the limit)
    // went to idle and the floor was learned as 500 W.
    let mut at_ = Attributor::default();
    let a = at(0.0, vec![refused(gpu(0.0, vec![]))]);
    let b = at(1.0, vec![refused(gpu(500.0, vec![]))]);
    let d = at_.attribute(&a, &b).devices.remove(0);
    assert_eq!(d.energy_j, Some(500.0));
    assert_eq!(d.status, None, "energy was read: the device is up");
    assert_eq!(d.idle_j, 0.0);
    assert!((d.unattributed_j - 500.0).abs() < 1e-9);
    assert!((d.static_j - 70.0).abs() < 1e-9);
    assert!(
        d.notes
            .iter()
            .any(|n| n.contains("no permission") && n.contains("unattributed")),
        "{:?}",
        d.notes
    );
    assert_eq!(at_.gpu_idle_w(&b.devices[0]), Some((70.0, "share of limit")));
}

#[test]
fn floor_is_learned_from_truly_empty_intervals_only() {
    let mut att = Attributor::default();
    let s = [
        at(0.0, vec![refused(gpu(0.0, vec![]))]),
        at(1.0, vec![refused(gpu(500.0, vec![]))]),
        // The list works again and is empty, but the interval began while it was refused.
        at(2.0, vec![gpu(1000.0, vec![])]),
        // Truly empty at both ends: 60 W is learned.
        at(3.0, vec![gpu(1060.0, vec![])]),
        // Refused again at 300 W: the floor stays.
        at(4.0, vec![refused(gpu(1360.0, vec![]))]),
    ];
    let mut learned = Vec::new();
    for w in s.windows(2) {
        let d = att.attribute(&w[0], &w[1]).devices.remove(0);
        learned.push(att.gpu_idle_w(&w[1].devices[0]));
        assert!(d.conservation_error_j().abs() < 1e-9);
    }
    assert_eq!(learned[0], Some((70.0, "share of limit")));
    assert_eq!(learned[1], Some((70.0, "share of limit")));
    assert_eq!(learned[2], Some((60.0, "learned")));
    assert_eq!(learned[3], Some((60.0, "learned")));
}

#[test]
fn holders_from_lists_that_answered_get_their_sm_time_of_the_busy_device() {
    // Compute list refused, MPS list named pid 9 at 40 % SM while the device was 80 % busy:
    // it gets half the dynamic energy; static and the rest are unattributed.
    let cfg = AttributionConfig {
        gpu_idle_w: Some(100.0),
        ..Default::default()
    };
    let mut g0 = refused(gpu(0.0, vec![holder(9, 2, Some(40.0), None)]));
    g0.util_pct = Some(80.0);
    let mut g1 = refused(gpu(500.0, vec![holder(9, 2, Some(40.0), None)]));
    g1.util_pct = Some(80.0);
    let d = Attributor::new(cfg)
        .attribute(&at(0.0, vec![g0]), &at(1.0, vec![g1]))
        .devices[0]
        .clone();
    assert!((share(&d, 9) - 200.0).abs() < 1e-9, "{d:?}");
    assert!((d.unattributed_j - 300.0).abs() < 1e-9);
    assert_eq!(d.idle_j, 0.0);
}

#[test]
fn mig_holders_split_dynamic_by_memory_and_say_so() {
    // MIG: NVML has no per-process utilisation. 3 GiB and 1 GiB: static and dynamic 3:1.
    let cfg = AttributionConfig {
        gpu_idle_w: Some(100.0),
        ..Default::default()
    };
    let hs = vec![holder(1, 3, None, Some(1)), holder(2, 1, None, Some(2))];
    let a = at(0.0, vec![gpu(0.0, hs.clone())]);
    let b = at(1.0, vec![gpu(400.0, hs)]);
    let d = Attributor::new(cfg).attribute(&a, &b).devices[0].clone();
    assert!((share(&d, 1) - 300.0).abs() < 1e-9);
    assert!((share(&d, 2) - 100.0).abs() < 1e-9);
    assert_eq!(d.status, None);
    assert_eq!(
        d.notes,
        ["dynamic energy split by GPU memory (MIG: no per-process utilisation)"]
    );
    // Even a (made-up) utilisation on a MIG holder does not replace the memory split.
    let hs = vec![
        holder(1, 3, Some(0.0), Some(1)),
        holder(2, 1, Some(90.0), Some(2)),
    ];
    let d = Attributor::new(AttributionConfig {
        gpu_idle_w: Some(0.0),
        ..Default::default()
    })
    .attribute(
        &at(0.0, vec![gpu(0.0, hs.clone())]),
        &at(1.0, vec![gpu(400.0, hs)]),
    )
    .devices[0]
        .clone();
    assert!((share(&d, 1) - 300.0).abs() < 1e-9);
}

#[test]
fn unknown_utilisation_without_mig_is_labelled_too() {
    let hs = vec![holder(1, 1, None, None), holder(2, 1, None, None)];
    let d = Attributor::default()
        .attribute(
            &at(0.0, vec![gpu(0.0, hs.clone())]),
            &at(1.0, vec![gpu(400.0, hs)]),
        )
        .devices[0]
        .clone();
    assert_eq!(
        d.notes,
        ["dynamic energy split by GPU memory (no per-process utilisation)"]
    );
    assert!((share(&d, 1) - 200.0).abs() < 1e-9);
}

#[test]
fn failed_secondary_query_is_a_note_not_a_status() {
    let mut g1 = gpu(100.0, vec![]);
    g1.notes
        .push("per-process utilisation failed: no permission".into());
    let d = Attributor::default()
        .attribute(&at(0.0, vec![gpu(0.0, vec![])]), &at(1.0, vec![g1]))
        .devices[0]
        .clone();
    assert_eq!(d.status, None);
    assert_eq!(d.notes, ["per-process utilisation failed: no permission"]);
    // A recording from before notes existed put it in `error`: still up, still said.
    let mut old = gpu(100.0, vec![]);
    old.error = Some("process utilisation: no permission".into());
    let d = Attributor::default()
        .attribute(&at(0.0, vec![gpu(0.0, vec![])]), &at(1.0, vec![old]))
        .devices[0]
        .clone();
    assert_eq!((d.energy_j, d.status), (Some(100.0), None));
    assert_eq!(d.notes, ["process utilisation: no permission"]);
}

fn arb_holder() -> impl Strategy<Value = GpuProcess> {
    (
        0u32..6,
        proptest::option::of(0u64..(80u64 << 30)),
        proptest::option::of(0.0f64..150.0),
        proptest::option::of(0u32..7),
    )
        .prop_map(|(pid, used_mem_bytes, sm_util_pct, gi)| GpuProcess {
            pid,
            used_mem_bytes,
            sm_util_pct,
            mig: gi.map(|g| MigInstance {
                gpu_instance_id: g,
                compute_instance_id: None,
            }),
        })
}

proptest! {
    /// Conservation with refused lists, MIG and unknown utilisation: every term ≥ 0, nothing idle
    /// while the list is refused, and no floor learned from such an interval.
    #[test]
    fn gpu_conservation_with_refused_lists_and_mig(
        holders in proptest::collection::vec(arb_holder(), 0..6),
        (j0, w, dt) in (0.0f64..1e6, 0.0f64..5000.0, 0.01f64..10.0),
        (refused0, refused1) in (any::<bool>(), any::<bool>()),
        util in proptest::option::of(0.0f64..100.0),
        idle_w in proptest::option::of(0.0f64..800.0),
    ) {
        let mk = |j: f64, refuse: bool| {
            let mut g = gpu(j, holders.clone());
            g.util_pct = util;
            if refuse { refused(g) } else { g }
        };
        let a = at(0.0, vec![mk(j0, refused0)]);
        let b = at(dt, vec![mk(j0 + w * dt, refused1)]);
        let mut att = Attributor::new(AttributionConfig { gpu_idle_w: idle_w, ..Default::default() });
        let before = att.gpu_idle_w(&b.devices[0]);
        let d = att.attribute(&a, &b).devices.remove(0);
        let e = d.energy_j.unwrap_or(0.0);
        prop_assert!(d.idle_j >= 0.0 && d.unattributed_j >= 0.0 && d.static_j >= 0.0);
        prop_assert!(d.shares.iter().all(|(_, j)| *j >= 0.0 && j.is_finite()));
        prop_assert!(d.conservation_error_j().abs() <= 1e-9 * e.max(1.0), "{d:?}");
        prop_assert_eq!(d.status, None);
        if refused1 {
            prop_assert_eq!(d.idle_j, 0.0);
            prop_assert!(d.unattributed_j >= d.static_j - 1e-9 * e.max(1.0));
        }
        if refused0 || refused1 {
            prop_assert_eq!(att.gpu_idle_w(&b.devices[0]), before);
        }
    }
}
