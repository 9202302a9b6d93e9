//! Plain-data readings: one [`Sample`] per tick, produced by `sources` and consumed by everything after.
//!
//! A sample holds cumulative counters (CPU ticks, energy counters) and the timestamps they were read
//! at, never derived rates: attribution differentiates pairs of samples, so live sensors, recordings and
//! synthetic test data all go through the same arithmetic. Nothing here reads a clock or a file.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::cgroup::CgroupInfo;

/// Identity of a process: a pid alone is reused by the kernel, `(pid, starttime)` is not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ProcKey {
    pub pid: u32,
    /// Start time in clock ticks since boot (`/proc/PID/stat` field 22); 0 when unknown
    /// (a GPU process whose pid is not visible in this PID namespace).
    pub starttime: u64,
}

/// What kind of device a reading is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceKind {
    Cpu,
    Dram,
    Gpu,
}

impl DeviceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceKind::Cpu => "cpu",
            DeviceKind::Dram => "dram",
            DeviceKind::Gpu => "gpu",
        }
    }
}

/// How an energy figure was obtained. Ordered from most to least trustworthy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provenance {
    /// Difference of a hardware energy counter (RAPL `energy_uj`, NVML total energy).
    Measured,
    /// Trapezoid integration of power readings.
    Integrated,
    /// A model (TDP × load), not a sensor.
    Estimated,
}

impl Provenance {
    pub fn as_str(self) -> &'static str {
        match self {
            Provenance::Measured => "measured",
            Provenance::Integrated => "integrated",
            Provenance::Estimated => "estimated",
        }
    }
}

/// A cumulative energy counter. Live samples carry the sampler's unwrapped total (`wrap_uj: None`,
/// see `sources::counters`); recordings made before it carry the raw hardware value.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EnergyCounter {
    /// Counter value in microjoules (NVML's millijoules are scaled by 1000).
    pub value_uj: u64,
    /// The counter wraps to 0 after this value (RAPL `max_energy_range_uj`); `None` = never wraps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wrap_uj: Option<u64>,
}

/// Parameters of the CPU power model used when no energy counter can be read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CpuEstimate {
    /// Thermal design power of all sockets together, watts.
    pub tdp_w: f64,
    /// Share of TDP drawn at zero load (linear model).
    pub idle_fraction: f64,
    /// `linear`: P = TDP·(idle + (1 − idle)·load); `codecarbon`: P = TDP·(0.1 + 0.9·load³).
    pub model: EstimateModel,
    /// What was assumed, for display wherever the estimate appears:
    /// "2 vCPUs × 0.45–2.02 W, VM (CCF AMD EPYC 3rd Gen)", "2 × 280 W TDP (CodeCarbon)",
    /// "205 W TDP from config". (Older recordings: where the TDP came from.)
    pub tdp_source: String,
    /// Share of the machine's online CPUs the model covers (a container's quota, an affinity mask):
    /// `tdp_w` is for those CPUs, so the machine-wide load of `/proc/stat` is scaled up to them
    /// (`min(1, load / share)`). 1 = the whole machine (older recordings).
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub usable_share: f64,
}

fn one() -> f64 {
    1.0
}

fn is_one(v: &f64) -> bool {
    *v == 1.0
}

fn is_zero(v: &f64) -> bool {
    *v == 0.0
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EstimateModel {
    Linear,
    Codecarbon,
}

impl CpuEstimate {
    /// The load of the CPUs the model covers, from the machine-wide load of `/proc/stat` (0..=1):
    /// busy time is assumed to fall on them first.
    pub fn covered_load(&self, machine_load: f64) -> f64 {
        let share = if self.usable_share.is_finite() && self.usable_share > 0.0 {
            self.usable_share.min(1.0)
        } else {
            1.0
        };
        if machine_load.is_finite() {
            (machine_load / share).clamp(0.0, 1.0)
        } else {
            0.0
        }
    }

    /// Modelled power in watts at the machine-wide `load` (0..=1, clamped), scaled to the covered
    /// CPUs (see [`CpuEstimate::usable_share`]).
    pub fn power_w(&self, load: f64) -> f64 {
        let load = self.covered_load(load);
        match self.model {
            EstimateModel::Linear => self.tdp_w * (self.idle_fraction + (1.0 - self.idle_fraction) * load),
            EstimateModel::Codecarbon => self.tdp_w * (0.1 + 0.9 * load * load * load),
        }
    }

    /// The model as a formula with its numbers: "P = 4.04 W × (0.22 + 0.78·load)".
    pub fn formula(&self) -> String {
        let w = format!("{:.2}", self.tdp_w);
        let w = w.trim_end_matches('0').trim_end_matches('.');
        match self.model {
            EstimateModel::Linear => format!(
                "P = {w} W × ({:.2} + {:.2}·load)",
                self.idle_fraction,
                1.0 - self.idle_fraction
            ),
            EstimateModel::Codecarbon => format!("P = {w} W × (0.1 + 0.9·load³)"),
        }
    }
}

/// A MIG (Multi-Instance GPU) slice a process runs in: NVML's GPU instance and compute instance ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MigInstance {
    pub gpu_instance_id: u32,
    /// `None` when NVML gave a GPU instance but no compute instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compute_instance_id: Option<u32>,
}

