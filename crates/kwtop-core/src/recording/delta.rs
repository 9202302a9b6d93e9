//! Delta samples: what changed since the previous sample, computed by the writer and applied by the
//! reader to the same [`Prev`] state, so both ends agree on every field.
//!
//! "Changed", per process `(pid, starttime)`:
//! - present now and not before: new, written whole (`ppid`, `cpu`, `child` when not 0, `info`),
//!   with its position `at` unless it is among the new processes that end the list;
//! - present in both: compared field by field on `ppid`, `cpu` (utime + stime), `child` (cutime +
//!   cstime) and `info` (by value: an exec changes comm and command line under the same identity).
//!   None differs: left out. Only `cpu` differs: a `ticks` pair (position before, ticks gained, which
//!   may be negative). Otherwise: an entry with the fields that differ, `cpu` as its new value;
//! - present before and not now: listed in `gone`.
//!
//! Per device (same ids in the same order as before): the top-level JSON fields whose value differs
//! are set, the ones no longer written are unset. Anything a delta cannot say exactly (a process
//! listed twice, processes that kept their identity but changed order, a device list that changed)
//! makes the writer write a full sample.
//!
//! Must not: do I/O, or guess: a delta that does not fit the previous sample is an error.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde_json::{Map, Value};

use super::wire::{DevicePatch, WireChange, WireDelta};
use crate::sample::{DeviceReading, ProcInfo, ProcKey, ProcessReading};

/// The previous sample's processes and devices, as the writer wrote them and the reader rebuilt them.
#[derive(Debug, Default)]
pub(super) struct Prev {
    pub procs: Vec<ProcessReading>,
    index: HashMap<ProcKey, usize>,
    pub devices: Devices,
}

/// A sample's device readings, with each as its JSON object: the form device patches work on.
#[derive(Debug, Clone, Default)]
pub(super) struct Devices {
    pub readings: Vec<DeviceReading>,
    maps: Vec<Map<String, Value>>,
}

impl Devices {
    pub fn new(readings: Vec<DeviceReading>) -> Self {
        let maps = readings
            .iter()
            .map(|d| match serde_json::to_value(d) {
                Ok(Value::Object(m)) => m,
                _ => Map::new(),
            })
            .collect();
        Devices { readings, maps }
    }
}

impl Prev {
    /// Remember a sample: its processes (shared infos, cheap to clone) and devices.
    pub fn set(&mut self, procs: Vec<ProcessReading>, devices: Devices) {
        self.index.clear();
        self.index
            .extend(procs.iter().enumerate().map(|(i, p)| (p.key, i)));
        self.procs = procs;
        self.devices = devices;
    }

    /// The static facts last seen for `key` (a full sample may leave out those of known processes).
    pub fn info(&self, key: &ProcKey) -> Option<&Arc<ProcInfo>> {
        self.index.get(key).map(|&i| &self.procs[i].info)
    }

    /// The changes from this state to `procs` and `devices`, or `None` when only a full sample can
    /// say it. `wire_info` turns an info into what is written.
    pub fn encode(
        &self,
        procs: &[ProcessReading],
        devices: &Devices,
        wire_info: impl Fn(&ProcInfo) -> ProcInfo,
    ) -> Option<WireDelta> {
        if self.index.len() != self.procs.len() {
            // The previous sample listed a process twice: a delta could not say which.
            return None;
        }
        let dev = self.device_patches(devices)?;
        let mut live = HashSet::with_capacity(procs.len());
        let mut last_prev_index = None;
        for p in procs {
            if !live.insert(p.key) {
                return None;
            }
            if let Some(&j) = self.index.get(&p.key) {
                // Processes kept from before must keep their order: the reader rebuilds it.
                if last_prev_index.is_some_and(|l| j <= l) {
                    return None;
                }
                last_prev_index = Some(j);
            }
        }
        // New processes that end the list are appended; the others say where they go.
        let tail = procs.len()
            - procs
                .iter()
                .rev()
                .take_while(|p| !self.index.contains_key(&p.key))
                .count();
        let mut changes = Vec::new();
        let (mut ticks, mut last_tick) = (Vec::new(), None);
        for (i, p) in procs.iter().enumerate() {
            let Some(&j) = self.index.get(&p.key) else {
                changes.push(WireChange {
                    pid: p.key.pid,
                    st: p.key.starttime,
                    ppid: Some(p.ppid),
                    cpu: Some(p.cpu_ticks),
                    child: (p.child_ticks != 0).then_some(p.child_ticks),
                    info: Some(wire_info(&p.info)),
                    at: (i < tail).then_some(i),
                });
                continue;
            };
            let q = &self.procs[j];
            let info_changed = !Arc::ptr_eq(&p.info, &q.info) && p.info != q.info;
            let gained = i64::try_from(i128::from(p.cpu_ticks) - i128::from(q.cpu_ticks)).ok();
            if p.ppid == q.ppid && p.child_ticks == q.child_ticks && !info_changed {
                match gained {
                    Some(0) => continue,
                    Some(d) => {
                        // j > last: survivors keep their order (checked above).
                        let j = j as i64;
                        ticks.extend([j - last_tick.unwrap_or(0), d]);
                        last_tick = Some(j);
                        continue;
                    }
                    None => {}
                }
            }
            changes.push(WireChange {
                pid: p.key.pid,
                st: p.key.starttime,
                ppid: (p.ppid != q.ppid).then_some(p.ppid),
                cpu: (p.cpu_ticks != q.cpu_ticks).then_some(p.cpu_ticks),
                child: (p.child_ticks != q.child_ticks).then_some(p.child_ticks),
                info: info_changed.then(|| wire_info(&p.info)),
                at: None,
            });
        }
        let gone = self
            .procs
            .iter()
            .filter(|p| !live.contains(&p.key))
            .map(|p| (p.key.pid, p.key.starttime))
            .collect();
        Some(WireDelta {
            ticks,
            procs: changes,
            gone,
            dev,
        })
    }

