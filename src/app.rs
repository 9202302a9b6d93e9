//! State of the live monitor and its pure update function (`App::update(Msg)`).
//!
//! Everything the screen shows is derived from an [`App`]: samples arrive as messages and go
//! through the same [`Engine`] as every other command; keys change only UI state. No I/O, no
//! clock, no terminal here, so tests build an App from a recording and render it with
//! `TestBackend`. The event loop that feeds messages lives in `tui`, drawing in `ui`.

mod keys;
pub use keys::KEYS;
pub mod rows;
mod signal;
pub use signal::{Confirm, Sig, SignalError, Signals};

use std::time::Duration;

use crossterm::event::KeyEvent;

use crate::engine::{Engine, EngineParams};
use crate::fasthash::FastMap;
use crate::history::History;
use crate::impact::ImpactParams;
use crate::ledger::{GroupBy, Ledger};
use crate::pipeline::{Pipeline, Subscriber, Tick};
use crate::sample::{DeviceKind, ProcKey, Sample};

pub use rows::{Column, Hidden, Row, RowId, RowKind};

/// History windows selectable with `w` / `W`, seconds.
pub const WINDOWS_S: [f64; 8] = [
    60.0,
    300.0,
    600.0,
    1800.0,
    3600.0,
    21_600.0,
    86_400.0,
    2_592_000.0,
];
/// Default history window (10 min).
pub const DEFAULT_WINDOW: usize = 2;
/// Notices kept for the status line and help overlay.
const MAX_NOTICES: usize = 16;

/// Input to [`App::update`].
#[derive(Debug, Clone)]
pub enum Msg {
    /// A new sample from the sampler (or a recording).
    Sample(Box<Sample>),
    /// One-time notices from the sources ("no NVIDIA driver found", …).
    Notices(Vec<String>),
    Key(KeyEvent),
    /// Mouse wheel: negative scrolls up.
    Scroll(i32),
    /// The terminal was resized (only a redraw is needed).
    Resize,
    /// Result of an export, shown in the status line.
    Status(String),
    /// What became of an [`Action::Signal`] the driver sent.
    Signaled {
        pid: u32,
        signal: Sig,
        result: Result<(), SignalError>,
    },
}

/// What the event loop must do after an update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Nothing beyond a redraw (when `update` returned `true` for dirty).
    None,
    Quit,
    /// Write the session summary now (`e`).
    Export,
    /// Send `signal` to `pid` (confirmed in the `k` prompt), then report back with
    /// [`Msg::Signaled`].
    Signal {
        pid: u32,
        signal: Sig,
    },
}

/// The everyday equivalent shown in the table's ≈ column and the header (`c` cycles); the cost
/// joins them when `[impact] price_per_kwh` is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Equiv {
    Phone,
    HouseholdHours,
    CarKm,
    /// Facility kWh × `[impact] price_per_kwh`.
    Cost,
}

impl Equiv {
    /// The next choice; the cost only when a price is set.
    pub fn next(self, impact: &ImpactParams) -> Equiv {
        match self {
            Equiv::Phone => Equiv::HouseholdHours,
            Equiv::HouseholdHours => Equiv::CarKm,
            Equiv::CarKm if impact.price.is_some() => Equiv::Cost,
            Equiv::CarKm | Equiv::Cost => Equiv::Phone,
        }
    }

    /// Column header (the cost's is its currency).
    pub fn header(self, impact: &ImpactParams) -> String {
        match self {
            Equiv::Phone => "PHONE".into(),
            Equiv::HouseholdHours => "HOME h".into(),
            Equiv::CarKm => "CAR km".into(),
            Equiv::Cost => impact
                .price
                .as_ref()
                .map_or_else(|| "COST".into(), |p| p.currency.chars().take(7).collect()),
        }
    }

    /// The session figure in the header: `4.7 phone charges`, `0.42 EUR`.
    pub fn phrase(self, impact: &ImpactParams, energy_j: f64) -> String {
        let v = self.value(impact, energy_j);
        match self {
            Equiv::Phone => format!("{v:.1} phone charges"),
            Equiv::HouseholdHours => format!("{v:.1} household-hours"),
            Equiv::CarKm => format!("{v:.1} km by car"),
            Equiv::Cost => crate::units::money(v, impact.price.as_ref().map_or("", |p| &p.currency)),
        }
    }

