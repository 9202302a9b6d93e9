//! The process table's rows: filtered, grouped and sorted from the ledger, with the idle and
//! unattributed rows last so the ENERGY column always sums to the session total.
//!
//! Less noise (`K` toggles): by default a process row is hidden when it is a kernel thread
//! ([`is_kernel_thread`]) or has no energy yet (0 J; a GPU holder always shows). Hidden rows
//! never lose energy: a hidden kernel thread's joules go to a pinned `hidden` row, and a process
//! hidden for having none adds nothing. In the other groupings the kernel-thread rule does not
//! apply (a group is a total over its members); groups with no energy yet are hidden.
//!
//! Pure over an [`App`]; strings come from the ledger already sanitized by the sources and are
//! sanitized again when drawn.

use std::borrow::Cow;
use std::cmp::Ordering;

use super::App;
use crate::ledger::{GroupBy, Ledger, ProcEntry, ProcState};
use crate::sample::{DeviceKind, ProcKey, Provenance};

/// Columns of the process table, in display order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Column {
    Pid,
    User,
    Dev,
    GpuW,
    CpuW,
    TotalW,
    AvgW,
    Energy,
    Co2e,
    Equiv,
    GpuPct,
    GpuMem,
    State,
    Command,
}

impl Column {
    pub const ALL: [Column; 14] = [
        Column::Pid,
        Column::User,
        Column::Dev,
        Column::GpuW,
        Column::CpuW,
        Column::TotalW,
        Column::AvgW,
        Column::Energy,
        Column::Co2e,
        Column::Equiv,
        Column::GpuPct,
        Column::GpuMem,
        Column::State,
        Column::Command,
    ];

    fn index(self) -> usize {
        Column::ALL.iter().position(|c| *c == self).unwrap_or(0)
    }

    pub fn next(self) -> Column {
        Column::ALL[(self.index() + 1) % Column::ALL.len()]
    }

    pub fn prev(self) -> Column {
        Column::ALL[(self.index() + Column::ALL.len() - 1) % Column::ALL.len()]
    }

    /// Text columns sort ascending by default, numbers largest first.
    fn is_text(self) -> bool {
        matches!(
            self,
            Column::Pid | Column::User | Column::Dev | Column::State | Column::Command
        )
    }
}

/// Stable identity of a row, so the selection follows a process while the table re-sorts.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RowId {
    Proc(ProcKey),
    Group(String),
    Exited,
    /// Hidden kernel threads' energy, summed (`K` shows them).
    Hidden,
    Idle,
    Unattributed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowKind {
    Process,
    Group,
    /// Exited processes summarised in one row (or the folded ones).
    Exited,
    /// Kernel threads hidden from the table, their energy summed in one row.
    Hidden,
    Idle,
    Unattributed,
}

/// One table row, numbers raw (formatting happens in `ui`).
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub id: RowId,
    pub kind: RowKind,
    /// PID, or a count for groups and summary rows.
    pub pid: String,
    pub user: String,
    pub dev: String,
    pub gpu_w: Option<f64>,
    pub cpu_w: Option<f64>,
    pub total_w: f64,
    pub avg_w: Option<f64>,
    pub energy_j: f64,
    pub gpu_pct: Option<f64>,
    pub gpu_mem: Option<u64>,
    /// `run`, `exited`, `IDLE 42m gpu1` (idle that long on that GPU), or a group's running count.
    pub state: String,
    pub idle_holder: bool,
    pub command: String,
    /// Some of its CPU figure comes from the estimate model.
    pub cpu_estimated: bool,
    /// Some of its energy comes from the estimate model.
    pub estimated: bool,
}

impl Row {
    fn blank(id: RowId, kind: RowKind) -> Row {
        Row {
            id,
            kind,
            pid: String::new(),
            user: String::new(),
            dev: String::new(),
            gpu_w: None,
            cpu_w: None,
            total_w: 0.0,
            avg_w: None,
            energy_j: 0.0,
            gpu_pct: None,
            gpu_mem: None,
            state: String::new(),
            idle_holder: false,
            command: String::new(),
            cpu_estimated: false,
            estimated: false,
        }
    }
}

/// Why a row is left out of the table while hidden rows are not shown (`K`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HideReason {
    KernelThread,
    /// No energy yet (0 J) and no GPU context.
    NoEnergy,
}

