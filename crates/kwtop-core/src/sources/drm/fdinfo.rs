//! DRM clients per process from `/proc/PID/fdinfo/N` (kernel: "DRM client usage stats").
//!
//! Holders are found by `readlink` of `/proc/PID/fd/*` (targets `/dev/dri/cardN` or
//! `/dev/dri/renderDN`): for pids not seen before at every read, for all pids every
//! [`RESCAN_S`] seconds. Only their DRM fds' fdinfo is read each tick. A client
//! (`drm-pdev`, `drm-client-id`) reached through several fds or processes counts once, for the
//! lowest pid that holds it.
//!
//! Utilisation: per engine class, Δ busy ns / Δ wall ns, or for xe Δ `drm-cycles-<k>` /
//! Δ `drm-total-cycles-<k>`, each divided by `drm-engine-capacity-<k>` (engines in the class). A counter that goes backwards holds its
//! previous value (the spec allows it). A process's percent is the **sum over engine classes**,
//! capped at 100: engines are separate units that each draw power while busy, so their busy time
//! adds up as a weight for the dynamic energy. A client's first read has no baseline: `None`.
//! Memory: `drm-resident-vram`, else `drm-memory-vram` (amdgpu, deprecated), `drm-resident-vram0`
//! / `drm-total-vram0` (xe), `drm-resident-local0` / `drm-total-local0` (i915).

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};

/// Re-check every process's fds this often, seconds (new pids are checked at once).
pub const RESCAN_S: f64 = 5.0;

/// One fdinfo file of a DRM fd, parsed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FdInfo {
    pub driver: Option<String>,
    pub pdev: Option<String>,
    pub client_id: Option<u64>,
    /// Engine class → busy ns.
    pub engines: BTreeMap<String, u64>,
    /// Engine class → engines in it (`drm-engine-capacity-<k>`, default 1).
    pub capacity: BTreeMap<String, u64>,
    /// xe: engine class → (cycles, total cycles).
    pub cycles: BTreeMap<String, (u64, u64)>,
    pub mem_bytes: Option<u64>,
}

/// `"1024 KiB"` → 1048576; a bare number is bytes.
fn bytes(v: &str) -> Option<u64> {
    let mut it = v.split_whitespace();
    let n: u64 = it.next()?.parse().ok()?;
    let mul = match it.next() {
        None | Some("B") => 1,
        Some("KiB") => 1 << 10,
        Some("MiB") => 1 << 20,
        Some("GiB") => 1 << 30,
        Some(_) => return None,
    };
    n.checked_mul(mul)
}

fn number(v: &str) -> Option<u64> {
    v.split_whitespace().next()?.parse().ok()
}

/// Parse one fdinfo text. `None` when it is not a DRM client (no `drm-driver`).
pub fn parse(text: &str) -> Option<FdInfo> {
    let mut f = FdInfo::default();
    let mut mem: [Option<u64>; 6] = [None; 6];
    let mut cycles: BTreeMap<String, u64> = BTreeMap::new();
    let mut totals: BTreeMap<String, u64> = BTreeMap::new();
    for line in text.lines() {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let v = v.trim();
        match k {
            "drm-driver" => f.driver = Some(v.to_string()),
            "drm-pdev" => f.pdev = Some(v.to_string()),
            "drm-client-id" => f.client_id = number(v),
            "drm-resident-vram" => mem[0] = bytes(v),
            "drm-memory-vram" => mem[1] = bytes(v),
            "drm-resident-vram0" => mem[2] = bytes(v),
            "drm-total-vram0" => mem[3] = bytes(v),
            "drm-resident-local0" => mem[4] = bytes(v),
            "drm-total-local0" => mem[5] = bytes(v),
            _ => {
                if let Some(c) = k.strip_prefix("drm-engine-capacity-") {
                    if let Some(n) = number(v) {
                        f.capacity.insert(c.to_string(), n.max(1));
                    }
                } else if let Some(c) = k.strip_prefix("drm-engine-") {
                    if let Some(n) = number(v) {
                        f.engines.insert(c.to_string(), n);
                    }
                } else if let Some(c) = k.strip_prefix("drm-total-cycles-") {
                    if let Some(n) = number(v) {
                        totals.insert(c.to_string(), n);
                    }
                } else if let Some(c) = k.strip_prefix("drm-cycles-")
                    && let Some(n) = number(v)
                {
                    cycles.insert(c.to_string(), n);
                }
            }
        }
    }
    f.driver.as_ref()?;
    f.mem_bytes = mem.into_iter().flatten().next();
    f.cycles = cycles
        .into_iter()
        .filter_map(|(c, n)| Some((c.clone(), (n, *totals.get(&c)?))))
        .collect();
    Some(f)
}

