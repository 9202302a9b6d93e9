//! CPU socket energy from the `amd_energy` hwmon driver (AMD Zen 2/3 servers: mainline Linux 5.8 to
//! 5.12, and AMD's out-of-tree module since), for kernels whose powercap has no AMD RAPL zones.
//!
//! The driver registers a hwmon device named `amd_energy` with `energyN_input` (µJ) and
//! `energyN_label`: `Ecore000`… for cores, then `Esocket0`… for sockets. Only the socket counters
//! are used (cores are inside them). The driver reads the 32-bit RAPL MSR often enough (a kernel
//! thread) to accumulate it into a 64-bit count, and prints `count × 10⁶ / 2^ESU` µJ: no wrap to
//! unwrap, so counters go to the tracker with `wrap_uj: None`. The multiplication wraps u64 after
//! 2⁶⁴/10⁶ counts (about 2.8 × 10⁸ J at the usual 15.3 µJ unit, two weeks at 250 W): the value then
//! drops, which the tracker books as one reset (that interval's energy lost, said on the reading).
//! The files are mode 0440 (root) since Linux 5.10, like powercap.
//!
//! The driver makes one socket channel per NUMA node, each reading the package MSR of the node's
//! first CPU: with several nodes per socket (NPS2/NPS4) they all read the same package. Channels
//! whose node's first CPU is on a package already taken are left out, so a package is counted once.

use std::path::{Path, PathBuf};

use super::CpuEnergySource;
use crate::sample::{DeviceKind, DeviceReading, EnergyCounter};

/// One socket counter kwtop reports as a device.
#[derive(Debug, Clone, PartialEq)]
pub struct Socket {
    pub id: String,
    pub name: String,
    pub input: PathBuf,
}

/// The socket counters found, and notes on left-out duplicates.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Found {
    pub sockets: Vec<Socket>,
    pub notes: Vec<String>,
}

fn read_trimmed(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok().map(|s| s.trim().to_string())
}

/// The package of NUMA node `node`'s first CPU, when sysfs says.
fn package_of_node(sysfs_root: &Path, node: u32) -> Option<u32> {
    let list = read_trimmed(&sysfs_root.join(format!("devices/system/node/node{node}/cpulist")))?;
    let cpu = super::perf_rapl::parse_cpulist(&list)?.into_iter().next()?;
    read_trimmed(&sysfs_root.join(format!(
        "devices/system/cpu/cpu{cpu}/topology/physical_package_id"
    )))?
    .parse()
    .ok()
}

/// Find the `amd_energy` socket counters under `{sysfs_root}/class/hwmon`.
pub fn discover(sysfs_root: &Path) -> Found {
    let mut found = Found::default();
    let Ok(dir) = std::fs::read_dir(sysfs_root.join("class/hwmon")) else {
        return found;
    };
    let mut hwmons: Vec<PathBuf> = dir
        .flatten()
        .map(|e| e.path())
        .filter(|p| read_trimmed(&p.join("name")).as_deref() == Some("amd_energy"))
        .collect();
    hwmons.sort();
    let mut channels: Vec<(u32, PathBuf)> = Vec::new();
    for hw in &hwmons {
        let Ok(files) = std::fs::read_dir(hw) else {
            continue;
        };
        for f in files.flatten() {
            let fname = f.file_name().to_string_lossy().into_owned();
            let Some(n) = fname
                .strip_prefix("energy")
                .and_then(|r| r.strip_suffix("_label"))
            else {
                continue;
            };
            let node = read_trimmed(&f.path())
                .and_then(|l| l.strip_prefix("Esocket").and_then(|s| s.parse::<u32>().ok()));
            if let Some(node) = node {
                channels.push((node, hw.join(format!("energy{n}_input"))));
            }
        }
    }
    channels.sort();
    let mut taken: Vec<(u32, u32)> = Vec::new(); // (package, node)
    for (node, input) in channels {
        let pkg = package_of_node(sysfs_root, node);
        if let Some((_, first)) = pkg.and_then(|p| taken.iter().find(|(tp, _)| *tp == p)) {
            found.notes.push(format!(
                "amd_energy Esocket{node} reads the same package as Esocket{first} (several NUMA nodes per \
                 socket): counted once"
            ));
            continue;
        }
        let id = pkg.unwrap_or(node);
        taken.push((id, node));
        found.sockets.push(Socket {
            id: format!("cpu{id}"),
            name: format!("package-{id} (amd_energy)"),
            input,
        });
    }
    found
}

