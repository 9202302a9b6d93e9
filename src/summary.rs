//! Session summaries: the versioned `kwtop.summary/1` model built from a ledger, rendered as JSON,
//! Markdown or CSV (one row per process).
//!
//! Pure: host, notices, scope and the redaction policy are passed in; nothing here reads a clock or
//! writes a file (see [`crate::export`] for that, including `write_session_summary`). Two scopes:
//! the whole machine (the TUI, `record --summary`, `report`), or one command's process tree
//! (`kwtop run`), whose totals are the sum of its members' energy. A JSON summary read back
//! ([`parse_json`]) renders the same totals.

pub mod brief;
mod build;
mod csv;
mod doc;
mod holders;
mod markdown;

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use crate::redact::Redactor;
use crate::sample::ProcKey;
use crate::work::CountedWork;

pub use build::{build, compact_time};
pub use doc::{
    CommandOut, CompareOut, CostOut, DeviceSummary, GridOut, GroupSummary, MachineOut, ProcessSummary,
    SummaryDoc, TotalsOut,
};
pub use holders::IdleHolderSummary;

/// Schema id of the summary document.
pub const SCHEMA: &str = "kwtop.summary/1";

/// Output format of a summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Md,
    Json,
    Csv,
}

impl Format {
    pub fn extension(self) -> &'static str {
        match self {
            Format::Md => "md",
            Format::Json => "json",
            Format::Csv => "csv",
        }
    }

    /// The format a file name asks for (`.md`, `.markdown`, `.json`, `.csv`).
    pub fn from_path(path: &std::path::Path) -> Option<Format> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "md" | "markdown" => Some(Format::Md),
            "json" => Some(Format::Json),
            "csv" => Some(Format::Csv),
            _ => None,
        }
    }
}

/// What to summarise and how to show command lines.
#[derive(Debug, Clone, Default)]
pub struct SummaryOptions {
    pub redactor: Redactor,
    /// `Some` = only these processes count (a command's tree); `None` = the whole machine.
    pub members: Option<HashSet<ProcKey>>,
    pub command: Option<CommandOut>,
    /// Idle CPU energy charged to processes (`[attribution] charge_idle`), for the method notes.
    pub charge_idle: bool,
    /// Groups kept per grouping in the document.
    pub max_groups: usize,
    /// Units of work the command reported (`kwtop run --progress`, the work file).
    pub work: Option<CountedWork>,
}

impl SummaryOptions {
    /// Machine scope: command lines shown through `redactor` (`[export] cmdline`), and whether idle
    /// CPU energy is charged to processes (`[attribution] charge_idle`) for the method notes.
    pub fn machine(redactor: Redactor, charge_idle: bool) -> Self {
        SummaryOptions {
            redactor,
            members: None,
            command: None,
            charge_idle,
            max_groups: 20,
            work: None,
        }
    }
}

/// Render in `format`.
pub fn render(doc: &SummaryDoc, format: Format) -> String {
    match format {
        Format::Md => markdown::render(doc, 10),
        Format::Json => {
            serde_json::to_string_pretty(doc).map_or_else(|e| format!("{{\"error\":\"{e}\"}}"), |s| s + "\n")
        }
        Format::Csv => csv::render(doc),
    }
}

/// Whether `head` (the first bytes of a file) looks like a summary document rather than a recording.
pub fn looks_like_summary(head: &str) -> bool {
    let compact: String = head.chars().filter(|c| !c.is_whitespace()).collect();
    compact.starts_with('{') && compact.contains(&format!("\"schema\":\"{SCHEMA}\""))
}

/// Read a JSON summary back (for `kwtop report SUMMARY.json`).
pub fn parse_json(text: &str) -> Result<SummaryDoc, String> {
    let doc: SummaryDoc = serde_json::from_str(text).map_err(|e| format!("not a kwtop summary: {e}"))?;
    if doc.schema != SCHEMA {
        return Err(format!(
            "unsupported schema '{}' (this kwtop reads {SCHEMA})",
            doc.schema
        ));
    }
    Ok(doc)
}

#[cfg(test)]
mod tests;
