#![allow(clippy::unwrap_used, clippy::expect_used)]
//! One meaning per label (PUE): kWh and joules are IT energy everywhere, CO2e is IT kWh × PUE ×
//! grid for every row and total, equivalents come from facility energy. At PUE 1.5 the table's
//! rows add up to the header's kWh and CO2e, the facility figure is shown and labelled, and the
//! snapshot, the summary and the Prometheus view agree with each other on the same ledger, the
//! per-GPU idle-holder waste included.

use std::sync::Arc;

use kwtop::app::{App, Msg, ViewOptions};
use kwtop::config::Settings;
use kwtop::sample::{DeviceKind, DeviceReading, ProcKey, ProcessReading, Sample};
use kwtop::serve::metrics::{Exporter, encode};
use kwtop::summary::{self, SummaryOptions};
use kwtop::{snapshot, units};
use kwtop_core::testing;
use ratatui::Terminal;
use ratatui::backend::TestBackend;

const GIB: u64 = 1 << 30;

fn settings() -> Settings {
    kwtop::config::parse(
        "[impact]\npue = 1.5\n\n[idle_holder]\nafter = \"3s\"\n\n[attribution]\ngpu_idle_w = 50.0\n",
        None,
    )
    .unwrap()
}

fn proc_(pid: u32, ticks: u64, comm: &str) -> ProcessReading {
    testing::process(pid, 7, ticks)
        .comm(comm)
        .cmdline(format!("{comm} --run"))
        .user("ana")
        .build()
}

fn counter(id: &str, kind: DeviceKind, uj: u64) -> DeviceReading {
    testing::counter(id, kind, id.to_uppercase(), uj)
}

/// One sample a minute: pid 10 trains on gpu0 (97 %) and holds 40 GiB idle on gpu1; pid 11 uses the CPU
/// and exits half way; the CPU is 60 % busy, so there are idle and unattributed rows too.
fn samples() -> Vec<Sample> {
    (0..10u64)
        .map(|i| {
            let mut gpu0 = counter("gpu0", DeviceKind::Gpu, i * 24_000_000_000);
            gpu0.gpu_processes = vec![testing::holder(10, 8 * GIB, Some(97.0))];
            let mut gpu1 = counter("gpu1", DeviceKind::Gpu, i * 4_200_000_000);
            gpu1.gpu_processes = vec![testing::holder(10, 40 * GIB, Some(0.0))];
            let mut procs = vec![proc_(10, i * 1800, "train")];
            if i < 5 {
                procs.push(proc_(11, i * 1200, "make"));
            }
            testing::sample_at(i as f64 * 60.0)
                .wall_origin_ms(1_700_000_000_000)
                .uptime_origin(1000.0)
                .cpu(i * 3600, i * 2400)
                .procs(procs)
                .devices([gpu0, gpu1, counter("cpu0", DeviceKind::Cpu, i * 5_400_000_000)])
                .build()
        })
        .collect()
}

