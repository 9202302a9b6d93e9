//! NVIDIA GPUs through NVML (nvml-wrapper, dlopened at run time: the build needs no driver).
//!
//! Per tick and device: the total energy counter (mJ, Volta and later) or else the power reading,
//! limit, utilisation, memory, temperature, the compute + graphics context holders with their memory,
//! and per-process SM utilisation since the last tick (`NOT_FOUND` = every process at 0 %). Any failed
//! query becomes an `error` on the reading (an N/A with its reason), never a panic or a silent zero.
//! Never changes a GPU setting.

use std::collections::HashMap;
use std::path::Path;

use nvml_wrapper::Nvml;
use nvml_wrapper::enum_wrappers::device::TemperatureSensor;
use nvml_wrapper::enums::device::UsedGpuMemory;
use nvml_wrapper::error::NvmlError;

use super::GpuSource;
use crate::sample::{DeviceKind, DeviceReading, EnergyCounter, GpuProcess};
use crate::sanitize::sanitize_str;

/// Reads every GPU NVML reports.
pub struct NvmlSource {
    nvml: Nvml,
    devices: Vec<DevState>,
    notices: Vec<String>,
}

struct DevState {
    name: String,
    /// Newest per-process utilisation timestamp seen (CPU µs), passed back as `lastSeenTimeStamp`.
    last_seen_us: u64,
    /// Whether the "no energy counter" notice was given.
    energy_noted: bool,
    /// Whether the "no per-process utilisation" notice was given.
    util_noted: bool,
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

impl NvmlSource {
    /// Load NVML (from `library` when given) and enumerate devices. `Err` is the notice to show.
    pub fn open(library: Option<&Path>) -> Result<Self, String> {
        let nvml = match library {
            Some(p) => Nvml::builder().lib_path(p.as_os_str()).init(),
            None => Nvml::init(),
        }
        .map_err(|e| explain_init(&e))?;
        let count = nvml.device_count().map_err(|e| explain_init(&e))?;
        let mut devices = Vec::new();
        for i in 0..count {
            let name = nvml
                .device_by_index(i)
                .and_then(|d| d.name())
                .map_or_else(|_| format!("GPU {i}"), |n| sanitize_str(&n, 64));
            devices.push(DevState {
                name,
                last_seen_us: 0,
                energy_noted: false,
                util_noted: false,
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

    fn read_device(&mut self, i: usize) -> DeviceReading {
        let Some(st) = self.devices.get_mut(i) else {
            return DeviceReading::new(format!("gpu{i}"), DeviceKind::Gpu, format!("GPU {i}"));
        };
        let mut r = DeviceReading::new(format!("gpu{i}"), DeviceKind::Gpu, st.name.clone());
        let dev = match self.nvml.device_by_index(i as u32) {
            Ok(d) => d,
            Err(e) => {
                r.error = Some(format!("GPU unavailable: {}", explain_query(&e)));
                return r;
            }
        };
        let mut errors: Vec<String> = Vec::new();
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
            Err(e) => errors.push(format!("energy: {}", explain_query(&e))),
        }
        match dev.power_usage() {
            Ok(mw) => r.power_w = Some(f64::from(mw) / 1000.0),
            Err(NvmlError::NotSupported) => {}
            Err(e) => errors.push(format!("power: {}", explain_query(&e))),
        }
        r.power_limit_w = dev.enforced_power_limit().ok().map(|mw| f64::from(mw) / 1000.0);
        r.util_pct = dev.utilization_rates().ok().map(|u| f64::from(u.gpu));
        if let Ok(m) = dev.memory_info() {
            r.mem_used_bytes = Some(m.used);
            r.mem_total_bytes = Some(m.total);
        }
        r.temperature_c = dev.temperature(TemperatureSensor::Gpu).ok().map(f64::from);

        let mut holders: Vec<GpuProcess> = Vec::new();
        let lists = [dev.running_compute_processes(), dev.running_graphics_processes()];
        for list in lists {
            match list {
                Ok(ps) => {
                    for p in ps {
                        let mem = match p.used_gpu_memory {
                            UsedGpuMemory::Used(b) => Some(b),
                            UsedGpuMemory::Unavailable => None,
                        };
                        match holders.iter_mut().find(|h| h.pid == p.pid) {
                            Some(h) => h.used_mem_bytes = h.used_mem_bytes.max(mem),
                            None => holders.push(GpuProcess {
                                pid: p.pid,
                                used_mem_bytes: mem,
                                sm_util_pct: None,
                            }),
                        }
                    }
                }
                Err(NvmlError::NotSupported) => {}
                Err(e) => errors.push(format!("process list: {}", explain_query(&e))),
            }
        }
        match dev.process_utilization_stats(st.last_seen_us) {
            Ok(samples) => {
                let mut sums: HashMap<u32, (f64, u32)> = HashMap::new();
                for s in &samples {
                    if s.timestamp <= st.last_seen_us {
                        continue;
                    }
                    // NVML can report values above 100 (nvtop bug #110): clamp.
                    let e = sums.entry(s.pid).or_insert((0.0, 0));
                    e.0 += f64::from(s.sm_util.min(100));
                    e.1 += 1;
                }
                if let Some(max_ts) = samples.iter().map(|s| s.timestamp).max() {
                    st.last_seen_us = st.last_seen_us.max(max_ts);
                }
                // NVML only reports a process in the sample periods where it was busy. Dividing each
                // process's sum by the number of periods seen on the device (the most samples any
                // process had) keeps a process busy in 1 of 6 periods from looking as busy as one busy
                // in all 6, and keeps the ratios between processes right for the dynamic split.
                let periods = sums.values().map(|(_, n)| *n).max().unwrap_or(1).max(1);
                for h in &mut holders {
                    h.sm_util_pct = Some(sums.get(&h.pid).map_or(0.0, |(sum, _)| sum / f64::from(periods)));
                }
            }
            // No sample newer than last time: every process was at 0 %.
            Err(NvmlError::NotFound) => holders.iter_mut().for_each(|h| h.sm_util_pct = Some(0.0)),
            // MIG and some older boards have no per-process utilisation at all: say so once; the
            // dynamic energy is then split by memory (sm_util_pct stays unknown, never a made-up 0 %).
            Err(NvmlError::NotSupported) => {
                if !st.util_noted {
                    st.util_noted = true;
                    self.notices.push(format!(
                        "gpu{i} ({}) reports no per-process utilisation (MIG or an older board): its dynamic \
                         energy is split by GPU memory",
                        st.name
                    ));
                }
            }
            Err(e) => errors.push(format!("process utilisation: {}", explain_query(&e))),
        }
        r.gpu_processes = holders;
        if !errors.is_empty() {
            r.error = Some(errors.join("; "));
        }
        r
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
