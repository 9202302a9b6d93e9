//! Idle GPU holders: processes that keep GPU memory while their SM share stays near zero.
//!
//! Judged per (process, GPU): a process busy on GPU0 that holds 40 GiB idle on GPU1 is an idle
//! holder on GPU1, and only the energy charged on GPU1 counts as wasted; memory is never summed and
//! SM shares never maxed across GPUs. Pure bookkeeping over session seconds; thresholds come from
//! config (DESIGN §5).

use super::Ledger;
use crate::fasthash::FastMap;
use crate::sample::{DeviceKind, MigInstance, ProcKey, Sample};

/// When a process counts as an idle GPU holder.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IdleHolderConfig {
    /// Holds at least this much GPU memory, bytes.
    pub min_memory_bytes: u64,
    /// Its SM utilisation stays below this, percent.
    pub max_sm_pct: f64,
    /// For at least this long, seconds.
    pub after_s: f64,
}

impl Default for IdleHolderConfig {
    fn default() -> Self {
        IdleHolderConfig {
            min_memory_bytes: 256 << 20,
            max_sm_pct: 1.0,
            after_s: 300.0,
        }
    }
}

/// One process's idle streak on one GPU.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct IdleTrack {
    /// Session second at which the current idle streak began.
    pub since_s: Option<f64>,
    /// Length of the current streak, seconds.
    pub streak_s: f64,
    /// Energy charged on this GPU during the current streak, joules.
    pub streak_j: f64,
    /// The streak has lasted long enough to be flagged.
    pub flagged: bool,
    /// Energy charged on this GPU while flagged streaks lasted (whole streaks), joules, whole session.
    pub wasted_j: f64,
    /// Joules charged on this GPU already seen, to compute per-interval deltas.
    pub gpu_j_seen: f64,
}

/// What one sample says about a process on one GPU.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GpuUse {
    /// Index into [`super::Ledger::devices`].
    pub dev: usize,
    /// Memory it holds there, bytes; `None` when NVML cannot tell.
    pub mem_bytes: Option<u64>,
    /// Its SM share there over the interval, percent; `None` when unknown.
    pub sm_pct: Option<f64>,
    /// The MIG slices it runs in there (empty: the whole GPU).
    pub mig: Vec<MigInstance>,
}

/// One GPU a process holds (or held) a context on, judged on its own.
#[derive(Debug, Clone, PartialEq)]
pub struct GpuHold {
    /// Index into [`super::Ledger::devices`].
    pub dev: usize,
    /// Device id, e.g. `gpu1`.
    pub device: String,
    /// Holds a context there in the latest sample.
    pub holding: bool,
    /// Memory it holds there at the latest sample, bytes; `None` = unknown or no longer held.
    pub mem_bytes: Option<u64>,
    /// Its SM share there over the last interval, percent; `None` = unknown or no longer held.
    pub sm_pct: Option<f64>,
    /// The MIG slices it runs in there at the latest sample (empty: the whole GPU, or not held).
    pub mig: Vec<MigInstance>,
    /// The idle streak on this GPU; its `wasted_j` counts only energy charged on this GPU.
    pub idle: IdleTrack,
}

impl GpuHold {
    /// How views name where it runs: the GPU index (`gpu1` → `1`), or one `GPU/instance` per MIG
    /// slice (`0/1`).
    pub fn labels(&self) -> Vec<String> {
        let short = self.device.trim_start_matches("gpu");
        if self.mig.is_empty() {
            vec![short.to_string()]
        } else {
            self.mig.iter().map(|m| m.label(short)).collect()
        }
    }
}

/// A process's idle-holder state: judged per GPU, summarised over its GPUs.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct IdleHolder {
    /// Flagged on at least one GPU.
    pub flagged: bool,
    /// Longest flagged streak, seconds (of the last streaks once the process exited).
    pub streak_s: f64,
    /// Σ over its GPUs of the energy charged there while flagged idle, joules, whole session.
    pub wasted_j: f64,
    /// Every GPU it has held in the session, in the order first seen.
    pub gpus: Vec<GpuHold>,
}

