//! JSON lines: one object a line; blank lines are passed over.

use std::path::Path;

use serde_json::{Map, Value};

use super::{BadRecord, InputErrorKind, Item, Lines, Position, RawError, RawReader, RawRecord};

pub(super) struct JsonlReader {
    lines: Lines,
    any: bool,
}

impl JsonlReader {
    pub(super) fn new(path: &Path) -> Result<Self, RawError> {
        Ok(Self {
            lines: Lines::open(path)?,
            any: false,
        })
    }
}

impl Iterator for JsonlReader {
    type Item = Item;

    fn next(&mut self) -> Option<Item> {
        loop {
            let (number, line) = match self.lines.next_line() {
                Err(e) => return Some(Err(e)),
                Ok(None) => {
                    let empty = !std::mem::replace(&mut self.any, true);
                    return empty.then(|| Ok(Err(BadRecord::empty_file())));
                }
                Ok(Some(next)) => next,
            };
            self.any = true;
            let line = match line {
                Ok(line) if line.trim().is_empty() => continue,
                Ok(line) => line,
                Err(bad) => return Some(Ok(Err(bad))),
            };
            let record = match serde_json::from_str::<Map<String, Value>>(line) {
                Ok(fields) => Ok(RawRecord {
                    position: Position::Line(number),
                    fields,
                }),
                Err(e) => Err(BadRecord::new(
                    number,
                    InputErrorKind::MalformedJson,
                    e.to_string(),
                )),
            };
            return Some(Ok(record));
        }
    }
}

impl RawReader for JsonlReader {
    fn columns(&self) -> &[String] {
        &[]
    }
}
