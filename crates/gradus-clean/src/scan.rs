//! The clean stage's `input` table: one partition per input file, rows in file order.
//!
//! The table is an [`IngestSource`], described by an [`IngestSpec`] that serialises to
//! JSON, so that a Ballista scheduler or executor can rebuild its scan (see
//! [`crate::source`]).

use std::path::PathBuf;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use datafusion::physical_plan::streaming::PartitionStream;
use serde::{Deserialize, Serialize};

use crate::ingest::{ErrorCounts, FilePartition, InputFile, OnError, ingest_schema};
use crate::source::{ScanSource, SourceExec, SourceTable};

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

/// The input files as a scan source; counts the malformed input its scans skip per file.
/// It travels as its spec: a rebuilt source counts afresh.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(from = "IngestSpec", into = "IngestSpec")]
pub struct IngestSource {
    spec: IngestSpec,
    errors: Vec<ErrorCounts>,
}

impl From<IngestSpec> for IngestSource {
    fn from(spec: IngestSpec) -> Self {
        let errors = spec.files.iter().map(|_| ErrorCounts::default()).collect();
        Self { spec, errors }
    }
}

impl From<IngestSource> for IngestSpec {
    fn from(source: IngestSource) -> Self {
        source.spec
    }
}

impl IngestSource {
    pub fn spec(&self) -> &IngestSpec {
        &self.spec
    }

    /// Per file, the input errors counted by the scans run in this process.
    pub fn errors(&self) -> &[ErrorCounts] {
        &self.errors
    }
}

impl ScanSource for IngestSource {
    const NAME: &'static str = "IngestExec";

    fn schema(&self) -> SchemaRef {
        ingest_schema()
    }

    fn partitions(&self) -> Vec<Arc<dyn PartitionStream>> {
        let spec = &self.spec;
        spec.files
            .iter()
            .zip(&self.errors)
            .map(|(file, errors)| {
                Arc::new(FilePartition {
                    file: file.clone(),
                    batch_rows: spec.batch_rows,
                    on_error: spec.on_error,
                    errors: errors.clone(),
                    errors_to: spec.errors_path(file),
                }) as Arc<dyn PartitionStream>
            })
            .collect()
    }

    fn describe(&self) -> String {
        format!("files={}", self.spec.files.len())
    }
}

/// The `input` table.
pub type IngestTable = SourceTable<IngestSource>;

/// The scan of an [`IngestTable`]: partition `i` reads file `i`.
pub type IngestExec = SourceExec<IngestSource>;
