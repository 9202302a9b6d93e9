//! The pipeline after the sources: sample pairs → attribution → ledger. Shared by the TUI,
//! `snapshot`, `record`, `report`, `run` and `serve`, so live sensors and recordings are accounted by
//! exactly the same code. Pure: samples in, state out.

use crate::attribution::{Attributor, Interval};
use crate::config::Settings;
use crate::ledger::Ledger;
use crate::sample::Sample;

/// Attribution state, the ledger and the previous sample.
#[derive(Debug, Clone)]
pub struct Engine {
    pub attributor: Attributor,
    pub ledger: Ledger,
    prev: Option<Sample>,
    /// The last attributed interval.
    pub last_interval: Option<Interval>,
}

impl Engine {
    pub fn new(settings: &Settings) -> Self {
        let mut ledger = Ledger::new(settings.idle_holder);
        ledger.max_exited = settings.file.attribution.max_exited_processes;
        Engine {
            attributor: Attributor::new(settings.attribution.clone()),
            ledger,
            prev: None,
            last_interval: None,
        }
    }

    /// Feed one sample; from the second on, an interval is attributed and added to the ledger.
    /// A sample whose clock does not advance is ignored (returns `None`).
    pub fn push(&mut self, sample: Sample) -> Option<&Interval> {
        let Some(prev) = self.prev.take() else {
            self.ledger.observe_devices(&sample);
            self.prev = Some(sample);
            return None;
        };
        if sample.mono_s <= prev.mono_s {
            self.prev = Some(prev);
            return None;
        }
        let iv = self.attributor.attribute(&prev, &sample);
        self.ledger.apply(&sample, &iv);
        self.prev = Some(sample);
        self.last_interval = Some(iv);
        self.last_interval.as_ref()
    }

    /// The most recent sample.
    pub fn latest(&self) -> Option<&Sample> {
        self.prev.as_ref()
    }
}
