//! `sources::resident` on this test's own process: read-only pages of the program go and come
//! back from the file, a page that is no longer the file's stays. Its own test binary, so no
//! other test touches memory while it looks.

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

/// `/proc/self/pagemap`'s entry for the page at `addr`.
fn pagemap(addr: usize) -> u64 {
    let mut b = [0u8; 8];
    File::open("/proc/self/pagemap")
        .and_then(|f| f.read_exact_at(&mut b, (addr / 4096 * 8) as u64))
        .expect("/proc/self/pagemap");
    u64::from_le_bytes(b)
}

const PRESENT: u64 = 1 << 63;
const FILE: u64 = 1 << 61;

/// The byte at `addr`, read as a debugger does.
fn peek(addr: usize) -> u8 {
    let mut b = [0u8];
    File::open("/proc/self/mem")
        .and_then(|f| f.read_exact_at(&mut b, addr as u64))
        .expect("/proc/self/mem");
    b[0]
}

#[test]
fn read_only_pages_go_and_come_back_and_private_copies_stay() {
    let base = PROBE.0.as_ptr() as usize;
    assert_eq!(base % WINDOW, 0, "the probe is window-aligned");
    let (first, second) = (base, base + WINDOW);
    assert_eq!(std::hint::black_box(&PROBE.0)[7], b'a');
    assert_eq!(
        pagemap(first) & (PRESENT | FILE),
        PRESENT | FILE,
        "read: the file's page, mapped"
    );
    // A debugger setting a breakpoint (or a uprobe) gives the page a private copy.
    OpenOptions::new()
        .write(true)
        .open("/proc/self/mem")
        .and_then(|m| m.write_all_at(b"Z", (second + 7) as u64))
        .expect("writing a read-only page through /proc/self/mem, as a debugger does");
    assert_eq!(pagemap(second) & (PRESENT | FILE), PRESENT, "a private copy");

    let released = release_startup_pages().expect("released");
    assert!(
        released.bytes > 1024 * 1024,
        "{released:?}: the program's code and its libraries'"
    );
    assert!(released.kept_pages >= 1, "{released:?}");
    assert_eq!(pagemap(first) & PRESENT, 0, "the file's page went");
    assert_eq!(
        pagemap(second) & (PRESENT | FILE),
        PRESENT,
        "the private copy stayed"
    );
    assert_eq!(peek(second + 7), b'Z', "with what was written");
    assert_eq!(peek(first + 7), b'a', "the file's page comes back as it was");
    // And the code, which went too, runs.
    assert_eq!(format!("{:>6.2}", std::hint::black_box(2.0f64).sqrt()), "  1.41");
}
