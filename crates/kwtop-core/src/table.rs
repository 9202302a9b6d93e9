//! Reading the CSV tables kwtop embeds at build time (`assets/`): the grid intensities, CPU TDPs,
//! packages' cores and threads, and Cloud Carbon Footprint's watts per vCPU.
//!
//! The [`csv`] crate does the reading (RFC 4180 quoting, so a `source` column may hold commas; LF or
//! CRLF line ends; an optional BOM; `#` comment lines where a table has a provenance line), serde
//! turns each record into a typed row, and [`Row::check`] applies the rules a row's values must meet
//! beyond their types. The header must be exactly the expected one. Every error names the table and,
//! for a record, the line it starts on.

use serde::de::DeserializeOwned;

/// One embedded table: its file name (for messages), its text and the header it must have.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Table<'a> {
    pub name: &'a str,
    pub text: &'a str,
    pub header: &'a [&'a str],
    /// Lines starting with `#` are comments (the tables that open with a provenance line).
    pub comments: bool,
}

/// A typed row of a table, deserialized by column name.
pub(crate) trait Row: DeserializeOwned {
    /// The rules the row's values must meet beyond their types; the message names the column and
    /// the value that broke one.
    fn check(&self) -> Result<(), String>;
}

impl<'a> Table<'a> {
    /// Every data row, in table order; the first error (header, field count, a value's type or
    /// rule) ends the reading.
    pub(crate) fn rows<T: Row>(&self) -> Result<Vec<T>, String> {
        self.iter()?.collect()
    }

    /// The data rows one at a time, the header checked first: a lookup that needs one row keeps
    /// none of the others (the TDP table's 4,918 rows were ~0.3 MB of heap at start).
    pub(crate) fn iter<T: Row>(&self) -> Result<Rows<'a, T>, String> {
        // The BOM goes first: csv strips one only from the first record, so a comment line behind
        // it would be read as the header.
        let text = self.text.strip_prefix('\u{feff}').unwrap_or(self.text);
        let mut reader = csv::ReaderBuilder::new()
            .comment(self.comments.then_some(b'#'))
            .from_reader(text.as_bytes());
        let header = reader
            .headers()
            .map_err(|e| format!("{}: header: {e}", self.name))?
            .clone();
        if !header.iter().eq(self.header.iter().copied()) {
            let found = header.iter().collect::<Vec<_>>().join(",");
            return Err(if found.is_empty() {
                format!(
                    "{}: empty table, expected the header {:?}",
                    self.name,
                    self.header.join(",")
                )
            } else {
                format!(
                    "{}: header {found:?}, expected {:?}",
                    self.name,
                    self.header.join(",")
                )
            });
        }
        Ok(Rows {
            name: self.name,
            text,
            comments: self.comments,
            reader,
            header,
            record: csv::StringRecord::new(),
            row: std::marker::PhantomData,
        })
    }
}

/// The rows of a [`Table`], read as they are asked for.
pub(crate) struct Rows<'a, T> {
    name: &'a str,
    /// The text without its BOM, for the line numbers of errors.
    text: &'a str,
    comments: bool,
    reader: csv::Reader<&'a [u8]>,
    header: csv::StringRecord,
    record: csv::StringRecord,
    row: std::marker::PhantomData<fn() -> T>,
}

impl<T: Row> Iterator for Rows<'_, T> {
    type Item = Result<T, String>;

    fn next(&mut self) -> Option<Self::Item> {
        let line = |pos: Option<&csv::Position>| line_at(self.text, self.comments, pos);
        match self.reader.read_record(&mut self.record) {
            Ok(true) => {}
            Ok(false) => return None,
            Err(e) => {
                let line = line(e.position());
                return Some(Err(match e.kind() {
                    csv::ErrorKind::UnequalLengths {
                        expected_len, len, ..
                    } => {
                        format!("{} line {line}: {len} fields, expected {expected_len}", self.name)
                    }
                    _ => format!("{} line {line}: {e}", self.name),
                }));
            }
        }
        let (header, record) = (&self.header, &self.record);
        let row = record
            .deserialize::<T>(Some(header))
            .map_err(|e| match e.kind() {
                csv::ErrorKind::Deserialize { err, .. } => {
                    let field = err.field().and_then(|i| usize::try_from(i).ok());
                    match field.and_then(|i| Some((header.get(i)?, record.get(i)?))) {
                        Some((column, value)) => format!("{column} {value:?}: {}", err.kind()),
                        None => err.kind().to_string(),
                    }
                }
                _ => e.to_string(),
            })
            .and_then(|row| row.check().map(|()| row))
            // Only an error needs the line: counting it for every record would be quadratic.
            .map_err(|why| format!("{} line {}: {why}", self.name, line(record.position())));
        Some(row)
    }
}

