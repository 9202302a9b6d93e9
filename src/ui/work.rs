//! Energy per unit of work on screen (`--progress-log`, `--work-metric`): one compact header item
//! (`412 steps · 3.1/s · 41 J/step`) and a section at the end of the detail view. Both map the
//! work meter's [`WorkView`]; nothing is computed here but the wording. Last-minute figures are
//! preferred in the header (the screen is live), session ones where there are none yet.

use ratatui::text::{Line, Span};

use super::items::Item;
use super::{Theme, clean};
use crate::app::App;
use crate::units;
use crate::work::live::{Rate, WorkFigures};
use crate::work::unit_for;
use crate::workmeter::WorkView;

/// `412`, `12.3k`, `4.56M`.
fn count(n: u64) -> String {
    let f = n as f64;
    if n < 10_000 {
        n.to_string()
    } else if f < 1e6 {
        format!("{:.1}k", f / 1e3)
    } else if f < 1e9 {
        format!("{:.2}M", f / 1e6)
    } else {
        format!("{:.2}G", f / 1e9)
    }
}

/// Joules per unit with the precision small values need: `41 J`, `2.35 J`, `415 mJ`, `48.0 mJ`,
/// `3.77 mJ`, `1.20 kWh`.
pub fn joules(j: f64) -> String {
    let a = j.abs();
    if !j.is_finite() {
        "N/A".into()
    } else if a >= 3600.0 {
        units::energy(j)
    } else if a >= 1.0 {
        format!("{} J", sig3(j))
    } else {
        format!("{} mJ", sig3(j * 1e3))
    }
}

/// Three significant digits (at most three decimals): `415`, `48.0`, `3.77`, `0.012`.
fn sig3(v: f64) -> String {
    let a = v.abs();
    if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

/// Grams with the precision small values need: `4.6 g`, `1.50 mg`, `296 µg` (`ug` in ASCII).
fn grams(g: f64, ascii: bool) -> String {
    if g >= 1.0 || !g.is_finite() {
        units::mass_g(g)
    } else if g >= 1e-3 {
        format!("{} mg", sig3(g * 1e3))
    } else {
        format!("{} {}g", sig3(g * 1e6), if ascii { "u" } else { "µ" })
    }
}

/// Watt-hours with the precision small values need: `11.9 Wh`, `0.625 Wh`, `1.05 mWh`, `1.20 kWh`.
fn watt_hours(wh: f64) -> String {
    if wh.abs() >= 1000.0 || !wh.is_finite() {
        units::energy(wh * 3600.0)
    } else if wh.abs() >= 0.1 {
        format!("{} Wh", sig3(wh))
    } else {
        format!("{} mWh", sig3(wh * 1e3))
    }
}

/// `3.1/s`, `250/s`.
fn per_s(r: f64) -> String {
    if r >= 100.0 {
        format!("{r:.0}/s")
    } else {
        format!("{r:.1}/s")
    }
}

/// `last 1m`, `last 42s`.
fn span(r: &Rate) -> String {
    format!("last {}", units::short_age(r.span_s.round()))
}

/// The figures the header shows: the last minute when it counted a unit, else the session.
fn live_rate(f: &WorkFigures) -> Option<&Rate> {
    f.recent.as_ref().filter(|r| r.units > 0).or(f.session.as_ref())
}

fn tilde(f: &WorkFigures) -> &'static str {
    if f.estimated { "~" } else { "" }
}

/// The header item (`412 steps · 3.1/s · 41 J/step`), shortened to J per unit alone before the
/// power now is given up; nothing without a work meter.
pub(super) fn header_item(app: &App, t: &Theme) -> Option<Item<'static>> {
    let v = app.work.as_ref().and_then(|b| b.get())?;
    let f = &v.figures;
    let unit = clean(&f.unit, t.ascii);
    if !f.started {
        return Some(Item::new(
            "  ",
            4,
            vec![Span::styled(format!("{unit}: waiting"), t.dim())],
        ));
    }
    let rate = live_rate(f);
    let j = rate.and_then(|r| r.j_per_unit).map_or_else(
        || format!("- J/{unit}"),
        |j| format!("{}{}/{unit}", tilde(f), joules(j)),
    );
    let full = format!(
        "{} {}{}{}{j}",
        count(f.units),
        unit_for(&unit, f.units as f64),
        t.sep(),
        rate.map_or_else(String::new, |r| format!("{}{}", per_s(r.per_s), t.sep())),
    );
    let gap = f
        .gap
        .as_ref()
        .map(|g| Span::styled(format!(" gap {}", units::short_age(g.for_s)), t.warn()));
    let form = |text: String| {
        let mut spans = vec![Span::styled(text, t.title())];
        spans.extend(gap.clone());
        spans
    };
    Some(Item::new("  ", 4, form(full)).or(7, form(j)))
}

