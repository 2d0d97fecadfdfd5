//! Errors of evaluation: each names the file or the setting at fault.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("{0}")]
    Config(String),
    #[error("n-gram model: token id {id} is outside the vocabulary of {vocab}")]
    OutOfVocabulary { id: u32, vocab: usize },
    #[error("{}: {message}", path.display())]
    File { path: PathBuf, message: String },
    #[error(transparent)]
    Train(#[from] gradus_train::TrainError),
    #[error(transparent)]
    Model(#[from] gradus_model::ModelError),
    #[error(transparent)]
    Tensor(#[from] candle_core::Error),
    #[error(transparent)]
    Shard(#[from] gradus_shard::ShardError),
}

impl EvalError {
    pub fn file(path: &Path, message: impl std::fmt::Display) -> Self {
        Self::File {
            path: path.to_path_buf(),
            message: message.to_string(),
        }
    }
}

pub type Result<T, E = EvalError> = std::result::Result<T, E>;
