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
pub use idle::{IdleHolderConfig, IdleTrack};

use crate::attribution::Interval;
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
    pub state: ProcState,
    /// Summed over the GPUs it holds, at the last tick; `None` = holds no GPU.
    pub gpu_util_pct: Option<f64>,
    pub gpu_mem_bytes: Option<u64>,
    pub idle: IdleTrack,
    seen_gen: u64,
    interval_j: f64,
}

impl ProcEntry {
    /// Average power over the time it was observed.
    pub fn avg_w(&self) -> f64 {
        if self.observed_s > 0.0 {
            self.energy_j / self.observed_s
        } else {
            self.power_w
        }
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
}

/// Cumulative session state.
#[derive(Debug, Clone)]
pub struct Ledger {
    pub devices: Vec<DeviceTotals>,
    running: HashMap<ProcKey, ProcEntry>,
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
            running: HashMap::new(),
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
        self.running.values().filter(|e| e.idle.flagged)
    }

    /// Energy that flagged idle holders have cost while idle, whole session, joules.
    pub fn idle_holder_wasted_j(&self) -> f64 {
        self.processes().map(|e| e.idle.wasted_j).sum::<f64>()
            + self.folded.values().map(|f| f.idle_wasted_j).sum::<f64>()
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
        for de in &iv.devices {
            let Some(i) = self.device_index(&de.id) else {
                continue;
            };
            let d = &mut self.devices[i];
            d.status = de.status.clone();
            d.notes.clone_from(&de.notes);
            match de.energy_j {
                Some(e) => {
                    d.energy_j += e;
                    d.idle_j += de.idle_j;
                    d.unattributed_j += de.unattributed_j;
                    d.provenance = if d.has_energy {
                        d.provenance.max(de.provenance)
                    } else {
                        de.provenance
                    };
                    d.has_energy = true;
                    let w = de.power_w(dt).unwrap_or(0.0);
                    d.power_w = Some(w);
                    d.peak_w = d.peak_w.max(w);
                }
                None => {
                    d.power_w = None;
                    d.unavailable_s += dt;
                }
            }
        }

        self.see_processes(cur, generation, dt);

        let n_dev = self.devices.len();
        for de in &iv.devices {
            let Some(i) = self.device_index(&de.id) else {
                continue;
            };
            for (key, j) in &de.shares {
                let e = self
                    .running
                    .entry(*key)
                    .or_insert_with(|| invisible_entry(*key, cur.wall_ms, generation));
                e.seen_gen = generation;
                if e.energy_by_dev.len() < n_dev {
                    e.energy_by_dev.resize(n_dev, 0.0);
                }
                e.energy_by_dev[i] += j;
                e.energy_j += j;
                e.interval_j += j;
            }
        }

        self.update_gpu_state(cur);
        self.close_exited(generation, dt);
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
            last: r.clone(),
            has_energy: false,
        });
        self.devices.len() - 1
    }

    fn see_processes(&mut self, cur: &Sample, generation: u64, dt: f64) {
        let mut by_pid: Option<HashMap<u32, (u32, &str)>> = None;
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
                    state: ProcState::Running,
                    gpu_util_pct: None,
                    gpu_mem_bytes: None,
                    idle: IdleTrack::default(),
                    seen_gen: generation,
                    interval_j: 0.0,
                },
            );
        }
    }

    fn update_gpu_state(&mut self, cur: &Sample) {
        // Only a sample with GPU context holders needs the pid → key map (not every tick of a CPU box).
        let any_holder = cur.devices.iter().any(|d| !d.gpu_processes.is_empty());
        let pid_keys: HashMap<u32, ProcKey> = if any_holder {
            cur.processes.iter().map(|p| (p.key.pid, p.key)).collect()
        } else {
            HashMap::new()
        };
        let mut per_proc: HashMap<ProcKey, (f64, u64, bool, f64)> = HashMap::new();
        for dev in cur.devices.iter().filter(|d| d.kind == DeviceKind::Gpu) {
            for gp in &dev.gpu_processes {
                let key = pid_keys.get(&gp.pid).copied().unwrap_or(ProcKey {
                    pid: gp.pid,
                    starttime: 0,
                });
                let slot = per_proc.entry(key).or_insert((0.0, 0, true, 0.0));
                let util = gp.sm_util_pct.unwrap_or(0.0);
                slot.0 += util;
                slot.1 += gp.used_mem_bytes.unwrap_or(0);
                slot.2 &= gp.sm_util_pct.is_some();
                slot.3 = slot.3.max(util);
            }
        }
        let gpu_idx: Vec<usize> = self
            .devices
            .iter()
            .enumerate()
            .filter(|(_, d)| d.kind == DeviceKind::Gpu)
            .map(|(i, _)| i)
            .collect();
        let cfg = self.idle_config;
        let now_s = self.session_s;
        for e in self.running.values_mut() {
            match per_proc.get(&e.key) {
                Some(&(util, mem, util_known, max_util)) => {
                    e.gpu_util_pct = util_known.then_some(util);
                    e.gpu_mem_bytes = Some(mem);
                    let gpu_j: f64 = gpu_idx.iter().filter_map(|&i| e.energy_by_dev.get(i)).sum();
                    let gpu_j_delta = gpu_j - e.idle.gpu_j_seen;
                    e.idle.gpu_j_seen = gpu_j;
                    let idle_now = util_known && mem >= cfg.min_memory_bytes && max_util < cfg.max_sm_pct;
                    e.idle.update(idle_now, now_s, gpu_j_delta, cfg.after_s);
                }
                None => {
                    e.gpu_util_pct = None;
                    e.gpu_mem_bytes = None;
                    e.idle.update(false, now_s, 0.0, cfg.after_s);
                }
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
                e.idle.flagged = false;
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
            f.idle_wasted_j += e.idle.wasted_j;
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
        state: ProcState::Running,
        gpu_util_pct: None,
        gpu_mem_bytes: None,
        idle: IdleTrack::default(),
        seen_gen: generation,
        interval_j: 0.0,
    }
}

#[cfg(test)]
mod tests;
