//! CPU power estimate for machines without readable RAPL: a linear (or CodeCarbon) load model whose
//! parameters say what was assumed, always labelled `estimated`.
//!
//! What it runs on decides the parameters ([`assume`]):
//! 1. `[cpu] tdp_w` from config overrides everything.
//! 2. A model in the TDP table (`assets/cpu_tdp.csv`, CodeCarbon): on bare metal, TDP × sockets ×
//!    the share of online CPUs this system may use; in a VM, TDP × threads visible / the package's
//!    threads (`assets/cpu_threads.csv`), never × the sockets a hypervisor invents.
//! 3. Otherwise in a VM: watts per vCPU at 0 % and 100 % load for the microarchitecture
//!    (`assets/ccf_vcpu_watts.csv`, Cloud Carbon Footprint's SPECpower-derived coefficients), or the
//!    dataset's average when the microarchitecture is unknown: P = n·(min + (max − min)·load).
//! 4. Otherwise (bare metal, model unknown): CodeCarbon's default 85 W per socket.
//!
//! Load is computed by attribution from `/proc/stat`, so this source only describes the model.
//! Detection reads `/proc/cpuinfo`, `/proc/self/{status,cgroup}` under `[sources] proc_root` and
//! DMI, online CPUs and cgroup files under `[sources] sysfs_root`. The `sysinfo` crate is not used
//! for the CPU brand and counts: it reads the fixed paths `/proc/cpuinfo` and `/proc/stat` (so the
//! configured roots and fixture trees would be ignored), exposes neither the `hypervisor` flag nor
//! family/model numbers nor `physical id` (so `/proc/cpuinfo` is parsed here anyway), and measured
//! +174 kB of release binary and +0.3 MB peak RSS (sysinfo 0.40.4, `system` feature only) for the
//! two values it would give.

pub(crate) mod cpuinfo;
mod microarch;
mod platform;
mod tables;

use std::path::Path;

pub use cpuinfo::CpuInfo;
pub use platform::{Platform, Provider};
pub use tables::{lookup_package, lookup_tdp};

use super::CpuEnergySource;
use crate::sample::{CpuEstimate, DeviceKind, DeviceReading, EstimateModel};

/// CodeCarbon's default TDP per socket when the model is unknown, watts.
pub const DEFAULT_TDP_W: f64 = 85.0;

