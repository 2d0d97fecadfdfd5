use std::path::{Path, PathBuf};

pub type Result<T> = std::result::Result<T, ExportError>;

/// Why a model folder could not be written in a layout.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Model(#[from] gradus_model::ModelError),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    #[error("{}: {message}", path.display())]
    File { path: PathBuf, message: String },
    /// The layout cannot hold the model as it is; nothing was written.
    #[error("{0}")]
    Refused(String),
}

impl ExportError {
    pub(crate) fn file(path: &Path, message: impl std::fmt::Display) -> Self {
        Self::File {
            path: path.to_path_buf(),
            message: message.to_string(),
        }
    }
}
