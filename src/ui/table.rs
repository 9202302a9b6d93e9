//! The process table: columns chosen by priority to fit the width, the sort column marked, idle
//! holders highlighted, `~` on estimated values, and the idle/unattributed rows last.

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row as TRow, StatefulWidget, Table, TableState, Widget};

use super::{Theme, clean, fit, rule};
use crate::app::{App, Column, Hidden, Row, RowKind};
use crate::ledger::GroupBy;
use crate::sample::{DeviceKind, Provenance};
use crate::units;

/// Column width (cells) and priority (lower = kept longer when the terminal is narrow).
fn spec(c: Column) -> (u16, u8) {
    match c {
        Column::Pid => (7, 0),
        Column::User => (8, 4),
        Column::Dev => (4, 11),
        Column::GpuW => (7, 6),
        Column::CpuW => (7, 7),
        Column::TotalW => (8, 1),
        Column::AvgW => (7, 12),
        Column::Energy => (10, 3),
        Column::Co2e => (8, 8),
        Column::Equiv => (7, 13),
        Column::GpuPct => (4, 9),
        Column::GpuMem => (7, 10),
        Column::State => (8, 5),
        Column::Command => (14, 2),
    }
}

/// Width of the STATE column: 8 cells, wider (up to 16, taken from the command column, which keeps
/// at least its minimum) when a row says `IDLE 42m gpu1`. `spare`: the command column's cells
/// beyond its minimum.
fn state_width(rows: &[Row], spare: u16) -> u16 {
    let base = spec(Column::State).0;
    let longest = rows
        .iter()
        .map(|r| unicode_width::UnicodeWidthStr::width(r.state.as_str()))
        .max()
        .unwrap_or(0);
    u16::try_from(longest)
        .unwrap_or(u16::MAX)
        .clamp(base, 16)
        .min(base + spare)
}

/// Width of column `c` (the STATE column's from [`state_width`]).
fn width_of(c: Column, state_w: u16) -> u16 {
    if c == Column::State { state_w } else { spec(c).0 }
}

/// Columns that fit in `width`, in display order.
pub fn columns(width: u16, has_gpu: bool) -> Vec<Column> {
    let mut by_prio: Vec<Column> = Column::ALL
        .iter()
        .copied()
        .filter(|c| has_gpu || !matches!(c, Column::GpuW | Column::GpuPct | Column::GpuMem | Column::Dev))
        .collect();
    by_prio.sort_by_key(|c| spec(*c).1);
    // The command gets a quarter of the width (14..40 cells) before the optional columns.
    let cmd_reserve = (width / 4).clamp(spec(Column::Command).0, 40);
    let mut used: u16 = cmd_reserve.saturating_sub(spec(Column::Command).0);
    let mut keep = Vec::new();
    for c in by_prio {
        let w = spec(c).0 + 1;
        if used + w <= width {
            used += w;
            keep.push(c);
        }
    }
    Column::ALL.iter().copied().filter(|c| keep.contains(c)).collect()
}

fn header_text(c: Column, app: &App) -> String {
    match c {
        Column::Pid => if app.ui.group == GroupBy::Process {
            "PID"
        } else {
            "PROCS"
        }
        .into(),
        Column::User => "USER".into(),
        Column::Dev => "DEV".into(),
        Column::GpuW => "GPU W".into(),
        Column::CpuW => "CPU W".into(),
        Column::TotalW => "TOTAL W".into(),
        Column::AvgW => "AVG W".into(),
        Column::Energy => "ENERGY".into(),
        Column::Co2e => "CO2e".into(),
        Column::Equiv => app.ui.equiv.header().into(),
        Column::GpuPct => "GPU%".into(),
        Column::GpuMem => "GPU MEM".into(),
        Column::State => "STATE".into(),
        Column::Command => match app.ui.group {
            GroupBy::Process => "COMMAND".into(),
            g => g.as_str().to_uppercase(),
        },
    }
}

fn num(v: f64) -> String {
    if !v.is_finite() {
        "N/A".into()
    } else if v.abs() < 10.0 {
        format!("{v:.2}")
    } else if v.abs() < 100.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.0}")
    }
}

