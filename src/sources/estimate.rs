//! CPU power estimate for machines without readable RAPL: TDP × a load model, always labelled
//! `estimated`.
//!
//! TDP comes from config, or from the CPU model name in `/proc/cpuinfo` looked up in
//! `assets/cpu_tdp.csv` (CodeCarbon's table, MIT), times the number of sockets; 85 W per socket
//! (CodeCarbon's default) when the model is not in the table. Load is computed by attribution from
//! `/proc/stat`, so this source only describes the model.

use std::path::Path;

use super::CpuEnergySource;
use crate::sample::{CpuEstimate, DeviceKind, DeviceReading, EstimateModel};

const TDP_TABLE: &str = include_str!("../../assets/cpu_tdp.csv");
/// CodeCarbon's default TDP per socket when the model is unknown, watts.
pub const DEFAULT_TDP_W: f64 = 85.0;

/// Estimate settings from config.
#[derive(Debug, Clone, PartialEq)]
pub struct EstimateConfig {
    /// TDP of all sockets together; `None` = look the model up.
    pub tdp_w: Option<f64>,
    pub idle_fraction: f64,
    pub model: EstimateModel,
}

impl Default for EstimateConfig {
    fn default() -> Self {
        EstimateConfig {
            tdp_w: None,
            idle_fraction: 0.1,
            model: EstimateModel::Linear,
        }
    }
}

/// Emits one estimated CPU device.
pub struct EstimateSource {
    name: String,
    estimate: CpuEstimate,
    notices: Vec<String>,
}

/// CPU model name and socket count from a `/proc/cpuinfo` text.
pub fn parse_cpuinfo(text: &str) -> (Option<String>, usize) {
    let model = text
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string());
    let mut ids: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("physical id"))
        .filter_map(|l| l.split_once(':').map(|(_, v)| v.trim()))
        .collect();
    ids.sort_unstable();
    ids.dedup();
    (model, ids.len().max(1))
}

/// Strip marketing noise so "Intel(R) Xeon(R) Gold 6248 CPU @ 2.50GHz" matches "Intel Xeon Gold 6248".
fn normalize(s: &str) -> String {
    let s = s
        .replace("(R)", "")
        .replace("(TM)", "")
        .replace("(tm)", "")
        .replace("(r)", "");
    let s = s.split(" @ ").next().unwrap_or("");
    s.split_whitespace()
        .filter(|w| !matches!(w.to_ascii_lowercase().as_str(), "cpu" | "processor"))
        .filter(|w| !w.to_ascii_lowercase().ends_with("-core"))
        .collect::<Vec<_>>()
        .join(" ")
        .to_ascii_lowercase()
}

/// TDP per socket for a model name: exact normalized match, else the longest table name contained in
/// the model as whole words.
pub fn lookup_tdp(model: &str) -> Option<(String, f64)> {
    let want = normalize(model);
    if want.is_empty() {
        return None;
    }
    let padded = format!(" {want} ");
    let mut best: Option<(String, f64)> = None;
    for line in TDP_TABLE.lines().skip(1) {
        let Some((name, tdp)) = line.rsplit_once(',') else {
            continue;
        };
        let Ok(tdp) = tdp.trim().parse::<f64>() else {
            continue;
        };
        let n = normalize(name.trim_matches('"'));
        if n.is_empty() || !tdp.is_finite() || tdp <= 0.0 {
            continue;
        }
        if n == want {
            return Some((name.to_string(), tdp));
        }
        // Only names with a model number, so "AMD EPYC" never matches "AMD EPYC 7763".
        if n.chars().any(|c| c.is_ascii_digit())
            && padded.contains(&format!(" {n} "))
            && best.as_ref().is_none_or(|(b, _)| normalize(b).len() < n.len())
        {
            best = Some((name.to_string(), tdp));
        }
    }
    best
}

