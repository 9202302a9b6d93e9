//! The `kwtop.snapshot/1` JSON contract (DESIGN §8) and the readable table, built from a ledger.
//!
//! Pure: host, time and interval are passed in. For every device id the document satisfies
//! `energy_j = Σ processes' energy_by_device_j[id] + idle_j[id] + unattributed_j[id]`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::figures;
use crate::impact::{Equivalents, ImpactParams, J_PER_KWH};
use crate::ledger::{Ledger, ProcEntry, short_gpu_list};
use crate::sample::DeviceKind;
use crate::sample::vendor_name;
use crate::units;

pub const SCHEMA: &str = "kwtop.snapshot/1";

#[derive(Debug, Clone, Serialize)]
pub struct SnapshotDoc {
    pub schema: &'static str,
    pub host: String,
    pub at: String,
    pub interval_s: f64,
    pub devices: Vec<DeviceOut>,
    pub processes: Vec<ProcessOut>,
    pub idle_j: BTreeMap<String, f64>,
    pub unattributed_j: BTreeMap<String, f64>,
    pub totals: Totals,
    /// One-time explanations (RAPL unreadable, no NVIDIA driver, hidden processes).
    pub notices: Vec<String>,
    /// How `cmdline` is shown: `full`, `redacted` or `name` (see [`redact`]).
    pub cmdline_mode: &'static str,
}

/// Show the processes' command lines through `red` (`[export] cmdline`, `--cmdline`) and record its
/// mode. [`build`] leaves them as the ledger holds them (`full`).
pub fn redact(doc: &mut SnapshotDoc, red: &crate::redact::Redactor) {
    for p in &mut doc.processes {
        if !p.cmdline.is_empty() {
            p.cmdline = red.cmdline(&p.command, &p.cmdline);
        }
    }
    doc.cmdline_mode = red.mode.as_str();
}

#[derive(Debug, Clone, Serialize)]
pub struct DeviceOut {
    pub id: String,
    pub kind: &'static str,
    pub name: String,
    /// "NVIDIA", "AMD", "Intel"; `null` when unknown.
    pub vendor: Option<String>,
    /// Where the energy comes from: "NVML", "hwmon energy", "hwmon power", "RAPL powercap",
    /// "estimate", "in CPU package" (an APU); `null` when unknown.
    pub source: Option<String>,
    pub power_w: Option<f64>,
    pub energy_j: f64,
    pub provenance: &'static str,
    /// `"ok"` when the energy was read, otherwise why it is unavailable.
    pub status: String,
    /// On a device that is up: what else went wrong or was assumed over the last interval (a failed
    /// process list or utilisation query, energy split by memory). Empty when nothing.
    pub notes: Vec<String>,
    pub power_limit_w: Option<f64>,
    pub util_pct: Option<f64>,
    pub mem_used_bytes: Option<u64>,
    pub mem_total_bytes: Option<u64>,
    pub temperature_c: Option<f64>,
    /// GPUs only: energy charged on this GPU to processes while flagged idle on it, whole session
    /// (exited and folded processes included), joules.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idle_holder_wasted_j: Option<f64>,
}

