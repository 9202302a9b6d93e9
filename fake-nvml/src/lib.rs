//! A fake NVML (`libnvidia-ml`) for tests and CI machines without a GPU.
//!
//! Built as a `cdylib` (`libfake_nvml.so`), this crate exports the subset of
//! the NVML C API that kwtop uses, with the exact names and ABI of the real
//! library, so `nvml_wrapper::Nvml::builder().lib_path(path).init()` can load
//! it and kwtop's real NVML code runs unchanged. What the "GPUs" report is
//! scripted by a JSON fixture.
//!
//! # Loading the fixture
//!
//! Every `nvmlInit_v2` / `nvmlInitWithFlags` reads the file named by the
//! environment variable [`FIXTURE_ENV`] (`KWTOP_FAKE_NVML_FIXTURE`) and resets
//! all call counters. If the variable is unset, or the file is unreadable or
//! not a valid fixture, init returns `NVML_ERROR_LIBRARY_NOT_FOUND` (12) and
//! prints nothing (set `KWTOP_FAKE_NVML_DEBUG=1` to get the reason on stderr).
//! `nvmlShutdown` decrements an init reference count; when it reaches zero the
//! state is dropped and every query returns `NVML_ERROR_UNINITIALIZED`.
//!
//! # Fixture format
//!
//! Unknown keys are rejected (typos fail loudly instead of silently becoming
//! "not supported"); a `"_comment"` key with any value is allowed on every
//! object. See `fixtures/README.md` for the full reference.
//!
//! ```json
//! {
//!   "init_error": null,
//!   "driver_version": "550.54.15",
//!   "nvml_version": "12.550.54.15",
//!   "devices": [{
//!     "name": "NVIDIA H100 80GB HBM3",
//!     "uuid": "GPU-00000000-0000-0000-0000-000000000000",
//!     "frames": [{
//!       "energy_mj": 1000000, "power_mw": 300000, "power_limit_mw": 700000,
//!       "util_gpu": 97, "util_mem": 40,
//!       "mem_total": 85899345920, "mem_used": 10737418240,
//!       "temperature_c": 60,
//!       "compute_processes": [{"pid": 4242, "used_mem": 8589934592}],
//!       "graphics_processes": [],
//!       "process_utilization": [
//!         {"pid": 4242, "sm": 97, "mem": 30, "enc": 0, "dec": 0, "ts_us": 1000000}
//!       ]
//!     }],
//!     "faults": [{"function": "nvmlDeviceGetPowerUsage", "from_call": 3, "error": "GPU_IS_LOST"}]
//!   }]
//! }
//! ```
//!
//! * `init_error`: an NVML error name (`"DRIVER_NOT_LOADED"`, `"NO_PERMISSION"`,
//!   ... or with the `NVML_ERROR_` prefix) that init returns instead of
//!   succeeding.
//! * `frames`: frame *k* answers the (*k*+1)-th call of each device function
//!   on that device; the last frame repeats forever. Counters are per (device,
//!   function). A two-call sizing protocol (process lists, process
//!   utilization) counts as ONE call: the sizing call (null buffer) advances
//!   the counter and, when it answers `INSUFFICIENT_SIZE`, the following
//!   fill call reuses the same frame.
//! * Missing or `null` numeric frame fields make that query return
//!   `NVML_ERROR_NOT_SUPPORTED` (`energy_mj`, `power_mw`, `power_limit_mw`,
//!   `util_gpu`, `mem_total`, `temperature_c`); `util_mem`, `mem_used`,
//!   `mem_reserved` default to 0; missing process lists are empty; a missing
//!   or `null` `process_utilization` answers `NVML_ERROR_NOT_FOUND`; a missing
//!   or `null` `util_samples` (device utilisation samples,
//!   `nvmlDeviceGetSamples`) answers `NVML_ERROR_NOT_SUPPORTED`.
//! * `used_mem: null` (or missing) gives NVML's "not available" value
//!   `0xFFFF_FFFF_FFFF_FFFF`.
//! * `faults`: `function` is an exported device-function name or `"*"` (every
//!   device function, including `nvmlDeviceGetHandleByIndex_v2`); the fault
//!   applies to calls `from_call..=to_call` (1-based, `to_call` optional =
//!   forever).
//!
//! # Safety contract
//!
//! Exported functions follow NVML's contract: every pointer argument must be
//! null or valid for the reads/writes NVML documents (buffers for at least
//! the stated length/count). Null pointers are rejected with
//! `NVML_ERROR_INVALID_ARGUMENT`; no panic crosses the FFI boundary (every
//! body runs under `catch_unwind`, a panic becomes `NVML_ERROR_UNKNOWN`).

#![allow(non_snake_case, non_camel_case_types, clippy::missing_safety_doc)]
#![deny(unsafe_op_in_unsafe_fn)]

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::ffi::{CStr, c_char, c_uint, c_ulonglong};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Mutex, MutexGuard};

/// Environment variable naming the JSON fixture read at `nvmlInit`.
pub const FIXTURE_ENV: &str = "KWTOP_FAKE_NVML_FIXTURE";
/// When set (to anything), fixture load errors are printed to stderr.
pub const DEBUG_ENV: &str = "KWTOP_FAKE_NVML_DEBUG";

/// `nvmlReturn_t`.
pub type nvmlReturn_t = c_uint;

