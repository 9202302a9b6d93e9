//! Configuration: TOML from the platform config dir or `--config`, every key optional.
//!
//! `ConfigFile` is the serde shape (defaults, unknown keys rejected; in `file`); `validate` checks
//! ranges, resolves the grid and builds [`Settings`]: one parameter value per stage, of a type owned
//! by that stage (`SourceConfig`, `EngineParams`, `ImpactParams`, `ExportParams`, `ServeParams`,
//! `UiParams`), which the command line hands to each stage. Every error names the file, line, key and bad value (exit code 2 in `main`).
//! `config.example.toml` documents every key and a test keeps it equal to `ConfigFile::default()`.

mod error;
mod file;

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use error::ConfigError;
pub use file::{
    Attribution, ConfigFile, Cpu, Dur, Export, GridSpec, IdleHolder, Impact, Sampling, Serve, Sources, Ui,
    parse_duration,
};

use crate::app::AppParams;
use crate::attribution::AttributionConfig;
use crate::engine::EngineParams;
use crate::export::ExportParams;
use crate::impact::{self, ImpactParams};
use crate::ledger::IdleHolderConfig;
use crate::redact::Redactor;
use crate::serve::ServeParams;
use crate::sources::SourceConfig;
use crate::sources::estimate::EstimateConfig;
use crate::tui::UiParams;

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

/// Where a config text came from, for the messages of the checks below.
struct Check<'a> {
    path: Option<&'a Path>,
    text: &'a str,
}

impl Check<'_> {
    fn bad<T>(&self, section: &str, key: &str, value: String, why: &str) -> Result<T, ConfigError> {
        Err(ConfigError::invalid(
            self.path, self.text, section, key, value, why,
        ))
    }
}

/// Check every section (in file order, so the first bad key is the one reported) and turn each into
/// the parameters of the stage that owns it.
fn validate(f: &ConfigFile, path: Option<&Path>, text: &str) -> Result<Settings, ConfigError> {
    let c = Check { path, text };
    let interval = sampling(f, &c)?;
    let sources = sources(f, &c)?;
    let (attribution, max_exited_processes) = attribution(f, &c)?;
    let serve = serve(f, &c)?;
    let ui = ui(f, &c)?;
    let export = export(f, &c)?;
    let idle_holder = idle_holder(f, &c)?;
    let impact = impact(f, &c)?;
    Ok(Settings {
        path: path.map(Path::to_path_buf),
        interval,
        sources,
        engine: EngineParams {
            attribution,
            idle_holder,
            max_exited_processes,
        },
        impact,
        export,
        serve,
        ui,
    })
}

/// `[sampling]`: the time between samples.
fn sampling(f: &ConfigFile, c: &Check) -> Result<Duration, ConfigError> {
    let interval = f.sampling.interval.0;
    if interval < Duration::from_millis(100) || interval > Duration::from_secs(3600) {
        return c.bad(
            "sampling",
            "interval",
            fmt_dur(interval),
            "must be between 100ms and 1h",
        );
    }
    Ok(interval)
}

