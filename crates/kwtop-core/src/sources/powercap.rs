//! CPU package and DRAM energy from the Linux powercap RAPL interface (`/sys/class/powercap`).
//!
//! Zones `intel-rapl:N` (package-N, or psys) and subzones `intel-rapl:N:M` (dram) are read as raw
//! cumulative `energy_uj` counters with their `max_energy_range_uj`; wrap-around is handled by
//! the sampler (`sources::counters`). psys is never added to packages (it contains them);
//! `intel-rapl-mmio` duplicates are skipped. A zone that cannot be read at start is dropped alone and
//! named once; when no package zone can be read, [`cpu_source`] falls back to the `amd_energy` hwmon
//! driver, then the perf_event `power` PMU, then the labelled estimate for the CPU (keeping any
//! readable DRAM zone measured) and says exactly why, once.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use super::CpuEnergySource;
use super::amd_energy::{self, AmdEnergySource};
use super::estimate::{EstimateConfig, EstimateSource};
use super::perf_rapl::{self, PerfOpen};
use crate::sample::{DeviceKind, DeviceReading, EnergyCounter};

/// One RAPL domain kwtop reports as a device.
#[derive(Debug, Clone, PartialEq)]
pub struct Zone {
    pub id: String,
    pub kind: DeviceKind,
    pub name: String,
    pub dir: PathBuf,
    pub wrap_uj: Option<u64>,
}

/// Reads RAPL zones each tick.
pub struct RaplSource {
    zones: Vec<Zone>,
    notices: Vec<String>,
    /// The CPU's source when no package zone can be read (amd_energy, perf_event or the estimate),
    /// its devices reported before the zones'.
    primary: Option<Box<dyn CpuEnergySource>>,
}

/// Find the zones under a powercap root. Returns zones in a stable order (packages, then DRAM).
pub fn discover(root: &Path) -> Vec<Zone> {
    let Ok(dir) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    let mut entries: Vec<(bool, Vec<u32>, PathBuf)> = Vec::new();
    for ent in dir.flatten() {
        let name = ent.file_name().to_string_lossy().into_owned();
        let (mmio, rest) = if let Some(r) = name.strip_prefix("intel-rapl-mmio:") {
            (true, r)
        } else if let Some(r) = name.strip_prefix("intel-rapl:") {
            (false, r)
        } else {
            continue;
        };
        let idx: Option<Vec<u32>> = rest.split(':').map(|s| s.parse().ok()).collect();
        if let Some(idx) = idx.filter(|i| !i.is_empty() && i.len() <= 2) {
            entries.push((mmio, idx, ent.path()));
        }
    }
    entries.sort();
    let mut zones: Vec<Zone> = Vec::new();
    let mut psys: Option<Zone> = None;
    for (mmio, idx, path) in &entries {
        let zname = read_trimmed(&path.join("name")).unwrap_or_default();
        // A range of 0 is no range: it would make every step a wrap (and polling constant).
        let wrap_uj = read_trimmed(&path.join("max_energy_range_uj"))
            .and_then(|s| s.parse().ok())
            .filter(|&m: &u64| m > 0);
        let (id, kind, label) = match (idx.as_slice(), zname.as_str()) {
            ([_], n) if n.starts_with("package-") => {
                let pkg = n.trim_start_matches("package-").parse::<u32>().unwrap_or(idx[0]);
                (format!("cpu{pkg}"), DeviceKind::Cpu, format!("{n} (RAPL)"))
            }
            ([_], "psys") => {
                psys = Some(Zone {
                    id: "cpu0".into(),
                    kind: DeviceKind::Cpu,
                    name: "psys platform (RAPL)".into(),
                    dir: path.clone(),
                    wrap_uj,
                });
                continue;
            }
            ([pkg, ..], "dram") => (format!("dram{pkg}"), DeviceKind::Dram, "dram (RAPL)".to_string()),
            _ => continue, // core, uncore: already inside the package
        };
        if zones.iter().any(|z| z.id == id) {
            continue; // an intel-rapl-mmio duplicate of an MSR zone, or vice versa
        }
        let _ = mmio;
        zones.push(Zone {
            id,
            kind,
            name: label,
            dir: path.clone(),
            wrap_uj,
        });
    }
    if !zones.iter().any(|z| z.kind == DeviceKind::Cpu) {
        zones.extend(psys);
    }
    zones.sort_by(|a, b| {
        a.kind
            .cmp(&b.kind)
            .then_with(|| natural(&a.id).cmp(&natural(&b.id)))
    });
    zones
}