fn read_counter(s: &Socket) -> Result<EnergyCounter, String> {
    let text = std::fs::read_to_string(&s.input).map_err(|e| format!("{}: {e}", s.input.display()))?;
    parse_counter(s, &text)
}

fn parse_counter(s: &Socket, text: &str) -> Result<EnergyCounter, String> {
    text.trim()
        .parse::<u64>()
        .map(|value_uj| EnergyCounter {
            value_uj,
            wrap_uj: None,
        })
        .map_err(|_| format!("{}: not a number: '{}'", s.input.display(), text.trim()))
}

/// Reads the socket counters each tick.
pub struct AmdEnergySource {
    sockets: Vec<Socket>,
    notices: Vec<String>,
}

impl AmdEnergySource {
    /// The sockets found, with those not readable now left out and named in a notice; `Err` when
    /// there is no readable socket counter (with why, and how to grant access when refused).
    pub fn open(found: Found) -> Result<Self, String> {
        if found.sockets.is_empty() {
            return Err("no amd_energy hwmon socket counters".into());
        }
        let mut sockets = Vec::new();
        let mut dropped = Vec::new();
        let mut refused = false;
        for s in found.sockets {
            match std::fs::read_to_string(&s.input) {
                Ok(text) => match parse_counter(&s, &text) {
                    Ok(_) => sockets.push(s),
                    Err(why) => dropped.push(format!("{why} ({})", s.id)),
                },
                Err(e) => {
                    refused |= e.kind() == std::io::ErrorKind::PermissionDenied;
                    dropped.push(format!("{}: {e} ({})", s.input.display(), s.id));
                }
            }
        }
        let hint = if refused {
            ". amd_energy counters are readable by root only since Linux 5.10: run as root or \
             `sudo chmod a+r /sys/class/hwmon/hwmon*/energy*_input` for the amd_energy device"
        } else {
            ""
        };
        if sockets.is_empty() {
            return Err(format!("amd_energy not readable ({}){hint}", dropped.join("; ")));
        }
        let mut notices = found.notes;
        if !dropped.is_empty() {
            notices.push(format!(
                "amd_energy counter(s) not readable, left out (the others are measured): {}{hint}",
                dropped.join("; ")
            ));
        }
        Ok(AmdEnergySource { sockets, notices })
    }

    /// The device ids this source reports.
    pub fn ids(&self) -> Vec<String> {
        self.sockets.iter().map(|s| s.id.clone()).collect()
    }
}

impl CpuEnergySource for AmdEnergySource {
    fn read(&mut self) -> Vec<DeviceReading> {
        self.sockets
            .iter()
            .map(|s| {
                let mut r = DeviceReading::new(s.id.clone(), DeviceKind::Cpu, s.name.clone());
                r.vendor = Some("AMD".into());
                r.source = Some("amd_energy".into());
                match read_counter(s) {
                    Ok(c) => r.energy = Some(c),
                    Err(why) => r.error = Some(format!("amd_energy read failed: {why}")),
                }
                r
            })
            .collect()
    }

    fn read_counters(&mut self) -> Vec<super::CounterRead> {
        self.sockets
            .iter()
            .map(|s| {
                (
                    s.id.clone(),
                    read_counter(s).map_err(|w| format!("amd_energy read failed: {w}")),
                )
            })
            .collect()
    }

    fn take_notices(&mut self) -> Vec<String> {
        std::mem::take(&mut self.notices)
    }
}

#[cfg(test)]
mod tests;
