//! The short block `kwtop run` ends with on stderr, like `time`: the exit status, the energy (kWh
//! and J), average power, the command's share of the machine's energy, CO2e with one everyday
//! equivalent, the energy per unit of work when work was counted, and where the full summary went.
//!
//! Pure: a summary document and the paths written go in, text comes out. Also the number formats
//! the Markdown summary shares for the work figures ([`work_figures`]).

use std::fmt::Write as _;
use std::path::PathBuf;

use super::SummaryDoc;
use crate::units;
use crate::work::{WorkSummary, plural, unit_for};

/// Notices shown in the block (one line each); the rest are counted.
const MAX_NOTES: usize = 3;
/// A notice is cut to this many chars in the block (in full in the saved summary).
const NOTE_CHARS: usize = 110;

/// Where the full summary went.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outputs {
    /// Files written into the export dir (one per `[export] formats`).
    pub saved: Vec<PathBuf>,
    /// The `-o FILE`, when it was written.
    pub written: Option<PathBuf>,
    /// Why a file could not be written.
    pub problems: Vec<String>,
}

/// The block, one line per fact, ending in a newline.
pub fn render(doc: &SummaryDoc, out: &Outputs) -> String {
    let mut s = String::new();
    let t = &doc.totals;
    let est = if t.provenance == "estimated" { "~" } else { "" };
    let _ = writeln!(s, "kwtop: {}", status_line(doc));
    let mut energy = format!(
        "{est}{} kWh · {est}{} ({}) · avg {est}{}",
        sig(t.kwh, 3),
        joules(t.energy_j),
        t.provenance,
        units::power(t.avg_power_w)
    );
    if doc.scope == "command" && doc.machine.energy_j > 0.0 {
        let pct = 100.0 * t.energy_j / doc.machine.energy_j;
        let _ = write!(energy, " · {} % of the machine's energy", sig(pct, 2));
    }
    row(&mut s, "energy", &energy);
    row(
        &mut s,
        "CO2e",
        &format!(
            "{est}{} · grid {:.0} g/kWh ({}) · PUE {:.2} · ≈ {} phone charges",
            grams(t.co2e_g),
            t.grid.g_per_kwh,
            t.grid.label,
            t.pue,
            sig(t.equivalents.phone_charges, 2)
        ),
    );
    if let Some(w) = &doc.work {
        row(&mut s, "work", &work_line(w, est));
    }
    if let Some(c) = &t.cost {
        let mut line = format!(
            "{est}{} at {}/kWh",
            units::money(c.amount, &c.currency),
            units::money(c.price_per_kwh, &c.currency)
        );
        if let (Some(per), Some(w)) = (c.per_unit, &doc.work) {
            let _ = write!(line, " · {est}{} per {}", units::money(per, &c.currency), w.unit);
        }
        row(&mut s, "cost", &line);
    }
    outputs(&mut s, out);
    notes(&mut s, &doc.notices);
    s
}

/// `exit 0 · 12.3 s · 4 processes · CPU 11.9 s`.
fn status_line(doc: &SummaryDoc) -> String {
    let wall_s = (doc.ended_ms - doc.started_ms).max(0) as f64 / 1000.0;
    let Some(c) = &doc.command else {
        return format!("session of {}", wall(wall_s));
    };
    let how = match (c.exit_code, c.signal) {
        (_, Some(sig)) => {
            let name =
                nix::sys::signal::Signal::try_from(sig).map_or_else(|_| String::new(), |s| format!(" ({s})"));
            format!("killed by signal {sig}{name} · exit status {}", c.status)
        }
        (Some(code), None) => format!("exit {code}"),
        (None, None) => format!("exit status {}", c.status),
    };
    let procs = format!(
        "{} {}",
        c.tree_processes,
        if c.tree_processes == 1 {
            "process"
        } else {
            "processes"
        }
    );
    let cpu = c.cpu_s.map(|t| format!(" · CPU {t:.1} s")).unwrap_or_default();
    format!("{how} · {} · {procs}{cpu}", wall(wall_s))
}

fn row(s: &mut String, label: &str, text: &str) {
    let _ = writeln!(s, "  {label:<7} {text}");
}

/// `10 steps · 0.89 steps/s · 41.2 J per step · 11.4 Wh per 1,000 steps · 5.23 g CO2e per 1,000 steps`.
fn work_line(w: &WorkSummary, est: &str) -> String {
    let mut line = format!("{} {}", grouped(w.units), unit_for(&w.unit, w.units as f64));
    if let Some(r) = w.units_per_s {
        let _ = write!(line, " · {} {}/s", sig(r, 3), plural(&w.unit));
    }
    let _ = write!(line, " · {}", work_figures(w, est));
    line
}

