//! The live monitor's terminal side: setup and restore, the event loop, the sampler thread.
//!
//! The sampler blocks (procfs, NVML), so it runs on its own thread and hands samples over a
//! bounded channel of one slot: when the UI is behind, the newer sample replaces the pending one
//! (samples carry cumulative counters, so skipping one loses no energy). Terminal input is read
//! on another thread. The loop `select!`s over samples, input and signals and redraws only when
//! something changed, at most `fps` times a second; ratatui sends only the cells that changed.
//! The terminal is restored on quit, Ctrl-C, SIGTERM, SIGHUP and panic, and the session summary
//! is written in every one of those cases: a panic in the UI loop or in the sample feed is caught,
//! the summary of what was accounted so far is saved, and the process exits with status 101.
//! Quitting when the summary cannot be written (full disk, unwritable dir) prints why and exits 1.

use std::io::{self, Stdout, Write};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crossterm::event::{self, DisableMouseCapture, EnableMouseCapture, Event, MouseEventKind};
use crossterm::terminal::{self, EnterAlternateScreen, LeaveAlternateScreen};
use crossterm::{cursor, execute};
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use tokio::sync::mpsc;

mod signal;

use crate::app::{Action, App, AppParams, Msg, Signals, ViewOptions};
use crate::engine::Engine;
use crate::sample::Sample;
use crate::sources::{Sampler, SourceConfig};

/// The sending end of the sample feed: `(sample, notices)`, one slot, latest wins.
type SampleTx = mpsc::Sender<(Sample, Vec<String>)>;

/// Why an export hook is called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportReason {
    /// The user pressed `e`.
    Key,
    /// The monitor is exiting (quit, Ctrl-C, SIGTERM, SIGHUP).
    Exit,
    /// The periodic checkpoint (`[export] checkpoint`): a `kill -9` or power loss then loses at most
    /// one period of the session.
    Checkpoint,
}

/// Writes the session summary; returns a line for the status bar (e.g. the file written).
/// Arguments: the session engine, the notices shown so far, and why it is called.
pub type ExportHook = Box<dyn FnMut(&Engine, &[String], ExportReason) -> Result<String, String>>;

/// How the screen is drawn (`[ui]` in the config).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct UiParams {
    /// Redraws per second at most (input and new samples trigger them).
    pub max_fps: f64,
}

impl Default for UiParams {
    fn default() -> Self {
        UiParams { max_fps: 10.0 }
    }
}

/// How the live monitor runs.
#[derive(Default)]
pub struct Options {
    /// `--no-color` (the `NO_COLOR` environment variable is honoured as well).
    pub no_color: bool,
    /// `--ascii`: no Unicode on screen.
    pub ascii: bool,
    /// `[ui]`: redraws per second at most.
    pub ui: UiParams,
    /// Called on `e` and once on exit with the session's engine.
    pub on_export: Option<ExportHook>,
    /// Host shown in the header; `None` = this machine (a replay shows the recording's host).
    pub host: Option<String>,
    /// Write the summary this often while running; `None` = only on `e` and exit.
    pub checkpoint: Option<Duration>,
    /// Whether `k` may signal the listed processes (off by default: replays list another time's pids).
    pub signals: Signals,
}

/// Whether colours are allowed: not with `--no-color`, nor when `NO_COLOR` is set and not empty
/// (<https://no-color.org>).
pub fn color_enabled(no_color_flag: bool, no_color_env: Option<&std::ffi::OsStr>) -> bool {
    !no_color_flag && no_color_env.is_none_or(|v| v.is_empty())
}

/// Test hook, not a feature: `KWTOP_TEST_PANIC_AFTER_MS=N` makes the live monitor panic N ms after
/// it starts (in the UI loop; `sampler:N` panics in the sample feed thread instead), so end-to-end
/// tests can check that a crash restores the terminal and still writes the session summary. Read
/// once per run; when unset the loop only polls a future that never wakes and the feed is not wrapped.
pub const TEST_PANIC_ENV: &str = "KWTOP_TEST_PANIC_AFTER_MS";

