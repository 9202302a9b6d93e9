//! Following a log that is appended to, truncated (`copytruncate`) and rotated (renamed away and
//! created anew): what to do at each poll, decided from the file's identity and size alone.
//!
//! Pure: the caller (`kwtop --progress-log`) stats the path, asks [`next_step`], and does the
//! reading. The open file is kept across a rotation until the path names a new file, so the lines
//! a writer appends to the renamed file before it reopens are still read.

/// What a stat of the path says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStat {
    /// Device and inode: a different pair is a different file (a rotation).
    pub dev: u64,
    pub ino: u64,
    /// Length, bytes.
    pub len: u64,
}

/// The file being followed: which one, and how far it was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub dev: u64,
    pub ino: u64,
    /// Bytes read so far.
    pub off: u64,
}

/// What to do at a poll.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Nothing new (or nothing there yet).
    Idle,
    /// Read the open file from the cursor to its end.
    ReadOn,
    /// The file was truncated in place: read it again from its start.
    Rewind,
    /// The path names another file now: read the rest of the open one, then open the new one and
    /// read it from its start.
    Reopen,
    /// No file is open and one is at the path: open it.
    Open,
}

/// Decide the next step from the open file (`None`: none yet) and the path's stat (`None`: no file
/// there, e.g. between a rotation's rename and the new file's creation).
pub fn next_step(open: Option<Cursor>, at_path: Option<FileStat>) -> Step {
    match (open, at_path) {
        (None, None) => Step::Idle,
        (None, Some(_)) => Step::Open,
        // Renamed away and nothing new yet: the writer may still append to the open file.
        (Some(_), None) => Step::ReadOn,
        (Some(c), Some(s)) if (c.dev, c.ino) != (s.dev, s.ino) => Step::Reopen,
        (Some(c), Some(s)) if s.len < c.off => Step::Rewind,
        (Some(c), Some(s)) if s.len > c.off => Step::ReadOn,
        (Some(_), Some(_)) => Step::Idle,
    }
}

/// Where to start reading a file that was already there when following began: the last `tail`
/// bytes, so a long log is not read whole for the count it has reached. Returns the offset and
/// whether a partial first line must be skipped.
pub fn initial_offset(len: u64, tail: u64) -> (u64, bool) {
    let off = len.saturating_sub(tail);
    (off, off > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stat(ino: u64, len: u64) -> Option<FileStat> {
        Some(FileStat { dev: 1, ino, len })
    }

    fn cur(ino: u64, off: u64) -> Option<Cursor> {
        Some(Cursor { dev: 1, ino, off })
    }

    #[test]
    fn appends_truncation_and_rotation() {
        assert_eq!(next_step(None, None), Step::Idle);
        assert_eq!(next_step(None, stat(7, 0)), Step::Open);
        assert_eq!(next_step(cur(7, 10), stat(7, 10)), Step::Idle);
        assert_eq!(next_step(cur(7, 10), stat(7, 25)), Step::ReadOn, "appended");
        assert_eq!(next_step(cur(7, 10), stat(7, 0)), Step::Rewind, "copytruncate");
        assert_eq!(
            next_step(cur(7, 10), stat(7, 4)),
            Step::Rewind,
            "truncated and written"
        );
        assert_eq!(
            next_step(cur(7, 10), None),
            Step::ReadOn,
            "renamed, not yet recreated"
        );
        assert_eq!(next_step(cur(7, 10), stat(8, 0)), Step::Reopen, "a new file");
        assert_eq!(next_step(cur(7, 10), stat(8, 100)), Step::Reopen);
        let other_dev = Some(FileStat {
            dev: 2,
            ino: 7,
            len: 10,
        });
        assert_eq!(next_step(cur(7, 10), other_dev), Step::Reopen);
    }

    #[test]
    fn a_long_log_is_read_from_its_tail() {
        assert_eq!(initial_offset(100, 1000), (0, false));
        assert_eq!(initial_offset(5000, 1000), (4000, true));
    }
}
