//! `kwtop run [-o PATH] [--report short|md|json|csv|none] [--progress REGEX [--unit NAME]]
//! [--interval D] -- CMD ARGS…`: like `time`, but for energy.
//!
//! Starts the command, samples every interval, and accounts the energy of its whole process tree on
//! CPU and GPU through the same engine and ledger as everything else; [`TreeFilter`] (pure) decides
//! which processes belong to the tree. kwtop makes itself a child subreaper, so descendants whose
//! parent exited are re-parented to it and stay recognisable; the CPU time of those it reaps is
//! handed to the command ([`TreeFilter::hand_reaped_to_root`]), never to kwtop's own row. SIGINT, SIGTERM, SIGHUP and SIGQUIT
//! are forwarded to the command (SIGINT/SIGQUIT only when they did not come from the terminal, which
//! already delivered them to the command). When the command exits, a last sample is taken while it
//! is still a zombie, the summary is saved to the export dir (and `-o`), a short block
//! ([`crate::summary::brief`]) or the full summary (`--report`) is printed to stderr, and kwtop
//! exits with the command's status (128 + N when a signal killed it). Stdout stays the command's.
//!
//! Work: the command may report units of work (`--progress`, the `KWTOP_WORK_FILE`); [`work`]
//! counts them beside the loop, and the summary divides the tree's energy by them.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use nix::sys::wait::{Id, WaitPidFlag, WaitStatus, waitid, waitpid};
use nix::unistd::Pid;

use super::{CliError, host_name};
use crate::config::Settings;
use crate::export;
use crate::pipeline::{Frame, LiveFeed, Pipeline, Subscriber};
use crate::sample::{ProcKey, Sample};
use crate::signals::Forwarder;
use crate::sources::Sampler;
use crate::summary::{self, CommandOut, Format, brief};

mod output;
mod work;

pub use work::WorkArgs;

/// Which processes belong to a command's tree. Pure: fed one sample at a time.
#[derive(Debug, Clone)]
pub struct TreeFilter {
    root_pid: u32,
    /// kwtop's own pid: orphans of the tree are re-parented to it (child subreaper).
    reaper_pid: u32,
    members: HashSet<ProcKey>,
    /// The command itself, once seen.
    root: Option<ProcKey>,
    /// Pids of members seen in the previous sample (a parent may vanish while its child is read).
    prev_pids: HashSet<u32>,
}

impl TreeFilter {
    pub fn new(root_pid: u32, reaper_pid: u32) -> Self {
        TreeFilter {
            root_pid,
            reaper_pid,
            members: HashSet::new(),
            root: None,
            prev_pids: HashSet::new(),
        }
    }

    /// Every process ever seen in the tree.
    pub fn members(&self) -> &HashSet<ProcKey> {
        &self.members
    }

    /// Add the tree's processes in `sample`: the root, children of a member (to any depth, in any
    /// order), and orphans re-parented to the reaper. Members are never removed.
    pub fn update(&mut self, sample: &Sample) {
        let mut live: HashSet<u32> = sample
            .processes
            .iter()
            .filter(|p| self.members.contains(&p.key))
            .map(|p| p.key.pid)
            .collect();
        let parent_of: HashMap<u32, u32> = sample.processes.iter().map(|p| (p.key.pid, p.ppid)).collect();
        let root_known = self.members.iter().any(|k| k.pid == self.root_pid);
        // Fixpoint: a child may be listed before its parent.
        loop {
            let mut grew = false;
            for p in &sample.processes {
                if self.members.contains(&p.key) || p.key.pid == self.reaper_pid {
                    continue;
                }
                let is_member = (p.key.pid == self.root_pid && !root_known)
                    || live.contains(&p.ppid)
                    || (self.prev_pids.contains(&p.ppid) && !parent_of.contains_key(&p.ppid))
                    || (p.ppid == self.reaper_pid && p.key.pid != self.reaper_pid);
                if is_member {
                    if p.key.pid == self.root_pid && self.root.is_none() {
                        self.root = Some(p.key);
                    }
                    self.members.insert(p.key);
                    live.insert(p.key.pid);
                    grew = true;
                }
            }
            if !grew {
                break;
            }
        }
        self.prev_pids = live;
    }

