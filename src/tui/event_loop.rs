//! The monitor's loop: the feed and input threads, the signals that end it, redraws capped to a
//! frame rate, the periodic checkpoint, and what each message does.

use std::io::Stdout;
use std::ops::ControlFlow;
use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

use crossterm::event::{Event, MouseEventKind};
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use tokio::sync::mpsc;

use super::{ExportReason, Options, TEST_PANIC_ENV, TuiError, input_thread, terminal_gone};
use crate::app::{Action, App, Msg};
use crate::sample::Sample;

/// What the feed thread sends: a sample and the notices that came with it.
pub(super) type FeedItem = (Sample, Vec<String>);

/// The signals that end the monitor.
struct Signals {
    term: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> Result<Self, TuiError> {
        use tokio::signal::unix::{SignalKind, signal};
        let sig = |k| signal(k).map_err(|e| TuiError::Runtime(format!("cannot install signal handler: {e}")));
        Ok(Signals {
            term: sig(SignalKind::terminate())?,
            hup: sig(SignalKind::hangup())?,
            int: sig(SignalKind::interrupt())?,
        })
    }
}

/// Start the feed on its own thread. A feed that panics takes the monitor down with it (its panic
/// comes back on the second receiver, is re-raised in the loop and caught in `run_with_feed`),
/// rather than leaving a screen that no longer updates in a terminal the panic hook has already
/// restored.
fn spawn_feed<F>(feed: F) -> Result<(mpsc::Receiver<FeedItem>, FeedPanic), TuiError>
where
    F: FnOnce(mpsc::Sender<FeedItem>) + Send + 'static,
{
    let (sample_tx, sample_rx) = mpsc::channel::<FeedItem>(1);
    let (feed_panic_tx, feed_panic_rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("kwtop-sampler".into())
        .spawn(move || {
            if let Err(payload) = std::panic::catch_unwind(AssertUnwindSafe(|| feed(sample_tx))) {
                let _ = feed_panic_tx.send(payload);
            }
        })
        .map_err(|e| TuiError::Runtime(format!("cannot start the sampler: {e}")))?;
    Ok((sample_rx, feed_panic_rx))
}

/// Start the thread that reads the terminal's keys, mouse and resizes.
fn spawn_input() -> Result<mpsc::Receiver<Event>, TuiError> {
    let (input_tx, input_rx) = mpsc::channel::<Event>(64);
    std::thread::Builder::new()
        .name("kwtop-input".into())
        .spawn(move || input_thread(&input_tx))
        .map_err(|e| TuiError::Runtime(format!("cannot start the input reader: {e}")))?;
    Ok(input_rx)
}

/// Where the panic of a feed that panicked arrives.
type FeedPanic = tokio::sync::oneshot::Receiver<Box<dyn std::any::Any + Send>>;

/// When to draw: at most once a frame, and only when something changed.
struct Redraw {
    frame: Duration,
    dirty: bool,
    last_draw: Option<Instant>,
}

impl Redraw {
    /// When the next frame may be drawn.
    fn due(&self) -> Instant {
        self.last_draw.map_or(Instant::now(), |t| t + self.frame)
    }

    /// Draw if something changed and a frame has passed. Breaks when the terminal is gone.
    fn draw_if_due(
        &mut self,
        app: &mut App,
        term: &mut Terminal<CrosstermBackend<Stdout>>,
    ) -> Result<ControlFlow<()>, TuiError> {
        if !self.dirty || Instant::now() < self.due() {
            return Ok(ControlFlow::Continue(()));
        }
        let size = match term.size() {
            Ok(size) => size,
            Err(e) if terminal_gone(&e) => return Ok(ControlFlow::Break(())),
            Err(e) => return Err(TuiError::Runtime(format!("terminal: {e}"))),
        };
        app.page_rows = crate::ui::table_rows(size.into(), app.ledger().devices.len()).max(1);
        match term.draw(|f| crate::ui::render(app, f)) {
            Ok(_) => {}
            // Hung up (SSH link dropped) before its SIGHUP was handled: end as on SIGHUP.
            Err(e) if terminal_gone(&e) => return Ok(ControlFlow::Break(())),
            Err(e) => return Err(TuiError::Runtime(format!("cannot draw: {e}"))),
        }
        self.last_draw = Some(Instant::now());
        self.dirty = false;
        Ok(ControlFlow::Continue(()))
    }
}

/// The periodic checkpoint: a tokio interval whose first tick comes one period from now.
struct Checkpoint {
    tick: tokio::time::Interval,
    /// Whether there is a checkpoint to write at all.
    on: bool,
    /// Whether the last one failed (its message is shown once, and again after it recovered).
    failed: bool,
}

impl Checkpoint {
    fn new(options: &Options) -> Self {
        let period = options.checkpoint.unwrap_or(Duration::from_secs(3600));
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        Checkpoint {
            tick,
            on: options.checkpoint.is_some() && options.on_export.is_some(),
            failed: false,
        }
    }

    /// Write one. Returns whether the screen changed (a failure to show).
    fn write(&mut self, app: &mut App, options: &mut Options) -> bool {
        let Some(hook) = options.on_export.as_mut() else {
            return false;
        };
        // Silent when it works; a failure is shown once, and again after it recovered.
        match hook(&app.engine, &app.notices, ExportReason::Checkpoint) {
            Ok(_) => self.failed = false,
            Err(e) if !self.failed => {
                self.failed = true;
                app.update(Msg::Status(format!("checkpoint failed: {e}")));
                return true;
            }
            Err(_) => {}
        }
        false
    }
}

/// The message a terminal event means, if any. Breaks when the terminal is gone.
fn input_msg(ev: Option<Event>) -> ControlFlow<(), Option<Msg>> {
    ControlFlow::Continue(match ev {
        Some(Event::Key(k)) => Some(Msg::Key(k)),
        Some(Event::Mouse(m)) => match m.kind {
            MouseEventKind::ScrollDown => Some(Msg::Scroll(1)),
            MouseEventKind::ScrollUp => Some(Msg::Scroll(-1)),
            _ => None,
        },
        Some(Event::Resize(..)) => Some(Msg::Resize),
        Some(_) => None,
        // The terminal is gone.
        None => return ControlFlow::Break(()),
    })
}

/// Apply one message and do what it asks. Breaks on quit; `redraw.dirty` is set when the screen changed.
fn apply(app: &mut App, options: &mut Options, redraw: &mut Redraw, msg: Msg) -> ControlFlow<()> {
    let (d, action) = app.update(msg);
    redraw.dirty |= d;
    match action {
        Action::None => {}
        Action::Quit => return ControlFlow::Break(()),
        Action::Export => {
            if let Some(hook) = options.on_export.as_mut() {
                let status = match hook(&app.engine, &app.notices, ExportReason::Key) {
                    Ok(m) => m,
                    Err(e) => format!("export failed: {e}"),
                };
                app.update(Msg::Status(status));
                redraw.dirty = true;
            }
        }
    }
    ControlFlow::Continue(())
}

/// Run the monitor until quit, a signal, or the terminal is gone: draw, then wait for a sample,
/// a key, a signal, the next frame or a checkpoint.
pub(super) async fn event_loop<F>(
    app: &mut App,
    term: &mut Terminal<CrosstermBackend<Stdout>>,
    options: &mut Options,
    feed: F,
    test_panic_at: Option<Instant>,
) -> Result<(), TuiError>
where
    F: FnOnce(mpsc::Sender<FeedItem>) + Send + 'static,
{
    let mut signals = Signals::install()?;
    let (mut sample_rx, mut feed_panic_rx) = spawn_feed(feed)?;
    let mut feed_alive = true;
    let test_panic = async {
        match test_panic_at {
            Some(at) => tokio::time::sleep_until(at.into()).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(test_panic);
    let mut input_rx = spawn_input()?;

    let mut redraw = Redraw {
        frame: Duration::from_secs_f64(1.0 / options.ui.max_fps.clamp(0.5, 60.0)),
        dirty: true,
        last_draw: None,
    };
    let mut samples_open = true;
    let mut checkpoint = Checkpoint::new(options);
    loop {
        if redraw.draw_if_due(app, term)?.is_break() {
            return Ok(());
        }
        let wake = redraw.due();
        let dirty = redraw.dirty;
        let msg = tokio::select! {
            s = sample_rx.recv(), if samples_open => match s {
                Some((s, notices)) => {
                    let (d, _) = app.update(Msg::Notices(notices));
                    redraw.dirty |= d;
                    Some(Msg::Sample(Box::new(s)))
                }
                None => { samples_open = false; None }
            },
            ev = input_rx.recv() => match input_msg(ev) {
                ControlFlow::Continue(msg) => msg,
                ControlFlow::Break(()) => return Ok(()),
            },
            _ = signals.term.recv() => return Ok(()),
            _ = signals.hup.recv() => return Ok(()),
            _ = signals.int.recv() => return Ok(()),
            () = tokio::time::sleep_until(wake.into()), if dirty => None,
            p = &mut feed_panic_rx, if feed_alive => match p {
                Ok(payload) => std::panic::resume_unwind(payload),
                Err(_) => { feed_alive = false; None }
            },
            _ = checkpoint.tick.tick(), if checkpoint.on => {
                redraw.dirty |= checkpoint.write(app, options);
                None
            },
            () = &mut test_panic => panic!("{TEST_PANIC_ENV}: injected panic in the UI loop (test hook)"),
        };
        if let Some(msg) = msg
            && apply(app, options, &mut redraw, msg).is_break()
        {
            return Ok(());
        }
    }
}
