//! Parquet files, every column read as text (cast to UTF-8; a null stays `null`).

use std::fs::File;
use std::path::{Path, PathBuf};

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::DataType;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use serde_json::{Map, Value};

use super::{Item, Position, RawError, RawReader, RawRecord, no_column};

pub(super) struct ParquetReader {
    path: PathBuf,
    batches: ParquetRecordBatchReader,
    columns: Vec<String>,
    /// The batch being read, its columns as strings, and the next row in it.
    batch: Vec<ArrayRef>,
    at: usize,
    row: u64,
}

impl ParquetReader {
    pub(super) fn new(path: &Path, only: Option<&[String]>) -> Result<Self, RawError> {
        let file = File::open(path).map_err(|e| RawError::io(path, e))?;
        let builder = ParquetRecordBatchReaderBuilder::try_new(file)
            .map_err(|e| RawError::format(path, e))?;
        let all: Vec<String> = builder
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        let (columns, mask) = match only {
            None => (all, ProjectionMask::all()),
            Some(names) => {
                let mut roots = Vec::new();
                for name in names {
                    let i = all
                        .iter()
                        .position(|c| c == name)
                        .ok_or_else(|| RawError::format(path, no_column(name, &all)))?;
                    roots.push(i);
                }
                roots.sort_unstable();
                let columns = roots.iter().map(|&i| all[i].clone()).collect();
                (
                    columns,
                    ProjectionMask::roots(builder.parquet_schema(), roots),
                )
            }
        };
        let batches = builder
            .with_projection(mask)
            .build()
            .map_err(|e| RawError::format(path, e))?;
        Ok(Self {
            path: path.to_path_buf(),
            batches,
            columns,
            batch: Vec::new(),
            at: 0,
            row: 0,
        })
    }

    /// Reads the next batch; false at the end.
    fn next_batch(&mut self) -> Result<bool, RawError> {
        let Some(batch) = self.batches.next() else {
            return Ok(false);
        };
        let batch = batch.map_err(|e| RawError::format(&self.path, e))?;
        self.batch = batch
            .columns()
            .iter()
            .map(|c| arrow::compute::cast(c, &DataType::Utf8))
            .collect::<Result<_, _>>()
            .map_err(|e| RawError::format(&self.path, e))?;
        self.at = 0;
        Ok(true)
    }

    fn rows_left(&self) -> bool {
        self.batch.first().is_some_and(|c| self.at < c.len())
    }
}

impl Iterator for ParquetReader {
    type Item = Item;

    fn next(&mut self) -> Option<Item> {
        while !self.rows_left() {
            match self.next_batch() {
                Err(e) => return Some(Err(e)),
                Ok(false) => return None,
                Ok(true) => {}
            }
        }
        let fields: Map<String, Value> = self
            .columns
            .iter()
            .zip(&self.batch)
            .map(|(name, column)| {
                let column = column.as_string::<i32>();
                let value = if column.is_null(self.at) {
                    Value::Null
                } else {
                    Value::String(column.value(self.at).to_string())
                };
                (name.clone(), value)
            })
            .collect();
        let position = Position::Row(self.row);
        self.at += 1;
        self.row += 1;
        Some(Ok(Ok(RawRecord { position, fields })))
    }
}

impl RawReader for ParquetReader {
    fn columns(&self) -> &[String] {
        &self.columns
    }
}
