//! Errors of the tokenize stage: each names the file, dataset or line at fault.

use std::path::PathBuf;

/// Result alias for this crate.
pub type Result<T, E = TokenizeError> = std::result::Result<T, E>;

/// What can go wrong training a tokenizer or encoding text.
#[derive(Debug, thiserror::Error)]
pub enum TokenizeError {
    /// The shard layer refused a dataset.
    #[error(transparent)]
    Shard(#[from] gradus_shard::ShardError),
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The tokenizers library failed (training, loading, encoding).
    #[error("{context}: {message}")]
    Tokenizer { context: String, message: String },
    /// A row of a labeled file is unusable.
    #[error("{}:{line}: {reason}", path.display())]
    Row {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    /// The settings contradict themselves or the input.
    #[error("{0}")]
    Config(String),
    /// A shard's job failed on the cluster encoding it.
    #[error("{shard} on cluster {cluster}: {message}")]
    Remote {
        shard: String,
        cluster: String,
        message: String,
    },
}

impl TokenizeError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }

    /// Wraps a tokenizers error with what was being done.
    pub(crate) fn tk(context: impl Into<String>, err: impl std::fmt::Display) -> Self {
        Self::Tokenizer {
            context: context.into(),
            message: err.to_string(),
        }
    }
}
