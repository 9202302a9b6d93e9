//! NVIDIA GPUs through NVML (nvml-wrapper, dlopened at run time: the build needs no driver).
//!
//! Per tick and device: the total energy counter (mJ, Volta and later) or else the power reading,
//! limit, utilisation, memory, temperature, the compute + graphics + MPS context holders with their
//! memory and MIG instance, and per-process SM utilisation since the last tick (`NOT_FOUND` = every
//! process at 0 %), averaged over the device's sample periods. Only a device whose energy cannot be
//! read gets an `error` (N/A); a failed process list is `holders_error` and other failed queries
//! are `notes`, so the device stays up. Never a panic or a silent zero. Never changes a GPU setting.

mod proc_util;

use std::path::Path;
use std::time::Instant;

use nvml_wrapper::enum_wrappers::device::{Sampling, TemperatureSensor};
use nvml_wrapper::enums::device::UsedGpuMemory;
use nvml_wrapper::error::NvmlError;
use nvml_wrapper::struct_wrappers::device::ProcessInfo;
use nvml_wrapper::{Device, Nvml};

use self::proc_util::{Periods, ProcSample, mean_sm_pct, min_same_pid_gap_us};
use super::GpuSource;
use crate::sample::{DeviceKind, DeviceReading, EnergyCounter, GpuProcess, MigInstance};
use crate::sanitize::sanitize_str;

/// Reads every GPU NVML reports.
pub struct NvmlSource {
    /// Boxed: nvml-wrapper's table of NVML's functions is 12 KB.
    nvml: Box<Nvml>,
    devices: Vec<DevState>,
    notices: Vec<String>,
}

#[derive(Default)]
struct DevState {
    name: String,
    /// Newest utilisation timestamp seen (CPU µs, per-process or device samples), passed back as
    /// `lastSeenTimeStamp` to both queries so they cover the same window.
    last_seen_us: u64,
    /// When the per-process utilisation was last read (for the period fallback).
    last_read: Option<Instant>,
    /// Shortest gap seen between two samples of one process: an upper bound of the sampling period.
    period_us: Option<u64>,
    /// Whether the "no energy counter" notice was given.
    energy_noted: bool,
    /// Whether the "no per-process utilisation" notice was given.
    util_noted: bool,
    /// Whether the "per-process utilisation query failed" notice was given.
    util_error_noted: bool,
    /// Whether the "process list failed" notice was given.
    holders_noted: bool,
}

/// Explain an init failure in the user's terms.
fn explain_init(e: &NvmlError) -> String {
    match e {
        NvmlError::LibloadingError(inner) => {
            format!("no NVIDIA driver found (could not load the NVML library: {inner}): CPU only")
        }
        NvmlError::DriverNotLoaded => "NVIDIA driver is not loaded: CPU only".into(),
        NvmlError::NoPermission => "no permission to use NVML: CPU only".into(),
        NvmlError::LibraryNotFound => "NVML library not found: CPU only".into(),
        other => format!("NVML initialisation failed ({other}): CPU only"),
    }
}

/// Explain a failed per-device query. nvml-wrapper's texts are terse (and one is misspelt); the
/// lost-GPU case in particular must say what it means for the user.
fn explain_query(e: &NvmlError) -> String {
    match e {
        NvmlError::GpuLost => {
            "GPU is lost (fell off the bus or became inaccessible; needs a driver reload or reboot)".into()
        }
        NvmlError::NoPermission => "no permission (NVML refused this query)".into(),
        NvmlError::Uninitialized => "NVML was shut down".into(),
        NvmlError::Unknown => "unknown NVML error".into(),
        other => other.to_string(),
    }
}

/// Load NVML (from `library` when given), boxed at once. Its own function so that the 12 KB it
/// returns by value is on the stack only while it runs: inlined into the sampler's set-up, each
/// move of it kept a copy there (a 59 KB frame, every page of it touched by the stack probes at
/// each start, driver or not: issue 12).
#[inline(never)]
fn load(library: Option<&Path>) -> Result<Box<Nvml>, NvmlError> {
    let nvml = match library {
        Some(p) => Nvml::builder().lib_path(p.as_os_str()).init(),
        None => Nvml::init(),
    }?;
    Ok(Box::new(nvml))
}

impl NvmlSource {
    /// Load NVML (from `library` when given) and enumerate devices. `Err` is the notice to show.
    pub fn open(library: Option<&Path>) -> Result<Self, String> {
        let nvml = load(library).map_err(|e| explain_init(&e))?;
        let count = nvml.device_count().map_err(|e| explain_init(&e))?;
        let mut devices = Vec::new();
        for i in 0..count {
            let name = nvml
                .device_by_index(i)
                .and_then(|d| d.name())
                .map_or_else(|_| format!("GPU {i}"), |n| sanitize_str(&n, 64));
            devices.push(DevState {
                name,
                ..DevState::default()
            });
        }
        let mut notices = Vec::new();
        if count == 0 {
            notices.push("NVML loaded but reports no GPU: CPU only".into());
        }
        Ok(NvmlSource {
            nvml,
            devices,
            notices,
        })
    }

