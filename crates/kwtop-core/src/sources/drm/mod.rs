//! AMD (amdgpu) and Intel (i915, xe) GPUs from the kernel alone: cards and hwmon sensors in sysfs
//! (see [`sysfs`]), per-process use from DRM fdinfo (see [`fdinfo`]). No vendor library, no root
//! for the card's own sensors; another user's fdinfo needs root or CAP_SYS_PTRACE.
//!
//! Energy: hwmon `energy*_input` (µJ, a counter: `measured`) where the card has one, else its power
//! reading (µW, `integrated`). NVIDIA cards are NVML's and never read here. An amdgpu **APU**'s
//! power sensor is the whole SoC's, CPU cores included: counting it here as well as in the CPU
//! package (RAPL or the estimate) would count the CPU twice, so its energy is left out (the device
//! is shown with its utilisation, memory and processes, and N/A energy saying why).

pub mod fdinfo;
pub mod sysfs;

use std::path::{Path, PathBuf};
use std::time::Instant;

use self::fdinfo::Clients;
use self::sysfs::{Card, Vendor};
use super::{CounterRead, GpuSource};
use crate::sample::{DeviceKind, DeviceReading, EnergyCounter, GpuProcess};

/// Why an APU's energy is not booked on the GPU.
pub const APU_NOTE: &str = "APU: its power sensor covers the whole SoC, CPU cores included; \
                            that energy is counted once, in the CPU package, not here";

struct CardState {
    card: Card,
    id: String,
    energy: Option<PathBuf>,
    power: Option<PathBuf>,
}

/// Reads every AMD and Intel card found at start.
pub struct DrmSource {
    cards: Vec<CardState>,
    clients: Clients,
    origin: Instant,
    notices: Vec<String>,
    unreadable_noted: bool,
}

impl DrmSource {
    /// The cards under `sysfs_root`, numbered `gpu{first_index}` on in card order; `None` when
    /// there is none (then no process's fds are ever scanned). `nvml_up`: whether NVML reads the
    /// NVIDIA cards seen here.
    pub fn open(sysfs_root: &Path, proc_root: &Path, first_index: usize, nvml_up: bool) -> Option<Self> {
        let found = sysfs::discover(sysfs_root);
        let mut notices = found.notices;
        if found.nvidia > 0 && !nvml_up {
            notices.push(format!(
                "{} NVIDIA card(s) in sysfs are read only through NVML, which is not available",
                found.nvidia
            ));
        }
        if found.cards.is_empty() {
            if !notices.is_empty() {
                // Said through a source with nothing to read would be lost: keep it visible.
                return Some(DrmSource::with_cards(Vec::new(), proc_root, first_index, notices));
            }
            return None;
        }
        Some(DrmSource::with_cards(
            found.cards,
            proc_root,
            first_index,
            notices,
        ))
    }

    fn with_cards(cards: Vec<Card>, proc_root: &Path, first_index: usize, mut notices: Vec<String>) -> Self {
        let cards: Vec<CardState> = cards
            .into_iter()
            .enumerate()
            .map(|(k, card)| {
                let id = format!("gpu{}", first_index + k);
                let energy = card.hwmon.as_deref().and_then(sysfs::energy_file);
                let power = card.hwmon.as_deref().and_then(sysfs::power_file);
                if card.apu {
                    notices.push(format!("{id} ({}): {APU_NOTE}", card.name));
                } else if energy.is_none() && power.is_some() {
                    notices.push(format!(
                        "{id} ({}) has no energy counter: its energy is integrated from hwmon power readings",
                        card.name
                    ));
                }
                CardState {
                    card,
                    id,
                    energy,
                    power,
                }
            })
            .collect();
        DrmSource {
            cards,
            clients: Clients::new(proc_root.to_path_buf()),
            origin: Instant::now(),
            notices,
            unreadable_noted: false,
        }
    }

    pub fn card_count(&self) -> usize {
        self.cards.len()
    }

    /// fdinfo files read by the last read (cost measurement).
    pub fn fdinfo_reads(&self) -> usize {
        self.clients.fdinfo_reads
    }

