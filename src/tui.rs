//! The live monitor's terminal side: setup and restore, the event loop, the feed thread.
//!
//! The feed blocks (procfs, NVML; or a recording's pacing), so it runs on its own thread and hands
//! ticks over a bounded channel of one slot: live, when the UI is behind, the newer sample replaces
//! the pending one (samples carry cumulative counters, so skipping one loses no energy); a replay
//! waits instead, so no recorded sample is skipped. The event loop owns the session's pipeline (in
//! the [`App`]): each tick is accounted once and shown to the screen and the subscribers — the
//! metrics endpoint of `--serve`, the summary [`Checkpoint`]. Terminal input is read on another
//! thread. The loop `select!`s over ticks, input and signals (`crate::signals`) and redraws only
//! when something changed, at most `fps` times a second; [`Screen`] sends only what changed, in
//! one write per frame.
//! The terminal is restored on quit, Ctrl-C, SIGTERM, SIGHUP and panic, and the session summary
//! is written in every one of those cases: a panic in the UI loop or in the sample feed is caught,
//! the summary of what was accounted so far is saved, and the process exits with status 101.
//! Quitting when the summary cannot be written (full disk, unwritable dir) prints why and exits 1.

use std::io::{self, Write};
use std::os::fd::AsFd;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crossterm::event::{DisableMouseCapture, EnableMouseCapture};
use crossterm::style::{Attribute, SetAttribute};
use crossterm::terminal::{self, EnterAlternateScreen, LeaveAlternateScreen};
use crossterm::{cursor, execute};

mod event_loop;
mod screen;
mod signal;
mod stats;

pub use event_loop::{Checkpoint, CheckpointClock};
pub use screen::Screen;

use crate::app::{App, AppParams, Signals, TickCost, ViewOptions};
use crate::engine::Engine;
use crate::pipeline::{Feed, LiveFeed, Subscriber};
use crate::sources::{Sampler, SourceConfig};

/// A feed that can run on the feed thread.
pub type SendFeed = Box<dyn Feed + Send>;

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
    /// `--stats`: the footer shows what the last tick cost per stage.
    pub stats: bool,
    /// `[ui]`: redraws per second at most.
    pub ui: UiParams,
    /// Called on `e` and once on exit with the session's engine.
    pub on_export: Option<ExportHook>,
    /// Host shown in the header; `None` = this machine (a replay shows the recording's host).
    pub host: Option<String>,
    /// Write the summary this often while running; `None` = only on `e` and exit.
    pub checkpoint: Option<Duration>,
    /// More subscribers of the session's pipeline (the metrics endpoint of `--serve`), shown every
    /// accounted sample after the screen.
    pub subscribers: Vec<Box<dyn Subscriber>>,
    /// Whether `k` may signal the listed processes (off by default: replays list another time's pids).
    pub signals: Signals,
    /// The work meter's figures (`--progress-log`, `--work-metric`), shown in the header and the
    /// detail view; the meter itself is one of `subscribers`.
    pub work: Option<crate::workmeter::WorkBoard>,
}

/// Whether colours are allowed: not with `--no-color`, nor when `NO_COLOR` is set and not empty
/// (<https://no-color.org>).
pub fn color_enabled(no_color_flag: bool, no_color_env: Option<&std::ffi::OsStr>) -> bool {
    !no_color_flag && no_color_env.is_none_or(|v| v.is_empty())
}

/// Set when the terminal has been put into raw/alternate mode and not yet restored.
static TERMINAL_ACTIVE: AtomicBool = AtomicBool::new(false);

/// Put the terminal back: default attributes, cooked mode, main screen, cursor, no mouse
/// reporting. Idempotent and safe to call from the panic hook; errors are ignored (after SIGHUP
/// there may be no terminal).
pub fn restore_terminal() {
    if TERMINAL_ACTIVE.swap(false, Ordering::SeqCst) {
        let mut out = io::stdout();
        // The screen writer leaves the last frame's attributes set.
        let _ = execute!(
            out,
            SetAttribute(Attribute::Reset),
            DisableMouseCapture,
            LeaveAlternateScreen,
            cursor::Show
        );
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

/// Raw mode, alternate screen, mouse wheel, no cursor; the first [`Screen`] frame clears it.
fn setup_terminal() -> io::Result<TerminalGuard> {
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
    Ok(guard)
}

/// Write a frame's bytes to the terminal in one `write` (more only if the kernel takes less), past
/// `Stdout`'s line buffer, which would split it at the last newline.
fn write_frame(mut bytes: &[u8]) -> io::Result<()> {
    let out = io::stdout();
    while !bytes.is_empty() {
        match nix::unistd::write(out.as_fd(), bytes) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => bytes = &bytes[n..],
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
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
    let feed = LiveFeed::new(Sampler::from_config(sources), params.interval).sleep_between();
    run_with_feed(params, options, Box::new(feed), false)
}

/// Layouts ratatui keeps solved (see `run_with_feed`).
const LAYOUT_CACHE: std::num::NonZeroUsize = std::num::NonZeroUsize::new(64).unwrap();

/// Run the live monitor over `feed`, which runs on its own thread until the monitor ends (live
/// sensors, or a replayed recording). `lossless`: hand over every tick (a recording) instead of the
/// latest (live sensors).
pub fn run_with_feed(
    params: &AppParams,
    mut options: Options,
    feed: SendFeed,
    lossless: bool,
) -> Result<Engine, TuiError> {
    use std::io::IsTerminal;
    if !io::stdout().is_terminal() {
        return Err(TuiError::Runtime(
            "the live monitor needs a terminal on stdout; for scripts use `kwtop snapshot --json` or `kwtop record`"
                .into(),
        ));
    }
    // The loop's only I/O source is the signals' socket pair: 16 events a poll instead of the default 1,024
    // (12 KiB of buffer, issue 12).
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_io_events_per_tick(16)
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
    app.work = options.work.clone();
    app.cost = options.stats.then(TickCost::default);
    let guard =
        setup_terminal().map_err(|e| TuiError::Runtime(format!("cannot set up the terminal: {e}")))?;
    let mut screen = Screen::new();
    // ratatui keeps up to 500 solved layouts by default: one frame solves about ten, so 64 still
    // hit on every redraw, while the cache no longer fills towards 500 over hours as the table's
    // column widths and the terminal's size change.
    ratatui::layout::Layout::init_cache(LAYOUT_CACHE);
    // A panic unwinds to here (the panic hook has already restored the terminal and printed the
    // message): the ledger holds every interval accounted before it, so the summary is still saved.
    let caught = std::panic::catch_unwind(AssertUnwindSafe(|| {
        rt.block_on(event_loop::event_loop(
            &mut app,
            &mut screen,
            &mut options,
            feed,
            lossless,
        ))
    }));
    drop(screen);
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
    let saved = options
        .on_export
        .as_mut()
        .map(|hook| hook(app.engine(), &notices, ExportReason::Exit));
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
        Ok(Ok(())) => Ok(app.pipeline.engine),
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
}
