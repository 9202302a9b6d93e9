//! The CSV rendering of a summary: one row per process (RFC 4180 quoting), for spreadsheets.
//!
//! Cells that a spreadsheet would run as a formula (`=`, `+`, `-`, `@` first) are prefixed with `'`,
//! since command lines are untrusted. `idle_gpus` names the GPUs a process was flagged idle on
//! (space-separated). Per-device energy follows as `energy_<device>_j` columns. When work was
//! counted (`kwtop run --progress`, the work file), `work_*` columns follow, filled on the command's
//! own row only: they are figures of its whole tree (energy ÷ units), not of that one process. With
//! `[impact] price_per_kwh`, a `cost_<currency>` column gives each process's cost.

use std::fmt::Write as _;

use super::SummaryDoc;
use crate::work::WorkSummary;

/// Quote a text cell.
fn cell(s: &str) -> String {
    let mut t = String::with_capacity(s.len() + 2);
    if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        t.push('\'');
    }
    t.push_str(s);
    if t.contains([',', '"', '\n', '\r']) || t != t.trim() {
        format!("\"{}\"", t.replace('"', "\"\""))
    } else {
        t
    }
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(String::new, |v| v.to_string())
}

pub fn render(doc: &SummaryDoc) -> String {
    let mut s = String::new();
    let mut header = vec![
        "pid",
        "starttime",
        "ppid",
        "user",
        "command",
        "cmdline",
        "state",
        "energy_j",
        "kwh",
        "co2e_g",
        "avg_power_w",
        "peak_power_w",
        "observed_s",
        "first_seen",
        "last_seen",
        "gpu_mem_bytes",
        "idle_wasted_j",
        "idle_gpus",
        "tree",
        "container",
        "folded_count",
    ]
    .into_iter()
    .map(String::from)
    .collect::<Vec<_>>();
    for d in &doc.devices {
        header.push(cell(&format!("energy_{}_j", d.id)));
    }
    if let Some(c) = &doc.totals.cost {
        header.push(cell(&format!("cost_{}", c.currency)));
    }
    if doc.work.is_some() {
        header.extend(WORK_COLUMNS.iter().map(|c| c.to_string()));
    }
    let _ = writeln!(s, "{}", header.join(","));
    for p in &doc.processes {
        let mut row = vec![
            p.pid.to_string(),
            p.starttime.to_string(),
            p.ppid.to_string(),
            cell(&p.user),
            cell(&p.command),
            cell(&p.cmdline),
            p.state.clone(),
            p.energy_j.to_string(),
            p.kwh.to_string(),
            p.co2e_g.to_string(),
            p.avg_power_w.to_string(),
            p.peak_power_w.to_string(),
            p.observed_s.to_string(),
            p.first_seen.clone(),
            p.last_seen.clone(),
            opt(p.gpu_mem_bytes),
            p.idle_wasted_j.to_string(),
            cell(
                &p.idle_wasted_by_device_j
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(" "),
            ),
            cell(&p.tree),
            cell(p.container.as_deref().unwrap_or("")),
            opt(p.folded_count),
        ];
        for d in &doc.devices {
            row.push(
                p.energy_by_device_j
                    .get(&d.id)
                    .copied()
                    .unwrap_or(0.0)
                    .to_string(),
            );
        }
        if doc.totals.cost.is_some() {
            row.push(opt(p.cost));
        }
        if let Some(w) = &doc.work {
            row.extend(work_cells(doc, w, p.pid));
        }
        let _ = writeln!(s, "{}", row.join(","));
    }
    s
}

/// Columns added when work was counted: the command's whole tree per unit, on the command's row.
const WORK_COLUMNS: [&str; 5] = [
    "work_unit",
    "work_units",
    "work_j_per_unit",
    "work_wh_per_1000_units",
    "work_co2e_g_per_unit",
];

fn work_cells(doc: &SummaryDoc, w: &WorkSummary, pid: u32) -> Vec<String> {
    if doc.command.as_ref().is_none_or(|c| c.pid != pid) {
        return vec![String::new(); WORK_COLUMNS.len()];
    }
    vec![
        cell(&w.unit),
        w.units.to_string(),
        w.j_per_unit.to_string(),
        w.wh_per_1000_units.to_string(),
        w.co2e_g_per_unit.to_string(),
    ]
}

#[cfg(test)]
mod tests {
    use super::cell;

    #[test]
    fn quoting_and_formula_neutralising() {
        assert_eq!(cell("python"), "python");
        assert_eq!(cell("a,b"), "\"a,b\"");
        assert_eq!(cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(cell("=cmd|' /C calc'!A0"), "'=cmd|' /C calc'!A0");
        assert_eq!(cell("-x,y"), "\"'-x,y\"");
    }
}