/// Whether a `/proc/PID/fd/N` link target is a DRM device node.
pub fn is_drm_node(target: &Path) -> bool {
    let s = target.to_string_lossy();
    s.strip_prefix("/dev/dri/")
        .is_some_and(|n| n.starts_with("card") || n.starts_with("renderD"))
}

/// The DRM fds of one process, by `readlink` of its `fd/*`; `Err` when the fd directory cannot be
/// listed (another user's process without privileges, or the process exited).
pub fn drm_fds(proc_root: &Path, pid: u32) -> Result<Vec<u32>, std::io::Error> {
    let mut fds: Vec<u32> = fs::read_dir(proc_root.join(pid.to_string()).join("fd"))?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let fd: u32 = e.file_name().to_str()?.parse().ok()?;
            is_drm_node(&fs::read_link(e.path()).ok()?).then_some(fd)
        })
        .collect();
    fds.sort_unstable();
    Ok(fds)
}

/// Numeric entries of `proc_root`, sorted.
pub fn pids(proc_root: &Path) -> Vec<u32> {
    let mut out: Vec<u32> = fs::read_dir(proc_root)
        .map(|d| {
            d.filter_map(Result::ok)
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    out.sort_unstable();
    out
}

/// A client's usage over one interval, ready for a `GpuProcess`.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientUse {
    pub pid: u32,
    pub pdev: String,
    /// Percent of the interval (sum over engine classes, capped at 100); `None` on the first read.
    pub util_pct: Option<f64>,
    pub mem_bytes: Option<u64>,
}

/// Counters of one client at its last read (held: never below an earlier value).
#[derive(Debug, Clone, Default)]
struct ClientState {
    engines: BTreeMap<String, u64>,
    cycles: BTreeMap<String, (u64, u64)>,
    at_s: f64,
    /// Generation it was last seen in, to forget clients that are gone.
    seen: u64,
}

/// Holder discovery and per-client counters: all the state between reads.
#[derive(Debug, Default)]
pub struct Clients {
    proc_root: PathBuf,
    /// pid → its DRM fds (empty: checked, none).
    holders: BTreeMap<u32, Vec<u32>>,
    /// pids whose fds could not be listed (other users), at the last check.
    pub unreadable: usize,
    last_scan_s: Option<f64>,
    /// (pdev, client id, 0) or, without a client id, (pdev, fd, pid).
    state: HashMap<(String, u64, u32), ClientState>,
    generation: u64,
    /// fdinfo files read by the last `read` (for the cost benchmark and tests).
    pub fdinfo_reads: usize,
}

impl Clients {
    pub fn new(proc_root: PathBuf) -> Self {
        Clients {
            proc_root,
            ..Clients::default()
        }
    }

    /// Refresh the holder list: new pids always, every pid every [`RESCAN_S`].
    fn scan(&mut self, now_s: f64) {
        let live = pids(&self.proc_root);
        let full = self.last_scan_s.is_none_or(|t| now_s - t >= RESCAN_S);
        if full {
            self.last_scan_s = Some(now_s);
            self.unreadable = 0;
        }
        let mut next = BTreeMap::new();
        for pid in live {
            match self.holders.remove(&pid) {
                Some(fds) if !full => {
                    next.insert(pid, fds);
                }
                _ => match drm_fds(&self.proc_root, pid) {
                    Ok(fds) => {
                        next.insert(pid, fds);
                    }
                    Err(e) => {
                        if e.kind() == std::io::ErrorKind::PermissionDenied {
                            self.unreadable += 1;
                        }
                        // Tried again at the next full scan, not every tick.
                        next.insert(pid, Vec::new());
                    }
                },
            }
        }
        self.holders = next;
    }

    /// Read every DRM client now (`now_s`: monotonic seconds) and return each process's use per
    /// card. `pdev_of_driver` resolves a client without `drm-pdev` when its driver has one card.
    pub fn read(&mut self, now_s: f64, pdev_of_driver: &dyn Fn(&str) -> Option<String>) -> Vec<ClientUse> {
        self.scan(now_s);
        self.generation += 1;
        let generation = self.generation;
        self.fdinfo_reads = 0;
        // (pid, pdev) → (util sum, any util known, memory)
        let mut per: BTreeMap<(u32, String), (f64, bool, Option<u64>)> = BTreeMap::new();
        let mut dead = Vec::new();
        for (&pid, fds) in &self.holders {
            let mut alive = false;
            for &fd in fds {
                let path = self.proc_root.join(format!("{pid}/fdinfo/{fd}"));
                self.fdinfo_reads += 1;
                let Ok(text) = fs::read_to_string(&path) else {
                    continue; // fd closed or process gone since the scan
                };
                alive = true;
                let Some(info) = parse(&text) else { continue };
                let driver = info.driver.clone().unwrap_or_default();
                let Some(pdev) = info.pdev.clone().or_else(|| pdev_of_driver(&driver)) else {
                    continue;
                };
                // Without a client id every fd is its own client.
                let key = match info.client_id {
                    Some(cid) => (pdev.clone(), cid, 0),
                    None => (pdev.clone(), u64::from(fd), pid),
                };
                let st = self.state.entry(key).or_default();
                if st.seen == generation {
                    continue; // this client was already counted through another fd or process
                }
                let util = if st.seen == 0 {
                    None
                } else {
                    Some(busy_pct(st, &info, now_s))
                };
                hold(st, &info);
                st.at_s = now_s;
                st.seen = generation;
                let e = per.entry((pid, pdev)).or_insert((0.0, false, None));
                if let Some(u) = util {
                    e.0 += u;
                    e.1 = true;
                }
                if let Some(m) = info.mem_bytes {
                    e.2 = Some(e.2.unwrap_or(0) + m);
                }
            }
            if !alive && !fds.is_empty() {
                dead.push(pid);
            }
        }
        for pid in dead {
            self.holders.remove(&pid);
        }
        self.state.retain(|_, s| s.seen == generation);
        per.into_iter()
            .map(|((pid, pdev), (u, known, mem))| ClientUse {
                pid,
                pdev,
                util_pct: known.then_some(u.min(100.0)),
                mem_bytes: mem,
            })
            .collect()
    }

    /// Processes holding a DRM fd at the last scan.
    pub fn holder_count(&self) -> usize {
        self.holders.values().filter(|f| !f.is_empty()).count()
    }
}

/// Percent of the time since the last read that the client kept engines busy (summed over classes).
fn busy_pct(st: &ClientState, info: &FdInfo, now_s: f64) -> f64 {
    let dt_ns = (now_s - st.at_s) * 1e9;
    let mut pct = 0.0;
    if dt_ns > 0.0 {
        for (class, &ns) in &info.engines {
            let prev = st.engines.get(class).copied().unwrap_or(ns);
            let cap = info.capacity.get(class).copied().unwrap_or(1) as f64;
            pct += ns.saturating_sub(prev) as f64 / dt_ns / cap * 100.0;
        }
    }
    for (class, &(c, t)) in &info.cycles {
        let (pc, pt) = st.cycles.get(class).copied().unwrap_or((c, t));
        let dt = t.saturating_sub(pt);
        let cap = info.capacity.get(class).copied().unwrap_or(1);
        if dt > 0 {
            // Cycles add up over the class's engines; the total is the GPU timestamp.
            pct += c.saturating_sub(pc).min(dt.saturating_mul(cap)) as f64 / (dt * cap) as f64 * 100.0;
        }
    }
    pct
}

/// Keep each counter at its maximum: a value that went backwards holds the previous one.
fn hold(st: &mut ClientState, info: &FdInfo) {
    for (class, &ns) in &info.engines {
        let e = st.engines.entry(class.clone()).or_insert(ns);
        *e = (*e).max(ns);
    }
    for (class, &(c, t)) in &info.cycles {
        let e = st.cycles.entry(class.clone()).or_insert((c, t));
        *e = (e.0.max(c), e.1.max(t));
    }
}
