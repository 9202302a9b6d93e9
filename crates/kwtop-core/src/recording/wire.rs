//! The JSON shapes of a recording's sample lines (see the module header of `recording` for what each
//! field means and when it may be left out). Plain data: no state, no I/O.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::sample::{CpuTimes, DeviceReading, ProcInfo};

/// A process in a full sample (the shape of `kwtop.recording/1` lines, unchanged).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct WireProcess {
    pub pid: u32,
    pub st: u64,
    pub ppid: u32,
    pub cpu: u64,
    /// Waited-for children's CPU ticks (cutime + cstime); absent in older recordings and when 0.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub child: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub info: Option<ProcInfo>,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// A full sample as written.
#[derive(Debug, Serialize)]
pub(super) struct FullOut<'a> {
    pub t: f64,
    pub wall_ms: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uptime_s: Option<f64>,
    pub tps: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu: Option<CpuTimes>,
    pub procs: Vec<WireProcess>,
    pub devices: &'a [DeviceReading],
}

/// A delta sample as written: the sample's own fields in full, the processes and devices as changes.
#[derive(Debug, Serialize)]
pub(super) struct DeltaOut {
    pub t: f64,
    pub wall_ms: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uptime_s: Option<f64>,
    pub tps: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu: Option<CpuTimes>,
    pub delta: WireDelta,
}

/// Any sample line as read: a full one (no `delta`) or a delta one.
#[derive(Debug, Deserialize)]
pub(super) struct LineIn {
    pub t: f64,
    pub wall_ms: i64,
    #[serde(default)]
    pub uptime_s: Option<f64>,
    pub tps: u64,
    #[serde(default)]
    pub cpu: Option<CpuTimes>,
    #[serde(default)]
    pub procs: Option<Vec<WireProcess>>,
    #[serde(default)]
    pub devices: Option<Vec<DeviceReading>>,
    #[serde(default)]
    pub delta: Option<WireDelta>,
}

/// What changed since the previous sample.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(super) struct WireDelta {
    /// Processes of the previous sample whose only change is their CPU ticks, as pairs flattened
    /// into one array: the process's position in the previous sample's list (for the first pair;
    /// then the distance from the previous pair's position), and the ticks gained.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ticks: Vec<i64>,
    /// New processes (every field) and other changed ones (only the fields that changed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub procs: Vec<WireChange>,
    /// `[pid, starttime]` of the previous sample's processes that are not in this one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gone: Vec<(u32, u64)>,
    /// Devices whose reading changed, by position in the previous sample's device list.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dev: Vec<DevicePatch>,
}

/// A process in a delta sample. For a process of the previous sample an absent field is unchanged;
/// a new one has `ppid`, `cpu` and `info` (and `child` when not 0).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct WireChange {
    pub pid: u32,
    pub st: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ppid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub child: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub info: Option<ProcInfo>,
    /// A new process's index in this sample's list, when it is not among the new processes that end
    /// the list (those are appended in the order given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<usize>,
}

/// The top-level fields of one device reading (as its JSON object) that changed: `set` holds their
/// new values, `unset` names the ones now absent (a value that became `None`, empty or default).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct DevicePatch {
    pub i: usize,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub set: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unset: Vec<String>,
}
