//! What a run did: per stage its outcome, time and key figure, as a table on stdout and
//! in `RUN_DIR/summary.txt`, and as JSON in `RUN_DIR/pipeline.json`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use gradus_record::RunRecord;
use serde::Serialize;
use serde_json::Value;

use crate::error::{PipelineError, Result};
use crate::plan::{Plan, Stage};
use crate::spec::StageKind;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Done,
    Skipped,
    Failed,
    Interrupted,
    NotRun,
    /// Dry run: would run.
    WouldRun,
    /// Dry run: up to date.
    WouldSkip,
}

impl Outcome {
    fn word(self) -> &'static str {
        match self {
            Self::Done => "done",
            Self::Skipped => "up to date",
            Self::Failed => "FAILED",
            Self::Interrupted => "stopped",
            Self::NotRun => "not run",
            Self::WouldRun => "would run",
            Self::WouldSkip => "up to date",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct StageReport {
    pub stage: String,
    pub kind: StageKind,
    pub status: Outcome,
    pub reason: String,
    pub seconds: f64,
    /// The stage's headline figure, read from its output.
    pub figure: Option<String>,
    pub output: PathBuf,
    pub log: PathBuf,
}

impl StageReport {
    pub fn new(plan: &Plan, stage: &Stage, status: Outcome, reason: String) -> Self {
        let figure = matches!(
            status,
            Outcome::Done | Outcome::Skipped | Outcome::WouldSkip
        )
        .then(|| key_figure(stage.kind, &stage.output))
        .flatten();
        Self {
            stage: stage.name.clone(),
            kind: stage.kind,
            status,
            reason,
            seconds: 0.0,
            figure,
            output: stage.output.clone(),
            log: plan.log_path(stage),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub pipeline: String,
    pub run_dir: PathBuf,
    pub seconds: f64,
    pub stages: Vec<StageReport>,
    /// The report of the last evaluation stage, if any.
    pub report: Option<PathBuf>,
}

impl RunReport {
    pub fn new(plan: &Plan, stages: Vec<StageReport>, seconds: f64) -> Self {
        let report = stages
            .iter()
            .rev()
            .find(|s| s.kind == StageKind::Eval)
            .map(|s| s.output.join("report.md"))
            .filter(|p| p.is_file());
        Self {
            pipeline: plan.name.clone(),
            run_dir: plan.run_dir.clone(),
            seconds,
            stages,
            report,
        }
    }

    /// The summary table: stage, kind, status, time, key figure.
    pub fn table(&self) -> String {
        let mut out = format!(
            "{:<20} {:<10} {:<11} {:>8}  {}\n",
            "stage", "kind", "status", "time", "key figure / reason"
        );
        for s in &self.stages {
            let kind = format!("{:?}", s.kind).to_lowercase();
            let time = if s.seconds > 0.0 {
                format!("{:.1}s", s.seconds)
            } else {
                "–".into()
            };
            let note = match s.status {
                Outcome::Done | Outcome::Skipped | Outcome::WouldSkip => {
                    s.figure.clone().unwrap_or_default()
                }
                _ => s.reason.clone(),
            };
            let _ = writeln!(
                out,
                "{:<20} {kind:<10} {:<11} {time:>8}  {note}",
                s.stage,
                s.status.word()
            );
        }
        let dry = self
            .stages
            .iter()
            .all(|s| matches!(s.status, Outcome::WouldRun | Outcome::WouldSkip));
        let head = if dry {
            "dry run".to_string()
        } else {
            format!("total {:.1}s", self.seconds)
        };
        let _ = writeln!(out, "{head}; outputs in {}", self.run_dir.display());
        if let Some(r) = &self.report {
            let _ = writeln!(out, "report: {}", r.display());
        }
        out
    }

    /// Writes `pipeline.json` and `summary.txt` into `dir`.
    pub fn write(&self, dir: &Path) -> Result<()> {
        let json = dir.join(crate::plan::SUMMARY_JSON);
        let text = serde_json::to_string_pretty(self).map_err(|e| PipelineError::file(&json, e))?;
        std::fs::write(&json, text + "\n").map_err(|e| PipelineError::file(&json, e))?;
        let txt = dir.join(crate::plan::SUMMARY_TEXT);
        std::fs::write(&txt, self.table()).map_err(|e| PipelineError::file(&txt, e))
    }
}

fn read_json(path: &Path) -> Option<Value> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

/// The figure of a training or evaluation run, from its run record.
fn record_figure(kind: StageKind, output: &Path) -> Option<String> {
    let record = match RunRecord::read(output) {
        Ok(record) => record?,
        Err(e) => return Some(format!("unreadable run record: {e}")),
    };
    let figure = |key: &str| record.figures.get(key).copied();
    match kind {
        StageKind::Pretrain => {
            let mut s = format!("validation loss {:.4}", figure("loss")?);
            if let Some(a) = figure("mlm_accuracy") {
                let _ = write!(s, ", MLM accuracy {a:.3}");
            }
            Some(s)
        }
        StageKind::Finetune | StageKind::Multitask => record.best_line(),
        _ => {
            let all: Vec<String> = record
                .figures
                .iter()
                .map(|(k, v)| format!("{k} {v:.4}"))
                .collect();
            (!all.is_empty()).then(|| all.join(", "))
        }
    }
}

/// The figure that stands for a finished stage's output.
pub fn key_figure(kind: StageKind, output: &Path) -> Option<String> {
    match kind {
        StageKind::Import | StageKind::Clean | StageKind::Encode | StageKind::Examples => {
            let m = crate::stamp::manifest(output)?;
            let rows = m.rows();
            let tokens = m.stats.get("tokens").and_then(Value::as_u64);
            Some(match tokens {
                Some(t) => format!("{rows} rows, {t} tokens"),
                None => format!("{rows} rows"),
            })
        }
        StageKind::Tokenizer => {
            let t = read_json(&output.join("tokenizer.json"))?;
            let vocab = t.pointer("/model/vocab")?;
            let n = vocab
                .as_object()
                .map(serde_json::Map::len)
                .or_else(|| vocab.as_array().map(Vec::len))?;
            Some(format!("vocabulary {n}"))
        }
        StageKind::Pretrain | StageKind::Finetune | StageKind::Multitask | StageKind::Eval => {
            record_figure(kind, output)
        }
    }
}
