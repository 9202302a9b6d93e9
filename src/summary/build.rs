//! Building a [`SummaryDoc`] from a ledger: the processes, groups, devices and totals of the
//! summary's scope, mapped from the read model (`crate::figures`).

use std::collections::HashMap;

use super::IdleHolderSummary;
use super::doc::*;
use super::holders::idle_holder_rows;
use super::{SCHEMA, SummaryOptions};
use crate::figures;
use crate::impact::ImpactParams;
use crate::ledger::{FoldedExited, Ledger, ProcEntry};
use crate::redact::Redactor;
use crate::sample::{DeviceKind, Provenance};
use crate::snapshot::rfc3339;

/// `20250101T120000Z` from ms since the epoch (file names).
pub fn compact_time(ms: i64) -> String {
    rfc3339(ms)
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(15)
        .collect::<String>()
        + "Z"
}

/// Sum starting from +0.0 (`Iterator::sum` of nothing is -0.0, which would print as "-0 J").
fn sum(it: impl Iterator<Item = f64>) -> f64 {
    it.fold(0.0, |a, b| a + b)
}

fn process_summary(ledger: &Ledger, impact: &ImpactParams, red: &Redactor, e: &ProcEntry) -> ProcessSummary {
    ProcessSummary {
        pid: e.key.pid,
        starttime: e.key.starttime,
        ppid: e.ppid,
        user: e.info.user.clone(),
        command: e.info.comm.clone(),
        cmdline: red.cmdline(&e.info.comm, &e.info.cmdline),
        state: figures::state(e).into(),
        energy_j: e.energy_j,
        energy_by_device_j: figures::by_device(ledger, &e.energy_by_dev),
        kwh: impact.kwh(e.energy_j),
        co2e_g: impact.co2e_g(e.energy_j),
        avg_power_w: e.avg_w(),
        peak_power_w: e.peak_w,
        observed_s: e.observed_s,
        first_seen: rfc3339(e.first_seen_ms),
        last_seen: rfc3339(e.last_seen_ms),
        gpu_mem_bytes: e.gpu_mem_bytes(),
        idle_wasted_j: e.idle().wasted_j,
        idle_wasted_by_device_j: e
            .idle()
            .idle_gpus()
            .map(|g| (g.device.clone(), g.idle.wasted_j))
            .collect(),
        tree: format!("{} {}", e.tree_root.0, e.tree_root.1),
        container: figures::Workload::of(e).describe(),
        folded_count: None,
        cost: impact.cost(e.energy_j),
    }
}

fn groups(procs: &[ProcessSummary], impact: &ImpactParams, max: usize) -> Vec<GroupSummary> {
    let mut out = Vec::new();
    type KeyFn = fn(&ProcessSummary) -> String;
    let keys: [(&str, KeyFn); 4] = [
        ("tree", |p| p.tree.clone()),
        ("user", |p| p.user.clone()),
        ("command", |p| p.command.clone()),
        ("container", |p| {
            p.container.clone().unwrap_or_else(|| "(host)".into())
        }),
    ];
    for (by, key) in keys {
        let mut map: HashMap<String, (u64, f64)> = HashMap::new();
        for p in procs {
            let slot = map.entry(key(p)).or_default();
            slot.0 += p.folded_count.unwrap_or(1);
            slot.1 += p.energy_j;
        }
        let mut rows: Vec<GroupSummary> = map
            .into_iter()
            .map(|(key, (processes, energy_j))| GroupSummary {
                by: by.into(),
                key,
                processes,
                energy_j,
                kwh: impact.kwh(energy_j),
                co2e_g: impact.co2e_g(energy_j),
            })
            .collect();
        rows.sort_by(|a, b| b.energy_j.total_cmp(&a.energy_j).then_with(|| a.key.cmp(&b.key)));
        rows.truncate(max.max(1));
        out.extend(rows);
    }
    out
}

