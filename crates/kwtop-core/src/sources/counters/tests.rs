use super::*;
use crate::sample::DeviceKind;

/// 60 J: the smallest RAPL range seen on client parts, the one issue 10 names.
const RANGE_60J: u64 = 60_000_000;

fn c(value_uj: u64, wrap_uj: Option<u64>) -> EnergyCounter {
    EnergyCounter { value_uj, wrap_uj }
}

/// A RAPL zone at `watts` read at `t` seconds: counts 0..=max, so it wraps modulo max + 1.
fn rapl_at(watts: f64, t: f64, max: u64) -> EnergyCounter {
    let uj = (watts * t * 1e6).round() as u64;
    c(uj % (max + 1), Some(max))
}

fn reading(id: &str, energy: Option<EnergyCounter>, error: Option<&str>) -> DeviceReading {
    let mut r = DeviceReading::new(id, DeviceKind::Cpu, "package-0 (RAPL)");
    r.energy = energy;
    r.error = error.map(str::to_string);
    r
}

fn total_j(t: &CounterTracker, id: &str) -> f64 {
    t.total_uj(id).expect("tracked") as f64 * 1e-6
}

#[test]
fn several_wraps_between_samples_are_all_counted_when_polled() {
    // 50 W on a 60 J counter for 3 s (the issue's `snapshot --interval 3s`): 150 J, 2.5 wraps.
    let mut tr = CounterTracker::new();
    let mut r = reading("cpu0", Some(rapl_at(50.0, 0.0, RANGE_60J)), None);
    tr.apply(&mut r, 0.0);
    let start = total_j(&tr, "cpu0");
    let mut t = 0.0;
    let mut periods = Vec::new();
    loop {
        let p = tr.poll_period_s();
        periods.push(p);
        if t + p >= 3.0 {
            break;
        }
        t += p;
        tr.step("cpu0", Ok(rapl_at(50.0, t, RANGE_60J)), t);
    }
    let mut end = reading("cpu0", Some(rapl_at(50.0, 3.0, RANGE_60J)), None);
    tr.apply(&mut end, 3.0);
    let got = total_j(&tr, "cpu0") - start;
    // `max − prev + cur` is 1 µJ short per wrap of a counter that counts 0..=max.
    assert!((got - 150.0).abs() < 1e-3, "{got} J, polls at {periods:?}");
    assert_eq!(end.energy, Some(c(tr.total_uj("cpu0").unwrap_or(0), None)));
    assert_eq!(end.error, None);
    assert!(!end.energy_stale);
    assert_eq!(periods[0], PROBE_POLL_S, "rate unknown: probe early");
    assert!((periods[1] - 0.3).abs() < 1e-3, "60 J ÷ 50 W ÷ 4: {periods:?}");
}

#[test]
fn without_polling_the_same_counter_loses_whole_wraps() {
    // What HEAD did: one step per 3 s sample sees 150 J mod 60 J.
    let mut tr = CounterTracker::new();
    tr.step("cpu0", Ok(rapl_at(50.0, 0.0, RANGE_60J)), 0.0);
    tr.step("cpu0", Ok(rapl_at(50.0, 3.0, RANGE_60J)), 3.0);
    assert!((total_j(&tr, "cpu0") - 30.0).abs() < 1e-3);
}

#[test]
fn single_wrap_is_max_minus_prev_plus_cur() {
    let mut tr = CounterTracker::new();
    tr.step("cpu0", Ok(c(RANGE_60J - 10, Some(RANGE_60J))), 0.0);
    tr.step("cpu0", Ok(c(5, Some(RANGE_60J))), 0.1);
    assert_eq!(tr.total_uj("cpu0"), Some(RANGE_60J - 10 + 15));
}