fn natural(id: &str) -> (String, u32) {
    let digits = id.trim_start_matches(|c: char| !c.is_ascii_digit());
    (
        id.trim_end_matches(|c: char| c.is_ascii_digit()).to_string(),
        digits.parse().unwrap_or(0),
    )
}

fn read_trimmed(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok().map(|s| s.trim().to_string())
}

/// Read one zone's counter.
fn read_counter(z: &Zone) -> Result<EnergyCounter, (ErrorKind, String)> {
    let path = z.dir.join("energy_uj");
    match std::fs::read_to_string(&path) {
        Ok(s) => s
            .trim()
            .parse::<u64>()
            .map(|value_uj| EnergyCounter {
                value_uj,
                wrap_uj: z.wrap_uj,
            })
            .map_err(|_| {
                (
                    ErrorKind::InvalidData,
                    format!("{}: not a number: '{}'", path.display(), s.trim()),
                )
            }),
        Err(e) => Err((e.kind(), format!("{}: {}", path.display(), e))),
    }
}

impl RaplSource {
    pub fn new(zones: Vec<Zone>) -> Self {
        RaplSource {
            zones,
            notices: Vec::new(),
            primary: None,
        }
    }
}

/// One zone's counter, with a failure worded for the reading.
fn counter_read(z: &Zone) -> Result<EnergyCounter, String> {
    read_counter(z).map_err(|(_, why)| format!("RAPL read failed: {why}"))
}

impl CpuEnergySource for RaplSource {
    fn read(&mut self) -> Vec<DeviceReading> {
        let mut out: Vec<DeviceReading> = self.primary.as_mut().map(|p| p.read()).unwrap_or_default();
        out.extend(self.zones.iter().map(|z| {
            let mut r = DeviceReading::new(z.id.clone(), z.kind, z.name.clone());
            r.source = Some("RAPL powercap".into());
            match counter_read(z) {
                Ok(c) => r.energy = Some(c),
                Err(why) => r.error = Some(why),
            }
            r
        }));
        out
    }

    /// Only the primary source's counters and the zones' `energy_uj` files.
    fn read_counters(&mut self) -> Vec<super::CounterRead> {
        let mut out = self
            .primary
            .as_mut()
            .map(|p| p.read_counters())
            .unwrap_or_default();
        out.extend(self.zones.iter().map(|z| (z.id.clone(), counter_read(z))));
        out
    }

    fn take_notices(&mut self) -> Vec<String> {
        let mut out = std::mem::take(&mut self.notices);
        if let Some(p) = &mut self.primary {
            out.extend(p.take_notices());
        }
        out
    }
}

/// How to give a non-root user read access to RAPL, for the notice.
pub const RAPL_ACCESS_HINT: &str = "since Linux 5.10 energy_uj is readable by root only (CVE-2020-8694). \
To measure instead of estimate: run kwtop as root, or grant read access until reboot with \
`sudo chmod a+r /sys/class/powercap/intel-rapl:*/energy_uj /sys/class/powercap/intel-rapl:*:*/energy_uj`, \
or permanently with a udev rule: \
SUBSYSTEM==\"powercap\", ACTION==\"add\", RUN+=\"/bin/chmod a+r /sys%p/energy_uj\"";

/// Zones whose counter can be read now, and the others with why not.
fn split_readable(zones: Vec<Zone>) -> (Vec<Zone>, Vec<(Zone, ErrorKind, String)>) {
    let mut readable = Vec::new();
    let mut dropped = Vec::new();
    for z in zones {
        match read_counter(&z) {
            Ok(_) => readable.push(z),
            Err((kind, why)) => dropped.push((z, kind, why)),
        }
    }
    (readable, dropped)
}

/// "zone (id): why" for each dropped zone, with the access hint once when one was refused.
fn describe_dropped(dropped: &[(Zone, ErrorKind, String)]) -> String {
    let list: Vec<String> = dropped
        .iter()
        .map(|(z, _, why)| format!("{} ({})", why, z.id))
        .collect();
    let refused = dropped
        .iter()
        .any(|(_, kind, _)| *kind == ErrorKind::PermissionDenied);
    let hint = if refused {
        format!(". {RAPL_ACCESS_HINT}")
    } else {
        String::new()
    };
    format!("{}{hint}", list.join("; "))
}

