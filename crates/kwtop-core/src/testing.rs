//! Builders of synthetic [`Sample`]s for unit tests, integration tests, benches and examples: one
//! place that knows how a sample, a process, an energy counter and a GPU holder are put together.
//!
//! Test support only. It is public so that `tests/`, `benches/` and `examples/` can reach it, hidden
//! from the docs, and never called by the `kwtop` binary: dead code there, with no behaviour of its
//! own. Every builder starts from plain defaults (ppid 1, no child ticks, `USER_HZ` 100, no counter
//! wrap) and each test sets the values its assertions depend on.

use std::sync::Arc;

pub mod drm;
pub mod host;
pub mod procfs;

use crate::sample::{
    CpuEstimate, CpuTimes, DeviceKind, DeviceReading, EnergyCounter, EstimateModel, GpuProcess, MigInstance,
    ProcInfo, ProcKey, ProcessReading, Sample,
};

/// A sample at `t` seconds (monotonic), built step by step; see [`sample_at`].
#[derive(Debug, Clone)]
pub struct SampleBuilder(Sample);

/// A sample at `t` seconds: wall clock `t × 1000` ms, no uptime, 100 ticks per second, no
/// `/proc/stat`, no processes, no devices.
pub fn sample_at(t: f64) -> SampleBuilder {
    SampleBuilder(Sample {
        mono_s: t,
        wall_ms: (t * 1000.0) as i64,
        uptime_s: None,
        ticks_per_s: 100,
        cpu_times: None,
        processes: Vec::new(),
        devices: Vec::new(),
    })
}

impl SampleBuilder {
    /// Wall clock `origin_ms + t × 1000` ms.
    pub fn wall_origin_ms(mut self, origin_ms: i64) -> Self {
        self.0.wall_ms = origin_ms + (self.0.mono_s * 1000.0) as i64;
        self
    }

    /// Seconds since boot `origin_s + t`.
    pub fn uptime_origin(mut self, origin_s: f64) -> Self {
        self.0.uptime_s = Some(origin_s + self.0.mono_s);
        self
    }

    /// Wall clock set outright, ms since the epoch (when it does not follow `t`).
    pub fn wall_ms(mut self, ms: i64) -> Self {
        self.0.wall_ms = ms;
        self
    }

    /// Seconds since boot set outright.
    pub fn uptime_s(mut self, s: f64) -> Self {
        self.0.uptime_s = Some(s);
        self
    }

    /// System-wide CPU time from `/proc/stat`, cumulative ticks.
    pub fn cpu(mut self, busy: u64, idle: u64) -> Self {
        self.0.cpu_times = Some(CpuTimes { busy, idle });
        self
    }

    pub fn procs(mut self, procs: impl IntoIterator<Item = ProcessReading>) -> Self {
        self.0.processes.extend(procs);
        self
    }

    pub fn devices(mut self, devices: impl IntoIterator<Item = DeviceReading>) -> Self {
        self.0.devices.extend(devices);
        self
    }

    pub fn build(self) -> Sample {
        self.0
    }
}

impl From<SampleBuilder> for Sample {
    fn from(b: SampleBuilder) -> Sample {
        b.build()
    }
}

/// A process built step by step; see [`process`].
#[derive(Debug, Clone)]
pub struct ProcBuilder {
    reading: ProcessReading,
    info: ProcInfo,
    shared: Option<Arc<ProcInfo>>,
}

/// Process `(pid, starttime)` with `ticks` cumulative CPU ticks: ppid 1, no child ticks, empty
/// [`ProcInfo`].
pub fn process(pid: u32, starttime: u64, ticks: u64) -> ProcBuilder {
    ProcBuilder {
        reading: ProcessReading {
            key: ProcKey { pid, starttime },
            ppid: 1,
            cpu_ticks: ticks,
            child_ticks: 0,
            info: Arc::default(),
        },
        info: ProcInfo::default(),
        shared: None,
    }
}

impl ProcBuilder {
    pub fn ppid(mut self, ppid: u32) -> Self {
        self.reading.ppid = ppid;
        self
    }

    /// cutime + cstime of waited-for children, cumulative ticks.
    pub fn child_ticks(mut self, ticks: u64) -> Self {
        self.reading.child_ticks = ticks;
        self
    }

    pub fn comm(mut self, comm: impl Into<String>) -> Self {
        self.info.comm = comm.into();
        self
    }

    pub fn cmdline(mut self, cmdline: impl Into<String>) -> Self {
        self.info.cmdline = cmdline.into();
        self
    }

    pub fn user(mut self, user: impl Into<String>) -> Self {
        self.info.user = user.into();
        self
    }

    pub fn uid(mut self, uid: u32) -> Self {
        self.info.uid = Some(uid);
        self
    }

    /// Share this [`ProcInfo`] (as the sampler does between samples) instead of building one.
    pub fn info(mut self, info: &Arc<ProcInfo>) -> Self {
        self.shared = Some(Arc::clone(info));
        self
    }

    pub fn build(self) -> ProcessReading {
        ProcessReading {
            info: self.shared.unwrap_or_else(|| Arc::new(self.info)),
            ..self.reading
        }
    }
}

impl From<ProcBuilder> for ProcessReading {
    fn from(b: ProcBuilder) -> ProcessReading {
        b.build()
    }
}

/// A device with a cumulative energy counter of `uj` microjoules that never wraps (a RAPL domain
/// read through the sampler's unwrapping, an NVML total).
pub fn counter(id: impl Into<String>, kind: DeviceKind, name: impl Into<String>, uj: u64) -> DeviceReading {
    let mut d = DeviceReading::new(id, kind, name);
    d.energy = Some(EnergyCounter {
        value_uj: uj,
        wrap_uj: None,
    });
    d
}

