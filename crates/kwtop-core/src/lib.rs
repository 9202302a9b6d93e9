//! kwtop's measurement core: everything that turns sensors into trustworthy joules, and nothing
//! that draws, serves or parses a command line.
//!
//! Data flows one way (DESIGN §1): [`sources`] (the only I/O on sensors: `/proc`, `/sys`, NVML) →
//! [`sample::Sample`] → [`attribution`] (pure) → [`ledger`] (per-process and per-device energy, with
//! the conservation invariant) → [`engine`] (one accounted interval at a time) → views. [`impact`]
//! turns energy into CO2e and everyday equivalents, [`history`] keeps the charts' rings,
//! [`recording`] is the JSONL format of `kwtop record`, [`snapshot`] the JSON read model of one
//! moment, [`work`] counts the units of work a command reports (energy per step). This crate depends on none of ratatui, crossterm, clap, prometheus-client or tokio; the
//! `kwtop` crate (command line, screen, exporter, summaries) builds on it.

pub mod attribution;
pub mod cgroup;
pub mod engine;
pub mod fasthash;
pub mod figures;
pub mod history;
pub mod impact;
pub mod ledger;
pub mod pipeline;
pub mod recording;
pub mod redact;
pub mod sample;
pub mod sanitize;
pub mod snapshot;
pub mod sources;
mod table;
#[cfg(any(test, feature = "testing"))]
#[doc(hidden)]
pub mod testing;
pub mod units;
pub mod work;