    /// The value of `energy_j` in this unit.
    pub fn value(self, impact: &ImpactParams, energy_j: f64) -> f64 {
        let e = impact.equivalents(energy_j);
        match self {
            Equiv::Phone => e.phone_charges,
            Equiv::HouseholdHours => e.household_days * 24.0,
            Equiv::CarKm => e.car_km,
            Equiv::Cost => impact.cost(energy_j).unwrap_or(0.0),
        }
    }
}

/// Display options fixed at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewOptions {
    pub host: String,
    /// Colours allowed (`--no-color` and `NO_COLOR` turn them off).
    pub color: bool,
    /// Only ASCII characters on screen (`--ascii`).
    pub ascii: bool,
    /// Whether `e` writes a summary (an export hook is installed).
    pub can_export: bool,
    /// Whether `k` may signal the listed processes (only the live monitor on this machine).
    pub signals: Signals,
}

impl Default for ViewOptions {
    fn default() -> Self {
        ViewOptions {
            host: "localhost".into(),
            color: true,
            ascii: false,
            can_export: false,
            signals: Signals::default(),
        }
    }
}

/// UI-only state changed by keys.
#[derive(Debug, Clone, PartialEq)]
pub struct UiState {
    pub sort: Column,
    /// Ascending instead of the column's natural order.
    pub reverse: bool,
    pub filter: String,
    /// `/` was pressed: keys go into the filter.
    pub editing_filter: bool,
    pub group: GroupBy,
    pub selected: Option<RowId>,
    /// The detail view of the selected row is open.
    pub detail: bool,
    pub help: bool,
    pub window: usize,
    pub equiv: Equiv,
    /// Show exited processes as their own rows instead of one summary row (`x`).
    pub show_exited: bool,
    /// Show kernel threads and processes with no energy yet (`K`; hidden by default).
    pub show_hidden: bool,
    /// The `k` prompt is open for this process: the next key answers it.
    pub confirm: Option<Confirm>,
}

impl Default for UiState {
    fn default() -> Self {
        UiState {
            sort: Column::TotalW,
            reverse: false,
            filter: String::new(),
            editing_filter: false,
            group: GroupBy::Process,
            selected: None,
            detail: false,
            help: false,
            window: DEFAULT_WINDOW,
            equiv: Equiv::Phone,
            show_exited: false,
            show_hidden: false,
            confirm: None,
        }
    }
}

/// One process's watts over the last interval, by kind of device.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SplitW {
    pub gpu_w: f64,
    /// CPU including DRAM.
    pub cpu_w: f64,
}

/// The ledger and view frozen when the screen was paused.
#[derive(Debug, Clone)]
pub struct Paused {
    pub ledger: Ledger,
    pub view: View,
}

/// What the screen shows: the live accounting, or a frozen copy while paused.
#[derive(Debug, Clone, Default)]
pub struct View {
    pub history: History,
    /// Per process, watts over the last interval by kind of device.
    pub split_w: FastMap<ProcKey, SplitW>,
    /// Idle and unattributed watts over the last interval.
    pub idle_w: f64,
    pub unattributed_w: f64,
}

/// What the live monitor accounts with: the engine's parameters, the impact figures, and the time
/// between samples (the footer shows it).
#[derive(Debug, Clone, PartialEq)]
pub struct AppParams {
    pub engine: EngineParams,
    pub impact: ImpactParams,
    pub interval: Duration,
}

impl Default for AppParams {
    /// The built-in defaults of the config (`[sampling] interval` 1 s).
    fn default() -> Self {
        AppParams {
            engine: EngineParams::default(),
            impact: ImpactParams::default(),
            interval: Duration::from_secs(1),
        }
    }
}

