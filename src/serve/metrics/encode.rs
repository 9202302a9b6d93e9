//! Writing a [`MetricsView`] in the Prometheus text format: one collector, one function per group
//! of families (devices, processes, idle holders, the session, work).

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use super::{DeviceRow, MetricsView, ProcLabels};
use crate::sample::DeviceKind;
use crate::serve::expo::{Labels, counter, family, gauge};

/// The collector that encodes one view (`prometheus-client` calls it on encode).
#[derive(Debug)]
struct ViewCollector(std::sync::Arc<MetricsView>);

fn proc_label_set<'a>(l: &'a ProcLabels, device: &'a str) -> Labels<'a> {
    vec![
        ("pid", l.pid.as_str()),
        ("command", l.command.as_str()),
        ("user", l.user.as_str()),
        ("device", device),
        ("container", l.container.as_str()),
        ("pod", l.pod.as_str()),
        ("slurm_job", l.slurm_job.as_str()),
    ]
}

fn dev_label_set(d: &DeviceRow) -> Labels<'_> {
    vec![
        ("device", d.id.as_str()),
        ("kind", d.kind),
        ("name", d.name.as_str()),
    ]
}

impl Collector for ViewCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let v = &*self.0;
        device_families(&mut enc, v)?;
        process_families(&mut enc, v)?;
        holder_families(&mut enc, v)?;
        session_families(&mut enc, v)?;
        crate::serve::work::families(&mut enc, v.work.as_ref())
    }
}

/// Per device: power, energy, limit, up, info, idle and unattributed energy.
fn device_families(enc: &mut DescriptorEncoder, v: &MetricsView) -> Result<(), std::fmt::Error> {
    let dev_labels = dev_label_set;
    let g = MetricType::Gauge;
    let c = MetricType::Counter;
    family(
        enc,
        "device_power_watts",
        "Device power, average over the last sampling interval, watts",
        g,
        v.devices.iter().filter_map(|d| {
            let mut l = dev_labels(d);
            l.push(("provenance", d.provenance));
            d.power_w.map(|w| gauge(l, w))
        }),
    )?;
    family(
        enc,
        "device_energy_joules",
        "Device energy since kwtop started, joules (IT energy as measured; facility energy is this x kwtop_pue)",
        c,
        v.devices.iter().map(|d| counter(dev_labels(d), d.energy_j)),
    )?;
    family(
        enc,
        "device_power_limit_watts",
        "Enforced device power limit, watts",
        g,
        v.devices
            .iter()
            .filter_map(|d| d.power_limit_w.map(|w| gauge(dev_labels(d), w))),
    )?;
    family(
        enc,
        "device_up",
        "1 when the device's energy was read in the last interval, 0 when it was not available",
        g,
        v.devices
            .iter()
            .map(|d| gauge(dev_labels(d), if d.up { 1.0 } else { 0.0 })),
    )?;
    family(
        enc,
        "device_info",
        "1 per device, labelled with its vendor and where its energy comes from (one series per device)",
        g,
        v.devices.iter().map(|d| {
            let mut l = dev_labels(d);
            l.push(("vendor", d.vendor.as_str()));
            l.push(("source", d.source.as_str()));
            gauge(l, 1.0)
        }),
    )?;
    family(
        enc,
        "idle_energy_joules",
        "Device energy spent with no process to charge it to (the idle row), joules",
        c,
        v.devices
            .iter()
            .map(|d| counter(vec![("device", d.id.as_str())], d.idle_j)),
    )?;
    family(
        enc,
        "unattributed_energy_joules",
        "Device energy not attributed to a visible process (exited, interrupts, read skew; on a GPU whose \
         process list could not be read, its static part too), joules",
        c,
        v.devices
            .iter()
            .map(|d| counter(vec![("device", d.id.as_str())], d.unattributed_j)),
    )?;
    Ok(())
}

/// Per process (the top N and `other`) on each device: power and energy.
fn process_families(enc: &mut DescriptorEncoder, v: &MetricsView) -> Result<(), std::fmt::Error> {
    let g = MetricType::Gauge;
    let c = MetricType::Counter;
    let device_id = |i: usize| v.devices.get(i).map_or("", |d| d.id.as_str());
    let rows = || {
        v.processes.iter().filter_map(|r| {
            v.labels
                .get(r.labels)
                .map(|l| (proc_label_set(l, device_id(r.device)), r))
        })
    };
    family(
        enc,
        "process_power_watts",
        "Power attributed to a process on a device over the last interval, watts (pid=\"other\": the processes outside the top N)",
        g,
        rows().map(|(l, r)| gauge(l, r.power_w)),
    )?;
    family(
        enc,
        "process_energy_joules",
        "Energy attributed to a process on a device while it had its own series, joules (pid=\"other\": everything else)",
        c,
        rows().map(|(l, r)| counter(l, r.energy_j)),
    )?;
    Ok(())
}

