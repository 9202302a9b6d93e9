//! The process table: columns chosen by priority to fit the width ([`columns`]), the sort column
//! marked, idle holders highlighted, `~` on estimated values, and the idle/unattributed rows last.

mod columns;

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row as TRow, StatefulWidget, Table, TableState, Widget};

use super::{Theme, clean, fit, rule};
use std::ops::Range;

use crate::app::rows::Listing;
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
    let list = crate::app::rows::listing(app);
    if let Some(title) = title {
        let line = title_line(app, list.len(), &list.hidden, any_est, area.width, t);
        Paragraph::new(line).render(title, buf);
    }
    let w = Widths::fit(body.width, has_gpu, columns::state_width(list.longest_state()));
    render_rows(app, &list, &w, body, buf, t);
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

/// Table rows for `list`'s rows in `range`, each formatted only now.
fn body_rows<'a>(app: &App, list: &Listing, range: Range<usize>, w: &Widths, t: &Theme) -> Vec<TRow<'a>> {
    range
        .filter_map(|i| list.row(i))
        .map(|r| {
            let style = match r.kind {
                RowKind::Idle | RowKind::Unattributed => t.dim().add_modifier(Modifier::ITALIC),
                RowKind::Exited | RowKind::Hidden => t.dim(),
                _ if r.state == "exited" => t.dim(),
                _ => Style::new(),
            };
            TRow::new(w.cols.iter().map(|c| {
                let w = usize::from(w.of(*c));
                let text = fit(&clean(&cell_text(*c, &r, app), t.ascii), w, t.ascii);
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

/// The rows of a list of `len` one-line rows that a table with `height` lines for rows shows
/// with `selected` selected: from the top, scrolled just enough to show the selected row (what
/// ratatui's `Table` does from offset 0, as each frame starts from).
fn in_view(len: usize, selected: Option<usize>, height: u16) -> Range<usize> {
    let h = usize::from(height);
    match selected {
        Some(s) if s >= h => s + 1 - h..s + 1,
        _ => 0..h.min(len),
    }
}

/// A table of `list`'s rows in `rows` (under `header` when given) drawn in `area`, `selected`
/// counted from `rows.start`: scrolled as ratatui's `Table` would scroll all of them, with only
/// the rows in view formatted.
#[allow(clippy::too_many_arguments)]
fn render_part(
    app: &App,
    list: &Listing,
    rows: Range<usize>,
    selected: Option<usize>,
    header: Option<TRow>,
    w: &Widths,
    area: Rect,
    buf: &mut Buffer,
    t: &Theme,
) {
    let lines = area.height.saturating_sub(u16::from(header.is_some()));
    let view = in_view(rows.len(), selected, lines);
    let shown = rows.start + view.start..rows.start + view.end;
    let widths: Vec<Constraint> = w.cols.iter().map(|c| Constraint::Length(w.of(*c))).collect();
    let mut table = Table::new(body_rows(app, list, shown, w, t), widths)
        .column_spacing(1)
        .row_highlight_style(t.selected());
    if let Some(header) = header {
        table = table.header(header);
    }
    let mut state = TableState::default().with_selected(selected.and_then(|i| i.checked_sub(view.start)));
    StatefulWidget::render(table, area, buf, &mut state);
}

/// The process rows under the header, and the summary rows pinned below them where there is room.
fn render_rows(app: &App, list: &Listing, w: &Widths, body: Rect, buf: &mut Buffer, t: &Theme) {
    let header = header_row(app, w, t);
    // The summary rows (exited, idle, unattributed) stay pinned under the process rows, so the
    // ENERGY column visibly adds up to the session total however long the list is.
    let pinned_h = u16::try_from(list.n_pinned()).unwrap_or(0);
    let selected = app.selected_in(list);
    if body.height < pinned_h + 4 {
        render_part(app, list, 0..list.len(), selected, Some(header), w, body, buf, t);
        return;
    }
    let main_len = list.main_len();
    let [top, bottom] = Layout::vertical([Constraint::Fill(1), Constraint::Length(pinned_h)]).areas(body);
    let in_main = selected.filter(|i| *i < main_len);
    render_part(app, list, 0..main_len, in_main, Some(header), w, top, buf, t);
    let in_pinned = selected.and_then(|i| i.checked_sub(main_len));
    render_part(
        app,
        list,
        main_len..list.len(),
        in_pinned,
        None,
        w,
        bottom,
        buf,
        t,
    );
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
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::app::rows::tests::host_app;
    use crate::app::{RowId, rows};

    /// The table as drawn before only the rows in view were made: every row formatted, and
    /// ratatui's `Table` scrolling them.
    fn draw_every_row(app: &App, area: Rect, buf: &mut Buffer, t: &Theme) {
        let has_gpu = app.ledger().devices.iter().any(|d| d.kind == DeviceKind::Gpu);
        let [title, body] = Layout::vertical([Constraint::Length(1), Constraint::Fill(1)]).areas(area);
        let list = rows::listing(app);
        let all = rows::build(app);
        let line = title_line(app, all.len(), &list.hidden, false, area.width, t);
        Paragraph::new(line).render(title, buf);
        let w = Widths::fit(body.width, has_gpu, columns::state_width(list.longest_state()));
        let header = header_row(app, &w, t);
        let mut trows = body_rows(app, &list, 0..list.len(), &w, t);
        let widths: Vec<Constraint> = w.cols.iter().map(|c| Constraint::Length(w.of(*c))).collect();
        let pinned = |k: RowKind| {
            matches!(
                k,
                RowKind::Hidden | RowKind::Exited | RowKind::Idle | RowKind::Unattributed
            )
        };
        let n_pinned = all.iter().filter(|r| pinned(r.kind)).count();
        let pinned_h = u16::try_from(n_pinned).unwrap_or(0);
        let selected = app.selected_index(&all);
        let table = |rows, header: Option<TRow<'static>>| {
            let t = Table::new(rows, widths.clone())
                .column_spacing(1)
                .row_highlight_style(t.selected());
            match header {
                Some(h) => t.header(h),
                None => t,
            }
        };
        if body.height < pinned_h + 4 {
            let mut state = TableState::default().with_selected(selected);
            StatefulWidget::render(table(trows, Some(header)), body, buf, &mut state);
            return;
        }
        let pinned: Vec<TRow> = trows.split_off(trows.len() - n_pinned);
        let main_len = trows.len();
        let [top, bottom] = Layout::vertical([Constraint::Fill(1), Constraint::Length(pinned_h)]).areas(body);
        let mut state = TableState::default().with_selected(selected.filter(|i| *i < main_len));
        StatefulWidget::render(table(trows, Some(header)), top, buf, &mut state);
        let mut state = TableState::default().with_selected(selected.and_then(|i| i.checked_sub(main_len)));
        StatefulWidget::render(table(pinned, None), bottom, buf, &mut state);
    }

    /// Whatever the selection (scrolled to the bottom, on a pinned row, none, gone) and the
    /// height, the table draws what it drew when every row was formatted.
    #[test]
    fn drawing_only_the_rows_in_view_draws_the_same_table() {
        let mut app = host_app(150, 12, 4);
        let t = Theme::new(true, false);
        let mut checked = 0;
        for group in [GroupBy::Process, GroupBy::User] {
            for (sort, filter) in [
                (Column::TotalW, ""),
                (Column::Command, "python"),
                (Column::State, ""),
            ] {
                for show_hidden in [false, true] {
                    app.ui.group = group;
                    app.ui.sort = sort;
                    app.ui.filter = filter.into();
                    app.ui.show_hidden = show_hidden;
                    let all = rows::build(&app);
                    let n = all.len();
                    let mut picks: Vec<Option<RowId>> = vec![None, Some(RowId::Group("gone".into()))];
                    for i in [
                        0,
                        4,
                        5,
                        6,
                        12,
                        31,
                        n / 2,
                        n.saturating_sub(4),
                        n.saturating_sub(3),
                        n.saturating_sub(1),
                    ] {
                        picks.push(all.get(i).map(|r| r.id.clone()));
                    }
                    for selected in picks {
                        app.ui.selected = selected;
                        for width in [80u16] {
                            for height in (1..=10).chain([13, 22, 41]) {
                                let area = Rect::new(0, 0, width, height);
                                let (mut a, mut b) = (Buffer::empty(area), Buffer::empty(area));
                                draw(&app, area, &mut a, &t);
                                if height >= 8 {
                                    draw_every_row(&app, area, &mut b, &t);
                                } else {
                                    // No title line below 8 lines.
                                    let mut c = Buffer::empty(Rect::new(0, 0, width, height + 1));
                                    draw_every_row(&app, Rect::new(0, 0, width, height + 1), &mut c, &t);
                                    for y in 0..height {
                                        for x in 0..width {
                                            b[(x, y)] = c[(x, y + 1)].clone();
                                        }
                                    }
                                }
                                assert_eq!(
                                    a, b,
                                    "{group:?} {sort:?} {filter:?} {:?} {width}x{height}",
                                    app.ui.selected
                                );
                                checked += 1;
                            }
                        }
                    }
                }
            }
        }
        assert!(checked > 1_000, "{checked}");
    }
}
