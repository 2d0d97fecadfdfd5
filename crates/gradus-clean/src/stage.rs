//! The clean stage end to end, in three passes that each survive a kill:
//!
//! 1. **stage**: every input file runs through the plan ([`crate::plan`]) into its own
//!    staging Parquet file under `OUTPUT/.work/staging`, committed by rename; a rerun
//!    skips the files already staged;
//! 2. **dedup**: DataFusion queries over the staging files decide the duplicates
//!    ([`crate::dedup`]); deterministic, so a rerun decides the same;
//! 3. **write**: staging files in input order become the `documents` dataset (and
//!    `OUTPUT/rejected` with `keep_rejected`), one shard-writer source per input file,
//!    so a rerun skips the files already written.
//!
//! `report.json` and `report.md` are written once the dataset is sealed.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, RecordBatch, StringArray, StringBuilder,
};
use arrow::compute::filter_record_batch;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, UInt32Type, UInt64Type};
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::physical_plan::execute_stream_partitioned;
use datafusion::prelude::{ParquetReadOptions, SessionConfig, SessionContext};
use futures::StreamExt;
use gradus_shard::{DatasetKind, DatasetWriter, InputRef, OpenMode, Producer, WriterOptions};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use serde::{Deserialize, Serialize};

use crate::cluster::{self, Cluster};
use crate::config::CleanConfig;
use crate::dedup::{self, Duplicates};
use crate::error::{CleanError, InputErrorKind, Result};
use crate::filters::Rule;
use crate::ingest::{self, ErrorCounts, InputFile, OnError};
use crate::plan;
use crate::report::Report;
use crate::scan::{IngestSpec, IngestTable};

/// Where a run keeps its intermediate files, inside the output folder.
pub fn work_dir(output: &Path) -> PathBuf {
    output.join(".work")
}

fn staging_dir(output: &Path) -> PathBuf {
    work_dir(output).join("staging")
}

fn staged_path(output: &Path, file: &InputFile) -> PathBuf {
    staging_dir(output).join(format!("{:06}.parquet", file.index))
}

fn errors_path(output: &Path, file: &InputFile) -> PathBuf {
    staging_dir(output).join(crate::scan::errors_file_name(file))
}

/// Rows per row group of a staging file.
const STAGING_ROW_GROUP_ROWS: usize = 4096;

/// Input errors of one staged file, kept beside it for the report of a resumed run.
#[derive(Debug, Default, Serialize, Deserialize)]
struct StagedErrors(std::collections::BTreeMap<String, u64>);

/// A run of the clean stage.
pub struct CleanRun<'a> {
    pub config: &'a CleanConfig,
    pub output: &'a Path,
    pub mode: OpenMode,
    /// Called with the number of documents each staged batch held.
    pub on_docs: &'a (dyn Fn(u64) + Send + Sync),
    /// Stop after staging this many files (for crash tests): the run returns
    /// [`CleanError::Cancelled`] as if killed.
    pub stop_after_files: Option<usize>,
    /// Run the per-file pass there instead of in this process (dedup and writing stay
    /// here, so the output is the same).
    pub cluster: Option<&'a dyn Cluster>,
}

impl std::fmt::Debug for CleanRun<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CleanRun")
            .field("output", &self.output)
            .finish()
    }
}

