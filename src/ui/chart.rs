//! The power history chart: total and per device over the selected window (`w` / `W`).
//! Braille in Unicode mode, `*` and `.` in ASCII mode.

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Modifier;
use ratatui::symbols::Marker;
use ratatui::text::Span;
use ratatui::widgets::{Axis, Chart, Dataset, GraphType, Paragraph, Widget};

use super::{Theme, clean, rule};
use crate::app::App;
use crate::units;

/// `10m`, `1h`, `30d`.
pub fn window_label(s: f64) -> String {
    if s >= 86_400.0 {
        format!("{:.0}d", s / 86_400.0)
    } else if s >= 3600.0 {
        format!("{:.0}h", s / 3600.0)
    } else {
        format!("{:.0}m", s / 60.0)
    }
}

pub(super) fn draw(app: &App, area: Rect, buf: &mut Buffer, t: &Theme) {
    let [title, body] = Layout::vertical([Constraint::Length(1), Constraint::Fill(1)]).areas(area);
    let view = app.shown();
    let ledger = app.ledger();
    let span_s = app.window_s();
    let now = view.history.now_s;
    let total = view.history.total.window(now, span_s);
    let devs: Vec<(String, Vec<(f64, f64)>)> = view
        .history
        .devices
        .iter()
        .map(|(id, s)| (id.clone(), s.window(now, span_s)))
        .collect();
    let mut spans = vec![Span::styled(
        format!("power, last {}", window_label(span_s)),
        t.title(),
    )];
    spans.push(Span::raw(format!(
        "  total {}",
        units::power(ledger.total_power_w())
    )));
    if t.ascii {
        spans.push(Span::raw(" (*)"));
    }
    for (i, (id, _)) in devs.iter().enumerate() {
        spans.push(Span::raw("  "));
        spans.push(Span::styled(clean(id, t.ascii), t.series(i)));
    }
    Paragraph::new(rule(spans, area.width, t)).render(title, buf);
    if body.height < 2 || body.width < 10 {
        return;
    }
    let max = total
        .iter()
        .chain(devs.iter().flat_map(|(_, p)| p.iter()))
        .map(|p| p.1)
        .fold(0.0_f64, f64::max);
    let top = nice_ceiling(max.max(1.0));
    let (total_marker, dev_marker) = if t.ascii {
        (Marker::Custom('*'), Marker::Custom('.'))
    } else {
        (Marker::Braille, Marker::Braille)
    };
    let mut sets = Vec::new();
    for (i, (_, pts)) in devs.iter().enumerate() {
        if devs.len() > 1 {
            sets.push(
                Dataset::default()
                    .data(pts)
                    .marker(dev_marker)
                    .graph_type(GraphType::Line)
                    .style(t.series(i)),
            );
        }
    }
    sets.push(
        Dataset::default()
            .data(&total)
            .marker(total_marker)
            .graph_type(GraphType::Line)
            .style(t.title().add_modifier(Modifier::BOLD)),
    );
    // Quantise the right edge to one braille dot: the plot shifts only when a whole dot of time
    // has passed, not on every sample, which keeps redraws (bytes sent over SSH) small.
    let dots = f64::from(body.width.saturating_sub(8).max(1)) * 2.0;
    let dot_s = span_s / dots;
    let right = (now / dot_s).ceil() * dot_s;
    let from = right - span_s;
    let chart = Chart::new(sets)
        .x_axis(Axis::default().bounds([from, right.max(from + 1.0)]).labels([
            Span::styled(format!("-{}", window_label(span_s)), t.dim()),
            Span::styled("now", t.dim()),
        ]))
        .y_axis(Axis::default().bounds([0.0, top]).labels([
            Span::styled("0", t.dim()),
            Span::styled(units::power(top), t.dim()),
        ]))
        .legend_position(None);
    chart.render(body, buf);
}

/// 1, 2 or 5 times a power of ten, at least `v`.
fn nice_ceiling(v: f64) -> f64 {
    let Some(exp) = units::decimal_exponent(v) else {
        return v;
    };
    let base = units::pow10(exp);
    for m in [1.0, 2.0, 5.0, 10.0] {
        if m * base >= v {
            return m * base;
        }
    }
    10.0 * base
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_ceilings() {
        assert_eq!(nice_ceiling(804.0), 1000.0);
        assert_eq!(nice_ceiling(150.0), 200.0);
        assert_eq!(nice_ceiling(1.0), 1.0);
        assert_eq!(window_label(600.0), "10m");
        assert_eq!(window_label(2_592_000.0), "30d");
    }
}
