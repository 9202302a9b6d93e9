//! Reading one counter from a page in the Prometheus text exposition format (version 0.0.4, and the
//! sample lines of OpenMetrics, which have the same shape): the `--work-metric` of an inference
//! server, e.g. `vllm:generation_tokens_total`.
//!
//! Pure: text in, a number out. Only sample lines are read (`name{label="value",…} value
//! [timestamp]`); `#` lines (HELP, TYPE, comments) are skipped. Metric names may contain `:`
//! (vLLM's `vllm:` prefix), label values may contain escaped quotes, backslashes and newlines, and
//! commas or braces. Every series whose name is the selector's and whose labels include the
//! selector's label pairs is added up (one per model, say).
//!
//! Written here rather than taken from a crate: `prometheus-parse` 0.2.5 (last released December
//! 2023) reads names as `\w+`, so it silently drops every `vllm:` series, and splits label values
//! on `,`; the other parsers on crates.io are LGPL or unreleased sketches. This reads only what
//! kwtop needs; property tests feed it arbitrary text (never a panic) and round-trip selectors.

use std::fmt;

/// Longest selector accepted, bytes.
const MAX_SELECTOR: usize = 512;

/// `METRIC` or `METRIC{label="value",…}`: which series to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    pub name: String,
    pub labels: Vec<(String, String)>,
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        if !self.labels.is_empty() {
            let parts: Vec<String> = self
                .labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
                .collect();
            write!(f, "{{{}}}", parts.join(","))?;
        }
        Ok(())
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn is_name_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_' || c == b':'
}

fn is_name_char(c: u8) -> bool {
    is_name_start(c) || c.is_ascii_digit()
}

/// A cursor over one line.
struct Scan<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> Scan<'a> {
    fn new(s: &'a str) -> Self {
        Scan {
            s: s.as_bytes(),
            i: 0,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn skip_blanks(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        self.skip_blanks();
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    /// A metric name (`allow_colon`) or a label name.
    fn name(&mut self, allow_colon: bool) -> Option<&'a str> {
        self.skip_blanks();
        let start = self.i;
        let ok = |c: u8| is_name_char(c) && (allow_colon || c != b':');
        if !self.peek().is_some_and(|c| is_name_start(c) && ok(c)) {
            return None;
        }
        while self.peek().is_some_and(ok) {
            self.i += 1;
        }
        std::str::from_utf8(&self.s[start..self.i]).ok()
    }

    /// A double-quoted label value with `\\`, `\"` and `\n` escapes.
    fn quoted(&mut self) -> Option<String> {
        if !self.eat(b'"') {
            return None;
        }
        let mut out = Vec::new();
        loop {
            let c = self.peek()?;
            self.i += 1;
            match c {
                b'"' => return String::from_utf8(out).ok(),
                b'\\' => {
                    let e = self.peek()?;
                    self.i += 1;
                    out.push(if e == b'n' { b'\n' } else { e });
                }
                _ => out.push(c),
            }
        }
    }

    /// `{a="b",c="d"}` (a trailing comma allowed), or nothing.
    fn labels(&mut self) -> Option<Vec<(String, String)>> {
        let mut out = Vec::new();
        // No blank before `{`: a blank ends the name and starts the value.
        if self.peek() != Some(b'{') {
            return Some(out);
        }
        self.i += 1;
        loop {
            if self.eat(b'}') {
                return Some(out);
            }
            let k = self.name(false)?.to_string();
            if !self.eat(b'=') {
                return None;
            }
            out.push((k, self.quoted()?));
            if !self.eat(b',') {
                return self.eat(b'}').then_some(out);
            }
        }
    }

    /// The next blank-separated word.
    fn word(&mut self) -> Option<&'a str> {
        self.skip_blanks();
        let start = self.i;
        while self.peek().is_some_and(|c| c != b' ' && c != b'\t') {
            self.i += 1;
        }
        (self.i > start)
            .then(|| std::str::from_utf8(&self.s[start..self.i]).ok())
            .flatten()
    }
}

/// Why a `--work-metric` selector was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid metric '{0}': a name like vllm:generation_tokens_total, optionally {{label=\"value\",…}}")]
pub struct SelectorError(pub String);

impl Selector {
    /// Parse `name` or `name{label="value",…}`.
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        let err = || SelectorError(crate::sanitize::sanitize_str(s, 80));
        if s.len() > MAX_SELECTOR {
            return Err(err());
        }
        let mut scan = Scan::new(s.trim());
        let name = scan.name(true).ok_or_else(err)?.to_string();
        let labels = scan.labels().ok_or_else(err)?;
        scan.skip_blanks();
        if scan.peek().is_some() {
            return Err(err());
        }
        Ok(Selector { name, labels })
    }

    fn matches(&self, name: &str, labels: &[(String, String)]) -> bool {
        name == self.name
            && self
                .labels
                .iter()
                .all(|(k, v)| labels.iter().any(|(lk, lv)| lk == k && lv == v))
    }
}

/// One sample line: its metric name, labels and value.
pub type SampleLine = (String, Vec<(String, String)>, f64);

/// One sample line: name, labels, value (`None` for a line that is not a sample).
pub fn parse_sample(line: &str) -> Option<SampleLine> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let mut scan = Scan::new(line);
    let name = scan.name(true)?.to_string();
    let labels = scan.labels()?;
    if !matches!(scan.peek(), Some(b' ' | b'\t')) {
        return None;
    }
    let value = parse_value(scan.word()?)?;
    // An optional timestamp, then nothing.
    let _ = scan.word();
    scan.skip_blanks();
    scan.peek().is_none().then_some((name, labels, value))
}