    fn device_patches(&self, devices: &Devices) -> Option<Vec<DevicePatch>> {
        let (now, before) = (&devices.readings, &self.devices.readings);
        if now.len() != before.len() || now.iter().zip(before).any(|(a, b)| a.id != b.id) {
            return None;
        }
        let mut patches = Vec::new();
        for (i, (now, before)) in devices.maps.iter().zip(&self.devices.maps).enumerate() {
            if now == before {
                continue;
            }
            let set: Map<String, Value> = now
                .iter()
                .filter(|(k, v)| before.get(*k) != Some(*v))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            let unset = before.keys().filter(|k| !now.contains_key(*k)).cloned().collect();
            patches.push(DevicePatch { i, set, unset });
        }
        Some(patches)
    }

    /// This state with `d` applied: the next sample's processes and devices. `sanitized` cleans an
    /// info read from the file.
    pub fn apply(
        &self,
        d: WireDelta,
        sanitized: impl Fn(ProcInfo) -> ProcInfo,
    ) -> Result<(Vec<ProcessReading>, Devices), String> {
        let mut gone = HashSet::with_capacity(d.gone.len());
        for &(pid, st) in &d.gone {
            let key = ProcKey { pid, starttime: st };
            if !self.index.contains_key(&key) {
                return Err(format!(
                    "process pid {pid} (start {st}) is gone but was not in the previous sample"
                ));
            }
            gone.insert(key);
        }
        let mut changed: HashMap<ProcKey, Change> = HashMap::new();
        self.ticks(&d.ticks, &gone, &mut changed)?;
        let (mut placed, mut appended) = (Vec::new(), Vec::new());
        for c in d.procs {
            let key = ProcKey {
                pid: c.pid,
                starttime: c.st,
            };
            if gone.contains(&key) {
                return Err(format!(
                    "process pid {} (start {}) is both gone and changed",
                    c.pid, c.st
                ));
            }
            if self.index.contains_key(&key) {
                if c.at.is_some() {
                    return Err(format!(
                        "'at' given for pid {} (start {}), which is not new",
                        c.pid, c.st
                    ));
                }
                if changed.insert(key, Change::Fields(Box::new(c))).is_some() {
                    return Err(format!(
                        "process pid {} (start {}) changed twice",
                        key.pid, key.starttime
                    ));
                }
                continue;
            }
            let at = c.at;
            let reading = new_process(key, c, &sanitized)?;
            match at {
                Some(at) => placed.push((at, reading)),
                None => appended.push(reading),
            }
        }
        let mut procs = Vec::with_capacity(self.procs.len() + placed.len() + appended.len());
        for p in self.procs.iter().filter(|p| !gone.contains(&p.key)) {
            procs.push(match changed.remove(&p.key) {
                None => p.clone(),
                Some(Change::Ticks(cpu_ticks)) => ProcessReading {
                    cpu_ticks,
                    ..p.clone()
                },
                Some(Change::Fields(c)) => ProcessReading {
                    key: p.key,
                    ppid: c.ppid.unwrap_or(p.ppid),
                    cpu_ticks: c.cpu.unwrap_or(p.cpu_ticks),
                    child_ticks: c.child.unwrap_or(p.child_ticks),
                    info: c
                        .info
                        .map_or_else(|| Arc::clone(&p.info), |i| Arc::new(sanitized(i))),
                },
            });
        }
        placed.sort_by_key(|(at, _)| *at);
        for (at, reading) in placed {
            if at > procs.len() {
                return Err(format!(
                    "new process pid {} placed at {at}, past the end of the list ({})",
                    reading.key.pid,
                    procs.len()
                ));
            }
            procs.insert(at, reading);
        }
        procs.extend(appended);
        let mut seen = HashSet::with_capacity(procs.len());
        if let Some(p) = procs.iter().find(|p| !seen.insert(p.key)) {
            return Err(format!(
                "process pid {} (start {}) listed twice",
                p.key.pid, p.key.starttime
            ));
        }
        Ok((procs, self.patched_devices(d.dev)?))
    }