/// Where [`TEST_PANIC_ENV`] asks for a panic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TestPanic {
    Ui(Duration),
    Feed(Duration),
}

fn parse_test_panic(v: &str) -> Option<TestPanic> {
    let v = v.trim();
    match v.strip_prefix("sampler:") {
        Some(ms) => ms
            .trim()
            .parse()
            .ok()
            .map(|ms| TestPanic::Feed(Duration::from_millis(ms))),
        None => v.parse().ok().map(|ms| TestPanic::Ui(Duration::from_millis(ms))),
    }
}

/// Set when the terminal has been put into raw/alternate mode and not yet restored.
static TERMINAL_ACTIVE: AtomicBool = AtomicBool::new(false);

/// Put the terminal back: cooked mode, main screen, cursor, no mouse reporting. Idempotent and
/// safe to call from the panic hook; errors are ignored (after SIGHUP there may be no terminal).
pub fn restore_terminal() {
    if TERMINAL_ACTIVE.swap(false, Ordering::SeqCst) {
        let mut out = io::stdout();
        let _ = execute!(out, DisableMouseCapture, LeaveAlternateScreen, cursor::Show);
        let _ = terminal::disable_raw_mode();
        let _ = out.flush();
    }
}

struct TerminalGuard;

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore_terminal();
    }
}

fn setup_terminal() -> io::Result<(TerminalGuard, Terminal<CrosstermBackend<Stdout>>)> {
    let prev = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        restore_terminal();
        prev(info);
    }));
    terminal::enable_raw_mode()?;
    TERMINAL_ACTIVE.store(true, Ordering::SeqCst);
    let guard = TerminalGuard;
    let mut out = io::stdout();
    execute!(out, EnterAlternateScreen, EnableMouseCapture, cursor::Hide)?;
    let mut term = Terminal::new(CrosstermBackend::new(out))?;
    term.clear()?;
    Ok((guard, term))
}

/// How the live monitor can end other than normally; the command line maps these to exit statuses.
#[derive(Debug, thiserror::Error)]
pub enum TuiError {
    /// It could not start or went wrong (the message says what).
    #[error("{0}")]
    Runtime(String),
    /// End with this exit status; the reason was already shown (101: a panic, 1: summary not saved).
    #[error("exit status {0}")]
    Exit(i32),
}

/// Run the live monitor on this machine's sensors (`sources`, sampled every `params.interval`)
/// until the user quits or a signal arrives. Returns the session's engine (the summary export also
/// gets it through `on_export`).
pub fn run(sources: &SourceConfig, params: &AppParams, options: Options) -> Result<Engine, TuiError> {
    let sources = sources.clone();
    let interval = params.interval;
    let feed = move |tx: mpsc::Sender<(Sample, Vec<String>)>| sampler_thread(&sources, interval, &tx);
    run_with_feed(params, options, feed)
}

