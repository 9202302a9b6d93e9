//! The live monitor's event loop and its threads: the feed thread (sensors or a recording), the
//! input thread (crossterm), the periodic checkpoint, and what each message and action does.

use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

use crossterm::event::{self, Event, MouseEventKind};
use ratatui::layout::Rect;
use tokio::sync::mpsc;

use super::{ExportHook, ExportReason, Options, Screen, SendFeed, TuiError, terminal_gone, write_frame};
use crate::app::{Action, App, Msg};
use crate::pipeline::{Feed, Frame, Subscriber, Tick};

/// The periodic summary (`[export] checkpoint`) as a subscriber of the pipeline: written when the
/// samples' own clock has advanced a period since the last one, so a `kill -9` or power loss loses
/// at most one period. Silent when it works; a failure is reported once, and again after it
/// recovered.
#[derive(Debug, Clone)]
pub struct CheckpointClock {
    period_s: f64,
    last_s: Option<f64>,
    failed: bool,
}

impl CheckpointClock {
    pub fn new(period: Duration) -> Self {
        CheckpointClock {
            period_s: period.as_secs_f64().max(1e-3),
            last_s: None,
            failed: false,
        }
    }

    /// Whether a checkpoint is due at `mono_s` (the first sample starts the clock).
    fn due(&mut self, mono_s: f64) -> bool {
        let last = *self.last_s.get_or_insert(mono_s);
        if mono_s - last >= self.period_s {
            self.last_s = Some(mono_s);
            return true;
        }
        false
    }
}

/// A [`CheckpointClock`] with the export hook it calls, for one push.
pub struct Checkpoint<'a> {
    pub clock: &'a mut CheckpointClock,
    pub hook: &'a mut ExportHook,
}

impl Subscriber for Checkpoint<'_> {
    fn frame(&mut self, frame: &Frame<'_>) -> Result<(), String> {
        let Some(sample) = frame.sample() else {
            return Ok(());
        };
        if !self.clock.due(sample.mono_s) {
            return Ok(());
        }
        match (self.hook)(frame.engine, frame.session_notices, ExportReason::Checkpoint) {
            Ok(_) => {
                self.clock.failed = false;
                Ok(())
            }
            Err(e) if !self.clock.failed => {
                self.clock.failed = true;
                Err(format!("checkpoint failed: {e}"))
            }
            Err(_) => Ok(()),
        }
    }
}

/// The event loop: ticks from the feed thread go through the session's pipeline (the screen,
/// then the subscribers), keys and mouse wheel from the input thread go to the app, signals end it;
/// the screen is redrawn only when something changed, at most `max_fps` times a second.
pub(super) async fn event_loop(
    app: &mut App,
    screen: &mut Screen,
    options: &mut Options,
    feed: SendFeed,
    lossless: bool,
) -> Result<(), TuiError> {
    let stopped = crate::signals::stopped().map_err(TuiError::Runtime)?;
    tokio::pin!(stopped);
    super::stats::enable(app.cost.is_some());
    // Start-up is over: the pages of code and data only it ran go (issue 12), before the feed and
    // input threads start (it gives nothing back beside another thread: with `--serve` or
    // `--progress-log`, say). Failing only costs memory, so it is not reported.
    let _ = crate::sources::resident::release_startup_pages();
    let (mut tick_rx, mut feed_panic_rx) = spawn_feed(feed, lossless)?;
    let mut feed_alive = true;
    let mut input_rx = spawn_input()?;

    let frame = Duration::from_secs_f64(1.0 / options.ui.max_fps.clamp(0.5, 60.0));
    let mut dirty = true;
    let mut last_draw: Option<Instant> = None;
    let mut samples_open = true;
    let mut checkpoint = options
        .checkpoint
        .filter(|_| options.on_export.is_some())
        .map(CheckpointClock::new);
    loop {
        // `due` before `now`: never drawn yet means due at once.
        let due = last_draw.map_or_else(Instant::now, |t| t + frame);
        if dirty && Instant::now() >= due {
            let cpu = super::stats::now();
            if !redraw(app, screen)? {
                // Hung up (SSH link dropped) before its SIGHUP was handled: end as on SIGHUP.
                return Ok(());
            }
            super::stats::drew(app, cpu);
            last_draw = Some(Instant::now());
            dirty = false;
        }
        let wake = last_draw.map_or(Instant::now(), |t| t + frame);
        let msg = tokio::select! {
            t = tick_rx.recv(), if samples_open => match t {
                Some(tick) => {
                    let cpu = super::stats::now();
                    dirty |= account(app, options, checkpoint.as_mut(), tick);
                    super::stats::accounted(app, cpu);
                    None
                }
                None => { samples_open = false; None }
            },
            ev = input_rx.recv() => match ev {
                Some(ev) => input_msg(ev),
                // The terminal is gone.
                None => return Ok(()),
            },
            () = &mut stopped => return Ok(()),
            () = tokio::time::sleep_until(wake.into()), if dirty => None,
            p = &mut feed_panic_rx, if feed_alive => match p {
                Ok(payload) => std::panic::resume_unwind(payload),
                Err(_) => { feed_alive = false; None }
            },
        };
        if let Some(msg) = msg {
            if matches!(msg, Msg::Resize) {
                // Whatever the terminal made of the old screen: clear and write everything.
                screen.invalidate();
            }
            let (d, action) = app.update(msg);
            dirty |= d;
            match apply(app, options, action) {
                Step::Quit => return Ok(()),
                Step::Redraw => dirty = true,
                Step::Same => {}
            }
        }
    }
}

