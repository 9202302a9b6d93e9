//! Counting the work `kwtop run`'s command reports: the I/O around [`crate::work`] (pure).
//!
//! Two sources, both optional:
//! - `--progress REGEX`: the command's output, read through [`super::output`];
//! - the work file: a fresh file, mode 0600, in a private temp dir (0700) removed when kwtop ends,
//!   named in the command's environment as `KWTOP_WORK_FILE`. Every time the run loop polls (every
//!   20 ms or so) it is read from where the last read stopped when its length or time changed, so
//!   a unit is stamped within a poll of being written. Appending is the documented way; a file
//!   truncated, rewritten from its start or replaced (a rename over it) is read again from its
//!   start, which suits a cumulative count written anew each time (not `+N` lines). Its format is
//!   in [`crate::work`].
//!
//! When both count units, the work file's are reported (the program said exactly what it did) and
//! a notice says what the progress lines counted.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use super::output::{self, Clock, Prepared, Tap};
use crate::sanitize::sanitize_bytes;
use crate::work::{CountedWork, LineMatch, LineSplitter, ProgressPattern, WorkCounter, WorkSource};

/// The environment variable naming the work file.
pub const WORK_FILE_ENV: &str = "KWTOP_WORK_FILE";

/// How long to wait, after the command exits, for the rest of its output.
const OUTPUT_GRACE: Duration = Duration::from_secs(2);

/// Read at most this much of the work file per poll (the rest on the next one).
const READ_CHUNK: u64 = 1 << 20;

/// What `kwtop run` was asked to count.
#[derive(Debug, Clone, Default)]
pub struct WorkArgs {
    /// `--progress REGEX`.
    pub progress: Option<ProgressPattern>,
    /// `--unit NAME` (singular).
    pub unit: Option<String>,
}

/// The work file: where the command appends its counts.
struct WorkFile {
    /// Removed (with the file) when dropped.
    _dir: tempfile::TempDir,
    path: PathBuf,
    open: Option<OpenFile>,
    lines: LineSplitter,
    counter: WorkCounter,
    invalid: u64,
    first_invalid: Option<String>,
}

/// The work file as last read.
struct OpenFile {
    file: File,
    ino: u64,
    /// Bytes read so far.
    off: u64,
    /// Its first bytes (up to [`HEAD`]): when they change, the file was written anew.
    head: Vec<u8>,
    /// Length and modification time at the last read: unchanged means nothing to do.
    stamp: (u64, i64, i64),
}

/// Bytes of the file's start kept to notice it being rewritten.
const HEAD: usize = 64;

impl OpenFile {
    fn open(path: &Path) -> Option<Self> {
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
            .ok()?;
        let ino = file.metadata().ok()?.ino();
        Some(OpenFile {
            file,
            ino,
            off: 0,
            head: Vec::new(),
            stamp: (0, 0, 0),
        })
    }

    /// Whether the file at the path is still this one, appended to (not replaced, truncated or
    /// rewritten from its start).
    fn is_same(&self, meta: &std::fs::Metadata) -> bool {
        let mut now = vec![0u8; self.head.len()];
        meta.ino() == self.ino
            && meta.len() >= self.off
            && self.file.read_exact_at(&mut now, 0).is_ok()
            && now == self.head
    }

    /// What was appended since the last read (at most [`READ_CHUNK`]).
    fn read_new(&mut self) -> Vec<u8> {
        let mut buf = Vec::new();
        let read = self
            .file
            .seek(SeekFrom::Start(self.off))
            .and_then(|_| (&self.file).take(READ_CHUNK).read_to_end(&mut buf));
        if read.is_err() {
            return Vec::new();
        }
        self.off += buf.len() as u64;
        let room = HEAD.saturating_sub(self.head.len());
        self.head.extend_from_slice(&buf[..buf.len().min(room)]);
        buf
    }
}

