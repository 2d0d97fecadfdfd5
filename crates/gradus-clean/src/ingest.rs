//! Reading raw inputs as documents, one DataFusion partition per input file.
//!
//! Every reader yields rows of [`ingest_schema`]: a `key` that orders documents by input
//! position (file index in the high 32 bits, document index in the file in the low 32),
//! a stable `id` (`source/file:line`, or `source/file#row` for tabular files), the
//! `source` tag, `metadata` (JSON: the file, line or row, and the record's other fields)
//! and the raw `text`. Malformed input is counted per kind and skipped, or fails the
//! run with the file and line, as `on_error` says.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex};

use arrow::array::{RecordBatch, StringBuilder, UInt64Builder};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::error::DataFusionError;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::stream::RecordBatchReceiverStream;
use datafusion::physical_plan::streaming::PartitionStream;
use gradus_shard::raw::{self, Position, ReadSpec};
use gradus_shard::{Dataset, DatasetKind, ReadOptions, ShardEntry};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{CleanError, InputErrorKind};

pub use gradus_shard::raw::TextUnit;

/// The format of an input; by default told from the file extension. Written as the raw
/// format's name (`jsonl`, `text`, `tsv`, `csv`, `parquet`) or `documents`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// An upstream gradus `documents` dataset (a folder with `manifest.json`).
    Documents,
    /// A raw file (`gradus_shard::raw`).
    #[serde(untagged)]
    Raw(raw::Format),
}

pub use gradus_shard::OnError;

/// One `[[inputs]]` entry of the pipeline TOML.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    /// A file, a folder (its files, in name order), a glob, or a documents dataset.
    pub path: String,
    /// Told from the extension when absent.
    #[serde(default)]
    pub format: Option<Format>,
    /// The `source` tag; by default the file stem of `path` (the folder name for a
    /// folder or glob).
    #[serde(default)]
    pub source: Option<String>,
    /// JSON field, CSV/TSV column or Parquet column holding the text.
    #[serde(default = "default_text_field")]
    pub text_field: String,
    #[serde(default)]
    pub text_unit: TextUnit,
}

fn default_text_field() -> String {
    "text".into()
}

impl InputSpec {
    /// A spec with defaults for a bare `--input PATH`.
    pub fn path(path: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            format: None,
            source: None,
            text_field: default_text_field(),
            text_unit: TextUnit::default(),
        }
    }

    fn default_source(&self) -> String {
        let path = Path::new(&self.path);
        let base = if is_glob(&self.path) || path.is_dir() && !is_dataset(path) {
            let dir = if is_glob(&self.path) {
                path.parent().unwrap_or(Path::new("."))
            } else {
                path
            };
            dir.file_name()
        } else {
            path.file_name()
        };
        let name = base.map_or_else(|| "input".into(), |s| s.to_string_lossy().into_owned());
        name.split('.').next().unwrap_or("input").to_string()
    }
}

fn is_glob(path: &str) -> bool {
    path.contains(['*', '?', '['])
}

fn is_dataset(path: &Path) -> bool {
    path.join("manifest.json").is_file()
}

/// One unit of input: a file, or one shard of a documents dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputFile {
    /// Position among all inputs: the high half of every key.
    pub index: u32,
    pub path: PathBuf,
    /// The resume key and the `file` of lineage: the path as given (plus the shard).
    pub display: String,
    pub format: Format,
    pub source: String,
    pub text_field: String,
    pub text_unit: TextUnit,
    shard: Option<(PathBuf, ShardEntry)>,
}

impl InputFile {
    /// The same input with its paths made absolute, for a process running elsewhere
    /// (a cluster executor in another working folder); `display`, which names the input
    /// in ids and lineage, stays as given.
    pub fn absolute(&self) -> std::io::Result<Self> {
        let mut file = self.clone();
        file.path = std::path::absolute(&self.path)?;
        if let Some((dir, _)) = &mut file.shard {
            *dir = std::path::absolute(&*dir)?;
        }
        Ok(file)
    }
}

/// A path that matched nothing, for the report (or the error under `on_error = "fail"`).
#[derive(Debug, Clone)]
pub struct MissingInput(pub String);

