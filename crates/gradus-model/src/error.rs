use std::path::PathBuf;

pub type Result<T> = std::result::Result<T, ModelError>;

/// Why a model could not be built, loaded or run.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    #[error("{}: tensor `{name}` is missing", file.display())]
    MissingTensor { file: PathBuf, name: String },
    #[error("{}: tensor `{name}` has shape {got:?}, the model needs {want:?}", file.display())]
    Shape {
        file: PathBuf,
        name: String,
        got: Vec<usize>,
        want: Vec<usize>,
    },
    #[error("{}: {message}", file.display())]
    File { file: PathBuf, message: String },
    #[error("model config: {0}")]
    Config(String),
}

impl ModelError {
    pub(crate) fn file(file: &std::path::Path, message: impl std::fmt::Display) -> Self {
        Self::File {
            file: file.to_path_buf(),
            message: message.to_string(),
        }
    }
}
