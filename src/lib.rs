//! kwtop: per-process GPU and CPU power, energy and CO2e.
//!
//! Data flows one way (DESIGN §1): the measurement core, crate `kwtop_core` (sensors → samples →
//! attribution → ledger → engine, impact, history, recording format), then this crate's drivers
//! and views: the command line ([`cli`], [`config`]), the screen ([`tui`], [`app`], [`ui`]), the
//! exporter ([`serve`]), summaries ([`summary`], [`export`]). The core's modules are re-exported
//! here under their own names, so `kwtop::ledger` is `kwtop_core::ledger`.

#[cfg(test)]
pub(crate) use kwtop_core::testing;
pub use kwtop_core::{
    attribution, cgroup, engine, fasthash, figures, history, impact, ledger, pipeline, recording, redact,
    sample, sanitize, snapshot, sources, units, work,
};

pub mod app;
pub mod cli;
pub mod config;
pub mod export;
pub mod serve;
pub mod signals;
pub mod subscribers;
pub mod summary;
pub mod tui;
pub mod ui;
pub mod workmeter;

/// Wall clock now, ms since the epoch (for headers written by the CLI; samples carry their own).
pub fn snapshot_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
