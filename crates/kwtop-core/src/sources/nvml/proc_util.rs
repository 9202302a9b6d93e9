//! Per-process SM utilisation over one interval from NVML's per-period samples (pure).
//!
//! NVML returns one sample per process and sample period *in which the process was busy*
//! (`nvmlDeviceGetProcessUtilization`): a process busy in 1 of 6 periods has one sample. Its mean
//! over the interval is therefore `Σ its sm values / periods in the interval`, where the periods are
//! counted from the device's own utilisation samples (`nvmlDeviceGetSamples`,
//! `NVML_GPU_UTILIZATION_SAMPLES`, one per period) or, when those are not available, from the time
//! since the last read and the sampling period. Never fewer periods than the samples any one
//! process had (so a mean never exceeds 100 %).

use std::collections::HashMap;

/// One per-process utilisation sample: pid, CPU timestamp (µs), SM %.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProcSample {
    pub pid: u32,
    pub ts_us: u64,
    pub sm: u32,
}

/// What is known about the number of sample periods in the interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Periods {
    /// Counted from the device's utilisation samples newer than the last read.
    Device(u32),
    /// Time since the last read and the sampling period, both µs.
    Elapsed { elapsed_us: f64, period_us: f64 },
    /// Neither: fall back to the most samples any process had.
    Unknown,
}

impl Periods {
    fn count(self) -> Option<u32> {
        match self {
            Periods::Device(n) => Some(n),
            Periods::Elapsed {
                elapsed_us,
                period_us,
            } if period_us > 0.0 && elapsed_us.is_finite() && elapsed_us >= 0.0 => {
                Some((elapsed_us / period_us).round().min(f64::from(u32::MAX)) as u32)
            }
            Periods::Elapsed { .. } | Periods::Unknown => None,
        }
    }
}

/// Mean SM % per pid over the interval: samples with `ts_us > since_us` only, values clamped to
/// 100 (NVML can report more, nvtop bug #110), averaged over the interval's periods.
pub fn mean_sm_pct(samples: &[ProcSample], since_us: u64, periods: Periods) -> HashMap<u32, f64> {
    let mut sums: HashMap<u32, (f64, u32)> = HashMap::new();
    for s in samples.iter().filter(|s| s.ts_us > since_us) {
        let e = sums.entry(s.pid).or_insert((0.0, 0));
        e.0 += f64::from(s.sm.min(100));
        e.1 += 1;
    }
    let most = sums.values().map(|(_, n)| *n).max().unwrap_or(0);
    let n = periods.count().unwrap_or(0).max(most).max(1);
    sums.into_iter()
        .map(|(pid, (sum, _))| (pid, (sum / f64::from(n)).min(100.0)))
        .collect()
}

/// The shortest gap between two samples of the same process (µs): at least one sampling period, and
/// exactly one when a process was busy in two periods in a row. `None` without such a pair.
pub fn min_same_pid_gap_us(samples: &[ProcSample]) -> Option<u64> {
    let mut by_pid: HashMap<u32, Vec<u64>> = HashMap::new();
    for s in samples {
        by_pid.entry(s.pid).or_default().push(s.ts_us);
    }
    by_pid
        .values_mut()
        .filter_map(|ts| {
            ts.sort_unstable();
            ts.dedup();
            ts.windows(2).map(|w| w[1] - w[0]).min()
        })
        .min()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(pid: u32, ts_us: u64, sm: u32) -> ProcSample {
        ProcSample { pid, ts_us, sm }
    }

    #[test]
    fn busy_in_one_of_six_device_periods_is_a_sixth() {
        let m = mean_sm_pct(&[s(1, 1_500_000, 100)], 1_000_000, Periods::Device(6));
        assert!((m[&1] - 100.0 / 6.0).abs() < 1e-9, "{m:?}");
    }

    #[test]
    fn old_samples_are_left_out_and_values_clamped() {
        let m = mean_sm_pct(
            &[s(1, 900, 100), s(1, 1_100, 250), s(2, 1_200, 40)],
            1_000,
            Periods::Device(2),
        );
        assert_eq!(m[&1], 50.0);
        assert_eq!(m[&2], 20.0);
    }

    #[test]
    fn never_fewer_periods_than_one_process_has_samples() {
        // The device reported 1 period but a process has 3 samples: 3 periods, mean ≤ 100 %.
        let m = mean_sm_pct(&[s(1, 1, 90), s(1, 2, 90), s(1, 3, 90)], 0, Periods::Device(1));
        assert_eq!(m[&1], 90.0);
        let m = mean_sm_pct(&[s(1, 1, 90)], 0, Periods::Device(0));
        assert_eq!(m[&1], 90.0);
    }

    #[test]
    fn elapsed_time_over_the_period_counts_periods() {
        let p = Periods::Elapsed {
            elapsed_us: 1_000_000.0,
            period_us: 166_667.0,
        };
        let m = mean_sm_pct(&[s(7, 10, 100)], 0, p);
        assert!((m[&7] - 100.0 / 6.0).abs() < 1e-9, "{m:?}");
        // A nonsensical period is ignored: the most samples any process had (1).
        let bad = Periods::Elapsed {
            elapsed_us: 1_000_000.0,
            period_us: 0.0,
        };
        assert_eq!(mean_sm_pct(&[s(7, 10, 100)], 0, bad)[&7], 100.0);
        assert_eq!(mean_sm_pct(&[s(7, 10, 100)], 0, Periods::Unknown)[&7], 100.0);
    }

    #[test]
    fn period_from_the_same_process_not_across_processes() {
        // pids 1 and 2 sampled 10 µs apart (jitter), pid 1 twice 166 667 µs apart.
        let v = [s(1, 1_000_000, 50), s(2, 1_000_010, 50), s(1, 1_166_667, 50)];
        assert_eq!(min_same_pid_gap_us(&v), Some(166_667));
        assert_eq!(min_same_pid_gap_us(&[s(1, 5, 1), s(2, 6, 1)]), None);
    }
}
