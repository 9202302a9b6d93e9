//! The live work meter: `kwtop --progress-log FILE` and `kwtop --work-metric URL#METRIC` (also on
//! `kwtop serve`). A subscriber of the session's pipeline that, on every accounted sample, takes
//! what the training log or the inference server reported since the last one, adds the interval's
//! energy of the scope, and publishes [`WorkView`] for the screen and `/metrics` on a [`WorkBoard`].
//!
//! The arithmetic (session, last minute, gaps, trees) is `kwtop_core::work::live`; the I/O is
//! here: [`follow`] reads the log, [`scrape`] GETs the metric on its own thread (one request in
//! flight, sent at each sample, so a slow server never stalls the screen), and
//! `sources::openfiles` finds whose energy it is.
//!
//! Scope: `--pid` (that process and its descendants); else the processes that have the log open
//! for writing, or listen on the metric's (local) port, and their descendants, looked up at the
//! start and every [`RESCAN_S`] seconds (new ones are added); else, while none is found, the whole
//! machine, labelled so. When the first writers or listeners turn up after counting began, the
//! per-unit figures start again on the new scope and the status line says so.

mod follow;
mod scrape;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

pub use scrape::{MetricUrl, parse_metric_url};

use crate::impact::ImpactParams;
use crate::pipeline::{Frame, Subscriber};
use crate::sanitize::sanitize_str;
use crate::sources::openfiles;
use crate::work::live::{LiveWork, ProcTree, Scope, WorkFigures, interval_energy};
use crate::work::{ProgressPattern, singular, unit_name};

/// Seconds of session time between two look-ups of the log's writers or the port's listeners.
pub const RESCAN_S: f64 = 10.0;

/// Where the units come from.
#[derive(Debug, Clone)]
pub enum WorkInput {
    /// `--progress-log FILE`, lines matching `--progress` (else lines in the work-file format).
    Log {
        path: PathBuf,
        progress: Option<ProgressPattern>,
    },
    /// `--work-metric URL#METRIC`.
    Metric(MetricUrl),
}

/// What to count and whose energy it is, from the command line.
#[derive(Debug, Clone)]
pub struct WorkSpec {
    pub input: WorkInput,
    /// `--unit` (singular).
    pub unit: Option<String>,
    /// `--pid`: the scope is this process's tree.
    pub pid: Option<u32>,
}

/// What the screen and `/metrics` read after each sample.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkView {
    /// The log's file name, or the metric's URL and selector (sanitized).
    pub source: String,
    pub figures: WorkFigures,
    /// What the user should know about the source (a missing file, lines out of format).
    pub notes: Vec<String>,
}

/// The latest [`WorkView`], shared by the meter that writes it and the screen and endpoint that
/// read it, all on the thread that owns the pipeline; the lock (held only to clone or replace the
/// view) keeps the [`crate::app::App`] that holds one `Send` and `Sync`.
#[derive(Debug, Clone, Default)]
pub struct WorkBoard(Arc<Mutex<Option<WorkView>>>);

