//! Recording format: JSON lines of samples (`kwtop.recording/2`), written by `kwtop record` and read
//! back by `report`, `replay` and the tests into the same pipeline as live sensors.
//!
//! Line 1 is a header; every further line is one sample, full or delta:
//! - A **full** sample has the shape of version 1: `t`, `wall_ms`, `uptime_s`, `tps`, `cpu`, every
//!   process as `{pid, st, ppid, cpu, child, info}` and every device reading. It holds every
//!   process's static facts (command, user, cgroup), so reading can start at it.
//! - A **delta** sample has the same `t`, `wall_ms`, `uptime_s`, `tps` and `cpu`, and a `delta`
//!   object with what changed since the previous sample (`recording/delta.rs` defines "changed"):
//!   `ticks`, the processes whose only change is their CPU ticks, as (position in the previous
//!   sample, ticks gained) pairs; `procs`, the new processes whole and the other changed ones with
//!   only the fields that changed; `gone`, the `[pid, st]` of those that left; `dev`, per changed
//!   device the fields set and unset. A process or device left out is as it was. Increments are
//!   integers on integers, so every counter reads back exactly; everything else is written as values.
//!
//! The first sample is full, then one every `full_every` (60 by default), and whenever a delta
//! cannot say the sample exactly. A reader rejects a delta before any full sample, and a delta that
//! does not fit the previous sample, naming the line. Version 1 recordings (full samples whose facts
//! appear only the first time a process does) read as before.
//!
//! `*.zst` and `*.gz` files are compressed ([`compress`]) and read back by their magic bytes. Errors
//! name the line; everything before a bad line stays usable. Command lines are written through a
//! [`Redactor`] (`[export] cmdline`, `--cmdline`), and the header says which mode; a reader shows them
//! as written.

use std::io::{BufRead, Write};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub mod compress;
mod delta;
mod wire;

pub use compress::{Compression, decompressing};

use crate::redact::{CmdlineMode, Redactor};
use crate::sample::{ProcInfo, ProcKey, ProcessReading, Sample};
use compress::Sink;
use delta::{Devices, Prev};
use wire::{DeltaOut, FullOut, LineIn, WireProcess};

/// Schema id of the header line this kwtop writes: full and delta samples.
pub const SCHEMA: &str = "kwtop.recording/2";
/// Schema id of recordings made before delta samples (full samples only); still read.
pub const SCHEMA_V1: &str = "kwtop.recording/1";

/// First line of a recording.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Header {
    pub schema: String,
    pub host: String,
    pub kwtop_version: String,
    /// Wall clock at the start, ms since the epoch.
    pub started_ms: i64,
    /// Sampling interval, seconds.
    pub interval_s: f64,
    /// Free-form notes (e.g. GPU model and driver for hardware recordings).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// How command lines were written: `full`, `redacted` or `name`. Absent in recordings made before
    /// kwtop redacted them, which hold full command lines.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmdline: Option<CmdlineMode>,
}

impl Header {
    /// The mode the command lines in this recording were written with.
    pub fn cmdline_mode(&self) -> CmdlineMode {
        self.cmdline.unwrap_or(CmdlineMode::Full)
    }
}

/// Samples between two full ones when nothing forces one sooner: a minute at 1 Hz.
pub const DEFAULT_FULL_EVERY: u32 = 60;

/// How a [`Writer`] writes.
#[derive(Debug, Clone)]
pub struct WriterOptions {
    /// A full sample every this many samples (the first is always full); 1 writes no deltas.
    pub full_every: u32,
    pub compression: Compression,
    /// Applied to each process's command line (the header records the mode); `None` writes them as
    /// given.
    pub redactor: Option<Redactor>,
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions {
            full_every: DEFAULT_FULL_EVERY,
            compression: Compression::None,
            redactor: None,
        }
    }
}

/// Writes a recording line by line, flushed per sample, so a killed recorder loses at most the sample
/// being written (compressed too: see [`compress`]).
pub struct Writer<W: Write> {
    out: Sink<W>,
    line: Vec<u8>,
    redactor: Option<Redactor>,
    full_every: u32,
    /// Samples written since the last full one; `None` before the first.
    since_full: Option<u32>,
    prev: Prev,
}

impl<W: Write> Writer<W> {
    /// A writer whose command lines pass through `redactor`; the header written records its mode.
    pub fn redacting(out: W, header: &Header, redactor: Redactor) -> std::io::Result<Self> {
        Writer::with_options(
            out,
            header,
            WriterOptions {
                redactor: Some(redactor),
                ..WriterOptions::default()
            },
        )
    }

