//! The command's stdout and stderr while `kwtop run --progress` counts work in them.
//!
//! Each stream gets its own reader thread, which writes every chunk it reads unchanged to kwtop's
//! own stream of the same name at once (so a progress bar redrawn with `\r` stays live, and a
//! stream's bytes are never reordered), then splits it into lines for the pattern
//! ([`crate::work::LineSplitter`]) and sends what matched, stamped with the time it was read, to
//! the run loop over a bounded channel. Order across the two streams is the order the threads
//! happen to write in, as with any two pipes.
//!
//! Where kwtop's stream is a terminal, the command's is a pseudo-terminal (`nix::pty::openpty`, a
//! safe call; no `unsafe` here), so the program sees a terminal (`isatty`) and keeps its colours
//! and progress bars. Its output post-processing `ONLCR` is off, so `\n` reaches kwtop's terminal
//! as written. The pty gets kwtop's terminal size at start; a later resize is not passed on
//! (setting a pty's size is an ioctl that nix offers only as `unsafe`). The command keeps kwtop's
//! stdin and controlling terminal (no new session), so Ctrl-C and job control work as without
//! `--progress`. Elsewhere (a file, a pipe) the command writes into a pipe; a program that buffers
//! its output when it is not a terminal then delivers its lines late: counted right, stamped late.
//!
//! When kwtop's stream is closed (`kwtop run … | head`), forwarding stops and the read end is
//! closed, so the command gets the `EPIPE`/`SIGPIPE` it would have got writing there itself.

use std::fs::File;
use std::io::{self, IsTerminal, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, sync_channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::work::{LineMatch, LineSplitter, ProgressPattern};

/// What a line of the command's output did to the pattern, and when it was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    /// Wall ms since the epoch.
    pub at_ms: i64,
    pub what: LineMatch,
}

/// Wall time on a monotonic base: `origin_wall_ms` + time since `origin`, so a clock step during
/// the run cannot reorder or stretch the stamps.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    origin: Instant,
    origin_wall_ms: i64,
}

impl Clock {
    pub fn new(origin: Instant, origin_wall_ms: i64) -> Self {
        Clock {
            origin,
            origin_wall_ms,
        }
    }

    pub fn now_ms(&self) -> i64 {
        let ms = i64::try_from(self.origin.elapsed().as_millis()).unwrap_or(i64::MAX);
        self.origin_wall_ms.saturating_add(ms)
    }
}

/// One of the command's output streams, before it is started.
enum Endpoint {
    /// kwtop's stream is a terminal: the master side of the command's pseudo-terminal.
    Pty(OwnedFd),
    /// A pipe (`Stdio::piped`).
    Pipe,
}

/// The command's stdout and stderr, set up on its `Command` and waiting for the spawn.
pub struct Prepared {
    stdout: Endpoint,
    stderr: Endpoint,
}

/// A pseudo-terminal for one stream: `ONLCR` off, kwtop's terminal size, both ends close-on-exec
/// (the slave is dup'ed onto the command's fd 1 or 2, which is not).
fn pty() -> io::Result<(OwnedFd, OwnedFd)> {
    use nix::fcntl::{F_SETFD, FdFlag, fcntl};
    use nix::sys::termios::{OutputFlags, SetArg, tcgetattr, tcsetattr};
    let size = crossterm::terminal::size()
        .ok()
        .map(|(cols, rows)| nix::pty::Winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        });
    let p = nix::pty::openpty(size.as_ref(), None).map_err(io::Error::from)?;
    let mut t = tcgetattr(&p.slave).map_err(io::Error::from)?;
    t.output_flags.remove(OutputFlags::ONLCR);
    tcsetattr(&p.slave, SetArg::TCSANOW, &t).map_err(io::Error::from)?;
    for fd in [p.master.as_fd(), p.slave.as_fd()] {
        fcntl(fd, F_SETFD(FdFlag::FD_CLOEXEC)).map_err(io::Error::from)?;
    }
    Ok((p.master, p.slave))
}

/// The endpoint for a stream of kwtop's that is a terminal or not, set on the command by `set`.
fn endpoint(is_terminal: bool, set: impl FnOnce(Stdio)) -> io::Result<Endpoint> {
    if is_terminal {
        let (master, slave) = pty()?;
        set(Stdio::from(slave));
        Ok(Endpoint::Pty(master))
    } else {
        set(Stdio::piped());
        Ok(Endpoint::Pipe)
    }
}

