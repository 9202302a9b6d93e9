#![allow(clippy::unwrap_used, clippy::expect_used)]
use super::*;
use proptest::prelude::*;

fn lines(chunks: &[&[u8]]) -> Vec<String> {
    let mut s = LineSplitter::default();
    let mut out = Vec::new();
    for c in chunks {
        s.push(c, |l| out.push(String::from_utf8_lossy(l).into_owned()));
    }
    s.finish(|l| out.push(String::from_utf8_lossy(l).into_owned()));
    out
}

#[test]
fn lines_split_on_newline_and_carriage_return_across_reads() {
    assert_eq!(
        lines(&[b"step 1\nst", b"ep 2\r\n\r 3/10", b"\r 4/10"]),
        ["step 1", "step 2", " 3/10", " 4/10"]
    );
}

#[test]
fn overlong_lines_are_cut() {
    let long = vec![b'a'; MAX_LINE_BYTES + 10];
    let out = lines(&[&long, b"\nnext"]);
    assert_eq!(out[0].len(), MAX_LINE_BYTES);
    assert_eq!(out[1], "next");
}

#[test]
fn capture_group_is_a_cumulative_count() {
    let p = ProgressPattern::new(r"step (\d+)").unwrap();
    assert!(p.is_cumulative());
    assert_eq!(
        p.observe(b"step 12 loss 0.3"),
        LineMatch::Counts(Observation::Total(12))
    );
    assert_eq!(p.observe(b"epoch 1"), LineMatch::No);
    let tqdm = ProgressPattern::new(r"(\d+)/\d+").unwrap();
    assert_eq!(
        tqdm.observe(b" 30%|###       | 3/10 [00:01<00:02,  2.9it/s]"),
        LineMatch::Counts(Observation::Total(3))
    );
}

#[test]
fn without_a_group_each_matching_line_adds_one() {
    let p = ProgressPattern::new("saved checkpoint").unwrap();
    assert!(!p.is_cumulative());
    assert_eq!(
        p.observe(b"[x] saved checkpoint 3"),
        LineMatch::Counts(Observation::Add(1))
    );
    assert_eq!(p.observe(b"loading"), LineMatch::No);
}

#[test]
fn colours_do_not_hide_the_number() {
    let p = ProgressPattern::new(r"(\d+)/\d+").unwrap();
    let line = b"\x1b[32m7\x1b[0m/\x1b[1m10\x1b[0m \x1b]0;title\x07done";
    assert_eq!(p.observe(line), LineMatch::Counts(Observation::Total(7)));
}

#[test]
fn a_capture_that_is_not_a_whole_number_counts_nothing() {
    let p = ProgressPattern::new(r"loss ([\d.]+)").unwrap();
    assert_eq!(p.observe(b"loss 0.25"), LineMatch::Unparsed);
    let opt = ProgressPattern::new(r"step( \d+)?").unwrap();
    assert_eq!(opt.observe(b"step"), LineMatch::Unparsed);
}

#[test]
fn bad_regex_is_refused() {
    let e = ProgressPattern::new("step (").unwrap_err();
    assert!(e.to_string().contains("invalid --progress regex"), "{e}");
}

/// ASCII mode: Perl classes and `(?i)` are ASCII, literal text in any script matches as written,
/// a non-UTF-8 line still matches; Unicode classes are refused with what is available.
#[test]
fn patterns_are_ascii_mode_over_bytes() {
    let p = ProgressPattern::new(r"(?i)ÉPOCH (\d+)").unwrap();
    assert_eq!(
        p.observe("époch 12".as_bytes()),
        LineMatch::No,
        "(?i) is ASCII: é is not É"
    );
    assert_eq!(
        p.observe("Époch 12".as_bytes()),
        LineMatch::Counts(Observation::Total(12))
    );
    let p = ProgressPattern::new(r"(?i)époque (\d+)").unwrap();
    assert_eq!(p.observe("ÉPOQUE 7".as_bytes()), LineMatch::No);
    assert_eq!(
        p.observe("époque 7".as_bytes()),
        LineMatch::Counts(Observation::Total(7))
    );
    // \d is ASCII: Arabic-Indic digits are not a count.
    let d = ProgressPattern::new(r"step (\d+)").unwrap();
    assert_eq!(d.observe("step \u{0663}".as_bytes()), LineMatch::No);
    assert_eq!(
        d.observe(b"\xff\xfe step 42 \x80"),
        LineMatch::Counts(Observation::Total(42))
    );
    let w = ProgressPattern::new(r"\bit\b \w+ (\d+)").unwrap();
    assert_eq!(w.observe(b"it x_1 3"), LineMatch::Counts(Observation::Total(3)));
    for unicode in [r"\p{Greek} (\d+)", r"[é-ü]"] {
        let e = ProgressPattern::new(unicode).unwrap_err().to_string();
        assert!(
            e.contains("invalid --progress regex") && e.contains("ASCII mode"),
            "{e}"
        );
    }
}

#[test]
fn counts_parse_with_grouping() {
    assert_eq!(parse_count("1,200"), Some(1200));
    assert_eq!(parse_count("1_000_000"), Some(1_000_000));
    assert_eq!(parse_count("0"), Some(0));
    for bad in ["", "-3", "1.5", "12a", ",12", "99999999999999999999999"] {
        assert_eq!(parse_count(bad), None, "{bad}");
    }
}

