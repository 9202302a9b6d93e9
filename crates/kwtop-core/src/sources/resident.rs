//! Giving back the pages of code and read-only data that only start-up ran (issue 12).
//!
//! Most of the live monitor's resident memory is mapped code, and the kernel maps it 64 KiB at a
//! time around each page touched (fault-around). Start-up runs code the monitor never runs again:
//! argument and config parsing, the search for an NVIDIA library, the CPU model's TDP lookup, the
//! grid tables. Those pages stay mapped, and counted in the monitor's RSS, for the whole session.
//! [`release_startup_pages`], called once start-up is done, unmaps the pages of the program's and
//! its libraries' read-only mappings (`madvise(MADV_DONTNEED)`); what the monitor runs afterwards
//! faults back in from the page cache (minor faults, a few dozen once), what it does not stays
//! out. Nothing is read from disk again: the pages stay in the page cache.
//!
//! Unobservable but for time, because only pages that are still the file's are given back: of
//! private mappings without write permission of the files that have code mapped (the program and
//! its shared libraries), the pages `/proc/self/pagemap` shows as present and the file's, or as
//! neither present nor swapped out. A private copy (a page the loader relocated, a debugger's
//! breakpoint, a uprobe) is kept, and so is any page pagemap cannot vouch for. If the maps or
//! pagemap cannot be read nothing is given back.

use std::fs::File;
use std::os::unix::fs::FileExt;

/// What [`release_startup_pages`] gave back.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Released {
    /// Bytes of mapping advised away, resident or not.
    pub bytes: usize,
    /// Pages kept because they are not the file's (private copies, swapped out).
    pub kept_pages: usize,
}

/// Unmap the file's pages of the loaded objects' read-only mappings (see the module). Call it
/// once start-up has run; the pages needed later come back on their own.
pub fn release_startup_pages() -> Result<Released, String> {
    let maps = std::fs::read_to_string("/proc/self/maps")
        .map_err(|e| format!("cannot read /proc/self/maps: {e}"))?;
    release(&read_only_code_mappings(&maps))
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

/// Advise away the pages of `ranges` (page-aligned, private read-only file mappings) that are
/// the file's. All of pagemap is read first: the code that runs after the first page goes is
/// only this function's loop over the runs, so little of it has to come back.
fn release(ranges: &[(usize, usize)]) -> Result<Released, String> {
    let page = page_size();
    let pagemap =
        File::open("/proc/self/pagemap").map_err(|e| format!("cannot read /proc/self/pagemap: {e}"))?;
    let mut out = Released::default();
    let mut runs = Vec::new();
    let mut entries = Vec::new();
    for &(start, end) in ranges {
        let pages = (end - start) / page;
        entries.clear();
        entries.resize(pages * 8, 0u8);
        pagemap
            .read_exact_at(&mut entries, (start / page * 8) as u64)
            .map_err(|e| format!("cannot read /proc/self/pagemap: {e}"))?;
        // Runs of pages that may go, between those that stay.
        let mut first = None;
        for (i, entry) in entries.chunks_exact(8).map(Some).chain([None]).enumerate() {
            let stays =
                entry.is_some_and(|b| !the_files(u64::from_le_bytes(b.try_into().unwrap_or([0xff; 8]))));
            out.kept_pages += usize::from(stays);
            match (first, entry.is_none() || stays) {
                (Some(f), true) => {
                    runs.push((start + f * page, (i - f) * page));
                    first = None;
                }
                (None, false) => first = Some(i),
                _ => {}
            }
        }
    }
    for (addr, len) in runs {
        advise(addr, len)?;
        out.bytes += len;
    }
    Ok(out)
}

/// `madvise(MADV_DONTNEED)`: the only unsafe code in kwtop (see the module for why it is sound).
#[expect(
    unsafe_code,
    reason = "madvise has no safe wrapper; the pages are the file's (module doc)"
)]
fn advise(addr: usize, len: usize) -> Result<(), String> {
    // SAFETY: `addr..addr + len` is a private read-only file mapping whose pages hold only what
    // the file does (pagemap, just read; nothing in this process writes to them), so they fault
    // back in with the same bytes on the next access.
    let rc = unsafe { libc::madvise(addr as *mut libc::c_void, len, libc::MADV_DONTNEED) };
    if rc == 0 {
        Ok(())
    } else {
        Err(format!("madvise: {}", std::io::Error::last_os_error()))
    }
}

#[cfg(test)]
mod tests;
