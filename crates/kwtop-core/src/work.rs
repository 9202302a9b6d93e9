//! Energy per unit of work: counting the steps, tokens or images a command reports, so its energy
//! can be divided by them.
//!
//! Pure: lines go in with the wall time they were read at, counts come out. Nothing here reads a
//! clock, a pipe or a file; `kwtop run` does that and feeds this module.
//!
//! # Two ways a program reports its work
//!
//! **Progress lines** (`kwtop run --progress REGEX`). The command's stdout and stderr are split into
//! lines on `\n` *and* on `\r`, so each redraw of a progress bar drawn in place (tqdm) is a line.
//! ANSI escape sequences (colours, cursor moves) are removed before matching, so a coloured number
//! still matches `\d+`. Each line is matched against REGEX (first match only), as bytes and in the
//! regex crate's ASCII mode: `\d`, `\w`, `\s`, `\b` and `(?i)` are ASCII, literal text in any
//! script matches as written, and Unicode classes (`\p{Greek}`, a range of non-ASCII characters)
//! are refused with the reason. kwtop is built without the regex crate's Unicode tables: their
//! ~8,700 pointers were relocated at every start, 114 KiB of every process's memory, for classes
//! a progress line does not need (a count is ASCII digits anyway).
//! - with a capture group, the first group's whole number is the *cumulative* count so far
//!   (`step (\d+)`, tqdm's `(\d+)/\d+`); a match whose group is not a whole number counts nothing
//!   and is reported;
//! - without a capture group, each matching line adds one unit.
//!
//! **The work file** (`KWTOP_WORK_FILE`). `kwtop run` creates a fresh private file and names it in
//! the command's environment; the program appends lines to it, each ended by `\n`:
//!
//! ```text
//! # comments and blank lines are ignored
//! 1200 tokens     the cumulative count so far, then optionally the unit (one word)
//! 2400            the unit may be left out
//! +64 tokens      a leading + adds 64 instead (for several workers appending to one file)
//! ```
//!
//! A count is a whole number ≥ 0; `_` and `,` may group its digits (`1_200`, `1,200`). Anything
//! else on a line makes it invalid: it counts nothing and is reported (the first one quoted).
//! The unit is singular or plural (`token`, `tokens`); summaries use the singular.
//!
//! # Counting rules
//! - Total = every cumulative count's latest value + the counts banked at resets + every `+N`.
//! - **Reset**: a cumulative count lower than the previous one is a restarted counter (a new
//!   progress bar for the next epoch, a restarted job): the previous value is banked and the new
//!   one counts from zero. The total therefore never goes down, and restarts are counted.
//! - The first unit is the time the total first went above zero; the last unit, the last time it
//!   grew. The rate is the units counted *after* the first observation ÷ the time between first
//!   and last (so a first report of `step 500` does not inflate it); none with fewer than two
//!   distinct times.
//! - J per unit = an energy figure ÷ the total. `kwtop run` gives the command's whole tree energy,
//!   setup and tear-down included.

pub mod exposition;
pub mod follow;
pub mod live;

use std::fmt;

use regex::bytes::{Regex, RegexBuilder};
use serde::{Deserialize, Serialize};

/// Longest line kept for matching, bytes; the rest of a longer line is dropped (never buffered).
pub const MAX_LINE_BYTES: usize = 64 * 1024;

/// What one line says about the work done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observation {
    /// The cumulative count so far.
    Total(u64),
    /// This many more units.
    Add(u64),
}

/// Why a `--progress` pattern was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    #[error("invalid --progress regex: {0}")]
    Regex(String),
}

/// A `--progress` pattern: a regex matched against each line of the command's output.
#[derive(Debug, Clone)]
pub struct ProgressPattern {
    re: Regex,
}

/// What a line did to a pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineMatch {
    /// The line does not match.
    No,
    /// It matches and counts.
    Counts(Observation),
    /// It matches but its capture group is not a whole number: counts nothing.
    Unparsed,
}

impl ProgressPattern {
    /// Compile `pattern` (Rust `regex` syntax).
    pub fn new(pattern: &str) -> Result<Self, PatternError> {
        RegexBuilder::new(pattern)
            .unicode(false)
            .build()
            .map(|re| ProgressPattern { re })
            .map_err(|e| {
                let mut why = e.to_string();
                if why.contains("Unicode not allowed") || why.contains("Unicode-aware") {
                    why.push_str(
                        "\n(--progress patterns are matched in ASCII mode: \\d, \\w, \\s and (?i) are ASCII, \
                         literal text in any script matches as written; Unicode classes such as \\p{Greek} \
                         and ranges of non-ASCII characters are not available)",
                    );
                }
                PatternError::Regex(why)
            })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        self.re.as_str()
    }

