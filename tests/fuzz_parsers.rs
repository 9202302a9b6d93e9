//! Fuzzing the two parsers that read untrusted files: the config and recordings. 100,000 cases each
//! (mutations of valid inputs plus arbitrary bytes): never a panic, and every error is located.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Cursor;

use kwtop::config;
use kwtop::recording::Reader;
use proptest::prelude::*;

const EXAMPLE: &str = include_str!("../config.example.toml");

const RECORDING: &str = concat!(
    r#"{"schema":"kwtop.recording/1","host":"h","kwtop_version":"t","started_ms":0,"interval_s":1}"#,
    "\n",
    r#"{"t":0,"wall_ms":0,"uptime_s":5.0,"tps":100,"cpu":{"busy":10,"idle":90},"procs":[{"pid":1,"st":2,"ppid":0,"cpu":3,"info":{"comm":"a","cmdline":"a b","user":"u"}}],"devices":[{"id":"cpu0","kind":"cpu","name":"p","energy":{"value_uj":5,"wrap_uj":100}},{"id":"gpu0","kind":"gpu","name":"g","power_w":50.5,"gpu_processes":[{"pid":1,"used_mem_bytes":10,"sm_util_pct":5.0}]}]}"#,
    "\n",
    r#"{"t":1,"wall_ms":1000,"tps":100,"cpu":{"busy":20,"idle":180},"procs":[{"pid":1,"st":2,"ppid":0,"cpu":9}],"devices":[{"id":"cpu0","kind":"cpu","name":"p","energy":{"value_uj":95,"wrap_uj":100}}]}"#,
    "\n"
);

/// Version 2: a full sample, then deltas (ticks, a new process placed inside the list, one gone, a
/// device patch that sets and unsets).
const RECORDING_V2: &str = concat!(
    r#"{"schema":"kwtop.recording/2","host":"h","kwtop_version":"t","started_ms":0,"interval_s":1}"#,
    "\n",
    r#"{"t":0,"wall_ms":0,"uptime_s":5.0,"tps":100,"cpu":{"busy":10,"idle":90},"procs":[{"pid":1,"st":2,"ppid":0,"cpu":3,"info":{"comm":"a","cmdline":"a b","user":"u"}},{"pid":9,"st":4,"ppid":1,"cpu":0,"info":{"comm":"b","user":"u"}}],"devices":[{"id":"cpu0","kind":"cpu","name":"p","energy":{"value_uj":5,"wrap_uj":100}},{"id":"gpu0","kind":"gpu","name":"g","power_w":50.5,"gpu_processes":[{"pid":1,"used_mem_bytes":10,"sm_util_pct":5.0}]}]}"#,
    "\n",
    r#"{"t":1,"wall_ms":1000,"tps":100,"cpu":{"busy":20,"idle":180},"delta":{"ticks":[0,6,1,2],"procs":[{"pid":5,"st":3,"ppid":1,"cpu":1,"info":{"comm":"c","user":"u"},"at":1}],"dev":[{"i":0,"set":{"energy":{"value_uj":95,"wrap_uj":100}}},{"i":1,"set":{"power_w":80.0},"unset":["gpu_processes"]}]}}"#,
    "\n",
    r#"{"t":2,"wall_ms":2000,"tps":100,"cpu":{"busy":30,"idle":270},"delta":{"ticks":[1,4],"gone":[[9,4]],"procs":[{"pid":1,"st":2,"child":7}]}}"#,
    "\n"
);

/// `text` compressed as `kwtop record` compresses it (zstd or gzip).
fn compressed(text: &str, zstd: bool) -> Vec<u8> {
    if zstd {
        zstd::stream::encode_all(text.as_bytes(), 3).unwrap()
    } else {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(text.as_bytes()).unwrap();
        e.finish().unwrap()
    }
}