fn app() -> App {
    let mut app = App::new(&settings().app(), ViewOptions::default());
    for s in samples() {
        app.update(Msg::Sample(Box::new(s)));
    }
    app
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

fn screen_text(app: &App, w: u16, h: u16) -> Vec<String> {
    let mut term = Terminal::new(TestBackend::new(w, h)).unwrap();
    term.draw(|f| kwtop::ui::render(app, f)).unwrap();
    let buf = term.backend().buffer().clone();
    (0..h)
        .map(|y| (0..w).map(|x| buf[(x, y)].symbol().to_string()).collect())
        .collect()
}

#[test]
fn table_rows_add_up_to_the_header_at_pue_1_5() {
    let app = app();
    let impact = &app.impact;
    assert_eq!(impact.pue, 1.5);
    let total_j = app.ledger().total_energy_j();
    let rows = app.rows();
    assert!(rows.len() >= 4, "processes, exited, idle and unattributed rows");
    let rows_j: f64 = rows.iter().map(|r| r.energy_j).sum();
    let rows_co2e: f64 = rows.iter().map(|r| impact.co2e_g(r.energy_j)).sum();
    assert!(close(rows_j, total_j), "rows {rows_j} J vs total {total_j} J");
    assert!(close(rows_co2e, impact.co2e_g(total_j)));
    // CO2e is IT kWh × PUE × grid.
    assert!(close(
        impact.co2e_g(total_j),
        total_j / 3.6e6 * 1.5 * impact.grid.g_per_kwh
    ));

    let screen = screen_text(&app, 160, 40);
    let header = &screen[1];
    assert!(
        rows_j > 0.05 * 3.6e6,
        "large enough to tell IT from facility kWh at 3 decimals"
    );
    let it_kwh = format!("session {:.3} kWh", rows_j / 3.6e6);
    let facility = format!("facility {:.3} kWh at PUE 1.50", rows_j * 1.5 / 3.6e6);
    let co2e = format!("{} CO2e", units::mass_g(rows_co2e));
    for want in [&it_kwh, &facility, &co2e] {
        assert!(header.contains(want.as_str()), "header lacks {want:?}: {header}");
    }
    assert!(screen[0].contains("PUE 1.50"), "{}", screen[0]);
    // The idle holder is named with its GPU in the header alert and the STATE column.
    assert!(header.contains("1 idle holder on gpu1"), "{header}");
    let train = app
        .ledger()
        .process(&ProcKey {
            pid: 10,
            starttime: 7,
        })
        .unwrap();
    let state = format!("IDLE {} gpu1", units::short_age(train.idle().streak_s));
    assert!(
        screen.iter().any(|l| l.contains(&state)),
        "no {state}: {screen:#?}"
    );
}

#[test]
fn snapshot_summary_and_metrics_agree_on_the_same_ledger() {
    let app = app();
    let impact = &app.impact;
    let ledger = app.ledger();
    let total_j = ledger.total_energy_j();

    let snap = snapshot::build(ledger, impact, "h", 1.0, &[]);
    let sum = summary::build(ledger, impact, "h", &[], &SummaryOptions::default());
    let view = Exporter::new(10).update(app.engine(), impact);

    // IT energy: the same joules and kWh everywhere, equal to the sum of the devices.
    let view_j: f64 = view.devices.iter().map(|d| d.energy_j).sum();
    for (what, j) in [
        ("snapshot", snap.totals.energy_j),
        ("summary", sum.totals.energy_j),
        ("metrics", view_j),
    ] {
        assert!(close(j, total_j), "{what}: {j} vs {total_j}");
    }
    assert!(close(snap.totals.kwh, total_j / 3.6e6));
    assert!(close(sum.totals.kwh, snap.totals.kwh));
    // Facility energy is labelled apart: IT × PUE.
    assert!(close(snap.totals.facility_kwh, snap.totals.kwh * 1.5));
    assert!(close(sum.totals.facility_kwh, snap.totals.facility_kwh));
    // CO2e includes PUE, the same in all three, and the rows' CO2e adds up to it.
    assert!(close(snap.totals.co2e_g, impact.co2e_g(total_j)));
    assert!(close(sum.totals.co2e_g, snap.totals.co2e_g));
    assert!(close(view.co2e_g, snap.totals.co2e_g));
    let idle_un_j: f64 = snap.idle_j.values().chain(snap.unattributed_j.values()).sum();
    let rows_co2e: f64 = snap.processes.iter().map(|p| p.co2e_g).sum::<f64>() + impact.co2e_g(idle_un_j);
    assert!(
        close(rows_co2e, snap.totals.co2e_g),
        "{rows_co2e} vs {}",
        snap.totals.co2e_g
    );
    assert_eq!((snap.totals.pue, sum.totals.pue, view.pue), (1.5, 1.5, 1.5));
    // Equivalents: phone charges of facility energy, the same in snapshot and summary.
    assert!(close(
        snap.totals.equivalents.phone_charges,
        snap.totals.facility_kwh / impact.phone_charge_kwh
    ));
    assert!(close(
        sum.totals.equivalents.phone_charges,
        snap.totals.equivalents.phone_charges
    ));

    // Idle-holder waste: on gpu1 only, the same per GPU in all three.
    let gpu1 = ledger.device_index("gpu1").unwrap();
    let wasted = ledger.idle_holder_wasted_by_dev();
    assert!(wasted[gpu1] > 0.0);
    assert_eq!(wasted[ledger.device_index("gpu0").unwrap()], 0.0);
    for (i, d) in ledger.devices.iter().enumerate() {
        let snap_d = snap.devices.iter().find(|x| x.id == d.id).unwrap();
        let sum_d = sum.devices.iter().find(|x| x.id == d.id).unwrap();
        if d.kind == DeviceKind::Gpu {
            assert!(close(snap_d.idle_holder_wasted_j.unwrap(), wasted[i]), "{}", d.id);
            assert!(close(sum_d.idle_holder_wasted_j.unwrap(), wasted[i]), "{}", d.id);
            assert!(close(view.holder_wasted_j[i], wasted[i]), "{}", d.id);
        } else {
            assert_eq!(
                (snap_d.idle_holder_wasted_j, sum_d.idle_holder_wasted_j),
                (None, None)
            );
        }
    }
    assert!(close(
        snap.totals.idle_holder_wasted_j,
        sum.totals.idle_holder_wasted_j
    ));
    let train = snap.processes.iter().find(|p| p.pid == 10).unwrap();
    assert_eq!(train.state, "idle-holder");
    assert_eq!(train.idle_gpus, vec!["gpu1".to_string()]);
    assert!(close(train.idle_wasted_j, wasted[gpu1]));
    assert_eq!(sum.idle_holders.len(), 1);
    assert_eq!(sum.idle_holders[0].device, "gpu1");
    assert_eq!(view.holders.len(), 1);
    assert_eq!(view.holders[0].device, "gpu1");

    // The exposition says the same, with the GPU as a label.
    let mut text = String::new();
    encode(&mut text, Arc::new(view)).unwrap();
    let line = |prefix: &str| -> f64 {
        let l = text
            .lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix} in\n{text}"));
        l.rsplit_once(' ').unwrap().1.parse().unwrap()
    };
    assert!(close(line("kwtop_co2e_grams_total "), snap.totals.co2e_g));
    assert!(close(
        line("kwtop_idle_holder_wasted_joules_total{device=\"gpu1\"}"),
        wasted[gpu1]
    ));
    assert_eq!(
        line("kwtop_idle_holder_wasted_joules_total{device=\"gpu0\"}"),
        0.0
    );
    assert!(text.contains("kwtop_idle_holder{pid=\"10\",command=\"train\",user=\"ana\",device=\"gpu1\"} 1"));
    assert!(!text.contains("kwtop_idle_holder_wasted_joules_total{device=\"cpu0\"}"));
}

#[test]
fn pue_is_said_wherever_it_is_included() {
    let app = app();
    let ledger = app.ledger();
    let snap = snapshot::build(ledger, &app.impact, "h", 1.0, &[]);
    let table = snapshot::table(&snap, 5);
    assert!(table.contains("at PUE 1.50"), "{table}");
    let sum = summary::build(ledger, &app.impact, "h", &[], &SummaryOptions::default());
    let md = summary::render(&sum, summary::Format::Md);
    assert!(md.contains("| Energy (IT) |"), "{md}");
    assert!(md.contains("| Facility energy (× PUE 1.50) |"), "{md}");
    assert!(md.contains("| CO2e (IT kWh × PUE 1.50 × grid) |"), "{md}");
    assert!(
        sum.method
            .iter()
            .any(|m| m.contains("IT energy") && m.contains("PUE 1.50"))
    );
}
