//! CPU package and DRAM energy from the perf_event `power` PMU (the kernel's RAPL perf driver), the
//! measured source for users who may not read powercap's root-only `energy_uj`.
//!
//! The PMU describes itself under `{sysfs_root}/bus/event_source/devices/power`: `type` (the number
//! for `perf_event_attr.type`), `cpumask` (one CPU per package), `format/<term>` (where a term's
//! bits go, e.g. `config:0-7`) and `events/energy-pkg` (`event=0x02`) with `.scale` (joules per
//! count, 2⁻³² on Intel and AMD) and `.unit` (`Joules`). One counting event per package is opened
//! with `perf_event_open(attr{type, config}, pid = -1, cpu = N)`, which needs CAP_PERFMON (or
//! CAP_SYS_ADMIN) or `kernel.perf_event_paranoid` ≤ 0. The kernel accumulates the 32-bit MSR into a
//! 64-bit count, so counters go to the tracker with `wrap_uj: None`. psys is never added to packages:
//! it is used only when no `energy-pkg` event exists, as powercap does.
//!
//! Some virtual machines expose the `power` PMU and its events without counting anything: the count
//! reads 0 and never moves, which would be shown as a measured 0 W. So each counter, once opened, is
//! read again until it has moved, for at most [`PerfOpen::probe_window`] (50 ms; a real RAPL counter
//! moves about every millisecond, by ~61 µJ at most per count): one that does not is left out with
//! the reason, and with no package counter left the CPU is estimated instead.
//!
//! The syscall sits behind [`PerfOpen`], so the description parsing, per-package ids, scaling,
//! errors and notices are tested with a fake; [`SysPerf`] is the real one (perf-event2, safe).

use std::io;
use std::path::{Path, PathBuf};

use super::CpuEnergySource;
use crate::sample::{DeviceKind, DeviceReading, EnergyCounter};

/// How to let a non-root user open the power PMU, for the notices.
pub const PERF_ACCESS_HINT: &str = "to measure without root through perf_event, give kwtop the \
capability with `sudo setcap cap_perfmon+ep $(which kwtop)` (Linux 5.8+; CAP_SYS_ADMIN before), or allow \
CPU-wide events for every user with `sudo sysctl kernel.perf_event_paranoid=0`";

/// Opens CPU-wide counting events (the `perf_event_open` syscall, or a fake in tests).
pub trait PerfOpen {
    /// Open an enabled counting event of PMU `ty` with `config` on `cpu`, for all processes.
    fn open(&mut self, ty: u32, config: u64, cpu: u32) -> io::Result<Box<dyn PerfCount>>;

    /// How long an opened counter may stay still before it is taken for one that counts nothing
    /// (see the module docs); zero: not probed.
    fn probe_window(&self) -> std::time::Duration {
        PROBE_WINDOW
    }
}

/// See [`PerfOpen::probe_window`].
pub const PROBE_WINDOW: std::time::Duration = std::time::Duration::from_millis(50);

/// One open event's running count.
pub trait PerfCount: Send {
    fn read(&mut self) -> io::Result<u64>;
}

/// The real `perf_event_open`, through perf-event2.
pub struct SysPerf;

/// A dynamic-PMU event given by number, so the real opener and the fake share one interface
/// (type, config, cpu); perf-event2's `Dynamic` would re-read the sysfs description itself.
struct PmuEvent {
    ty: u32,
    config: u64,
}

impl perf_event::events::Event for PmuEvent {
    fn update_attrs(self, attr: &mut perf_event_open_sys::bindings::perf_event_attr) {
        attr.type_ = self.ty;
        attr.config = self.config;
    }
}

struct SysCount(perf_event::Counter);

impl PerfCount for SysCount {
    fn read(&mut self) -> io::Result<u64> {
        self.0.read()
    }
}

impl PerfOpen for SysPerf {
    fn open(&mut self, ty: u32, config: u64, cpu: u32) -> io::Result<Box<dyn PerfCount>> {
        let mut b = perf_event::Builder::new(PmuEvent { ty, config });
        // The RAPL PMU is CPU-wide; older kernels refuse events that exclude any mode.
        b.any_pid()
            .one_cpu(cpu as usize)
            .exclude_kernel(false)
            .exclude_hv(false)
            .enabled(true);
        Ok(Box::new(SysCount(b.build()?)))
    }
}