    /// kwtop reaps the tree's orphans, so their CPU time lands in kwtop's own cutime + cstime, where
    /// attribution would charge it to kwtop. Move it to the command instead: kwtop's waited-for
    /// children's ticks are added to the root's, and processes re-parented to kwtop are shown as the
    /// root's children, so what they had already been charged is deducted from the root (see
    /// `attribution::children`). kwtop's own CPU time stays on its own row, outside the tree. The
    /// root is never reaped before the last sample, so it is listed in every sample this changes.
    pub fn hand_reaped_to_root(&self, sample: &mut Sample) {
        let Some(root) = self.root else { return };
        let mut reaped = 0u64;
        for p in &mut sample.processes {
            if p.key.pid == self.reaper_pid {
                reaped = std::mem::take(&mut p.child_ticks);
            }
        }
        for p in &mut sample.processes {
            if p.key == root {
                p.child_ticks = p.child_ticks.saturating_add(reaped);
            } else if p.ppid == self.reaper_pid && p.key.pid != self.reaper_pid {
                p.ppid = root.pid;
            }
        }
    }
}

/// The status `kwtop run` exits with for a wait status: the code, or 128 + signal.
pub fn exit_status(ws: WaitStatus) -> (Option<i32>, Option<i32>, i32) {
    match ws {
        WaitStatus::Exited(_, code) => (Some(code), None, code),
        WaitStatus::Signaled(_, sig, _) => (None, Some(sig as i32), 128 + sig as i32),
        _ => (None, None, 1),
    }
}

/// What `kwtop run` prints on stderr when the command exits (`--report`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Report {
    /// A few lines, like `time`: energy, CO2e, work, where the summary was saved.
    Short,
    /// The full summary as Markdown.
    Md,
    /// The full summary as JSON (kwtop.summary/1).
    Json,
    /// The full summary as CSV (one row per process).
    Csv,
    /// Nothing (errors only).
    #[value(name = "none")]
    Quiet,
}

impl Report {
    /// `--report`, else `--format` without `-o` (what `--format` did before `--report`), else short.
    pub fn resolve(
        report: Option<Report>,
        format: Option<Format>,
        output: Option<&std::path::Path>,
    ) -> Report {
        report
            .or(match (format, output) {
                (Some(Format::Md), None) => Some(Report::Md),
                (Some(Format::Json), None) => Some(Report::Json),
                (Some(Format::Csv), None) => Some(Report::Csv),
                _ => None,
            })
            .unwrap_or(Report::Short)
    }
}

/// Options of `kwtop run`.
#[derive(Debug, Clone)]
pub struct RunArgs {
    pub output: Option<PathBuf>,
    /// Format of the `-o` file.
    pub format: Option<Format>,
    pub report: Report,
    pub interval: Duration,
    pub work: WorkArgs,
    pub command: Vec<String>,
}

fn runtime(msg: impl Into<String>) -> CliError {
    CliError::Runtime(msg.into())
}

/// Reap zombies of orphaned descendants (never the command itself, whose status we need).
fn reap_orphans(child: Pid) {
    loop {
        let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
        match waitid(Id::All, flags) {
            Ok(ws) => match ws.pid() {
                Some(pid) if pid != child => {
                    let _ = waitpid(pid, Some(WaitPidFlag::WNOHANG));
                }
                _ => return,
            },
            Err(_) => return,
        }
    }
}

/// Whether the command has exited (left as a zombie so its last sample can still be read).
fn has_exited(child: Pid) -> bool {
    let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
    match waitid(Id::Pid(child), flags) {
        Ok(ws) => ws.pid().is_some(),
        Err(e) => e == nix::errno::Errno::ECHILD,
    }
}

