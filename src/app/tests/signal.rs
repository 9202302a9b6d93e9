//! The `k` prompt (ask, cancel, `y`, SIGKILL, refusals, a process gone meanwhile, errors in words)
//! and `i` (the next idle GPU holder), driven through `App::update` without sending any signal.

use super::*;

/// An App that may signal (as the live monitor does), kwtop itself being pid `own`.
fn live_app(n: u64, procs: &[(u32, u64)], own: u32) -> App {
    let opts = ViewOptions {
        signals: Signals::Live { own_pid: own },
        ..ViewOptions::default()
    };
    let mut app = App::new(&AppParams::default(), opts);
    for i in 0..n {
        app.update(Msg::Sample(Box::new(sample(i, procs))));
    }
    app
}

fn select_pid(app: &mut App, pid: &str) {
    app.ui.selected = app.rows().into_iter().find(|r| r.pid == pid).map(|r| r.id);
    assert!(app.ui.selected.is_some(), "no row for {pid}");
}

fn status(app: &App) -> &str {
    app.status.as_deref().unwrap_or("")
}

#[test]
fn k_asks_naming_pid_and_command_then_y_sends_sigterm() {
    let mut app = live_app(3, &[(10, 60), (20, 30)], 999);
    select_pid(&mut app, "20");
    assert_eq!(key(&mut app, KeyCode::Char('k')), (true, Action::None));
    let c = app.ui.confirm.clone().expect("the prompt is open");
    assert_eq!((c.key.pid, c.command.as_str()), (20, "p20 --run"));
    // The prompt takes the next key, whatever it is: y sends SIGTERM to that process.
    let (_, action) = key(&mut app, KeyCode::Char('y'));
    assert_eq!(
        action,
        Action::Signal {
            pid: 20,
            signal: Sig::Term
        }
    );
    assert!(app.ui.confirm.is_none());
    app.update(Msg::Signaled {
        pid: 20,
        signal: Sig::Term,
        result: Ok(()),
    });
    assert_eq!(status(&app), "sent SIGTERM to 20 (p20 --run)");
    // F9 opens it too (htop, nvtop).
    key(&mut app, KeyCode::F(9));
    assert!(app.ui.confirm.is_some());
}

#[test]
fn any_other_key_cancels_the_prompt() {
    let mut app = live_app(3, &[(10, 60), (20, 30)], 999);
    for cancel in [
        KeyCode::Char('n'),
        KeyCode::Enter,
        KeyCode::Esc,
        KeyCode::Char('j'),
        KeyCode::Char('q'),
        KeyCode::Char('k'),
    ] {
        select_pid(&mut app, "10");
        key(&mut app, KeyCode::Char('k'));
        assert!(app.ui.confirm.is_some());
        let before = app.ui.clone();
        assert_eq!(key(&mut app, cancel), (true, Action::None), "{cancel:?}");
        assert!(app.ui.confirm.is_none(), "{cancel:?}");
        assert_eq!(status(&app), "cancelled: 10 not signalled");
        // The cancelling key does nothing else: no quit, no move, filter and view unchanged.
        assert_eq!(
            app.ui,
            UiState {
                confirm: None,
                ..before
            }
        );
    }
    // Ctrl-C still quits from the prompt; the wheel does not move the selection under it.
    select_pid(&mut app, "10");
    key(&mut app, KeyCode::Char('k'));
    assert_eq!(app.update(Msg::Scroll(3)), (false, Action::None));
    assert_eq!(app.ui.confirm.as_ref().map(|c| c.key.pid), Some(10));
    let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
    assert_eq!(app.update(Msg::Key(ctrl_c)).1, Action::Quit);
}

#[test]
fn capital_k_or_9_in_the_prompt_sends_sigkill() {
    let mut app = live_app(3, &[(10, 60)], 999);
    for k in ['K', '9'] {
        select_pid(&mut app, "10");
        key(&mut app, KeyCode::Char('k'));
        assert_eq!(
            key(&mut app, KeyCode::Char(k)).1,
            Action::Signal {
                pid: 10,
                signal: Sig::Kill
            },
            "{k}"
        );
        assert!(
            !app.ui.show_hidden,
            "K answered the prompt, it did not toggle hidden rows"
        );
    }
}

#[test]
fn refusals_are_status_lines_without_a_prompt() {
    let mut app = live_app(3, &[(1, 40), (10, 60), (4242, 30)], 4242);
    let refused = |app: &mut App, expect: &str| {
        assert_eq!(key(app, KeyCode::Char('k')), (true, Action::None));
        assert!(app.ui.confirm.is_none(), "no prompt for: {expect}");
        assert!(status(app).contains(expect), "{:?} lacks {expect:?}", app.status);
    };
    refused(&mut app, "select a process first");
    select_pid(&mut app, "1");
    refused(&mut app, "refused: pid 1 (init)");
    select_pid(&mut app, "4242");
    refused(&mut app, "refused: 4242 is kwtop itself");
    app.ui.selected = Some(RowId::Idle);
    refused(&mut app, "not a process");
    key(&mut app, KeyCode::Char('g'));
    key(&mut app, KeyCode::Down);
    refused(&mut app, "g back to the process view");
    // A replay (the default options): k is off.
    let mut replay = app_with(3, &[(10, 60)]);
    select_pid(&mut replay, "10");
    refused(&mut replay, "k is off");
}