fn cell_text(c: Column, r: &Row, app: &App) -> String {
    let t = |b: bool| if b { "~" } else { "" };
    let watts =
        |w: Option<f64>, e: bool| w.map_or_else(|| "-".into(), |w| format!("{}{}", t(e), units::power(w)));
    match c {
        Column::Pid => r.pid.clone(),
        Column::User => r.user.clone(),
        Column::Dev => r.dev.clone(),
        Column::GpuW => watts(r.gpu_w, false),
        Column::CpuW => watts(r.cpu_w, r.cpu_estimated),
        Column::TotalW => format!("{}{}", t(r.estimated), units::power(r.total_w)),
        Column::AvgW => watts(r.avg_w, r.estimated),
        Column::Energy => format!("{}{}", t(r.estimated), units::energy(r.energy_j)),
        Column::Co2e => format!(
            "{}{}",
            t(r.estimated),
            units::mass_g(app.impact.co2e_g(r.energy_j))
        ),
        Column::Equiv => format!(
            "{}{}",
            t(r.estimated),
            num(app.ui.equiv.value(&app.impact, r.energy_j))
        ),
        Column::GpuPct => r.gpu_pct.map_or_else(|| "-".into(), |p| format!("{p:.0}")),
        Column::GpuMem => r.gpu_mem.map_or_else(|| "-".into(), units::bytes),
        Column::State => r.state.clone(),
        Column::Command => r.command.clone(),
    }
}

fn right_aligned(c: Column) -> bool {
    !matches!(c, Column::User | Column::Dev | Column::State | Column::Command)
}

pub(super) fn draw(app: &App, area: Rect, buf: &mut Buffer, t: &Theme) {
    let ledger = app.ledger();
    let has_gpu = ledger.devices.iter().any(|d| d.kind == DeviceKind::Gpu);
    let any_est = ledger
        .devices
        .iter()
        .any(|d| d.provenance == Provenance::Estimated);
    let (title, body) = if area.height >= 8 {
        let [a, b] = Layout::vertical([Constraint::Length(1), Constraint::Fill(1)]).areas(area);
        (Some(a), b)
    } else {
        (None, area)
    };
    let (rows, hidden) = crate::app::rows::build_counted(app);
    if let Some(title) = title {
        let line = title_line(app, rows.len(), &hidden, any_est, area.width, t);
        Paragraph::new(line).render(title, buf);
    }
    let w = Widths::fit(body.width, has_gpu, &rows);
    render_rows(app, &rows, &w, body, buf, t);
}

/// The rule above the table: group, sort, filter, how many rows, what is hidden, the `~` legend.
fn title_line<'a>(
    app: &App,
    n_rows: usize,
    hidden: &Hidden,
    any_est: bool,
    width: u16,
    t: &Theme,
) -> Line<'a> {
    let mut spans = vec![
        Span::styled("processes", t.title()),
        Span::raw(format!(
            "  group {}  sort {}{}",
            app.ui.group.as_str(),
            header_text(app.ui.sort, app),
            t.arrow(
                app.ui.reverse,
                matches!(
                    app.ui.sort,
                    Column::Pid | Column::User | Column::Dev | Column::State | Column::Command
                )
            ),
        )),
    ];
    if !app.ui.filter.is_empty() {
        spans.push(Span::styled(
            format!("  filter \"{}\"", clean(&app.ui.filter, t.ascii)),
            t.warn(),
        ));
    }
    spans.push(Span::raw(format!("  {n_rows} rows")));
    let used: usize = spans.iter().map(Span::width).sum::<usize>() + 4;
    if let Some(h) = hidden_text(hidden, t, usize::from(width).saturating_sub(used)) {
        spans.push(Span::styled(format!("  {h}"), t.dim()));
    }
    if any_est {
        spans.push(Span::styled(
            "  ~ = estimated (CPU model, not a sensor)",
            t.estimated(),
        ));
    }
    rule(spans, width, t)
}

/// The columns that fit and their widths: STATE as wide as its longest text allows, COMMAND the rest.
struct Widths {
    cols: Vec<Column>,
    state_w: u16,
    cmd_w: u16,
}

impl Widths {
    fn fit(width: u16, has_gpu: bool, rows: &[Row]) -> Self {
        let cols = columns(width, has_gpu);
        let base_fixed: u16 = cols
            .iter()
            .filter(|c| **c != Column::Command)
            .map(|c| spec(*c).0 + 1)
            .sum();
        let spare = width.saturating_sub(base_fixed + spec(Column::Command).0);
        let state_w = if cols.contains(&Column::State) {
            state_width(rows, spare)
        } else {
            spec(Column::State).0
        };
        let fixed: u16 = cols
            .iter()
            .filter(|c| **c != Column::Command)
            .map(|c| width_of(*c, state_w) + 1)
            .sum();
        let cmd_w = width.saturating_sub(fixed).max(1);
        Widths { cols, state_w, cmd_w }
    }

    /// The width of column `c`.
    fn of(&self, c: Column) -> u16 {
        if c == Column::Command {
            self.cmd_w
        } else {
            width_of(c, self.state_w)
        }
    }

    fn constraints(&self) -> Vec<Constraint> {
        self.cols
            .iter()
            .map(|c| Constraint::Length(self.of(*c)))
            .collect()
    }
}

