//! Reading exported files row by row: CSV (with a header line), JSON lines, or one
//! JSON array, each plain or gzip-compressed (`.gz`), from a file or stdin (`-`).
//! Nothing is read whole: a row is parsed, handed on and dropped, so memory stays flat
//! whatever the file's size. A row that cannot be read is handed on too, as a
//! [`RowContent::Broken`] with the reason, for the rejects file; reading goes on.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Columns of a rejects file that are not the record's: dropped when a fixed rejects
/// file is imported again.
pub const REJECT_COLUMNS: [&str; 2] = ["rejected_line", "rejected_reason"];

/// A file's format (`--format`, else from its name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum InputFormat {
    Csv,
    Jsonl,
    Json,
}

impl InputFormat {
    /// From the file's name, ignoring a `.gz` ending: `.csv`, `.jsonl`/`.ndjson`, `.json`.
    pub fn of(path: &Path) -> Option<InputFormat> {
        let name = path.file_name()?.to_str()?.to_ascii_lowercase();
        let name = name.strip_suffix(".gz").unwrap_or(&name);
        let ext = name.rsplit_once('.')?.1;
        match ext {
            "csv" => Some(InputFormat::Csv),
            "jsonl" | "ndjson" => Some(InputFormat::Jsonl),
            "json" => Some(InputFormat::Json),
            _ => None,
        }
    }
}

/// One row of an input file.
#[derive(Debug)]
pub struct RawRow {
    /// The line the row starts on (1-based; a CSV header is line 1). The CSV reader
    /// does not count blank lines, which exports do not have.
    pub line: u64,
    pub content: RowContent,
}

#[derive(Debug)]
pub enum RowContent {
    Csv {
        headers: Arc<[String]>,
        cells: csv::ByteRecord,
    },
    /// One JSON value's text (a line, or an element of an array).
    Json(String),
    /// A row that cannot be read: its cells or text as far as known, and why.
    Broken { original: Original, reason: String },
}

/// A row as read, for the rejects file: its CSV cells, or its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Original {
    Cells(Vec<String>),
    Text(String),
}

/// Opens `path` (`-` is stdin), decompressing `.gz`; `read` counts the bytes taken
/// from the file itself (compressed), for the progress bar.
pub fn open(path: &Path, read: Arc<AtomicU64>) -> io::Result<Box<dyn BufRead + Send>> {
    let raw: Box<dyn Read + Send> = if path == Path::new("-") {
        Box::new(io::stdin())
    } else {
        Box::new(File::open(path)?)
    };
    let counted = Counted { inner: raw, read };
    let gz = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("gz"));
    Ok(if gz {
        Box::new(BufReader::with_capacity(
            256 * 1024,
            flate2::read::MultiGzDecoder::new(BufReader::new(counted)),
        ))
    } else {
        Box::new(BufReader::with_capacity(256 * 1024, counted))
    })
}

struct Counted {
    inner: Box<dyn Read + Send>,
    read: Arc<AtomicU64>,
}

impl Read for Counted {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// The rows of one input, in order. An error reading the file itself (not a row) ends
/// it with `Err`.
pub fn rows(
    input: Box<dyn BufRead + Send>,
    format: InputFormat,
) -> Box<dyn Iterator<Item = io::Result<RawRow>> + Send> {
    match format {
        InputFormat::Csv => Box::new(CsvRows::new(input)),
        InputFormat::Jsonl => Box::new(JsonLines { input, line: 0 }),
        InputFormat::Json => Box::new(JsonArray {
            input,
            line: 1,
            state: ArrayState::Start,
        }),
    }
}

/// Where an input's rejects go: `FILE.rejects.csv` beside it (`-` gives
/// `stdin.rejects.csv` in the working directory).
pub fn rejects_path(input: &Path) -> PathBuf {
    if input == Path::new("-") {
        return PathBuf::from("stdin.rejects.csv");
    }
    let mut name = input.as_os_str().to_owned();
    name.push(".rejects.csv");
    PathBuf::from(name)
}

struct CsvRows {
    reader: csv::Reader<Box<dyn BufRead + Send>>,
    headers: Option<Arc<[String]>>,
    done: bool,
}

impl CsvRows {
    fn new(input: Box<dyn BufRead + Send>) -> Self {
        let reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(input);
        CsvRows {
            reader,
            headers: None,
            done: false,
        }
    }
}

impl Iterator for CsvRows {
    type Item = io::Result<RawRow>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.done {
                return None;
            }
            let mut record = csv::ByteRecord::new();
            match self.reader.read_byte_record(&mut record) {
                Ok(false) => {
                    self.done = true;
                    return None;
                }
                Ok(true) => {}
                Err(e) => match e.kind() {
                    csv::ErrorKind::Io(_) => {
                        self.done = true;
                        return Some(Err(io::Error::other(e.to_string())));
                    }
                    _ => {
                        let line = e.position().map_or(0, |p| p.line());
                        return Some(Ok(RawRow {
                            line,
                            content: RowContent::Broken {
                                original: Original::Text(String::new()),
                                reason: format!("not CSV: {e}"),
                            },
                        }));
                    }
                },
            }
            let line = record.position().map_or(0, |p| p.line());
            let Some(headers) = &self.headers else {
                let names: Vec<String> = record
                    .iter()
                    .enumerate()
                    .map(|(i, h)| {
                        let h = String::from_utf8_lossy(h);
                        let h = if i == 0 {
                            h.trim_start_matches('\u{feff}')
                        } else {
                            &h
                        };
                        h.trim().to_owned()
                    })
                    .collect();
                self.headers = Some(names.into());
                continue;
            };
            if record.len() == 1 && record.get(0).is_some_and(<[u8]>::is_empty) {
                continue; // a blank line
            }
            if record.len() != headers.len() {
                return Some(Ok(RawRow {
                    line,
                    content: RowContent::Broken {
                        original: Original::Cells(
                            record
                                .iter()
                                .map(|c| String::from_utf8_lossy(c).into_owned())
                                .collect(),
                        ),
                        reason: format!(
                            "{} cells where the header has {} columns",
                            record.len(),
                            headers.len()
                        ),
                    },
                }));
            }
            return Some(Ok(RawRow {
                line,
                content: RowContent::Csv {
                    headers: headers.clone(),
                    cells: record,
                },
            }));
        }
    }
}