impl CleanRun<'_> {
    /// Runs the stage; returns its report (the stored one if the output is complete).
    pub async fn run(&self) -> Result<Report> {
        let started = Instant::now();
        let rules = plan::validate(self.config).await?;
        let (files, missing) = ingest::expand(&self.config.inputs)?;
        let mut report = Report::default();
        for m in &missing {
            if self.config.on_error == OnError::Fail {
                return Err(CleanError::Input {
                    file: m.0.clone(),
                    line: 0,
                    kind: InputErrorKind::MissingFile,
                    detail: "no such file, folder or match".into(),
                });
            }
            *report
                .input_errors
                .entry("missing_file".into())
                .or_default() += 1;
        }
        if files.is_empty() && missing.is_empty() {
            return Err(CleanError::Config(
                "no inputs: pass --input PATH or list [[inputs]] in the config".into(),
            ));
        }
        if files.is_empty() {
            // Skipping every input would leave nothing to clean: say which matched none.
            let names: Vec<&str> = missing.iter().map(|m| m.0.as_str()).collect();
            return Err(CleanError::Config(format!(
                "no input files: nothing matches {}",
                names.join(", ")
            )));
        }
        let mut writer = self.open_writer(self.output)?;
        if writer.is_sealed() {
            return load_report(self.output);
        }
        if self.mode == OpenMode::Overwrite {
            remove_dir(&work_dir(self.output))?;
            remove_dir(&self.output.join("rejected"))?;
        }
        let mut rejected = if self.config.keep_rejected {
            Some(self.open_writer(&self.output.join("rejected"))?)
        } else {
            None
        };
        self.stage_all(&files, &rules).await?;
        let (dups, keeper_ids) = self.dedup().await?;
        report.files = files.len() as u64;
        for file in &files {
            self.write_file(
                file,
                &dups,
                &keeper_ids,
                &mut writer,
                rejected.as_mut(),
                &mut report,
            )?;
        }
        report.exact_clusters = dups.exact_clusters.clone();
        report.near_clusters = dups.near_clusters.clone();
        report.threads = rayon::current_num_threads();
        report.partitions = self.config.partitions();
        report.finish_timing(started.elapsed().as_secs_f64());
        let stats =
            serde_json::to_value(&report).map_err(|e| CleanError::Internal(e.to_string()))?;
        writer.stats_mut().insert("clean".into(), stats);
        if let Some(r) = rejected {
            r.seal()?;
        }
        writer.seal()?;
        report.write(self.output)?;
        remove_dir(&work_dir(self.output))?;
        Ok(report)
    }

    fn open_writer(&self, dir: &Path) -> Result<DatasetWriter> {
        let producer =
            Producer::new("clean", self.config).map_err(|e| CleanError::Internal(e.to_string()))?;
        let inputs = self
            .config
            .inputs
            .iter()
            .map(|i| InputRef::files(&i.path))
            .collect();
        let opts = WriterOptions {
            max_rows_per_shard: self.config.max_rows_per_shard,
            max_bytes_per_shard: self.config.max_bytes_per_shard,
            mode: self.mode,
            ..WriterOptions::default()
        };
        Ok(DatasetWriter::create(
            dir,
            DatasetKind::Documents,
            producer,
            inputs,
            opts,
        )?)
    }

    /// Pass 1: every file not yet staged, `partitions` files at a time.
    async fn stage_all(&self, files: &[InputFile], rules: &[Rule]) -> Result<()> {
        let dir = staging_dir(self.output);
        std::fs::create_dir_all(&dir).map_err(|e| CleanError::io(&dir, e))?;
        let todo: Vec<&InputFile> = files
            .iter()
            .filter(|f| !staged_path(self.output, f).is_file())
            .collect();
        let sql = plan::query(self.config, rules);
        let schema = plan::output_schema(self.config, rules).await?;
        if let Some(cluster) = self.cluster {
            return self.stage_on(cluster, &todo, &sql, &schema).await;
        }
        let mut staged = 0;
        for chunk in todo.chunks(self.config.partitions()) {
            if self.stop_after_files.is_some_and(|n| staged >= n) {
                return Err(CleanError::Cancelled);
            }
            self.stage_chunk(chunk, &sql, &schema).await?;
            staged += chunk.len();
        }
        Ok(())
    }

    /// The settings the plan runs under, for `files` files at once.
    fn session_config(&self, files: usize) -> SessionConfig {
        let mut session = SessionConfig::new()
            .with_target_partitions(files.max(1))
            .with_batch_size(self.config.batch_rows.max(1));
        // One output partition per input file, rows in file order.
        session
            .options_mut()
            .optimizer
            .enable_round_robin_repartition = false;
        // Pushing `get_field` towards the scan would inline the struct-returning step
        // into every field access and run it once per field.
        session
            .options_mut()
            .optimizer
            .enable_leaf_expression_pushdown = false;
        session
    }

    fn ingest_spec<'f>(&self, files: impl Iterator<Item = &'f InputFile>) -> IngestSpec {
        IngestSpec {
            files: files.cloned().collect(),
            batch_rows: self.config.batch_rows,
            on_error: self.config.on_error,
            errors_dir: None,
        }
    }

    /// Pass 1 on a cluster: one job per file, `partitions` jobs at a time, each staged
    /// here as its rows arrive.
    async fn stage_on(
        &self,
        cluster: &dyn Cluster,
        todo: &[&InputFile],
        sql: &str,
        schema: &SchemaRef,
    ) -> Result<()> {
        let jobs = futures::stream::iter(todo)
            .map(|file| self.stage_remote(cluster, file, sql, schema))
            .buffer_unordered(self.config.partitions());
        futures::pin_mut!(jobs);
        let mut staged = 0;
        while let Some(done) = jobs.next().await {
            done?;
            staged += 1;
            if self.stop_after_files.is_some_and(|n| staged >= n) {
                return Err(CleanError::Cancelled);
            }
        }
        Ok(())
    }

    /// One file's job, resubmitted up to [`cluster::ATTEMPTS`] times unless the input
    /// is bad.
    async fn stage_remote(
        &self,
        cluster: &dyn Cluster,
        file: &InputFile,
        sql: &str,
        schema: &SchemaRef,
    ) -> Result<()> {
        let file = file.absolute().map_err(|e| CleanError::io(&file.path, e))?;
        let remote_input = |e: &CleanError| CleanError::from_remote(&e.to_string());
        let staged = cluster::with_attempts(
            &file.display,
            cluster.address(),
            |e| remote_input(e).is_some(),
            || self.try_stage_remote(cluster, &file, sql, schema),
        )
        .await;
        staged.map_err(|e| match remote_input(&e) {
            // Bad input: the reader's own line, as a local run says it.
            Some(input) => input,
            None => CleanError::Cluster {
                file: file.display.clone(),
                cluster: cluster.address().into(),
                source: Box::new(e),
            },
        })
    }

    async fn try_stage_remote(
        &self,
        cluster: &dyn Cluster,
        file: &InputFile,
        sql: &str,
        schema: &SchemaRef,
    ) -> Result<()> {
        let ctx = cluster.session(self.session_config(1)).await?;
        plan::register_udfs(&ctx, self.config);
        let mut spec = self.ingest_spec(std::iter::once(file));
        // The executor counts skipped input; it leaves the counts beside the staging
        // file, where a local run writes them.
        let staging = staging_dir(self.output);
        spec.errors_dir =
            Some(std::path::absolute(&staging).map_err(|e| CleanError::io(&staging, e))?);
        ctx.register_table("input", Arc::new(IngestTable::new(spec.into())))?;
        let stream = ctx.sql(sql).await?.execute_stream().await?;
        self.stage_file(stream, file, None, schema).await
    }

    async fn stage_chunk(&self, chunk: &[&InputFile], sql: &str, schema: &SchemaRef) -> Result<()> {
        let ctx = SessionContext::new_with_config(self.session_config(chunk.len()));
        plan::register_udfs(&ctx, self.config);
        let table = Arc::new(IngestTable::new(
            self.ingest_spec(chunk.iter().copied()).into(),
        ));
        ctx.register_table("input", table.clone())?;
        let plan = ctx.sql(sql).await?.create_physical_plan().await?;
        tracing::debug!(
            "clean plan:\n{}",
            datafusion::physical_plan::displayable(plan.as_ref()).indent(true)
        );
        let streams = execute_stream_partitioned(plan, ctx.task_ctx())?;
        if streams.len() != chunk.len() {
            return Err(CleanError::Internal(format!(
                "plan has {} partitions for {} files",
                streams.len(),
                chunk.len()
            )));
        }
        let jobs = streams
            .into_iter()
            .zip(chunk)
            .zip(table.source().errors())
            .map(|((stream, file), errs)| self.stage_file(stream, file, Some(errs), schema));
        futures::future::try_join_all(jobs).await?;
        Ok(())
    }

    /// Writes one file's rows to a temporary staging file, then commits it by rename.
    async fn stage_file(
        &self,
        mut stream: datafusion::execution::SendableRecordBatchStream,
        file: &InputFile,
        errors: Option<&ErrorCounts>,
        schema: &SchemaRef,
    ) -> Result<()> {
        let path = staged_path(self.output, file);
        let tmp = path.with_extension("parquet.tmp");
        // Small row groups: the writer holds a whole row group in memory, so this is
        // what keeps staging memory flat however large the input file.
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::default()))
            .set_max_row_group_row_count(Some(STAGING_ROW_GROUP_ROWS))
            .build();
        let out = File::create(&tmp).map_err(|e| CleanError::io(&tmp, e))?;
        let parquet_err = |e: parquet::errors::ParquetError| {
            CleanError::Internal(format!("{}: {e}", tmp.display()))
        };
        let mut w = ArrowWriter::try_new(out, schema.clone(), Some(props)).map_err(parquet_err)?;
        while let Some(batch) = stream.next().await {
            let batch = batch.map_err(CleanError::from_datafusion)?;
            (self.on_docs)(batch.num_rows() as u64);
            w.write(&batch).map_err(parquet_err)?;
        }
        w.close().map_err(parquet_err)?;
        if let Some(errors) = errors {
            let errs = serde_json::to_string(&StagedErrors(errors.snapshot()))
                .map_err(|e| CleanError::Internal(e.to_string()))?;
            let epath = errors_path(self.output, file);
            std::fs::write(&epath, errs).map_err(|e| CleanError::io(&epath, e))?;
        }
        std::fs::rename(&tmp, &path).map_err(|e| CleanError::io(&path, e))?;
        Ok(())
    }

    /// A context over the staging files with a bounded, spilling memory pool.
    async fn staging_context(&self) -> Result<SessionContext> {
        let spill = work_dir(self.output).join("spill");
        std::fs::create_dir_all(&spill).map_err(|e| CleanError::io(&spill, e))?;
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_limit(self.config.memory_limit_mb << 20, 1.0)
            .with_disk_manager_builder(
                DiskManagerBuilder::default().with_mode(DiskManagerMode::Directories(vec![spill])),
            )
            .build_arc()?;
        let session = SessionConfig::new().with_target_partitions(self.config.partitions());
        let ctx = SessionContext::new_with_config_rt(session, runtime);
        let dir = staging_dir(self.output);
        ctx.register_parquet(
            "docs",
            dir.to_string_lossy().as_ref(),
            ParquetReadOptions::default().file_extension(".parquet"),
        )
        .await?;
        Ok(ctx)
    }

    /// Pass 2: the duplicates, and the ids of the documents kept in their place.
    async fn dedup(&self) -> Result<(Duplicates, HashMap<u64, String>)> {
        let d = &self.config.dedup;
        if !d.exact && d.near_config().is_none() {
            return Ok((Duplicates::default(), HashMap::new()));
        }
        let ctx = self.staging_context().await?;
        let dups = dedup::run(&ctx, d.exact, d.near_config().is_some(), d.verify).await?;
        let ids = if self.config.keep_rejected {
            keeper_ids(&ctx, &dups).await?
        } else {
            HashMap::new()
        };
        Ok((dups, ids))
    }

    /// Pass 3 for one file: accounts every row in the report and, unless this file is
    /// already written, writes its kept and rejected rows.
    fn write_file(
        &self,
        file: &InputFile,
        dups: &Duplicates,
        keeper_ids: &HashMap<u64, String>,
        writer: &mut DatasetWriter,
        mut rejected: Option<&mut DatasetWriter>,
        report: &mut Report,
    ) -> Result<()> {
        let path = staged_path(self.output, file);
        let errs: StagedErrors = std::fs::read_to_string(errors_path(self.output, file))
            .ok()
            .and_then(|s| serde_json::from_str(&s).ok())
            .unwrap_or_default();
        for (k, v) in errs.0 {
            *report.input_errors.entry(k).or_default() += v;
        }
        let key = file.display.clone();
        let write_kept = !writer.is_done(&key);
        let write_rejected = rejected.as_ref().is_some_and(|r| !r.is_done(&key));
        let f = File::open(&path).map_err(|e| CleanError::io(&path, e))?;
        let parquet_err = |e: parquet::errors::ParquetError| {
            CleanError::Internal(format!("{}: {e}", path.display()))
        };
        let reader = ParquetRecordBatchReaderBuilder::try_new(f)
            .map_err(parquet_err)?
            .with_batch_size(self.config.batch_rows.max(1))
            .build()
            .map_err(parquet_err)?;
        for batch in reader {
            let batch =
                batch.map_err(|e| CleanError::Internal(format!("{}: {e}", path.display())))?;
            let split = split_batch(&batch, dups, keeper_ids)?;
            account(report, &batch, &split.reasons, &split.kept_mask)?;
            if write_kept && split.kept.num_rows() > 0 {
                writer.write(&key, &split.kept)?;
            }
            if let Some(r) = rejected.as_deref_mut()
                && write_rejected
                && split.rejected.num_rows() > 0
            {
                r.write(&key, &split.rejected)?;
            }
        }
        writer.finish_source(&key)?;
        if let Some(r) = rejected {
            r.finish_source(&key)?;
        }
        Ok(())
    }
}