/// Estimate settings from config.
#[derive(Debug, Clone, PartialEq)]
pub struct EstimateConfig {
    /// Watts of all usable CPUs together at full load; `None` = work it out.
    pub tdp_w: Option<f64>,
    /// Share of `tdp_w` drawn at zero load, used with a TDP (config or table); per-vCPU
    /// coefficients bring their own (min/max).
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

/// What the estimate assumed.
#[derive(Debug, Clone, PartialEq)]
pub struct Assumption {
    /// Watts at full load of the CPUs this system may use.
    pub tdp_w: f64,
    pub idle_fraction: f64,
    /// Short, for every place the estimate appears: "2 vCPUs × 0.45–2.02 W, VM (CCF AMD EPYC 3rd Gen)".
    pub label: String,
    /// Where each number came from, for the one-time notice.
    pub basis: Vec<String>,
    /// Logical CPUs this system may use.
    pub cpus: usize,
    /// Those CPUs' share of the machine's online CPUs.
    pub usable_share: f64,
}

/// A number of watts with at most two decimals and no trailing zeros: 3.5, 0.74, 85.
pub fn fmt_w(w: f64) -> String {
    let s = format!("{w:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

fn plural(n: usize, one: &str) -> String {
    if n == 1 {
        format!("{n} {one}")
    } else {
        format!("{n} {one}s")
    }
}

/// The CCF fallback row for a provider (AWS's average when the cloud is unknown).
fn average_row(p: Option<Provider>) -> &'static str {
    match p {
        Some(Provider::Gcp) => "GCP median",
        Some(Provider::Azure) => "Azure average",
        Some(Provider::Aws) | None => "AWS average",
    }
}

/// Decide the model's parameters for this CPU on this platform.
pub fn assume(cpu: &CpuInfo, plat: &Platform, cfg: &EstimateConfig) -> Assumption {
    let fallback = cpu.logical.max(1);
    let n = plat.usable(fallback);
    let online = plat.online.unwrap_or(fallback).max(n);
    let mut basis = vec![plat.usable_why(fallback)];
    if let Some(why) = &plat.vm {
        basis.push(format!("VM ({why})"));
    }
    let done = |tdp_w: f64, idle_fraction: f64, label: String, basis: Vec<String>| Assumption {
        tdp_w,
        idle_fraction,
        label,
        basis,
        cpus: n,
        usable_share: n as f64 / online as f64,
    };
    if let Some(t) = cfg.tdp_w {
        basis.push("[cpu] tdp_w and idle_fraction from config".into());
        return done(
            t,
            cfg.idle_fraction,
            format!("{} W TDP from config", fmt_w(t)),
            basis,
        );
    }
    let model = cpu.model_name.as_deref().unwrap_or("");
    let tdp = lookup_tdp(model);
    let package = lookup_package(model);
    let vm = plat.vm.is_some();
    // Share of the machine this system may use, on bare metal.
    let share = n as f64 / online as f64;
    let of_online = if n < online {
        format!("{n}/{online} CPUs of ")
    } else {
        String::new()
    };
    let sockets = cpu.sockets;
    let per_socket = |t: f64| {
        if sockets > 1 {
            format!("{sockets} × {} W", fmt_w(t))
        } else {
            format!("{} W", fmt_w(t))
        }
    };
    if let Some((entry, t)) = &tdp {
        basis.push(format!(
            "TDP {} W per package: '{entry}' in CodeCarbon's table",
            fmt_w(*t)
        ));
        if !vm {
            let label = format!("{of_online}{} TDP (CodeCarbon)", per_socket(*t));
            return done(t * sockets as f64 * share, cfg.idle_fraction, label, basis);
        }
        if let Some(p) = &package {
            basis.push(format!(
                "package of {} cores / {} threads: '{}' (quattor)",
                p.cores, p.threads, p.name
            ));
            let label = format!(
                "{n} of {} threads × {} W TDP, VM (CodeCarbon)",
                p.threads,
                fmt_w(*t)
            );
            return done(t * n as f64 / p.threads as f64, cfg.idle_fraction, label, basis);
        }
        basis.push("the package's thread count is unknown, so its TDP cannot be shared out".into());
    }
    if vm {
        let arch = microarch::find(cpu, package.as_ref(), plat.provider);
        let found = arch.and_then(|(a, how)| tables::vcpu_watts(a).map(|w| (a, how, w)));
        let (row, how, (min, max)) = match found {
            Some(f) => f,
            None => {
                let row = average_row(plat.provider);
                let w = tables::vcpu_watts(row).unwrap_or((0.74, 3.5));
                (
                    row,
                    "microarchitecture unknown: the dataset's average".to_string(),
                    w,
                )
            }
        };
        basis.push(format!(
            "{}–{} W per vCPU at 0–100 % load: Cloud Carbon Footprint's SPECpower-derived coefficients, row '{row}' ({how})",
            fmt_w(min),
            fmt_w(max)
        ));
        let label = format!(
            "{} × {}–{} W, VM (CCF {row})",
            plural(n, "vCPU"),
            fmt_w(min),
            fmt_w(max)
        );
        return done(n as f64 * max, min / max, label, basis);
    }
    basis.push(format!(
        "model '{}' not in the TDP table: CodeCarbon's default {} W per socket",
        crate::sanitize::sanitize_str(if model.is_empty() { "unknown" } else { model }, 64),
        fmt_w(DEFAULT_TDP_W)
    ));
    let label = format!(
        "{of_online}default {} TDP, model not in table",
        per_socket(DEFAULT_TDP_W)
    );
    done(
        DEFAULT_TDP_W * sockets as f64 * share,
        cfg.idle_fraction,
        label,
        basis,
    )
}

/// A CPU vendor as people say it: `GenuineIntel` → "Intel", `AuthenticAMD` → "AMD", arm64's
/// implementer `0x41` → "Arm"; anything else as written (sanitized).
pub fn cpu_vendor(raw: &str) -> String {
    match raw {
        "GenuineIntel" => "Intel".into(),
        "AuthenticAMD" | "HygonGenuine" => "AMD".into(),
        "0x41" => "Arm".into(),
        other => crate::sanitize::sanitize_str(other, 24),
    }
}

/// Emits one estimated CPU device.
pub struct EstimateSource {
    name: String,
    /// "Intel", "AMD", "Arm" from `/proc/cpuinfo`, when it says.
    vendor: Option<String>,
    estimate: CpuEstimate,
    assumption: Assumption,
    notices: Vec<String>,
}

impl EstimateSource {
    pub fn new(proc_root: &Path, sysfs_root: &Path, cfg: &EstimateConfig) -> Self {
        let path = proc_root.join("cpuinfo");
        let (text, unread) = match std::fs::read(&path) {
            Ok(b) => (String::from_utf8_lossy(&b).into_owned(), None),
            Err(e) => (String::new(), Some(format!("{} unreadable: {e}", path.display()))),
        };
        let cpu = cpuinfo::parse(&text);
        let plat = platform::detect(proc_root, sysfs_root, &cpu);
        let mut a = assume(&cpu, &plat, cfg);
        a.basis.extend(unread);
        a.basis.extend(plat.notes.iter().cloned());
        let model_name = cpu.model_name.as_deref().unwrap_or("unknown CPU");
        EstimateSource {
            name: crate::sanitize::sanitize_str(&format!("{model_name}, ~ {}", a.label), 160),
            vendor: cpu.vendor.as_deref().map(cpu_vendor),
            estimate: CpuEstimate {
                tdp_w: a.tdp_w,
                idle_fraction: a.idle_fraction,
                model: cfg.model,
                tdp_source: a.label.clone(),
                usable_share: a.usable_share,
            },
            assumption: a,
            notices: Vec::new(),
        }
    }

    pub fn push_notice(&mut self, n: String) {
        self.notices.push(n);
    }

    /// The model, what it assumed and why, how to measure instead and how to override: the one-time
    /// notice.
    pub fn describe(&self) -> String {
        let a = &self.assumption;
        format!(
            "{}, assumed {}. Basis: {}. To measure instead: RAPL, readable on bare metal or the VM's host \
             (/sys/class/powercap/intel-rapl:*/energy_uj, root only since Linux 5.10: grant read access \
             with a udev rule or run kwtop with privileges). To override: set [cpu] tdp_w (watts of these \
             {} at full load) and idle_fraction in the config file",
            self.estimate.formula(),
            a.label,
            a.basis.join("; "),
            plural(a.cpus, "CPU")
        )
    }
}

impl CpuEnergySource for EstimateSource {
    fn read(&mut self) -> Vec<DeviceReading> {
        let mut r = DeviceReading::new("cpu0", DeviceKind::Cpu, self.name.clone());
        r.vendor = self.vendor.clone();
        r.source = Some("estimate".into());
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
mod tests;