    /// A writer that writes `header` and the samples' command lines as they are, uncompressed, with
    /// a full sample every [`DEFAULT_FULL_EVERY`].
    pub fn new(out: W, header: &Header) -> std::io::Result<Self> {
        Writer::with_options(out, header, WriterOptions::default())
    }

    /// A writer as `options` say. The header is written with this format's [`SCHEMA`] (and the
    /// redactor's mode, when there is one), whatever `header.schema` holds.
    pub fn with_options(out: W, header: &Header, options: WriterOptions) -> std::io::Result<Self> {
        let header = Header {
            schema: SCHEMA.into(),
            cmdline: options.redactor.as_ref().map_or(header.cmdline, |r| Some(r.mode)),
            ..header.clone()
        };
        let mut out = Sink::new(out, options.compression)?;
        let mut line = serde_json::to_vec(&header)?;
        line.push(b'\n');
        out.write_all(&line)?;
        out.flush()?;
        line.clear();
        Ok(Writer {
            out,
            line,
            redactor: options.redactor,
            full_every: options.full_every.max(1),
            since_full: None,
            prev: Prev::default(),
        })
    }

    /// Write one sample: a delta against the previous one, or a full sample when one is due (the
    /// first, every `full_every`-th) or a delta cannot say it.
    pub fn write(&mut self, s: &Sample) -> std::io::Result<()> {
        let devices = Devices::new(s.devices.clone());
        let delta = match self.since_full {
            Some(n) if n < self.full_every => {
                let red = self.redactor.as_ref();
                self.prev.encode(&s.processes, &devices, |i| wire_info(red, i))
            }
            _ => None,
        };
        self.line.clear();
        let full = delta.is_none();
        match delta {
            Some(delta) => serde_json::to_writer(
                &mut self.line,
                &DeltaOut {
                    t: s.mono_s,
                    wall_ms: s.wall_ms,
                    uptime_s: s.uptime_s,
                    tps: s.ticks_per_s,
                    cpu: s.cpu_times,
                    delta,
                },
            )?,
            None => serde_json::to_writer(&mut self.line, &full_sample(self.redactor.as_ref(), s))?,
        }
        self.line.push(b'\n');
        if full && self.since_full.is_some() {
            // Each full sample opens a new zstd frame (gzip member).
            self.out.restart()?;
        }
        self.out.write_all(&self.line)?;
        self.out.flush()?;
        self.since_full = Some(if full { 1 } else { self.since_full.unwrap_or(0) + 1 });
        self.prev.set(s.processes.clone(), devices);
        Ok(())
    }

    /// Close the stream (the last zstd frame or gzip member), flush, and give back the output.
    pub fn finish(self) -> std::io::Result<W> {
        self.out.finish()
    }
}

/// A full sample: every process with its static facts, so reading can start here.
fn full_sample<'s>(red: Option<&Redactor>, s: &'s Sample) -> FullOut<'s> {
    FullOut {
        t: s.mono_s,
        wall_ms: s.wall_ms,
        uptime_s: s.uptime_s,
        tps: s.ticks_per_s,
        cpu: s.cpu_times,
        procs: s
            .processes
            .iter()
            .map(|p| WireProcess {
                pid: p.key.pid,
                st: p.key.starttime,
                ppid: p.ppid,
                cpu: p.cpu_ticks,
                child: p.child_ticks,
                info: Some(wire_info(red, &p.info)),
            })
            .collect(),
        devices: &s.devices,
    }
}

fn wire_info(redactor: Option<&Redactor>, info: &ProcInfo) -> ProcInfo {
    let mut i = info.clone();
    if let Some(r) = redactor {
        i.cmdline = r.cmdline(&i.comm, &i.cmdline);
    }
    i
}

/// A bad line in a recording.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("recording line {line}: {message}")]
pub struct RecordingError {
    /// 1-based line number.
    pub line: usize,
    pub message: String,
}

/// Reads a recording: the header, then samples one by one. Reads `kwtop.recording/1` files too.
/// Compressed files go through [`decompressing`] first.
pub struct Reader<R: BufRead> {
    input: R,
    pub header: Header,
    line_no: usize,
    /// The previous sample, which the next line may refer to.
    prev: Prev,
    /// A full sample was read: delta lines may follow.
    has_full: bool,
    buf: String,
    failed: bool,
}

