//! Tokenization on the cluster: one job per upstream shard. The job's plan is a single
//! scan, [`ShardEncodeExec`], that an executor runs by loading the tokenizer and encoding
//! the whole shard ([`gradus_tokenize::encode_shard_batches`]); the tokens batches come
//! back to the client, which commits them in upstream order. The shard's counts, which
//! are not rows, are left by the executor in a file beside the output.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::common::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::stream::RecordBatchReceiverStream;
use datafusion::physical_plan::streaming::PartitionStream;
use datafusion::prelude::SessionConfig;
use futures::StreamExt;
use gradus_clean::cluster::{Cluster, with_attempts};
use gradus_clean::source::{ScanSource, SourceExec, SourceTable};
use gradus_shard::{ShardEntry, tokens_schema};
use gradus_tokenize::{
    EncodeConfig, EncodeStats, Encoder, RemoteEncoder, ShardDone, encode_shard_batches,
};
use gradus_tokenize::{Result as TkResult, TokenizeError};
use serde::{Deserialize, Serialize};

use crate::session::BallistaCluster;

/// One shard's encoding job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardJob {
    /// The documents dataset (absolute).
    pub input: PathBuf,
    pub shard: ShardEntry,
    /// `tokenizer.json` (absolute).
    pub tokenizer: PathBuf,
    pub config: EncodeConfig,
    /// Where the executor writes the shard's [`EncodeStats`] as JSON.
    pub stats_to: PathBuf,
}

fn external<E: std::error::Error + Send + Sync + 'static>(e: E) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

impl ShardJob {
    /// Encodes the shard, handing batches to `sink`, then writes the counts.
    fn run(&self, sink: impl FnMut(RecordBatch) -> bool) -> Result<()> {
        let tokenizer = gradus_tokenize::load(&self.tokenizer).map_err(external)?;
        let encoder = Encoder::new(tokenizer, &self.config).map_err(external)?;
        let stats = encode_shard_batches(&encoder, &self.config, &self.input, &self.shard, sink)
            .map_err(external)?;
        write_stats(&stats, &self.stats_to)
    }
}

fn write_stats(stats: &EncodeStats, to: &Path) -> Result<()> {
    let json = serde_json::to_vec(stats).map_err(external)?;
    // Atomic: a task run twice (its executor lost) writes the same counts twice.
    let tmp = to.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, json)?;
    std::fs::rename(&tmp, to)?;
    Ok(())
}

/// The counts an executor left for a shard.
pub fn read_stats(from: &Path) -> Result<EncodeStats> {
    let bytes = std::fs::read(from)
        .map_err(|e| DataFusionError::Execution(format!("{}: {e}", from.display())))?;
    serde_json::from_slice(&bytes).map_err(external)
}

impl ScanSource for ShardJob {
    const NAME: &'static str = "ShardEncodeExec";

    fn schema(&self) -> SchemaRef {
        tokens_schema()
    }

    fn partitions(&self) -> Vec<Arc<dyn PartitionStream>> {
        vec![Arc::new(ShardPartition {
            job: self.clone(),
            schema: tokens_schema(),
        })]
    }

    fn describe(&self) -> String {
        self.shard.file.clone()
    }
}

/// One shard's tokens as a table (what the client plans a query over).
pub type ShardEncodeTable = SourceTable<ShardJob>;

/// The scan of a [`ShardEncodeTable`]: one partition, the shard's tokens in row order.
pub type ShardEncodeExec = SourceExec<ShardJob>;

/// The shard's tokens, encoded where the scan runs.
#[derive(Debug)]
struct ShardPartition {
    job: ShardJob,
    schema: SchemaRef,
}

impl PartitionStream for ShardPartition {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let mut stream = RecordBatchReceiverStream::builder(self.schema.clone(), 2);
        let tx = stream.tx();
        let job = self.job.clone();
        // Tokenization is CPU work on the tokenizers' pool, off the async runtime.
        stream.spawn_blocking(move || job.run(|batch| tx.blocking_send(Ok(batch)).is_ok()));
        stream.build()
    }
}

/// Encoding jobs in flight at once by default: enough to keep a few executors busy while
/// the client commits finished shards in order.
pub const JOBS: usize = 4;

impl BallistaCluster {
    /// One shard's job, resubmitted up to [`gradus_clean::cluster::ATTEMPTS`] times.
    async fn shard_job(&self, job: &ShardJob) -> Result<(Vec<RecordBatch>, EncodeStats)> {
        let what = &job.shard.file;
        with_attempts(what, self.address(), |_| false, || self.try_shard_job(job)).await
    }

    async fn try_shard_job(&self, job: &ShardJob) -> Result<(Vec<RecordBatch>, EncodeStats)> {
        let ctx = self
            .session(SessionConfig::new().with_target_partitions(1))
            .await?;
        ctx.register_table("shard", Arc::new(ShardEncodeTable::new(job.clone())))?;
        let batches = ctx.sql("SELECT * FROM shard").await?.collect().await?;
        Ok((batches, read_stats(&job.stats_to)?))
    }
}

impl RemoteEncoder for BallistaCluster {
    fn encode_shards(
        &self,
        input: &Path,
        tokenizer: &Path,
        work: &Path,
        config: &EncodeConfig,
        shards: &[ShardEntry],
        done: &mut ShardDone<'_>,
    ) -> TkResult<()> {
        let abs = |p: &Path| {
            std::path::absolute(p)
                .map_err(|e| TokenizeError::Config(format!("{}: {e}", p.display())))
        };
        let (input, tokenizer, work) = (abs(input)?, abs(tokenizer)?, abs(work)?);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|e| TokenizeError::Config(format!("starting the cluster client: {e}")))?;
        runtime.block_on(async {
            let jobs = futures::stream::iter(shards)
                .map(|shard| {
                    let job = ShardJob {
                        input: input.clone(),
                        shard: shard.clone(),
                        tokenizer: tokenizer.clone(),
                        config: config.clone(),
                        stats_to: work.join(format!("{}.stats.json", shard.file)),
                    };
                    async move {
                        let result = self.shard_job(&job).await;
                        (job, result)
                    }
                })
                .buffered(self.jobs());
            futures::pin_mut!(jobs);
            while let Some((job, result)) = jobs.next().await {
                let (batches, stats) = result.map_err(|e| TokenizeError::Remote {
                    shard: job.shard.file.clone(),
                    cluster: self.address().into(),
                    message: e.to_string(),
                })?;
                done(&job.shard, batches, stats)?;
            }
            Ok(())
        })
    }
}
