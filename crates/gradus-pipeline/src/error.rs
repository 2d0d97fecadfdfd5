//! Errors of the runner; each names the pipeline file, stage or file at fault.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("{}: {message}", file.display())]
    Pipeline { file: PathBuf, message: String },
    #[error("stage `{stage}`: {message}")]
    Stage { stage: String, message: String },
    #[error("{}: {message}", path.display())]
    File { path: PathBuf, message: String },
    #[error(
        "stage `{stage}` failed ({status}); last line: {last_line}; log: {}{}",
        log.display(),
        kept(previous.as_deref())
    )]
    Failed {
        stage: String,
        status: String,
        last_line: String,
        log: PathBuf,
        /// Where the stage's earlier output is kept, when it had one.
        previous: Option<PathBuf>,
    },
    #[error("interrupted; run the same command again to resume")]
    Interrupted,
}

impl PipelineError {
    pub fn file(path: &Path, message: impl std::fmt::Display) -> Self {
        Self::File {
            path: path.to_path_buf(),
            message: message.to_string(),
        }
    }

    pub fn stage(stage: &str, message: impl std::fmt::Display) -> Self {
        Self::Stage {
            stage: stage.to_string(),
            message: message.to_string(),
        }
    }
}

fn kept(previous: Option<&Path>) -> String {
    previous.map_or(String::new(), |p| {
        format!("; its earlier output is kept in {}", p.display())
    })
}

pub type Result<T, E = PipelineError> = std::result::Result<T, E>;
