//! Header (host, grid, PUE, session time and totals, alerts) and the device strip (one line per
//! GPU and CPU domain: W / limit gauge, utilisation, memory, temperature, energy, provenance).
//! The header is made of [`items`]: narrower, it drops whole items, least important first, and
//! never cuts a word.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Widget};

use super::items::{self, Item, KEEP};
use super::{Theme, clean, fit};
use crate::app::App;
use crate::ledger::DeviceTotals;
use crate::sample::{DeviceKind, Provenance};
use crate::units;

pub(super) fn draw_header(app: &App, area: Rect, buf: &mut Buffer, t: &Theme) {
    let width = usize::from(area.width);
    let lines = if area.height >= 2 {
        vec![
            items::fit(&line1_items(app, t), width),
            items::fit(&line2_items(app, t), width),
        ]
    } else {
        vec![items::fit(&one_line_items(app, t), width)]
    };
    Paragraph::new(lines).render(area, buf);
}

/// `~` when the session total comes (in part) from an estimate.
fn est_mark(app: &App) -> &'static str {
    if app.ledger().provenance() == Provenance::Estimated {
        "~"
    } else {
        ""
    }
}

/// The first header line: kwtop, host, session clock, grid, PUE, devices. Narrower, it drops the
/// grid's year, then the device count (the strip below lists them), PUE, the grid's label.
fn line1_items<'a>(app: &App, t: &Theme) -> Vec<Item<'a>> {
    let ledger = app.ledger();
    let sep = t.sep();
    let count = |k: DeviceKind| ledger.devices.iter().filter(|d| d.kind == k).count();
    let devs = match (count(DeviceKind::Gpu), count(DeviceKind::Cpu)) {
        (0, c) => format!("{c} CPU pkg"),
        (g, c) => format!("{g} GPU + {c} CPU pkg"),
    };
    let grid = &app.impact.grid;
    let label = clean(&grid.label, t.ascii);
    let g = grid.g_per_kwh;
    let full = format!("grid {label} {g:.0} g/kWh");
    let grid_item = match grid.year {
        Some(y) => Item::new(sep, 1, vec![Span::raw(format!("{full} ({y})"))]).or(4, vec![Span::raw(full)]),
        None => Item::new(sep, 4, vec![Span::raw(full)]),
    }
    .or(6, vec![Span::raw(format!("grid {g:.0} g/kWh"))]);
    vec![
        Item::new("", KEEP, vec![Span::styled("kwtop", t.title())]),
        Item::new(
            sep,
            KEEP,
            vec![Span::styled(
                fit(&clean(&app.opts.host, t.ascii), 24, t.ascii),
                t.title(),
            )],
        ),
        Item::new(sep, 7, vec![Span::raw(units::clock(ledger.session_s))]),
        grid_item,
        Item::new(sep, 3, vec![Span::raw(format!("PUE {:.2}", app.impact.pue))]),
        Item::new(sep, 2, vec![Span::raw(devs)]),
    ]
}

/// The second header line: session kWh (IT energy, so the rows add up to it), facility kWh where
/// PUE is not 1, CO2e and the everyday equivalent (both include PUE; `c` picks which), the power
/// now, and the alerts. Narrower, it drops the idle holders' detail, the facility figure, the
/// equivalent, the power now and CO2e, in that order; PAUSED always stays.
fn line2_items<'a>(app: &App, t: &Theme) -> Vec<Item<'a>> {
    let ledger = app.ledger();
    let sep = t.sep();
    let est = est_mark(app);
    let energy = ledger.total_energy_j();
    let mut items = vec![Item::new(
        "",
        KEEP,
        vec![
            Span::raw(format!("session {est}")),
            Span::styled(format!("{:.3} kWh", app.impact.kwh(energy)), t.title()),
        ],
    )];
    if let Some(pue) = app.impact.facility_differs() {
        items.push(Item::new(
            sep,
            2,
            vec![Span::raw(format!(
                "facility {est}{:.3} kWh at PUE {pue:.2}",
                app.impact.facility_kwh(energy)
            ))],
        ));
    }
    items.push(Item::new(
        sep,
        8,
        vec![Span::styled(
            format!("{est}{} CO2e", units::mass_g(app.impact.co2e_g(energy))),
            t.title(),
        )],
    ));
    items.push(Item::new(
        sep,
        3,
        vec![Span::raw(format!(
            "{} {}",
            t.approx(),
            app.ui.equiv.phrase(&app.impact, energy)
        ))],
    ));
    items.push(Item::new(
        sep,
        5,
        vec![Span::raw(format!(
            "now {est}{}",
            units::power(ledger.total_power_w())
        ))],
    ));
    items.extend(super::work::header_item(app, t));
    items.extend(alerts(app, t));
    items
}

