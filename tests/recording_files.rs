//! Recording files end to end (issue 12): `kwtop record` compresses by the file name, `report` reads
//! plain, zstd and gzip recordings alike, and a compressed recording cut short still reports what it
//! holds, naming the line where it stops.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufReader, Cursor};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use assert_cmd::cargo::CommandCargoExt;
use kwtop::recording::{Compression, Reader, Writer, WriterOptions, decompressing};
use kwtop::sample::Sample;

fn kwtop(args: &[&str], config: &Path) -> Output {
    let mut c = Command::cargo_bin("kwtop").unwrap();
    c.env_remove("NO_COLOR").args(args).arg("--config").arg(config);
    c.output().unwrap()
}

/// No NVML, no RAPL: the CPU is estimated from load, the processes are this machine's.
fn config(dir: &Path) -> PathBuf {
    let p = dir.join("kwtop.toml");
    let empty = dir.join("no-powercap");
    std::fs::create_dir_all(&empty).unwrap();
    std::fs::write(
        &p,
        format!(
            "[sources]\nnvml = false\npowercap_root = \"{}\"\n",
            empty.display()
        ),
    )
    .unwrap();
    p
}

fn samples_of(bytes: Vec<u8>) -> Vec<Sample> {
    let reader = Reader::new(decompressing(Cursor::new(bytes)).unwrap()).unwrap();
    reader.map(|s| s.unwrap()).collect()
}

fn record(dir: &Path, name: &str, extra: &[&str]) -> PathBuf {
    let path = dir.join(name);
    let p = path.to_str().unwrap();
    let mut args = vec!["record", "--interval", "100ms", "--duration", "700ms", "-o", p];
    args.extend_from_slice(extra);
    let out = kwtop(&args, &config(dir));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    path
}

#[test]
fn record_compresses_by_the_name_and_ends_the_stream_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    for (name, magic) in [
        ("r.jsonl.zst", &[0x28, 0xb5, 0x2f, 0xfd][..]),
        ("r.jsonl.gz", &[0x1f, 0x8b][..]),
    ] {
        let path = record(dir.path(), name, &[]);
        let bytes = std::fs::read(&path).unwrap();
        assert!(bytes.starts_with(magic), "{name}");
        // A finished stream: the plain decoders read it whole, without an error.
        let text = if name.ends_with("zst") {
            zstd::stream::decode_all(&bytes[..]).unwrap()
        } else {
            let mut v = Vec::new();
            std::io::Read::read_to_end(&mut flate2::read::MultiGzDecoder::new(&bytes[..]), &mut v).unwrap();
            v
        };
        let text = String::from_utf8(text).unwrap();
        assert!(
            text.starts_with(r#"{"schema":"kwtop.recording/2""#),
            "{name}: {text}"
        );
        assert!(samples_of(bytes).len() >= 5, "{name}");
    }
    // --full-every 1: no delta samples.
    let path = record(dir.path(), "full.jsonl", &["--full-every", "1"]);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(!text.contains("\"delta\""), "{text}");
    let path = record(dir.path(), "deltas.jsonl", &[]);
    assert!(std::fs::read_to_string(&path).unwrap().contains("\"delta\""));
    let out = kwtop(
        &["record", "-o", "x.jsonl", "--full-every", "0"],
        &config(dir.path()),
    );
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn report_reads_plain_zstd_and_gzip_recordings_alike_and_a_cut_one_up_to_the_cut() {
    let dir = tempfile::tempdir().unwrap();
    let plain = record(dir.path(), "r.jsonl", &[]);
    let f = std::fs::File::open(&plain).unwrap();
    let reader = Reader::new(BufReader::new(f)).unwrap();
    let header = reader.header.clone();
    let samples: Vec<Sample> = reader.map(|s| s.unwrap()).collect();
    let cfg = config(dir.path());
    let report = |p: &Path| kwtop(&["report", "--json", p.to_str().unwrap()], &cfg);
    let want = report(&plain);
    assert!(want.status.success(), "{}", String::from_utf8_lossy(&want.stderr));
    for (name, compression) in [("c.zst", Compression::Zstd), ("c.gz", Compression::Gzip)] {
        let opts = WriterOptions {
            full_every: 3,
            compression,
            redactor: None,
        };
        let mut w = Writer::with_options(Vec::new(), &header, opts).unwrap();
        for s in &samples {
            w.write(s).unwrap();
        }
        let bytes = w.finish().unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, &bytes).unwrap();
        let got = report(&path);
        assert!(got.status.success(), "{}", String::from_utf8_lossy(&got.stderr));
        assert_eq!(
            got.stdout, want.stdout,
            "{name}: the same report as the plain file"
        );

        // Cut in the middle, as `kill -9` or a full disk leaves it.
        let cut = dir.path().join(format!("cut-{name}"));
        std::fs::write(&cut, &bytes[..bytes.len() * 2 / 3]).unwrap();
        let out = report(&cut);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{err}");
        assert!(
            err.contains("recording line ") && err.contains("stream ends or breaks here"),
            "{name}: {err}"
        );
        let input = decompressing(std::fs::File::open(&cut).unwrap()).unwrap();
        let kept: Vec<Sample> = Reader::new(input).unwrap().map_while(Result::ok).collect();
        assert!(
            !kept.is_empty() && kept.len() < samples.len(),
            "{name}: {} samples",
            kept.len()
        );
        assert_eq!(kept[..], samples[..kept.len()], "{name}");
    }
}
