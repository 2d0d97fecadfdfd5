//! Errors of fine-tuning and prediction, each naming the file or setting at fault.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum FinetuneError {
    #[error(transparent)]
    Model(#[from] gradus_model::ModelError),
    #[error(transparent)]
    Train(#[from] gradus_train::TrainError),
    #[error(transparent)]
    Shard(#[from] gradus_shard::ShardError),
    #[error(transparent)]
    Tokenize(#[from] gradus_tokenize::TokenizeError),
    #[error("tensor maths: {0}")]
    Candle(#[from] candle_core::Error),
    #[error("{}: {reason}", path.display())]
    File { path: PathBuf, reason: String },
    #[error("{0}")]
    Config(String),
    #[error("{}: {reason}", path.display())]
    Data { path: PathBuf, reason: String },
}

impl FinetuneError {
    pub(crate) fn file(path: &Path, reason: impl ToString) -> Self {
        Self::File {
            path: path.to_path_buf(),
            reason: reason.to_string(),
        }
    }

    pub(crate) fn data(path: &Path, reason: impl ToString) -> Self {
        Self::Data {
            path: path.to_path_buf(),
            reason: reason.to_string(),
        }
    }
}

impl From<FinetuneError> for gradus_train::TrainError {
    fn from(e: FinetuneError) -> Self {
        match e {
            FinetuneError::Train(t) => t,
            FinetuneError::Model(m) => Self::Model(m),
            FinetuneError::Candle(c) => Self::Candle(c),
            other => Self::Data(other.to_string()),
        }
    }
}

pub type Result<T> = std::result::Result<T, FinetuneError>;
