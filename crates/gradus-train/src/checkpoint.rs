//! Checkpoint folders: `step-NNNNNNNN/` with the model (`model.safetensors`,
//! `config.json`, readable by HF tools), the optimiser moments, the trainer state and
//! the checksums of all of them; written under a temporary name and renamed, so a kill
//! never leaves half of one, and verified before a resume trusts one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use gradus_shard::checksum_file;

use crate::error::{Result, TrainError};

/// Everything besides tensors that an exact resume needs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainerState {
    /// Optimiser updates done.
    pub step: u64,
    /// The generator dropout draws from.
    pub rng: ChaCha8Rng,
    /// The objective's data cursor.
    pub data: serde_json::Value,
    /// The best value of the selection metric so far (validation loss by default).
    #[serde(alias = "best_loss")]
    pub best_value: Option<f64>,
    pub best_step: Option<u64>,
    /// Evaluations since the best one (early stopping).
    pub evals_since_best: u64,
    pub tokens_seen: u64,
    /// In data-parallel training, ranks 1, 2, …: their generator and data cursor
    /// (rank 0's are the fields above).
    #[serde(default)]
    pub ranks: Vec<RankState>,
    /// The length of each log file when the checkpoint was taken: a resume cuts the logs
    /// back to it, so that they read as those of an uninterrupted run.
    #[serde(default)]
    pub logs: LogPositions,
}

/// Bytes written to each of a run's log files, by log name.
pub type LogPositions = BTreeMap<String, u64>;

/// Each file of a checkpoint with its checksum; written last, so its presence means the
/// files it lists were complete.
pub const CHECKSUMS_FILE: &str = "checksums.json";

/// The log positions before a run's first step: where a rerun of a run killed before its
/// first checkpoint cuts its logs back to.
const START_FILE: &str = "start.json";

/// One rank's own part of an exact resume.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RankState {
    pub rng: ChaCha8Rng,
    pub data: serde_json::Value,
}

/// The checkpoints of one run, under `dir`.
#[derive(Debug, Clone)]
pub struct Checkpoints {
    pub dir: PathBuf,
}