impl MigInstance {
    /// How the table shows it after the GPU index: `0/1` is GPU 0, GPU instance 1.
    pub fn label(&self, gpu_index: &str) -> String {
        format!("{gpu_index}/{}", self.gpu_instance_id)
    }
}

/// One process holding a context on a GPU.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GpuProcess {
    pub pid: u32,
    /// Device memory used, bytes; `None` when NVML cannot tell (MIG, WDDM, no permission).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub used_mem_bytes: Option<u64>,
    /// Mean SM utilisation over the interval, percent. `Some(0.0)` when NVML reported no sample for it
    /// (`NOT_FOUND` means every process was at 0 %); `None` when the utilisation query failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sm_util_pct: Option<f64>,
    /// The MIG instance it runs in; `None` when the GPU is not partitioned (or NVML did not say).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mig: Option<MigInstance>,
}

/// One device (CPU package, DRAM domain, GPU) as read at one instant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceReading {
    /// Stable id: `cpu0`, `dram0`, `gpu0`, …
    pub id: String,
    pub kind: DeviceKind,
    /// Human name: "NVIDIA H100 80GB HBM3", "package-0 (RAPL)".
    pub name: String,
    /// Who made it: "NVIDIA", "AMD", "Intel"; `None` when unknown (and in older recordings).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor: Option<String>,
    /// Where its energy comes from: "NVML", "hwmon energy", "hwmon power", "RAPL powercap",
    /// "estimate"; `None` in older recordings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Cumulative energy counter, when the device has one and it could be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub energy: Option<EnergyCounter>,
    /// `energy` is the last good reading, kept because this read of the counter failed (the reason
    /// is in `error`): the interval ending here is N/A, and the next good read recovers its energy.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub energy_stale: bool,
    /// Seconds since the previous sample whose energy the counter lost (a reset, an implausible
    /// jump: the steps in which it happened; the reason is in `error`). 0 almost always. When it
    /// covers the whole interval, the interval is N/A rather than a measured 0 J.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub energy_gap_s: f64,
    /// Power reading in watts (NVML: a 1 s average on Ampere and later except A100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub power_w: Option<f64>,
    /// The model used when energy has to be estimated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimate: Option<CpuEstimate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub power_limit_w: Option<f64>,
    /// Device utilisation, percent (GPU: time with a kernel running).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub util_pct: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem_used_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem_total_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature_c: Option<f64>,
    /// Processes holding a context on this GPU (empty for CPU domains).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gpu_processes: Vec<GpuProcess>,
    /// Why the device's energy cannot be read (shown as N/A with this reason); `None` = readable.
    /// Failed secondary queries go to `holders_error` and `notes`: the device stays up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Why the list of processes holding a context (compute, graphics, MPS) could not be read, e.g.
    /// NVML refused it under MIG without privileges. `gpu_processes` is then incomplete: attribution
    /// books the interval's static energy as unattributed (never idle) and learns no idle floor from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holders_error: Option<String>,
    /// Other queries that failed on a readable device (power, per-process utilisation, …), one line
    /// each; shown beside the device, never as N/A.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl DeviceReading {
    /// A reading with only identity set; sources fill in what they can read.
    pub fn new(id: impl Into<String>, kind: DeviceKind, name: impl Into<String>) -> Self {
        DeviceReading {
            id: id.into(),
            kind,
            name: name.into(),
            vendor: None,
            source: None,
            energy: None,
            energy_stale: false,
            energy_gap_s: 0.0,
            power_w: None,
            estimate: None,
            power_limit_w: None,
            util_pct: None,
            mem_used_bytes: None,
            mem_total_bytes: None,
            temperature_c: None,
            gpu_processes: Vec::new(),
            error: None,
            holders_error: None,
            notes: Vec::new(),
        }
    }
}

/// A device name that says who made it: the vendor is put in front unless the name already says
/// it ("NVIDIA H100" stays, "Radeon Pro W7900 (amdgpu)" becomes "AMD Radeon Pro W7900 (amdgpu)").
pub fn vendor_name(vendor: Option<&str>, name: &str) -> String {
    match vendor {
        Some(v)
            if !v.is_empty()
                && !name
                    .split(|c: char| !c.is_alphanumeric())
                    .any(|w| w.eq_ignore_ascii_case(v)) =>
        {
            format!("{v} {name}")
        }
        _ => name.to_string(),
    }
}