impl EstimateSource {
    pub fn new(proc_root: &Path, cfg: &EstimateConfig) -> Self {
        let text = std::fs::read_to_string(proc_root.join("cpuinfo")).unwrap_or_default();
        let (model, sockets) = parse_cpuinfo(&text);
        let model_name = model.clone().unwrap_or_else(|| "unknown CPU".into());
        let (tdp_w, tdp_source) = match cfg.tdp_w {
            Some(t) => (t, "TDP from config".to_string()),
            None => match model.as_deref().and_then(lookup_tdp) {
                Some((name, t)) => (
                    t * sockets as f64,
                    format!("TDP {t} W × {sockets} socket(s), table entry '{name}' (CodeCarbon)"),
                ),
                None => (
                    DEFAULT_TDP_W * sockets as f64,
                    format!(
                        "default TDP {DEFAULT_TDP_W} W × {sockets} socket(s): model '{model_name}' not in the table; set [cpu] tdp_w"
                    ),
                ),
            },
        };
        EstimateSource {
            name: format!(
                "{} ×{sockets} (estimated)",
                crate::sanitize::sanitize_str(&model_name, 64)
            ),
            estimate: CpuEstimate {
                tdp_w,
                idle_fraction: cfg.idle_fraction,
                model: cfg.model,
                tdp_source,
            },
            notices: Vec::new(),
        }
    }

    pub fn push_notice(&mut self, n: String) {
        self.notices.push(n);
    }

    /// One line describing the model, for notices and the UI legend.
    pub fn describe(&self) -> String {
        let e = &self.estimate;
        let formula = match e.model {
            EstimateModel::Linear => format!(
                "P = {:.0} W × ({} + {}·load)",
                e.tdp_w,
                e.idle_fraction,
                1.0 - e.idle_fraction
            ),
            EstimateModel::Codecarbon => format!("P = {:.0} W × (0.1 + 0.9·load³)", e.tdp_w),
        };
        format!("{formula}; {}", e.tdp_source)
    }
}

impl CpuEnergySource for EstimateSource {
    fn read(&mut self) -> Vec<DeviceReading> {
        let mut r = DeviceReading::new("cpu0", DeviceKind::Cpu, self.name.clone());
        r.estimate = Some(self.estimate.clone());
        r.power_limit_w = Some(self.estimate.tdp_w);
        vec![r]
    }

    /// A model has no counter to read.
    fn read_counters(&mut self) -> Vec<super::CounterRead> {
        Vec::new()
    }

    fn take_notices(&mut self) -> Vec<String> {
        std::mem::take(&mut self.notices)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpuinfo_model_and_sockets() {
        let text = "processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Gold 6248 CPU @ 2.50GHz\nphysical id\t: 0\n\n\
                    processor\t: 1\nmodel name\t: Intel(R) Xeon(R) Gold 6248 CPU @ 2.50GHz\nphysical id\t: 1\n";
        let (m, s) = parse_cpuinfo(text);
        assert_eq!(m.as_deref(), Some("Intel(R) Xeon(R) Gold 6248 CPU @ 2.50GHz"));
        assert_eq!(s, 2);
    }

    #[test]
    fn tdp_lookup_matches_marketing_names() {
        let (name, tdp) = lookup_tdp("AMD EPYC 7763 64-Core Processor").expect("in table");
        assert!(name.contains("7763"), "{name}");
        assert!(tdp > 100.0 && tdp < 400.0);
        assert!(
            lookup_tdp("AMD EPYC").is_none(),
            "a family name alone must not pick a model"
        );
        assert!(lookup_tdp("").is_none());
    }

    #[test]
    fn unknown_model_uses_default_per_socket() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("cpuinfo"),
            "model name\t: Mystery 9000\nphysical id\t: 0\n",
        )
        .expect("write");
        let s = EstimateSource::new(dir.path(), &EstimateConfig::default());
        assert_eq!(s.estimate.tdp_w, DEFAULT_TDP_W);
        assert!(s.describe().contains("not in the table"), "{}", s.describe());
    }
}