/// One event of the PMU, as sysfs describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct EventDesc {
    pub name: String,
    pub config: u64,
    /// Joules per count.
    pub scale: f64,
}

/// The power PMU's description.
#[derive(Debug, Clone, PartialEq)]
pub struct PmuDesc {
    pub dir: PathBuf,
    pub ty: u32,
    /// One CPU per RAPL domain (package, or die on multi-die parts), from `cpumask`.
    pub domains: Vec<Domain>,
    pub pkg: Option<EventDesc>,
    pub ram: Option<EventDesc>,
    pub psys: Option<EventDesc>,
    /// Optional events (DRAM, psys) described wrongly, left out: why.
    pub notes: Vec<String>,
}

/// One CPU of the PMU's cpumask: the domain it stands for.
#[derive(Debug, Clone, PartialEq)]
pub struct Domain {
    pub cpu: u32,
    /// The device number: the package id, or the place in `cpumask` when packages repeat (dies).
    pub index: u32,
    /// `package-0`, or `package-0-die-1` when a package has several domains (as powercap names them).
    pub label: String,
}

fn read_trimmed(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// A CPU list as the kernel prints it: `0`, `0,32`, `0-3,8`.
pub fn parse_cpulist(s: &str) -> Option<Vec<u32>> {
    let mut out = Vec::new();
    for part in s.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (u32, u32) = (a.parse().ok()?, b.parse().ok()?);
                if b < a || b - a > 65_536 {
                    return None;
                }
                out.extend(a..=b);
            }
            None => out.push(part.parse().ok()?),
        }
    }
    Some(out)
}

/// Where a format term's value goes: `config:0-7` → shift 0, 8 bits; `config:21` → one bit.
fn parse_format(s: &str) -> Option<(u32, u32)> {
    let bits = s.trim().strip_prefix("config:")?;
    let (lo, hi) = match bits.split_once('-') {
        Some((lo, hi)) => (lo.parse().ok()?, hi.parse().ok()?),
        None => {
            let b = bits.parse().ok()?;
            (b, b)
        }
    };
    (lo <= hi && hi < 64).then_some((lo, hi - lo + 1))
}

/// An event file (`event=0x02`, terms separated by commas) to its `config`, each term placed as
/// `format/<term>` says.
fn parse_event(pmu: &Path, text: &str) -> Result<u64, String> {
    let mut config = 0u64;
    for term in text.trim().split(',').filter(|t| !t.is_empty()) {
        let (name, value) = term.split_once('=').unwrap_or((term, "1"));
        let v = match value.strip_prefix("0x") {
            Some(hex) => u64::from_str_radix(hex, 16),
            None => value.parse(),
        }
        .map_err(|_| format!("'{term}': not a number"))?;
        let fmt = read_trimmed(&pmu.join("format").join(name))?;
        let (shift, width) =
            parse_format(&fmt).ok_or_else(|| format!("format '{fmt}' of '{name}' not understood"))?;
        if width < 64 && v >> width != 0 {
            return Err(format!("'{term}' does not fit in {fmt}"));
        }
        config |= v << shift;
    }
    Ok(config)
}

/// One event's description, `None` when the PMU does not have it.
fn event_desc(pmu: &Path, name: &str) -> Result<Option<EventDesc>, String> {
    let path = pmu.join("events").join(name);
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(None);
    };
    let config = parse_event(pmu, &text).map_err(|e| format!("{}: {e}", path.display()))?;
    let unit = read_trimmed(&pmu.join("events").join(format!("{name}.unit")))?;
    if unit != "Joules" {
        return Err(format!("{name}: unit '{unit}', not Joules"));
    }
    let scale_s = read_trimmed(&pmu.join("events").join(format!("{name}.scale")))?;
    let scale = scale_s
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s > 0.0)
        .ok_or_else(|| format!("{name}.scale: not a positive number: '{scale_s}'"))?;
    Ok(Some(EventDesc {
        name: name.to_string(),
        config,
        scale,
    }))
}

