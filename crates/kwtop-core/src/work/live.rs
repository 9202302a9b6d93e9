//! Energy per unit of work, live: the units a training log or an inference server reports, divided
//! into the energy of the processes doing the work, over the session and over the last minute.
//!
//! Pure: accounted intervals and observations go in, [`WorkFigures`] come out. The driver
//! (`kwtop`'s work meter) reads the log or the metric and finds the scope's processes; this module
//! only decides membership from samples, adds up energy and keeps a small ring for the last minute.
//!
//! - **Scope** ([`Scope`]): a process tree (`--pid`, the metric's listener, the log's writers:
//!   each root and its descendants by ppid, followed sample by sample), or the whole machine (every
//!   device's energy, idle and unattributed included).
//! - **Session**: counting starts at the source's first answer. Units reported before it (the
//!   log's count so far, the server's counter at start) are the baseline, not this session's work,
//!   and energy is added from the next interval on, so both sides cover the same time.
//! - **Gaps**: while the source does not answer, nothing is counted and the per-unit figures stay
//!   as of its last answer, marked as a gap; energy keeps being added, and a cumulative counter's
//!   first answer after the gap brings the units of the gap with it. Never a zero.
//! - **Last minute**: a ring of (session time, energy, units) per answered sample, pruned to the
//!   newest point at least [`RECENT_S`] old, so the ring holds about a minute of samples.

use std::collections::{HashMap, HashSet, VecDeque};

use super::{Observation, WorkCounter};
use crate::attribution::Interval;
use crate::impact::ImpactParams;
use crate::sample::{ProcKey, Provenance, Sample};

/// The "last minute" window, seconds.
pub const RECENT_S: f64 = 60.0;

/// Whose energy the units are divided into.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// `--pid`: that process and its descendants.
    Tree { pid: u32 },
    /// The processes that have the log open for writing (`file`, as shown), and their descendants.
    Writers { file: String, pids: Vec<u32> },
    /// The processes listening on the metric's port, and their descendants.
    Listener { port: u16, pids: Vec<u32> },
    /// Every device's energy: idle and unattributed included.
    Machine,
}

impl Scope {
    /// How the screen names it: `tree of 4242`, `writers of train.log`, `whole machine`.
    pub fn label(&self) -> String {
        // At most three pids, then how many more.
        let pids = |p: &[u32]| {
            let mut s = p.iter().take(3).map(u32::to_string).collect::<Vec<_>>().join(",");
            if p.len() > 3 {
                s.push_str(&format!(" +{}", p.len() - 3));
            }
            s
        };
        match self {
            Scope::Tree { pid } => format!("tree of {pid}"),
            Scope::Writers { file, pids: p } => format!("writers of {file} ({})", pids(p)),
            Scope::Listener { port, pids: p } => format!("tree of {} (listening on :{port})", pids(p)),
            Scope::Machine => "whole machine".into(),
        }
    }

    /// The `scope` label of the exported energy: `tree`, `writers`, `listener` or `machine`.
    pub fn kind(&self) -> &'static str {
        match self {
            Scope::Tree { .. } => "tree",
            Scope::Writers { .. } => "writers",
            Scope::Listener { .. } => "listener",
            Scope::Machine => "machine",
        }
    }

    /// The processes whose trees make up the scope (none: the whole machine).
    pub fn roots(&self) -> Vec<u32> {
        match self {
            Scope::Tree { pid } => vec![*pid],
            Scope::Writers { pids, .. } | Scope::Listener { pids, .. } => pids.clone(),
            Scope::Machine => Vec::new(),
        }
    }
}

/// The processes of some trees, followed sample by sample: a root (the first process seen with its
/// pid; a later process reusing the pid is not one), every child of a member (to any depth, listed
/// in any order), and a child whose parent left between two samples. Only members present in the
/// latest sample are kept, so the set stays the size of the trees.
#[derive(Debug, Clone, Default)]
pub struct ProcTree {
    roots: HashSet<u32>,
    root_keys: HashMap<u32, ProcKey>,
    members: HashSet<ProcKey>,
    prev_pids: HashSet<u32>,
}

impl ProcTree {
    pub fn new(roots: impl IntoIterator<Item = u32>) -> Self {
        ProcTree {
            roots: roots.into_iter().collect(),
            ..ProcTree::default()
        }
    }

    /// Add roots (a writer or listener found later).
    pub fn add_roots(&mut self, pids: impl IntoIterator<Item = u32>) {
        self.roots.extend(pids);
    }

    pub fn contains(&self, key: &ProcKey) -> bool {
        self.members.contains(key)
    }

    /// Whether a process with this pid was a member in the latest sample.
    pub fn has_pid(&self, pid: u32) -> bool {
        self.prev_pids.contains(&pid)
    }

