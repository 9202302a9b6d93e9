//! Energy-conserving attribution: a pair of [`Sample`]s in, per-device energy split among processes out.
//!
//! Pure code (DESIGN §4). For every device and interval
//! `energy_j = Σ process shares + idle_j + unattributed_j`, every term ≥ 0. The only state kept
//! between calls is each GPU's learned idle floor. Must not read clocks, files or sensors.

mod children;

use std::collections::HashMap;

use crate::fasthash::FastMap;
use crate::sample::{
    CpuTimes, DeviceKind, DeviceReading, EnergyCounter, GpuProcess, ProcKey, ProcessReading, Provenance,
    Sample,
};

/// Largest plausible average power of one device, watts. A counter delta above this is treated as a
/// counter reset, never as energy (so a glitch cannot add megajoules).
pub const MAX_PLAUSIBLE_W: f64 = 10_000.0;

/// A GPU reporting more utilisation than this is not idle, whatever its process list says.
const IDLE_UTIL_PCT: f64 = 5.0;

/// Policy knobs for attribution.
#[derive(Debug, Clone, PartialEq)]
pub struct AttributionConfig {
    /// Give CPU idle energy to processes in proportion to their CPU share instead of the idle row.
    pub charge_idle: bool,
    /// Fixed GPU idle (static) power, watts; `None` = learn it.
    pub gpu_idle_w: Option<f64>,
    /// Until a GPU has been seen with no process, its idle power is assumed to be this share of its
    /// power limit.
    pub gpu_idle_fraction_of_limit: f64,
}

impl Default for AttributionConfig {
    fn default() -> Self {
        AttributionConfig {
            charge_idle: false,
            gpu_idle_w: None,
            gpu_idle_fraction_of_limit: 0.1,
        }
    }
}

/// One device's energy over one interval, split.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceEnergy {
    pub id: String,
    pub kind: DeviceKind,
    pub name: String,
    /// Energy over the interval, joules; `None` = not available (see `status`).
    pub energy_j: Option<f64>,
    pub provenance: Provenance,
    /// `None` = the energy was read; otherwise why it is missing.
    pub status: Option<String>,
    /// What else the user should know about this interval on a device whose energy was read: a
    /// failed secondary query, static energy left unattributed because the process list failed,
    /// dynamic energy split by memory for want of per-process utilisation.
    pub notes: Vec<String>,
    pub idle_j: f64,
    pub unattributed_j: f64,
    /// GPU only: the static (idle-floor) part of `energy_j`.
    pub static_j: f64,
    /// Joules per process.
    pub shares: Vec<(ProcKey, f64)>,
    /// Seconds of earlier intervals whose energy this one carries: intervals that were N/A because
    /// the counter could not be read, recovered by this reading. 0 almost always. The energy covers
    /// `dt_s + recovered_s`, so power over it is `energy_j / (dt_s + recovered_s)`.
    pub recovered_s: f64,
    /// Seconds of this interval whose energy the counter lost (a reset in one of its steps; see
    /// `DeviceReading::energy_gap_s`): the energy is measured over `dt_s − gap_s`.
    pub gap_s: f64,
}

impl DeviceEnergy {
    /// Seconds of session time this energy covers: the interval, plus recovered stale intervals,
    /// less steps lost to a counter reset.
    pub fn covers_s(&self, dt_s: f64) -> f64 {
        (dt_s + self.recovered_s - self.gap_s).max(0.0)
    }
}

impl DeviceEnergy {
    /// Average power over the interval.
    pub fn power_w(&self, dt_s: f64) -> Option<f64> {
        self.energy_j.map(|e| if dt_s > 0.0 { e / dt_s } else { 0.0 })
    }

    /// `energy − (Σ shares + idle + unattributed)`; zero up to rounding.
    pub fn conservation_error_j(&self) -> f64 {
        let parts: f64 = self.shares.iter().map(|(_, j)| j).sum::<f64>() + self.idle_j + self.unattributed_j;
        self.energy_j.unwrap_or(0.0) - parts
    }
}