#[test]
fn work_file_lines() {
    use WorkLine::*;
    assert_eq!(
        parse_work_line(b"1200 tokens"),
        Count(Observation::Total(1200), Some("token".into()))
    );
    assert_eq!(parse_work_line(b"  42\r"), Count(Observation::Total(42), None));
    assert_eq!(
        parse_work_line(b"+64 images"),
        Count(Observation::Add(64), Some("image".into()))
    );
    assert_eq!(parse_work_line(b"# header"), Ignored);
    assert_eq!(parse_work_line(b""), Ignored);
    for bad in [
        &b"tokens 1200"[..],
        b"12 tok ens",
        b"-5",
        b"12 \x1b[31m",
        b"\xff 3",
        b"3.5 steps",
    ] {
        assert_eq!(
            parse_work_line(bad),
            Invalid,
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
}

#[test]
fn singular_and_plural() {
    for (one, many) in [
        ("step", "steps"),
        ("token", "tokens"),
        ("batch", "batches"),
        ("query", "queries"),
        ("box", "boxes"),
        ("class", "classes"),
        ("day", "days"),
    ] {
        assert_eq!(plural(one), many);
        assert_eq!(singular(many), one, "{many}");
        assert_eq!(singular(one), one, "{one}");
    }
    assert_eq!(unit_name(" tokens "), Some("token".into()));
    assert_eq!(unit_name("two words"), None);
    assert_eq!(unit_name(""), None);
    assert_eq!(unit_for("step", 1.0), "step");
    assert_eq!(unit_for("step", 2.0), "steps");
}

#[test]
fn counter_reset_banks_the_previous_count() {
    let mut c = WorkCounter::new();
    for (t, n) in [(1000, 0), (2000, 5), (3000, 10), (4000, 2), (5000, 10)] {
        c.observe(t, Observation::Total(n));
    }
    assert_eq!(c.units(), 20, "two bars of 10");
    assert_eq!(c.resets(), 1);
    assert_eq!(c.first_unit_ms(), Some(2000), "step 0 is not a unit");
    assert_eq!(c.last_unit_ms(), Some(5000));
    // 15 units after the first observation (which brought 5), over 3 s.
    assert_eq!(c.units_per_s(), Some(5.0));
}

#[test]
fn repeated_totals_do_not_move_the_last_unit() {
    let mut c = WorkCounter::new();
    c.observe(1000, Observation::Total(10));
    c.observe(9000, Observation::Total(10));
    assert_eq!(c.last_unit_ms(), Some(1000));
    assert_eq!(c.units_per_s(), None, "one time only");
}

#[test]
fn adds_and_totals_add_up() {
    let mut c = WorkCounter::new();
    assert!(c.observe_work_line(0, b"+3 tokens"));
    assert!(c.observe_work_line(500, b"100"));
    assert!(!c.observe_work_line(600, b"lots"));
    assert_eq!(c.units(), 103);
    assert_eq!(c.unit(), Some("token"));
}

#[test]
fn per_unit_figures() {
    let mut c = WorkCounter::new();
    assert!(
        c.summary("step", WorkSource::Progress, 100.0, 1.0).is_none(),
        "no work, no figures"
    );
    c.observe(0, Observation::Add(1));
    c.observe(4000, Observation::Total(4));
    let s = c.summary("step", WorkSource::Progress, 3600.0, 2.0).unwrap();
    assert_eq!(s.units, 5);
    assert_eq!(s.j_per_unit, 720.0);
    assert!((s.wh_per_1000_units - 200.0).abs() < 1e-9);
    assert_eq!(s.co2e_g_per_unit, 0.4);
    assert_eq!((s.first_unit_ms, s.last_unit_ms), (0, 4000));
    assert_eq!(s.units_per_s, Some(1.0));
    let json = serde_json::to_value(&s).unwrap();
    assert_eq!(json["source"], "progress");
    assert_eq!(json["units"], 5);
}

fn observation() -> impl Strategy<Value = Observation> {
    prop_oneof![
        (0u64..1_000_000).prop_map(Observation::Total),
        (0u64..1000).prop_map(Observation::Add),
    ]
}

proptest! {
    /// Whatever the counts say, the total never goes down, and it is at least the latest
    /// cumulative value; the first unit never comes after the last.
    #[test]
    fn total_never_goes_down(obs in proptest::collection::vec((0i64..10_000, observation()), 0..200)) {
        let mut c = WorkCounter::new();
        let mut prev = 0;
        for (t, o) in obs {
            c.observe(t, o);
            prop_assert!(c.units() >= prev);
            if let Observation::Total(n) = o {
                prop_assert!(c.units() >= n);
            }
            prev = c.units();
        }
        match (c.first_unit_ms(), c.last_unit_ms()) {
            (Some(f), Some(l)) => prop_assert!(f <= l),
            (None, None) => prop_assert_eq!(c.units(), 0),
            other => prop_assert!(false, "{:?}", other),
        }
    }

    /// A monotonic cumulative count is counted exactly, in any number of repeats.
    #[test]
    fn monotonic_counts_are_exact(mut ns in proptest::collection::vec(0u64..1_000_000, 1..100)) {
        ns.sort_unstable();
        let mut c = WorkCounter::new();
        for (i, n) in ns.iter().enumerate() {
            c.observe(i as i64, Observation::Total(*n));
        }
        prop_assert_eq!(c.units(), *ns.last().unwrap_or(&0));
        prop_assert_eq!(c.resets(), 0);
    }

    /// Splitting is independent of how the stream was cut into reads.
    #[test]
    fn splitting_ignores_read_boundaries(text in "[a-z0-9 \r\n]{0,200}", cut in 0usize..200) {
        let bytes = text.as_bytes();
        let cut = cut.min(bytes.len());
        let whole = lines(&[bytes]);
        let parts = lines(&[&bytes[..cut], &bytes[cut..]]);
        prop_assert_eq!(whole, parts);
    }
}
