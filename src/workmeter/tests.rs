#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The meter on a scripted pipeline: a real log in a temp dir (appends, a partial line,
//! copytruncate, rotation), a real HTTP server on loopback (a token counter that grows, then stops
//! answering), the writers of the log found in the real /proc.

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::*;
use crate::engine::EngineParams;
use crate::pipeline::{Pipeline, Tick};
use crate::sample::DeviceKind;
use crate::testing::{counter, process, sample_at};

/// A 10 W package; pid `worker` gets 3 of 5 busy ticks (6 W), pid 20 the rest.
fn sample(t: u64, worker: u32) -> crate::sample::Sample {
    sample_at(t as f64)
        .cpu(500 * t, 0)
        .procs([
            process(worker, 3, 300 * t).build(),
            process(20, 5, 200 * t).build(),
        ])
        .devices([counter(
            "cpu0",
            DeviceKind::Cpu,
            "pkg",
            1_000_000 + t * 10_000_000,
        )])
        .build()
}

struct Rig {
    pipeline: Pipeline,
    meter: WorkMeter,
    worker: u32,
    t: u64,
}

impl Rig {
    fn new(spec: &WorkSpec, worker: u32) -> Rig {
        let meter = WorkMeter::start(
            spec,
            Path::new("/proc"),
            ImpactParams::default(),
            Duration::from_secs(2),
        )
        .unwrap();
        Rig {
            pipeline: Pipeline::new(&EngineParams::default()),
            meter,
            worker,
            t: 0,
        }
    }

    /// One more second; returns the meter's message, if any.
    fn step(&mut self) -> Option<String> {
        let tick = Tick {
            sample: sample(self.t, self.worker),
            notices: Vec::new(),
        };
        self.t += 1;
        self.pipeline
            .push(tick, &mut [&mut self.meter])
            .errors
            .into_iter()
            .next()
    }

    fn view(&self) -> WorkView {
        self.meter.board().get().unwrap()
    }
}

fn append(path: &Path, text: &str) {
    let mut f = OpenOptions::new().create(true).append(true).open(path).unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

fn log_spec(path: &Path, pattern: Option<&str>, pid: Option<u32>) -> WorkSpec {
    WorkSpec {
        input: WorkInput::Log {
            path: path.to_path_buf(),
            progress: pattern.map(|p| ProgressPattern::new(p).unwrap()),
        },
        unit: Some("step".into()),
        pid,
    }
}

#[test]
fn a_log_is_followed_through_appends_truncation_and_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("train.log");
    // The count the log had reached before kwtop started is the baseline, not this session's work.
    std::fs::write(&log, "step 1\nstep 2\nloss 0.3\nstep 500\n").unwrap();
    // This test process writes the log: found in the real /proc, its tree is the scope.
    let _writer = OpenOptions::new().append(true).open(&log).unwrap();
    let me = std::process::id();
    let mut rig = Rig::new(&log_spec(&log, Some(r"step (\d+)"), None), me);
    assert_eq!(rig.step(), None);
    let v = rig.view();
    assert_eq!((v.figures.units, v.figures.reported), (0, 500));
    assert_eq!(v.figures.scope, format!("writers of train.log ({me})"));
    assert_eq!(v.figures.scope_kind, "writers");

    append(&log, "step 501\nstep 502\n");
    rig.step();
    assert_eq!(rig.view().figures.units, 2);
    // A partial line waits for its end.
    append(&log, "step 50");
    rig.step();
    assert_eq!(rig.view().figures.units, 2);
    append(&log, "3\n");
    rig.step();
    assert_eq!(rig.view().figures.units, 3);

    // copytruncate: emptied in place, then written on.
    OpenOptions::new()
        .write(true)
        .open(&log)
        .unwrap()
        .set_len(0)
        .unwrap();
    append(&log, "step 504\n");
    rig.step();
    assert_eq!(rig.view().figures.units, 4);

    // Rotation: renamed away; the writer appends to the old file until it reopens the path.
    let old = dir.path().join("train.log.1");
    std::fs::rename(&log, &old).unwrap();
    append(&old, "step 505\n");
    rig.step();
    assert_eq!(rig.view().figures.units, 5, "the renamed file is still read");
    append(&old, "step 506");
    std::fs::write(&log, "step 507\n").unwrap();
    rig.step();
    let f = rig.view().figures;
    assert_eq!(f.units, 7, "the rest of the old file, then the new one");
    assert_eq!(f.resets, 0);

    // 6 W for the 6 intervals after counting started: 36 J for 7 steps.
    assert!((f.energy_j - 36.0).abs() < 1e-6, "{}", f.energy_j);
    let s = f.session.unwrap();
    assert!((s.j_per_unit.unwrap() - 36.0 / 7.0).abs() < 1e-6);
    assert_eq!(s.span_s, 6.0);
    assert!(!f.estimated && f.gap.is_none());
    assert!(rig.view().notes.is_empty(), "{:?}", rig.view().notes);
}

#[test]
fn a_log_created_later_is_read_from_its_start_and_the_work_file_format_names_the_unit() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("work");
    let mut spec = log_spec(&log, None, Some(4242));
    spec.unit = None;
    let mut rig = Rig::new(&spec, 4242);
    rig.step();
    let v = rig.view();
    assert_eq!(v.figures.scope, "tree of 4242");
    assert!(
        v.notes.iter().any(|n| n.contains("does not exist")),
        "{:?}",
        v.notes
    );
    assert_eq!(v.figures.unit, "unit");
    append(&log, "100 tokens\n+28\nnot a count\n");
    rig.step();
    let v = rig.view();
    assert_eq!((v.figures.units, v.figures.unit.as_str()), (128, "token"));
    assert!(
        v.notes.iter().any(|n| n.contains("'not a count'")),
        "{:?}",
        v.notes
    );
    assert!((v.figures.session.unwrap().j_per_unit.unwrap() - 6.0 / 128.0).abs() < 1e-9);
}