impl IdleHolder {
    /// Never flagged, no GPU held.
    pub const NONE: IdleHolder = IdleHolder {
        flagged: false,
        streak_s: 0.0,
        wasted_j: 0.0,
        gpus: Vec::new(),
    };

    /// Advance by one interval ending at session second `now_s`. `seen`: the GPUs it holds in the
    /// latest sample (one entry per device); `energy_by_dev`: its joules per device so far;
    /// `device_id`: the id of a device index.
    pub fn observe(
        &mut self,
        seen: &[GpuUse],
        energy_by_dev: &[f64],
        device_id: impl Fn(usize) -> String,
        now_s: f64,
        cfg: &IdleHolderConfig,
    ) {
        if seen.is_empty() && self.gpus.is_empty() {
            return;
        }
        for g in &mut self.gpus {
            g.holding = false;
        }
        for u in seen {
            let i = match self.gpus.iter().position(|g| g.dev == u.dev) {
                Some(i) => i,
                None => {
                    self.gpus.push(GpuHold {
                        dev: u.dev,
                        device: device_id(u.dev),
                        holding: false,
                        mem_bytes: None,
                        sm_pct: None,
                        mig: Vec::new(),
                        idle: IdleTrack::default(),
                    });
                    self.gpus.len() - 1
                }
            };
            let g = &mut self.gpus[i];
            g.holding = true;
            g.mem_bytes = u.mem_bytes;
            g.sm_pct = u.sm_pct;
            g.mig.clone_from(&u.mig);
        }
        for g in &mut self.gpus {
            if !g.holding {
                g.mem_bytes = None;
                g.sm_pct = None;
                g.mig.clear();
            }
            let charged = energy_by_dev.get(g.dev).copied().unwrap_or(0.0);
            let delta = charged - g.idle.gpu_j_seen;
            g.idle.gpu_j_seen = charged;
            let idle_now = g.holding
                && g.mem_bytes.is_some_and(|m| m >= cfg.min_memory_bytes)
                && g.sm_pct.is_some_and(|u| u < cfg.max_sm_pct);
            g.idle.update(idle_now, now_s, delta, cfg.after_s);
        }
        self.flagged = self.gpus.iter().any(|g| g.idle.flagged);
        self.streak_s = self.flagged_gpus().map(|g| g.idle.streak_s).fold(0.0, f64::max);
        self.wasted_j = self.gpus.iter().map(|g| g.idle.wasted_j).fold(0.0, |a, b| a + b);
    }

    /// The GPUs it is flagged on now.
    pub fn flagged_gpus(&self) -> impl Iterator<Item = &GpuHold> {
        self.gpus.iter().filter(|g| g.idle.flagged)
    }

    /// The GPUs it was ever flagged on (flagged now or with wasted energy), for summaries.
    pub fn idle_gpus(&self) -> impl Iterator<Item = &GpuHold> {
        self.gpus
            .iter()
            .filter(|g| g.idle.flagged || g.idle.wasted_j > 0.0)
    }

    /// Ids of the GPUs it is flagged on now, comma-separated (`gpu1`, `gpu0,gpu1`).
    pub fn flagged_on(&self) -> String {
        let ids: Vec<&str> = self.flagged_gpus().map(|g| g.device.as_str()).collect();
        ids.join(",")
    }

    /// The process exited: nothing is flagged any more; streak lengths and waste stay.
    pub fn clear_flags(&mut self) {
        self.flagged = false;
        for g in &mut self.gpus {
            g.idle.flagged = false;
            g.holding = false;
        }
    }
}

/// A compact GPU list for a narrow column: `gpu1`, `gpu0,1` (ids other than `gpuN` kept whole).
pub fn short_gpu_list<'a>(ids: impl IntoIterator<Item = &'a str>) -> String {
    let mut out = String::new();
    for (i, id) in ids.into_iter().enumerate() {
        if i == 0 {
            out.push_str(id);
        } else {
            out.push(',');
            out.push_str(id.strip_prefix("gpu").unwrap_or(id));
        }
    }
    out
}

