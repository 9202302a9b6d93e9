//! The session ledger: cumulative joules per device and per process, built from attributed intervals.
//!
//! Pure state over plain data (DESIGN §5): exited processes keep their energy, a reused pid is a new
//! entry (identity is `(pid, starttime)`), idle and unattributed energy have their own per-device
//! totals, so `device energy = Σ processes + idle + unattributed` holds for the whole session.
//! Must not read clocks, files or sensors.

mod groups;
mod idle;

use std::collections::HashMap;
use std::sync::Arc;

pub use groups::{GroupBy, GroupRow};
pub use idle::{GpuHold, GpuUse, IdleHolder, IdleHolderConfig, IdleTrack, short_gpu_list};

use crate::attribution::{DeviceEnergy, Interval};
use crate::fasthash::FastMap;
use crate::sample::{DeviceKind, DeviceReading, ProcInfo, ProcKey, Provenance, Sample};

/// Session totals of one device.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceTotals {
    pub id: String,
    pub kind: DeviceKind,
    pub name: String,
    pub energy_j: f64,
    pub idle_j: f64,
    pub unattributed_j: f64,
    /// The least trustworthy provenance that contributed energy so far.
    pub provenance: Provenance,
    /// Average power over the last interval, `None` when it was not available.
    pub power_w: Option<f64>,
    pub peak_w: f64,
    /// Why the last interval had no energy; `None` = ok.
    pub status: Option<String>,
    /// Notes on the last interval of a device whose energy was read (a failed secondary query,
    /// energy left unattributed or split by memory, and why).
    pub notes: Vec<String>,
    /// Seconds of the session for which this device's energy was not available.
    pub unavailable_s: f64,
    /// Seconds of the session for which this device's energy was available (its average power is
    /// `energy_j / available_s`, never over the session's length).
    pub available_s: f64,
    /// The latest raw reading (limits, utilisation, memory, temperature).
    pub last: DeviceReading,
    has_energy: bool,
}

/// Whether a process is still alive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcState {
    Running,
    Exited,
}

/// Everything the session knows about one process.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcEntry {
    pub key: ProcKey,
    pub ppid: u32,
    pub info: Arc<ProcInfo>,
    /// Root of its process tree (e.g. torchrun for its workers): pid and comm.
    pub tree_root: (u32, String),
    /// Joules per device, indexed like [`Ledger::devices`].
    pub energy_by_dev: Vec<f64>,
    pub energy_j: f64,
    /// Average power over the last interval (0 once exited).
    pub power_w: f64,
    pub peak_w: f64,
    pub first_seen_ms: i64,
    pub last_seen_ms: i64,
    /// Seconds this process has been observed alive in the session.
    pub observed_s: f64,
    /// Of `observed_s`, the seconds each device's energy was not available (indexed like
    /// [`Ledger::devices`]; empty while every device was available).
    pub unavailable_by_dev: Vec<f64>,
    pub state: ProcState,
    /// What it did on GPUs; `None` until it first holds one (most processes never do: boxed, so
    /// they do not each carry its 80 bytes, issue 12).
    gpu: Option<Box<GpuSide>>,
    seen_gen: u64,
    interval_j: f64,
}

/// A process's GPU side: [`ProcEntry::gpu_util_pct`], [`ProcEntry::gpu_mem_bytes`],
/// [`ProcEntry::idle`].
#[derive(Debug, Clone, PartialEq, Default)]
struct GpuSide {
    util_pct: Option<f64>,
    mem_bytes: Option<u64>,
    idle: IdleHolder,
}

/// The idle-holder state of a process that never held a GPU.
static NO_GPU: IdleHolder = IdleHolder::NONE;

impl ProcEntry {
    /// SM share summed over the GPUs it holds at the last tick, percent of one GPU (like `top`'s
    /// CPU %: 200 = two GPUs fully busy); `None` = holds no GPU, or a share is unknown.
    /// Per GPU: [`IdleHolder::gpus`].
    pub fn gpu_util_pct(&self) -> Option<f64> {
        self.gpu.as_ref().and_then(|g| g.util_pct)
    }