/// The best CPU energy source this machine allows, each choice said once with how to enable the
/// better one: readable powercap RAPL, else the `amd_energy` hwmon driver, else the perf_event
/// `power` PMU (no root needed with CAP_PERFMON or `perf_event_paranoid` ≤ 0), else the labelled
/// estimate. Zones are checked once here: an unreadable zone is dropped alone (one notice names
/// each and why) while the others are measured. With no readable package zone, readable DRAM zones
/// stay measured beside the chosen source unless it measures the same DRAM itself (the estimate
/// models the package, which does not include DRAM).
pub fn cpu_source(
    powercap_root: &Path,
    proc_root: &Path,
    sysfs_root: &Path,
    est: &EstimateConfig,
) -> Box<dyn CpuEnergySource> {
    cpu_source_with(powercap_root, proc_root, sysfs_root, est, &mut perf_rapl::SysPerf)
}

/// [`cpu_source`] with the `perf_event_open` calls made through `perf` (a fake in tests).
pub fn cpu_source_with(
    powercap_root: &Path,
    proc_root: &Path,
    sysfs_root: &Path,
    est: &EstimateConfig,
    perf: &mut dyn PerfOpen,
) -> Box<dyn CpuEnergySource> {
    let zones = discover(powercap_root);
    let (readable, dropped) = split_readable(zones);
    let why = if readable.is_empty() && dropped.is_empty() {
        format!(
            "no RAPL zones under {} (no intel_rapl driver, a CPU without RAPL, or a VM)",
            powercap_root.display()
        )
    } else if readable.iter().any(|z| z.kind == DeviceKind::Cpu) {
        let mut src = RaplSource::new(readable);
        if !dropped.is_empty() {
            src.notices.push(format!(
                "RAPL zone(s) not readable, left out (the other zones are measured): {}",
                describe_dropped(&dropped)
            ));
        }
        return Box::new(src);
    } else if dropped.is_empty() {
        "no RAPL package zone (only DRAM)".to_string()
    } else {
        format!("RAPL not readable ({})", describe_dropped(&dropped))
    };
    let found = amd_energy::discover(sysfs_root);
    let amd = (!found.sockets.is_empty()).then(|| AmdEnergySource::open(found));
    let (primary, ids, choice): (Box<dyn CpuEnergySource>, Vec<String>, String) = match amd {
        Some(Ok(src)) => {
            let ids = src.ids();
            let choice = format!("CPU energy measured by the amd_energy hwmon driver: powercap {why}");
            (Box::new(src), ids, choice)
        }
        amd => match perf_rapl::open(sysfs_root, proc_root, perf) {
            Ok(src) => {
                let amd_why = match amd {
                    Some(Err(w)) => format!("; {w}"),
                    _ => String::new(),
                };
                let (ids, choice) = (
                    src.ids(),
                    format!(
                        "CPU energy measured through perf_event ({}): powercap {why}{amd_why}",
                        src.summary()
                    ),
                );
                (Box::new(src), ids, choice)
            }
            Err(perf_why) => {
                let amd_why = match amd {
                    Some(Err(w)) => format!("; {w}"),
                    _ => String::new(),
                };
                let mut estimate = EstimateSource::new(proc_root, sysfs_root, est);
                let choice = format!(
                    "CPU energy is estimated, not measured: {why}; perf_event: {perf_why}{amd_why}. Estimate: {}",
                    estimate.describe()
                );
                if readable.is_empty() {
                    estimate.push_notice(choice);
                    return Box::new(estimate);
                }
                (Box::new(estimate), Vec::new(), choice)
            }
        },
    };
    let kept: Vec<Zone> = readable.into_iter().filter(|z| !ids.contains(&z.id)).collect();
    let dram: Vec<String> = kept.iter().map(|z| z.id.clone()).collect();
    let mut src = RaplSource::new(kept);
    src.notices.push(if dram.is_empty() {
        choice
    } else {
        format!("{choice}. DRAM is still measured (RAPL: {})", dram.join(", "))
    });
    src.primary = Some(primary);
    Box::new(src)
}

#[cfg(test)]
mod tests;
