#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Whole-screen snapshots of the live monitor, built from fixed recordings without a terminal or
//! a clock, and a layout sweep over every size from 20×5 to 250×80.
//!
//! The recordings under tests/fixtures/recordings/ are generated here with the real recording
//! `Writer`; `generated_recordings_are_current` fails when the committed files drift from the
//! generator (regenerate with `KWTOP_REGEN_FIXTURES=1 cargo test --test tui_render`).

use std::io::BufReader;
use std::path::PathBuf;
use std::sync::Arc;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use kwtop::app::{App, AppParams, Msg, ViewOptions};
use kwtop::cgroup::CgroupInfo;
use kwtop::recording::{Header, Reader, SCHEMA, Writer};
use kwtop::sample::{DeviceKind, ProcInfo, ProcessReading, Sample};
use kwtop_core::testing;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;

const GIB: u64 = 1 << 30;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/recordings")
        .join(name)
}

fn info(comm: &str, cmdline: &str, user: &str, cgroup: &str, slurm: Option<&str>) -> Arc<ProcInfo> {
    Arc::new(ProcInfo {
        comm: comm.into(),
        cmdline: cmdline.into(),
        user: user.into(),
        uid: Some(1000),
        cgroup: Arc::new(CgroupInfo {
            path: cgroup.into(),
            slurm_job: slurm.map(str::to_string),
            ..Default::default()
        }),
    })
}

fn proc_(pid: u32, ppid: u32, ticks: u64, info: &Arc<ProcInfo>) -> ProcessReading {
    testing::process(pid, u64::from(pid) * 7, ticks)
        .ppid(ppid)
        .info(info)
        .build()
}

/// Hostile strings: escape sequences, an OSC title change, a bidi override, an overlong value.
fn hostile() -> Arc<ProcInfo> {
    let long = "A".repeat(400);
    info(
        "\u{1b}[31mevil\u{1b}[0m",
        &format!("evil \u{202e}txt.exe \u{1b}]0;pwned\u{7} --x\r\n{long}"),
        "mal\u{1b}[2Jlory",
        "/user.slice/\u{1b}[5m",
        None,
    )
}