    /// GPU memory summed over the GPUs it holds at the last tick, bytes; `None` = holds no GPU.
    pub fn gpu_mem_bytes(&self) -> Option<u64> {
        self.gpu.as_ref().and_then(|g| g.mem_bytes)
    }

    /// Idle-holder state, judged per GPU (with each GPU's memory and SM share).
    pub fn idle(&self) -> &IdleHolder {
        self.gpu.as_ref().map_or(&NO_GPU, |g| &g.idle)
    }

    /// Average power over the time it was observed: per device, its energy there over the time
    /// that device's energy was available while the process was observed, summed over devices.
    pub fn avg_w(&self) -> f64 {
        if self.observed_s <= 0.0 {
            return self.power_w;
        }
        if self.unavailable_by_dev.is_empty() {
            return self.energy_j / self.observed_s;
        }
        self.energy_by_dev
            .iter()
            .enumerate()
            .map(|(i, j)| {
                let t = self.observed_s - self.unavailable_by_dev.get(i).copied().unwrap_or(0.0);
                if t > 0.0 { j / t } else { 0.0 }
            })
            .fold(0.0, |a, b| a + b)
    }
}

/// Energy of exited processes folded together to bound memory, per command name.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FoldedExited {
    pub count: u64,
    pub energy_by_dev: Vec<f64>,
    pub energy_j: f64,
    /// GPU energy these processes cost while flagged as idle holders, joules.
    pub idle_wasted_j: f64,
    /// The same per device, indexed like [`Ledger::devices`].
    pub idle_wasted_by_dev: Vec<f64>,
}

/// Cumulative session state.
#[derive(Debug, Clone)]
pub struct Ledger {
    pub devices: Vec<DeviceTotals>,
    running: FastMap<ProcKey, ProcEntry>,
    exited: Vec<ProcEntry>,
    folded: HashMap<String, FoldedExited>,
    /// Exited processes kept individually before the smallest are folded per command.
    pub max_exited: usize,
    pub idle_config: IdleHolderConfig,
    /// Seconds covered by attributed intervals.
    pub session_s: f64,
    pub started_ms: Option<i64>,
    pub last_ms: Option<i64>,
    pub intervals: u64,
    generation: u64,
}

impl Ledger {
    pub fn new(idle_config: IdleHolderConfig) -> Self {
        Ledger {
            devices: Vec::new(),
            running: FastMap::default(),
            exited: Vec::new(),
            folded: HashMap::new(),
            max_exited: 10_000,
            idle_config,
            session_s: 0.0,
            started_ms: None,
            last_ms: None,
            intervals: 0,
            generation: 0,
        }
    }

    /// Index of a device id in [`Ledger::devices`].
    pub fn device_index(&self, id: &str) -> Option<usize> {
        self.devices.iter().position(|d| d.id == id)
    }

    /// Running processes (unordered).
    pub fn running(&self) -> impl Iterator<Item = &ProcEntry> {
        self.running.values()
    }

    /// Exited processes kept individually.
    pub fn exited(&self) -> &[ProcEntry] {
        &self.exited
    }

    /// Exited processes folded per command name (count, energy).
    pub fn folded(&self) -> &HashMap<String, FoldedExited> {
        &self.folded
    }

    /// Every process entry, running first.
    pub fn processes(&self) -> impl Iterator<Item = &ProcEntry> {
        self.running.values().chain(self.exited.iter())
    }

    pub fn process(&self, key: &ProcKey) -> Option<&ProcEntry> {
        self.running
            .get(key)
            .or_else(|| self.exited.iter().find(|e| e.key == *key))
    }

    /// Sum of device energy, joules.
    pub fn total_energy_j(&self) -> f64 {
        self.devices.iter().map(|d| d.energy_j).sum()
    }

    /// Sum of the latest device powers, watts (devices without a value count 0).
    pub fn total_power_w(&self) -> f64 {
        // fold from +0.0: an empty f64 sum is -0.0, which would print as "-0".
        self.devices
            .iter()
            .filter_map(|d| d.power_w)
            .fold(0.0, |a, b| a + b)
    }