/// `41.2 J per step · 11.4 Wh per 1,000 steps · 5.23 g CO2e per 1,000 steps` (`est` marks
/// estimated figures).
pub fn work_figures(w: &WorkSummary, est: &str) -> String {
    let many = plural(&w.unit);
    format!(
        "{est}{} per {} · {est}{} per 1,000 {many} · {est}{} CO2e per 1,000 {many}",
        joules(w.j_per_unit),
        w.unit,
        watt_hours(w.wh_per_1000_units),
        grams(w.co2e_g_per_unit * 1000.0)
    )
}

fn outputs(s: &mut String, out: &Outputs) {
    if let Some(first) = out.saved.first() {
        let rest: Vec<String> = out.saved[1..]
            .iter()
            .map(|p| match (p.file_stem(), first.file_stem(), p.extension()) {
                (Some(a), Some(b), Some(ext)) if a == b && p.parent() == first.parent() => {
                    format!(".{}", ext.to_string_lossy())
                }
                _ => p.display().to_string(),
            })
            .collect();
        let also = if rest.is_empty() {
            String::new()
        } else {
            format!(" (and {})", rest.join(", "))
        };
        row(s, "saved", &format!("{}{also}", first.display()));
    }
    if let Some(p) = &out.written {
        row(s, "written", &p.display().to_string());
    }
    for p in &out.problems {
        row(s, "error", p);
    }
}

/// The first [`MAX_NOTES`] notices, each cut to one short line.
fn notes(s: &mut String, notices: &[String]) {
    for n in notices.iter().take(MAX_NOTES) {
        row(s, "note", &crate::sanitize::sanitize_str(n, NOTE_CHARS));
    }
    if notices.len() > MAX_NOTES {
        row(
            s,
            "note",
            &format!("{} more in the summary", notices.len() - MAX_NOTES),
        );
    }
}

/// `12.3 s` under a minute, else `00:12:34`.
fn wall(secs: f64) -> String {
    if secs < 60.0 {
        format!("{secs:.1} s")
    } else {
        units::clock(secs)
    }
}

/// `1,231 J`, `41.2 J`, `0.352 J`, `12,345 kJ` — joules to three significant digits, whole above 100.
pub fn joules(j: f64) -> String {
    if j.abs() >= 1e7 {
        format!("{} MJ", sig(j / 1e6, 3))
    } else if j.abs() >= 1e5 {
        format!("{} kJ", sig(j / 1e3, 3))
    } else {
        format!("{} J", sig(j, 3))
    }
}

/// `11.4 Wh`, `640 kWh`.
fn watt_hours(wh: f64) -> String {
    if wh.abs() >= 1e6 {
        format!("{} MWh", sig(wh / 1e6, 3))
    } else if wh.abs() >= 1e3 {
        format!("{} kWh", sig(wh / 1e3, 3))
    } else {
        format!("{} Wh", sig(wh, 3))
    }
}

/// `0.162 g`, `5.23 g`, `1.24 kg`, `3.1 t`.
fn grams(g: f64) -> String {
    if g.abs() >= 1e6 {
        format!("{} t", sig(g / 1e6, 3))
    } else if g.abs() >= 1e3 {
        format!("{} kg", sig(g / 1e3, 3))
    } else {
        format!("{} g", sig(g, 3))
    }
}

/// `x` to `digits` significant digits without an exponent (at most 9 decimals), whole numbers
/// grouped by thousands: `0.000342`, `41.2`, `1,231`.
pub fn sig(x: f64, digits: i32) -> String {
    if !x.is_finite() {
        return "N/A".into();
    }
    if x == 0.0 {
        return "0".into();
    }
    let mag = crate::units::decimal_exponent(x).unwrap_or(0);
    let decimals = (digits - 1 - mag).clamp(0, 9) as usize;
    if decimals == 0 {
        let r = x.round();
        let sign = if r < 0.0 { "-" } else { "" };
        format!("{sign}{}", grouped(r.abs() as u64))
    } else {
        format!("{x:.decimals$}")
    }
}

/// `1,234,567`.
pub fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn significant_digits() {
        assert_eq!(sig(0.000342_1, 3), "0.000342");
        assert_eq!(sig(41.23, 3), "41.2");
        assert_eq!(sig(1231.4, 3), "1,231");
        assert_eq!(sig(5.0, 3), "5.00");
        assert_eq!(sig(1e-12, 3), "0.000000000");
        assert_eq!(sig(-2500.0, 2), "-2,500");
        assert_eq!(sig(f64::NAN, 3), "N/A");
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(1_000), "1,000");
        assert_eq!(grouped(12_345_678), "12,345,678");
    }

    #[test]
    fn energy_units_scale() {
        assert_eq!(joules(41.23), "41.2 J");
        assert_eq!(joules(123_456.0), "123 kJ");
        assert_eq!(joules(2.5e7), "25.0 MJ");
        assert_eq!(watt_hours(11.44), "11.4 Wh");
        assert_eq!(watt_hours(640_000.0), "640 kWh");
        assert_eq!(grams(5.234), "5.23 g");
        assert_eq!(grams(1240.0), "1.24 kg");
    }
}