/// Facts about a process that do not change while it lives; read once, shared between samples.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ProcInfo {
    /// `comm`, sanitized.
    pub comm: String,
    /// Command line joined with spaces, sanitized (empty for kernel threads; then left out of
    /// recordings).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub cmdline: String,
    /// User name, or the numeric uid when it has no name.
    pub user: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    /// Shared by the processes of one cgroup (the live reader hands out one copy per distinct
    /// cgroup: ~170 bytes less per process than one each).
    #[serde(default, skip_serializing_if = "CgroupInfo::is_empty")]
    pub cgroup: Arc<CgroupInfo>,
}

/// One process at one instant.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessReading {
    pub key: ProcKey,
    pub ppid: u32,
    /// utime + stime, clock ticks, cumulative.
    pub cpu_ticks: u64,
    /// cutime + cstime: CPU time of the children this process has waited for, each with its own
    /// waited-for descendants, clock ticks, cumulative. A child that starts and exits between two
    /// samples is only ever seen here. 0 when unknown (recordings made before it was read).
    pub child_ticks: u64,
    pub info: Arc<ProcInfo>,
}

/// System-wide CPU time from `/proc/stat`, clock ticks, cumulative.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuTimes {
    /// user + nice + system + irq + softirq (guest time is already inside user and nice).
    pub busy: u64,
    /// idle + iowait.
    pub idle: u64,
}

/// Everything read at one tick.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Monotonic seconds from an arbitrary origin; only differences matter.
    pub mono_s: f64,
    /// Wall clock, milliseconds since the Unix epoch (for records and display).
    pub wall_ms: i64,
    /// Seconds since boot, to tell processes born during an interval from ones first seen late.
    pub uptime_s: Option<f64>,
    /// `USER_HZ`: clock ticks per second of the tick counters.
    pub ticks_per_s: u64,
    /// `None` when `/proc/stat` could not be read.
    pub cpu_times: Option<CpuTimes>,
    pub processes: Vec<ProcessReading>,
    pub devices: Vec<DeviceReading>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gpu_fields_are_optional_in_recordings_and_round_trip() {
        // A reading recorded before holders_error, notes and MIG instances existed.
        let old =
            r#"{"id":"gpu0","kind":"gpu","name":"H100","gpu_processes":[{"pid":7,"used_mem_bytes":1}]}"#;
        let r: DeviceReading = serde_json::from_str(old).expect("old reading");
        assert_eq!((r.holders_error.as_deref(), r.notes.len()), (None, 0));
        assert_eq!(r.gpu_processes[0].mig, None);
        assert_eq!((r.vendor.as_deref(), r.source.as_deref()), (None, None));
        let mut new = r.clone();
        new.vendor = Some("AMD".into());
        new.source = Some("hwmon energy".into());
        new.holders_error = Some("compute process list failed: no permission".into());
        new.notes
            .push("per-process utilisation failed: no permission".into());
        new.gpu_processes[0].mig = Some(MigInstance {
            gpu_instance_id: 1,
            compute_instance_id: Some(0),
        });
        let text = serde_json::to_string(&new).expect("serialize");
        assert_eq!(serde_json::from_str::<DeviceReading>(&text).expect("parse"), new);
        assert!(
            text.contains(r#""vendor":"AMD","source":"hwmon energy""#),
            "{text}"
        );
        // Nothing new is written when there is nothing to say.
        assert_eq!(serde_json::to_string(&r).expect("serialize"), old);
    }
}

#[test]
fn vendor_is_put_in_front_only_when_the_name_does_not_say_it() {
    assert_eq!(
        vendor_name(Some("NVIDIA"), "NVIDIA H100 80GB HBM3"),
        "NVIDIA H100 80GB HBM3"
    );
    assert_eq!(
        vendor_name(Some("AMD"), "Radeon Pro W7900 (amdgpu)"),
        "AMD Radeon Pro W7900 (amdgpu)"
    );
    assert_eq!(vendor_name(Some("AMD"), "AMD EPYC 7763"), "AMD EPYC 7763");
    assert_eq!(vendor_name(None, "package-0"), "package-0");
    assert_eq!(
        vendor_name(Some("Intel"), "Intel(R) Xeon(R) Gold"),
        "Intel(R) Xeon(R) Gold"
    );
    assert_eq!(
        vendor_name(Some("AMD"), "GPU 0x744c (amdgpu)"),
        "AMD GPU 0x744c (amdgpu)",
        "a word, not a substring"
    );
}