    /// Worst provenance over all devices that contributed energy.
    pub fn provenance(&self) -> Provenance {
        let with_energy = self
            .devices
            .iter()
            .filter(|d| d.has_energy)
            .map(|d| d.provenance)
            .max();
        with_energy
            .or_else(|| self.devices.iter().map(|d| d.provenance).max())
            .unwrap_or(Provenance::Measured)
    }

    /// Processes currently flagged as idle GPU holders.
    pub fn idle_holders(&self) -> impl Iterator<Item = &ProcEntry> {
        self.running.values().filter(|e| e.idle().flagged)
    }

    /// Energy that flagged idle holders have cost while idle, whole session, joules (exited and
    /// folded processes included).
    pub fn idle_holder_wasted_j(&self) -> f64 {
        self.idle_holder_wasted_by_dev().iter().fold(0.0, |a, b| a + b)
    }

    /// [`Ledger::idle_holder_wasted_j`] per device, indexed like [`Ledger::devices`]: the energy
    /// charged on each GPU to processes while they were flagged idle on that GPU.
    pub fn idle_holder_wasted_by_dev(&self) -> Vec<f64> {
        let mut by = vec![0.0; self.devices.len()];
        for e in self.processes() {
            for g in &e.idle().gpus {
                if let Some(slot) = by.get_mut(g.dev) {
                    *slot += g.idle.wasted_j;
                }
            }
        }
        for f in self.folded.values() {
            for (a, b) in by.iter_mut().zip(&f.idle_wasted_by_dev) {
                *a += b;
            }
        }
        by
    }

    /// Register the devices of the first sample (so they show before any interval).
    pub fn observe_devices(&mut self, sample: &Sample) {
        for d in &sample.devices {
            self.device_mut(d);
        }
        self.started_ms.get_or_insert(sample.wall_ms);
    }

    /// Add one attributed interval; `cur` is the sample that ended it.
    pub fn apply(&mut self, cur: &Sample, iv: &Interval) {
        self.generation += 1;
        let generation = self.generation;
        self.intervals += 1;
        self.session_s += iv.dt_s;
        self.started_ms.get_or_insert(cur.wall_ms);
        self.last_ms = Some(cur.wall_ms);
        let dt = iv.dt_s;

        for r in &cur.devices {
            let i = self.device_mut(r);
            let d = &mut self.devices[i];
            d.last = r.clone();
            if d.kind != DeviceKind::Gpu && d.last.util_pct.is_none() {
                // CPU domains have no utilisation sensor: show the load /proc/stat gave for the interval.
                d.last.util_pct = iv.cpu_load.map(|l| l * 100.0);
            }
        }
        let mut unavailable: Vec<usize> = Vec::new();
        let mut recovered: Vec<(usize, f64)> = Vec::new();
        for de in &iv.devices {
            let Some(i) = self.device_index(&de.id) else {
                continue;
            };
            let d = &mut self.devices[i];
            d.status = de.status.clone();
            d.notes.clone_from(&de.notes);
            match de.energy_j {
                Some(e) => {
                    // A reading that recovers stale intervals carries their energy and their time.
                    // and one that lost steps to a counter reset covers less than the interval.
                    let covers = de.covers_s(dt);
                    d.energy_j += e;
                    d.available_s += covers;
                    d.unavailable_s = (d.unavailable_s - de.recovered_s).max(0.0) + de.gap_s;
                    if de.recovered_s > 0.0 {
                        recovered.push((i, de.recovered_s));
                    }
                    d.idle_j += de.idle_j;
                    d.unattributed_j += de.unattributed_j;
                    d.provenance = if d.has_energy {
                        d.provenance.max(de.provenance)
                    } else {
                        de.provenance
                    };
                    d.has_energy = true;
                    let w = if covers > 0.0 { e / covers } else { 0.0 };
                    d.power_w = Some(w);
                    d.peak_w = d.peak_w.max(w);
                }
                None => {
                    d.power_w = None;
                    d.unavailable_s += dt;
                    unavailable.push(i);
                }
            }
        }

        self.see_processes(cur, generation, dt);
        if !unavailable.is_empty() {
            self.note_unavailable(&unavailable, generation, dt);
        }
        for &(i, secs) in &recovered {
            for e in self.running.values_mut() {
                if let Some(u) = e.unavailable_by_dev.get_mut(i) {
                    *u = (*u - secs).max(0.0);
                }
            }
        }

        self.add_shares(iv, cur.wall_ms, generation);

        self.update_gpu_state(cur);
        self.close_exited(generation, dt);
    }

