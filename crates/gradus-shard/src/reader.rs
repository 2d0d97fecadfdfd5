//! Reading datasets: streaming record batches shard by shard with column projection,
//! following a dataset while its producer is still writing, and verification.

use std::collections::VecDeque;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};

use crate::checksum::checksum_file;
use crate::error::{Result, ShardError};
use crate::manifest::{Manifest, ShardEntry};
use crate::schema::{DatasetKind, check_schema};

/// How to read shards.
#[derive(Debug, Clone)]
pub struct ReadOptions {
    /// Columns to read, by name; `None` reads all.
    pub columns: Option<Vec<String>>,
    /// Rows per record batch.
    pub batch_size: usize,
    /// Hash each shard before reading it, so that a damaged shard stops the reader
    /// instead of passing on what it decodes to. It reads every byte twice, the second
    /// time from the page cache; by default on ([`verify_checksums_by_default`]).
    pub verify_checksums: bool,
}

/// Whether [`ReadOptions::default`] verifies checksums.
static VERIFY_BY_DEFAULT: AtomicBool = AtomicBool::new(true);

/// Sets whether readers verify shard checksums unless told otherwise; a process-wide
/// choice (a stage's `--no-verify-inputs`).
pub fn verify_checksums_by_default(on: bool) {
    VERIFY_BY_DEFAULT.store(on, Ordering::Relaxed);
}

impl Default for ReadOptions {
    fn default() -> Self {
        Self {
            columns: None,
            batch_size: 8192,
            verify_checksums: VERIFY_BY_DEFAULT.load(Ordering::Relaxed),
        }
    }
}

impl ReadOptions {
    /// Reads only `columns`.
    pub fn columns<S: AsRef<str>>(mut self, columns: &[S]) -> Self {
        self.columns = Some(columns.iter().map(|c| c.as_ref().to_string()).collect());
        self
    }

    /// Sets the rows per batch.
    pub fn batch_size(mut self, rows: usize) -> Self {
        self.batch_size = rows.max(1);
        self
    }
}

/// A dataset opened for reading: a snapshot of its manifest.
#[derive(Debug, Clone)]
pub struct Dataset {
    dir: PathBuf,
    manifest: Manifest,
}

impl Dataset {
    /// Opens the dataset in `dir` (it may still be being written).
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        let manifest = Manifest::load(&dir)?;
        Ok(Self { dir, manifest })
    }

    /// Opens the dataset in `dir` and checks it is of `kind`.
    pub fn open_kind(dir: impl AsRef<Path>, kind: DatasetKind) -> Result<Self> {
        let ds = Self::open(dir)?;
        if ds.kind() != kind {
            return Err(ShardError::State {
                dataset: ds.dir,
                reason: format!(
                    "holds {} dataset; {} dataset is needed here",
                    with_article(ds.manifest.kind),
                    with_article(kind)
                ),
            });
        }
        Ok(ds)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    pub fn kind(&self) -> DatasetKind {
        self.manifest.kind
    }

    /// Rows in committed shards.
    pub fn num_rows(&self) -> u64 {
        self.manifest.rows()
    }

    /// The Arrow schema of the data: the first shard's, or the kind's when there is none.
    pub fn schema(&self) -> Result<SchemaRef> {
        match self.manifest.shards.first() {
            Some(first) => {
                Ok(open_shard(&self.dir, self.kind(), first, &ReadOptions::default())?.schema())
            }
            None => Ok(self.kind().schema()),
        }
    }

    /// Streams every committed shard's rows, in shard order, one batch at a time.
    pub fn batches(&self, opts: &ReadOptions) -> Batches {
        Batches {
            dir: self.dir.clone(),
            kind: self.kind(),
            pending: self.manifest.shards.iter().cloned().collect(),
            opts: opts.clone(),
            current: None,
        }
    }

    /// Streams one shard's rows.
    pub fn read_shard(&self, shard: &ShardEntry, opts: &ReadOptions) -> Result<ShardReader> {
        open_shard(&self.dir, self.kind(), shard, opts)
    }

    /// Checks every shard (presence, size, checksum, schema, row count) and the inputs
    /// the dataset was made from. Returns every problem found, not just the first.
    pub fn verify(&self) -> Vec<ShardError> {
        let mut problems = Vec::new();
        let opts = ReadOptions {
            verify_checksums: true,
            ..ReadOptions::default()
        };
        for shard in &self.manifest.shards {
            if let Err(e) = open_shard(&self.dir, self.kind(), shard, &opts) {
                problems.push(e);
            }
        }
        problems.extend(self.verify_lineage());
        problems
    }

    /// Every input that is a dataset must exist, and every upstream shard named as a
    /// source must be committed there.
    fn verify_lineage(&self) -> Vec<ShardError> {
        let mut problems = Vec::new();
        for input in self.manifest.inputs.iter().filter(|i| i.kind.is_some()) {
            let dir = self.dir.join(&input.path);
            let upstream = match Manifest::load(&dir) {
                Ok(m) => m,
                Err(e) => {
                    problems.push(ShardError::State {
                        dataset: self.dir.clone(),
                        reason: format!("input {}: {e}", input.path),
                    });
                    continue;
                }
            };
            let prefix = format!("{}/", input.path);
            for shard in &self.manifest.shards {
                for source in shard.sources.iter().filter_map(|s| s.strip_prefix(&prefix)) {
                    if !upstream.shards.iter().any(|u| u.file == source) {
                        problems.push(ShardError::Corrupt {
                            dataset: self.dir.clone(),
                            shard: shard.file.clone(),
                            reason: format!("source {prefix}{source} is not a shard of its input"),
                        });
                    }
                }
            }
        }
        problems
    }
}

