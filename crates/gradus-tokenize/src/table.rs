//! Labeled task files as rows of text cells, read through the raw-file layer
//! ([`gradus_shard::raw`]): TSV (tab-separated, no quoting, as GLUE), CSV (quoted), JSON
//! lines and Parquet, chosen by file extension. Every row keeps the line (or row) number
//! it came from so errors can name it.

use std::path::Path;

use gradus_shard::raw::{self, BadRecord, RawError, RawRecord, ReadSpec};
use serde_json::Value;

use crate::error::{Result, TokenizeError};

/// One row: its line number (1-based, counting any header) and its cells.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub line: usize,
    pub cells: Vec<Option<String>>,
}

/// A whole file: column names (positions `0`, `1`, ... without a header) and rows.
#[derive(Debug, Clone, Default)]
pub struct Table {
    pub columns: Vec<String>,
    pub rows: Vec<Row>,
    /// Lines that could not be read as rows of the table.
    pub bad_lines: Vec<BadRecord>,
}

impl Table {
    /// Position of column `name`, or an error listing the columns there are.
    pub fn column(&self, path: &Path, name: &str) -> Result<usize> {
        self.columns.iter().position(|c| c == name).ok_or_else(|| {
            TokenizeError::Config(format!(
                "{}: no column `{name}` (columns: {})",
                path.display(),
                self.columns.join(", ")
            ))
        })
    }
}

/// Reads `path` by its extension (TSV, CSV, JSON lines or Parquet, the text formats
/// optionally compressed). JSON lines name their own columns: every key any record has,
/// in the order first met.
pub fn read_table(path: &Path, has_header: bool) -> Result<Table> {
    let format = match raw::format_of(path) {
        Some(raw::Format::Text) | None => {
            return Err(TokenizeError::Config(format!(
                "{}: not a table: examples are read from tsv, csv, jsonl or parquet files",
                path.display()
            )));
        }
        Some(format) => format,
    };
    let spec = ReadSpec {
        header: has_header,
        ..ReadSpec::new(format)
    };
    let raw_error = |e: RawError| TokenizeError::Config(e.to_string());
    let reader = raw::open(path, &spec).map_err(raw_error)?;
    let mut table = Table {
        columns: reader.columns().to_vec(),
        ..Table::default()
    };
    let mut records = Vec::new();
    for item in reader {
        match item.map_err(raw_error)? {
            Ok(record) => {
                for key in record.fields.keys() {
                    if !table.columns.contains(key) {
                        table.columns.push(key.clone());
                    }
                }
                records.push(record);
            }
            Err(bad) => table.bad_lines.push(bad),
        }
    }
    table.rows = records
        .into_iter()
        .map(|r| row(&table.columns, r))
        .collect();
    Ok(table)
}

/// A record's cells in column order: JSON numbers and booleans as their text, a missing
/// or null value as `None`.
fn row(columns: &[String], mut record: RawRecord) -> Row {
    let cells = columns
        .iter()
        .map(|c| match record.fields.remove(c) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s),
            Some(other) => Some(other.to_string()),
        })
        .collect();
    Row {
        line: record.position.number() as usize,
        cells,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jsonl_columns_are_every_key_and_numbers_become_text() {
        let (_dir, path) = gradus_testkit::temp_file(
            "t.jsonl",
            "{\"text\": \"a\", \"label\": 1}\n{\"text\": \"b\", \"extra\": null}\n",
        );
        let t = read_table(&path, true).unwrap();
        assert_eq!(t.columns, ["label", "text", "extra"]);
        let label = t.column(&path, "label").unwrap();
        assert_eq!(t.rows[0].cells[label].as_deref(), Some("1"));
        assert_eq!(t.rows[1].cells, [None, Some("b".to_string()), None]);
        assert_eq!((t.rows[0].line, t.rows[1].line), (1, 2));
    }

    #[test]
    fn bad_lines_are_kept_and_plain_text_is_refused() {
        let (dir, tsv) =
            gradus_testkit::temp_file("t.tsv", "sentence\tlabel\nok\t1\nbroken line\n");
        let t = read_table(&tsv, true).unwrap();
        assert_eq!(t.rows.len(), 1);
        assert_eq!(t.bad_lines[0].line, 3);
        let txt = dir.path().join("t.txt");
        std::fs::write(&txt, "a\tb\n").unwrap();
        let err = read_table(&txt, true).unwrap_err().to_string();
        assert!(err.contains("not a table"), "{err}");
    }
}