/// The ids of the documents kept in place of duplicates (for `duplicate_of`).
async fn keeper_ids(ctx: &SessionContext, dups: &Duplicates) -> Result<HashMap<u64, String>> {
    let mut keepers: Vec<u64> = dups
        .exact
        .values()
        .chain(dups.near.values())
        .copied()
        .collect();
    if keepers.is_empty() {
        return Ok(HashMap::new());
    }
    keepers.sort_unstable();
    keepers.dedup();
    ctx.register_table("keepers", Arc::new(dedup::key_table(keepers)?))?;
    let batches = ctx
        .sql("SELECT d.key, d.id FROM docs d JOIN keepers k ON d.key = k.key")
        .await?
        .collect()
        .await?;
    let mut out = HashMap::new();
    for b in &batches {
        let keys = b.column(0).as_primitive::<UInt64Type>();
        let ids = arrow::compute::cast(b.column(1), &DataType::Utf8)?;
        let ids = ids.as_string::<i32>();
        for i in 0..b.num_rows() {
            out.insert(keys.value(i), ids.value(i).to_string());
        }
    }
    Ok(out)
}

fn remove_dir(dir: &Path) -> Result<()> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(CleanError::io(dir, e)),
    }
}

fn load_report(output: &Path) -> Result<Report> {
    let path = output.join("report.json");
    let text = std::fs::read_to_string(&path).map_err(|e| CleanError::io(&path, e))?;
    serde_json::from_str(&text).map_err(|e| CleanError::Config(format!("{}: {e}", path.display())))
}

