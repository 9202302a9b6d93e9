//! One pipeline for every driver: a [`Feed`] (live sensors on one clock, or a recording at a speed)
//! hands [`Tick`]s to a [`Pipeline`], which accounts each in its one [`Engine`] and shows the result
//! to its [`Subscriber`]s as a [`Frame`]: the screen, the recorder, the summary checkpoint, the
//! metrics endpoint, `kwtop run`'s tree filter.
//!
//! ```text
//!  Feed::next(stop) ──Tick{sample, notices}──▶ Pipeline::push ─▶ prepare (subscribers may adjust
//!  LiveFeed  (Sampler, one cadence)                                the sample: run's tree filter)
//!  ReplayFeed (recording, paced by its clock)                    ─▶ Engine::push (attribution + ledger)
//!                                                                ─▶ Subscriber::frame(&Frame)
//! ```
//!
//! Frames are borrowed, not copied: a subscriber reads the engine's ledger in place on the thread
//! that owns the engine, and one that must hand data to another thread (the metrics endpoint)
//! builds its own plain-data view there. The feed decides when the next sample is due and the
//! driver decides when to stop (the `stop` closure); nothing here reads a clock except
//! [`LiveFeed`] and [`ReplayFeed`], and tests drive [`Pipeline`] with scripted feeds.

use std::fmt::Display;
use std::time::{Duration, Instant};

use crate::attribution::Interval;
use crate::engine::{Engine, EngineParams};
use crate::ledger::Ledger;
use crate::sample::Sample;
use crate::sanitize::sanitize_str;
use crate::sources::Sampler;

/// Distinct notices kept for a session (the oldest go first).
pub const MAX_NOTICES: usize = 200;
/// Longest notice kept, characters (the screen shortens them further to fit; exports keep the whole
/// advice, e.g. how to grant RAPL access).
pub const MAX_NOTICE_CHARS: usize = 2000;

/// One sample and the notices its source raised since the previous one.
#[derive(Debug, Clone)]
pub struct Tick {
    pub sample: Sample,
    pub notices: Vec<String>,
}

/// Where samples come from.
pub trait Feed {
    /// The next sample, blocking until it is due. `None` when the feed has ended (end of recording,
    /// duration reached, stopped). A live feed asked to stop takes one last sample, so the interval
    /// up to the stop is accounted, and ends at the call after it; a recording just ends.
    fn next(&mut self, stop: &dyn Fn() -> bool) -> Option<Tick>;
}

/// Live sensors on one cadence: the first sample at once, then one every `interval` from the first,
/// skipping ticks missed by a slow read. Between samples it waits with [`Sampler::wait_until`],
/// which reads the energy counters often enough that none wraps unseen.
pub struct LiveFeed {
    sampler: Sampler,
    interval: Duration,
    until: Option<Duration>,
    start: Option<Instant>,
    n: u32,
    done: bool,
    sleep_between: bool,
}

impl LiveFeed {
    pub fn new(sampler: Sampler, interval: Duration) -> Self {
        LiveFeed {
            sampler,
            interval: interval.max(Duration::from_millis(1)),
            until: None,
            start: None,
            n: 0,
            done: false,
            sleep_between: false,
        }
    }

    /// Look at the stop condition only when a sample is due, not every 100 ms while waiting for it
    /// (energy counters are still read whenever they are due): for a driver that does not wait for
    /// its feed to end (the live monitor quits while its feed thread sleeps), so that an idle feed
    /// wakes once per interval instead of ten times a second.
    pub fn sleep_between(mut self) -> Self {
        self.sleep_between = true;
        self
    }

    /// End after `duration` (the last sample is taken at exactly `duration` from the first).
    pub fn until(mut self, duration: Option<Duration>) -> Self {
        self.until = duration;
        self
    }

    /// The sensors, e.g. for [`Sampler::describe`].
    pub fn sampler(&self) -> &Sampler {
        &self.sampler
    }

    fn take(&mut self, start: Instant) -> Tick {
        let sample = self.sampler.sample();
        if self.until.is_some_and(|d| start.elapsed() >= d) {
            self.done = true;
        }
        Tick {
            sample,
            notices: self.sampler.take_notices(),
        }
    }
}