/// Two H100s (one busy, one held at 0 % by an idle kernel), a RAPL package and DRAM; 10 s
/// interval for 400 s, so the idle holder passes the default 5-minute threshold.
fn gpu_samples() -> Vec<Sample> {
    let systemd = info("systemd", "/sbin/init", "root", "/init.scope", None);
    let bash = info(
        "bash",
        "-bash",
        "ana",
        "/user.slice/user-1000.slice/session-3.scope",
        None,
    );
    let train = info(
        "python",
        "python train.py --model llama-7b --epochs 90 --data /scratch/ana/tokens",
        "ana",
        "/system.slice/slurmstepd.scope/job_12345/step_0",
        Some("12345"),
    );
    let worker = info(
        "pt_data_worker",
        "python train.py --model llama-7b --epochs 90 --data /scratch/ana/tokens",
        "ana",
        "/system.slice/slurmstepd.scope/job_12345/step_0",
        Some("12345"),
    );
    let jupyter = info(
        "jupyter-kernel",
        "/opt/conda/bin/python -m ipykernel_launcher -f kernel-5151.json",
        "bob",
        "/user.slice/user-1001.slice",
        None,
    );
    let make = info(
        "make",
        "make -j8 docs",
        "carol",
        "/user.slice/user-1002.slice",
        None,
    );
    let evil = hostile();
    let mut out = Vec::new();
    let mut g0_uj: u64 = 5_000_000_000;
    for i in 0..41u64 {
        let f = i as f64;
        let wobble = ((i * 37) % 11) as f64;
        if i > 0 {
            // 10 s at (600 + wobble) W.
            g0_uj += ((600.0 + wobble) * 10.0 * 1e6) as u64;
        }
        let mut g0 = testing::counter("gpu0", DeviceKind::Gpu, "NVIDIA H100 80GB HBM3", g0_uj);
        g0.power_w = Some(600.0 + wobble);
        g0.power_limit_w = Some(700.0);
        g0.util_pct = Some(97.0);
        g0.mem_used_bytes = Some(61 * GIB);
        g0.mem_total_bytes = Some(80 * GIB);
        g0.temperature_c = Some(71.0);
        g0.gpu_processes = vec![testing::holder(4242, 61 * GIB, Some(97.0))];
        let mut g1 = testing::counter(
            "gpu1",
            DeviceKind::Gpu,
            "NVIDIA H100 80GB HBM3",
            (f * 10.0 * 74.0 * 1e6) as u64 + 9_000_000_000,
        );
        g1.power_w = Some(74.0);
        g1.power_limit_w = Some(700.0);
        g1.util_pct = Some(0.0);
        g1.mem_used_bytes = Some(40 * GIB);
        g1.mem_total_bytes = Some(80 * GIB);
        g1.temperature_c = Some(36.0);
        g1.gpu_processes = vec![testing::holder(5151, 40 * GIB, Some(0.0))];
        let wrap = 262_143_328_850u64;
        let cpu = testing::wrapping(
            testing::counter(
                "cpu0",
                DeviceKind::Cpu,
                "package-0 (RAPL)",
                (250_000_000_000 + i * 10 * 118_000_000) % wrap,
            ),
            Some(wrap),
        );
        let dram = testing::wrapping(
            testing::counter(
                "dram0",
                DeviceKind::Dram,
                "dram-0 (RAPL)",
                1_000_000_000 + i * 10 * 12_000_000,
            ),
            Some(wrap),
        );
        let mut procs = vec![
            proc_(1, 0, 500, &systemd),
            proc_(1000, 1, 20, &bash),
            proc_(4242, 1000, 100_000 + i * 12_000, &train),
            proc_(4243, 4242, 30_000 + i * 4_000, &worker),
            proc_(5151, 1, 900 + i * 2, &jupyter),
            proc_(6666, 1, 10 + i * 500, &evil),
        ];
        if i < 20 {
            procs.push(proc_(7000, 1000, i * 600, &make));
        }
        out.push(
            testing::sample_at(1000.0 + f * 10.0)
                .wall_ms(1_767_225_600_000 + (i as i64) * 10_000)
                .uptime_s(5000.0 + f * 10.0)
                .cpu(1_000_000 + i * 26_240, 5_000_000 + i * 37_760)
                .procs(procs)
                .devices([g0, g1, cpu, dram])
                .build(),
        );
    }
    out
}

/// A laptop without RAPL access: the CPU estimate, a busy shell loop, 1 s for 30 s.
fn cpu_samples() -> Vec<Sample> {
    let sh = info(
        "sh",
        "sh -c while :; do :; done",
        "dev",
        "/user.slice/user-1000.slice",
        None,
    );
    let firefox = info(
        "firefox",
        "/usr/lib/firefox/firefox",
        "dev",
        "/user.slice/user-1000.slice",
        None,
    );
    let kworker = info("kworker/0:1", "", "root", "/", None);
    let evil = hostile();
    let mut out = Vec::new();
    for i in 0..31u64 {
        let mut cpu = testing::estimated(
            "cpu0",
            "Intel(R) Core(TM) i7-8650U CPU @ 1.90GHz, ~ 15 W TDP (CodeCarbon)",
            testing::linear(15.0, 0.1, "15 W TDP (CodeCarbon)"),
        );
        cpu.error = Some("RAPL not readable (root only since Linux 5.10): estimated from load".into());
        out.push(
            testing::sample_at(50.0 + i as f64)
                .wall_ms(1_767_225_600_000 + (i as i64) * 1000)
                .uptime_s(900.0 + i as f64)
                .cpu(40_000 + i * 130, 60_000 + i * 70)
                .procs([
                    proc_(2001, 1, 5_000 + i * 100, &sh),
                    proc_(2002, 1, 90_000 + i * 20, &firefox),
                    proc_(15, 2, 10 + i, &kworker),
                    proc_(6666, 1, 10 + i * 3, &evil),
                ])
                .devices([cpu])
                .build(),
        );
    }
    out
}

fn write_recording(host: &str, interval_s: f64, samples: &[Sample]) -> Vec<u8> {
    let header = Header {
        schema: SCHEMA.into(),
        host: host.into(),
        kwtop_version: "fixture".into(),
        started_ms: samples.first().map_or(0, |s| s.wall_ms),
        interval_s,
        notes: vec!["synthetic: generated by tests/tui_render.rs".into()],
        cmdline: None,
    };
    let mut w = Writer::new(Vec::new(), &header).unwrap();
    for s in samples {
        w.write(s).unwrap();
    }
    w.finish().unwrap()
}

