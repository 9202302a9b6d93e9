//! Delta samples and compressed streams: exact round trips, what a delta line holds, bad deltas named
//! by line, and streams cut anywhere.

use std::cell::RefCell;
use std::io::{Cursor, Write};
use std::rc::Rc;

use super::*;
use crate::sample::DeviceKind;
use crate::testing;

pub(super) fn header() -> Header {
    Header {
        schema: SCHEMA_V1.into(),
        host: "node1".into(),
        kwtop_version: "test".into(),
        started_ms: 1_700_000_000_000,
        interval_s: 1.0,
        notes: vec![],
        cmdline: None,
    }
}

pub(super) fn options(full_every: u32, compression: Compression) -> WriterOptions {
    WriterOptions {
        full_every,
        compression,
        redactor: None,
    }
}

pub(super) fn write_with(samples: &[Sample], opts: WriterOptions) -> Vec<u8> {
    let mut w = Writer::with_options(Vec::new(), &header(), opts).expect("header");
    for s in samples {
        w.write(s).expect("write");
    }
    w.finish().expect("finish")
}

/// Read every sample, or the first error.
pub(super) fn read_all(bytes: Vec<u8>) -> Result<Vec<Sample>, RecordingError> {
    let input = decompressing(Cursor::new(bytes)).expect("decompressing");
    Reader::new(input)?.collect()
}

fn lines(bytes: &[u8]) -> Vec<String> {
    String::from_utf8(bytes.to_vec())
        .expect("utf8")
        .lines()
        .map(str::to_string)
        .collect()
}

fn proc(pid: u32, ticks: u64, comm: &str) -> ProcessReading {
    testing::process(pid, 10, ticks)
        .comm(comm)
        .cmdline(format!("/usr/bin/{comm} --x"))
        .user("ana")
        .build()
}

fn at(t: f64, procs: Vec<ProcessReading>) -> Sample {
    let cpu = testing::counter("cpu0", DeviceKind::Cpu, "package-0", (t * 1e6) as u64);
    testing::sample_at(t)
        .cpu((t * 100.0) as u64, 7)
        .procs(procs)
        .devices([cpu])
        .build()
}

