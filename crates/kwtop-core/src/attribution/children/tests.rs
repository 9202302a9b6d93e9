use super::super::tests::{proc, rapl, sample, share};
use super::*;
use crate::attribution::{Attributor, DeviceEnergy};
use crate::sample::ProcessReading;

/// A process with a parent and waited-for children's ticks. Starttime 5 = long before the interval.
fn pc(pid: u32, ppid: u32, ticks: u64, child: u64) -> ProcessReading {
    let mut p = proc(pid, 5, ticks);
    p.ppid = ppid;
    p.child_ticks = child;
    p
}

/// 100 busy ticks and 100 J between `a` and `b`: one tick is one joule.
fn split(a: Vec<ProcessReading>, b: Vec<ProcessReading>) -> DeviceEnergy {
    let a = sample(0.0, 0, 0, a, vec![rapl("cpu0", 0, None)]);
    let b = sample(1.0, 100, 0, b, vec![rapl("cpu0", 100_000_000, None)]);
    let d = Attributor::default().attribute(&a, &b).devices.remove(0);
    assert!(d.conservation_error_j().abs() < 1e-9);
    d
}

#[test]
fn child_born_and_reaped_inside_the_interval_is_charged_to_its_parent() {
    // sh ran 10 ticks itself; a child it never listed ran 40 and was reaped: cutime grew by 40.
    let d = split(vec![pc(10, 1, 100, 0)], vec![pc(10, 1, 110, 40)]);
    assert!((share(&d, 10) - 50.0).abs() < 1e-9, "{d:?}");
    assert!((d.unattributed_j - 50.0).abs() < 1e-9);
}

#[test]
fn child_seen_before_and_reaped_during_the_interval_is_not_counted_twice() {
    // Child 11 had run 30 ticks (and reaped 5) when last seen, then ran 20 more and was reaped:
    // the parent's cutime grows by its whole 55, of which only 20 are this interval's.
    let d = split(
        vec![pc(10, 1, 100, 0), pc(11, 10, 30, 5)],
        vec![pc(10, 1, 100, 55)],
    );
    assert!((share(&d, 10) - 20.0).abs() < 1e-9, "{d:?}");
    assert_eq!(share(&d, 11), 0.0, "a vanished process has no reading in cur");
    assert!((d.unattributed_j - 80.0).abs() < 1e-9);
}

#[test]
fn grandchildren_reaped_by_a_child_that_is_itself_reaped() {
    // 10 → 11 → 12. Grandchild 12 (15 own + 2 reaped when seen) runs 5 more, is reaped by 11
    // (cutime 0 → 22); 11 (10 own) runs 3 more and is reaped by 10: 10's cutime grows by 13 + 22.
    let d = split(
        vec![pc(10, 1, 0, 0), pc(11, 10, 10, 0), pc(12, 11, 15, 2)],
        vec![pc(10, 1, 0, 35)],
    );
    assert!((share(&d, 10) - 8.0).abs() < 1e-9, "{d:?}");
}

#[test]
fn a_visible_zombie_is_charged_once() {
    // Interval 1: child 11 exits and stays a zombie (listed with its final 25 ticks).
    // Interval 2: parent 10 reaps it; its cutime grows by 25, all charged already.
    let s0 = sample(
        0.0,
        0,
        0,
        vec![pc(10, 1, 0, 0), pc(11, 10, 10, 0)],
        vec![rapl("cpu0", 0, None)],
    );
    let s1 = sample(
        1.0,
        100,
        0,
        vec![pc(10, 1, 0, 0), pc(11, 10, 25, 0)],
        vec![rapl("cpu0", 100_000_000, None)],
    );
    let s2 = sample(
        2.0,
        200,
        0,
        vec![pc(10, 1, 4, 25)],
        vec![rapl("cpu0", 200_000_000, None)],
    );
    let mut at = Attributor::default();
    let d1 = at.attribute(&s0, &s1).devices.remove(0);
    assert!((share(&d1, 11) - 15.0).abs() < 1e-9);
    assert_eq!(share(&d1, 10), 0.0);
    let d2 = at.attribute(&s1, &s2).devices.remove(0);
    assert!((share(&d2, 10) - 4.0).abs() < 1e-9, "{d2:?}");
}