#[test]
fn generated_recordings_are_current() {
    let regen = std::env::var_os("KWTOP_REGEN_FIXTURES").is_some();
    for (name, bytes) in [
        (
            "gpu-idle-holder.jsonl",
            write_recording("gpu01", 10.0, &gpu_samples()),
        ),
        (
            "cpu-estimate.jsonl",
            write_recording("laptop", 1.0, &cpu_samples()),
        ),
    ] {
        let path = fixture(name);
        if regen || !path.exists() {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &bytes).unwrap();
        }
        let committed = std::fs::read(&path).unwrap();
        assert!(
            committed == bytes,
            "{name} differs from its generator; rerun with KWTOP_REGEN_FIXTURES=1"
        );
    }
}

/// An App after replaying a committed recording.
fn app_from(name: &str, color: bool, ascii: bool) -> App {
    let f = std::fs::File::open(fixture(name))
        .unwrap_or_else(|e| panic!("{name}: {e} (run the generator test first)"));
    let mut reader = Reader::new(BufReader::new(f)).unwrap();
    let host = reader.header.host.clone();
    let mut app = App::new(
        &AppParams::default(),
        ViewOptions {
            host,
            color,
            ascii,
            can_export: true,
            ..ViewOptions::default()
        },
    );
    for s in reader.by_ref() {
        app.update(Msg::Sample(Box::new(s.unwrap())));
    }
    app
}

fn key(app: &mut App, code: KeyCode) {
    app.update(Msg::Key(KeyEvent::new(code, KeyModifiers::NONE)));
}

fn screen(app: &App, w: u16, h: u16) -> Terminal<TestBackend> {
    let mut term = Terminal::new(TestBackend::new(w, h)).unwrap();
    term.draw(|f| kwtop::ui::render(app, f)).unwrap();
    term
}

#[test]
fn gpu_screens() {
    let app = app_from("gpu-idle-holder.jsonl", true, false);
    assert_eq!(
        app.ledger().idle_holders().count(),
        1,
        "jupyter is an idle holder"
    );
    for (w, h) in [(120, 40), (80, 24), (60, 15), (40, 10)] {
        insta::assert_snapshot!(format!("gpu_{w}x{h}"), screen(&app, w, h).backend());
    }
}

#[test]
fn cpu_estimate_screens() {
    let app = app_from("cpu-estimate.jsonl", false, false);
    for (w, h) in [(120, 40), (80, 24), (60, 15), (40, 10)] {
        insta::assert_snapshot!(format!("cpu_{w}x{h}"), screen(&app, w, h).backend());
    }
}

#[test]
fn ascii_mode_has_only_ascii() {
    let mut app = app_from("gpu-idle-holder.jsonl", false, true);
    for (w, h) in [(120, 40), (80, 24), (60, 15)] {
        let term = screen(&app, w, h);
        let text: String = term
            .backend()
            .buffer()
            .content()
            .iter()
            .map(|c| c.symbol())
            .collect();
        assert!(text.is_ascii(), "non-ASCII at {w}x{h}");
    }
    insta::assert_snapshot!("gpu_ascii_120x40", screen(&app, 120, 40).backend());
    key(&mut app, KeyCode::Char('?'));
    let term = screen(&app, 100, 30);
    let text: String = term
        .backend()
        .buffer()
        .content()
        .iter()
        .map(|c| c.symbol())
        .collect();
    assert!(text.is_ascii());
}

#[test]
fn hostile_strings_never_reach_the_screen() {
    for name in ["gpu-idle-holder.jsonl", "cpu-estimate.jsonl"] {
        let mut app = app_from(name, true, false);
        key(&mut app, KeyCode::Char('/'));
        for c in "evil".chars() {
            key(&mut app, KeyCode::Char(c));
        }
        key(&mut app, KeyCode::Enter);
        key(&mut app, KeyCode::Down);
        key(&mut app, KeyCode::Enter);
        for (w, h) in [(250, 80), (120, 40), (80, 24)] {
            let term = screen(&app, w, h);
            for cell in term.backend().buffer().content() {
                for c in cell.symbol().chars() {
                    assert!(
                        !kwtop::sanitize::is_unsafe_char(c),
                        "{name} {w}x{h}: unsafe char {:?} drawn",
                        c
                    );
                }
            }
            let text: String = term
                .backend()
                .buffer()
                .content()
                .iter()
                .map(|c| c.symbol())
                .collect();
            assert!(!text.contains("pwned"), "OSC payload leaked");
        }
    }
}

