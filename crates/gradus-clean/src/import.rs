//! `gradus import`: raw files (JSON lines, plain text, or a table's text column) to a
//! `documents` dataset, unchanged.
//! (The clean stage does the same with normalisation, filters and dedup; import is for
//! text that is already clean, and for sample data.)

use std::path::{Path, PathBuf};

use gradus_shard::raw::{self, Position, RawRecord, ReadSpec, TextUnit};
use gradus_shard::{
    DatasetKind, DatasetWriter, Document, InputRef, OpenMode, Producer, Record, WriterOptions,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{CleanError, InputErrorKind, Result};

/// Settings of `gradus import`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ImportConfig {
    /// Field of a JSONL record that holds the text; the other fields become metadata.
    pub text_field: String,
    pub text_unit: TextUnit,
    /// Rows per batch handed to the writer.
    pub batch_rows: usize,
    pub max_rows_per_shard: usize,
    pub max_bytes_per_shard: u64,
}

impl Default for ImportConfig {
    fn default() -> Self {
        let w = WriterOptions::default();
        Self {
            text_field: "text".into(),
            text_unit: TextUnit::Paragraph,
            batch_rows: 4096,
            max_rows_per_shard: w.max_rows_per_shard,
            max_bytes_per_shard: w.max_bytes_per_shard,
        }
    }
}

/// The files behind the `--input` paths: files (or pipes) as given, folders expanded to
/// their files in name order, so every run sees the same order.
pub fn input_files(inputs: &[String]) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for input in inputs {
        let path = PathBuf::from(input);
        if path.is_dir() {
            let mut inside: Vec<PathBuf> = std::fs::read_dir(&path)
                .map_err(|source| CleanError::Io {
                    path: format!("input {input}"),
                    source,
                })?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file())
                .collect();
            inside.sort();
            files.extend(inside);
        } else if path.exists() {
            // Regular files, and also named pipes and /dev/stdin: import streams.
            files.push(path);
        } else {
            return Err(CleanError::Config(format!(
                "input {input}: no such file or folder"
            )));
        }
    }
    if files.is_empty() {
        return Err(CleanError::Config(
            "no input files: pass --input FILE_OR_DIR".into(),
        ));
    }
    Ok(files)
}

/// An import with its `documents` dataset open for writing and its input files listed.
pub struct Import<'a> {
    writer: DatasetWriter,
    files: Vec<PathBuf>,
    config: &'a ImportConfig,
}

impl std::fmt::Debug for Import<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Import")
            .field("output", &self.writer.dir())
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

impl<'a> Import<'a> {
    /// Opens the `documents` dataset `output` with `mode` for the files behind `inputs`;
    /// every check of the inputs and the folder runs here, before anything is written.
    pub fn open(
        output: &Path,
        inputs: &[String],
        mode: OpenMode,
        config: &'a ImportConfig,
    ) -> Result<Self> {
        let files = input_files(inputs)?;
        let producer =
            Producer::new("import", config).map_err(|e| CleanError::Internal(e.to_string()))?;
        let refs = inputs.iter().map(|i| InputRef::files(i)).collect();
        let opts = WriterOptions {
            max_rows_per_shard: config.max_rows_per_shard,
            max_bytes_per_shard: config.max_bytes_per_shard,
            mode,
            ..WriterOptions::default()
        };
        let writer = DatasetWriter::create(output, DatasetKind::Documents, producer, refs, opts)?;
        Ok(Self {
            writer,
            files,
            config,
        })
    }

    /// The input files, in the order they are read.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// Imports every file not done yet, telling `on_file` of each; returns the number of
    /// documents in the dataset.
    pub fn run(mut self, on_file: &mut dyn FnMut()) -> Result<u64> {
        if self.writer.is_sealed() {
            tracing::info!(
                "{} is complete already; nothing to do",
                self.writer.dir().display()
            );
            return Ok(self.writer.manifest().rows());
        }
        for file in &self.files {
            let key = file.display().to_string();
            if !self.writer.is_done(&key) {
                import_file(&mut self.writer, file, &key, self.config)?;
                self.writer.finish_source(&key)?;
            }
            on_file();
        }
        Ok(self.writer.seal()?.rows())
    }
}

/// Streams one file into the writer, `batch_rows` documents at a time.
fn import_file(
    writer: &mut DatasetWriter,
    file: &Path,
    key: &str,
    config: &ImportConfig,
) -> Result<()> {
    let source = file
        .file_stem()
        .map_or_else(|| "input".into(), |s| s.to_string_lossy().into_owned());
    let mut batch = Vec::with_capacity(config.batch_rows);
    for doc in documents(file, key, &source, config)? {
        metrics::counter!("docs_imported").increment(1);
        batch.push(doc?);
        if batch.len() >= config.batch_rows {
            writer.write(key, &Document::to_batch(&batch)?)?;
            batch.clear();
        }
    }
    if !batch.is_empty() {
        writer.write(key, &Document::to_batch(&batch)?)?;
    }
    Ok(())
}

