#![allow(clippy::unwrap_used, clippy::expect_used)]
use super::*;
use crate::attribution::DeviceEnergy;
use crate::engine::{Engine, EngineParams};
use crate::sample::DeviceKind;
use crate::testing::{counter, process, sample_at};

fn key(pid: u32, starttime: u64) -> ProcKey {
    ProcKey { pid, starttime }
}

/// One interval: a device of `total` J whose shares are `shares` (the rest idle).
fn interval(total: f64, shares: &[(ProcKey, f64)], prov: Provenance) -> Interval {
    let used: f64 = shares.iter().map(|(_, j)| j).sum();
    Interval {
        dt_s: 1.0,
        wall_ms: 0,
        devices: vec![DeviceEnergy {
            id: "cpu0".into(),
            kind: DeviceKind::Cpu,
            name: "pkg".into(),
            energy_j: Some(total),
            provenance: prov,
            status: None,
            notes: Vec::new(),
            idle_j: total - used,
            unattributed_j: 0.0,
            static_j: 0.0,
            shares: shares.to_vec(),
            recovered_s: 0.0,
            gap_s: 0.0,
        }],
        cpu_load: None,
        cpu_shares: Vec::new(),
    }
}

#[test]
fn a_tree_follows_children_in_any_order_orphans_and_not_a_reused_pid() {
    let mut t = ProcTree::new([10]);
    let s = sample_at(1.0)
        .procs([
            process(12, 5, 0).ppid(11).build(),
            process(11, 4, 0).ppid(10).build(),
            process(10, 3, 0).ppid(1).build(),
            process(20, 6, 0).ppid(1).build(),
        ])
        .build();
    t.update(&s);
    assert!(t.contains(&key(10, 3)) && t.contains(&key(11, 4)) && t.contains(&key(12, 5)));
    assert!(!t.contains(&key(20, 6)));
    // 11 exits; its child is re-parented to init between samples, and 13 is born to 12.
    let s = sample_at(2.0)
        .procs([
            process(10, 3, 0).ppid(1).build(),
            process(12, 5, 0).ppid(1).build(),
            process(13, 7, 0).ppid(12).build(),
            process(20, 6, 0).ppid(1).build(),
        ])
        .build();
    t.update(&s);
    assert!(
        t.contains(&key(12, 5)) && t.contains(&key(13, 7)),
        "orphan and its child stay"
    );
    assert_eq!(t.len(), 3);
    // The root exits and its pid is reused by an unrelated process.
    let s = sample_at(3.0)
        .procs([
            process(10, 99, 0).ppid(1).build(),
            process(13, 7, 0).ppid(12).build(),
        ])
        .build();
    t.update(&s);
    assert!(!t.contains(&key(10, 99)), "a reused root pid is someone else");
    assert!(t.contains(&key(13, 7)));
    assert!(t.has_pid(13) && !t.has_pid(10));
}

#[test]
fn scope_labels() {
    assert_eq!(Scope::Tree { pid: 7 }.label(), "tree of 7");
    let w = Scope::Writers {
        file: "train.log".into(),
        pids: vec![1, 2, 3, 4, 5],
    };
    assert_eq!(w.label(), "writers of train.log (1,2,3 +2)");
    let l = Scope::Listener {
        port: 8000,
        pids: vec![811],
    };
    assert_eq!(
        (l.label().as_str(), l.kind()),
        ("tree of 811 (listening on :8000)", "listener")
    );
    assert_eq!(Scope::Machine.label(), "whole machine");
}

#[test]
fn interval_energy_of_a_tree_or_the_machine() {
    let mut t = ProcTree::new([10]);
    t.update(&sample_at(1.0).procs([process(10, 3, 0).build()]).build());
    let iv = interval(
        10.0,
        &[(key(10, 3), 4.0), (key(20, 6), 1.0)],
        Provenance::Measured,
    );
    assert_eq!(interval_energy(&iv, Some(&t)), (4.0, false));
    assert_eq!(interval_energy(&iv, None), (10.0, false), "idle included");
    let est = interval(10.0, &[(key(20, 6), 1.0)], Provenance::Estimated);
    assert_eq!(
        interval_energy(&est, Some(&t)),
        (0.0, false),
        "none of it is the tree's"
    );
    assert_eq!(interval_energy(&est, None), (10.0, true));
}

#[test]
fn counting_starts_at_the_first_answer_with_the_count_so_far_as_baseline() {
    let mut w = LiveWork::new("step");
    let impact = ImpactParams::default();
    // Energy before the first answer is not the session's.
    w.add_energy(100.0, false);
    w.observe(1_000, Observation::Total(500));
    w.answered(1.0);
    let f = w.figures(&Scope::Tree { pid: 7 }, &impact);
    assert!(f.started);
    assert_eq!((f.units, f.reported, f.energy_j), (0, 500, 0.0));
    assert_eq!(f.session, None, "no time, no unit yet: no J/unit, never 0");
    for s in 2..=11 {
        w.add_energy(40.0, false);
        w.observe(s * 1000, Observation::Total(500 + 2 * s as u64 - 2));
        w.answered(s as f64);
    }
    let f = w.figures(&Scope::Tree { pid: 7 }, &impact);
    assert_eq!((f.units, f.reported), (20, 520));
    assert_eq!(f.energy_j, 400.0);
    let s = f.session.unwrap();
    assert_eq!((s.span_s, s.units, s.energy_j), (10.0, 20, 400.0));
    assert_eq!((s.per_s, s.j_per_unit), (2.0, Some(20.0)));
    assert_eq!(f.wh_per_1000, Some(400.0 / 3600.0 / 20.0 * 1000.0));
    let co2 = f.co2e_g_per_unit.unwrap();
    assert!((co2 - impact.co2e_g(400.0) / 20.0).abs() < 1e-12);
    assert_eq!((f.scope.as_str(), f.scope_kind), ("tree of 7", "tree"));
}

