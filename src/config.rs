//! Configuration: TOML from the platform config dir or `--config`, every key optional.
//!
//! `ConfigFile` is the serde shape (defaults, unknown keys rejected); `validate` checks ranges and
//! resolves the grid. Every error names the file, line, key and bad value (exit code 2 in `main`).
//! `config.example.toml` documents every key and a test keeps it equal to `ConfigFile::default()`.

mod error;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub use error::ConfigError;

use crate::app::AppParams;
use crate::attribution::AttributionConfig;
use crate::engine::EngineParams;
use crate::export::ExportParams;
use crate::impact::{self, ImpactParams};
use crate::ledger::IdleHolderConfig;
use crate::redact::Redactor;
use crate::sample::EstimateModel;
use crate::serve::ServeParams;
use crate::sources::SourceConfig;
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
}

impl Default for Impact {
    fn default() -> Self {
        Impact {
            grid: GridSpec::Code("world".into()),
            pue: impact::DEFAULT_PUE,
            phone_charge_kwh: impact::DEFAULT_PHONE_CHARGE_KWH,
            household_kwh_per_year: impact::DEFAULT_HOUSEHOLD_KWH_PER_YEAR,
            car_g_per_km: impact::DEFAULT_CAR_G_PER_KM,
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

/// Validated settings: one plain parameter value per stage, each of a type owned by that stage,
/// unpacked by the command line. Nothing below the command line sees this type.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// The file they came from, `None` = built-in defaults.
    pub path: Option<PathBuf>,
    /// Time between samples (`[sampling] interval`); the command line may override it.
    pub interval: Duration,
    pub sources: SourceConfig,
    pub engine: EngineParams,
    pub impact: ImpactParams,
    pub export: ExportParams,
    pub serve: ServeParams,
    pub ui: UiParams,
}

impl Default for Settings {
    fn default() -> Self {
        // The defaults are valid by construction; a test checks it.
        validate(&ConfigFile::default(), None, "")
            .unwrap_or_else(|e| panic!("built-in defaults invalid: {e}"))
    }
}

impl Settings {
    /// What the live monitor accounts with.
    pub fn app(&self) -> AppParams {
        AppParams {
            engine: self.engine.clone(),
            impact: self.impact.clone(),
            interval: self.interval,
        }
    }
}

/// The platform config path (`~/.config/kwtop/config.toml` on Linux).
pub fn default_path() -> Option<PathBuf> {
    directories::ProjectDirs::from("", "", "kwtop").map(|d| d.config_dir().join("config.toml"))
}

/// Load `explicit` (must exist) or the default path (may be absent), then validate.
pub fn load(explicit: Option<&Path>) -> Result<Settings, ConfigError> {
    let path = match explicit {
        Some(p) => Some(p.to_path_buf()),
        None => default_path().filter(|p| p.exists()),
    };
    let Some(path) = path else {
        return validate(&ConfigFile::default(), None, "");
    };
    let text = std::fs::read_to_string(&path).map_err(|e| ConfigError::io(&path, &e))?;
    parse(&text, Some(&path))
}

/// Parse and validate a config text; `path` is only used in messages.
pub fn parse(text: &str, path: Option<&Path>) -> Result<Settings, ConfigError> {
    let file: ConfigFile = toml::from_str(text).map_err(|e| ConfigError::from_toml(path, text, &e))?;
    validate(&file, path, text)
}

fn validate(f: &ConfigFile, path: Option<&Path>, text: &str) -> Result<Settings, ConfigError> {
    let bad = |section: &str, key: &str, value: String, why: &str| {
        Err(ConfigError::invalid(path, text, section, key, value, why))
    };
    let interval = f.sampling.interval.0;
    if interval < Duration::from_millis(100) || interval > Duration::from_secs(3600) {
        return bad(
            "sampling",
            "interval",
            fmt_dur(interval),
            "must be between 100ms and 1h",
        );
    }
    if !(0.0..=1.0).contains(&f.cpu.idle_fraction) {
        return bad(
            "cpu",
            "idle_fraction",
            f.cpu.idle_fraction.to_string(),
            "must be between 0 and 1",
        );
    }
    if let Some(t) = f
        .cpu
        .tdp_w
        .filter(|t| !(t.is_finite() && *t > 0.0 && *t <= 10_000.0))
    {
        return bad(
            "cpu",
            "tdp_w",
            t.to_string(),
            "must be a power in watts between 0 and 10000",
        );
    }
    if let Some(w) = f
        .attribution
        .gpu_idle_w
        .filter(|w| !(w.is_finite() && *w >= 0.0 && *w <= 10_000.0))
    {
        return bad(
            "attribution",
            "gpu_idle_w",
            w.to_string(),
            "must be a power in watts between 0 and 10000",
        );
    }
    let frac = f.attribution.gpu_idle_fraction_of_limit;
    if !(0.0..=1.0).contains(&frac) {
        return bad(
            "attribution",
            "gpu_idle_fraction_of_limit",
            frac.to_string(),
            "must be between 0 and 1",
        );
    }
    if f.attribution.max_exited_processes < 2 {
        let v = f.attribution.max_exited_processes.to_string();
        return bad("attribution", "max_exited_processes", v, "must be at least 2");
    }
    let Ok(listen) = f.serve.listen.trim().parse::<std::net::SocketAddr>() else {
        return bad(
            "serve",
            "listen",
            f.serve.listen.clone(),
            "must be an IP address and port such as 127.0.0.1:9875 or [::1]:9875",
        );
    };
    if !(1..=10_000).contains(&f.serve.top_processes) {
        let v = f.serve.top_processes.to_string();
        return bad("serve", "top_processes", v, "must be between 1 and 10000");
    }
    if !(0.5..=60.0).contains(&f.ui.max_fps) {
        return bad(
            "ui",
            "max_fps",
            f.ui.max_fps.to_string(),
            "must be between 0.5 and 60 redraws per second",
        );
    }
    let cp = f.export.checkpoint.0;
    if !cp.is_zero() && cp < Duration::from_secs(1) {
        return bad(
            "export",
            "checkpoint",
            fmt_dur(cp),
            "must be 0s (off) or at least 1s",
        );
    }
    if !(0.0..=100.0).contains(&f.idle_holder.max_sm_pct) {
        return bad(
            "idle_holder",
            "max_sm_pct",
            f.idle_holder.max_sm_pct.to_string(),
            "must be between 0 and 100",
        );
    }
    let grid = match &f.impact.grid {
        GridSpec::Number(n) => impact::resolve_grid(&n.to_string()),
        GridSpec::Code(c) => impact::resolve_grid(c),
    };
    let grid = match grid {
        Ok(g) => g,
        Err(why) => {
            let v = match &f.impact.grid {
                GridSpec::Number(n) => n.to_string(),
                GridSpec::Code(c) => c.clone(),
            };
            return bad("impact", "grid", v, &why);
        }
    };
    let params = ImpactParams {
        pue: f.impact.pue,
        grid,
        phone_charge_kwh: f.impact.phone_charge_kwh,
        household_kwh_per_year: f.impact.household_kwh_per_year,
        car_g_per_km: f.impact.car_g_per_km,
    };
    if let Err(why) = params.validate() {
        let (key, value) = if !(params.pue.is_finite() && params.pue >= 1.0) {
            ("pue", params.pue.to_string())
        } else if !(params.phone_charge_kwh.is_finite() && params.phone_charge_kwh > 0.0) {
            ("phone_charge_kwh", params.phone_charge_kwh.to_string())
        } else if !(params.household_kwh_per_year.is_finite() && params.household_kwh_per_year > 0.0) {
            (
                "household_kwh_per_year",
                params.household_kwh_per_year.to_string(),
            )
        } else {
            ("car_g_per_km", params.car_g_per_km.to_string())
        };
        return bad("impact", key, value, &why);
    }
    let sources = SourceConfig {
        proc_root: f.sources.proc_root.clone(),
        powercap_root: f.sources.powercap_root.clone(),
        sysfs_root: f.sources.sysfs_root.clone(),
        nvml: f.sources.nvml,
        nvml_library: f.sources.nvml_library.clone(),
        estimate: EstimateConfig {
            tdp_w: f.cpu.tdp_w,
            idle_fraction: f.cpu.idle_fraction,
            model: f.cpu.model,
        },
    };
    let engine = EngineParams {
        attribution: AttributionConfig {
            charge_idle: f.attribution.charge_idle,
            gpu_idle_w: f.attribution.gpu_idle_w,
            gpu_idle_fraction_of_limit: frac,
        },
        idle_holder: IdleHolderConfig {
            min_memory_bytes: f.idle_holder.min_memory_mib << 20,
            max_sm_pct: f.idle_holder.max_sm_pct,
            after_s: f.idle_holder.after.0.as_secs_f64(),
        },
        max_exited_processes: f.attribution.max_exited_processes,
    };
    let export = ExportParams {
        dir: f.export.dir.clone(),
        formats: f.export.formats.clone(),
        redactor: Redactor::new(f.export.cmdline, &f.export.redact_patterns),
        checkpoint: Some(cp).filter(|d| !d.is_zero()),
    };
    let serve = ServeParams {
        listen,
        top_processes: f.serve.top_processes,
    };
    Ok(Settings {
        path: path.map(Path::to_path_buf),
        interval,
        sources,
        engine,
        impact: params,
        export,
        serve,
        ui: UiParams {
            max_fps: f.ui.max_fps,
        },
    })
}

fn fmt_dur(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

#[cfg(test)]
mod tests;