pub const NVML_SUCCESS: nvmlReturn_t = 0;
pub const NVML_ERROR_UNINITIALIZED: nvmlReturn_t = 1;
pub const NVML_ERROR_INVALID_ARGUMENT: nvmlReturn_t = 2;
pub const NVML_ERROR_NOT_SUPPORTED: nvmlReturn_t = 3;
pub const NVML_ERROR_NO_PERMISSION: nvmlReturn_t = 4;
pub const NVML_ERROR_ALREADY_INITIALIZED: nvmlReturn_t = 5;
pub const NVML_ERROR_NOT_FOUND: nvmlReturn_t = 6;
pub const NVML_ERROR_INSUFFICIENT_SIZE: nvmlReturn_t = 7;
pub const NVML_ERROR_INSUFFICIENT_POWER: nvmlReturn_t = 8;
pub const NVML_ERROR_DRIVER_NOT_LOADED: nvmlReturn_t = 9;
pub const NVML_ERROR_TIMEOUT: nvmlReturn_t = 10;
pub const NVML_ERROR_IRQ_ISSUE: nvmlReturn_t = 11;
pub const NVML_ERROR_LIBRARY_NOT_FOUND: nvmlReturn_t = 12;
pub const NVML_ERROR_FUNCTION_NOT_FOUND: nvmlReturn_t = 13;
pub const NVML_ERROR_CORRUPTED_INFOROM: nvmlReturn_t = 14;
pub const NVML_ERROR_GPU_IS_LOST: nvmlReturn_t = 15;
pub const NVML_ERROR_RESET_REQUIRED: nvmlReturn_t = 16;
pub const NVML_ERROR_OPERATING_SYSTEM: nvmlReturn_t = 17;
pub const NVML_ERROR_LIB_RM_VERSION_MISMATCH: nvmlReturn_t = 18;
pub const NVML_ERROR_IN_USE: nvmlReturn_t = 19;
pub const NVML_ERROR_MEMORY: nvmlReturn_t = 20;
pub const NVML_ERROR_NO_DATA: nvmlReturn_t = 21;
pub const NVML_ERROR_ARGUMENT_VERSION_MISMATCH: nvmlReturn_t = 25;
pub const NVML_ERROR_UNKNOWN: nvmlReturn_t = 999;

/// NVML's "value not available" marker for `usedGpuMemory`.
pub const NVML_VALUE_NOT_AVAILABLE_U64: u64 = u64::MAX;
/// NVML's "no instance" marker for MIG GPU/compute instance ids.
const NO_INSTANCE_ID: c_uint = 0xFFFF_FFFF;

/// Error names accepted in fixtures (with or without `NVML_ERROR_`), their
/// codes and `nvmlErrorString` texts.
const ERRORS: &[(&str, nvmlReturn_t, &CStr)] = &[
    ("SUCCESS", NVML_SUCCESS, c"Success"),
    ("UNINITIALIZED", NVML_ERROR_UNINITIALIZED, c"Uninitialized"),
    (
        "INVALID_ARGUMENT",
        NVML_ERROR_INVALID_ARGUMENT,
        c"Invalid Argument",
    ),
    ("NOT_SUPPORTED", NVML_ERROR_NOT_SUPPORTED, c"Not Supported"),
    (
        "NO_PERMISSION",
        NVML_ERROR_NO_PERMISSION,
        c"Insufficient Permissions",
    ),
    (
        "ALREADY_INITIALIZED",
        NVML_ERROR_ALREADY_INITIALIZED,
        c"Already Initialized",
    ),
    ("NOT_FOUND", NVML_ERROR_NOT_FOUND, c"Not Found"),
    (
        "INSUFFICIENT_SIZE",
        NVML_ERROR_INSUFFICIENT_SIZE,
        c"Insufficient Size",
    ),
    (
        "INSUFFICIENT_POWER",
        NVML_ERROR_INSUFFICIENT_POWER,
        c"Insufficient External Power",
    ),
    (
        "DRIVER_NOT_LOADED",
        NVML_ERROR_DRIVER_NOT_LOADED,
        c"Driver Not Loaded",
    ),
    ("TIMEOUT", NVML_ERROR_TIMEOUT, c"Timeout"),
    ("IRQ_ISSUE", NVML_ERROR_IRQ_ISSUE, c"Interrupt request issue"),
    (
        "LIBRARY_NOT_FOUND",
        NVML_ERROR_LIBRARY_NOT_FOUND,
        c"NVML Shared Library Not Found",
    ),
    (
        "FUNCTION_NOT_FOUND",
        NVML_ERROR_FUNCTION_NOT_FOUND,
        c"Function Not Found",
    ),
    (
        "CORRUPTED_INFOROM",
        NVML_ERROR_CORRUPTED_INFOROM,
        c"Corrupted infoROM",
    ),
    ("GPU_IS_LOST", NVML_ERROR_GPU_IS_LOST, c"GPU is lost"),
    (
        "RESET_REQUIRED",
        NVML_ERROR_RESET_REQUIRED,
        c"GPU requires restart",
    ),
    (
        "OPERATING_SYSTEM",
        NVML_ERROR_OPERATING_SYSTEM,
        c"The operating system has blocked the request.",
    ),
    (
        "LIB_RM_VERSION_MISMATCH",
        NVML_ERROR_LIB_RM_VERSION_MISMATCH,
        c"RM has detected an NVML/RM version mismatch.",
    ),
    ("IN_USE", NVML_ERROR_IN_USE, c"In use by another client"),
    ("MEMORY", NVML_ERROR_MEMORY, c"Insufficient Memory"),
    ("NO_DATA", NVML_ERROR_NO_DATA, c"No data"),
    (
        "ARGUMENT_VERSION_MISMATCH",
        NVML_ERROR_ARGUMENT_VERSION_MISMATCH,
        c"Argument version mismatch",
    ),
    ("UNKNOWN", NVML_ERROR_UNKNOWN, c"Unknown Error"),
];

/// Maps an NVML error name (`"GPU_IS_LOST"` or `"NVML_ERROR_GPU_IS_LOST"`) to its code.
pub fn error_code(name: &str) -> Option<nvmlReturn_t> {
    let bare = name
        .strip_prefix("NVML_ERROR_")
        .or_else(|| name.strip_prefix("NVML_"))
        .unwrap_or(name);
    ERRORS.iter().find(|(n, _, _)| *n == bare).map(|(_, c, _)| *c)
}

