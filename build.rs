//! Link-time layout of the release binary, for memory: the live monitor's resident memory is
//! mostly code pages, and the kernel maps code 64 KiB at a time around every page touched.
//!
//! - `build/symbol-order.txt` (made by `scripts/symbol-order.sh` from profiles of the live
//!   monitor) lists the ~1,400 functions it runs: those the running screen needs first (a run
//!   without a config file or GPU, then what a config file and GPUs add), then those of the keys,
//!   the exit and start-up, whose pages the monitor gives back once it runs
//!   (`kwtop_core::sources::resident`). The linker puts them next to each other in that order,
//!   so the code a session keeps fills ~0.85 MB of pages instead of being spread over 3.9 MB.
//!   LTO's renumbered local copies (`name.N`) are listed around the profiled number as well.
//! - Packed relative relocations (`-z pack-relative-relocs`, DT_RELR) shrink the table of
//!   pointers the loader fixes up at start from ~250 KB to a few KB. Only where this machine's
//!   glibc has them (≥ 2.36, which says so with its `GLIBC_ABI_DT_RELR` version): the binary then
//!   needs glibc ≥ 2.36 where it runs. To build for older systems elsewhere, set `KWTOP_NO_RELR=1`.
//!
//! Only for release builds of the binary on Linux with glibc, and only what a test link of an
//! empty program with the same compiler, target and flags accepts (GNU ld, for one, has no
//! symbol ordering). `KWTOP_PLAIN_LINK=1` leaves the link as it is. Neither changes what the
//! program does, only where its bytes lie.

use std::env;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn main() {
    println!("cargo::rerun-if-changed=build/symbol-order.txt");
    for var in ["KWTOP_PLAIN_LINK", "KWTOP_NO_RELR", "RUSTC_LINKER"] {
        println!("cargo::rerun-if-env-changed={var}");
    }
    let var = |k: &str| env::var(k).unwrap_or_default();
    let wanted = var("PROFILE") == "release"
        && var("CARGO_CFG_TARGET_OS") == "linux"
        && var("CARGO_CFG_TARGET_ENV") == "gnu"
        && var("KWTOP_PLAIN_LINK").is_empty();
    if !wanted {
        return;
    }
    let listed = Path::new(&var("CARGO_MANIFEST_DIR")).join("build/symbol-order.txt");
    let mut sets: Vec<Vec<String>> = Vec::new();
    if let Some(order) = with_renumbered_copies(&listed, &Path::new(&var("OUT_DIR")).join("symbol-order.txt"))
    {
        // `-Xlinker` pairs: a comma in the path would split a `-Wl,` argument.
        sets.push(vec![
            "-Xlinker".into(),
            format!("--symbol-ordering-file={}", order.display()),
            "-Xlinker".into(),
            "--no-warn-symbol-ordering".into(),
        ]);
    }
    if var("KWTOP_NO_RELR").is_empty() && glibc_has_relr() {
        sets.push(vec![
            "-Xlinker".into(),
            "-z".into(),
            "-Xlinker".into(),
            "pack-relative-relocs".into(),
        ]);
    }
    for args in sets {
        if links_with(&args) {
            for a in args {
                println!("cargo::rustc-link-arg-bins={a}");
            }
        }
    }
}

/// How far the number LTO appends to a renamed local copy of a function (`name.1202`) is looked
/// for around the profiled one.
const RENUMBERED: u32 = 300;

/// `listed` written to `out` with, for each name LTO renumbered (`name.N`: a local copy, numbered
/// by a counter that any change to the program shifts), the same name numbered `N - RENUMBERED`
/// to `N + RENUMBERED`: those are copies of the same function, and the linker skips the numbers
/// the binary does not have. Without this, the hottest of them (grapheme and width functions the
/// screen runs for every cell) left the list as soon as the code changed, and their 64 KiB
/// windows were resident on top of the ordered code's. `None` when there is no list.
fn with_renumbered_copies(listed: &Path, out: &Path) -> Option<PathBuf> {
    let text = std::fs::read_to_string(listed).ok()?;
    let mut expanded = String::with_capacity(text.len() * 2);
    for line in text.lines() {
        expanded.push_str(line);
        expanded.push('\n');
        let Some((name, n)) = line.rsplit_once('.') else {
            continue;
        };
        let Ok(n) = n.parse::<u32>() else { continue };
        // Rust's mangled names only (a C `static` could share a base name with an unrelated
        // function); `.llvm.N` is a hash, not a counter.
        let rust = name.starts_with("_R") || (name.starts_with("_ZN") && name.ends_with('E'));
        if !rust || name.ends_with(".llvm") {
            continue;
        }
        for k in n.saturating_sub(RENUMBERED)..=n.saturating_add(RENUMBERED) {
            if k != n {
                let _ = writeln!(expanded, "{name}.{k}");
            }
        }
    }
    std::fs::write(out, expanded).ok()?;
    Some(out.to_path_buf())
}

/// Whether an empty program links with these extra linker arguments, with the compiler, target,
/// linker and flags this build uses.
fn links_with(args: &[String]) -> bool {
    let var = |k: &str| env::var(k).unwrap_or_default();
    let out = PathBuf::from(var("OUT_DIR"));
    let src = out.join("link_probe.rs");
    if std::fs::write(&src, "fn main() {}\n").is_err() {
        return false;
    }
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let mut cmd = Command::new(rustc);
    cmd.arg("--crate-type=bin")
        .arg("--target")
        .arg(var("TARGET"))
        .arg("-o")
        .arg(out.join("link_probe"))
        .arg(&src);
    let flags = var("CARGO_ENCODED_RUSTFLAGS");
    cmd.args(flags.split('\x1f').filter(|f| !f.is_empty()));
    if let Ok(linker) = env::var("RUSTC_LINKER") {
        cmd.arg(format!("-Clinker={linker}"));
    }
    for a in args {
        cmd.arg(format!("-Clink-arg={a}"));
    }
    cmd.stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
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