    /// Book every device's shares on its processes. Consecutive devices whose shares name the same
    /// processes in the same order (every CPU package and DRAM domain: they split one list of CPU
    /// shares) are booked together, with one lookup per process instead of one per process and
    /// device; the sums are added in device order either way.
    fn add_shares(&mut self, iv: &Interval, wall_ms: i64, generation: u64) {
        let n_dev = self.devices.len();
        let dt = iv.dt_s;
        // (device index in the ledger, rate: power is energy over the time it covers).
        let slot: Vec<Option<(usize, f64)>> = iv
            .devices
            .iter()
            .map(|de| {
                let covers = de.covers_s(dt);
                let rate = if covers > 0.0 { dt / covers } else { 1.0 };
                self.device_index(&de.id).map(|i| (i, rate))
            })
            .collect();
        let same = |a: &DeviceEnergy, b: &DeviceEnergy| {
            a.shares.len() == b.shares.len() && a.shares.iter().zip(&b.shares).all(|(x, y)| x.0 == y.0)
        };
        let mut a = 0;
        while a < iv.devices.len() {
            let first = &iv.devices[a];
            let mut b = a + 1;
            while b < iv.devices.len() && same(first, &iv.devices[b]) {
                b += 1;
            }
            let run: Vec<(&DeviceEnergy, usize, f64)> = (a..b)
                .filter_map(|d| slot[d].map(|(i, rate)| (&iv.devices[d], i, rate)))
                .collect();
            a = b;
            if run.is_empty() {
                continue;
            }
            for (k, (key, _)) in first.shares.iter().enumerate() {
                let e = self
                    .running
                    .entry(*key)
                    .or_insert_with(|| invisible_entry(*key, wall_ms, generation));
                e.seen_gen = generation;
                if e.energy_by_dev.len() < n_dev {
                    e.energy_by_dev.resize(n_dev, 0.0);
                }
                for &(de, i, rate) in &run {
                    let j = de.shares[k].1;
                    e.energy_by_dev[i] += j;
                    e.energy_j += j;
                    e.interval_j += j * rate;
                }
            }
        }
    }

    fn device_mut(&mut self, r: &DeviceReading) -> usize {
        if let Some(i) = self.device_index(&r.id) {
            return i;
        }
        self.devices.push(DeviceTotals {
            id: r.id.clone(),
            kind: r.kind,
            name: r.name.clone(),
            energy_j: 0.0,
            idle_j: 0.0,
            unattributed_j: 0.0,
            // Until an interval says otherwise, what the reading can give.
            provenance: if r.estimate.is_some() {
                Provenance::Estimated
            } else if r.energy.is_none() && r.power_w.is_some() {
                Provenance::Integrated
            } else {
                Provenance::Measured
            },
            power_w: None,
            peak_w: 0.0,
            status: r.error.clone(),
            notes: Vec::new(),
            unavailable_s: 0.0,
            available_s: 0.0,
            last: r.clone(),
            has_energy: false,
        });
        self.devices.len() - 1
    }

    fn see_processes(&mut self, cur: &Sample, generation: u64, dt: f64) {
        if self.running.is_empty() {
            // The first sample brings every process at once: one table of the right size rather
            // than doubling up to it, each time with the old one still held (at ~3,000 processes
            // the last doubling held 0.55 MB more than the table it made).
            self.running.reserve(cur.processes.len());
        }
        let mut by_pid: Option<FastMap<u32, (u32, &str)>> = None;
        for p in &cur.processes {
            if let Some(e) = self.running.get_mut(&p.key) {
                e.seen_gen = generation;
                e.last_seen_ms = cur.wall_ms;
                e.observed_s += dt;
                e.ppid = p.ppid;
                continue;
            }
            let index = by_pid.get_or_insert_with(|| {
                cur.processes
                    .iter()
                    .map(|q| (q.key.pid, (q.ppid, q.info.comm.as_str())))
                    .collect()
            });
            let tree_root = groups::tree_root(p.key.pid, index);
            self.running.insert(
                p.key,
                ProcEntry {
                    key: p.key,
                    ppid: p.ppid,
                    info: Arc::clone(&p.info),
                    tree_root,
                    energy_by_dev: Vec::new(),
                    energy_j: 0.0,
                    power_w: 0.0,
                    peak_w: 0.0,
                    first_seen_ms: cur.wall_ms,
                    last_seen_ms: cur.wall_ms,
                    // It may have run for (part of) this interval and be charged for it: count the
                    // interval, so the average never exceeds the peak.
                    observed_s: dt,
                    unavailable_by_dev: Vec::new(),
                    state: ProcState::Running,
                    gpu: None,
                    seen_gen: generation,
                    interval_j: 0.0,
                },
            );
        }
    }