/// Read the power PMU's description under `sysfs_root`; `Err` says why there is none.
pub fn describe_pmu(sysfs_root: &Path) -> Result<PmuDesc, String> {
    let dir = sysfs_root.join("bus/event_source/devices/power");
    if !dir.is_dir() {
        return Err(format!(
            "no power PMU ({} absent: no RAPL perf driver for this CPU, or a VM)",
            dir.display()
        ));
    }
    let ty_s = read_trimmed(&dir.join("type"))?;
    let ty = ty_s
        .parse()
        .map_err(|_| format!("{}/type: not a number: '{ty_s}'", dir.display()))?;
    let mask = read_trimmed(&dir.join("cpumask"))?;
    let cpus = parse_cpulist(&mask)
        .filter(|c| !c.is_empty())
        .ok_or_else(|| format!("{}/cpumask: not a CPU list: '{mask}'", dir.display()))?;
    let topo = |cpu: u32, what: &str| -> Option<u32> {
        let p = sysfs_root.join(format!("devices/system/cpu/cpu{cpu}/topology/{what}"));
        read_trimmed(&p).ok().and_then(|s| s.parse().ok())
    };
    let pkgs: Vec<u32> = cpus
        .iter()
        .enumerate()
        .map(|(i, &cpu)| topo(cpu, "physical_package_id").unwrap_or(i as u32))
        .collect();
    let repeated = (1..pkgs.len()).any(|i| pkgs[..i].contains(&pkgs[i]));
    let domains = cpus
        .iter()
        .zip(&pkgs)
        .enumerate()
        .map(|(i, (&cpu, &pkg))| match repeated {
            false => Domain {
                cpu,
                index: pkg,
                label: format!("package-{pkg}"),
            },
            true => Domain {
                cpu,
                index: i as u32,
                label: format!("package-{pkg}-die-{}", topo(cpu, "die_id").unwrap_or(i as u32)),
            },
        })
        .collect();
    let mut notes = Vec::new();
    let mut optional = |name: &str| {
        event_desc(&dir, name).unwrap_or_else(|why| {
            notes.push(format!("perf_event {name} left out: {why}"));
            None
        })
    };
    let (ram, psys) = (optional("energy-ram"), optional("energy-psys"));
    Ok(PmuDesc {
        ty,
        domains,
        pkg: event_desc(&dir, "energy-pkg")?,
        ram,
        psys,
        notes,
        dir,
    })
}

/// µJ from a count and its scale (joules per count), rounded to the nearest µJ: exactly in integers
/// whenever the product fits (the scale is a binary fraction, m × 2^e; RAPL's is 2⁻³²), otherwise in
/// floating point. Rounding a monotone count keeps it monotone, and the total never drifts.
pub fn scaled_uj(count: u64, scale: f64) -> u64 {
    let bits = scale.to_bits();
    let exp = ((bits >> 52) & 0x7ff) as i32;
    if scale.is_finite() && scale > 0.0 && exp != 0 {
        let m = (bits & ((1u64 << 52) - 1)) | (1u64 << 52);
        let tz = m.trailing_zeros();
        let (m, e) = (m >> tz, exp - 1075 + tz as i32);
        let n = (u128::from(count) * 1_000_000).checked_mul(u128::from(m));
        if (-127..0).contains(&e) {
            let k = (-e) as u32;
            if let Some(n) = n.and_then(|n| n.checked_add(1u128 << (k - 1))) {
                return u64::try_from(n >> k).unwrap_or(u64::MAX);
            }
        }
    }
    (count as f64 * scale * 1e6).round() as u64
}

/// One open counter that kwtop reports as a device.
struct Channel {
    id: String,
    kind: DeviceKind,
    name: String,
    /// The event and CPU ("power/energy-pkg on CPU 0"), for notices.
    what: String,
    scale: f64,
    count: Box<dyn PerfCount>,
}

