//! Process source over a procfs tree (`/proc` or a fixture): `/proc/stat`, `/proc/uptime` and
//! `/proc/PID/{stat,status,cmdline,cgroup}`.
//!
//! Per tick it lists the root once and reads only `/proc/PID/stat` (opened relative to the root,
//! read with one `read`, and only the fields used are parsed, with no allocation per process); the
//! static facts (command line, user, cgroup) are read once per `(pid, starttime)` and shared. Process-supplied strings are sanitized here, before
//! anything else sees them. Unreadable entries are counted and explained once, never a panic.

use std::fs::File;
use std::io::Read;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use nix::dir::Dir;
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

use super::{ProcSnapshot, ProcessSource};
use crate::cgroup::{CgroupInfo, parse_cgroup};
use crate::fasthash::{FastMap, FastSet};
use crate::sample::{CpuTimes, ProcInfo, ProcKey, ProcessReading};
use crate::sanitize::{MAX_FIELD_CHARS, cmdline_from_proc, sanitize_bytes, sanitize_str};

/// Bytes of `/proc/PID/cmdline` read at most (a command line can be megabytes).
const CMDLINE_READ_CAP: u64 = 16 * 1024;
/// The facts buffer's size between reads: a `status` file is ~1.4 KB, a `cgroup` file and most
/// command lines less.
const FACTS_BUF: usize = 4096;
/// Characters of command line kept.
const CMDLINE_CHARS: usize = 1024;
/// `/proc/PID/stat` is one line of 52 numbers and a name of at most 64 bytes: well under this.
const STAT_READ_CAP: usize = 4096;
/// `/proc/stat` is read only as far as its first line (the machine's total CPU time).
const PROC_STAT_READ: usize = 4096;

/// Static facts of one process, with a hash of the raw `comm` they were read under (an exec
/// changes it, and the facts are read again).
struct Known {
    comm_hash: u64,
    info: Arc<ProcInfo>,
    /// The read that last listed it (to forget processes that are gone).
    seen: u64,
}

/// Reads processes from a procfs root.
pub struct ProcFs {
    root: PathBuf,
    ticks_per_s: u64,
    info: FastMap<ProcKey, Known>,
    users: FastMap<u32, String>,
    /// One shared copy per distinct cgroup (processes of a service, a job or a container share it).
    cgroups: FastSet<Arc<CgroupInfo>>,
    /// `stat` files, `/proc/stat` and `/proc/uptime`.
    buf: Vec<u8>,
    /// A new process's `cmdline`, `status` and `cgroup`, read while its `stat` is still in `buf`.
    /// Kept between processes: a buffer made afresh for each, grown by doubling and dropped, left
    /// its old copies scattered among the facts kept (~85 KiB of the feed thread's heap at ~70
    /// processes, issue 12).
    facts: Vec<u8>,
    /// Pids listed by the last readdir (kept to reuse its memory).
    pids: Vec<u32>,
    /// `PID/stat`, the path read relative to the root.
    rel: String,
    reads: u64,
    denied_noted: bool,
    notices: Vec<String>,
}

/// The fields of `/proc/PID/stat` the accounting needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct StatFields<'a> {
    comm: &'a [u8],
    ppid: i64,
    utime: u64,
    stime: u64,
    cutime: i64,
    cstime: i64,
    starttime: u64,
}

/// Parse `/proc/PID/stat`: `pid (comm) state ppid …`, where `comm` may hold spaces and parentheses
/// (the fields resume after the last `)`). Only the fields used are converted; `None` when the
/// text is not a stat line.
fn parse_stat(text: &[u8]) -> Option<StatFields<'_>> {
    let open = text.iter().position(|&b| b == b'(')?;
    let close = text.iter().rposition(|&b| b == b')')?;
    if close < open {
        return None;
    }
    let comm = &text[open + 1..close];
    // Field 3 (state) is the first after the name; field N is at index N − 3.
    let mut fields = text[close + 1..]
        .split(|b| b.is_ascii_whitespace())
        .filter(|f| !f.is_empty());
    let mut nth = |n: usize| fields.nth(n);
    let _state = nth(0)?;
    let ppid = int(nth(0)?)?;
    let utime = uint(nth(9)?)?;
    let stime = uint(nth(0)?)?;
    let cutime = int(nth(0)?)?;
    let cstime = int(nth(0)?)?;
    let starttime = uint(nth(4)?)?;
    Some(StatFields {
        comm,
        ppid,
        utime,
        stime,
        cutime,
        cstime,
        starttime,
    })
}

/// A decimal `u64` (no sign, no spaces).
fn uint(s: &[u8]) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    s.iter().try_fold(0u64, |acc, &b| {
        let d = b.checked_sub(b'0').filter(|d| *d < 10)?;
        acc.checked_mul(10)?.checked_add(u64::from(d))
    })
}