impl WorkFile {
    fn create() -> io::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("kwtop-work-")
            .permissions(std::fs::Permissions::from_mode(0o700))
            .tempdir()?;
        let path = dir.path().join("work");
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)?;
        Ok(WorkFile {
            _dir: dir,
            path,
            open: None,
            lines: LineSplitter::default(),
            counter: WorkCounter::new(),
            invalid: 0,
            first_invalid: None,
        })
    }

    /// Read what was written since the last poll; its lines count at `at_ms`.
    fn poll(&mut self, at_ms: i64) {
        let Ok(meta) = std::fs::symlink_metadata(&self.path) else {
            return;
        };
        let stamp = (meta.len(), meta.mtime(), meta.mtime_nsec());
        if self
            .open
            .as_ref()
            .is_some_and(|o| o.ino == meta.ino() && o.stamp == stamp)
        {
            return;
        }
        if !self.open.as_ref().is_some_and(|o| o.is_same(&meta)) {
            self.lines = LineSplitter::default();
            self.open = OpenFile::open(&self.path);
        }
        let Some(open) = &mut self.open else {
            return;
        };
        let buf = open.read_new();
        if open.off >= meta.len() {
            open.stamp = stamp;
        }
        self.feed(at_ms, &buf);
    }

    fn feed(&mut self, at_ms: i64, buf: &[u8]) {
        let (counter, invalid, first) = (&mut self.counter, &mut self.invalid, &mut self.first_invalid);
        self.lines
            .push(buf, |line| count_line(counter, invalid, first, at_ms, line));
    }

    fn finish(&mut self, at_ms: i64) {
        self.poll(at_ms);
        let (counter, invalid, first) = (&mut self.counter, &mut self.invalid, &mut self.first_invalid);
        self.lines
            .finish(|line| count_line(counter, invalid, first, at_ms, line));
    }
}

fn count_line(
    counter: &mut WorkCounter,
    invalid: &mut u64,
    first: &mut Option<String>,
    at_ms: i64,
    line: &[u8],
) {
    if !counter.observe_work_line(at_ms, line) {
        *invalid += 1;
        first.get_or_insert_with(|| sanitize_bytes(line, 60));
    }
}

/// The progress lines counted so far.
#[derive(Default)]
struct Progress {
    counter: WorkCounter,
    matched: u64,
    unparsed: u64,
}

impl Progress {
    fn take(&mut self, s: output::Seen) {
        self.matched += 1;
        match s.what {
            LineMatch::Counts(obs) => self.counter.observe(s.at_ms, obs),
            LineMatch::Unparsed => self.unparsed += 1,
            LineMatch::No => {}
        }
    }
}

/// Everything that counts the command's work during a run.
pub struct WorkTap {
    args: WorkArgs,
    clock: Clock,
    file: Option<WorkFile>,
    prepared: Option<Prepared>,
    tap: Option<Tap>,
    progress: Progress,
    notices: Vec<String>,
}

impl WorkTap {
    /// Create the work file and, with `--progress`, route the command's output through kwtop;
    /// set both on `cmd` before it is spawned.
    pub fn new(args: WorkArgs, clock: Clock, cmd: &mut Command) -> Self {
        let mut notices = Vec::new();
        let file = match WorkFile::create() {
            Ok(f) => {
                cmd.env(WORK_FILE_ENV, &f.path);
                Some(f)
            }
            Err(e) => {
                notices.push(format!("no work file ({WORK_FILE_ENV} unset): {e}"));
                None
            }
        };
        let prepared = match &args.progress {
            Some(_) => match output::prepare(cmd) {
                Ok(p) => Some(p),
                Err(e) => {
                    notices.push(format!(
                        "cannot read the command's output ({e}): --progress counts nothing"
                    ));
                    None
                }
            },
            None => None,
        };
        WorkTap {
            args,
            clock,
            file,
            prepared,
            tap: None,
            progress: Progress::default(),
            notices,
        }
    }

    /// The command was spawned: start reading its output.
    pub fn started(&mut self, child: &mut Child) {
        if let (Some(p), Some(pattern)) = (self.prepared.take(), &self.args.progress) {
            self.tap = Some(p.start(child, pattern, self.clock));
        }
    }

    /// Take what the command reported since the last poll.
    pub fn poll(&mut self) {
        if let Some(t) = &self.tap {
            t.drain(|s| self.progress.take(s));
        }
        if let Some(f) = &mut self.file {
            f.poll(self.clock.now_ms());
        }
    }

