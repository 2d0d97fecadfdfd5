//! `run.json`, the record every training stage and the evaluation leave in their output
//! folder: what kind of run wrote it, under which settings, from which model, data,
//! tokenizer and seed, which metric chose its model (and which way that metric
//! improves), its final figures, and every top-level file it wrote.
//!
//! Readers (the evaluation, the pipeline runner's summary, a later stage that starts
//! from the folder) depend on this crate alone, so a renamed field fails to compile
//! instead of blanking a figure.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

pub use gradus_metrics::{Direction, Metric};
pub use output::{
    Claim, RESOLVED_CONFIG, claim_output, claim_output_with_config, output_stage,
    write_resolved_config,
};

mod output;
use serde::{Deserialize, Serialize};

/// The run record's file name.
pub const RUN_RECORD: &str = "run.json";

/// What kind of run wrote a folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunKind {
    Pretrain,
    Finetune,
    Multitask,
    Eval,
}

impl RunKind {
    pub fn name(self) -> &'static str {
        match self {
            Self::Pretrain => "pretrain",
            Self::Finetune => "finetune",
            Self::Multitask => "multitask",
            Self::Eval => "eval",
        }
    }
}

impl fmt::Display for RunKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a run is about, as its stage states it before training.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RunFacts {
    /// The model folder the run writes, relative to the run folder (`model`, or `tasks`
    /// for a multi-task run's per-task exports).
    pub model: Option<PathBuf>,
    /// The model folder the run started from (fine-tuning's pretrained encoder); `None`
    /// for random initialisation.
    pub base_model: Option<PathBuf>,
    /// The datasets it trains or evaluates on.
    pub data: Vec<PathBuf>,
    pub tokenizer: Option<PathBuf>,
    pub seed: u64,
    /// The metric that picks the kept model, with its direction.
    pub selection: Option<Metric>,
}

/// `run.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// Older records call it `stage`.
    #[serde(alias = "stage")]
    pub kind: RunKind,
    pub gradus_version: String,
    /// The hash of the settings that decide what the run computes.
    pub config_hash: String,
    pub settings: serde_json::Value,
    /// Files and folders the run reads.
    pub inputs: Vec<PathBuf>,
    /// Every top-level name the run wrote in its folder.
    pub outputs: Vec<String>,
    #[serde(flatten)]
    pub facts: RunFacts,
    /// Whether the run got to its end.
    pub finished: bool,
    /// The final figures: the kept model's evaluation (`loss`, `accuracy`, …).
    #[serde(default)]
    pub figures: BTreeMap<String, f64>,
    /// The best value of the selection metric and the step that reached it.
    #[serde(default)]
    pub best: Option<Best>,
    /// Optimiser steps taken, for a training run that finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps: Option<u64>,
    /// For training data mixed from several datasets: each one's weight and the tokens
    /// actually drawn from it, by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub data_seen: BTreeMap<String, SourceSeen>,
}

/// What a training run drew from one of its datasets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceSeen {
    pub data: PathBuf,
    /// Its weight, normalised over the sources.
    pub weight: f64,
    /// Tokens drawn from it, and their share of all tokens drawn.
    pub tokens: u64,
    pub share: f64,
}

/// The best evaluation of the selection metric.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Best {
    pub value: f64,
    pub step: u64,
}

impl Best {
    /// The best evaluation from a report's value and step, when it has both.
    pub fn of(value: Option<f64>, step: Option<u64>) -> Option<Self> {
        value.zip(step).map(|(value, step)| Self { value, step })
    }
}

/// A run record that cannot be read, or an output folder a stage may not write.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The folder holds what the stage must not write over; nothing was changed.
    #[error("{0}")]
    Refused(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a gradus run record: {message}")]
    Invalid { path: PathBuf, message: String },
}