impl IdleTrack {
    /// Advance by one interval ending at session second `now_s`.
    pub fn update(&mut self, idle_now: bool, now_s: f64, gpu_j: f64, after_s: f64) {
        if !idle_now {
            self.since_s = None;
            self.streak_s = 0.0;
            self.streak_j = 0.0;
            self.flagged = false;
            return;
        }
        let since = *self.since_s.get_or_insert(now_s);
        self.streak_s = now_s - since;
        self.streak_j += gpu_j;
        if self.flagged {
            self.wasted_j += gpu_j;
        } else if self.streak_s >= after_s {
            self.flagged = true;
            // The whole streak was wasted, not just the part after the flag went up.
            self.wasted_j += self.streak_j;
        }
    }
}

impl Ledger {
    /// Per-process GPU figures and idle streaks, judged per (process, GPU).
    pub(super) fn update_gpu_state(&mut self, cur: &Sample) {
        // Only GPU context holders need pid → key (none on a CPU box).
        let pid_keys = crate::attribution::holder_keys(cur);
        let mut per_proc: FastMap<ProcKey, Vec<GpuUse>> = FastMap::default();
        for dev in cur.devices.iter().filter(|d| d.kind == DeviceKind::Gpu) {
            let Some(i) = self.device_index(&dev.id) else {
                continue;
            };
            for gp in &dev.gpu_processes {
                let key = pid_keys.get(&gp.pid).copied().unwrap_or(ProcKey {
                    pid: gp.pid,
                    starttime: 0,
                });
                let uses = per_proc.entry(key).or_default();
                match uses.iter_mut().find(|u| u.dev == i) {
                    // Compute, graphics and MPS lists can name one pid twice: merge as attribution
                    // does (max memory, max utilisation).
                    Some(u) => {
                        if let Some(m) = gp.mig
                            && !u.mig.contains(&m)
                        {
                            u.mig.push(m);
                        }
                        u.mem_bytes = u.mem_bytes.max(gp.used_mem_bytes);
                        u.sm_pct = match (u.sm_pct, gp.sm_util_pct) {
                            (Some(a), Some(b)) => Some(a.max(b)),
                            (a, b) => a.or(b),
                        };
                    }
                    None => uses.push(GpuUse {
                        dev: i,
                        mem_bytes: gp.used_mem_bytes,
                        sm_pct: gp.sm_util_pct,
                        mig: gp.mig.into_iter().collect(),
                    }),
                }
            }
        }
        let cfg = self.idle_config;
        let now_s = self.session_s;
        let devices = &self.devices;
        let device_id = |i: usize| devices.get(i).map_or_else(String::new, |d| d.id.clone());
        for e in self.running.values_mut() {
            let uses = per_proc.get(&e.key).map_or(&[][..], Vec::as_slice);
            if uses.is_empty() && e.gpu.is_none() {
                // Never held a GPU: nothing to clear or observe.
                continue;
            }
            let g = e.gpu.get_or_insert_with(Box::default);
            if uses.is_empty() {
                g.util_pct = None;
                g.mem_bytes = None;
            } else {
                g.util_pct = uses
                    .iter()
                    .map(|u| u.sm_pct)
                    .try_fold(0.0, |a, u| u.map(|u| a + u));
                g.mem_bytes = Some(uses.iter().filter_map(|u| u.mem_bytes).sum());
            }
            g.idle.observe(uses, &e.energy_by_dev, device_id, now_s, &cfg);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_after_threshold_and_counts_whole_streak() {
        let mut t = IdleTrack::default();
        for i in 0..=10 {
            t.update(true, i as f64 * 60.0, 5.0, 300.0);
        }
        assert!(t.flagged);
        assert_eq!(t.streak_s, 600.0);
        assert_eq!(t.wasted_j, 55.0);
        t.update(false, 660.0, 5.0, 300.0);
        assert!(!t.flagged);
        assert_eq!(t.wasted_j, 55.0, "wasted energy stays after the streak ends");
    }

    #[test]
    fn short_streak_is_not_flagged() {
        let mut t = IdleTrack::default();
        t.update(true, 0.0, 1.0, 300.0);
        t.update(true, 200.0, 1.0, 300.0);
        t.update(false, 250.0, 1.0, 300.0);
        assert!(!t.flagged);
        assert_eq!(t.wasted_j, 0.0);
    }
}
