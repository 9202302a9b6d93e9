//! `sources::resident` on this test's own process: read-only pages of the program go and come
//! back from the file, a page that is no longer the file's stays. No test harness: the release
//! happens only in a process with one thread, and no other test touches memory while this looks.

#![allow(clippy::expect_used)]

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;

use kwtop_core::sources::resident::release_startup_pages;

const WINDOW: usize = 64 * 1024;

/// Two 64 KiB windows of read-only data (the kernel maps file pages a window at a time around the
/// one touched, so nothing outside a window brings its pages back).
#[repr(C, align(65536))]
struct Probe([u8; 2 * WINDOW]);

static PROBE: Probe = Probe([b'a'; 2 * WINDOW]);

const PRESENT: u64 = 1 << 63;
const FILE: u64 = 1 << 61;

fn main() {
    // Opened before the release: nothing after it touches other read-only data than the probe's.
    let pagemap = File::open("/proc/self/pagemap").expect("/proc/self/pagemap");
    let mem = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/proc/self/mem")
        .expect("/proc/self/mem");
    let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .and_then(|n| usize::try_from(n).ok())
        .expect("the page size");
    let entry = |addr: usize| {
        let mut b = [0u8; 8];
        pagemap
            .read_exact_at(&mut b, (addr / page * 8) as u64)
            .expect("reading pagemap");
        u64::from_le_bytes(b)
    };
    // Read as a debugger does.
    let peek = |addr: usize| {
        let mut b = [0u8];
        mem.read_exact_at(&mut b, addr as u64)
            .expect("reading /proc/self/mem");
        b[0]
    };

    let base = PROBE.0.as_ptr() as usize;
    assert_eq!(base % WINDOW, 0, "the probe is window-aligned");
    let (first, second) = (base, base + WINDOW);
    assert_eq!(std::hint::black_box(&PROBE.0)[7], b'a');
    assert_eq!(
        entry(first) & (PRESENT | FILE),
        PRESENT | FILE,
        "read: the file's page, mapped"
    );
    // A debugger setting a breakpoint (or a uprobe) gives the page a private copy. Some kernels
    // refuse the write (proc_mem.force_override=never): then that half is said to be untested.
    let copied = match mem.write_all_at(b"Z", (second + 7) as u64) {
        Ok(()) => {
            assert_eq!(entry(second) & (PRESENT | FILE), PRESENT, "a private copy");
            true
        }
        Err(e) => {
            eprintln!("NOT TESTED: a private copy staying (this kernel refuses /proc/self/mem writes: {e})");
            false
        }
    };

    let released = release_startup_pages().expect("released");
    assert!(
        released.bytes > 1024 * 1024,
        "{released:?}: the program's code and its libraries'"
    );
    assert!(
        released.kept_pages >= 1,
        "{released:?}: the relocated pointers at least"
    );
    assert_eq!(released.refused_runs, 0, "{released:?}");
    assert_eq!(entry(first) & PRESENT, 0, "the file's page went");
    if copied {
        assert_eq!(
            entry(second) & (PRESENT | FILE),
            PRESENT,
            "the private copy stayed"
        );
        assert_eq!(peek(second + 7), b'Z', "with what was written");
    }
    assert_eq!(peek(first + 7), b'a', "the file's page comes back as it was");
    // And the code, which went too, runs.
    assert_eq!(format!("{:>6.2}", std::hint::black_box(2.0f64).sqrt()), "  1.41");
    println!("resident: ok ({released:?})");
}
