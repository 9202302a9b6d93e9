//! The `kwtop.summary/1` document: what a session summary holds, field by field (the JSON schema;
//! Markdown and CSV render the same model).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::IdleHolderSummary;
use crate::impact::Equivalents;
use crate::work::WorkSummary;

/// The command a `kwtop run` summary is about.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandOut {
    /// The command line, in the export's cmdline mode.
    pub argv: String,
    pub pid: u32,
    /// Exit code when it exited normally.
    pub exit_code: Option<i32>,
    /// Signal number when it was killed by a signal.
    pub signal: Option<i32>,
    /// The status `kwtop run` exits with: the exit code, or 128 + signal.
    pub status: i32,
    /// Processes seen in its tree (the command and every descendant sampled at least once).
    pub tree_processes: usize,
    /// User + system CPU seconds of the command and every descendant that was waited for (by its
    /// parent, or by kwtop as subreaper), from `getrusage(RUSAGE_CHILDREN)` once all are reaped:
    /// exact, as `time` reports it. Descendants still running when the command exits are not in it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_s: Option<f64>,
}

/// Grid intensity used, with its source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GridOut {
    pub g_per_kwh: f64,
    pub label: String,
    pub source: String,
    pub year: Option<u16>,
}

/// Totals of the summary's scope.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TotalsOut {
    /// IT energy, joules.
    pub energy_j: f64,
    pub energy_by_device_j: BTreeMap<String, f64>,
    pub kwh: f64,
    /// kWh × PUE.
    pub facility_kwh: f64,
    /// IT kWh × PUE × grid intensity.
    pub co2e_g: f64,
    /// Σ over devices of the scope's energy there ÷ the time that device's energy was available,
    /// watts (time a device was N/A is left out, never counted as 0 W).
    pub avg_power_w: f64,
    pub pue: f64,
    pub grid: GridOut,
    /// Phone charges and household-days of facility energy (IT × PUE); car km of the CO2e.
    pub equivalents: Equivalents,
    /// The least trustworthy provenance among devices that contributed energy.
    pub provenance: String,
    /// Energy charged on GPUs to processes while flagged idle there (exited and folded included).
    pub idle_holder_wasted_j: f64,
    /// IT kWh of `idle_holder_wasted_j`.
    pub idle_holder_wasted_kwh: f64,
    /// The same energy's CO2e on the `[impact] compare` grids; absent when none is set.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub compare: Vec<CompareOut>,
    /// What the energy cost at `[impact] price_per_kwh`; absent when no price is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<CostOut>,
}

/// The scope's energy on another grid (`[impact] compare`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompareOut {
    pub grid: GridOut,
    /// Facility kWh × that grid, grams.
    pub co2e_g: f64,
    /// Relative to the configured grid, percent (−60: 60 % less); absent when that grid is 0.
    pub delta_pct: Option<f64>,
}

/// Cost of the scope's energy: facility kWh (IT × PUE) × the price.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CostOut {
    pub currency: String,
    pub price_per_kwh: f64,
    pub amount: f64,
    /// Per unit of work, when work was counted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_unit: Option<f64>,
}

/// The whole machine over the same time (equal to the totals in machine scope).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MachineOut {
    pub energy_j: f64,
    pub kwh: f64,
    pub co2e_g: f64,
    pub idle_j: f64,
    pub unattributed_j: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceSummary {
    pub id: String,
    pub kind: String,
    pub name: String,
    /// "NVIDIA", "AMD", "Intel" (absent when unknown, and in summaries written before it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor: Option<String>,
    /// Where the energy comes from: "NVML", "hwmon energy", "hwmon power", "RAPL powercap",
    /// "estimate", "in CPU package" (absent when unknown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Whole device, joules: = Σ processes + idle + unattributed.
    pub energy_j: f64,
    pub idle_j: f64,
    pub unattributed_j: f64,
    /// The summary scope's share of this device, joules.
    pub scope_j: f64,
    pub kwh: f64,
    pub provenance: String,
    /// Energy ÷ the seconds its energy was available (not the session's length), watts.
    pub avg_power_w: f64,
    pub peak_power_w: f64,
    pub power_limit_w: Option<f64>,
    pub status: String,
    pub unavailable_s: f64,
    /// GPUs: energy charged here to the scope's processes while flagged idle here, joules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_holder_wasted_j: Option<f64>,
    /// What the CPU estimate assumed ("2 vCPUs × 0.45–2.02 W, VM (CCF AMD EPYC 3rd Gen)") when the
    /// energy is estimated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimate: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessSummary {
    pub pid: u32,
    pub starttime: u64,
    pub ppid: u32,
    pub user: String,
    pub command: String,
    pub cmdline: String,
    pub state: String,
    pub energy_j: f64,
    pub energy_by_device_j: BTreeMap<String, f64>,
    pub kwh: f64,
    pub co2e_g: f64,
    pub avg_power_w: f64,
    pub peak_power_w: f64,
    pub observed_s: f64,
    pub first_seen: String,
    pub last_seen: String,
    /// GPU memory summed over the GPUs it held at its last sample, bytes.
    pub gpu_mem_bytes: Option<u64>,
    /// Energy charged on the GPUs where it was flagged idle, while flagged, joules.
    pub idle_wasted_j: f64,
    /// The same per GPU it was flagged idle on (names the GPU).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub idle_wasted_by_device_j: BTreeMap<String, f64>,
    /// Root of its process tree, `PID comm`.
    pub tree: String,
    pub container: Option<String>,
    /// Exited processes folded together per command (pid 0) to bound memory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub folded_count: Option<u64>,
    /// What its energy cost at `[impact] price_per_kwh`; absent when no price is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupSummary {
    /// `tree`, `user`, `command` or `container`.
    pub by: String,
    pub key: String,
    pub processes: u64,
    pub energy_j: f64,
    pub kwh: f64,
    pub co2e_g: f64,
}

/// The `kwtop.summary/1` document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SummaryDoc {
    pub schema: String,
    pub kwtop_version: String,
    pub host: String,
    /// RFC 3339 (UTC).
    pub started: String,
    pub ended: String,
    pub started_ms: i64,
    pub ended_ms: i64,
    /// Seconds covered by attributed intervals.
    pub duration_s: f64,
    pub intervals: u64,
    /// `machine` or `command`.
    pub scope: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<CommandOut>,
    /// `full`, `redacted` or `name`: how command lines are shown.
    pub cmdline_mode: String,
    pub totals: TotalsOut,
    pub machine: MachineOut,
    /// Energy per unit of work: the totals ÷ the units the command reported; absent when no work
    /// was counted (and in summaries written before it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub work: Option<WorkSummary>,
    pub devices: Vec<DeviceSummary>,
    /// Every process of the scope with energy or a GPU context, most energy first.
    pub processes: Vec<ProcessSummary>,
    pub groups: Vec<GroupSummary>,
    pub idle_holders: Vec<IdleHolderSummary>,
    /// How the numbers were obtained and their limits.
    pub method: Vec<String>,
    pub notices: Vec<String>,
}
