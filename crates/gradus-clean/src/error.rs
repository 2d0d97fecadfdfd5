//! Errors of the clean stage: each names the file, shard or line it is about.

use std::path::Path;

/// A kind of malformed input, as counted in the report.
pub use gradus_shard::raw::InputErrorKind;

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
    /// A file's job failed on the cluster every time it was submitted.
    #[error("{file} on cluster {cluster}: {source}")]
    Cluster {
        file: String,
        cluster: String,
        source: Box<CleanError>,
    },
    /// Bad input met by a reader in another process (a cluster executor), as it said it.
    #[error("{0}")]
    RemoteInput(String),
    /// The reader's consumer went away; not an error the user sees.
    #[error("cancelled")]
    Cancelled,
}

impl CleanError {
    /// A raw file that cannot be read, named as the input names it (`name`).
    pub fn raw(name: &str, e: gradus_shard::raw::RawError) -> Self {
        match e {
            gradus_shard::raw::RawError::Io { source, .. } => Self::Io {
                path: name.to_string(),
                source,
            },
            gradus_shard::raw::RawError::Format { detail, .. } => {
                Self::Config(format!("{name}: {detail}"))
            }
        }
    }

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

/// Marks around a reader's error sent from another process: the engine in between
/// (Ballista) passes errors on as their debug rendering, nested in its own, so the
/// marked text is how the stage finds the reader's one line again.
const REMOTE_START: &str = "<gradus-input-error>";
const REMOTE_END: &str = "</gradus-input-error>";

impl CleanError {
    /// A reader's error as text to cross a process boundary.
    pub fn to_remote(&self) -> String {
        format!("{REMOTE_START}{self}{REMOTE_END}")
    }

    /// The reader's error inside an error message that carried one across processes.
    pub fn from_remote(message: &str) -> Option<Self> {
        let start = message.find(REMOTE_START)? + REMOTE_START.len();
        let len = message[start..].find(REMOTE_END)?;
        // Undo the debug rendering's escapes of quotes and backslashes (any depth).
        let mut text = message[start..start + len].to_string();
        while text.contains("\\\\") || text.contains("\\\"") || text.contains("\\'") {
            text = text
                .replace("\\\"", "\"")
                .replace("\\'", "'")
                .replace("\\\\", "\\");
        }
        Some(Self::RemoteInput(text))
    }
}

pub type Result<T, E = CleanError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reader_error_survives_nested_debug_renderings() {
        let e = CleanError::Input {
            file: "/data/a \"b\".jsonl".into(),
            line: 7,
            kind: InputErrorKind::MalformedJson,
            detail: "expected `:`".into(),
        };
        let once = format!("{:?}", e.to_remote());
        let twice = format!("Shared(External({once:?}))");
        for wrapped in [e.to_remote(), once, twice] {
            let back = CleanError::from_remote(&format!("Job failed: {wrapped} (stage 0)"));
            assert_eq!(
                back.map(|b| b.to_string()),
                Some(e.to_string()),
                "{wrapped}"
            );
        }
        assert!(CleanError::from_remote("Job failed: connection refused").is_none());
    }
}
