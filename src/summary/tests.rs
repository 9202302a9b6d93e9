use std::sync::Arc;

use super::*;
use crate::engine::Engine;
use crate::sample::{CpuTimes, DeviceReading, EnergyCounter, ProcInfo, ProcessReading, Sample};

fn proc(pid: u32, ppid: u32, ticks: u64, cmdline: &str) -> ProcessReading {
    ProcessReading {
        key: ProcKey {
            pid,
            starttime: 100 + u64::from(pid),
        },
        ppid,
        cpu_ticks: ticks,
        child_ticks: 0,
        info: Arc::new(ProcInfo {
            comm: cmdline.split(' ').next().unwrap_or("").to_string(),
            cmdline: cmdline.to_string(),
            user: "ana".into(),
            uid: Some(1000),
            cgroup: Default::default(),
        }),
    }
}

/// CPU package counter +100 J per second; half busy; pid 10 gets 3/4 of busy time, pid 11 1/4.
fn sample(i: u64) -> Sample {
    let mut d = DeviceReading::new("cpu0", DeviceKind::Cpu, "package-0 (RAPL)");
    d.energy = Some(EnergyCounter {
        value_uj: i * 100_000_000,
        wrap_uj: None,
    });
    Sample {
        mono_s: i as f64,
        wall_ms: 1_700_000_000_000 + i as i64 * 1000,
        uptime_s: Some(1000.0 + i as f64),
        ticks_per_s: 100,
        cpu_times: Some(CpuTimes {
            busy: i * 100,
            idle: i * 100,
        }),
        processes: vec![
            proc(10, 1, i * 75, "python train.py --token=abc"),
            proc(11, 10, i * 25, "worker PASSWORD=x"),
        ],
        devices: vec![d],
    }
}

fn engine(n: u64) -> Engine {
    let mut e = Engine::new(&Settings::default());
    for i in 0..n {
        e.push(sample(i));
    }
    e
}

#[test]
fn machine_totals_equal_the_ledger() {
    let e = engine(5);
    let doc = build(
        &e.ledger,
        &ImpactParams::default(),
        "h",
        &[],
        &SummaryOptions::default(),
    );
    assert_eq!(doc.schema, SCHEMA);
    assert!((doc.totals.energy_j - e.ledger.total_energy_j()).abs() < 1e-9);
    assert!(
        (doc.totals.energy_j - 400.0).abs() < 1e-6,
        "{}",
        doc.totals.energy_j
    );
    let procs: f64 = doc.processes.iter().map(|p| p.energy_j).sum();
    let d = &doc.devices[0];
    assert!((d.energy_j - (procs + d.idle_j + d.unattributed_j)).abs() < 1e-6);
    assert_eq!(doc.duration_s, 4.0);
    assert!((doc.totals.avg_power_w - 100.0).abs() < 1e-9);
}

#[test]
fn secrets_are_redacted_by_default() {
    let e = engine(3);
    let doc = build(
        &e.ledger,
        &ImpactParams::default(),
        "h",
        &[],
        &SummaryOptions::default(),
    );
    for f in [Format::Md, Format::Json, Format::Csv] {
        let out = render(&doc, f);
        assert!(!out.contains("abc"), "{f:?} leaks the token:\n{out}");
        assert!(!out.contains("PASSWORD=x"), "{f:?} leaks the password");
        assert!(out.contains("--token=***"), "{f:?}");
    }
}

#[test]
fn tree_scope_sums_members_only() {
    let e = engine(5);
    let members: HashSet<ProcKey> = [ProcKey {
        pid: 11,
        starttime: 111,
    }]
    .into_iter()
    .collect();
    let opts = SummaryOptions {
        members: Some(members),
        ..Default::default()
    };
    let doc = build(&e.ledger, &ImpactParams::default(), "h", &[], &opts);
    assert_eq!(doc.scope, "command");
    assert_eq!(doc.processes.len(), 1);
    // busy half of 400 J, a quarter of it.
    assert!(
        (doc.totals.energy_j - 50.0).abs() < 1e-6,
        "{}",
        doc.totals.energy_j
    );
    assert!((doc.machine.energy_j - 400.0).abs() < 1e-6);
    assert!((doc.devices[0].scope_j - 50.0).abs() < 1e-6);
}

#[test]
fn json_round_trip_keeps_totals() {
    let e = engine(4);
    let doc = build(
        &e.ledger,
        &ImpactParams::default(),
        "h",
        &["a note".into()],
        &SummaryOptions::default(),
    );
    let text = render(&doc, Format::Json);
    assert!(looks_like_summary(&text[..text.len().min(4096)]));
    let back = parse_json(&text).expect("parses");
    assert_eq!(back, doc);
    assert!(parse_json("{\"schema\":\"kwtop.summary/9\"}").is_err());
}

#[test]
fn markdown_has_every_section_and_csv_one_row_per_process() {
    let e = engine(4);
    let doc = build(
        &e.ledger,
        &ImpactParams::default(),
        "h",
        &[],
        &SummaryOptions::default(),
    );
    let md = render(&doc, Format::Md);
    for h in [
        "## Totals",
        "## Devices",
        "## Top processes",
        "## Top groups",
        "## Idle GPU holders",
        "## Method and provenance",
        "Grid intensity",
        "PUE",
    ] {
        assert!(md.contains(h), "missing {h}:\n{md}");
    }
    let csv = render(&doc, Format::Csv);
    assert_eq!(csv.lines().count(), 1 + doc.processes.len());
    assert!(csv.lines().next().unwrap_or("").ends_with("energy_cpu0_j"));
}

#[test]
fn hostile_names_cannot_break_markdown_tables() {
    let mut e = Engine::new(&Settings::default());
    for i in 0..3u64 {
        let mut s = sample(i);
        s.processes[0] = proc(10, 1, i * 75, "evil|`x`|<script>");
        e.push(s);
    }
    let doc = build(
        &e.ledger,
        &ImpactParams::default(),
        "h",
        &[],
        &SummaryOptions::default(),
    );
    let md = render(&doc, Format::Md);
    let row = md.lines().find(|l| l.contains("evil")).expect("row");
    let bytes = row.as_bytes();
    let cells = (0..bytes.len())
        .filter(|&i| bytes[i] == b'|' && (i == 0 || bytes[i - 1] != b'\\'))
        .count();
    let header = md
        .lines()
        .find(|l| l.starts_with("| PID | User | Energy"))
        .expect("header");
    assert_eq!(cells, header.matches('|').count(), "{row}");
    assert!(row.contains("`evil\\|'x'\\|<script>`"), "{row}");
}