/// Route `cmd`'s stdout and stderr through kwtop: a pseudo-terminal for each of kwtop's streams
/// that is a terminal, else a pipe. Drop `cmd` after spawning it, so only the command holds the
/// terminals' slave ends and their end reads as end of file.
pub fn prepare(cmd: &mut Command) -> io::Result<Prepared> {
    let stdout = endpoint(io::stdout().is_terminal(), |s| {
        cmd.stdout(s);
    })?;
    let stderr = endpoint(io::stderr().is_terminal(), |s| {
        cmd.stderr(s);
    })?;
    Ok(Prepared { stdout, stderr })
}

/// The reader threads and what they saw.
pub struct Tap {
    threads: Vec<JoinHandle<()>>,
    rx: Receiver<Seen>,
}

/// Lines matched but not yet taken are held up to this many; a reader waits when it is full.
const CHANNEL: usize = 4096;

impl Prepared {
    /// Start a reader thread per stream of the spawned `child`.
    pub fn start(self, child: &mut Child, pattern: &ProgressPattern, clock: Clock) -> Tap {
        let (tx, rx) = sync_channel(CHANNEL);
        let mut threads = Vec::new();
        let out: Option<Box<dyn Read + Send>> = match self.stdout {
            Endpoint::Pty(m) => Some(Box::new(File::from(m))),
            Endpoint::Pipe => child.stdout.take().map(|s| Box::new(s) as Box<dyn Read + Send>),
        };
        let err: Option<Box<dyn Read + Send>> = match self.stderr {
            Endpoint::Pty(m) => Some(Box::new(File::from(m))),
            Endpoint::Pipe => child.stderr.take().map(|s| Box::new(s) as Box<dyn Read + Send>),
        };
        if let Some(src) = out {
            let (p, tx) = (pattern.clone(), tx.clone());
            threads.push(std::thread::spawn(move || {
                pump(src, io::stdout(), &p, &tx, clock)
            }));
        }
        if let Some(src) = err {
            let p = pattern.clone();
            threads.push(std::thread::spawn(move || {
                pump(src, io::stderr(), &p, &tx, clock)
            }));
        }
        Tap { threads, rx }
    }
}

impl Tap {
    /// What the readers saw since the last call.
    pub fn drain(&self, mut f: impl FnMut(Seen)) {
        loop {
            match self.rx.try_recv() {
                Ok(s) => f(s),
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => return,
            }
        }
    }

    /// Wait until both streams reached their end (every process holding them exited), at most
    /// `grace`: a descendant left running in the background may keep them open, and then its
    /// output is forwarded until kwtop exits. Then take what is left.
    pub fn finish(mut self, grace: Duration, mut f: impl FnMut(Seen)) {
        let deadline = Instant::now() + grace;
        loop {
            self.drain(&mut f);
            if self.threads.iter().all(JoinHandle::is_finished) || Instant::now() >= deadline {
                break;
            }
            // Real time: waiting for the readers, polled; they end when the command's streams close.
            std::thread::sleep(Duration::from_millis(10));
        }
        for t in std::mem::take(&mut self.threads) {
            if t.is_finished() {
                let _ = t.join();
            }
        }
        self.drain(&mut f);
    }
}

/// Copy `src` to `dst` chunk by chunk and report matching lines, until `src` ends or `dst` is
/// closed.
fn pump(
    mut src: Box<dyn Read + Send>,
    mut dst: impl Write,
    pattern: &ProgressPattern,
    tx: &SyncSender<Seen>,
    clock: Clock,
) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut lines = LineSplitter::default();
    let mut seen = |line: &[u8]| {
        let what = pattern.observe(line);
        if what != LineMatch::No {
            // The run loop may be gone (kwtop is exiting): keep forwarding regardless.
            let _ = tx.send(Seen {
                at_ms: clock.now_ms(),
                what,
            });
        }
    };
    loop {
        let n = match src.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            // A pseudo-terminal whose every slave end closed reads EIO: the end of the stream.
            Err(_) => break,
        };
        let chunk = &buf[..n];
        if dst.write_all(chunk).and_then(|()| dst.flush()).is_err() {
            // kwtop's stream is closed: close the command's too (dropping `src`).
            break;
        }
        lines.push(chunk, &mut seen);
    }
    lines.finish(&mut seen);
}
