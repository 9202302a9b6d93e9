use std::sync::Arc;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::*;
use crate::sample::{CpuTimes, DeviceReading, EnergyCounter, ProcInfo, ProcessReading};

fn sample(i: u64, procs: &[(u32, u64)]) -> Sample {
    let mut cpu = DeviceReading::new("cpu0", DeviceKind::Cpu, "package-0");
    cpu.energy = Some(EnergyCounter {
        value_uj: i * 50_000_000,
        wrap_uj: None,
    });
    Sample {
        mono_s: i as f64,
        wall_ms: 1_000_000 + i as i64 * 1000,
        uptime_s: Some(100.0 + i as f64),
        ticks_per_s: 100,
        cpu_times: Some(CpuTimes {
            busy: i * 100,
            idle: i * 100,
        }),
        processes: procs
            .iter()
            .map(|&(pid, per_s)| ProcessReading {
                key: ProcKey { pid, starttime: 1 },
                ppid: 1,
                cpu_ticks: i * per_s,
                child_ticks: 0,
                info: Arc::new(ProcInfo {
                    comm: format!("p{pid}"),
                    cmdline: format!("p{pid} --run"),
                    user: "u".into(),
                    ..Default::default()
                }),
            })
            .collect(),
        devices: vec![cpu],
    }
}

fn key(app: &mut App, c: KeyCode) -> (bool, Action) {
    app.update(Msg::Key(KeyEvent::new(c, KeyModifiers::NONE)))
}

fn app_with(n: u64, procs: &[(u32, u64)]) -> App {
    let mut app = App::new(&AppParams::default(), ViewOptions::default());
    for i in 0..n {
        app.update(Msg::Sample(Box::new(sample(i, procs))));
    }
    app
}

#[test]
fn quit_keys() {
    let mut app = app_with(2, &[(10, 50)]);
    assert_eq!(key(&mut app, KeyCode::Char('q')).1, Action::Quit);
    let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
    assert_eq!(app.update(Msg::Key(ctrl_c)).1, Action::Quit);
    // While typing a filter, q is a letter but Ctrl-C still quits.
    key(&mut app, KeyCode::Char('/'));
    assert_eq!(key(&mut app, KeyCode::Char('q')).1, Action::None);
    assert_eq!(app.ui.filter, "q");
    assert_eq!(app.update(Msg::Key(ctrl_c)).1, Action::Quit);
}

#[test]
fn selection_follows_the_process_when_the_order_changes() {
    let mut app = app_with(3, &[(10, 60), (20, 30)]);
    key(&mut app, KeyCode::Down);
    key(&mut app, KeyCode::Down);
    assert_eq!(
        app.ui.selected,
        Some(RowId::Proc(ProcKey {
            pid: 20,
            starttime: 1
        }))
    );
    // pid 20 becomes the busiest: it moves to the top, the selection goes with it.
    for i in 3..6 {
        app.update(Msg::Sample(Box::new(sample(i, &[(10, 60), (20, 30)]))));
    }
    let rows = app.rows();
    let idx = app.selected_index(&rows);
    assert_eq!(idx.map(|i| rows[i].pid.as_str()), Some("20"));
}

#[test]
fn pause_freezes_the_view_but_not_the_accounting() {
    let mut app = app_with(3, &[(10, 60)]);
    key(&mut app, KeyCode::Char('p'));
    let shown = app.ledger().total_energy_j();
    let (dirty, _) = app.update(Msg::Sample(Box::new(sample(3, &[(10, 60)]))));
    assert!(!dirty, "no redraw for data while paused");
    assert_eq!(app.ledger().total_energy_j(), shown);
    assert!(app.engine.ledger.total_energy_j() > shown);
    key(&mut app, KeyCode::Char('p'));
    assert!(app.ledger().total_energy_j() > shown);
}

#[test]
fn sort_cycles_and_reverses() {
    let mut app = app_with(3, &[(10, 60), (20, 30)]);
    assert_eq!(app.rows()[0].pid, "10");
    key(&mut app, KeyCode::Char('r'));
    assert_eq!(app.rows()[0].pid, "20");
    for _ in 0..Column::ALL.len() {
        key(&mut app, KeyCode::Char('s'));
    }
    assert_eq!(app.ui.sort, Column::TotalW, "s cycles through every column");
    key(&mut app, KeyCode::Char('<'));
    assert_eq!(app.ui.sort, Column::CpuW);
}

#[test]
fn export_only_with_a_hook() {
    let mut app = app_with(2, &[(10, 60)]);
    assert_eq!(key(&mut app, KeyCode::Char('e')).1, Action::None);
    assert!(app.status.is_some());
    app.opts.can_export = true;
    assert_eq!(key(&mut app, KeyCode::Char('e')).1, Action::Export);
}

#[test]
fn notices_are_sanitized_and_bounded() {
    let mut app = app_with(1, &[]);
    app.update(Msg::Notices(vec!["a\u{1b}[2Jb".into()]));
    assert_eq!(app.notices, vec!["a?b".to_string()]);
    app.update(Msg::Notices((0..40).map(|i| format!("n{i}")).collect()));
    assert!(app.notices.len() <= 16);
}