/// The result of attributing one interval.
#[derive(Debug, Clone, PartialEq)]
pub struct Interval {
    pub dt_s: f64,
    /// Wall clock at the end of the interval, ms since the epoch.
    pub wall_ms: i64,
    pub devices: Vec<DeviceEnergy>,
    /// CPU utilisation over the interval, 0..=1, when `/proc/stat` was readable twice.
    pub cpu_load: Option<f64>,
    /// Each process's share of busy CPU time over the interval (after skew scaling).
    pub cpu_shares: Vec<(ProcKey, f64)>,
}

/// Holds the little state attribution needs between intervals (learned GPU idle floors).
#[derive(Debug, Clone, Default)]
pub struct Attributor {
    pub config: AttributionConfig,
    /// Lowest average power seen per GPU id over an interval with no process on it, watts.
    idle_floor_w: HashMap<String, f64>,
    /// Seconds since a device's counter was last read well, while its readings are stale: the next
    /// good reading carries that time's energy.
    stale_s: HashMap<String, f64>,
}

impl Attributor {
    pub fn new(config: AttributionConfig) -> Self {
        Attributor {
            config,
            idle_floor_w: HashMap::new(),
            stale_s: HashMap::new(),
        }
    }

    /// The idle power currently assumed for a GPU, and whether it was learned (true) or assumed.
    pub fn gpu_idle_w(&self, dev: &DeviceReading) -> Option<(f64, &'static str)> {
        if let Some(w) = self.config.gpu_idle_w {
            return Some((w, "config"));
        }
        if let Some(w) = self.idle_floor_w.get(&dev.id) {
            return Some((*w, "learned"));
        }
        dev.power_limit_w
            .map(|l| (l * self.config.gpu_idle_fraction_of_limit, "share of limit"))
    }

    /// Attribute the energy between `prev` and `cur`.
    pub fn attribute(&mut self, prev: &Sample, cur: &Sample) -> Interval {
        let dt_s = (cur.mono_s - prev.mono_s).max(0.0);
        let (cpu_load, cpu_shares) = cpu_shares(prev, cur);
        // Only GPU context holders need pid → key, and only theirs.
        let pid_index = holder_keys(cur);
        let mut devices = Vec::with_capacity(cur.devices.len());
        for dev in &cur.devices {
            let before = prev.devices.iter().find(|d| d.id == dev.id);
            // A reading that recovers stale intervals may carry their energy too: judge it over the span.
            let stale_s = self.stale_s.get(&dev.id).copied().unwrap_or(0.0);
            let (energy_j, provenance, status) = device_energy(before, dev, dt_s, dt_s + stale_s, cpu_load);
            let recovered_s = self.recovered_s(
                dev,
                energy_j.is_some() && provenance == Provenance::Measured,
                dt_s,
            );
            // The span the energy covers: this interval, plus the stale ones it recovers.
            let span_s = dt_s + recovered_s;
            let mut de = match dev.kind {
                DeviceKind::Cpu | DeviceKind::Dram => split_cpu(
                    dev,
                    energy_j,
                    provenance,
                    status,
                    prev.cpu_times.zip(cur.cpu_times),
                    &cpu_shares,
                    self.config.charge_idle,
                ),
                DeviceKind::Gpu => {
                    let idle_w = self.gpu_idle_w(dev).map(|(w, _)| w);
                    let de = split_gpu(dev, energy_j, provenance, status, span_s, idle_w, &pid_index);
                    self.learn_idle_floor(before, dev, &de, span_s);
                    de
                }
            };
            if de.energy_j.is_some() {
                // Energy was read: failed secondary queries are notes, the device stays up. (Older
                // recordings put them in `error`; an estimate's `error` says why it is estimated,
                // which the notices already tell.)
                let legacy = dev
                    .error
                    .iter()
                    .filter(|e| de.provenance != Provenance::Estimated && !de.notes.contains(e));
                let notes: Vec<String> = dev.notes.iter().chain(legacy).cloned().collect();
                de.notes.splice(0..0, notes);
            }
            if de.energy_j.is_some() {
                de.gap_s = dev.energy_gap_s.clamp(0.0, dt_s);
            }
            if recovered_s > 0.0 {
                de.recovered_s = recovered_s;
                de.notes.push(format!(
                    "energy of the {recovered_s:.1} s before, when the counter could not be read, is included"
                ));
            }
            devices.push(de);
        }
        Interval {
            dt_s,
            wall_ms: cur.wall_ms,
            devices,
            cpu_load,
            cpu_shares,
        }
    }

