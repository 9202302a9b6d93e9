//! CPU ticks of each process over one interval, its own and those of the children it waited for.
//!
//! A child that starts and exits between two samples is never listed, but when its parent reaps it
//! the kernel adds the child's whole CPU time (utime + stime + its own cutime + cstime at exit) to the
//! parent's cutime + cstime. So a process's ticks in `(prev, cur]` are
//!
//! `Δ(utime + stime) + max(0, Δ(cutime + cstime) − Σ reaped)`
//!
//! where `Σ reaped` is what the children (and grandchildren, …) it reaped in the interval had
//! already run before it began: their `cpu_ticks + child_ticks` as listed in `prev`. Those ticks were
//! charged to them in earlier intervals (or belong before the session); only the rest ran in this
//! interval. A process listed in `prev` and gone in `cur` is assumed reaped by its nearest ancestor
//! still alive in `cur`, following `prev`'s parent links: parents wait for their children, and a
//! child's reaped grandchildren are in its own cutime when it is reaped.
//!
//! What this cannot place, left to the caller's `unattributed`:
//! - children reaped without a wait (the parent ignores SIGCHLD or sets `SA_NOCLDWAIT`): the kernel
//!   drops their times, so the time they ran since the last sample is lost;
//! - the children reaped by a process first seen in `cur` that was already running before `prev`:
//!   its cumulative counters say nothing about the interval, so it gets nothing (as for its own time);
//! - processes that cannot be read (hidepid, permission) and whatever their parents reap before the
//!   parent is ever listed.
//!
//! Known misplacement, bounded by the caller's skew scaling: a child never listed (hidden, or missed
//! because it exited between the parent's and its own read) is charged in full to its waiter, older
//! ticks included; an orphan that loses its parent and is reaped by a subreaper or init within the
//! same interval is deducted from its old ancestor (clamped at 0) while its reaper gets it in full.

use crate::fasthash::FastMap;
use crate::sample::{ProcKey, ProcessReading, Sample};

/// Ticks each process of `cur` ran in the interval `(prev, cur]`, own plus reaped children's, in the
/// order of `cur.processes`; processes with 0 ticks are left out.
pub(super) fn interval_ticks(prev: &Sample, cur: &Sample) -> Vec<(ProcKey, u64)> {
    // For each process of `cur`, its index in `prev` when it was listed there.
    let mut alive = vec![false; prev.processes.len()];
    let matched = match_keys(&prev.processes, &cur.processes);
    for i in matched.iter().flatten() {
        alive[*i] = true;
    }
    let reaped = reaped_before(prev, &alive);
    let born_after = prev.uptime_s.map(|u| u * cur.ticks_per_s as f64);
    let mut out = Vec::new();
    for (p, m) in cur.processes.iter().zip(matched) {
        let ticks = match m {
            Some(i) => {
                let before = &prev.processes[i];
                let own = p.cpu_ticks.saturating_sub(before.cpu_ticks);
                let children = p
                    .child_ticks
                    .saturating_sub(before.child_ticks)
                    .saturating_sub(reaped.get(i).copied().unwrap_or(0));
                own.saturating_add(children)
            }
            // Born during the interval: all of its time and all of its children's fall inside it.
            None if born_after.is_some_and(|b| p.key.starttime as f64 >= b) => {
                p.cpu_ticks.saturating_add(p.child_ticks)
            }
            // First seen but older than the interval: its share here is unknown, its children's too.
            None => 0,
        };
        if ticks > 0 {
            out.push((p.key, ticks));
        }
    }
    out
}

/// Whether `list` is in strictly ascending key order (as `/proc` lists pids).
fn ascending(list: &[ProcessReading]) -> bool {
    list.windows(2).all(|w| w[0].key < w[1].key)
}

/// For each process of `cur`, its index in `prev` when it is listed there: a merge of the two
/// lists when both are in key order (live samples: `/proc` lists pids in ascending order), a hash
/// lookup otherwise.
fn match_keys(prev: &[ProcessReading], cur: &[ProcessReading]) -> Vec<Option<usize>> {
    if ascending(prev) && ascending(cur) {
        let mut i = 0;
        return cur
            .iter()
            .map(|p| {
                while i < prev.len() && prev[i].key < p.key {
                    i += 1;
                }
                (i < prev.len() && prev[i].key == p.key).then_some(i)
            })
            .collect();
    }
    let by_key: FastMap<ProcKey, usize> = prev.iter().enumerate().map(|(i, p)| (p.key, i)).collect();
    cur.iter().map(|p| by_key.get(&p.key).copied()).collect()
}

/// Per process of `prev` (by index): the ticks its descendants that vanished in the interval had
/// run before it, i.e. the part of its cutime + cstime growth that is not this interval's work.
/// Empty when nothing vanished.
fn reaped_before(prev: &Sample, alive: &[bool]) -> Vec<u64> {
    if alive.iter().all(|a| *a) {
        return Vec::new();
    }
    // The index of a pid in `prev`: a binary search when its pids ascend, else a map made for
    // this interval.
    let by_pid: Option<FastMap<u32, usize>> = (!super::pids_ascend(&prev.processes)).then(|| {
        prev.processes
            .iter()
            .enumerate()
            .map(|(i, p)| (p.key.pid, i))
            .collect()
    });
    let index_of = |pid: u32| match &by_pid {
        None => prev.processes.binary_search_by_key(&pid, |p| p.key.pid).ok(),
        Some(map) => map.get(&pid).copied(),
    };
    let mut reaped = vec![0u64; prev.processes.len()];
    for (i, gone) in prev.processes.iter().enumerate() {
        if alive[i] {
            continue;
        }
        let already = gone.cpu_ticks.saturating_add(gone.child_ticks);
        // Walk up to the nearest ancestor still alive; the step bound stops a ppid cycle.
        let mut ppid = gone.ppid;
        for _ in 0..prev.processes.len() {
            match index_of(ppid) {
                Some(a) if a == i => break,
                Some(a) if alive[a] => {
                    reaped[a] = reaped[a].saturating_add(already);
                    break;
                }
                Some(a) => ppid = prev.processes[a].ppid,
                None => break,
            }
        }
    }
    reaped
}

#[cfg(test)]
mod tests;
