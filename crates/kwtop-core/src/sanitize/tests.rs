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