/// What the loop does after an action.
enum Step {
    Same,
    Redraw,
    Quit,
}

/// Carry out what the app asked for: quit, export the summary, send a signal.
fn apply(app: &mut App, options: &mut Options, action: Action) -> Step {
    match action {
        Action::None => Step::Same,
        Action::Quit => Step::Quit,
        Action::Signal { pid, signal } => {
            let result = super::signal::send(pid, signal);
            app.update(Msg::Signaled { pid, signal, result });
            Step::Redraw
        }
        Action::Export => {
            let Some(hook) = options.on_export.as_mut() else {
                return Step::Same;
            };
            let status = match hook(app.engine(), &app.notices, ExportReason::Key) {
                Ok(m) => m,
                Err(e) => format!("export failed: {e}"),
            };
            app.update(Msg::Status(status));
            Step::Redraw
        }
    }
}

/// Account one tick through the app's pipeline with the extra subscribers and the checkpoint.
/// Returns whether the screen changed.
fn account(
    app: &mut App,
    options: &mut Options,
    checkpoint: Option<&mut CheckpointClock>,
    tick: Tick,
) -> bool {
    let mut subs: Vec<&mut dyn Subscriber> = options
        .subscribers
        .iter_mut()
        .map(|b| b.as_mut() as &mut dyn Subscriber)
        .collect();
    let mut cp = match (checkpoint, options.on_export.as_mut()) {
        (Some(clock), Some(hook)) => Some(Checkpoint { clock, hook }),
        _ => None,
    };
    if let Some(cp) = cp.as_mut() {
        subs.push(cp);
    }
    app.accept(tick, &mut subs)
}

/// Draw the screen. `Ok(false)`: the terminal is gone (hung up).
fn redraw(app: &mut App, screen: &mut Screen) -> Result<bool, TuiError> {
    let (w, h) = match crossterm::terminal::size() {
        Ok(size) => size,
        Err(e) if terminal_gone(&e) => return Ok(false),
        Err(e) => return Err(TuiError::Runtime(format!("terminal: {e}"))),
    };
    let area = Rect::new(0, 0, w, h);
    app.page_rows = crate::ui::table_rows(area, app.ledger().devices.len()).max(1);
    let app = &*app;
    match write_frame(screen.frame(w, h, |buf| crate::ui::draw(app, area, buf))) {
        Ok(_) => Ok(true),
        Err(e) if terminal_gone(&e) => Ok(false),
        Err(e) => Err(TuiError::Runtime(format!("cannot draw: {e}"))),
    }
}

/// The message for one terminal event, if any.
fn input_msg(ev: Event) -> Option<Msg> {
    match ev {
        Event::Key(k) => Some(Msg::Key(k)),
        Event::Mouse(m) => match m.kind {
            MouseEventKind::ScrollDown => Some(Msg::Scroll(1)),
            MouseEventKind::ScrollUp => Some(Msg::Scroll(-1)),
            _ => None,
        },
        Event::Resize(..) => Some(Msg::Resize),
        _ => None,
    }
}

type FeedPanic = tokio::sync::oneshot::Receiver<Box<dyn std::any::Any + Send>>;

/// Start the feed thread. A feed that panics takes the monitor down with it (its panic is
/// re-raised in the loop and caught in `run_with_feed`), rather than leaving a screen that no
/// longer updates in a terminal the panic hook has already restored.
fn spawn_feed(mut feed: SendFeed, lossless: bool) -> Result<(mpsc::Receiver<Tick>, FeedPanic), TuiError> {
    let (tick_tx, tick_rx) = mpsc::channel::<Tick>(1);
    let (feed_panic_tx, feed_panic_rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("kwtop-feed".into())
        .spawn(move || {
            let run = AssertUnwindSafe(|| feed_thread(feed.as_mut(), &tick_tx, lossless));
            if let Err(payload) = std::panic::catch_unwind(run) {
                let _ = feed_panic_tx.send(payload);
            }
        })
        .map_err(|e| TuiError::Runtime(format!("cannot start the sampler: {e}")))?;
    Ok((tick_rx, feed_panic_rx))
}

/// Start the input thread (crossterm's blocking reader).
fn spawn_input() -> Result<mpsc::Receiver<Event>, TuiError> {
    let (input_tx, input_rx) = mpsc::channel::<Event>(64);
    std::thread::Builder::new()
        .name("kwtop-input".into())
        .spawn(move || input_thread(&input_tx))
        .map_err(|e| TuiError::Runtime(format!("cannot start the input reader: {e}")))?;
    Ok(input_rx)
}

/// Run `feed` until it ends or the event loop is gone. Live (`lossless` false), latest wins: a tick
/// the UI has not taken yet is replaced by the newer one, and their notices are kept. A replay waits
/// for the UI instead.
fn feed_thread(feed: &mut (dyn Feed + Send), tx: &mpsc::Sender<Tick>, lossless: bool) {
    let mut pending: Vec<String> = Vec::new();
    let mut cpu = super::stats::now();
    while let Some(mut tick) = feed.next(&|| tx.is_closed()) {
        cpu = super::stats::read_done(cpu);
        if lossless {
            if tx.blocking_send(tick).is_err() {
                return;
            }
            continue;
        }
        if !pending.is_empty() {
            pending.append(&mut tick.notices);
            tick.notices = std::mem::take(&mut pending);
        }
        match tx.try_send(tick) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(t)) => pending = t.notices,
            Err(mpsc::error::TrySendError::Closed(_)) => return,
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