/// The text of a table embedded deflated (`build.rs`: a little-endian u32 length, then raw
/// deflate). The large tables are kept this way because the kernel maps an embedded table's
/// pages into the monitor each time it is read: the four were 226 KiB of the binary, 320 KiB of
/// resident memory for the whole run, where deflated they are 31 KiB, and the text lives on the
/// heap only while a lookup reads it.
pub(crate) fn inflate(name: &str, packed: &[u8]) -> Result<String, String> {
    use miniz_oxide::inflate::TINFLStatus;
    use miniz_oxide::inflate::core::{DecompressorOxide, decompress, inflate_flags};
    let bad = |why: String| format!("{name}: embedded copy unreadable: {why}");
    let (len, deflated) = packed
        .split_first_chunk::<4>()
        .ok_or_else(|| bad("too short".into()))?;
    let len = u32::from_le_bytes(*len) as usize;
    // One call into a buffer of the known size: no 32 KiB window, no stream state (flate2's reader
    // put ~50 KiB on the stack, which stays resident), no buffer growing by doubling.
    let mut bytes = vec![0u8; len];
    let mut state = Box::<DecompressorOxide>::default();
    let flags = inflate_flags::TINFL_FLAG_USING_NON_WRAPPING_OUTPUT_BUF;
    let (status, _, out) = decompress(&mut state, deflated, &mut bytes, 0, flags);
    match status {
        TINFLStatus::Done if out == len => {}
        TINFLStatus::Done | TINFLStatus::NeedsMoreInput | TINFLStatus::FailedCannotMakeProgress => {
            return Err(bad(format!("{out} bytes, expected {len}")));
        }
        // More than the length says: a corrupt copy, not a table cut short.
        TINFLStatus::HasMoreOutput => return Err(bad(format!("longer than {len} bytes"))),
        other => return Err(bad(format!("{other:?}"))),
    }
    String::from_utf8(bytes).map_err(|e| bad(e.to_string()))
}

/// An embedded table as `build.rs` deflated it, with its file name for messages.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Packed {
    pub name: &'static str,
    pub bytes: &'static [u8],
}

impl Packed {
    /// The table's text ([`inflate`]).
    pub(crate) fn text(&self) -> Result<String, String> {
        inflate(self.name, self.bytes)
    }
}

/// The deflated copy of `assets/NAME` that `build.rs` made, as a [`Packed`].
macro_rules! packed_asset {
    ($name:literal) => {
        crate::table::Packed {
            name: $name,
            bytes: include_bytes!(concat!(env!("OUT_DIR"), "/", $name, ".deflate")),
        }
    };
}
pub(crate) use packed_asset;

/// The line (1-based) a record starts on. Computed from the byte offset the reader resumed at,
/// because csv's own `Position::line()` counts from there too: it names the line before the
/// record when lines end in CRLF (as `cloud.csv` does; BurntSushi/rust-csv#395) and the comment
/// or blank line when one precedes the record. So: skip line ends, and comment lines where the
/// table has them, then count the newlines before.
fn line_at(text: &str, comments: bool, pos: Option<&csv::Position>) -> u64 {
    let bytes = text.as_bytes();
    let Some(pos) = pos else { return 0 };
    let mut at = usize::try_from(pos.byte()).map_or(bytes.len(), |b| b.min(bytes.len()));
    loop {
        match bytes.get(at) {
            Some(b'\r' | b'\n') => at += 1,
            Some(b'#') if comments => {
                at = bytes[at..]
                    .iter()
                    .position(|&b| b == b'\n')
                    .map_or(bytes.len(), |n| at + n + 1);
            }
            _ => break,
        }
    }
    let newlines = bytes[..at].iter().filter(|&&b| b == b'\n').count();
    u64::try_from(newlines).map_or(u64::MAX, |n| n + 1)
}

