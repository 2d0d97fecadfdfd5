//! Comma-separated tables with RFC 4180 quoting (a quoted cell may hold newlines).

use std::io::BufRead;
use std::path::Path;

use super::{
    BadRecord, InputErrorKind, Item, Position, RawError, RawReader, RawRecord, open_decoded,
    positional, row_fields, wrong_width,
};

pub(super) struct CsvReader {
    path: std::path::PathBuf,
    records: csv::StringRecordsIntoIter<Box<dyn BufRead + Send>>,
    columns: Vec<String>,
    /// Set when the header could not be read: the one record to yield.
    first: Option<Item>,
}

impl CsvReader {
    pub(super) fn new(path: &Path, header: bool) -> Result<Self, RawError> {
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(header)
            .flexible(true)
            .from_reader(open_decoded(path)?);
        let mut first = None;
        let columns = match reader.headers() {
            Ok(h) if h.is_empty() => {
                first = Some(Ok(Err(BadRecord::empty_file())));
                Vec::new()
            }
            Ok(h) if header => h.iter().map(|c| c.trim().to_string()).collect(),
            Ok(h) => positional(h.len()),
            Err(e) => {
                first = Some(Ok(Err(bad(&e))));
                Vec::new()
            }
        };
        Ok(Self {
            path: path.to_path_buf(),
            records: reader.into_records(),
            columns,
            first,
        })
    }
}

/// A csv error as a bad record at its line.
fn bad(e: &csv::Error) -> BadRecord {
    let line = e.position().map_or(0, |p| p.line());
    let kind = if matches!(e.kind(), csv::ErrorKind::Utf8 { .. }) {
        InputErrorKind::InvalidUtf8
    } else {
        InputErrorKind::MalformedRow
    };
    BadRecord::new(line, kind, e.to_string())
}

impl Iterator for CsvReader {
    type Item = Item;

    fn next(&mut self) -> Option<Item> {
        if let Some(first) = self.first.take() {
            self.columns.clear();
            return Some(first);
        }
        if self.columns.is_empty() {
            return None;
        }
        let record = match self.records.next()? {
            Ok(record) => record,
            Err(e) if matches!(e.kind(), csv::ErrorKind::Io(_)) => {
                return Some(Err(RawError::format(&self.path, e)));
            }
            Err(e) => return Some(Ok(Err(bad(&e)))),
        };
        let line = record.position().map_or(0, |p| p.line());
        if record.len() != self.columns.len() {
            return Some(Ok(Err(wrong_width(line, self.columns.len(), record.len()))));
        }
        Some(Ok(Ok(RawRecord {
            position: Position::Line(line),
            fields: row_fields(&self.columns, record.iter()),
        })))
    }
}

impl RawReader for CsvReader {
    fn columns(&self) -> &[String] {
        &self.columns
    }
}