/// The header on one line (short terminals): host, clock, kWh, CO2e, power, alerts.
fn one_line_items<'a>(app: &App, t: &Theme) -> Vec<Item<'a>> {
    let ledger = app.ledger();
    let est = est_mark(app);
    let energy = ledger.total_energy_j();
    let mut items = vec![
        Item::new("", KEEP, vec![Span::styled("kwtop", t.title())]),
        Item::new(
            " ",
            KEEP,
            vec![Span::raw(fit(&clean(&app.opts.host, t.ascii), 16, t.ascii))],
        ),
        Item::new(" ", 4, vec![Span::raw(units::clock(ledger.session_s))]),
        Item::new(
            " ",
            KEEP,
            vec![Span::raw(format!("{est}{:.3} kWh", app.impact.kwh(energy)))],
        ),
        Item::new(
            " ",
            8,
            vec![Span::raw(format!(
                "{est}{} CO2e",
                units::mass_g(app.impact.co2e_g(energy))
            ))],
        ),
        Item::new(
            " ",
            5,
            vec![Span::raw(format!(
                "{est}{}",
                units::power(ledger.total_power_w())
            ))],
        ),
    ];
    items.extend(super::work::header_item(app, t));
    items.extend(alerts(app, t));
    items
}

/// PAUSED (always shown), the idle holders (`⚠ 1 idle holder on gpu1 (8.2 Wh while idle)`, shorter
/// when narrow) and the devices that are not available.
fn alerts<'a>(app: &App, t: &Theme) -> Vec<Item<'a>> {
    let ledger = app.ledger();
    let mut items = Vec::new();
    if app.paused.is_some() {
        items.push(Item::new("  ", KEEP, vec![Span::styled("PAUSED", t.warn())]));
    }
    let holders = ledger.idle_holders().count();
    if holders > 0 {
        // The GPUs they idle on, in device order.
        let on: Vec<&str> = ledger
            .devices
            .iter()
            .enumerate()
            .filter(|(i, _)| {
                ledger
                    .idle_holders()
                    .any(|e| e.idle().flagged_gpus().any(|g| g.dev == *i))
            })
            .map(|(_, d)| d.id.as_str())
            .collect();
        let what = format!(
            "{} {holders} idle holder{}",
            t.alert(),
            if holders == 1 { "" } else { "s" }
        );
        let on = format!("{what} on {}", crate::ledger::short_gpu_list(on));
        let wasted = units::energy(ledger.idle_holder_wasted_j());
        items.push(
            Item::new(
                "  ",
                1,
                vec![Span::styled(format!("{on} ({wasted} while idle)"), t.warn())],
            )
            .or(4, vec![Span::styled(on, t.warn())])
            .or(9, vec![Span::styled(what, t.warn())]),
        );
    }
    let unavailable = ledger.devices.iter().filter(|d| d.status.is_some()).count();
    if unavailable > 0 {
        items.push(Item::new(
            "  ",
            9,
            vec![Span::styled(
                format!("{} {unavailable} device N/A", t.alert()),
                t.bad(),
            )],
        ));
    }
    items
}

pub(super) fn draw_devices(app: &App, area: Rect, buf: &mut Buffer, t: &Theme) {
    let ledger = app.ledger();
    let rows = usize::from(area.height);
    let mut lines: Vec<Line> = Vec::new();
    if ledger.devices.is_empty() {
        lines.push(Line::styled("waiting for the first sample…", t.dim()));
    }
    let n = ledger.devices.len();
    for (i, d) in ledger.devices.iter().enumerate() {
        if lines.len() + 1 == rows && n > rows {
            lines.push(Line::styled(
                format!("+{} more devices (taller terminal shows them)", n - i),
                t.dim(),
            ));
            break;
        }
        lines.push(device_line(app, d, area.width, t));
    }
    Paragraph::new(lines).render(area, buf);
}