    /// Members in the latest sample.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Follow the trees into `sample`.
    pub fn update(&mut self, sample: &Sample) {
        let present: HashMap<u32, u32> = sample.processes.iter().map(|p| (p.key.pid, p.ppid)).collect();
        let mut members: HashSet<ProcKey> = HashSet::new();
        let mut live: HashSet<u32> = HashSet::new();
        for p in &sample.processes {
            if self.members.contains(&p.key) {
                members.insert(p.key);
                live.insert(p.key.pid);
            }
        }
        loop {
            let mut grew = false;
            for p in &sample.processes {
                if members.contains(&p.key) {
                    continue;
                }
                let root = self.roots.contains(&p.key.pid)
                    && self.root_keys.get(&p.key.pid).is_none_or(|k| *k == p.key);
                let orphaned = self.prev_pids.contains(&p.ppid) && !present.contains_key(&p.ppid);
                if root || live.contains(&p.ppid) || orphaned {
                    if root {
                        self.root_keys.entry(p.key.pid).or_insert(p.key);
                    }
                    members.insert(p.key);
                    live.insert(p.key.pid);
                    grew = true;
                }
            }
            if !grew {
                break;
            }
        }
        self.members = members;
        self.prev_pids = live;
    }
}

/// The energy of an interval that went to `scope`'s members (`None`: every device's energy), and
/// whether any of it comes from an estimated device.
pub fn interval_energy(iv: &Interval, members: Option<&ProcTree>) -> (f64, bool) {
    let (mut j, mut est) = (0.0, false);
    for de in &iv.devices {
        let part = match members {
            Some(tree) => de
                .shares
                .iter()
                .filter(|(k, _)| tree.contains(k))
                .map(|(_, j)| *j)
                .sum(),
            None => de.energy_j.unwrap_or(0.0),
        };
        j += part;
        est |= part > 0.0 && de.provenance == Provenance::Estimated;
    }
    (j, est)
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Point {
    t_s: f64,
    energy_j: f64,
    units: u64,
}

/// Units and energy over a span of the session.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// Seconds covered.
    pub span_s: f64,
    pub units: u64,
    /// Joules spent by the scope over the span.
    pub energy_j: f64,
    /// Units per second.
    pub per_s: f64,
    /// Joules per unit; `None` when no unit was counted in the span.
    pub j_per_unit: Option<f64>,
}

impl Rate {
    fn between(a: Point, b: Point) -> Option<Rate> {
        let span_s = b.t_s - a.t_s;
        if span_s <= 0.0 {
            return None;
        }
        let units = b.units.saturating_sub(a.units);
        let energy_j = (b.energy_j - a.energy_j).max(0.0);
        Some(Rate {
            span_s,
            units,
            energy_j,
            per_s: units as f64 / span_s,
            j_per_unit: (units > 0).then(|| energy_j / units as f64),
        })
    }
}

/// The source is not answering: since when, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Gap {
    /// Seconds since the last answer (or since the first failure when there was none).
    pub for_s: f64,
    pub why: String,
}

/// What the screen and `/metrics` show of the work: a plain-data read model.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkFigures {
    /// Singular (`step`, `token`).
    pub unit: String,
    /// `tree of 4242`, `writers of train.log (811)`, `whole machine`.
    pub scope: String,
    /// `tree`, `writers`, `listener` or `machine`.
    pub scope_kind: &'static str,
    /// Whether counting has started (the source answered once).
    pub started: bool,
    /// Units this session, as of the source's last answer.
    pub units: u64,
    /// The source's own count (the log's step, the server's counter), resets added up.
    pub reported: u64,
    /// The scope's energy since counting started, joules (grows through gaps).
    pub energy_j: f64,
    /// Some of the energy comes from an estimated device.
    pub estimated: bool,
    /// From the start to the last answer.
    pub session: Option<Rate>,
    /// Over about the last minute up to the last answer.
    pub recent: Option<Rate>,
    /// Session grams CO2e per unit (PUE and grid included).
    pub co2e_g_per_unit: Option<f64>,
    /// Session watt-hours per 1,000 units.
    pub wh_per_1000: Option<f64>,
    pub gap: Option<Gap>,
    /// Times a cumulative count went back (a restarted counter).
    pub resets: u32,
}

/// Counts a session's units and its scope's energy.
#[derive(Debug, Clone)]
pub struct LiveWork {
    unit: String,
    counter: WorkCounter,
    /// The count when the session started (the source's first answer), and when that was.
    start: Option<(u64, f64)>,
    energy_j: f64,
    estimated: bool,
    ring: VecDeque<Point>,
    /// When the source stopped answering, and why.
    gap: Option<(f64, String)>,
    now_s: f64,
}

impl LiveWork {
    /// Count units named `unit` (singular).
    pub fn new(unit: impl Into<String>) -> Self {
        LiveWork {
            unit: unit.into(),
            counter: WorkCounter::new(),
            start: None,
            energy_j: 0.0,
            estimated: false,
            ring: VecDeque::new(),
            gap: None,
            now_s: 0.0,
        }
    }

