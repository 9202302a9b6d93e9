//! Drives the built `libfake_nvml.so` through the real `nvml-wrapper` 0.13.
//!
//! The fixture path travels in a process-global environment variable, so all
//! cases run sequentially inside ONE test function (plus a static mutex, in
//! case more tests are added).

use nvml_wrapper::Nvml;
use nvml_wrapper::enum_wrappers::device::{Sampling, TemperatureSensor};
use nvml_wrapper::enums::device::SampleValue;
use nvml_wrapper::enums::device::UsedGpuMemory;
use nvml_wrapper::error::NvmlError;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

static ENV_LOCK: Mutex<()> = Mutex::new(());

const SO_NAME: &str = "libfake_nvml.so";

/// Finds the cdylib: `KWTOP_FAKE_NVML_LIB`, then next to this test binary
/// (`<target>/<profile>/deps/..`), then `$CARGO_TARGET_DIR/debug`, then
/// `<workspace>/target/debug`.
fn cdylib_path() -> PathBuf {
    let mut candidates = Vec::new();
    if let Some(p) = std::env::var_os("KWTOP_FAKE_NVML_LIB") {
        candidates.push(PathBuf::from(p));
    }
    if let Ok(exe) = std::env::current_exe()
        && let Some(profile_dir) = exe.parent().and_then(Path::parent)
    {
        // `cargo test` leaves the cdylib in deps/ (only `cargo build` copies it up a level, and
        // that copy goes stale when `cargo test` rebuilds the fake): deps/ first.
        candidates.push(profile_dir.join("deps").join(SO_NAME));
        candidates.push(profile_dir.join(SO_NAME));
    }
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        candidates.push(PathBuf::from(dir).join("debug").join(SO_NAME));
    }
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    if let Some(ws) = manifest.parent() {
        candidates.push(ws.join("target").join("debug").join(SO_NAME));
    }
    candidates.push(manifest.join("target").join("debug").join(SO_NAME));
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .unwrap_or_else(|| panic!("{SO_NAME} not found; looked at {candidates:?}"))
}

struct Env {
    lib: PathBuf,
    dir: PathBuf,
    n: usize,
}

