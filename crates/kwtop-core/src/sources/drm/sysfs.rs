//! DRM cards and their hwmon sensors under `{sysfs_root}/class/drm`, as the kernel lays them out:
//! `class/drm/cardN` links to `devices/…/0000:03:00.0/drm/cardN`, whose `device` links back to the
//! PCI function (`0000:03:00.0`, the `drm-pdev` of fdinfo) with `vendor`, `device`, the `driver`
//! link and `hwmon/hwmonM/`.
//!
//! amdgpu (kernel docs, "GPU Power/Thermal Controls and Monitoring"): `energy1_input` µJ where the
//! board has it, else `power1_average` or `power1_input` µW; `power1_cap` µW; `temp1_input` m°C;
//! `in1_input` is the northbridge voltage, which amdgpu exposes on APUs only: that is how an APU is
//! told apart (its `power1_*` is the whole SoC, CPU included). On the card: `gpu_busy_percent`,
//! `mem_info_vram_total`, `mem_info_vram_used` (bytes).
//! i915 / xe: the device-level hwmon is named after the driver (`i915`, `xe`; per-tile ones are
//! `i915_gtN` and are skipped); `energy1_input` µJ (xe: the channel labelled `card`, else `pkg`),
//! `power1_max` / `power1_cap` as the limit.

use std::fs;
use std::path::{Path, PathBuf};

/// GPU makers kwtop reads from DRM. NVIDIA cards (0x10de) are left to NVML.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vendor {
    Amd,
    Intel,
}

impl Vendor {
    pub fn as_str(self) -> &'static str {
        match self {
            Vendor::Amd => "AMD",
            Vendor::Intel => "Intel",
        }
    }
}

pub const PCI_VENDOR_AMD: &str = "0x1002";
pub const PCI_VENDOR_INTEL: &str = "0x8086";
pub const PCI_VENDOR_NVIDIA: &str = "0x10de";

/// One DRM card found at start.
#[derive(Debug, Clone, PartialEq)]
pub struct Card {
    /// `N` of `cardN`.
    pub index: u32,
    /// PCI slot, `0000:03:00.0`: the basename of the `device` link, and fdinfo's `drm-pdev`.
    pub pdev: String,
    pub vendor: Vendor,
    /// Kernel driver: `amdgpu`, `i915`, `xe`.
    pub driver: String,
    /// `class/drm/cardN/device`.
    pub device_dir: PathBuf,
    /// The device-level hwmon directory, when there is one.
    pub hwmon: Option<PathBuf>,
    /// An amdgpu APU (hwmon `in1_input`, vddnb, exists on APUs only): its power is the SoC's.
    pub apu: bool,
    /// "AMD GPU 0x744c (amdgpu)", or the board's `product_name` when it has one.
    pub name: String,
}

/// A trimmed text file, `None` when missing or unreadable.
pub fn read_text(path: &Path) -> Option<String> {
    fs::read_to_string(path).ok().map(|s| s.trim().to_string())
}

/// A decimal file as `u64`; `Err` says why not (missing, unreadable, not a number).
pub fn read_u64(path: &Path) -> Result<u64, String> {
    let text = fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    text.trim()
        .parse::<u64>()
        .map_err(|_| format!("{}: not a number ({:?})", path.display(), text.trim()))
}

