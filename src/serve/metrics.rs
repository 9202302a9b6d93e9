//! What `/metrics` says: [`Exporter`] turns the ledger into a plain-data [`MetricsView`] once per
//! tick, and [`encode`] writes a view in the Prometheus text format (0.0.4) with the
//! `prometheus-client` crate (no hand-written exposition).
//!
//! Counters stay monotonic for the life of the kwtop process although only the top N running
//! processes get their own series: every joule a process gains in an interval goes into exactly
//! one series, its own while it is in the top N, else its device's `pid="other"` series.
//! A process series therefore counts the energy gained while shown (equal to its session energy
//! when it was always shown, the usual case); it never jumps when a process re-enters the top N,
//! and `other` only ever adds. Energy of processes that exited is added to `other` only for the
//! part that no series had counted. So over any time range, per device,
//! `Σ increase(process series) + increase(idle) + increase(unattributed) = increase(device)`.
//!
//! Pure: no I/O, no clock (the scrape duration is measured by the caller).

use std::collections::HashMap;

use crate::engine::Engine;
use crate::impact::ImpactParams;
use crate::ledger::ProcEntry;
use crate::sample::ProcKey;
use crate::sanitize::sanitize_str;

/// Longest label value, in chars (command names, users, cgroup keys).
pub const MAX_LABEL_CHARS: usize = 128;

/// The `pid` label of the series that adds up the processes outside the top N.
pub const OTHER_PID: &str = "other";

/// One device's row.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceRow {
    pub id: String,
    pub kind: &'static str,
    pub name: String,
    /// "NVIDIA", "AMD", "Intel"; "" when unknown.
    pub vendor: String,
    /// "NVML", "hwmon energy", "hwmon power", "RAPL powercap", "estimate", …; "" when unknown.
    pub source: String,
    pub provenance: &'static str,
    /// Average over the last interval; `None` when unavailable (the gauge is then left out).
    pub power_w: Option<f64>,
    pub power_limit_w: Option<f64>,
    pub energy_j: f64,
    pub idle_j: f64,
    pub unattributed_j: f64,
    /// The last interval had energy (a failed secondary query leaves it up).
    pub up: bool,
}

/// Labels of one exported process.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ProcLabels {
    pub pid: String,
    pub command: String,
    pub user: String,
    pub container: String,
    pub pod: String,
    pub slurm_job: String,
}

/// One process (or the `other` aggregate) on one device.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcRow {
    /// Index into [`MetricsView::processes`]'s label table.
    pub labels: usize,
    /// Index into [`MetricsView::devices`].
    pub device: usize,
    /// Joules counted in this series (monotonic).
    pub energy_j: f64,
    /// Average over the last interval, watts.
    pub power_w: f64,
}

/// A process flagged as an idle holder on one GPU (one row per GPU it is flagged on).
#[derive(Debug, Clone, PartialEq)]
pub struct HolderRow {
    pub labels: ProcLabels,
    /// Id of the GPU it holds idle.
    pub device: String,
    /// How long it has been idle on that GPU, seconds.
    pub idle_s: f64,
}

/// Everything one scrape encodes; built on the sampling thread, read by the HTTP threads.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MetricsView {
    pub devices: Vec<DeviceRow>,
    /// Label sets of the exported processes; `other` is the last entry when present.
    pub labels: Vec<ProcLabels>,
    pub processes: Vec<ProcRow>,
    pub holders: Vec<HolderRow>,
    /// Per device (indexed like `devices`): energy charged there to processes while flagged idle
    /// there, joules (exported for GPUs).
    pub holder_wasted_j: Vec<f64>,
    /// IT energy × PUE × grid intensity, grams.
    pub co2e_g: f64,
    pub grid_g_per_kwh: f64,
    pub grid_label: String,
    pub grid_source: String,
    pub pue: f64,
    /// `[impact] price_per_kwh`: (currency, price per facility kWh, cost of the energy so far).
    pub price: Option<(String, f64, f64)>,
    pub session_s: f64,
    pub running_processes: usize,
    /// Energy per unit of work, when a work meter runs (`kwtop_work_*`).
    pub work: Option<crate::work::live::WorkFigures>,
}