/// The tree filter follows the pipeline: it learns the tree from each sample and hands the CPU time
/// of reaped orphans to the command before the sample is accounted.
impl Subscriber for TreeFilter {
    fn prepare(&mut self, sample: &mut Sample) {
        self.update(sample);
        self.hand_reaped_to_root(sample);
    }

    fn frame(&mut self, _frame: &Frame<'_>) -> Result<(), String> {
        Ok(())
    }
}

pub fn run(settings: &Settings, args: &RunArgs) -> Result<(), CliError> {
    let Some((program, rest)) = args.command.split_first() else {
        return Err(runtime("no command given: kwtop run -- CMD ARGS…"));
    };
    let forwarder = RefCell::new(Forwarder::install().map_err(runtime)?);
    let mut notices = Vec::new();
    if let Err(e) = nix::sys::prctl::set_child_subreaper(true) {
        notices.push(format!(
            "cannot become a child subreaper ({e}): descendants whose parent exits before them are missed"
        ));
    }
    let mut pipeline = Pipeline::new(&settings.engine);
    // Keep the tree's exited processes as rows: folded ones cannot be told apart by tree.
    pipeline.engine.ledger.max_exited = pipeline.engine.ledger.max_exited.max(100_000);

    let mut cmd = Command::new(program);
    cmd.args(rest);
    let clock = output::Clock::new(Instant::now(), crate::snapshot_now_ms());
    let mut tap = work::WorkTap::new(args.work.clone(), clock, &mut cmd);
    let spawned = cmd.spawn();
    // The command holds its ends of the pipes and terminals now; kwtop's copies must go, so the
    // readers see the end of its output when it (and its descendants) close theirs.
    drop(cmd);
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => {
            let code = match e.kind() {
                std::io::ErrorKind::NotFound => 127,
                _ => 126,
            };
            eprintln!("kwtop: cannot run '{program}': {e}");
            return Err(CliError::Exit(code));
        }
    };
    let child_pid = Pid::from_raw(i32::try_from(child.id()).map_err(|_| runtime("child pid out of range"))?);
    tap.started(&mut child);
    // The std handle is not used to wait: statuses are collected with waitid/waitpid below.
    let mut filter = TreeFilter::new(child.id(), std::process::id());
    drop(child);
    // Sample on the interval until the command exits: the stop check (a few times a second) forwards
    // signals, reaps orphans, reads the work it reported and looks for the command's exit, after
    // which the feed takes a last sample while the command is a zombie (its final CPU time is
    // readable) and ends.
    let tap = RefCell::new(tap);
    let mut feed = LiveFeed::new(Sampler::from_config(&settings.sources), args.interval);
    let stop = || {
        forwarder.borrow_mut().forward(child_pid);
        reap_orphans(child_pid);
        tap.borrow_mut().poll();
        has_exited(child_pid)
    };
    pipeline.run(&mut feed, &mut [&mut filter], &stop, |_| true);
    let ws = waitpid(child_pid, None).map_err(|e| runtime(format!("waiting for the command: {e}")))?;
    reap_orphans(child_pid);
    notices.extend(pipeline.notices.iter().cloned());
    let (work, work_notices) = tap.into_inner().finish();
    notices.extend(work_notices);
    let (exit_code, signal, status) = exit_status(ws);

    let mut opts = super::summary_options(settings);
    opts.command = Some(CommandOut {
        argv: opts.redactor.argv(&args.command),
        pid: child_pid.as_raw().unsigned_abs(),
        exit_code,
        signal,
        status,
        tree_processes: filter.members().len(),
        cpu_s: children_cpu_s(),
    });
    opts.members = Some(filter.members().clone());
    opts.work = work;
    let doc = summary::build(
        &pipeline.engine.ledger,
        &settings.impact,
        &host_name(),
        &notices,
        &opts,
    );
    let out = save(&doc, args, settings);
    // Like `time`: the report goes to stderr, the command's own output stays clean. A closed
    // terminal (SIGHUP) must not stop the files from being written (they were, above).
    let _ = std::io::Write::write_all(&mut std::io::stderr(), report(&doc, &out, args.report).as_bytes());
    if status == 0 {
        Ok(())
    } else {
        Err(CliError::Exit(status))
    }
}