#[test]
fn a_delta_line_holds_only_what_changed_and_who_left() {
    let a = at(
        0.0,
        vec![proc(1, 5, "quiet"), proc(2, 5, "busy"), proc(3, 0, "leaves")],
    );
    let b = at(
        1.0,
        vec![proc(1, 5, "quiet"), proc(2, 9, "busy"), proc(4, 0, "arrives")],
    );
    let bytes = write_with(&[a.clone(), b.clone()], WriterOptions::default());
    let l = lines(&bytes);
    assert_eq!(l.len(), 3);
    assert!(l[0].contains(r#""schema":"kwtop.recording/2""#), "{}", l[0]);
    assert!(!l[1].contains("delta") && l[1].contains("quiet"), "{}", l[1]);
    let d = &l[2];
    assert!(d.contains(r#""delta":"#), "{d}");
    // pid 2, position 1 before, gained 4 ticks: its only change, as a (position, ticks gained) pair.
    assert!(d.contains(r#""ticks":[1,4]"#), "only the counter that moved: {d}");
    assert!(
        !d.contains(r#""pid":1,"#) && !d.contains("quiet"),
        "unchanged left out: {d}"
    );
    assert!(d.contains(r#""gone":[[3,10]]"#), "{d}");
    assert!(
        d.contains(r#""pid":4"#) && d.contains("arrives") && d.contains(r#""ppid":1"#),
        "{d}"
    );
    assert!(
        !d.contains(r#""at""#),
        "a new process at the end needs no position: {d}"
    );
    assert!(
        d.contains(r#""dev":[{"i":0,"set":{"energy":{"value_uj":1000000}}}]"#),
        "{d}"
    );
    assert_eq!(read_all(bytes).expect("read"), vec![a, b]);
}

#[test]
fn a_full_sample_comes_first_and_every_full_every_samples() {
    let samples: Vec<Sample> = (0..8).map(|t| at(f64::from(t), vec![proc(1, 0, "a")])).collect();
    let bytes = write_with(&samples, options(3, Compression::None));
    let kinds: Vec<bool> = lines(&bytes)[1..]
        .iter()
        .map(|l| l.contains("\"delta\""))
        .collect();
    assert_eq!(kinds, [false, true, true, false, true, true, false, true]);
    // Full samples carry every process's facts, so reading can start at one.
    assert_eq!(lines(&bytes)[4].matches("/usr/bin/a").count(), 1);
    let every = write_with(&samples, options(1, Compression::None));
    assert!(!String::from_utf8_lossy(&every).contains("delta"));
    assert_eq!(read_all(bytes).expect("read"), samples);
}

#[test]
fn new_processes_inside_the_list_say_where_and_reordered_lists_are_written_full() {
    let a = at(0.0, vec![proc(10, 1, "a"), proc(30, 1, "c")]);
    // pid 20 is new and sits between survivors (a pid reused after the pid counter wrapped).
    let b = at(
        1.0,
        vec![
            proc(10, 1, "a"),
            proc(20, 0, "b"),
            proc(30, 1, "c"),
            proc(40, 0, "d"),
        ],
    );
    // The source listed the same processes in another order: only a full sample says that.
    let c = at(
        2.0,
        vec![
            proc(30, 1, "c"),
            proc(10, 1, "a"),
            proc(20, 0, "b"),
            proc(40, 0, "d"),
        ],
    );
    let bytes = write_with(&[a.clone(), b.clone(), c.clone()], WriterOptions::default());
    let l = lines(&bytes);
    assert!(
        l[2].contains(r#""at":1"#) && !l[2].contains(r#""at":3"#),
        "{}",
        l[2]
    );
    assert!(!l[3].contains("delta"), "{}", l[3]);
    assert_eq!(read_all(bytes).expect("read"), vec![a, b, c]);
}

#[test]
fn a_sample_that_lists_a_process_twice_is_written_full_and_so_is_the_next() {
    // Found by the property below: a delta after such a sample could not say which one changed.
    let a = at(0.0, vec![proc(1, 0, "a"), proc(1, 3, "a")]);
    let b = at(1.0, vec![proc(1, 4, "a")]);
    let c = at(2.0, vec![proc(1, 5, "a")]);
    let bytes = write_with(&[a.clone(), b.clone(), c.clone()], WriterOptions::default());
    let kinds: Vec<bool> = lines(&bytes)[1..]
        .iter()
        .map(|l| l.contains("\"delta\""))
        .collect();
    assert_eq!(kinds, [false, false, true]);
    assert_eq!(read_all(bytes).expect("read"), vec![a, b, c]);
}

#[test]
fn changed_facts_of_a_living_process_are_written_again() {
    // An exec keeps pid and starttime and changes comm and command line.
    let a = at(0.0, vec![proc(1, 0, "bash")]);
    let b = at(1.0, vec![proc(1, 0, "python")]);
    let bytes = write_with(&[a.clone(), b.clone()], WriterOptions::default());
    assert!(lines(&bytes)[2].contains("/usr/bin/python"));
    assert_eq!(read_all(bytes).expect("read"), vec![a, b]);
}

fn delta_header() -> String {
    let h = Header {
        schema: SCHEMA.into(),
        ..header()
    };
    serde_json::to_string(&h).expect("header")
}

#[test]
fn a_delta_before_any_full_sample_is_rejected_naming_the_line() {
    let text = format!(
        "{}\n\n{{\"t\":1.0,\"wall_ms\":1,\"tps\":100,\"delta\":{{\"procs\":[{{\"pid\":1,\"st\":1,\"cpu\":3}}]}}}}\n",
        delta_header()
    );
    let e = read_all(text.into_bytes()).expect_err("delta first");
    assert_eq!(e.line, 3);
    assert!(
        e.to_string().contains("line 3") && e.message.contains("before any full sample"),
        "{e}"
    );
}

#[test]
fn deltas_that_do_not_fit_the_previous_sample_are_rejected() {
    let full = r#"{"t":0.0,"wall_ms":0,"tps":100,"procs":[{"pid":1,"st":1,"ppid":0,"cpu":0}],"devices":[{"id":"cpu0","kind":"cpu","name":"p"}]}"#;
    for (delta, why) in [
        (
            r#"{"gone":[[2,1]]}"#,
            "is gone but was not in the previous sample",
        ),
        (r#"{"procs":[{"pid":5,"st":1,"cpu":1}]}"#, "has no 'ppid'"),
        (
            r#"{"procs":[{"pid":5,"st":1,"ppid":1,"cpu":1,"at":4}]}"#,
            "past the end",
        ),
        (
            r#"{"procs":[{"pid":1,"st":1,"cpu":1,"at":0}]}"#,
            "which is not new",
        ),
        (
            r#"{"procs":[{"pid":1,"st":1,"cpu":1}],"gone":[[1,1]]}"#,
            "both gone and changed",
        ),
        (r#"{"dev":[{"i":1,"set":{"power_w":3.0}}]}"#, "had 1 devices"),
        (
            r#"{"ticks":[1,5]}"#,
            "names position 1, but the previous sample had 1 processes",
        ),
        (r#"{"ticks":[0,5,0,1]}"#, "positions must increase"),
        (r#"{"ticks":[0]}"#, "not pairs"),
        (r#"{"ticks":[0,-1]}"#, "out of range"),
        (r#"{"ticks":[0,1],"gone":[[1,1]]}"#, "both gone and changed"),
        (
            r#"{"ticks":[0,1],"procs":[{"pid":1,"st":1,"ppid":3}]}"#,
            "changed twice",
        ),
        (
            r#"{"dev":[{"i":0,"unset":["kind"]}]}"#,
            "invalid device patch for 'cpu0'",
        ),
        (
            r#"{"dev":[{"i":0,"set":{"id":"gpu9"}}]}"#,
            "renamed 'cpu0' to 'gpu9'",
        ),
    ] {
        let text = format!(
            "{}\n{full}\n{{\"t\":1.0,\"wall_ms\":1,\"tps\":100,\"delta\":{delta}}}\n",
            delta_header()
        );
        let e = read_all(text.into_bytes()).expect_err(why);
        assert_eq!(e.line, 3, "{e}");
        assert!(e.message.contains(why), "{why}: {e}");
    }
    let v1 = format!(
        "{}\n{full}\n{{\"t\":1.0,\"wall_ms\":1,\"tps\":100,\"delta\":{{}}}}\n",
        serde_json::to_string(&header()).expect("header")
    );
    let e = read_all(v1.into_bytes()).expect_err("delta in v1");
    assert!(e.message.contains("kwtop.recording/1"), "{e}");
}

#[test]
fn version_1_recordings_with_facts_written_once_still_read() {
    let text = format!(
        "{}\n{}\n{}\n",
        serde_json::to_string(&header()).expect("header"),
        r#"{"t":0.0,"wall_ms":0,"tps":100,"procs":[{"pid":7,"st":3,"ppid":1,"cpu":5,"info":{"comm":"x","cmdline":"x -y","user":"ana"}}],"devices":[]}"#,
        r#"{"t":1.0,"wall_ms":1000,"tps":100,"procs":[{"pid":7,"st":3,"ppid":1,"cpu":9},{"pid":8,"st":4,"ppid":7,"cpu":0}],"devices":[]}"#,
    );
    let back = read_all(text.into_bytes()).expect("v1");
    assert_eq!(back[1].processes[0].info.cmdline, "x -y");
    assert_eq!(back[1].processes[0].cpu_ticks, 9);
    assert_eq!(back[1].processes[1].info.comm, "pid 8");
    // The fixtures tests/tui_render.rs generates, as version 1 wrote them and as this writer does:
    // the same samples.
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/recordings");
    for f in ["cpu-estimate.jsonl", "gpu-idle-holder.jsonl"] {
        let old = std::fs::read(dir.join("v1").join(f)).expect("v1 fixture");
        let new = std::fs::read(dir.join(f)).expect("fixture");
        assert!(old.starts_with(br#"{"schema":"kwtop.recording/1""#) && lines(&new)[2].contains("delta"));
        assert!(
            new.len() * 2 < old.len(),
            "{f}: {} bytes, {} before",
            new.len(),
            old.len()
        );
        let (old, new) = (read_all(old).expect(f), read_all(new).expect(f));
        assert!(old.len() > 10, "{f}");
        assert_eq!(old, new, "{f}");
    }
}

#[test]
fn compression_follows_the_name_and_reading_follows_the_bytes() {
    use std::path::Path;
    assert_eq!(Compression::for_path(Path::new("a.jsonl.zst")), Compression::Zstd);
    assert_eq!(Compression::for_path(Path::new("a.ZST")), Compression::Zstd);
    assert_eq!(Compression::for_path(Path::new("a.jsonl.gz")), Compression::Gzip);
    assert_eq!(Compression::for_path(Path::new("a.jsonl")), Compression::None);
    assert_eq!(Compression::for_path(Path::new("zst")), Compression::None);
    let samples: Vec<Sample> = (0..5)
        .map(|t| at(f64::from(t), vec![proc(1, t as u64, "a")]))
        .collect();
    for c in [Compression::Zstd, Compression::Gzip] {
        let bytes = write_with(&samples, options(2, c));
        assert_eq!(Compression::sniff(&bytes), c);
        assert!(
            bytes.len() < write_with(&samples, options(2, Compression::None)).len(),
            "{c:?}"
        );
        assert_eq!(read_all(bytes).expect("read"), samples, "{c:?}");
    }
    // Short and empty inputs pass through.
    let mut s = String::new();
    decompressing(Cursor::new(b"ab".to_vec()))
        .expect("short")
        .read_to_string(&mut s)
        .expect("read");
    assert_eq!(s, "ab");
    assert!(Reader::new(decompressing(Cursor::new(Vec::new())).expect("empty")).is_err());
}

use std::io::Read;

/// A reader that hands out one byte per read, as a slow pipe may.
struct Trickle(Cursor<Vec<u8>>);

impl Read for Trickle {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(1);
        self.0.read(&mut buf[..n])
    }
}

#[test]
fn magic_bytes_are_found_in_short_reads_and_a_text_file_starts_whole() {
    use std::io::BufRead;
    let samples: Vec<Sample> = (0..3)
        .map(|t| at(f64::from(t), vec![proc(1, t as u64, "a")]))
        .collect();
    for c in [Compression::None, Compression::Zstd, Compression::Gzip] {
        let bytes = write_with(&samples, options(2, c));
        let input = decompressing(Trickle(Cursor::new(bytes))).expect("decompressing");
        let back: Vec<Sample> = Reader::new(input)
            .expect("header")
            .map(|s| s.expect("sample"))
            .collect();
        assert_eq!(back, samples, "{c:?}");
    }
    // `report` looks at the first buffer to tell a summary from a recording: it holds the first read.
    let text = format!("{{\n  \"schema\": \"kwtop.summary/1\",\n{}}}\n", " ".repeat(5000));
    let mut r = decompressing(Cursor::new(text.clone().into_bytes())).expect("plain");
    assert_eq!(r.fill_buf().expect("fill").len(), text.len());
}

/// A `Write` whose bytes the test can look at while the writer holds it.
#[derive(Clone, Default)]
struct Shared(Rc<RefCell<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.borrow_mut().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Write `samples` and note how many bytes had reached the output after each one.
fn write_noting_offsets(samples: &[Sample], c: Compression) -> (Vec<u8>, Vec<usize>) {
    let out = Shared::default();
    let mut w = Writer::with_options(out.clone(), &header(), options(4, c)).expect("header");
    let mut ends = Vec::new();
    for s in samples {
        w.write(s).expect("write");
        ends.push(out.0.borrow().len());
    }
    // Like `kill -9`: the writer never finishes its frame.
    std::mem::forget(w);
    let bytes = out.0.borrow().clone();
    (bytes, ends)
}

#[test]
fn a_cut_compressed_stream_replays_up_to_the_last_whole_sample() {
    let samples: Vec<Sample> = (0..10)
        .map(|t| {
            let ps = (0..6).map(|p| proc(p, u64::from(p) * t, "w")).collect();
            at(f64::from(t as u32), ps)
        })
        .collect();
    for c in [Compression::None, Compression::Zstd, Compression::Gzip] {
        let (bytes, ends) = write_noting_offsets(&samples, c);
        for cut in 0..=bytes.len() {
            // A plain line is whole without its newline too.
            let slack = usize::from(c == Compression::None);
            let whole = ends.iter().filter(|&&e| e <= cut + slack).count();
            let input = decompressing(Cursor::new(bytes[..cut].to_vec())).expect("decompressing");
            let Ok(reader) = Reader::new(input) else {
                // Cut inside the header (before the first sample's bytes).
                assert!(cut < ends[0], "{c:?} cut at {cut}");
                continue;
            };
            let mut got = Vec::new();
            let mut err = None;
            for item in reader {
                match item {
                    Ok(s) => got.push(s),
                    Err(e) => err = Some(e),
                }
            }
            // Every sample whose bytes were all out is read (a decoder may finish one a few bytes
            // early: a sync flush ends with an empty block), nothing after it, nothing else.
            assert!(
                got.len() == whole || got.len() == whole + 1,
                "{c:?} cut at {cut} of {}: {} samples, {whole} whole: {err:?}",
                bytes.len(),
                got.len()
            );
            assert_eq!(got[..], samples[..got.len()], "{c:?} cut at {cut}");
            match err {
                Some(e) => assert_eq!(e.line, got.len() + 2, "{c:?} cut at {cut}: {e}"),
                None => {
                    // No error only where the cut left a well-formed stream (at a line or frame end).
                    let mut all = Vec::new();
                    let clean = decompressing(Cursor::new(bytes[..cut].to_vec()))
                        .and_then(|mut r| r.read_to_end(&mut all))
                        .is_ok();
                    assert!(
                        clean && all.ends_with(b"\n") || c == Compression::None,
                        "{c:?} cut at {cut}"
                    );
                }
            }
        }
    }
}

#[test]
fn a_finished_compressed_stream_ends_cleanly_and_full_samples_start_frames() {
    let samples: Vec<Sample> = (0..9)
        .map(|t| at(f64::from(t), vec![proc(1, t as u64, "a")]))
        .collect();
    let bytes = write_with(&samples, options(3, Compression::Zstd));
    let frames = bytes
        .windows(4)
        .filter(|w| *w == [0x28, 0xb5, 0x2f, 0xfd])
        .count();
    assert_eq!(frames, 3, "one frame per full sample");
    let gz = write_with(&samples, options(3, Compression::Gzip));
    let members = gz.windows(3).filter(|w| *w == [0x1f, 0x8b, 0x08]).count();
    assert_eq!(members, 3, "one member per full sample");
    // Each frame decodes on its own, from a full sample.
    let second = bytes
        .windows(4)
        .enumerate()
        .filter(|(_, w)| *w == [0x28, 0xb5, 0x2f, 0xfd])
        .nth(1)
        .map(|(i, _)| i)
        .expect("second frame");
    let tail = zstd::stream::decode_all(&bytes[second..]).expect("a frame on its own");
    let first_line = String::from_utf8_lossy(&tail).lines().next().map(str::to_string);
    assert!(first_line.is_some_and(|l| !l.contains("delta") && l.contains("\"t\":3.0")));
}