// ---------------------------------------------------------------------------
// Fixture types (public so Rust tests can build fixtures with serde_json).
// ---------------------------------------------------------------------------

/// Top-level fixture.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fixture {
    #[serde(default, rename = "_comment", skip_serializing_if = "Option::is_none")]
    pub comment: Option<serde_json::Value>,
    /// NVML error name returned by init instead of success.
    #[serde(default)]
    pub init_error: Option<String>,
    /// `nvmlSystemGetDriverVersion`; default `"550.54.15"`.
    #[serde(default)]
    pub driver_version: Option<String>,
    /// `nvmlSystemGetNVMLVersion`; default `"12." + driver_version`.
    #[serde(default)]
    pub nvml_version: Option<String>,
    #[serde(default)]
    pub devices: Vec<DeviceFixture>,
}

/// One fake GPU.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceFixture {
    #[serde(default, rename = "_comment", skip_serializing_if = "Option::is_none")]
    pub comment: Option<serde_json::Value>,
    /// Default `"Fake NVIDIA GPU <index>"`.
    #[serde(default)]
    pub name: Option<String>,
    /// Default `"GPU-fa4e0000-0000-0000-0000-<index as 12 hex digits>"`.
    #[serde(default)]
    pub uuid: Option<String>,
    /// Frame k answers call k+1 of each device function; the last repeats.
    /// No frames behaves like one empty frame.
    #[serde(default)]
    pub frames: Vec<Frame>,
    #[serde(default)]
    pub faults: Vec<Fault>,
}

/// What a device reports for one call of each function.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Frame {
    #[serde(default, rename = "_comment", skip_serializing_if = "Option::is_none")]
    pub comment: Option<serde_json::Value>,
    /// Total energy since driver load, mJ (`nvmlDeviceGetTotalEnergyConsumption`).
    #[serde(default)]
    pub energy_mj: Option<u64>,
    /// Board power, mW (`nvmlDeviceGetPowerUsage`).
    #[serde(default)]
    pub power_mw: Option<u32>,
    /// Enforced limit, mW (`nvmlDeviceGetEnforcedPowerLimit`, and
    /// `nvmlDeviceGetPowerManagementLimit` unless overridden).
    #[serde(default)]
    pub power_limit_mw: Option<u32>,
    /// Overrides `power_limit_mw` for `nvmlDeviceGetPowerManagementLimit`.
    #[serde(default)]
    pub power_management_limit_mw: Option<u32>,
    /// Percent; required for `nvmlDeviceGetUtilizationRates`.
    #[serde(default)]
    pub util_gpu: Option<u32>,
    /// Percent; default 0.
    #[serde(default)]
    pub util_mem: Option<u32>,
    /// Bytes; required for the memory-info queries.
    #[serde(default)]
    pub mem_total: Option<u64>,
    /// Bytes; default 0.
    #[serde(default)]
    pub mem_used: Option<u64>,
    /// Bytes (v2 `reserved`); default 0. free = total - used - reserved.
    #[serde(default)]
    pub mem_reserved: Option<u64>,
    /// °C (`nvmlDeviceGetTemperature` with `NVML_TEMPERATURE_GPU`).
    #[serde(default)]
    pub temperature_c: Option<u32>,
    #[serde(default)]
    pub compute_processes: Vec<ProcessFixture>,
    #[serde(default)]
    pub graphics_processes: Vec<ProcessFixture>,
    #[serde(default)]
    pub mps_compute_processes: Vec<ProcessFixture>,
    /// `None` → `NVML_ERROR_NOT_FOUND`.
    #[serde(default)]
    pub process_utilization: Option<Vec<UtilSample>>,
    /// Device utilisation samples, one per sample period (`nvmlDeviceGetSamples` with
    /// `NVML_GPU_UTILIZATION_SAMPLES`); `None` → `NVML_ERROR_NOT_SUPPORTED`.
    #[serde(default)]
    pub util_samples: Option<Vec<DeviceSample>>,
}

/// One `nvmlSample_t` of `nvmlDeviceGetSamples`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceSample {
    /// Sample timestamp, µs; returned only when > `lastSeenTimeStamp`.
    pub ts_us: u64,
    /// Percent; default 0.
    #[serde(default)]
    pub value: u64,
}

/// One `nvmlProcessInfo_t`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessFixture {
    pub pid: u32,
    /// Bytes; `None` → NVML "not available" (`u64::MAX`).
    #[serde(default)]
    pub used_mem: Option<u64>,
    /// MIG GPU instance id; `None` → `0xFFFFFFFF` (no MIG).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_instance_id: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compute_instance_id: Option<u32>,
}

/// One `nvmlProcessUtilizationSample_t`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UtilSample {
    pub pid: u32,
    #[serde(default)]
    pub sm: u32,
    #[serde(default)]
    pub mem: u32,
    #[serde(default)]
    pub enc: u32,
    #[serde(default)]
    pub dec: u32,
    /// Sample timestamp, µs; returned only when > `lastSeenTimeStamp`.
    pub ts_us: u64,
}

/// An injected error.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fault {
    /// Exported device-function name, or `"*"` for all device functions.
    pub function: String,
    /// First failing call (1-based, per function per device).
    #[serde(default = "one")]
    pub from_call: u64,
    /// Last failing call (inclusive); `None` = forever.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_call: Option<u64>,
    /// NVML error name, e.g. `"GPU_IS_LOST"`.
    pub error: String,
}

fn one() -> u64 {
    1
}

/// Per-device functions with their own call counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Func {
    HandleByIndex,
    Name,
    Uuid,
    TotalEnergy,
    PowerUsage,
    EnforcedPowerLimit,
    PowerManagementLimit,
    UtilizationRates,
    MemoryInfo,
    MemoryInfoV2,
    Temperature,
    ComputeProcs,
    GraphicsProcs,
    MpsComputeProcs,
    ProcessUtilization,
    Samples,
}