impl WorkBoard {
    /// The latest view; `None` before the meter's first frame.
    pub fn get(&self) -> Option<WorkView> {
        match self.0.lock() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Publish `v` (the meter after each frame; tests).
    pub fn set(&self, v: WorkView) {
        match self.0.lock() {
            Ok(mut g) => *g = Some(v),
            Err(poisoned) => *poisoned.into_inner() = Some(v),
        }
    }
}

/// What a poll of the source gave.
#[derive(Debug, Clone, PartialEq)]
enum Poll {
    /// It answered (its observations are in).
    Answered,
    /// It could not be read.
    Failed(String),
    /// No answer yet (a request in flight).
    Pending,
}

enum Source {
    Log(follow::LogFollower),
    Metric(scrape::Poller),
}

/// How to find the scope's processes again.
#[derive(Debug, Clone)]
enum Finder {
    Writers(PathBuf),
    Listener(u16),
}

/// The work meter; see the module doc.
pub struct WorkMeter {
    source: Source,
    /// Shown as the source.
    described: String,
    work: LiveWork,
    /// `--unit` was given (a work-file line's unit does not replace it).
    unit_fixed: bool,
    scope: Scope,
    tree: Option<ProcTree>,
    finder: Option<Finder>,
    next_scan_s: Option<f64>,
    /// Said that other users' open files could not be read.
    said_unreadable: bool,
    notes: Vec<String>,
    proc_root: PathBuf,
    impact: ImpactParams,
    board: WorkBoard,
}

impl std::fmt::Debug for WorkMeter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkMeter")
            .field("source", &self.described)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

/// A unit from a metric's name: `vllm:generation_tokens_total` → `token`; `unit` when the last
/// word is not a plausible unit.
fn unit_of_metric(name: &str) -> String {
    let base = name.strip_suffix("_total").unwrap_or(name);
    base.rsplit(['_', ':'])
        .next()
        .filter(|w| w.len() > 1 && w.chars().all(|c| c.is_ascii_alphabetic()))
        .and_then(unit_name)
        .unwrap_or_else(|| "unit".into())
}

impl WorkMeter {
    /// Open the source (a missing log is waited for; the metric's thread is started) and choose
    /// the scope. `proc_root` is where processes' open files and sockets are looked up; `timeout`
    /// bounds each GET of a metric.
    pub fn start(
        spec: &WorkSpec,
        proc_root: &Path,
        impact: ImpactParams,
        timeout: std::time::Duration,
    ) -> Result<WorkMeter, String> {
        let (source, described, default_unit, finder) = match &spec.input {
            WorkInput::Log { path, progress } => {
                let name = path.file_name().map_or_else(
                    || path.display().to_string(),
                    |n| n.to_string_lossy().into_owned(),
                );
                let name = sanitize_str(&name, 80);
                (
                    Source::Log(follow::LogFollower::new(path.clone(), progress.clone())),
                    name,
                    "unit".to_string(),
                    Some(Finder::Writers(path.clone())),
                )
            }
            WorkInput::Metric(m) => (
                Source::Metric(scrape::Poller::start(m, timeout)?),
                sanitize_str(&m.to_string(), 200),
                unit_of_metric(&m.selector.name),
                m.is_local().then_some(Finder::Listener(m.port)),
            ),
        };
        let mut notes = Vec::new();
        let (scope, tree, finder) = match spec.pid {
            Some(pid) => (Scope::Tree { pid }, Some(ProcTree::new([pid])), None),
            None => {
                if finder.is_none() {
                    notes.push(
                        "the metric's host is not this machine: the energy is the whole machine's (give --pid)"
                            .to_string(),
                    );
                }
                (Scope::Machine, None, finder)
            }
        };
        let unit = spec.unit.clone().unwrap_or(default_unit);
        Ok(WorkMeter {
            source,
            described,
            work: LiveWork::new(singular(&unit)),
            unit_fixed: spec.unit.is_some(),
            scope,
            tree,
            finder,
            next_scan_s: None,
            said_unreadable: false,
            notes,
            proc_root: proc_root.to_path_buf(),
            impact,
            board: WorkBoard::default(),
        })
    }

    /// Where the screen and the endpoint read the figures.
    pub fn board(&self) -> WorkBoard {
        self.board.clone()
    }

