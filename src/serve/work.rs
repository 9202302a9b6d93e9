//! The work meter's series on `/metrics`: units counted and the scope's energy, both since kwtop
//! started counting, so that
//! `rate(kwtop_work_energy_joules_total[5m]) / ignoring(scope) rate(kwtop_work_units_total[5m])`
//! is joules per unit over the last five minutes.
//!
//! While the source does not answer, `kwtop_work_units_total` is left out (Prometheus sees a gap,
//! not a flat line that would read as zero units per second) and `kwtop_work_up` is 0; the energy
//! counter keeps counting, and the source's next answer brings the units of the gap with it.

use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::MetricType;

use super::expo::{counter, family, gauge};
use crate::work::live::WorkFigures;

/// Encode the `kwtop_work_*` families of `work` (nothing without a work meter).
pub(super) fn families(
    enc: &mut DescriptorEncoder,
    work: Option<&WorkFigures>,
) -> Result<(), std::fmt::Error> {
    let Some(w) = work.filter(|w| w.started) else {
        return Ok(());
    };
    let unit = w.unit.as_str();
    family(
        enc,
        "work_units",
        "Units of work counted since kwtop started counting (--progress-log, --work-metric); absent while the \
         source does not answer",
        MetricType::Counter,
        w.gap
            .is_none()
            .then(|| counter(vec![("unit", unit)], w.units as f64)),
    )?;
    family(
        enc,
        "work_energy_joules",
        "Energy of the processes doing the work (scope: tree, writers, listener or machine) since kwtop started \
         counting, joules; divide its rate by kwtop_work_units_total's for joules per unit",
        MetricType::Counter,
        [counter(vec![("unit", unit), ("scope", w.scope_kind)], w.energy_j)],
    )?;
    family(
        enc,
        "work_up",
        "1 when the source of the units of work answered at the last sample, 0 during a gap",
        MetricType::Gauge,
        [gauge(
            vec![("unit", unit)],
            if w.gap.is_none() { 1.0 } else { 0.0 },
        )],
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::sync::Arc;

    use super::super::metrics::{MetricsView, encode};
    use crate::work::live::{Gap, WorkFigures};

    fn figures(gap: bool) -> WorkFigures {
        WorkFigures {
            unit: "token".into(),
            scope: "tree of 811 (listening on :8000)".into(),
            scope_kind: "listener",
            started: true,
            units: 1200,
            reported: 51_200,
            energy_j: 3000.5,
            estimated: false,
            session: None,
            recent: None,
            co2e_g_per_unit: None,
            wh_per_1000: None,
            gap: gap.then(|| Gap {
                for_s: 3.0,
                why: "connection refused".into(),
            }),
            resets: 0,
        }
    }

    fn text(work: Option<WorkFigures>) -> String {
        let mut out = String::new();
        let view = MetricsView {
            work,
            ..MetricsView::default()
        };
        encode(&mut out, Arc::new(view)).unwrap();
        out
    }

    #[test]
    fn units_and_energy_are_counters_and_a_gap_leaves_the_units_out() {
        let t = text(Some(figures(false)));
        assert!(t.contains("# TYPE kwtop_work_units_total counter\n"), "{t}");
        assert!(
            t.contains("kwtop_work_units_total{unit=\"token\"} 1200.0\n"),
            "{t}"
        );
        assert!(
            t.contains("kwtop_work_energy_joules_total{unit=\"token\",scope=\"listener\"} 3000.5\n"),
            "{t}"
        );
        assert!(t.contains("kwtop_work_up{unit=\"token\"} 1.0\n"), "{t}");
        let g = text(Some(figures(true)));
        assert!(!g.contains("kwtop_work_units_total{"), "{g}");
        assert!(g.contains("kwtop_work_energy_joules_total{unit=\"token\",scope=\"listener\"} 3000.5\n"));
        assert!(g.contains("kwtop_work_up{unit=\"token\"} 0.0\n"), "{g}");
        assert!(!text(None).contains("kwtop_work"));
    }
}
