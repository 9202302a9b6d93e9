use super::*;

/// `/proc/self/maps` of a live monitor with the NVIDIA library loaded (addresses shortened), in
/// the kernel's format: the path column starts after padding, and may have spaces or " (deleted)".
const MAPS: &str = "\
55d0c0000000-55d0c00e8000 r--p 00000000 fe:00 1001                       /opt/kw top/kwtop (deleted)
55d0c00e8000-55d0c04b6000 r-xp 000e7000 fe:00 1001                       /opt/kw top/kwtop (deleted)
55d0c04b6000-55d0c04cd000 r--p 004b4000 fe:00 1001                       /opt/kw top/kwtop (deleted)
55d0c04cd000-55d0c04cf000 rw-p 004cb000 fe:00 1001                       /opt/kw top/kwtop (deleted)
55d0c1000000-55d0c1060000 rw-p 00000000 00:00 0                          [heap]
7f0000000000-7f0000026000 r--p 00000000 fe:00 2002                       /usr/lib/x86_64-linux-gnu/libc.so.6
7f0000026000-7f000017c000 r-xp 00026000 fe:00 2002                       /usr/lib/x86_64-linux-gnu/libc.so.6
7f000017c000-7f00001cf000 r--p 0017c000 fe:00 2002                       /usr/lib/x86_64-linux-gnu/libc.so.6
7f00001cf000-7f00001d3000 r--p 001cf000 fe:00 2002                       /usr/lib/x86_64-linux-gnu/libc.so.6
7f00001d3000-7f00001d5000 rw-p 001d3000 fe:00 2002                       /usr/lib/x86_64-linux-gnu/libc.so.6
7f0000200000-7f0000257000 r--p 00000000 fe:00 3003                       /usr/lib/locale/C.utf8/LC_CTYPE
7f0000300000-7f0000307000 r--s 00000000 fe:00 3004                       /usr/lib/x86_64-linux-gnu/gconv/gconv-modules.cache
7f0000400000-7f0000401000 rw-s 00000000 00:06 745                        /dev/nvidiactl
7f0000500000-7f0000501000 r--s 00000000 00:06 746                        /dev/nvidia0
7f0000600000-7f0000604000 r--p 00000000 00:00 0                          [vvar]
7f0000604000-7f0000606000 r-xp 00000000 00:00 0                          [vdso]
7f0000700000-7f0000701000 r--p 00000000 fe:00 2002                       /usr/lib/other/libc.so.6
7ffc00000000-7ffc00021000 rw-p 00000000 00:00 0                          [stack]
garbage line
";

#[test]
fn only_the_read_only_private_mappings_of_loaded_code() {
    assert_eq!(
        read_only_code_mappings(MAPS),
        vec![
            // The program: headers and read-only data, code, relocated read-only data (its
            // pages the loader wrote are private copies: `release` keeps them).
            (0x55d0c0000000, 0x55d0c00e8000),
            (0x55d0c00e8000, 0x55d0c04b6000),
            (0x55d0c04b6000, 0x55d0c04cd000),
            // libc, the same; not its writable data.
            (0x7f0000000000, 0x7f0000026000),
            (0x7f0000026000, 0x7f000017c000),
            (0x7f000017c000, 0x7f00001cf000),
            (0x7f00001cf000, 0x7f00001d3000),
        ],
        "not data files (locale, a file of the same name elsewhere), shared mappings, devices, \
         the vDSO, anonymous memory"
    );
}

#[test]
fn maps_lines_parse() {
    assert_eq!(
        map_line(
            "55d0c00e8000-55d0c04b6000 r-xp 000e7000 fe:00 1001                       /opt/kw top/kwtop (deleted)"
        ),
        Some((
            0x55d0c00e8000,
            0x55d0c04b6000,
            "r-xp",
            1001,
            "/opt/kw top/kwtop (deleted)"
        ))
    );
    assert_eq!(
        map_line("7f0000600000-7f0000604000 r--p 00000000 00:00 0"),
        Some((0x7f0000600000, 0x7f0000604000, "r--p", 0, ""))
    );
    assert_eq!(map_line("garbage line"), None);
    assert_eq!(map_line("zz-10 r--p 0 0 1 /x"), None);
}

#[test]
fn only_pages_that_hold_what_the_file_does_may_go() {
    assert!(the_files(PM_PRESENT | PM_FILE), "present, the file's page");
    assert!(the_files(0), "never touched");
    assert!(!the_files(PM_PRESENT), "a private copy (relocated, a breakpoint)");
    assert!(!the_files(PM_SWAP), "a private copy swapped out");
    assert!(
        !the_files(PM_SWAP | PM_FILE),
        "swapped or migrating: not vouched for"
    );
    assert!(
        !the_files(entries(&[1, 2, 3, 4, 5, 6, 7]).next().unwrap_or(PM_PRESENT)),
        "a short read stays"
    );
}

#[test]
fn runs_stop_at_every_page_that_stays() {
    const F: u64 = PM_PRESENT | PM_FILE;
    const COPY: u64 = PM_PRESENT;
    let of = |e: &[u64]| runs(e.iter().copied());
    assert_eq!(of(&[]), (vec![], 0));
    assert_eq!(of(&[F, F, 0, F]), (vec![(0, 4)], 0), "one run, present or not");
    assert_eq!(of(&[COPY, F, F]), (vec![(1, 2)], 1), "a copy first");
    assert_eq!(of(&[F, F, COPY]), (vec![(0, 2)], 1), "a copy last");
    assert_eq!(
        of(&[F, COPY, PM_SWAP, F]),
        (vec![(0, 1), (3, 1)], 2),
        "two that stay, side by side"
    );
    assert_eq!(of(&[COPY, COPY]), (vec![], 2), "all stay");
    assert_eq!(of(&[F]), (vec![(0, 1)], 0));
}

#[test]
fn thread_count() {
    assert_eq!(threads("Name:\tkwtop\nThreads:\t1\nSigQ:\t0/1\n"), Some(1));
    assert_eq!(threads("Threads:\t12\n"), Some(12));
    assert_eq!(threads("Name:\tkwtop\n"), None);
}

#[test]
fn nothing_goes_while_other_threads_run() {
    // The test harness runs this on a thread of its own, beside the main one.
    let e = release_startup_pages().err().unwrap_or_default();
    assert!(e.contains("threads run"), "{e}");
}

#[test]
fn pagemap_tells_this_code_from_its_relocated_pointers() {
    assert_eq!(Pagemap::open().and_then(|p| p.vouches()), Ok(()));
}
