//! CSV rosters: a header row, then one person per row, mapped by column name. UTF-8 with or
//! without a byte-order mark; quoted fields may hold commas, quotes and newlines. Rows are read
//! one at a time, so a roster of any size streams.
//!
//! The roster shape `ID,IsActive,FirstName,LastName,MemberID,IsAuthRep` maps with:
//!
//! ```toml
//! external_id = "ID"
//! member_email = { field = "MemberID", transforms = ["trim"] }
//! given_name = "FirstName"
//! family_name = "LastName"
//! active = { field = "IsActive", map = { "True" = "true", "False" = "false" } }
//! role = { field = "IsAuthRep", map = { "True" = "admin", "False" = "member" } }
//! ```

use std::io::Read;

use crate::mapping::Mapping;
use crate::record::{Record, RecordError};

#[derive(Debug, thiserror::Error)]
pub enum CsvError {
    #[error("the CSV has no header row")]
    NoHeader,
    #[error("the header lacks the column(s) the mapping reads: {}", .0.join(", "))]
    MissingColumns(Vec<String>),
    #[error("the header names column `{0}` twice")]
    DuplicateColumn(String),
    #[error("cannot read the CSV: {0}")]
    Read(String),
}

/// A CSV roster being read: an iterator of mapped records or row errors.
pub struct CsvRoster<R: Read> {
    reader: csv::Reader<R>,
    headers: Vec<String>,
    mapping: Mapping,
    record: csv::StringRecord,
    /// The column of each field the mapping reads (looked up once, not per row).
    columns: Vec<(String, usize)>,
    last_line: u64,
    truncated: bool,
}

/// Turns CRLF line ends into LF as the bytes stream by. The csv crate reports a record that
/// follows a CRLF as starting on the line before; with LF alone its line numbers are right, and
/// every error report points at the line an editor shows.
pub struct CrlfToLf<R> {
    inner: R,
    /// A `\r` held back from the end of the last read, waiting to see what follows it.
    pending_cr: bool,
    /// The read buffer, reused.
    tmp: Vec<u8>,
    /// Bytes handed out so far, where the record being read starts, and the most one record
    /// may take (see [`read_capped`]).
    produced: u64,
    record_start: u64,
    max_record: Option<u64>,
}

impl<R: Read> Read for CrlfToLf<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if let Some(max) = self.max_record
            && self.produced - self.record_start > max
        {
            // The csv reader would grow its record without end: stop it here.
            return Err(std::io::Error::other(format!(
                "a record longer than sync.max_record_bytes ({max} bytes)"
            )));
        }
        let held = std::mem::take(&mut self.pending_cr);
        // Room for the held-back `\r` (if it turns out not to start a CRLF) plus what is read:
        // each byte read yields at most one byte out.
        let room = if held { buf.len() - 1 } else { buf.len() };
        self.tmp.resize(room.max(1), 0);
        let n = if room == 0 {
            0
        } else {
            match self.inner.read(&mut self.tmp[..room]) {
                Ok(n) => n,
                Err(e) => {
                    self.pending_cr = held; // kept for the retry (e.g. `Interrupted`)
                    return Err(e);
                }
            }
        };
        let tmp = std::mem::take(&mut self.tmp);
        let mut out = 0;
        if held && (n == 0 || tmp[0] != b'\n') {
            buf[out] = b'\r';
            out += 1;
        }
        let mut i = 0;
        while i < n {
            let b = tmp[i];
            i += 1;
            if b == b'\r' {
                if i == n {
                    self.pending_cr = true;
                    continue;
                }
                if tmp[i] == b'\n' {
                    continue;
                }
            }
            buf[out] = b;
            out += 1;
        }
        // (A one-byte `buf` with a held `\r` cannot look ahead; the csv reader always reads
        // with a buffer of several KiB.)
        if out == 0 && self.pending_cr && n > 0 {
            // Only a `\r` arrived: look further before answering (0 would mean the end).
            self.tmp = tmp;
            return self.read(buf);
        }
        self.tmp = tmp;
        self.produced += out as u64;
        Ok(out)
    }
}

