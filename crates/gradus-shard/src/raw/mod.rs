//! Raw files as records: JSON lines, plain text, TSV, CSV and Parquet, the text formats
//! optionally `.gz` or `.zst` compressed. The one reader layer under every stage that
//! reads files it did not write: the clean stage, the examples encoder and `gradus
//! import`. A reader yields each record with its fields and the line (or row) it came
//! from, or a [`BadRecord`] saying what is wrong there; what to do with a bad record is
//! the stage's [`OnError`](crate::OnError).

mod csv;
mod jsonl;
mod parquet;
mod text;
mod tsv;

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The format of a raw file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// JSON lines (`.jsonl`, `.ndjson`, `.json`): one object a line.
    Jsonl,
    /// Plain text (`.txt`, `.text`, `.md`), cut into records by a [`TextUnit`].
    Text,
    /// Tab-separated (`.tsv`), no quoting, as GLUE writes it.
    Tsv,
    /// Comma-separated (`.csv`), RFC 4180 quoting.
    Csv,
    /// A Parquet file; every column is read as text.
    Parquet,
}

/// The format a file's extension names, looking through `.gz` and `.zst`.
pub fn format_of(path: &Path) -> Option<Format> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    let name = name
        .strip_suffix(".gz")
        .or_else(|| name.strip_suffix(".zst"))
        .unwrap_or(&name);
    match name.rsplit_once('.').map_or("", |(_, e)| e) {
        "jsonl" | "ndjson" | "json" => Some(Format::Jsonl),
        "txt" | "text" | "md" => Some(Format::Text),
        "tsv" => Some(Format::Tsv),
        "csv" => Some(Format::Csv),
        "parquet" => Some(Format::Parquet),
        _ => None,
    }
}

/// How a plain-text file is cut into records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TextUnit {
    /// The whole file is one record.
    File,
    /// Blank-line separated paragraphs.
    #[default]
    Paragraph,
    /// Every non-blank line.
    Line,
}

/// What is wrong with a record (or a whole file) of an input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InputErrorKind {
    MalformedJson,
    InvalidUtf8,
    /// The record has no text where the stage looks for it.
    MissingText,
    /// A table row whose fields do not match the header.
    MalformedRow,
    EmptyFile,
    MissingFile,
}

impl InputErrorKind {
    /// The name counted in reports (`malformed_json`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Self::MalformedJson => "malformed_json",
            Self::InvalidUtf8 => "invalid_utf8",
            Self::MissingText => "missing_text",
            Self::MalformedRow => "malformed_row",
            Self::EmptyFile => "empty_file",
            Self::MissingFile => "missing_file",
        }
    }
}

/// Where in its file a record starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    /// A 1-based line of a text format.
    Line(u64),
    /// A 0-based row of a Parquet file.
    Row(u64),
}

impl Position {
    /// The 1-based line, or row, for messages.
    pub fn number(self) -> u64 {
        match self {
            Self::Line(l) => l,
            Self::Row(r) => r + 1,
        }
    }
}

/// One record: its fields by name (table cells as strings, a missing Parquet value as
/// `null`, JSON values as they are) and where it starts.
#[derive(Debug, Clone, PartialEq)]
pub struct RawRecord {
    pub position: Position,
    pub fields: Map<String, Value>,
}

/// A record that could not be read: the line it is on (0 for a whole file) and why.
#[derive(Debug, Clone, PartialEq)]
pub struct BadRecord {
    pub line: u64,
    pub kind: InputErrorKind,
    pub detail: String,
}

impl BadRecord {
    fn new(line: u64, kind: InputErrorKind, detail: impl Into<String>) -> Self {
        Self {
            line,
            kind,
            detail: detail.into(),
        }
    }

    fn empty_file() -> Self {
        Self::new(0, InputErrorKind::EmptyFile, "the file is empty")
    }
}

/// A file that cannot be read at all.
#[derive(Debug, thiserror::Error)]
pub enum RawError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file is not of its format, or lacks a column asked for.
    #[error("{}: {detail}", path.display())]
    Format { path: PathBuf, detail: String },
}

impl RawError {
    fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    fn format(path: &Path, detail: impl ToString) -> Self {
        Self::Format {
            path: path.to_path_buf(),
            detail: detail.to_string(),
        }
    }
}

/// What a reader yields: a record, a bad record, or a failure to read on.
pub type Item = Result<Result<RawRecord, BadRecord>, RawError>;

/// How to read one file.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadSpec {
    pub format: Format,
    /// TSV and CSV: the first line names the columns (otherwise they are `0`, `1`, ...).
    pub header: bool,
    /// Plain text: how it is cut, and the field each piece is put in.
    pub text_unit: TextUnit,
    pub text_field: String,
    /// Parquet: read only these columns (all when absent).
    pub columns: Option<Vec<String>>,
}

impl ReadSpec {
    /// Defaults for `format`: a header line, paragraphs, the text in `text`, every column.
    pub fn new(format: Format) -> Self {
        Self {
            format,
            header: true,
            text_unit: TextUnit::default(),
            text_field: "text".into(),
            columns: None,
        }
    }
}