const FUNCS: &[(Func, &str)] = &[
    (Func::HandleByIndex, "nvmlDeviceGetHandleByIndex_v2"),
    (Func::Name, "nvmlDeviceGetName"),
    (Func::Uuid, "nvmlDeviceGetUUID"),
    (Func::TotalEnergy, "nvmlDeviceGetTotalEnergyConsumption"),
    (Func::PowerUsage, "nvmlDeviceGetPowerUsage"),
    (Func::EnforcedPowerLimit, "nvmlDeviceGetEnforcedPowerLimit"),
    (Func::PowerManagementLimit, "nvmlDeviceGetPowerManagementLimit"),
    (Func::UtilizationRates, "nvmlDeviceGetUtilizationRates"),
    (Func::MemoryInfo, "nvmlDeviceGetMemoryInfo"),
    (Func::MemoryInfoV2, "nvmlDeviceGetMemoryInfo_v2"),
    (Func::Temperature, "nvmlDeviceGetTemperature"),
    (Func::ComputeProcs, "nvmlDeviceGetComputeRunningProcesses_v3"),
    (Func::GraphicsProcs, "nvmlDeviceGetGraphicsRunningProcesses_v3"),
    (
        Func::MpsComputeProcs,
        "nvmlDeviceGetMPSComputeRunningProcesses_v3",
    ),
    (Func::ProcessUtilization, "nvmlDeviceGetProcessUtilization"),
    (Func::Samples, "nvmlDeviceGetSamples"),
];

impl Func {
    fn name(self) -> &'static str {
        FUNCS.iter().find(|(f, _)| *f == self).map_or("?", |(_, n)| n)
    }
}

/// Names accepted in `faults[].function` (besides `"*"`).
pub fn device_function_names() -> impl Iterator<Item = &'static str> {
    FUNCS.iter().map(|(_, n)| *n)
}

impl Fixture {
    /// Parses and validates a fixture (error names, fault function names).
    pub fn from_json(text: &str) -> Result<Self, String> {
        let fixture: Fixture = serde_json::from_str(text).map_err(|e| e.to_string())?;
        fixture.validate()?;
        Ok(fixture)
    }

