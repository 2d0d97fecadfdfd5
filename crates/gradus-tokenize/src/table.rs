//! Labeled task files as rows of text cells: TSV (tab-separated, no quoting, as GLUE),
//! CSV (quoted), JSON lines and Parquet, chosen by file extension. Every row keeps the
//! line (or row) number it came from so errors can name it.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use arrow::array::{Array, AsArray};
use arrow::compute::cast;
use arrow::datatypes::DataType;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

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
    /// Lines that could not be split into the header's columns: (line, reason).
    pub bad_lines: Vec<(usize, String)>,
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

/// Reads `path` by its extension.
pub fn read_table(path: &Path, has_header: bool) -> Result<Table> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    match ext.as_str() {
        "tsv" | "tab" | "txt" => read_tsv(path, has_header),
        "csv" => read_csv(path, has_header),
        "jsonl" | "ndjson" | "json" => read_jsonl(path),
        "parquet" => read_parquet(path),
        other => Err(TokenizeError::Config(format!(
            "{}: unknown file type {other:?} (tsv, csv, jsonl or parquet)",
            path.display()
        ))),
    }
}

fn open(path: &Path) -> Result<BufReader<File>> {
    File::open(path)
        .map(BufReader::new)
        .map_err(|e| TokenizeError::io(path, e))
}

fn positional(n: usize) -> Vec<String> {
    (0..n).map(|i| i.to_string()).collect()
}

fn read_tsv(path: &Path, has_header: bool) -> Result<Table> {
    let mut table = Table::default();
    for (i, line) in open(path)?.lines().enumerate() {
        let line_no = i + 1;
        let line = line.map_err(|e| TokenizeError::Row {
            path: path.to_path_buf(),
            line: line_no,
            reason: e.to_string(),
        })?;
        let line = line.strip_suffix('\r').unwrap_or(&line);
        if line.is_empty() {
            continue;
        }
        let cells: Vec<&str> = line.split('\t').collect();
        if table.columns.is_empty() {
            if has_header {
                table.columns = cells.iter().map(|c| c.trim().to_string()).collect();
                continue;
            }
            table.columns = positional(cells.len());
        }
        if cells.len() != table.columns.len() {
            let reason = format!(
                "expected {} tab-separated fields, found {}",
                table.columns.len(),
                cells.len()
            );
            table.bad_lines.push((line_no, reason));
            continue;
        }
        table.rows.push(Row {
            line: line_no,
            cells: cells.into_iter().map(|c| Some(c.to_string())).collect(),
        });
    }
    Ok(table)
}

fn read_csv(path: &Path, has_header: bool) -> Result<Table> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(has_header)
        .flexible(true)
        .from_reader(open(path)?);
    let mut table = Table::default();
    if has_header {
        let headers = reader.headers().map_err(|e| TokenizeError::Row {
            path: path.to_path_buf(),
            line: 1,
            reason: e.to_string(),
        })?;
        table.columns = headers.iter().map(|h| h.trim().to_string()).collect();
    }
    for record in reader.records() {
        let record = record.map_err(|e| TokenizeError::Row {
            path: path.to_path_buf(),
            line: e.position().map_or(0, |p| p.line() as usize),
            reason: e.to_string(),
        })?;
        let line = record.position().map_or(0, |p| p.line() as usize);
        if table.columns.is_empty() {
            table.columns = positional(record.len());
        }
        if record.len() != table.columns.len() {
            let reason = format!(
                "expected {} fields, found {}",
                table.columns.len(),
                record.len()
            );
            table.bad_lines.push((line, reason));
            continue;
        }
        table.rows.push(Row {
            line,
            cells: record.iter().map(|c| Some(c.to_string())).collect(),
        });
    }
    Ok(table)
}