    /// The unit, singular.
    pub fn unit(&self) -> &str {
        &self.unit
    }

    /// Name the unit (the work-file format names it in its lines).
    pub fn set_unit(&mut self, unit: impl Into<String>) {
        self.unit = unit.into();
    }

    /// The counter of everything the source reported.
    pub fn counter(&self) -> &WorkCounter {
        &self.counter
    }

    pub fn is_started(&self) -> bool {
        self.start.is_some()
    }

    /// Units this session so far.
    pub fn units(&self) -> u64 {
        self.start
            .map_or(0, |(b, _)| self.counter.units().saturating_sub(b))
    }

    /// One observation the source made at `at_ms` (wall clock).
    pub fn observe(&mut self, at_ms: i64, obs: Observation) {
        self.counter.observe(at_ms, obs);
    }

    /// One line of the work-file format; returns whether it was valid. The unit a line names is
    /// kept by the counter ([`WorkCounter::unit`]); [`LiveWork::set_unit`] shows it.
    pub fn observe_work_line(&mut self, at_ms: i64, line: &[u8]) -> bool {
        self.counter.observe_work_line(at_ms, line)
    }

    /// The scope spent `j` joules over the interval that ended now (before this sample's answer
    /// is taken); `est`: some of it is estimated. Nothing is added before the session started.
    pub fn add_energy(&mut self, j: f64, est: bool) {
        if self.start.is_some() && j.is_finite() && j > 0.0 {
            self.energy_j += j;
            self.estimated |= est;
        }
    }

    /// The source answered at session time `now_s` (its observations are in): start the session
    /// on the first answer, close a gap, and remember the point for the last minute.
    pub fn answered(&mut self, now_s: f64) {
        self.now_s = now_s;
        self.gap = None;
        if self.start.is_none() {
            self.start = Some((self.counter.units(), now_s));
        }
        let p = Point {
            t_s: now_s,
            energy_j: self.energy_j,
            units: self.units(),
        };
        if self.ring.back().is_some_and(|b| b.t_s >= now_s) {
            self.ring.pop_back();
        }
        self.ring.push_back(p);
        while self.ring.len() > 2 && self.ring[1].t_s <= now_s - RECENT_S {
            self.ring.pop_front();
        }
    }

    /// The source did not answer at `now_s`; returns true when this starts a gap.
    pub fn failed(&mut self, now_s: f64, why: impl Into<String>) -> bool {
        self.now_s = now_s;
        let why = why.into();
        match &mut self.gap {
            Some((_, w)) => {
                *w = why;
                false
            }
            None => {
                let since = self.ring.back().map_or(now_s, |p| p.t_s);
                self.gap = Some((since, why));
                true
            }
        }
    }

    /// Session time advanced to `now_s` without an answer or a failure (gaps age on screen).
    pub fn tick(&mut self, now_s: f64) {
        self.now_s = now_s;
    }

    pub fn in_gap(&self) -> bool {
        self.gap.is_some()
    }

    /// Start over (the scope changed): the count so far becomes the baseline at the next answer.
    pub fn restart(&mut self) {
        self.start = None;
        self.energy_j = 0.0;
        self.estimated = false;
        self.ring.clear();
    }

    /// The figures for `scope`, with CO2e from `impact`.
    pub fn figures(&self, scope: &Scope, impact: &ImpactParams) -> WorkFigures {
        let last = self.ring.back().copied();
        let session = match (self.start, last) {
            (Some((_, t0)), Some(b)) => Rate::between(
                Point {
                    t_s: t0,
                    energy_j: 0.0,
                    units: 0,
                },
                b,
            ),
            _ => None,
        };
        let recent = match (self.ring.front(), last) {
            (Some(a), Some(b)) => Rate::between(*a, b),
            _ => None,
        };
        let units = last.map_or(0, |p| p.units);
        let at_last = last.map_or(0.0, |p| p.energy_j);
        let per = |v: f64| (units > 0).then(|| v / units as f64);
        WorkFigures {
            unit: self.unit.clone(),
            scope: scope.label(),
            scope_kind: scope.kind(),
            started: self.start.is_some(),
            units,
            reported: self.counter.units(),
            energy_j: self.energy_j,
            estimated: self.estimated,
            session,
            recent,
            co2e_g_per_unit: per(impact.co2e_g(at_last)),
            wh_per_1000: per(at_last / 3600.0).map(|wh| wh * 1000.0),
            gap: self.gap.as_ref().map(|(since, why)| Gap {
                for_s: (self.now_s - since).max(0.0),
                why: why.clone(),
            }),
            resets: self.counter.resets(),
        }
    }
}

#[cfg(test)]
mod tests;