    fn validate(&self) -> Result<(), String> {
        if let Some(e) = &self.init_error
            && error_code(e).is_none()
        {
            return Err(format!("unknown init_error {e:?}"));
        }
        for (i, d) in self.devices.iter().enumerate() {
            for f in &d.faults {
                if error_code(&f.error).is_none() {
                    return Err(format!("device {i}: unknown fault error {:?}", f.error));
                }
                if f.function != "*" && !device_function_names().any(|n| n == f.function) {
                    return Err(format!("device {i}: unknown fault function {:?}", f.function));
                }
                if f.from_call == 0 {
                    return Err(format!("device {i}: from_call is 1-based"));
                }
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Global state.
// ---------------------------------------------------------------------------

#[derive(Default)]
struct Counter {
    /// Calls counted so far.
    calls: u64,
    /// Call number a pending fill call (after `INSUFFICIENT_SIZE`) reuses.
    pending: Option<u64>,
}

struct State {
    fixture: Fixture,
    refcount: u32,
    counters: HashMap<(usize, Func), Counter>,
}

static STATE: Mutex<Option<State>> = Mutex::new(None);

fn lock() -> MutexGuard<'static, Option<State>> {
    STATE.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs an FFI body, turning a panic into `NVML_ERROR_UNKNOWN`.
fn guard(f: impl FnOnce() -> nvmlReturn_t) -> nvmlReturn_t {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or(NVML_ERROR_UNKNOWN)
}

fn debug(msg: &str) {
    if std::env::var_os(DEBUG_ENV).is_some() {
        eprintln!("fake-nvml: {msg}");
    }
}

fn load_fixture() -> Result<Fixture, String> {
    let path = std::env::var_os(FIXTURE_ENV).ok_or_else(|| format!("{FIXTURE_ENV} is not set"))?;
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    Fixture::from_json(&text).map_err(|e| format!("{}: {e}", path.display()))
}

fn init() -> nvmlReturn_t {
    guard(|| {
        let fixture = match load_fixture() {
            Ok(f) => f,
            Err(e) => {
                debug(&e);
                return NVML_ERROR_LIBRARY_NOT_FOUND;
            }
        };
        if let Some(code) = fixture.init_error.as_deref().and_then(error_code)
            && code != NVML_SUCCESS
        {
            return code;
        }
        let mut state = lock();
        let refcount = state.as_ref().map_or(0, |s| s.refcount);
        *state = Some(State {
            fixture,
            refcount: refcount.saturating_add(1),
            counters: HashMap::new(),
        });
        NVML_SUCCESS
    })
}

/// How a call interacts with the two-call sizing protocol.
#[derive(Clone, Copy, PartialEq, Eq)]
enum CallKind {
    /// Always a new call.
    Plain,
    /// Null buffer: a new call; a pending fill is recorded on `INSUFFICIENT_SIZE`.
    Sizing,
    /// Buffer given: reuses the pending call number if there is one.
    Fill,
}

/// Device index encoded in a handle: handles are `index + 1` cast to a pointer.
fn handle_for(index: usize) -> nvmlDevice_t {
    std::ptr::without_provenance_mut(index + 1)
}

fn index_of(handle: nvmlDevice_t) -> Option<usize> {
    handle.addr().checked_sub(1)
}

/// Counts one call of `func` on device `index`, applies faults, and runs
/// `body` with the selected frame under the state lock.
fn with_device(
    index: Option<usize>,
    func: Func,
    kind: CallKind,
    body: impl FnOnce(&DeviceFixture, &Frame) -> nvmlReturn_t,
) -> nvmlReturn_t {
    guard(|| {
        let mut st = lock();
        let Some(state) = st.as_mut() else {
            return NVML_ERROR_UNINITIALIZED;
        };
        let Some((index, device)) = index.and_then(|i| Some((i, state.fixture.devices.get(i)?))) else {
            return NVML_ERROR_INVALID_ARGUMENT;
        };
        let counter = state.counters.entry((index, func)).or_default();
        let call = match (kind, counter.pending.take()) {
            (CallKind::Fill, Some(call)) => call,
            _ => {
                counter.calls = counter.calls.saturating_add(1);
                counter.calls
            }
        };
        let fault = device.faults.iter().find(|f| {
            (f.function == "*" || f.function == func.name())
                && f.from_call <= call
                && f.to_call.is_none_or(|t| call <= t)
        });
        let rc = match fault {
            Some(f) => error_code(&f.error).unwrap_or(NVML_ERROR_UNKNOWN),
            None => {
                let empty = Frame::default();
                let k = usize::try_from(call - 1).unwrap_or(usize::MAX);
                let frame = device.frames.get(k).or(device.frames.last()).unwrap_or(&empty);
                body(device, frame)
            }
        };
        if kind != CallKind::Plain && rc == NVML_ERROR_INSUFFICIENT_SIZE {
            counter.pending = Some(call);
        }
        rc
    })
}

// ---------------------------------------------------------------------------
// C types (layouts copied from nvml-wrapper-sys 0.10 bindings).
// ---------------------------------------------------------------------------

#[repr(C)]
pub struct nvmlDevice_st {
    _unused: [u8; 0],
}
pub type nvmlDevice_t = *mut nvmlDevice_st;

#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct nvmlUtilization_t {
    pub gpu: c_uint,
    pub memory: c_uint,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct nvmlMemory_t {
    pub total: c_ulonglong,
    pub free: c_ulonglong,
    pub used: c_ulonglong,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct nvmlMemory_v2_t {
    pub version: c_uint,
    pub total: c_ulonglong,
    pub reserved: c_ulonglong,
    pub free: c_ulonglong,
    pub used: c_ulonglong,
}

/// `NVML_STRUCT_VERSION(Memory, 2)`.
pub const NVML_MEMORY_V2: c_uint = (size_of::<nvmlMemory_v2_t>() as c_uint) | (2 << 24);

/// `nvmlProcessInfo_t` (= `nvmlProcessInfo_v2_st`), used by the `_v3` process queries.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct nvmlProcessInfo_t {
    pub pid: c_uint,
    pub usedGpuMemory: c_ulonglong,
    pub gpuInstanceId: c_uint,
    pub computeInstanceId: c_uint,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct nvmlProcessUtilizationSample_t {
    pub pid: c_uint,
    pub timeStamp: c_ulonglong,
    pub smUtil: c_uint,
    pub memUtil: c_uint,
    pub encUtil: c_uint,
    pub decUtil: c_uint,
}

pub const NVML_TEMPERATURE_GPU: c_uint = 0;

/// `nvmlSample_t`: the value is a union of 8 bytes; the fake always answers
/// `NVML_VALUE_TYPE_UNSIGNED_LONG_LONG`, so it is stored as its `ullVal`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct nvmlSample_t {
    pub timeStamp: c_ulonglong,
    pub sampleValue: c_ulonglong,
}

/// `NVML_GPU_UTILIZATION_SAMPLES` (`nvmlSamplingType_t`).
pub const NVML_GPU_UTILIZATION_SAMPLES: c_uint = 1;
/// `NVML_VALUE_TYPE_UNSIGNED_LONG_LONG` (`nvmlValueType_t`).
pub const NVML_VALUE_TYPE_UNSIGNED_LONG_LONG: c_uint = 3;

// ---------------------------------------------------------------------------
// Pointer helpers.
// ---------------------------------------------------------------------------

/// Writes `value` through `out`, or returns `INVALID_ARGUMENT` if it is null.
///
/// # Safety
/// `out` must be null or valid for a write of `T`.
unsafe fn store<T>(out: *mut T, value: T) -> nvmlReturn_t {
    if out.is_null() {
        return NVML_ERROR_INVALID_ARGUMENT;
    }
    // SAFETY: non-null, and the caller guarantees it is valid for writes.
    unsafe { out.write_unaligned(value) };
    NVML_SUCCESS
}

/// Copies `s` plus a NUL into `buf` of `len` bytes.
///
/// # Safety
/// `buf` must be null or valid for writes of `len` bytes.
unsafe fn store_str(buf: *mut c_char, len: c_uint, s: &str) -> nvmlReturn_t {
    if buf.is_null() {
        return NVML_ERROR_INVALID_ARGUMENT;
    }
    let bytes = s.as_bytes();
    let bytes = bytes.iter().position(|b| *b == 0).map_or(bytes, |n| &bytes[..n]);
    if bytes.len() >= usize::try_from(len).unwrap_or(usize::MAX) {
        return NVML_ERROR_INSUFFICIENT_SIZE;
    }
    // SAFETY: buf is non-null and valid for `len` > bytes.len() bytes (caller
    // contract, checked above); the source is a distinct Rust string.
    unsafe {
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), buf.cast::<u8>(), bytes.len());
        buf.add(bytes.len()).write(0);
    }
    NVML_SUCCESS
}

/// Writes `items` into the caller's array `out` of capacity `*count`,
/// following NVML's sizing protocol. A null `out` is a sizing call.
///
/// # Safety
/// `count` must be valid for read/write; `out` null or valid for `*count` writes.
unsafe fn store_list<T: Copy>(
    count: *mut c_uint,
    out: *mut T,
    items: &[T],
    empty_sizing_rc: nvmlReturn_t,
) -> nvmlReturn_t {
    let n = c_uint::try_from(items.len()).unwrap_or(c_uint::MAX);
    if out.is_null() {
        // SAFETY: caller contract; `count` was null-checked by the exported fn.
        unsafe { count.write_unaligned(n) };
        return if n == 0 {
            empty_sizing_rc
        } else {
            NVML_ERROR_INSUFFICIENT_SIZE
        };
    }
    // SAFETY: as above.
    let capacity = unsafe { count.read_unaligned() };
    // SAFETY: as above.
    unsafe { count.write_unaligned(n) };
    if capacity < n {
        return NVML_ERROR_INSUFFICIENT_SIZE;
    }
    for (i, item) in items.iter().enumerate() {
        // SAFETY: i < n <= capacity, and `out` is valid for `capacity`
        // elements (caller contract). `write` does not read the possibly
        // uninitialized destination.
        unsafe { out.add(i).write_unaligned(*item) };
    }
    NVML_SUCCESS
}

// ---------------------------------------------------------------------------
// Exported NVML API.
// ---------------------------------------------------------------------------

#[unsafe(no_mangle)]
pub extern "C" fn nvmlInit_v2() -> nvmlReturn_t {
    init()
}

/// Flags are ignored.
#[unsafe(no_mangle)]
pub extern "C" fn nvmlInitWithFlags(_flags: c_uint) -> nvmlReturn_t {
    init()
}

#[unsafe(no_mangle)]
pub extern "C" fn nvmlShutdown() -> nvmlReturn_t {
    guard(|| {
        let mut state = lock();
        match state.as_mut() {
            None => NVML_ERROR_UNINITIALIZED,
            Some(s) if s.refcount > 1 => {
                s.refcount -= 1;
                NVML_SUCCESS
            }
            Some(_) => {
                *state = None;
                NVML_SUCCESS
            }
        }
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn nvmlErrorString(result: nvmlReturn_t) -> *const c_char {
    ERRORS
        .iter()
        .find(|(_, c, _)| *c == result)
        .map_or(c"Unknown Error", |(_, _, s)| s)
        .as_ptr()
}

fn system_string(buf: *mut c_char, len: c_uint, pick: impl FnOnce(&Fixture) -> String) -> nvmlReturn_t {
    guard(|| {
        let value = match lock().as_ref() {
            Some(s) => pick(&s.fixture),
            None => return NVML_ERROR_UNINITIALIZED,
        };
        // SAFETY: caller contract (buf valid for len bytes or null).
        unsafe { store_str(buf, len, &value) }
    })
}

const DEFAULT_DRIVER: &str = "550.54.15";

#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlSystemGetDriverVersion(version: *mut c_char, length: c_uint) -> nvmlReturn_t {
    system_string(version, length, |f| {
        f.driver_version.clone().unwrap_or_else(|| DEFAULT_DRIVER.into())
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlSystemGetNVMLVersion(version: *mut c_char, length: c_uint) -> nvmlReturn_t {
    system_string(version, length, |f| {
        f.nvml_version
            .clone()
            .unwrap_or_else(|| format!("12.{}", f.driver_version.as_deref().unwrap_or(DEFAULT_DRIVER)))
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetCount_v2(deviceCount: *mut c_uint) -> nvmlReturn_t {
    guard(|| {
        let n = match lock().as_ref() {
            Some(s) => c_uint::try_from(s.fixture.devices.len()).unwrap_or(c_uint::MAX),
            None => return NVML_ERROR_UNINITIALIZED,
        };
        // SAFETY: caller contract (null or valid for a write).
        unsafe { store(deviceCount, n) }
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetHandleByIndex_v2(
    index: c_uint,
    device: *mut nvmlDevice_t,
) -> nvmlReturn_t {
    if device.is_null() {
        return NVML_ERROR_INVALID_ARGUMENT;
    }
    let index = usize::try_from(index).ok();
    with_device(index, Func::HandleByIndex, CallKind::Plain, |_, _| {
        let handle = handle_for(index.unwrap_or(0));
        // SAFETY: non-null (checked above), caller contract for validity.
        unsafe { store(device, handle) }
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetName(
    device: nvmlDevice_t,
    name: *mut c_char,
    length: c_uint,
) -> nvmlReturn_t {
    if name.is_null() {
        return NVML_ERROR_INVALID_ARGUMENT;
    }
    let index = index_of(device);
    with_device(index, Func::Name, CallKind::Plain, |d, _| {
        let value = d
            .name
            .clone()
            .unwrap_or_else(|| format!("Fake NVIDIA GPU {}", index.unwrap_or(0)));
        // SAFETY: caller contract (name valid for length bytes).
        unsafe { store_str(name, length, &value) }
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetUUID(
    device: nvmlDevice_t,
    uuid: *mut c_char,
    length: c_uint,
) -> nvmlReturn_t {
    if uuid.is_null() {
        return NVML_ERROR_INVALID_ARGUMENT;
    }
    let index = index_of(device);
    with_device(index, Func::Uuid, CallKind::Plain, |d, _| {
        let value = d
            .uuid
            .clone()
            .unwrap_or_else(|| format!("GPU-fa4e0000-0000-0000-0000-{:012x}", index.unwrap_or(0)));
        // SAFETY: caller contract (uuid valid for length bytes).
        unsafe { store_str(uuid, length, &value) }
    })
}

/// Shared body of the single-scalar queries.
///
/// # Safety
/// `out` must be null or valid for a write of `T`.
unsafe fn scalar_query<T>(
    device: nvmlDevice_t,
    func: Func,
    out: *mut T,
    pick: impl FnOnce(&Frame) -> Option<T>,
) -> nvmlReturn_t {
    if out.is_null() {
        return NVML_ERROR_INVALID_ARGUMENT;
    }
    with_device(index_of(device), func, CallKind::Plain, |_, frame| {
        match pick(frame) {
            // SAFETY: non-null (checked above), caller contract for validity.
            Some(v) => unsafe { store(out, v) },
            None => NVML_ERROR_NOT_SUPPORTED,
        }
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetTotalEnergyConsumption(
    device: nvmlDevice_t,
    energy: *mut c_ulonglong,
) -> nvmlReturn_t {
    // SAFETY: forwarded caller contract.
    unsafe { scalar_query(device, Func::TotalEnergy, energy, |f| f.energy_mj) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetPowerUsage(device: nvmlDevice_t, power: *mut c_uint) -> nvmlReturn_t {
    // SAFETY: forwarded caller contract.
    unsafe { scalar_query(device, Func::PowerUsage, power, |f| f.power_mw) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetEnforcedPowerLimit(
    device: nvmlDevice_t,
    limit: *mut c_uint,
) -> nvmlReturn_t {
    // SAFETY: forwarded caller contract.
    unsafe { scalar_query(device, Func::EnforcedPowerLimit, limit, |f| f.power_limit_mw) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetPowerManagementLimit(
    device: nvmlDevice_t,
    limit: *mut c_uint,
) -> nvmlReturn_t {
    // SAFETY: forwarded caller contract.
    unsafe {
        scalar_query(device, Func::PowerManagementLimit, limit, |f| {
            f.power_management_limit_mw.or(f.power_limit_mw)
        })
    }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetUtilizationRates(
    device: nvmlDevice_t,
    utilization: *mut nvmlUtilization_t,
) -> nvmlReturn_t {
    // SAFETY: forwarded caller contract.
    unsafe {
        scalar_query(device, Func::UtilizationRates, utilization, |f| {
            Some(nvmlUtilization_t {
                gpu: f.util_gpu?,
                memory: f.util_mem.unwrap_or(0),
            })
        })
    }
}

/// (total, reserved, free, used) of a frame, or `None` without `mem_total`.
fn memory_of(f: &Frame) -> Option<(u64, u64, u64, u64)> {
    let total = f.mem_total?;
    let used = f.mem_used.unwrap_or(0);
    let reserved = f.mem_reserved.unwrap_or(0);
    let free = total.saturating_sub(used.saturating_add(reserved));
    Some((total, reserved, free, used))
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetMemoryInfo(
    device: nvmlDevice_t,
    memory: *mut nvmlMemory_t,
) -> nvmlReturn_t {
    // SAFETY: forwarded caller contract.
    unsafe {
        scalar_query(device, Func::MemoryInfo, memory, |f| {
            let (total, reserved, free, used) = memory_of(f)?;
            Some(nvmlMemory_t {
                total,
                free,
                // v1 "used" includes the driver-reserved memory.
                used: used.saturating_add(reserved),
            })
        })
    }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetMemoryInfo_v2(
    device: nvmlDevice_t,
    memory: *mut nvmlMemory_v2_t,
) -> nvmlReturn_t {
    if memory.is_null() {
        return NVML_ERROR_INVALID_ARGUMENT;
    }
    // SAFETY: non-null; caller contract: valid for read/write of the struct.
    let version = unsafe { std::ptr::addr_of!((*memory).version).read_unaligned() };
    if version != NVML_MEMORY_V2 {
        return NVML_ERROR_ARGUMENT_VERSION_MISMATCH;
    }
    // SAFETY: forwarded caller contract.
    unsafe {
        scalar_query(device, Func::MemoryInfoV2, memory, |f| {
            let (total, reserved, free, used) = memory_of(f)?;
            Some(nvmlMemory_v2_t {
                version,
                total,
                reserved,
                free,
                used,
            })
        })
    }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetTemperature(
    device: nvmlDevice_t,
    sensorType: c_uint,
    temp: *mut c_uint,
) -> nvmlReturn_t {
    if sensorType != NVML_TEMPERATURE_GPU {
        return NVML_ERROR_INVALID_ARGUMENT;
    }
    // SAFETY: forwarded caller contract.
    unsafe { scalar_query(device, Func::Temperature, temp, |f| f.temperature_c) }
}

/// Shared body of the `_v3` running-process queries.
///
/// # Safety
/// `infoCount` null or valid for read/write; `infos` null or valid for
/// `*infoCount` writes.
unsafe fn process_query(
    device: nvmlDevice_t,
    func: Func,
    infoCount: *mut c_uint,
    infos: *mut nvmlProcessInfo_t,
    pick: fn(&Frame) -> &[ProcessFixture],
) -> nvmlReturn_t {
    if infoCount.is_null() {
        return NVML_ERROR_INVALID_ARGUMENT;
    }
    let kind = if infos.is_null() {
        CallKind::Sizing
    } else {
        CallKind::Fill
    };
    with_device(index_of(device), func, kind, |_, frame| {
        let items: Vec<nvmlProcessInfo_t> = pick(frame)
            .iter()
            .map(|p| nvmlProcessInfo_t {
                pid: p.pid,
                usedGpuMemory: p.used_mem.unwrap_or(NVML_VALUE_NOT_AVAILABLE_U64),
                gpuInstanceId: p.gpu_instance_id.unwrap_or(NO_INSTANCE_ID),
                computeInstanceId: p.compute_instance_id.unwrap_or(NO_INSTANCE_ID),
            })
            .collect();
        // SAFETY: forwarded caller contract; infoCount is non-null.
        unsafe { store_list(infoCount, infos, &items, NVML_SUCCESS) }
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetComputeRunningProcesses_v3(
    device: nvmlDevice_t,
    infoCount: *mut c_uint,
    infos: *mut nvmlProcessInfo_t,
) -> nvmlReturn_t {
    // SAFETY: forwarded caller contract.
    unsafe {
        process_query(device, Func::ComputeProcs, infoCount, infos, |f| {
            &f.compute_processes
        })
    }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetGraphicsRunningProcesses_v3(
    device: nvmlDevice_t,
    infoCount: *mut c_uint,
    infos: *mut nvmlProcessInfo_t,
) -> nvmlReturn_t {
    // SAFETY: forwarded caller contract.
    unsafe {
        process_query(device, Func::GraphicsProcs, infoCount, infos, |f| {
            &f.graphics_processes
        })
    }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetMPSComputeRunningProcesses_v3(
    device: nvmlDevice_t,
    infoCount: *mut c_uint,
    infos: *mut nvmlProcessInfo_t,
) -> nvmlReturn_t {
    // SAFETY: forwarded caller contract.
    unsafe {
        process_query(device, Func::MpsComputeProcs, infoCount, infos, |f| {
            &f.mps_compute_processes
        })
    }
}

/// Samples with `ts_us > lastSeenTimeStamp`; `NOT_FOUND` when there are none
/// (or the frame has `process_utilization: null`), `INSUFFICIENT_SIZE` with
/// the count on the sizing call (null `utilization`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetProcessUtilization(
    device: nvmlDevice_t,
    utilization: *mut nvmlProcessUtilizationSample_t,
    processSamplesCount: *mut c_uint,
    lastSeenTimeStamp: c_ulonglong,
) -> nvmlReturn_t {
    if processSamplesCount.is_null() {
        return NVML_ERROR_INVALID_ARGUMENT;
    }
    let kind = if utilization.is_null() {
        CallKind::Sizing
    } else {
        CallKind::Fill
    };
    with_device(index_of(device), Func::ProcessUtilization, kind, |_, frame| {
        let Some(samples) = &frame.process_utilization else {
            return NVML_ERROR_NOT_FOUND;
        };
        let items: Vec<nvmlProcessUtilizationSample_t> = samples
            .iter()
            .filter(|s| s.ts_us > lastSeenTimeStamp)
            .map(|s| nvmlProcessUtilizationSample_t {
                pid: s.pid,
                timeStamp: s.ts_us,
                smUtil: s.sm,
                memUtil: s.mem,
                encUtil: s.enc,
                decUtil: s.dec,
            })
            .collect();
        if items.is_empty() {
            return NVML_ERROR_NOT_FOUND;
        }
        // SAFETY: forwarded caller contract; processSamplesCount is non-null.
        unsafe { store_list(processSamplesCount, utilization, &items, NVML_ERROR_NOT_FOUND) }
    })
}

/// Device utilisation samples with `ts_us > lastSeenTimeStamp` (only
/// `NVML_GPU_UTILIZATION_SAMPLES`; other types and frames without
/// `util_samples` answer `NOT_SUPPORTED`); `NOT_FOUND` when none is newer,
/// `INSUFFICIENT_SIZE` with the count on the sizing call (null `samples`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetSamples(
    device: nvmlDevice_t,
    sampleType: c_uint,
    lastSeenTimeStamp: c_ulonglong,
    sampleValType: *mut c_uint,
    sampleCount: *mut c_uint,
    samples: *mut nvmlSample_t,
) -> nvmlReturn_t {
    if sampleCount.is_null() || sampleValType.is_null() {
        return NVML_ERROR_INVALID_ARGUMENT;
    }
    let kind = if samples.is_null() {
        CallKind::Sizing
    } else {
        CallKind::Fill
    };
    with_device(index_of(device), Func::Samples, kind, |_, frame| {
        if sampleType != NVML_GPU_UTILIZATION_SAMPLES {
            return NVML_ERROR_NOT_SUPPORTED;
        }
        let Some(all) = &frame.util_samples else {
            return NVML_ERROR_NOT_SUPPORTED;
        };
        let items: Vec<nvmlSample_t> = all
            .iter()
            .filter(|s| s.ts_us > lastSeenTimeStamp)
            .map(|s| nvmlSample_t {
                timeStamp: s.ts_us,
                sampleValue: s.value,
            })
            .collect();
        if items.is_empty() {
            return NVML_ERROR_NOT_FOUND;
        }
        // SAFETY: non-null (checked above); caller contract for validity.
        unsafe { sampleValType.write_unaligned(NVML_VALUE_TYPE_UNSIGNED_LONG_LONG) };
        // SAFETY: forwarded caller contract; sampleCount is non-null.
        unsafe { store_list(sampleCount, samples, &items, NVML_ERROR_NOT_FOUND) }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_names_match_codes() {
        assert_eq!(error_code("GPU_IS_LOST"), Some(15));
        assert_eq!(error_code("NVML_ERROR_DRIVER_NOT_LOADED"), Some(9));
        assert_eq!(error_code("LIBRARY_NOT_FOUND"), Some(12));
        assert_eq!(error_code("NOPE"), None);
    }

    #[test]
    fn validation_rejects_typos() {
        assert!(Fixture::from_json(r#"{"devices":[{"frames":[{"power_w":1}]}]}"#).is_err());
        assert!(
            Fixture::from_json(
                r#"{"devices":[{"faults":[{"function":"nvmlGetPower","error":"GPU_IS_LOST"}]}]}"#
            )
            .is_err()
        );
        assert!(Fixture::from_json(r#"{"init_error":"BAD"}"#).is_err());
        assert!(Fixture::from_json(r#"{"_comment":"ok","devices":[{}]}"#).is_ok());
    }

    #[test]
    fn memory_v2_version_matches_wrapper() {
        assert_eq!(size_of::<nvmlMemory_v2_t>(), 40);
        assert_eq!(NVML_MEMORY_V2, 40 | (2 << 24));
        assert_eq!(size_of::<nvmlProcessInfo_t>(), 24);
        assert_eq!(size_of::<nvmlProcessUtilizationSample_t>(), 32);
        assert_eq!(size_of::<nvmlSample_t>(), 16);
    }
}
