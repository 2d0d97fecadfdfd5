//! Plain text cut into records by a [`TextUnit`]: each record is its lines joined by
//! `\n` and starts at the line of its first line.

use std::path::Path;

use serde_json::{Map, Value};

use super::{BadRecord, Item, Lines, Position, RawError, RawReader, RawRecord, ReadSpec, TextUnit};

pub(super) struct TextReader {
    lines: Lines,
    unit: TextUnit,
    field: String,
    /// The record being gathered: its first line and its text.
    current: Option<(u64, String)>,
    any: bool,
    done: bool,
}

impl TextReader {
    pub(super) fn new(path: &Path, spec: &ReadSpec) -> Result<Self, RawError> {
        Ok(Self {
            lines: Lines::open(path)?,
            unit: spec.text_unit,
            field: spec.text_field.clone(),
            current: None,
            any: false,
            done: false,
        })
    }

    fn record(&self, (line, text): (u64, String)) -> Item {
        let mut fields = Map::new();
        fields.insert(self.field.clone(), Value::String(text));
        Ok(Ok(RawRecord {
            position: Position::Line(line),
            fields,
        }))
    }

    /// Adds a line to the record being gathered; returns a record that is complete.
    fn take(&mut self, number: u64, line: &str) -> Option<(u64, String)> {
        let blank = line.trim().is_empty();
        match self.unit {
            TextUnit::Line => (!blank).then(|| (number, line.to_string())),
            TextUnit::Paragraph if blank => self.current.take(),
            TextUnit::Paragraph | TextUnit::File => {
                match &mut self.current {
                    Some((_, text)) => {
                        text.push('\n');
                        text.push_str(line);
                    }
                    None => self.current = Some((number, line.to_string())),
                }
                None
            }
        }
    }
}

impl Iterator for TextReader {
    type Item = Item;

    fn next(&mut self) -> Option<Item> {
        while !self.done {
            let (number, line) = match self.lines.next_line() {
                Err(e) => return Some(Err(e)),
                Ok(None) => {
                    self.done = true;
                    if !self.any {
                        return Some(Ok(Err(BadRecord::empty_file())));
                    }
                    break;
                }
                Ok(Some(next)) => next,
            };
            self.any = true;
            let line = match line {
                Ok(line) => line.to_string(),
                Err(bad) => return Some(Ok(Err(bad))),
            };
            if let Some(done) = self.take(number, &line) {
                return Some(self.record(done));
            }
        }
        let last = self.current.take()?;
        Some(self.record(last))
    }
}

impl RawReader for TextReader {
    fn columns(&self) -> &[String] {
        &[]
    }
}