/// A mutation of `base`: overwrite, insert or delete a few bytes at chosen positions.
fn mutate(base: &[u8], edits: &[(usize, u8, u8)]) -> Vec<u8> {
    let mut v = base.to_vec();
    for (pos, op, byte) in edits {
        if v.is_empty() {
            v.push(*byte);
            continue;
        }
        let p = pos % v.len();
        match op % 3 {
            0 => v[p] = *byte,
            1 => v.insert(p, *byte),
            _ => {
                v.remove(p);
            }
        }
    }
    v
}

fn edits() -> impl Strategy<Value = Vec<(usize, u8, u8)>> {
    proptest::collection::vec((any::<usize>(), any::<u8>(), any::<u8>()), 1..8)
}

fn config_case() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        edits().prop_map(|e| mutate(EXAMPLE.as_bytes(), &e)),
        proptest::collection::vec(any::<u8>(), 0..256),
        "[a-z_]{1,12} = [-0-9a-z\"\\.\\[\\]]{0,10}".prop_map(|s| format!("[impact]\n{s}\n").into_bytes()),
    ]
}

fn recording_case() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        edits().prop_map(|e| mutate(RECORDING.as_bytes(), &e)),
        edits().prop_map(|e| mutate(RECORDING_V2.as_bytes(), &e)),
        (edits(), any::<bool>()).prop_map(|(e, z)| mutate(&compressed(RECORDING_V2, z), &e)),
        proptest::collection::vec(any::<u8>(), 0..256),
    ]
}

#[test]
fn the_seed_recordings_read_whole() {
    for (bytes, n) in [
        (RECORDING.as_bytes().to_vec(), 2),
        (RECORDING_V2.as_bytes().to_vec(), 3),
        (compressed(RECORDING_V2, true), 3),
        (compressed(RECORDING_V2, false), 3),
    ] {
        let input = kwtop::recording::decompressing(Cursor::new(bytes)).unwrap();
        let samples: Vec<_> = Reader::new(input).unwrap().map(|s| s.unwrap()).collect();
        assert_eq!(samples.len(), n);
        if n == 3 {
            let keys: Vec<(u32, u64)> = samples[2]
                .processes
                .iter()
                .map(|p| (p.key.pid, p.cpu_ticks))
                .collect();
            assert_eq!(keys, [(1, 9), (5, 5)], "positions count in the previous sample");
            assert_eq!(samples[2].processes[0].child_ticks, 7);
            assert_eq!(samples[1].devices[1].power_w, Some(80.0));
            assert!(samples[1].devices[1].gpu_processes.is_empty());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 100_000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    #[ignore = "slow: 100,000 cases (about a minute); .ci/run runs it with --include-ignored"]
    fn config_parser_never_panics(bytes in config_case()) {
        let text = String::from_utf8_lossy(&bytes);
        if let Err(e) = config::parse(&text, Some(std::path::Path::new("fuzz.toml"))) {
            let msg = e.to_string();
            prop_assert!(msg.starts_with("config error in fuzz.toml"), "{msg}");
            if let Some(l) = e.line {
                prop_assert!(l >= 1 && l <= text.lines().count().max(1) + 1, "line {l} out of range: {msg}");
            }
        }
    }

    #[test]
    #[ignore = "slow: 100,000 cases (about a minute); .ci/run runs it with --include-ignored"]
    fn recording_reader_never_panics(bytes in recording_case()) {
        // As `report` and `replay` open them: compressed or not, by the first bytes.
        let input = kwtop::recording::decompressing(Cursor::new(bytes)).unwrap();
        if let Ok(reader) = Reader::new(input) {
            let mut engine = kwtop::engine::Engine::new(&kwtop::engine::EngineParams::default());
            for item in reader {
                match item {
                    Ok(s) => {
                        engine.push(s);
                    }
                    Err(e) => prop_assert!(e.line >= 2),
                }
            }
            for d in &engine.ledger.devices {
                prop_assert!(d.energy_j.is_finite() && d.energy_j >= 0.0);
            }
        }
    }
}
