//! `kwtop replay FILE [--speed N]`: the live monitor over a recording.
//!
//! A [`ReplayFeed`] reads the recording with the same reader as `report` and hands every sample to
//! the TUI, paced by the samples' own clock divided by `speed`. A corrupt line ends the feed with a notice
//! naming the line; everything before it is shown. The summary is written only on `e`, never on exit,
//! so browsing a recording leaves the data directory alone.

use std::path::Path;

use super::{CliError, commands::LiveArgs};
use crate::config::Settings;
use crate::pipeline::ReplayFeed;
use crate::recording::Reader;
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
        stats: live.stats,
        ui: settings.ui,
        on_export: Some(on_export),
        host: Some(shown_host),
        checkpoint: None,
        subscribers: Vec::new(),
        signals: crate::app::Signals::Off("k is off in a replay: its pids are the recording's".into()),
        work: None,
    };
    let feed = ReplayFeed::new(reader, Some(speed), file.display().to_string());
    crate::tui::run_with_feed(&settings.app(), options, Box::new(feed), true)
        .map(|_| ())
        .map_err(CliError::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn speed_parsing() {
        assert_eq!(parse_speed("1"), Ok(1.0));
        assert_eq!(parse_speed("60x"), Ok(60.0));
        assert!(parse_speed("0").is_err());
        assert!(parse_speed("-2").is_err());
        assert!(parse_speed("fast").unwrap_err().contains("'fast'"));
        assert!(parse_speed("inf").is_err());
    }
}
