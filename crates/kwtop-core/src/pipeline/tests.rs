#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::cell::Cell;

use super::*;
use crate::sample::DeviceKind;
use crate::testing::{counter, process, sample_at};

/// A CPU package at `watts` and one busy process, `n` samples one second apart.
fn samples(n: usize, watts: f64) -> Vec<Sample> {
    (0..n)
        .map(|i| {
            let t = i as f64;
            sample_at(t)
                .cpu(100 * i as u64, 100 * i as u64)
                .procs([process(42, 1, 50 * i as u64).comm("busy").build()])
                .devices([counter("cpu0", DeviceKind::Cpu, "pkg", (t * watts * 1e6) as u64)])
                .build()
        })
        .collect()
}

/// Remembers what it was shown.
#[derive(Default)]
struct Log {
    seqs: Vec<u64>,
    intervals: Vec<bool>,
    notices: Vec<String>,
    total_j: f64,
    fail_at: Option<u64>,
}

impl Subscriber for Log {
    fn frame(&mut self, f: &Frame<'_>) -> Result<(), String> {
        self.seqs.push(f.seq);
        self.intervals.push(f.interval.is_some());
        self.notices.extend(f.notices.iter().cloned());
        self.total_j = f.ledger().devices.iter().map(|d| d.energy_j).sum();
        assert!(
            f.sample().is_some(),
            "a frame always has the sample just accounted"
        );
        match self.fail_at {
            Some(at) if at == f.seq => Err(format!("disk full at {at}")),
            _ => Ok(()),
        }
    }
}

#[test]
fn every_subscriber_sees_every_sample_in_order_and_the_same_engine() {
    let mut p = Pipeline::new(&EngineParams::default());
    let (mut a, mut b) = (Log::default(), Log::default());
    let mut feed = VecFeed::new(samples(5, 30.0));
    feed.0[2].notices.push("gpu0: list refused".into());
    let n = p.run(&mut feed, &mut [&mut a, &mut b], &|| false, |_| true);
    assert_eq!(n, 5);
    assert_eq!(a.seqs, [1, 2, 3, 4, 5]);
    assert_eq!(
        a.intervals,
        [false, true, true, true, true],
        "the first sample closes no interval"
    );
    assert_eq!(a.seqs, b.seqs);
    assert_eq!(a.notices, ["gpu0: list refused"]);
    assert!((a.total_j - 120.0).abs() < 1e-6, "4 s at 30 W: {}", a.total_j);
    assert!((b.total_j - a.total_j).abs() < 1e-12);
    assert_eq!(p.notices, ["gpu0: list refused"]);
}

#[test]
fn a_sample_whose_clock_does_not_advance_is_dropped_before_any_subscriber() {
    let mut p = Pipeline::new(&EngineParams::default());
    let mut log = Log::default();
    let mut s = samples(3, 10.0);
    s.insert(2, s[1].clone());
    let n = p.run(&mut VecFeed::new(s), &mut [&mut log], &|| false, |_| true);
    assert_eq!(n, 3);
    assert_eq!(log.seqs, [1, 2, 3]);
}

/// Adds CPU time to one process before accounting, as run's tree filter hands over reaped time.
struct Adjust;

impl Subscriber for Adjust {
    fn prepare(&mut self, sample: &mut Sample) {
        for p in &mut sample.processes {
            p.child_ticks += 1;
        }
    }
    fn frame(&mut self, _: &Frame<'_>) -> Result<(), String> {
        Ok(())
    }
}

#[test]
fn prepare_runs_before_accounting() {
    let mut p = Pipeline::new(&EngineParams::default());
    p.run(
        &mut VecFeed::new(samples(2, 10.0)),
        &mut [&mut Adjust],
        &|| false,
        |_| true,
    );
    let latest = p.engine.latest().unwrap();
    assert_eq!(latest.processes[0].child_ticks, 1);
}

#[test]
fn energy_is_conserved_through_the_pipeline() {
    let mut p = Pipeline::new(&EngineParams::default());
    p.run(&mut VecFeed::new(samples(20, 45.0)), &mut [], &|| false, |_| true);
    let l = &p.engine.ledger;
    for d in &l.devices {
        let procs: f64 = l.processes().map(|e| e.energy_by_dev.iter().sum::<f64>()).sum();
        let sum = procs + d.idle_j + d.unattributed_j;
        assert!((sum - d.energy_j).abs() < 1e-6, "{} vs {}", sum, d.energy_j);
    }
}

#[test]
fn a_subscriber_error_reaches_the_driver_which_may_stop() {
    let mut p = Pipeline::new(&EngineParams::default());
    let mut log = Log {
        fail_at: Some(3),
        ..Log::default()
    };
    let mut seen = Vec::new();
    let n = p.run(
        &mut VecFeed::new(samples(6, 10.0)),
        &mut [&mut log],
        &|| false,
        |e| {
            seen.extend(e.iter().cloned());
            false
        },
    );
    assert_eq!(n, 3, "stopped after the failing frame");
    assert_eq!(seen, ["disk full at 3"]);
}

