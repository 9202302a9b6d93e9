//! Following `--progress-log FILE`: the I/O around `kwtop_core::work::follow` (what to do) and
//! `kwtop_core::work` (what a line counts).
//!
//! At each sample the path is stat'ed (following a symlink) and, by the file's inode and size,
//! read on from where the last read stopped, read again from its start (truncated in place), or
//! left for the new file at the path (rotated: the rest of the old one is read first). A log that
//! was already there is read from its last [`TAIL`] bytes: the count it has reached is the
//! session's baseline, not its work. A missing file is waited for; a file that cannot be read is a
//! gap.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use crate::sanitize::sanitize_bytes;
use crate::work::follow::{Cursor, FileStat, Step, initial_offset, next_step};
use crate::work::live::LiveWork;
use crate::work::{LineMatch, LineSplitter, ProgressPattern};

/// Bytes of an existing log read when following starts.
pub const TAIL: u64 = 1 << 20;
/// Bytes read at most per poll (the rest at the next).
const READ_CHUNK: u64 = 4 << 20;

/// What lines counted nothing, for the notes.
#[derive(Debug, Default, Clone)]
struct Rejects {
    /// Lines matching `--progress` whose group was not a whole number.
    unparsed: u64,
    /// Lines not in the work-file format (without `--progress`).
    invalid: u64,
    first: Option<String>,
}

/// Follows one log; see the module doc.
pub struct LogFollower {
    path: PathBuf,
    pattern: Option<ProgressPattern>,
    open: Option<(File, Cursor)>,
    lines: LineSplitter,
    polled: bool,
    missing: bool,
    rejects: Rejects,
}

impl LogFollower {
    pub fn new(path: PathBuf, pattern: Option<ProgressPattern>) -> Self {
        LogFollower {
            path,
            pattern,
            open: None,
            lines: LineSplitter::default(),
            polled: false,
            missing: false,
            rejects: Rejects::default(),
        }
    }

    /// Read what was written since the last poll into `work`, stamped `at_ms`. An error when the
    /// file is there but cannot be read.
    pub fn poll(&mut self, at_ms: i64, work: &mut LiveWork) -> Result<(), String> {
        let first = !self.polled;
        self.polled = true;
        let stat = match std::fs::metadata(&self.path) {
            Ok(m) => Some(FileStat {
                dev: m.dev(),
                ino: m.ino(),
                len: m.len(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e.to_string()),
        };
        self.missing = stat.is_none() && self.open.is_none();
        match next_step(self.open.as_ref().map(|o| o.1), stat) {
            Step::Idle => Ok(()),
            Step::ReadOn => self.read_on(at_ms, work),
            Step::Rewind => {
                self.lines = LineSplitter::default();
                if let Some((_, c)) = &mut self.open {
                    c.off = 0;
                }
                self.read_on(at_ms, work)
            }
            Step::Reopen => {
                // The rest of the rotated file, its last line even if unterminated, then the new one.
                self.read_on(at_ms, work)?;
                let mut lines = std::mem::take(&mut self.lines);
                lines.finish(|l| self.count(at_ms, l, work));
                self.open = None;
                self.open_at(stat, false)?;
                self.read_on(at_ms, work)
            }
            Step::Open => {
                self.open_at(stat, first)?;
                self.read_on(at_ms, work)
            }
        }
    }

    /// Open the file at the path; from its tail when it was there before following began.
    fn open_at(&mut self, stat: Option<FileStat>, from_tail: bool) -> Result<(), String> {
        let file = File::open(&self.path).map_err(|e| e.to_string())?;
        let m = file.metadata().map_err(|e| e.to_string())?;
        let len = stat.map_or(m.len(), |s| s.len.min(m.len()));
        let (off, skip_partial) = if from_tail {
            initial_offset(len, TAIL)
        } else {
            (0, false)
        };
        self.lines = LineSplitter::default();
        self.open = Some((
            file,
            Cursor {
                dev: m.dev(),
                ino: m.ino(),
                off,
            },
        ));
        if skip_partial {
            self.skip_to_line_start();
        }
        Ok(())
    }

    /// After starting mid-file: drop bytes up to the next line break.
    fn skip_to_line_start(&mut self) {
        let Some((file, c)) = &mut self.open else {
            return;
        };
        let mut buf = Vec::new();
        if file.seek(SeekFrom::Start(c.off)).is_err()
            || file
                .take(crate::work::MAX_LINE_BYTES as u64)
                .read_to_end(&mut buf)
                .is_err()
        {
            return;
        }
        if let Some(i) = buf.iter().position(|&b| b == b'\n' || b == b'\r') {
            c.off += i as u64 + 1;
        }
    }

    /// Read from the cursor to the end (at most [`READ_CHUNK`]) and count the lines.
    fn read_on(&mut self, at_ms: i64, work: &mut LiveWork) -> Result<(), String> {
        let Some((file, c)) = &mut self.open else {
            return Ok(());
        };
        let mut buf = Vec::new();
        file.seek(SeekFrom::Start(c.off))
            .and_then(|_| file.take(READ_CHUNK).read_to_end(&mut buf))
            .map_err(|e| e.to_string())?;
        c.off += buf.len() as u64;
        let mut lines = std::mem::take(&mut self.lines);
        lines.push(&buf, |l| self.count(at_ms, l, work));
        self.lines = lines;
        Ok(())
    }

    fn count(&mut self, at_ms: i64, line: &[u8], work: &mut LiveWork) {
        let r = &mut self.rejects;
        match &self.pattern {
            Some(p) => match p.observe(line) {
                LineMatch::Counts(obs) => work.observe(at_ms, obs),
                LineMatch::Unparsed => {
                    r.unparsed += 1;
                    r.first.get_or_insert_with(|| sanitize_bytes(line, 60));
                }
                LineMatch::No => {}
            },
            None => {
                if !work.observe_work_line(at_ms, line) {
                    r.invalid += 1;
                    r.first.get_or_insert_with(|| sanitize_bytes(line, 60));
                }
            }
        }
    }

    /// What the user should know: a missing file, lines that counted nothing.
    pub fn notes(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.missing {
            out.push("the log does not exist (yet): waiting for it".to_string());
        }
        let first = self.rejects.first.as_deref().unwrap_or("");
        if self.rejects.unparsed > 0 {
            out.push(format!(
                "{} line(s) matched --progress but its group was not a whole number; the first: '{first}'",
                self.rejects.unparsed
            ));
        }
        if self.rejects.invalid > 0 {
            out.push(format!(
                "{} line(s) were not a count (`1200 tokens`, `+64`) and counted nothing (give --progress \
                 REGEX for a log); the first: '{first}'",
                self.rejects.invalid
            ));
        }
        out
    }
}