/// The live monitor's whole state.
#[derive(Debug, Clone)]
pub struct App {
    /// The session's accounting: one engine, fed by the event loop (`App::accept`).
    pub pipeline: Pipeline,
    pub impact: ImpactParams,
    pub opts: ViewOptions,
    pub ui: UiState,
    pub view: View,
    /// A frozen copy of the ledger and view while paused (accounting goes on underneath).
    pub paused: Option<Box<Paused>>,
    pub notices: Vec<String>,
    /// One-line status (last export result).
    pub status: Option<String>,
    /// Time between samples, seconds (for the footer).
    pub interval_s: f64,
    /// Table rows that fit on screen at the last render, for PgUp/PgDn.
    pub page_rows: usize,
    /// Energy per unit of work (`--progress-log`, `--work-metric`): the work meter's figures.
    pub work: Option<crate::workmeter::WorkBoard>,
    /// `--stats`: what the last tick cost, shown in the footer (`None`: not asked for).
    pub cost: Option<TickCost>,
}

/// What the last tick cost kwtop per stage (`--stats`), in microseconds of CPU time of the thread
/// that did it; `None` until measured.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TickCost {
    /// The feed thread: sensors and `/proc` (or the recording) for the last sample.
    pub read_us: Option<u64>,
    /// The event loop: the pipeline's engine tick (attribution, ledger), the screen's view and
    /// the other subscribers.
    pub account_us: Option<u64>,
    /// The event loop: the last frame rendered and written to the terminal.
    pub draw_us: Option<u64>,
}

impl App {
    pub fn new(params: &AppParams, opts: ViewOptions) -> Self {
        App {
            pipeline: Pipeline::new(&params.engine),
            impact: params.impact.clone(),
            opts,
            ui: UiState::default(),
            view: View::default(),
            paused: None,
            notices: Vec::new(),
            status: None,
            interval_s: params.interval.as_secs_f64(),
            page_rows: 10,
            work: None,
            cost: None,
        }
    }

    /// The session's engine (live, not frozen by a pause).
    pub fn engine(&self) -> &Engine {
        &self.pipeline.engine
    }

    /// The ledger on screen (frozen while paused).
    pub fn ledger(&self) -> &Ledger {
        self.paused
            .as_ref()
            .map_or(&self.pipeline.engine.ledger, |p| &p.ledger)
    }

    /// Account one tick through the pipeline, show it to `subscribers` (the metrics endpoint, the
    /// checkpoint, …) and refresh what the screen derives from it. Returns whether the screen
    /// changed; a subscriber's error becomes the status line.
    pub fn accept(&mut self, tick: Tick, subscribers: &mut [&mut dyn Subscriber]) -> bool {
        let Tick { sample, notices } = tick;
        let (mut dirty, _) = self.update(Msg::Notices(notices.clone()));
        let pushed = self.pipeline.push(Tick { sample, notices }, subscribers);
        if pushed.accounted {
            self.refresh_view();
            dirty |= self.paused.is_none();
        }
        if let Some(e) = pushed.errors.into_iter().next() {
            self.update(Msg::Status(e));
            dirty = true;
        }
        dirty
    }

    /// The derived view on screen (frozen while paused).
    pub fn shown(&self) -> &View {
        self.paused.as_ref().map_or(&self.view, |p| &p.view)
    }

    pub fn window_s(&self) -> f64 {
        WINDOWS_S[self.ui.window.min(WINDOWS_S.len() - 1)]
    }

    /// Apply one message. Returns whether the screen changed and what the loop must do.
    pub fn update(&mut self, msg: Msg) -> (bool, Action) {
        match msg {
            Msg::Sample(s) => {
                self.push_sample(*s);
                (self.paused.is_none(), Action::None)
            }
            Msg::Notices(n) => {
                if n.is_empty() {
                    return (false, Action::None);
                }
                for line in n {
                    let line = crate::sanitize::sanitize_str(&line, 300);
                    if !self.notices.contains(&line) {
                        self.notices.push(line);
                    }
                }
                let excess = self.notices.len().saturating_sub(MAX_NOTICES);
                self.notices.drain(..excess);
                (true, Action::None)
            }
            Msg::Key(k) => self.on_key(k),
            // While the `k` prompt is open the selection stays where the prompt was opened.
            Msg::Scroll(_) if self.ui.confirm.is_some() => (false, Action::None),
            Msg::Scroll(d) => {
                self.move_selection(d as isize * 3);
                (true, Action::None)
            }
            Msg::Resize => (true, Action::None),
            Msg::Status(s) => {
                self.status = Some(crate::sanitize::sanitize_str(&s, 300));
                (true, Action::None)
            }
            Msg::Signaled { pid, signal, result } => {
                self.signaled(pid, signal, result);
                (true, Action::None)
            }
        }
    }

