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
mod tests;