impl Channel {
    fn counter(&mut self) -> Result<EnergyCounter, String> {
        self.count
            .read()
            .map(|c| EnergyCounter {
                value_uj: scaled_uj(c, self.scale),
                wrap_uj: None,
            })
            .map_err(|e| format!("perf_event read of {} failed: {e}", self.name))
    }
}

/// Reads the power PMU's counters each tick.
pub struct PerfRaplSource {
    channels: Vec<Channel>,
    notices: Vec<String>,
    /// What was opened, for the choice notice: "power/energy-pkg on CPU 0, 32, power/energy-ram".
    summary: String,
}

impl PerfRaplSource {
    /// The device ids this source reports.
    pub fn ids(&self) -> Vec<String> {
        self.channels.iter().map(|c| c.id.clone()).collect()
    }

    /// What it reads, for the notice that says it was chosen.
    pub fn summary(&self) -> &str {
        &self.summary
    }
}

impl CpuEnergySource for PerfRaplSource {
    fn read(&mut self) -> Vec<DeviceReading> {
        self.channels
            .iter_mut()
            .map(|c| {
                let mut r = DeviceReading::new(c.id.clone(), c.kind, c.name.clone());
                r.source = Some("perf_event".into());
                match c.counter() {
                    Ok(e) => r.energy = Some(e),
                    Err(why) => r.error = Some(why),
                }
                r
            })
            .collect()
    }

    fn read_counters(&mut self) -> Vec<super::CounterRead> {
        self.channels
            .iter_mut()
            .map(|c| (c.id.clone(), c.counter()))
            .collect()
    }

    fn take_notices(&mut self) -> Vec<String> {
        std::mem::take(&mut self.notices)
    }
}

/// Why an open was refused, with the paranoid level and how to allow it.
fn refused(e: &io::Error, what: &str, proc_root: &Path) -> String {
    let path = proc_root.join("sys/kernel/perf_event_paranoid");
    let level = match read_trimmed(&path) {
        Ok(v) => format!("kernel.perf_event_paranoid is {v}"),
        Err(why) => format!("kernel.perf_event_paranoid unknown ({why})"),
    };
    // Docker's default seccomp profile and security modules answer EPERM whatever the sysctl says.
    let elsewhere = if e.raw_os_error() == Some(libc::EPERM) {
        " (EPERM may also come from a container's seccomp profile or a security module, which must \
         allow perf_event_open)"
    } else {
        ""
    };
    format!(
        "perf_event_open of {what} refused ({e}): {level}, and CPU-wide events need ≤ 0 or CAP_PERFMON{elsewhere}; \
         {PERF_ACCESS_HINT}"
    )
}

fn is_refusal(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::PermissionDenied
        || matches!(e.raw_os_error(), Some(libc::EACCES | libc::EPERM))
}