    /// Track stale readings per device; returns the stale seconds a good measured reading recovers.
    fn recovered_s(&mut self, dev: &DeviceReading, measured_ok: bool, dt_s: f64) -> f64 {
        if dev.energy_stale {
            *self.stale_s.entry(dev.id.clone()).or_insert(0.0) += dt_s;
            return 0.0;
        }
        // A good reading recovers the stale time; anything else (a reset) loses it.
        let stale = self.stale_s.remove(&dev.id).unwrap_or(0.0);
        if measured_ok { stale } else { 0.0 }
    }

    /// Learn the idle floor only from a truly empty interval: the process lists were read at both
    /// ends and named nobody. A refused list says nothing about who was busy.
    fn learn_idle_floor(
        &mut self,
        before: Option<&DeviceReading>,
        dev: &DeviceReading,
        de: &DeviceEnergy,
        dt_s: f64,
    ) {
        // Empty lists at both ends, and the device itself not busy where it says: a list can come
        // back empty (not refused) while the GPU works (vGPU guests, some runtimes), and learning
        // busy power as the floor would book most of the GPU's energy as idle from then on.
        let empty = |d: &DeviceReading| {
            d.holders_error.is_none()
                && d.gpu_processes.is_empty()
                && d.util_pct.is_none_or(|u| u <= IDLE_UTIL_PCT)
        };
        if !empty(dev) || !before.is_none_or(empty) || dt_s <= 0.0 {
            return;
        }
        if let Some(w) = de.power_w(dt_s) {
            let floor = self.idle_floor_w.entry(dev.id.clone()).or_insert(w);
            if w < *floor {
                *floor = w;
            }
        }
    }
}

/// The keys of the processes holding a context on any GPU of `s`, by pid (empty on a CPU-only tick).
pub(crate) fn holder_keys(s: &Sample) -> FastMap<u32, ProcKey> {
    keys_of_pids(
        &s.processes,
        s.devices
            .iter()
            .flat_map(|d| d.gpu_processes.iter().map(|p| p.pid)),
    )
}

/// Whether the pids of `processes` strictly ascend, as `/proc` lists them (each pid once): then a
/// pid is found by binary search.
pub(crate) fn pids_ascend(processes: &[ProcessReading]) -> bool {
    processes.windows(2).all(|w| w[0].key.pid < w[1].key.pid)
}

/// The keys of `pids` among `processes` (pids not listed are left out; a pid listed twice gets
/// its last key). A binary search per pid when the list is in pid order (as `/proc` lists them),
/// one pass over it otherwise: never a map of every process for a handful of GPU holders.
pub(crate) fn keys_of_pids(
    processes: &[ProcessReading],
    pids: impl IntoIterator<Item = u32>,
) -> FastMap<u32, ProcKey> {
    let mut want: Vec<u32> = pids.into_iter().collect();
    let mut out = FastMap::default();
    if want.is_empty() {
        return out;
    }
    want.sort_unstable();
    want.dedup();
    if pids_ascend(processes) {
        for pid in want {
            if let Ok(i) = processes.binary_search_by_key(&pid, |p| p.key.pid) {
                out.insert(pid, processes[i].key);
            }
        }
    } else {
        for p in processes {
            if want.binary_search(&p.key.pid).is_ok() {
                out.insert(p.key.pid, p.key);
            }
        }
    }
    out
}