/// Opens one shard after checking it against its manifest entry.
fn open_shard(
    dir: &Path,
    kind: DatasetKind,
    shard: &ShardEntry,
    opts: &ReadOptions,
) -> Result<ShardReader> {
    let path = dir.join(&shard.file);
    let corrupt = |reason: String| ShardError::Corrupt {
        dataset: dir.to_path_buf(),
        shard: shard.file.clone(),
        reason,
    };
    let len = std::fs::metadata(&path)
        .map_err(|e| corrupt(format!("cannot be read: {e}")))?
        .len();
    if len != shard.bytes {
        return Err(corrupt(format!(
            "is {len} bytes, the manifest says {}",
            shard.bytes
        )));
    }
    if opts.verify_checksums {
        let (_, sum) = checksum_file(&path).map_err(|e| ShardError::io(&path, e))?;
        if sum != shard.checksum {
            return Err(corrupt(format!(
                "checksum mismatch: file has {sum}, the manifest says {}",
                shard.checksum
            )));
        }
    }
    let file = File::open(&path).map_err(|e| ShardError::io(&path, e))?;
    let parquet_err = |e| ShardError::Parquet {
        dataset: dir.to_path_buf(),
        shard: shard.file.clone(),
        source: e,
    };
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(parquet_err)?;
    let schema_err = |reason| ShardError::Schema {
        dataset: dir.to_path_buf(),
        shard: shard.file.clone(),
        reason,
    };
    check_schema(kind, builder.schema()).map_err(schema_err)?;
    let rows = builder.metadata().file_metadata().num_rows();
    if u64::try_from(rows).ok() != Some(shard.rows) {
        return Err(corrupt(format!(
            "holds {rows} rows, the manifest says {}",
            shard.rows
        )));
    }
    let builder = match &opts.columns {
        None => builder,
        Some(columns) => {
            let schema = builder.schema();
            let indices = columns
                .iter()
                .map(|c| {
                    schema
                        .index_of(c)
                        .map_err(|_| schema_err(format!("column `{c}` is not in this dataset")))
                })
                .collect::<Result<Vec<_>>>()?;
            let mask = ProjectionMask::roots(builder.parquet_schema(), indices);
            builder.with_projection(mask)
        }
    };
    let reader = builder
        .with_batch_size(opts.batch_size.max(1))
        .build()
        .map_err(parquet_err)?;
    Ok(ShardReader {
        dir: dir.to_path_buf(),
        shard: shard.file.clone(),
        inner: reader,
    })
}

/// The batches of one shard.
pub struct ShardReader {
    dir: PathBuf,
    shard: String,
    inner: ParquetRecordBatchReader,
}

impl std::fmt::Debug for ShardReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardReader")
            .field("shard", &self.shard)
            .finish()
    }
}

impl ShardReader {
    /// The schema of the batches this reader yields (after projection).
    pub fn schema(&self) -> SchemaRef {
        use arrow::record_batch::RecordBatchReader;
        self.inner.schema()
    }
}

impl Iterator for ShardReader {
    type Item = Result<RecordBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        self.inner.next().map(|r| {
            r.map_err(|e| ShardError::Corrupt {
                dataset: self.dir.clone(),
                shard: self.shard.clone(),
                reason: format!("cannot be decoded: {e}"),
            })
        })
    }
}

