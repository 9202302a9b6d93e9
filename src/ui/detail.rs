//! The detail view of the selected row (its power history, energy by device, equivalents,
//! command line, cgroup) and the `?` help overlay. As in the table, every figure that comes in
//! part from an estimated device carries `~` ([`crate::app::rows::any_estimated`]).

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Axis, Chart, Dataset, GraphType, Paragraph, Widget, Wrap};

use super::{Theme, clean, rule};
use crate::app::{App, RowId};
use crate::history::Series;
use crate::ledger::{Ledger, ProcState};
use crate::sample::ProcKey;
use crate::units;

/// What one kind of selected row puts in the detail view: its title, its lines, whether any figure
/// in them is estimated, and its power history where it has one.
struct Section<'a> {
    title: String,
    lines: Vec<Line<'a>>,
    any_est: bool,
    series: Option<&'a Series>,
}

impl<'a> Section<'a> {
    fn new(title: impl Into<String>) -> Self {
        Section {
            title: title.into(),
            lines: Vec::new(),
            any_est: false,
            series: None,
        }
    }
}

/// The line builders every section shares.
struct Fmt<'a> {
    app: &'a App,
    ledger: &'a Ledger,
    t: &'a Theme,
}

/// `~` on every figure that comes (in part) from an estimated device, as in the table.
fn tilde(est: bool) -> &'static str {
    if est { "~" } else { "" }
}

impl<'a> Fmt<'a> {
    fn kv(&self, k: &str, v: String) -> Line<'a> {
        Line::from(vec![
            Span::styled(format!("{k:<12}"), self.t.title()),
            Span::raw(v),
        ])
    }

    fn est_of(&self, by_dev: &[f64]) -> bool {
        crate::app::rows::any_estimated(self.ledger, by_dev, false)
    }

    fn equiv_line(&self, j: f64, est: bool) -> Line<'a> {
        let impact = &self.app.impact;
        let e = impact.equivalents(j);
        let m = tilde(est);
        // CO2e and the equivalents include PUE: say so where it is not 1.
        let pue = impact
            .facility_differs()
            .map(|p| format!(" (facility {m}{} at PUE {p:.2})", units::energy(j * p)))
            .unwrap_or_default();
        let cost = impact
            .price
            .as_ref()
            .zip(impact.cost(j))
            .map(|(p, c)| format!(", {m}{}", units::money(c, &p.currency)))
            .unwrap_or_default();
        self.kv(
            "impact",
            format!(
                "{m}{} CO2e {} {m}{:.2} phone charges, {m}{:.2} household-days, {m}{:.1} km by car{cost}{pue}",
                units::mass_g(impact.co2e_g(j)),
                self.t.approx(),
                e.phone_charges,
                e.household_days,
                e.car_km
            ),
        )
    }

    fn energy_line(&self, j: f64, est: bool) -> Line<'a> {
        self.kv("energy", format!("{}{}", tilde(est), units::energy(j)))
    }

    fn by_dev_line(&self, by_dev: &[f64]) -> Line<'a> {
        let parts: Vec<String> = self
            .ledger
            .devices
            .iter()
            .zip(by_dev)
            .filter(|(_, j)| **j > 0.0)
            .map(|(d, j)| {
                let est = tilde(d.provenance == crate::sample::Provenance::Estimated);
                format!("{} {est}{}", d.id, units::energy(*j))
            })
            .collect();
        self.kv(
            "by device",
            if parts.is_empty() {
                "-".into()
            } else {
                parts.join(", ")
            },
        )
    }
}

