//! The one error type of the shard layer. Every variant names the dataset folder and,
//! where one is involved, the shard, so a message is enough to find the bad file.

use std::path::PathBuf;

/// Result alias for the shard layer.
pub type Result<T, E = ShardError> = std::result::Result<T, E>;

/// What can go wrong reading or writing a dataset.
#[derive(Debug, thiserror::Error)]
pub enum ShardError {
    /// A file could not be read, written, renamed or removed.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// `manifest.json` is missing, unparsable or inconsistent.
    #[error("dataset {}: manifest: {reason}", dataset.display())]
    Manifest { dataset: PathBuf, reason: String },
    /// A path in the manifest would leave the dataset folder.
    #[error("dataset {}: manifest path {path:?} is not a plain relative path inside the dataset", dataset.display())]
    UnsafePath { dataset: PathBuf, path: String },
    /// A shard's columns do not match the schema of its dataset kind.
    #[error("dataset {}: shard {shard}: schema mismatch: {reason}", dataset.display())]
    Schema {
        dataset: PathBuf,
        shard: String,
        reason: String,
    },
    /// A shard's bytes are not the bytes the manifest recorded.
    #[error("dataset {}: shard {shard}: {reason}", dataset.display())]
    Corrupt {
        dataset: PathBuf,
        shard: String,
        reason: String,
    },
    /// Parquet or Arrow refused a shard.
    #[error("dataset {}: shard {shard}: {source}", dataset.display())]
    Parquet {
        dataset: PathBuf,
        shard: String,
        #[source]
        source: parquet::errors::ParquetError,
    },
    /// A record batch could not be built or converted.
    #[error("dataset {}: {reason}", dataset.display())]
    Batch { dataset: PathBuf, reason: String },
    /// The dataset is not in a state that allows the operation (sealed, locked, produced
    /// by a different configuration, of another kind...).
    #[error("dataset {}: {reason}", dataset.display())]
    State { dataset: PathBuf, reason: String },
}

impl ShardError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}