/// The rows the table leaves out (or, while `K` shows them, would leave out).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Hidden {
    pub kernel_threads: usize,
    pub no_energy: usize,
    /// Their energy, joules (all of it from kernel threads: the others have none).
    pub energy_j: f64,
    /// `K` pressed: they are shown as ordinary rows.
    pub shown: bool,
}

impl Hidden {
    pub fn count(&self) -> usize {
        self.kernel_threads + self.no_energy
    }
}

/// A kernel thread: kthreadd (pid 2) or a child of it, with an empty command line.
///
/// `/proc/PID/cmdline` is empty for every kernel thread but also for a zombie or a process
/// caught mid-exit; those have a user-space parent, so the parent rules them out. Every kernel
/// thread is started by kthreadd, pid 2 in the initial pid namespace; inside a container's own
/// pid namespace no kernel thread is visible at all (there, a zombie child of the container's
/// pid 2 would count as one: its energy still lands in the `hidden` row, never lost).
pub fn is_kernel_thread(pid: u32, ppid: u32, cmdline: &str) -> bool {
    cmdline.is_empty() && (pid == 2 || ppid == 2)
}

/// Why `e` is hidden by default, if it is. A GPU context holder is never hidden for having no
/// energy yet (it is charged from its first interval on).
pub fn hide_reason(e: &ProcEntry) -> Option<HideReason> {
    if is_kernel_thread(e.key.pid, e.ppid, &e.info.cmdline) {
        Some(HideReason::KernelThread)
    } else if e.energy_j <= 0.0 && !crate::figures::holds_gpu(e) {
        Some(HideReason::NoEnergy)
    } else {
        None
    }
}

/// Whether any of `by_dev`'s energy (joules indexed like [`Ledger::devices`]) comes from an
/// estimated device: the test behind every `~` in the table and the detail view. `cpu_only`:
/// count only CPU-side devices (the CPU W column).
pub fn any_estimated(ledger: &Ledger, by_dev: &[f64], cpu_only: bool) -> bool {
    ledger.devices.iter().zip(by_dev).any(|(d, j)| {
        *j > 0.0 && d.provenance == Provenance::Estimated && (!cpu_only || d.kind != DeviceKind::Gpu)
    })
}

/// Build the table rows of `app` as shown now.
pub fn build(app: &App) -> Vec<Row> {
    build_counted(app).0
}

/// The table rows and what is hidden from them.
pub fn build_counted(app: &App) -> (Vec<Row>, Hidden) {
    let list = listing(app);
    let hidden = list.hidden;
    (list.into_rows(), hidden)
}

/// The table as listed now, in table order: the process rows (or group rows), then the pinned
/// summary rows (hidden kernel threads, exited, idle, unattributed).
///
/// Cheap to build for every frame: a process row is its borrowed ledger entry, filtered and sorted
/// on keys read in place (no string is made for a process unless it holds a GPU or is an idle
/// holder and the sort needs its DEV or STATE text); a full [`Row`] is made only for the rows
/// asked for ([`Listing::row`]), so the screen formats only the rows in view.
pub struct Listing<'a> {
    ledger: &'a Ledger,
    view: &'a super::View,
    /// Process rows (grouped by process), in table order.
    procs: Vec<&'a ProcEntry>,
    /// Group rows (the other groupings), in table order.
    groups: Vec<Row>,
    /// The summary rows after them.
    pinned: Vec<Row>,
    pub hidden: Hidden,
}

