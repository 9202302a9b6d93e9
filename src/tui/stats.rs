//! `--stats`: what the last tick cost kwtop per stage, for the footer ([`crate::app::TickCost`]). Each stage
//! is timed in the CPU time of the thread that runs it (`CLOCK_THREAD_CPUTIME_ID`, to the
//! nanosecond; wall time would count the waits), so the figures say what kwtop spent, not how busy
//! the machine was: `read` on the feed thread (the sensors and `/proc`, or the recording, from one
//! sample to the next), `account` and `draw` on the event loop's thread. The feed thread hands its
//! figure over through an atomic. Off (no clock read at all) unless `--stats` is given.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crate::app::App;

static ON: AtomicBool = AtomicBool::new(false);
/// The feed thread's CPU time for the latest sample, nanoseconds; `u64::MAX`: none yet.
static READ_NS: AtomicU64 = AtomicU64::new(u64::MAX);

/// Time the stages from now on (`--stats`).
pub fn enable(on: bool) {
    ON.store(on, Ordering::Relaxed);
}

/// This thread's CPU time, when timing is on.
pub fn now() -> Option<Duration> {
    if !ON.load(Ordering::Relaxed) {
        return None;
    }
    use nix::time::{ClockId, clock_gettime};
    let t = clock_gettime(ClockId::CLOCK_THREAD_CPUTIME_ID).ok()?;
    let secs = u64::try_from(t.tv_sec()).ok()?;
    let nanos = u32::try_from(t.tv_nsec()).ok()?;
    Some(Duration::new(secs, nanos))
}

/// Microseconds of this thread's CPU time since `since`, and the time now.
fn since(since: Option<Duration>) -> Option<(u64, Duration)> {
    let (t0, t1) = (since?, now()?);
    let us = u64::try_from(t1.saturating_sub(t0).as_micros()).unwrap_or(u64::MAX);
    Some((us, t1))
}

/// The feed thread has a sample, having started on it at `from`: keep its cost for the loop and
/// return the start of the next one.
pub fn read_done(from: Option<Duration>) -> Option<Duration> {
    let (us, t) = since(from)?;
    READ_NS.store(us.saturating_mul(1000), Ordering::Relaxed);
    Some(t)
}

/// The loop accounted a tick, having started at `from`: the tick's read and account costs.
pub fn accounted(app: &mut App, from: Option<Duration>) {
    let (Some(cost), Some((us, _))) = (app.cost.as_mut(), since(from)) else {
        return;
    };
    cost.account_us = Some(us);
    let read = READ_NS.load(Ordering::Relaxed);
    cost.read_us = (read != u64::MAX).then_some(read / 1000);
}

/// The loop drew a frame, having started at `from` (shown with the next one).
pub fn drew(app: &mut App, from: Option<Duration>) {
    if let (Some(cost), Some((us, _))) = (app.cost.as_mut(), since(from)) {
        cost.draw_us = Some(us);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_are_timed_only_when_on() {
        let mut app = App::new(
            &crate::app::AppParams::default(),
            crate::app::ViewOptions::default(),
        );
        app.cost = Some(crate::app::TickCost::default());
        enable(false);
        assert_eq!(now(), None);
        accounted(&mut app, now());
        assert_eq!(app.cost, Some(crate::app::TickCost::default()));
        enable(true);
        let t0 = now();
        assert!(t0.is_some());
        // Some CPU work on this thread.
        let mut x = 0u64;
        for i in 0..200_000u64 {
            x = x.wrapping_mul(31).wrapping_add(std::hint::black_box(i));
        }
        std::hint::black_box(x);
        let t1 = read_done(t0);
        assert!(t1 >= t0);
        accounted(&mut app, t0);
        drew(&mut app, t0);
        let c = app.cost.unwrap_or_default();
        assert!(
            c.read_us.is_some() && c.account_us.is_some() && c.draw_us.is_some(),
            "{c:?}"
        );
        assert!(c.read_us <= c.account_us, "{c:?}");
        enable(false);
    }
}