/// Difference of a cumulative counter, joules, with RAPL wrap-around. `Err` explains a reset. Live
/// samples carry counters the sampler already unwrapped (`sources::counters`); the wrap here serves
/// recordings made before that, which hold one raw read per sample.
pub fn counter_delta_j(prev: EnergyCounter, cur: EnergyCounter) -> Result<f64, String> {
    let delta_uj = if cur.value_uj >= prev.value_uj {
        cur.value_uj - prev.value_uj
    } else {
        match cur.wrap_uj {
            Some(max) if prev.value_uj <= max => max - prev.value_uj + cur.value_uj,
            _ => {
                return Err(format!(
                    "energy counter went backwards ({} → {} µJ): counter reset, interval skipped",
                    prev.value_uj, cur.value_uj
                ));
            }
        }
    };
    Ok(delta_uj as f64 * 1e-6)
}

/// Energy of one device over the interval, how it was obtained, and why it is missing if it is.
fn device_energy(
    prev: Option<&DeviceReading>,
    cur: &DeviceReading,
    dt_s: f64,
    span_s: f64,
    cpu_load: Option<f64>,
) -> (Option<f64>, Provenance, Option<String>) {
    let Some(prev) = prev else {
        return (
            None,
            Provenance::Measured,
            Some("device appeared during the interval".into()),
        );
    };
    if cur.energy_stale {
        // The counter could not be read now; its last good value is kept so the next interval
        // recovers this one's energy. Until then this interval is N/A, never a made-up 0 J.
        let why = cur
            .error
            .clone()
            .unwrap_or_else(|| "energy counter not read".into());
        return (None, Provenance::Measured, Some(why));
    }
    if cur.energy.is_some() && cur.energy_gap_s >= 0.999 * dt_s {
        // The counter reset (or jumped) in the only step of this interval: nothing was measured,
        // which is an N/A with the reason, not a measured 0 J.
        let why = cur
            .error
            .clone()
            .unwrap_or_else(|| "energy counter reset: interval not measured".into());
        return (None, Provenance::Measured, Some(why));
    }
    if let (Some(a), Some(b)) = (prev.energy, cur.energy) {
        return match counter_delta_j(a, b) {
            // Energy is fine; a failed secondary query becomes a note (see `attribute`).
            Ok(j) if j <= MAX_PLAUSIBLE_W * span_s.max(1e-3) => (Some(j), Provenance::Measured, None),
            Ok(j) => (
                None,
                Provenance::Measured,
                Some(format!(
                    "implausible energy counter jump ({j:.0} J in {dt_s:.3} s): interval skipped"
                )),
            ),
            Err(e) => (None, Provenance::Measured, Some(e)),
        };
    }
    if let (Some(a), Some(b)) = (prev.power_w, cur.power_w)
        && a.is_finite()
        && b.is_finite()
        && a >= 0.0
        && b >= 0.0
    {
        return (Some((a + b) / 2.0 * dt_s), Provenance::Integrated, None);
    }
    if let Some(est) = &cur.estimate {
        return match cpu_load {
            Some(load) => (Some(est.power_w(load) * dt_s), Provenance::Estimated, None),
            None => (
                None,
                Provenance::Estimated,
                Some("no CPU load from /proc/stat: cannot estimate".into()),
            ),
        };
    }
    let why = cur
        .error
        .clone()
        .or_else(|| prev.error.clone())
        .unwrap_or_else(|| "no energy counter or power reading".into());
    let prov = if cur.energy.is_some() || prev.energy.is_some() {
        Provenance::Measured
    } else {
        Provenance::Integrated
    };
    (None, prov, Some(why))
}

/// CPU load over the interval and each process's share of busy time (DESIGN §4 CPU steps 2–3): its
/// own CPU time and that of the children it reaped in the interval (see [`children`]).
fn cpu_shares(prev: &Sample, cur: &Sample) -> (Option<f64>, Vec<(ProcKey, f64)>) {
    let Some((a, b)) = prev.cpu_times.zip(cur.cpu_times) else {
        return (None, Vec::new());
    };
    let busy = b.busy.saturating_sub(a.busy);
    let idle = b.idle.saturating_sub(a.idle);
    let total = busy + idle;
    let load = if total > 0 {
        busy as f64 / total as f64
    } else {
        0.0
    };
    if busy == 0 {
        return (Some(load), Vec::new());
    }
    let mut shares = Vec::new();
    let mut sum = 0.0;
    for (key, ticks) in children::interval_ticks(prev, cur) {
        let s = ticks as f64 / busy as f64;
        sum += s;
        shares.push((key, s));
    }
    if sum > 1.0 {
        for (_, s) in &mut shares {
            *s /= sum;
        }
    }
    (Some(load), shares)
}

