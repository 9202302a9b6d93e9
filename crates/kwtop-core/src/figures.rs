//! The read model: what every view shows of a process, derived in one place from the ledger.
//!
//! The snapshot JSON (`snapshot`), the session summary (`kwtop::summary`), the Prometheus metrics
//! (`kwtop::serve::metrics`) and the screen's rows (`kwtop::app::rows`) are mappers over these
//! figures: each picks what its format shows and spells it as its schema says, none re-derives a
//! state, a workload or a GPU placement from raw ledger fields (impact figures come from
//! `ImpactParams` itself). GPU placement is
//! resolved once per sample by the ledger (`ledger::GpuHold`, pids matched to processes there).

use std::collections::BTreeMap;

use crate::ledger::{GpuHold, Ledger, ProcEntry, ProcState};
use crate::sample::MigInstance;

/// How every view names a process's state: `running`, `idle-holder` (flagged idle on a GPU it
/// holds) or `exited`.
pub fn state(e: &ProcEntry) -> &'static str {
    match e.state {
        ProcState::Exited => "exited",
        ProcState::Running if e.idle().flagged => "idle-holder",
        ProcState::Running => "running",
    }
}

/// Per-device joules (indexed like [`Ledger::devices`]) keyed by device id.
pub fn by_device(ledger: &Ledger, joules: &[f64]) -> BTreeMap<String, f64> {
    ledger
        .devices
        .iter()
        .zip(joules)
        .map(|(d, j)| (d.id.clone(), *j))
        .collect()
}

/// Where a process runs beyond the host: its Kubernetes pod, container and Slurm job (from its
/// cgroup; sanitized by the source).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Workload<'a> {
    pub pod: Option<&'a str>,
    pub container: Option<&'a str>,
    pub slurm_job: Option<&'a str>,
}

impl<'a> Workload<'a> {
    pub fn of(e: &'a ProcEntry) -> Self {
        let c = &e.info.cgroup;
        Workload {
            pod: c.pod.as_deref(),
            container: c.container.as_deref(),
            slurm_job: c.slurm_job.as_deref(),
        }
    }

    /// The pod, else the container id (the snapshot's `container` field).
    pub fn id(&self) -> Option<&'a str> {
        self.pod.or(self.container)
    }

    /// In words, most specific first: `pod P`, `container C` or `slurm job J`.
    pub fn describe(&self) -> Option<String> {
        self.pod
            .map(|p| format!("pod {p}"))
            .or_else(|| self.container.map(|c| format!("container {c}")))
            .or_else(|| self.slurm_job.map(|j| format!("slurm job {j}")))
    }
}

/// The GPUs a running process holds a context on at the latest sample (an exited one holds none).
pub fn held_gpus(e: &ProcEntry) -> impl Iterator<Item = &GpuHold> {
    let running = e.state == ProcState::Running;
    e.idle().gpus.iter().filter(move |g| running && g.holding)
}

/// The GPUs a process holds a context on now, as the table names them (`0`, `0/1` for a MIG
/// slice, comma-separated); `None` when it holds none.
pub fn gpu_labels(e: &ProcEntry) -> Option<String> {
    let labels: Vec<String> = held_gpus(e).flat_map(GpuHold::labels).collect();
    (!labels.is_empty()).then(|| labels.join(","))
}

/// Whether it holds a context on any GPU now.
pub fn holds_gpu(e: &ProcEntry) -> bool {
    held_gpus(e).next().is_some()
}

/// The MIG slices a process runs in now: `(device id, slice)`, in device order.
pub fn mig_slices(e: &ProcEntry) -> impl Iterator<Item = (&str, MigInstance)> {
    held_gpus(e).flat_map(|g| g.mig.iter().map(move |m| (g.device.as_str(), *m)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::attribution::{AttributionConfig, Attributor};
    use crate::ledger::IdleHolderConfig;
    use crate::sample::DeviceKind;
    use crate::testing::{counter, gpu, holder, in_mig, process, sample_at};

    fn ledger_with(holders: Vec<crate::sample::GpuProcess>) -> Ledger {
        let s = |t: f64, uj: u64| {
            sample_at(t)
                .cpu(100 * t as u64, 0)
                .procs([
                    process(7, 1, 10 * t as u64).comm("train").build(),
                    process(8, 1, 0).comm("idle").build(),
                ])
                .devices([
                    counter("cpu0", DeviceKind::Cpu, "pkg", uj),
                    gpu("gpu0", "H100", uj * 3, Some(700.0), holders.clone()),
                ])
                .build()
        };
        let (a, b) = (s(0.0, 0), s(1.0, 50_000_000));
        let mut l = Ledger::new(IdleHolderConfig::default());
        l.observe_devices(&a);
        let iv = Attributor::new(AttributionConfig::default()).attribute(&a, &b);
        l.apply(&b, &iv);
        l
    }

    #[test]
    fn gpu_placement_comes_from_the_ledger_once() {
        let l = ledger_with(vec![
            in_mig(holder(7, 1 << 30, Some(80.0)), 1, Some(0)),
            in_mig(holder(7, 1 << 30, Some(70.0)), 2, Some(0)),
        ]);
        let e = l.running().find(|e| e.key.pid == 7).unwrap();
        assert_eq!(
            gpu_labels(e).as_deref(),
            Some("0/1,0/2"),
            "both MIG slices, not one"
        );
        assert!(holds_gpu(e));
        let slices: Vec<_> = mig_slices(e)
            .map(|(d, m)| (d.to_string(), m.gpu_instance_id))
            .collect();
        assert_eq!(slices, [("gpu0".to_string(), 1), ("gpu0".to_string(), 2)]);
        let idle = l.running().find(|e| e.key.pid == 8).unwrap();
        assert_eq!(gpu_labels(idle), None);
        assert!(!holds_gpu(idle));
        assert_eq!(mig_slices(idle).count(), 0);
    }

    #[test]
    fn whole_gpu_label_is_the_index() {
        let l = ledger_with(vec![holder(7, 1 << 30, Some(80.0))]);
        let e = l.running().find(|e| e.key.pid == 7).unwrap();
        assert_eq!(gpu_labels(e).as_deref(), Some("0"));
        assert_eq!(state(e), "running");
        let by = by_device(&l, &e.energy_by_dev);
        assert_eq!(by.keys().cloned().collect::<Vec<_>>(), ["cpu0", "gpu0"]);
    }

    #[test]
    fn workload_names_the_most_specific_first() {
        let l = ledger_with(vec![]);
        let mut e = l.running().next().unwrap().clone();
        assert_eq!(Workload::of(&e).describe(), None);
        let mut info = (*e.info).clone();
        let cg = std::sync::Arc::make_mut(&mut info.cgroup);
        cg.container = Some("abc".into());
        cg.slurm_job = Some("42".into());
        e.info = std::sync::Arc::new(info.clone());
        let w = Workload::of(&e);
        assert_eq!(w.describe().as_deref(), Some("container abc"));
        assert_eq!(w.id(), Some("abc"));
        std::sync::Arc::make_mut(&mut info.cgroup).pod = Some("p".into());
        e.info = std::sync::Arc::new(info);
        assert_eq!(Workload::of(&e).describe().as_deref(), Some("pod p"));
        assert_eq!(Workload::of(&e).id(), Some("p"));
    }
}
