//! The atomic shard writer.
//!
//! Rows arrive tagged with the *source* they came from (an input file, an upstream
//! shard). Rows are written to `.part-NNNNN.parquet.tmp`; when the shard is full (rows or
//! bytes) the file is flushed, synced and renamed to `part-NNNNN.parquet`, and only then
//! is the manifest rewritten to list it. A crash therefore never exposes a partial shard.
//!
//! Resume: a source counts as done once all of its rows are in committed shards and the
//! stage said it finished. Reopening a dataset rolls back the trailing shards that hold
//! rows of unfinished sources (and any shard that shares a source with those), so the
//! stage can redo exactly the sources not done and, being deterministic, produce the same
//! shards an uninterrupted run would have.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use serde_json::{Map, Value};

use crate::checksum::HashingWriter;
use crate::error::{Result, ShardError};
use crate::lock::{FolderLock, LockError};
use crate::manifest::{InputRef, Manifest, Producer, ShardEntry, sync_dir};
use crate::schema::{DatasetKind, check_schema};

/// What to do with a dataset that already exists at the output path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OpenMode {
    /// Keep the committed work and continue; the producer's config hash must match.
    #[default]
    Resume,
    /// Delete the dataset's files and start again.
    Overwrite,
}

/// Shard layout settings.
#[derive(Debug, Clone)]
pub struct WriterOptions {
    /// A shard is committed once it holds this many rows.
    pub max_rows_per_shard: usize,
    /// A shard is committed once its encoded size reaches this many bytes.
    pub max_bytes_per_shard: u64,
    /// Upper bound of rows per Parquet row group.
    pub row_group_rows: usize,
    /// Upper bound of the encoded bytes of a row group; also bounds the writer's memory.
    pub row_group_bytes: usize,
    /// zstd level (1 to 22).
    pub zstd_level: i32,
    pub mode: OpenMode,
}

impl Default for WriterOptions {
    fn default() -> Self {
        Self {
            max_rows_per_shard: 1_000_000,
            max_bytes_per_shard: 128 << 20,
            row_group_rows: 64 * 1024,
            row_group_bytes: 32 << 20,
            zstd_level: 3,
            mode: OpenMode::Resume,
        }
    }
}

/// Refuses sizes of 0 for a stage that batches rows and writes shards: no row would be
/// read, or every row would become a shard of its own.
pub fn check_sizes(
    batch_rows: usize,
    max_rows_per_shard: usize,
    max_bytes_per_shard: u64,
) -> Result<(), String> {
    if batch_rows == 0 || max_rows_per_shard == 0 || max_bytes_per_shard == 0 {
        return Err(
            "batch_rows, max_rows_per_shard and max_bytes_per_shard must be positive".into(),
        );
    }
    Ok(())
}

/// File name of shard number `index`.
pub fn shard_file_name(index: usize) -> String {
    format!("part-{index:05}.parquet")
}

fn is_shard_file(name: &str) -> bool {
    name.starts_with("part-") && name.ends_with(".parquet")
}

type ShardSink = ArrowWriter<HashingWriter<BufWriter<File>>>;

/// The shard being filled.
struct OpenShard {
    name: String,
    tmp: PathBuf,
    writer: ShardSink,
    rows: usize,
    sources: Vec<String>,
}

impl OpenShard {
    fn size(&self) -> u64 {
        (self.writer.bytes_written() + self.writer.in_progress_size()) as u64
    }
}

/// Writes one dataset. See the module documentation for the commit protocol.
pub struct DatasetWriter {
    dir: PathBuf,
    manifest: Manifest,
    opts: WriterOptions,
    props: WriterProperties,
    schema: Option<SchemaRef>,
    open: Option<OpenShard>,
    /// Finished sources whose last rows sit in the open shard.
    pending_done: Vec<String>,
    done: HashSet<String>,
    /// Held for the writer's lifetime so two writers never share a dataset.
    _lock: FolderLock,
}

impl std::fmt::Debug for DatasetWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatasetWriter")
            .field("dir", &self.dir)
            .field("kind", &self.manifest.kind)
            .field("shards", &self.manifest.shards.len())
            .field("open_rows", &self.open.as_ref().map(|s| s.rows))
            .finish()
    }
}