fn read_jsonl(path: &Path) -> Result<Table> {
    let mut table = Table::default();
    let mut records = Vec::new();
    for (i, line) in open(path)?.lines().enumerate() {
        let line_no = i + 1;
        let bad = |reason: String| TokenizeError::Row {
            path: path.to_path_buf(),
            line: line_no,
            reason,
        };
        let line = line.map_err(|e| bad(e.to_string()))?;
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&line) {
            Ok(record) => {
                for key in record.keys() {
                    if !table.columns.contains(key) {
                        table.columns.push(key.clone());
                    }
                }
                records.push((line_no, record));
            }
            Err(e) => table
                .bad_lines
                .push((line_no, format!("not a JSON object: {e}"))),
        }
    }
    for (line, record) in records {
        let cells = table
            .columns
            .iter()
            .map(|c| match record.get(c) {
                None | Some(serde_json::Value::Null) => None,
                Some(serde_json::Value::String(s)) => Some(s.clone()),
                Some(other) => Some(other.to_string()),
            })
            .collect();
        table.rows.push(Row { line, cells });
    }
    Ok(table)
}

fn read_parquet(path: &Path) -> Result<Table> {
    let file = File::open(path).map_err(|e| TokenizeError::io(path, e))?;
    let parquet_err = |e: parquet::errors::ParquetError| {
        TokenizeError::Config(format!("{}: {e}", path.display()))
    };
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(parquet_err)?
        .build()
        .map_err(parquet_err)?;
    let mut table = Table::default();
    let mut row_no = 0;
    for batch in reader {
        let batch = batch.map_err(|e| TokenizeError::Config(format!("{}: {e}", path.display())))?;
        if table.columns.is_empty() {
            table.columns = batch
                .schema()
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .collect();
        }
        let strings = batch
            .columns()
            .iter()
            .map(|c| cast(c, &DataType::Utf8))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| TokenizeError::Config(format!("{}: {e}", path.display())))?;
        for i in 0..batch.num_rows() {
            row_no += 1;
            let cells = strings
                .iter()
                .map(|c| {
                    let c = c.as_string::<i32>();
                    c.is_valid(i).then(|| c.value(i).to_string())
                })
                .collect();
            table.rows.push(Row {
                line: row_no,
                cells,
            });
        }
    }
    Ok(table)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tsv_keeps_quotes_and_line_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.tsv");
        std::fs::write(
            &path,
            "sentence\tlabel\n\"quoted\" text \t1\nbroken line\n\nok\t0\n",
        )
        .unwrap();
        let t = read_tsv(&path, true).unwrap();
        assert_eq!(t.columns, ["sentence", "label"]);
        assert_eq!(t.rows.len(), 2);
        assert_eq!(t.rows[0].cells[0].as_deref(), Some("\"quoted\" text "));
        assert_eq!(t.rows[0].line, 2);
        assert_eq!(t.rows[1].line, 5);
        assert_eq!(t.bad_lines[0].0, 3);
    }

    #[test]
    fn csv_honours_quotes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.csv");
        std::fs::write(&path, "text,label\n\"a, quoted \"\"cell\"\"\",1\nplain,0\n").unwrap();
        let t = read_table(&path, true).unwrap();
        assert_eq!(t.rows[0].cells[0].as_deref(), Some("a, quoted \"cell\""));
        assert_eq!((t.rows[0].line, t.rows[1].line), (2, 3));
    }

    #[test]
    fn parquet_columns_are_cast_to_text() {
        use std::sync::Arc;

        use arrow::array::{Int64Array, RecordBatch, StringArray};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.parquet");
        let batch = RecordBatch::try_from_iter([
            (
                "text",
                Arc::new(StringArray::from(vec![Some("a"), None])) as _,
            ),
            ("label", Arc::new(Int64Array::from(vec![3, 4])) as _),
        ])
        .unwrap();
        let file = File::create(&path).unwrap();
        let mut w = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        let t = read_table(&path, true).unwrap();
        assert_eq!(t.columns, ["text", "label"]);
        assert_eq!(
            t.rows[0].cells,
            [Some("a".to_string()), Some("3".to_string())]
        );
        assert_eq!(t.rows[1].cells[0], None);
        assert_eq!(t.rows[1].line, 2);
    }

    #[test]
    fn jsonl_numbers_become_text() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.jsonl");
        std::fs::write(
            &path,
            "{\"text\": \"a\", \"label\": 1}\n{\"text\": \"b\"}\n",
        )
        .unwrap();
        let t = read_jsonl(&path).unwrap();
        let label = t.column(&path, "label").unwrap();
        assert_eq!(t.rows[0].cells[label].as_deref(), Some("1"));
        assert_eq!(t.rows[1].cells[label], None);
    }
}