/// A decimal `i64` with an optional leading `-`.
fn int(s: &[u8]) -> Option<i64> {
    match s.split_first() {
        Some((b'-', rest)) => i64::try_from(uint(rest)?).ok().map(|v| -v),
        _ => i64::try_from(uint(s)?).ok(),
    }
}

/// FNV-1a of the raw name: enough to notice that an exec changed it.
fn comm_hash(comm: &[u8]) -> u64 {
    comm.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Read a whole small file opened at `rel` under `dir` into `buf` (cleared first), at most `cap`
/// bytes. A procfs line file is complete once a read ends in a newline, which spares the read
/// that would only see its end.
fn read_at(dir: impl AsFd, rel: &str, buf: &mut Vec<u8>, cap: usize) -> nix::Result<()> {
    let fd = nix::fcntl::openat(dir, rel, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty())?;
    buf.clear();
    if buf.capacity() < 1024 {
        buf.reserve(1024);
    }
    loop {
        let len = buf.len();
        if len >= cap {
            return Ok(());
        }
        let room = (buf.capacity() - len).min(cap - len);
        if room == 0 {
            buf.reserve(len.max(1024));
            continue;
        }
        buf.resize(len + room, 0);
        let n = match nix::unistd::read(&fd, &mut buf[len..]) {
            Ok(n) => n,
            Err(e) => {
                buf.truncate(len);
                if e == Errno::EINTR {
                    continue;
                }
                return Err(e);
            }
        };
        buf.truncate(len + n);
        if n == 0 || buf.last() == Some(&b'\n') {
            return Ok(());
        }
    }
}

impl ProcFs {
    pub fn new(root: PathBuf) -> Self {
        ProcFs {
            root,
            ticks_per_s: ticks_per_second(),
            info: FastMap::default(),
            users: FastMap::default(),
            cgroups: FastSet::default(),
            buf: Vec::with_capacity(1024),
            facts: Vec::with_capacity(FACTS_BUF),
            pids: Vec::new(),
            rel: String::new(),
            reads: 0,
            denied_noted: false,
            notices: Vec::new(),
        }
    }

    /// Read `path` (at most `cap` bytes) into `facts`.
    fn read_facts(&mut self, path: &Path, cap: u64) -> std::io::Result<()> {
        self.facts.clear();
        if self.facts.capacity() > FACTS_BUF {
            // A command line over 4 KiB grew it: give that back rather than keep it for good.
            self.facts.shrink_to(FACTS_BUF);
        }
        File::open(path)?.take(cap).read_to_end(&mut self.facts)?;
        Ok(())
    }

    /// One process's `stat` (and, when it is new or has exec'd, its static facts).
    fn read_process(&mut self, root: &Dir, pid: u32) -> Result<ProcessReading, Errno> {
        use std::fmt::Write as _;
        self.rel.clear();
        let _ = write!(self.rel, "{pid}/stat");
        let mut buf = std::mem::take(&mut self.buf);
        let read = read_at(root, &self.rel, &mut buf, STAT_READ_CAP);
        let out = read.and_then(|()| {
            let stat = parse_stat(&buf).ok_or(Errno::EINVAL)?;
            Ok(self.reading(pid, &stat))
        });
        self.buf = buf;
        out
    }

    fn reading(&mut self, pid: u32, stat: &StatFields<'_>) -> ProcessReading {
        let key = ProcKey {
            pid,
            starttime: stat.starttime,
        };
        let hash = comm_hash(stat.comm);
        let reads = self.reads;
        let info = match self.info.get_mut(&key) {
            Some(k) if k.comm_hash == hash => {
                k.seen = reads;
                Arc::clone(&k.info)
            }
            // New, or the same process after an exec (comm changed): read its facts again.
            _ => {
                let comm = sanitize_bytes(stat.comm, MAX_FIELD_CHARS);
                let info = Arc::new(self.read_info(pid, comm));
                self.info.insert(
                    key,
                    Known {
                        comm_hash: hash,
                        info: Arc::clone(&info),
                        seen: reads,
                    },
                );
                info
            }
        };
        ProcessReading {
            key,
            ppid: u32::try_from(stat.ppid).unwrap_or(0),
            cpu_ticks: stat.utime.saturating_add(stat.stime),
            child_ticks: u64::try_from(stat.cutime.saturating_add(stat.cstime)).unwrap_or(0),
            info,
        }
    }

    fn read_info(&mut self, pid: u32, comm: String) -> ProcInfo {
        let dir = self.root.join(pid.to_string());
        let cmdline = match self.read_facts(&dir.join("cmdline"), CMDLINE_READ_CAP) {
            Ok(()) => cmdline_from_proc(&self.facts, CMDLINE_CHARS),
            Err(_) => String::new(),
        };
        let uid = match self.read_facts(&dir.join("status"), 8192) {
            Ok(()) => parse_uid(&self.facts),
            Err(_) => None,
        };
        let cgroup = match self.read_facts(&dir.join("cgroup"), 8192) {
            Ok(()) => parse_cgroup(&String::from_utf8_lossy(&self.facts)),
            Err(_) => CgroupInfo::default(),
        };
        let cgroup = match self.cgroups.get(&cgroup) {
            Some(shared) => Arc::clone(shared),
            None => {
                let shared = Arc::new(cgroup);
                self.cgroups.insert(Arc::clone(&shared));
                shared
            }
        };
        let user = match uid {
            Some(u) => self.user_name(u),
            None => "?".to_string(),
        };
        ProcInfo {
            comm,
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

    /// The machine's CPU time from the first line of `/proc/stat` (`cpu  user nice system idle
    /// iowait irq softirq …`).
    fn read_cpu_times(&mut self, root: &Dir) -> Option<CpuTimes> {
        read_at(root, "stat", &mut self.buf, PROC_STAT_READ).ok()?;
        parse_cpu_line(&self.buf)
    }

    fn read_uptime(&mut self, root: &Dir) -> Option<f64> {
        read_at(root, "uptime", &mut self.buf, 128).ok()?;
        std::str::from_utf8(&self.buf)
            .ok()?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    }

    /// The pids listed under the root, in directory order (ascending on a real `/proc`).
    fn list_pids(&mut self, root: &mut Dir) {
        self.pids.clear();
        for ent in root.iter() {
            let Ok(ent) = ent else { continue };
            let name = ent.file_name().to_bytes();
            if let Some(pid) = uint(name).and_then(|p| u32::try_from(p).ok()) {
                self.pids.push(pid);
            }
        }
    }
}

/// `busy` and `idle` ticks from the `cpu ` line of a `/proc/stat` text.
fn parse_cpu_line(text: &[u8]) -> Option<CpuTimes> {
    let line = text.split(|b| *b == b'\n').find(|l| l.starts_with(b"cpu "))?;
    let mut v = line[4..]
        .split(|b| b.is_ascii_whitespace())
        .filter(|f| !f.is_empty())
        .map(uint);
    let mut next = || v.next().flatten();
    let (user, nice, system, idle) = (next()?, next()?, next()?, next()?);
    // iowait, irq and softirq came with Linux 2.5/2.6: absent ones count 0.
    let (iowait, irq, softirq) = (next(), next(), next());
    Some(CpuTimes {
        busy: user + nice + system + irq.unwrap_or(0) + softirq.unwrap_or(0),
        idle: idle + iowait.unwrap_or(0),
    })
}

/// `USER_HZ`, the unit of the tick counters in `/proc` (100 on every Linux port but a few).
fn ticks_per_second() -> u64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .and_then(|t| u64::try_from(t).ok())
        .filter(|t| *t > 0)
        .unwrap_or(100)
}

/// The real uid from a `/proc/PID/status` text.
fn parse_uid(status: &[u8]) -> Option<u32> {
    let text = std::str::from_utf8(status).ok()?;
    let line = text.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

impl ProcessSource for ProcFs {
    fn read(&mut self) -> ProcSnapshot {
        self.reads += 1;
        let root = Dir::open(
            &self.root,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        );
        let mut processes = Vec::new();
        let mut denied = 0usize;
        let (cpu_times, uptime_s) = match root {
            Ok(mut root) => {
                let times = (self.read_cpu_times(&root), self.read_uptime(&root));
                // The directory handle lists the pids, then every PID/stat opens relative to it.
                self.list_pids(&mut root);
                let pids = std::mem::take(&mut self.pids);
                processes.reserve(pids.len());
                if self.info.is_empty() {
                    // Every process is new at the first read: size the table once.
                    self.info.reserve(pids.len());
                }
                for &pid in &pids {
                    match self.read_process(&root, pid) {
                        Ok(p) => processes.push(p),
                        Err(Errno::EACCES | Errno::EPERM) => denied += 1,
                        // The process exited between readdir and read: normal churn.
                        Err(_) => {}
                    }
                }
                self.pids = pids;
                times
            }
            Err(_) => {
                self.notices.push(format!(
                    "cannot list {}: no processes visible, all CPU energy is unattributed",
                    self.root.display()
                ));
                (None, None)
            }
        };
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
            let reads = self.reads;
            self.info.retain(|_, k| k.seen == reads);
            // A cgroup no process of the sample refers to any more (the set holds one reference).
            self.cgroups.retain(|c| Arc::strong_count(c) > 1);
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
