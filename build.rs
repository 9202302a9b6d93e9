//! Link-time layout of the release binary, for memory: the live monitor's resident memory is
//! mostly code pages, and the kernel maps code 64 KiB at a time around every page touched.
//!
//! - `build/symbol-order.txt` (made by `scripts/symbol-order.sh` from profiles of the live
//!   monitor) lists the ~1,200 functions it runs; the linker puts them next to each other, so they
//!   fill ~1 MB of pages instead of being spread over 3.9 MB (resident code 3.1 → 1.1 MB).
//! - Packed relative relocations (`-z pack-relative-relocs`, DT_RELR) shrink the table of
//!   pointers the loader fixes up at start from ~250 KB to a few KB; only where the C library
//!   knows them (glibc ≥ 2.36, which says so with its `GLIBC_ABI_DT_RELR` version).
//!
//! Only for release builds of the binary on x86_64 Linux with glibc and Rust's own linker (LLD,
//! the default there since Rust 1.90); a configured linker (`RUSTC_LINKER`, `-C linker`,
//! `-fuse-ld` in RUSTFLAGS) or `KWTOP_PLAIN_LINK=1` leaves the link as it is. Neither changes
//! what the program does, only where its bytes lie.

use std::env;
use std::path::Path;

fn main() {
    println!("cargo::rerun-if-changed=build/symbol-order.txt");
    println!("cargo::rerun-if-env-changed=KWTOP_PLAIN_LINK");
    println!("cargo::rerun-if-env-changed=RUSTC_LINKER");
    let var = |k: &str| env::var(k).unwrap_or_default();
    let rustflags = var("CARGO_ENCODED_RUSTFLAGS");
    let default_lld = var("CARGO_CFG_TARGET_ARCH") == "x86_64"
        && var("CARGO_CFG_TARGET_OS") == "linux"
        && var("CARGO_CFG_TARGET_ENV") == "gnu"
        && env::var_os("RUSTC_LINKER").is_none()
        && !rustflags.contains("linker")
        && !rustflags.contains("fuse-ld");
    if var("PROFILE") != "release" || !default_lld || !var("KWTOP_PLAIN_LINK").is_empty() {
        return;
    }
    let order = Path::new(&var("CARGO_MANIFEST_DIR")).join("build/symbol-order.txt");
    if order.is_file() {
        println!(
            "cargo::rustc-link-arg-bins=-Wl,--symbol-ordering-file={}",
            order.display()
        );
        println!("cargo::rustc-link-arg-bins=-Wl,--no-warn-symbol-ordering");
    }
    if glibc_has_relr() {
        println!("cargo::rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}

/// Whether this machine's glibc (the one the binary links to) supports DT_RELR.
fn glibc_has_relr() -> bool {
    const LIBC: [&str; 4] = [
        "/lib/x86_64-linux-gnu/libc.so.6",
        "/usr/lib/x86_64-linux-gnu/libc.so.6",
        "/lib64/libc.so.6",
        "/usr/lib64/libc.so.6",
    ];
    LIBC.iter().any(|p| {
        std::fs::read(p).is_ok_and(|bytes| {
            bytes
                .windows(b"GLIBC_ABI_DT_RELR".len())
                .any(|w| w == b"GLIBC_ABI_DT_RELR")
        })
    })
}
