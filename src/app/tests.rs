use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::*;
use crate::testing;

fn sample(i: u64, procs: &[(u32, u64)]) -> Sample {
    testing::sample_at(i as f64)
        .wall_origin_ms(1_000_000)
        .uptime_origin(100.0)
        .cpu(i * 100, i * 100)
        .procs(procs.iter().map(|&(pid, per_s)| {
            testing::process(pid, 1, i * per_s)
                .comm(format!("p{pid}"))
                .cmdline(format!("p{pid} --run"))
                .user("u")
                .build()
        }))
        .devices([testing::counter(
            "cpu0",
            DeviceKind::Cpu,
            "package-0",
            i * 50_000_000,
        )])
        .build()
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
    assert!(app.engine().ledger.total_energy_j() > shown);
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

/// A sample whose processes are (pid, ppid, ticks per interval, command line).
fn sample_kt(i: u64, procs: &[(u32, u32, u64, &str)]) -> Sample {
    let mut s = sample(i, &[]);
    s.processes = procs
        .iter()
        .map(|&(pid, ppid, per_s, cmdline)| {
            testing::process(pid, 1, i * per_s)
                .ppid(ppid)
                .comm(format!("k{pid}"))
                .cmdline(cmdline)
                .user("root")
                .build()
        })
        .collect();
    s
}

/// kthreadd (2), a busy kworker (15), an idle kworker (16), a busy shell (100), an idle daemon
/// (101) and a zombie-like process with no command line under a user parent (102, busy).
const NOISY: &[(u32, u32, u64, &str)] = &[
    (2, 0, 0, ""),
    (15, 2, 20, ""),
    (16, 2, 0, ""),
    (100, 1, 50, "sh -c loop"),
    (101, 1, 0, "sleepd"),
    (102, 100, 5, ""),
];

fn noisy_app() -> App {
    let mut app = App::new(&AppParams::default(), ViewOptions::default());
    for i in 0..4 {
        app.update(Msg::Sample(Box::new(sample_kt(i, NOISY))));
    }
    app
}

/// Pids of the process rows, sorted as text.
fn pids(rows: &[Row]) -> Vec<String> {
    let mut p: Vec<String> = rows
        .iter()
        .filter(|r| r.kind == RowKind::Process)
        .map(|r| r.pid.clone())
        .collect();
    p.sort_unstable();
    p
}

fn assert_sums_to_total(app: &App) {
    let sum: f64 = app.rows().iter().map(|r| r.energy_j).sum();
    let total = app.ledger().total_energy_j();
    assert!(total > 0.0);
    assert!(
        (sum - total).abs() <= 1e-9 * total,
        "rows {sum} J vs total {total} J"
    );
}

#[test]
fn kernel_threads_are_children_of_kthreadd_without_a_command_line() {
    assert!(rows::is_kernel_thread(2, 0, ""), "kthreadd");
    assert!(rows::is_kernel_thread(15, 2, ""), "kworker");
    assert!(
        !rows::is_kernel_thread(15, 2, "fake --argv"),
        "a user process under pid 2"
    );
    assert!(
        !rows::is_kernel_thread(102, 100, ""),
        "a zombie under a user process"
    );
    assert!(
        !rows::is_kernel_thread(1, 0, ""),
        "init with an unreadable command line"
    );
}

#[test]
fn kernel_threads_and_processes_without_energy_are_hidden_by_default() {
    let mut app = noisy_app();
    let (rows, hidden) = rows::build_counted(&app);
    assert_eq!(pids(&rows), vec!["100", "102"]);
    assert_eq!(hidden.kernel_threads, 3, "2, 15, 16");
    assert_eq!(hidden.no_energy, 1, "101");
    assert_eq!(hidden.count(), 4);
    assert!(!hidden.shown);
    // The busy kworker's energy is in the pinned `hidden` row, so the table still adds up.
    let kernel_j = app
        .ledger()
        .processes()
        .find(|e| e.key.pid == 15)
        .unwrap()
        .energy_j;
    assert!(kernel_j > 0.0);
    let hidden_row = rows.iter().find(|r| r.kind == RowKind::Hidden).unwrap();
    assert_eq!(hidden_row.energy_j, kernel_j);
    assert_eq!(hidden.energy_j, kernel_j);
    assert!(
        hidden_row.command.contains("3 kernel threads"),
        "{}",
        hidden_row.command
    );
    assert_sums_to_total(&app);

    // K shows everything as ordinary rows, and the hidden row goes away; the sum still holds.
    key(&mut app, KeyCode::Char('K'));
    let (rows, hidden) = rows::build_counted(&app);
    assert_eq!(pids(&rows), vec!["100", "101", "102", "15", "16", "2"]);
    assert!(rows.iter().all(|r| r.kind != RowKind::Hidden));
    assert!(hidden.shown);
    assert_eq!(hidden.count(), 4, "still counted, for the title's `K hides 4`");
    assert_sums_to_total(&app);
    key(&mut app, KeyCode::Char('K'));
    assert_eq!(pids(&app.rows()), vec!["100", "102"]);
}

#[test]
fn without_kernel_energy_there_is_no_hidden_row() {
    let quiet: Vec<_> = NOISY.iter().copied().filter(|p| p.0 != 15).collect();
    let mut app = App::new(&AppParams::default(), ViewOptions::default());
    for i in 0..3 {
        app.update(Msg::Sample(Box::new(sample_kt(i, &quiet))));
    }
    let (rows, hidden) = rows::build_counted(&app);
    assert!(rows.iter().all(|r| r.kind != RowKind::Hidden));
    assert_eq!(hidden.kernel_threads, 2);
    assert_eq!(hidden.energy_j, 0.0);
    assert_sums_to_total(&app);
}

#[test]
fn a_process_gets_its_row_once_it_has_energy() {
    let mut app = App::new(&AppParams::default(), ViewOptions::default());
    // Idle for two intervals, then busy.
    for i in 0..3 {
        app.update(Msg::Sample(Box::new(sample_kt(
            i,
            &[(100, 1, 10, "sh"), (101, 1, 0, "late")],
        ))));
    }
    assert_eq!(pids(&app.rows()), vec!["100"]);
    let mut s = sample_kt(3, &[(100, 1, 10, "sh"), (101, 1, 0, "late")]);
    s.processes[1].cpu_ticks = 30;
    app.update(Msg::Sample(Box::new(s)));
    assert_eq!(pids(&app.rows()), vec!["100", "101"]);
}

#[test]
fn filter_and_grouping_work_with_hidden_rows() {
    let mut app = noisy_app();
    key(&mut app, KeyCode::Char('/'));
    key(&mut app, KeyCode::Char('k'));
    key(&mut app, KeyCode::Enter);
    // Hidden kernel threads do not come back through the filter (as in htop)...
    assert_eq!(
        pids(&app.rows()),
        vec!["102"],
        "[k102] matches, it is no kernel thread"
    );
    // ...until K shows them.
    key(&mut app, KeyCode::Char('K'));
    assert_eq!(
        pids(&app.rows()),
        vec!["102", "15", "16", "2"],
        "comm k<pid> matches"
    );
    key(&mut app, KeyCode::Char('K'));
    key(&mut app, KeyCode::Esc);
    // Grouped by tree: groups with no energy yet are hidden, no kernel-thread rule; sum holds.
    key(&mut app, KeyCode::Char('t'));
    let (rows, hidden) = rows::build_counted(&app);
    assert!(rows.iter().all(|r| r.kind != RowKind::Hidden));
    assert!(
        rows.iter()
            .filter(|r| r.kind == RowKind::Group)
            .all(|r| r.energy_j > 0.0)
    );
    assert_eq!(hidden.kernel_threads, 0);
    assert!(hidden.no_energy >= 1, "{hidden:?}");
    assert_sums_to_total(&app);
    key(&mut app, KeyCode::Char('K'));
    assert!(
        app.rows()
            .iter()
            .any(|r| r.kind == RowKind::Group && r.energy_j == 0.0)
    );
    assert_sums_to_total(&app);
}

/// `k`, the signal prompt, and `i` (issue 15 item 2).
mod signal;

#[test]
fn c_cycles_the_equivalents_and_the_cost_only_with_a_price() {
    let mut app = app_with(3, &[(10, 50)]);
    let mut seen = vec![app.ui.equiv];
    for _ in 0..3 {
        key(&mut app, KeyCode::Char('c'));
        seen.push(app.ui.equiv);
    }
    assert_eq!(
        seen,
        [Equiv::Phone, Equiv::HouseholdHours, Equiv::CarKm, Equiv::Phone],
        "no cost without a price"
    );

    app.impact.price = Some(crate::impact::Price {
        per_kwh: 0.5,
        currency: "EUR".into(),
    });
    for _ in 0..3 {
        key(&mut app, KeyCode::Char('c'));
    }
    assert_eq!(app.ui.equiv, Equiv::Cost);
    assert_eq!(app.ui.equiv.header(&app.impact), "EUR");
    // 3.6 MJ is 1 kWh: 0.5 EUR at PUE 1, three significant digits below 1.
    assert_eq!(app.ui.equiv.phrase(&app.impact, 3.6e6), "0.500 EUR");
    key(&mut app, KeyCode::Char('c'));
    assert_eq!(app.ui.equiv, Equiv::Phone);
}