#[test]
fn reset_adds_nothing_and_the_next_sample_says_so_once() {
    let mut tr = CounterTracker::new();
    tr.step("gpu0", Ok(c(9_000_000, None)), 0.0);
    tr.step("gpu0", Ok(c(10_000_000, None)), 0.5);
    // Driver reload: the counter starts again from 200 J... below the last value.
    tr.step("gpu0", Ok(c(2_000_000, None)), 1.0);
    assert_eq!(tr.total_uj("gpu0"), Some(10_000_000), "a reset adds nothing");
    let mut r = reading("gpu0", Some(c(3_000_000, None)), None);
    tr.apply(&mut r, 1.5);
    assert_eq!(
        tr.total_uj("gpu0"),
        Some(11_000_000),
        "counting resumes from the new value"
    );
    let why = r.error.as_deref().unwrap_or("");
    assert!(
        why.contains("energy counter reset (10000000 → 2000000 µJ)")
            && why.contains("0.5 s of energy not counted"),
        "{why}"
    );
    let mut next = reading("gpu0", Some(c(4_000_000, None)), None);
    tr.apply(&mut next, 2.0);
    assert_eq!(next.error, None, "said once");
}

#[test]
fn failed_read_keeps_last_good_then_recovers_the_energy() {
    let mut tr = CounterTracker::new();
    let mut a = reading("cpu0", Some(c(1_000_000, Some(RANGE_60J))), None);
    tr.apply(&mut a, 0.0);
    let mut bad = reading(
        "cpu0",
        None,
        Some("RAPL read failed: intel-rapl:0/energy_uj: EIO"),
    );
    tr.apply(&mut bad, 1.0);
    assert_eq!(
        bad.energy,
        Some(c(1_000_000, None)),
        "last good kept, never a silent 0"
    );
    assert!(bad.energy_stale);
    let why = bad.error.as_deref().unwrap_or("");
    assert!(
        why.contains("EIO")
            && why.contains("last good energy reading kept (1.0 s old)")
            && why.contains("recovers"),
        "{why}"
    );
    let mut good = reading("cpu0", Some(c(41_000_000, Some(RANGE_60J))), None);
    tr.apply(&mut good, 2.0);
    assert_eq!(good.energy, Some(c(41_000_000, None)), "both seconds' 40 J");
    assert!(!good.energy_stale);
    assert_eq!(good.error, None);
}

#[test]
fn failed_poll_between_samples_loses_nothing() {
    let mut tr = CounterTracker::new();
    tr.step("cpu0", Ok(c(0, Some(RANGE_60J))), 0.0);
    tr.step("cpu0", Ok(c(5_000_000, Some(RANGE_60J))), 0.1);
    tr.step("cpu0", Err("EAGAIN".into()), 0.2);
    let mut r = reading("cpu0", Some(c(15_000_000, Some(RANGE_60J))), None);
    tr.apply(&mut r, 0.3);
    assert_eq!(r.energy, Some(c(15_000_000, None)));
    assert_eq!(r.error, None);
}

#[test]
fn a_device_never_read_well_is_left_as_it_is() {
    let mut tr = CounterTracker::new();
    let mut r = reading("cpu0", None, Some("RAPL read failed: permission denied"));
    tr.apply(&mut r, 0.0);
    assert_eq!(r.energy, None);
    assert!(!r.energy_stale);
    assert_eq!(r.error.as_deref(), Some("RAPL read failed: permission denied"));
    assert!(!tr.has_counters());
    // An estimated CPU has no counter and no error: untouched, not polled.
    let mut est = reading("cpu0", None, None);
    tr.apply(&mut est, 1.0);
    assert_eq!(est, reading("cpu0", None, None));
}

