//! The only place that touches `/proc`, `/sys` and NVML (DESIGN §3), and reads clocks for samples.
//!
//! Each source sits behind a small trait and returns plain data with failures as values (an `error`
//! string on the reading), never a panic. [`Sampler`] combines them into one [`Sample`] per tick and
//! collects one-time notices ("no NVIDIA driver found", "RAPL not readable because …").
//!
//! Energy counters wrap (a 60 J RAPL range at 50 W wraps every 1.2 s), so between samples the
//! drivers wait with [`Sampler::wait_until`], which reads only the counters, at least once a second
//! and four times per wrap at the observed rate; `counters` unwraps them and every `Sample` carries
//! the unwrapped total.

pub mod amd_energy;
pub mod counters;
pub mod drm;
pub mod estimate;
pub mod nvml;
pub mod openfiles;
pub mod perf_rapl;
pub mod powercap;
pub mod procfs;
pub mod resident;

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::sample::{CpuTimes, DeviceReading, EnergyCounter, ProcessReading, Sample};

/// Host name for headers and exports (sanitized: it is set by whoever administers the machine).
pub fn host_name() -> String {
    nix::unistd::gethostname()
        .ok()
        .map(|h| crate::sanitize::sanitize_str(&h.to_string_lossy(), 64))
        .unwrap_or_else(|| "localhost".into())
}

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

/// One device's raw energy counter read between samples: `(device id, counter or why not)`.
pub type CounterRead = (String, Result<EnergyCounter, String>);

/// The counters in full readings: a device without a counter and without an error is left out.
fn counters_of(readings: Vec<DeviceReading>) -> Vec<CounterRead> {
    readings
        .into_iter()
        .filter_map(|r| match (r.energy, r.error) {
            (Some(c), _) => Some((r.id, Ok(c))),
            (None, Some(why)) => Some((r.id, Err(why))),
            (None, None) => None,
        })
        .collect()
}

/// CPU package and DRAM energy (RAPL) or the CPU estimate.
pub trait CpuEnergySource: Send {
    fn read(&mut self) -> Vec<DeviceReading>;
    /// Only the energy counters, cheaply, for reads between samples. Default: a full read.
    fn read_counters(&mut self) -> Vec<CounterRead> {
        counters_of(self.read())
    }
    fn take_notices(&mut self) -> Vec<String> {
        Vec::new()
    }
}

/// GPUs (NVML).
pub trait GpuSource: Send {
    fn read(&mut self) -> Vec<DeviceReading>;
    /// Only the energy counters, cheaply, for reads between samples. Default: a full read.
    fn read_counters(&mut self) -> Vec<CounterRead> {
        counters_of(self.read())
    }
    fn take_notices(&mut self) -> Vec<String> {
        Vec::new()
    }
    /// Static facts for recording headers (driver version, GPU models).
    fn describe(&self) -> Vec<String> {
        Vec::new()
    }
}

/// Several GPU sources read as one (NVML's `gpu0…` first, then DRM's cards).
pub struct GpuChain(pub Vec<Box<dyn GpuSource>>);

impl GpuSource for GpuChain {
    fn read(&mut self) -> Vec<DeviceReading> {
        self.0.iter_mut().flat_map(|g| g.read()).collect()
    }
    fn read_counters(&mut self) -> Vec<CounterRead> {
        self.0.iter_mut().flat_map(|g| g.read_counters()).collect()
    }
    fn take_notices(&mut self) -> Vec<String> {
        self.0.iter_mut().flat_map(|g| g.take_notices()).collect()
    }
    fn describe(&self) -> Vec<String> {
        self.0.iter().flat_map(|g| g.describe()).collect()
    }
}

/// Where to read from; all paths configurable so tests and containers can point elsewhere.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceConfig {
    pub proc_root: PathBuf,
    pub powercap_root: PathBuf,
    /// sysfs: AMD/Intel GPU cards (`class/drm`) and the CPU estimate's platform detection (DMI,
    /// online CPUs, cgroup quotas).
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
    /// Energy counters unwrapped across all reads.
    counters: counters::CounterTracker,
    /// When counters were last read (by a sample or a poll).
    counters_read_at: Instant,
    /// The CPU's vendor ("Intel", "AMD", "Arm") from `/proc/cpuinfo`, for CPU and DRAM readings
    /// whose source does not name one (RAPL, perf_event).
    cpu_vendor: Option<String>,
}