impl<R: BufRead> Reader<R> {
    pub fn new(mut input: R) -> Result<Self, RecordingError> {
        let mut buf = String::new();
        input.read_line(&mut buf).map_err(|e| RecordingError {
            line: 1,
            message: e.to_string(),
        })?;
        if buf.trim().is_empty() {
            return Err(RecordingError {
                line: 1,
                message: "empty file: no header".into(),
            });
        }
        let header: Header = serde_json::from_str(buf.trim_end()).map_err(|e| RecordingError {
            line: 1,
            message: format!("not a kwtop recording header: {e}"),
        })?;
        if header.schema != SCHEMA && header.schema != SCHEMA_V1 {
            return Err(RecordingError {
                line: 1,
                message: format!(
                    "unsupported schema '{}' (this kwtop reads {SCHEMA} and {SCHEMA_V1})",
                    header.schema
                ),
            });
        }
        Ok(Reader {
            input,
            header,
            line_no: 1,
            prev: Prev::default(),
            has_full: false,
            buf,
            failed: false,
        })
    }

    fn decode(&mut self, text: &str) -> Result<Sample, String> {
        let line: LineIn = serde_json::from_str(text).map_err(|e| {
            if e.is_eof() {
                format!("truncated line ({e})")
            } else {
                format!("invalid sample: {e}")
            }
        })?;
        if !line.t.is_finite() {
            return Err("sample time is not a finite number".into());
        }
        let (processes, devices) = match line.delta {
            Some(delta) => {
                if self.header.schema == SCHEMA_V1 {
                    return Err(format!("a delta sample in a {SCHEMA_V1} recording"));
                }
                if !self.has_full {
                    return Err(
                        "a delta sample before any full sample: the recording's start is missing".into(),
                    );
                }
                if line.procs.is_some() || line.devices.is_some() {
                    return Err("a delta sample with a full process or device list".into());
                }
                self.prev.apply(delta, sanitized)?
            }
            None => {
                let processes = line
                    .procs
                    .unwrap_or_default()
                    .into_iter()
                    .map(|p| self.full_process(p))
                    .collect();
                self.has_full = true;
                (processes, Devices::new(line.devices.unwrap_or_default()))
            }
        };
        let readings = devices.readings.clone();
        self.prev.set(processes.clone(), devices);
        Ok(Sample {
            mono_s: line.t,
            wall_ms: line.wall_ms,
            uptime_s: line.uptime_s,
            ticks_per_s: line.tps.max(1),
            cpu_times: line.cpu,
            processes,
            devices: readings,
        })
    }

    /// A process of a full sample; without its facts (recordings of version 1 write them once), the
    /// previous sample's.
    fn full_process(&self, p: WireProcess) -> ProcessReading {
        let key = ProcKey {
            pid: p.pid,
            starttime: p.st,
        };
        let info = match p.info {
            Some(i) => Arc::new(sanitized(i)),
            None => self
                .prev
                .info(&key)
                .cloned()
                .unwrap_or_else(|| Arc::new(delta::placeholder(p.pid))),
        };
        ProcessReading {
            key,
            ppid: p.ppid,
            cpu_ticks: p.cpu,
            child_ticks: p.child,
            info,
        }
    }
}

/// A recording is untrusted input too: sanitize its strings as the live source would.
fn sanitized(mut i: ProcInfo) -> ProcInfo {
    use crate::sanitize::{MAX_FIELD_CHARS, sanitize_str};
    i.comm = sanitize_str(&i.comm, MAX_FIELD_CHARS);
    i.cmdline = sanitize_str(&i.cmdline, 1024);
    i.user = sanitize_str(&i.user, 64);
    let path = sanitize_str(&i.cgroup.path, 512);
    std::sync::Arc::make_mut(&mut i.cgroup).path = path;
    i
}

impl<R: BufRead> Iterator for Reader<R> {
    type Item = Result<Sample, RecordingError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        loop {
            self.buf.clear();
            self.line_no += 1;
            let line = self.line_no;
            match self.input.read_line(&mut self.buf) {
                Ok(0) => return None,
                Ok(_) => {}
                Err(e) => {
                    self.failed = true;
                    return Some(Err(RecordingError {
                        line,
                        message: e.to_string(),
                    }));
                }
            }
            let text = std::mem::take(&mut self.buf);
            if text.trim().is_empty() {
                continue;
            }
            let r = self.decode(text.trim_end());
            self.buf = text;
            return Some(r.map_err(|message| {
                self.failed = true;
                RecordingError { line, message }
            }));
        }
    }
}

#[cfg(test)]
mod delta_tests;
#[cfg(test)]
mod roundtrip_tests;
#[cfg(test)]
mod size_tests;
#[cfg(test)]
mod tests;
