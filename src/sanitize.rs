//! Hostile-string defence for everything kwtop reads from other processes.
//!
//! Role: turn attacker-controlled bytes (process names, command lines, user
//! names, cgroup paths) into strings that are safe to draw in a terminal and
//! to embed in JSON / CSV / Markdown / Prometheus exports: no control
//! characters, no ANSI escape sequences (not even their parameter text), no
//! bidi overrides or invisible spoofing characters, and a bounded length.
//!
//! Must not: panic, use `unsafe`, allocate in proportion to the input (inputs
//! can be 64 KiB and more; the work is a single lazy scan and the output is
//! bounded by `max_chars`), or perform any escaping specific to one output
//! format (CSV quoting, JSON escaping, Markdown escaping belong to the
//! exporters; this module only removes what no format should ever see).

/// Default cap for display strings, in chars.
pub const MAX_FIELD_CHARS: usize = 256;

/// Maximum number of argv elements kept by [`argv_from_proc`].
pub const MAX_ARGS: usize = 256;

/// Replacement for every unsafe char and for every removed escape sequence.
const REPLACEMENT: char = '?';
/// Marker appended when the output was cut at `max_chars`.
const ELLIPSIS: char = '…';

const ESC: char = '\u{1b}';
const BEL: char = '\u{07}';
const CAN: char = '\u{18}';
const SUB: char = '\u{1a}';
/// 8-bit C1 introducers / terminator (as Unicode scalars U+0080..U+009F).
const C1_DCS: char = '\u{90}';
const C1_SOS: char = '\u{98}';
const C1_CSI: char = '\u{9b}';
const C1_ST: char = '\u{9c}';
const C1_OSC: char = '\u{9d}';
const C1_PM: char = '\u{9e}';
const C1_APC: char = '\u{9f}';

/// True for chars that must never reach a terminal or an export, when they
/// appear outside an escape sequence: all `char::is_control()` chars (C0,
/// DEL, C1), bidi controls, invisible format chars usable for spoofing,
/// line/paragraph separators and U+FFFD (the lossy-decoding marker).
pub fn is_unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            // bidi controls
            '\u{061C}'
                | '\u{200E}'
                | '\u{200F}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2066}'..='\u{2069}'
                // zero-width / invisible format chars
                | '\u{00AD}'
                | '\u{180E}'
                | '\u{200B}'..='\u{200D}'
                | '\u{2060}'..='\u{2064}'
                | '\u{206A}'..='\u{206F}'
                | '\u{FEFF}'
                | '\u{FFF9}'..='\u{FFFB}'
                // line / paragraph separators
                | '\u{2028}'
                | '\u{2029}'
                // replacement char from invalid UTF-8
                | '\u{FFFD}'
                // tag characters (invisible "ASCII smuggling")
                | '\u{E0000}'..='\u{E007F}'
        )
}

/// Lossy-UTF-8 decode, then make safe: every C0 control (incl. ESC, CR, LF, TAB, BEL), DEL, every C1 control (U+0080–U+009F),
/// bidi controls (U+061C, U+200E, U+200F, U+202A–U+202E, U+2066–U+2069), other invisible format chars that can spoof
/// (U+200B–U+200D, U+2060, U+FEFF, U+00AD), line/paragraph separators (U+2028/2029) and U+FFFD from invalid UTF-8 become '?'.
/// ANSI escape sequences (CSI `ESC [ ... final`, OSC `ESC ] ... (BEL | ESC \)`, DCS/APC/PM/SOS strings, 2-byte ESC x) are removed
/// as a whole (replaced by a single '?'), so no parameter text leaks through either. Result is truncated to at most `max_chars`
/// chars, ending in '…' when cut. Must never allocate more than O(max_chars) beyond the input scan (inputs can be 64 KiB+).
///
/// A few more invisible chars are also replaced (U+180E, U+2061–U+2064, U+206A–U+206F, U+FFF9–U+FFFB, tag chars
/// U+E0000–U+E007F); see [`is_unsafe_char`]. An unterminated OSC/DCS/APC/PM/SOS string swallows the rest of the input.
pub fn sanitize_bytes(raw: &[u8], max_chars: usize) -> String {
    sanitize_chars(lossy_chars(raw), raw.len(), max_chars)
}