/// Run the live monitor over samples from `feed`, which runs on its own thread and sends
/// `(sample, notices)` until the receiver is gone (live sensors, or a replayed recording).
pub fn run_with_feed<F>(params: &AppParams, mut options: Options, feed: F) -> Result<Engine, TuiError>
where
    F: FnOnce(mpsc::Sender<(Sample, Vec<String>)>) + Send + 'static,
{
    use std::io::IsTerminal;
    if !io::stdout().is_terminal() {
        return Err(TuiError::Runtime(
            "the live monitor needs a terminal on stdout; for scripts use `kwtop snapshot --json` or `kwtop record`"
                .into(),
        ));
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| TuiError::Runtime(format!("cannot start the event loop: {e}")))?;
    let opts = ViewOptions {
        host: options.host.clone().unwrap_or_else(crate::sources::host_name),
        color: color_enabled(options.no_color, std::env::var_os("NO_COLOR").as_deref()),
        ascii: options.ascii,
        can_export: options.on_export.is_some(),
        signals: options.signals.clone(),
    };
    let mut app = App::new(params, opts);
    let test_panic = std::env::var(TEST_PANIC_ENV)
        .ok()
        .as_deref()
        .and_then(parse_test_panic);
    let feed: Box<dyn FnOnce(SampleTx) + Send> = match test_panic {
        Some(TestPanic::Feed(after)) => Box::new(move |tx| panicking_feed(feed, &tx, after)),
        _ => Box::new(feed),
    };
    let ui_panic_at = match test_panic {
        Some(TestPanic::Ui(after)) => Some(Instant::now() + after),
        _ => None,
    };
    let (guard, mut term) =
        setup_terminal().map_err(|e| TuiError::Runtime(format!("cannot set up the terminal: {e}")))?;
    // A panic unwinds to here (the panic hook has already restored the terminal and printed the
    // message): the ledger holds every interval accounted before it, so the summary is still saved.
    let caught = std::panic::catch_unwind(AssertUnwindSafe(|| {
        rt.block_on(event_loop(&mut app, &mut term, &mut options, feed, ui_panic_at))
    }));
    // ratatui's `Terminal` shows the cursor when dropped and `eprintln!`s if that fails, which
    // panics when stderr is the same hung-up terminal (a dropped SSH link): after a failed
    // show_cursor the terminal is gone, so forget the struct (a few KiB, once) instead.
    if term.show_cursor().is_ok() {
        drop(term);
    } else {
        std::mem::forget(term);
    }
    drop(guard);
    restore_terminal();
    let panicked = caught.is_err();
    let mut notices = app.notices.clone();
    if panicked {
        notices.push(
            "the live monitor stopped on an internal error (panic); totals cover the intervals accounted before it"
                .into(),
        );
    }
    let saved = match options.on_export.as_mut() {
        Some(hook) => Some(hook(&app.engine, &notices, ExportReason::Exit)),
        None => None,
    };
    match &saved {
        Some(Ok(msg)) if !msg.is_empty() => note(msg),
        Some(Err(e)) => note(&format!("session summary not written: {e}")),
        _ => {}
    }
    match caught {
        Err(_) => {
            note("internal error: the live monitor panicked (message above); please report it");
            Err(TuiError::Exit(101))
        }
        Ok(Err(e)) => Err(e),
        Ok(Ok(())) if matches!(saved, Some(Err(_))) => Err(TuiError::Exit(1)),
        Ok(Ok(())) => Ok(app.engine),
    }
}

/// Whether a terminal write failed because the terminal was hung up (EIO, ENXIO) or closed.
fn terminal_gone(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EIO | libc::ENXIO | libc::EBADF))
        || e.kind() == io::ErrorKind::BrokenPipe
}

/// A line on stderr that cannot fail: after SIGHUP the terminal may be gone (EIO), and
/// `eprintln!` would panic there.
fn note(msg: &str) {
    let _ = writeln!(io::stderr(), "kwtop: {msg}");
}

/// Test hook ([`TEST_PANIC_ENV`] `sampler:N`): run `feed` behind a forwarding thread that panics
/// after `after`, as a sampler bug would.
fn panicking_feed<F>(feed: F, tx: &mpsc::Sender<(Sample, Vec<String>)>, after: Duration)
where
    F: FnOnce(mpsc::Sender<(Sample, Vec<String>)>) + Send + 'static,
{
    let (inner_tx, mut inner_rx) = mpsc::channel(1);
    std::thread::spawn(move || feed(inner_tx));
    let deadline = Instant::now() + after;
    while let Some(item) = inner_rx.blocking_recv() {
        assert!(
            Instant::now() < deadline,
            "{TEST_PANIC_ENV}: injected panic in the sample feed (test hook)"
        );
        if let Err(mpsc::error::TrySendError::Closed(_)) = tx.try_send(item) {
            return;
        }
    }
}

