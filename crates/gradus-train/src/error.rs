use std::path::PathBuf;

pub type Result<T> = std::result::Result<T, TrainError>;

/// Why training stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Model(#[from] gradus_model::ModelError),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    #[error(transparent)]
    Shard(#[from] gradus_shard::ShardError),
    #[error(transparent)]
    Telemetry(#[from] gradus_telemetry::TelemetryError),
    #[error("{}: {message}", path.display())]
    File { path: PathBuf, message: String },
    #[error("step {step}: {what} is not finite; the last good checkpoint is kept")]
    NonFinite { step: u64, what: String },
    #[error("training config: {0}")]
    Config(String),
    #[error("data: {0}")]
    Data(String),
    /// The output folder cannot be used as asked (locked, other settings, holds an
    /// input); nothing was changed.
    #[error("{0}")]
    Refused(String),
}

impl TrainError {
    pub(crate) fn file(path: &std::path::Path, message: impl std::fmt::Display) -> Self {
        Self::File {
            path: path.to_path_buf(),
            message: message.to_string(),
        }
    }
}