    /// Whether a match carries a cumulative count (the pattern has a capture group).
    pub fn is_cumulative(&self) -> bool {
        self.re.captures_len() > 1
    }

    /// Match one line (without its `\n` or `\r`), escape sequences removed first.
    pub fn observe(&self, line: &[u8]) -> LineMatch {
        let plain = strip_escapes(line);
        if !self.is_cumulative() {
            return if self.re.is_match(&plain) {
                LineMatch::Counts(Observation::Add(1))
            } else {
                LineMatch::No
            };
        }
        match self.re.captures(&plain) {
            None => LineMatch::No,
            Some(c) => match c
                .get(1)
                .and_then(|m| std::str::from_utf8(m.as_bytes()).ok())
                .and_then(parse_count)
            {
                Some(n) => LineMatch::Counts(Observation::Total(n)),
                None => LineMatch::Unparsed,
            },
        }
    }
}

/// A whole number ≥ 0, digits optionally grouped by `_` or `,` (`1_200`, `1,200`).
pub fn parse_count(s: &str) -> Option<u64> {
    let s = s.trim();
    let b = s.as_bytes();
    if !b.first()?.is_ascii_digit() || !b.last()?.is_ascii_digit() {
        return None;
    }
    let mut n: u64 = 0;
    for &c in b {
        match c {
            b'0'..=b'9' => n = n.checked_mul(10)?.checked_add(u64::from(c - b'0'))?,
            b'_' | b',' => {}
            _ => return None,
        }
    }
    Some(n)
}

/// Remove ANSI escape sequences: CSI (`ESC [ … final`), OSC (`ESC ] … BEL` or `ESC \`) and
/// two-byte `ESC x`. An unterminated sequence is removed to the end of the line.
pub fn strip_escapes(line: &[u8]) -> Vec<u8> {
    const ESC: u8 = 0x1b;
    let mut out = Vec::with_capacity(line.len());
    let mut i = 0;
    while i < line.len() {
        if line[i] != ESC {
            out.push(line[i]);
            i += 1;
            continue;
        }
        match line.get(i + 1) {
            Some(b'[') => {
                i += 2;
                while i < line.len() && !(0x40..=0x7e).contains(&line[i]) {
                    i += 1;
                }
                i += 1;
            }
            Some(b']') => {
                i += 2;
                while i < line.len() {
                    if line[i] == 0x07 {
                        i += 1;
                        break;
                    }
                    if line[i] == ESC && line.get(i + 1) == Some(&b'\\') {
                        i += 2;
                        break;
                    }
                    i += 1;
                }
            }
            _ => i += 2,
        }
    }
    out
}

/// Splits a byte stream into lines on `\n` and `\r`, across reads. Empty lines are not reported; a
/// line longer than [`MAX_LINE_BYTES`] is cut there.
#[derive(Debug, Default, Clone)]
pub struct LineSplitter {
    buf: Vec<u8>,
}

impl LineSplitter {
    /// Feed the next bytes; `line` gets every line they complete.
    pub fn push(&mut self, bytes: &[u8], mut line: impl FnMut(&[u8])) {
        for part in bytes.split_inclusive(|&b| b == b'\n' || b == b'\r') {
            let (body, ended) = match part.split_last() {
                Some((&(b'\n' | b'\r'), body)) => (body, true),
                _ => (part, false),
            };
            let room = MAX_LINE_BYTES.saturating_sub(self.buf.len());
            self.buf.extend_from_slice(&body[..body.len().min(room)]);
            if ended {
                self.flush(&mut line);
            }
        }
    }

    /// The end of the stream: report an unterminated last line.
    pub fn finish(&mut self, mut line: impl FnMut(&[u8])) {
        self.flush(&mut line);
    }

    fn flush(&mut self, line: &mut impl FnMut(&[u8])) {
        if !self.buf.is_empty() {
            line(&self.buf);
            self.buf.clear();
        }
    }
}

