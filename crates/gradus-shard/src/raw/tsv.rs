//! Tab-separated tables, no quoting (as GLUE writes them); blank lines are passed over.

use std::path::Path;

use super::{
    BadRecord, Item, Lines, Position, RawError, RawReader, RawRecord, positional, row_fields,
    wrong_width,
};

pub(super) struct TsvReader {
    lines: Lines,
    columns: Vec<String>,
    /// The first row, read to count the columns of a table without a header.
    first: Option<Item>,
}

impl TsvReader {
    pub(super) fn new(path: &Path, header: bool) -> Result<Self, RawError> {
        let mut reader = Self {
            lines: Lines::open(path)?,
            columns: Vec::new(),
            first: None,
        };
        let Some((number, line)) = reader.lines.next_line()? else {
            reader.first = Some(Ok(Err(BadRecord::empty_file())));
            return Ok(reader);
        };
        let line = match line {
            Ok(line) => line.to_string(),
            Err(bad) => {
                reader.first = Some(Ok(Err(bad)));
                return Ok(reader);
            }
        };
        let cells: Vec<&str> = line.split('\t').collect();
        if header {
            reader.columns = cells.iter().map(|c| c.trim().to_string()).collect();
        } else {
            reader.columns = positional(cells.len());
            reader.first = reader.row(number, &line);
        }
        Ok(reader)
    }

    fn row(&self, number: u64, line: &str) -> Option<Item> {
        if line.is_empty() {
            return None;
        }
        let cells: Vec<&str> = line.split('\t').collect();
        if cells.len() != self.columns.len() {
            return Some(Ok(Err(wrong_width(
                number,
                self.columns.len(),
                cells.len(),
            ))));
        }
        Some(Ok(Ok(RawRecord {
            position: Position::Line(number),
            fields: row_fields(&self.columns, cells.into_iter()),
        })))
    }
}

impl Iterator for TsvReader {
    type Item = Item;

    fn next(&mut self) -> Option<Item> {
        if let Some(first) = self.first.take() {
            return Some(first);
        }
        if self.columns.is_empty() {
            // An empty file, or a header that could not be read: no rows to match to it.
            return None;
        }
        loop {
            let (number, line) = match self.lines.next_line() {
                Err(e) => return Some(Err(e)),
                Ok(None) => return None,
                Ok(Some(next)) => next,
            };
            let line = match line {
                Ok(line) => line.to_string(),
                Err(bad) => return Some(Ok(Err(bad))),
            };
            if let Some(item) = self.row(number, &line) {
                return Some(item);
            }
        }
    }
}

impl RawReader for TsvReader {
    fn columns(&self) -> &[String] {
        &self.columns
    }
}