#[test]
fn keys_sort_filter_group_detail_help() {
    let mut app = app_from("gpu-idle-holder.jsonl", true, false);
    // Default: total W descending; python train.py first.
    let rows = app.rows();
    assert_eq!(rows[0].pid, "4242");
    key(&mut app, KeyCode::Char('r'));
    assert_ne!(app.rows()[0].pid, "4242");
    key(&mut app, KeyCode::Char('r'));
    key(&mut app, KeyCode::Char('/'));
    for c in "bob".chars() {
        key(&mut app, KeyCode::Char(c));
    }
    key(&mut app, KeyCode::Enter);
    let rows = app.rows();
    assert_eq!(rows[0].pid, "5151");
    assert!(rows[0].state.starts_with("IDLE"), "state {}", rows[0].state);
    // Select it and open its detail view.
    key(&mut app, KeyCode::Char('j'));
    key(&mut app, KeyCode::Enter);
    assert!(app.ui.detail);
    insta::assert_snapshot!("gpu_detail_idle_holder_120x40", screen(&app, 120, 40).backend());
    key(&mut app, KeyCode::Esc);
    key(&mut app, KeyCode::Esc);
    assert!(app.ui.filter.is_empty());
    // Group by user: ana, bob, carol, mallory, root.
    key(&mut app, KeyCode::Char('g'));
    key(&mut app, KeyCode::Char('g'));
    insta::assert_snapshot!("gpu_group_user_120x40", screen(&app, 120, 40).backend());
    key(&mut app, KeyCode::Char('?'));
    insta::assert_snapshot!("gpu_help_120x40", screen(&app, 120, 40).backend());
}

#[test]
fn table_energy_sums_to_total() {
    for name in ["gpu-idle-holder.jsonl", "cpu-estimate.jsonl"] {
        let mut app = app_from(name, true, false);
        // Rows hidden by default (kernel threads, no energy yet) and shown with K.
        for _ in 0..2 {
            let sum: f64 = app.rows().iter().map(|r| r.energy_j).sum();
            let total = app.ledger().total_energy_j();
            assert!(
                (sum - total).abs() <= 1e-6 * total.max(1.0),
                "{name} (show hidden {}): rows {sum} vs total {total}",
                app.ui.show_hidden
            );
            key(&mut app, KeyCode::Char('K'));
        }
    }
}

/// Issue 15 item 3: the laptop's kworker (a child of kthreadd, no command line) is hidden, its
/// energy summed in the pinned `hidden` row; the title says so; K lists it again.
#[test]
fn kernel_threads_hidden_until_k() {
    let mut app = app_from("cpu-estimate.jsonl", false, false);
    let rows = app.rows();
    assert!(rows.iter().all(|r| r.pid != "15"), "kworker hidden");
    let hidden = rows
        .iter()
        .find(|r| r.kind == kwtop::app::RowKind::Hidden)
        .expect("a hidden row with the kworker's energy");
    assert!(hidden.energy_j > 0.0);
    insta::assert_snapshot!("cpu_hidden_80x24", screen(&app, 80, 24).backend());
    key(&mut app, KeyCode::Char('K'));
    assert!(
        app.rows()
            .iter()
            .any(|r| r.pid == "15" && r.command == "[kworker/0:1]")
    );
    assert!(app.rows().iter().all(|r| r.kind != kwtop::app::RowKind::Hidden));
    insta::assert_snapshot!("cpu_shown_120x40", screen(&app, 120, 40).backend());
}

