//! The building blocks of an exposition: a label set, a metric family written with
//! `prometheus-client` (skipped when empty), constant gauges and counters. Shared by the view's
//! families (`metrics`) and the work meter's (`work`).

use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

pub(crate) type Labels<'a> = Vec<(&'static str, &'a str)>;

/// One metric family: skipped entirely when it has no samples.
pub(crate) fn family<'a, M: EncodeMetric>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: MetricType,
    rows: impl IntoIterator<Item = (Labels<'a>, M)>,
) -> Result<(), std::fmt::Error> {
    let mut rows = rows.into_iter().peekable();
    if rows.peek().is_none() {
        return Ok(());
    }
    let mut fam = enc.encode_descriptor(name, help, None, kind)?;
    for (labels, metric) in rows {
        metric.encode(fam.encode_family(&labels)?)?;
    }
    Ok(())
}

pub(crate) fn gauge<'a>(labels: Labels<'a>, v: f64) -> (Labels<'a>, ConstGauge<f64>) {
    (labels, ConstGauge::new(v))
}

pub(crate) fn counter<'a>(labels: Labels<'a>, v: f64) -> (Labels<'a>, ConstCounter<f64>) {
    (labels, ConstCounter::new(v.max(0.0)))
}