impl Env {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("fake-nvml-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        Env {
            lib: cdylib_path(),
            dir,
            n: 0,
        }
    }

    fn set_fixture_path(&self, path: Option<&Path>) {
        // SAFETY: environment access in this test binary is serialised by
        // ENV_LOCK (held by the only test), so no other thread reads or
        // writes the environment concurrently.
        unsafe {
            match path {
                Some(p) => std::env::set_var("KWTOP_FAKE_NVML_FIXTURE", p),
                None => std::env::remove_var("KWTOP_FAKE_NVML_FIXTURE"),
            }
        }
    }

    /// Points the fixture variable at `json` (written to a fresh file) and inits.
    fn init(&mut self, json: &str) -> Result<Nvml, NvmlError> {
        self.n += 1;
        let path = self.dir.join(format!("fixture-{}.json", self.n));
        std::fs::write(&path, json).expect("write fixture");
        self.set_fixture_path(Some(&path));
        self.init_current()
    }

    fn init_file(&mut self, path: &Path) -> Result<Nvml, NvmlError> {
        self.set_fixture_path(Some(path));
        self.init_current()
    }

    fn init_current(&self) -> Result<Nvml, NvmlError> {
        Nvml::builder().lib_path(self.lib.as_os_str()).init()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

#[test]
fn fake_nvml_through_nvml_wrapper() {
    let _lock = ENV_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let mut env = Env::new();

    init_failures(&mut env);
    scalars_and_energy(&mut env);
    process_lists(&mut env);
    process_utilization(&mut env);
    device_samples(&mut env);
    faults(&mut env);
    reinit_resets_counters(&mut env);
    example_busy_and_idle_holder(&mut env);
    example_gpu_lost(&mut env);
}

fn init_failures(env: &mut Env) {
    env.set_fixture_path(None);
    assert!(matches!(env.init_current(), Err(NvmlError::LibraryNotFound)));

    let missing = env.dir.join("does-not-exist.json");
    assert!(matches!(env.init_file(&missing), Err(NvmlError::LibraryNotFound)));
    assert!(matches!(env.init("{not json"), Err(NvmlError::LibraryNotFound)));
    // Unknown keys are rejected rather than silently ignored.
    assert!(matches!(
        env.init(r#"{"devices":[{"frames":[{"power_w":1}]}]}"#),
        Err(NvmlError::LibraryNotFound)
    ));
    assert!(matches!(
        env.init(r#"{"init_error":"DRIVER_NOT_LOADED","devices":[{}]}"#),
        Err(NvmlError::DriverNotLoaded)
    ));
    assert!(matches!(
        env.init(r#"{"init_error":"NO_PERMISSION"}"#),
        Err(NvmlError::NoPermission)
    ));
}

fn scalars_and_energy(env: &mut Env) {
    let nvml = env
        .init(
            r#"{
        "driver_version": "550.54.15",
        "devices": [
          {"name": "NVIDIA H100 80GB HBM3", "uuid": "GPU-00000000-0000-0000-0000-000000000000",
           "frames": [
             {"energy_mj": 1000000, "power_mw": 300000, "power_limit_mw": 700000,
              "util_gpu": 97, "util_mem": 40, "mem_total": 85899345920,
              "mem_used": 10737418240, "temperature_c": 60},
             {"energy_mj": 1400000, "power_mw": 310000},
             {"energy_mj": 1800000, "power_mw": 320000}
           ]},
          {"frames": [{"energy_mj": null, "power_mw": 50000}]}
        ]}"#,
        )
        .expect("init");
    assert_eq!(nvml.device_count().expect("count"), 2);
    assert_eq!(nvml.sys_driver_version().expect("driver"), "550.54.15");
    assert_eq!(nvml.sys_nvml_version().expect("nvml"), "12.550.54.15");
    assert!(matches!(nvml.device_by_index(2), Err(NvmlError::InvalidArg)));

    let d0 = nvml.device_by_index(0).expect("dev0");
    assert_eq!(d0.name().expect("name"), "NVIDIA H100 80GB HBM3");
    assert_eq!(
        d0.uuid().expect("uuid"),
        "GPU-00000000-0000-0000-0000-000000000000"
    );
    // Energy advances frame by frame, then the last frame repeats.
    let energies: Vec<u64> = (0..5)
        .map(|_| d0.total_energy_consumption().expect("energy"))
        .collect();
    assert_eq!(energies, [1_000_000, 1_400_000, 1_800_000, 1_800_000, 1_800_000]);
    // Counters are per function: power starts at frame 0.
    assert_eq!(d0.power_usage().expect("power"), 300_000);
    assert_eq!(d0.power_usage().expect("power"), 310_000);
    assert_eq!(d0.enforced_power_limit().expect("limit"), 700_000);
    assert_eq!(d0.power_management_limit().expect("pm limit"), 700_000);
    let util = d0.utilization_rates().expect("util");
    assert_eq!((util.gpu, util.memory), (97, 40));
    let mem = d0.memory_info().expect("mem");
    assert_eq!(mem.total, 85_899_345_920);
    assert_eq!(mem.used, 10_737_418_240);
    assert_eq!(mem.free, 85_899_345_920 - 10_737_418_240);
    assert_eq!(mem.reserved, 0);
    assert_eq!(d0.temperature(TemperatureSensor::Gpu).expect("temp"), 60);
    // Second calls hit frame 1, which lacks these fields → NotSupported.
    assert!(matches!(d0.enforced_power_limit(), Err(NvmlError::NotSupported)));
    assert!(matches!(
        d0.temperature(TemperatureSensor::Gpu),
        Err(NvmlError::NotSupported)
    ));

    let d1 = nvml.device_by_index(1).expect("dev1");
    assert_eq!(d1.name().expect("default name"), "Fake NVIDIA GPU 1");
    assert!(d1.uuid().expect("default uuid").starts_with("GPU-"));
    assert!(matches!(
        d1.total_energy_consumption(),
        Err(NvmlError::NotSupported)
    ));
    assert_eq!(d1.power_usage().expect("power only"), 50_000);
    assert!(matches!(d1.memory_info(), Err(NvmlError::NotSupported)));
    assert!(matches!(d1.utilization_rates(), Err(NvmlError::NotSupported)));
    nvml.shutdown().expect("shutdown");
}

fn process_lists(env: &mut Env) {
    let nvml = env
        .init(
            r#"{"devices": [{"frames": [
          {"compute_processes": [{"pid": 4242, "used_mem": 8589934592}, {"pid": 5151, "used_mem": null}],
           "graphics_processes": [{"pid": 777}],
           "mps_compute_processes": [{"pid": 88, "used_mem": 1024}]},
          {"compute_processes": [{"pid": 9999, "used_mem": 1}]},
          {}
        ]}]}"#,
        )
        .expect("init");
    let d = nvml.device_by_index(0).expect("dev");
    let procs = d.running_compute_processes().expect("compute #1");
    assert_eq!(procs.len(), 2);
    assert_eq!(procs[0].pid, 4242);
    assert_eq!(procs[0].used_gpu_memory, UsedGpuMemory::Used(8_589_934_592));
    assert_eq!(procs[0].gpu_instance_id, None);
    assert_eq!(procs[1].pid, 5151);
    assert_eq!(procs[1].used_gpu_memory, UsedGpuMemory::Unavailable);
    // The sizing + fill pair counted as ONE call: the next is frame 1.
    let procs = d.running_compute_processes().expect("compute #2");
    assert_eq!(procs.iter().map(|p| p.pid).collect::<Vec<_>>(), [9999], "frame 1");
    // Frame 2 has no processes: SUCCESS with count 0 → empty vec.
    assert!(d.running_compute_processes().expect("compute #3").is_empty());
    assert_eq!(d.running_compute_processes_count().expect("count"), 0);

    let gfx = d.running_graphics_processes().expect("graphics");
    assert_eq!(gfx.len(), 1);
    assert_eq!(gfx[0].pid, 777);
    assert_eq!(gfx[0].used_gpu_memory, UsedGpuMemory::Unavailable);
    assert!(d.running_graphics_processes().expect("graphics #2").is_empty());

    let mps = d.mps_running_compute_processes().expect("mps");
    assert_eq!(mps.len(), 1);
    assert_eq!(mps[0].pid, 88);
    assert_eq!(mps[0].used_gpu_memory, UsedGpuMemory::Used(1024));
}

