use super::*;
use crate::engine::{Engine, EngineParams};
use crate::impact::ImpactParams;
use crate::sample::DeviceKind;
use crate::sample::{ProcessReading, Sample};
use crate::testing;

fn proc(pid: u32, ppid: u32, ticks: u64, cmdline: &str) -> ProcessReading {
    testing::process(pid, 100 + u64::from(pid), ticks)
        .ppid(ppid)
        .comm(cmdline.split(' ').next().unwrap_or(""))
        .cmdline(cmdline)
        .user("ana")
        .uid(1000)
        .build()
}

/// CPU package counter +100 J per second; half busy; pid 10 gets 3/4 of busy time, pid 11 1/4.
fn sample(i: u64) -> Sample {
    testing::sample_at(i as f64)
        .wall_origin_ms(1_700_000_000_000)
        .uptime_origin(1000.0)
        .cpu(i * 100, i * 100)
        .procs([
            proc(10, 1, i * 75, "python train.py --token=abc"),
            proc(11, 10, i * 25, "worker PASSWORD=x"),
        ])
        .devices([testing::counter(
            "cpu0",
            DeviceKind::Cpu,
            "package-0 (RAPL)",
            i * 100_000_000,
        )])
        .build()
}

fn engine(n: u64) -> Engine {
    let mut e = Engine::new(&EngineParams::default());
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
    let mut e = Engine::new(&EngineParams::default());
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

/// Average power divides by the time each device's energy was available: two of four intervals
/// N/A leave 200 J over 2 s = 100 W, not 200 J over the 4-s session = 50 W.
#[test]
fn average_power_leaves_out_unavailable_time() {
    let mut e = Engine::new(&EngineParams::default());
    for i in 0..5u64 {
        let mut s = sample(i);
        if i == 2 {
            s.devices[0].energy = None;
            s.devices[0].error = Some("RAPL read failed".into());
        }
        e.push(s);
    }
    let doc = build(
        &e.ledger,
        &ImpactParams::default(),
        "h",
        &[],
        &SummaryOptions::default(),
    );
    let d = &doc.devices[0];
    assert!((d.energy_j - 200.0).abs() < 1e-6, "{}", d.energy_j);
    assert!((d.unavailable_s - 2.0).abs() < 1e-9);
    assert!((d.avg_power_w - 100.0).abs() < 1e-6, "{}", d.avg_power_w);
    assert!(
        (doc.totals.avg_power_w - 100.0).abs() < 1e-6,
        "{}",
        doc.totals.avg_power_w
    );
    // pid 10: 3/4 of the busy half of 100 J in each of the two measured intervals, over 2 s.
    let p = doc.processes.iter().find(|p| p.pid == 10).expect("pid 10");
    assert!((p.energy_j - 75.0).abs() < 1e-6, "{}", p.energy_j);
    assert!((p.avg_power_w - 37.5).abs() < 1e-6, "{}", p.avg_power_w);
    assert!(p.avg_power_w <= p.peak_power_w + 1e-9);
    assert!(
        doc.method.iter().any(|m| m.contains("not available")),
        "{:?}",
        doc.method
    );
}

fn gpu_sample(i: u64, procs: Vec<ProcessReading>, holders: Vec<crate::sample::GpuProcess>) -> Sample {
    let mut s = sample(i);
    s.processes = procs;
    s.devices = vec![testing::gpu("gpu0", "H100", i * 60_000_000, None, holders)];
    s
}

/// An idle GPU holder that exited and was folded still counts in every summary total: the totals,
/// the GPU's figure, the idle-holder rows (naming the GPU), the process rows and the renderings.
#[test]
fn folded_idle_holder_waste_is_in_every_total() {
    let mut params = EngineParams::default();
    params.idle_holder.after_s = 2.0;
    params.idle_holder.min_memory_bytes = 1024 << 20;
    params.attribution.gpu_idle_w = Some(50.0);
    let mut e = Engine::new(&params);
    e.ledger.max_exited = 1;
    let holder = testing::holder(7, 2 << 30, Some(0.0));
    for i in 0..5u64 {
        e.push(gpu_sample(i, vec![proc(7, 1, 0, "kernel")], vec![holder.clone()]));
    }
    for i in 5..9u64 {
        e.push(gpu_sample(i, vec![proc(100 + i as u32, 1, 0, "job")], vec![]));
    }
    assert!(e.ledger.folded().contains_key("kernel"), "the holder was folded");
    let doc = build(
        &e.ledger,
        &ImpactParams::default(),
        "h",
        &[],
        &SummaryOptions::default(),
    );
    // 4 intervals × 60 J on gpu0, all in the flagged streak.
    assert!(
        (doc.totals.idle_holder_wasted_j - 240.0).abs() < 1e-6,
        "{:?}",
        doc.totals
    );
    assert!((doc.totals.idle_holder_wasted_kwh - 240.0 / 3.6e6).abs() < 1e-12);
    assert_eq!(doc.devices[0].idle_holder_wasted_j, Some(240.0));
    let h = &doc.idle_holders[0];
    assert_eq!(
        (h.command.as_str(), h.device.as_str(), h.folded_count),
        ("kernel", "gpu0", Some(1))
    );
    assert!((h.wasted_j - 240.0).abs() < 1e-6);
    let folded = doc
        .processes
        .iter()
        .find(|p| p.command == "kernel")
        .expect("folded row");
    assert!((folded.idle_wasted_j - 240.0).abs() < 1e-6);
    assert_eq!(folded.idle_wasted_by_device_j.get("gpu0"), Some(&240.0));
    let md = render(&doc, Format::Md);
    assert!(md.contains("| (1 folded) |  | `kernel` | `gpu0` |"), "{md}");
    let csv = render(&doc, Format::Csv);
    let header: Vec<&str> = csv.lines().next().unwrap_or("").split(',').collect();
    let col = header
        .iter()
        .position(|c| *c == "idle_gpus")
        .expect("idle_gpus column");
    let row = csv.lines().find(|l| l.contains(",kernel,")).expect("kernel row");
    assert_eq!(row.split(',').nth(col), Some("gpu0"), "{row}");
    // Read back, the waste and the GPU it was on stay.
    let back = parse_json(&render(&doc, Format::Json)).expect("parses");
    assert_eq!(back.idle_holders, doc.idle_holders);
    assert_eq!(back.totals.idle_holder_wasted_j, doc.totals.idle_holder_wasted_j);
    assert_eq!(back.devices[0].idle_holder_wasted_j, Some(240.0));
}

/// A summary written before per-GPU idle holders (no `device`, no per-device waste) still reads.
#[test]
fn summary_without_per_gpu_fields_still_parses() {
    let e = engine(3);
    let doc = build(
        &e.ledger,
        &ImpactParams::default(),
        "h",
        &[],
        &SummaryOptions::default(),
    );
    let mut v: serde_json::Value = serde_json::from_str(&render(&doc, Format::Json)).expect("json");
    v["idle_holders"] = serde_json::json!([{
        "pid": 5, "user": "bob", "command": "jupyter", "state": "running", "idle_s": 600.0,
        "gpu_mem_bytes": 4_294_967_296u64, "wasted_j": 10.0, "wasted_kwh": 0.0, "wasted_co2e_g": 0.0
    }]);
    let back = parse_json(&v.to_string()).expect("old summaries parse");
    assert_eq!(back.idle_holders[0].device, "");
    assert!(render(&back, Format::Md).contains("| 5 | `bob` | `jupyter` | `?` |"));
}

/// Issue 14 item 6: the summary names each device's vendor and source, in JSON and markdown.
#[test]
fn devices_carry_vendor_and_source() {
    let mut e = Engine::new(&EngineParams::default());
    for i in 0..3 {
        let mut s = gpu_sample(i, Vec::new(), Vec::new());
        let g = &mut s.devices[0];
        g.name = "GPU 0x744c (amdgpu)".into();
        g.vendor = Some("AMD".into());
        g.source = Some("hwmon energy".into());
        e.push(s);
    }
    let doc = build(
        &e.ledger,
        &ImpactParams::default(),
        "h",
        &[],
        &SummaryOptions::default(),
    );
    let d = &doc.devices[0];
    assert_eq!(
        (d.vendor.as_deref(), d.source.as_deref()),
        (Some("AMD"), Some("hwmon energy"))
    );
    let json = render(&doc, Format::Json);
    assert!(
        json.contains("\"vendor\": \"AMD\"") || json.contains("\"vendor\":\"AMD\""),
        "{json}"
    );
    assert_eq!(parse_json(&json).expect("parses"), doc);
    let md = render(&doc, Format::Md);
    let row = md
        .lines()
        .find(|l| l.starts_with("| `gpu0`"))
        .unwrap_or_else(|| panic!("{md}"));
    assert!(
        row.contains("AMD GPU 0x744c (amdgpu)") && row.contains("measured (`hwmon energy`)"),
        "{row}"
    );
}

/// The command-scope summary of pids 10 and 11 (the whole 200 J of busy energy of 4 s), with
/// `units` steps counted 1 s apart from t = 1 s.
fn run_doc(units: u64, notices: &[String]) -> SummaryDoc {
    use crate::work::{CountedWork, Observation, WorkCounter, WorkSource};
    let e = engine(5);
    let members: HashSet<ProcKey> = [10, 11]
        .into_iter()
        .map(|pid| ProcKey {
            pid,
            starttime: 100 + u64::from(pid),
        })
        .collect();
    let mut counter = WorkCounter::new();
    for i in 1..=units {
        counter.observe(1_700_000_000_000 + 1000 * i as i64, Observation::Total(i));
    }
    let opts = SummaryOptions {
        members: Some(members),
        command: Some(CommandOut {
            argv: "python train.py".into(),
            pid: 10,
            exit_code: Some(0),
            signal: None,
            status: 0,
            tree_processes: 2,
            cpu_s: Some(2.0),
        }),
        work: Some(CountedWork {
            counter,
            unit: "step".into(),
            source: WorkSource::Progress,
        }),
        ..SummaryOptions::machine(Redactor::default(), false)
    };
    build(&e.ledger, &ImpactParams::default(), "h", notices, &opts)
}

#[test]
fn work_per_unit_is_the_command_energy_over_the_units() {
    let doc = run_doc(4, &[]);
    let w = doc.work.as_ref().expect("work counted");
    assert_eq!((w.unit.as_str(), w.units), ("step", 4));
    assert!(
        (doc.totals.energy_j - 200.0).abs() < 1e-6,
        "{}",
        doc.totals.energy_j
    );
    assert!((w.j_per_unit - 50.0).abs() < 1e-9);
    assert!((w.wh_per_1000_units - 50.0 / 3.6).abs() < 1e-9);
    assert!((w.co2e_g_per_unit - doc.totals.co2e_g / 4.0).abs() < 1e-12);
    assert_eq!(w.units_per_s, Some(1.0));
    assert_eq!(w.last_unit_ms - w.first_unit_ms, 3000);

    let json = render(&doc, Format::Json);
    assert_eq!(parse_json(&json).expect("parses"), doc);
    let md = render(&doc, Format::Md);
    assert!(
        md.contains("| Work | 4 steps counted from progress lines · 1.00 steps/s"),
        "{md}"
    );
    assert!(
        md.contains("| Energy per step | 50.0 J per step · 13.9 Wh per 1,000 steps ·"),
        "{md}"
    );
    assert!(
        md.contains("Energy per unit of work: the command's whole tree energy"),
        "{md}"
    );
    let csv = render(&doc, Format::Csv);
    let mut rows = csv.lines();
    assert!(
        rows.next()
            .unwrap_or("")
            .ends_with("work_unit,work_units,work_j_per_unit,work_wh_per_1000_units,work_co2e_g_per_unit")
    );
    let cells: Vec<Vec<&str>> = rows.map(|r| r.split(',').collect()).collect();
    let command = cells.iter().find(|c| c[0] == "10").expect("the command's row");
    assert_eq!(command[command.len() - 5..command.len() - 2], ["step", "4", "50"]);
    let worker = cells.iter().find(|c| c[0] == "11").expect("the worker's row");
    assert!(worker[worker.len() - 5..].iter().all(|c| c.is_empty()));
}

#[test]
fn no_work_no_work_object_and_old_summaries_parse() {
    let doc = run_doc(0, &[]);
    assert!(doc.work.is_none());
    let json = render(&doc, Format::Json);
    assert!(!json.contains("\"work\""), "absent, not null");
    assert!(!render(&doc, Format::Md).contains("| Work |"));
    assert!(!render(&doc, Format::Csv).contains("work_unit"));
    assert_eq!(parse_json(&json).expect("parses").work, None);
}

#[test]
fn brief_block_of_a_run_with_work() {
    let notices = vec![
        "CPU energy is estimated, not measured: no RAPL zones under /sys/class/powercap (no intel_rapl driver, a CPU without RAPL, or a VM)".to_string(),
    ];
    let doc = run_doc(4, &notices);
    let out = brief::Outputs {
        saved: ["md", "json", "csv"]
            .iter()
            .map(|x| std::path::PathBuf::from(format!("/data/kwtop/kwtop-h-20231114T221320Z-7.{x}")))
            .collect(),
        written: Some("energy.md".into()),
        problems: vec![],
    };
    let text = brief::render(&doc, &out);
    assert!(text.lines().count() <= 8, "short:\n{text}");
    insta::assert_snapshot!(text);
}

#[test]
fn brief_block_of_a_killed_run_without_work() {
    let mut doc = run_doc(0, &[]);
    if let Some(c) = doc.command.as_mut() {
        (c.exit_code, c.signal, c.status) = (None, Some(15), 143);
    }
    let out = brief::Outputs {
        saved: vec![],
        written: None,
        problems: vec![
            "permission denied writing /ro/x.md: choose a writable [export] dir or -o path".into(),
        ],
    };
    insta::assert_snapshot!(brief::render(&doc, &out));
}