impl RunRecord {
    /// The record in `dir`, or `None` when the folder has none.
    pub fn read(dir: &Path) -> Result<Option<Self>, RecordError> {
        let path = dir.join(RUN_RECORD);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(RecordError::Io { path, source }),
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| RecordError::Invalid {
                path,
                message: e.to_string(),
            })
    }

    /// The record in `dir`, which must have one.
    pub fn require(dir: &Path) -> Result<Self, RecordError> {
        Self::read(dir)?.ok_or_else(|| RecordError::Invalid {
            path: dir.join(RUN_RECORD),
            message: "missing: the folder was not written by a gradus run".into(),
        })
    }

    /// Writes the record into `dir` atomically (a temporary file renamed over it).
    pub fn write(&self, dir: &Path) -> Result<(), RecordError> {
        let path = dir.join(RUN_RECORD);
        let tmp = dir.join(format!(".{RUN_RECORD}.tmp"));
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| RecordError::Io { path, source }
        };
        let text = serde_json::to_string_pretty(self).map_err(|e| RecordError::Invalid {
            path: path.clone(),
            message: e.to_string(),
        })?;
        std::fs::write(&tmp, text + "\n").map_err(io(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(io(&path))
    }

    /// The selection metric's best value, named: `accuracy 0.8610`.
    pub fn best_line(&self) -> Option<String> {
        let metric = self.facts.selection.as_ref()?;
        let best = self.best?;
        Some(format!("{} {:.4}", metric.name, best.value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> RunRecord {
        RunRecord {
            kind: RunKind::Finetune,
            gradus_version: "0.1.0".into(),
            config_hash: "abc".into(),
            settings: serde_json::json!({"lr": 2e-5}),
            inputs: vec!["runs/pretrain/model".into()],
            outputs: vec!["model".into()],
            facts: RunFacts {
                model: Some("model".into()),
                base_model: Some("runs/pretrain/model".into()),
                data: vec!["runs/examples".into()],
                tokenizer: None,
                seed: 42,
                selection: Some(Metric::new("mse", None).unwrap()),
            },
            finished: true,
            figures: [("mse".to_string(), 1.39)].into(),
            best: Some(Best {
                value: 1.39,
                step: 40,
            }),
            steps: Some(40),
            data_seen: [(
                "web".to_string(),
                SourceSeen {
                    data: "runs/web".into(),
                    weight: 0.7,
                    tokens: 7000,
                    share: 0.7,
                },
            )]
            .into(),
        }
    }

    #[test]
    fn a_record_round_trips_with_its_selection_direction() {
        let dir = tempfile::tempdir().unwrap();
        record().write(dir.path()).unwrap();
        let text = std::fs::read_to_string(dir.path().join(RUN_RECORD)).unwrap();
        assert!(text.contains("\"direction\": \"down\""), "{text}");
        assert!(text.contains("\"kind\": \"finetune\""), "{text}");
        let back = RunRecord::require(dir.path()).unwrap();
        assert_eq!(back, record());
        assert_eq!(back.best_line().unwrap(), "mse 1.3900");
    }

    #[test]
    fn an_older_record_reads_with_its_stage_as_the_kind() {
        let dir = tempfile::tempdir().unwrap();
        let old = r#"{"stage": "pretrain", "gradus_version": "0.1.0", "config_hash": "x",
            "settings": {}, "inputs": [], "outputs": [], "finished": false}"#;
        std::fs::write(dir.path().join(RUN_RECORD), old).unwrap();
        let r = RunRecord::require(dir.path()).unwrap();
        assert_eq!(r.kind, RunKind::Pretrain);
        assert_eq!(r.facts, RunFacts::default());
    }

    #[test]
    fn a_missing_or_damaged_record_is_named() {
        let dir = tempfile::tempdir().unwrap();
        assert!(RunRecord::read(dir.path()).unwrap().is_none());
        let e = RunRecord::require(dir.path()).unwrap_err().to_string();
        assert!(
            e.contains("run.json") && e.contains("not written by a gradus run"),
            "{e}"
        );
        std::fs::write(dir.path().join(RUN_RECORD), "{").unwrap();
        let e = RunRecord::read(dir.path()).unwrap_err().to_string();
        assert!(e.contains("not a gradus run record"), "{e}");
    }
}