    /// Processes observed in an interval whose device `i` had no energy: that time does not count
    /// in their average power on `i`.
    fn note_unavailable(&mut self, unavailable: &[usize], generation: u64, dt: f64) {
        let n_dev = self.devices.len();
        for e in self.running.values_mut().filter(|e| e.seen_gen == generation) {
            if e.unavailable_by_dev.len() < n_dev {
                e.unavailable_by_dev.resize(n_dev, 0.0);
            }
            for &i in unavailable {
                e.unavailable_by_dev[i] += dt;
            }
        }
    }

    fn close_exited(&mut self, generation: u64, dt: f64) {
        let mut gone = Vec::new();
        for (k, e) in &mut self.running {
            e.power_w = if dt > 0.0 { e.interval_j / dt } else { 0.0 };
            e.peak_w = e.peak_w.max(e.power_w);
            e.interval_j = 0.0;
            if e.seen_gen != generation {
                gone.push(*k);
            }
        }
        for k in gone {
            if let Some(mut e) = self.running.remove(&k) {
                e.state = ProcState::Exited;
                e.power_w = 0.0;
                if let Some(g) = e.gpu.as_mut() {
                    g.idle.clear_flags();
                }
                self.exited.push(e);
            }
        }
        if self.exited.len() > self.max_exited {
            self.fold_exited();
        }
    }

    /// Keep the most energetic half of the exited processes as rows; fold the rest per command.
    fn fold_exited(&mut self) {
        self.exited.sort_by(|a, b| b.energy_j.total_cmp(&a.energy_j));
        let keep = self.max_exited / 2;
        for e in self.exited.drain(keep..) {
            let f = self.folded.entry(e.info.comm.clone()).or_default();
            f.count += 1;
            f.energy_j += e.energy_j;
            f.idle_wasted_j += e.idle().wasted_j;
            for g in &e.idle().gpus {
                if f.idle_wasted_by_dev.len() <= g.dev {
                    f.idle_wasted_by_dev.resize(g.dev + 1, 0.0);
                }
                f.idle_wasted_by_dev[g.dev] += g.idle.wasted_j;
            }
            if f.energy_by_dev.len() < e.energy_by_dev.len() {
                f.energy_by_dev.resize(e.energy_by_dev.len(), 0.0);
            }
            for (a, b) in f.energy_by_dev.iter_mut().zip(&e.energy_by_dev) {
                *a += b;
            }
        }
    }
}

/// Entry for a GPU process whose pid is not visible in our PID namespace.
fn invisible_entry(key: ProcKey, wall_ms: i64, generation: u64) -> ProcEntry {
    ProcEntry {
        key,
        ppid: 0,
        info: Arc::new(ProcInfo {
            comm: format!("pid {} (not visible here)", key.pid),
            cmdline: String::new(),
            user: "?".into(),
            uid: None,
            cgroup: Default::default(),
        }),
        tree_root: (key.pid, String::new()),
        energy_by_dev: Vec::new(),
        energy_j: 0.0,
        power_w: 0.0,
        peak_w: 0.0,
        first_seen_ms: wall_ms,
        last_seen_ms: wall_ms,
        observed_s: 0.0,
        unavailable_by_dev: Vec::new(),
        state: ProcState::Running,
        gpu: None,
        seen_gen: generation,
        interval_j: 0.0,
    }
}

#[cfg(test)]
mod tests;