fn method_notes(ledger: &Ledger, opts: &SummaryOptions, impact: &ImpactParams) -> Vec<String> {
    let mut m = Vec::new();
    for d in &ledger.devices {
        let how = match (d.kind, d.provenance) {
            (DeviceKind::Gpu, Provenance::Measured) => "NVML total-energy counter (measured)".to_string(),
            (DeviceKind::Gpu, _) => "NVML power samples, trapezoid-integrated (integrated)".to_string(),
            (_, Provenance::Measured) => "RAPL energy counter (measured)".to_string(),
            (_, Provenance::Integrated) => "integrated power readings (integrated)".to_string(),
            (_, Provenance::Estimated) => match &d.last.estimate {
                // The device name carries the label (what was assumed); say it when it does not.
                Some(e) if d.name.contains(&e.tdp_source) => {
                    format!("estimated, not measured: {}", e.formula())
                }
                Some(e) => format!("estimated, not measured: {} ({})", e.formula(), e.tdp_source),
                None => "estimated, not measured (TDP × load model)".to_string(),
            },
        };
        m.push(format!("{} ({}): {how}", d.id, d.name));
    }
    m.push(
        "CPU energy is split between processes by their share of busy CPU time in each interval: their \
         own (utime+stime) and that of the children they waited for (cutime+cstime, less what those \
         children had already been charged); CPU time is not proportional to power (frequency, vector \
         units, memory stalls)."
            .into(),
    );
    if ledger.devices.iter().any(|d| d.kind == DeviceKind::Gpu) {
        m.push(
            "GPU energy: the static part (idle power × time) is split by the processes' GPU memory, the \
             dynamic rest by SM utilisation; NVML samples only part of each second."
                .into(),
        );
    }
    m.push(if opts.charge_idle {
        "Idle CPU energy is charged to processes in proportion to their CPU share (a policy, not physics)."
            .into()
    } else {
        "Idle CPU energy stays in each device's idle row (a policy, not physics); 'unattributed' holds \
         busy time no visible process accounts for (interrupts, hidden processes, children reaped \
         without a wait, read skew)."
            .into()
    });
    if opts.members.is_some() {
        m.push(
            "Scope: the command's process tree (the command, every descendant seen in a sample, orphans \
             re-parented to kwtop included). Processes born and gone between two samples are counted in \
             the process that waited for them; the CPU time of orphans kwtop reaped goes to the command."
                .into(),
        );
    }
    if let Some(w) = opts.work.as_ref().filter(|w| w.counter.units() > 0) {
        m.push(format!(
            "Energy per unit of work: the command's whole tree energy (start-up and tear-down included) \
             ÷ the {} counted from {}; a cumulative count that went back counts on from the total.",
            crate::work::plural(&w.unit),
            w.source
        ));
    }
    if ledger.devices.iter().any(|d| d.kind == DeviceKind::Gpu) {
        let c = &ledger.idle_config;
        m.push(format!(
            "Idle GPU holders are judged per (process, GPU): at least {} MiB held on that GPU with an SM \
             share under {}% there for {} s or more; their waste is the energy charged on that GPU only.",
            c.min_memory_bytes >> 20,
            c.max_sm_pct,
            c.after_s
        ));
    }
    if ledger.devices.iter().any(|d| d.unavailable_s > 0.0) {
        m.push(
            "Average power leaves out the time a device's energy was not available (N/A): its energy ÷ \
             the seconds it was available."
                .into(),
        );
    }
    m.push(format!(
        "kWh and J are IT energy (what the devices measured; the rows add up to the totals). CO2e = IT \
         kWh × PUE {:.2} × grid {:.0} gCO2e/kWh ({}: {}); facility energy = IT kWh × PUE.",
        impact.pue, impact.grid.g_per_kwh, impact.grid.label, impact.grid.source
    ));
    m.push(format!(
        "Equivalents: phone charges and household-days of facility energy (IT × PUE), km by car of the \
         CO2e; phone charge {} kWh (US EPA), household {:.0} kWh/year, car {:.0} gCO2e/km (sources in \
         config.example.toml).",
        impact.phone_charge_kwh, impact.household_kwh_per_year, impact.car_g_per_km
    ));
    m
}

