//! Key bindings of the live monitor: vim-style and arrow keys both work, except that `k` asks to
//! signal the selected process (as in htop) rather than moving up; the help overlay (`?`) lists
//! them from [`KEYS`]. Pure: a key changes UI state or returns an [`Action`].

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use super::{Action, App, WINDOWS_S};
use crate::ledger::GroupBy;

/// (keys, what they do) for the help overlay.
pub const KEYS: &[(&str, &str)] = &[
    ("q  Ctrl-C", "quit (the session summary is written on exit)"),
    ("j  Down Up", "select a row (k signals, it does not move up)"),
    ("PgDn PgUp  Home End G", "page, first, last row"),
    ("Enter  l", "detail view of the selected row (Esc closes)"),
    ("k  F9", "send SIGTERM to the selected process (y confirms)"),
    ("k then K or 9", "send SIGKILL instead; any other key cancels"),
    ("i", "select the next idle GPU holder"),
    ("s >  <", "sort by the next / previous column"),
    ("r", "reverse the sort order"),
    ("/", "filter by command, user or pid (Enter keeps, Esc clears)"),
    ("g", "group: process, tree, user, command, container, Slurm job"),
    ("t", "process tree grouping on / off"),
    ("x", "exited processes: one row each / one summary row"),
    ("K", "hide / show kernel threads and 0 J processes"),
    ("w  W", "history window longer / shorter"),
    (
        "c",
        "equivalent: phone charges, household hours, car km, cost (with a price)",
    ),
    ("p  Space", "pause the display (accounting continues)"),
    ("e", "export the session summary now"),
    ("?  h", "this help"),
];

impl App {
    pub(super) fn on_key(&mut self, k: KeyEvent) -> (bool, Action) {
        if k.kind == KeyEventKind::Release {
            return (false, Action::None);
        }
        let ctrl = k.modifiers.contains(KeyModifiers::CONTROL);
        if ctrl && matches!(k.code, KeyCode::Char('c') | KeyCode::Char('C')) {
            return (false, Action::Quit);
        }
        if self.ui.confirm.is_some() {
            return self.confirm_key(k);
        }
        if self.ui.editing_filter {
            return (self.filter_key(k), Action::None);
        }
        if self.ui.help {
            // Any key closes help; q still quits.
            self.ui.help = false;
            if k.code == KeyCode::Char('q') {
                return (false, Action::Quit);
            }
            return (true, Action::None);
        }
        let page = self.page_rows.max(1) as isize;
        match k.code {
            KeyCode::Char('q') => return (false, Action::Quit),
            KeyCode::Esc => {
                if self.ui.detail {
                    self.ui.detail = false;
                } else if !self.ui.filter.is_empty() {
                    self.ui.filter.clear();
                } else {
                    self.ui.selected = None;
                }
            }
            KeyCode::Char('?') | KeyCode::Char('h') | KeyCode::F(1) => self.ui.help = true,
            KeyCode::Down | KeyCode::Char('j') => self.move_selection(1),
            KeyCode::Up => self.move_selection(-1),
            KeyCode::Char('k') | KeyCode::F(9) => self.ask_signal(),
            KeyCode::Char('i') => self.next_idle_holder(),
            KeyCode::PageDown => self.move_selection(page),
            KeyCode::PageUp => self.move_selection(-page),
            KeyCode::Char('d') if ctrl => self.move_selection(page / 2),
            KeyCode::Char('u') if ctrl => self.move_selection(-page / 2),
            KeyCode::Home => self.select_edge(false),
            KeyCode::End | KeyCode::Char('G') => self.select_edge(true),
            KeyCode::Enter | KeyCode::Char('l') | KeyCode::Right => {
                if self.ui.selected.is_none() {
                    self.move_selection(0);
                }
                self.ui.detail = self.ui.selected.is_some();
            }
            KeyCode::Left => self.ui.detail = false,
            KeyCode::Char('s') | KeyCode::Char('>') => self.ui.sort = self.ui.sort.next(),
            KeyCode::Char('<') | KeyCode::Char('S') => self.ui.sort = self.ui.sort.prev(),
            KeyCode::Char('r') | KeyCode::Char('I') => self.ui.reverse = !self.ui.reverse,
            KeyCode::Char('/') => self.ui.editing_filter = true,
            KeyCode::Char('g') => {
                self.ui.group = self.ui.group.next();
                self.ui.selected = None;
                self.ui.detail = false;
            }
            KeyCode::Char('t') => {
                self.ui.group = if self.ui.group == GroupBy::Tree {
                    GroupBy::Process
                } else {
                    GroupBy::Tree
                };
                self.ui.selected = None;
                self.ui.detail = false;
            }
            KeyCode::Char('x') => self.ui.show_exited = !self.ui.show_exited,
            KeyCode::Char('K') => self.ui.show_hidden = !self.ui.show_hidden,
            KeyCode::Char('w') | KeyCode::Char('+') => {
                self.ui.window = (self.ui.window + 1).min(WINDOWS_S.len() - 1);
            }
            KeyCode::Char('W') | KeyCode::Char('-') => self.ui.window = self.ui.window.saturating_sub(1),
            KeyCode::Char('c') => self.ui.equiv = self.ui.equiv.next(&self.impact),
            KeyCode::Char('p') | KeyCode::Char(' ') => self.toggle_pause(),
            KeyCode::Char('e') => {
                if self.opts.can_export {
                    return (true, Action::Export);
                }
                self.status = Some("export: no summary writer available in this build".into());
            }
            _ => return (false, Action::None),
        }
        (true, Action::None)
    }

    /// Keys while typing a filter. Returns whether anything changed.
    fn filter_key(&mut self, k: KeyEvent) -> bool {
        match k.code {
            KeyCode::Enter => self.ui.editing_filter = false,
            KeyCode::Esc => {
                self.ui.editing_filter = false;
                self.ui.filter.clear();
            }
            KeyCode::Backspace => {
                self.ui.filter.pop();
            }
            KeyCode::Char(c) if !c.is_control() && self.ui.filter.chars().count() < 64 => {
                self.ui.filter.push(c);
            }
            _ => return false,
        }
        self.ui.selected = None;
        true
    }
}