#[test]
fn a_process_first_seen_late_gets_none_of_its_old_children_time() {
    // 20 started long before the interval and was not listed in prev: its cumulative cutime is
    // history, not this interval's work. 21 was born inside: all its own and children's time counts.
    let mut young = proc(21, 100_050, 7);
    young.child_ticks = 3;
    let d = split(vec![], vec![pc(20, 1, 9_000, 50_000), young]);
    assert_eq!(share(&d, 20), 0.0);
    assert!((share(&d, 21) - 10.0).abs() < 1e-9);
}

#[test]
fn children_reaped_without_a_wait_never_make_a_negative_share() {
    // The parent ignores SIGCHLD: the kernel drops child 11's times, cutime does not grow.
    let d = split(vec![pc(10, 1, 0, 0), pc(11, 10, 40, 0)], vec![pc(10, 1, 6, 0)]);
    assert!((share(&d, 10) - 6.0).abs() < 1e-9);
    assert!((d.unattributed_j - 94.0).abs() < 1e-9);
}

#[test]
fn deductions_follow_the_parent_chain_to_the_nearest_live_ancestor() {
    let prev = sample(
        0.0,
        0,
        0,
        vec![
            pc(1, 0, 0, 0),
            pc(10, 1, 0, 0),
            pc(11, 10, 4, 1),
            pc(12, 11, 6, 0),
            pc(13, 99, 8, 0),
        ],
        vec![],
    );
    let alive = [true, true, false, false, false];
    // 11 and 12 (via 11) to 10; 13's parent was never listed: nobody to deduct from.
    assert_eq!(reaped_before(&prev, &alive), vec![0, 11, 0, 0, 0]);
    let cycle = sample(0.0, 0, 0, vec![pc(5, 6, 1, 0), pc(6, 5, 1, 0)], vec![]);
    assert_eq!(reaped_before(&cycle, &[false, false]), vec![0, 0]);
}

#[test]
fn nothing_vanished_means_no_deductions() {
    let prev = sample(0.0, 0, 0, vec![pc(10, 1, 0, 0)], vec![]);
    assert!(reaped_before(&prev, &[true]).is_empty());
    let cur = sample(1.0, 0, 0, vec![pc(10, 1, 3, 4)], vec![]);
    assert_eq!(
        interval_ticks(&prev, &cur),
        vec![(
            ProcKey {
                pid: 10,
                starttime: 5
            },
            7
        )]
    );
}

/// Live samples list pids in ascending order and are merged; recordings in any order are
/// looked up: both give the same ticks, processes that came, went and were reused included.
#[test]
fn ticks_do_not_depend_on_the_order_processes_are_listed_in() {
    let mk = |t: f64, busy: u64, procs: Vec<ProcessReading>| {
        sample(t, busy, 0, procs, vec![rapl("cpu0", 0, None)])
    };
    let prev = vec![
        pc(3, 1, 10, 0),
        pc(5, 1, 20, 0),
        proc(7, 5, 30),
        pc(9, 5, 40, 0),
        pc(12, 9, 50, 0),
    ];
    // 7 is a new process on a reused pid; 9 is gone (reaped by 5); 11 is new.
    let cur = vec![
        pc(3, 1, 15, 0),
        pc(5, 1, 21, 45),
        proc(7, 6, 33),
        pc(11, 5, 2, 0),
        pc(12, 5, 58, 0),
    ];
    let sorted = interval_ticks(&mk(0.0, 0, prev.clone()), &mk(1.0, 100, cur.clone()));
    let (mut p, mut c) = (prev, cur);
    p.reverse();
    c.swap(0, 3);
    let mut shuffled = interval_ticks(&mk(0.0, 0, p), &mk(1.0, 100, c));
    shuffled.sort();
    assert_eq!(sorted, shuffled);
    let get = |pid| sorted.iter().find(|(k, _)| k.pid == pid).map(|(_, t)| *t);
    assert_eq!(get(3), Some(5));
    assert_eq!(get(5), Some(1 + 5), "45 reaped, 40 of them run before");
    assert_eq!(
        get(7),
        None,
        "a reused pid is a new process, older than the interval"
    );
    assert_eq!(get(12), Some(8));
}
