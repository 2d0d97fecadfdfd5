//! Tables whose scans a process other than the planner's can rebuild (a Ballista
//! scheduler, an executor). A table is its [`ScanSource`], settings that serialise to
//! JSON; its scan, [`SourceExec`], is DataFusion's [`StreamingTableExec`] over the
//! partitions the source makes. The codec in `gradus-cluster` sends
//! [`SourceTable::encode`] / [`SourceExec::encode`] and rebuilds with `decode`.

use std::fmt;
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
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// What a table reads, as settings another process can rebuild it from.
pub trait ScanSource:
    fmt::Debug + Clone + Serialize + DeserializeOwned + Send + Sync + 'static
{
    /// The scan's name in plans and messages.
    const NAME: &'static str;
    fn schema(&self) -> SchemaRef;
    /// The streams the scan reads, one a partition.
    fn partitions(&self) -> Vec<Arc<dyn PartitionStream>>;
    /// What the scan reads, in a few words (shown by `EXPLAIN`).
    fn describe(&self) -> String;
}

fn to_json<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| DataFusionError::External(Box::new(e)))
}

fn from_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| DataFusionError::External(Box::new(e)))
}

/// A [`ScanSource`] as a table.
#[derive(Debug)]
pub struct SourceTable<S> {
    source: S,
}

impl<S: ScanSource> SourceTable<S> {
    pub fn new(source: S) -> Self {
        Self { source }
    }

    pub fn source(&self) -> &S {
        &self.source
    }

    pub fn encode(&self) -> Result<Vec<u8>> {
        to_json(&self.source)
    }

    pub fn decode(bytes: &[u8]) -> Result<Self> {
        Ok(Self::new(from_json(bytes)?))
    }
}

#[async_trait::async_trait]
impl<S: ScanSource> TableProvider for SourceTable<S> {
    fn schema(&self) -> SchemaRef {
        self.source.schema()
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
        let parts = ExecParts {
            source: self.source.clone(),
            projection: projection.cloned(),
            limit,
        };
        Ok(Arc::new(SourceExec::try_new(parts)?))
    }
}

/// What [`SourceExec::encode`] writes.
#[derive(Debug, Serialize, Deserialize)]
#[serde(bound = "S: ScanSource")]
struct ExecParts<S> {
    source: S,
    projection: Option<Vec<usize>>,
    limit: Option<usize>,
}

/// The scan of a [`SourceTable`]: partition `i` reads the source's stream `i`.
#[derive(Debug)]
pub struct SourceExec<S> {
    parts: ExecParts<S>,
    inner: StreamingTableExec,
}

impl<S: ScanSource> SourceExec<S> {
    fn try_new(parts: ExecParts<S>) -> Result<Self> {
        let inner = StreamingTableExec::try_new(
            parts.source.schema(),
            parts.source.partitions(),
            parts.projection.as_ref(),
            [],
            false,
            parts.limit,
        )?;
        Ok(Self { parts, inner })
    }

    pub fn source(&self) -> &S {
        &self.parts.source
    }

    pub fn encode(&self) -> Result<Vec<u8>> {
        to_json(&self.parts)
    }

    pub fn decode(bytes: &[u8]) -> Result<Self> {
        Self::try_new(from_json(bytes)?)
    }
}

impl<S: ScanSource> DisplayAs for SourceExec<S> {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", S::NAME, self.parts.source.describe())
    }
}

impl<S: ScanSource> ExecutionPlan for SourceExec<S> {
    fn name(&self) -> &'static str {
        S::NAME
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
            internal_err!("{} has no children", S::NAME)
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