#[test]
fn implausible_jump_is_a_reset_not_energy() {
    let mut tr = CounterTracker::new();
    tr.step("cpu0", Ok(c(0, None)), 0.0);
    tr.step("cpu0", Ok(c(50_000_000_000, None)), 1.0); // 50 kJ in 1 s
    assert_eq!(tr.total_uj("cpu0"), Some(0));
    let mut r = reading("cpu0", Some(c(50_000_100_000, None)), None);
    tr.apply(&mut r, 1.1);
    assert_eq!(
        tr.total_uj("cpu0"),
        Some(100_000),
        "counting resumes after the jump"
    );
    assert!(
        r.error
            .as_deref()
            .unwrap_or("")
            .contains("implausible energy counter jump"),
        "{:?}",
        r.error
    );
}

#[test]
fn a_burst_read_soon_after_the_last_read_is_energy_not_a_jump() {
    // NVML updates its counter in bursts: 70 J (700 W × 100 ms) seen 1 ms after the last read.
    let mut tr = CounterTracker::new();
    tr.step("gpu0", Ok(c(0, None)), 0.0);
    tr.step("gpu0", Ok(c(70_000_000, None)), 0.001);
    assert_eq!(tr.total_uj("gpu0"), Some(70_000_000));
}

#[test]
fn a_gap_longer_than_one_wrap_is_said() {
    let mut tr = CounterTracker::new();
    tr.step("cpu0", Ok(rapl_at(50.0, 0.0, RANGE_60J)), 0.0);
    tr.step("cpu0", Ok(rapl_at(50.0, 0.3, RANGE_60J)), 0.3);
    // The sampler was stopped for 2 s (1.2 s per wrap at 50 W).
    let mut r = reading("cpu0", Some(rapl_at(50.0, 2.3, RANGE_60J)), None);
    tr.apply(&mut r, 2.3);
    assert!(
        r.error.as_deref().unwrap_or("").contains("longer than one wrap"),
        "{:?}",
        r.error
    );
}

#[test]
fn poll_period_follows_the_rate_within_bounds() {
    let mut tr = CounterTracker::new();
    assert_eq!(tr.poll_period_s(), MAX_POLL_S, "nothing tracked");
    tr.step("gpu0", Ok(c(0, None)), 0.0);
    tr.step("gpu0", Ok(c(700_000_000, None)), 1.0);
    assert_eq!(
        tr.poll_period_s(),
        MAX_POLL_S,
        "a counter that never wraps: once a second"
    );
    // AMD's 65.5 kJ range at 240 W wraps every 273 s: still once a second.
    tr.step("cpu0", Ok(c(0, Some(65_532_610_987))), 0.0);
    assert_eq!(
        tr.poll_period_s(),
        PROBE_POLL_S,
        "wrapping counter, rate not known yet"
    );
    tr.step("cpu0", Ok(c(240_000_000, Some(65_532_610_987))), 1.0);
    assert_eq!(tr.poll_period_s(), MAX_POLL_S);
    // 60 J at 50 W: a quarter of 1.2 s.
    tr.step("cpu1", Ok(c(0, Some(RANGE_60J))), 0.0);
    tr.step("cpu1", Ok(c(5_000_000, Some(RANGE_60J))), 0.1);
    assert!((tr.poll_period_s() - 0.3).abs() < 1e-9);
    // The rate doubles: the period halves.
    tr.step("cpu1", Ok(c(15_000_000, Some(RANGE_60J))), 0.2);
    assert!((tr.poll_period_s() - 0.15).abs() < 1e-9);
    // Absurdly fast: the floor.
    tr.step("cpu1", Ok(c(35_000_000, Some(RANGE_60J))), 0.21);
    assert_eq!(tr.poll_period_s(), MIN_POLL_S);
    // Idle (no advance): back to once a second.
    tr.step("cpu1", Ok(c(35_000_000, Some(RANGE_60J))), 0.5);
    assert_eq!(tr.poll_period_s(), MAX_POLL_S);
}

