//! Sending the signal the user confirmed in the `k` prompt: the one place the live monitor
//! signals another process. The App decided and checked everything (pid 1, kwtop itself, a
//! process that already exited); this only sends and reports the outcome as plain data.

use nix::errno::Errno;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::app::{Sig, SignalError};

/// Send `sig` to `pid` with `kill(2)`.
pub fn send(pid: u32, sig: Sig) -> Result<(), SignalError> {
    // A pid above i32::MAX does not exist; 0 and negative values (process groups) are never sent.
    let Ok(raw) = i32::try_from(pid) else {
        return Err(SignalError::Exited);
    };
    if raw <= 1 {
        return Err(SignalError::Other(format!("pid {pid} is never signalled")));
    }
    let signal = match sig {
        Sig::Term => Signal::SIGTERM,
        Sig::Kill => Signal::SIGKILL,
    };
    kill(Pid::from_raw(raw), signal).map_err(error_of)
}

fn error_of(e: Errno) -> SignalError {
    match e {
        Errno::EPERM => SignalError::NotPermitted,
        Errno::ESRCH => SignalError::Exited,
        e => SignalError::Other(e.desc().to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_in_words() {
        assert_eq!(error_of(Errno::EPERM), SignalError::NotPermitted);
        assert_eq!(error_of(Errno::ESRCH), SignalError::Exited);
        assert!(matches!(error_of(Errno::EINVAL), SignalError::Other(_)));
    }

    #[test]
    fn never_a_process_group_or_init() {
        assert!(matches!(send(0, Sig::Term), Err(SignalError::Other(_))));
        assert!(matches!(send(1, Sig::Term), Err(SignalError::Other(_))));
        assert_eq!(send(u32::MAX, Sig::Kill), Err(SignalError::Exited));
    }

    #[test]
    fn terminates_a_child() {
        use std::os::unix::process::ExitStatusExt;
        let mut child = std::process::Command::new("sleep")
            .arg("1000")
            .spawn()
            .unwrap_or_else(|e| panic!("sleep: {e}"));
        assert_eq!(send(child.id(), Sig::Term), Ok(()));
        let status = child.wait().unwrap_or_else(|e| panic!("wait: {e}"));
        assert_eq!(status.signal(), Some(libc::SIGTERM));
    }
}