#[derive(Debug, Clone)]
struct Track {
    /// The ledger's joules per device at the last update.
    seen: Vec<f64>,
    /// Joules counted in this process's own series.
    exported: Vec<f64>,
    power_w: Vec<f64>,
    mark: u64,
}

/// Keeps the series monotonic across top-N changes; one per endpoint, fed after every tick.
#[derive(Debug, Clone)]
pub struct Exporter {
    top_n: usize,
    tracks: HashMap<ProcKey, Track>,
    other_j: Vec<f64>,
    other_w: Vec<f64>,
    /// Device energy not held by running processes, idle or unattributed, at the last update.
    residual_seen: Vec<f64>,
    /// The ledger's idle-holder waste per device, never decreasing (float noise of a re-ordered
    /// sum must not look like a counter reset).
    wasted_j: Vec<f64>,
    last_session_s: Option<f64>,
    generation: u64,
}

fn label(s: &str) -> String {
    sanitize_str(s, MAX_LABEL_CHARS)
}

fn proc_labels(e: &ProcEntry) -> ProcLabels {
    let cg = &e.info.cgroup;
    ProcLabels {
        pid: e.key.pid.to_string(),
        command: label(&e.info.comm),
        user: label(&e.info.user),
        container: label(cg.container.as_deref().unwrap_or("")),
        pod: label(cg.pod.as_deref().unwrap_or("")),
        slurm_job: label(cg.slurm_job.as_deref().unwrap_or("")),
    }
}

fn at(v: &[f64], i: usize) -> f64 {
    v.get(i).copied().unwrap_or(0.0)
}

impl Exporter {
    /// `top_n`: processes with their own series (at least 1).
    pub fn new(top_n: usize) -> Self {
        Exporter {
            top_n: top_n.max(1),
            tracks: HashMap::new(),
            other_j: Vec::new(),
            other_w: Vec::new(),
            residual_seen: Vec::new(),
            wasted_j: Vec::new(),
            last_session_s: None,
            generation: 0,
        }
    }

    /// Account the ledger's progress since the last call and return what to expose.
    pub fn update(&mut self, engine: &Engine, impact: &ImpactParams) -> MetricsView {
        let ledger = &engine.ledger;
        let n = ledger.devices.len();
        for v in [
            &mut self.other_j,
            &mut self.other_w,
            &mut self.residual_seen,
            &mut self.wasted_j,
        ] {
            v.resize(n, 0.0);
        }
        // Exited and folded processes included: the ledger's waste only ever grows.
        for (w, now) in self.wasted_j.iter_mut().zip(ledger.idle_holder_wasted_by_dev()) {
            *w = w.max(now);
        }
        let dt = ledger.session_s - self.last_session_s.unwrap_or(ledger.session_s);
        self.last_session_s = Some(ledger.session_s);
        self.generation += 1;
        let generation = self.generation;

        let mut running: Vec<&ProcEntry> = ledger.running().collect();
        running.sort_by(|a, b| b.energy_j.total_cmp(&a.energy_j).then(a.key.pid.cmp(&b.key.pid)));

        // Energy not held by running processes: exited and folded ones (grows when one exits).
        let mut residual: Vec<f64> = ledger
            .devices
            .iter()
            .map(|d| d.energy_j - d.idle_j - d.unattributed_j)
            .collect();
        let mut other_delta = vec![0.0; n];
        for (rank, e) in running.iter().enumerate() {
            let t = self.tracks.entry(e.key).or_insert_with(|| Track {
                seen: Vec::new(),
                exported: Vec::new(),
                power_w: Vec::new(),
                mark: 0,
            });
            for v in [&mut t.seen, &mut t.exported, &mut t.power_w] {
                v.resize(n, 0.0);
            }
            t.mark = generation;
            let shown = rank < self.top_n;
            for (d, r) in residual.iter_mut().enumerate() {
                let now = at(&e.energy_by_dev, d);
                *r -= now;
                let delta = (now - t.seen[d]).max(0.0);
                t.seen[d] = t.seen[d].max(now);
                if shown {
                    t.exported[d] += delta;
                    if dt > 0.0 {
                        t.power_w[d] = delta / dt;
                    }
                } else {
                    other_delta[d] += delta;
                }
            }
        }
        // Processes that stopped running: the part of their energy no series counted goes to other.
        let mut left_seen = vec![0.0; n];
        self.tracks.retain(|_, t| {
            if t.mark == generation {
                return true;
            }
            for (d, s) in left_seen.iter_mut().enumerate() {
                *s += at(&t.seen, d);
            }
            false
        });
        for d in 0..n {
            let grew = residual[d] - self.residual_seen[d];
            // Float noise of the subtraction is below 1e-9 of the device's energy: not energy.
            let exited = grew - left_seen[d];
            if exited > 1e-9 * ledger.devices[d].energy_j.max(1.0) {
                other_delta[d] += exited;
            }
            self.residual_seen[d] = residual[d];
            self.other_j[d] += other_delta[d];
            if dt > 0.0 {
                self.other_w[d] = other_delta[d] / dt;
            }
        }
        self.view(engine, impact, &running)
    }