/// Longest sleep of [`Sampler::wait_until`] between looks at its stop condition.
const STOP_CHECK: Duration = Duration::from_millis(100);

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
            counters: counters::CounterTracker::new(),
            counters_read_at: Instant::now(),
            cpu_vendor: None,
        }
    }

    /// The real sources for this machine, as configured.
    pub fn from_config(cfg: &SourceConfig) -> Self {
        let procs = procfs::ProcFs::new(cfg.proc_root.clone());
        let cpu = powercap::cpu_source(&cfg.powercap_root, &cfg.proc_root, &cfg.sysfs_root, &cfg.estimate);
        let mut notices = Vec::new();
        let cpu_vendor = std::fs::read(cfg.proc_root.join("cpuinfo"))
            .ok()
            .and_then(|b| estimate::cpuinfo::parse(&String::from_utf8_lossy(&b)).vendor)
            .map(|v| estimate::cpu_vendor(&v));
        let mut gpus: Vec<Box<dyn GpuSource>> = Vec::new();
        let mut nvml_count = 0;
        if cfg.nvml {
            match nvml::NvmlSource::open(cfg.nvml_library.as_deref()) {
                Ok(s) => {
                    nvml_count = s.device_count();
                    gpus.push(Box::new(s));
                }
                Err(why) => notices.push(why),
            }
        } else {
            notices.push("NVML disabled in config ([sources] nvml = false): CPU only".into());
        }
        // AMD and Intel cards number after NVML's; NVIDIA cards in sysfs are left to NVML.
        if let Some(d) = drm::DrmSource::open(&cfg.sysfs_root, &cfg.proc_root, nvml_count, !gpus.is_empty()) {
            if d.card_count() > 0 {
                // "no NVIDIA driver: CPU only" is not the whole story with AMD or Intel cards.
                for n in &mut notices {
                    if let Some(head) = n.strip_suffix(": CPU only") {
                        *n = format!("{head}: AMD/Intel GPUs only");
                    }
                }
            }
            gpus.push(Box::new(d));
        }
        let gpu: Option<Box<dyn GpuSource>> = match gpus.len() {
            0 => None,
            1 => gpus.pop(),
            _ => Some(Box::new(GpuChain(gpus))),
        };
        let mut s = Sampler::new(Box::new(procs), cpu, gpu);
        s.notices = notices;
        s.cpu_vendor = cpu_vendor;
        s
    }

    /// Read everything once. GPUs are read first and processes last, so every pid NVML names is
    /// already alive when `/proc` is scanned. Energy counters are unwrapped (see `counters`).
    pub fn sample(&mut self) -> Sample {
        let mut devices = Vec::new();
        if let Some(g) = &mut self.gpu {
            let read = g.read();
            let at = self.origin.elapsed().as_secs_f64();
            for mut r in read {
                self.counters.apply(&mut r, at);
                devices.push(r);
            }
        }
        let read = self.cpu.read();
        let at = self.origin.elapsed().as_secs_f64();
        for mut r in read {
            self.counters.apply(&mut r, at);
            if r.vendor.is_none() {
                r.vendor.clone_from(&self.cpu_vendor);
            }
            devices.push(r);
        }
        self.counters_read_at = Instant::now();
        // The sample's time is when the energy counters were read, not after the /proc scan: a
        // first scan that reads every process's static facts can take tens of ms longer than the
        // next, and power = energy / Δt would be off by that much (8 % on a 500 ms snapshot).
        let mono_s = at;
        let ps = self.procs.read();
        self.check_pid_namespace(&devices, &ps.processes);
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

    /// Read only the energy counters of the devices already tracked, so no wrap goes unseen.
    pub fn poll_counters(&mut self) {
        let mut reads = Vec::new();
        if let Some(g) = &mut self.gpu {
            let r = g.read_counters();
            reads.push((r, self.origin.elapsed().as_secs_f64()));
        }
        let r = self.cpu.read_counters();
        reads.push((r, self.origin.elapsed().as_secs_f64()));
        for (list, at) in reads {
            for (id, raw) in list {
                if self.counters.knows(&id) {
                    self.counters.step(&id, raw, at);
                }
            }
        }
        self.counters_read_at = Instant::now();
    }

    /// How long the counters may go unread now, seconds (at most 1 s; see `counters`).
    pub fn poll_period_s(&self) -> f64 {
        self.counters.poll_period_s()
    }

    /// Wait until `deadline`, reading the energy counters whenever they are due and returning early
    /// once `stop()` is true (checked at least every 100 ms). Every driver waits between samples
    /// with this, never with a plain sleep. With an interval no longer than the poll period (the
    /// 1 s default) it reads nothing extra.
    pub fn wait_until(&mut self, deadline: Instant, stop: impl Fn() -> bool) {
        self.wait(deadline, stop, STOP_CHECK.as_secs_f64());
    }

    /// Wait until `deadline`, reading the energy counters whenever they are due, with no stop check
    /// in between: for loops that look at their stop condition after each sample (the live monitor's
    /// sampler thread), so an idle monitor wakes once per interval, not ten times a second.
    pub fn sleep_until(&mut self, deadline: Instant) {
        self.wait(deadline, || false, f64::INFINITY);
    }

    fn wait(&mut self, deadline: Instant, stop: impl Fn() -> bool, max_sleep_s: f64) {
        let origin = self.origin;
        let secs = move |t: Instant| t.saturating_duration_since(origin).as_secs_f64();
        let deadline_s = secs(deadline);
        while !stop() {
            let period = self
                .counters
                .has_counters()
                .then(|| self.counters.poll_period_s());
            let now_s = self.origin.elapsed().as_secs_f64();
            let last_s = secs(self.counters_read_at);
            match counters::next_wait(now_s, deadline_s, last_s, period, max_sleep_s) {
                counters::Wait::Done => return,
                counters::Wait::ReadCounters => self.poll_counters(),
                counters::Wait::Sleep(s) => std::thread::sleep(Duration::from_secs_f64(s)),
            }
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
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering as AtomicOrdering};

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
                        child_ticks: 0,
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
                    ..Default::default()
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

    /// A RAPL-like package drawing `watts` in real time, wrapping after `max_uj`; counts reads.
    struct LiveCounter {
        start: Instant,
        watts: f64,
        max_uj: Option<u64>,
        polls: Arc<AtomicU32>,
    }
    impl LiveCounter {
        fn counter(&self) -> EnergyCounter {
            let uj = (self.watts * self.start.elapsed().as_secs_f64() * 1e6) as u64;
            EnergyCounter {
                value_uj: self.max_uj.map_or(uj, |m| uj % (m + 1)),
                wrap_uj: self.max_uj,
            }
        }
    }
    impl CpuEnergySource for LiveCounter {
        fn read(&mut self) -> Vec<DeviceReading> {
            let mut d = DeviceReading::new("cpu0", DeviceKind::Cpu, "package-0 (fake)");
            d.energy = Some(self.counter());
            vec![d]
        }
        fn read_counters(&mut self) -> Vec<CounterRead> {
            self.polls.fetch_add(1, AtomicOrdering::Relaxed);
            vec![("cpu0".into(), Ok(self.counter()))]
        }
    }
    impl GpuSource for LiveCounter {
        fn read(&mut self) -> Vec<DeviceReading> {
            let mut d = DeviceReading::new("gpu0", DeviceKind::Gpu, "GPU (fake)");
            d.energy = Some(self.counter());
            vec![d]
        }
        fn read_counters(&mut self) -> Vec<CounterRead> {
            self.polls.fetch_add(1, AtomicOrdering::Relaxed);
            vec![("gpu0".into(), Ok(self.counter()))]
        }
    }

    fn live(watts: f64, max_uj: Option<u64>) -> (LiveCounter, Arc<AtomicU32>) {
        let polls = Arc::new(AtomicU32::new(0));
        let c = LiveCounter {
            start: Instant::now(),
            watts,
            max_uj,
            polls: Arc::clone(&polls),
        };
        (c, polls)
    }

    fn energy_uj(s: &Sample, id: &str) -> u64 {
        let d = s.devices.iter().find(|d| d.id == id).expect("device");
        assert_eq!(
            d.energy.and_then(|e| e.wrap_uj),
            None,
            "samples carry the unwrapped total"
        );
        d.energy.map_or(0, |e| e.value_uj)
    }

    /// Issue 10 item 1: a counter that wraps every 200 ms is read between samples often enough
    /// that a 400 ms interval books all of its energy.
    #[test]
    fn waiting_reads_a_fast_wrapping_counter_and_books_every_wrap() {
        let (cpu, polls) = live(10.0, Some(2_000_000)); // 2 J range at 10 W
        let mut s = Sampler::new(Box::new(Procs(vec![])), Box::new(cpu), None);
        let a = s.sample();
        // real-time: the fake counter advances with the wall clock while the sampler waits.
        // `sleep_until` (no stop checks) still wakes for every due counter read.
        s.sleep_until(Instant::now() + Duration::from_millis(400));
        let b = s.sample();
        let got_j = (energy_uj(&b, "cpu0") - energy_uj(&a, "cpu0")) as f64 * 1e-6;
        let want_j = 10.0 * (b.mono_s - a.mono_s);
        assert!(
            (got_j - want_j).abs() <= 0.1 * want_j,
            "{got_j} J booked, {want_j} J drawn"
        );
        let n = polls.load(AtomicOrdering::Relaxed);
        // One probe at 100 ms, then every 50 ms (a quarter of a wrap): 6 or 7 on an idle machine.
        assert!((3..=8).contains(&n), "{n} counter reads");
        assert!((s.poll_period_s() - 0.05).abs() < 0.01, "{}", s.poll_period_s());
    }

    /// A first /proc scan slower than the next does not stretch the interval the energy is
    /// divided by: the sample's time is when its counters were read.
    #[test]
    fn the_sample_time_is_the_counter_read_not_the_end_of_the_proc_scan() {
        struct SlowFirst(u32);
        impl ProcessSource for SlowFirst {
            fn read(&mut self) -> ProcSnapshot {
                self.0 += 1;
                if self.0 == 1 {
                    // real-time: a first scan that reads every process's static facts.
                    std::thread::sleep(Duration::from_millis(80));
                }
                ProcSnapshot {
                    ticks_per_s: 100,
                    ..Default::default()
                }
            }
        }
        let (cpu, _) = live(100.0, None);
        let mut s = Sampler::new(Box::new(SlowFirst(0)), Box::new(cpu), None);
        let a = s.sample();
        // real-time: the fake counter advances with the wall clock.
        s.sleep_until(Instant::now() + Duration::from_millis(200));
        let b = s.sample();
        let watts = (energy_uj(&b, "cpu0") - energy_uj(&a, "cpu0")) as f64 * 1e-6 / (b.mono_s - a.mono_s);
        assert!((watts - 100.0).abs() < 5.0, "{watts} W for a 100 W counter");
    }

    /// CPU readings whose source does not name a vendor (RAPL, perf_event) get the CPU's.
    #[test]
    fn cpu_readings_name_the_cpu_vendor() {
        let (cpu, _) = live(10.0, None);
        let mut s = Sampler::new(Box::new(Procs(vec![])), Box::new(cpu), None);
        s.cpu_vendor = Some("Intel".into());
        let r = s.sample();
        assert_eq!(r.devices[0].vendor.as_deref(), Some("Intel"));
    }

    /// With the interval no longer than the poll period nothing extra is read, whatever the device.
    #[test]
    fn waiting_within_the_poll_period_reads_nothing_extra() {
        let (cpu, cpu_polls) = live(10.0, Some(262_143_328_850));
        let (gpu, gpu_polls) = live(300.0, None);
        let mut s = Sampler::new(Box::new(Procs(vec![])), Box::new(cpu), Some(Box::new(gpu)));
        s.sample();
        // real-time: the first wait probes the wrapping counter once to learn its rate.
        s.wait_until(Instant::now() + Duration::from_millis(150), || false);
        assert_eq!(cpu_polls.load(AtomicOrdering::Relaxed), 1);
        s.sample();
        assert_eq!(s.poll_period_s(), counters::MAX_POLL_S);
        let before = (
            cpu_polls.load(AtomicOrdering::Relaxed),
            gpu_polls.load(AtomicOrdering::Relaxed),
        );
        // real-time: a 300 ms interval is inside the 1 s period.
        s.wait_until(Instant::now() + Duration::from_millis(300), || false);
        let after = (
            cpu_polls.load(AtomicOrdering::Relaxed),
            gpu_polls.load(AtomicOrdering::Relaxed),
        );
        assert_eq!(before, after);
        let t = Instant::now();
        s.wait_until(Instant::now() + Duration::from_secs(10), || true);
        assert!(
            t.elapsed() < Duration::from_millis(100),
            "stop is honoured at once"
        );
    }

    /// NVML's GPUs and DRM's cards read as one source, NVML's first, counters from both.
    #[test]
    fn a_gpu_chain_reads_every_source_in_order() {
        let (drm, polls) = live(100.0, None);
        let mut chain = GpuChain(vec![Box::new(Gpu(vec![10])), Box::new(drm)]);
        let ids: Vec<String> = chain.read().into_iter().map(|d| d.id).collect();
        assert_eq!(
            ids,
            ["gpu0", "gpu0"].map(String::from),
            "ids are the sources' own"
        );
        let counters = chain.read_counters();
        assert_eq!(counters.len(), 1, "the fake NVML GPU has no counter");
        assert_eq!(polls.load(AtomicOrdering::Relaxed), 1);
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