/// The files behind the specs, in order: specs as listed, each expanded in name order.
pub fn expand(specs: &[InputSpec]) -> Result<(Vec<InputFile>, Vec<MissingInput>), CleanError> {
    let mut files = Vec::new();
    let mut missing = Vec::new();
    for spec in specs {
        let source = spec.source.clone().unwrap_or_else(|| spec.default_source());
        let path = Path::new(&spec.path);
        let mut push = |p: PathBuf, display: String, format: Format, shard| {
            files.push(InputFile {
                index: files.len() as u32,
                path: p,
                display,
                format,
                source: source.clone(),
                text_field: spec.text_field.clone(),
                text_unit: spec.text_unit,
                shard,
            });
        };
        if spec.format == Some(Format::Documents) || is_dataset(path) {
            let ds = Dataset::open_kind(path, DatasetKind::Documents)
                .map_err(|e| CleanError::Config(format!("input {}: {e}", spec.path)))?;
            for shard in &ds.manifest().shards {
                let display = format!("{}/{}", spec.path, shard.file);
                push(
                    path.join(&shard.file),
                    display,
                    Format::Documents,
                    Some((path.to_path_buf(), shard.clone())),
                );
            }
            continue;
        }
        let matched = matching_files(&spec.path)?;
        if matched.is_empty() {
            missing.push(MissingInput(spec.path.clone()));
        }
        for p in matched {
            let format = match spec.format {
                Some(f) => f,
                None => format_of(&p)?,
            };
            let display = p.display().to_string();
            push(p, display, format, None);
        }
    }
    Ok((files, missing))
}

/// Files of a path, folder or glob, sorted by name.
fn matching_files(pattern: &str) -> Result<Vec<PathBuf>, CleanError> {
    let path = Path::new(pattern);
    let mut out: Vec<PathBuf> = if is_glob(pattern) {
        glob::glob(pattern)
            .map_err(|e| CleanError::Config(format!("input {pattern}: bad glob: {e}")))?
            .filter_map(Result::ok)
            .filter(|p| p.is_file())
            .collect()
    } else if path.is_dir() {
        std::fs::read_dir(path)
            .map_err(|e| CleanError::io(path, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect()
    } else if path.is_file() {
        vec![path.to_path_buf()]
    } else {
        Vec::new()
    };
    out.sort();
    Ok(out)
}

/// The format a file's extension names (`.gz` / `.zst` looked through).
pub fn format_of(path: &Path) -> Result<Format, CleanError> {
    raw::format_of(path).map(Format::Raw).ok_or_else(|| {
        CleanError::Config(format!(
            "{}: cannot tell the format from the extension; set `format` \
             (jsonl, text, tsv, csv, parquet, documents)",
            path.display()
        ))
    })
}

static INGEST_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("key", DataType::UInt64, false),
        Field::new("id", DataType::Utf8, false),
        Field::new("source", DataType::Utf8, false),
        Field::new("metadata", DataType::Utf8, true),
        Field::new("text", DataType::Utf8, false),
    ]))
});

/// The columns every reader yields.
pub fn ingest_schema() -> SchemaRef {
    INGEST_SCHEMA.clone()
}

/// Input errors met while reading, by kind (shared by a file's reader and the stage).
#[derive(Debug, Default, Clone)]
pub struct ErrorCounts(Arc<Mutex<BTreeMap<String, u64>>>);

impl ErrorCounts {
    pub fn add(&self, kind: InputErrorKind) {
        if let Ok(mut m) = self.0.lock() {
            *m.entry(kind.name().to_string()).or_default() += 1;
        }
    }

    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        self.0.lock().map(|m| m.clone()).unwrap_or_default()
    }
}

/// Accumulates documents into batches of [`ingest_schema`].
struct Batcher<'a> {
    file: &'a InputFile,
    /// The file's name, for ids.
    file_name: String,
    batch_rows: usize,
    next: u32,
    keys: UInt64Builder,
    ids: StringBuilder,
    sources: StringBuilder,
    metadata: StringBuilder,
    texts: StringBuilder,
    rows: usize,
}

impl<'a> Batcher<'a> {
    fn new(file: &'a InputFile, batch_rows: usize) -> Self {
        let file_name = Path::new(&file.display)
            .file_name()
            .map_or_else(|| file.display.clone(), |n| n.to_string_lossy().into());
        Self {
            file,
            file_name,
            batch_rows,
            next: 0,
            keys: UInt64Builder::new(),
            ids: StringBuilder::new(),
            sources: StringBuilder::new(),
            metadata: StringBuilder::new(),
            texts: StringBuilder::new(),
            rows: 0,
        }
    }