fn split_cpu(
    dev: &DeviceReading,
    energy_j: Option<f64>,
    provenance: Provenance,
    status: Option<String>,
    times: Option<(CpuTimes, CpuTimes)>,
    shares: &[(ProcKey, f64)],
    charge_idle: bool,
) -> DeviceEnergy {
    let mut de = empty(dev, energy_j, provenance, status);
    let Some(e) = energy_j else { return de };
    let Some((a, b)) = times else {
        de.unattributed_j = e;
        de.status
            .get_or_insert_with(|| "/proc/stat unreadable: energy not split".into());
        return de;
    };
    let busy = b.busy.saturating_sub(a.busy) as f64;
    let total = busy + b.idle.saturating_sub(a.idle) as f64;
    let machine_frac = if total > 0.0 { (busy / total).min(1.0) } else { 0.0 };
    // An estimate that covers only some of the machine's CPUs (a container's quota) splits over
    // their time: busy ticks fall on them first, and each process's share of their busy time grows
    // by busy / covered busy (scaled back to 1 in all when the machine is busier than they can be).
    let (busy_frac, scale) = match &dev.estimate {
        Some(est) if est.usable_share < 1.0 && busy > 0.0 => {
            let f = est.covered_load(machine_frac);
            let covered_busy = f * total * est.usable_share.max(f64::MIN_POSITIVE);
            (
                f,
                if covered_busy > 0.0 {
                    busy / covered_busy
                } else {
                    1.0
                },
            )
        }
        _ => (machine_frac, 1.0),
    };
    let scaled: Vec<(ProcKey, f64)>;
    let shares = if scale == 1.0 {
        shares
    } else {
        let sum: f64 = shares.iter().map(|(_, s)| s * scale).sum();
        let norm = if sum > 1.0 { scale / sum } else { scale };
        scaled = shares.iter().map(|(k, s)| (*k, s * norm)).collect();
        &scaled
    };
    let mut idle = e * (1.0 - busy_frac);
    let active = e - idle;
    let share_sum: f64 = shares.iter().map(|(_, s)| s).sum();
    let idle_per_share = if charge_idle && share_sum > 0.0 {
        let per = idle / share_sum;
        idle = 0.0;
        per
    } else {
        0.0
    };
    let mut given = 0.0;
    de.shares = shares
        .iter()
        .map(|(k, s)| {
            let j = active * s + idle_per_share * s;
            given += j;
            (*k, j)
        })
        .collect();
    de.idle_j = idle;
    de.unattributed_j = (e - idle - given).max(0.0);
    de
}

