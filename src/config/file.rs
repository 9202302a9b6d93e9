//! The TOML shape of the config file: one serde struct per section, with the built-in defaults
//! (`config.example.toml` documents them) and unknown keys rejected. Validation into the stages'
//! parameters is in the parent module.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::attribution::AttributionConfig;
use crate::engine::EngineParams;
use crate::impact;
use crate::ledger::IdleHolderConfig;
use crate::sample::EstimateModel;
use crate::sources::estimate::EstimateConfig;
use crate::tui::UiParams;

/// A duration written like `500ms`, `2s`, `1m`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dur(pub Duration);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_duration(&s).map(Dur).map_err(serde::de::Error::custom)
    }
}

impl Serialize for Dur {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(self.0).to_string())
    }
}

/// Parse `500ms`, `2s`, `1m`, `1h30m`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim())
        .map_err(|e| format!("invalid duration '{s}' ({e}): write it like 500ms, 2s or 1m"))
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Sampling {
    /// Time between samples.
    pub interval: Dur,
}

impl Default for Sampling {
    fn default() -> Self {
        Sampling {
            interval: Dur(Duration::from_secs(1)),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Sources {
    pub proc_root: PathBuf,
    pub powercap_root: PathBuf,
    /// Root of sysfs: AMD/Intel GPU cards and their hwmon sensors (`class/drm`), and DMI, online
    /// CPUs and cgroup quotas (the CPU estimate's platform detection).
    pub sysfs_root: PathBuf,
    /// Read NVIDIA GPUs through NVML.
    pub nvml: bool,
    /// Path of libnvidia-ml; unset = the system's `libnvidia-ml.so.1`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nvml_library: Option<PathBuf>,
}

impl Default for Sources {
    fn default() -> Self {
        Sources {
            proc_root: PathBuf::from("/proc"),
            powercap_root: PathBuf::from("/sys/class/powercap"),
            sysfs_root: PathBuf::from("/sys"),
            nvml: true,
            nvml_library: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Cpu {
    /// Watts at full load of all usable CPUs; unset = work it out from the model and platform.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tdp_w: Option<f64>,
    pub idle_fraction: f64,
    pub model: EstimateModel,
}

impl Default for Cpu {
    fn default() -> Self {
        let e = EstimateConfig::default();
        Cpu {
            tdp_w: e.tdp_w,
            idle_fraction: e.idle_fraction,
            model: e.model,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Attribution {
    pub charge_idle: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gpu_idle_w: Option<f64>,
    pub gpu_idle_fraction_of_limit: f64,
    /// Exited processes kept as rows before the smallest are folded per command.
    pub max_exited_processes: usize,
}

impl Default for Attribution {
    fn default() -> Self {
        let a = AttributionConfig::default();
        Attribution {
            charge_idle: a.charge_idle,
            gpu_idle_w: a.gpu_idle_w,
            gpu_idle_fraction_of_limit: a.gpu_idle_fraction_of_limit,
            max_exited_processes: EngineParams::default().max_exited_processes,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IdleHolder {
    pub min_memory_mib: u64,
    pub max_sm_pct: f64,
    pub after: Dur,
}

impl Default for IdleHolder {
    fn default() -> Self {
        let d = IdleHolderConfig::default();
        IdleHolder {
            min_memory_mib: d.min_memory_bytes >> 20,
            max_sm_pct: d.max_sm_pct,
            after: Dur(Duration::from_secs_f64(d.after_s)),
        }
    }
}

/// Grid intensity as written in config: a number (g/kWh) or a code/region string.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum GridSpec {
    Number(f64),
    Code(String),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Impact {
    pub grid: GridSpec,
    pub pue: f64,
    pub phone_charge_kwh: f64,
    pub household_kwh_per_year: f64,
    pub car_g_per_km: f64,
    /// Other grids for the summaries' comparison (same specs as `grid`).
    pub compare: Vec<GridSpec>,
    /// Price of a facility kWh; unset = no cost shown.
    pub price_per_kwh: Option<f64>,
    /// Currency of `price_per_kwh` (a code or symbol); required with it.
    pub currency: Option<String>,
}

impl Default for Impact {
    fn default() -> Self {
        Impact {
            grid: GridSpec::Code("world".into()),
            pue: impact::DEFAULT_PUE,
            phone_charge_kwh: impact::DEFAULT_PHONE_CHARGE_KWH,
            household_kwh_per_year: impact::DEFAULT_HOUSEHOLD_KWH_PER_YEAR,
            car_g_per_km: impact::DEFAULT_CAR_G_PER_KM,
            compare: Vec::new(),
            price_per_kwh: None,
            currency: None,
        }
    }
}

/// Session summaries and other exports (`[export]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Export {
    /// Directory for session summaries; unset = the platform data dir (`~/.local/share/kwtop`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dir: Option<PathBuf>,
    /// What exports show of command lines: `full`, `redacted` or `name`.
    pub cmdline: crate::redact::CmdlineMode,
    /// Argument names whose values are hidden in `redacted` mode (case-insensitive substrings).
    pub redact_patterns: Vec<String>,
    /// Formats written on quit, `e`, signals and at the end of `run`/`record --summary`.
    pub formats: Vec<crate::summary::Format>,
    /// The live monitor also rewrites the summary this often, so a `kill -9` or a power cut loses at
    /// most one period; `0s` turns it off.
    pub checkpoint: Dur,
}

impl Default for Export {
    fn default() -> Self {
        Export {
            dir: None,
            cmdline: crate::redact::CmdlineMode::Redacted,
            redact_patterns: crate::redact::default_patterns(),
            formats: vec![
                crate::summary::Format::Md,
                crate::summary::Format::Json,
                crate::summary::Format::Csv,
            ],
            checkpoint: Dur(Duration::from_secs(300)),
        }
    }
}

/// The live monitor (`[ui]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Ui {
    /// Redraws per second at most; the screen is redrawn only when data or input changed.
    pub max_fps: f64,
}

impl Default for Ui {
    fn default() -> Self {
        Ui {
            max_fps: UiParams::default().max_fps,
        }
    }
}

/// The Prometheus exporter (`[serve]`, `kwtop serve`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Serve {
    /// Address of the `/metrics` endpoint; loopback unless set otherwise on purpose.
    pub listen: String,
    /// Processes exported individually (by session energy); the rest form one `other` series per device.
    pub top_processes: usize,
}

impl Default for Serve {
    fn default() -> Self {
        Serve {
            listen: "127.0.0.1:9875".into(),
            top_processes: 50,
        }
    }
}

/// The whole file.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConfigFile {
    pub sampling: Sampling,
    pub sources: Sources,
    pub cpu: Cpu,
    pub attribution: Attribution,
    pub idle_holder: IdleHolder,
    pub impact: Impact,
    pub export: Export,
    pub ui: Ui,
    pub serve: Serve,
}