pub(super) fn draw(app: &App, area: Rect, buf: &mut Buffer, t: &Theme) {
    let ledger = app.ledger();
    let Some(sel) = app.ui.selected.clone() else {
        return;
    };
    let f = Fmt { app, ledger, t };
    let section = match &sel {
        RowId::Proc(key) => {
            let Some(s) = process_section(&f, key) else {
                Paragraph::new("the selected process is no longer in the ledger (Esc)").render(area, buf);
                return;
            };
            s
        }
        RowId::Group(k) => group_section(&f, k),
        RowId::Exited => exited_section(&f),
        RowId::Hidden => hidden_section(&f),
        RowId::Idle | RowId::Unattributed => idle_section(&f, sel == RowId::Idle),
    };
    render_section(app, section, area, buf, t);
}

fn process_section<'a>(f: &Fmt<'a>, key: &ProcKey) -> Option<Section<'a>> {
    let (app, ledger, t) = (f.app, f.ledger, f.t);
    let e = ledger.process(key)?;
    let mut s = Section::new(format!(
        "pid {} {} ({})",
        e.key.pid,
        clean(&e.info.comm, t.ascii),
        clean(&e.info.user, t.ascii)
    ));
    let lines = &mut s.lines;
    let state = match (e.state, e.idle().flagged) {
        (ProcState::Exited, _) => "exited".to_string(),
        (_, true) => format!(
            "IDLE GPU holder on {} for {}",
            e.idle().flagged_on(),
            units::short_age(e.idle().streak_s)
        ),
        _ => "running".to_string(),
    };
    lines.push(f.kv(
        "state",
        format!(
            "{state}, seen {}, ppid {}, tree {} {}",
            units::clock(e.observed_s),
            e.ppid,
            e.tree_root.0,
            clean(&e.tree_root.1, t.ascii)
        ),
    ));
    let est = f.est_of(&e.energy_by_dev);
    let m = tilde(est);
    lines.push(f.kv(
        "power",
        format!(
            "now {m}{}  avg {m}{}  peak {m}{}",
            units::power(e.power_w),
            units::power(e.avg_w()),
            units::power(e.peak_w)
        ),
    ));
    lines.push(f.energy_line(e.energy_j, est));
    lines.push(f.by_dev_line(&e.energy_by_dev));
    lines.push(f.equiv_line(e.energy_j, est));
    // One line per GPU it holds (or held): SM share and memory there, its idle state there.
    for g in &e.idle().gpus {
        let sm = g.sm_pct.map_or_else(|| "N/A".into(), |u| format!("{u:.0}%"));
        let mem = g.mem_bytes.map_or_else(|| "N/A".into(), units::bytes);
        let mut text = if g.holding {
            format!("SM {sm}  mem {mem}")
        } else {
            "no longer held".to_string()
        };
        if g.idle.flagged {
            text.push_str(&format!("  IDLE for {}", units::short_age(g.idle.streak_s)));
        }
        if g.idle.flagged || g.idle.wasted_j > 0.0 {
            text.push_str(&format!("  while idle {}", units::energy(g.idle.wasted_j)));
        }
        lines.push(f.kv(&g.device, text));
    }
    let cg = &e.info.cgroup;
    let mut cgs = clean(&cg.path, t.ascii);
    for (k, v) in [
        ("container", &cg.container),
        ("pod", &cg.pod),
        ("slurm job", &cg.slurm_job),
    ] {
        if let Some(v) = v {
            cgs.push_str(&format!("  {k} {}", clean(v, t.ascii)));
        }
    }
    lines.push(f.kv("cgroup", if cgs.is_empty() { "-".into() } else { cgs }));
    lines.push(f.kv("cmdline", clean(&e.info.cmdline, t.ascii)));
    s.any_est = est;
    s.series = app.shown().history.process(key);
    Some(s)
}