fn device_line<'a>(app: &App, d: &DeviceTotals, width: u16, t: &Theme) -> Line<'a> {
    let wide = width >= 100;
    let est = d.provenance == Provenance::Estimated;
    let tilde = if est { "~" } else { "" };
    let label = match d.kind {
        DeviceKind::Gpu => d.id.to_uppercase(),
        DeviceKind::Cpu => d.id.to_uppercase(),
        DeviceKind::Dram => d.id.to_uppercase(),
    };
    let name_w = if wide { 16 } else { 10 };
    // An estimated CPU's name ends with what was assumed; that is shown in full at the line's end.
    let assumed = d
        .last
        .estimate
        .as_ref()
        .filter(|_| est)
        .map(|e| e.tdp_source.as_str());
    let short = assumed
        .and_then(|a| d.name.strip_suffix(a))
        .and_then(|s| s.strip_suffix(", ~ "))
        .unwrap_or(&d.name);
    let short = crate::sample::vendor_name(d.last.vendor.as_deref(), short);
    let name = fit(&clean(&short, t.ascii), name_w, t.ascii);
    let mut spans = vec![
        Span::styled(format!("{label:<5} "), t.title()),
        Span::raw(format!("{name:<name_w$} ")),
    ];
    let limit = d
        .last
        .power_limit_w
        .or_else(|| d.last.estimate.as_ref().map(|e| e.tdp_w))
        .filter(|l| *l > 0.0);
    let gauge_w = if wide { 14 } else { 8 };
    match d.power_w {
        Some(w) => {
            let ratio = limit.map_or(0.0, |l| (w / l).clamp(0.0, 1.0));
            let style = if ratio >= 0.9 {
                t.bad()
            } else if ratio >= 0.7 {
                t.warn()
            } else {
                t.good()
            };
            spans.push(Span::styled(gauge(ratio, gauge_w, t.ascii), style));
            let text = match limit {
                Some(l) => format!(" {tilde}{:.0}/{:.0} W", w, l),
                None => format!(" {tilde}{}", units::power(w)),
            };
            let s = if est { t.estimated() } else { Style::new() };
            spans.push(Span::styled(format!("{text:<12}"), s));
        }
        None => {
            spans.push(Span::styled(
                format!("{} N/A{:<8}", " ".repeat(gauge_w), ""),
                t.bad(),
            ));
        }
    }
    let util_name = if d.kind == DeviceKind::Gpu { "SM" } else { "load" };
    spans.push(Span::raw(match d.last.util_pct {
        Some(u) => format!(" {util_name} {u:>3.0}%"),
        None => format!(" {util_name}  N/A"),
    }));
    if d.kind == DeviceKind::Gpu {
        spans.push(Span::raw(match (d.last.mem_used_bytes, d.last.mem_total_bytes) {
            (Some(u), Some(tot)) => format!(
                "  mem {:>11}",
                format!("{}/{}", units::bytes(u), units::bytes(tot))
            ),
            (Some(u), None) => format!("  mem {:>11}", units::bytes(u)),
            _ => "  mem         N/A".into(),
        }));
        spans.push(Span::raw(match d.last.temperature_c {
            Some(c) => format!("  {c:>3.0}{}", t.degree()),
            None => "  N/A".into(),
        }));
    }
    spans.push(Span::raw(format!("  {tilde}{:>9}", units::energy(d.energy_j))));
    let prov = match (d.provenance, &d.status) {
        (_, Some(why)) => Span::styled(format!("  N/A: {}", clean(why, t.ascii)), t.bad()),
        (Provenance::Estimated, None) => match assumed {
            Some(a) if t.ascii => Span::styled(
                format!("  ~ {}", clean(&a.replace('×', "x").replace('–', "-"), true)),
                t.estimated(),
            ),
            Some(a) => Span::styled(format!("  ~ {}", clean(a, false)), t.estimated()),
            None => Span::styled("  ~estimated", t.estimated()),
        },
        (p, None) => match &d.last.source {
            // "measured (NVML)", "integrated (hwmon power)": how and from what.
            Some(src) => Span::styled(format!("  {} ({})", p.as_str(), clean(src, t.ascii)), t.dim()),
            None => Span::styled(format!("  {}", p.as_str()), t.dim()),
        },
    };
    spans.push(prov);
    if d.kind == DeviceKind::Gpu {
        // Only processes flagged idle on this GPU (one busy here and idle elsewhere is not).
        let holders: Vec<String> = app
            .ledger()
            .idle_holders()
            .filter(|e| e.idle().flagged_gpus().any(|g| g.device == d.id))
            .map(|e| e.key.pid.to_string())
            .collect();
        if !holders.is_empty() {
            spans.push(Span::styled(
                format!("  IDLE held by {}", holders.join(",")),
                t.warn(),
            ));
        }
    }
    if d.status.is_none() && !d.notes.is_empty() {
        // Up, but something failed or was assumed: say what, without calling the device N/A.
        spans.push(Span::styled(
            format!("  {} {}", t.alert(), clean(&d.notes.join("; "), t.ascii)),
            t.warn(),
        ));
    }
    Line::from(spans)
}

/// A bar of `width` cells filled to `ratio` (eighths in Unicode, `#` in ASCII).
pub fn gauge(ratio: f64, width: usize, ascii: bool) -> String {
    let ratio = if ratio.is_finite() {
        ratio.clamp(0.0, 1.0)
    } else {
        0.0
    };
    if ascii {
        let inner = width.saturating_sub(2);
        let n = (ratio * inner as f64).round() as usize;
        return format!("[{}{}]", "#".repeat(n), ".".repeat(inner - n.min(inner)));
    }
    const PART: [&str; 8] = ["", "▏", "▎", "▍", "▌", "▋", "▊", "▉"];
    let eighths = (ratio * width as f64 * 8.0).round() as usize;
    let full = (eighths / 8).min(width);
    let mut s = "█".repeat(full);
    let mut used = full;
    if full < width {
        let p = PART[eighths % 8];
        if !p.is_empty() {
            s.push_str(p);
            used += 1;
        }
    }
    s.push_str(&" ".repeat(width - used));
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use unicode_width::UnicodeWidthStr;

    #[test]
    fn gauge_has_fixed_width() {
        for i in 0..=20 {
            let r = f64::from(i) / 20.0;
            assert_eq!(gauge(r, 10, false).width(), 10);
            assert_eq!(gauge(r, 10, true).len(), 10);
        }
        assert_eq!(gauge(f64::NAN, 4, false), "    ");
        assert_eq!(gauge(1.0, 4, true), "[##]");
    }
}