/// User + system CPU seconds of every child kwtop has waited for (the command, the orphans it
/// reaped, and everything they waited for in turn).
fn children_cpu_s() -> Option<f64> {
    use nix::sys::resource::{UsageWho, getrusage};
    let u = getrusage(UsageWho::RUSAGE_CHILDREN).ok()?;
    let s = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 * 1e-6;
    Some(s(u.user_time()) + s(u.system_time()))
}

/// Write the summary into the export dir and to `-o`.
fn save(doc: &summary::SummaryDoc, args: &RunArgs, settings: &Settings) -> brief::Outputs {
    let mut out = brief::Outputs::default();
    if let Some(path) = &args.output {
        let format = args
            .format
            .or_else(|| Format::from_path(path))
            .unwrap_or(Format::Md);
        match export::write_summary_to(doc, path, format) {
            Ok(()) => out.written = Some(path.clone()),
            Err(e) => out.problems.push(e.to_string()),
        }
    }
    match export::write_summary_files(doc, &settings.export) {
        Ok(paths) => out.saved = paths,
        Err(e) => out.problems.push(e.to_string()),
    }
    out
}

/// What `--report` prints on stderr.
fn report(doc: &summary::SummaryDoc, out: &brief::Outputs, report: Report) -> String {
    let full = match report {
        Report::Short => return brief::render(doc, out),
        Report::Md => Some(Format::Md),
        Report::Json => Some(Format::Json),
        Report::Csv => Some(Format::Csv),
        Report::Quiet => None,
    };
    let mut text = full.map(|f| summary::render(doc, f)).unwrap_or_default();
    if full.is_some() {
        if let Some(p) = &out.written {
            text += &format!("kwtop: summary written to {}\n", p.display());
        }
        if !out.saved.is_empty() {
            text += &format!("kwtop: summary saved to {}\n", join_paths(&out.saved));
        }
    }
    for p in &out.problems {
        text += &format!("kwtop: {p}\n");
    }
    text
}

