//! The pipeline after the sources: sample pairs → attribution → ledger. Shared by the TUI,
//! `snapshot`, `record`, `report`, `run` and `serve`, so live sensors and recordings are accounted by
//! exactly the same code. Pure: samples in, state out.

use crate::attribution::{AttributionConfig, Attributor, Interval};
use crate::ledger::{IdleHolderConfig, Ledger};
use crate::sample::Sample;

/// What the engine accounts with (`[attribution]` and `[idle_holder]` in the config).
#[derive(Debug, Clone, PartialEq)]
pub struct EngineParams {
    pub attribution: AttributionConfig,
    pub idle_holder: IdleHolderConfig,
    /// Exited processes kept as rows before the smallest are folded per command.
    pub max_exited_processes: usize,
}

impl Default for EngineParams {
    fn default() -> Self {
        EngineParams {
            attribution: AttributionConfig::default(),
            idle_holder: IdleHolderConfig::default(),
            max_exited_processes: 10_000,
        }
    }
}

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
    pub fn new(params: &EngineParams) -> Self {
        let mut ledger = Ledger::new(params.idle_holder);
        ledger.max_exited = params.max_exited_processes;
        Engine {
            attributor: Attributor::new(params.attribution.clone()),
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
