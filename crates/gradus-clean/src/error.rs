//! Errors of the clean stage: each names the file, shard or line it is about.

use std::path::Path;

/// A kind of malformed input, as counted in the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InputErrorKind {
    MalformedJson,
    InvalidUtf8,
    MissingText,
    MalformedRow,
    EmptyFile,
    MissingFile,
}

impl InputErrorKind {
    pub fn name(self) -> &'static str {
        match self {
            Self::MalformedJson => "malformed_json",
            Self::InvalidUtf8 => "invalid_utf8",
            Self::MissingText => "missing_text",
            Self::MalformedRow => "malformed_row",
            Self::EmptyFile => "empty_file",
            Self::MissingFile => "missing_file",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CleanError {
    /// Bad input under `on_error = "fail"`.
    #[error("{file}:{line}: {}: {detail}", kind.name().replace('_', " "))]
    Input {
        file: String,
        line: u64,
        kind: InputErrorKind,
        detail: String,
    },
    /// A setting that cannot work, found before any work is done.
    #[error("{0}")]
    Config(String),
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Shard(#[from] gradus_shard::ShardError),
    #[error(transparent)]
    Arrow(#[from] arrow::error::ArrowError),
    #[error(transparent)]
    DataFusion(#[from] datafusion::error::DataFusionError),
    #[error("{0}")]
    Internal(String),
    /// The reader's consumer went away; not an error the user sees.
    #[error("cancelled")]
    Cancelled,
}

impl CleanError {
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.display().to_string(),
            source,
        }
    }

    /// The error a DataFusion plan carried from a reader, unwrapped to say the file
    /// and line rather than the plan's layers.
    pub fn from_datafusion(e: datafusion::error::DataFusionError) -> Self {
        use datafusion::error::DataFusionError as D;
        match e {
            D::External(inner) => match inner.downcast::<CleanError>() {
                Ok(clean) => *clean,
                Err(other) => Self::DataFusion(D::External(other)),
            },
            D::Context(_, inner) => Self::from_datafusion(*inner),
            other => Self::DataFusion(other),
        }
    }
}

pub type Result<T, E = CleanError> = std::result::Result<T, E>;