fn kv(k: &str, v: String, t: &Theme) -> Line<'static> {
    Line::from(vec![Span::styled(format!("{k:<12}"), t.title()), Span::raw(v)])
}

/// The detail view's work section: nothing without a work meter.
pub(super) fn detail_lines(app: &App, t: &Theme) -> Vec<Line<'static>> {
    match app.work.as_ref().and_then(|b| b.get()) {
        Some(v) => section(&v, t),
        None => Vec::new(),
    }
}

/// The spans to show: the last minute (when the session is longer), then the session.
fn spans_of(f: &WorkFigures) -> Vec<(String, &Rate)> {
    let mut out = Vec::new();
    if let Some(r) = &f.recent
        && f.session.as_ref().is_none_or(|s| s.span_s > r.span_s)
    {
        out.push((span(r), r));
    }
    if let Some(s) = &f.session {
        out.push(("session".to_string(), s));
    }
    out
}

fn section(v: &WorkView, t: &Theme) -> Vec<Line<'static>> {
    let f = &v.figures;
    let unit = clean(&f.unit, t.ascii);
    let units = crate::work::plural(&unit);
    let m = tilde(f);
    let mut lines = vec![
        Line::raw(""),
        Line::styled(
            format!("work: {units} from {}", clean(&v.source, t.ascii)),
            t.title(),
        ),
    ];
    if !f.started {
        lines.push(kv("units", "waiting for the first answer".into(), t));
    } else {
        let restarts = match f.resets {
            0 => String::new(),
            1 => "; 1 restart".into(),
            n => format!("; {n} restarts"),
        };
        lines.push(kv(
            "units",
            format!(
                "{} {} this session (the source says {}{restarts})",
                f.units,
                unit_for(&unit, f.units as f64),
                f.reported
            ),
            t,
        ));
        lines.push(kv(
            "energy",
            format!(
                "{m}{} since counting began, {}",
                units::energy(f.energy_j),
                clean(&f.scope, t.ascii)
            ),
            t,
        ));
        let spans = spans_of(f);
        let mut per: Vec<String> = spans
            .iter()
            .map(|(which, r)| match r.j_per_unit {
                Some(j) => format!("{m}{} {which}", joules(j)),
                None => format!("no {units} {which}"),
            })
            .collect();
        if let Some(wh) = f.wh_per_1000 {
            per.push(format!("{m}{} per 1,000", watt_hours(wh)));
        }
        if let Some(g) = f.co2e_g_per_unit {
            per.push(format!("{m}{} CO2e", grams(g, t.ascii)));
        }
        if !per.is_empty() {
            lines.push(kv(&format!("per {unit}"), per.join(t.sep()), t));
        }
        let rates: Vec<String> = spans
            .iter()
            .enumerate()
            .map(|(i, (which, r))| match i {
                0 => format!("{} {units}/s {which}", per_s(r.per_s).trim_end_matches("/s")),
                _ => format!("{} {which}", per_s(r.per_s)),
            })
            .collect();
        if !rates.is_empty() {
            lines.push(kv("rate", rates.join(t.sep()), t));
        }
    }
    if let Some(g) = &f.gap {
        lines.push(Line::from(vec![
            Span::styled(format!("{:<12}", "gap"), t.warn()),
            Span::styled(
                format!(
                    "no answer for {}: {} (figures as of the last answer)",
                    units::short_age(g.for_s),
                    clean(&g.why, t.ascii)
                ),
                t.warn(),
            ),
        ]));
    }
    for n in &v.notes {
        lines.push(Line::styled(clean(n, t.ascii), t.dim()));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_per_unit_figures_keep_three_digits() {
        assert_eq!(joules(41.04), "41.0 J");
        assert_eq!(joules(2.345), "2.35 J");
        assert_eq!(joules(0.4151), "415 mJ");
        assert_eq!(joules(0.003767), "3.77 mJ");
        assert_eq!(joules(7200.0), "2.0 Wh");
        assert_eq!(joules(f64::NAN), "N/A");
        assert_eq!(grams(4.6, false), "4.6 g");
        assert_eq!(grams(0.000296, false), "296 µg");
        assert_eq!(grams(0.0015, false), "1.50 mg");
        assert_eq!(grams(0.00000105, true), "1.05 ug");
        assert_eq!(watt_hours(11.94), "11.9 Wh");
        assert_eq!(watt_hours(0.625), "0.625 Wh");
        assert_eq!(watt_hours(0.00105), "1.05 mWh");
        assert_eq!(count(412), "412");
        assert_eq!(count(19_600), "19.6k");
        assert_eq!(count(4_560_000), "4.56M");
    }
}