/// Opens a roster: reads and checks the header against the mapping.
pub fn read<R: Read>(input: R, mapping: &Mapping) -> Result<CsvRoster<CrlfToLf<R>>, CsvError> {
    read_capped(input, mapping, None)
}

/// [`read`], failing at a record (the header too) longer than `max_record` bytes, give or take
/// the reader's 8 KiB buffer, instead of holding it in memory whole.
pub fn read_capped<R: Read>(
    input: R,
    mapping: &Mapping,
    max_record: Option<u64>,
) -> Result<CsvRoster<CrlfToLf<R>>, CsvError> {
    let input = CrlfToLf {
        inner: input,
        pending_cr: false,
        tmp: Vec::new(),
        produced: 0,
        record_start: 0,
        max_record,
    };
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(input);
    let headers = reader
        .headers()
        .map_err(|e| CsvError::Read(e.to_string()))?
        .clone();
    let start = reader.position().byte();
    reader.get_mut().record_start = start;
    if headers.is_empty() || headers.iter().all(str::is_empty) {
        return Err(CsvError::NoHeader);
    }
    let headers: Vec<String> = headers
        .iter()
        .enumerate()
        .map(|(i, h)| {
            if i == 0 {
                h.trim_start_matches('\u{feff}')
            } else {
                h
            }
            .trim()
            .to_owned()
        })
        .collect();
    for (i, h) in headers.iter().enumerate() {
        if headers[..i].iter().any(|x| x.eq_ignore_ascii_case(h)) {
            return Err(CsvError::DuplicateColumn(h.clone()));
        }
    }
    let missing: Vec<String> = mapping
        .fields()
        .into_iter()
        .filter(|f| !headers.iter().any(|h| h.eq_ignore_ascii_case(f)))
        .map(str::to_owned)
        .collect();
    if !missing.is_empty() {
        return Err(CsvError::MissingColumns(missing));
    }
    let columns = mapping
        .fields()
        .into_iter()
        .filter_map(|f| {
            let i = headers.iter().position(|h| h.eq_ignore_ascii_case(f))?;
            Some((f.to_owned(), i))
        })
        .collect();
    Ok(CsvRoster {
        reader,
        headers,
        columns,
        mapping: mapping.clone(),
        record: csv::StringRecord::new(),
        last_line: 1,
        truncated: false,
    })
}

impl<R: Read> CsvRoster<R> {
    pub fn headers(&self) -> &[String] {
        &self.headers
    }

    /// The line the last row returned starts on.
    pub fn last_line(&self) -> u64 {
        self.last_line
    }

    /// Whether reading stopped at an unreadable row, leaving the rest of the file unread.
    pub fn truncated(&self) -> bool {
        self.truncated
    }
}

impl<R: Read> Iterator for CsvRoster<CrlfToLf<R>> {
    /// A mapped record, or what is wrong with the row. A read error that leaves the rest of the
    /// file unreadable (invalid UTF-8, an unclosed quote) ends the iteration after reporting it.
    type Item = Result<Record, RecordError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.truncated {
                return None;
            }
            match self.reader.read_record(&mut self.record) {
                Ok(false) => return None,
                Ok(true) => {
                    let start = self.reader.position().byte();
                    self.reader.get_mut().record_start = start;
                }
                Err(e) => {
                    let line = e.position().map_or(0, |p| p.line());
                    self.last_line = line;
                    self.truncated = true;
                    return Some(Err(RecordError {
                        line,
                        external_id: None,
                        column: None,
                        value: None,
                        message: format!("unreadable row: {e}"),
                    }));
                }
            }
            // Blank lines carry nobody.
            if self.record.iter().all(|f| f.trim().is_empty()) {
                continue;
            }
            let line = self.record.position().map_or(0, |p| p.line());
            self.last_line = line;
            if self.record.len() > self.headers.len() {
                return Some(Err(RecordError {
                    line,
                    external_id: None,
                    column: None,
                    value: None,
                    message: format!(
                        "the row has {} fields but the header has {}",
                        self.record.len(),
                        self.headers.len()
                    ),
                }));
            }
            let (columns, record) = (&self.columns, &self.record);
            let get = |name: &str| -> Option<&str> {
                let (_, i) = columns.iter().find(|(f, _)| f == name)?;
                record.get(*i)
            };
            return Some(self.mapping.apply(line, get));
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn roster_mapping() -> Mapping {
        toml::from_str(
            r#"
            external_id = "ID"
            member_email = { field = "MemberID", transforms = ["trim"] }
            given_name = "FirstName"
            family_name = "LastName"
            active = { field = "IsActive", map = { "True" = "true", "False" = "false" } }
            role = { field = "IsAuthRep", map = { "True" = "admin", "False" = "member" } }
            "#,
        )
        .map(|mut m: Mapping| {
            m.keep_raw = true;
            m
        })
        .unwrap()
    }