/// A raw file read one record at a time.
pub trait RawReader: Iterator<Item = Item> {
    /// The column names known before the first record (a header, a Parquet schema);
    /// empty for JSON lines and text, whose records name their own fields.
    fn columns(&self) -> &[String];
}

/// Opens `path` for reading as `spec` says.
pub fn open(path: &Path, spec: &ReadSpec) -> Result<Box<dyn RawReader>, RawError> {
    Ok(match spec.format {
        Format::Jsonl => Box::new(jsonl::JsonlReader::new(path)?),
        Format::Text => Box::new(text::TextReader::new(path, spec)?),
        Format::Tsv => Box::new(tsv::TsvReader::new(path, spec.header)?),
        Format::Csv => Box::new(csv::CsvReader::new(path, spec.header)?),
        Format::Parquet => Box::new(parquet::ParquetReader::new(path, spec.columns.as_deref())?),
    })
}

/// A file's bytes, decompressed by its extension (`.gz`, `.zst`).
pub fn open_decoded(path: &Path) -> Result<Box<dyn BufRead + Send>, RawError> {
    let f = File::open(path).map_err(|e| RawError::io(path, e))?;
    let name = path.to_string_lossy().to_lowercase();
    let reader: Box<dyn Read + Send> = if name.ends_with(".gz") {
        Box::new(flate2::read::MultiGzDecoder::new(f))
    } else if name.ends_with(".zst") {
        Box::new(zstd::Decoder::new(f).map_err(|e| RawError::io(path, e))?)
    } else {
        Box::new(f)
    };
    Ok(Box::new(BufReader::with_capacity(1 << 20, reader)))
}

/// The message for a column that is not there, listing those that are.
fn no_column(name: &str, columns: &[String]) -> String {
    format!("no column `{name}` (columns: {})", columns.join(", "))
}

/// Opens `path` as [`open`] does, to read documents whose text is in `spec.text_field`: a
/// table without that column is refused before its first record.
pub fn open_documents(path: &Path, spec: &ReadSpec) -> Result<Box<dyn RawReader>, RawError> {
    let reader = open(path, spec)?;
    require_column(reader.as_ref(), path, &spec.text_field)?;
    Ok(reader)
}

/// Refuses a table (a reader whose columns are known) at `path` without column `name`,
/// before its first record; JSON lines and text are checked record by record instead.
fn require_column(reader: &dyn RawReader, path: &Path, name: &str) -> Result<(), RawError> {
    let columns = reader.columns();
    match columns.is_empty() || columns.iter().any(|c| c == name) {
        true => Ok(()),
        false => Err(RawError::format(path, no_column(name, columns))),
    }
}

/// A line's number and its text, or why it has none.
type NumberedLine<'a> = (u64, Result<&'a str, BadRecord>);

/// Numbered lines of a decoded file, without their `\n` or `\r\n`; a line that is not
/// UTF-8 comes back as an [`InputErrorKind::InvalidUtf8`] record.
struct Lines {
    path: PathBuf,
    reader: Box<dyn BufRead + Send>,
    buf: Vec<u8>,
    number: u64,
}

impl Lines {
    fn open(path: &Path) -> Result<Self, RawError> {
        Ok(Self {
            path: path.to_path_buf(),
            reader: open_decoded(path)?,
            buf: Vec::new(),
            number: 0,
        })
    }

    /// The next line and its number, `None` at the end.
    fn next_line(&mut self) -> Result<Option<NumberedLine<'_>>, RawError> {
        self.buf.clear();
        let n = self
            .reader
            .read_until(b'\n', &mut self.buf)
            .map_err(|e| RawError::io(&self.path, e))?;
        if n == 0 {
            return Ok(None);
        }
        self.number += 1;
        let line = match std::str::from_utf8(&self.buf) {
            Ok(line) => Ok(line.trim_end_matches('\n').trim_end_matches('\r')),
            Err(_) => Err(BadRecord::new(
                self.number,
                InputErrorKind::InvalidUtf8,
                "line is not UTF-8",
            )),
        };
        Ok(Some((self.number, line)))
    }
}

/// Column names `0`, `1`, ... for a table without a header.
fn positional(n: usize) -> Vec<String> {
    (0..n).map(|i| i.to_string()).collect()
}

/// A table row's cells by column name.
fn row_fields<'a>(columns: &[String], cells: impl Iterator<Item = &'a str>) -> Map<String, Value> {
    columns
        .iter()
        .cloned()
        .zip(cells.map(|c| Value::String(c.to_string())))
        .collect()
}

/// The bad record of a row with `found` cells under `expected` columns.
fn wrong_width(line: u64, expected: usize, found: usize) -> BadRecord {
    BadRecord::new(
        line,
        InputErrorKind::MalformedRow,
        format!("expected {expected} fields, found {found}"),
    )
}

#[cfg(test)]
mod tests;