fn join_paths(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::ProcessReading;
    use crate::testing;

    fn p(pid: u32, ppid: u32) -> ProcessReading {
        testing::process(pid, u64::from(pid) * 10, 0).ppid(ppid).build()
    }

    fn s(procs: Vec<ProcessReading>) -> Sample {
        testing::sample_at(0.0).procs(procs).build()
    }

    fn pids(f: &TreeFilter) -> Vec<u32> {
        let mut v: Vec<u32> = f.members().iter().map(|k| k.pid).collect();
        v.sort_unstable();
        v
    }

    #[test]
    fn descendants_in_any_order() {
        let mut f = TreeFilter::new(100, 50);
        f.update(&s(vec![
            p(1, 0),
            p(50, 1),
            p(102, 101),
            p(101, 100),
            p(100, 50),
            p(200, 1),
        ]));
        assert_eq!(pids(&f), vec![100, 101, 102]);
    }

    #[test]
    fn orphans_reparented_to_the_reaper_stay_members() {
        let mut f = TreeFilter::new(100, 50);
        f.update(&s(vec![p(100, 50), p(101, 100)]));
        // 101 exited; its child 103 appeared already re-parented to kwtop.
        f.update(&s(vec![p(100, 50), p(103, 50)]));
        assert_eq!(pids(&f), vec![100, 101, 103]);
    }

    #[test]
    fn child_of_a_parent_that_just_vanished() {
        let mut f = TreeFilter::new(100, 50);
        f.update(&s(vec![p(100, 50), p(101, 100)]));
        f.update(&s(vec![p(100, 50), p(104, 101)]));
        assert!(pids(&f).contains(&104));
    }

    #[test]
    fn strangers_and_reused_root_pid_are_not_members() {
        let mut f = TreeFilter::new(100, 50);
        f.update(&s(vec![p(100, 50)]));
        let mut reused = p(100, 1);
        reused.key.starttime = 99_999;
        f.update(&s(vec![reused, p(300, 1)]));
        assert_eq!(f.members().len(), 1);
    }

    fn ticks(mut p: ProcessReading, own: u64, child: u64) -> ProcessReading {
        p.cpu_ticks = own;
        p.child_ticks = child;
        p
    }

    #[test]
    fn ticks_kwtop_reaped_go_to_the_command_not_to_kwtop() {
        let mut f = TreeFilter::new(100, 50);
        let mut a = s(vec![
            ticks(p(50, 1), 7, 30),
            ticks(p(100, 50), 1, 5),
            ticks(p(103, 50), 20, 0),
        ]);
        f.update(&a);
        f.hand_reaped_to_root(&mut a);
        let get = |s: &Sample, pid: u32| s.processes.iter().find(|p| p.key.pid == pid).cloned();
        assert_eq!(get(&a, 50).map(|p| (p.cpu_ticks, p.child_ticks)), Some((7, 0)));
        assert_eq!(get(&a, 100).map(|p| (p.ppid, p.child_ticks)), Some((50, 35)));
        assert_eq!(
            get(&a, 103).map(|p| p.ppid),
            Some(100),
            "orphan shown under the command"
        );

        // Over the next interval the orphan ran 5 more ticks and kwtop reaped it (cutime 30 → 55),
        // kwtop itself used 3 ticks monitoring, the command 2.
        let mut b = s(vec![ticks(p(50, 1), 10, 55), ticks(p(100, 50), 3, 5)]);
        f.update(&b);
        f.hand_reaped_to_root(&mut b);
        for (smp, t, busy) in [(&mut a, 0.0, 0), (&mut b, 1.0, 100)] {
            smp.mono_s = t;
            smp.uptime_s = Some(1000.0 + t);
            smp.cpu_times = Some(crate::sample::CpuTimes { busy, idle: 0 });
        }
        let iv = crate::attribution::Attributor::default().attribute(&a, &b);
        let share = |pid: u32| {
            iv.cpu_shares
                .iter()
                .filter(|(k, _)| k.pid == pid)
                .map(|(_, x)| x)
                .sum::<f64>()
        };
        assert!(
            (share(100) - 0.07).abs() < 1e-12,
            "command: 2 own + 5 of the orphan's"
        );
        assert!((share(50) - 0.03).abs() < 1e-12, "kwtop: its own monitoring only");
    }

    #[test]
    fn nothing_moves_before_the_command_is_seen() {
        let f = TreeFilter::new(100, 50);
        let mut a = s(vec![ticks(p(50, 1), 7, 30)]);
        f.hand_reaped_to_root(&mut a);
        assert_eq!(a.processes[0].child_ticks, 30);
    }

    #[test]
    fn report_defaults_to_short_and_format_alone_still_picks_the_full_summary() {
        let o = Some(std::path::Path::new("x.json"));
        assert_eq!(Report::resolve(None, None, None), Report::Short);
        assert_eq!(Report::resolve(None, Some(Format::Json), None), Report::Json);
        assert_eq!(
            Report::resolve(None, Some(Format::Json), o),
            Report::Short,
            "--format is -o's"
        );
        assert_eq!(
            Report::resolve(Some(Report::Quiet), Some(Format::Md), None),
            Report::Quiet
        );
    }

    #[test]
    fn exit_statuses() {
        let pid = Pid::from_raw(5);
        assert_eq!(exit_status(WaitStatus::Exited(pid, 3)), (Some(3), None, 3));
        assert_eq!(
            exit_status(WaitStatus::Signaled(
                pid,
                nix::sys::signal::Signal::SIGKILL,
                false
            )),
            (None, Some(9), 137)
        );
    }
}
