#![allow(clippy::unwrap_used, clippy::expect_used)]
//! kwtop's real NVML source (`sources::nvml`, through nvml-wrapper) and the whole pipeline, driven by
//! the fake NVML library (`fake-nvml/`, built as `target/<profile>/libfake_nvml.so` by `cargo test`
//! at the workspace root) so the code that reads a real GPU runs in CI without one.
//!
//! The fake reads its fixture from the process-global variable `KWTOP_FAKE_NVML_FIXTURE`, and this
//! crate forbids `unsafe` (so no `set_var`): every library-level test therefore re-runs itself in a
//! child copy of this test binary with the variable set (see [`in_child`]); CLI tests start the
//! `kwtop` binary with it. Timestamps are scripted (`mono_s` 0, 1, 2, …), so no test sleeps except
//! the CLI ones, which measure a real (short) interval.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use kwtop::config::Settings;
use kwtop::engine::Engine;
use kwtop::ledger::{Ledger, ProcState};
use kwtop::sample::{CpuTimes, DeviceKind, DeviceReading, ProcInfo, ProcKey};
use kwtop::sample::{Provenance, Sample};
use kwtop::sources::nvml::NvmlSource;
use kwtop::sources::{CpuEnergySource, ProcSnapshot, ProcessSource, Sampler};
use kwtop_core::testing;
use serde_json::Value;

const FIXTURE_VAR: &str = "KWTOP_FAKE_NVML_FIXTURE";
/// Set in the child copy of this binary that runs one test's body.
const CHILD_VAR: &str = "KWTOP_NVML_FAKE_TEST_CHILD";
const SO_NAME: &str = "libfake_nvml.so";
const GIB: u64 = 1 << 30;
/// Wall clock of scripted sample 0 (2023-11-14T22:13:20Z).
const BASE_MS: i64 = 1_700_000_000_000;

/// The fake NVML library: `KWTOP_FAKE_NVML_LIB`, else next to this test binary's directory
/// (`target/<profile>/`), else `target/debug/` of the workspace.
fn fake_lib() -> PathBuf {
    let mut candidates = Vec::new();
    if let Some(p) = std::env::var_os("KWTOP_FAKE_NVML_LIB") {
        candidates.push(PathBuf::from(p));
    }
    if let Ok(exe) = std::env::current_exe()
        && let Some(profile_dir) = exe.parent().and_then(Path::parent)
    {
        // deps/ first: `cargo test` rebuilds the fake there, the copy a level up is `cargo build`'s.
        candidates.push(profile_dir.join("deps").join(SO_NAME));
        candidates.push(profile_dir.join(SO_NAME));
    }
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        candidates.push(PathBuf::from(dir).join("debug").join(SO_NAME));
    }
    candidates.push(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("target/debug")
            .join(SO_NAME),
    );
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .unwrap_or_else(|| {
            panic!(
                "{SO_NAME} not found (looked at {candidates:?}); `cargo test` at the workspace root \
             builds it, or run `cargo build -p fake-nvml`"
            )
        })
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fake-nvml/fixtures")
        .join(name)
}

/// Run `body` with `KWTOP_FAKE_NVML_FIXTURE=fixture`: in this process when it is the child started
/// for `test`, otherwise by starting that child (this test binary, filtered to exactly `test`).
fn in_child(test: &str, fixture: &Path, body: impl FnOnce()) {
    if std::env::var_os(CHILD_VAR).is_some() {
        body();
        return;
    }
    let exe = std::env::current_exe().expect("own test binary");
    let out = Command::new(exe)
        .args([
            test,
            "--exact",
            "--nocapture",
            "--test-threads=1",
            "--include-ignored",
        ])
        .env(CHILD_VAR, "1")
        .env(FIXTURE_VAR, fixture)
        .env("KWTOP_FAKE_NVML_DEBUG", "1")
        .output()
        .expect("start child test");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "child run of {test} failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
}