/// Same as [`sanitize_bytes`] for input that is already valid UTF-8.
pub fn sanitize_str(s: &str, max_chars: usize) -> String {
    sanitize_chars(s.chars(), s.len(), max_chars)
}

/// /proc/PID/cmdline content: NUL-separated argv (trailing NUL optional; some processes rewrite it with spaces).
/// Joins args with single spaces, sanitized as above. Empty input → empty string.
///
/// All trailing NULs are dropped first (processes that rewrite their title often pad with NULs). An escape sequence split
/// across two args is still removed as a whole, because the joined text is scanned as one stream.
pub fn cmdline_from_proc(raw: &[u8], max_chars: usize) -> String {
    let trimmed = trim_trailing_nuls(raw);
    // NUL never occurs inside a multi-byte UTF-8 sequence, so splitting on NUL
    // before decoding is equivalent to decoding and then mapping NUL to ' '.
    let chars = trimmed
        .split(|&b| b == 0)
        .enumerate()
        .flat_map(|(i, arg)| (i > 0).then_some(' ').into_iter().chain(lossy_chars(arg)));
    sanitize_chars(chars, trimmed.len(), max_chars)
}

/// Split version for redaction later: argv elements, each sanitized (each capped at max_chars, at most 256 args kept).
///
/// Trailing NULs are dropped first; empty input → empty vector. Empty args in the middle are kept (as empty strings).
pub fn argv_from_proc(raw: &[u8], max_chars: usize) -> Vec<String> {
    let trimmed = trim_trailing_nuls(raw);
    if trimmed.is_empty() {
        return Vec::new();
    }
    trimmed
        .split(|&b| b == 0)
        .take(MAX_ARGS)
        .map(|arg| sanitize_bytes(arg, max_chars))
        .collect()
}

fn trim_trailing_nuls(raw: &[u8]) -> &[u8] {
    let end = raw.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    &raw[..end]
}

/// Lazy equivalent of `String::from_utf8_lossy(raw).chars()`, without
/// allocating a copy of the input.
fn lossy_chars(raw: &[u8]) -> impl Iterator<Item = char> + '_ {
    raw.utf8_chunks().flat_map(|chunk| {
        let bad = (!chunk.invalid().is_empty()).then_some('\u{FFFD}');
        chunk.valid().chars().chain(bad)
    })
}

/// Bounded output buffer: at most `max` chars, last one replaced by '…'
/// when more output would have followed.
struct Out {
    s: String,
    n: usize,
    max: usize,
    full: bool,
}

impl Out {
    fn new(input_len: usize, max: usize) -> Self {
        // Capacity hint only: never more than the input, never more than
        // 4 bytes per allowed char.
        let cap = input_len.min(max.saturating_mul(4)).min(4096);
        Self {
            s: String::with_capacity(cap),
            n: 0,
            max,
            full: false,
        }
    }