/// The documents of one file, in order; the first bad record fails, naming its line.
/// A file whose extension names no format (a pipe, `/dev/stdin`) is plain text.
fn documents<'a>(
    file: &Path,
    key: &'a str,
    source: &'a str,
    config: &'a ImportConfig,
) -> Result<impl Iterator<Item = Result<Document>> + 'a> {
    let format = raw::format_of(file).unwrap_or(raw::Format::Text);
    let spec = ReadSpec {
        text_unit: config.text_unit,
        text_field: config.text_field.clone(),
        ..ReadSpec::new(format)
    };
    let reader = raw::open_documents(file, &spec).map_err(|e| CleanError::raw(key, e))?;
    let documents = reader.filter_map(move |item| {
        let record = match item {
            Err(e) => return Some(Err(CleanError::raw(key, e))),
            // An empty file holds no documents; import takes it as such.
            Ok(Err(bad)) if bad.kind == InputErrorKind::EmptyFile => return None,
            Ok(Err(bad)) => return Some(Err(bad_line(key, bad.line, bad.kind, bad.detail))),
            Ok(Ok(record)) => record,
        };
        document(record, key, source, format, &config.text_field).transpose()
    });
    Ok(documents)
}

/// A record as a document: its text field, trimmed for plain text (where a blank one
/// is no document), and its other fields as metadata.
fn document(
    mut record: RawRecord,
    key: &str,
    source: &str,
    format: raw::Format,
    text_field: &str,
) -> Result<Option<Document>> {
    let number = record.position.number();
    let Some(Value::String(mut text)) = record.fields.remove(text_field) else {
        let detail = format!("no text in `{text_field}`");
        return Err(bad_line(key, number, InputErrorKind::MissingText, detail));
    };
    if format == raw::Format::Text {
        text = text.trim().to_string();
        if text.is_empty() {
            return Ok(None);
        }
    }
    let id = match record.position {
        Position::Line(line) => format!("{source}:{line}"),
        Position::Row(row) => format!("{source}#{row}"),
    };
    let metadata = (!record.fields.is_empty()).then(|| Value::Object(record.fields).to_string());
    Ok(Some(Document {
        id,
        text,
        source: source.to_string(),
        metadata,
    }))
}

/// Line `line` of file `key` is not what import reads.
fn bad_line(key: &str, line: u64, kind: InputErrorKind, detail: impl ToString) -> CleanError {
    CleanError::Input {
        file: key.to_string(),
        line,
        kind,
        detail: detail.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The documents of `text` written to a file `name`, or the first error.
    fn import(name: &str, text: &str, config: &ImportConfig) -> Result<Vec<Document>> {
        let (_dir, path) = gradus_testkit::temp_file(name, text);
        let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
        documents(&path, name, &stem, config)?.collect()
    }

    fn unit(text_unit: TextUnit) -> ImportConfig {
        ImportConfig {
            text_unit,
            ..ImportConfig::default()
        }
    }

    #[test]
    fn plain_text_is_trimmed_and_named_by_its_first_line() {
        let text = " first para\nstill first \n\n\nsecond\n";
        let docs = import("f.txt", text, &unit(TextUnit::Paragraph)).unwrap();
        let got: Vec<(&str, &str)> = docs
            .iter()
            .map(|d| (d.id.as_str(), d.text.as_str()))
            .collect();
        assert_eq!(got, [("f:1", "first para\nstill first"), ("f:5", "second")]);
        let whole = import("f.txt", text, &unit(TextUnit::File)).unwrap();
        assert_eq!(whole[0].text, "first para\nstill first \n\n\nsecond");
        assert!(
            import("empty.txt", "", &unit(TextUnit::File))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn bad_jsonl_names_file_and_line() {
        let text = "{\"text\": \"ok\"}\n{\"body\": \"no text\"}\n";
        let err = import("in.jsonl", text, &ImportConfig::default()).unwrap_err();
        assert!(err.to_string().starts_with("in.jsonl:2:"), "{err}");
    }

    #[test]
    fn other_fields_become_metadata() {
        let text = "{\"text\": \"ok\", \"url\": \"u\"}\n";
        let docs = import("in.jsonl", text, &ImportConfig::default()).unwrap();
        assert_eq!(docs[0].metadata.as_deref(), Some("{\"url\":\"u\"}"));
        let docs = import("in.tsv", "text\tlabel\nok\t1\n", &ImportConfig::default()).unwrap();
        assert_eq!((docs[0].id.as_str(), docs[0].text.as_str()), ("in:2", "ok"));
        assert_eq!(docs[0].metadata.as_deref(), Some("{\"label\":\"1\"}"));
    }
}
