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
        proptest::collection::vec(any::<u8>(), 0..256),
    ]
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
        if let Ok(reader) = Reader::new(Cursor::new(bytes)) {
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
