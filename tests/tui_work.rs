#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Energy per unit of work on screen: the header item and the detail view's work section, drawn
//! with `TestBackend` from an App whose pipeline feeds a real work meter following a log in a temp
//! dir (synthetic samples: a 10 W package, the training tree gets 3 of 5 busy ticks).

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use kwtop::app::{App, AppParams, Msg, ViewOptions};
use kwtop::impact::ImpactParams;
use kwtop::pipeline::Tick;
use kwtop::sample::{DeviceKind, Sample};
use kwtop::work::ProgressPattern;
use kwtop::work::live::Gap;
use kwtop::workmeter::{WorkInput, WorkMeter, WorkSpec};
use kwtop_core::testing::{counter, process, sample_at};
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;

fn sample(t: u64) -> Sample {
    sample_at(t as f64)
        .wall_origin_ms(1_700_000_000_000)
        .cpu(500 * t, 0)
        .procs([
            process(4242, 3, 200 * t).comm("python").build(),
            process(4243, 4, 100 * t).ppid(4242).comm("worker").build(),
            process(20, 5, 200 * t).comm("other").build(),
        ])
        .devices([counter(
            "cpu0",
            DeviceKind::Cpu,
            "pkg",
            1_000_000 + t * 10_000_000,
        )])
        .build()
}

/// 90 s of a training whose log counted 100 steps before kwtop started, then 2 steps a second for
/// 30 s and 3 a second after.
fn training_app(ascii: bool) -> (App, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("train.log");
    std::fs::write(&log, "epoch 0\nstep 100 loss 2.1\n").unwrap();
    let spec = WorkSpec {
        input: WorkInput::Log {
            path: log.clone(),
            progress: Some(ProgressPattern::new(r"step (\d+)").unwrap()),
        },
        unit: Some("step".into()),
        pid: Some(4242),
    };
    let mut meter = WorkMeter::start(
        &spec,
        Path::new("/nonexistent"),
        ImpactParams::default(),
        Duration::from_secs(2),
    )
    .unwrap();
    let mut app = App::new(
        &AppParams::default(),
        ViewOptions {
            host: "node1".into(),
            color: false,
            ascii,
            can_export: false,
            ..ViewOptions::default()
        },
    );
    app.work = Some(meter.board());
    let mut step = 100;
    for t in 0..=90 {
        if t > 0 {
            step += if t <= 30 { 2 } else { 3 };
            let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
            writeln!(f, "step {step} loss 1.9").unwrap();
        }
        let tick = Tick {
            sample: sample(t),
            notices: Vec::new(),
        };
        app.accept(tick, &mut [&mut meter]);
        assert_eq!(app.status, None, "no message from the meter");
    }
    (app, dir)
}

fn rows(app: &App, w: u16, h: u16) -> Vec<String> {
    let area = Rect::new(0, 0, w, h);
    let mut buf = Buffer::empty(area);
    kwtop::ui::draw(app, area, &mut buf);
    (0..h)
        .map(|y| {
            (0..w)
                .map(|x| buf[(x, y)].symbol().to_string())
                .collect::<String>()
                .trim_end()
                .to_string()
        })
        .collect()
}

/// The header, and the detail view's work section (from its `work:` line to the end).
fn work_parts(app: &mut App, w: u16, h: u16) -> String {
    let header = rows(app, w, h)[..2].join("\n");
    app.update(Msg::Key(KeyEvent::new(KeyCode::Down, KeyModifiers::NONE)));
    app.update(Msg::Key(KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE)));
    assert!(app.ui.detail, "the detail view is open");
    let all = rows(app, w, h);
    let from = all
        .iter()
        .position(|l| l.starts_with("work:"))
        .expect("a work section");
    // Up to the footer, which is the screen's, not the section's.
    let body = &all[from..all.len() - 1];
    let section: Vec<&String> = body.iter().take_while(|l| !l.is_empty()).collect();
    let section: Vec<&str> = section.iter().map(|s| s.as_str()).collect();
    format!("{header}\n...\n{}", section.join("\n"))
}

#[test]
fn header_item_and_detail_section() {
    let (mut app, _dir) = training_app(false);
    let f = app.work.as_ref().unwrap().get().unwrap().figures;
    // 245 steps after the baseline of 100; the tree draws 6 W.
    assert_eq!((f.units, f.reported), (240, 340));
    let s = f.session.unwrap();
    assert!((s.j_per_unit.unwrap() - 540.0 / 240.0).abs() < 1e-9);
    let r = f.recent.unwrap();
    assert_eq!((r.span_s, r.units), (60.0, 180));
    insta::assert_snapshot!("work_120x40", work_parts(&mut app, 120, 40));
}

#[test]
fn narrow_and_ascii_screens_keep_the_joules_per_step() {
    let (mut app, _dir) = training_app(true);
    let text = work_parts(&mut app, 80, 24);
    assert!(text.is_ascii(), "{text}");
    insta::assert_snapshot!("work_80x24_ascii", text);
}

#[test]
fn a_gap_is_marked_in_the_header_and_the_detail() {
    let (mut app, _dir) = training_app(false);
    let board = app.work.clone().unwrap();
    let mut v = board.get().unwrap();
    v.figures.gap = Some(Gap {
        for_s: 42.0,
        why: "connection refused".into(),
    });
    board.set(v);
    let header = rows(&app, 150, 40)[1].clone();
    assert!(header.contains("gap 42s"), "{header}");
    let text = work_parts(&mut app, 150, 40);
    assert!(
        text.contains("no answer for 42s: connection refused (figures as of the last answer)"),
        "{text}"
    );
}
