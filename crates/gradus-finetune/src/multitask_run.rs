//! A multi-task run: how its folder is opened (every check first), the training and the
//! export of each task, and what it reports: the progress message, the final
//! `metrics.json` with each task's dev figures, and the per-task fine-tuning that may
//! follow.

use std::collections::BTreeMap;
use std::path::Path;

use crate::run::{FinetuneSummary, TrainingSummary, prepare_tasks};
use gradus_train::{RunEnd, RunKind, RunSpec, StepOutput, TrainConfig, TrainReport, Trainer};
use serde::Serialize;

use crate::{MultitaskConfig, Strategy, TaskObjective};

/// Builds the multi-task run of `config`, every check first (see [`prepare_tasks`]).
pub fn prepare(
    config: &MultitaskConfig,
    overwrite: bool,
) -> anyhow::Result<(TaskObjective, TrainConfig, RunSpec)> {
    prepare_tasks(RunKind::Multitask, config, config, overwrite)
}

/// Trains a prepared run with `trainer`, telling `on_step` of each step, and exports
/// each task's model into `trainer.out/tasks/<task>`; gives the summary and the run
/// record's end.
pub fn train(
    config: &MultitaskConfig,
    mut objective: TaskObjective,
    trainer: Trainer,
    on_step: &mut dyn FnMut(&StepOutput, &str),
) -> anyhow::Result<(MultitaskSummary, RunEnd)> {
    for (data, spec) in objective.tasks.iter().zip(&objective.model.specs) {
        tracing::info!(
            "task `{}` ({:?}, {} outputs, weight {}): {} training / {} dev examples",
            data.name,
            spec.kind,
            spec.outputs(),
            data.weight,
            data.train.len(),
            data.dev.len()
        );
    }
    tracing::info!(
        "{:?}: {} steps, {} parameters",
        config.strategy,
        trainer.config.steps,
        objective.model.params.count()
    );
    let names: Vec<String> = objective.tasks.iter().map(|d| d.name.clone()).collect();
    let metric = trainer.config.metric_for_best.clone();
    let out = trainer.out.clone();
    let report = trainer.run(&mut objective, &mut |s| {
        on_step(s, &announce(s, &names, &metric));
    })?;
    let exported = objective.export_tasks(&out.join("tasks"))?;
    let summary = MultitaskSummary::new(config, &objective, &report, &exported)?;
    let end = RunEnd::of(&report).with_figures(summary.dev.clone());
    Ok((summary, end))
}

/// The progress message of a step: each task's epochs so far, and the selection metric
/// when the step evaluated.
pub fn announce(step: &StepOutput, tasks: &[String], metric: &str) -> String {
    let epochs: Vec<String> = tasks
        .iter()
        .filter_map(|t| {
            let e = step.details.get(&format!("{t}/epoch"))?;
            Some(format!("{t} {e:.2} ep"))
        })
        .collect();
    let eval = step
        .eval
        .as_ref()
        .and_then(|e| e.get(metric))
        .map_or(String::new(), |v| format!(" · dev {metric} {v:.4}"));
    format!("loss {:.4} · {}{eval}", step.loss, epochs.join(", "))
}

/// One task's figures in `metrics.json`.
#[derive(Debug, Serialize)]
pub struct TaskSummary {
    pub kind: crate::TaskKind,
    pub metric: String,
    pub train_examples: usize,
    pub epochs: f64,
    /// Scalars of the final (best) model on the task's dev split; absent without one.
    pub dev: Option<BTreeMap<String, f64>>,
    pub dev_report: Option<serde_json::Value>,
    /// The exported single-task checkpoint.
    pub model: String,
    /// The per-task fine-tuning run that followed, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finetuned: Option<FinetuneSummary>,
}

/// `metrics.json` of a multi-task run.
#[derive(Debug, Serialize)]
pub struct MultitaskSummary {
    pub strategy: Strategy,
    #[serde(flatten)]
    pub training: TrainingSummary,
    /// `composite` and every `<task>/<metric>` of the final (best) model.
    pub dev: BTreeMap<String, f64>,
    pub tasks: BTreeMap<String, TaskSummary>,
}

impl MultitaskSummary {
    /// Scores the objective's current model (the best one, restored by the trainer) on
    /// every task; `exported` are the single-task folders in task order.
    pub fn new(
        config: &MultitaskConfig,
        objective: &TaskObjective,
        report: &TrainReport,
        exported: &[std::path::PathBuf],
    ) -> anyhow::Result<Self> {
        let scores = objective.dev_scores()?;
        let mut tasks = BTreeMap::new();
        for (i, data) in objective.tasks.iter().enumerate() {
            let score = scores[i].as_ref();
            tasks.insert(
                data.name.clone(),
                TaskSummary {
                    kind: objective.model.specs[i].kind,
                    metric: data.metric.clone(),
                    train_examples: data.train.len(),
                    epochs: data.epochs(),
                    dev: score.map(|s| s.scalars.clone()),
                    dev_report: score.map(|s| s.report.clone()),
                    model: exported[i].display().to_string(),
                    finetuned: None,
                },
            );
        }
        Ok(Self {
            strategy: config.strategy.clone(),
            training: TrainingSummary::new(&config.metric_for_best(&objective.tasks), report),
            dev: objective.metrics(&scores),
            tasks,
        })
    }

    pub fn write(&self, path: &Path) -> anyhow::Result<()> {
        Ok(gradus_train::write_json(path, self)?)
    }

    /// A table for the terminal: each task's metric after multi-task training and, when
    /// it was fine-tuned on its own afterwards, after that.
    pub fn table(&self) -> String {
        let mut out = format!(
            "{:<16} {:<10} {:>12} {:>12}\n",
            "task", "metric", "multi-task", "fine-tuned"
        );
        for (name, t) in &self.tasks {
            let multi = t.dev.as_ref().and_then(|d| d.get(&t.metric));
            let tuned = t.finetuned.as_ref().and_then(|f| f.dev.get(&t.metric));
            let cell = |v: Option<&f64>| v.map_or("-".to_string(), |v| format!("{v:.4}"));
            out.push_str(&format!(
                "{name:<16} {:<10} {:>12} {:>12}\n",
                t.metric,
                cell(multi),
                cell(tuned)
            ));
        }
        if let Some(c) = self.dev.get("composite") {
            out.push_str(&format!("{:<16} {:<10} {c:>12.4}\n", "composite", "mean"));
        }
        out
    }
}
