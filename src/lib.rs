//! kwtop: per-process GPU and CPU power, energy and CO2e.
//!
//! Data flows one way (DESIGN §1): `sources` (the only I/O on sensors) → [`sample::Sample`] →
//! [`attribution`] (pure) → [`ledger`] → views and exports.

pub mod app;
pub mod attribution;
pub mod cgroup;
pub mod cli;
pub mod config;
pub mod engine;
pub mod export;
pub mod history;
pub mod impact;
pub mod ledger;
pub mod recording;
pub mod redact;
pub mod sample;
pub mod sanitize;
pub mod serve;
pub mod snapshot;
pub mod sources;
pub mod summary;
#[doc(hidden)]
pub mod testing;
pub mod tui;
pub mod ui;
pub mod units;

/// Wall clock now, ms since the epoch (for headers written by the CLI; samples carry their own).
pub fn snapshot_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