    fn all(text: &str) -> Vec<Result<Record, RecordError>> {
        let m = roster_mapping();
        m.check().unwrap();
        read(text.as_bytes(), &m).unwrap().collect()
    }

    #[test]
    fn reads_the_roster_shape_with_bom_quotes_and_newlines() {
        let text = "\u{feff}ID,IsActive,FirstName,LastName,MemberID,IsAuthRep\r\n\
                    1,True,Ada,Lovelace,ada@example.com,True\r\n\
                    2,False,\"Grace, Jr.\",\"Hop\"\"per\",grace@example.com,False\r\n\
                    \r\n\
                    3,true,\"Multi\nLine\",X, alan@example.com ,false\r\n";
        let rows = all(text);
        assert_eq!(rows.len(), 3, "{rows:?}");
        let ada = rows[0].as_ref().unwrap();
        assert_eq!(ada.external_id, "1");
        assert!(ada.active);
        assert_eq!(ada.role.as_deref(), Some("admin"));
        assert_eq!(ada.member_email.as_deref(), Some("ada@example.com"));
        let grace = rows[1].as_ref().unwrap();
        assert!(!grace.active);
        assert_eq!(grace.given_name.as_deref(), Some("Grace, Jr."));
        assert_eq!(grace.family_name.as_deref(), Some("Hop\"per"));
        assert_eq!(grace.role.as_deref(), Some("member"));
        let alan = rows[2].as_ref().unwrap();
        assert_eq!(alan.given_name.as_deref(), Some("Multi\nLine"));
        assert_eq!(alan.member_email.as_deref(), Some("alan@example.com"));
        assert_eq!(alan.raw.get("IsActive").map(String::as_str), Some("true"));
    }

    #[test]
    fn row_errors_say_line_column_value_and_why() {
        let text = "ID,IsActive,FirstName,LastName,MemberID,IsAuthRep\n\
                    1,True,A,B,a@example.com,False\n\
                    2,Maybe,A,B,b@example.com,False\n\
                    ,True,A,B,c@example.com,False\n\
                    4,True,A,B,not-an-email,False\n\
                    5,True,A,B,e@example.com,Boss\n\
                    6,True,A,B,f@example.com,False,extra\n";
        let rows = all(text);
        assert!(rows[0].is_ok());
        let e = rows[1].as_ref().unwrap_err();
        assert_eq!(
            (e.line, e.column.as_deref(), e.value.as_deref()),
            (3, Some("IsActive"), Some("Maybe"))
        );
        let e = rows[2].as_ref().unwrap_err();
        assert_eq!((e.line, e.column.as_deref()), (4, Some("ID")));
        let e = rows[3].as_ref().unwrap_err();
        assert_eq!(
            (e.line, e.column.as_deref(), e.value.as_deref()),
            (5, Some("MemberID"), Some("not-an-email"))
        );
        let e = rows[4].as_ref().unwrap_err();
        assert_eq!((e.line, e.column.as_deref()), (6, Some("IsAuthRep")));
        assert!(e.to_string().contains("admin or member"), "{e}");
        let e = rows[5].as_ref().unwrap_err();
        assert_eq!(e.line, 7);
    }

