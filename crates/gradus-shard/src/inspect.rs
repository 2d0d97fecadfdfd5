//! What `gradus inspect` and `gradus verify` report of a dataset: its manifest, schema,
//! per-kind counts and first rows, and what verification finds.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::UInt32Type;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use serde::Serialize;

use crate::error::{Result, ShardError};
use crate::{Dataset, DatasetKind, ReadOptions};

/// Longest cell shown in the first-rows preview.
const CELL_CHARS: usize = 72;

/// What `gradus inspect` reports.
#[derive(Debug, Serialize)]
pub struct Summary {
    pub path: String,
    pub kind: DatasetKind,
    pub schema_version: u32,
    pub sealed: bool,
    pub producer: String,
    pub config_hash: String,
    pub inputs: Vec<String>,
    pub shards: usize,
    pub rows: u64,
    pub bytes: u64,
    pub columns: Vec<(String, String)>,
    /// Per-kind counts: tokens per split, examples per task and split, characters.
    pub counts: BTreeMap<String, u64>,
    pub stats: serde_json::Map<String, serde_json::Value>,
    /// The first rows, one map of column to (shortened) value each.
    pub head: Vec<BTreeMap<String, String>>,
}

/// Reads the manifest, the schema, per-kind counts and the first `head` rows.
pub fn summarize(path: &Path, head: usize) -> Result<Summary> {
    let ds = Dataset::open(path)?;
    let m = ds.manifest();
    let schema = ds.schema()?;
    Ok(Summary {
        path: path.display().to_string(),
        kind: m.kind,
        schema_version: m.schema_version,
        sealed: m.sealed,
        producer: format!("{} {}", m.producer.stage, m.producer.version),
        config_hash: m.producer.config_hash.clone(),
        inputs: m.inputs.iter().map(|i| i.path.clone()).collect(),
        shards: m.shards.len(),
        rows: m.rows(),
        bytes: m.bytes(),
        columns: schema
            .fields()
            .iter()
            .map(|f| (f.name().clone(), f.data_type().to_string()))
            .collect(),
        counts: counts(&ds)?,
        stats: m.stats.clone(),
        head: first_rows(&ds, head)?,
    })
}

/// Streams the few columns each kind's counts need.
fn counts(ds: &Dataset) -> Result<BTreeMap<String, u64>> {
    let mut counts = BTreeMap::new();
    let columns: &[&str] = match ds.kind() {
        DatasetKind::Documents => &["text"],
        DatasetKind::Tokens => &["n_tokens", "split"],
        DatasetKind::Examples | DatasetKind::Predictions => &["task", "split"],
    };
    for batch in ds.batches(&ReadOptions::default().columns(columns)) {
        let batch = batch?;
        match ds.kind() {
            DatasetKind::Documents => {
                let text = batch.column(0).as_string::<i32>();
                let chars: usize = (0..text.len()).map(|i| text.value(i).chars().count()).sum();
                *counts.entry("characters".into()).or_default() += chars as u64;
            }
            DatasetKind::Tokens => {
                let n = batch.column(0).as_primitive::<UInt32Type>();
                let split = batch.column(1).as_string::<i32>();
                for i in 0..batch.num_rows() {
                    let tokens = u64::from(n.value(i));
                    *counts.entry("tokens".into()).or_default() += tokens;
                    *counts
                        .entry(format!("tokens.{}", split.value(i)))
                        .or_default() += tokens;
                }
            }
            kind @ (DatasetKind::Examples | DatasetKind::Predictions) => {
                let task = batch.column(0).as_string::<i32>();
                let split = batch.column(1).as_string::<i32>();
                for i in 0..batch.num_rows() {
                    let key = format!("{kind}.{}.{}", task.value(i), split.value(i));
                    *counts.entry(key).or_default() += 1;
                }
            }
        }
    }
    Ok(counts)
}

