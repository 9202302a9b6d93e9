//! Deflates the large embedded tables into `OUT_DIR` (`table::inflate` reads them back): a
//! little-endian u32 length, then raw deflate at the best level. The CSV files in `assets/` stay
//! the source, readable and diffable; the binary carries 31 KiB instead of 226 KiB, which matters
//! because every page of a table that is read stays in the live monitor's resident memory.

use std::path::PathBuf;

const TABLES: [&str; 4] = [
    "assets/cpu_tdp.csv",
    "assets/cpu_threads.csv",
    "assets/grid/country.csv",
    "assets/grid/cloud.csv",
];

fn main() {
    // Each lands in OUT_DIR under its file name, so those must differ.
    let names: std::collections::BTreeSet<&str> =
        TABLES.iter().map(|p| p.rsplit('/').next().unwrap_or(p)).collect();
    assert_eq!(
        names.len(),
        TABLES.len(),
        "build.rs: two tables with one file name"
    );
    let Some(out) = std::env::var_os("OUT_DIR").map(PathBuf::from) else {
        panic!("build.rs: cargo sets OUT_DIR");
    };
    for path in TABLES {
        println!("cargo::rerun-if-changed={path}");
        let text = std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let len = u32::try_from(text.len()).unwrap_or_else(|_| panic!("{path}: over 4 GiB"));
        let mut packed = len.to_le_bytes().to_vec();
        packed.extend(miniz_oxide::deflate::compress_to_vec(&text, 10));
        let name = path.rsplit('/').next().unwrap_or(path);
        let dest = out.join(format!("{name}.deflate"));
        std::fs::write(&dest, packed).unwrap_or_else(|e| panic!("{}: {e}", dest.display()));
    }
}