fn group_section<'a>(f: &Fmt<'a>, k: &str) -> Section<'a> {
    let (app, ledger, t) = (f.app, f.ledger, f.t);
    let mut s = Section::new(format!("{} {}", app.ui.group.as_str(), clean(k, t.ascii)));
    if let Some(g) = ledger.groups(app.ui.group).into_iter().find(|g| g.key == k) {
        s.lines
            .push(f.kv("processes", format!("{} ({} running)", g.processes, g.running)));
        let by: Vec<f64> = g.energy_by_device_j.iter().map(|(_, j)| *j).collect();
        let est = f.est_of(&by);
        s.any_est = est;
        s.lines
            .push(f.kv("power", format!("{}{}", tilde(est), units::power(g.power_w))));
        s.lines.push(f.energy_line(g.energy_j, est));
        s.lines.push(f.by_dev_line(&by));
        s.lines.push(f.equiv_line(g.energy_j, est));
    }
    s
}

fn exited_section<'a>(f: &Fmt<'a>) -> Section<'a> {
    let ledger = f.ledger;
    let mut s = Section::new("exited processes");
    let mut by = vec![0.0; ledger.devices.len()];
    let per_dev = ledger
        .exited()
        .iter()
        .map(|e| &e.energy_by_dev)
        .chain(ledger.folded().values().map(|f| &f.energy_by_dev));
    for d in per_dev {
        for (a, b) in by.iter_mut().zip(d) {
            *a += b;
        }
    }
    let j: f64 = ledger.exited().iter().map(|e| e.energy_j).sum::<f64>()
        + ledger.folded().values().map(|f| f.energy_j).sum::<f64>();
    let est = f.est_of(&by);
    s.any_est = est;
    s.lines.push(f.energy_line(j, est));
    s.lines.push(f.by_dev_line(&by));
    s.lines.push(f.equiv_line(j, est));
    s.lines.push(Line::raw("x lists them one per row"));
    s
}

fn hidden_section<'a>(f: &Fmt<'a>) -> Section<'a> {
    let (app, ledger) = (f.app, f.ledger);
    let mut s = Section::new("hidden kernel threads");
    let mut by = vec![0.0; ledger.devices.len()];
    let (mut n, mut j, mut w) = (0usize, 0.0, 0.0);
    // The same set the table's `hidden` row sums (exited ones too while `x` lists them).
    let kernel = ledger.processes().filter(|e| {
        (e.state == ProcState::Running || app.ui.show_exited)
            && crate::app::rows::hide_reason(e) == Some(crate::app::rows::HideReason::KernelThread)
    });
    for e in kernel {
        n += 1;
        j += e.energy_j;
        w += e.power_w;
        for (a, b) in by.iter_mut().zip(&e.energy_by_dev) {
            *a += b;
        }
    }
    let est = f.est_of(&by);
    s.any_est = est;
    s.lines
        .push(f.kv("processes", format!("{n} kernel threads (children of kthreadd)")));
    s.lines
        .push(f.kv("power", format!("{}{}", tilde(est), units::power(w))));
    s.lines.push(f.energy_line(j, est));
    s.lines.push(f.by_dev_line(&by));
    s.lines.push(f.equiv_line(j, est));
    s.lines.push(Line::raw("K lists them one per row"));
    s
}

/// The `idle` row (`idle` true) or the `unattributed` row.
fn idle_section<'a>(f: &Fmt<'a>, idle: bool) -> Section<'a> {
    let ledger = f.ledger;
    let mut s = Section::new(if idle {
        "idle energy"
    } else {
        "unattributed energy"
    });
    let by: Vec<f64> = ledger
        .devices
        .iter()
        .map(|d| if idle { d.idle_j } else { d.unattributed_j })
        .collect();
    for (d, j) in ledger.devices.iter().zip(&by) {
        let est = *j > 0.0 && d.provenance == crate::sample::Provenance::Estimated;
        s.lines
            .push(f.kv(&d.id, format!("{}{}", tilde(est), units::energy(*j))));
    }
    let est = f.est_of(&by);
    s.any_est = est;
    s.lines.push(f.equiv_line(by.iter().sum(), est));
    s.lines.push(Line::raw(if idle {
        "device power with no process to charge (the idle policy is a choice, not physics)"
    } else {
        "CPU energy of busy time no visible process accounts for (interrupts, exited, skew)"
    }));
    s
}