    /// Pushes `c`; returns false once the buffer is full (output was cut).
    fn push(&mut self, c: char) -> bool {
        if self.full {
            return false;
        }
        if self.n >= self.max {
            self.full = true;
            if self.s.pop().is_some() {
                self.s.push(ELLIPSIS);
            }
            return false;
        }
        self.s.push(c);
        self.n += 1;
        true
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    /// Plain text.
    Normal,
    /// Just after ESC.
    Esc,
    /// ESC followed by intermediate bytes (0x20..=0x2F), waiting for a final byte.
    EscIntermediate,
    /// Inside a CSI sequence (parameters / intermediates), waiting for a final byte.
    Csi,
    /// Inside an OSC / DCS / SOS / PM / APC string, waiting for BEL or ST.
    Str,
    /// ESC seen inside a string: `\` ends it, anything else starts a new sequence.
    StrEsc,
}

fn sanitize_chars(chars: impl Iterator<Item = char>, input_len: usize, max_chars: usize) -> String {
    let mut out = Out::new(input_len, max_chars);
    let mut state = State::Normal;
    for c in chars {
        state = match step(state, c, &mut out) {
            Some(next) => next,
            None => break, // output full
        };
    }
    out.s
}

/// Advances the escape-sequence state machine by one char. Returns `None`
/// when the output is full.
fn step(state: State, c: char, out: &mut Out) -> Option<State> {
    let ok = |b: bool, s: State| b.then_some(s);
    match state {
        State::Normal => match c {
            ESC => ok(out.push(REPLACEMENT), State::Esc),
            C1_CSI => ok(out.push(REPLACEMENT), State::Csi),
            C1_OSC | C1_DCS | C1_SOS | C1_PM | C1_APC => ok(out.push(REPLACEMENT), State::Str),
            c if is_unsafe_char(c) => ok(out.push(REPLACEMENT), State::Normal),
            c => ok(out.push(c), State::Normal),
        },
        State::Esc => match c {
            '[' => Some(State::Csi),
            ']' | 'P' | 'X' | '^' | '_' => Some(State::Str),
            '\u{20}'..='\u{2f}' => Some(State::EscIntermediate),
            '\u{30}'..='\u{7e}' => Some(State::Normal), // 2-byte ESC x
            ESC => ok(out.push(REPLACEMENT), State::Esc),
            CAN | SUB => Some(State::Normal),
            // Anything else aborts the sequence and is handled as plain text.
            _ => step(State::Normal, c, out),
        },
        State::EscIntermediate => match c {
            '\u{20}'..='\u{2f}' => Some(State::EscIntermediate),
            '\u{30}'..='\u{7e}' => Some(State::Normal),
            ESC => ok(out.push(REPLACEMENT), State::Esc),
            CAN | SUB => Some(State::Normal),
            _ => step(State::Normal, c, out),
        },
        State::Csi => match c {
            '\u{20}'..='\u{3f}' => Some(State::Csi),
            '\u{40}'..='\u{7e}' => Some(State::Normal),
            ESC => ok(out.push(REPLACEMENT), State::Esc),
            CAN | SUB => Some(State::Normal),
            _ => step(State::Normal, c, out),
        },
        State::Str => match c {
            BEL | C1_ST | CAN | SUB => Some(State::Normal),
            ESC => Some(State::StrEsc),
            _ => Some(State::Str),
        },
        State::StrEsc => match c {
            '\\' => Some(State::Normal),
            // ESC inside a string ends it and starts a new sequence.
            _ => {
                if !out.push(REPLACEMENT) {
                    return None;
                }
                step(State::Esc, c, out)
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn s(x: &str) -> String {
        sanitize_str(x, MAX_FIELD_CHARS)
    }

    #[test]
    fn plain_text_is_unchanged() {
        assert_eq!(s("nginx: worker process"), "nginx: worker process");
        assert_eq!(s(""), "");
    }

    #[test]
    fn osc_title_change_bel_terminated() {
        assert_eq!(s("a\x1b]0;pwned\x07b"), "a?b");
    }

    #[test]
    fn osc_title_change_st_terminated() {
        assert_eq!(s("a\x1b]2;x\x1b\\b"), "a?b");
    }

    #[test]
    fn osc_8bit_and_unterminated() {
        assert_eq!(s("a\u{9d}0;pwned\u{9c}b"), "a?b");
        // Unterminated string swallows the rest: no parameter text leaks.
        assert_eq!(s("a\x1b]0;pwned"), "a?");
    }

    #[test]
    fn screen_clear_removed() {
        assert_eq!(s("x\x1b[2Jy"), "x?y");
    }

    #[test]
    fn cursor_move_removed() {
        assert_eq!(s("x\x1b[10;10Hy"), "x?y");
        assert_eq!(s("\x1b[?25l\x1b[?1049h"), "??");
    }

    #[test]
    fn eight_bit_csi_removed() {
        assert_eq!(s("a\u{9b}31mred"), "a?red");
    }

    #[test]
    fn dcs_apc_pm_sos_removed() {
        assert_eq!(s("a\x1bPq#0;secret\x1b\\b"), "a?b");
        assert_eq!(s("a\x1b_apc\x07b"), "a?b");
        assert_eq!(s("a\x1b^pm\x1b\\b"), "a?b");
        assert_eq!(s("a\x1bXsos\x1b\\b"), "a?b");
    }

    #[test]
    fn two_byte_and_nf_escapes_removed() {
        assert_eq!(s("a\x1bcb"), "a?b"); // RIS (full reset)
        assert_eq!(s("a\x1b(0b"), "a?b"); // charset designation
        assert_eq!(s("a\x1b#8b"), "a?b"); // DECALN
        assert_eq!(s("a\x1b"), "a?");
    }

    #[test]
    fn esc_inside_string_starts_new_sequence() {
        assert_eq!(s("a\x1b]0;t\x1b[2Jb"), "a??b");
    }

    #[test]
    fn controls_become_question_marks() {
        assert_eq!(s("a\tb\nc\rd\x07e\x7ff\u{85}g\0h"), "a?b?c?d?e?f?g?h");
    }

    #[test]
    fn bidi_override_neutralised() {
        assert_eq!(s("abc\u{202E}fed"), "abc?fed");
        for c in [
            '\u{061C}', '\u{200E}', '\u{200F}', '\u{2066}', '\u{2069}', '\u{202A}',
        ] {
            assert_eq!(s(&format!("x{c}y")), "x?y");
        }
    }

    #[test]
    fn invisible_format_chars_neutralised() {
        for c in [
            '\u{200B}',
            '\u{200C}',
            '\u{200D}',
            '\u{2060}',
            '\u{FEFF}',
            '\u{00AD}',
            '\u{2028}',
            '\u{2029}',
            '\u{E0041}',
        ] {
            assert_eq!(s(&format!("x{c}y")), "x?y", "{:X}", c as u32);
        }
    }

    #[test]
    fn invalid_utf8_becomes_question_mark() {
        assert_eq!(sanitize_bytes(b"ab\xff\xfecd", 64), "ab??cd");
        assert_eq!(sanitize_bytes(b"a\xe2\x82b", 64), "a?b");
        // A raw 0x9B byte is invalid UTF-8, not an 8-bit CSI.
        assert_eq!(sanitize_bytes(b"a\x9b31mb", 64), "a?31mb");
        assert_eq!(sanitize_str("\u{FFFD}", 64), "?");
    }

    #[test]
    fn huge_name_is_truncated_with_ellipsis() {
        let raw = vec![b'A'; 64 * 1024];
        let out = sanitize_bytes(&raw, MAX_FIELD_CHARS);
        assert_eq!(out.chars().count(), MAX_FIELD_CHARS);
        assert!(out.ends_with('…'));
        assert!(out.capacity() <= 4 * MAX_FIELD_CHARS + 16);

        let out = sanitize_bytes(&raw, 16);
        assert_eq!(out, format!("{}…", "A".repeat(15)));
    }

    #[test]
    fn truncation_edges() {
        assert_eq!(sanitize_str("abc", 3), "abc");
        assert_eq!(sanitize_str("abcd", 3), "ab…");
        assert_eq!(sanitize_str("abcd", 1), "…");
        assert_eq!(sanitize_str("abcd", 0), "");
        assert_eq!(sanitize_str("", 0), "");
        // A trailing escape sequence counts as one output char.
        assert_eq!(sanitize_str("abc\x1b[2J", 3), "ab…");
        assert_eq!(sanitize_str("abc\x1b[2J", 4), "abc?");
        assert_eq!(sanitize_str("ab", usize::MAX), "ab");
    }

    #[test]
    fn cjk_and_emoji_kept() {
        let x = "数据处理 🚀🔥 Ωμέγα café";
        assert_eq!(s(x), x);
        assert_eq!(sanitize_str("数据处理", 3), "数据…");
    }

    #[test]
    fn cmdline_joins_args() {
        assert_eq!(cmdline_from_proc(b"", 64), "");
        assert_eq!(cmdline_from_proc(b"\0\0", 64), "");
        assert_eq!(
            cmdline_from_proc(b"python3\0-m\0http.server\0", 64),
            "python3 -m http.server"
        );
        assert_eq!(
            cmdline_from_proc(b"python3\0-m\0http.server", 64),
            "python3 -m http.server"
        );
        assert_eq!(
            cmdline_from_proc(b"nginx: worker process\0\0\0\0", 64),
            "nginx: worker process"
        );
        assert_eq!(cmdline_from_proc(b"a\0\0b", 64), "a  b");
        assert_eq!(cmdline_from_proc(b"a\0b\0c", 4), "a b…");
    }

    #[test]
    fn cmdline_escape_split_across_args_removed() {
        assert_eq!(
            cmdline_from_proc(b"evil\0\x1b]0;\0pwned\x07\0ok", 64),
            "evil ? ok"
        );
        assert_eq!(cmdline_from_proc(b"x\0\x1b[2J\0\xff", 64), "x ? ?");
    }

    #[test]
    fn argv_split() {
        assert!(argv_from_proc(b"", 64).is_empty());
        assert!(argv_from_proc(b"\0", 64).is_empty());
        assert_eq!(argv_from_proc(b"ls\0-la\0/tmp\0", 64), ["ls", "-la", "/tmp"]);
        assert_eq!(argv_from_proc(b"a\0\0b", 64), ["a", "", "b"]);
        assert_eq!(argv_from_proc(b"x\0\x1b[2J\0abcdef", 4), ["x", "?", "abc…"]);
        let many: Vec<u8> = (0..1000).flat_map(|_| *b"a\0").collect();
        assert_eq!(argv_from_proc(&many, 8).len(), MAX_ARGS);
    }

    fn assert_safe(out: &str, max: usize) -> Result<(), TestCaseError> {
        prop_assert!(out.chars().count() <= max, "too long: {out:?}");
        for c in out.chars() {
            prop_assert!(!c.is_control(), "control {:X} in {out:?}", c as u32);
            prop_assert!(!is_unsafe_char(c), "unsafe {:X} in {out:?}", c as u32);
            // Independent of `is_unsafe_char`: the list from the spec.
            let listed = matches!(
                c,
                '\u{061C}'
                    | '\u{200E}'
                    | '\u{200F}'
                    | '\u{202A}'..='\u{202E}'
                    | '\u{2066}'..='\u{2069}'
                    | '\u{200B}'..='\u{200D}'
                    | '\u{2060}'
                    | '\u{FEFF}'
                    | '\u{00AD}'
                    | '\u{2028}'
                    | '\u{2029}'
                    | '\u{FFFD}'
            );
            prop_assert!(!listed, "listed char {:X} in {out:?}", c as u32);
        }
        Ok(())
    }

    /// Bytes biased towards the interesting ones: escape introducers,
    /// terminators, C1 controls (UTF-8 encoded), bidi and format chars.
    fn hostile_bytes() -> impl Strategy<Value = Vec<u8>> {
        let piece = prop_oneof![
            any::<u8>().prop_map(|b| vec![b]),
            Just(b"\x1b".to_vec()),
            Just(b"\x1b[".to_vec()),
            Just(b"\x1b]".to_vec()),
            Just(b"\x1bP".to_vec()),
            Just(b"\x1b\\".to_vec()),
            Just(b"\x07".to_vec()),
            Just(b"\0".to_vec()),
            Just("\u{9b}".as_bytes().to_vec()),
            Just("\u{9d}".as_bytes().to_vec()),
            Just("\u{9c}".as_bytes().to_vec()),
            Just("\u{202E}".as_bytes().to_vec()),
            Just("\u{2066}".as_bytes().to_vec()),
            Just("\u{200D}".as_bytes().to_vec()),
            Just("\u{FEFF}".as_bytes().to_vec()),
            Just("\u{2028}".as_bytes().to_vec()),
            Just("数🚀".as_bytes().to_vec()),
            "[ -~]{0,4}".prop_map(String::into_bytes),
        ];
        prop::collection::vec(piece, 0..64).prop_map(|v| v.concat())
    }

    proptest! {
        #[test]
        fn prop_sanitize_bytes_is_safe(raw in hostile_bytes(), max in 0usize..80) {
            assert_safe(&sanitize_bytes(&raw, max), max)?;
        }

        #[test]
        fn prop_random_bytes_are_safe(raw in prop::collection::vec(any::<u8>(), 0..512), max in 0usize..300) {
            assert_safe(&sanitize_bytes(&raw, max), max)?;
        }

        #[test]
        fn prop_sanitize_str_is_safe(x in any::<String>(), max in 0usize..80) {
            assert_safe(&sanitize_str(&x, max), max)?;
        }

        #[test]
        fn prop_cmdline_and_argv_are_safe(raw in hostile_bytes(), max in 0usize..80) {
            assert_safe(&cmdline_from_proc(&raw, max), max)?;
            let argv = argv_from_proc(&raw, max);
            prop_assert!(argv.len() <= MAX_ARGS);
            for a in &argv {
                assert_safe(a, max)?;
            }
        }

        #[test]
        fn prop_safe_text_is_unchanged(x in "[a-zA-Z0-9 ._:/@=-]{0,100}") {
            prop_assert_eq!(sanitize_str(&x, 200), x);
        }
    }
}