/// A CSV row written back as one line of CSV text (quoted where needed).
pub fn csv_line(record: &csv::ByteRecord) -> String {
    let mut writer = csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Vec::new());
    let _ = writer.write_byte_record(record);
    let bytes = writer.into_inner().unwrap_or_default();
    String::from_utf8_lossy(&bytes)
        .trim_end_matches('\n')
        .to_owned()
}

struct JsonLines {
    input: Box<dyn BufRead + Send>,
    line: u64,
}

impl Iterator for JsonLines {
    type Item = io::Result<RawRow>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut bytes = Vec::new();
        loop {
            bytes.clear();
            match self.input.read_until(b'\n', &mut bytes) {
                Ok(0) => return None,
                Ok(_) => self.line += 1,
                Err(e) => return Some(Err(e)),
            }
            if bytes.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let content = match String::from_utf8(std::mem::take(&mut bytes)) {
                Ok(text) => RowContent::Json(text.trim_end().to_owned()),
                Err(e) => RowContent::Broken {
                    original: Original::Text(
                        String::from_utf8_lossy(e.as_bytes()).trim_end().to_owned(),
                    ),
                    reason: "the line is not UTF-8".to_owned(),
                },
            };
            return Some(Ok(RawRow {
                line: self.line,
                content,
            }));
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ArrayState {
    Start,
    Elements,
    End,
}

/// The elements of one JSON array, split without parsing the whole: each element's
/// text is found by tracking strings and nesting, then parsed alone.
struct JsonArray {
    input: Box<dyn BufRead + Send>,
    line: u64,
    state: ArrayState,
}

impl JsonArray {
    fn byte(&mut self) -> io::Result<Option<u8>> {
        let buf = self.input.fill_buf()?;
        let Some(&b) = buf.first() else {
            return Ok(None);
        };
        self.input.consume(1);
        if b == b'\n' {
            self.line += 1;
        }
        Ok(Some(b))
    }

    fn skip_space(&mut self) -> io::Result<Option<u8>> {
        loop {
            match self.byte()? {
                Some(b) if b.is_ascii_whitespace() => {}
                other => return Ok(other),
            }
        }
    }

    fn broken(&mut self, reason: &str) -> Option<io::Result<RawRow>> {
        self.state = ArrayState::End;
        Some(Ok(RawRow {
            line: self.line,
            content: RowContent::Broken {
                original: Original::Text(String::new()),
                reason: reason.to_owned(),
            },
        }))
    }
}

impl Iterator for JsonArray {
    type Item = io::Result<RawRow>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.state == ArrayState::End {
            return None;
        }
        if self.state == ArrayState::Start {
            match self.skip_space() {
                Ok(Some(b'[')) => self.state = ArrayState::Elements,
                Ok(None) => return None,
                Ok(Some(_)) => {
                    return self.broken(
                        "the file is not one JSON array (use --format jsonl for JSON lines)",
                    );
                }
                Err(e) => return Some(Err(e)),
            }
        }
        let first = match self.skip_space() {
            Ok(Some(b',')) => self.skip_space(),
            other => other,
        };
        let first = match first {
            Ok(Some(b']')) => {
                self.state = ArrayState::End;
                return None;
            }
            Ok(Some(b)) => b,
            Ok(None) => return self.broken("the JSON array is not closed"),
            Err(e) => return Some(Err(e)),
        };
        let line = self.line;
        let mut text = vec![first];
        let (mut depth, mut in_string, mut escaped) = (0i64, first == b'"', false);
        if first == b'{' || first == b'[' {
            depth = 1;
        }
        while depth > 0 || in_string || !matches!(first, b'{' | b'[' | b'"') {
            let b = match self.byte() {
                Ok(Some(b)) => b,
                Ok(None) => return self.broken("the JSON array is not closed"),
                Err(e) => return Some(Err(e)),
            };
            if in_string {
                text.push(b);
                match (escaped, b) {
                    (true, _) => escaped = false,
                    (false, b'\\') => escaped = true,
                    (false, b'"') => in_string = false,
                    _ => {}
                }
                if !in_string && depth == 0 {
                    break;
                }
                continue;
            }
            if depth == 0 && (b == b',' || b == b']' || b.is_ascii_whitespace()) {
                // The end of a scalar element.
                if b == b']' {
                    self.state = ArrayState::End;
                }
                break;
            }
            text.push(b);
            match b {
                b'"' => in_string = true,
                b'{' | b'[' => depth += 1,
                b'}' | b']' => depth -= 1,
                _ => {}
            }
        }
        let content = match String::from_utf8(text) {
            Ok(text) => RowContent::Json(text),
            Err(e) => RowContent::Broken {
                original: Original::Text(String::from_utf8_lossy(e.as_bytes()).into_owned()),
                reason: "the element is not UTF-8".to_owned(),
            },
        };
        Some(Ok(RawRow { line, content }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(text: &str, format: InputFormat) -> Vec<(u64, String)> {
        let input: Box<dyn BufRead + Send> = Box::new(io::Cursor::new(text.as_bytes().to_vec()));
        rows(input, format)
            .map(|r| {
                let r = r.unwrap();
                let text = match r.content {
                    RowContent::Csv { cells, .. } => csv_line(&cells),
                    RowContent::Json(t) => t,
                    RowContent::Broken { reason, .. } => format!("BROKEN {reason}"),
                };
                (r.line, text)
            })
            .collect()
    }

    #[test]
    fn csv_rows_keep_their_line_numbers_and_bad_rows_are_reported() {
        let rows = all(
            "\u{feff}Id,Name\n1,\"a, \"\"b\"\"\nc\"\n2\n3,x\n\n",
            InputFormat::Csv,
        );
        assert_eq!(rows[0], (2, "1,\"a, \"\"b\"\"\nc\"".to_owned()));
        assert_eq!(rows[1].0, 4);
        assert!(
            rows[1]
                .1
                .starts_with("BROKEN 1 cells where the header has 2")
        );
        assert_eq!(rows[2], (5, "3,x".to_owned()));
        assert_eq!(rows.len(), 3);
    }

    #[test]
    fn json_lines_and_arrays_are_split_into_elements() {
        assert_eq!(
            all("{\"a\":1}\n\n{\"b\":\"}\"}\n", InputFormat::Jsonl),
            vec![(1, "{\"a\":1}".into()), (3, "{\"b\":\"}\"}".into())]
        );
        assert_eq!(
            all(
                "[\n {\"a\": [1, {\"x\": \"]\\\"\"}]},\n {\"b\": 2}, 7 ]",
                InputFormat::Json
            ),
            vec![
                (2, "{\"a\": [1, {\"x\": \"]\\\"\"}]}".into()),
                (3, "{\"b\": 2}".into()),
                (3, "7".into())
            ]
        );
        let unclosed = all("[{\"a\": 1}", InputFormat::Json);
        assert_eq!(unclosed[0].1, "{\"a\": 1}");
        assert!(unclosed[1].1.starts_with("BROKEN"), "{unclosed:?}");
    }

    #[test]
    fn formats_come_from_names_and_rejects_sit_beside_the_input() {
        assert_eq!(
            InputFormat::of(Path::new("x/leads.CSV.gz")),
            Some(InputFormat::Csv)
        );
        assert_eq!(
            InputFormat::of(Path::new("a.ndjson")),
            Some(InputFormat::Jsonl)
        );
        assert_eq!(
            InputFormat::of(Path::new("a.json")),
            Some(InputFormat::Json)
        );
        assert_eq!(InputFormat::of(Path::new("-")), None);
        assert_eq!(
            rejects_path(Path::new("d/a.csv")),
            PathBuf::from("d/a.csv.rejects.csv")
        );
    }
}