impl Listing<'_> {
    /// Rows in all, pinned ones included (the title's "N rows").
    pub fn len(&self) -> usize {
        self.main_len() + self.pinned.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Rows before the pinned summary rows.
    pub fn main_len(&self) -> usize {
        self.procs.len() + self.groups.len()
    }

    /// The pinned summary rows at the end.
    pub fn n_pinned(&self) -> usize {
        self.pinned.len()
    }

    /// Row `i` in full, the same as `build(app)[i]`.
    pub fn row(&self, i: usize) -> Option<Row> {
        if let Some(e) = self.procs.get(i) {
            let any_est = |by_dev: &[f64], cpu_only: bool| any_estimated(self.ledger, by_dev, cpu_only);
            return Some(process_row(e, self.view, &any_est));
        }
        let i = i - self.procs.len();
        if let Some(r) = self.groups.get(i) {
            return Some(r.clone());
        }
        self.pinned.get(i - self.groups.len()).cloned()
    }

    /// The identity of row `i`.
    pub fn id(&self, i: usize) -> Option<RowId> {
        if let Some(e) = self.procs.get(i) {
            return Some(RowId::Proc(e.key));
        }
        let i = i - self.procs.len();
        if let Some(r) = self.groups.get(i) {
            return Some(r.id.clone());
        }
        self.pinned.get(i - self.groups.len()).map(|r| r.id.clone())
    }

    /// Where the row `id` is, if it is listed.
    pub fn position(&self, id: &RowId) -> Option<usize> {
        let main = self.main_len();
        let pinned = || self.pinned.iter().position(|r| &r.id == id).map(|i| main + i);
        match id {
            RowId::Proc(k) => self.procs.iter().position(|e| e.key == *k),
            RowId::Group(_) => self.groups.iter().position(|r| &r.id == id),
            RowId::Exited | RowId::Hidden | RowId::Idle | RowId::Unattributed => pinned(),
        }
    }

    /// Display width of the longest STATE text in any row (the column is sized for all of them,
    /// not only those in view, so it does not change width while scrolling).
    pub fn longest_state(&self) -> usize {
        use unicode_width::UnicodeWidthStr;
        let procs = self.procs.iter().map(|e| state_text(e).width());
        let rows = self.groups.iter().chain(&self.pinned).map(|r| r.state.width());
        procs.chain(rows).max().unwrap_or(0)
    }

    /// Every row in full.
    pub fn into_rows(self) -> Vec<Row> {
        let mut rows: Vec<Row> = (0..self.procs.len()).filter_map(|i| self.row(i)).collect();
        rows.extend(self.groups);
        rows.extend(self.pinned);
        rows
    }
}

/// List the table of `app` as shown now (see [`Listing`]).
pub fn listing(app: &App) -> Listing<'_> {
    let ledger = app.ledger();
    let view = app.shown();
    let filter = Filter::new(&app.ui.filter);
    let any_est = |by_dev: &[f64], cpu_only: bool| any_estimated(ledger, by_dev, cpu_only);
    let mut hidden = Hidden {
        shown: app.ui.show_hidden,
        ..Hidden::default()
    };

    let mut procs: Vec<&ProcEntry> = Vec::new();
    let mut groups: Vec<Row> = Vec::new();
    let mut pinned: Vec<Row> = Vec::new();
    if app.ui.group == GroupBy::Process {
        let mut exited = Row::blank(RowId::Exited, RowKind::Exited);
        let mut n_exited: u64 = 0;
        let mut kernel = Row::blank(RowId::Hidden, RowKind::Hidden);
        let mut listed: Vec<Listed> = Vec::new();
        for e in ledger.processes() {
            if e.state == ProcState::Exited && !app.ui.show_exited {
                n_exited += 1;
                exited.energy_j += e.energy_j;
                exited.estimated |= any_est(&e.energy_by_dev, false);
                continue;
            }
            if let Some(why) = hide_reason(e) {
                match why {
                    HideReason::KernelThread => hidden.kernel_threads += 1,
                    HideReason::NoEnergy => hidden.no_energy += 1,
                }
                hidden.energy_j += e.energy_j;
                if !hidden.shown {
                    kernel.energy_j += e.energy_j;
                    kernel.total_w += e.power_w;
                    kernel.estimated |= any_est(&e.energy_by_dev, false);
                    continue;
                }
            }
            if filter.matches(e) {
                listed.push(Listed::new(e, view, app.ui.sort, app.ui.reverse, listed.len()));
            }
        }
        for f in ledger.folded().values() {
            n_exited += f.count;
            exited.energy_j += f.energy_j;
            exited.estimated |= any_est(&f.energy_by_dev, false);
        }
        let texts: Vec<Cow<str>> = match app.ui.sort {
            Column::Dev => listed
                .iter()
                .map(|l| crate::figures::gpu_labels(l.e).map_or(Cow::Borrowed("cpu"), Cow::Owned))
                .collect(),
            Column::State => listed.iter().map(|l| state_text(l.e)).collect(),
            _ => Vec::new(),
        };
        if is_numeric(app.ui.sort) {
            // Integers only; a full tie (a reused pid whose exited process is shown) goes on to
            // the command, as in `sort`.
            listed.sort_unstable_by_key(|l| (l.num, l.energy, l.pid, l.at));
            let tied = |a: &Listed, b: &Listed| (a.num, a.energy, a.pid) == (b.num, b.energy, b.pid);
            for run in listed.chunk_by_mut(tied).filter(|r| r.len() > 1) {
                run.sort_by(|a, b| cmp_command(command_parts(a.e), command_parts(b.e)).then(a.at.cmp(&b.at)));
            }
        } else {
            listed.sort_unstable_by(|a, b| cmp_listed(a, b, app.ui.sort, app.ui.reverse, &texts));
        }
        procs = listed.into_iter().map(|l| l.e).collect();
        // Only kernel threads carry energy into the hidden set; the row keeps the table's sum.
        if kernel.energy_j > 0.0 || kernel.total_w > 0.0 {
            kernel.user = "kernel".into();
            kernel.dev = "cpu".into();
            kernel.state = "hidden".into();
            let n = hidden.kernel_threads;
            let s = if n == 1 { "" } else { "s" };
            kernel.command = format!("({n} kernel thread{s}; K shows them)");
            pinned.push(kernel);
        }
        if n_exited > 0 {
            exited.state = "exited".into();
            let es = if n_exited == 1 { "" } else { "es" };
            exited.command = format!("({n_exited} exited process{es}; x expands)");
            pinned.push(exited);
        }
    } else {
        for g in ledger.groups(app.ui.group) {
            // No energy yet: nothing to lose by hiding it.
            if g.energy_j <= 0.0 {
                hidden.no_energy += 1;
                if !hidden.shown {
                    continue;
                }
            }
            let by_dev: Vec<f64> = g.energy_by_device_j.iter().map(|(_, j)| *j).collect();
            let mut row = Row::blank(RowId::Group(g.key.clone()), RowKind::Group);
            row.pid = format!("{}", g.processes);
            row.total_w = g.power_w;
            row.energy_j = g.energy_j;
            row.state = format!("{} run", g.running);
            row.command = g.key;
            row.estimated = any_est(&by_dev, false);
            row.dev = devices_used(ledger, &by_dev);
            if matches_filter(&row, &filter.text) {
                groups.push(row);
            }
        }
        sort(&mut groups, app.ui.sort, app.ui.reverse);
    }

    let mut idle = Row::blank(RowId::Idle, RowKind::Idle);
    idle.user = "idle".into();
    idle.total_w = view.idle_w;
    idle.energy_j = ledger.devices.iter().map(|d| d.idle_j).sum();
    idle.dev = "all".into();
    idle.command = "(no process: device idle power)".into();
    idle.estimated = ledger
        .devices
        .iter()
        .any(|d| d.idle_j > 0.0 && d.provenance == Provenance::Estimated);
    let mut un = Row::blank(RowId::Unattributed, RowKind::Unattributed);
    un.user = "unattr".into();
    un.total_w = view.unattributed_w;
    un.energy_j = ledger.devices.iter().map(|d| d.unattributed_j).sum();
    un.dev = "all".into();
    un.command = "(unattributed: interrupts, short-lived, skew)".into();
    un.estimated = ledger
        .devices
        .iter()
        .any(|d| d.unattributed_j > 0.0 && d.provenance == Provenance::Estimated);
    pinned.push(idle);
    pinned.push(un);
    Listing {
        ledger,
        view,
        procs,
        groups,
        pinned,
        hidden,
    }
}

