//! The only place that touches `/proc`, `/sys` and NVML (DESIGN §3), and reads clocks for samples.
//!
//! Each source sits behind a small trait and returns plain data with failures as values (an `error`
//! string on the reading), never a panic. [`Sampler`] combines them into one [`Sample`] per tick and
//! collects one-time notices ("no NVIDIA driver found", "RAPL not readable because …").

pub mod estimate;
pub mod nvml;
pub mod powercap;
pub mod procfs;

use std::path::PathBuf;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::sample::{CpuTimes, DeviceReading, ProcessReading, Sample};

/// What a process source reads at one tick.
#[derive(Debug, Clone, Default)]
pub struct ProcSnapshot {
    pub cpu_times: Option<CpuTimes>,
    pub uptime_s: Option<f64>,
    pub ticks_per_s: u64,
    pub processes: Vec<ProcessReading>,
}

/// Processes and system CPU time (`/proc`).
pub trait ProcessSource: Send {
    fn read(&mut self) -> ProcSnapshot;
    /// One-time explanations of what cannot be seen (hidden pids, unreadable files).
    fn take_notices(&mut self) -> Vec<String> {
        Vec::new()
    }
}

/// CPU package and DRAM energy (RAPL) or the CPU estimate.
pub trait CpuEnergySource: Send {
    fn read(&mut self) -> Vec<DeviceReading>;
    fn take_notices(&mut self) -> Vec<String> {
        Vec::new()
    }
}

/// GPUs (NVML).
pub trait GpuSource: Send {
    fn read(&mut self) -> Vec<DeviceReading>;
    fn take_notices(&mut self) -> Vec<String> {
        Vec::new()
    }
    /// Static facts for recording headers (driver version, GPU models).
    fn describe(&self) -> Vec<String> {
        Vec::new()
    }
}

/// Where to read from; all paths configurable so tests and containers can point elsewhere.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceConfig {
    pub proc_root: PathBuf,
    pub powercap_root: PathBuf,
    /// sysfs for the CPU estimate's platform detection (DMI, online CPUs, cgroup quotas).
    pub sysfs_root: PathBuf,
    /// Use NVML at all.
    pub nvml: bool,
    /// Explicit NVML library path; `None` = the system's `libnvidia-ml.so.1`.
    pub nvml_library: Option<PathBuf>,
    /// CPU estimate parameters used when RAPL is absent or unreadable.
    pub estimate: estimate::EstimateConfig,
}

/// Reads all sources once per tick.
pub struct Sampler {
    procs: Box<dyn ProcessSource>,
    cpu: Box<dyn CpuEnergySource>,
    gpu: Option<Box<dyn GpuSource>>,
    origin: Instant,
    notices: Vec<String>,
    /// Whether the "GPU processes not visible here" notice was given.
    pidns_noted: bool,
    /// GPU pids missing from /proc at the previous tick (a pid must be missing twice in a row, so a
    /// process that exits between the NVML and the /proc read does not trigger the notice).
    pidns_missing: Vec<u32>,
}

impl Sampler {
    pub fn new(
        procs: Box<dyn ProcessSource>,
        cpu: Box<dyn CpuEnergySource>,
        gpu: Option<Box<dyn GpuSource>>,
    ) -> Self {
        Sampler {
            procs,
            cpu,
            gpu,
            origin: Instant::now(),
            notices: Vec::new(),
            pidns_noted: false,
            pidns_missing: Vec::new(),
        }
    }

    /// The real sources for this machine, as configured.
    pub fn from_config(cfg: &SourceConfig) -> Self {
        let procs = procfs::ProcFs::new(cfg.proc_root.clone());
        let cpu = powercap::cpu_source(&cfg.powercap_root, &cfg.proc_root, &cfg.sysfs_root, &cfg.estimate);
        let mut notices = Vec::new();
        let gpu: Option<Box<dyn GpuSource>> = if cfg.nvml {
            match nvml::NvmlSource::open(cfg.nvml_library.as_deref()) {
                Ok(s) => Some(Box::new(s)),
                Err(why) => {
                    notices.push(why);
                    None
                }
            }
        } else {
            notices.push("NVML disabled in config ([sources] nvml = false): CPU only".into());
            None
        };
        let mut s = Sampler::new(Box::new(procs), cpu, gpu);
        s.notices = notices;
        s
    }

