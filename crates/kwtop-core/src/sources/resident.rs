//! Giving back the pages of code and read-only data that only start-up ran (issue 12).
//!
//! Most of the live monitor's resident memory is mapped code, and the kernel maps it 64 KiB at a
//! time around each page touched (fault-around). Start-up runs code the monitor never runs again:
//! argument and config parsing, the search for an NVIDIA library, the CPU model's TDP lookup, the
//! grid tables. Those pages stay mapped, and counted in the monitor's RSS, for the whole session.
//! [`release_startup_pages`], called once start-up is done, unmaps the pages of the program's and
//! its libraries' read-only mappings (`madvise(MADV_DONTNEED)`); what the monitor runs afterwards
//! faults back in from the page cache (minor faults, a few dozen once), what it does not stays
//! out. The pages stay in the page cache as any file's do (under memory pressure the kernel may
//! evict them, and a later use reads them again).
//!
//! Unobservable but for time, because only pages that are still the file's are given back: of
//! private mappings without write permission of the files that have code mapped (the program and
//! its shared libraries), the pages `/proc/self/pagemap` shows as present and the file's, or as
//! neither present nor swapped out. A private copy (a page the loader relocated, a breakpoint or
//! uprobe set before the release) is kept, and so is any page pagemap cannot vouch for. Nothing is
//! given back
//! - unless this is the process's only thread: another one could load a library meanwhile (a user
//!   name lookup loads NSS modules), and the loader maps a new library's future data read-only
//!   for a moment before relocating it, which madvise would then undo;
//! - unless pagemap tells the program's code (the file's) from its relocated pointers (private
//!   copies): an emulator or sandbox that fakes it would otherwise have those dropped;
//! - if the maps or pagemap cannot be read.

use std::fs::File;
use std::os::unix::fs::FileExt;

/// What [`release_startup_pages`] gave back.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Released {
    /// Bytes of mapping advised away, resident or not.
    pub bytes: usize,
    /// Pages kept because they are not the file's (private copies, swapped out).
    pub kept_pages: usize,
    /// Runs of pages the kernel would not drop (a locked mapping, say), left as they were.
    pub refused_runs: usize,
}

/// Unmap the file's pages of the loaded objects' read-only mappings (see the module). Call it
/// once start-up has run, before any other thread starts; the pages needed later come back on
/// their own.
pub fn release_startup_pages() -> Result<Released, String> {
    let status = std::fs::read_to_string("/proc/self/status")
        .map_err(|e| format!("cannot read /proc/self/status: {e}"))?;
    match threads(&status) {
        Some(1) => {}
        Some(n) => {
            return Err(format!(
                "not given back: {n} threads run (one could load a library meanwhile)"
            ));
        }
        None => return Err("not given back: /proc/self/status has no thread count".into()),
    }
    let maps = std::fs::read_to_string("/proc/self/maps")
        .map_err(|e| format!("cannot read /proc/self/maps: {e}"))?;
    let pagemap = Pagemap::open()?;
    pagemap.vouches()?;
    release(&pagemap, &read_only_code_mappings(&maps))
}

/// `Threads:` of `/proc/PID/status`.
fn threads(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
}

/// One line of `/proc/PID/maps`: `(start, end, perms, inode, path)`.
fn map_line(line: &str) -> Option<(usize, usize, &str, u64, &str)> {
    let mut f = line.splitn(6, ' ');
    let (range, perms, _offset, _dev, inode) = (f.next()?, f.next()?, f.next()?, f.next()?, f.next()?);
    let path = f.next().unwrap_or("").trim_start();
    let (s, e) = range.split_once('-')?;
    let (s, e) = (
        usize::from_str_radix(s, 16).ok()?,
        usize::from_str_radix(e, 16).ok()?,
    );
    Some((s, e, perms, inode.parse().ok()?, path))
}

/// The `[start, end)` ranges of `maps` (`/proc/self/maps`) that are private, not writable, and of
/// a file that also has an executable mapping (a loaded program or library; not a device, not
/// the vDSO, not a data file).
fn read_only_code_mappings(maps: &str) -> Vec<(usize, usize)> {
    let lines: Vec<_> = maps.lines().filter_map(map_line).collect();
    let code = |inode: u64, path: &str| {
        lines
            .iter()
            .any(|&(_, _, p, i, f)| i == inode && f == path && p.as_bytes().get(2) == Some(&b'x'))
    };
    lines
        .iter()
        .filter(|&&(s, e, p, inode, path)| {
            let p = p.as_bytes();
            s < e
                && inode != 0
                && path.starts_with('/')
                && p.len() == 4
                && p[1] != b'w'
                && p[3] == b'p'
                && code(inode, path)
        })
        .map(|&(s, e, ..)| (s, e))
        .collect()
}

fn page_size() -> usize {
    nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .and_then(|n| usize::try_from(n).ok())
        .filter(|&n| n > 0)
        .unwrap_or(4096)
}