/// A staging batch split into kept and rejected rows.
struct Split {
    /// Final drop reason per row (filter rule or dedup verdict), null when kept.
    reasons: StringArray,
    kept_mask: BooleanArray,
    kept: RecordBatch,
    rejected: RecordBatch,
}

fn split_batch(
    batch: &RecordBatch,
    dups: &Duplicates,
    keeper_ids: &HashMap<u64, String>,
) -> Result<Split> {
    let keys = column(batch, "key")?.as_primitive::<UInt64Type>().clone();
    let filtered = column(batch, "reason")?.as_string::<i32>().clone();
    let mut reasons = StringBuilder::new();
    let mut duplicate_of = StringBuilder::new();
    for i in 0..batch.num_rows() {
        if filtered.is_valid(i) {
            reasons.append_value(filtered.value(i));
            duplicate_of.append_null();
        } else if let Some((why, keeper)) = dups.verdict(keys.value(i)) {
            reasons.append_value(why);
            duplicate_of.append_option(keeper_ids.get(&keeper));
        } else {
            reasons.append_null();
            duplicate_of.append_null();
        }
    }
    let reasons = reasons.finish();
    let kept_mask = BooleanArray::from_iter((0..reasons.len()).map(|i| Some(reasons.is_null(i))));
    let rejected_mask = arrow::compute::not(&kept_mask)?;
    let base = output_batch(batch)?;
    let kept = filter_record_batch(&base, &kept_mask)?;
    let with_reason = add_columns(
        &base,
        vec![
            ("reason", Arc::new(reasons.clone()) as ArrayRef),
            ("duplicate_of", Arc::new(duplicate_of.finish())),
        ],
    )?;
    let rejected = filter_record_batch(&with_reason, &rejected_mask)?;
    Ok(Split {
        reasons,
        kept_mask,
        kept,
        rejected,
    })
}

