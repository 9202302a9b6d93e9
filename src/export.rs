//! Writing exports to disk: atomic (temp file in the same directory + fsync + rename), files mode
//! 0600, directories 0700, never following a symlink planted at the target, and disk-full errors
//! that say what to do. Also [`write_session_summary`], the one call for "save the session".
//!
//! A killed writer leaves either the previous complete file or none, never a partial one; its temp
//! file (`.NAME.PID.N.tmp`) is swept by the next write into the same directory.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::impact::ImpactParams;
use crate::ledger::Ledger;
use crate::redact::Redactor;
use crate::summary::{self, Format, SummaryOptions};

/// Where and how session summaries are written (`[export]` in the config).
#[derive(Debug, Clone, PartialEq)]
pub struct ExportParams {
    /// Directory for session summaries; `None` = the platform data dir.
    pub dir: Option<PathBuf>,
    /// Formats written on quit, `e`, signals and at the end of `run`/`record --summary`.
    pub formats: Vec<Format>,
    /// What exports show of command lines (`cmdline` and `redact_patterns`).
    pub redactor: Redactor,
    /// The live monitor rewrites the summary this often; `None` = only on `e` and exit.
    pub checkpoint: Option<Duration>,
}

/// Why an export could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(
        "no space left on the device writing {path}: free some space or point [export] dir elsewhere (nothing was replaced)"
    )]
    DiskFull { path: PathBuf },
    #[error("permission denied writing {path}: choose a writable [export] dir or -o path")]
    PermissionDenied { path: PathBuf },
    #[error("refusing to write {path}: it is a symbolic link (remove it or choose another path)")]
    Symlink { path: PathBuf },
    #[error("no data directory: set [export] dir in the config")]
    NoDataDir,
    #[error("cannot write {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

impl ExportError {
    fn from_io(path: &Path, e: io::Error) -> Self {
        let path = path.to_path_buf();
        match e.raw_os_error() {
            Some(libc::ENOSPC) | Some(libc::EDQUOT) => ExportError::DiskFull { path },
            Some(libc::ELOOP) => ExportError::Symlink { path },
            _ if e.kind() == io::ErrorKind::PermissionDenied => ExportError::PermissionDenied { path },
            _ => ExportError::Io { path, source: e },
        }
    }
}

/// The directory session summaries go to: `[export] dir`, else the platform data dir
/// (`~/.local/share/kwtop` on Linux, honouring `XDG_DATA_HOME`).
pub fn export_dir(params: &ExportParams) -> Result<PathBuf, ExportError> {
    if let Some(d) = &params.dir {
        return Ok(d.clone());
    }
    directories::ProjectDirs::from("", "", "kwtop")
        .map(|d| d.data_dir().to_path_buf())
        .ok_or(ExportError::NoDataDir)
}

/// Create `dir` (and parents) with mode 0700 when missing. An existing directory is left as it is.
pub fn ensure_dir(dir: &Path) -> Result<(), ExportError> {
    if dir.is_dir() {
        return Ok(());
    }
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| ExportError::from_io(dir, e))
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

fn temp_prefix(name: &str) -> String {
    format!(".{name}.")
}

/// Create (or truncate) `path` for a file written in place as it grows (a recording): mode 0600,
/// refusing a symbolic link at the target. An existing file is narrowed to 0600 too.
pub fn create_private(path: &Path) -> Result<File, ExportError> {
    let f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| ExportError::from_io(path, e))?;
    f.set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(|e| ExportError::from_io(path, e))?;
    Ok(f)
}

/// Write `bytes` to `path` atomically with mode 0600.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ExportError> {
    write_atomic_with(path, |f| f.write_all(bytes))
}

/// Write `path` atomically: `fill` writes into a fresh temp file next to it (O_EXCL|O_NOFOLLOW,
/// 0600), which is fsynced and renamed over `path`. On any error the temp file is removed and
/// `path` is untouched.
pub fn write_atomic_with(
    path: &Path,
    fill: impl FnOnce(&mut File) -> io::Result<()>,
) -> Result<(), ExportError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| ExportError::Io {
            path: path.to_path_buf(),
            source: io::Error::new(io::ErrorKind::InvalidInput, "not a file name"),
        })?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if let Ok(m) = std::fs::symlink_metadata(path)
        && m.file_type().is_symlink()
    {
        return Err(ExportError::Symlink {
            path: path.to_path_buf(),
        });
    }
    sweep_stale(&dir, &name);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let tmp = dir.join(format!("{}{}.{n}.tmp", temp_prefix(&name), std::process::id()));
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&tmp)
        .map_err(|e| ExportError::from_io(&tmp, e))?;
    let result = fill(&mut file)
        .and_then(|()| file.flush())
        .and_then(|()| file.sync_all())
        .map_err(|e| ExportError::from_io(path, e))
        .and_then(|()| {
            // create_new with a mode is subject to the umask: make sure it is exactly 0600.
            std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))
                .map_err(|e| ExportError::from_io(&tmp, e))
        })
        .and_then(|()| std::fs::rename(&tmp, path).map_err(|e| ExportError::from_io(path, e)));
    drop(file);
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
        return result;
    }
    // Make the rename durable; a directory that cannot be opened (odd filesystems) is not an error.
    if let Ok(d) = File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Remove temp files of `name` left by writers that were killed (their pid no longer exists).
