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

impl Table<'_> {
    /// Every data row, in table order; the first error (header, field count, a value's type or
    /// rule) ends the reading.
    pub(crate) fn rows<T: Row>(&self) -> Result<Vec<T>, String> {
        // The BOM goes first: csv strips one only from the first record, so a comment line behind
        // it would be read as the header.
        let text = self.text.strip_prefix('\u{feff}').unwrap_or(self.text);
        let line = |pos: Option<&csv::Position>| line_at(text, self.comments, pos);
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
        let mut out = Vec::new();
        let mut record = csv::StringRecord::new();
        loop {
            match reader.read_record(&mut record) {
                Ok(true) => {}
                Ok(false) => return Ok(out),
                Err(e) => {
                    let line = line(e.position());
                    return Err(match e.kind() {
                        csv::ErrorKind::UnequalLengths {
                            expected_len, len, ..
                        } => {
                            format!("{} line {line}: {len} fields, expected {expected_len}", self.name)
                        }
                        _ => format!("{} line {line}: {e}", self.name),
                    });
                }
            }
            let row = record
                .deserialize::<T>(Some(&header))
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
                .map_err(|why| format!("{} line {}: {why}", self.name, line(record.position())))?;
            out.push(row);
        }
    }
}

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