#[test]
fn stop_ends_the_run() {
    let mut p = Pipeline::new(&EngineParams::default());
    let calls = Cell::new(0);
    let stop = || {
        calls.set(calls.get() + 1);
        calls.get() > 3
    };
    let n = p.run(&mut VecFeed::new(samples(10, 10.0)), &mut [], &stop, |_| true);
    assert_eq!(n, 3);
}

#[test]
#[should_panic(expected = "injected")]
fn a_panicking_feed_unwinds_through_the_pipeline() {
    struct Faulty(VecFeed, usize);
    impl Feed for Faulty {
        fn next(&mut self, stop: &dyn Fn() -> bool) -> Option<Tick> {
            self.1 += 1;
            assert!(self.1 < 3, "injected fault in the feed");
            self.0.next(stop)
        }
    }
    let mut p = Pipeline::new(&EngineParams::default());
    p.run(
        &mut Faulty(VecFeed::new(samples(5, 1.0)), 0),
        &mut [],
        &|| false,
        |_| true,
    );
}

#[derive(Debug)]
struct BadLine(usize);

impl std::fmt::Display for BadLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: not JSON", self.0)
    }
}

#[test]
fn replay_hands_over_every_sample_then_names_the_bad_line() {
    let mut items: Vec<Result<Sample, BadLine>> = samples(4, 20.0).into_iter().map(Ok).collect();
    items.push(Err(BadLine(7)));
    items.extend(samples(6, 20.0).into_iter().skip(4).map(Ok));
    let mut feed = ReplayFeed::new(items.into_iter(), None, "r.jsonl");
    let mut got = Vec::new();
    while let Some(t) = feed.next(&|| false) {
        got.push((t.sample.mono_s, t.notices));
    }
    let times: Vec<f64> = got.iter().map(|(t, _)| *t).collect();
    assert_eq!(times, [0.0, 1.0, 2.0, 3.0], "nothing after the bad line");
    assert_eq!(
        got[3].1,
        ["r.jsonl: line 7: not JSON; the samples before it are accounted"],
        "the closing notice comes with the last sample"
    );
    assert!(got[..3].iter().all(|(_, n)| n.is_empty()));
}

#[test]
fn paced_replay_says_what_it_replays_and_when_it_ends() {
    let items: Vec<Result<Sample, BadLine>> = samples(3, 20.0).into_iter().map(Ok).collect();
    // 1e6× real time: three samples one second apart take microseconds.
    let mut feed = ReplayFeed::new(items.into_iter(), Some(1e6), "r.jsonl");
    let first = feed.next(&|| false).unwrap();
    assert_eq!(first.notices, ["replaying r.jsonl at 1000000× real time"]);
    assert!(feed.next(&|| false).unwrap().notices.is_empty());
    let last = feed.next(&|| false).unwrap();
    assert_eq!(last.sample.mono_s, 2.0);
    assert_eq!(last.notices, ["end of recording: the screen shows its totals"]);
    assert!(feed.next(&|| false).is_none());
}

#[test]
fn replay_at_real_speed_is_paced_by_the_recording_clock() {
    // Samples 50 ms apart at 1×: the third is handed over ~100 ms after the first.
    let items: Vec<Result<Sample, BadLine>> = (0..3)
        .map(|i| Ok(sample_at(f64::from(i) * 0.05).build()))
        .collect();
    let mut feed = ReplayFeed::new(items.into_iter(), Some(1.0), "r");
    let t0 = Instant::now();
    feed.next(&|| false).unwrap();
    feed.next(&|| false).unwrap();
    feed.next(&|| false).unwrap();
    let took = t0.elapsed();
    assert!(took >= Duration::from_millis(95), "{took:?}"); // real-time: pacing is what is tested.
}

/// Sources with nothing to read (no counters to poll between samples).
fn quiet_sampler() -> Sampler {
    struct NoProcs;
    impl crate::sources::ProcessSource for NoProcs {
        fn read(&mut self) -> crate::sources::ProcSnapshot {
            crate::sources::ProcSnapshot {
                ticks_per_s: 100,
                ..Default::default()
            }
        }
    }
    struct NoCpu;
    impl crate::sources::CpuEnergySource for NoCpu {
        fn read(&mut self) -> Vec<crate::sample::DeviceReading> {
            Vec::new()
        }
    }
    Sampler::new(Box::new(NoProcs), Box::new(NoCpu), None)
}

/// Issue 12: a feed that sleeps between samples wakes once per interval; the default one looks at
/// its stop condition every 100 ms while it waits.
#[test]
fn a_feed_that_sleeps_between_samples_looks_at_stop_only_when_one_is_due() {
    for (sleeps, at_most, at_least) in [(true, 2, 1), (false, usize::MAX, 4)] {
        let mut feed = LiveFeed::new(quiet_sampler(), Duration::from_millis(350));
        if sleeps {
            feed = feed.sleep_between();
        }
        let looks = Cell::new(0usize);
        let stop = || {
            looks.set(looks.get() + 1);
            false
        };
        // real-time: one interval of waiting.
        assert!(feed.next(&stop).is_some());
        looks.set(0);
        assert!(feed.next(&stop).is_some());
        let n = looks.get();
        assert!(
            (at_least..=at_most).contains(&n),
            "sleeps between: {sleeps}, looked {n} times"
        );
    }
}