    /// Read everything once. GPUs are read first and processes last, so every pid NVML names is
    /// already alive when `/proc` is scanned.
    pub fn sample(&mut self) -> Sample {
        let mut devices = Vec::new();
        if let Some(g) = &mut self.gpu {
            devices.extend(g.read());
        }
        devices.extend(self.cpu.read());
        let ps = self.procs.read();
        self.check_pid_namespace(&devices, &ps.processes);
        let mono_s = self.origin.elapsed().as_secs_f64();
        let wall_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        Sample {
            mono_s,
            wall_ms,
            uptime_s: ps.uptime_s,
            ticks_per_s: ps.ticks_per_s,
            cpu_times: ps.cpu_times,
            processes: ps.processes,
            devices,
        }
    }

    /// NVML reports host pids; inside a container without `--pid=host` they match nothing in our
    /// /proc. Say so once, with the fix, instead of leaving unexplained `not visible` rows.
    fn check_pid_namespace(&mut self, devices: &[DeviceReading], processes: &[ProcessReading]) {
        if self.pidns_noted {
            return;
        }
        let gpu_pids: Vec<u32> = devices
            .iter()
            .flat_map(|d| d.gpu_processes.iter().map(|p| p.pid))
            .collect();
        if gpu_pids.is_empty() {
            return;
        }
        let missing: Vec<u32> = gpu_pids
            .iter()
            .copied()
            .filter(|pid| !processes.iter().any(|p| p.key.pid == *pid))
            .collect();
        let twice = missing
            .iter()
            .filter(|pid| self.pidns_missing.contains(pid))
            .count();
        self.pidns_missing = missing;
        if twice > 0 {
            let missing = self.pidns_missing.len();
            self.pidns_noted = true;
            self.notices.push(format!(
                "{missing} of {} GPU processes are not in this /proc (NVML reports host pids: in a \
                 container, run with --pid=host to see their names); their energy is kept under their pid",
                gpu_pids.len()
            ));
        }
    }

    /// Static facts about the sources (driver, GPU models) for recording headers.
    pub fn describe(&self) -> Vec<String> {
        self.gpu.as_ref().map(|g| g.describe()).unwrap_or_default()
    }

    /// One-time notices gathered since the last call.
    pub fn take_notices(&mut self) -> Vec<String> {
        let mut out = std::mem::take(&mut self.notices);
        if let Some(g) = &mut self.gpu {
            out.extend(g.take_notices());
        }
        out.extend(self.cpu.take_notices());
        out.extend(self.procs.take_notices());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::{DeviceKind, GpuProcess, ProcInfo, ProcKey};

    struct Procs(Vec<u32>);
    impl ProcessSource for Procs {
        fn read(&mut self) -> ProcSnapshot {
            ProcSnapshot {
                ticks_per_s: 100,
                processes: self
                    .0
                    .iter()
                    .map(|&pid| ProcessReading {
                        key: ProcKey { pid, starttime: 1 },
                        ppid: 1,
                        cpu_ticks: 0,
                        info: std::sync::Arc::new(ProcInfo::default()),
                    })
                    .collect(),
                ..Default::default()
            }
        }
    }
    struct NoCpu;
    impl CpuEnergySource for NoCpu {
        fn read(&mut self) -> Vec<DeviceReading> {
            Vec::new()
        }
    }
    struct Gpu(Vec<u32>);
    impl GpuSource for Gpu {
        fn read(&mut self) -> Vec<DeviceReading> {
            let mut d = DeviceReading::new("gpu0", DeviceKind::Gpu, "GPU");
            d.gpu_processes = self
                .0
                .iter()
                .map(|&pid| GpuProcess {
                    pid,
                    used_mem_bytes: Some(1 << 30),
                    sm_util_pct: Some(0.0),
                })
                .collect();
            vec![d]
        }
    }

    #[test]
    fn host_pids_not_in_our_proc_are_explained_once() {
        let mut s = Sampler::new(
            Box::new(Procs(vec![1, 10])),
            Box::new(NoCpu),
            Some(Box::new(Gpu(vec![10, 99]))),
        );
        s.sample();
        assert!(
            s.take_notices().is_empty(),
            "one miss may be a process that just exited"
        );
        s.sample();
        let n = s.take_notices();
        assert_eq!(n.len(), 1, "{n:?}");
        assert!(
            n[0].contains("1 of 2 GPU processes") && n[0].contains("--pid=host"),
            "{n:?}"
        );
        s.sample();
        assert!(s.take_notices().is_empty(), "said once");
    }

    #[test]
    fn visible_gpu_pids_give_no_notice() {
        let mut s = Sampler::new(
            Box::new(Procs(vec![10])),
            Box::new(NoCpu),
            Some(Box::new(Gpu(vec![10]))),
        );
        s.sample();
        s.sample();
        assert!(s.take_notices().is_empty());
    }
}