    /// The command exited: take the rest, and say what was counted (`None`: nothing) and what to
    /// tell the user about it. Removes the work file.
    pub fn finish(mut self) -> (Option<CountedWork>, Vec<String>) {
        if let Some(t) = self.tap.take() {
            let progress = &mut self.progress;
            t.finish(OUTPUT_GRACE, |s| progress.take(s));
        }
        if let Some(f) = &mut self.file {
            f.finish(self.clock.now_ms());
        }
        let mut notices = std::mem::take(&mut self.notices);
        let unit = self.args.unit.clone();
        let progress = self.args.progress.as_ref().map(|p| {
            progress_notices(p, &self.progress, &mut notices);
            CountedWork {
                counter: self.progress.counter.clone(),
                unit: unit.clone().unwrap_or_else(|| "unit".into()),
                source: WorkSource::Progress,
            }
        });
        let file = self.file.as_ref().map(|f| {
            if f.invalid > 0 {
                notices.push(format!(
                    "{} line(s) of the work file were not in its format (a count, then an optional unit) \
                     and counted nothing; the first: '{}'",
                    f.invalid,
                    f.first_invalid.as_deref().unwrap_or("")
                ));
            }
            CountedWork {
                unit: f
                    .counter
                    .unit()
                    .map(str::to_string)
                    .or(unit)
                    .unwrap_or_else(|| "unit".into()),
                counter: f.counter.clone(),
                source: WorkSource::WorkFile,
            }
        });
        let counted = |w: &Option<CountedWork>| w.as_ref().is_some_and(|w| w.counter.units() > 0);
        let work = match (counted(&file), counted(&progress)) {
            (true, true) => {
                let p = progress.as_ref().map_or(0, |p| p.counter.units());
                notices.push(format!(
                    "both the work file and --progress counted work: the work file's units are \
                     reported (the progress lines counted {p})"
                ));
                file
            }
            (true, false) => file,
            (false, true) => progress,
            (false, false) => None,
        };
        (work, notices)
    }

    /// Where the work file is (tests).
    #[cfg(test)]
    fn path(&self) -> Option<&Path> {
        self.file.as_ref().map(|f| f.path.as_path())
    }
}

fn progress_notices(p: &ProgressPattern, seen: &Progress, notices: &mut Vec<String>) {
    let pattern = sanitize_bytes(p.as_str().as_bytes(), 80);
    if seen.matched == 0 {
        notices.push(format!(
            "--progress '{pattern}' matched no line of the command's output: no work counted"
        ));
    } else if seen.unparsed > 0 {
        notices.push(format!(
            "{} line(s) matched --progress '{pattern}' but its first group was not a whole number: \
             they counted nothing",
            seen.unparsed
        ));
    }
    if seen.counter.resets() > 0 {
        notices.push(format!(
            "the progress count went back {} time(s) (a new progress bar?): each restart counted on \
             from the total",
            seen.counter.resets()
        ));
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use std::io::Write;
    use std::time::Instant;

    fn tap() -> WorkTap {
        let mut cmd = Command::new("true");
        WorkTap::new(WorkArgs::default(), Clock::new(Instant::now(), 1_000), &mut cmd)
    }

    fn append(path: &Path, text: &str) {
        let mut f = OpenOptions::new().append(true).open(path).unwrap();
        f.write_all(text.as_bytes()).unwrap();
    }

    #[test]
    fn work_file_is_private_and_removed_afterwards() {
        let t = tap();
        let path = t.path().unwrap().to_path_buf();
        let dir = path.parent().unwrap().to_path_buf();
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
            0o700
        );
        let (work, notices) = t.finish();
        assert!(work.is_none() && notices.is_empty(), "{notices:?}");
        assert!(!dir.exists(), "temp dir removed");
    }

    #[test]
    fn appended_lines_count_across_polls_and_a_partial_line_waits() {
        let mut t = tap();
        let path = t.path().unwrap().to_path_buf();
        append(&path, "# my job\n100 tok");
        t.poll();
        append(&path, "ens\n250\n+5 tokens\nnonsense\n");
        t.poll();
        append(&path, "300");
        let (work, notices) = t.finish();
        let w = work.expect("counted");
        assert_eq!(
            w.counter.units(),
            305,
            "the unterminated last line counts at the end"
        );
        assert_eq!((w.unit.as_str(), w.source), ("token", WorkSource::WorkFile));
        assert_eq!(notices.len(), 1, "{notices:?}");
        assert!(notices[0].contains("'nonsense'"), "{notices:?}");
    }

    #[test]
    fn a_rewritten_file_is_read_again() {
        let mut t = tap();
        let path = t.path().unwrap().to_path_buf();
        // Written anew each time, longer, shorter and as long as before.
        for n in ["9 steps\n", "10 steps\n", "11 steps\n", "12\n"] {
            std::fs::write(&path, n).unwrap();
            t.poll();
        }
        let renamed = path.with_file_name("new");
        std::fs::write(&renamed, "13\n").unwrap();
        std::fs::rename(&renamed, &path).unwrap();
        t.poll();
        let (work, notices) = t.finish();
        let w = work.unwrap();
        assert_eq!(w.counter.units(), 13, "{notices:?}");
        assert_eq!(w.counter.resets(), 0);
    }
}