    /// Read the `ticks` pairs into `changed`.
    fn ticks(
        &self,
        ticks: &[i64],
        gone: &HashSet<ProcKey>,
        changed: &mut HashMap<ProcKey, Change>,
    ) -> Result<(), String> {
        if !ticks.len().is_multiple_of(2) {
            return Err(format!("'ticks' holds {} numbers, not pairs", ticks.len()));
        }
        let mut last: Option<i64> = None;
        for pair in ticks.chunks_exact(2) {
            let (step, gained) = (pair[0], pair[1]);
            if step < 0 || (last.is_some() && step < 1) {
                return Err(format!("'ticks' steps by {step}: positions must increase"));
            }
            let j = last.unwrap_or(0).saturating_add(step);
            last = Some(j);
            let Some(p) = usize::try_from(j).ok().and_then(|j| self.procs.get(j)) else {
                return Err(format!(
                    "'ticks' names position {j}, but the previous sample had {} processes",
                    self.procs.len()
                ));
            };
            if gone.contains(&p.key) {
                return Err(format!(
                    "process pid {} (start {}) is both gone and changed",
                    p.key.pid, p.key.starttime
                ));
            }
            let cpu = p.cpu_ticks.checked_add_signed(gained).ok_or_else(|| {
                format!(
                    "pid {}: {} + {gained} CPU ticks is out of range",
                    p.key.pid, p.cpu_ticks
                )
            })?;
            changed.insert(p.key, Change::Ticks(cpu));
        }
        Ok(())
    }

    fn patched_devices(&self, patches: Vec<DevicePatch>) -> Result<Devices, String> {
        let mut next = self.devices.clone();
        for p in patches {
            let (Some(map), Some(device)) = (next.maps.get_mut(p.i), next.readings.get_mut(p.i)) else {
                return Err(format!(
                    "device patch for position {}, but the previous sample had {} devices",
                    p.i,
                    self.devices.readings.len()
                ));
            };
            for k in &p.unset {
                map.remove(k);
            }
            map.extend(p.set);
            let id = device.id.clone();
            *device = serde_json::from_value(Value::Object(map.clone()))
                .map_err(|e| format!("invalid device patch for '{id}': {e}"))?;
            if device.id != id {
                return Err(format!("a device patch renamed '{id}' to '{}'", device.id));
            }
        }
        Ok(next)
    }
}

/// How a process of the previous sample changed.
enum Change {
    /// Only its CPU ticks, now this.
    Ticks(u64),
    Fields(Box<WireChange>),
}

fn new_process(
    key: ProcKey,
    c: WireChange,
    sanitized: impl Fn(ProcInfo) -> ProcInfo,
) -> Result<ProcessReading, String> {
    let missing = |what: &str| {
        format!(
            "new process pid {} (start {}) has no '{what}'",
            key.pid, key.starttime
        )
    };
    Ok(ProcessReading {
        key,
        ppid: c.ppid.ok_or_else(|| missing("ppid"))?,
        cpu_ticks: c.cpu.ok_or_else(|| missing("cpu"))?,
        child_ticks: c.child.unwrap_or(0),
        info: Arc::new(match c.info {
            Some(i) => sanitized(i),
            None => placeholder(key.pid),
        }),
    })
}

/// The info shown for a process whose facts the recording never gave.
pub(super) fn placeholder(pid: u32) -> ProcInfo {
    ProcInfo {
        comm: format!("pid {pid}"),
        user: "?".into(),
        ..Default::default()
    }
}