/// One line of the work file, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkLine {
    /// Blank or a `#` comment.
    Ignored,
    /// A count, with the unit when one was given (as written).
    Count(Observation, Option<String>),
    /// Not in the format: counts nothing.
    Invalid,
}

/// Longest unit name kept, chars.
const MAX_UNIT_CHARS: usize = 32;

/// Parse one line of the work file (see the module doc for the format).
pub fn parse_work_line(line: &[u8]) -> WorkLine {
    let Ok(text) = std::str::from_utf8(line) else {
        return WorkLine::Invalid;
    };
    let text = text.trim();
    if text.is_empty() || text.starts_with('#') {
        return WorkLine::Ignored;
    }
    let mut words = text.split_ascii_whitespace();
    let (Some(count), unit, None) = (words.next(), words.next(), words.next()) else {
        return WorkLine::Invalid;
    };
    let (add, digits) = match count.strip_prefix('+') {
        Some(d) => (true, d),
        None => (false, count),
    };
    let Some(n) = parse_count(digits) else {
        return WorkLine::Invalid;
    };
    if let Some(u) = unit
        && (u.chars().count() > MAX_UNIT_CHARS || !u.chars().all(is_unit_char))
    {
        return WorkLine::Invalid;
    }
    let obs = if add {
        Observation::Add(n)
    } else {
        Observation::Total(n)
    };
    WorkLine::Count(obs, unit.map(singular))
}

fn is_unit_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | '/')
}

/// A unit name as given on the command line (`--unit`): `None` when it is not one word of at most
/// 32 letters, digits, `_`, `-`, `.` or `/`. Plural names are made singular (`tokens` → `token`).
pub fn unit_name(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty() && s.chars().count() <= MAX_UNIT_CHARS && s.chars().all(is_unit_char)).then(|| singular(s))
}

/// `tokens` → `token`, `batches` → `batch`, `steps` → `step`; `class`, `bus` and anything that does
/// not end in a plural `s` are kept.
pub fn singular(unit: &str) -> String {
    let n = unit.chars().count();
    if n <= 3 || !unit.ends_with('s') || unit.ends_with("ss") {
        return unit.to_string();
    }
    for suffix in ["ches", "shes", "xes", "sses"] {
        if let Some(stem) = unit.strip_suffix(suffix) {
            return format!("{stem}{}", &suffix[..suffix.len() - 2]);
        }
    }
    if let Some(stem) = unit.strip_suffix("ies")
        && stem.chars().last().is_some_and(|c| !"aeiou".contains(c))
    {
        return format!("{stem}y");
    }
    unit[..unit.len() - 1].to_string()
}

/// `step` → `steps`, `batch` → `batches`, `query` → `queries`.
pub fn plural(unit: &str) -> String {
    if ["s", "x", "z", "ch", "sh"].iter().any(|s| unit.ends_with(s)) {
        return format!("{unit}es");
    }
    if let Some(stem) = unit.strip_suffix('y')
        && stem.chars().last().is_some_and(|c| !"aeiou".contains(c))
    {
        return format!("{stem}ies");
    }
    format!("{unit}s")
}

/// The singular or plural of `unit` for `n` of them.
pub fn unit_for(unit: &str, n: f64) -> String {
    if n == 1.0 { unit.to_string() } else { plural(unit) }
}

/// Counts units of work from observations (see the module doc for the rules).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WorkCounter {
    /// Cumulative values banked at resets, plus every `Add`.
    banked: u64,
    /// The latest cumulative value.
    current: u64,
    resets: u32,
    /// When the total first went above zero, and the total then.
    first: Option<(i64, u64)>,
    /// The last time the total grew.
    last_ms: Option<i64>,
    /// The last unit a work-file line named.
    unit: Option<String>,
}

