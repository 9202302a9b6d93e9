#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Summaries round-trip: a recording's report equals the live ledger fed the same samples, a JSON
//! summary re-rendered by `kwtop report` keeps its totals, and `record --summary` can be rebuilt
//! from the recording.

use std::path::Path;
use std::process::Command;

use kwtop::engine::{Engine, EngineParams};
use kwtop::recording::{Header, SCHEMA, Writer};
use kwtop::sample::{DeviceKind, ProcKey, ProcessReading, Sample};
use kwtop_core::testing;

fn proc(pid: u32, ticks: u64, cmd: &str) -> ProcessReading {
    testing::process(pid, 7, ticks)
        .comm(cmd.split(' ').next().unwrap())
        .cmdline(cmd)
        .user("ana")
        .uid(1000)
        .build()
}

fn samples() -> Vec<Sample> {
    (0..20u64)
        .map(|i| {
            let cpu = testing::counter(
                "cpu0",
                DeviceKind::Cpu,
                "package-0",
                i * i * 1_000_000 + i * 37_000_000,
            );
            let mut procs = vec![proc(10, i * 60, "python train.py --password hunter2")];
            if i < 12 {
                procs.push(proc(11, i * 30, "gzip -9"));
            }
            testing::sample_at(i as f64 * 0.5)
                .wall_origin_ms(1_700_000_000_000)
                .uptime_origin(500.0)
                .cpu(i * 100, i * 50)
                .procs(procs)
                .devices([cpu])
                .build()
        })
        .collect()
}

fn write_recording(path: &Path) {
    let header = Header {
        schema: SCHEMA.into(),
        host: "testhost".into(),
        kwtop_version: "0".into(),
        started_ms: 1_700_000_000_000,
        interval_s: 0.5,
        notes: vec![],
        cmdline: None,
    };
    let mut w = Writer::new(std::fs::File::create(path).unwrap(), &header).unwrap();
    for s in samples() {
        w.write(&s).unwrap();
    }
}

fn kwtop(dir: &Path) -> Command {
    let cfg = dir.join("kwtop.toml");
    std::fs::write(
        &cfg,
        format!(
            "[sources]\nnvml = false\n[export]\ndir = \"{}\"\n",
            dir.join("out").display()
        ),
    )
    .unwrap();
    let mut c = Command::new(env!("CARGO_BIN_EXE_kwtop"));
    c.arg("--config").arg(cfg);
    c
}

fn json(out: &std::process::Output) -> serde_json::Value {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn recording_report_equals_live_ledger() {
    let d = tempfile::tempdir().unwrap();
    let rec = d.path().join("r.jsonl");
    write_recording(&rec);
    let mut engine = Engine::new(&EngineParams::default());
    for s in samples() {
        engine.push(s);
    }
    let doc = json(
        &kwtop(d.path())
            .arg("report")
            .arg(&rec)
            .args(["--format", "json"])
            .output()
            .unwrap(),
    );
    assert_eq!(doc["schema"], "kwtop.summary/1");
    let total = doc["totals"]["energy_j"].as_f64().unwrap();
    assert!((total - engine.ledger.total_energy_j()).abs() < 1e-9, "{total}");
    for p in doc["processes"].as_array().unwrap() {
        let key = ProcKey {
            pid: p["pid"].as_u64().unwrap() as u32,
            starttime: 7,
        };
        let live = engine.ledger.process(&key).unwrap().energy_j;
        assert!((p["energy_j"].as_f64().unwrap() - live).abs() < 1e-9);
    }
    let d0 = &doc["devices"][0];
    let l0 = &engine.ledger.devices[0];
    assert!((d0["idle_j"].as_f64().unwrap() - l0.idle_j).abs() < 1e-9);
    assert!((d0["unattributed_j"].as_f64().unwrap() - l0.unattributed_j).abs() < 1e-9);
    assert!(!doc.to_string().contains("hunter2"), "redacted by default");
}

#[test]
fn json_summary_reported_again_keeps_its_totals() {
    let d = tempfile::tempdir().unwrap();
    let rec = d.path().join("r.jsonl");
    write_recording(&rec);
    let first = kwtop(d.path())
        .arg("report")
        .arg(&rec)
        .args(["--format", "json"])
        .output()
        .unwrap();
    let summary = d.path().join("s.json");
    std::fs::write(&summary, &first.stdout).unwrap();
    let again = json(
        &kwtop(d.path())
            .arg("report")
            .arg(&summary)
            .args(["--format", "json"])
            .output()
            .unwrap(),
    );
    assert_eq!(again, json(&first));
    let md = kwtop(d.path())
        .arg("report")
        .arg(&summary)
        .args(["--format", "md"])
        .output()
        .unwrap();
    let md = String::from_utf8(md.stdout).unwrap();
    assert!(md.contains("## Totals") && md.contains("kWh"), "{md}");
    let csv = kwtop(d.path())
        .arg("report")
        .arg(&summary)
        .args(["--format", "csv"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8(csv.stdout).unwrap().lines().count(), 3);
}

#[test]
fn report_json_flag_keeps_the_snapshot_document() {
    let d = tempfile::tempdir().unwrap();
    let rec = d.path().join("r.jsonl");
    write_recording(&rec);
    let doc = json(
        &kwtop(d.path())
            .arg("report")
            .arg(&rec)
            .arg("--json")
            .output()
            .unwrap(),
    );
    assert_eq!(doc["schema"], "kwtop.snapshot/1");
}

#[test]
fn record_summary_can_be_rebuilt_from_the_recording() {
    let d = tempfile::tempdir().unwrap();
    let rec = d.path().join("live.jsonl");
    let st = kwtop(d.path())
        .args([
            "record",
            "--duration",
            "600ms",
            "--interval",
            "200ms",
            "--summary",
            "-o",
        ])
        .arg(&rec)
        .output()
        .unwrap();
    assert!(st.status.success(), "{}", String::from_utf8_lossy(&st.stderr));
    let saved = std::fs::read_dir(d.path().join("out"))
        .unwrap()
        .flatten()
        .find(|e| e.path().extension().is_some_and(|x| x == "json"))
        .unwrap();
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(saved.path()).unwrap()).unwrap();
    let rebuilt = json(
        &kwtop(d.path())
            .arg("report")
            .arg(&rec)
            .args(["--format", "json"])
            .output()
            .unwrap(),
    );
    assert_eq!(saved["totals"]["energy_j"], rebuilt["totals"]["energy_j"]);
    assert_eq!(saved["intervals"], rebuilt["intervals"]);
}