fn sweep_stale(dir: &Path, name: &str) {
    let prefix = temp_prefix(name);
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let fname = e.file_name().to_string_lossy().into_owned();
        let Some(rest) = fname.strip_prefix(&prefix).and_then(|r| r.strip_suffix(".tmp")) else {
            continue;
        };
        let Some(pid) = rest.split('.').next().and_then(|p| p.parse::<i32>().ok()) else {
            continue;
        };
        if pid <= 0 {
            continue;
        }
        let alive = pid == i32::try_from(std::process::id()).unwrap_or(0)
            || !matches!(
                nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None),
                Err(nix::errno::Errno::ESRCH)
            );
        if !alive {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// File stem of a session's summaries: `kwtop-HOST-20250101T120000Z-PID`.
pub fn session_stem(host: &str, started_ms: i64) -> String {
    let t = summary::compact_time(started_ms);
    let host: String = host
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("kwtop-{host}-{t}-{}", std::process::id())
}

/// Write the session summary in every `[export] formats` format into the export directory
/// (created 0700 when missing) and return the paths written. Called by the TUI on quit, on `e` and
/// on SIGTERM/SIGINT/SIGHUP, and by `run` and `record --summary`. Calling it again in the same
/// session replaces the same files atomically, so the latest call wins.
pub fn write_session_summary(
    ledger: &Ledger,
    impact: &ImpactParams,
    opts: &SummaryOptions,
    params: &ExportParams,
    host: &str,
    notices: &[String],
) -> Result<Vec<PathBuf>, ExportError> {
    let doc = summary::build(ledger, impact, host, notices, opts);
    write_summary_files(&doc, params)
}

/// Write an already built summary in every configured format; see [`write_session_summary`].
pub fn write_summary_files(
    doc: &summary::SummaryDoc,
    params: &ExportParams,
) -> Result<Vec<PathBuf>, ExportError> {
    let dir = export_dir(params)?;
    ensure_dir(&dir)?;
    let stem = session_stem(&doc.host, doc.started_ms);
    let mut paths = Vec::new();
    for f in &params.formats {
        let path = dir.join(format!("{stem}.{}", f.extension()));
        write_atomic(&path, summary::render(doc, *f).as_bytes())?;
        paths.push(path);
    }
    Ok(paths)
}

/// Write one summary to an explicit path (`run -o`, `record --summary`'s callers).
pub fn write_summary_to(doc: &summary::SummaryDoc, path: &Path, format: Format) -> Result<(), ExportError> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        ensure_dir(parent)?;
    }
    write_atomic(path, summary::render(doc, format).as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn writes_0600_and_replaces() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a.md");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "two");
        assert_eq!(std::fs::metadata(&p).unwrap().mode() & 0o777, 0o600);
        let names: Vec<_> = std::fs::read_dir(d.path()).unwrap().flatten().collect();
        assert_eq!(names.len(), 1, "no temp file left");
    }

    #[test]
    fn new_dir_is_0700() {
        let d = tempfile::tempdir().unwrap();
        let sub = d.path().join("x/y");
        ensure_dir(&sub).unwrap();
        assert_eq!(std::fs::metadata(&sub).unwrap().mode() & 0o777, 0o700);
    }

    #[test]
    fn refuses_symlink_at_target() {
        let d = tempfile::tempdir().unwrap();
        let victim = d.path().join("victim");
        std::fs::write(&victim, "keep").unwrap();
        let p = d.path().join("s.json");
        std::os::unix::fs::symlink(&victim, &p).unwrap();
        let e = write_atomic(&p, b"x").unwrap_err();
        assert!(matches!(e, ExportError::Symlink { .. }), "{e}");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
    }

    #[test]
    fn failed_write_leaves_old_file_and_no_temp() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a.csv");
        write_atomic(&p, b"old").unwrap();
        let e = write_atomic_with(&p, |f| {
            f.write_all(b"partial")?;
            Err(io::Error::from_raw_os_error(libc::ENOSPC))
        })
        .unwrap_err();
        assert!(matches!(e, ExportError::DiskFull { .. }), "{e}");
        assert!(e.to_string().contains("no space left"), "{e}");
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "old");
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1);
    }

    #[test]
    fn stale_temp_of_dead_writer_is_swept() {
        let d = tempfile::tempdir().unwrap();
        // pid 0x7ffffffe is above any pid_max, so no such process exists.
        let stale = d.path().join(".a.md.2147483646.0.tmp");
        std::fs::write(&stale, "half").unwrap();
        write_atomic(&d.path().join("a.md"), b"x").unwrap();
        assert!(!stale.exists());
    }
}