    /// Look for the log's writers or the port's listeners when due; say what changed. Returns
    /// whether roots were added.
    fn rescope(&mut self, now_s: f64, msgs: &mut Vec<String>) -> bool {
        let Some(finder) = &self.finder else {
            return false;
        };
        if self.next_scan_s.is_some_and(|t| now_s < t) {
            return false;
        }
        self.next_scan_s = Some(now_s + RESCAN_S);
        let (found, what) = match finder {
            Finder::Writers(path) => (
                openfiles::writers_of(&self.proc_root, path),
                format!("no process has {} open for writing", self.described),
            ),
            Finder::Listener(port) => (
                openfiles::listeners_on(&self.proc_root, *port),
                format!("no process of this machine listens on port {port}"),
            ),
        };
        // A writer or listener already in the trees (a child that inherited the descriptor) adds
        // nothing.
        let known = self.scope.roots();
        let tree = self.tree.as_ref();
        let new: Vec<u32> = found
            .pids
            .into_iter()
            .filter(|p| !known.contains(p) && !tree.is_some_and(|t| t.has_pid(*p)))
            .collect();
        if new.is_empty() {
            if matches!(self.scope, Scope::Machine) && found.unreadable > 0 && !self.said_unreadable {
                self.said_unreadable = true;
                msgs.push(format!(
                    "work: {what} that kwtop can see ({} processes' open files are another user's): \
                     the energy is the whole machine's; give --pid, or run kwtop as that user",
                    found.unreadable
                ));
            }
            return false;
        }
        match (&mut self.scope, finder) {
            (Scope::Writers { pids, .. } | Scope::Listener { pids, .. }, _) => {
                // The label names the roots still running.
                pids.retain(|p| tree.is_some_and(|t| t.has_pid(*p)));
                pids.extend(&new);
                if let Some(t) = &mut self.tree {
                    t.add_roots(new);
                }
            }
            (_, f) => {
                self.scope = match f {
                    Finder::Writers(_) => Scope::Writers {
                        file: self.described.clone(),
                        pids: new.clone(),
                    },
                    Finder::Listener(port) => Scope::Listener {
                        port: *port,
                        pids: new.clone(),
                    },
                };
                self.tree = Some(ProcTree::new(new));
                if self.work.is_started() {
                    self.work.restart();
                    msgs.push(format!(
                        "work: energy now counted for the {}; per-unit figures start again",
                        self.scope.label()
                    ));
                }
            }
        }
        true
    }

    fn poll(&mut self, at_ms: i64) -> Poll {
        match &mut self.source {
            Source::Log(f) => match f.poll(at_ms, &mut self.work) {
                Ok(()) => Poll::Answered,
                Err(e) => Poll::Failed(e),
            },
            Source::Metric(m) => m.poll(at_ms, &mut self.work),
        }
    }

    fn view(&self) -> WorkView {
        let mut notes = self.notes.clone();
        if let Source::Log(f) = &self.source {
            notes.extend(f.notes());
        }
        WorkView {
            source: self.described.clone(),
            figures: self.work.figures(&self.scope, &self.impact),
            notes,
        }
    }
}

impl Subscriber for WorkMeter {
    fn frame(&mut self, frame: &Frame<'_>) -> Result<(), String> {
        let Some(sample) = frame.sample() else {
            return Ok(());
        };
        let now_s = frame.ledger().session_s;
        let mut msgs = Vec::new();
        if let Some(t) = &mut self.tree {
            t.update(sample);
        }
        // New roots join the trees in this sample already.
        if self.rescope(now_s, &mut msgs)
            && let Some(t) = &mut self.tree
        {
            t.update(sample);
        }
        // The interval that ended now, before this sample's answer: counting starts after it.
        if let Some(iv) = frame.interval {
            let (j, est) = interval_energy(iv, self.tree.as_ref());
            self.work.add_energy(j, est);
        }
        let was_gap = self.work.in_gap();
        match self.poll(sample.wall_ms) {
            Poll::Answered => {
                self.work.answered(now_s);
                if was_gap {
                    msgs.push(format!("work: {} answers again", self.described));
                }
            }
            Poll::Failed(why) => {
                let why = sanitize_str(&why, 200);
                if self.work.failed(now_s, why.clone()) {
                    msgs.push(format!(
                        "work: {} did not answer ({why}): no units counted until it does",
                        self.described
                    ));
                }
            }
            Poll::Pending => self.work.tick(now_s),
        }
        if !self.unit_fixed
            && let Some(u) = self.work.counter().unit()
            && u != self.work.unit()
        {
            let u = u.to_string();
            self.work.set_unit(u);
        }
        self.board.set(self.view());
        if msgs.is_empty() {
            Ok(())
        } else {
            Err(msgs.join("; "))
        }
    }
}

#[cfg(test)]
mod tests;