/// A sample value: a float, or `+Inf`, `-Inf`, `NaN` as Go writes them.
fn parse_value(w: &str) -> Option<f64> {
    match w {
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ => w.parse().ok(),
    }
}

/// Why a page gave no count.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    #[error("no series {selector} on the page ({series} series read)")]
    Missing { selector: String, series: usize },
    #[error("{selector} is {value}, not a count")]
    NotACount { selector: String, value: String },
}

/// The sum of every series `sel` selects on `page`, as a whole number of units (rounded down).
pub fn read_count(page: &str, sel: &Selector) -> Result<u64, ReadError> {
    let (mut sum, mut found, mut series) = (0.0_f64, false, 0usize);
    for line in page.lines() {
        let Some((name, labels, v)) = parse_sample(line) else {
            continue;
        };
        series += 1;
        if sel.matches(&name, &labels) {
            found = true;
            sum += v;
        }
    }
    if !found {
        return Err(ReadError::Missing {
            selector: sel.to_string(),
            series,
        });
    }
    if !sum.is_finite() || sum < 0.0 || sum >= u64::MAX as f64 {
        return Err(ReadError::NotACount {
            selector: sel.to_string(),
            value: sum.to_string(),
        });
    }
    Ok(sum.floor() as u64)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const VLLM: &str = "# HELP vllm:generation_tokens_total Number of generation tokens processed.\n\
        # TYPE vllm:generation_tokens_total counter\n\
        vllm:generation_tokens_total{engine=\"0\",model_name=\"meta-llama/Llama-3.1-8B\"} 12345.0\n\
        vllm:generation_tokens_total{engine=\"1\",model_name=\"other, \\\"quoted\\\" {x}\"} 55.0\n\
        vllm:prompt_tokens_total{model_name=\"meta-llama/Llama-3.1-8B\"} 9e3 1700000000000\n\
        python_gc_objects_collected_total{generation=\"0\"} 1.2e+04\n";

    #[test]
    fn colons_in_names_and_awkward_label_values_parse() {
        let (name, labels, v) = parse_sample(VLLM.lines().nth(3).unwrap()).unwrap();
        assert_eq!(name, "vllm:generation_tokens_total");
        assert_eq!(labels[1].1, "other, \"quoted\" {x}");
        assert_eq!(v, 55.0);
        assert_eq!(parse_sample("# TYPE x counter"), None);
        assert_eq!(parse_sample("x_total 1 2 3"), None, "trailing junk");
        assert_eq!(parse_sample("x_total{a=\"1\" 1"), None, "unclosed labels");
        assert_eq!(parse_sample("up +Inf").unwrap().2, f64::INFINITY);
    }

    #[test]
    fn series_matching_the_selector_are_summed() {
        let all = Selector::parse("vllm:generation_tokens_total").unwrap();
        assert_eq!(read_count(VLLM, &all), Ok(12_400));
        let one = Selector::parse(r#"vllm:generation_tokens_total{engine="0"}"#).unwrap();
        assert_eq!(read_count(VLLM, &one), Ok(12_345));
        let sci = Selector::parse("vllm:prompt_tokens_total").unwrap();
        assert_eq!(read_count(VLLM, &sci), Ok(9_000), "with a timestamp");
        let none = Selector::parse(r#"vllm:generation_tokens_total{engine="7"}"#).unwrap();
        assert_eq!(
            read_count(VLLM, &none).unwrap_err().to_string(),
            r#"no series vllm:generation_tokens_total{engine="7"} on the page (4 series read)"#
        );
        let nan = Selector::parse("v").unwrap();
        assert!(matches!(
            read_count("v NaN\n", &nan),
            Err(ReadError::NotACount { .. })
        ));
        assert!(matches!(
            read_count("v -1\n", &nan),
            Err(ReadError::NotACount { .. })
        ));
    }

    #[test]
    fn selectors_parse_and_print_back() {
        let s = Selector::parse(r#" tokens_total{model="a\"b", engine="0",} "#).unwrap();
        assert_eq!(s.name, "tokens_total");
        assert_eq!(
            s.labels,
            [("model".into(), "a\"b".into()), ("engine".into(), "0".into())]
        );
        assert_eq!(s.to_string(), r#"tokens_total{model="a\"b",engine="0"}"#);
        for bad in ["", "9lives", "x{", "x{a=b}", "x y", "x{a=\"1\"} z"] {
            assert!(Selector::parse(bad).is_err(), "{bad:?}");
        }
    }

    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn arbitrary_pages_never_panic(page in "[ -~\n\t{}\"\\=,#:]{0,300}", cut in 0usize..400) {
            let sel = Selector::parse("vllm:generation_tokens_total").unwrap();
            let _ = read_count(&page, &sel);
            let mut mangled = VLLM.to_string();
            mangled.insert_str(cut.min(VLLM.len()), &page);
            let _ = read_count(&mangled, &sel);
            let _ = Selector::parse(&page);
        }

        #[test]
        fn selectors_round_trip(name in "[a-zA-Z_:][a-zA-Z0-9_:]{0,20}",
                                labels in proptest::collection::vec(("[a-z_][a-z0-9_]{0,8}", "[ -~\n]{0,12}"), 0..4)) {
            let sel = Selector { name, labels };
            prop_assert_eq!(Selector::parse(&sel.to_string()), Ok(sel.clone()));
            let line = format!("{sel} 42");
            let (n, l, v) = parse_sample(&line).unwrap();
            prop_assert_eq!((n, l, v), (sel.name, sel.labels, 42.0));
        }
    }
}