/// A process's STATE text: `IDLE 42m gpu1` for an idle holder, `run` or `exited`.
fn state_text(e: &ProcEntry) -> Cow<'static, str> {
    let running = e.state == ProcState::Running;
    if running && e.idle().flagged {
        Cow::Owned(format!(
            "IDLE {} {}",
            crate::units::short_age(e.idle().streak_s),
            crate::ledger::short_gpu_list(e.idle().flagged_gpus().map(|g| g.device.as_str()))
        ))
    } else if running {
        Cow::Borrowed("run")
    } else {
        Cow::Borrowed("exited")
    }
}

/// A process's COMMAND text as `(in brackets, text)`: its command line, or `[comm]` when that is
/// empty (a kernel thread, a zombie).
fn command_parts(e: &ProcEntry) -> (bool, &str) {
    if e.info.cmdline.is_empty() {
        (true, &e.info.comm)
    } else {
        (false, &e.info.cmdline)
    }
}

/// The COMMAND texts of two processes compared as the strings [`process_row`] makes of them.
fn cmp_command(a: (bool, &str), b: (bool, &str)) -> Ordering {
    if !a.0 && !b.0 {
        return a.1.cmp(b.1);
    }
    bracketed(a).cmp(bracketed(b))
}

fn bracketed((bracket, s): (bool, &str)) -> impl Iterator<Item = u8> + '_ {
    let (open, close): (&[u8], &[u8]) = if bracket { (b"[", b"]") } else { (b"", b"") };
    open.iter().chain(s.as_bytes()).chain(close).copied()
}

