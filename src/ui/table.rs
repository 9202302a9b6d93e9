//! The process table: columns chosen by priority to fit the width ([`columns`]), the sort column
//! marked, idle holders highlighted, `~` on estimated values, and the idle/unattributed rows last.

mod columns;

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row as TRow, StatefulWidget, Table, TableState, Widget};

use super::{Theme, clean, fit, rule};
use crate::app::{App, Column, Equiv, Hidden, Row, RowKind};
use crate::ledger::GroupBy;
use crate::sample::{DeviceKind, Provenance};
use crate::units;
use columns::Widths;

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
        Column::Equiv => app.ui.equiv.header(&app.impact),
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
        Column::Equiv => {
            let v = app.ui.equiv.value(&app.impact, r.energy_j);
            let text = match app.ui.equiv {
                // The currency is in the column's header.
                Equiv::Cost => units::money(v, "").trim_end().to_string(),
                _ => num(v),
            };
            format!("{}{text}", t(r.estimated))
        }
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
    let w = Widths::fit(body.width, has_gpu, columns::state_width(&rows));
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
        let w = usize::from(w.of(*c));
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
    let widths: Vec<Constraint> = w.cols.iter().map(|c| Constraint::Length(w.of(*c))).collect();
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
