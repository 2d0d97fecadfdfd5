//! A fine-tuning run: how its folder is opened (every check first), the training, and
//! what it reports: progress messages, the final `metrics.json` and the run record's end.

use std::collections::BTreeMap;
use std::path::Path;

use gradus_train::{
    RunEnd, RunFacts, RunKind, RunSpec, StepOutput, TrainConfig, TrainReport, Trainer,
};
use serde::Serialize;

use crate::{FinetuneConfig, Init, MultitaskConfig, TaskObjective};

/// Builds the fine-tuning run of `config`, every check first: its objective, its
/// training settings, and how its output folder is to be opened (nothing there is
/// touched yet).
pub fn prepare(
    config: &FinetuneConfig,
    overwrite: bool,
) -> anyhow::Result<(TaskObjective, TrainConfig, RunSpec)> {
    prepare_tasks(RunKind::Finetune, config, &config.as_tasks(), overwrite)
}

/// Builds a run that trains task heads (`kind`: fine-tuning or multi-task, whose whole
/// config is `config` and whose tasks are `tasks`), every check first. It starts from
/// `tasks.training.model`, reads the tasks' examples, keeps its best model under
/// `model/` (one task) or `tasks/`, and selects on its metric.
pub fn prepare_tasks<C: Serialize>(
    kind: RunKind,
    config: &C,
    tasks: &MultitaskConfig,
    overwrite: bool,
) -> anyhow::Result<(TaskObjective, TrainConfig, RunSpec)> {
    let objective = tasks.build()?;
    let train = tasks.train_config(&objective.tasks);
    train.check()?;
    let training = &tasks.training;
    let facts = RunFacts {
        model: Some(
            if objective.is_single() {
                "model"
            } else {
                "tasks"
            }
            .into(),
        ),
        base_model: (training.init == Init::Pretrained).then(|| training.model.clone()),
        data: tasks.tasks.iter().map(|t| t.examples.clone()).collect(),
        tokenizer: None,
        seed: training.seed,
        selection: Some(train.selection()?),
    };
    let spec = RunSpec::new(kind, config, overwrite)?
        .with_inputs([training.model.clone()])
        .with_facts(facts);
    Ok((objective, train, spec))
}

/// Trains a prepared run with `trainer`, telling `on_step` of each step, and writes
/// `metrics.json` into the trainer's folder; gives the summary and the run record's end
/// (the kept model's dev figures and the best evaluation).
pub fn train(
    mut objective: TaskObjective,
    trainer: Trainer,
    on_step: &mut dyn FnMut(&StepOutput),
) -> anyhow::Result<(FinetuneSummary, RunEnd)> {
    let spec = objective.model.spec();
    let task = &objective.tasks[0];
    let train = &trainer.config;
    tracing::info!(
        "task `{}` ({:?}, {} outputs): {} training / {} dev examples, {} parameters, {} steps",
        spec.name,
        spec.kind,
        spec.outputs(),
        task.train.len(),
        task.dev.len(),
        objective.model.params.count(),
        train.steps
    );
    if !objective.model.params.fresh_names().is_empty() {
        tracing::info!("new: {}", objective.model.params.fresh_names().join(", "));
    }
    let metric = train.metric_for_best.clone();
    let report = trainer.run(&mut objective, on_step)?;
    let summary = FinetuneSummary::new(&objective, &report, &metric)?;
    summary.write(&trainer.out.join("metrics.json"))?;
    let end = RunEnd::of(&report).with_figures(summary.dev.clone());
    Ok((summary, end))
}

/// The progress-bar message of a step: its loss, and the selection metric when it
/// evaluated.
pub fn announce_eval(step: &StepOutput, metric: &str) -> String {
    let eval = step
        .eval
        .as_ref()
        .and_then(|e| e.get(metric))
        .map_or(String::new(), |v| format!(" dev {metric} {v:.4}"));
    format!("loss {:.4}{eval}", step.loss)
}

/// How training went, as both `metrics.json` files give it: the selection, the steps
/// and the speed.
#[derive(Debug, Serialize)]
pub struct TrainingSummary {
    pub metric_for_best: String,
    pub best_value: Option<f64>,
    pub best_step: Option<u64>,
    pub steps: u64,
    pub early_stopped: bool,
    pub train_seconds: f64,
    /// Training examples a second (the trainer's unit of work for a task head).
    pub examples_per_second: f64,
    /// The median step (examples per second) and the spread of step times.
    pub step_times: Option<gradus_train::StepTimes>,
}

impl TrainingSummary {
    pub fn new(metric: &str, report: &TrainReport) -> Self {
        Self {
            metric_for_best: metric.to_string(),
            best_value: report.best_value,
            best_step: report.best_step,
            steps: report.steps,
            early_stopped: report.early_stopped,
            train_seconds: report.seconds,
            examples_per_second: report.tokens_per_second,
            step_times: report.step_times.clone(),
        }
    }
}

/// `metrics.json`: the final model's full dev report and how training went.
#[derive(Debug, Serialize)]
pub struct FinetuneSummary {
    pub task: String,
    pub kind: crate::TaskKind,
    pub train_examples: usize,
    #[serde(flatten)]
    pub training: TrainingSummary,
    /// Scalars of the final (best) model on the dev split.
    pub dev: BTreeMap<String, f64>,
    /// Confusion matrix and per-class F1, or the regression report.
    pub dev_report: serde_json::Value,
}

impl FinetuneSummary {
    /// Scores the objective's current model (the best one, restored by the trainer).
    pub fn new(
        objective: &TaskObjective,
        report: &TrainReport,
        metric: &str,
    ) -> anyhow::Result<Self> {
        let task = &objective.tasks[0];
        let score = objective.score_task(0, &task.dev)?;
        Ok(Self {
            task: objective.model.spec().name.clone(),
            kind: objective.model.spec().kind,
            train_examples: task.train.len(),
            training: TrainingSummary::new(metric, report),
            dev: score.scalars,
            dev_report: score.report,
        })
    }

    pub fn write(&self, path: &Path) -> anyhow::Result<()> {
        Ok(gradus_train::write_json(path, self)?)
    }

    /// One line for the terminal.
    pub fn line(&self, output: &Path) -> String {
        let figures: Vec<String> = self
            .dev
            .iter()
            .filter(|(k, _)| *k != "loss")
            .map(|(k, v)| format!("{k} {v:.4}"))
            .collect();
        format!(
            "{}: task {} after {} steps ({:.1} s), dev {}; best model in {}",
            output.display(),
            self.task,
            self.training.steps,
            self.training.train_seconds,
            figures.join(", "),
            output.join("model").display()
        )
    }
}