/// A process row before it is made: the entry and its sort keys, read once, so that the sort
/// compares integers in place for the numeric columns.
struct Listed<'a> {
    e: &'a ProcEntry,
    /// A numeric sort column's value as [`total_order`] (`None` as minus infinity, as
    /// [`cmp_opt`]), complemented where the table shows it largest first: ascending is table order.
    num: u64,
    /// Energy as [`total_order`], complemented: ascending is most energy first (the first tie-break).
    energy: u64,
    pid: u32,
    /// Position in the ledger's order: the last tie-break, so that an unstable sort orders as
    /// [`sort`]'s stable one does.
    at: u32,
}

impl<'a> Listed<'a> {
    fn new(e: &'a ProcEntry, view: &super::View, sort: Column, reverse: bool, at: usize) -> Self {
        let split = || {
            let running = e.state == ProcState::Running;
            running.then(|| view.split_w.get(&e.key).copied().unwrap_or_default())
        };
        let opt = |v: Option<f64>| v.unwrap_or(f64::NEG_INFINITY);
        let num = match sort {
            Column::GpuW => opt(split().and_then(|s| crate::figures::holds_gpu(e).then_some(s.gpu_w))),
            Column::CpuW => opt(split().map(|s| s.cpu_w)),
            Column::TotalW => e.power_w,
            Column::AvgW => e.avg_w(),
            Column::Energy | Column::Co2e | Column::Equiv => e.energy_j,
            Column::GpuPct => opt(e.gpu_util_pct()),
            _ => 0.0,
        };
        // Numbers are largest first, unless reversed.
        let num = if reverse {
            total_order(num)
        } else {
            !total_order(num)
        };
        Listed {
            e,
            num,
            energy: !total_order(e.energy_j),
            pid: e.key.pid,
            at: u32::try_from(at).unwrap_or(u32::MAX),
        }
    }
}

/// Whether the table sorts by `col` on [`Listed::num`].
fn is_numeric(col: Column) -> bool {
    matches!(
        col,
        Column::GpuW
            | Column::CpuW
            | Column::TotalW
            | Column::AvgW
            | Column::Energy
            | Column::Co2e
            | Column::Equiv
            | Column::GpuPct
    )
}

/// `x` as an integer that orders as [`f64::total_cmp`] orders.
fn total_order(x: f64) -> u64 {
    let bits = x.to_bits();
    if bits >> 63 == 1 { !bits } else { bits | 1 << 63 }
}

/// [`sort`]'s order for process rows, on their keys; `texts` holds each one's DEV or STATE text
/// when the table is sorted by it.
fn cmp_listed(a: &Listed, b: &Listed, col: Column, reverse: bool, texts: &[Cow<str>]) -> Ordering {
    let text = |l: &Listed| texts.get(l.at as usize).map_or("", |t| t.as_ref());
    let ord = match col {
        // `num` is in table order already.
        Column::GpuW
        | Column::CpuW
        | Column::TotalW
        | Column::AvgW
        | Column::Energy
        | Column::Co2e
        | Column::Equiv
        | Column::GpuPct => a.num.cmp(&b.num),
        Column::Pid => a.pid.cmp(&b.pid),
        Column::User => a.e.info.user.cmp(&b.e.info.user),
        Column::Dev | Column::State => text(a).cmp(text(b)),
        // Largest first.
        Column::GpuMem => b.e.gpu_mem_bytes().cmp(&a.e.gpu_mem_bytes()),
        Column::Command => cmp_command(command_parts(a.e), command_parts(b.e)),
    };
    let ord = if reverse && !is_numeric(col) {
        ord.reverse()
    } else {
        ord
    };
    ord.then_with(|| (a.energy, a.pid).cmp(&(b.energy, b.pid)))
        .then_with(|| cmp_command(command_parts(a.e), command_parts(b.e)))
        .then_with(|| a.at.cmp(&b.at))
}

/// The `/` filter, lower-cased once: a row matches when its PID is the filter or its command or
/// user contains it, ignoring case.
struct Filter {
    text: String,
    /// The PID the filter spells exactly (`42`, not `042`).
    pid: Option<u32>,
}

impl Filter {
    fn new(filter: &str) -> Self {
        let text = filter.to_lowercase();
        let pid = text.parse::<u32>().ok().filter(|p| p.to_string() == text);
        Filter { text, pid }
    }