impl Feed for LiveFeed {
    fn next(&mut self, stop: &dyn Fn() -> bool) -> Option<Tick> {
        if self.done {
            return None;
        }
        let Some(start) = self.start else {
            let start = Instant::now();
            self.start = Some(start);
            return Some(self.take(start));
        };
        if !stop() {
            self.n = self.n.saturating_add(1);
            let mut due = start + self.interval * self.n;
            if let Some(d) = self.until {
                due = due.min(start + d);
            }
            let now = Instant::now();
            if due > now && self.sleep_between {
                self.sampler.sleep_until(due);
            } else if due > now {
                self.sampler.wait_until(due, stop);
            } else {
                // Fell behind (a slow NVML call): skip the missed ticks.
                let behind = (now - start).as_nanos() / self.interval.as_nanos().max(1);
                self.n = u32::try_from(behind).unwrap_or(u32::MAX);
            }
        }
        if stop() {
            // One last sample: the interval up to the stop is accounted, then the feed ends.
            self.done = true;
            let sample = self.sampler.sample();
            return Some(Tick {
                sample,
                notices: self.sampler.take_notices(),
            });
        }
        Some(self.take(start))
    }
}

/// The samples of a recording, paced by their own clock divided by `speed` (`None`: as fast as they
/// can be read, for `report`). A corrupt line ends the feed with a notice naming it; so does the end
/// of the recording. The last sample is held back and handed over with that closing notice.
pub struct ReplayFeed<I> {
    samples: I,
    speed: Option<f64>,
    label: String,
    origin: Option<(f64, Instant)>,
    held: Option<Sample>,
    notices: Vec<String>,
    ended: bool,
}

impl<I, E> ReplayFeed<I>
where
    I: Iterator<Item = Result<Sample, E>>,
    E: Display,
{
    /// `label` names the recording in the notices (its path).
    pub fn new(samples: I, speed: Option<f64>, label: impl Into<String>) -> Self {
        let label = label.into();
        let notices = match speed {
            Some(speed) => vec![format!("replaying {label} at {speed}× real time")],
            None => Vec::new(),
        };
        ReplayFeed {
            samples,
            speed,
            label,
            origin: None,
            held: None,
            notices,
            ended: false,
        }
    }

    fn pace(&mut self, s: &Sample, stop: &dyn Fn() -> bool) {
        let Some(speed) = self.speed else { return };
        let (t0, w0) = *self.origin.get_or_insert((s.mono_s, Instant::now()));
        let offset = ((s.mono_s - t0) / speed).clamp(0.0, 86_400.0 * 365.0);
        let due = w0 + Duration::from_secs_f64(offset);
        while !stop() {
            let now = Instant::now();
            if due <= now {
                return;
            }
            std::thread::sleep((due - now).min(Duration::from_millis(100)));
        }
    }
}

impl<I, E> Feed for ReplayFeed<I>
where
    I: Iterator<Item = Result<Sample, E>>,
    E: Display,
{
    fn next(&mut self, stop: &dyn Fn() -> bool) -> Option<Tick> {
        while !self.ended {
            if stop() {
                return None;
            }
            match self.samples.next() {
                Some(Ok(s)) => {
                    // One sample of look-ahead: the held one is handed over when it is due.
                    if let Some(prev) = self.held.replace(s) {
                        self.pace(&prev, stop);
                        return Some(Tick {
                            sample: prev,
                            notices: std::mem::take(&mut self.notices),
                        });
                    }
                }
                Some(Err(e)) => {
                    self.ended = true;
                    self.notices.push(format!(
                        "{}: {e}; the samples before it are accounted",
                        self.label
                    ));
                }
                None => {
                    self.ended = true;
                    if self.speed.is_some() {
                        self.notices
                            .push("end of recording: the screen shows its totals".into());
                    }
                }
            }
        }
        let sample = self.held.take()?;
        self.pace(&sample, stop);
        Some(Tick {
            sample,
            notices: std::mem::take(&mut self.notices),
        })
    }
}

/// What subscribers see after each sample: the engine (ledger and latest sample) and what the
/// sample added.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    /// Samples accounted so far, this one included (1 for the first sample).
    pub seq: u64,
    pub engine: &'a Engine,
    /// The interval this sample closed; `None` for the first sample.
    pub interval: Option<&'a Interval>,
    /// Notices raised with this sample (sanitized).
    pub notices: &'a [String],
    /// Every distinct notice of the session so far, this sample's included (for summaries).
    pub session_notices: &'a [String],
}