/// The rule with the title, the power chart where there is a series and room, and the lines.
fn render_section(app: &App, s: Section<'_>, area: Rect, buf: &mut Buffer, t: &Theme) {
    let Section {
        title,
        mut lines,
        any_est,
        series,
    } = s;
    lines.extend(super::work::detail_lines(app, t));
    if any_est {
        lines.push(Line::styled(
            "~ = estimated (CPU model, not a sensor)",
            t.estimated(),
        ));
    }
    let head = rule(
        vec![
            Span::styled(title, t.title()),
            Span::styled("  Esc back", t.dim()),
        ],
        area.width,
        t,
    );
    let chart_h = if series.is_some() && area.height >= 16 {
        6
    } else {
        0
    };
    let [h, c, body] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(chart_h),
        Constraint::Fill(1),
    ])
    .areas(area);
    Paragraph::new(head).render(h, buf);
    if let Some(s) = series
        && chart_h > 0
    {
        draw_chart(app, s, c, buf, t);
    }
    Paragraph::new(lines).wrap(Wrap { trim: false }).render(body, buf);
}

fn draw_chart(app: &App, s: &Series, c: Rect, buf: &mut Buffer, t: &Theme) {
    let now = app.shown().history.now_s;
    let span = app.window_s().min(3600.0);
    let pts = s.window(now, span);
    let top = pts.iter().map(|p| p.1).fold(1.0_f64, f64::max) * 1.1;
    let marker = if t.ascii {
        Marker::Custom('*')
    } else {
        Marker::Braille
    };
    Chart::new(vec![
        Dataset::default()
            .data(&pts)
            .marker(marker)
            .graph_type(GraphType::Line)
            .style(t.title()),
    ])
    .x_axis(Axis::default().bounds([now - span, now.max(now - span + 1.0)]))
    .y_axis(Axis::default().bounds([0.0, top]).labels([
        Span::styled("0", t.dim()),
        Span::styled(units::power(top), t.dim()),
    ]))
    .legend_position(None)
    .render(c, buf);
}

pub(super) fn draw_help(app: &App, area: Rect, buf: &mut Buffer, t: &Theme) {
    let keys = crate::app::KEYS;
    let mut lines: Vec<Line> = keys
        .iter()
        .map(|(k, what)| {
            Line::from(vec![
                Span::styled(format!("{k:<24}"), t.title()),
                Span::raw(*what),
            ])
        })
        .collect();
    lines.push(Line::raw(""));
    lines.push(Line::styled(
        "~ marks estimated values (CPU power model, not a sensor)",
        t.estimated(),
    ));
    lines.push(Line::raw(
        "IDLE 42m gpu1: holds memory at ~0 % SM on gpu1 that long ([idle_holder])",
    ));
    lines.push(Line::raw(
        "K: kernel threads, 0 J processes hidden; kernel J kept in the `hidden` row",
    ));
    lines.push(Line::raw(match app.impact.facility_differs() {
        Some(pue) => {
            format!("kWh, J: IT energy (the devices' own); CO2e and equivalents include PUE {pue:.2}")
        }
        None => "kWh, J: IT energy (the devices' own); PUE 1.00, so facility = IT".to_string(),
    }));
    for n in app.notices.iter().rev().take(4) {
        lines.push(Line::styled(clean(n, t.ascii), t.dim()));
    }
    // Tall enough for every line as wrapped in the popup's inner width (plus the borders).
    let inner_w = usize::from(78.min(area.width).saturating_sub(2)).max(1);
    let rows: usize = lines.iter().map(|l| l.width().div_ceil(inner_w).max(1)).sum();
    let h = u16::try_from(rows + 2).unwrap_or(u16::MAX);
    let inner = super::popup(area, 78, h, "kwtop help (any key closes)", buf, t);
    Paragraph::new(lines)
        .wrap(Wrap { trim: false })
        .render(inner, buf);
}