/// `cardN` → `N`; connectors (`card0-DP-1`), render nodes and anything else → `None`.
fn card_index(name: &str) -> Option<u32> {
    let digits = name.strip_prefix("card")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

fn link_basename(path: &Path) -> Option<String> {
    let target = fs::read_link(path).ok()?;
    Some(target.file_name()?.to_string_lossy().into_owned())
}

/// What discovery found: the cards to read and what it skipped (for a one-time notice).
#[derive(Debug, Default)]
pub struct Discovery {
    pub cards: Vec<Card>,
    /// NVIDIA cards seen here (read through NVML, never twice).
    pub nvidia: usize,
    pub notices: Vec<String>,
}

/// Every AMD and Intel card under `{sysfs_root}/class/drm`, by card number.
pub fn discover(sysfs_root: &Path) -> Discovery {
    let mut out = Discovery::default();
    let Ok(dir) = fs::read_dir(sysfs_root.join("class/drm")) else {
        return out;
    };
    let mut found: Vec<(u32, PathBuf)> = dir
        .filter_map(Result::ok)
        .filter_map(|e| Some((card_index(&e.file_name().to_string_lossy())?, e.path())))
        .collect();
    found.sort();
    for (index, card_dir) in found {
        let device_dir = card_dir.join("device");
        let Some(pdev) = link_basename(&device_dir) else {
            continue; // a virtual card without a PCI device (vkms, simpledrm)
        };
        let vendor = match read_text(&device_dir.join("vendor")).as_deref() {
            Some(PCI_VENDOR_AMD) => Vendor::Amd,
            Some(PCI_VENDOR_INTEL) => Vendor::Intel,
            Some(PCI_VENDOR_NVIDIA) => {
                out.nvidia += 1;
                continue;
            }
            _ => continue,
        };
        let Some(driver) = link_basename(&device_dir.join("driver")) else {
            out.notices.push(format!(
                "card{index} ({} GPU at {pdev}) has no driver bound: not read",
                vendor.as_str()
            ));
            continue;
        };
        if !matches!(driver.as_str(), "amdgpu" | "i915" | "xe") {
            out.notices.push(format!(
                "card{index} ({} GPU at {pdev}) runs driver {driver}, which kwtop does not read",
                vendor.as_str()
            ));
            continue;
        }
        let hwmon = device_hwmon(&device_dir, &driver);
        let apu = vendor == Vendor::Amd && hwmon.as_ref().is_some_and(|h| h.join("in1_input").exists());
        let id = read_text(&device_dir.join("device")).unwrap_or_else(|| "?".into());
        let name = match read_text(&device_dir.join("product_name")).filter(|n| !n.is_empty()) {
            Some(p) => format!("{} ({driver})", crate::sanitize::sanitize_str(&p, 48)),
            None if apu => format!("{} APU {id} ({driver})", vendor.as_str()),
            None => format!("{} GPU {id} ({driver})", vendor.as_str()),
        };
        out.cards.push(Card {
            index,
            pdev,
            vendor,
            driver,
            device_dir,
            hwmon,
            apu,
            name,
        });
    }
    out
}

/// The device-level hwmon: the one whose `name` is the driver's (`amdgpu`, `i915`, `xe`); per-tile
/// hwmons (`i915_gt0`) would count the same energy again.
fn device_hwmon(device_dir: &Path, driver: &str) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = fs::read_dir(device_dir.join("hwmon"))
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    dirs.sort();
    dirs.into_iter()
        .find(|d| read_text(&d.join("name")).as_deref() == Some(driver))
}

/// Which hwmon file holds the card's energy counter: xe labels its channels (`card`, `pkg`).
pub fn energy_file(hwmon: &Path) -> Option<PathBuf> {
    for want in ["card", "pkg"] {
        for n in 1..=4 {
            if read_text(&hwmon.join(format!("energy{n}_label"))).as_deref() == Some(want) {
                let f = hwmon.join(format!("energy{n}_input"));
                if f.exists() {
                    return Some(f);
                }
            }
        }
    }
    let f = hwmon.join("energy1_input");
    f.exists().then_some(f)
}

/// Which hwmon file holds the power reading, µW: the average where there is one, else the
/// instantaneous value.
pub fn power_file(hwmon: &Path) -> Option<PathBuf> {
    ["power1_average", "power1_input"]
        .iter()
        .map(|f| hwmon.join(f))
        .find(|p| p.exists())
}

/// The power limit, watts: `power1_cap` (amdgpu, xe) or `power1_max` (i915, xe).
pub fn power_limit_w(hwmon: &Path) -> Option<f64> {
    ["power1_cap", "power1_max"]
        .iter()
        .find_map(|f| read_u64(&hwmon.join(f)).ok())
        .filter(|&uw| uw > 0)
        .map(|uw| uw as f64 * 1e-6)
}

/// The first temperature channel, °C.
pub fn temperature_c(hwmon: &Path) -> Option<f64> {
    (1..=3)
        .find_map(|n| read_u64(&hwmon.join(format!("temp{n}_input"))).ok())
        .map(|m| m as f64 / 1000.0)
}
