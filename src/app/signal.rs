//! Acting on what the screen shows: `k` (or F9) asks before signalling the selected process, `i`
//! jumps to the next idle GPU holder.
//!
//! Pure, like the rest of the App: the prompt is state, a confirmed prompt returns
//! [`Action::Signal`], the driver (`tui`) sends the signal and reports back with
//! [`Msg::Signaled`](super::Msg::Signaled), and the App turns the outcome into a status line. Tests
//! run the whole dialogue without signalling anything. Never signals by itself: pid 1, kwtop's own
//! pid, a pid from another pid namespace (unknown start time), a process that has exited since the
//! prompt opened, and every view of a recording are refused before an Action is returned.

use crossterm::event::{KeyCode, KeyEvent};

use super::{Action, App, RowId, RowKind};
use crate::ledger::{GroupBy, ProcState};
use crate::sample::ProcKey;

/// The signals `k` can send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sig {
    /// `y` in the prompt: ask the process to end.
    Term,
    /// `K` or `9` in the prompt: end it now.
    Kill,
}

impl Sig {
    pub fn name(self) -> &'static str {
        match self {
            Sig::Term => "SIGTERM",
            Sig::Kill => "SIGKILL",
        }
    }
}

/// Why the driver could not send a signal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignalError {
    /// `EPERM`: the process belongs to another user (or is otherwise protected).
    NotPermitted,
    /// `ESRCH`: there is no such process any more.
    Exited,
    /// Anything else, in words.
    Other(String),
}

/// Whether this screen may signal the processes it lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signals {
    /// The live monitor on this machine's `/proc`: the table's pids are this pid namespace's.
    Live {
        /// kwtop's own pid (never signalled).
        own_pid: u32,
    },
    /// Not here, and why (shown when `k` is pressed): a replay, another `/proc` root.
    Off(String),
}

impl Default for Signals {
    fn default() -> Self {
        Signals::Off("k is off here: this view does not list live processes of this machine".into())
    }
}

/// The open `k` prompt: the process it names (pid and start time, so a reused pid is never hit)
/// and its command line as the table showed it (sanitized).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confirm {
    pub key: ProcKey,
    pub command: String,
}

impl App {
    /// `k`: open the prompt for the selected process, or say in the status line why not.
    pub(super) fn ask_signal(&mut self) {
        match self.signal_target() {
            Ok(c) => {
                self.ui.confirm = Some(c);
                self.status = None;
            }
            Err(why) => self.status = Some(why),
        }
    }

    /// The selected process if `k` may signal it, or why not.
    fn signal_target(&self) -> Result<Confirm, String> {
        let own_pid = match &self.opts.signals {
            Signals::Live { own_pid } => *own_pid,
            Signals::Off(why) => return Err(why.clone()),
        };
        let rows = self.rows();
        let Some(row) = self.selected_index(&rows).map(|i| &rows[i]) else {
            return Err("k: select a process first (j/Down/Up, / to filter, i for an idle holder)".into());
        };
        let key = match (&row.id, row.kind) {
            (RowId::Proc(key), _) => *key,
            (_, RowKind::Group) => {
                return Err("k signals one process: g back to the process view and select one".into());
            }
            _ => return Err("k signals one process: this row is a summary, not a process".into()),
        };
        let pid = key.pid;
        if pid == 1 {
            return Err("refused: pid 1 (init) is never signalled from kwtop".into());
        }
        if pid == own_pid {
            return Err(format!("refused: {pid} is kwtop itself (q quits)"));
        }
        if key.starttime == 0 {
            return Err(format!(
                "refused: {pid} is not visible in this pid namespace (a GPU context from outside it)"
            ));
        }
        if !self.is_running(&key) {
            return Err(format!("{pid} has already exited"));
        }
        Ok(Confirm {
            key,
            command: crate::sanitize::sanitize_str(&row.command, 200),
        })
    }

    /// Whether `key` is running as of the latest sample (also while the screen is paused).
    fn is_running(&self, key: &ProcKey) -> bool {
        self.engine()
            .ledger
            .process(key)
            .is_some_and(|e| e.state == ProcState::Running)
    }

    /// A key while the prompt is open: `y` SIGTERM, `K` or `9` SIGKILL, anything else cancels.
    pub(super) fn confirm_key(&mut self, k: KeyEvent) -> (bool, Action) {
        let Some(c) = self.ui.confirm.take() else {
            return (false, Action::None);
        };
        let pid = c.key.pid;
        let signal = match k.code {
            KeyCode::Char('y' | 'Y') => Sig::Term,
            KeyCode::Char('K' | '9') => Sig::Kill,
            _ => {
                self.status = Some(format!("cancelled: {pid} not signalled"));
                return (true, Action::None);
            }
        };
        // The prompt may have been open for a while: a process gone since is not signalled (its
        // pid may belong to another process by now).
        if !self.is_running(&c.key) {
            self.status = Some(format!("{pid} has already exited; nothing sent"));
            return (true, Action::None);
        }
        self.status = Some(format!("sending {} to {pid}…", signal.name()));
        (true, Action::Signal { pid, signal })
    }

    /// The driver's report on a signal it sent: a status line in words.
    pub(super) fn signaled(&mut self, pid: u32, signal: Sig, result: Result<(), SignalError>) {
        let entry = self
            .engine()
            .ledger
            .processes()
            .filter(|e| e.key.pid == pid)
            .max_by_key(|e| e.key.starttime);
        let text = match result {
            Ok(()) => {
                let cmd = entry.map_or_else(String::new, |e| {
                    let c = if e.info.cmdline.is_empty() {
                        &e.info.comm
                    } else {
                        &e.info.cmdline
                    };
                    format!(" ({})", crate::sanitize::sanitize_str(c, 60))
                });
                format!("sent {} to {pid}{cmd}", signal.name())
            }
            Err(SignalError::NotPermitted) => match entry.map(|e| e.info.user.as_str()) {
                Some(u) if !u.is_empty() => {
                    format!("not permitted: {pid} belongs to another user ({u})")
                }
                _ => format!("not permitted: {pid} belongs to another user"),
            },
            Err(SignalError::Exited) => format!("{pid} has already exited"),
            Err(SignalError::Other(e)) => format!("{} to {pid} failed: {e}", signal.name()),
        };
        self.status = Some(crate::sanitize::sanitize_str(&text, 300));
    }

    /// `i`: select the next idle GPU holder below the selection (wrapping), or say there is none.
    pub(super) fn next_idle_holder(&mut self) {
        let rows = self.rows();
        let holders: Vec<usize> = (0..rows.len()).filter(|i| rows[*i].idle_holder).collect();
        let Some(first) = holders.first() else {
            let flagged = self.ledger().idle_holders().count();
            let s = if flagged == 1 { "" } else { "s" };
            self.status = Some(if flagged == 0 {
                "no idle GPU holder now (see [idle_holder] in the config for what counts)".into()
            } else if self.ui.group != GroupBy::Process {
                format!("{flagged} idle GPU holder{s}: g back to the process view to select them")
            } else {
                format!("{flagged} idle GPU holder{s}, none in the table: Esc clears the filter")
            });
            return;
        };
        let cur = self.selected_index(&rows);
        let next = holders
            .iter()
            .find(|i| cur.is_none_or(|c| **i > c))
            .unwrap_or(first);
        self.ui.selected = Some(rows[*next].id.clone());
        self.status = None;
    }
}