    /// [`matches_filter`] on the row of `e`, without making it.
    fn matches(&self, e: &ProcEntry) -> bool {
        if self.text.is_empty() || self.pid == Some(e.key.pid) {
            return true;
        }
        let command = match command_parts(e) {
            (true, comm) => contains_lower(&format!("[{comm}]"), &self.text),
            (false, cmdline) => contains_lower(cmdline, &self.text),
        };
        command || contains_lower(&e.info.user, &self.text)
    }
}

/// `s.to_lowercase().contains(lower)`, without the copy for an ASCII `s`.
fn contains_lower(s: &str, lower: &str) -> bool {
    if !s.is_ascii() {
        return s.to_lowercase().contains(lower);
    }
    // An ASCII string lower-cases byte by byte; `lower` has no ASCII capitals and any
    // non-ASCII byte of it matches no byte of `s`.
    let n = lower.len();
    n == 0
        || s.as_bytes()
            .windows(n)
            .any(|w| w.eq_ignore_ascii_case(lower.as_bytes()))
}

fn process_row(e: &ProcEntry, view: &super::View, any_est: &dyn Fn(&[f64], bool) -> bool) -> Row {
    let mut row = Row::blank(RowId::Proc(e.key), RowKind::Process);
    row.pid = e.key.pid.to_string();
    row.user = e.info.user.clone();
    let gpus = crate::figures::gpu_labels(e);
    let holds_gpu = gpus.is_some();
    row.dev = gpus.unwrap_or_else(|| "cpu".into());
    let running = e.state == ProcState::Running;
    if running {
        let split = view.split_w.get(&e.key).copied().unwrap_or_default();
        row.gpu_w = holds_gpu.then_some(split.gpu_w);
        row.cpu_w = Some(split.cpu_w);
    }
    row.total_w = e.power_w;
    row.avg_w = Some(e.avg_w());
    row.energy_j = e.energy_j;
    row.gpu_pct = e.gpu_util_pct();
    row.gpu_mem = e.gpu_mem_bytes();
    row.idle_holder = running && e.idle().flagged;
    row.state = state_text(e).into_owned();
    row.command = match command_parts(e) {
        (true, comm) => format!("[{comm}]"),
        (false, cmdline) => cmdline.to_string(),
    };
    row.cpu_estimated = any_est(&e.energy_by_dev, true);
    row.estimated = any_est(&e.energy_by_dev, false);
    row
}

fn short_id(id: &str) -> String {
    id.strip_prefix("gpu")
        .map_or_else(|| id.to_string(), str::to_string)
}

fn devices_used(ledger: &crate::ledger::Ledger, by_dev: &[f64]) -> String {
    let ids: Vec<String> = ledger
        .devices
        .iter()
        .zip(by_dev)
        .filter(|(d, j)| **j > 0.0 && d.kind == DeviceKind::Gpu)
        .map(|(d, _)| short_id(&d.id))
        .collect();
    if ids.is_empty() {
        "cpu".into()
    } else {
        ids.join(",")
    }
}

fn matches_filter(row: &Row, filter: &str) -> bool {
    if filter.is_empty() {
        return true;
    }
    row.pid == filter
        || row.command.to_lowercase().contains(filter)
        || row.user.to_lowercase().contains(filter)
}

fn cmp_opt(a: Option<f64>, b: Option<f64>) -> Ordering {
    a.unwrap_or(f64::NEG_INFINITY)
        .total_cmp(&b.unwrap_or(f64::NEG_INFINITY))
}