impl WorkCounter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Take one observation made at `at_ms` (wall clock, ms since the epoch).
    pub fn observe(&mut self, at_ms: i64, obs: Observation) {
        let before = self.units();
        match obs {
            Observation::Add(n) => self.banked = self.banked.saturating_add(n),
            Observation::Total(n) if n < self.current => {
                self.banked = self.banked.saturating_add(self.current);
                self.current = n;
                self.resets = self.resets.saturating_add(1);
            }
            Observation::Total(n) => self.current = n,
        }
        let now = self.units();
        if now > before {
            if self.first.is_none() {
                self.first = Some((at_ms, now));
            }
            self.last_ms = Some(self.last_ms.map_or(at_ms, |l| l.max(at_ms)));
        }
    }

    /// Take one work-file line read at `at_ms`; returns whether it was valid.
    pub fn observe_work_line(&mut self, at_ms: i64, line: &[u8]) -> bool {
        match parse_work_line(line) {
            WorkLine::Ignored => true,
            WorkLine::Count(obs, unit) => {
                if unit.is_some() {
                    self.unit = unit;
                }
                self.observe(at_ms, obs);
                true
            }
            WorkLine::Invalid => false,
        }
    }

    /// Units counted so far.
    pub fn units(&self) -> u64 {
        self.banked.saturating_add(self.current)
    }

    /// Times a cumulative count went back (each restart counted from zero).
    pub fn resets(&self) -> u32 {
        self.resets
    }

    /// Wall ms when the total first went above zero.
    pub fn first_unit_ms(&self) -> Option<i64> {
        self.first.map(|(t, _)| t)
    }

    /// Wall ms when the total last grew.
    pub fn last_unit_ms(&self) -> Option<i64> {
        self.last_ms
    }

    /// The unit the work file named last, singular.
    pub fn unit(&self) -> Option<&str> {
        self.unit.as_deref()
    }

    /// Units per second between the first and the last unit (units counted after the first
    /// observation ÷ the time between them); `None` without two distinct times.
    pub fn units_per_s(&self) -> Option<f64> {
        let (t0, u0) = self.first?;
        let dt_s = (self.last_ms? - t0) as f64 / 1000.0;
        let du = self.units().saturating_sub(u0);
        (dt_s > 0.0 && du > 0).then(|| du as f64 / dt_s)
    }

    /// The per-unit figures of `energy_j` (joules) and `co2e_g` (grams) spent on this work, named
    /// `unit` (singular) and counted by `source`; `None` when no unit was counted.
    pub fn summary(&self, unit: &str, source: WorkSource, energy_j: f64, co2e_g: f64) -> Option<WorkSummary> {
        let units = self.units();
        if units == 0 {
            return None;
        }
        let n = units as f64;
        Some(WorkSummary {
            unit: unit.to_string(),
            units,
            j_per_unit: energy_j / n,
            wh_per_1000_units: energy_j / 3600.0 / n * 1000.0,
            co2e_g_per_unit: co2e_g / n,
            first_unit_ms: self.first_unit_ms().unwrap_or(0),
            last_unit_ms: self.last_unit_ms().unwrap_or(0),
            units_per_s: self.units_per_s(),
            source,
            counter_resets: self.resets,
        })
    }
}

/// The work a run counted: its counter, the unit's name (singular) and where it was counted.
#[derive(Debug, Clone, PartialEq)]
pub struct CountedWork {
    pub counter: WorkCounter,
    pub unit: String,
    pub source: WorkSource,
}

impl CountedWork {
    /// The per-unit figures of `energy_j` and `co2e_g`; `None` when no unit was counted.
    pub fn summary(&self, energy_j: f64, co2e_g: f64) -> Option<WorkSummary> {
        self.counter.summary(&self.unit, self.source, energy_j, co2e_g)
    }
}

/// Where the units were counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkSource {
    /// Lines of the command's output matching `--progress`.
    Progress,
    /// Lines the command appended to `KWTOP_WORK_FILE`.
    WorkFile,
}

impl fmt::Display for WorkSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            WorkSource::Progress => "progress lines",
            WorkSource::WorkFile => "the work file",
        })
    }
}

/// Energy per unit of work, as summaries carry it (`work` in `kwtop.summary/1`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkSummary {
    /// The unit's name, singular (`step`, `token`).
    pub unit: String,
    /// Units counted.
    pub units: u64,
    /// Joules per unit: the energy ÷ the units.
    pub j_per_unit: f64,
    /// Watt-hours per 1,000 units.
    pub wh_per_1000_units: f64,
    /// Grams CO2e per unit.
    pub co2e_g_per_unit: f64,
    /// Wall ms (since the epoch) when the first unit was counted.
    pub first_unit_ms: i64,
    /// Wall ms when the last unit was counted.
    pub last_unit_ms: i64,
    /// Units per second between the first and the last unit; absent without two distinct times.
    pub units_per_s: Option<f64>,
    pub source: WorkSource,
    /// Times a cumulative count went back and was counted from zero again.
    #[serde(default)]
    pub counter_resets: u32,
}

#[cfg(test)]
mod tests;