/// pagemap: the page is present.
const PM_PRESENT: u64 = 1 << 63;
/// pagemap: the page is swapped out (or migrating).
const PM_SWAP: u64 = 1 << 62;
/// pagemap: the page is the file's (or shared anonymous), not a private copy.
const PM_FILE: u64 = 1 << 61;

/// Whether a page with this pagemap entry holds nothing but what its file does.
fn the_files(entry: u64) -> bool {
    if entry & PM_PRESENT != 0 {
        entry & PM_FILE != 0
    } else {
        entry & PM_SWAP == 0
    }
}

/// A pointer the loader relocates at start: its page is a private copy of the file's.
static RELOCATED: &u8 = &7;

/// `/proc/self/pagemap`.
struct Pagemap {
    file: File,
    page: usize,
}

impl Pagemap {
    fn open() -> Result<Pagemap, String> {
        let file =
            File::open("/proc/self/pagemap").map_err(|e| format!("cannot read /proc/self/pagemap: {e}"))?;
        Ok(Pagemap {
            file,
            page: page_size(),
        })
    }

    /// The entries of the pages of `start..end` (page-aligned), 8 bytes each, into `out`.
    fn read(&self, start: usize, end: usize, out: &mut Vec<u8>) -> Result<(), String> {
        out.clear();
        out.resize((end - start) / self.page * 8, 0);
        self.file
            .read_exact_at(out, (start / self.page * 8) as u64)
            .map_err(|e| format!("cannot read /proc/self/pagemap: {e}"))
    }

    fn entry(&self, addr: usize) -> Result<u64, String> {
        let start = addr / self.page * self.page;
        let mut b = Vec::with_capacity(8);
        self.read(start, start + self.page, &mut b)?;
        Ok(entries(&b).next().unwrap_or(0))
    }

    /// Whether pagemap tells a page of the file (this code) from a private copy (a relocated
    /// pointer), as a kernel does and a stub would not.
    fn vouches(&self) -> Result<(), String> {
        let code = self.entry(release_startup_pages as fn() -> Result<Released, String> as usize)?;
        let relocated = std::hint::black_box(&RELOCATED);
        let copy = self.entry(std::ptr::from_ref(relocated) as usize)?;
        if code & (PM_PRESENT | PM_FILE) == PM_PRESENT | PM_FILE
            && copy & (PM_PRESENT | PM_FILE | PM_SWAP) == PM_PRESENT
            && **relocated == 7
        {
            Ok(())
        } else {
            Err(format!(
                "not given back: pagemap does not tell the file's pages from copies (code {code:#x}, relocated {copy:#x})"
            ))
        }
    }
}

/// The entries of a pagemap read.
fn entries(bytes: &[u8]) -> impl Iterator<Item = u64> + '_ {
    bytes
        .chunks_exact(8)
        .map(|b| b.try_into().map_or(PM_PRESENT, u64::from_le_bytes))
}

/// The runs of pages that may go, as `(first page, pages)`, and how many pages stay.
fn runs(entries: impl Iterator<Item = u64>) -> (Vec<(usize, usize)>, usize) {
    let (mut out, mut kept, mut first) = (Vec::new(), 0, None);
    let mut n = 0;
    for (i, e) in entries.enumerate() {
        n = i + 1;
        let goes = the_files(e);
        match (first, goes) {
            (None, true) => first = Some(i),
            (Some(f), false) => {
                out.push((f, i - f));
                first = None;
            }
            _ => {}
        }
        kept += usize::from(!goes);
    }
    if let Some(f) = first {
        out.push((f, n - f));
    }
    (out, kept)
}

/// Advise away the pages of `ranges` (page-aligned, private read-only file mappings) that are
/// the file's. All of pagemap is read first: the code that runs after the first page goes is
/// only this function's loop over the runs, so little of it has to come back.
fn release(pagemap: &Pagemap, ranges: &[(usize, usize)]) -> Result<Released, String> {
    let page = pagemap.page;
    let mut out = Released::default();
    let mut all = Vec::new();
    let mut bytes = Vec::new();
    for &(start, end) in ranges {
        pagemap.read(start, end, &mut bytes)?;
        let (runs, kept) = runs(entries(&bytes));
        out.kept_pages += kept;
        all.extend(runs.into_iter().map(|(f, n)| (start + f * page, n * page)));
    }
    for (addr, len) in all {
        if advise(addr, len) {
            out.bytes += len;
        } else {
            out.refused_runs += 1;
        }
    }
    Ok(out)
}

/// `madvise(MADV_DONTNEED)`, whether the kernel did it: the only unsafe code in kwtop (see the
/// module for why it is sound).
#[expect(
    unsafe_code,
    reason = "madvise has no safe wrapper; the pages are the file's (module doc)"
)]
fn advise(addr: usize, len: usize) -> bool {
    // SAFETY: `addr..addr + len` is a private read-only file mapping whose pages hold only what
    // the file does (pagemap, just read; this is the only thread, and nothing writes to them), so
    // they fault back in with the same bytes on the next access.
    unsafe { libc::madvise(addr as *mut libc::c_void, len, libc::MADV_DONTNEED) == 0 }
}

#[cfg(test)]
mod tests;