async fn event_loop<F>(
    app: &mut App,
    term: &mut Terminal<CrosstermBackend<Stdout>>,
    options: &mut Options,
    feed: F,
    test_panic_at: Option<Instant>,
) -> Result<(), TuiError>
where
    F: FnOnce(mpsc::Sender<(Sample, Vec<String>)>) + Send + 'static,
{
    use tokio::signal::unix::{SignalKind, signal};
    let sig = |k| signal(k).map_err(|e| TuiError::Runtime(format!("cannot install signal handler: {e}")));
    let mut sigterm = sig(SignalKind::terminate())?;
    let mut sighup = sig(SignalKind::hangup())?;
    let mut sigint = sig(SignalKind::interrupt())?;

    let (sample_tx, mut sample_rx) = mpsc::channel::<(Sample, Vec<String>)>(1);
    // A feed that panics takes the monitor down with it (its panic is re-raised here and caught
    // in `run_with_feed`), rather than leaving a screen that no longer updates in a terminal the
    // panic hook has already restored.
    let (feed_panic_tx, mut feed_panic_rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("kwtop-sampler".into())
        .spawn(move || {
            if let Err(payload) = std::panic::catch_unwind(AssertUnwindSafe(|| feed(sample_tx))) {
                let _ = feed_panic_tx.send(payload);
            }
        })
        .map_err(|e| TuiError::Runtime(format!("cannot start the sampler: {e}")))?;
    let mut feed_alive = true;
    let test_panic = async {
        match test_panic_at {
            Some(at) => tokio::time::sleep_until(at.into()).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(test_panic);
    let (input_tx, mut input_rx) = mpsc::channel::<Event>(64);
    std::thread::Builder::new()
        .name("kwtop-input".into())
        .spawn(move || input_thread(&input_tx))
        .map_err(|e| TuiError::Runtime(format!("cannot start the input reader: {e}")))?;

    let frame = Duration::from_secs_f64(1.0 / options.ui.max_fps.clamp(0.5, 60.0));
    let mut dirty = true;
    let mut last_draw: Option<Instant> = None;
    let mut samples_open = true;
    // The first tick of a tokio interval fires at once: start one period from now.
    let period = options.checkpoint.unwrap_or(Duration::from_secs(3600));
    let mut checkpoint = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    checkpoint.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let checkpoints = options.checkpoint.is_some() && options.on_export.is_some();
    let mut checkpoint_failed = false;
    loop {
        if dirty {
            let due = last_draw.map_or(Instant::now(), |t| t + frame);
            if Instant::now() >= due {
                let size = match term.size() {
                    Ok(size) => size,
                    Err(e) if terminal_gone(&e) => return Ok(()),
                    Err(e) => return Err(TuiError::Runtime(format!("terminal: {e}"))),
                };
                app.page_rows = crate::ui::table_rows(size.into(), app.ledger().devices.len()).max(1);
                match term.draw(|f| crate::ui::render(app, f)) {
                    Ok(_) => {}
                    // Hung up (SSH link dropped) before its SIGHUP was handled: end as on SIGHUP.
                    Err(e) if terminal_gone(&e) => return Ok(()),
                    Err(e) => return Err(TuiError::Runtime(format!("cannot draw: {e}"))),
                }
                last_draw = Some(Instant::now());
                dirty = false;
            }
        }
        let wake = last_draw.map_or(Instant::now(), |t| t + frame);
        let msg = tokio::select! {
            s = sample_rx.recv(), if samples_open => match s {
                Some((s, notices)) => {
                    let (d, _) = app.update(Msg::Notices(notices));
                    dirty |= d;
                    Some(Msg::Sample(Box::new(s)))
                }
                None => { samples_open = false; None }
            },
            ev = input_rx.recv() => match ev {
                Some(Event::Key(k)) => Some(Msg::Key(k)),
                Some(Event::Mouse(m)) => match m.kind {
                    MouseEventKind::ScrollDown => Some(Msg::Scroll(1)),
                    MouseEventKind::ScrollUp => Some(Msg::Scroll(-1)),
                    _ => None,
                },
                Some(Event::Resize(..)) => Some(Msg::Resize),
                Some(_) => None,
                // The terminal is gone.
                None => return Ok(()),
            },
            _ = sigterm.recv() => return Ok(()),
            _ = sighup.recv() => return Ok(()),
            _ = sigint.recv() => return Ok(()),
            () = tokio::time::sleep_until(wake.into()), if dirty => None,
            p = &mut feed_panic_rx, if feed_alive => match p {
                Ok(payload) => std::panic::resume_unwind(payload),
                Err(_) => { feed_alive = false; None }
            },
            _ = checkpoint.tick(), if checkpoints => {
                if let Some(hook) = options.on_export.as_mut() {
                    // Silent when it works; a failure is shown once, and again after it recovered.
                    match hook(&app.engine, &app.notices, ExportReason::Checkpoint) {
                        Ok(_) => checkpoint_failed = false,
                        Err(e) if !checkpoint_failed => {
                            checkpoint_failed = true;
                            app.update(Msg::Status(format!("checkpoint failed: {e}")));
                            dirty = true;
                        }
                        Err(_) => {}
                    }
                }
                None
            },
            () = &mut test_panic => panic!("{TEST_PANIC_ENV}: injected panic in the UI loop (test hook)"),
        };
        if let Some(msg) = msg {
            let (d, action) = app.update(msg);
            dirty |= d;
            match action {
                Action::None => {}
                Action::Quit => return Ok(()),
                Action::Signal { pid, signal } => {
                    let result = signal::send(pid, signal);
                    app.update(Msg::Signaled { pid, signal, result });
                    dirty = true;
                }
                Action::Export => {
                    if let Some(hook) = options.on_export.as_mut() {
                        let status = match hook(&app.engine, &app.notices, ExportReason::Key) {
                            Ok(m) => m,
                            Err(e) => format!("export failed: {e}"),
                        };
                        app.update(Msg::Status(status));
                        dirty = true;
                    }
                }
            }
        }
    }
}

/// Sample on a fixed cadence until the receiver is gone. Latest wins: a sample the UI has not
/// taken yet is replaced by the newer one, and their notices are kept.
fn sampler_thread(
    sources: &crate::sources::SourceConfig,
    interval: Duration,
    tx: &mpsc::Sender<(Sample, Vec<String>)>,
) {
    let mut sampler = Sampler::from_config(sources);
    let start = Instant::now();
    let mut pending_notices: Vec<String> = Vec::new();
    let mut n: u32 = 0;
    loop {
        let s = sampler.sample();
        pending_notices.extend(sampler.take_notices());
        match tx.try_send((s, std::mem::take(&mut pending_notices))) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full((_, notes))) => pending_notices = notes,
            Err(mpsc::error::TrySendError::Closed(_)) => return,
        }
        n = n.saturating_add(1);
        let next = start + interval * n;
        let now = Instant::now();
        if next > now {
            sampler.sleep_until(next);
        } else {
            // Fell behind (a slow NVML call): skip the missed ticks.
            n = u32::try_from((now - start).as_nanos() / interval.as_nanos().max(1)).unwrap_or(u32::MAX);
        }
        if tx.is_closed() {
            return;
        }
    }
}

fn input_thread(tx: &mpsc::Sender<Event>) {
    loop {
        match event::read() {
            Ok(ev) => {
                if let Event::Mouse(m) = &ev
                    && !matches!(m.kind, MouseEventKind::ScrollDown | MouseEventKind::ScrollUp)
                {
                    continue;
                }
                if tx.blocking_send(ev).is_err() {
                    return;
                }
            }
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_color_rules() {
        assert!(color_enabled(false, None));
        assert!(!color_enabled(true, None));
        assert!(!color_enabled(false, Some(std::ffi::OsStr::new("1"))));
        assert!(color_enabled(false, Some(std::ffi::OsStr::new(""))));
    }

    #[test]
    fn test_panic_hook_values() {
        assert_eq!(
            parse_test_panic("250"),
            Some(TestPanic::Ui(Duration::from_millis(250)))
        );
        assert_eq!(
            parse_test_panic("sampler:40"),
            Some(TestPanic::Feed(Duration::from_millis(40)))
        );
        assert_eq!(parse_test_panic(""), None);
        assert_eq!(parse_test_panic("soon"), None);
    }
}
