//! Recording format: JSON lines of samples (`kwtop.recording/1`), written by `kwtop record` and read
//! back by the replay source into the same pipeline as live sensors.
//!
//! Line 1 is a header; every further line is one sample. A process's static facts (command, user,
//! cgroup) are written only the first time its `(pid, starttime)` appears, which keeps a 1 Hz
//! recording of a busy node small. Errors name the line; everything before a bad line stays usable.
//! Command lines are written through a [`Redactor`] (`[export] cmdline`, `--cmdline`), and the header
//! says which mode; a reader shows them as written.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, Write};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::redact::{CmdlineMode, Redactor};
use crate::sample::{CpuTimes, DeviceReading, ProcInfo, ProcKey, ProcessReading, Sample};

/// Schema id of the header line.
pub const SCHEMA: &str = "kwtop.recording/1";

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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct WireProcess {
    pid: u32,
    st: u64,
    ppid: u32,
    cpu: u64,
    /// Waited-for children's CPU ticks (cutime + cstime); absent in older recordings and when 0.
    #[serde(default, skip_serializing_if = "is_zero")]
    child: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    info: Option<ProcInfo>,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct WireSample {
    t: f64,
    wall_ms: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    uptime_s: Option<f64>,
    tps: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cpu: Option<CpuTimes>,
    #[serde(default)]
    procs: Vec<WireProcess>,
    #[serde(default)]
    devices: Vec<DeviceReading>,
}

/// Writes a recording line by line (flushed per sample, so a killed recorder loses at most one line).
pub struct Writer<W: Write> {
    out: W,
    known: HashSet<ProcKey>,
    line: Vec<u8>,
    /// Applied to each process's command line; `None` writes them as given.
    redactor: Option<Redactor>,
}

impl<W: Write> Writer<W> {
    /// A writer whose command lines pass through `redactor`; the header written records its mode.
    pub fn redacting(out: W, header: &Header, redactor: Redactor) -> std::io::Result<Self> {
        let header = Header {
            cmdline: Some(redactor.mode),
            ..header.clone()
        };
        let mut w = Writer::new(out, &header)?;
        w.redactor = Some(redactor);
        Ok(w)
    }

    /// A writer that writes `header` and the samples' command lines as they are.
    pub fn new(mut out: W, header: &Header) -> std::io::Result<Self> {
        serde_json::to_writer(&mut out, header)?;
        out.write_all(b"\n")?;
        out.flush()?;
        Ok(Writer {
            out,
            known: HashSet::new(),
            line: Vec::with_capacity(64 * 1024),
            redactor: None,
        })
    }

    pub fn write(&mut self, s: &Sample) -> std::io::Result<()> {
        let live: HashSet<ProcKey> = s.processes.iter().map(|p| p.key).collect();
        let procs = s
            .processes
            .iter()
            .map(|p| WireProcess {
                pid: p.key.pid,
                st: p.key.starttime,
                ppid: p.ppid,
                cpu: p.cpu_ticks,
                child: p.child_ticks,
                info: (!self.known.contains(&p.key)).then(|| self.wire_info(&p.info)),
            })
            .collect();
        let wire = WireSample {
            t: s.mono_s,
            wall_ms: s.wall_ms,
            uptime_s: s.uptime_s,
            tps: s.ticks_per_s,
            cpu: s.cpu_times,
            procs,
            devices: s.devices.clone(),
        };
        self.line.clear();
        serde_json::to_writer(&mut self.line, &wire)?;
        self.line.push(b'\n');
        self.out.write_all(&self.line)?;
        self.out.flush()?;
        self.known = live;
        Ok(())
    }

    fn wire_info(&self, info: &ProcInfo) -> ProcInfo {
        let mut i = info.clone();
        if let Some(r) = &self.redactor {
            i.cmdline = r.cmdline(&i.comm, &i.cmdline);
        }
        i
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

/// A bad line in a recording.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("recording line {line}: {message}")]
pub struct RecordingError {
    /// 1-based line number.
    pub line: usize,
    pub message: String,
}

/// Reads a recording: the header, then samples one by one.
pub struct Reader<R: BufRead> {
    input: R,
    pub header: Header,
    line_no: usize,
    infos: HashMap<ProcKey, Arc<ProcInfo>>,
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
        if header.schema != SCHEMA {
            return Err(RecordingError {
                line: 1,
                message: format!(
                    "unsupported schema '{}' (this kwtop reads {SCHEMA})",
                    header.schema
                ),
            });
        }
        Ok(Reader {
            input,
            header,
            line_no: 1,
            infos: HashMap::new(),
            buf,
            failed: false,
        })
    }

    fn decode(&mut self, text: &str) -> Result<Sample, String> {
        let wire: WireSample = serde_json::from_str(text).map_err(|e| {
            if e.is_eof() {
                format!("truncated line ({e})")
            } else {
                format!("invalid sample: {e}")
            }
        })?;
        if !wire.t.is_finite() {
            return Err("sample time is not a finite number".into());
        }
        let mut live = HashMap::with_capacity(wire.procs.len());
        let mut processes = Vec::with_capacity(wire.procs.len());
        for p in wire.procs {
            let key = ProcKey {
                pid: p.pid,
                starttime: p.st,
            };
            let info = match p.info {
                Some(i) => Arc::new(sanitized(i)),
                None => self.infos.get(&key).cloned().unwrap_or_else(|| {
                    Arc::new(ProcInfo {
                        comm: format!("pid {}", p.pid),
                        user: "?".into(),
                        ..Default::default()
                    })
                }),
            };
            live.insert(key, Arc::clone(&info));
            processes.push(ProcessReading {
                key,
                ppid: p.ppid,
                cpu_ticks: p.cpu,
                child_ticks: p.child,
                info,
            });
        }
        self.infos = live;
        Ok(Sample {
            mono_s: wire.t,
            wall_ms: wire.wall_ms,
            uptime_s: wire.uptime_s,
            ticks_per_s: wire.tps.max(1),
            cpu_times: wire.cpu,
            processes,
            devices: wire.devices,
        })
    }
}

/// A recording is untrusted input too: sanitize its strings as the live source would.
fn sanitized(mut i: ProcInfo) -> ProcInfo {
    use crate::sanitize::{MAX_FIELD_CHARS, sanitize_str};
    i.comm = sanitize_str(&i.comm, MAX_FIELD_CHARS);
    i.cmdline = sanitize_str(&i.cmdline, 1024);
    i.user = sanitize_str(&i.user, 64);
    i.cgroup.path = sanitize_str(&i.cgroup.path, 512);
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
mod tests;