/// The batches of a whole dataset, opened one shard at a time.
#[derive(Debug)]
pub struct Batches {
    dir: PathBuf,
    kind: DatasetKind,
    pending: VecDeque<ShardEntry>,
    opts: ReadOptions,
    current: Option<ShardReader>,
}

impl Iterator for Batches {
    type Item = Result<RecordBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(batch) = self.current.as_mut().and_then(Iterator::next) {
                return Some(batch);
            }
            let shard = self.pending.pop_front()?;
            match open_shard(&self.dir, self.kind, &shard, &self.opts) {
                Ok(reader) => self.current = Some(reader),
                Err(e) => {
                    self.pending.clear();
                    return Some(Err(e));
                }
            }
        }
    }
}

/// Yields the shards of a dataset as its producer commits them, in order, and ends
/// when the producer seals it. The dataset need not exist yet when following starts.
#[derive(Debug)]
pub struct Follow {
    dir: PathBuf,
    poll: Duration,
    timeout: Option<Duration>,
    seen: Vec<ShardEntry>,
    waiting_since: Instant,
    finished: bool,
}

/// Follows the dataset in `dir`; see [`Follow`].
pub fn follow(dir: impl AsRef<Path>) -> Follow {
    Follow {
        dir: dir.as_ref().to_path_buf(),
        poll: Duration::from_millis(200),
        timeout: None,
        seen: Vec::new(),
        waiting_since: Instant::now(),
        finished: false,
    }
}

impl Follow {
    /// How often the manifest is re-read while waiting.
    pub fn poll_interval(mut self, poll: Duration) -> Self {
        self.poll = poll;
        self
    }

    /// Gives up with an error when no new shard arrives for this long.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The followed folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn step(&mut self) -> Result<Option<ShardEntry>> {
        loop {
            if let Some(manifest) = Manifest::load_if_exists(&self.dir)? {
                self.check_unchanged(&manifest)?;
                if let Some(next) = manifest.shards.get(self.seen.len()) {
                    self.seen.push(next.clone());
                    self.waiting_since = Instant::now();
                    return Ok(Some(next.clone()));
                }
                if manifest.sealed {
                    return Ok(None);
                }
            }
            if self
                .timeout
                .is_some_and(|t| self.waiting_since.elapsed() > t)
            {
                return Err(ShardError::State {
                    dataset: self.dir.clone(),
                    reason: format!(
                        "no new shard and no seal for {}",
                        humanize(self.waiting_since.elapsed())
                    ),
                });
            }
            thread::sleep(self.poll);
        }
    }

    /// A resumed producer may roll back and rewrite shards a follower already read; that
    /// is only sound if the rewritten shard is identical, which deterministic stages
    /// guarantee and this checks.
    fn check_unchanged(&self, manifest: &Manifest) -> Result<()> {
        for (old, new) in self.seen.iter().zip(&manifest.shards) {
            if old.checksum != new.checksum {
                return Err(ShardError::Corrupt {
                    dataset: self.dir.clone(),
                    shard: old.file.clone(),
                    reason: "changed after it was read (producer not deterministic?)".into(),
                });
            }
        }
        Ok(())
    }
}

/// Opens the dataset in `dir` once its manifest lists more than `have` shards or says it
/// is sealed (the folder need not exist yet), checking every `poll`. Waiting longer than
/// `timeout` for either is an error naming the dataset. For readers that follow a
/// dataset by shard index rather than through [`Follow`].
pub fn wait_for_shards(
    dir: &Path,
    have: usize,
    poll: Duration,
    timeout: Duration,
) -> Result<Dataset> {
    let since = Instant::now();
    loop {
        if let Some(manifest) = Manifest::load_if_exists(dir)?
            && (manifest.sealed || manifest.shards.len() > have)
        {
            return Ok(Dataset {
                dir: dir.to_path_buf(),
                manifest,
            });
        }
        if since.elapsed() > timeout {
            return Err(ShardError::State {
                dataset: dir.to_path_buf(),
                reason: format!(
                    "waited {} for shard {} or the seal",
                    humanize(since.elapsed()),
                    have + 1
                ),
            });
        }
        thread::sleep(poll);
    }
}

fn humanize(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

impl Iterator for Follow {
    type Item = Result<ShardEntry>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.finished {
            return None;
        }
        let step = self.step();
        if !matches!(step, Ok(Some(_))) {
            self.finished = true;
        }
        step.transpose()
    }
}

/// `a tokens`, `an examples`: a kind's name as a sentence needs it.
fn with_article(kind: DatasetKind) -> String {
    let name = kind.to_string();
    let article = if name.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    };
    format!("{article} {name}")
}
