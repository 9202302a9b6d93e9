//! CPU package and DRAM energy from the Linux powercap RAPL interface (`/sys/class/powercap`).
//!
//! Zones `intel-rapl:N` (package-N, or psys) and subzones `intel-rapl:N:M` (dram) are read as raw
//! cumulative `energy_uj` counters with their `max_energy_range_uj`; wrap-around is handled by
//! attribution. psys is never added to packages (it contains them); `intel-rapl-mmio` duplicates are
//! skipped. When RAPL is missing or unreadable, [`cpu_source`] falls back to the labelled estimate and
//! says exactly why, once.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use super::CpuEnergySource;
use super::estimate::{EstimateConfig, EstimateSource};
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
        let wrap_uj = read_trimmed(&path.join("max_energy_range_uj")).and_then(|s| s.parse().ok());
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
        }
    }
}

impl CpuEnergySource for RaplSource {
    fn read(&mut self) -> Vec<DeviceReading> {
        self.zones
            .iter()
            .map(|z| {
                let mut r = DeviceReading::new(z.id.clone(), z.kind, z.name.clone());
                match read_counter(z) {
                    Ok(c) => r.energy = Some(c),
                    Err((_, why)) => r.error = Some(format!("RAPL read failed: {why}")),
                }
                r
            })
            .collect()
    }

    fn take_notices(&mut self) -> Vec<String> {
        std::mem::take(&mut self.notices)
    }
}

/// How to give a non-root user read access to RAPL, for the notice.
pub const RAPL_ACCESS_HINT: &str = "since Linux 5.10 energy_uj is readable by root only (CVE-2020-8694). \
To measure instead of estimate: run kwtop as root, or grant read access until reboot with \
`sudo chmod a+r /sys/class/powercap/intel-rapl:*/energy_uj /sys/class/powercap/intel-rapl:*:*/energy_uj`, \
or permanently with a udev rule: \
SUBSYSTEM==\"powercap\", ACTION==\"add\", RUN+=\"/bin/chmod a+r /sys%p/energy_uj\"";

/// RAPL when it can be read, else the CPU estimate, with a notice saying why.
pub fn cpu_source(
    powercap_root: &Path,
    proc_root: &Path,
    sysfs_root: &Path,
    est: &EstimateConfig,
) -> Box<dyn CpuEnergySource> {
    let zones = discover(powercap_root);
    let why = if zones.is_empty() {
        format!(
            "no RAPL zones under {} (no intel_rapl driver, a CPU without RAPL, or a VM)",
            powercap_root.display()
        )
    } else {
        let failures: Vec<(ErrorKind, String)> = zones.iter().filter_map(|z| read_counter(z).err()).collect();
        match failures.first() {
            None => return Box::new(RaplSource::new(zones)),
            Some((ErrorKind::PermissionDenied, what)) => {
                format!("RAPL not readable ({what}): {RAPL_ACCESS_HINT}")
            }
            Some((_, what)) => format!("RAPL not readable ({what})"),
        }
    };
    let mut src = EstimateSource::new(proc_root, sysfs_root, est);
    src.push_notice(format!(
        "CPU energy is estimated, not measured: {why}. Estimate: {}",
        src.describe()
    ));
    Box::new(src)
}

#[cfg(test)]
mod tests;