impl DatasetWriter {
    /// Opens `dir` for writing a dataset of `kind`: creates it, resumes it, or (with
    /// [`OpenMode::Overwrite`]) replaces it.
    pub fn create(
        dir: &Path,
        kind: DatasetKind,
        producer: Producer,
        inputs: Vec<InputRef>,
        opts: WriterOptions,
    ) -> Result<Self> {
        fs::create_dir_all(dir).map_err(|e| ShardError::io(dir, e))?;
        let lock = take_lock(dir)?;
        let existing = match opts.mode {
            OpenMode::Resume => Manifest::load_if_exists(dir)?,
            OpenMode::Overwrite => None,
        };
        let manifest = match existing {
            Some(old) => resume(dir, old, kind, &producer)?,
            None => Manifest::new(kind, producer, inputs),
        };
        remove_unlisted_files(dir, &manifest)?;
        manifest.store(dir)?;
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(
                ZstdLevel::try_new(opts.zstd_level).map_err(|e| ShardError::State {
                    dataset: dir.to_path_buf(),
                    reason: format!("zstd level: {e}"),
                })?,
            ))
            .set_max_row_group_row_count(Some(opts.row_group_rows.max(1)))
            .set_max_row_group_bytes(Some(opts.row_group_bytes.max(1)))
            .set_created_by(format!("gradus-shard {}", env!("CARGO_PKG_VERSION")))
            .build();
        let done = manifest.done_sources.iter().cloned().collect();
        Ok(Self {
            dir: dir.to_path_buf(),
            manifest,
            opts,
            props,
            schema: None,
            open: None,
            pending_done: Vec::new(),
            done,
            _lock: lock,
        })
    }

    /// The dataset folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The manifest as committed so far.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Whether the dataset was already complete when opened.
    pub fn is_sealed(&self) -> bool {
        self.manifest.sealed
    }

    /// Whether `source` was fully written by this or an earlier run.
    pub fn is_done(&self, source: &str) -> bool {
        self.done.contains(source)
    }

    /// Statistics written into the manifest at the next commit.
    pub fn stats_mut(&mut self) -> &mut Map<String, Value> {
        &mut self.manifest.stats
    }

    /// Appends rows of `source`. Batches of one dataset must share one schema, which
    /// carries at least the required columns of the dataset's kind.
    pub fn write(&mut self, source: &str, batch: &RecordBatch) -> Result<()> {
        self.check_batch(batch)?;
        let mut offset = 0;
        while offset < batch.num_rows() {
            let max_rows = self.opts.max_rows_per_shard.max(1);
            let max_bytes = self.opts.max_bytes_per_shard;
            let dir = self.dir.clone();
            let shard = self.open_shard(batch.schema())?;
            let take = (max_rows - shard.rows).min(batch.num_rows() - offset);
            let part = batch.slice(offset, take);
            shard.writer.write(&part).map_err(|e| ShardError::Parquet {
                dataset: dir,
                shard: shard.name.clone(),
                source: e,
            })?;
            shard.rows += take;
            if !shard.sources.iter().any(|s| s == source) {
                shard.sources.push(source.to_string());
            }
            offset += take;
            if shard.rows >= max_rows || shard.size() >= max_bytes {
                self.commit_open()?;
            }
        }
        Ok(())
    }

    /// Marks `source` as finished: once its rows are committed, a resumed run skips it.
    /// A source with no rows at all is done at once.
    pub fn finish_source(&mut self, source: &str) -> Result<()> {
        let in_open = self
            .open
            .as_ref()
            .is_some_and(|s| s.sources.iter().any(|x| x == source));
        if in_open {
            self.pending_done.push(source.to_string());
            return Ok(());
        }
        if self.done.insert(source.to_string()) {
            self.manifest.done_sources.push(source.to_string());
            self.manifest.store(&self.dir)?;
        }
        Ok(())
    }

    /// Commits the open shard, if any, without waiting for it to fill.
    pub fn flush(&mut self) -> Result<()> {
        if self.open.is_some() {
            self.commit_open()?;
        }
        Ok(())
    }

    /// Commits what is left and marks the dataset complete.
    pub fn seal(mut self) -> Result<Manifest> {
        self.flush()?;
        self.manifest.sealed = true;
        self.manifest.store(&self.dir)?;
        Ok(self.manifest.clone())
    }

    /// Stops as a crash would: the open shard stays an uncommitted temporary file and
    /// nothing is cleaned up; only the lock is released. The next writer rolls back and
    /// resumes. Crash tests of the stages built on this use it.
    pub fn crash(mut self) {
        if let Some(shard) = self.open.take() {
            // Leak the Parquet writer so its buffers are never flushed or finished.
            std::mem::forget(shard.writer);
        }
    }

    fn check_batch(&mut self, batch: &RecordBatch) -> Result<()> {
        if self.manifest.sealed {
            return Err(ShardError::State {
                dataset: self.dir.clone(),
                reason: "dataset is sealed; open it with overwrite to write it again".into(),
            });
        }
        let next_shard = || {
            self.open.as_ref().map_or_else(
                || shard_file_name(self.manifest.shards.len()),
                |s| s.name.clone(),
            )
        };
        let schema_error = |reason| ShardError::Schema {
            dataset: self.dir.clone(),
            shard: next_shard(),
            reason,
        };
        check_schema(self.manifest.kind, batch.schema_ref()).map_err(schema_error)?;
        match &self.schema {
            Some(first) if first != batch.schema_ref() => Err(schema_error(format!(
                "batch schema {} differs from the dataset's {}",
                batch.schema(),
                first
            ))),
            Some(_) => Ok(()),
            None => {
                self.schema = Some(batch.schema());
                Ok(())
            }
        }
    }

    fn open_shard(&mut self, schema: SchemaRef) -> Result<&mut OpenShard> {
        if self.open.is_none() {
            let name = shard_file_name(self.manifest.shards.len());
            let tmp = self.dir.join(format!(".{name}.tmp"));
            let file = File::create(&tmp).map_err(|e| ShardError::io(&tmp, e))?;
            let sink = HashingWriter::new(BufWriter::with_capacity(1 << 20, file));
            let writer =
                ArrowWriter::try_new(sink, schema, Some(self.props.clone())).map_err(|e| {
                    ShardError::Parquet {
                        dataset: self.dir.clone(),
                        shard: name.clone(),
                        source: e,
                    }
                })?;
            self.open = Some(OpenShard {
                name,
                tmp,
                writer,
                rows: 0,
                sources: Vec::new(),
            });
        }
        Ok(self.open.as_mut().expect("opened above"))
    }

    fn commit_open(&mut self) -> Result<()> {
        let Some(shard) = self.open.take() else {
            return Ok(());
        };
        let parquet_err = |e| ShardError::Parquet {
            dataset: self.dir.clone(),
            shard: shard.name.clone(),
            source: e,
        };
        let sink = shard.writer.into_inner().map_err(parquet_err)?;
        let (buffered, bytes, checksum) = sink.finish();
        let file = buffered
            .into_inner()
            .map_err(|e| ShardError::io(&shard.tmp, e.into_error()))?;
        file.sync_all().map_err(|e| ShardError::io(&shard.tmp, e))?;
        let path = self.dir.join(&shard.name);
        fs::rename(&shard.tmp, &path).map_err(|e| ShardError::io(&path, e))?;
        sync_dir(&self.dir)?;
        self.manifest.shards.push(ShardEntry {
            file: shard.name,
            rows: shard.rows as u64,
            bytes,
            checksum,
            sources: shard.sources,
        });
        for source in self.pending_done.drain(..) {
            if self.done.insert(source.clone()) {
                self.manifest.done_sources.push(source);
            }
        }
        self.manifest.store(&self.dir)
    }
}

