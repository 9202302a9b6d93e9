//! What an hour of recording costs on disk (issue 12): 400 processes at 1 s on a synthetic GPU node
//! ([`crate::testing::host`]), written as version 1 did, with full samples only, with deltas, and with
//! deltas compressed. The budget is 1 MB an hour for deltas + zstd, so a month fits in under 1 GB.
//! `cargo test -p kwtop-core --lib recording::size_tests -- --nocapture` prints the table.

use std::collections::HashSet;
use std::io::Write;

use super::wire::{FullOut, WireProcess};
use super::*;
use crate::testing::host::{HostShape, SyntheticHost};

/// Counts the bytes written to it.
#[derive(Default)]
struct Count(u64);

impl Write for Count {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn header() -> Header {
    Header {
        schema: SCHEMA.into(),
        host: "gpu-node-17".into(),
        kwtop_version: "0.1.0".into(),
        started_ms: 1_760_000_000_000,
        interval_s: 1.0,
        notes: vec![
            "NVIDIA driver 570.86.15, NVML 12.570.86.15".into(),
            "2 × NVIDIA H100 80GB HBM3".into(),
        ],
        cmdline: None,
    }
}

/// Bytes of the samples as `kwtop.recording/1` wrote them: every process every second, facts the
/// first time a process appears.
fn version_1_bytes(samples: &[Sample]) -> u64 {
    let mut out = serde_json::to_vec(&header()).map_or(0, |v| v.len() as u64 + 1);
    let mut known = HashSet::new();
    for s in samples {
        let line = FullOut {
            t: s.mono_s,
            wall_ms: s.wall_ms,
            uptime_s: s.uptime_s,
            tps: s.ticks_per_s,
            cpu: s.cpu_times,
            procs: s
                .processes
                .iter()
                .map(|p| WireProcess {
                    pid: p.key.pid,
                    st: p.key.starttime,
                    ppid: p.ppid,
                    cpu: p.cpu_ticks,
                    child: p.child_ticks,
                    info: (!known.contains(&p.key)).then(|| (*p.info).clone()),
                })
                .collect(),
            devices: &s.devices,
        };
        out += serde_json::to_vec(&line).map_or(0, |v| v.len() as u64 + 1);
        known = s.processes.iter().map(|p| p.key).collect();
    }
    out
}

fn written_bytes(samples: &[Sample], full_every: u32, compression: Compression) -> u64 {
    let opts = WriterOptions {
        full_every,
        compression,
        redactor: None,
    };
    let mut w = Writer::with_options(Count::default(), &header(), opts).expect("header");
    for s in samples {
        w.write(s).expect("write");
    }
    w.finish().expect("finish").0
}

#[test]
fn issue_12_an_hour_of_400_processes_with_deltas_and_zstd_fits_in_a_megabyte() {
    let mut host = SyntheticHost::new(HostShape::default());
    let samples: Vec<Sample> = (0..3600).map(|_| host.next_sample()).collect();
    let procs = samples.iter().map(|s| s.processes.len()).sum::<usize>() / samples.len();
    let v1 = version_1_bytes(&samples);
    let delta = written_bytes(&samples, DEFAULT_FULL_EVERY, Compression::None);
    let zst = written_bytes(&samples, DEFAULT_FULL_EVERY, Compression::Zstd);
    let gz = written_bytes(&samples, DEFAULT_FULL_EVERY, Compression::Gzip);
    println!("one hour at 1 s, {procs} processes on average:");
    for (what, bytes) in [
        ("version 1 (every process every second)", v1),
        ("deltas, a full sample every 60", delta),
        ("deltas + zstd (.zst)", zst),
        ("deltas + gzip (.gz)", gz),
    ] {
        println!(
            "  {what:<40} {bytes:>10} bytes/hour {:>8.1} bytes/sample {:>8.1} MB/30 days",
            bytes as f64 / 3600.0,
            bytes as f64 * 24.0 * 30.0 / 1e6
        );
    }
    assert!(
        zst <= 1_000_000,
        "deltas + zstd take {zst} bytes an hour, over the 1 MB budget"
    );
    assert!(
        zst < delta && gz < delta && delta < v1 / 5,
        "{v1} {delta} {zst} {gz}"
    );
    // And the small file holds every sample exactly.
    let mut w = Writer::with_options(
        Vec::new(),
        &header(),
        WriterOptions {
            compression: Compression::Zstd,
            ..WriterOptions::default()
        },
    )
    .expect("header");
    for s in &samples {
        w.write(s).expect("write");
    }
    let bytes = w.finish().expect("finish");
    let reader = Reader::new(decompressing(std::io::Cursor::new(bytes)).expect("zstd")).expect("header");
    let mut n = 0;
    for (got, want) in reader.zip(&samples) {
        assert_eq!(&got.expect("sample"), want, "sample {n}");
        n += 1;
    }
    assert_eq!(n, samples.len());
}
