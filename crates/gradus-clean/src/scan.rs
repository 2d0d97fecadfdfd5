//! The clean stage's `input` table: one partition per input file, rows in file order.
//!
//! [`IngestTable`] and the plan node its scan makes, [`IngestExec`], are described by an
//! [`IngestSpec`] that serialises to JSON, so that a process other than the one that
//! planned the query (a Ballista scheduler, an executor) can rebuild them: the codec in
//! `gradus-cluster` sends [`IngestTable::encode`] / [`IngestExec::encode`] and rebuilds
//! with the matching `decode`.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DataFusionError, Result, internal_err};
use datafusion::datasource::TableType;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::Expr;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::streaming::{PartitionStream, StreamingTableExec};
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};
use serde::{Deserialize, Serialize};

use crate::ingest::{ErrorCounts, FilePartition, InputFile, OnError, ingest_schema};

/// What the input table reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IngestSpec {
    pub files: Vec<InputFile>,
    pub batch_rows: usize,
    pub on_error: OnError,
    /// A folder the scan writes each file's input-error counts to, as
    /// `{index:06}.errors.json`, when it runs in another process.
    #[serde(default)]
    pub errors_dir: Option<PathBuf>,
}

impl IngestSpec {
    /// Where the scan writes file `file`'s error counts, if it does.
    pub fn errors_path(&self, file: &InputFile) -> Option<PathBuf> {
        self.errors_dir
            .as_ref()
            .map(|d| d.join(errors_file_name(file)))
    }
}

/// The name of the file holding `file`'s input-error counts beside its staging file.
pub fn errors_file_name(file: &InputFile) -> String {
    format!("{:06}.errors.json", file.index)
}

fn to_json<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| DataFusionError::External(Box::new(e)))
}

fn from_json<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| DataFusionError::External(Box::new(e)))
}

/// The input files as a table; counts the malformed input it skips per file.
#[derive(Debug)]
pub struct IngestTable {
    spec: IngestSpec,
    errors: Vec<ErrorCounts>,
}

impl IngestTable {
    pub fn new(spec: IngestSpec) -> Self {
        let errors = spec.files.iter().map(|_| ErrorCounts::default()).collect();
        Self { spec, errors }
    }

    pub fn spec(&self) -> &IngestSpec {
        &self.spec
    }

    /// Per file, the input errors counted by the scans run in this process.
    pub fn errors(&self) -> &[ErrorCounts] {
        &self.errors
    }

    pub fn encode(&self) -> Result<Vec<u8>> {
        to_json(&self.spec)
    }

    pub fn decode(bytes: &[u8]) -> Result<Self> {
        Ok(Self::new(from_json(bytes)?))
    }
}

#[async_trait::async_trait]
impl TableProvider for IngestTable {
    fn schema(&self) -> SchemaRef {
        ingest_schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let exec = IngestExec::try_new(
            self.spec.clone(),
            self.errors.clone(),
            projection.cloned(),
            limit,
        )?;
        Ok(Arc::new(exec))
    }
}

/// What [`IngestExec::encode`] writes.
#[derive(Serialize, Deserialize)]
struct ExecParts {
    spec: IngestSpec,
    projection: Option<Vec<usize>>,
    limit: Option<usize>,
}

/// The scan of an [`IngestTable`]: partition `i` reads file `i`.
#[derive(Debug)]
pub struct IngestExec {
    spec: IngestSpec,
    projection: Option<Vec<usize>>,
    limit: Option<usize>,
    inner: StreamingTableExec,
}

impl IngestExec {
    pub fn try_new(
        spec: IngestSpec,
        errors: Vec<ErrorCounts>,
        projection: Option<Vec<usize>>,
        limit: Option<usize>,
    ) -> Result<Self> {
        if errors.len() != spec.files.len() {
            return internal_err!(
                "{} error counters for {} files",
                errors.len(),
                spec.files.len()
            );
        }
        let partitions: Vec<Arc<dyn PartitionStream>> = spec
            .files
            .iter()
            .zip(errors)
            .map(|(file, errors)| {
                Arc::new(FilePartition {
                    file: file.clone(),
                    batch_rows: spec.batch_rows,
                    on_error: spec.on_error,
                    errors,
                    errors_to: spec.errors_path(file),
                }) as Arc<dyn PartitionStream>
            })
            .collect();
        let inner = StreamingTableExec::try_new(
            ingest_schema(),
            partitions,
            projection.as_ref(),
            [],
            false,
            limit,
        )?;
        Ok(Self {
            spec,
            projection,
            limit,
            inner,
        })
    }

    pub fn encode(&self) -> Result<Vec<u8>> {
        to_json(&ExecParts {
            spec: self.spec.clone(),
            projection: self.projection.clone(),
            limit: self.limit,
        })
    }

    /// Rebuilds a scan from [`Self::encode`]'s bytes, with fresh error counters.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let p: ExecParts = from_json(bytes)?;
        let errors = p
            .spec
            .files
            .iter()
            .map(|_| ErrorCounts::default())
            .collect();
        Self::try_new(p.spec, errors, p.projection, p.limit)
    }
}

impl DisplayAs for IngestExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IngestExec: files={}", self.spec.files.len())
    }
}

impl ExecutionPlan for IngestExec {
    fn name(&self) -> &'static str {
        "IngestExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.inner.properties()
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
            internal_err!("IngestExec has no children")
        }
    }

    fn execute(
        &self,
        partition: usize,
        ctx: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        self.inner.execute(partition, ctx)
    }
}
