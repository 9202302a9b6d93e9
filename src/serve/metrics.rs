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

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use crate::engine::Engine;
use crate::impact::ImpactParams;
use crate::ledger::ProcEntry;
use crate::sample::{DeviceKind, ProcKey};
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
        for g in e.idle.flagged_gpus() {
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

/// The collector that encodes one view (`prometheus-client` calls it on encode).
#[derive(Debug)]
struct ViewCollector(std::sync::Arc<MetricsView>);

pub(super) type Labels<'a> = Vec<(&'static str, &'a str)>;

fn proc_label_set<'a>(l: &'a ProcLabels, device: &'a str) -> Labels<'a> {
    vec![
        ("pid", l.pid.as_str()),
        ("command", l.command.as_str()),
        ("user", l.user.as_str()),
        ("device", device),
        ("container", l.container.as_str()),
        ("pod", l.pod.as_str()),
        ("slurm_job", l.slurm_job.as_str()),
    ]
}

/// One metric family: skipped entirely when it has no samples.
pub(super) fn family<'a, M: EncodeMetric>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: MetricType,
    rows: impl IntoIterator<Item = (Labels<'a>, M)>,
) -> Result<(), std::fmt::Error> {
    let mut rows = rows.into_iter().peekable();
    if rows.peek().is_none() {
        return Ok(());
    }
    let mut fam = enc.encode_descriptor(name, help, None, kind)?;
    for (labels, metric) in rows {
        metric.encode(fam.encode_family(&labels)?)?;
    }
    Ok(())
}

pub(super) fn gauge<'a>(labels: Labels<'a>, v: f64) -> (Labels<'a>, ConstGauge<f64>) {
    (labels, ConstGauge::new(v))
}

pub(super) fn counter<'a>(labels: Labels<'a>, v: f64) -> (Labels<'a>, ConstCounter<f64>) {
    (labels, ConstCounter::new(v.max(0.0)))
}

fn dev_label_set(d: &DeviceRow) -> Labels<'_> {
    vec![
        ("device", d.id.as_str()),
        ("kind", d.kind),
        ("name", d.name.as_str()),
    ]
}

impl Collector for ViewCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let v = &*self.0;
        device_families(&mut enc, v)?;
        process_families(&mut enc, v)?;
        holder_families(&mut enc, v)?;
        session_families(&mut enc, v)?;
        super::work::families(&mut enc, v.work.as_ref())
    }
}

/// Per device: power, energy, limit, up, info, idle and unattributed energy.
fn device_families(enc: &mut DescriptorEncoder, v: &MetricsView) -> Result<(), std::fmt::Error> {
    let dev_labels = dev_label_set;
    let g = MetricType::Gauge;
    let c = MetricType::Counter;
    family(
        enc,
        "device_power_watts",
        "Device power, average over the last sampling interval, watts",
        g,
        v.devices.iter().filter_map(|d| {
            let mut l = dev_labels(d);
            l.push(("provenance", d.provenance));
            d.power_w.map(|w| gauge(l, w))
        }),
    )?;
    family(
        enc,
        "device_energy_joules",
        "Device energy since kwtop started, joules (IT energy as measured; facility energy is this x kwtop_pue)",
        c,
        v.devices.iter().map(|d| counter(dev_labels(d), d.energy_j)),
    )?;
    family(
        enc,
        "device_power_limit_watts",
        "Enforced device power limit, watts",
        g,
        v.devices
            .iter()
            .filter_map(|d| d.power_limit_w.map(|w| gauge(dev_labels(d), w))),
    )?;
    family(
        enc,
        "device_up",
        "1 when the device's energy was read in the last interval, 0 when it was not available",
        g,
        v.devices
            .iter()
            .map(|d| gauge(dev_labels(d), if d.up { 1.0 } else { 0.0 })),
    )?;
    family(
        enc,
        "device_info",
        "1 per device, labelled with its vendor and where its energy comes from (one series per device)",
        g,
        v.devices.iter().map(|d| {
            let mut l = dev_labels(d);
            l.push(("vendor", d.vendor.as_str()));
            l.push(("source", d.source.as_str()));
            gauge(l, 1.0)
        }),
    )?;
    family(
        enc,
        "idle_energy_joules",
        "Device energy spent with no process to charge it to (the idle row), joules",
        c,
        v.devices
            .iter()
            .map(|d| counter(vec![("device", d.id.as_str())], d.idle_j)),
    )?;
    family(
        enc,
        "unattributed_energy_joules",
        "Device energy not attributed to a visible process (exited, interrupts, read skew; on a GPU whose \
         process list could not be read, its static part too), joules",
        c,
        v.devices
            .iter()
            .map(|d| counter(vec![("device", d.id.as_str())], d.unattributed_j)),
    )?;
    Ok(())
}