fn column<'b>(batch: &'b RecordBatch, name: &str) -> Result<&'b ArrayRef> {
    batch
        .column_by_name(name)
        .ok_or_else(|| CleanError::Internal(format!("staging has no column `{name}`")))
}

/// The output columns of a staging batch: the documents columns (non-null), then the
/// signals.
fn output_batch(batch: &RecordBatch) -> Result<RecordBatch> {
    let mut fields = Vec::new();
    let mut columns = Vec::new();
    for name in ["id", "text", "source"] {
        let c = arrow::compute::cast(column(batch, name)?, &DataType::Utf8)?;
        fields.push(Field::new(name, DataType::Utf8, false));
        columns.push(c);
    }
    fields.push(Field::new("metadata", DataType::Utf8, true));
    columns.push(arrow::compute::cast(
        column(batch, "metadata")?,
        &DataType::Utf8,
    )?);
    let flag = batch
        .column_by_name(plan::FLAG_COLUMN)
        .map(|_| plan::FLAG_COLUMN.to_string());
    for name in plan::signal_columns().into_iter().chain(flag) {
        let c = column(batch, &name)?;
        let ty = match c.data_type() {
            DataType::Utf8View | DataType::LargeUtf8 => DataType::Utf8,
            other => other.clone(),
        };
        fields.push(Field::new(&name, ty.clone(), true));
        columns.push(arrow::compute::cast(c, &ty)?);
    }
    Ok(RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns,
    )?)
}