/// Simulate a driver that samples every `interval_s` for `samples` intervals and waits with
/// [`next_wait`] in between (each sleep overshoots by 1 ms); returns the counter reads while waiting.
fn polls_while_waiting(interval_s: f64, period_s: f64, samples: u32) -> u32 {
    let mut now = 0.0;
    let mut last_read = now; // the sample reads the counters
    let mut polls = 0;
    for n in 1..=samples {
        let deadline = f64::from(n) * interval_s;
        loop {
            match next_wait(now, deadline, last_read, Some(period_s), 0.1) {
                Wait::Done => break,
                Wait::ReadCounters => {
                    polls += 1;
                    last_read = now;
                }
                Wait::Sleep(d) => {
                    assert!(d > 0.0 && d <= 0.1, "sleeps {d} s");
                    now += d + 0.001;
                }
            }
        }
        now += 0.002; // the sample itself
        last_read = now;
    }
    polls
}

#[test]
fn no_extra_reads_when_the_interval_is_within_the_poll_period() {
    assert_eq!(
        polls_while_waiting(1.0, 1.0, 10),
        0,
        "live monitor at 1 s: cost unchanged"
    );
    assert_eq!(polls_while_waiting(0.2, 1.0, 10), 0);
}

#[test]
fn long_intervals_read_counters_once_a_period() {
    // snapshot --interval 3s: reads at ~1 s and ~2 s.
    assert_eq!(polls_while_waiting(3.0, 1.0, 1), 2);
    // record --interval 5m on a counter that needs 0.3 s: ~1000 reads per interval.
    let n = polls_while_waiting(300.0, 0.3, 1);
    assert!((990..=1000).contains(&n), "{n}");
}

#[test]
fn waiting_without_counters_only_sleeps() {
    assert_eq!(next_wait(0.0, 0.05, 0.0, None, 0.1), Wait::Sleep(0.05));
    assert_eq!(next_wait(0.0, 5.0, 0.0, None, 0.1), Wait::Sleep(0.1));
    assert_eq!(
        next_wait(5.0, 5.0, 0.0, Some(0.1), 0.1),
        Wait::Done,
        "the deadline wins"
    );
}

/// Without a stop condition to look at, waiting sleeps straight to the next counter read or the
/// deadline: an idle live monitor wakes once per interval.
#[test]
fn without_stop_checks_the_wait_is_one_sleep() {
    assert_eq!(
        next_wait(0.0, 1.0, 0.0, Some(1.0), f64::INFINITY),
        Wait::Sleep(1.0)
    );
    assert_eq!(
        next_wait(0.0, 3.0, 0.0, Some(0.3), f64::INFINITY),
        Wait::Sleep(0.3)
    );
    assert_eq!(next_wait(0.0, 3.0, 0.0, None, f64::INFINITY), Wait::Sleep(3.0));
}

/// A counter that goes backwards at every read (no wrap range) gives one note and a count, never a
/// note per read, and tells the sample how many seconds were lost.
#[test]
fn a_glitching_counter_gives_one_note_and_the_lost_time() {
    let mut tr = CounterTracker::new();
    let mut r = reading("gpu0", Some(c(1_000_000, None)), None);
    tr.apply(&mut r, 0.0);
    for i in 1..=10u32 {
        // Backwards every time: 1,000,000 µJ, then 999,990, 999,980, …
        tr.step(
            "gpu0",
            Ok(c(1_000_000 - u64::from(i) * 10, None)),
            f64::from(i) * 0.1,
        );
    }
    let mut end = reading("gpu0", Some(c(999_890, None)), None);
    tr.apply(&mut end, 1.1);
    let why = end.error.clone().unwrap_or_default();
    assert_eq!(why.matches("energy counter reset (").count(), 1, "{why}");
    assert!(why.contains("11 counter resets"), "{why}");
    assert!((end.energy_gap_s - 1.1).abs() < 1e-9, "{}", end.energy_gap_s);
    let mut next = reading("gpu0", Some(c(1_999_890, None)), None);
    tr.apply(&mut next, 2.1);
    assert_eq!(next.energy_gap_s, 0.0, "said for one sample only");
    assert_eq!(next.error, None);
}
