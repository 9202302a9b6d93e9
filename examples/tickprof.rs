//! Cost of the live monitor's tick on this machine, per stage, without a terminal: `read` (the
//! sensors and `/proc`: `Sampler::sample`), `account` (the pipeline: attribution, ledger, the
//! screen's derived view) and `draw` (the screen rendered at 120×40 and diffed by the live
//! monitor's `Screen`, its escape sequences written to memory, as the terminal would get them).
//! Each stage is timed in this thread's CPU time; run it under `valgrind --tool=callgrind` for
//! instruction counts, which do not depend on what else the machine is doing.
//!
//! `cargo run --release --example tickprof -- [TICKS] [INTERVAL_MS]` (defaults 30 and 100): the
//! first sample reads every process's static facts and is reported on its own.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use kwtop::app::{App, AppParams, ViewOptions};
use kwtop::pipeline::{Feed, LiveFeed, Tick};
use kwtop::sources::{Sampler, SourceConfig};
use kwtop::tui::Screen;
use ratatui::layout::Rect;

const AREA: Rect = Rect::new(0, 0, 120, 40);

/// CPU seconds this thread has run.
fn thread_cpu_s() -> f64 {
    use nix::time::{ClockId, clock_gettime};
    // The thread's run time to the nanosecond (getrusage would lag by up to a scheduler tick).
    clock_gettime(ClockId::CLOCK_THREAD_CPUTIME_ID)
        .map_or(0.0, |t| t.tv_sec() as f64 + t.tv_nsec() as f64 * 1e-9)
}

// One function per stage, never inlined, so that callgrind's inclusive costs split the tick
// (`callgrind_annotate --inclusive=yes`: `tickprof::read`, `account`, `draw`, and `first_*` for
// the first tick, which reads every process's static facts).
#[inline(never)]
fn first_read(feed: &mut LiveFeed) -> Tick {
    read(feed)
}
#[inline(never)]
fn read(feed: &mut LiveFeed) -> Tick {
    feed.next(&|| false).expect("live feed")
}
#[inline(never)]
fn first_account(app: &mut App, tick: Tick) {
    account(app, tick);
}
#[inline(never)]
fn account(app: &mut App, tick: Tick) {
    app.accept(tick, &mut []);
}
/// Returns the bytes the terminal would get.
#[inline(never)]
fn first_draw(screen: &mut Screen, app: &App) -> usize {
    draw(screen, app)
}
#[inline(never)]
fn draw(screen: &mut Screen, app: &App) -> usize {
    let bytes = screen.frame(AREA.width, AREA.height, |buf| kwtop::ui::draw(app, AREA, buf));
    std::hint::black_box(bytes).len()
}

fn main() {
    let mut args = std::env::args().skip(1);
    let ticks: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(30);
    let interval_ms: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(100);
    let sources = SourceConfig {
        nvml: false,
        ..kwtop::config::Settings::default().sources
    };
    let params = AppParams {
        interval: Duration::from_millis(interval_ms),
        ..AppParams::default()
    };
    let mut feed = LiveFeed::new(Sampler::from_config(&sources), params.interval);
    let mut app = App::new(&params, ViewOptions::default());
    let mut screen = Screen::new();
    let mut sums = [0.0f64; 3];
    let mut bytes = 0usize;
    let mut n_procs = 0usize;
    for i in 0..=ticks {
        let t0 = thread_cpu_s();
        let tick = if i == 0 {
            first_read(&mut feed)
        } else {
            read(&mut feed)
        };
        let t1 = thread_cpu_s();
        n_procs = tick.sample.processes.len();
        if i == 0 {
            first_account(&mut app, tick);
        } else {
            account(&mut app, tick);
        }
        let t2 = thread_cpu_s();
        let out = if i == 0 {
            first_draw(&mut screen, &app)
        } else {
            draw(&mut screen, &app)
        };
        let t3 = thread_cpu_s();
        if i == 0 {
            println!(
                "first tick: read {:.2} ms, account {:.2} ms, draw {:.2} ms, {} bytes",
                (t1 - t0) * 1e3,
                (t2 - t1) * 1e3,
                (t3 - t2) * 1e3,
                out
            );
            continue;
        }
        // The read includes the wait's own wake-ups (CPU time only: the sleeping is free).
        sums[0] += t1 - t0;
        sums[1] += t2 - t1;
        sums[2] += t3 - t2;
        bytes += out;
    }
    let per = |s: f64| s / ticks.max(1) as f64 * 1e6;
    println!(
        "{ticks} ticks at {interval_ms} ms, {n_procs} processes: per tick read {:.0} µs, account {:.0} µs, \
         draw {:.0} µs, {} bytes to the terminal",
        per(sums[0]),
        per(sums[1]),
        per(sums[2]),
        bytes / ticks.max(1)
    );
}
