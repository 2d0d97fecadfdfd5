//! Checkpoint folders: `step-NNNNNNNN/` with the model (`model.safetensors`,
//! `config.json`, readable by HF tools), the optimiser moments and the trainer state;
//! written under a temporary name and renamed, so a kill never leaves half of one.

use std::path::{Path, PathBuf};

use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

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
}

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
        let _ = std::fs::remove_dir_all(&final_dir);
        std::fs::rename(&tmp, &final_dir).map_err(|e| TrainError::file(&final_dir, e))?;
        let steps = self.steps()?;
        for old in steps.iter().take(steps.len().saturating_sub(keep.max(1))) {
            let _ = std::fs::remove_dir_all(self.step_dir(*old));
        }
        Ok(final_dir)
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
        let _ = std::fs::remove_dir_all(&best);
        std::fs::rename(&tmp, &best).map_err(|e| TrainError::file(&best, e))
    }
}

pub(crate) fn write_json(path: &Path, value: &impl Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(|e| TrainError::file(path, e))?;
    std::fs::write(path, text).map_err(|e| TrainError::file(path, e))
}

pub(crate) fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| TrainError::file(path, e))?;
    serde_json::from_str(&text).map_err(|e| TrainError::file(path, e))
}