/// Build the summary of `ledger` in the scope and with the redaction policy of `opts`.
pub fn build(
    ledger: &Ledger,
    impact: &ImpactParams,
    host: &str,
    notices: &[String],
    opts: &SummaryOptions,
) -> SummaryDoc {
    let processes = process_rows(ledger, impact, opts);
    let scope = ScopeEnergy::of(ledger, opts);
    let idle_holders = idle_holder_rows(ledger, impact, opts);
    let wasted_j = sum(idle_holders.iter().map(|h| h.wasted_j));
    let devices = device_rows(ledger, impact, &scope.by_dev, &idle_holders);
    let started_ms = ledger.started_ms.unwrap_or(0);
    let ended_ms = ledger.last_ms.unwrap_or(started_ms);
    let mut totals = totals(ledger, impact, &scope, wasted_j);
    let work = opts
        .work
        .as_ref()
        .and_then(|w| w.summary(totals.energy_j, totals.co2e_g));
    if let (Some(cost), Some(w)) = (totals.cost.as_mut(), work.as_ref())
        && w.units > 0
    {
        cost.per_unit = Some(cost.amount / w.units as f64);
    }
    SummaryDoc {
        schema: SCHEMA.into(),
        kwtop_version: env!("CARGO_PKG_VERSION").into(),
        host: host.to_string(),
        started: rfc3339(started_ms),
        ended: rfc3339(ended_ms),
        started_ms,
        ended_ms,
        duration_s: ledger.session_s,
        intervals: ledger.intervals,
        scope: if opts.members.is_some() {
            "command"
        } else {
            "machine"
        }
        .into(),
        command: opts.command.clone(),
        cmdline_mode: opts.redactor.mode.as_str().into(),
        totals,
        machine: machine(ledger, impact),
        work,
        devices,
        groups: groups(&processes, impact, opts.max_groups),
        processes,
        idle_holders,
        method: method_notes(ledger, opts, impact),
        notices: notices.to_vec(),
    }
}

/// Whether `e` is in the summary's scope (the whole machine, or the command's tree).
fn in_scope(opts: &SummaryOptions, e: &ProcEntry) -> bool {
    opts.members.as_ref().is_none_or(|m| m.contains(&e.key))
}

/// Average power over the time a device's energy was available.
fn avg_w(j: f64, available_s: f64) -> f64 {
    if available_s > 0.0 { j / available_s } else { 0.0 }
}

/// The processes in scope that used energy or held GPU memory, the folded exited ones (machine
/// scope), most energy first.
fn process_rows(ledger: &Ledger, impact: &ImpactParams, opts: &SummaryOptions) -> Vec<ProcessSummary> {
    let red = &opts.redactor;
    let mut processes: Vec<ProcessSummary> = ledger
        .processes()
        .filter(|e| in_scope(opts, e))
        .filter(|e| e.energy_j > 0.0 || e.gpu_mem_bytes().is_some() || opts.members.is_some())
        .map(|e| process_summary(ledger, impact, red, e))
        .collect();
    if opts.members.is_none() {
        for (comm, f) in ledger.folded() {
            processes.push(folded_summary(ledger, impact, comm, f));
        }
    }
    processes.sort_by(|a, b| b.energy_j.total_cmp(&a.energy_j).then(a.pid.cmp(&b.pid)));
    processes
}

/// One row for the exited processes of one command folded together.
fn folded_summary(ledger: &Ledger, impact: &ImpactParams, comm: &str, f: &FoldedExited) -> ProcessSummary {
    ProcessSummary {
        pid: 0,
        starttime: 0,
        ppid: 0,
        user: String::new(),
        command: comm.to_string(),
        cmdline: String::new(),
        state: "exited".into(),
        energy_j: f.energy_j,
        energy_by_device_j: figures::by_device(ledger, &f.energy_by_dev),
        kwh: impact.kwh(f.energy_j),
        co2e_g: impact.co2e_g(f.energy_j),
        avg_power_w: 0.0,
        peak_power_w: 0.0,
        observed_s: 0.0,
        first_seen: String::new(),
        last_seen: String::new(),
        gpu_mem_bytes: None,
        idle_wasted_j: f.idle_wasted_j,
        idle_wasted_by_device_j: figures::by_device(ledger, &f.idle_wasted_by_dev)
            .into_iter()
            .filter(|(_, j)| *j > 0.0)
            .collect(),
        tree: "(exited, folded)".into(),
        container: None,
        folded_count: Some(f.count),
        cost: impact.cost(f.energy_j),
    }
}

/// The energy of the summary's scope: the whole machine's, or what the command's tree was charged.
struct ScopeEnergy {
    energy_j: f64,
    /// Per device, in the ledger's device order.
    by_dev: Vec<f64>,
}

impl ScopeEnergy {
    fn of(ledger: &Ledger, opts: &SummaryOptions) -> Self {
        match &opts.members {
            None => ScopeEnergy {
                energy_j: ledger.total_energy_j(),
                by_dev: ledger.devices.iter().map(|d| d.energy_j).collect(),
            },
            Some(_) => {
                let mut by = vec![0.0; ledger.devices.len()];
                for e in ledger.processes().filter(|e| in_scope(opts, e)) {
                    for (a, b) in by.iter_mut().zip(&e.energy_by_dev) {
                        *a += b;
                    }
                }
                ScopeEnergy {
                    energy_j: sum(by.iter().copied()),
                    by_dev: by,
                }
            }
        }
    }
}