fn process_utilization(env: &mut Env) {
    let nvml = env
        .init(
            r#"{"devices": [
          {"frames": [{"process_utilization": [
             {"pid": 4242, "sm": 97, "mem": 30, "enc": 1, "dec": 2, "ts_us": 1000000},
             {"pid": 4242, "sm": 95, "mem": 31, "ts_us": 2000000}]}]},
          {"frames": [{"process_utilization": null}]},
          {"frames": [{"process_utilization": []}]}
        ]}"#,
        )
        .expect("init");
    let d0 = nvml.device_by_index(0).expect("dev0");
    let all = d0.process_utilization_stats(None).expect("all samples");
    assert_eq!(all.len(), 2);
    assert_eq!(
        (
            all[0].pid,
            all[0].sm_util,
            all[0].mem_util,
            all[0].enc_util,
            all[0].dec_util,
            all[0].timestamp
        ),
        (4242, 97, 30, 1, 2, 1_000_000)
    );
    let newer = d0.process_utilization_stats(1_000_000).expect("newer samples");
    assert_eq!(newer.len(), 1);
    assert_eq!(newer[0].timestamp, 2_000_000);
    assert_eq!(newer[0].sm_util, 95);
    assert!(matches!(
        d0.process_utilization_stats(2_000_000),
        Err(NvmlError::NotFound)
    ));
    assert!(matches!(
        d0.process_utilization_stats(u64::MAX),
        Err(NvmlError::NotFound)
    ));

    let d1 = nvml.device_by_index(1).expect("dev1");
    assert!(matches!(
        d1.process_utilization_stats(None),
        Err(NvmlError::NotFound)
    ));
    let d2 = nvml.device_by_index(2).expect("dev2");
    assert!(matches!(
        d2.process_utilization_stats(None),
        Err(NvmlError::NotFound)
    ));
}

fn device_samples(env: &mut Env) {
    let nvml = env
        .init(
            r#"{"devices": [
          {"frames": [
             {"util_samples": [{"ts_us": 1000000, "value": 40}, {"ts_us": 1166667, "value": 0}]},
             {"util_samples": [{"ts_us": 1333334, "value": 100}]}]},
          {"frames": [{}]}
        ]}"#,
        )
        .expect("init");
    let d0 = nvml.device_by_index(0).expect("dev0");
    let all = d0.samples(Sampling::GpuUtilization, None).expect("all samples");
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].timestamp, 1_000_000);
    assert_eq!(all[0].value, SampleValue::U64(40));
    // The sizing + fill pair was one call: the next call sees frame 1.
    let newer = d0.samples(Sampling::GpuUtilization, 1_166_667).expect("newer");
    assert_eq!(newer.len(), 1);
    assert_eq!(newer[0].value, SampleValue::U64(100));
    assert!(matches!(
        d0.samples(Sampling::GpuUtilization, 2_000_000),
        Err(NvmlError::NotFound)
    ));
    assert!(matches!(
        d0.samples(Sampling::Power, None),
        Err(NvmlError::NotSupported)
    ));
    let d1 = nvml.device_by_index(1).expect("dev1");
    assert!(matches!(
        d1.samples(Sampling::GpuUtilization, None),
        Err(NvmlError::NotSupported)
    ));
}