impl Drop for DatasetWriter {
    fn drop(&mut self) {
        // An abandoned shard was never committed; its temporary file is garbage. (After a
        // crash the next writer removes it instead.)
        if let Some(shard) = self.open.take() {
            drop(shard.writer);
            let _ = fs::remove_file(&shard.tmp);
        }
    }
}

fn take_lock(dir: &Path) -> Result<FolderLock> {
    FolderLock::take(dir).map_err(|e| match e {
        LockError::Held { holder, .. } => ShardError::State {
            dataset: dir.to_path_buf(),
            reason: format!(
                "another writer has this dataset open{}",
                holder.map_or(String::new(), |p| format!(" (PID {p})"))
            ),
        },
        LockError::Io { path, source } => ShardError::io(path, source),
    })
}

/// Checks that an existing dataset may be continued and rolls back its unfinished tail.
fn resume(
    dir: &Path,
    mut old: Manifest,
    kind: DatasetKind,
    producer: &Producer,
) -> Result<Manifest> {
    let refuse = |reason: String| ShardError::State {
        dataset: dir.to_path_buf(),
        reason,
    };
    if old.kind != kind {
        return Err(refuse(format!(
            "holds a {} dataset, this stage writes {kind}; choose another output or overwrite",
            old.kind
        )));
    }
    if old.producer.config_hash != producer.config_hash {
        return Err(refuse(format!(
            "was written with another configuration (config hash {} vs {}); resume needs the \
             same settings, or overwrite to start again",
            old.producer.config_hash, producer.config_hash
        )));
    }
    if old.sealed {
        return Ok(old);
    }
    let keep = committed_prefix(&old);
    let removed: Vec<ShardEntry> = old.shards.split_off(keep);
    let undone: HashSet<&str> = removed
        .iter()
        .flat_map(|s| s.sources.iter().map(String::as_str))
        .collect();
    old.done_sources.retain(|s| !undone.contains(s.as_str()));
    if !removed.is_empty() {
        tracing::info!(
            dataset = %dir.display(),
            shards = removed.len(),
            "rolling back shards that hold unfinished sources"
        );
    }
    Ok(old)
}