fn sort(rows: &mut [Row], col: Column, reverse: bool) {
    rows.sort_by(|a, b| {
        let ord = match col {
            Column::Pid => a
                .pid
                .parse::<u64>()
                .unwrap_or(u64::MAX)
                .cmp(&b.pid.parse::<u64>().unwrap_or(u64::MAX)),
            Column::User => a.user.cmp(&b.user),
            Column::Dev => a.dev.cmp(&b.dev),
            Column::GpuW => cmp_opt(a.gpu_w, b.gpu_w),
            Column::CpuW => cmp_opt(a.cpu_w, b.cpu_w),
            Column::TotalW => a.total_w.total_cmp(&b.total_w),
            Column::AvgW => cmp_opt(a.avg_w, b.avg_w),
            Column::Energy | Column::Co2e | Column::Equiv => a.energy_j.total_cmp(&b.energy_j),
            Column::GpuPct => cmp_opt(a.gpu_pct, b.gpu_pct),
            Column::GpuMem => a.gpu_mem.cmp(&b.gpu_mem),
            Column::State => a.state.cmp(&b.state),
            Column::Command => a.command.cmp(&b.command),
        };
        let ord = if col.is_text() { ord } else { ord.reverse() };
        let ord = if reverse { ord.reverse() } else { ord };
        // Ties: most energy first, then pid, so the order is stable between frames.
        ord.then_with(|| b.energy_j.total_cmp(&a.energy_j))
            .then_with(|| {
                let num = |p: &str| p.parse::<u64>().unwrap_or(u64::MAX);
                num(&a.pid).cmp(&num(&b.pid))
            })
            .then_with(|| a.command.cmp(&b.command))
    });
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::sync::Arc;

    use super::*;
    use crate::app::{AppParams, Msg, ViewOptions};
    use crate::sample::ProcInfo;
    use crate::testing::host::{HostShape, SyntheticHost};

    /// The live monitor after `seconds` of a synthetic host of `n` processes, with what the
    /// table treats specially: two idle GPU holders (gpu1's, at 0 % SM past a 3 s threshold),
    /// exited processes (folded past `max_exited`), a zombie with no command line, a non-ASCII
    /// command, a pid reused in the last second by a process as idle as the exited one.
    pub(crate) fn host_app(n: usize, seconds: usize, max_exited: usize) -> App {
        let mut params = AppParams::default();
        params.engine.idle_holder.after_s = 3.0;
        params.engine.max_exited_processes = max_exited;
        let mut host = SyntheticHost::new(HostShape {
            procs: n,
            sporadic: n / 4,
            spawn_every_s: 2,
            life_s: 3,
            ..HostShape::default()
        });
        let mut app = App::new(&params, ViewOptions::default());
        let odd = |comm: &str, cmdline: &str, user: &str| {
            Arc::new(ProcInfo {
                comm: comm.into(),
                cmdline: cmdline.into(),
                user: user.into(),
                ..ProcInfo::default()
            })
        };
        let zombie = odd("defunct", "", "ana");
        let greek = odd("ΣΑΣ", "/opt/ΣΑΣ/bin/Ünïcode --ΣΊΣΥΦΟΣ", "Ωmega");
        // The new one runs, so it comes first in the ledger; its command sorts last.
        let (old, new) = (odd("old", "reused --a", "ana"), odd("new", "reused --z", "ana"));
        for i in 0..seconds {
            let mut s = host.next_sample();
            for g in &mut s.devices[5].gpu_processes {
                g.sm_util_pct = Some(0.0);
            }
            let t = i as u64 * 50;
            s.processes.push(
                crate::testing::process(900_001, 5, t)
                    .ppid(1)
                    .info(&zombie)
                    .build(),
            );
            s.processes.push(
                crate::testing::process(900_002, 5, t)
                    .ppid(1)
                    .info(&greek)
                    .build(),
            );
            // A pid reused: the exited process and the new one, neither with energy.
            let (start, info) = if i + 1 < seconds { (6, &old) } else { (7, &new) };
            s.processes.push(
                crate::testing::process(900_003, start, 0)
                    .ppid(1)
                    .info(info)
                    .build(),
            );
            app.update(Msg::Sample(Box::new(s)));
        }
        app
    }

    /// The table rows as they were made before [`Listing`]: a full [`Row`] for every process,
    /// filtered and sorted on the rows. The oracle for the listing.
    fn every_row(app: &App) -> (Vec<Row>, Hidden) {
        let ledger = app.ledger();
        let view = app.shown();
        let filter = app.ui.filter.to_lowercase();
        let any_est = |by_dev: &[f64], cpu_only: bool| any_estimated(ledger, by_dev, cpu_only);
        let mut hidden = Hidden {
            shown: app.ui.show_hidden,
            ..Hidden::default()
        };
        let mut rows: Vec<Row> = Vec::new();
        for e in ledger.processes() {
            if e.state == ProcState::Exited && !app.ui.show_exited {
                continue;
            }
            if let Some(why) = hide_reason(e) {
                match why {
                    HideReason::KernelThread => hidden.kernel_threads += 1,
                    HideReason::NoEnergy => hidden.no_energy += 1,
                }
                hidden.energy_j += e.energy_j;
                if !hidden.shown {
                    continue;
                }
            }
            let row = process_row(e, view, &any_est);
            if matches_filter(&row, &filter) {
                rows.push(row);
            }
        }
        sort(&mut rows, app.ui.sort, app.ui.reverse);
        (rows, hidden)
    }

    /// Every UI state the table's rows depend on, `f` called in each.
    pub(crate) fn each_state(app: &mut App, mut f: impl FnMut(&App)) {
        let pid = app.ledger().running().next().unwrap().key.pid.to_string();
        let filters = [
            "",
            "python",
            "PYTHON3 -u",
            "ana",
            "Ω",
            "σας",
            "ünï",
            "[",
            "[k",
            "[def",
            "defunct]",
            &pid,
            "0",
            "9000",
            "x\u{1b}",
        ];
        for group in [GroupBy::Process, GroupBy::User] {
            for filter in filters {
                for (show_hidden, show_exited) in [(false, false), (true, false), (false, true), (true, true)]
                {
                    for sort in Column::ALL {
                        for reverse in [false, true] {
                            app.ui.group = group;
                            app.ui.filter = filter.to_string();
                            app.ui.show_hidden = show_hidden;
                            app.ui.show_exited = show_exited;
                            app.ui.sort = sort;
                            app.ui.reverse = reverse;
                            f(app);
                        }
                    }
                }
            }
        }
    }

    /// The listing lists exactly the rows the full build made, in the same order, with the same
    /// counts, and finds each row by its id.
    #[test]
    fn the_listing_is_the_full_table() {
        let mut folded = host_app(120, 12, 4);
        assert!(!folded.ledger().folded().is_empty() && !folded.ledger().exited().is_empty());
        let mut tied = host_app(120, 12, 1000);
        tied.ui.show_hidden = true;
        tied.ui.show_exited = true;
        let reused = build(&tied).iter().filter(|r| r.pid == "900003").count();
        assert_eq!(reused, 2, "a full tie: same pid, energy and watts");
        for app in [&mut folded, &mut tied] {
            let holders = every_row(app).0.iter().filter(|r| r.idle_holder).count();
            assert_eq!(holders, 2, "the test has idle holders");
            let mut kinds = std::collections::HashSet::new();
            each_state(app, |app| {
                let (rows, hidden) = build_counted(app);
                let list = listing(app);
                assert_eq!(list.len(), rows.len());
                let what = format!(
                    "{:?}",
                    (app.ui.group, &app.ui.filter, app.ui.sort, app.ui.reverse)
                );
                if app.ui.group == GroupBy::Process {
                    let (every, every_hidden) = every_row(app);
                    let procs: Vec<Row> = rows
                        .iter()
                        .filter(|r| r.kind == RowKind::Process)
                        .cloned()
                        .collect();
                    assert_eq!(procs, every, "{what}");
                    assert_eq!(hidden, every_hidden, "{what}");
                    assert_eq!(list.main_len(), every.len());
                }
                for (i, r) in rows.iter().enumerate() {
                    assert_eq!(list.row(i).as_ref(), Some(r));
                    assert_eq!(list.id(i).as_ref(), Some(&r.id));
                    assert_eq!(list.position(&r.id), Some(i));
                    kinds.insert(format!("{:?}", r.kind));
                }
                assert_eq!(list.row(rows.len()), None);
                let longest = rows
                    .iter()
                    .map(|r| unicode_width::UnicodeWidthStr::width(r.state.as_str()))
                    .max();
                assert_eq!(Some(list.longest_state()), longest);
            });
            assert_eq!(kinds.len(), 6, "{kinds:?}");
        }
    }

    #[test]
    fn total_order_orders_as_total_cmp() {
        let xs = [
            f64::NEG_INFINITY,
            -1e300,
            -1.0,
            -f64::MIN_POSITIVE,
            -0.0,
            0.0,
            f64::MIN_POSITIVE,
            0.5,
            1.0,
            1e300,
            f64::INFINITY,
            f64::NAN,
            -f64::NAN,
        ];
        for a in xs {
            for b in xs {
                assert_eq!(total_order(a).cmp(&total_order(b)), a.total_cmp(&b), "{a} {b}");
            }
        }
    }

    #[test]
    fn contains_lower_is_to_lowercase_contains() {
        for s in [
            "",
            "Python3 -U train.py",
            "ΣΑΣ Ünï",
            "İstanbul",
            "ABC[k]",
            "a\u{1b}b",
        ] {
            for f in [
                "",
                "p",
                "python3 -u",
                "σας",
                "ünï",
                "i̇",
                "[k]",
                "abc[",
                "ü",
                "\u{1b}",
                "zz",
            ] {
                let f = f.to_lowercase();
                assert_eq!(
                    contains_lower(s, &f),
                    s.to_lowercase().contains(&f),
                    "{s:?} {f:?}"
                );
            }
        }
    }
}