/// `[sources]` and `[cpu]`: where to read and how to estimate a CPU without a sensor.
fn sources(f: &ConfigFile, c: &Check) -> Result<SourceConfig, ConfigError> {
    if !(0.0..=1.0).contains(&f.cpu.idle_fraction) {
        return c.bad(
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
        return c.bad(
            "cpu",
            "tdp_w",
            t.to_string(),
            "must be a power in watts between 0 and 10000",
        );
    }
    Ok(SourceConfig {
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
    })
}

/// `[attribution]`: the idle policy, and how many exited processes to keep as rows.
fn attribution(f: &ConfigFile, c: &Check) -> Result<(AttributionConfig, usize), ConfigError> {
    if let Some(w) = f
        .attribution
        .gpu_idle_w
        .filter(|w| !(w.is_finite() && *w >= 0.0 && *w <= 10_000.0))
    {
        return c.bad(
            "attribution",
            "gpu_idle_w",
            w.to_string(),
            "must be a power in watts between 0 and 10000",
        );
    }
    let frac = f.attribution.gpu_idle_fraction_of_limit;
    if !(0.0..=1.0).contains(&frac) {
        return c.bad(
            "attribution",
            "gpu_idle_fraction_of_limit",
            frac.to_string(),
            "must be between 0 and 1",
        );
    }
    if f.attribution.max_exited_processes < 2 {
        let v = f.attribution.max_exited_processes.to_string();
        return c.bad("attribution", "max_exited_processes", v, "must be at least 2");
    }
    let config = AttributionConfig {
        charge_idle: f.attribution.charge_idle,
        gpu_idle_w: f.attribution.gpu_idle_w,
        gpu_idle_fraction_of_limit: frac,
    };
    Ok((config, f.attribution.max_exited_processes))
}

/// `[serve]`: the metrics endpoint's address and how many processes get their own series.
fn serve(f: &ConfigFile, c: &Check) -> Result<ServeParams, ConfigError> {
    let Ok(listen) = f.serve.listen.trim().parse::<std::net::SocketAddr>() else {
        return c.bad(
            "serve",
            "listen",
            f.serve.listen.clone(),
            "must be an IP address and port such as 127.0.0.1:9875 or [::1]:9875",
        );
    };
    if !(1..=10_000).contains(&f.serve.top_processes) {
        let v = f.serve.top_processes.to_string();
        return c.bad("serve", "top_processes", v, "must be between 1 and 10000");
    }
    Ok(ServeParams {
        listen,
        top_processes: f.serve.top_processes,
    })
}

/// `[ui]`: the redraw cap.
fn ui(f: &ConfigFile, c: &Check) -> Result<UiParams, ConfigError> {
    if !(0.5..=60.0).contains(&f.ui.max_fps) {
        return c.bad(
            "ui",
            "max_fps",
            f.ui.max_fps.to_string(),
            "must be between 0.5 and 60 redraws per second",
        );
    }
    Ok(UiParams {
        max_fps: f.ui.max_fps,
    })
}

/// `[export]`: where summaries go, in which formats, redacted how, and how often a checkpoint.
fn export(f: &ConfigFile, c: &Check) -> Result<ExportParams, ConfigError> {
    let cp = f.export.checkpoint.0;
    if !cp.is_zero() && cp < Duration::from_secs(1) {
        return c.bad(
            "export",
            "checkpoint",
            fmt_dur(cp),
            "must be 0s (off) or at least 1s",
        );
    }
    Ok(ExportParams {
        dir: f.export.dir.clone(),
        formats: f.export.formats.clone(),
        redactor: Redactor::new(f.export.cmdline, &f.export.redact_patterns),
        checkpoint: Some(cp).filter(|d| !d.is_zero()),
    })
}

/// `[idle_holder]`: when a process holding GPU memory counts as idle.
fn idle_holder(f: &ConfigFile, c: &Check) -> Result<IdleHolderConfig, ConfigError> {
    if !(0.0..=100.0).contains(&f.idle_holder.max_sm_pct) {
        return c.bad(
            "idle_holder",
            "max_sm_pct",
            f.idle_holder.max_sm_pct.to_string(),
            "must be between 0 and 100",
        );
    }
    Ok(IdleHolderConfig {
        min_memory_bytes: f.idle_holder.min_memory_mib << 20,
        max_sm_pct: f.idle_holder.max_sm_pct,
        after_s: f.idle_holder.after.0.as_secs_f64(),
    })
}

/// `[impact]`: the grid intensity, PUE and the figures of the equivalents.
fn impact(f: &ConfigFile, c: &Check) -> Result<ImpactParams, ConfigError> {
    let spec_text = |g: &GridSpec| match g {
        GridSpec::Number(n) => n.to_string(),
        GridSpec::Code(code) => code.clone(),
    };
    let grid = match impact::resolve_grid(&spec_text(&f.impact.grid)) {
        Ok(g) => g,
        Err(why) => return c.bad("impact", "grid", spec_text(&f.impact.grid), &why),
    };
    let mut compare = Vec::with_capacity(f.impact.compare.len());
    for g in &f.impact.compare {
        match impact::resolve_grid(&spec_text(g)) {
            Ok(g) => compare.push(g),
            Err(why) => return c.bad("impact", "compare", spec_text(g), &why),
        }
    }
    let price = match (f.impact.price_per_kwh, &f.impact.currency) {
        (None, None) => None,
        (None, Some(cur)) => {
            return c.bad(
                "impact",
                "currency",
                cur.clone(),
                "currency without price_per_kwh: set both, e.g. price_per_kwh = 0.25 and currency = \"EUR\"",
            );
        }
        (Some(p), None) => {
            return c.bad(
                "impact",
                "price_per_kwh",
                p.to_string(),
                "price_per_kwh without currency: set both, e.g. price_per_kwh = 0.25 and currency = \"EUR\"",
            );
        }
        (Some(per_kwh), Some(cur)) => {
            let currency = crate::sanitize::sanitize_str(cur.trim(), 8);
            if currency.is_empty() {
                return c.bad(
                    "impact",
                    "currency",
                    cur.clone(),
                    "an empty currency: use a code such as EUR or USD",
                );
            }
            Some(impact::Price { per_kwh, currency })
        }
    };
    let params = ImpactParams {
        pue: f.impact.pue,
        grid,
        phone_charge_kwh: f.impact.phone_charge_kwh,
        household_kwh_per_year: f.impact.household_kwh_per_year,
        car_g_per_km: f.impact.car_g_per_km,
        compare,
        price,
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
        } else if !(params.car_g_per_km.is_finite() && params.car_g_per_km > 0.0) {
            ("car_g_per_km", params.car_g_per_km.to_string())
        } else {
            (
                "price_per_kwh",
                params
                    .price
                    .as_ref()
                    .map_or(String::new(), |p| p.per_kwh.to_string()),
            )
        };
        return c.bad("impact", key, value, &why);
    }
    Ok(params)
}

fn fmt_dur(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

#[cfg(test)]
mod tests;