fn header_row<'a>(app: &App, w: &Widths, t: &Theme) -> TRow<'a> {
    TRow::new(w.cols.iter().map(|c| {
        let mut h = header_text(*c, app);
        if *c == app.ui.sort {
            h.push_str(t.arrow(
                app.ui.reverse,
                matches!(
                    c,
                    Column::Pid | Column::User | Column::Dev | Column::State | Column::Command
                ),
            ));
        }
        let w = usize::from(width_of(*c, w.state_w));
        let h = if right_aligned(*c) { format!("{h:>w$}") } else { h };
        Cell::from(h)
    }))
    .style(t.header_row())
}

fn body_rows<'a>(app: &App, rows: &[Row], w: &Widths, t: &Theme) -> Vec<TRow<'a>> {
    rows.iter()
        .map(|r| {
            let style = match r.kind {
                RowKind::Idle | RowKind::Unattributed => t.dim().add_modifier(Modifier::ITALIC),
                RowKind::Exited | RowKind::Hidden => t.dim(),
                _ if r.state == "exited" => t.dim(),
                _ => Style::new(),
            };
            TRow::new(w.cols.iter().map(|c| {
                let w = usize::from(w.of(*c));
                let text = fit(&clean(&cell_text(*c, r, app), t.ascii), w, t.ascii);
                let text = if right_aligned(*c) {
                    format!("{text:>w$}")
                } else {
                    text
                };
                let s = match c {
                    Column::State if r.idle_holder => t.warn(),
                    Column::CpuW if r.cpu_estimated => t.estimated(),
                    Column::TotalW | Column::Energy if r.estimated => t.estimated(),
                    _ => Style::new(),
                };
                Cell::from(Line::styled(text, s))
            }))
            .style(style)
        })
        .collect()
}

/// The process rows under the header, and the summary rows pinned below them where there is room.
fn render_rows(app: &App, rows: &[Row], w: &Widths, body: Rect, buf: &mut Buffer, t: &Theme) {
    let header = header_row(app, w, t);
    let mut trows = body_rows(app, rows, w, t);
    let widths = w.constraints();
    // The summary rows (exited, idle, unattributed) stay pinned under the process rows, so the
    // ENERGY column visibly adds up to the session total however long the list is.
    let n_pinned = rows.iter().filter(|r| is_pinned(r.kind)).count();
    let pinned_h = u16::try_from(n_pinned).unwrap_or(0);
    let selected = app.selected_index(rows);
    if body.height < pinned_h + 4 {
        let table = Table::new(trows, widths)
            .header(header)
            .column_spacing(1)
            .row_highlight_style(t.selected());
        let mut state = TableState::default().with_selected(selected);
        StatefulWidget::render(table, body, buf, &mut state);
        return;
    }
    let pinned: Vec<TRow> = trows.split_off(trows.len() - n_pinned);
    let main_len = trows.len();
    let [top, bottom] = Layout::vertical([Constraint::Fill(1), Constraint::Length(pinned_h)]).areas(body);
    let table = Table::new(trows, widths.clone())
        .header(header)
        .column_spacing(1)
        .row_highlight_style(t.selected());
    let mut state = TableState::default().with_selected(selected.filter(|i| *i < main_len));
    StatefulWidget::render(table, top, buf, &mut state);
    let table = Table::new(pinned, widths)
        .column_spacing(1)
        .row_highlight_style(t.selected());
    let mut state = TableState::default().with_selected(selected.and_then(|i| i.checked_sub(main_len)));
    StatefulWidget::render(table, bottom, buf, &mut state);
}

fn is_pinned(k: RowKind) -> bool {
    matches!(
        k,
        RowKind::Hidden | RowKind::Exited | RowKind::Idle | RowKind::Unattributed
    )
}

/// The title's note on hidden rows: "38 hidden: kernel threads, no energy yet · K shows them"
/// ("38 hidden · K" where that does not fit in `room` cells), or "K hides 38" while they are
/// shown; `None` when there is nothing to hide.
fn hidden_text(h: &Hidden, t: &Theme, room: usize) -> Option<String> {
    let n = h.count();
    if n == 0 {
        return None;
    }
    if h.shown {
        return Some(format!("K hides {n}"));
    }
    let mut why = Vec::new();
    if h.kernel_threads > 0 {
        why.push("kernel threads");
    }
    if h.no_energy > 0 {
        why.push("no energy yet");
    }
    let sep = t.sep().trim();
    let long = format!("{n} hidden: {} {sep} K shows them", why.join(", "));
    if long.chars().count() <= room {
        Some(long)
    } else {
        Some(format!("{n} hidden {sep} K"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn narrow_tables_keep_the_essentials() {
        let c = columns(60, true);
        assert!(c.contains(&Column::Pid) && c.contains(&Column::TotalW) && c.contains(&Column::Command));
        assert!(!c.contains(&Column::Equiv));
        let wide = columns(250, true);
        assert_eq!(wide.len(), Column::ALL.len());
        assert!(!columns(250, false).contains(&Column::GpuW));
    }
}