/// Open the power PMU's package (or, without one, psys) and DRAM counters on one CPU per package
/// and read each once. `Err` says why nothing could be measured this way (absent PMU, refused open
/// with the paranoid level and the fix). A package or DRAM counter that fails while others open is
/// left out alone, named in a notice.
pub fn open(sysfs_root: &Path, proc_root: &Path, perf: &mut dyn PerfOpen) -> Result<PerfRaplSource, String> {
    let pmu = describe_pmu(sysfs_root)?;
    let (main, kind, id_prefix) = match (&pmu.pkg, &pmu.psys) {
        (Some(pkg), _) => (pkg, DeviceKind::Cpu, "cpu"),
        (None, Some(psys)) => (psys, DeviceKind::Cpu, "psys"),
        (None, None) => {
            return Err(format!(
                "power PMU at {} has no energy-pkg or energy-psys event",
                pmu.dir.display()
            ));
        }
    };
    let mut channels = Vec::new();
    let mut dropped = Vec::new();
    let mut refusal = None;
    // psys is one platform domain: one counter on the first CPU, reported as cpu0.
    let main_domains = if id_prefix == "psys" {
        &pmu.domains[..1]
    } else {
        &pmu.domains[..]
    };
    let mut events: Vec<(&EventDesc, DeviceKind, &Domain)> =
        main_domains.iter().map(|d| (main, kind, d)).collect();
    if let Some(ram) = &pmu.ram {
        events.extend(pmu.domains.iter().map(|d| (ram, DeviceKind::Dram, d)));
    }
    for (ev, kind, dom) in events {
        let (cpu, n) = (dom.cpu, dom.index);
        let (id, name) = match (kind, id_prefix) {
            (DeviceKind::Dram, _) => (format!("dram{n}"), format!("dram-{n} (perf_event)")),
            (_, "psys") => ("cpu0".to_string(), "psys platform (perf_event)".to_string()),
            _ => (format!("cpu{n}"), format!("{} (perf_event)", dom.label)),
        };
        let what = format!("power/{} on CPU {cpu}", ev.name);
        let opened = perf
            .open(pmu.ty, ev.config, cpu)
            .and_then(|mut c| c.read().map(|_| c));
        match opened {
            Ok(count) => channels.push(Channel {
                id,
                kind,
                name,
                what: what.clone(),
                scale: ev.scale,
                count,
            }),
            Err(e) if is_refusal(&e) => {
                refusal.get_or_insert_with(|| refused(&e, &what, proc_root));
                dropped.push(format!("{what} ({id}): {e}"));
            }
            Err(e) => dropped.push(format!("{what} ({id}): {e}")),
        }
    }
    if !channels.iter().any(|c| c.kind == DeviceKind::Cpu) {
        return Err(refusal.unwrap_or_else(|| format!("perf_event_open failed: {}", dropped.join("; "))));
    }
    let still = drop_still(&mut channels, perf.probe_window());
    if !channels.iter().any(|c| c.kind == DeviceKind::Cpu) {
        let mut why = format!(
            "{} (this happens in virtual machines that expose the RAPL events without counting energy)",
            still.join("; ")
        );
        if let Some(r) = refusal {
            why.push_str("; ");
            why.push_str(&r);
        }
        return Err(why);
    }
    let mut notices = pmu.notes.clone();
    if !dropped.is_empty() {
        notices.push(format!(
            "perf_event counter(s) could not be opened, left out (the others are measured): {}",
            dropped.join("; ")
        ));
    }
    if !still.is_empty() {
        notices.push(format!(
            "perf_event counter(s) that count nothing, left out (the others are measured): {}",
            still.join("; ")
        ));
    }
    let cpus: Vec<String> = main_domains.iter().map(|d| d.cpu.to_string()).collect();
    let mut summary = format!("power/{} on CPU {}", main.name, cpus.join(", "));
    if channels.iter().any(|c| c.kind == DeviceKind::Dram) {
        summary.push_str(", power/energy-ram");
    }
    Ok(PerfRaplSource {
        channels,
        notices,
        summary,
    })
}

/// Take out the channels whose count has not moved within `window` of their first reading (all of
/// them are read again every 2 ms until each has moved or the window is over) and say why, per
/// channel. A zero window probes nothing.
fn drop_still(channels: &mut Vec<Channel>, window: std::time::Duration) -> Vec<String> {
    if window.is_zero() || channels.is_empty() {
        return Vec::new();
    }
    let first: Vec<Option<u64>> = channels.iter_mut().map(|c| c.count.read().ok()).collect();
    // A channel that cannot be read now is left to the tick's reading to report.
    let mut moved: Vec<bool> = first.iter().map(Option::is_none).collect();
    let start = std::time::Instant::now();
    while !moved.iter().all(|m| *m) && start.elapsed() < window {
        std::thread::sleep(std::time::Duration::from_millis(2).min(window));
        for ((c, f), m) in channels.iter_mut().zip(&first).zip(moved.iter_mut()) {
            if !*m {
                *m = c.count.read().map_or(true, |v| Some(v) != *f);
            }
        }
    }
    let mut still = Vec::new();
    let mut keep = moved.into_iter();
    channels.retain(|c| {
        let moved = keep.next().unwrap_or(true);
        if !moved {
            still.push(format!(
                "{} ({}): the counter did not move in {} ms",
                c.what,
                c.id,
                window.as_millis()
            ));
        }
        moved
    });
    still
}

#[cfg(test)]
mod tests;