impl Checkpoints {
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
        }
    }

    pub fn step_dir(&self, step: u64) -> PathBuf {
        self.dir.join(format!("step-{step:08}"))
    }

    pub fn best_dir(&self) -> PathBuf {
        self.dir.join("best")
    }

    /// Steps with a complete checkpoint, ascending.
    pub fn steps(&self) -> Result<Vec<u64>> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Ok(Vec::new());
        };
        let mut steps = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| TrainError::file(&self.dir, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(n) = name.strip_prefix("step-").and_then(|n| n.parse().ok())
                && entry.path().join("trainer.json").is_file()
            {
                steps.push(n);
            }
        }
        steps.sort_unstable();
        Ok(steps)
    }

    pub fn latest(&self) -> Result<Option<u64>> {
        Ok(self.steps()?.last().copied())
    }

    /// Writes a checkpoint for `step` with `write` filling a temporary folder, then
    /// commits it by rename and removes all but the newest `keep` step folders.
    pub fn save(
        &self,
        step: u64,
        keep: usize,
        write: impl FnOnce(&Path) -> Result<()>,
    ) -> Result<PathBuf> {
        let final_dir = self.step_dir(step);
        let tmp = self.dir.join(format!(".step-{step:08}.tmp"));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).map_err(|e| TrainError::file(&tmp, e))?;
        write(&tmp)?;
        write_checksums(&tmp)?;
        let _ = std::fs::remove_dir_all(&final_dir);
        std::fs::rename(&tmp, &final_dir).map_err(|e| TrainError::file(&final_dir, e))?;
        let steps = self.steps()?;
        for old in steps.iter().take(steps.len().saturating_sub(keep.max(1))) {
            let _ = std::fs::remove_dir_all(self.step_dir(*old));
        }
        Ok(final_dir)
    }

    /// Checks a checkpoint's files against its checksums and that its trainer state
    /// reads. A checkpoint from before checksums were kept passes on its trainer state.
    pub fn verify(&self, step: u64) -> Result<()> {
        let dir = self.step_dir(step);
        let sums_path = dir.join(CHECKSUMS_FILE);
        if sums_path.is_file() {
            let sums: BTreeMap<String, String> = read_json(&sums_path)?;
            for (name, want) in &sums {
                let path = dir.join(name);
                let (_, got) = checksum_file(&path).map_err(|e| TrainError::file(&path, e))?;
                if &got != want {
                    return Err(TrainError::file(
                        &path,
                        format!("checksum {got}, but the checkpoint recorded {want}"),
                    ));
                }
            }
        }
        read_json::<TrainerState>(&dir.join("trainer.json")).map(|_| ())
    }

    /// The newest checkpoint that verifies. A newer one that does not is (with
    /// `move_aside`) moved to `unreadable-step-NNNNNNNN/`, kept for inspection and never
    /// resumed from, with a warning; the run falls back to the one before, or the start.
    pub fn resume_point(&self, move_aside: bool) -> Result<Option<u64>> {
        for step in self.steps()?.into_iter().rev() {
            let Err(e) = self.verify(step) else {
                return Ok(Some(step));
            };
            if !move_aside {
                continue;
            }
            let aside = self.dir.join(format!("unreadable-step-{step:08}"));
            let _ = std::fs::remove_dir_all(&aside);
            std::fs::rename(self.step_dir(step), &aside)
                .map_err(|io| TrainError::file(&aside, io))?;
            tracing::warn!(
                "checkpoint of step {step} is unreadable ({e}); moved to {} and falling back to the one before",
                aside.display()
            );
        }
        Ok(None)
    }

    /// The log positions recorded before the run's first step, if any.
    pub fn start_positions(&self) -> Result<Option<LogPositions>> {
        let path = self.dir.join(START_FILE);
        if !path.is_file() {
            return Ok(None);
        }
        read_json(&path).map(Some)
    }

    /// Records the log positions before the run's first step.
    pub fn save_start_positions(&self, logs: &LogPositions) -> Result<()> {
        std::fs::create_dir_all(&self.dir).map_err(|e| TrainError::file(&self.dir, e))?;
        let (path, tmp) = (self.dir.join(START_FILE), self.dir.join(".start.json.tmp"));
        write_json(&tmp, logs)?;
        std::fs::rename(&tmp, &path).map_err(|e| TrainError::file(&path, e))
    }

    /// Replaces `best/` with the model files of `from`.
    pub fn mark_best(&self, from: &Path) -> Result<()> {
        let best = self.best_dir();
        let tmp = self.dir.join(".best.tmp");
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).map_err(|e| TrainError::file(&tmp, e))?;
        for name in ["model.safetensors", "config.json", "trainer.json"] {
            let src = from.join(name);
            if src.is_file() {
                std::fs::copy(&src, tmp.join(name)).map_err(|e| TrainError::file(&src, e))?;
            }
        }
        write_checksums(&tmp)?;
        let _ = std::fs::remove_dir_all(&best);
        std::fs::rename(&tmp, &best).map_err(|e| TrainError::file(&best, e))
    }
}

/// Writes the checksum of every file in `dir` into its [`CHECKSUMS_FILE`].
fn write_checksums(dir: &Path) -> Result<()> {
    let mut sums = BTreeMap::new();
    for entry in std::fs::read_dir(dir).map_err(|e| TrainError::file(dir, e))? {
        let entry = entry.map_err(|e| TrainError::file(dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if path.is_file() && name != CHECKSUMS_FILE {
            let (_, sum) = checksum_file(&path).map_err(|e| TrainError::file(&path, e))?;
            sums.insert(name, sum);
        }
    }
    write_json(&dir.join(CHECKSUMS_FILE), &sums)
}

pub fn write_json(path: &Path, value: &impl Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(|e| TrainError::file(path, e))?;
    std::fs::write(path, text).map_err(|e| TrainError::file(path, e))
}

pub(crate) fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| TrainError::file(path, e))?;
    serde_json::from_str(&text).map_err(|e| TrainError::file(path, e))
}