/// `v` as a finite, non-negative number, else a message naming `column`.
pub(crate) fn non_negative(column: &str, v: f64) -> Result<(), String> {
    if v.is_finite() && v >= 0.0 {
        Ok(())
    } else {
        Err(format!("{column} {v}: need a finite, non-negative number"))
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, PartialEq, Deserialize)]
    struct R {
        name: String,
        n: u16,
        w: f64,
    }

    impl Row for R {
        fn check(&self) -> Result<(), String> {
            non_negative("w", self.w)
        }
    }

    const HEADER: &[&str] = &["name", "n", "w"];

    fn read(text: &str, comments: bool) -> Result<Vec<R>, String> {
        Table {
            name: "t.csv",
            text,
            header: HEADER,
            comments,
        }
        .rows()
    }

    fn r(name: &str, n: u16, w: f64) -> R {
        R {
            name: name.into(),
            n,
            w,
        }
    }

    fn pack(len: u32, text: &[u8]) -> Vec<u8> {
        let mut out = len.to_le_bytes().to_vec();
        out.extend(miniz_oxide::deflate::compress_to_vec(text, 10));
        out
    }

    #[test]
    fn inflate_checks_the_embedded_copy() {
        assert_eq!(inflate("t.csv", &pack(6, b"name\nx")).unwrap(), "name\nx");
        let short = inflate("t.csv", &pack(9, b"name\nx")).unwrap_err();
        assert_eq!(short, "t.csv: embedded copy unreadable: 6 bytes, expected 9");
        // The length is what build.rs wrote: a copy that says otherwise is corrupt either way.
        let long = inflate("t.csv", &pack(4, b"name\nx")).unwrap_err();
        assert_eq!(long, "t.csv: embedded copy unreadable: longer than 4 bytes");
        let e = inflate("t.csv", &[1, 0]).unwrap_err();
        assert_eq!(e, "t.csv: embedded copy unreadable: too short");
        let e = inflate("t.csv", &[9, 0, 0, 0, 0xff, 0xff, 0xff]).unwrap_err();
        assert!(e.starts_with("t.csv: embedded copy unreadable: "), "{e}");
        let e = inflate("t.csv", &pack(2, &[0xc3, 0x28])).unwrap_err();
        assert!(e.contains("utf-8"), "{e}");
    }

    #[test]
    fn iter_reads_row_by_row_and_stops_nowhere_on_its_own() {
        let t = Table {
            name: "t.csv",
            text: "name,n,w\na,1,2\nb,x,3\nc,3,4\n",
            header: HEADER,
            comments: false,
        };
        let rows: Vec<Result<R, String>> = t.iter().unwrap().collect();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0], Ok(r("a", 1, 2.0)));
        assert!(
            rows[1].as_ref().unwrap_err().starts_with("t.csv line 3: n \"x\""),
            "{rows:?}"
        );
        assert_eq!(rows[2], Ok(r("c", 3, 4.0)));
        // rows() stops at the first error.
        assert!(t.rows::<R>().unwrap_err().starts_with("t.csv line 3: "));
    }

    #[test]
    fn quotes_bom_crlf_comments_and_blank_lines() {
        let text = "\u{feff}# provenance, with a comma\r\nname,n,w\r\n\"x, y\",1,0.5\r\n\r\n\"say \"\"hi\"\"\",2,0\r\n# note\r\n\"multi\nline\",3,1e3";
        assert_eq!(
            read(text, true).unwrap(),
            [
                r("x, y", 1, 0.5),
                r("say \"hi\"", 2, 0.0),
                r("multi\nline", 3, 1000.0)
            ]
        );
        // Without comments, the `#` line is the header, which is wrong.
        let e = read(text, false).unwrap_err();
        assert!(e.starts_with("t.csv: header \"# provenance"), "{e}");
        assert!(e.contains("expected \"name,n,w\""), "{e}");
    }

    #[test]
    fn header_must_be_the_expected_one() {
        let e = read("name,w,n\nx,1,2\n", false).unwrap_err();
        assert_eq!(e, "t.csv: header \"name,w,n\", expected \"name,n,w\"");
        let e = read("name,n\nx,1\n", false).unwrap_err();
        assert!(e.contains("header \"name,n\""), "{e}");
        let e = read("", false).unwrap_err();
        assert_eq!(e, "t.csv: empty table, expected the header \"name,n,w\"");
        assert_eq!(read("name,n,w\n", false).unwrap(), []);
    }

    #[test]
    fn errors_name_the_line_the_record_starts_on() {
        // LF, CRLF, after a comment, after a blank line, after a multi-line field.
        let cases = [
            (
                "name,n,w\nx,1,2\ny,1\n",
                false,
                "t.csv line 3: 2 fields, expected 3",
            ),
            (
                "name,n,w\r\nx,1,2\r\ny,1,2,3\r\n",
                false,
                "t.csv line 3: 4 fields, expected 3",
            ),
            (
                "name,n,w\r\nx,1,2\r\n# c\r\n\r\ny,70000,2\r\n",
                true,
                "t.csv line 5: n \"70000\": ",
            ),
            (
                "name,n,w\nx,1,2\n\n\ny,1,-1\n",
                false,
                "t.csv line 5: w -1: need a finite, non-negative",
            ),
            (
                "name,n,w\n\"a\nb\",1,2\ny,x,2\n",
                false,
                "t.csv line 4: n \"x\": invalid digit",
            ),
            (
                "# a\n# b\nname,n,w\n\"p\nq\",1,NaN\n",
                true,
                "t.csv line 4: w NaN: need a finite",
            ),
            (
                "name,n,w\nx,1,2\ny,1,inf\n",
                false,
                "t.csv line 3: w inf: need a finite",
            ),
            (
                "name,n,w\nx,1,abc\n",
                false,
                "t.csv line 2: w \"abc\": invalid float",
            ),
        ];
        for (text, comments, want) in cases {
            let e = read(text, comments).unwrap_err();
            assert!(e.starts_with(want), "{text:?}: {e}");
        }
    }

    #[test]
    fn an_unterminated_quote_swallows_the_rest_and_is_caught_by_the_field_count() {
        // csv is lenient about quotes: an unclosed quote runs to the end of the text, so the record
        // is short of fields (a shipped table's row count test catches one in a last column).
        let e = read("name,n,w\n\"open,1,2\nx,1,2\n", false).unwrap_err();
        assert_eq!(e, "t.csv line 2: 1 fields, expected 3");
    }
}
