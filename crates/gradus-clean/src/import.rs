//! `gradus import`: raw JSONL or plain-text files to a `documents` dataset, unchanged.
//! (The clean stage does the same with normalisation, filters and dedup; import is for
//! text that is already clean, and for sample data.)

use std::io::BufRead;
use std::path::{Path, PathBuf};

use gradus_shard::{
    DatasetKind, DatasetWriter, Document, InputRef, OpenMode, Producer, Record, WriterOptions,
};
use serde::{Deserialize, Serialize};

use crate::error::{CleanError, InputErrorKind, Result};
use crate::ingest::{Format, TextUnit, format_of, open_decoded};

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
    // Import takes text as it is: JSON lines or plain text (any other extension),
    // compressed or not. Tables are the clean stage's to read.
    let jsonl = match format_of(file) {
        Ok(Format::Jsonl) => true,
        Ok(Format::Tsv | Format::Csv | Format::Parquet) => {
            return Err(CleanError::Config(format!(
                "{key}: import reads JSON lines and plain text; for this table use gradus-clean, which reads its columns"
            )));
        }
        _ => false,
    };
    let reader = open_decoded(file)?;
    let mut batch = Vec::with_capacity(config.batch_rows);
    let mut emit = |doc: Document| -> Result<()> {
        metrics::counter!("docs_imported").increment(1);
        batch.push(doc);
        if batch.len() >= config.batch_rows {
            writer.write(key, &Document::to_batch(&batch)?)?;
            batch.clear();
        }
        Ok(())
    };
    if jsonl {
        jsonl_documents(reader, key, &source, &config.text_field, &mut emit)?;
    } else {
        text_documents(reader, key, &source, config.text_unit, &mut emit)?;
    }
    if !batch.is_empty() {
        writer.write(key, &Document::to_batch(&batch)?)?;
    }
    Ok(())
}

/// Receives each document as it is parsed.
type Emit<'a> = dyn FnMut(Document) -> Result<()> + 'a;

fn jsonl_documents(
    reader: impl BufRead,
    key: &str,
    source: &str,
    text_field: &str,
    emit: &mut Emit<'_>,
) -> Result<()> {
    for (i, line) in reader.lines().enumerate() {
        let line_no = i + 1;
        let line = line.map_err(|e| bad_line(key, line_no, InputErrorKind::InvalidUtf8, e))?;
        if line.trim().is_empty() {
            continue;
        }
        let mut record: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&line)
            .map_err(|e| bad_line(key, line_no, InputErrorKind::MalformedJson, e))?;
        let Some(serde_json::Value::String(text)) = record.remove(text_field) else {
            let detail = format!("no string field `{text_field}`");
            return Err(bad_line(key, line_no, InputErrorKind::MissingText, detail));
        };
        let metadata = (!record.is_empty()).then(|| serde_json::Value::Object(record).to_string());
        emit(Document {
            id: format!("{source}:{line_no}"),
            text,
            source: source.to_string(),
            metadata,
        })?;
    }
    Ok(())
}

fn text_documents(
    reader: impl BufRead,
    key: &str,
    source: &str,
    unit: TextUnit,
    emit: &mut Emit<'_>,
) -> Result<()> {
    let mut current = String::new();
    let mut start = 1;
    let mut flush = |text: &mut String, line_no: usize| -> Result<()> {
        let trimmed = text.trim();
        if !trimmed.is_empty() {
            emit(Document {
                id: format!("{source}:{line_no}"),
                text: trimmed.to_string(),
                source: source.to_string(),
                metadata: None,
            })?;
        }
        text.clear();
        Ok(())
    };
    for (i, line) in reader.lines().enumerate() {
        let line_no = i + 1;
        let line = line.map_err(|e| bad_line(key, line_no, InputErrorKind::InvalidUtf8, e))?;
        if current.is_empty() {
            start = line_no;
        }
        match unit {
            TextUnit::Line => {
                current.push_str(&line);
                flush(&mut current, start)?;
            }
            TextUnit::Paragraph if line.trim().is_empty() => flush(&mut current, start)?,
            TextUnit::Paragraph | TextUnit::File => {
                if !current.is_empty() {
                    current.push('\n');
                }
                current.push_str(&line);
            }
        }
    }
    flush(&mut current, start)
}

/// Line `line` of file `key` is not what import reads.
fn bad_line(key: &str, line: usize, kind: InputErrorKind, detail: impl ToString) -> CleanError {
    CleanError::Input {
        file: key.to_string(),
        line: line as u64,
        kind,
        detail: detail.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(parse: impl FnOnce(&mut Emit<'_>) -> Result<()>) -> Result<Vec<Document>> {
        let mut docs = Vec::new();
        parse(&mut |d| {
            docs.push(d);
            Ok(())
        })?;
        Ok(docs)
    }

    #[test]
    fn paragraphs_get_the_line_they_start_on() {
        let text = "first para\nstill first\n\n\nsecond\n";
        let docs =
            collect(|e| text_documents(text.as_bytes(), "f.txt", "f", TextUnit::Paragraph, e))
                .unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0].id, "f:1");
        assert_eq!(docs[0].text, "first para\nstill first");
        assert_eq!(docs[1].id, "f:5");
    }

    #[test]
    fn file_and_line_units() {
        let text = "a\nb\n\nc\n";
        let whole =
            collect(|e| text_documents(text.as_bytes(), "f", "f", TextUnit::File, e)).unwrap();
        assert_eq!(whole.len(), 1);
        assert_eq!(whole[0].text, "a\nb\n\nc");
        let lines =
            collect(|e| text_documents(text.as_bytes(), "f", "f", TextUnit::Line, e)).unwrap();
        let ids: Vec<&str> = lines.iter().map(|d| d.id.as_str()).collect();
        assert_eq!(ids, ["f:1", "f:2", "f:4"]);
    }

    #[test]
    fn bad_jsonl_names_file_and_line() {
        let text = "{\"text\": \"ok\"}\n{\"body\": \"no text\"}\n";
        let err =
            collect(|e| jsonl_documents(text.as_bytes(), "in.jsonl", "in", "text", e)).unwrap_err();
        assert!(err.to_string().starts_with("in.jsonl:2:"), "{err}");
    }

    #[test]
    fn other_jsonl_fields_become_metadata() {
        let text = "{\"text\": \"ok\", \"url\": \"u\"}\n";
        let docs =
            collect(|e| jsonl_documents(text.as_bytes(), "in.jsonl", "in", "text", e)).unwrap();
        assert_eq!(docs[0].metadata.as_deref(), Some("{\"url\":\"u\"}"));
    }
}