    fn push_sample(&mut self, s: Sample) {
        self.accept(
            Tick {
                sample: s,
                notices: Vec::new(),
            },
            &mut [],
        );
    }

    /// Per-process watts of the last interval, the idle and unattributed watts, and the history.
    fn refresh_view(&mut self) {
        if self.pipeline.seq() < 2 {
            return;
        }
        let engine = &self.pipeline.engine;
        let ledger = &engine.ledger;
        let mut split: FastMap<ProcKey, SplitW> = FastMap::default();
        split.reserve(self.view.split_w.len());
        let (mut idle_w, mut unattr_w) = (0.0, 0.0);
        if let Some(iv) = &engine.last_interval
            && iv.dt_s > 0.0
        {
            for de in &iv.devices {
                // Watts over the time the energy covers (recovered stale intervals, reset steps).
                let span = de.covers_s(iv.dt_s);
                if span <= 0.0 {
                    continue;
                }
                idle_w += de.idle_j / span;
                unattr_w += de.unattributed_j / span;
                for (k, j) in &de.shares {
                    let slot = split.entry(*k).or_default();
                    if de.kind == DeviceKind::Gpu {
                        slot.gpu_w += j / span;
                    } else {
                        slot.cpu_w += j / span;
                    }
                }
            }
        }
        let devs: Vec<(&str, f64)> = ledger
            .devices
            .iter()
            .map(|d| (d.id.as_str(), d.power_w.unwrap_or(0.0)))
            .collect();
        let procs: Vec<(ProcKey, f64)> = ledger.running().map(|e| (e.key, e.power_w)).collect();
        self.view
            .history
            .push(ledger.session_s, ledger.total_power_w(), &devs, &procs);
        self.view.split_w = split;
        self.view.idle_w = idle_w;
        self.view.unattributed_w = unattr_w;
    }

    /// Rows of the table as shown now (filtered, grouped, sorted; idle and unattributed last).
    pub fn rows(&self) -> Vec<Row> {
        rows::build(self)
    }

    /// Index of the selected row in `rows`, if it is still there.
    pub fn selected_index(&self, rows: &[Row]) -> Option<usize> {
        let sel = self.ui.selected.as_ref()?;
        rows.iter().position(|r| &r.id == sel)
    }

    /// Index of the selected row in `list`, if it is still there.
    pub fn selected_in(&self, list: &rows::Listing) -> Option<usize> {
        list.position(self.ui.selected.as_ref()?)
    }

    fn move_selection(&mut self, delta: isize) {
        let list = rows::listing(self);
        if list.is_empty() {
            self.ui.selected = None;
            return;
        }
        let cur = self.selected_in(&list);
        let next = match cur {
            None if delta >= 0 => 0,
            None => list.len() - 1,
            Some(i) => i.saturating_add_signed(delta).min(list.len() - 1),
        };
        self.ui.selected = list.id(next);
    }

    fn select_edge(&mut self, last: bool) {
        let list = rows::listing(self);
        let i = if last { list.len().checked_sub(1) } else { Some(0) };
        self.ui.selected = i.and_then(|i| list.id(i));
    }

    fn toggle_pause(&mut self) {
        if self.paused.is_some() {
            self.paused = None;
        } else {
            self.paused = Some(Box::new(Paused {
                ledger: self.pipeline.engine.ledger.clone(),
                view: self.view.clone(),
            }));
        }
    }
}

#[cfg(test)]
mod tests;