impl<'a> Frame<'a> {
    /// The sample just accounted.
    pub fn sample(&self) -> Option<&'a Sample> {
        self.engine.latest()
    }

    pub fn ledger(&self) -> &'a Ledger {
        &self.engine.ledger
    }
}

/// Something that follows the pipeline.
pub trait Subscriber {
    /// Before the sample is accounted: adjust it (run's tree filter hands the CPU time of reaped
    /// orphans to the command). Most subscribers leave it alone.
    fn prepare(&mut self, _sample: &mut Sample) {}

    /// After the sample is accounted. An error is a line for the user (the driver decides whether
    /// it is fatal: a recorder that cannot write ends `record`, a failed checkpoint does not end the
    /// live monitor).
    fn frame(&mut self, frame: &Frame<'_>) -> Result<(), String>;
}

/// The engine, and every notice raised so far.
#[derive(Debug, Clone)]
pub struct Pipeline {
    pub engine: Engine,
    /// Every distinct notice so far, in order (sanitized; at most [`MAX_NOTICES`]).
    pub notices: Vec<String>,
    seq: u64,
}

/// What one [`Pipeline::push`] did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Pushed {
    /// The sample was accounted (false when its clock did not advance: it is dropped).
    pub accounted: bool,
    /// Errors the subscribers reported, in order.
    pub errors: Vec<String>,
}

impl Pipeline {
    pub fn new(params: &EngineParams) -> Self {
        Pipeline {
            engine: Engine::new(params),
            notices: Vec::new(),
            seq: 0,
        }
    }

    /// Samples accounted so far.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Account one tick and show it to `subscribers`, in order.
    pub fn push(&mut self, tick: Tick, subscribers: &mut [&mut dyn Subscriber]) -> Pushed {
        let Tick { mut sample, notices } = tick;
        // Notices carry text from the system (device names, paths): cleaned once, here.
        let notices: Vec<String> = notices
            .iter()
            .map(|n| sanitize_str(n, MAX_NOTICE_CHARS))
            .collect();
        for n in &notices {
            if !self.notices.contains(n) {
                self.notices.push(n.clone());
            }
        }
        let excess = self.notices.len().saturating_sub(MAX_NOTICES);
        self.notices.drain(..excess);
        if self
            .engine
            .latest()
            .is_some_and(|prev| sample.mono_s <= prev.mono_s)
        {
            return Pushed::default();
        }
        for s in subscribers.iter_mut() {
            s.prepare(&mut sample);
        }
        let first = self.engine.latest().is_none();
        self.engine.push(sample);
        self.seq += 1;
        let frame = Frame {
            seq: self.seq,
            engine: &self.engine,
            interval: if first {
                None
            } else {
                self.engine.last_interval.as_ref()
            },
            notices: &notices,
            session_notices: &self.notices,
        };
        let errors = subscribers
            .iter_mut()
            .filter_map(|s| s.frame(&frame).err())
            .collect();
        Pushed {
            accounted: true,
            errors,
        }
    }

    /// Drain `feed` until it ends or `stop()`; `on_errors` gets each push's subscriber errors and
    /// returns whether to go on. Returns the number of samples accounted in this call.
    pub fn run(
        &mut self,
        feed: &mut dyn Feed,
        subscribers: &mut [&mut dyn Subscriber],
        stop: &dyn Fn() -> bool,
        mut on_errors: impl FnMut(&[String]) -> bool,
    ) -> u64 {
        let before = self.seq;
        while let Some(tick) = feed.next(stop) {
            let pushed = self.push(tick, subscribers);
            if !pushed.errors.is_empty() && !on_errors(&pushed.errors) {
                break;
            }
        }
        self.seq - before
    }
}

/// A feed of samples already in memory, with the notices each brings (tests, benches).
#[derive(Debug, Default)]
pub struct VecFeed(pub std::collections::VecDeque<Tick>);

impl VecFeed {
    pub fn new(samples: impl IntoIterator<Item = Sample>) -> Self {
        VecFeed(
            samples
                .into_iter()
                .map(|sample| Tick {
                    sample,
                    notices: Vec::new(),
                })
                .collect(),
        )
    }
}

impl Feed for VecFeed {
    fn next(&mut self, stop: &dyn Fn() -> bool) -> Option<Tick> {
        if stop() {
            return None;
        }
        self.0.pop_front()
    }
}

#[cfg(test)]
mod tests;