/// Issue 15 item 9: in the detail view every figure from the CPU estimate carries `~`.
#[test]
fn detail_view_marks_estimated_figures() {
    let mut app = app_from("cpu-estimate.jsonl", false, false);
    key(&mut app, KeyCode::Down);
    key(&mut app, KeyCode::Enter);
    assert!(app.ui.detail);
    let term = screen(&app, 120, 40);
    insta::assert_snapshot!("cpu_detail_estimated_120x40", term.backend());
    let text: String = term
        .backend()
        .buffer()
        .content()
        .chunks(120)
        .map(|row| row.iter().map(|c| c.symbol()).collect::<String>() + "\n")
        .collect();
    let line = |k: &str| {
        text.lines()
            .find(|l| l.starts_with(k))
            .unwrap_or_else(|| panic!("no {k} line in\n{text}"))
            .to_string()
    };
    let power = line("power");
    assert_eq!(power.matches("~").count(), 3, "now, avg, peak: {power}");
    assert!(line("energy").contains(" ~"), "{}", line("energy"));
    assert!(line("by device").contains("cpu0 ~"), "{}", line("by device"));
    let impact = line("impact");
    assert_eq!(
        impact.matches("~").count(),
        4,
        "CO2e and three equivalents: {impact}"
    );
    assert!(text.contains("~ = estimated"));
    // A measured (RAPL, NVML) process carries none.
    let mut gpu = app_from("gpu-idle-holder.jsonl", false, false);
    key(&mut gpu, KeyCode::Down);
    key(&mut gpu, KeyCode::Enter);
    let term = screen(&gpu, 120, 40);
    let text: String = term
        .backend()
        .buffer()
        .content()
        .iter()
        .map(|c| c.symbol())
        .collect();
    assert!(!text.contains("~"), "nothing estimated on the GPU node");
}

fn assert_inside(app: &App, w: u16, h: u16) {
    let outer = Rect::new(0, 0, w + 2, h + 2);
    let mut buf = Buffer::empty(outer);
    let area = Rect::new(1, 1, w, h);
    kwtop::ui::draw(app, area, &mut buf);
    for y in 0..outer.height {
        for x in 0..outer.width {
            if area.contains((x, y).into()) {
                continue;
            }
            assert!(
                buf[(x, y)] == ratatui::buffer::Cell::EMPTY,
                "{w}x{h}: drew {:?} outside its area at ({x},{y})",
                buf[(x, y)].symbol()
            );
        }
    }
}

/// Every size from 20×5 to 250×80 renders without panic and draws nothing outside its area
/// (the detail view and the help overlay on every fifth size).
#[test]
fn layout_sweep() {
    let main = app_from("gpu-idle-holder.jsonl", true, false);
    let mut detail = app_from("cpu-estimate.jsonl", false, true);
    key(&mut detail, KeyCode::Down);
    key(&mut detail, KeyCode::Enter);
    let mut help = app_from("gpu-idle-holder.jsonl", true, false);
    key(&mut help, KeyCode::Char('?'));
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get()).min(8) as u16;
    std::thread::scope(|sc| {
        for t in 0..threads {
            let (main, detail, help) = (&main, &detail, &help);
            sc.spawn(move || {
                for w in (20..=250u16).filter(|w| w % threads == t) {
                    for h in 5..=80u16 {
                        assert_inside(main, w, h);
                        if (w + h) % 5 == 0 {
                            assert_inside(detail, w, h);
                            assert_inside(help, w, h);
                        }
                    }
                }
            });
        }
    });
}