/// One GPU a process holds (or held), judged on its own.
#[derive(Debug, Clone, Serialize)]
pub struct ProcessGpuOut {
    pub device: String,
    /// Holds a context there now.
    pub holding: bool,
    pub gpu_util_pct: Option<f64>,
    pub gpu_mem_bytes: Option<u64>,
    /// Flagged as an idle holder on this GPU now.
    pub idle_holder: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idle_for_s: Option<f64>,
    /// Energy charged on this GPU while it was flagged idle there, joules.
    pub idle_wasted_j: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ProcessOut {
    pub pid: u32,
    pub starttime: u64,
    pub ppid: u32,
    pub user: String,
    pub command: String,
    pub cmdline: String,
    pub power_w: f64,
    pub avg_power_w: f64,
    pub energy_j: f64,
    pub energy_by_device_j: BTreeMap<String, f64>,
    /// SM share summed over the GPUs it holds, percent of one GPU (200 = two GPUs fully busy).
    pub gpu_util_pct: Option<f64>,
    /// GPU memory summed over the GPUs it holds, bytes.
    pub gpu_mem_bytes: Option<u64>,
    /// Per GPU it holds or held: share, memory and idle state there.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub gpus: Vec<ProcessGpuOut>,
    /// IT kWh × PUE × grid.
    pub co2e_g: f64,
    pub equivalents: Equivalents,
    pub state: &'static str,
    /// Longest current idle streak over the GPUs it is flagged on, seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idle_for_s: Option<f64>,
    /// The GPUs it is flagged as an idle holder on now (`state` is then `idle-holder`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub idle_gpus: Vec<String>,
    /// Energy charged on the GPUs where it was flagged idle, while flagged, whole session, joules.
    pub idle_wasted_j: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slurm_job: Option<String>,
    /// Exited processes folded together (pid 0) to bound memory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub folded_count: Option<u64>,
    /// MIG instances it runs in at the last sample (absent when it holds no MIG slice).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mig_instances: Vec<MigOut>,
}

/// A MIG slice a process runs in: NVML's GPU instance and compute instance on a device.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MigOut {
    /// Device id (`gpu0`).
    pub device: String,
    pub gpu_instance_id: u32,
    pub compute_instance_id: Option<u32>,
    /// As the table shows it: GPU index / GPU instance (`0/1`).
    pub label: String,
}

/// The MIG instances a running process holds at the last sample of each GPU.
pub fn mig_instances(e: &ProcEntry) -> Vec<MigOut> {
    figures::mig_slices(e)
        .map(|(device, m)| MigOut {
            device: device.to_string(),
            gpu_instance_id: m.gpu_instance_id,
            compute_instance_id: m.compute_instance_id,
            label: m.label(device.trim_start_matches("gpu")),
        })
        .collect()
}