    /// How many GPUs NVML reports (they are `gpu0` … `gpu{n-1}`; other GPU sources number after them).
    pub fn device_count(&self) -> usize {
        self.devices.len()
    }

    fn read_device(&mut self, i: usize) -> DeviceReading {
        let Some(st) = self.devices.get_mut(i) else {
            return DeviceReading::new(format!("gpu{i}"), DeviceKind::Gpu, format!("GPU {i}"));
        };
        let mut r = DeviceReading::new(format!("gpu{i}"), DeviceKind::Gpu, st.name.clone());
        r.vendor = Some("NVIDIA".into());
        r.source = Some("NVML".into());
        let dev = match self.nvml.device_by_index(i as u32) {
            Ok(d) => d,
            Err(e) => {
                r.error = Some(format!("GPU unavailable: {}", explain_query(&e)));
                return r;
            }
        };
        // Energy and power: only when neither can be read is the device N/A.
        let mut energy_errors: Vec<String> = Vec::new();
        match dev.total_energy_consumption() {
            Ok(mj) => {
                r.energy = Some(EnergyCounter {
                    value_uj: mj.saturating_mul(1000),
                    wrap_uj: None,
                })
            }
            Err(NvmlError::NotSupported) => {
                if !st.energy_noted {
                    st.energy_noted = true;
                    self.notices.push(format!(
                        "gpu{i} ({}) has no energy counter (older than Volta): its energy is integrated from power readings",
                        st.name
                    ));
                }
            }
            Err(e) => energy_errors.push(format!("energy: {}", explain_query(&e))),
        }
        match dev.power_usage() {
            Ok(mw) => r.power_w = Some(f64::from(mw) / 1000.0),
            Err(NvmlError::NotSupported) => {}
            Err(e) => energy_errors.push(format!("power: {}", explain_query(&e))),
        }
        if r.energy.is_none() && r.power_w.is_none() {
            if !energy_errors.is_empty() {
                r.error = Some(energy_errors.join("; "));
            }
        } else {
            r.notes.extend(energy_errors);
        }
        r.power_limit_w = dev.enforced_power_limit().ok().map(|mw| f64::from(mw) / 1000.0);
        r.util_pct = dev.utilization_rates().ok().map(|u| f64::from(u.gpu));
        if let Ok(m) = dev.memory_info() {
            r.mem_used_bytes = Some(m.used);
            r.mem_total_bytes = Some(m.total);
        }
        r.temperature_c = dev.temperature(TemperatureSensor::Gpu).ok().map(f64::from);

        let (holders, holders_error, refused) = read_holders(&dev);
        r.gpu_processes = holders;
        if let Some(why) = &holders_error
            && !st.holders_noted
        {
            st.holders_noted = true;
            let hint = if refused {
                " (NVML lists processes under MIG, and in some containers, only to privileged users: \
                 run kwtop with privileges to see them)"
            } else {
                ""
            };
            self.notices.push(format!(
                "gpu{i} ({}): {why}. Who holds this GPU is unknown while this lasts{hint}; its static \
                 power is booked as unattributed, not idle",
                st.name
            ));
        }
        r.holders_error = holders_error;
        read_process_util(&dev, i, st, &mut r, &mut self.notices);
        r
    }
}

/// Compute, graphics and MPS context holders, merged by pid (max memory). A list that fails is the
/// reason returned beside the (then incomplete) holders, with whether NVML refused it for want of
/// permission; graphics and MPS lists that are not supported are simply empty, but without the
/// compute list nobody is known.
fn read_holders(dev: &Device) -> (Vec<GpuProcess>, Option<String>, bool) {
    let mut holders: Vec<GpuProcess> = Vec::new();
    let mut errors: Vec<String> = Vec::new();
    let mut refused = false;
    let lists = [
        ("compute", dev.running_compute_processes()),
        ("graphics", dev.running_graphics_processes()),
        ("MPS", dev.mps_running_compute_processes()),
    ];
    for (what, list) in lists {
        match list {
            Ok(ps) => ps.iter().for_each(|p| merge_holder(&mut holders, p)),
            Err(NvmlError::NotSupported) if what != "compute" => {}
            Err(e) => {
                refused |= matches!(e, NvmlError::NoPermission);
                errors.push(format!("{what} process list failed: {}", explain_query(&e)));
            }
        }
    }
    let why = (!errors.is_empty()).then(|| errors.join("; "));
    (holders, why, refused)
}

fn merge_holder(holders: &mut Vec<GpuProcess>, p: &ProcessInfo) {
    let mem = match p.used_gpu_memory {
        UsedGpuMemory::Used(b) => Some(b),
        UsedGpuMemory::Unavailable => None,
    };
    let mig = p.gpu_instance_id.map(|gi| MigInstance {
        gpu_instance_id: gi,
        compute_instance_id: p.compute_instance_id,
    });
    match holders.iter_mut().find(|h| h.pid == p.pid) {
        Some(h) => {
            h.used_mem_bytes = h.used_mem_bytes.max(mem);
            h.mig = h.mig.or(mig);
        }
        None => holders.push(GpuProcess {
            pid: p.pid,
            used_mem_bytes: mem,
            sm_util_pct: None,
            mig,
        }),
    }
}