/// Issue 14 item 6: the device strip names the vendor and where the energy comes from.
#[test]
fn device_strip_names_vendor_and_source() {
    let mut app = App::new(
        &AppParams::default(),
        ViewOptions {
            host: "amd01".into(),
            color: false,
            ascii: false,
            can_export: true,
            ..ViewOptions::default()
        },
    );
    let train = info("train", "python train.py", "ana", "/user.slice", None);
    for i in 0..3u64 {
        let t = i as f64;
        let mut gpu = testing::gpu(
            "gpu0",
            "Radeon Pro W7900 (amdgpu)",
            i * 200_000_000,
            Some(295.0),
            vec![testing::holder(42, 4 * GIB, Some(80.0))],
        );
        gpu.vendor = Some("AMD".into());
        gpu.source = Some("hwmon energy".into());
        let counter = testing::counter("cpu0", DeviceKind::Cpu, "package-0", i * 30_000_000);
        let mut cpu = testing::wrapping(counter, Some(262_143_328_850));
        cpu.source = Some("RAPL powercap".into());
        let sample = testing::sample_at(t)
            .wall_origin_ms(1_700_000_000_000)
            .uptime_origin(1000.0)
            .cpu(i * 100, i * 100)
            .procs([proc_(42, 1, i * 50, &train)])
            .devices([gpu, cpu])
            .build();
        app.update(Msg::Sample(Box::new(sample)));
    }
    let term = screen(&app, 140, 30);
    let text: String = term
        .backend()
        .buffer()
        .content()
        .chunks(140)
        .map(|row| row.iter().map(|c| c.symbol()).collect::<String>() + "\n")
        .collect();
    let gpu_line = text
        .lines()
        .find(|l| l.starts_with("GPU0"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(gpu_line.contains("AMD Radeon"), "{gpu_line}");
    assert!(gpu_line.contains("measured (hwmon energy)"), "{gpu_line}");
    let cpu_line = text
        .lines()
        .find(|l| l.starts_with("CPU0"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(cpu_line.contains("measured (RAPL powercap)"), "{cpu_line}");
}

/// The rows of a screen as text.
fn lines(term: &Terminal<TestBackend>) -> Vec<String> {
    let buf = term.backend().buffer();
    buf.content()
        .chunks(usize::from(buf.area.width))
        .map(|row| row.iter().map(|c| c.symbol()).collect())
        .collect()
}

/// The line of the table's column headings.
fn heading(term: &Terminal<TestBackend>) -> String {
    lines(term)
        .into_iter()
        .find(|l| l.trim_start().starts_with("PID "))
        .unwrap_or_else(|| panic!("no table heading in\n{}", lines(term).join("\n")))
}

/// Issue 15 items 1 and 2 on the GPU node (built with `kwtop::testing`): the columns kept by
/// priority at 80, 120 and 160 columns (the equivalent switched to household-hours with `c`), the
/// header shortened by whole items, `i` on the idle holder and the `k` prompt naming it.
#[test]
fn issue_15_columns_by_priority_and_the_signal_prompt() {
    let mut app = App::new(
        &AppParams::default(),
        ViewOptions {
            host: "gpu01".into(),
            color: true,
            ascii: false,
            can_export: true,
            signals: kwtop::app::Signals::Live { own_pid: 999_999 },
        },
    );
    for s in gpu_samples() {
        app.update(Msg::Sample(Box::new(s)));
    }
    key(&mut app, KeyCode::Char('c'));
    key(&mut app, KeyCode::Char('i'));
    let rows = app.rows();
    assert_eq!(
        app.selected_index(&rows).map(|i| rows[i].pid.as_str()),
        Some("5151"),
        "i selects the idle holder"
    );

    let at80 = heading(&screen(&app, 80, 24));
    for col in ["GPU W", "TOTAL W", "ENERGY", "CO2e", "STATE", "COMMAND"] {
        assert!(at80.contains(col), "80: {col} in {at80}");
    }
    assert!(!at80.contains("USER") && !at80.contains("AVG W"), "{at80}");
    let at120 = heading(&screen(&app, 120, 40));
    assert!(at120.contains("HOME h") && at120.contains("CPU W"), "{at120}");
    let at160 = heading(&screen(&app, 160, 50));
    for col in ["USER", "DEV", "AVG W", "GPU MEM", "HOME h"] {
        assert!(at160.contains(col), "160: {col} in {at160}");
    }

    // The header: every word shown at any width is a whole word of the widest header.
    let words = |w: u16| -> Vec<String> {
        lines(&screen(&app, w, 40))[..2]
            .iter()
            .flat_map(|l| l.split_whitespace().map(str::to_string).collect::<Vec<_>>())
            .collect()
    };
    let all = words(300);
    assert!(all.contains(&"household-hours".to_string()), "c: {all:?}");
    for w in 60..=300u16 {
        for word in words(w) {
            assert!(all.contains(&word), "{w} columns: cut word {word:?}");
        }
    }

    key(&mut app, KeyCode::Char('k'));
    for (w, h) in [(80, 24), (120, 40), (160, 50)] {
        let term = screen(&app, w, h);
        let footer = lines(&term).pop().unwrap_or_default();
        assert!(
            footer.starts_with("Send SIGTERM to 5151 /opt/conda/bin/python"),
            "{footer}"
        );
        assert!(footer.contains("? y/N  K/9: SIGKILL"), "{footer}");
        insta::assert_snapshot!(format!("issue15_gpu_{w}x{h}"), term.backend());
    }
}