#[derive(Debug, Clone, Serialize)]
pub struct Grid {
    pub g_per_kwh: f64,
    pub source: String,
    pub label: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Totals {
    /// IT energy: what the devices measured (Σ devices).
    pub energy_j: f64,
    pub power_w: f64,
    /// IT energy, kWh.
    pub kwh: f64,
    /// Facility energy: IT kWh × PUE.
    pub facility_kwh: f64,
    /// IT kWh × PUE × grid intensity.
    pub co2e_g: f64,
    pub pue: f64,
    pub grid: Grid,
    /// Phone charges and household-days of facility energy (IT × PUE); car km of the CO2e.
    pub equivalents: Equivalents,
    pub provenance: &'static str,
    pub idle_holders: usize,
    pub idle_holder_wasted_j: f64,
}

/// RFC 3339 (UTC) from ms since the epoch.
pub fn rfc3339(ms: i64) -> String {
    let nanos = i128::from(ms) * 1_000_000;
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".into())
}

fn process_out(ledger: &Ledger, impact: &ImpactParams, e: &ProcEntry) -> ProcessOut {
    let idle = e.idle();
    ProcessOut {
        pid: e.key.pid,
        starttime: e.key.starttime,
        ppid: e.ppid,
        user: e.info.user.clone(),
        command: e.info.comm.clone(),
        cmdline: e.info.cmdline.clone(),
        power_w: e.power_w,
        avg_power_w: e.avg_w(),
        energy_j: e.energy_j,
        energy_by_device_j: figures::by_device(ledger, &e.energy_by_dev),
        gpu_util_pct: e.gpu_util_pct(),
        gpu_mem_bytes: e.gpu_mem_bytes(),
        gpus: idle
            .gpus
            .iter()
            .map(|g| ProcessGpuOut {
                device: g.device.clone(),
                holding: g.holding,
                gpu_util_pct: g.sm_pct,
                gpu_mem_bytes: g.mem_bytes,
                idle_holder: g.idle.flagged,
                idle_for_s: g.idle.flagged.then_some(g.idle.streak_s),
                idle_wasted_j: g.idle.wasted_j,
            })
            .collect(),
        co2e_g: impact.co2e_g(e.energy_j),
        equivalents: impact.equivalents(e.energy_j),
        state: figures::state(e),
        idle_for_s: idle.flagged.then_some(idle.streak_s),
        idle_gpus: idle.flagged_gpus().map(|g| g.device.clone()).collect(),
        idle_wasted_j: idle.wasted_j,
        container: figures::Workload::of(e).id().map(str::to_string),
        slurm_job: e.info.cgroup.slurm_job.clone(),
        folded_count: None,
        mig_instances: mig_instances(e),
    }
}

/// Build the document. Processes with no energy and no GPU context are left out (they sum to 0).
pub fn build(
    ledger: &Ledger,
    impact: &ImpactParams,
    host: &str,
    interval_s: f64,
    notices: &[String],
) -> SnapshotDoc {
    let wasted_by_dev = ledger.idle_holder_wasted_by_dev();
    let devices = ledger
        .devices
        .iter()
        .zip(&wasted_by_dev)
        .map(|(d, wasted)| DeviceOut {
            id: d.id.clone(),
            kind: d.kind.as_str(),
            name: d.name.clone(),
            vendor: d.last.vendor.clone(),
            source: d.last.source.clone(),
            power_w: d.power_w,
            energy_j: d.energy_j,
            provenance: d.provenance.as_str(),
            status: d.status.clone().unwrap_or_else(|| "ok".into()),
            notes: d.notes.clone(),
            power_limit_w: d.last.power_limit_w,
            util_pct: d.last.util_pct,
            mem_used_bytes: d.last.mem_used_bytes,
            mem_total_bytes: d.last.mem_total_bytes,
            temperature_c: d.last.temperature_c,
            idle_holder_wasted_j: (d.kind == DeviceKind::Gpu).then_some(*wasted),
        })
        .collect();
    let mut processes: Vec<ProcessOut> = ledger
        .processes()
        .filter(|e| e.energy_j > 0.0 || e.gpu_mem_bytes().is_some())
        .map(|e| process_out(ledger, impact, e))
        .collect();
    for (comm, f) in ledger.folded() {
        processes.push(ProcessOut {
            pid: 0,
            starttime: 0,
            ppid: 0,
            user: String::new(),
            command: comm.clone(),
            cmdline: String::new(),
            power_w: 0.0,
            avg_power_w: 0.0,
            energy_j: f.energy_j,
            energy_by_device_j: figures::by_device(ledger, &f.energy_by_dev),
            gpu_util_pct: None,
            gpu_mem_bytes: None,
            gpus: Vec::new(),
            co2e_g: impact.co2e_g(f.energy_j),
            equivalents: impact.equivalents(f.energy_j),
            state: "exited",
            idle_for_s: None,
            idle_gpus: Vec::new(),
            idle_wasted_j: f.idle_wasted_j,
            container: None,
            slurm_job: None,
            folded_count: Some(f.count),
            mig_instances: Vec::new(),
        });
    }
    processes.sort_by(|a, b| b.energy_j.total_cmp(&a.energy_j).then(a.pid.cmp(&b.pid)));
    let energy_j = ledger.total_energy_j();
    SnapshotDoc {
        schema: SCHEMA,
        host: host.to_string(),
        at: rfc3339(ledger.last_ms.unwrap_or(0)),
        interval_s,
        devices,
        processes,
        idle_j: ledger.devices.iter().map(|d| (d.id.clone(), d.idle_j)).collect(),
        unattributed_j: ledger
            .devices
            .iter()
            .map(|d| (d.id.clone(), d.unattributed_j))
            .collect(),
        totals: Totals {
            energy_j,
            power_w: ledger.total_power_w(),
            kwh: impact.kwh(energy_j),
            facility_kwh: impact.facility_kwh(energy_j),
            co2e_g: impact.co2e_g(energy_j),
            pue: impact.pue,
            grid: Grid {
                g_per_kwh: impact.grid.g_per_kwh,
                source: impact.grid.source.clone(),
                label: impact.grid.label.clone(),
            },
            equivalents: impact.equivalents(energy_j),
            provenance: ledger.provenance().as_str(),
            idle_holders: ledger.idle_holders().count(),
            idle_holder_wasted_j: ledger.idle_holder_wasted_j(),
        },
        notices: notices.to_vec(),
        cmdline_mode: crate::redact::CmdlineMode::Full.as_str(),
    }
}

fn opt(v: Option<f64>, f: fn(f64) -> String) -> String {
    v.map_or_else(|| "N/A".into(), f)
}

/// The human-readable table for `kwtop snapshot` without `--json`.
pub fn table(doc: &SnapshotDoc, top: usize) -> String {
    let mut s = String::new();
    let t = &doc.totals;
    // Energy is IT energy (the rows add up to it); CO2e includes PUE, facility energy is shown
    // beside it when PUE is not 1.
    let facility = if (t.pue - 1.0).abs() > 1e-9 {
        format!(
            " · facility {} at PUE {:.2}",
            units::energy(t.facility_kwh * J_PER_KWH),
            t.pue
        )
    } else {
        String::new()
    };
    let _ = writeln!(
        s,
        "kwtop snapshot · {} · {} · {:.2} s · {} · {}{facility} · {} CO2e · grid {} {:.0} g/kWh · PUE {:.2}",
        doc.host,
        doc.at,
        doc.interval_s,
        units::power(t.power_w),
        units::energy(t.energy_j),
        units::mass_g(t.co2e_g),
        t.grid.label,
        t.grid.g_per_kwh,
        t.pue
    );
    let _ = writeln!(
        s,
        "\n{:<7} {:<34} {:>9} {:>10} {:>8}  {:<11} {:<14} STATUS",
        "DEVICE", "NAME", "POWER", "ENERGY", "UTIL", "PROVENANCE", "SOURCE"
    );
    for d in &doc.devices {
        let mark = if d.provenance == "estimated" { "~" } else { "" };
        let _ = writeln!(
            s,
            "{:<7} {:<34} {:>9} {:>10} {:>8}  {:<11} {:<14} {}",
            d.id,
            truncate(&vendor_name(d.vendor.as_deref(), &d.name), 34),
            format!("{mark}{}", opt(d.power_w, units::power)),
            format!("{mark}{}", units::energy(d.energy_j)),
            opt(d.util_pct, |u| format!("{u:.0}%")),
            d.provenance,
            d.source.as_deref().unwrap_or("-"),
            d.status
        );
    }
    let _ = writeln!(
        s,
        "\n{:>8} {:<10} {:>9} {:>10} {:>9} {:>6} {:<11} COMMAND",
        "PID", "USER", "POWER", "ENERGY", "CO2e", "GPU%", "STATE"
    );
    for p in doc.processes.iter().take(top) {
        let _ = writeln!(
            s,
            "{:>8} {:<10} {:>9} {:>10} {:>9} {:>6} {:<11} {}",
            p.pid,
            truncate(&p.user, 10),
            units::power(p.power_w),
            units::energy(p.energy_j),
            units::mass_g(p.co2e_g),
            opt(p.gpu_util_pct, |u| format!("{u:.0}")),
            if p.idle_gpus.is_empty() {
                p.state.to_string()
            } else {
                format!("idle {}", short_gpu_list(p.idle_gpus.iter().map(String::as_str)))
            },
            truncate(
                if p.cmdline.is_empty() {
                    &p.command
                } else {
                    &p.cmdline
                },
                60
            )
        );
    }
    for d in &doc.devices {
        let idle = doc.idle_j.get(&d.id).copied().unwrap_or(0.0);
        let un = doc.unattributed_j.get(&d.id).copied().unwrap_or(0.0);
        let _ = writeln!(
            s,
            "{:>8} {:<10} {}: idle {} · unattributed {}",
            "·",
            "",
            d.id,
            units::energy(idle),
            units::energy(un)
        );
    }
    if doc.devices.iter().any(|d| d.provenance == "estimated") {
        let _ = writeln!(s, "\n~ estimated: a model (TDP × load), not a sensor reading");
    }
    for d in &doc.devices {
        for n in &d.notes {
            let _ = writeln!(s, "note: {}: {n}", d.id);
        }
    }
    for n in &doc.notices {
        let _ = writeln!(s, "note: {n}");
    }
    s
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}
