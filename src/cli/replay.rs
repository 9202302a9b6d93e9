//! `kwtop replay FILE [--speed N]`: the live monitor over a recording.
//!
//! A feed thread reads the recording with the same reader as `report` and hands samples to the TUI,
//! paced by the samples' own clock divided by `speed`. A corrupt line ends the feed with a notice
//! naming the line; everything before it is shown. The summary is written only on `e`, never on exit,
//! so browsing a recording leaves the data directory alone.

use std::io::BufRead;
use std::path::Path;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::{CliError, commands::LiveArgs};
use crate::config::Settings;
use crate::recording::Reader;
use crate::sample::Sample;
use crate::tui::Options;

/// Fastest replay: 1,000,000× (a day of 1 Hz samples in well under a second of pacing).
const MAX_SPEED: f64 = 1e6;

/// Parse `--speed`: a positive number of recording seconds per wall second.
pub fn parse_speed(s: &str) -> Result<f64, String> {
    match s.trim().trim_end_matches('x').parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v <= MAX_SPEED => Ok(v),
        _ => Err(format!(
            "invalid speed '{s}': a number between 0 and {MAX_SPEED}, e.g. 1, 10 or 3600"
        )),
    }
}

/// Send every sample of `reader` to `tx`, sleeping `Δmono / speed` between them. The last sample is
/// held back and sent with the closing notice (end of recording, or the bad line), so the notice never
/// needs a sample of its own.
fn feed(reader: Reader<impl BufRead>, speed: f64, path: &Path, tx: &mpsc::Sender<(Sample, Vec<String>)>) {
    let mut notices = vec![format!("replaying {} at {speed}× real time", path.display())];
    let mut origin: Option<(f64, Instant)> = None;
    let mut held: Option<Sample> = None;
    let mut closing = "end of recording: the screen shows its totals".to_string();
    for item in reader {
        let s = match item {
            Ok(s) => s,
            Err(e) => {
                closing = format!("{}: {e}; the replay stopped before it", path.display());
                break;
            }
        };
        let (t0, w0) = *origin.get_or_insert((s.mono_s, Instant::now()));
        let due = w0 + Duration::from_secs_f64(((s.mono_s - t0) / speed).clamp(0.0, 86_400.0 * 365.0));
        if let Some(prev) = held.replace(s) {
            // Blocking send: in a replay every sample counts (a live feed may drop; a recording must not).
            if tx.blocking_send((prev, std::mem::take(&mut notices))).is_err() {
                return;
            }
        }
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
    }
    notices.push(closing);
    if let Some(last) = held {
        let _ = tx.blocking_send((last, notices));
    }
}

pub fn replay(settings: &Settings, file: &Path, speed: f64, live: LiveArgs) -> Result<(), CliError> {
    let input = super::commands::open_recording(file)?;
    let reader = Reader::new(input).map_err(|e| CliError::Runtime(format!("{}: {e}", file.display())))?;
    let host = crate::sanitize::sanitize_str(&reader.header.host, 64);
    let shown_host = format!("{host} (replay)");
    let on_export = super::commands::summary_hook(
        settings,
        host,
        "summary of the recording",
        true,
        reader.header.cmdline_mode(),
    );
    let options = Options {
        no_color: live.no_color,
        ascii: live.ascii,
        ui: settings.ui,
        on_export: Some(on_export),
        host: Some(shown_host),
        checkpoint: None,
    };
    let path = file.to_path_buf();
    crate::tui::run_with_feed(&settings.app(), options, move |tx| {
        feed(reader, speed, &path, &tx)
    })
    .map(|_| ())
    .map_err(CliError::from)
}

#[cfg(test)]
mod tests {
    use std::fs::File;

    use super::*;

    fn empty() -> Sample {
        crate::testing::sample_at(0.0).build()
    }

    #[test]
    fn speed_parsing() {
        assert_eq!(parse_speed("1"), Ok(1.0));
        assert_eq!(parse_speed("60x"), Ok(60.0));
        assert!(parse_speed("0").is_err());
        assert!(parse_speed("-2").is_err());
        assert!(parse_speed("fast").unwrap_err().contains("'fast'"));
        assert!(parse_speed("inf").is_err());
    }

    #[test]
    fn feed_sends_every_sample_in_order_then_an_end_notice() {
        // Plain and compressed recordings, opened as `replay` opens them.
        for name in ["r.jsonl", "r.jsonl.zst", "r.jsonl.gz"] {
            let dir = tempfile::tempdir().expect("dir");
            let p = dir.path().join(name);
            let header = crate::recording::Header {
                schema: crate::recording::SCHEMA.into(),
                host: "h".into(),
                kwtop_version: "t".into(),
                started_ms: 0,
                interval_s: 1.0,
                notes: vec![],
                cmdline: None,
            };
            let options = crate::recording::WriterOptions {
                compression: crate::recording::Compression::for_path(&p),
                ..Default::default()
            };
            let file = File::create(&p).expect("create");
            let mut w = crate::recording::Writer::with_options(file, &header, options).expect("header");
            for t in 0..5 {
                w.write(&Sample {
                    mono_s: f64::from(t),
                    ..empty()
                })
                .expect("write");
            }
            w.finish().expect("finish");
            let reader =
                Reader::new(super::super::commands::open_recording(&p).expect("open")).expect("reader");
            let (tx, mut rx) = mpsc::channel(16);
            feed(reader, MAX_SPEED, &p, &tx);
            drop(tx);
            let mut times = Vec::new();
            let mut last_notes = Vec::new();
            while let Some((s, n)) = rx.blocking_recv() {
                times.push(s.mono_s);
                last_notes = n;
            }
            assert_eq!(&times[..5], &[0.0, 1.0, 2.0, 3.0, 4.0], "{name}");
            assert_eq!(times.len(), 5, "{name}: every sample once, none invented");
            assert!(
                last_notes.iter().any(|n| n.contains("end of recording")),
                "{name}: {last_notes:?}"
            );
        }
    }
}