    #[test]
    fn a_header_without_the_mapped_columns_is_refused() {
        let m = roster_mapping();
        let err = read("ID,Name\n1,x\n".as_bytes(), &m).err().unwrap();
        assert!(
            matches!(err, CsvError::MissingColumns(ref c) if c.contains(&"MemberID".to_owned())),
            "{err}"
        );
        assert!(matches!(
            read("".as_bytes(), &m).err().unwrap(),
            CsvError::NoHeader
        ));
        assert!(matches!(
            read("ID,ID\n".as_bytes(), &m).err().unwrap(),
            CsvError::DuplicateColumn(_)
        ));
    }

    #[test]
    fn mappings_are_checked() {
        let bad: Mapping =
            toml::from_str(r#"external_id = { field = "ID", constant = "x" }"#).unwrap();
        assert_eq!(bad.check().unwrap_err().key, "external_id");
        assert!(
            toml::from_str::<Mapping>(
                r#"external_id = "ID"
colour = "red""#
            )
            .is_err(),
            "unknown keys are refused"
        );
        let constant: Mapping = toml::from_str(
            r#"external_id = "ID"
            role = { constant = "member" }
            groups = { field = "Dept", transforms = ["trim"] }"#,
        )
        .unwrap();
        let rows: Vec<_> = read("ID,Dept\n7,\" Sales; Ops, \"\n".as_bytes(), &constant)
            .unwrap()
            .collect();
        let r = rows[0].as_ref().unwrap();
        assert_eq!(r.role.as_deref(), Some("member"));
        assert_eq!(r.groups, ["Sales", "Ops"]);
        assert!(r.active, "no active mapping: everyone is active");
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let m = roster_mapping();
            if let Ok(rows) = read(bytes.as_slice(), &m) {
                for _ in rows {}
            }
        }
    }
}

#[cfg(test)]
mod crlf_tests {
    use std::io::Read;

    use super::CrlfToLf;

    /// A reader that hands out one byte at a time, so every split of a CRLF is exercised.
    struct Trickle<'a>(&'a [u8]);
    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            match self.0.split_first() {
                Some((b, rest)) if !buf.is_empty() => {
                    buf[0] = *b;
                    self.0 = rest;
                    Ok(1)
                }
                _ => Ok(0),
            }
        }
    }

    #[test]
    fn crlf_becomes_lf_and_lone_cr_stays() {
        for input in [&b"a\r\nb\rc\r\n\r\nd\r"[..], b"\r", b"\r\r\n", b"x"] {
            let want: Vec<u8> = String::from_utf8_lossy(input)
                .replace("\r\n", "\n")
                .into_bytes();
            let mut out = Vec::new();
            CrlfToLf {
                inner: Trickle(input),
                pending_cr: false,
                tmp: Vec::new(),
                produced: 0,
                record_start: 0,
                max_record: None,
            }
            .read_to_end(&mut out)
            .unwrap();
            assert_eq!(out, want, "{input:?}");
            let mut out = Vec::new();
            CrlfToLf {
                inner: input,
                pending_cr: false,
                tmp: Vec::new(),
                produced: 0,
                record_start: 0,
                max_record: None,
            }
            .read_to_end(&mut out)
            .unwrap();
            assert_eq!(out, want, "{input:?}");
        }
    }

    #[test]
    fn lines_are_the_lines_an_editor_shows_with_crlf_or_lf() {
        let m: crate::Mapping =
            toml::from_str("external_id = \"email\"\nmember_email = \"email\"").unwrap();
        for text in [
            "email,first_name\r\nann@x.io,Ann\r\nnot-an-email,Bo\r\ncid@x.io,Cid\r\n",
            "email,first_name\nann@x.io,Ann\nnot-an-email,Bo\ncid@x.io,Cid\n",
        ] {
            let mut r = super::read(text.as_bytes(), &m).unwrap();
            let mut lines = vec![];
            while let Some(x) = r.next() {
                lines.push((r.last_line(), x.is_ok()));
            }
            assert_eq!(lines, [(2, true), (3, false), (4, true)], "{text:?}");
        }
    }
}