/// The longest prefix of shards whose sources are all done and appear in no later shard.
fn committed_prefix(manifest: &Manifest) -> usize {
    let done: HashSet<&str> = manifest.done_sources.iter().map(String::as_str).collect();
    let shards = &manifest.shards;
    (0..=shards.len())
        .rev()
        .find(|&keep| {
            let later: HashSet<&str> = shards[keep..]
                .iter()
                .flat_map(|s| s.sources.iter().map(String::as_str))
                .collect();
            shards[..keep]
                .iter()
                .flat_map(|s| &s.sources)
                .all(|s| done.contains(s.as_str()) && !later.contains(s.as_str()))
        })
        .unwrap_or(0)
}

/// Removes temporary files, shard files the manifest does not list (a crash between
/// rename and manifest commit, or rolled-back shards) and, on overwrite, everything old.
fn remove_unlisted_files(dir: &Path, manifest: &Manifest) -> Result<()> {
    let listed: HashSet<&str> = manifest.shards.iter().map(|s| s.file.as_str()).collect();
    let entries = fs::read_dir(dir).map_err(|e| ShardError::io(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| ShardError::io(dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let stale_tmp = name.starts_with(".part-") && name.ends_with(".tmp");
        let stale_shard = is_shard_file(&name) && !listed.contains(name.as_str());
        if stale_tmp || stale_shard {
            let path = entry.path();
            fs::remove_file(&path).map_err(|e| ShardError::io(&path, e))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(file: &str, sources: &[&str]) -> ShardEntry {
        ShardEntry {
            file: file.into(),
            rows: 1,
            bytes: 1,
            checksum: String::new(),
            sources: sources.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn manifest(shards: Vec<ShardEntry>, done: &[&str]) -> Manifest {
        let producer = Producer::new("test", &()).unwrap();
        let mut m = Manifest::new(DatasetKind::Documents, producer, vec![]);
        m.shards = shards;
        m.done_sources = done.iter().map(|s| s.to_string()).collect();
        m
    }

    #[test]
    fn rollback_stops_at_a_source_boundary() {
        // Source b straddles shards 1 and 2 and was not finished: both go; a, alone in
        // shard 0, stays.
        let m = manifest(
            vec![
                entry("p0", &["a"]),
                entry("p1", &["b"]),
                entry("p2", &["b", "c"]),
            ],
            &["a"],
        );
        assert_eq!(committed_prefix(&m), 1);
    }

    #[test]
    fn a_finished_source_sharing_a_shard_with_an_unfinished_one_is_redone() {
        let m = manifest(vec![entry("p0", &["a"]), entry("p1", &["a", "b"])], &["a"]);
        assert_eq!(committed_prefix(&m), 0);
    }

    #[test]
    fn everything_done_keeps_everything() {
        let m = manifest(
            vec![entry("p0", &["a"]), entry("p1", &["a", "b"])],
            &["a", "b"],
        );
        assert_eq!(committed_prefix(&m), 2);
    }
}