/// A raw hardware counter that wraps to 0 after `wrap_uj` (RAPL `max_energy_range_uj`), as in
/// recordings made before the sampler unwrapped it. `None` = never wraps.
pub fn wrapping(mut d: DeviceReading, wrap_uj: Option<u64>) -> DeviceReading {
    if let Some(e) = d.energy.as_mut() {
        e.wrap_uj = wrap_uj;
    }
    d
}

/// A GPU with an energy counter of `uj` microjoules, an optional power limit and the processes
/// holding a context on it.
pub fn gpu(
    id: impl Into<String>,
    name: impl Into<String>,
    uj: u64,
    limit_w: Option<f64>,
    holders: Vec<GpuProcess>,
) -> DeviceReading {
    let mut g = counter(id, DeviceKind::Gpu, name, uj);
    g.power_limit_w = limit_w;
    g.gpu_processes = holders;
    g
}

/// A process holding `mem_bytes` of device memory at `sm_pct` SM utilisation (`None`: the
/// utilisation query failed), not in a MIG slice.
pub fn holder(pid: u32, mem_bytes: u64, sm_pct: Option<f64>) -> GpuProcess {
    GpuProcess {
        pid,
        used_mem_bytes: Some(mem_bytes),
        sm_util_pct: sm_pct,
        mig: None,
    }
}

/// The holder runs in MIG GPU instance `gpu_instance_id`, compute instance `compute_instance_id`.
pub fn in_mig(mut gp: GpuProcess, gpu_instance_id: u32, compute_instance_id: Option<u32>) -> GpuProcess {
    gp.mig = Some(MigInstance {
        gpu_instance_id,
        compute_instance_id,
    });
    gp
}

/// A CPU without a readable counter, modelled by `estimate` (no energy, no error set).
pub fn estimated(id: impl Into<String>, name: impl Into<String>, estimate: CpuEstimate) -> DeviceReading {
    let mut d = DeviceReading::new(id, DeviceKind::Cpu, name);
    d.estimate = Some(estimate);
    d
}

/// The linear power model `tdp_w × (idle_fraction + (1 − idle_fraction)·load)` for the whole
/// machine (`usable_share` 1).
pub fn linear(tdp_w: f64, idle_fraction: f64, tdp_source: impl Into<String>) -> CpuEstimate {
    CpuEstimate {
        tdp_w,
        idle_fraction,
        model: EstimateModel::Linear,
        tdp_source: tdp_source.into(),
        usable_share: 1.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builders_fill_what_they_are_given_and_plain_defaults_elsewhere() {
        let info = Arc::new(ProcInfo {
            comm: "shared".into(),
            ..Default::default()
        });
        let s = sample_at(2.5)
            .wall_origin_ms(1_000)
            .uptime_origin(100.0)
            .cpu(30, 70)
            .procs([
                process(7, 3, 40)
                    .ppid(2)
                    .child_ticks(5)
                    .comm("a")
                    .user("ana")
                    .uid(1000)
                    .build(),
                process(8, 4, 0).info(&info).build(),
            ])
            .devices([
                wrapping(counter("cpu0", DeviceKind::Cpu, "package-0", 9), Some(100)),
                gpu(
                    "gpu0",
                    "H100",
                    11,
                    Some(700.0),
                    vec![in_mig(holder(7, 1 << 30, Some(50.0)), 1, Some(0))],
                ),
            ])
            .build();
        assert_eq!(
            (s.mono_s, s.wall_ms, s.uptime_s, s.ticks_per_s),
            (2.5, 3_500, Some(102.5), 100)
        );
        assert_eq!(s.cpu_times, Some(CpuTimes { busy: 30, idle: 70 }));
        let p = &s.processes[0];
        assert_eq!(
            (p.key.pid, p.key.starttime, p.ppid, p.cpu_ticks, p.child_ticks),
            (7, 3, 2, 40, 5)
        );
        assert_eq!(
            (p.info.comm.as_str(), p.info.user.as_str(), p.info.uid),
            ("a", "ana", Some(1000))
        );
        assert!(Arc::ptr_eq(&s.processes[1].info, &info));
        assert_eq!((s.processes[1].ppid, s.processes[1].child_ticks), (1, 0));
        assert_eq!(
            s.devices[0].energy,
            Some(EnergyCounter {
                value_uj: 9,
                wrap_uj: Some(100)
            })
        );
        let g = &s.devices[1];
        assert_eq!(
            (g.kind, g.power_limit_w, g.energy.map(|e| e.value_uj)),
            (DeviceKind::Gpu, Some(700.0), Some(11))
        );
        assert_eq!(g.gpu_processes[0].mig.map(|m| m.gpu_instance_id), Some(1));
        assert_eq!(g.gpu_processes[0].used_mem_bytes, Some(1 << 30));
        let e = estimated("cpu0", "CPU", linear(15.0, 0.1, "15 W TDP"));
        let m = e
            .estimate
            .as_ref()
            .map(|m| (m.tdp_w, m.idle_fraction, m.model, m.usable_share));
        assert_eq!(
            (e.kind, e.energy, m),
            (
                DeviceKind::Cpu,
                None,
                Some((15.0, 0.1, EstimateModel::Linear, 1.0))
            )
        );
        let set = sample_at(50.0).wall_ms(7).uptime_s(9.5).build();
        assert_eq!((set.mono_s, set.wall_ms, set.uptime_s), (50.0, 7, Some(9.5)));
        let bare = sample_at(1.0).build();
        assert_eq!((bare.wall_ms, bare.uptime_s, bare.cpu_times), (1_000, None, None));
    }
}