    fn view(&self, engine: &Engine, impact: &ImpactParams, running: &[&ProcEntry]) -> MetricsView {
        let ledger = &engine.ledger;
        let devices: Vec<DeviceRow> = ledger
            .devices
            .iter()
            .map(|d| DeviceRow {
                id: label(&d.id),
                kind: d.kind.as_str(),
                name: label(&d.name),
                vendor: label(d.last.vendor.as_deref().unwrap_or("")),
                source: label(d.last.source.as_deref().unwrap_or("")),
                provenance: d.provenance.as_str(),
                power_w: d.power_w,
                power_limit_w: d.last.power_limit_w,
                energy_j: d.energy_j,
                idle_j: d.idle_j,
                unattributed_j: d.unattributed_j,
                up: d.status.is_none() && d.power_w.is_some(),
            })
            .collect();
        let mut labels = Vec::new();
        let mut processes = Vec::new();
        for e in running.iter().take(self.top_n) {
            let Some(t) = self.tracks.get(&e.key) else {
                continue;
            };
            let li = labels.len();
            let mut any = false;
            for d in 0..devices.len() {
                let (j, w) = (at(&t.exported, d), at(&t.power_w, d));
                if j > 0.0 || w > 0.0 {
                    any = true;
                    processes.push(ProcRow {
                        labels: li,
                        device: d,
                        energy_j: j,
                        power_w: w,
                    });
                }
            }
            if any {
                labels.push(proc_labels(e));
            }
        }
        let li = labels.len();
        labels.push(ProcLabels {
            pid: OTHER_PID.into(),
            command: OTHER_PID.into(),
            ..ProcLabels::default()
        });
        for d in 0..devices.len() {
            processes.push(ProcRow {
                labels: li,
                device: d,
                energy_j: at(&self.other_j, d),
                power_w: at(&self.other_w, d),
            });
        }
        MetricsView {
            holders: holders(engine),
            holder_wasted_j: self.wasted_j.clone(),
            co2e_g: impact.co2e_g(ledger.total_energy_j()),
            grid_g_per_kwh: impact.grid.g_per_kwh,
            grid_label: label(&impact.grid.label),
            grid_source: label(&impact.grid.source),
            pue: impact.pue,
            price: impact.price.as_ref().map(|p| {
                let cost = impact.cost(ledger.total_energy_j()).unwrap_or(0.0);
                (label(&p.currency), p.per_kwh, cost)
            }),
            session_s: ledger.session_s,
            running_processes: running.len(),
            work: None,
            devices,
            labels,
            processes,
        }
    }
}

/// Flagged idle holders, one row per (process, GPU) it is flagged idle on.
fn holders(engine: &Engine) -> Vec<HolderRow> {
    let mut out = Vec::new();
    for e in engine.ledger.idle_holders() {
        let labels = proc_labels(e);
        for g in e.idle().flagged_gpus() {
            out.push(HolderRow {
                labels: labels.clone(),
                device: label(&g.device),
                idle_s: g.idle.streak_s,
            });
        }
    }
    out.sort_by(|a, b| (&a.labels.pid, &a.device).cmp(&(&b.labels.pid, &b.device)));
    out
}

mod encode;

pub use encode::{encode, encode_scrape_duration};