fn first_rows(ds: &Dataset, n: usize) -> Result<Vec<BTreeMap<String, String>>> {
    let mut rows = Vec::new();
    for batch in ds.batches(&ReadOptions::default().batch_size(n.max(1))) {
        let batch = batch?;
        rows.extend(
            format_rows(&batch, n - rows.len()).map_err(|e| ShardError::Batch {
                dataset: ds.dir().to_path_buf(),
                reason: e.to_string(),
            })?,
        );
        if rows.len() >= n {
            break;
        }
    }
    Ok(rows)
}

fn format_rows(
    batch: &RecordBatch,
    n: usize,
) -> std::result::Result<Vec<BTreeMap<String, String>>, arrow::error::ArrowError> {
    let options = FormatOptions::default().with_null("null");
    let formatters = batch
        .columns()
        .iter()
        .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
        .collect::<Result<Vec<_>, _>>()?;
    let schema = batch.schema();
    Ok((0..batch.num_rows().min(n))
        .map(|row| {
            schema
                .fields()
                .iter()
                .zip(&formatters)
                .map(|(field, fmt)| (field.name().clone(), shorten(&fmt.value(row).to_string())))
                .collect()
        })
        .collect())
}

fn shorten(text: &str) -> String {
    let flat = text.replace('\n', "⏎");
    if flat.chars().count() <= CELL_CHARS {
        return flat;
    }
    let cut: String = flat.chars().take(CELL_CHARS - 1).collect();
    format!("{cut}…")
}

/// Human-readable rendering of a summary.
pub fn render(s: &Summary, out: &mut impl Write) -> std::io::Result<()> {
    let state = if s.sealed {
        "sealed"
    } else {
        "open (being written or interrupted)"
    };
    writeln!(out, "dataset   {}", s.path)?;
    writeln!(
        out,
        "kind      {} (schema v{}), {state}",
        s.kind, s.schema_version
    )?;
    writeln!(out, "producer  {} (config {})", s.producer, s.config_hash)?;
    for input in &s.inputs {
        writeln!(out, "input     {input}")?;
    }
    writeln!(
        out,
        "shards    {} ({} rows, {} bytes)",
        s.shards, s.rows, s.bytes
    )?;
    writeln!(out, "columns")?;
    for (name, ty) in &s.columns {
        writeln!(out, "  {name:<24} {ty}")?;
    }
    if !s.counts.is_empty() {
        writeln!(out, "counts")?;
        for (k, v) in &s.counts {
            writeln!(out, "  {k:<24} {v}")?;
        }
    }
    if !s.stats.is_empty() {
        writeln!(out, "stats")?;
        for (k, v) in &s.stats {
            writeln!(out, "  {k:<24} {v}")?;
        }
    }
    for (i, row) in s.head.iter().enumerate() {
        writeln!(out, "row {i}")?;
        for (k, v) in row {
            writeln!(out, "  {k:<24} {v}")?;
        }
    }
    Ok(())
}

/// What verifying a dataset found.
#[derive(Debug)]
pub struct Verification {
    /// The dataset in a line: path, kind, whether sealed, shards, rows and bytes.
    pub summary: String,
    /// Every problem; none means the dataset is sound.
    pub problems: Vec<String>,
}

/// Verifies a dataset: every shard's presence, size, checksum, schema and rows, and its
/// lineage. An unsealed dataset (left by a failed run, or still being written) is a
/// problem unless `unsealed_ok`.
pub fn verify(path: &Path, unsealed_ok: bool) -> Result<Verification> {
    let ds = Dataset::open(path)?;
    let m = ds.manifest();
    let mut problems: Vec<String> = ds.verify().iter().map(ToString::to_string).collect();
    if problems.is_empty() && !m.sealed && !unsealed_ok {
        problems.push(
            "not sealed: its producer stopped before the end or is still writing (rerun it, \
             or pass --unsealed-ok if that is expected)"
                .into(),
        );
    }
    let summary = format!(
        "{} ({}{}), {} shards, {} rows, {} bytes",
        path.display(),
        m.kind,
        if m.sealed { "" } else { ", unsealed" },
        m.shards.len(),
        m.rows(),
        m.bytes()
    );
    Ok(Verification { summary, problems })
}
