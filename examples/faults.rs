//! Fault injection for the hardening tests, outside the release binary: the real `kwtop` command
//! (same command line, config and summary export) with a part of the live monitor that panics.
//!
//! `KWTOP_FAULT=ui:MS` adds a pipeline subscriber that panics on the first sample after MS
//! milliseconds (on the event loop's thread, as a bug in the screen or an exporter would);
//! `KWTOP_FAULT=feed:MS` wraps the sensor feed so that it panics after MS milliseconds (on the feed
//! thread, as a sensor bug would). Unset, it is plain `kwtop`.
//!
//! `cargo run --example faults -- --config c.toml` with `KWTOP_FAULT=feed:1500`.

use std::time::{Duration, Instant};

use kwtop::cli::LiveHooks;
use kwtop::pipeline::{Feed, Frame, Subscriber, Tick};
use kwtop::tui::SendFeed;

/// Panics on the first frame after its deadline.
struct PanickingSubscriber(Instant);

impl Subscriber for PanickingSubscriber {
    fn frame(&mut self, _: &Frame<'_>) -> Result<(), String> {
        assert!(
            Instant::now() < self.0,
            "KWTOP_FAULT: injected panic in the UI loop (fault injection)"
        );
        Ok(())
    }
}

/// Hands over the inner feed's ticks until its deadline, then panics.
struct PanickingFeed(SendFeed, Instant);

impl Feed for PanickingFeed {
    fn next(&mut self, stop: &dyn Fn() -> bool) -> Option<Tick> {
        let tick = self.0.next(stop);
        assert!(
            Instant::now() < self.1,
            "KWTOP_FAULT: injected panic in the sample feed (fault injection)"
        );
        tick
    }
}

fn hooks(fault: &str) -> LiveHooks {
    let after = |ms: &str| {
        let ms: u64 = ms.trim().parse().unwrap_or(1000);
        Instant::now() + Duration::from_millis(ms)
    };
    match fault.split_once(':') {
        Some(("ui", ms)) => LiveHooks {
            subscribers: vec![Box::new(PanickingSubscriber(after(ms)))],
            ..LiveHooks::default()
        },
        Some(("feed", ms)) => {
            let at = after(ms);
            LiveHooks {
                wrap_feed: Some(Box::new(move |inner| Box::new(PanickingFeed(inner, at)))),
                ..LiveHooks::default()
            }
        }
        _ => LiveHooks::default(),
    }
}

fn main() {
    let fault = std::env::var("KWTOP_FAULT").unwrap_or_default();
    std::process::exit(kwtop::cli::main_with(hooks(&fault)));
}
