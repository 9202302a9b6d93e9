//! The Markdown rendering of a summary: for a paper's appendix, a team channel or a CI log.
//!
//! Hostile strings (command lines, user names) go into code spans with backticks and pipes
//! neutralised, so they cannot break the tables or inject markup.

use std::fmt::Write as _;

use super::{SummaryDoc, brief};
use crate::units;
use crate::work::{plural, unit_for};

/// A table cell holding untrusted text.
fn code(s: &str) -> String {
    if s.is_empty() {
        return String::new();
    }
    let t: String = s
        .chars()
        .map(|c| match c {
            '`' => '\'',
            c if c.is_control() => ' ',
            c => c,
        })
        .collect();
    format!("`{}`", t.replace('|', "\\|"))
}

/// Plain text outside tables: escape what Markdown would interpret.
fn text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '|' | '#') {
            out.push('\\');
        }
        out.push(if c.is_control() { ' ' } else { c });
    }
    out
}

fn kwh(j: f64) -> String {
    format!("{:.6} kWh", j / 3.6e6)
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

/// Render with the `top` most energetic processes and groups.
pub fn render(doc: &SummaryDoc, top: usize) -> String {
    let mut s = String::new();
    // `~` on the totals, the processes and the groups when the totals are estimated.
    let est = if doc.totals.provenance == "estimated" {
        "~"
    } else {
        ""
    };
    header(&mut s, doc);
    totals(&mut s, doc, est);
    devices(&mut s, doc);
    processes(&mut s, doc, top, est);
    groups(&mut s, doc, est);
    idle_holders(&mut s, doc);
    method(&mut s, doc);
    s
}

/// The title and the run's (or session's) one-line facts.
fn header(s: &mut String, doc: &SummaryDoc) {
    let title = match &doc.command {
        Some(c) => format!("kwtop run: {}", code(&truncate(&c.argv, 120))),
        None => format!("kwtop session on {}", text(&doc.host)),
    };
    let _ = writeln!(s, "# {title}\n");
    let _ = writeln!(
        s,
        "Host {} · {} → {} ({}) · {} intervals · schema `{}` · kwtop {}\n",
        text(&doc.host),
        doc.started,
        doc.ended,
        units::clock(doc.duration_s),
        doc.intervals,
        doc.schema,
        text(&doc.kwtop_version)
    );
    if let Some(c) = &doc.command {
        let how = match (c.exit_code, c.signal) {
            (_, Some(sig)) => format!("killed by signal {sig}"),
            (Some(code), None) => format!("exit code {code}"),
            (None, None) => "unknown".into(),
        };
        let cpu = c
            .cpu_s
            .map(|t| format!(" · CPU time {t:.2} s (user+sys, whole tree)"))
            .unwrap_or_default();
        let _ = writeln!(
            s,
            "Command pid {} · {how} · kwtop exits with {} · {} processes in its tree{cpu}\n",
            c.pid, c.status, c.tree_processes
        );
    }
}

fn totals(s: &mut String, doc: &SummaryDoc, est: &str) {
    let t = &doc.totals;
    let _ = writeln!(s, "## Totals\n");
    let _ = writeln!(s, "| | |\n|---|---|");
    let _ = writeln!(
        s,
        "| Energy (IT) | {est}{} ({}) |",
        units::energy(t.energy_j),
        kwh(t.energy_j)
    );
    let _ = writeln!(s, "| Average power | {est}{} |", units::power(t.avg_power_w));
    if let Some(w) = &doc.work {
        work(s, w, est);
    }
    let _ = writeln!(
        s,
        "| Facility energy (× PUE {:.2}) | {:.6} kWh |",
        t.pue, t.facility_kwh
    );
    let _ = writeln!(
        s,
        "| CO2e (IT kWh × PUE {:.2} × grid) | {est}{} |",
        t.pue,
        units::mass_g(t.co2e_g)
    );
    let _ = writeln!(
        s,
        "| Grid intensity | {:.0} gCO2e/kWh — {} ({}) |",
        t.grid.g_per_kwh,
        text(&t.grid.label),
        text(&t.grid.source)
    );
    let _ = writeln!(s, "| PUE | {:.2} |", t.pue);
    let _ = writeln!(
        s,
        "| Equivalents (facility energy; car: CO2e) | ≈ {:.2} phone charges · {:.3} household-days · {:.2} km by car |",
        t.equivalents.phone_charges, t.equivalents.household_days, t.equivalents.car_km
    );
    if let Some(c) = &t.cost {
        cost(s, c, doc, est);
    }
    let _ = writeln!(s, "| Provenance | {} |", t.provenance);
    if doc.scope == "command" {
        let _ = writeln!(
            s,
            "| Whole machine, same time | {} ({}) · {} CO2e |",
            units::energy(doc.machine.energy_j),
            kwh(doc.machine.energy_j),
            units::mass_g(doc.machine.co2e_g)
        );
    }
    let _ = writeln!(
        s,
        "| Idle GPU holders wasted | {} ({:.6} kWh) |",
        units::energy(t.idle_holder_wasted_j),
        t.idle_holder_wasted_kwh
    );
    compare(s, doc, est);
}

/// The cost rows of the totals: the scope's energy at the configured price, and per unit of work.
fn cost(s: &mut String, c: &super::CostOut, doc: &SummaryDoc, est: &str) {
    let _ = writeln!(
        s,
        "| Cost (facility kWh × {}/kWh) | {est}{} |",
        units::money(c.price_per_kwh, &text(&c.currency)),
        units::money(c.amount, &text(&c.currency))
    );
    if let (Some(per), Some(w)) = (c.per_unit, &doc.work) {
        let _ = writeln!(
            s,
            "| Cost per {} | {est}{} · {} per 1,000 {} |",
            text(&w.unit),
            units::money(per, &text(&c.currency)),
            units::money(per * 1000.0, &text(&c.currency)),
            text(&plural(&w.unit))
        );
    }
}

/// The same energy on the `[impact] compare` grids, after the totals.
fn compare(s: &mut String, doc: &SummaryDoc, est: &str) {
    let t = &doc.totals;
    if t.compare.is_empty() {
        return;
    }
    let _ = writeln!(s, "\n### The same energy on other grids\n");
    let _ = writeln!(s, "| grid | gCO2e/kWh | CO2e | vs {} |", text(&t.grid.label));
    let _ = writeln!(s, "|---|---:|---:|---:|");
    for c in &t.compare {
        let delta = c
            .delta_pct
            .map_or_else(|| "—".to_string(), |d| format!("{d:+.0} %"));
        let _ = writeln!(
            s,
            "| {} | {:.0} | {est}{} | {delta} |",
            text(&c.grid.label),
            c.grid.g_per_kwh,
            units::mass_g(c.co2e_g)
        );
    }
    let sources: Vec<String> = t.compare.iter().map(|c| c.grid.source.clone()).collect();
    let mut uniq: Vec<&String> = Vec::new();
    for src in &sources {
        if !uniq.contains(&src) {
            uniq.push(src);
        }
    }
    let list: Vec<String> = uniq.iter().map(|s| text(s)).collect();
    let _ = writeln!(s, "\nSources: {}.", list.join("; "));
}

/// The work rows of the totals: what was counted, and the energy per unit.
fn work(s: &mut String, w: &crate::work::WorkSummary, est: &str) {
    let mut counted = format!(
        "{} {} counted from {}",
        brief::grouped(w.units),
        unit_for(&w.unit, w.units as f64),
        w.source
    );
    if let Some(r) = w.units_per_s {
        let _ = write!(
            counted,
            " · {} {}/s between the first and the last",
            brief::sig(r, 3),
            plural(&w.unit)
        );
    }
    if w.counter_resets > 0 {
        let _ = write!(
            counted,
            " · the count restarted {} times (each restart counted on from the total)",
            w.counter_resets
        );
    }
    let _ = writeln!(s, "| Work | {} |", text(&counted));
    let _ = writeln!(
        s,
        "| Energy per {} | {} |",
        text(&w.unit),
        text(&brief::work_figures(w, est))
    );
}

fn devices(s: &mut String, doc: &SummaryDoc) {
    let _ = writeln!(s, "\n## Devices\n");
    let scope_col = doc.scope == "command";
    let _ = writeln!(
        s,
        "| Device | Name | Energy | {}Idle | Unattributed | Avg W | Peak W | Provenance | Status |",
        if scope_col { "This command | " } else { "" }
    );
    let _ = writeln!(
        s,
        "|---|---|---:|{}---:|---:|---:|---:|---|---|",
        if scope_col { "---:|" } else { "" }
    );
    for d in &doc.devices {
        let mark = if d.provenance == "estimated" { "~" } else { "" };
        let scope = if scope_col {
            format!("{mark}{} | ", units::energy(d.scope_j))
        } else {
            String::new()
        };
        let _ = writeln!(
            s,
            "| {} | {} | {mark}{} | {scope}{} | {} | {} | {} | {} | {} |",
            code(&d.id),
            code(&crate::sample::vendor_name(d.vendor.as_deref(), &d.name)),
            units::energy(d.energy_j),
            units::energy(d.idle_j),
            units::energy(d.unattributed_j),
            units::power(d.avg_power_w),
            units::power(d.peak_power_w),
            match &d.source {
                Some(src) => format!("{} ({})", d.provenance, code(src)),
                None => d.provenance.clone(),
            },
            code(&d.status)
        );
    }
}

fn processes(s: &mut String, doc: &SummaryDoc, top: usize, est: &str) {
    let _ = writeln!(s, "\n## Top processes\n");
    if doc.processes.is_empty() {
        let _ = writeln!(s, "No process was charged any energy.");
    } else {
        let _ = writeln!(
            s,
            "| PID | User | Energy | kWh | CO2e | Avg W | Peak W | State | Command ({}) |",
            doc.cmdline_mode
        );
        let _ = writeln!(s, "|---:|---|---:|---:|---:|---:|---:|---|---|");
        for p in doc.processes.iter().take(top) {
            let cmd = if p.cmdline.is_empty() {
                &p.command
            } else {
                &p.cmdline
            };
            let pid = match p.folded_count {
                Some(n) => format!("({n} folded)"),
                None => p.pid.to_string(),
            };
            let _ = writeln!(
                s,
                "| {pid} | {} | {est}{} | {:.6} | {est}{} | {} | {} | {} | {} |",
                code(&p.user),
                units::energy(p.energy_j),
                p.kwh,
                units::mass_g(p.co2e_g),
                units::power(p.avg_power_w),
                units::power(p.peak_power_w),
                p.state,
                code(&truncate(cmd, 80))
            );
        }
        if doc.processes.len() > top {
            let rest: f64 = doc.processes.iter().skip(top).map(|p| p.energy_j).sum();
            let _ = writeln!(
                s,
                "\n…and {} more processes with {} together (all in the JSON and CSV summaries).",
                doc.processes.len() - top,
                units::energy(rest)
            );
        }
    }
}

fn groups(s: &mut String, doc: &SummaryDoc, est: &str) {
    let _ = writeln!(s, "\n## Top groups\n");
    let _ = writeln!(s, "| By | Group | Processes | Energy | CO2e |");
    let _ = writeln!(s, "|---|---|---:|---:|---:|");
    for by in ["tree", "user", "command", "container"] {
        for g in doc.groups.iter().filter(|g| g.by == by).take(3) {
            let _ = writeln!(
                s,
                "| {by} | {} | {} | {est}{} | {est}{} |",
                code(&truncate(&g.key, 60)),
                g.processes,
                units::energy(g.energy_j),
                units::mass_g(g.co2e_g)
            );
        }
    }
}

fn idle_holders(s: &mut String, doc: &SummaryDoc) {
    let _ = writeln!(s, "\n## Idle GPU holders\n");
    if doc.idle_holders.is_empty() {
        let _ = writeln!(
            s,
            "None: no process held GPU memory while idle long enough to be flagged."
        );
    } else {
        let _ = writeln!(
            s,
            "| PID | User | Command | GPU | Idle for | GPU memory | Wasted | kWh | CO2e |"
        );
        let _ = writeln!(s, "|---:|---|---|---|---:|---:|---:|---:|---:|");
        for h in &doc.idle_holders {
            let pid = match h.folded_count {
                Some(n) => format!("({n} folded)"),
                None => h.pid.to_string(),
            };
            let idle_for = if h.folded_count.is_some() {
                "-".into()
            } else {
                units::short_age(h.idle_s)
            };
            let _ = writeln!(
                s,
                "| {pid} | {} | {} | {} | {idle_for} | {} | {} | {:.6} | {} |",
                code(&h.user),
                code(&h.command),
                code(if h.device.is_empty() { "?" } else { &h.device }),
                h.gpu_mem_bytes.map_or_else(|| "N/A".into(), units::bytes),
                units::energy(h.wasted_j),
                h.wasted_kwh,
                units::mass_g(h.wasted_co2e_g)
            );
        }
    }
}

/// The method notes and the notices.
fn method(s: &mut String, doc: &SummaryDoc) {
    let _ = writeln!(s, "\n## Method and provenance\n");
    for m in &doc.method {
        let _ = writeln!(s, "- {}", text(m));
    }
    if doc.devices.iter().any(|d| d.provenance == "estimated") {
        let _ = writeln!(
            s,
            "- `~` marks estimated values: a model (TDP × load), not a sensor reading."
        );
    }
    if !doc.notices.is_empty() {
        let _ = writeln!(s, "\n## Notices\n");
        for n in &doc.notices {
            let _ = writeln!(s, "- {}", text(n));
        }
    }
}
