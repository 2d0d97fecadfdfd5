//! Tokenization on the cluster: one job per upstream shard. The job's plan is a single
//! scan, [`ShardEncodeExec`], that an executor runs by loading the tokenizer and encoding
//! the whole shard ([`gradus_tokenize::encode_shard_batches`]); the tokens batches come
//! back to the client, which commits them in upstream order. The shard's counts, which
//! are not rows, are left by the executor in a file beside the output.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DataFusionError, Result, internal_err};
use datafusion::datasource::TableType;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::Expr;
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchReceiverStream;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
};
use datafusion::prelude::SessionConfig;
use futures::StreamExt;
use gradus_clean::cluster::{Cluster, with_attempts};
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
    pub fn encode(&self) -> Result<Vec<u8>> {
        serde_json::to_vec(self).map_err(external)
    }

    pub fn decode(bytes: &[u8]) -> Result<Self> {
        serde_json::from_slice(bytes).map_err(external)
    }

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

/// One shard's tokens as a table (what the client plans a query over).
#[derive(Debug)]
pub struct ShardEncodeTable {
    pub job: ShardJob,
}

#[async_trait::async_trait]
impl TableProvider for ShardEncodeTable {
    fn schema(&self) -> SchemaRef {
        tokens_schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(Arc::new(ShardEncodeExec::new(
            self.job.clone(),
            projection.cloned(),
        )?))
    }
}

#[derive(Serialize, Deserialize)]
struct ExecParts {
    job: ShardJob,
    projection: Option<Vec<usize>>,
}

/// The scan of a [`ShardEncodeTable`]: one partition, the shard's tokens in row order.
#[derive(Debug)]
pub struct ShardEncodeExec {
    job: ShardJob,
    projection: Option<Vec<usize>>,
    properties: Arc<PlanProperties>,
}

impl ShardEncodeExec {
    pub fn new(job: ShardJob, projection: Option<Vec<usize>>) -> Result<Self> {
        let schema = match &projection {
            Some(p) => Arc::new(tokens_schema().project(p)?),
            None => tokens_schema(),
        };
        let properties = PlanProperties::new(
            EquivalenceProperties::new(schema),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Incremental,
            Boundedness::Bounded,
        );
        Ok(Self {
            job,
            projection,
            properties: Arc::new(properties),
        })
    }

    pub fn encode(&self) -> Result<Vec<u8>> {
        serde_json::to_vec(&ExecParts {
            job: self.job.clone(),
            projection: self.projection.clone(),
        })
        .map_err(external)
    }

    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let p: ExecParts = serde_json::from_slice(bytes).map_err(external)?;
        Self::new(p.job, p.projection)
    }
}

impl DisplayAs for ShardEncodeExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ShardEncodeExec: {}", self.job.shard.file)
    }
}

impl ExecutionPlan for ShardEncodeExec {
    fn name(&self) -> &'static str {
        "ShardEncodeExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if children.is_empty() {
            Ok(self)
        } else {
            internal_err!("ShardEncodeExec has no children")
        }
    }

    fn execute(
        &self,
        partition: usize,
        _ctx: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        if partition != 0 {
            return internal_err!("ShardEncodeExec has one partition, not {partition}");
        }
        let schema = self.properties.eq_properties.schema().clone();
        let mut stream = RecordBatchReceiverStream::builder(schema, 2);
        let tx = stream.tx();
        let (job, projection) = (self.job.clone(), self.projection.clone());
        // Tokenization is CPU work on the tokenizers' pool, off the async runtime.
        stream.spawn_blocking(move || {
            job.run(|batch: RecordBatch| {
                let batch = match &projection {
                    Some(p) => batch.project(p).map_err(DataFusionError::from),
                    None => Ok(batch),
                };
                tx.blocking_send(batch).is_ok()
            })
        });
        Ok(stream.build())
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
        ctx.register_table("shard", Arc::new(ShardEncodeTable { job: job.clone() }))?;
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