fn split_gpu(
    dev: &DeviceReading,
    energy_j: Option<f64>,
    provenance: Provenance,
    status: Option<String>,
    dt_s: f64,
    idle_w: Option<f64>,
    pid_index: &FastMap<u32, ProcKey>,
) -> DeviceEnergy {
    let mut de = empty(dev, energy_j, provenance, status);
    let Some(e) = energy_j else { return de };
    let static_j = idle_w.map_or(0.0, |w| (w.max(0.0) * dt_s).min(e));
    let dynamic_j = e - static_j;
    de.static_j = static_j;
    let holders = dedup_holders(&dev.gpu_processes);
    let key = |pid: u32| {
        pid_index
            .get(&pid)
            .copied()
            .unwrap_or(ProcKey { pid, starttime: 0 })
    };
    if let Some(why) = &dev.holders_error {
        // Who holds the GPU is unknown: the static part is nobody's and never idle. Holders from the
        // lists that did answer get dynamic energy by their SM time over the device's busy time.
        let busy: f64 = dev.util_pct.unwrap_or(0.0).max(0.0);
        let known: f64 = holders
            .iter()
            .filter_map(|p| p.sm_util_pct)
            .map(|u| u.max(0.0))
            .sum();
        let denom = busy.max(known);
        let mut given = 0.0;
        if denom > 0.0 {
            de.shares = holders
                .iter()
                .filter_map(|p| Some((p, p.sm_util_pct?.max(0.0))))
                .filter(|(_, u)| *u > 0.0)
                .map(|(p, u)| {
                    let j = dynamic_j * u / denom;
                    given += j;
                    (key(p.pid), j)
                })
                .collect();
        }
        de.unattributed_j = (e - given).max(0.0);
        de.notes.push(format!(
            "{why}: static energy unattributed (holders unknown), never idle"
        ));
        return de;
    }
    if holders.is_empty() {
        // Nobody holds a context: the floor is the device idling, anything above it is unseen work.
        de.idle_j = static_j;
        de.unattributed_j = dynamic_j;
        return de;
    }
    let util: Vec<f64> = holders
        .iter()
        .map(|p| p.sm_util_pct.unwrap_or(0.0).max(0.0))
        .collect();
    let mem: Vec<f64> = holders
        .iter()
        .map(|p| p.used_mem_bytes.unwrap_or(0) as f64)
        .collect();
    let mem_known = holders.iter().all(|p| p.used_mem_bytes.is_some()) && mem.iter().sum::<f64>() > 0.0;
    let even = vec![1.0; holders.len()];
    let static_w = if mem_known { &mem } else { &even };
    // Under MIG NVML has no per-process utilisation; elsewhere the query may have failed.
    let no_util = if holders.iter().any(|p| p.mig.is_some()) {
        Some("MIG: no per-process utilisation")
    } else if holders.iter().all(|p| p.sm_util_pct.is_none()) {
        Some("no per-process utilisation")
    } else {
        None
    };
    let dyn_w = if no_util.is_none() && util.iter().sum::<f64>() > 0.0 {
        &util
    } else {
        static_w
    };
    if let Some(why) = no_util
        && dynamic_j > 0.0
    {
        let how = if mem_known { "by GPU memory" } else { "evenly" };
        de.notes.push(format!("dynamic energy split {how} ({why})"));
    }
    let static_sum: f64 = static_w.iter().sum();
    let dyn_sum: f64 = dyn_w.iter().sum();
    let mut given = 0.0;
    de.shares = holders
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let j = static_j * static_w[i] / static_sum + dynamic_j * dyn_w[i] / dyn_sum;
            given += j;
            (key(p.pid), j)
        })
        .collect();
    de.unattributed_j = (e - given).max(0.0);
    de
}

/// Compute, graphics and MPS lists can name one pid twice: merge (max memory, max utilisation).
fn dedup_holders(list: &[GpuProcess]) -> Vec<GpuProcess> {
    let mut out: Vec<GpuProcess> = Vec::with_capacity(list.len());
    for p in list {
        if let Some(q) = out.iter_mut().find(|q| q.pid == p.pid) {
            q.used_mem_bytes = match (q.used_mem_bytes, p.used_mem_bytes) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            };
            q.sm_util_pct = match (q.sm_util_pct, p.sm_util_pct) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            };
            q.mig = q.mig.or(p.mig);
        } else {
            out.push(p.clone());
        }
    }
    out
}

fn empty(
    dev: &DeviceReading,
    energy_j: Option<f64>,
    provenance: Provenance,
    status: Option<String>,
) -> DeviceEnergy {
    DeviceEnergy {
        id: dev.id.clone(),
        kind: dev.kind,
        name: dev.name.clone(),
        energy_j,
        provenance,
        status,
        notes: Vec::new(),
        idle_j: 0.0,
        unattributed_j: 0.0,
        static_j: 0.0,
        shares: Vec::new(),
        recovered_s: 0.0,
        gap_s: 0.0,
    }
}

#[cfg(test)]
mod gpu_tests;
#[cfg(test)]
mod tests;
