//! The contract between gradus stages.
//!
//! A dataset is a folder holding `manifest.json` and `part-NNNNN.parquet` shards. The
//! manifest names the dataset's [kind](DatasetKind) (documents, tokens or examples, each
//! with one versioned Arrow schema), the producing stage and its configuration, the inputs,
//! and every committed shard with its checksum and the input units ("sources") its rows
//! came from. Shards are committed atomically by [`DatasetWriter`]; [`Dataset`] streams
//! them back with column projection; [`follow`] yields shards while the producer is still
//! writing; [`Dataset::verify`] checks checksums, schemas and lineage.
//!
//! ```
//! use gradus_shard::{Dataset, DatasetKind, DatasetWriter, Document, Producer, ReadOptions,
//!     Record, WriterOptions};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let out = dir.path().join("docs");
//!
//! // A stage opens its output with its resolved config; rerunning it resumes.
//! let producer = Producer::new("example", &serde_json::json!({"lowercase": false}))?;
//! let mut writer = DatasetWriter::create(&out, DatasetKind::Documents, producer, vec![],
//!     WriterOptions::default())?;
//! let docs = vec![Document { id: "a:1".into(), text: "Hello.".into(), source: "a".into(),
//!     metadata: None }];
//! if !writer.is_done("a.txt") {
//!     writer.write("a.txt", &Document::to_batch(&docs)?)?;
//!     writer.finish_source("a.txt")?;
//! }
//! writer.seal()?;
//!
//! // Any later stage reads it back, here only the `text` column.
//! let ds = Dataset::open_kind(&out, DatasetKind::Documents)?;
//! let mut rows = 0;
//! for batch in ds.batches(&ReadOptions::default().columns(&["text"])) {
//!     rows += batch?.num_rows();
//! }
//! assert_eq!(rows, 1);
//! assert!(ds.verify().is_empty());
//! # Ok(())
//! # }
//! ```

mod checksum;
mod error;
pub mod inspect;
mod lock;
mod manifest;
mod on_error;
pub mod raw;
mod reader;
mod records;
mod schema;
mod writer;

pub use checksum::{CHECKSUM_PREFIX, checksum_bytes, checksum_file};
pub use error::{Result, ShardError};
pub use lock::{FolderLock, LOCK_FILE, LockError};
pub use manifest::{
    FORMAT_VERSION, InputRef, MANIFEST_FILE, Manifest, Producer, ShardEntry, check_inside,
    config_hash,
};
pub use on_error::OnError;
pub use reader::{
    Batches, Dataset, Follow, ReadOptions, ShardReader, follow, verify_checksums_by_default,
    wait_for_shards,
};
pub use records::{Document, Example, Prediction, Record, TokenSeq, TokensBuilder};
pub use schema::{
    DatasetKind, check_schema, documents_schema, examples_schema, f32_list, predictions_schema,
    tokens_schema, u8_list, u32_list,
};
pub use writer::{DatasetWriter, OpenMode, WriterOptions, check_sizes, shard_file_name};

/// Re-exported so users of the contract build batches with the same Arrow version.
pub use arrow;