#[test]
fn a_gap_freezes_the_figures_and_the_next_answer_brings_the_gap_units() {
    let mut w = LiveWork::new("token");
    let impact = ImpactParams::default();
    w.observe(0, Observation::Total(1000));
    w.answered(0.0);
    w.add_energy(10.0, false);
    w.observe(1000, Observation::Total(1100));
    w.answered(1.0);
    let before = w.figures(&Scope::Machine, &impact);
    assert_eq!(before.session.unwrap().j_per_unit, Some(0.1));
    assert!(w.failed(2.0, "connection refused"));
    w.add_energy(10.0, false);
    assert!(
        !w.failed(3.0, "connection refused"),
        "one gap, not one per sample"
    );
    w.add_energy(10.0, false);
    w.tick(4.0);
    let gap = w.figures(&Scope::Machine, &impact);
    assert_eq!(gap.gap.as_ref().unwrap().for_s, 3.0, "since the last answer");
    assert_eq!(gap.units, 100, "frozen, not zero");
    assert_eq!(
        gap.session, before.session,
        "per-unit figures as of the last answer"
    );
    assert_eq!(gap.energy_j, 30.0, "energy keeps counting");
    // The server answers again; its counter carries the gap's units.
    w.observe(5000, Observation::Total(1400));
    w.answered(5.0);
    let after = w.figures(&Scope::Machine, &impact);
    assert!(after.gap.is_none());
    assert_eq!(
        (after.units, after.session.unwrap().j_per_unit),
        (400, Some(30.0 / 400.0))
    );
}

#[test]
fn a_restarted_counter_counts_on() {
    let mut w = LiveWork::new("token");
    w.observe(0, Observation::Total(900));
    w.answered(0.0);
    w.observe(1000, Observation::Total(1000));
    w.answered(1.0);
    // The server restarted: its counter starts from 0 again.
    w.observe(2000, Observation::Total(30));
    w.answered(2.0);
    let f = w.figures(&Scope::Machine, &ImpactParams::default());
    assert_eq!((f.units, f.resets), (130, 1));
}

#[test]
fn the_last_minute_comes_from_a_small_ring() {
    let mut w = LiveWork::new("step");
    w.observe(0, Observation::Total(0));
    w.answered(0.0);
    // 10 units and 100 J per second for 100 s, then 1 unit and 100 J per second.
    let mut units = 0;
    for s in 1..=200u64 {
        w.add_energy(100.0, false);
        units += if s <= 100 { 10 } else { 1 };
        w.observe(s as i64 * 1000, Observation::Total(units));
        w.answered(s as f64);
    }
    assert!(w.ring.len() <= 62, "about a minute of points: {}", w.ring.len());
    let f = w.figures(&Scope::Machine, &ImpactParams::default());
    let r = f.recent.unwrap();
    assert_eq!((r.span_s, r.units, r.per_s), (60.0, 60, 1.0));
    assert_eq!(r.j_per_unit, Some(100.0));
    let s = f.session.unwrap();
    assert_eq!(s.j_per_unit, Some(20_000.0 / 1100.0));
}

#[test]
fn a_restart_makes_the_count_so_far_the_new_baseline() {
    let mut w = LiveWork::new("step");
    w.observe(0, Observation::Total(10));
    w.answered(0.0);
    w.add_energy(50.0, true);
    w.observe(1000, Observation::Total(20));
    w.answered(1.0);
    w.restart();
    assert!(!w.is_started());
    w.answered(2.0);
    let f = w.figures(&Scope::Machine, &ImpactParams::default());
    assert_eq!((f.units, f.energy_j, f.estimated), (0, 0.0, false));
}

#[test]
fn the_tree_energy_of_real_intervals_adds_up() {
    // A 10 W package (1 J per 0.1 s step); the tree (10 and its child 11) gets 3 of 5 busy ticks.
    let mut engine = Engine::new(&EngineParams::default());
    let mut tree = ProcTree::new([10]);
    let mut w = LiveWork::new("step");
    let mut expect = 0.0;
    for i in 0..=10u64 {
        let s = sample_at(i as f64)
            .cpu(5 * i * 100, 0)
            .procs([
                process(10, 3, i * 100).build(),
                process(11, 4, 2 * i * 100).ppid(10).build(),
                process(20, 5, 2 * i * 100).build(),
            ])
            .devices([counter(
                "cpu0",
                DeviceKind::Cpu,
                "pkg",
                1_000_000 + i * 10_000_000,
            )])
            .build();
        tree.update(&s);
        engine.push(s);
        if let Some(iv) = engine.last_interval.as_ref().filter(|_| i > 0) {
            let (j, _) = interval_energy(iv, Some(&tree));
            if w.is_started() {
                expect += j;
            }
            w.add_energy(j, false);
        }
        w.observe(i as i64 * 1000, Observation::Total(i));
        w.answered(i as f64);
    }
    let f = w.figures(&Scope::Tree { pid: 10 }, &ImpactParams::default());
    assert!((expect - 60.0).abs() < 1e-6, "3/5 of 10 W for 10 s: {expect}");
    assert!((f.energy_j - expect).abs() < 1e-9);
    assert_eq!(f.units, 10);
    assert!((f.session.unwrap().j_per_unit.unwrap() - 6.0).abs() < 1e-6);
}