    /// Adds a document at `position` (`:line` or `#row`); returns a full batch if any.
    fn push(
        &mut self,
        position: Position,
        id: Option<&str>,
        source: Option<&str>,
        fields: Map<String, Value>,
        text: &str,
    ) -> Option<Result<RecordBatch, CleanError>> {
        let key = (u64::from(self.file.index) << 32) | u64::from(self.next);
        self.next += 1;
        let source = source.unwrap_or(&self.file.source);
        let own_id;
        let id = match id {
            Some(id) => id,
            None => {
                own_id = match position {
                    Position::Line(l) => format!("{source}/{}:{l}", self.file_name),
                    Position::Row(r) => format!("{source}/{}#{r}", self.file_name),
                };
                &own_id
            }
        };
        let mut meta = Map::new();
        meta.insert("file".into(), Value::String(self.file.display.clone()));
        match position {
            Position::Line(l) => meta.insert("line".into(), l.into()),
            Position::Row(r) => meta.insert("row".into(), r.into()),
        };
        if !fields.is_empty() {
            meta.insert("fields".into(), Value::Object(fields));
        }
        self.keys.append_value(key);
        self.ids.append_value(id);
        self.sources.append_value(source);
        self.metadata.append_value(Value::Object(meta).to_string());
        self.texts.append_value(text);
        self.rows += 1;
        (self.rows >= self.batch_rows).then(|| self.finish())
    }

    fn finish(&mut self) -> Result<RecordBatch, CleanError> {
        self.rows = 0;
        RecordBatch::try_new(
            ingest_schema(),
            vec![
                Arc::new(self.keys.finish()),
                Arc::new(self.ids.finish()),
                Arc::new(self.sources.finish()),
                Arc::new(self.metadata.finish()),
                Arc::new(self.texts.finish()),
            ],
        )
        .map_err(|e| CleanError::Internal(e.to_string()))
    }
}

/// Reads one input file, handing batches to `sink`; `sink` returns false to stop early.
pub fn read_file(
    file: &InputFile,
    batch_rows: usize,
    on_error: OnError,
    errors: &ErrorCounts,
    sink: &mut dyn FnMut(RecordBatch) -> bool,
) -> Result<(), CleanError> {
    let mut b = Batcher::new(file, batch_rows.max(1));
    let mut ctx = ReadCtx {
        file,
        on_error,
        errors,
    };
    let mut emit = |out: Option<Result<RecordBatch, CleanError>>| {
        if let Some(batch) = out
            && !sink(batch?)
        {
            // The consumer is gone: stop reading, quietly.
            return Err(CleanError::Cancelled);
        }
        Ok(())
    };
    let result = match file.format {
        Format::Raw(format) => read_raw(&mut ctx, format, &mut b, &mut emit),
        Format::Documents => read_documents(&mut ctx, &mut b, &mut emit),
    };
    match result {
        Err(CleanError::Cancelled) => return Ok(()),
        other => other?,
    }
    if b.rows > 0 {
        let batch = b.finish()?;
        sink(batch);
    }
    Ok(())
}

type Emit<'e> = dyn FnMut(Option<Result<RecordBatch, CleanError>>) -> Result<(), CleanError> + 'e;

struct ReadCtx<'a> {
    file: &'a InputFile,
    on_error: OnError,
    errors: &'a ErrorCounts,
}

impl ReadCtx<'_> {
    /// Counts a bad record, or fails with its position under `on_error = "fail"`.
    fn bad(&self, kind: InputErrorKind, line: u64, detail: String) -> Result<(), CleanError> {
        match self.on_error {
            OnError::Skip => {
                self.errors.add(kind);
                Ok(())
            }
            OnError::Fail => Err(CleanError::Input {
                file: self.file.display.clone(),
                line,
                kind,
                detail,
            }),
        }
    }
}

/// Reads a raw file's records as documents: the text from `text_field`, the other
/// fields kept in the metadata.
fn read_raw(
    ctx: &mut ReadCtx<'_>,
    format: raw::Format,
    b: &mut Batcher<'_>,
    emit: &mut Emit<'_>,
) -> Result<(), CleanError> {
    let file = ctx.file;
    let spec = ReadSpec {
        text_unit: file.text_unit,
        text_field: file.text_field.clone(),
        // Only the text of a Parquet file: its other columns can be large.
        columns: (format == raw::Format::Parquet).then(|| vec![file.text_field.clone()]),
        ..ReadSpec::new(format)
    };
    let reader =
        raw::open_documents(&file.path, &spec).map_err(|e| CleanError::raw(&file.display, e))?;
    for item in reader {
        let mut record = match item.map_err(|e| CleanError::raw(&file.display, e))? {
            Ok(record) => record,
            Err(bad) => {
                ctx.bad(bad.kind, bad.line, bad.detail)?;
                continue;
            }
        };
        let Some(Value::String(text)) = record.fields.remove(&file.text_field) else {
            let detail = format!("no text in `{}`", file.text_field);
            ctx.bad(
                InputErrorKind::MissingText,
                record.position.number(),
                detail,
            )?;
            continue;
        };
        emit(b.push(record.position, None, None, record.fields, &text))?;
    }
    Ok(())
}

