//! Subscribers of the pipeline that the headless commands (`cli`, `serve`) share: the recorder and the notice
//! printer. (The metrics endpoint is `serve::Endpoint`; `run`'s tree filter is `run::TreeFilter`;
//! the live monitor's checkpoint is `tui::Checkpoint`.)

use std::io::Write;

use crate::pipeline::{Frame, Subscriber};
use crate::recording::Writer;

/// Writes every sample to a recording. A failed write is an error for the driver (`record` stops).
pub struct Recorder<W: Write> {
    pub writer: Writer<W>,
    /// Named in errors.
    pub path: String,
}

impl<W: Write> Subscriber for Recorder<W> {
    fn frame(&mut self, frame: &Frame<'_>) -> Result<(), String> {
        let Some(sample) = frame.sample() else {
            return Ok(());
        };
        self.writer
            .write(sample)
            .map_err(|e| format!("writing {}: {e}", self.path))
    }
}

/// Prints each new notice on stderr as `kwtop: …` (headless commands; the screen shows its own).
#[derive(Debug, Default)]
pub struct NoticePrinter;

impl Subscriber for NoticePrinter {
    fn frame(&mut self, frame: &Frame<'_>) -> Result<(), String> {
        let mut err = std::io::stderr().lock();
        for n in frame.notices {
            // stderr may be a hung-up terminal: never panic on it.
            let _ = writeln!(err, "kwtop: {n}");
        }
        Ok(())
    }
}