/// A test whose body runs with the named fake-NVML fixture.
macro_rules! with_fixture {
    ($(#[$m:meta])* fn $name:ident() uses $fx:expr => $body:block) => {
        $(#[$m])*
        #[test]
        fn $name() {
            in_child(stringify!($name), &fixture($fx), || $body);
        }
    };
}

// ----- scripted CPU side -------------------------------------------------------------------------

/// Processes and `/proc/stat`, scripted. Read k sees the process list `lists[k]` (the last list
/// repeats). Per read: CPU busy +50 ticks and idle +50 ticks (load 0.5); every listed process +10
/// ticks (a 0.2 share of busy time). Pids are old (started long before the first sample).
struct ScriptedProcs {
    lists: Vec<Vec<(u32, &'static str)>>,
    infos: Vec<(u32, Arc<ProcInfo>)>,
    next: u64,
}

impl ScriptedProcs {
    fn new(lists: &[&[(u32, &'static str)]]) -> Self {
        ScriptedProcs {
            lists: lists.iter().map(|l| l.to_vec()).collect(),
            infos: Vec::new(),
            next: 0,
        }
    }

    fn info(&mut self, pid: u32, comm: &str) -> Arc<ProcInfo> {
        if let Some((_, i)) = self.infos.iter().find(|(p, _)| *p == pid) {
            return Arc::clone(i);
        }
        let i = Arc::new(ProcInfo {
            comm: comm.into(),
            cmdline: format!("{comm} --fake"),
            user: "ana".into(),
            uid: Some(1000),
            cgroup: Default::default(),
        });
        self.infos.push((pid, Arc::clone(&i)));
        i
    }
}

impl ProcessSource for ScriptedProcs {
    fn read(&mut self) -> ProcSnapshot {
        let k = self.next;
        self.next += 1;
        let i = usize::try_from(k).unwrap().min(self.lists.len() - 1);
        let list = self.lists[i].clone();
        let processes = list
            .into_iter()
            .map(|(pid, comm)| {
                let info = self.info(pid, comm);
                testing::process(pid, key(pid).starttime, 10 * k)
                    .info(&info)
                    .build()
            })
            .collect();
        ProcSnapshot {
            cpu_times: Some(CpuTimes {
                busy: 50 * k,
                idle: 50 * k,
            }),
            uptime_s: Some(100_000.0 + k as f64),
            ticks_per_s: 100,
            processes,
        }
    }
}

/// The identity the scripted procfs gives a pid.
fn key(pid: u32) -> ProcKey {
    ProcKey {
        pid,
        starttime: u64::from(pid) * 10,
    }
}

/// A RAPL-like package whose counter advances 20 J per read.
struct ScriptedRapl {
    reads: u64,
}

impl CpuEnergySource for ScriptedRapl {
    fn read(&mut self) -> Vec<DeviceReading> {
        let r = testing::counter(
            "cpu0",
            DeviceKind::Cpu,
            "package-0 (scripted RAPL)",
            20_000_000 * self.reads,
        );
        self.reads += 1;
        vec![r]
    }
}

// ----- the pipeline ------------------------------------------------------------------------------

fn settings(toml: &str) -> Settings {
    kwtop::config::parse(toml, None).expect("test config")
}

struct Run {
    engine: Engine,
    samples: Vec<Sample>,
    notices: Vec<String>,
}

/// Real `NvmlSource` on the fake library + scripted processes/RAPL, through `Sampler`, `Engine`
/// and the ledger, one sample at each of `times` (seconds). Checks conservation on every interval.
fn run(settings: &Settings, times: &[f64], procs: ScriptedProcs) -> Run {
    let nvml = NvmlSource::open(Some(&fake_lib())).expect("fake NVML opens");
    let mut sampler = Sampler::new(
        Box::new(procs),
        Box::new(ScriptedRapl { reads: 0 }),
        Some(Box::new(nvml)),
    );
    let mut engine = Engine::new(&settings.engine);
    let mut samples = Vec::new();
    let mut notices = Vec::new();
    for &t in times {
        let mut s = sampler.sample();
        s.mono_s = t;
        s.wall_ms = BASE_MS + (t * 1000.0).round() as i64;
        samples.push(s.clone());
        if let Some(iv) = engine.push(s) {
            for d in &iv.devices {
                let err = d.conservation_error_j();
                assert!(
                    err.abs() < 1e-9,
                    "{} not conserved over an interval: {err} J",
                    d.id
                );
                let shares_ok = d.shares.iter().all(|(_, j)| *j >= 0.0);
                assert!(shares_ok && d.idle_j >= 0.0 && d.unattributed_j >= 0.0, "{d:?}");
            }
        }
        notices.extend(sampler.take_notices());
    }
    assert_ledger_conserved(&engine.ledger);
    Run {
        engine,
        samples,
        notices,
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

macro_rules! assert_close {
    ($a:expr, $b:expr) => {{
        let (a, b): (f64, f64) = ($a, $b);
        assert!(close(a, b), "{} = {a}, expected {b}", stringify!($a));
    }};
}

/// Session-level: `device energy = Σ processes (kept and folded) + idle + unattributed`.
fn assert_ledger_conserved(ledger: &Ledger) {
    for (i, d) in ledger.devices.iter().enumerate() {
        let procs: f64 = ledger
            .processes()
            .map(|e| e.energy_by_dev.get(i).copied().unwrap_or(0.0))
            .sum::<f64>()
            + ledger
                .folded()
                .values()
                .map(|f| f.energy_by_dev.get(i).copied().unwrap_or(0.0))
                .sum::<f64>();
        let parts = procs + d.idle_j + d.unattributed_j;
        assert!(
            (d.energy_j - parts).abs() <= 1e-6 * d.energy_j.max(1.0),
            "{}: energy {} J but parts {parts} J",
            d.id,
            d.energy_j
        );
    }
}

/// The snapshot contract: for every device id, `energy_j = Σ energy_by_device_j + idle_j + unattributed_j`.
fn assert_doc_conserved(doc: &Value) {
    for d in doc["devices"].as_array().expect("devices") {
        let id = d["id"].as_str().expect("id");
        let procs: f64 = doc["processes"]
            .as_array()
            .expect("processes")
            .iter()
            .map(|p| p["energy_by_device_j"][id].as_f64().unwrap_or(0.0))
            .sum();
        let parts = procs
            + doc["idle_j"][id].as_f64().unwrap_or(0.0)
            + doc["unattributed_j"][id].as_f64().unwrap_or(0.0);
        let e = d["energy_j"].as_f64().expect("energy_j");
        assert!(
            (e - parts).abs() <= 1e-6 * e.max(1.0),
            "{id}: energy {e} J but parts {parts} J"
        );
    }
}

fn doc(run: &Run, settings: &Settings) -> Value {
    let doc = kwtop::snapshot::build(&run.engine.ledger, &settings.impact, "test", 1.0, &run.notices);
    let v = serde_json::to_value(&doc).expect("snapshot serializes");
    assert_doc_conserved(&v);
    v
}

fn device<'a>(ledger: &'a Ledger, id: &str) -> &'a kwtop::ledger::DeviceTotals {
    let i = ledger
        .device_index(id)
        .unwrap_or_else(|| panic!("no device {id}"));
    &ledger.devices[i]
}

/// Energy a process got on one device, joules.
fn proc_j(ledger: &Ledger, pid: u32, dev: &str) -> f64 {
    let i = ledger.device_index(dev).expect("device");
    let e = ledger
        .process(&key(pid))
        .unwrap_or_else(|| panic!("no process {pid}"));
    e.energy_by_dev.get(i).copied().unwrap_or(0.0)
}

fn doc_process(doc: &Value, pid: u32) -> &Value {
    doc["processes"]
        .as_array()
        .expect("processes")
        .iter()
        .find(|p| p["pid"] == pid)
        .unwrap_or_else(|| panic!("pid {pid} not in snapshot"))
}

const SECONDS_0_TO_5: [f64; 6] = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0];

// ----- library level -----------------------------------------------------------------------------

with_fixture! {
    /// GPU0 has the energy counter: +400 J per read, provenance measured, exactly 5 × 400 J.
    /// GPU1 has none: integrated from its constant 35 W, 5 s → 175 J, and one notice saying so.
    fn energy_counter_measured_and_power_integrated_fallback() uses "h100-busy-and-idle-holder.json" => {
        let s = settings("");
        let procs = ScriptedProcs::new(&[&[(4242, "python3"), (5151, "jupyter-kernel")]]);
        let r = run(&s, &SECONDS_0_TO_5, procs);
        let l = &r.engine.ledger;
        let g0 = device(l, "gpu0");
        assert_eq!(g0.name, "NVIDIA H100 80GB HBM3");
        assert_eq!(g0.provenance, Provenance::Measured);
        assert_close!(g0.energy_j, 2000.0);
        assert_close!(g0.power_w.expect("gpu0 power"), 400.0);
        assert_eq!(g0.status, None);
        let g1 = device(l, "gpu1");
        assert_eq!(g1.provenance, Provenance::Integrated);
        assert_close!(g1.energy_j, 175.0);
        // Nobody holds GPU1: all of it is idle or unattributed, no process is charged.
        assert_close!(g1.idle_j + g1.unattributed_j, 175.0);
        assert_eq!(l.processes().map(|e| proc_j(l, e.key.pid, "gpu1")).sum::<f64>(), 0.0);
        let energy_notes: Vec<_> = r.notices.iter().filter(|n| n.contains("no energy counter")).collect();
        assert_eq!(energy_notes.len(), 1, "{:?}", r.notices);
        assert!(energy_notes[0].contains("gpu1"), "{}", energy_notes[0]);
        // The raw readings the sampler produced: mJ scaled to µJ, mW to W, memory and temperature.
        let first = &r.samples[0].devices[0];
        assert_eq!(first.energy.expect("counter").value_uj, 1_000_000_000);
        assert_eq!(first.power_w, Some(400.0));
        assert_eq!(first.power_limit_w, Some(700.0));
        assert_eq!(first.mem_total_bytes, Some(85_899_345_920));
        assert_eq!(first.temperature_c, Some(60.0));
        assert_eq!(r.samples[5].devices[0].temperature_c, Some(65.0));
        assert_eq!(r.samples[0].devices[1].energy, None);
        let d = doc(&r, &s);
        assert_eq!(d["devices"][0]["provenance"], "measured");
        assert_eq!(d["devices"][1]["provenance"], "integrated");
        assert_eq!(d["devices"][2]["id"], "cpu0");
    }
}

with_fixture! {
    /// The busy process (97 % SM) gets all dynamic GPU energy; the holder at 0 % (never in NVML's
    /// utilisation samples) gets only its memory share of the static part, is flagged after
    /// `[idle_holder] after`, and all of its GPU energy counts as wasted.
    fn busy_gets_dynamic_and_idle_holder_is_flagged() uses "h100-busy-and-idle-holder.json" => {
        let s = settings("[idle_holder]\nafter = \"2s\"\n");
        let procs = ScriptedProcs::new(&[&[(4242, "python3"), (5151, "jupyter-kernel")]]);
        let r = run(&s, &SECONDS_0_TO_5, procs);
        let l = &r.engine.ledger;
        // No idle power configured or learned yet: 10 % of the 700 W limit = 70 J/s static,
        // split 8:4 GiB by memory; the remaining 330 J/s is dynamic and all goes to the busy pid.
        assert_close!(proc_j(l, 4242, "gpu0"), 5.0 * (330.0 + 70.0 * 2.0 / 3.0));
        assert_close!(proc_j(l, 5151, "gpu0"), 5.0 * 70.0 / 3.0);
        let dynamic = device(l, "gpu0").energy_j - 5.0 * 70.0;
        let busy_dynamic = proc_j(l, 4242, "gpu0") - 5.0 * 70.0 * 2.0 / 3.0;
        assert!(busy_dynamic / dynamic > 0.999, "busy share of dynamic {}", busy_dynamic / dynamic);

        let busy = l.process(&key(4242)).expect("busy");
        let holder = l.process(&key(5151)).expect("holder");
        assert_eq!(busy.gpu_util_pct(), Some(97.0));
        assert_eq!(busy.gpu_mem_bytes(), Some(8 * GIB));
        assert!(!busy.idle().flagged);
        assert_eq!(holder.gpu_util_pct(), Some(0.0));
        assert_eq!(holder.gpu_mem_bytes(), Some(4 * GIB));
        assert!(holder.idle().flagged, "{:?}", holder.idle());
        assert_close!(holder.idle().wasted_j, proc_j(l, 5151, "gpu0"));
        assert_eq!(l.idle_holders().count(), 1);
        // CPU side runs alongside: 20 J per interval, half idle, each process 0.2 of the active half.
        assert_close!(device(l, "cpu0").energy_j, 100.0);
        assert_close!(proc_j(l, 4242, "cpu0"), 5.0 * 2.0);

        let d = doc(&r, &s);
        let h = doc_process(&d, 5151);
        assert_eq!(h["state"], "idle-holder");
        assert_eq!(h["command"], "jupyter-kernel");
        assert_close!(h["idle_wasted_j"].as_f64().expect("wasted"), holder.idle().wasted_j);
        assert_eq!(doc_process(&d, 4242)["idle_wasted_j"], 0.0);
        assert_eq!(doc_process(&d, 4242)["state"], "running");
        assert_eq!(d["totals"]["idle_holders"], 1);
    }
}

with_fixture! {
    /// No energy counter: trapezoid over the power readings with uneven intervals,
    /// (100+200)/2·0.5 + (200+300)/2·1.5 + (300+100)/2·1 = 650 J, all to the only holder.
    fn no_energy_counter_integrates_power_exactly() uses "no-energy-counter.json" => {
        let s = settings("[attribution]\ngpu_idle_w = 40.0\n");
        let procs = ScriptedProcs::new(&[&[(7777, "train")]]);
        let r = run(&s, &[0.0, 0.5, 2.0, 3.0], procs);
        let l = &r.engine.ledger;
        let g = device(l, "gpu0");
        assert_eq!(g.provenance, Provenance::Integrated);
        assert_close!(g.energy_j, 650.0);
        assert_close!(proc_j(l, 7777, "gpu0"), 650.0);
        assert_close!(g.power_w.expect("power"), 200.0);
        assert_eq!(r.notices.iter().filter(|n| n.contains("no energy counter")).count(), 1);
        assert_eq!(doc(&r, &s)["devices"][0]["provenance"], "integrated");
    }
}

with_fixture! {
    /// NVML answers NOT_FOUND when no process has a new utilisation sample: that is 0 % for every
    /// holder (not N/A), and with all shares 0 the dynamic part is split by memory like the static one.
    fn not_found_is_zero_percent_and_splits_by_memory() uses "all-idle-notfound.json" => {
        let s = settings("[idle_holder]\nafter = \"1s\"\n");
        let procs = ScriptedProcs::new(&[&[(3100, "notebook"), (3200, "server")]]);
        let r = run(&s, &[0.0, 1.0, 2.0, 3.0], procs);
        for sample in &r.samples {
            for gp in &sample.devices[0].gpu_processes {
                assert_eq!(gp.sm_util_pct, Some(0.0), "pid {}", gp.pid);
            }
        }
        let l = &r.engine.ledger;
        assert_close!(device(l, "gpu0").energy_j, 900.0);
        assert_close!(proc_j(l, 3100, "gpu0"), 675.0);
        assert_close!(proc_j(l, 3200, "gpu0"), 225.0);
        assert_close!(device(l, "gpu0").unattributed_j, 0.0);
        for pid in [3100, 3200] {
            let e = l.process(&key(pid)).expect("holder");
            assert_eq!(e.gpu_util_pct(), Some(0.0));
            assert!(e.idle().flagged, "pid {pid} holds memory at 0 % for 2 s");
        }
    }
}

with_fixture! {
    /// pid 6000 appears on the second read and is gone from the fourth (from NVML and /proc): it is
    /// charged while it held the GPU, then closed as exited with its energy kept.
    fn process_appears_and_exits() uses "process-churn.json" => {
        let s = settings("[attribution]\ngpu_idle_w = 100.0\n");
        let procs = ScriptedProcs::new(&[
            &[(4242, "python3")],
            &[(4242, "python3"), (6000, "worker")],
            &[(4242, "python3"), (6000, "worker")],
            &[(4242, "python3")],
        ]);
        let r = run(&s, &[0.0, 1.0, 2.0, 3.0], procs);
        let l = &r.engine.ledger;
        // 500 J per interval, 100 J static. With both: static 50/50 by memory, dynamic 60:20 by SM.
        assert_close!(device(l, "gpu0").energy_j, 1500.0);
        assert_close!(proc_j(l, 6000, "gpu0"), 2.0 * (50.0 + 100.0));
        assert_close!(proc_j(l, 4242, "gpu0"), 2.0 * (50.0 + 300.0) + 500.0);
        let worker = l.process(&key(6000)).expect("worker kept");
        assert_eq!(worker.state, ProcState::Exited);
        assert_eq!(worker.power_w, 0.0);
        assert_eq!(l.process(&key(4242)).expect("busy").state, ProcState::Running);
        let d = doc(&r, &s);
        let w = doc_process(&d, 6000);
        assert_eq!(w["state"], "exited");
        assert_eq!(w["command"], "worker");
        assert!((w["energy_by_device_j"]["gpu0"].as_f64().expect("j") - 300.0).abs() < 1e-9);
    }
}

with_fixture! {
    /// The GPU falls off the bus after three good reads: from then on it is N/A with the reason
    /// (its last good counter kept, flagged stale), the energy measured before stays, and the CPU side keeps being measured and attributed.
    fn gpu_lost_mid_run_is_na_with_reason_and_cpu_continues() uses "gpu-lost-mid-run.json" => {
        let s = settings("");
        let procs = ScriptedProcs::new(&[&[(4242, "python3")]]);
        let r = run(&s, &SECONDS_0_TO_5, procs);
        let reading = &r.samples[3].devices[0];
        let why = reading.error.as_deref().expect("lost GPU has an error");
        assert!(why.contains("GPU is lost") && why.contains("last good energy reading kept"), "{why}");
        // The last good counter is kept (flagged stale) so a GPU that comes back loses nothing.
        assert_eq!(reading.energy, r.samples[2].devices[0].energy);
        assert!(reading.energy_stale);
        assert_eq!(reading.power_w, None);
        let l = &r.engine.ledger;
        let g = device(l, "gpu0");
        assert_close!(g.energy_j, 600.0);
        assert_eq!(g.power_w, None);
        assert!(g.status.as_deref().is_some_and(|s| s.contains("GPU is lost")), "{:?}", g.status);
        assert_close!(g.unavailable_s, 3.0);
        assert_close!(proc_j(l, 4242, "gpu0"), 600.0);
        let cpu = device(l, "cpu0");
        assert_close!(cpu.energy_j, 100.0);
        assert_eq!(cpu.status, None);
        assert_close!(proc_j(l, 4242, "cpu0"), 10.0);
        let d = doc(&r, &s);
        let g = &d["devices"][0];
        assert_eq!(g["power_w"], Value::Null);
        assert!(g["status"].as_str().expect("status").contains("GPU is lost"));
        assert_eq!(d["devices"][1]["status"], "ok");
    }
}

with_fixture! {
    /// Queries that fail on a working GPU: no power reading (NOT_SUPPORTED, not an error: the
    /// counter is used) and per-process utilisation refused (NO_PERMISSION: a note on the reading
    /// and one notice; each holder's SM share is N/A, never a made-up 0 %). The energy is read, so
    /// the device stays up: no status, `kwtop_device_up` 1, no "N/A" in the header.
    fn partial_faults_are_reported_not_zeroed() uses "partial-faults.json" => {
        let s = settings("");
        let procs = ScriptedProcs::new(&[&[(8100, "a"), (8200, "b")]]);
        let r = run(&s, &[0.0, 1.0, 2.0], procs);
        let reading = &r.samples[1].devices[0];
        assert_eq!(reading.power_w, None);
        assert_eq!(reading.error, None, "the energy counter works");
        assert_eq!(reading.holders_error, None);
        let why = reading.notes.join("; ");
        assert!(why.contains("per-process utilisation") && why.contains("no permission"), "{why}");
        assert!(reading.gpu_processes.iter().all(|p| p.sm_util_pct.is_none()));
        let l = &r.engine.ledger;
        let g = device(l, "gpu0");
        assert_eq!(g.provenance, Provenance::Measured);
        assert_close!(g.energy_j, 500.0);
        assert_eq!(g.status, None);
        assert!(g.notes.iter().any(|n| n.contains("no permission")), "{:?}", g.notes);
        // Utilisation unknown: everything split by memory, 3:1, and labelled so.
        assert!(g.notes.iter().any(|n| n == "dynamic energy split by GPU memory (no per-process utilisation)"));
        assert_close!(proc_j(l, 8100, "gpu0"), 375.0);
        assert_eq!(l.process(&key(8100)).expect("a").gpu_util_pct(), None);
        let notes: Vec<_> = r.notices.iter().filter(|n| n.contains("per-process utilisation failed")).collect();
        assert_eq!(notes.len(), 1, "{:?}", r.notices);
        assert!(device_up(&r, &s, "gpu0"));
        let d = doc(&r, &s);
        assert_eq!(d["devices"][0]["status"], "ok");
        assert!(d["devices"][0]["notes"].to_string().contains("no permission"));
        let screen = render(&r, &s, 200, 24);
        assert!(!screen.contains("N/A:") && !screen.contains("device N/A"), "{screen}");
        assert!(screen.contains("per-process utilisation failed"), "{screen}");
    }
}

// ----- process lists that fail, MPS, MIG, per-process utilisation ---------------------------------

/// Whether the Prometheus exporter calls the device up (`kwtop_device_up`).
fn device_up(r: &Run, s: &Settings, id: &str) -> bool {
    let view = kwtop::serve::metrics::Exporter::new(10).update(&r.engine, &s.impact);
    view.devices
        .iter()
        .find(|d| d.id == id)
        .unwrap_or_else(|| panic!("no device {id}"))
        .up
}

/// The live monitor fed the run's samples: its app state and the screen text at `w`×`h`.
fn app_of(r: &Run, s: &Settings) -> kwtop::app::App {
    let mut app = kwtop::app::App::new(&s.app(), kwtop::app::ViewOptions::default());
    for sample in &r.samples {
        app.update(kwtop::app::Msg::Sample(Box::new(sample.clone())));
    }
    app
}

fn render(r: &Run, s: &Settings, w: u16, h: u16) -> String {
    let app = app_of(r, s);
    let mut term = ratatui::Terminal::new(ratatui::backend::TestBackend::new(w, h)).expect("terminal");
    term.draw(|f| kwtop::ui::render(&app, f)).expect("draw");
    let buf = term.backend().buffer();
    (0..h)
        .map(|y| (0..w).map(|x| buf[(x, y)].symbol()).collect::<String>() + "\n")
        .collect()
}

with_fixture! {
    /// A busy GPU (+500 J/s) whose compute list is refused for six reads: before, the floor was
    /// learned as the busy power and ~95 % of the energy was booked as idle. Now the static part is
    /// unattributed with the reason, idle stays 0, and once the list works again the floor is learned
    /// only from an interval that was empty at both ends (60 W).
    fn refused_process_list_is_unattributed_not_idle() uses "refused-process-list.json" => {
        let s = settings("");
        let procs = ScriptedProcs::new(&[&[]]);
        let times: Vec<f64> = (0..9).map(f64::from).collect();
        let r = run(&s, &times, procs);
        let refused = &r.samples[1].devices[0];
        assert_eq!(refused.error, None);
        let why = refused.holders_error.as_deref().expect("holders_error");
        assert!(why.contains("compute process list") && why.contains("no permission"), "{why}");
        assert_eq!(r.samples[6].devices[0].holders_error, None);
        let l = &r.engine.ledger;
        let g = device(l, "gpu0");
        assert_close!(g.energy_j, 5.0 * 500.0 + 3.0 * 60.0);
        assert_close!(g.unattributed_j, 2500.0);
        assert_close!(g.idle_j, 180.0);
        assert_eq!(g.status, None);
        assert_close!(g.unavailable_s, 0.0);
        assert_eq!(
            r.engine.attributor.gpu_idle_w(&r.samples[8].devices[0]),
            Some((60.0, "learned"))
        );
        let notes: Vec<_> = r.notices.iter().filter(|n| n.contains("compute process list failed")).collect();
        assert_eq!(notes.len(), 1, "{:?}", r.notices);
        assert!(notes[0].contains("unattributed, not idle"), "{}", notes[0]);

        // Up to the first interval after the refusals (empty at its end only): nothing learned.
        let r = run(&s, &times[..7], ScriptedProcs::new(&[&[]]));
        let limit_share = Some((70.0, "share of limit"));
        assert_eq!(r.engine.attributor.gpu_idle_w(&r.samples[6].devices[0]), limit_share);

        // While refused: up, status ok, the reason beside the device.
        let r = run(&s, &[0.0, 1.0, 2.0], ScriptedProcs::new(&[&[]]));
        assert_eq!(r.engine.attributor.gpu_idle_w(&r.samples[2].devices[0]), limit_share);
        let g = device(&r.engine.ledger, "gpu0");
        assert_close!(g.idle_j, 0.0);
        assert!(g.notes.iter().any(|n| n.contains("no permission") && n.contains("static energy unattributed")));
        assert!(device_up(&r, &s, "gpu0"));
        let d = doc(&r, &s);
        assert_eq!(d["devices"][0]["status"], "ok");
        assert!(d["devices"][0]["notes"][0].as_str().expect("note").contains("compute process list failed"));
        assert_eq!(d["idle_j"]["gpu0"], 0.0);
    }
}

with_fixture! {
    /// Under MPS the compute list names the MPS server only; the clients are in the MPS list and
    /// are charged: static by memory 1:6:2, dynamic by SM 0:60:20.
    fn mps_clients_are_charged() uses "mps-clients.json" => {
        let s = settings("[attribution]\ngpu_idle_w = 100.0\n");
        let procs = ScriptedProcs::new(&[&[(100, "nvidia-cuda-mps-server"), (4242, "python3"), (4343, "python3")]]);
        let r = run(&s, &SECONDS_0_TO_5, procs);
        let pids: Vec<u32> = r.samples[1].devices[0].gpu_processes.iter().map(|p| p.pid).collect();
        assert_eq!(pids, [100, 4242, 4343]);
        let l = &r.engine.ledger;
        assert_close!(device(l, "gpu0").energy_j, 2000.0);
        assert_close!(proc_j(l, 4242, "gpu0"), 5.0 * (600.0 / 9.0 + 225.0));
        assert_close!(proc_j(l, 4343, "gpu0"), 5.0 * (200.0 / 9.0 + 75.0));
        assert_close!(proc_j(l, 100, "gpu0"), 5.0 * 100.0 / 9.0);
        assert_eq!(l.process(&key(4242)).expect("client").gpu_util_pct(), Some(60.0));
        assert_eq!(l.process(&key(4343)).expect("client").gpu_util_pct(), Some(20.0));
    }
}

with_fixture! {
    /// MIG: holders carry GPU/compute instance ids and NVML has no per-process utilisation. The
    /// instance shows as `0/1` in the table and in the snapshot, and the dynamic energy is split by
    /// memory (10:5 GiB) with a label saying so.
    fn mig_holders_show_their_instance_and_split_by_memory() uses "mig-holders.json" => {
        let s = settings("[attribution]\ngpu_idle_w = 40.0\n");
        let procs = ScriptedProcs::new(&[&[(5001, "train-a"), (5002, "train-b")]]);
        let r = run(&s, &[0.0, 1.0, 2.0, 3.0], procs);
        let gp = &r.samples[1].devices[0].gpu_processes;
        let mig: Vec<_> = gp.iter().map(|p| p.mig.map(|m| (m.gpu_instance_id, m.compute_instance_id))).collect();
        assert_eq!(mig, [Some((1, Some(0))), Some((2, Some(0)))]);
        let l = &r.engine.ledger;
        assert_close!(device(l, "gpu0").energy_j, 900.0);
        assert_close!(proc_j(l, 5001, "gpu0"), 600.0);
        assert_close!(proc_j(l, 5002, "gpu0"), 300.0);
        let g = device(l, "gpu0");
        assert_eq!(g.status, None);
        assert_eq!(g.notes, ["dynamic energy split by GPU memory (MIG: no per-process utilisation)"]);
        assert_eq!(l.process(&key(5001)).expect("a").gpu_util_pct(), None);
        assert_eq!(r.notices.iter().filter(|n| n.contains("no per-process utilisation")).count(), 1);
        let d = doc(&r, &s);
        assert_eq!(
            doc_process(&d, 5001)["mig_instances"],
            serde_json::json!([{"device": "gpu0", "gpu_instance_id": 1, "compute_instance_id": 0, "label": "0/1"}])
        );
        assert_eq!(doc_process(&d, 5002)["mig_instances"][0]["label"], "0/2");
        assert!(d["devices"][0]["notes"][0].as_str().expect("note").contains("MIG"));
        let app = app_of(&r, &s);
        let rows = kwtop::app::rows::build(&app);
        let dev_of = |pid: u32| rows.iter().find(|x| x.pid == pid.to_string()).map(|x| x.dev.clone());
        assert_eq!(dev_of(5001).as_deref(), Some("0/1"));
        assert_eq!(dev_of(5002).as_deref(), Some("0/2"));
        let screen = render(&r, &s, 220, 24);
        assert!(screen.contains("split by GPU memory (MIG: no per-process utilisation)"), "{screen}");
    }
}

with_fixture! {
    /// Six device sample periods per read, the only process busy (100 %) in one of them: its GPU %
    /// is 100/6 ≈ 16.7 %, not 100 %.
    fn busy_in_one_of_six_periods_is_a_sixth() uses "one-of-six-periods.json" => {
        let s = settings("");
        let procs = ScriptedProcs::new(&[&[(4242, "python3")]]);
        let r = run(&s, &[0.0, 1.0, 2.0, 3.0], procs);
        for sample in &r.samples[1..] {
            let pct = sample.devices[0].gpu_processes[0].sm_util_pct.expect("known");
            assert_close!(pct, 100.0 / 6.0);
        }
        let e = r.engine.ledger.process(&key(4242)).expect("busy");
        assert_close!(e.gpu_util_pct().expect("util"), 100.0 / 6.0);
        assert_close!(doc_process(&doc(&r, &s), 4242)["gpu_util_pct"].as_f64().expect("pct"), 100.0 / 6.0);
    }
}

#[test]
fn no_library_at_all_is_cpu_only_with_one_notice() {
    let missing = Path::new("/nonexistent/kwtop-test/libnvidia-ml.so.1");
    let why = NvmlSource::open(Some(missing))
        .err()
        .expect("a missing library cannot open");
    assert!(why.contains("no NVIDIA driver found"), "{why}");

    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = settings("").sources;
    cfg.proc_root = dir.path().to_path_buf();
    cfg.powercap_root = dir.path().to_path_buf();
    cfg.nvml_library = Some(missing.to_path_buf());
    let mut sampler = Sampler::from_config(&cfg);
    let mut notices = Vec::new();
    for _ in 0..3 {
        let s = sampler.sample();
        assert!(s.devices.iter().all(|d| d.kind != DeviceKind::Gpu));
        assert!(s.devices.iter().any(|d| d.kind == DeviceKind::Cpu));
        notices.extend(sampler.take_notices());
    }
    let nvml_notes: Vec<_> = notices.iter().filter(|n| n.contains("NVIDIA")).collect();
    assert_eq!(nvml_notes.len(), 1, "{notices:?}");
}

// ----- the binary --------------------------------------------------------------------------------

/// A /proc tree with the two GPU processes of the h100 fixture and `/proc/stat`, `/proc/uptime`.
fn proc_tree(root: &Path) {
    let w = |p: &str, text: &str| {
        let path = root.join(p);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    };
    w(
        "stat",
        "cpu  1000 0 500 8000 100 0 0 0 0 0\ncpu0 1000 0 500 8000 100 0 0 0 0 0\nintr 0\nctxt 0\n\
         btime 1700000000\nprocesses 10\nprocs_running 1\nprocs_blocked 0\n",
    );
    w("uptime", "100000.00 90000.00\n");
    for (pid, comm, args) in [
        (4242, "python3", "python3\0train.py\0"),
        (5151, "jupyter-kernel", "jupyter-kernel\0"),
    ] {
        w(
            &format!("{pid}/stat"),
            &format!(
                "{pid} ({comm}) S 1 {pid} {pid} 0 -1 4194560 0 0 0 0 300 40 0 0 20 0 1 0 {} 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n",
                pid * 10
            ),
        );
        w(
            &format!("{pid}/status"),
            "Name:\tx\nUid:\t1000\t1000\t1000\t1000\n",
        );
        w(&format!("{pid}/cmdline"), args);
        w(&format!("{pid}/cgroup"), "0::/user.slice\n");
    }
}

struct Cli {
    dir: tempfile::TempDir,
    config: PathBuf,
}

/// A config pointing NVML at the fake library, /proc at a fixture tree and powercap at an empty dir.
fn cli_setup(library: &Path) -> Cli {
    let dir = tempfile::tempdir().expect("tempdir");
    let proc_root = dir.path().join("proc");
    proc_tree(&proc_root);
    let powercap = dir.path().join("powercap");
    std::fs::create_dir_all(&powercap).expect("mkdir");
    let config = dir.path().join("kwtop.toml");
    let text = format!(
        "[sources]\nproc_root = {:?}\npowercap_root = {:?}\nnvml_library = {:?}\n",
        proc_root.display().to_string(),
        powercap.display().to_string(),
        library.display().to_string()
    );
    std::fs::write(&config, text).expect("config");
    Cli { dir, config }
}

fn kwtop(cli: &Cli, fixture: Option<&Path>, args: &[&str]) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kwtop"));
    cmd.arg("--config")
        .arg(&cli.config)
        .args(args)
        .env_remove(FIXTURE_VAR);
    if let Some(f) = fixture {
        cmd.env(FIXTURE_VAR, f);
    }
    cmd.output().expect("run kwtop")
}

fn json_of(out: &std::process::Output) -> Value {
    assert!(
        out.status.success(),
        "kwtop failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON on stdout")
}

#[test]
fn cli_snapshot_json_reads_the_fake_gpus() {
    let cli = cli_setup(&fake_lib());
    // real-time: `snapshot` measures one real interval (100 ms: the fake adds 400 J per read).
    let out = kwtop(
        &cli,
        Some(&fixture("h100-busy-and-idle-holder.json")),
        &["snapshot", "--json", "--interval", "100ms"],
    );
    let d = json_of(&out);
    assert_doc_conserved(&d);
    let ids: Vec<&str> = d["devices"]
        .as_array()
        .expect("devices")
        .iter()
        .map(|x| x["id"].as_str().expect("id"))
        .collect();
    assert_eq!(ids, ["gpu0", "gpu1", "cpu0"]);
    let g0 = &d["devices"][0];
    assert_eq!(g0["provenance"], "measured");
    assert_eq!(g0["status"], "ok");
    assert!((g0["energy_j"].as_f64().expect("j") - 400.0).abs() < 1e-9, "{g0}");
    let g1 = &d["devices"][1];
    assert_eq!(g1["provenance"], "integrated");
    let dt = d["interval_s"].as_f64().expect("interval");
    assert!(
        (g1["energy_j"].as_f64().expect("j") - 35.0 * dt).abs() < 1e-9,
        "{g1} over {dt} s"
    );
    let busy = doc_process(&d, 4242);
    assert_eq!(busy["command"], "python3");
    assert_eq!(busy["cmdline"], "python3 train.py");
    assert_eq!(busy["gpu_util_pct"], 97.0);
    assert_eq!(doc_process(&d, 5151)["gpu_mem_bytes"], 4 * GIB);
    let notices = d["notices"].as_array().expect("notices");
    assert!(
        notices.iter().any(|n| n
            .as_str()
            .is_some_and(|n| n.contains("gpu1") && n.contains("no energy counter"))),
        "{notices:?}"
    );
}

#[test]
fn cli_gpu_lost_keeps_cpu_working() {
    let cli = cli_setup(&fake_lib());
    // real-time: one short measured interval. gpu-lost.json: the open + first read succeed, the
    // second read (call 3 of every device function) finds the GPU lost.
    let out = kwtop(
        &cli,
        Some(&fixture("gpu-lost.json")),
        &["snapshot", "--json", "--interval", "20ms"],
    );
    let d = json_of(&out);
    assert_doc_conserved(&d);
    let g = &d["devices"][0];
    assert_eq!(g["id"], "gpu0");
    assert_eq!(g["power_w"], Value::Null);
    assert!(
        g["status"].as_str().expect("status").contains("GPU is lost"),
        "{g}"
    );
    let cpu = &d["devices"][1];
    assert_eq!(cpu["id"], "cpu0");
    assert_eq!(cpu["status"], "ok");
    assert!(cpu["power_w"].as_f64().expect("cpu power") > 0.0);
}

#[test]
fn cli_init_failures_are_cpu_only_with_the_reason() {
    let cli = cli_setup(&fake_lib());
    let cases: [(Option<&str>, &str); 3] = [
        (None, "NVML library not found"),
        (
            Some(r#"{"init_error": "DRIVER_NOT_LOADED"}"#),
            "NVIDIA driver is not loaded",
        ),
        (
            Some(r#"{"init_error": "NO_PERMISSION", "devices": [{}]}"#),
            "no permission to use NVML",
        ),
    ];
    for (i, (json, expect)) in cases.iter().enumerate() {
        let path = cli.dir.path().join(format!("init-{i}.json"));
        if let Some(j) = json {
            std::fs::write(&path, j).expect("fixture");
        }
        // real-time: one short measured interval.
        let out = kwtop(
            &cli,
            json.map(|_| path.as_path()),
            &["snapshot", "--json", "--interval", "10ms"],
        );
        let d = json_of(&out);
        let devs = d["devices"].as_array().expect("devices");
        assert!(devs.iter().all(|x| x["kind"] != "gpu"), "{expect}: {devs:?}");
        let notes: Vec<&str> = d["notices"]
            .as_array()
            .expect("notices")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        let nvml: Vec<_> = notes
            .iter()
            .filter(|n| n.contains("NVML") || n.contains("NVIDIA"))
            .collect();
        assert_eq!(nvml.len(), 1, "{notes:?}");
        assert!(
            nvml[0].contains(expect) && nvml[0].contains("CPU only"),
            "{}",
            nvml[0]
        );
    }
    // No library file at all.
    let cli = cli_setup(Path::new("/nonexistent/kwtop-test/libnvidia-ml.so.1"));
    let d = json_of(&kwtop(&cli, None, &["snapshot", "--json", "--interval", "10ms"]));
    let notes = d["notices"].to_string();
    assert!(notes.contains("no NVIDIA driver found"), "{notes}");
    assert!(
        d["devices"]
            .as_array()
            .expect("devices")
            .iter()
            .all(|x| x["kind"] != "gpu")
    );
}

#[test]
fn cli_record_then_report_accounts_the_fake_gpu() {
    let cli = cli_setup(&fake_lib());
    let rec = cli.dir.path().join("run.jsonl");
    let rec_s = rec.to_str().expect("utf-8 path");
    // real-time: `record` samples on the wall clock (4 samples, 200 ms apart; the fake counter
    // advances 400 J per read, so shorter intervals would look implausible, > 10 kW).
    let out = kwtop(
        &cli,
        Some(&fixture("h100-busy-and-idle-holder.json")),
        &[
            "record",
            "-o",
            rec_s,
            "--duration",
            "300ms",
            "--interval",
            "100ms",
            "--note",
            "fake NVML run",
        ],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // The header says what recorded it: driver, GPU models, then the user's note.
    let text = std::fs::read_to_string(&rec).expect("recording");
    let header: Value = serde_json::from_str(text.lines().next().expect("header")).expect("json");
    let notes: Vec<&str> = header["notes"]
        .as_array()
        .expect("notes")
        .iter()
        .filter_map(|n| n.as_str())
        .collect();
    assert!(notes[0].starts_with("NVIDIA driver "), "{notes:?}");
    assert!(notes.iter().any(|n| n.starts_with("gpu0: NVIDIA")), "{notes:?}");
    assert_eq!(notes.last(), Some(&"fake NVML run"));
    let samples = text.lines().count() - 1;
    assert!(samples >= 2, "{samples} samples");
    let d = json_of(&kwtop(&cli, None, &["report", rec_s, "--json"]));
    assert_doc_conserved(&d);
    let g0 = &d["devices"][0];
    assert_eq!(g0["provenance"], "measured");
    // The fake's counter advances 400 J per read and stops after its 6th frame.
    let expect = 400.0 * (samples.min(6) - 1) as f64;
    assert!(
        (g0["energy_j"].as_f64().expect("j") - expect).abs() < 1e-9,
        "{g0} for {samples} samples"
    );
    assert_eq!(doc_process(&d, 4242)["command"], "python3");
}

// ----- scripts/gpu-check-analyze.py --------------------------------------------------------------

/// Runs the GPU-check analysis over a results folder made HERE from the fake NVML: SYNTHETIC data
/// (params.json says so and the script prints it), only to test the analysis. Real results come
/// from scripts/gpu-check.sh on a GPU machine.
#[test]
#[ignore = "needs python3"]
fn gpu_check_analyzer_on_a_synthetic_results_folder() {
    let cli = cli_setup(&fake_lib());
    let mut config = std::fs::read_to_string(&cli.config).expect("config");
    config.push_str("\n[attribution]\ngpu_idle_w = 70.0\n\n[idle_holder]\nafter = \"200ms\"\n");
    std::fs::write(&cli.config, config).expect("config");
    let out = cli.dir.path().join("gpu-check-synthetic");
    std::fs::create_dir_all(&out).expect("mkdir");
    let fx = fixture("h100-busy-and-idle-holder.json");
    let rec = out.join("recording.jsonl");
    let rec_s = rec.to_str().expect("utf-8 path");
    // real-time: `record` samples on the wall clock (6 samples, 200 ms apart).
    let r = kwtop(
        &cli,
        Some(&fx),
        &["record", "-o", rec_s, "--duration", "1s", "--interval", "200ms"],
    );
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let report = kwtop(&cli, None, &["report", rec_s, "--json"]);
    json_of(&report);
    std::fs::write(out.join("report.json"), &report.stdout).expect("report.json");
    let mid = kwtop(&cli, Some(&fx), &["snapshot", "--json", "--interval", "200ms"]);
    json_of(&mid);
    std::fs::write(out.join("snapshot-mid.json"), &mid.stdout).expect("snapshot-mid.json");
    // The "independent" counter readings are the recording's own, at its sample times.
    let poll = |scale: f64| {
        // Through the recording reader: delta samples hold only what changed.
        let file = std::fs::File::open(&rec).expect("recording");
        let reader = kwtop::recording::Reader::new(std::io::BufReader::new(file)).expect("header");
        let mut csv = String::from("wall_ms,index,energy_mj,power_mw\n");
        let mut first = None;
        for s in reader {
            let s = s.expect("sample");
            let mj = s.devices[0].energy.expect("counter").value_uj as f64 / 1000.0;
            let base = *first.get_or_insert(mj);
            csv.push_str(&format!(
                "{},0,{},400000\n",
                s.wall_ms,
                base + (mj - base) * scale
            ));
        }
        std::fs::write(out.join("nvml-poll.csv"), csv).expect("poll");
    };
    poll(1.0);
    let params = r#"{"synthetic": true, "gpu_index": 0, "busy_pid": 4242, "holder_pid": 5151,
        "gpu_idle_w": 70.0, "idle_after_s": 0.2}"#;
    std::fs::write(out.join("params.json"), params).expect("params");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/gpu-check-analyze.py");
    let analyze = || {
        Command::new("python3")
            .arg(&script)
            .arg(&out)
            .output()
            .expect("python3")
    };

    let a = analyze();
    let text = String::from_utf8_lossy(&a.stdout).into_owned() + &String::from_utf8_lossy(&a.stderr);
    assert!(a.status.success(), "{text}");
    assert!(text.contains("SYNTHETIC DATA"), "{text}");
    for check in ["energy", "busy", "holder", "conservation"] {
        assert!(text.contains(&format!("[PASS] {check}:")), "{check}: {text}");
    }
    let result: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("analysis.json")).expect("analysis.json"))
            .expect("analysis JSON");
    assert_eq!(result["synthetic"], true);
    assert!(
        result["checks"]["energy"]["diff_pct"]
            .as_f64()
            .expect("diff")
            .abs()
            < 1e-9
    );
    assert!(
        result["checks"]["busy"]["share_of_dynamic"]
            .as_f64()
            .expect("share")
            > 0.999
    );
    assert_eq!(result["checks"]["holder"]["state"], "idle-holder");

    // A counter that advanced 5 % more than kwtop accounted must fail the energy check.
    poll(1.05);
    let a = analyze();
    let text = String::from_utf8_lossy(&a.stdout);
    assert_eq!(a.status.code(), Some(1), "{text}");
    assert!(text.contains("[FAIL] energy:") && text.contains("-4.7"), "{text}");
    // The script's pids are not NVML's (a container without --pid=host): matched by behaviour.
    poll(1.0);
    let params = r#"{"synthetic": true, "gpu_index": 0, "busy_pid": 11, "holder_pid": 12,
        "gpu_idle_w": 70.0, "idle_after_s": 0.2, "hold_gib": 4}"#;
    std::fs::write(out.join("params.json"), params).expect("params");
    let a = analyze();
    let text = String::from_utf8_lossy(&a.stdout);
    assert!(a.status.success(), "{text}");
    assert!(
        text.contains("busy = 4242") && text.contains("holder = 5151"),
        "{text}"
    );
    // An incomplete folder is a usage error, not a pass.
    std::fs::remove_file(out.join("report.json")).expect("rm");
    assert_eq!(analyze().status.code(), Some(2));
}

#[test]
fn gpu_check_script_parses_and_has_help() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/gpu-check.sh");
    let syntax = Command::new("bash")
        .arg("-n")
        .arg(&script)
        .output()
        .expect("bash");
    assert!(
        syntax.status.success(),
        "{}",
        String::from_utf8_lossy(&syntax.stderr)
    );
    let help = Command::new("bash")
        .arg(&script)
        .arg("--help")
        .output()
        .expect("bash");
    assert!(help.status.success());
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(
        text.contains("changes no GPU setting") && text.contains("OUTDIR"),
        "{text}"
    );
    let usage = Command::new("bash").arg(&script).output().expect("bash");
    assert_eq!(usage.status.code(), Some(2));
}

#[test]
fn cli_no_per_process_utilisation_is_one_notice_and_a_memory_split() {
    let cli = cli_setup(&fake_lib());
    // MIG-like: per-process utilisation NOT_SUPPORTED on every call. Two holders, 3 GiB and 1 GiB;
    // idle floor 0 W so the whole 50 J per interval is dynamic and split by memory, 3:1.
    let cfg = cli.dir.path().join("kwtop.toml");
    let mut text = std::fs::read_to_string(&cfg).expect("config");
    text.push_str("[attribution]\ngpu_idle_w = 0.0\n");
    std::fs::write(&cfg, text).expect("config");
    let holders = r#"[{"pid": 4242, "used_mem": 3221225472}, {"pid": 5151, "used_mem": 1073741824}]"#;
    let frame = |mj: u64| {
        format!(r#"{{"energy_mj": {mj}, "power_limit_mw": 700000, "compute_processes": {holders}}}"#)
    };
    let fixture = format!(
        r#"{{"devices": [{{"name": "NVIDIA A100 MIG", "frames": [{}, {}], "faults": [{{"function": "nvmlDeviceGetProcessUtilization", "from_call": 1, "error": "NOT_SUPPORTED"}}]}}]}}"#,
        frame(1_000_000),
        frame(1_050_000)
    );
    let path = cli.dir.path().join("no-util.json");
    std::fs::write(&path, fixture).expect("fixture");
    // real-time: one short measured interval.
    let d = json_of(&kwtop(
        &cli,
        Some(&path),
        &["snapshot", "--json", "--interval", "100ms"],
    ));
    assert_doc_conserved(&d);
    let g = &d["devices"][0];
    assert_eq!(
        g["status"], "ok",
        "a missing feature is a notice, not a device error: {g}"
    );
    assert_eq!(g["energy_j"], 50.0);
    let a = doc_process(&d, 4242);
    let b = doc_process(&d, 5151);
    assert_eq!(a["energy_by_device_j"]["gpu0"], 37.5);
    assert_eq!(b["energy_by_device_j"]["gpu0"], 12.5);
    assert_eq!(a["gpu_util_pct"], Value::Null, "unknown, never a made-up 0 %");
    let notes: Vec<&str> = d["notices"]
        .as_array()
        .expect("notices")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(
        notes
            .iter()
            .filter(|n| n.contains("no per-process utilisation"))
            .count(),
        1,
        "{notes:?}"
    );
}

with_fixture! {
    /// Issue 10 item 1: between samples only `nvmlDeviceGetTotalEnergyConsumption` is called (the
    /// fake answers each function from its own frame counter, so a full read would move them all),
    /// a GPU without the counter is left out, and the sampler's samples carry every read's energy.
    fn counter_only_reads_call_the_energy_function_alone() uses "h100-busy-and-idle-holder.json" => {
        let mut nvml = NvmlSource::open(Some(&fake_lib())).expect("fake NVML opens");
        let reads = kwtop::sources::GpuSource::read_counters(&mut nvml);
        assert_eq!(reads.len(), 1, "gpu1 has no counter: {reads:?}");
        assert_eq!(reads[0].0, "gpu0");
        assert_eq!(reads[0].1.as_ref().map(|c| c.value_uj), Ok(1_000_000_000));
        let full = kwtop::sources::GpuSource::read(&mut nvml);
        assert_eq!(full[0].energy.map(|c| c.value_uj), Some(1_400_000_000), "energy frame 1");
        assert_eq!(full[0].temperature_c, Some(60.0), "temperature still on frame 0");

        drop(nvml);
        // A fresh init starts the fake's frame counters again.
        let nvml = NvmlSource::open(Some(&fake_lib())).expect("fake NVML opens again");
        let mut sampler = Sampler::new(
            Box::new(ScriptedProcs::new(&[&[]])),
            Box::new(ScriptedRapl { reads: 0 }),
            Some(Box::new(nvml)),
        );
        let a = sampler.sample();
        sampler.poll_counters();
        let b = sampler.sample();
        let uj = |s: &Sample| s.devices[0].energy.expect("gpu0 counter").value_uj;
        assert_eq!(uj(&b) - uj(&a), 800_000_000, "1000 → 1400 (poll) → 1800 J");
        assert_eq!(b.devices[0].temperature_c, Some(61.0), "the poll read no temperature");
    }
}