#[test]
fn a_process_gone_since_the_prompt_is_not_signalled() {
    let mut app = live_app(3, &[(10, 60), (20, 30)], 999);
    select_pid(&mut app, "20");
    key(&mut app, KeyCode::Char('k'));
    // pid 20 exits while the prompt is open.
    app.update(Msg::Sample(Box::new(sample(3, &[(10, 60)]))));
    assert_eq!(key(&mut app, KeyCode::Char('y')), (true, Action::None));
    assert_eq!(status(&app), "20 has already exited; nothing sent");
    // Its row stays (exited rows keep their energy), but k no longer offers to signal it.
    key(&mut app, KeyCode::Char('x'));
    select_pid(&mut app, "20");
    key(&mut app, KeyCode::Char('k'));
    assert!(app.ui.confirm.is_none());
    assert_eq!(status(&app), "20 has already exited");
}

#[test]
fn signal_errors_in_words() {
    let mut app = live_app(3, &[(10, 60)], 999);
    let mut report = |result| {
        app.update(Msg::Signaled {
            pid: 10,
            signal: Sig::Term,
            result,
        });
        status(&app).to_string()
    };
    assert_eq!(
        report(Err(SignalError::NotPermitted)),
        "not permitted: 10 belongs to another user (u)"
    );
    assert_eq!(report(Err(SignalError::Exited)), "10 has already exited");
    assert_eq!(
        report(Err(SignalError::Other("bad\u{1b}[2J".into()))),
        "SIGTERM to 10 failed: bad?"
    );
}

/// Ten-second samples for 400 s: pid 100 busy on gpu0, pids 200 and 300 holding gpu1 at 0 % SM
/// (idle holders after the default 5 minutes), pid 400 on the CPU only.
fn gpu_app() -> App {
    let mut app = live_app(0, &[], 999);
    for i in 0..41u64 {
        let gpu = |id: &str, uj: u64, holders| testing::gpu(id, "H100", uj, Some(700.0), holders);
        let procs = [(100, 500), (200, 50), (300, 50), (400, 200)].map(|(pid, per_step)| {
            testing::process(pid, 1, i * per_step)
                .cmdline(format!("p{pid}"))
                .user("u")
                .build()
        });
        let s = testing::sample_at(i as f64 * 10.0)
            .wall_origin_ms(1_000_000)
            .uptime_origin(100.0)
            .cpu(i * 1000, i * 1000)
            .procs(procs)
            .devices([
                testing::counter("cpu0", DeviceKind::Cpu, "package-0", i * 500_000_000),
                gpu(
                    "gpu0",
                    i * 3_000_000_000,
                    vec![testing::holder(100, 8 << 30, Some(90.0))],
                ),
                gpu(
                    "gpu1",
                    i * 700_000_000,
                    vec![
                        testing::holder(200, 4 << 30, Some(0.0)),
                        testing::holder(300, 2 << 30, Some(0.0)),
                    ],
                ),
            ])
            .build();
        app.update(Msg::Sample(Box::new(s)));
    }
    app
}

#[test]
fn i_jumps_to_the_next_idle_holder_and_wraps() {
    let mut app = gpu_app();
    let rows = app.rows();
    let holders: Vec<&str> = rows
        .iter()
        .filter(|r| r.idle_holder)
        .map(|r| r.pid.as_str())
        .collect();
    assert_eq!(holders.len(), 2, "{rows:#?}");
    let selected = |app: &App| {
        let rows = app.rows();
        app.selected_index(&rows).map(|i| rows[i].pid.clone())
    };
    key(&mut app, KeyCode::Char('i'));
    assert_eq!(selected(&app).as_deref(), Some(holders[0]));
    key(&mut app, KeyCode::Char('i'));
    assert_eq!(selected(&app).as_deref(), Some(holders[1]));
    key(&mut app, KeyCode::Char('i'));
    assert_eq!(selected(&app).as_deref(), Some(holders[0]), "wraps");
    // From a row below every holder it wraps to the first too.
    app.ui.selected = Some(RowId::Unattributed);
    key(&mut app, KeyCode::Char('i'));
    assert_eq!(selected(&app).as_deref(), Some(holders[0]));
    // The busy GPU process and the CPU one are never picked.
    assert!(!holders.contains(&"100") && !holders.contains(&"400"));
    // Filtered out: say so, and keep the selection.
    key(&mut app, KeyCode::Char('/'));
    key(&mut app, KeyCode::Char('p'));
    key(&mut app, KeyCode::Char('4'));
    key(&mut app, KeyCode::Enter);
    key(&mut app, KeyCode::Char('i'));
    assert!(status(&app).contains("none in the table"), "{:?}", app.status);
    // Grouped: no process rows to select.
    key(&mut app, KeyCode::Esc);
    key(&mut app, KeyCode::Char('t'));
    key(&mut app, KeyCode::Char('i'));
    assert!(
        status(&app).contains("g back to the process view"),
        "{:?}",
        app.status
    );
}

#[test]
fn i_says_when_there_is_no_idle_holder() {
    let mut app = live_app(3, &[(10, 60)], 999);
    select_pid(&mut app, "10");
    key(&mut app, KeyCode::Char('i'));
    assert!(status(&app).starts_with("no idle GPU holder"), "{:?}", app.status);
    assert_eq!(app.rows()[app.selected_index(&app.rows()).unwrap()].pid, "10");
}
