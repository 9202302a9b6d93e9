//! Energy counters unwrapped between samples: a pure tracker, per device, of the last raw counter,
//! an extended (unwrapped, monotone) total and the observed rate.
//!
//! A RAPL counter wraps after `max_energy_range_uj` (60 J on some client parts, 65.5 kJ on AMD): read
//! less often than once a wrap, whole wraps vanish. The sampler therefore reads counters between
//! samples (see `Sampler::wait_until`) at [`CounterTracker::poll_period_s`], steps every read
//! through here, and puts the extended total in the `Sample`, so the interval's energy is the sum
//! of the steps. Pure code over values and timestamps: never reads a clock, a file or a sensor.

use std::collections::HashMap;

use crate::attribution::MAX_PLAUSIBLE_W;
use crate::sample::{DeviceReading, EnergyCounter};

/// Read counters at least this often, seconds (issue 10: "at least once a second").
pub const MAX_POLL_S: f64 = 1.0;
/// Never poll faster than this, seconds: a counter that would wrap in less than 40 ms is not real.
pub const MIN_POLL_S: f64 = 0.01;
/// Poll period for a wrapping counter before its rate is known, seconds: one early read to learn it.
pub const PROBE_POLL_S: f64 = 0.1;
/// Reads per wrap at the observed rate: a quadrupling of power still leaves one read per wrap.
pub const READS_PER_WRAP: f64 = 4.0;
/// Steps shorter than this do not update the observed rate (counter granularity makes them noisy).
const MIN_RATE_DT_S: f64 = 0.005;

/// One device's counter history.
#[derive(Debug, Clone, PartialEq)]
struct Track {
    /// The last good raw counter.
    raw: EnergyCounter,
    /// Unwrapped total, µJ; starts at the first raw value, so an unwrapped counter reads the same.
    total_uj: u64,
    /// When `raw` was read, monotonic seconds.
    good_s: f64,
    /// Power seen over the last step long enough to tell, watts.
    rate_w: Option<f64>,
    /// The last read failed with this reason; `total_uj` is still the last good value.
    failed: Option<String>,
    /// Resets and gaps seen since the last sample, for that sample's reading (the first of each
    /// kind; repeats are counted in `lost_steps`, so a glitching counter cannot grow this).
    notes: Vec<String>,
    /// Seconds of the steps whose energy was lost (resets, implausible jumps) since the last sample.
    lost_s: f64,
    /// How many such steps.
    lost_steps: u32,
}

/// Per-device unwrapping state. Devices are keyed by their reading id (`cpu0`, `gpu1`, …).
#[derive(Debug, Clone, Default)]
pub struct CounterTracker {
    tracks: HashMap<String, Track>,
}

impl CounterTracker {
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether any device has had a good read (otherwise there is nothing to poll).
    pub fn has_counters(&self) -> bool {
        !self.tracks.is_empty()
    }

    /// Whether `id` has had a good read.
    pub fn knows(&self, id: &str) -> bool {
        self.tracks.contains_key(id)
    }

    /// The extended counter of `id`, µJ.
    pub fn total_uj(&self, id: &str) -> Option<u64> {
        self.tracks.get(id).map(|t| t.total_uj)
    }

    /// One read of `id`'s raw counter at `mono_s`. A forward step adds its difference; a backward
    /// step on a counter with a wrap range adds one wrap (`max − prev + cur`); a backward step
    /// without one, or an implausible jump (above [`MAX_PLAUSIBLE_W`] over the time since the last
    /// good read, at least [`MAX_POLL_S`]), is a reset: nothing is added and the next sample says so. A failed read keeps the
    /// last good value.
    pub fn step(&mut self, id: &str, raw: Result<EnergyCounter, String>, mono_s: f64) {
        let raw = match raw {
            Ok(c) => c,
            Err(why) => {
                if let Some(t) = self.tracks.get_mut(id) {
                    t.failed = Some(why);
                }
                return;
            }
        };
        let Some(t) = self.tracks.get_mut(id) else {
            self.tracks.insert(
                id.to_string(),
                Track {
                    raw,
                    total_uj: raw.value_uj,
                    good_s: mono_s,
                    rate_w: None,
                    failed: None,
                    notes: Vec::new(),
                    lost_s: 0.0,
                    lost_steps: 0,
                },
            );
            return;
        };
        let dt = mono_s - t.good_s;
        let (prev, cur) = (t.raw.value_uj, raw.value_uj);
        let delta_uj = if cur >= prev {
            Some(cur - prev)
        } else {
            match raw.wrap_uj {
                Some(max) if prev <= max => Some(max - prev + cur),
                _ => None,
            }
        };
        let wrap_s = t.rate_w.zip(raw.wrap_uj).map(|(w, max)| max as f64 * 1e-6 / w);
        match delta_uj {
            // The time is floored at one poll period: a counter that the device updates in bursts
            // (NVML's, every few tens of ms) can carry a whole burst in a step read 1 ms apart.
            Some(d) if d as f64 * 1e-6 <= MAX_PLAUSIBLE_W * dt.max(MAX_POLL_S) => {
                t.total_uj = t.total_uj.saturating_add(d);
                if dt >= MIN_RATE_DT_S {
                    t.rate_w = Some(d as f64 * 1e-6 / dt);
                }
                if let Some(w) = wrap_s.filter(|w| dt > *w) {
                    t.notes.push(format!(
                        "energy counter not read for {dt:.1} s, longer than one wrap ({w:.1} s at the last \
                         observed power): energy of whole wraps in that gap is not counted"
                    ));
                }
            }
            Some(d) => {
                t.lost_s += dt.max(0.0);
                t.lost_steps += 1;
                if t.lost_steps == 1 {
                    t.notes.push(format!(
                        "implausible energy counter jump ({:.0} J in {dt:.3} s, {prev} → {cur} µJ): treated as \
                         a reset, up to {dt:.1} s of energy not counted",
                        d as f64 * 1e-6
                    ));
                }
            }
            None => {
                t.lost_s += dt.max(0.0);
                t.lost_steps += 1;
                if t.lost_steps == 1 {
                    t.notes.push(format!(
                        "energy counter reset ({prev} → {cur} µJ): up to {dt:.1} s of energy not counted"
                    ));
                }
            }
        }
        t.raw = raw;
        t.good_s = mono_s;
        t.failed = None;
    }

