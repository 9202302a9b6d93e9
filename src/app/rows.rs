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
    let ledger = app.ledger();
    let view = app.shown();
    let filter = app.ui.filter.to_lowercase();
    let any_est = |by_dev: &[f64], cpu_only: bool| any_estimated(ledger, by_dev, cpu_only);
    let mut hidden = Hidden {
        shown: app.ui.show_hidden,
        ..Hidden::default()
    };

    let mut rows: Vec<Row> = Vec::new();
    if app.ui.group == GroupBy::Process {
        let mut exited = Row::blank(RowId::Exited, RowKind::Exited);
        let mut n_exited: u64 = 0;
        let mut kernel = Row::blank(RowId::Hidden, RowKind::Hidden);
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
            let row = process_row(e, view, &any_est);
            if matches_filter(&row, &filter) {
                rows.push(row);
            }
        }
        for f in ledger.folded().values() {
            n_exited += f.count;
            exited.energy_j += f.energy_j;
            exited.estimated |= any_est(&f.energy_by_dev, false);
        }
        sort(&mut rows, app.ui.sort, app.ui.reverse);
        // Only kernel threads carry energy into the hidden set; the row keeps the table's sum.
        if kernel.energy_j > 0.0 || kernel.total_w > 0.0 {
            kernel.user = "kernel".into();
            kernel.dev = "cpu".into();
            kernel.state = "hidden".into();
            let n = hidden.kernel_threads;
            let s = if n == 1 { "" } else { "s" };
            kernel.command = format!("({n} kernel thread{s}; K shows them)");
            rows.push(kernel);
        }
        if n_exited > 0 {
            exited.state = "exited".into();
            let es = if n_exited == 1 { "" } else { "es" };
            exited.command = format!("({n_exited} exited process{es}; x expands)");
            rows.push(exited);
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
            if matches_filter(&row, &filter) {
                rows.push(row);
            }
        }
        sort(&mut rows, app.ui.sort, app.ui.reverse);
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
    rows.push(idle);
    rows.push(un);
    (rows, hidden)
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
    row.gpu_pct = e.gpu_util_pct;
    row.gpu_mem = e.gpu_mem_bytes;
    row.idle_holder = running && e.idle.flagged;
    row.state = if row.idle_holder {
        format!(
            "IDLE {} {}",
            crate::units::short_age(e.idle.streak_s),
            crate::ledger::short_gpu_list(e.idle.flagged_gpus().map(|g| g.device.as_str()))
        )
    } else if running {
        "run".into()
    } else {
        "exited".into()
    };
    row.command = if e.info.cmdline.is_empty() {
        format!("[{}]", e.info.comm)
    } else {
        e.info.cmdline.clone()
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