    /// One full read at `now_s` (monotonic seconds; tests pass their own clock).
    pub fn read_at(&mut self, now_s: f64) -> Vec<DeviceReading> {
        if self.cards.is_empty() {
            return Vec::new();
        }
        let by_driver: Vec<(String, String)> = self
            .cards
            .iter()
            .map(|c| (c.card.driver.clone(), c.card.pdev.clone()))
            .collect();
        let single = |driver: &str| {
            let mut it = by_driver.iter().filter(|(d, _)| d == driver);
            match (it.next(), it.next()) {
                (Some((_, p)), None) => Some(p.clone()),
                _ => None,
            }
        };
        let uses = self.clients.read(now_s, &single);
        if self.clients.unreadable > 0 && !self.unreadable_noted {
            self.unreadable_noted = true;
            self.notices.push(format!(
                "{} processes of other users could not be checked for GPU use (their /proc/PID/fd is \
                 not readable; run as root or with CAP_SYS_PTRACE): AMD/Intel GPU energy of theirs \
                 shows as the card's idle or unattributed energy",
                self.clients.unreadable
            ));
        }
        self.cards
            .iter()
            .map(|c| {
                let mut r = read_card(c);
                r.gpu_processes = uses
                    .iter()
                    .filter(|u| u.pdev == c.card.pdev)
                    .map(|u| GpuProcess {
                        pid: u.pid,
                        used_mem_bytes: u.mem_bytes,
                        sm_util_pct: u.util_pct,
                        mig: None,
                    })
                    .collect();
                r
            })
            .collect()
    }
}

fn read_energy(path: &Path) -> Result<EnergyCounter, String> {
    sysfs::read_u64(path)
        .map(|uj| EnergyCounter {
            value_uj: uj,
            wrap_uj: None,
        })
        .map_err(|e| format!("hwmon energy read failed: {e}"))
}

/// The card's sensors (everything but its processes).
fn read_card(c: &CardState) -> DeviceReading {
    let card = &c.card;
    let mut r = DeviceReading::new(c.id.clone(), DeviceKind::Gpu, card.name.clone());
    r.vendor = Some(card.vendor.as_str().into());
    let dev = &card.device_dir;
    r.util_pct = sysfs::read_u64(&dev.join("gpu_busy_percent"))
        .ok()
        .map(|p| p as f64);
    r.mem_total_bytes = sysfs::read_u64(&dev.join("mem_info_vram_total")).ok();
    r.mem_used_bytes = sysfs::read_u64(&dev.join("mem_info_vram_used")).ok();
    let Some(hwmon) = &card.hwmon else {
        r.error = Some(match card.vendor {
            Vendor::Intel => {
                "no hwmon sensor (integrated Intel GPUs have none: their power is part of the CPU package)"
                    .into()
            }
            Vendor::Amd => "no amdgpu hwmon sensor found".into(),
        });
        return r;
    };
    r.temperature_c = sysfs::temperature_c(hwmon);
    r.power_limit_w = sysfs::power_limit_w(hwmon);
    if card.apu {
        r.source = Some("in CPU package".into());
        r.error = Some(APU_NOTE.into());
        return r;
    }
    let power = c.power.as_deref().map(|p| {
        sysfs::read_u64(p)
            .map(|uw| uw as f64 * 1e-6)
            .map_err(|e| format!("hwmon power read failed: {e}"))
    });
    match (&c.energy, power) {
        (Some(f), power) => {
            r.source = Some("hwmon energy".into());
            match read_energy(f) {
                Ok(e) => r.energy = Some(e),
                Err(why) => r.error = Some(why),
            }
            if let Some(Ok(w)) = power {
                r.power_w = Some(w);
            }
        }
        (None, Some(Ok(w))) => {
            r.source = Some("hwmon power".into());
            r.power_w = Some(w);
        }
        (None, Some(Err(why))) => {
            r.source = Some("hwmon power".into());
            r.error = Some(why);
        }
        (None, None) => {
            r.error = Some(format!("no energy or power sensor in {}", hwmon.display()));
        }
    }
    r
}

impl GpuSource for DrmSource {
    fn read(&mut self) -> Vec<DeviceReading> {
        let now = self.origin.elapsed().as_secs_f64();
        self.read_at(now)
    }

    /// Only the hwmon energy counters.
    fn read_counters(&mut self) -> Vec<CounterRead> {
        self.cards
            .iter()
            .filter(|c| !c.card.apu)
            .filter_map(|c| Some((c.id.clone(), read_energy(c.energy.as_deref()?))))
            .collect()
    }

    fn take_notices(&mut self) -> Vec<String> {
        std::mem::take(&mut self.notices)
    }

    fn describe(&self) -> Vec<String> {
        self.cards
            .iter()
            .map(|c| {
                format!(
                    "{}: {} at {} (card{}, {})",
                    c.id, c.card.name, c.card.pdev, c.card.index, c.card.driver
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod client_tests;
#[cfg(test)]
mod tests;