/// Each holder's mean SM % since the last read (see `proc_util`). A refused query is a note on the
/// reading (the device stays up) and each holder's share stays unknown, never a made-up 0 %.
fn read_process_util(
    dev: &Device,
    i: usize,
    st: &mut DevState,
    r: &mut DeviceReading,
    notices: &mut Vec<String>,
) {
    let since = st.last_seen_us;
    let now = Instant::now();
    let elapsed_us = st.last_read.map(|t| now.duration_since(t).as_secs_f64() * 1e6);
    st.last_read = Some(now);
    let samples: Vec<ProcSample> = match dev.process_utilization_stats(since) {
        Ok(v) => v
            .iter()
            .map(|s| ProcSample {
                pid: s.pid,
                ts_us: s.timestamp,
                sm: s.sm_util,
            })
            .collect(),
        // No sample newer than last time: every process was at 0 %.
        Err(NvmlError::NotFound) => Vec::new(),
        // MIG and some older boards have no per-process utilisation at all: say so once; the
        // dynamic energy is then split by memory (sm_util_pct stays unknown, never a made-up 0 %).
        Err(NvmlError::NotSupported) => {
            if !st.util_noted {
                st.util_noted = true;
                notices.push(format!(
                    "gpu{i} ({}) reports no per-process utilisation (MIG or an older board): its dynamic \
                     energy is split by GPU memory",
                    st.name
                ));
            }
            return;
        }
        Err(e) => {
            let why = format!("per-process utilisation failed: {}", explain_query(&e));
            if !st.util_error_noted {
                st.util_error_noted = true;
                notices.push(format!(
                    "gpu{i} ({}): {why}. Its energy is still measured; GPU % per process is unknown and \
                     its dynamic energy is split by GPU memory while this lasts",
                    st.name
                ));
            }
            r.notes.push(why);
            return;
        }
    };
    // The device's own utilisation samples count the sample periods in the same window.
    let device_samples = match dev.samples(Sampling::GpuUtilization, since) {
        Ok(v) => Some(
            v.iter()
                .map(|s| s.timestamp)
                .filter(|t| *t > since)
                .collect::<Vec<_>>(),
        ),
        Err(NvmlError::NotFound) => Some(Vec::new()),
        Err(_) => None,
    };
    if let Some(gap) = min_same_pid_gap_us(&samples) {
        st.period_us = Some(st.period_us.map_or(gap, |p| p.min(gap)));
    }
    let periods = match (&device_samples, elapsed_us, st.period_us) {
        (Some(ts), _, _) => Periods::Device(u32::try_from(ts.len()).unwrap_or(u32::MAX)),
        (None, Some(elapsed_us), Some(p)) => Periods::Elapsed {
            elapsed_us,
            period_us: p as f64,
        },
        _ => Periods::Unknown,
    };
    let means = mean_sm_pct(&samples, since, periods);
    let newest = samples
        .iter()
        .map(|s| s.ts_us)
        .chain(device_samples.iter().flatten().copied())
        .max();
    if let Some(ts) = newest {
        st.last_seen_us = st.last_seen_us.max(ts);
    }
    for h in &mut r.gpu_processes {
        h.sm_util_pct = Some(means.get(&h.pid).copied().unwrap_or(0.0));
    }
}

impl GpuSource for NvmlSource {
    fn read(&mut self) -> Vec<DeviceReading> {
        (0..self.devices.len()).map(|i| self.read_device(i)).collect()
    }

    /// Only `nvmlDeviceGetTotalEnergyConsumption` per device; devices without the counter are
    /// left out (their energy is integrated from power at each sample).
    fn read_counters(&mut self) -> Vec<super::CounterRead> {
        (0..self.devices.len())
            .filter_map(|i| {
                let read = u32::try_from(i)
                    .map_err(|_| NvmlError::InvalidArg)
                    .and_then(|n| self.nvml.device_by_index(n))
                    .and_then(|d| d.total_energy_consumption());
                let counter = match read {
                    Ok(mj) => Ok(EnergyCounter {
                        value_uj: mj.saturating_mul(1000),
                        wrap_uj: None,
                    }),
                    Err(NvmlError::NotSupported) => return None,
                    Err(e) => Err(format!("energy: {}", explain_query(&e))),
                };
                Some((format!("gpu{i}"), counter))
            })
            .collect()
    }

    fn take_notices(&mut self) -> Vec<String> {
        std::mem::take(&mut self.notices)
    }

    fn describe(&self) -> Vec<String> {
        let driver = self
            .nvml
            .sys_driver_version()
            .unwrap_or_else(|e| format!("unknown ({e})"));
        let mut out = vec![format!("NVIDIA driver {}", sanitize_str(&driver, 64))];
        out.extend(
            self.devices
                .iter()
                .enumerate()
                .map(|(i, d)| format!("gpu{i}: {}", d.name)),
        );
        out
    }
}