fn device_rows(
    ledger: &Ledger,
    impact: &ImpactParams,
    scope_by_dev: &[f64],
    idle_holders: &[IdleHolderSummary],
) -> Vec<DeviceSummary> {
    let wasted_on = |id: &str| sum(idle_holders.iter().filter(|h| h.device == id).map(|h| h.wasted_j));
    ledger
        .devices
        .iter()
        .zip(scope_by_dev)
        .map(|(d, scope_j)| DeviceSummary {
            id: d.id.clone(),
            kind: d.kind.as_str().into(),
            name: d.name.clone(),
            vendor: d.last.vendor.clone(),
            source: d.last.source.clone(),
            energy_j: d.energy_j,
            idle_j: d.idle_j,
            unattributed_j: d.unattributed_j,
            scope_j: *scope_j,
            kwh: impact.kwh(d.energy_j),
            provenance: d.provenance.as_str().into(),
            avg_power_w: avg_w(d.energy_j, d.available_s),
            peak_power_w: d.peak_w,
            power_limit_w: d.last.power_limit_w,
            status: d.status.clone().unwrap_or_else(|| "ok".into()),
            unavailable_s: d.unavailable_s,
            idle_holder_wasted_j: (d.kind == DeviceKind::Gpu).then(|| wasted_on(&d.id)),
            estimate: (d.provenance == Provenance::Estimated)
                .then(|| d.last.estimate.as_ref().map(|e| e.tdp_source.clone()))
                .flatten(),
        })
        .collect()
}

/// The scope's totals with their impact.
fn totals(ledger: &Ledger, impact: &ImpactParams, scope: &ScopeEnergy, wasted_j: f64) -> TotalsOut {
    let energy_j = scope.energy_j;
    let avg_power_w = sum(ledger
        .devices
        .iter()
        .zip(&scope.by_dev)
        .map(|(d, j)| avg_w(*j, d.available_s)));
    let provenance = ledger
        .devices
        .iter()
        .zip(&scope.by_dev)
        .filter(|(d, j)| **j > 0.0 && d.energy_j > 0.0)
        .map(|(d, _)| d.provenance)
        .max()
        .unwrap_or_else(|| ledger.provenance());
    TotalsOut {
        energy_j,
        energy_by_device_j: figures::by_device(ledger, &scope.by_dev),
        kwh: impact.kwh(energy_j),
        facility_kwh: impact.facility_kwh(energy_j),
        co2e_g: impact.co2e_g(energy_j),
        avg_power_w,
        pue: impact.pue,
        grid: grid_out(&impact.grid),
        equivalents: impact.equivalents(energy_j),
        provenance: provenance.as_str().into(),
        idle_holder_wasted_j: wasted_j,
        idle_holder_wasted_kwh: impact.kwh(wasted_j),
        compare: impact
            .compare(energy_j)
            .into_iter()
            .map(|c| CompareOut {
                grid: grid_out(c.grid),
                co2e_g: c.co2e_g,
                delta_pct: c.delta_pct,
            })
            .collect(),
        cost: impact.price.as_ref().map(|p| CostOut {
            currency: p.currency.clone(),
            price_per_kwh: p.per_kwh,
            amount: impact.cost(energy_j).unwrap_or(0.0),
            per_unit: None,
        }),
    }
}

fn grid_out(g: &crate::impact::GridIntensity) -> GridOut {
    GridOut {
        g_per_kwh: g.g_per_kwh,
        label: g.label.clone(),
        source: g.source.clone(),
        year: g.year,
    }
}

/// The whole machine over the same time (for a command's summary, beside its own totals).
fn machine(ledger: &Ledger, impact: &ImpactParams) -> MachineOut {
    let machine_j = ledger.total_energy_j();
    MachineOut {
        energy_j: machine_j,
        kwh: impact.kwh(machine_j),
        co2e_g: impact.co2e_g(machine_j),
        idle_j: sum(ledger.devices.iter().map(|d| d.idle_j)),
        unattributed_j: sum(ledger.devices.iter().map(|d| d.unattributed_j)),
    }
}
