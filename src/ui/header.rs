//! Header (host, grid, PUE, session time and totals, alerts) and the device strip (one line per
//! GPU and CPU domain: W / limit gauge, utilisation, memory, temperature, energy, provenance).

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Widget};

use super::{Theme, clean, fit};
use crate::app::App;
use crate::ledger::DeviceTotals;
use crate::sample::{DeviceKind, Provenance};
use crate::units;

pub(super) fn draw_header(app: &App, area: Rect, buf: &mut Buffer, t: &Theme) {
    let ledger = app.ledger();
    let sep = t.sep();
    let energy = ledger.total_energy_j();
    let est = if ledger.provenance() == Provenance::Estimated {
        "~"
    } else {
        ""
    };
    let n_gpu = ledger
        .devices
        .iter()
        .filter(|d| d.kind == DeviceKind::Gpu)
        .count();
    let n_cpu = ledger
        .devices
        .iter()
        .filter(|d| d.kind == DeviceKind::Cpu)
        .count();
    let devs = match (n_gpu, n_cpu) {
        (0, c) => format!("{c} CPU pkg"),
        (g, c) => format!("{g} GPU + {c} CPU pkg"),
    };
    let grid = &app.impact.grid;
    let year = grid.year.map(|y| format!(" ({y})")).unwrap_or_default();
    let grid_text = format!(
        "grid {} {:.0} g/kWh{year}",
        clean(&grid.label, t.ascii),
        grid.g_per_kwh
    );
    let clock = units::clock(ledger.session_s);
    let holders = ledger.idle_holders().count();
    let mut alerts: Vec<Span> = Vec::new();
    if app.paused.is_some() {
        alerts.push(Span::styled(" PAUSED ", t.warn()));
    }
    if holders > 0 {
        // The GPUs they idle on, in device order.
        let on: Vec<&str> = ledger
            .devices
            .iter()
            .enumerate()
            .filter(|(i, _)| {
                ledger
                    .idle_holders()
                    .any(|e| e.idle.flagged_gpus().any(|g| g.dev == *i))
            })
            .map(|(_, d)| d.id.as_str())
            .collect();
        alerts.push(Span::styled(
            format!(
                "{} {holders} idle holder{} on {} ({} while idle)",
                t.alert(),
                if holders == 1 { "" } else { "s" },
                crate::ledger::short_gpu_list(on),
                units::energy(ledger.idle_holder_wasted_j())
            ),
            t.warn(),
        ));
    }
    let unavailable = ledger.devices.iter().filter(|d| d.status.is_some()).count();
    if unavailable > 0 {
        alerts.push(Span::styled(
            format!(" {} {unavailable} device N/A", t.alert()),
            t.bad(),
        ));
    }
    let equiv = app.impact.equivalents(energy);
    if area.height >= 2 {
        let line1 = Line::from(vec![
            Span::styled("kwtop", t.title()),
            Span::raw(sep),
            Span::styled(clean(&app.opts.host, t.ascii), t.title()),
            Span::raw(sep),
            Span::raw(clock),
            Span::raw(sep),
            Span::raw(grid_text),
            Span::raw(sep),
            Span::raw(format!("PUE {:.2}", app.impact.pue)),
            Span::raw(sep),
            Span::raw(devs),
        ]);
        // kWh is IT energy (the devices' own, so the rows add up to it); CO2e and the equivalents
        // include PUE, and the facility energy is shown beside it when PUE is not 1.
        let mut line2 = vec![
            Span::raw(format!("session {est}")),
            Span::styled(format!("{:.3} kWh", app.impact.kwh(energy)), t.title()),
            Span::raw(sep),
        ];
        if let Some(pue) = app.impact.facility_differs() {
            line2.push(Span::raw(format!(
                "facility {est}{:.3} kWh at PUE {pue:.2}",
                app.impact.facility_kwh(energy)
            )));
            line2.push(Span::raw(sep));
        }
        line2.extend([
            Span::styled(
                format!("{est}{} CO2e", units::mass_g(app.impact.co2e_g(energy))),
                t.title(),
            ),
            Span::raw(sep),
            Span::raw(format!("{} {:.1} phone charges", t.approx(), equiv.phone_charges)),
            Span::raw(sep),
            Span::raw(format!("now {est}{}", units::power(ledger.total_power_w()))),
            Span::raw("  "),
        ]);
        line2.extend(super::work::header_spans(app, t, area.width, &line2));
        line2.extend(alerts);
        Paragraph::new(vec![line1, Line::from(line2)]).render(area, buf);
    } else {
        let mut line = vec![
            Span::styled("kwtop ", t.title()),
            Span::raw(fit(&clean(&app.opts.host, t.ascii), 16, t.ascii)),
            Span::raw(format!(
                " {clock} {est}{:.3} kWh {est}{} CO2e {est}{} ",
                app.impact.kwh(energy),
                units::mass_g(app.impact.co2e_g(energy)),
                units::power(ledger.total_power_w()),
            )),
        ];
        line.extend(super::work::header_spans(app, t, area.width, &line));
        line.extend(alerts);
        Paragraph::new(Line::from(line)).render(area, buf);
    }
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
            .filter(|e| e.idle.flagged_gpus().any(|g| g.device == d.id))
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
