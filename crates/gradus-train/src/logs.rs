//! A run's log files kept in step with its checkpoints: each checkpoint records how long
//! every log was, and a resume cuts them back to that, so the steps it replays are
//! logged once, as in an uninterrupted run.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::checkpoint::LogPositions;
use crate::error::{Result, TrainError};

/// Writes out what a log's writer still holds in memory.
pub type Flush = Arc<dyn Fn() -> std::io::Result<()> + Send + Sync>;

/// A log file another part of the process writes (the metrics recorder's
/// `metrics.jsonl`), kept in step with the checkpoints like the trainer's own logs.
#[derive(Clone)]
pub struct SideLog {
    /// The name its position is recorded under.
    pub name: String,
    pub path: PathBuf,
    pub flush: Flush,
}

impl fmt::Debug for SideLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SideLog")
            .field("name", &self.name)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// The logs of one run: the trainer's own (`train.jsonl`, `eval.jsonl`) and side logs.
pub(crate) struct RunLogs<'a> {
    pub own: Vec<(&'static str, PathBuf)>,
    pub side: &'a [SideLog],
}

impl RunLogs<'_> {
    fn all(&self) -> impl Iterator<Item = (&str, &Path, Option<&Flush>)> {
        let own = self.own.iter().map(|(n, p)| (*n, p.as_path(), None));
        let side = self
            .side
            .iter()
            .map(|s| (s.name.as_str(), s.path.as_path(), Some(&s.flush)));
        own.chain(side)
    }

    /// How long each log is now, with side logs flushed first.
    pub fn positions(&self) -> Result<LogPositions> {
        let mut out = LogPositions::new();
        for (name, path, flush) in self.all() {
            if let Some(flush) = flush {
                flush().map_err(|e| TrainError::file(path, e))?;
            }
            out.insert(name.to_string(), file_len(path));
        }
        Ok(out)
    }

    /// Cuts every log with a recorded position back to it; `origin` names where the
    /// positions came from. A log shorter than its position was cut or replaced by
    /// something else, and the run cannot be continued faithfully.
    pub fn cut_to(&self, positions: &LogPositions, origin: &Path) -> Result<()> {
        for (name, path, flush) in self.all() {
            let Some(&want) = positions.get(name) else {
                continue;
            };
            if let Some(flush) = flush {
                flush().map_err(|e| TrainError::file(path, e))?;
            }
            let len = file_len(path);
            if len < want {
                return Err(TrainError::file(
                    path,
                    format!(
                        "holds {len} bytes, fewer than the {want} that {} recorded: the log was cut or replaced; start again with --overwrite",
                        origin.display()
                    ),
                ));
            }
            if len > want {
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(path)
                    .and_then(|f| f.set_len(want))
                    .map_err(|e| TrainError::file(path, e))?;
            }
        }
        Ok(())
    }
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}