#[test]
fn without_writers_the_whole_machine_is_the_scope_until_one_appears() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("train.log");
    std::fs::write(&log, "").unwrap();
    let me = std::process::id();
    let mut rig = Rig::new(&log_spec(&log, Some(r"step (\d+)"), None), me);
    rig.step();
    assert_eq!(rig.view().figures.scope, "whole machine");
    append(&log, "step 1\n");
    rig.step();
    let f = rig.view().figures;
    assert_eq!(
        (f.units, f.energy_j),
        (1, 10.0),
        "every joule of the package, idle included"
    );
    // A writer opens it; the next look-up (RESCAN_S later) finds it.
    let _writer = OpenOptions::new().append(true).open(&log).unwrap();
    let mut msg = None;
    for _ in 0..RESCAN_S as u64 {
        msg = msg.or(rig.step());
    }
    let msg = msg.expect("the scope change is said");
    assert!(
        msg.contains("writers of train.log") && msg.contains("start again"),
        "{msg}"
    );
    let f = rig.view().figures;
    assert_eq!(f.scope_kind, "writers");
    assert_eq!(f.units, 0, "the count so far is the new baseline");
}

/// A loopback server whose page has a token counter that grows by 10 at each GET.
struct TokenServer {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TokenServer {
    fn start(port: u16, tokens: Arc<AtomicU64>) -> TokenServer {
        let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let s2 = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            while !s2.load(Ordering::SeqCst) {
                let Ok((mut conn, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(2));
                    continue;
                };
                conn.set_nonblocking(false).unwrap();
                conn.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                let mut req = Vec::new();
                let mut buf = [0u8; 1024];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                let n = tokens.fetch_add(10, Ordering::SeqCst) + 10;
                let page = format!(
                    "# HELP vllm:generation_tokens_total Number of generation tokens processed.\n\
                     # TYPE vllm:generation_tokens_total counter\n\
                     vllm:generation_tokens_total{{model_name=\"m\"}} {n}.0\n"
                );
                let _ = write!(
                    conn,
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\n\
                     Connection: close\r\n\r\n{page}",
                    page.len()
                );
            }
        });
        TokenServer {
            port,
            stop,
            thread: Some(thread),
        }
    }

    /// Stop answering: the port is closed (connections are refused).
    fn stop(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.take().unwrap().join().unwrap();
    }
}

/// Step the rig until `done(view, message)`, at most 20 s.
fn step_until(rig: &mut Rig, mut done: impl FnMut(&WorkView, Option<&str>) -> bool) -> WorkView {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let msg = rig.step();
        let v = rig.view();
        if done(&v, msg.as_deref()) {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out at {v:?}");
        // Real time: the answer comes back from the reader thread.
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_token_counter_on_a_local_server_is_counted_and_a_stopped_server_is_a_gap() {
    let tokens = Arc::new(AtomicU64::new(5000));
    let server = TokenServer::start(0, Arc::clone(&tokens));
    let port = server.port;
    let url = format!("http://127.0.0.1:{port}/metrics#vllm:generation_tokens_total");
    let spec = WorkSpec {
        input: WorkInput::Metric(parse_metric_url(&url).unwrap()),
        unit: None,
        pid: Some(4242),
    };
    let mut rig = Rig::new(&spec, 4242);
    let v = step_until(&mut rig, |v, _| v.figures.units >= 30);
    assert_eq!(v.figures.unit, "token");
    assert!(v.figures.reported > 5000, "the counter at start is the baseline");
    let j = v.figures.session.unwrap().j_per_unit.unwrap();
    assert!(j > 0.0 && (j - v.figures.energy_j / v.figures.units as f64).abs() < 1e-9);
    let counted = v.figures.units;

    server.stop();
    let mut said = String::new();
    let gap = step_until(&mut rig, |v, m| {
        if let Some(m) = m {
            said = m.to_string();
        }
        v.figures.gap.is_some()
    });
    assert!(
        said.contains("did not answer") && said.contains("no units counted"),
        "{said}"
    );
    assert_eq!(gap.figures.units, counted, "a gap, not a zero");
    assert!(gap.figures.session.unwrap().j_per_unit.is_some());

    // Back on the same port, its counter having gone on meanwhile: the gap's tokens count.
    tokens.fetch_add(1000, Ordering::SeqCst);
    let server = TokenServer::start(port, Arc::clone(&tokens));
    let mut back = String::new();
    let v = step_until(&mut rig, |v, m| {
        if let Some(m) = m {
            back = m.to_string();
        }
        v.figures.gap.is_none()
    });
    assert!(back.contains("answers again"), "{back}");
    assert!(
        v.figures.units >= counted + 1000,
        "{} after {counted}",
        v.figures.units
    );
    server.stop();
}

#[test]
fn units_from_metric_names() {
    assert_eq!(unit_of_metric("vllm:generation_tokens_total"), "token");
    assert_eq!(unit_of_metric("tgi_request_count"), "count");
    assert_eq!(unit_of_metric("images_total"), "image");
    assert_eq!(unit_of_metric("x_2"), "unit");
}