fn read_documents(
    ctx: &mut ReadCtx<'_>,
    b: &mut Batcher<'_>,
    emit: &mut Emit<'_>,
) -> Result<(), CleanError> {
    use arrow::array::{Array, AsArray};

    let Some((dir, shard)) = &ctx.file.shard else {
        return Err(CleanError::Internal(
            "documents input without a shard".into(),
        ));
    };
    let shard_err = |e: gradus_shard::ShardError| CleanError::Config(e.to_string());
    let ds = Dataset::open_kind(dir, DatasetKind::Documents).map_err(shard_err)?;
    let opts = ReadOptions::default().columns(&["id", "text", "source", "metadata"]);
    let mut row = 0u64;
    for batch in ds.read_shard(shard, &opts).map_err(shard_err)? {
        let batch = batch.map_err(shard_err)?;
        let ids = batch.column(0).as_string::<i32>();
        let texts = batch.column(1).as_string::<i32>();
        let sources = batch.column(2).as_string::<i32>();
        let metas = batch.column(3).as_string::<i32>();
        for i in 0..batch.num_rows() {
            let mut fields = Map::new();
            if !metas.is_null(i) {
                let upstream = serde_json::from_str(metas.value(i))
                    .unwrap_or_else(|_| Value::String(metas.value(i).to_string()));
                fields.insert("upstream".into(), upstream);
            }
            let out = b.push(
                Position::Row(row),
                Some(ids.value(i)),
                Some(sources.value(i)),
                fields,
                texts.value(i),
            );
            emit(out)?;
            row += 1;
        }
    }
    Ok(())
}

/// One input file as a DataFusion partition: a reader thread feeds batches to the plan
/// through a small bounded channel, so reading overlaps with the work downstream.
#[derive(Debug)]
pub struct FilePartition {
    pub file: InputFile,
    pub batch_rows: usize,
    pub on_error: OnError,
    pub errors: ErrorCounts,
    /// Where to write the file's error counts (JSON) once it is read to the end: a
    /// process other than the stage's (a cluster executor) reports them this way.
    pub errors_to: Option<PathBuf>,
}

impl PartitionStream for FilePartition {
    fn schema(&self) -> &SchemaRef {
        &INGEST_SCHEMA
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let mut stream = RecordBatchReceiverStream::builder(ingest_schema(), 2);
        let tx = stream.tx();
        let file = self.file.clone();
        let (batch_rows, on_error, errors) = (self.batch_rows, self.on_error, self.errors.clone());
        let errors_to = self.errors_to.clone();
        // Reading is blocking work: off the async runtime.
        stream.spawn_blocking(move || {
            let mut sink = |batch| tx.blocking_send(Ok(batch)).is_ok();
            let read = read_file(&file, batch_rows, on_error, &errors, &mut sink);
            match &errors_to {
                None => read.map_err(|e| DataFusionError::External(Box::new(e))),
                // In another process the error only travels as text.
                Some(to) => read
                    .and_then(|()| write_errors(&errors, to))
                    .map_err(|e| DataFusionError::Execution(e.to_remote())),
            }
        });
        stream.build()
    }
}

/// Writes `errors`' counts to `to` as a JSON object, atomically (a task run twice
/// writes the same file twice).
fn write_errors(errors: &ErrorCounts, to: &Path) -> Result<(), CleanError> {
    let json = serde_json::to_string(&errors.snapshot())
        .map_err(|e| CleanError::Internal(e.to_string()))?;
    let tmp = to.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, json).map_err(|e| CleanError::io(&tmp, e))?;
    std::fs::rename(&tmp, to).map_err(|e| CleanError::io(to, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_are_written_by_name() {
        let named = [
            ("jsonl", Format::Raw(raw::Format::Jsonl)),
            ("parquet", Format::Raw(raw::Format::Parquet)),
            ("documents", Format::Documents),
        ];
        for (name, format) in named {
            let read: Format = serde_json::from_value(Value::from(name)).unwrap();
            assert_eq!(read, format);
            assert_eq!(serde_json::to_value(format).unwrap(), Value::from(name));
        }
        assert!(serde_json::from_value::<Format>(Value::from("xml")).is_err());
    }
}