/// Per process (the top N and `other`) on each device: power and energy.
fn process_families(enc: &mut DescriptorEncoder, v: &MetricsView) -> Result<(), std::fmt::Error> {
    let g = MetricType::Gauge;
    let c = MetricType::Counter;
    let device_id = |i: usize| v.devices.get(i).map_or("", |d| d.id.as_str());
    let rows = || {
        v.processes.iter().filter_map(|r| {
            v.labels
                .get(r.labels)
                .map(|l| (proc_label_set(l, device_id(r.device)), r))
        })
    };
    family(
        enc,
        "process_power_watts",
        "Power attributed to a process on a device over the last interval, watts (pid=\"other\": the processes outside the top N)",
        g,
        rows().map(|(l, r)| gauge(l, r.power_w)),
    )?;
    family(
        enc,
        "process_energy_joules",
        "Energy attributed to a process on a device while it had its own series, joules (pid=\"other\": everything else)",
        c,
        rows().map(|(l, r)| counter(l, r.energy_j)),
    )?;
    Ok(())
}

/// Idle GPU holders: the flag, how long, and the energy wasted per GPU.
fn holder_families(enc: &mut DescriptorEncoder, v: &MetricsView) -> Result<(), std::fmt::Error> {
    let g = MetricType::Gauge;
    let c = MetricType::Counter;
    family(
        enc,
        "idle_holder",
        "1 for a process holding memory on this GPU (device) while its SM share there stays under the idle threshold",
        g,
        v.holders.iter().map(|h| {
            let l = &h.labels;
            gauge(
                vec![
                    ("pid", l.pid.as_str()),
                    ("command", l.command.as_str()),
                    ("user", l.user.as_str()),
                    ("device", h.device.as_str()),
                ],
                1.0,
            )
        }),
    )?;
    family(
        enc,
        "idle_holder_seconds",
        "How long a flagged idle holder has been idle on this GPU (device), seconds",
        g,
        v.holders.iter().map(|h| {
            let l = &h.labels;
            gauge(
                vec![
                    ("pid", l.pid.as_str()),
                    ("command", l.command.as_str()),
                    ("device", h.device.as_str()),
                ],
                h.idle_s,
            )
        }),
    )?;
    family(
        enc,
        "idle_holder_wasted_joules",
        "Energy charged on this GPU (device) to processes while they were flagged idle holders on it, exited ones included, joules",
        c,
        v.devices
            .iter()
            .zip(&v.holder_wasted_j)
            .filter(|(d, _)| d.kind == DeviceKind::Gpu.as_str())
            .map(|(d, j)| counter(vec![("device", d.id.as_str())], *j)),
    )?;
    Ok(())
}

/// Whole-session figures: CO2e, grid intensity, PUE, session length, running processes.
fn session_families(enc: &mut DescriptorEncoder, v: &MetricsView) -> Result<(), std::fmt::Error> {
    let g = MetricType::Gauge;
    let c = MetricType::Counter;
    family(
        enc,
        "co2e_grams",
        "CO2-equivalent of the energy measured since kwtop started (IT energy x PUE x grid intensity), grams",
        c,
        [counter(Vec::new(), v.co2e_g)],
    )?;
    family(
        enc,
        "grid_intensity_grams_per_kwh",
        "Grid carbon intensity used for CO2e, gCO2e per kWh",
        g,
        [gauge(
            vec![
                ("source", v.grid_source.as_str()),
                ("label", v.grid_label.as_str()),
            ],
            v.grid_g_per_kwh,
        )],
    )?;
    family(
        enc,
        "pue",
        "Power usage effectiveness applied to CO2e (facility energy / IT energy)",
        g,
        [gauge(Vec::new(), v.pue)],
    )?;
    if let Some((currency, per_kwh, cost)) = &v.price {
        family(
            enc,
            "electricity_price_per_kwh",
            "Price of a facility kWh ([impact] price_per_kwh), in the currency of the label",
            g,
            [gauge(vec![("currency", currency.as_str())], *per_kwh)],
        )?;
        family(
            enc,
            "cost",
            "What the energy measured since kwtop started cost (IT energy x PUE x price), in the currency of the label",
            c,
            [counter(vec![("currency", currency.as_str())], *cost)],
        )?;
    }
    family(
        enc,
        "session_seconds",
        "Seconds of measurement accounted since kwtop started",
        c,
        [counter(Vec::new(), v.session_s)],
    )?;
    family(
        enc,
        "processes_running",
        "Running processes kwtop accounts (all of them, not only the exported top N)",
        g,
        [gauge(Vec::new(), v.running_processes as f64)],
    )?;
    Ok(())
}

/// Append the view's exposition (Prometheus text format 0.0.4) to `out`.
pub fn encode(out: &mut String, view: std::sync::Arc<MetricsView>) -> Result<(), std::fmt::Error> {
    let mut registry = Registry::with_prefix("kwtop");
    registry.register_collector(Box::new(ViewCollector(view)));
    prometheus_client::encoding::prometheus_text::encode(out, &registry)
}

/// Append the `kwtop_scrape_duration_seconds` gauge.
pub fn encode_scrape_duration(out: &mut String, seconds: f64) -> Result<(), std::fmt::Error> {
    let mut registry = Registry::with_prefix("kwtop");
    registry.register(
        "scrape_duration_seconds",
        "Time kwtop took to produce the previous part of this response, seconds",
        ConstGauge::new(seconds),
    );
    prometheus_client::encoding::prometheus_text::encode(out, &registry)
}