    /// Put the tracked counter into a sample's reading, after stepping the reading's own raw
    /// counter at `mono_s`: `energy` becomes the extended total (`wrap_uj: None`); a failed read of
    /// a device with an earlier good read keeps the last good total with `energy_stale` set and the
    /// reason in `error`; resets and gaps since the last sample are added to `error`. A device never
    /// read well is left as it is.
    pub fn apply(&mut self, r: &mut DeviceReading, mono_s: f64) {
        let raw = match r.energy {
            Some(c) => Ok(c),
            // The reason: the reading's error, or the note a source filed it under (NVML keeps a
            // device with a readable power up and puts the failed energy query in its notes).
            None if self.knows(&r.id) => Err(r
                .error
                .clone()
                .or_else(|| r.notes.iter().find(|n| n.starts_with("energy")).cloned())
                .unwrap_or_else(|| "energy counter not read".into())),
            None => return,
        };
        self.step(&r.id, raw, mono_s);
        let Some(t) = self.tracks.get_mut(&r.id) else {
            return;
        };
        r.energy = Some(EnergyCounter {
            value_uj: t.total_uj,
            wrap_uj: None,
        });
        let mut why: Vec<String> = r.error.take().into_iter().collect();
        if t.failed.is_some() {
            r.energy_stale = true;
            why.push(format!(
                "last good energy reading kept ({:.1} s old): the next good read recovers the energy",
                (mono_s - t.good_s).max(0.0)
            ));
        }
        why.append(&mut t.notes);
        if t.lost_steps > 1 {
            why.push(format!(
                "{} counter resets since the last sample, {:.1} s of energy not counted in all",
                t.lost_steps, t.lost_s
            ));
        }
        r.energy_gap_s = t.lost_s;
        t.lost_s = 0.0;
        t.lost_steps = 0;
        r.error = (!why.is_empty()).then(|| why.join("; "));
    }

    /// How long the sampler may go without reading counters, seconds: a quarter of the shortest
    /// time to wrap at the observed rates, at most [`MAX_POLL_S`], at least [`MIN_POLL_S`]. A
    /// wrapping counter whose rate is not known yet is probed after [`PROBE_POLL_S`].
    pub fn poll_period_s(&self) -> f64 {
        self.tracks
            .values()
            .map(|t| match (t.raw.wrap_uj, t.rate_w) {
                (None, _) => MAX_POLL_S,
                (Some(_), None) => PROBE_POLL_S,
                (Some(_), Some(w)) if w <= 0.0 => MAX_POLL_S,
                (Some(max), Some(w)) => max as f64 * 1e-6 / w / READS_PER_WRAP,
            })
            .fold(MAX_POLL_S, f64::min)
            .max(MIN_POLL_S)
    }
}

/// What the sampler's waiting loop does next (see [`next_wait`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Wait {
    /// The deadline has come.
    Done,
    /// Read the energy counters now.
    ReadCounters,
    /// Sleep this many seconds, then decide again.
    Sleep(f64),
}

/// One decision of `Sampler::wait_until`, all times in seconds on one monotonic clock: `now`, the
/// `deadline`, when the counters were `last_read`, the poll period (`None` = no counter to poll),
/// and the longest sleep allowed (so a stop request is seen). The deadline wins over a due read:
/// when the interval is no longer than the poll period, waiting reads nothing extra.
pub fn next_wait(now: f64, deadline: f64, last_read: f64, period: Option<f64>, max_sleep: f64) -> Wait {
    if now >= deadline {
        return Wait::Done;
    }
    let until_deadline = deadline - now;
    match period {
        Some(p) if now - last_read >= p => Wait::ReadCounters,
        Some(p) => Wait::Sleep(until_deadline.min(last_read + p - now).min(max_sleep)),
        None => Wait::Sleep(until_deadline.min(max_sleep)),
    }
}

#[cfg(test)]
mod tests;
