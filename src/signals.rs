//! Every signal kwtop handles, in one place.
//!
//! - [`StopFlag`]: SIGINT, SIGTERM and SIGHUP end a headless driver (`serve`, `record`), which
//!   passes [`StopFlag::is_set`] to its feed as the `stop` closure: the feed takes one last sample
//!   and the driver writes what it owes (summary, end of the recording).
//! - [`Forwarder`]: `kwtop run` passes SIGINT, SIGTERM, SIGHUP and SIGQUIT on to its command
//!   (SIGINT/SIGQUIT only when they did not come from the terminal, which already delivered them).
//! - [`stopped`]: the live monitor's event loop awaits SIGINT, SIGTERM or SIGHUP beside its input.
//!
//! A panic is not a signal: the live monitor catches it and still writes the summary (see `tui`).

use std::os::fd::AsFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM};

/// Set once SIGINT, SIGTERM or SIGHUP arrives.
#[derive(Debug, Clone)]
pub struct StopFlag(Arc<AtomicBool>);

impl StopFlag {
    /// Install the handlers. Errors say which could not be installed.
    pub fn install() -> Result<StopFlag, String> {
        let flag = Arc::new(AtomicBool::new(false));
        for sig in [SIGINT, SIGTERM, SIGHUP] {
            signal_hook::flag::register(sig, Arc::clone(&flag))
                .map_err(|e| format!("cannot install signal handler: {e}"))?;
        }
        Ok(StopFlag(flag))
    }

    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// Signals for `kwtop run`'s command.
pub struct Forwarder(signal_hook::iterator::Signals);

impl Forwarder {
    pub fn install() -> Result<Forwarder, String> {
        signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP, SIGQUIT])
            .map(Forwarder)
            .map_err(|e| format!("cannot install signal handlers: {e}"))
    }

    /// Send the signals that arrived since the last call on to `child`.
    pub fn forward(&mut self, child: Pid) {
        for sig in self.0.pending() {
            let is_tty_sig = sig == SIGINT || sig == SIGQUIT;
            if is_tty_sig && from_terminal() {
                continue;
            }
            if let Ok(s) = Signal::try_from(sig) {
                let _ = kill(child, s);
            }
        }
    }
}

/// Whether a SIGINT/SIGQUIT we got was most likely typed at our terminal, which then delivered it
/// to the command too (same foreground process group): forwarding it would deliver it twice.
fn from_terminal() -> bool {
    let pgrp = nix::unistd::getpgrp();
    let fg = nix::unistd::tcgetpgrp(std::io::stdin().as_fd())
        .or_else(|_| nix::unistd::tcgetpgrp(std::io::stderr().as_fd()));
    fg.is_ok_and(|fg| fg == pgrp)
}

/// Resolves when SIGINT, SIGTERM or SIGHUP arrives (for the live monitor's event loop; call it
/// inside a tokio runtime with I/O enabled). Errors name the handler that could not be installed.
///
/// Each signal writes a byte to a socket pair whose read end the runtime watches, rather than
/// going through tokio's signal driver: that one keeps a slot for every signal number
/// (22 KiB of heap for the whole run, issue 12) to watch three. The handlers are removed when the
/// future is dropped (a signal after that does nothing, as with tokio's).
pub fn stopped() -> Result<impl Future<Output = ()>, String> {
    let (read, write) =
        std::os::unix::net::UnixStream::pair().map_err(|e| format!("cannot install signal handlers: {e}"))?;
    let mut handlers = Handlers(Vec::new());
    for (sig, name) in [(SIGINT, "SIGINT"), (SIGTERM, "SIGTERM"), (SIGHUP, "SIGHUP")] {
        let id = write
            .try_clone()
            .and_then(|w| signal_hook::low_level::pipe::register(sig, w))
            .map_err(|e| format!("cannot install the {name} handler: {e}"))?;
        handlers.0.push(id);
    }
    let read = read
        .set_nonblocking(true)
        .and_then(|()| tokio::net::UnixStream::from_std(read))
        .map_err(|e| format!("cannot watch for signals: {e}"))?;
    Ok(async move {
        let _handlers = handlers;
        let mut bytes = [0u8; 16];
        loop {
            if read.readable().await.is_err() {
                return;
            }
            match read.try_read(&mut bytes) {
                // Readiness can be reported when there is nothing to read: wait again.
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
                    ) => {}
                // A signal's byte (or a socket that can no longer say): stop.
                _ => return,
            }
        }
    })
}

/// The handlers [`stopped`] installed, removed when dropped (also when installing a later one failed).
struct Handlers(Vec<signal_hook::SigId>);

impl Drop for Handlers {
    fn drop(&mut self) {
        for id in self.0.drain(..) {
            signal_hook::low_level::unregister(id);
        }
    }
}