fn add_columns(batch: &RecordBatch, extra: Vec<(&str, ArrayRef)>) -> Result<RecordBatch> {
    let mut fields: Vec<Field> = batch
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    let mut columns = batch.columns().to_vec();
    for (name, c) in extra {
        fields.push(Field::new(name, c.data_type().clone(), true));
        columns.push(c);
    }
    Ok(RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns,
    )?)
}

/// Adds a staging batch's rows to the report.
fn account(
    report: &mut Report,
    batch: &RecordBatch,
    reasons: &StringArray,
    kept: &BooleanArray,
) -> Result<()> {
    let bytes_in = column(batch, "bytes_in")?;
    let bytes_in = arrow::compute::cast(bytes_in, &DataType::UInt64)?;
    let bytes_in = bytes_in.as_primitive::<UInt64Type>();
    let text = arrow::compute::cast(column(batch, "text")?, &DataType::Utf8)?;
    let text = text.as_string::<i32>();
    let lang = arrow::compute::cast(column(batch, "lang")?, &DataType::Utf8)?;
    let lang = lang.as_string::<i32>();
    let counts = |name: &str| -> Result<Vec<u64>> {
        let c = arrow::compute::cast(column(batch, name)?, &DataType::UInt32)?;
        Ok(c.as_primitive::<UInt32Type>()
            .iter()
            .map(|v| u64::from(v.unwrap_or(0)))
            .collect())
    };
    let flagged = batch
        .column_by_name(plan::FLAG_COLUMN)
        .map(|c| arrow::compute::cast(c, &DataType::Utf8))
        .transpose()?;
    let flagged = flagged.as_ref().map(|c| c.as_string::<i32>());
    let (emails, ipv4, ipv6, lines) = (
        counts("pii_emails")?,
        counts("pii_ipv4")?,
        counts("pii_ipv6")?,
        counts("lines_removed")?,
    );
    for i in 0..batch.num_rows() {
        report.docs_in += 1;
        report.bytes_in += bytes_in.value(i);
        let language = if lang.is_null(i) {
            "und"
        } else {
            lang.value(i)
        };
        *report.languages_in.entry(language.to_string()).or_default() += 1;
        if kept.value(i) {
            report.docs_out += 1;
            report.bytes_out += text.value(i).len() as u64;
            *report
                .languages_out
                .entry(language.to_string())
                .or_default() += 1;
            report.pii.emails += emails[i];
            report.pii.ipv4 += ipv4[i];
            report.pii.ipv6 += ipv6[i];
            report.lines_removed += lines[i];
            if let Some(set) = flagged.filter(|f| f.is_valid(i) && !f.value(i).is_empty()) {
                *report.flagged.entry(set.value(i).to_string()).or_default() += 1;
            }
        } else {
            report.drop_for(reasons.value(i));
        }
    }
    Ok(())
}
