//! Process source over a procfs tree (`/proc` or a fixture): `/proc/stat`, `/proc/uptime` and
//! `/proc/PID/{stat,status,cmdline,cgroup}`.
//!
//! Per tick it reads only `/proc/PID/stat`; the static facts (command line, user, cgroup) are read
//! once per `(pid, starttime)` and shared. Process-supplied strings are sanitized here, before
//! anything else sees them. Unreadable entries are counted and explained once, never a panic.

use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use procfs::FromRead;

use super::{ProcSnapshot, ProcessSource};
use crate::cgroup::parse_cgroup;
use crate::sample::{CpuTimes, ProcInfo, ProcKey, ProcessReading};
use crate::sanitize::{MAX_FIELD_CHARS, cmdline_from_proc, sanitize_str};

/// Bytes of `/proc/PID/cmdline` read at most (a command line can be megabytes).
const CMDLINE_READ_CAP: u64 = 16 * 1024;
/// Characters of command line kept.
const CMDLINE_CHARS: usize = 1024;

/// Reads processes from a procfs root.
pub struct ProcFs {
    root: PathBuf,
    ticks_per_s: u64,
    /// Static facts per process, with the raw `comm` they were read under (an exec changes it).
    info: HashMap<ProcKey, (String, Arc<ProcInfo>)>,
    users: HashMap<u32, String>,
    buf: Vec<u8>,
    denied_noted: bool,
    notices: Vec<String>,
}

impl ProcFs {
    pub fn new(root: PathBuf) -> Self {
        ProcFs {
            root,
            ticks_per_s: procfs::ticks_per_second(),
            info: HashMap::new(),
            users: HashMap::new(),
            buf: Vec::with_capacity(1024),
            denied_noted: false,
            notices: Vec::new(),
        }
    }

    fn read_file(&mut self, path: &Path, cap: u64) -> std::io::Result<()> {
        self.buf.clear();
        File::open(path)?.take(cap).read_to_end(&mut self.buf)?;
        Ok(())
    }

    fn read_process(&mut self, pid: u32, stat_path: &Path) -> Result<ProcessReading, std::io::Error> {
        self.read_file(stat_path, 4096)?;
        let stat = procfs::process::Stat::from_read(&self.buf[..])
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))?;
        let key = ProcKey {
            pid,
            starttime: stat.starttime,
        };
        let info = match self.info.get(&key) {
            Some((comm, i)) if *comm == stat.comm => Arc::clone(i),
            // New, or the same process after an exec (comm changed): read its facts again.
            _ => {
                let i = Arc::new(self.read_info(pid, &stat.comm));
                self.info.insert(key, (stat.comm.clone(), Arc::clone(&i)));
                i
            }
        };
        Ok(ProcessReading {
            key,
            ppid: u32::try_from(stat.ppid).unwrap_or(0),
            cpu_ticks: stat.utime.saturating_add(stat.stime),
            child_ticks: u64::try_from(stat.cutime.saturating_add(stat.cstime)).unwrap_or(0),
            info,
        })
    }

    fn read_info(&mut self, pid: u32, comm: &str) -> ProcInfo {
        let dir = self.root.join(pid.to_string());
        let cmdline = match self.read_file(&dir.join("cmdline"), CMDLINE_READ_CAP) {
            Ok(()) => cmdline_from_proc(&self.buf, CMDLINE_CHARS),
            Err(_) => String::new(),
        };
        let uid = match self.read_file(&dir.join("status"), 8192) {
            Ok(()) => parse_uid(&self.buf),
            Err(_) => None,
        };
        let cgroup = match self.read_file(&dir.join("cgroup"), 8192) {
            Ok(()) => parse_cgroup(&String::from_utf8_lossy(&self.buf)),
            Err(_) => Default::default(),
        };
        let user = match uid {
            Some(u) => self.user_name(u),
            None => "?".to_string(),
        };
        ProcInfo {
            comm: sanitize_str(comm, MAX_FIELD_CHARS),
            cmdline,
            user,
            uid,
            cgroup,
        }
    }

    fn user_name(&mut self, uid: u32) -> String {
        self.users
            .entry(uid)
            .or_insert_with(
                || match nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)) {
                    Ok(Some(u)) => sanitize_str(&u.name, 64),
                    _ => uid.to_string(),
                },
            )
            .clone()
    }

    fn read_cpu_times(&self) -> Option<CpuTimes> {
        let ks = <procfs::KernelStats as procfs::FromReadSI>::from_file(
            self.root.join("stat"),
            procfs::current_system_info(),
        )
        .ok()?;
        let t = ks.total;
        Some(CpuTimes {
            busy: t.user + t.nice + t.system + t.irq.unwrap_or(0) + t.softirq.unwrap_or(0),
            idle: t.idle + t.iowait.unwrap_or(0),
        })
    }

    fn read_uptime(&mut self) -> Option<f64> {
        let path = self.root.join("uptime");
        self.read_file(&path, 128).ok()?;
        std::str::from_utf8(&self.buf)
            .ok()?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    }
}

/// The real uid from a `/proc/PID/status` text.
fn parse_uid(status: &[u8]) -> Option<u32> {
    let text = std::str::from_utf8(status).ok()?;
    let line = text.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

impl ProcessSource for ProcFs {
    fn read(&mut self) -> ProcSnapshot {
        let cpu_times = self.read_cpu_times();
        let uptime_s = self.read_uptime();
        let mut processes = Vec::with_capacity(self.info.len() + 16);
        let mut denied = 0usize;
        if let Ok(dir) = std::fs::read_dir(&self.root) {
            for ent in dir.flatten() {
                let name = ent.file_name();
                let Some(pid) = name.to_str().and_then(|s| s.parse::<u32>().ok()) else {
                    continue;
                };
                let stat_path = ent.path().join("stat");
                match self.read_process(pid, &stat_path) {
                    Ok(p) => processes.push(p),
                    Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => denied += 1,
                    // The process exited between readdir and read: normal churn.
                    Err(_) => {}
                }
            }
        } else {
            self.notices.push(format!(
                "cannot list {}: no processes visible, all CPU energy is unattributed",
                self.root.display()
            ));
        }
        if denied > 0 && !self.denied_noted {
            self.denied_noted = true;
            self.notices.push(format!(
                "{denied} processes under {} could not be read (permission denied, e.g. hidepid): \
                 their CPU energy is booked as unattributed",
                self.root.display()
            ));
        }
        // Forget static info of processes that are gone.
        if self.info.len() > processes.len() * 2 + 64 {
            let live: std::collections::HashSet<ProcKey> = processes.iter().map(|p| p.key).collect();
            self.info.retain(|k, _| live.contains(k));
        }
        ProcSnapshot {
            cpu_times,
            uptime_s,
            ticks_per_s: self.ticks_per_s,
            processes,
        }
    }

    fn take_notices(&mut self) -> Vec<String> {
        std::mem::take(&mut self.notices)
    }
}

#[cfg(test)]
mod tests;