fn faults(env: &mut Env) {
    let nvml = env
        .init(
            r#"{"devices": [{
          "frames": [{"energy_mj": 5, "power_mw": 100000}],
          "faults": [
            {"function": "nvmlDeviceGetPowerUsage", "from_call": 3, "error": "GPU_IS_LOST"},
            {"function": "nvmlDeviceGetTotalEnergyConsumption", "from_call": 2, "to_call": 2, "error": "UNKNOWN"}
          ]}]}"#,
        )
        .expect("init");
    let d = nvml.device_by_index(0).expect("dev");
    assert_eq!(d.power_usage().expect("call 1"), 100_000);
    assert_eq!(d.power_usage().expect("call 2"), 100_000);
    assert!(matches!(d.power_usage(), Err(NvmlError::GpuLost)));
    assert!(matches!(d.power_usage(), Err(NvmlError::GpuLost)));
    // Other functions are unaffected; a to_call bound makes a transient fault.
    assert_eq!(d.total_energy_consumption().expect("energy 1"), 5);
    assert!(matches!(d.total_energy_consumption(), Err(NvmlError::Unknown)));
    assert_eq!(d.total_energy_consumption().expect("energy 3"), 5);
}

fn reinit_resets_counters(env: &mut Env) {
    let json = r#"{"devices": [{"frames": [{"energy_mj": 1}, {"energy_mj": 2}]}]}"#;
    let nvml = env.init(json).expect("init");
    {
        let d = nvml.device_by_index(0).expect("dev");
        assert_eq!(d.total_energy_consumption().expect("e"), 1);
        assert_eq!(d.total_energy_consumption().expect("e"), 2);
    }
    nvml.shutdown().expect("shutdown");
    let nvml = env.init(json).expect("re-init");
    let d = nvml.device_by_index(0).expect("dev");
    assert_eq!(d.total_energy_consumption().expect("e after re-init"), 1);
}

fn example_busy_and_idle_holder(env: &mut Env) {
    let nvml = env
        .init_file(&fixtures_dir().join("h100-busy-and-idle-holder.json"))
        .expect("init example");
    assert_eq!(nvml.device_count().expect("count"), 2);
    let d0 = nvml.device_by_index(0).expect("dev0");
    let e: Vec<u64> = (0..7)
        .map(|_| d0.total_energy_consumption().expect("energy"))
        .collect();
    for w in e[..6].windows(2) {
        assert_eq!(w[1] - w[0], 400_000, "≈400 J per frame");
    }
    assert_eq!(e[6], e[5], "last frame repeats");
    let procs = d0.running_compute_processes().expect("procs");
    let pids: Vec<u32> = procs.iter().map(|p| p.pid).collect();
    assert_eq!(pids, [4242, 5151]);
    assert_eq!(procs[0].used_gpu_memory, UsedGpuMemory::Used(8 << 30));
    assert_eq!(procs[1].used_gpu_memory, UsedGpuMemory::Used(4 << 30));
    let samples = d0.process_utilization_stats(None).expect("samples");
    assert_eq!(samples.len(), 1);
    assert_eq!((samples[0].pid, samples[0].sm_util), (4242, 97));

    let d1 = nvml.device_by_index(1).expect("dev1");
    assert!(matches!(
        d1.total_energy_consumption(),
        Err(NvmlError::NotSupported)
    ));
    assert!(d1.power_usage().expect("power") > 0);
    assert!(d1.running_compute_processes().expect("none").is_empty());
    assert!(d1.running_graphics_processes().expect("none").is_empty());
    assert!(matches!(
        d1.process_utilization_stats(None),
        Err(NvmlError::NotFound)
    ));
}

fn example_gpu_lost(env: &mut Env) {
    let nvml = env
        .init_file(&fixtures_dir().join("gpu-lost.json"))
        .expect("init example");
    let d = nvml.device_by_index(0).expect("handle call 1");
    assert_eq!(d.total_energy_consumption().expect("1"), 1_000_000);
    assert_eq!(d.total_energy_consumption().expect("2"), 1_400_000);
    assert!(matches!(d.total_energy_consumption(), Err(NvmlError::GpuLost)));
    assert_eq!(d.power_usage().expect("power 1"), 300_000);
    assert_eq!(d.power_usage().expect("power 2"), 310_000);
    assert!(matches!(d.power_usage(), Err(NvmlError::GpuLost)));
    assert_eq!(d.running_compute_processes().expect("procs 1").len(), 1);
    assert_eq!(d.running_compute_processes().expect("procs 2").len(), 1);
    assert!(matches!(d.running_compute_processes(), Err(NvmlError::GpuLost)));
    let _ = nvml.device_by_index(0).expect("handle call 2");
    assert!(matches!(nvml.device_by_index(0), Err(NvmlError::GpuLost)));
}