/// Idle GPU holders: the flag, how long, and the energy wasted per GPU.
fn holder_families(enc: &mut DescriptorEncoder, v: &MetricsView) -> Result<(), std::fmt::Error> {
    let g = MetricType::Gauge;
    let c = MetricType::Counter;
    family(
        enc,
        "idle_holder",
        "1 for a process holding memory on this GPU (device) while its SM share there stays under the idle threshold",
        g,
        v.holders.iter().map(|h| {
            let l = &h.labels;
            gauge(
                vec![
                    ("pid", l.pid.as_str()),
                    ("command", l.command.as_str()),
                    ("user", l.user.as_str()),
                    ("device", h.device.as_str()),
                ],
                1.0,
            )
        }),
    )?;
    family(
        enc,
        "idle_holder_seconds",
        "How long a flagged idle holder has been idle on this GPU (device), seconds",
        g,
        v.holders.iter().map(|h| {
            let l = &h.labels;
            gauge(
                vec![
                    ("pid", l.pid.as_str()),
                    ("command", l.command.as_str()),
                    ("device", h.device.as_str()),
                ],
                h.idle_s,
            )
        }),
    )?;
    family(
        enc,
        "idle_holder_wasted_joules",
        "Energy charged on this GPU (device) to processes while they were flagged idle holders on it, exited ones included, joules",
        c,
        v.devices
            .iter()
            .zip(&v.holder_wasted_j)
            .filter(|(d, _)| d.kind == DeviceKind::Gpu.as_str())
            .map(|(d, j)| counter(vec![("device", d.id.as_str())], *j)),
    )?;
    Ok(())
}

/// Whole-session figures: CO2e, grid intensity, PUE, session length, running processes.
fn session_families(enc: &mut DescriptorEncoder, v: &MetricsView) -> Result<(), std::fmt::Error> {
    let g = MetricType::Gauge;
    let c = MetricType::Counter;
    family(
        enc,
        "co2e_grams",
        "CO2-equivalent of the energy measured since kwtop started (IT energy x PUE x grid intensity), grams",
        c,
        [counter(Vec::new(), v.co2e_g)],
    )?;
    family(
        enc,
        "grid_intensity_grams_per_kwh",
        "Grid carbon intensity used for CO2e, gCO2e per kWh",
        g,
        [gauge(
            vec![
                ("source", v.grid_source.as_str()),
                ("label", v.grid_label.as_str()),
            ],
            v.grid_g_per_kwh,
        )],
    )?;
    family(
        enc,
        "pue",
        "Power usage effectiveness applied to CO2e (facility energy / IT energy)",
        g,
        [gauge(Vec::new(), v.pue)],
    )?;
    if let Some((currency, per_kwh, cost)) = &v.price {
        family(
            enc,
            "electricity_price_per_kwh",
            "Price of a facility kWh ([impact] price_per_kwh), in the currency of the label",
            g,
            [gauge(vec![("currency", currency.as_str())], *per_kwh)],
        )?;
        family(
            enc,
            "cost",
            "What the energy measured since kwtop started cost (IT energy x PUE x price), in the currency of the label",
            c,
            [counter(vec![("currency", currency.as_str())], *cost)],
        )?;
    }
    family(
        enc,
        "session_seconds",
        "Seconds of measurement accounted since kwtop started",
        c,
        [counter(Vec::new(), v.session_s)],
    )?;
    family(
        enc,
        "processes_running",
        "Running processes kwtop accounts (all of them, not only the exported top N)",
        g,
        [gauge(Vec::new(), v.running_processes as f64)],
    )?;
    Ok(())
}

/// Append the view's exposition (Prometheus text format 0.0.4) to `out`.
pub fn encode(out: &mut String, view: std::sync::Arc<MetricsView>) -> Result<(), std::fmt::Error> {
    let mut registry = Registry::with_prefix("kwtop");
    registry.register_collector(Box::new(ViewCollector(view)));
    prometheus_client::encoding::prometheus_text::encode(out, &registry)
}

/// Append the `kwtop_scrape_duration_seconds` gauge.
pub fn encode_scrape_duration(out: &mut String, seconds: f64) -> Result<(), std::fmt::Error> {
    let mut registry = Registry::with_prefix("kwtop");
    registry.register(
        "scrape_duration_seconds",
        "Time kwtop took to produce the previous part of this response, seconds",
        ConstGauge::new(seconds),
    );
    prometheus_client::encoding::prometheus_text::encode(out, &registry)
}
