//! The configuration of a run that trains task heads: the tasks, the strategy, the
//! shared training settings (the keys of [`FinetuneConfig`]), and the checks that run
//! before training. A fine-tuning config is the shorthand for one task
//! ([`FinetuneConfig::as_tasks`]).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::data::{Batcher, TaskExample, load_examples, references, subset};
use crate::lm_task::load_windows;
use crate::plan::LrPlan;
use crate::{
    BiasInit, BodyConfig, FinetuneConfig, HeadConfig, HeadNames, HeadSpec, Pooling, TaskKind,
    TaskModel, TaskSpec, centre_regression_head, check_vocabulary, task_spec,
};
use candle_core::Tensor;
use gradus_train::{Direction, TrainConfig};
use serde::{Deserialize, Serialize};

use crate::error::{FinetuneError, Result};
use crate::objective::{TaskData, TaskObjective};
use crate::sampler::{Strategy, TaskSampler, non_negative};

/// One task: its data, head and share of the loss.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TaskConfig {
    /// Unique; names the head's parameters and the task's metrics (`<name>/accuracy`).
    pub name: String,
    /// An `examples` dataset encoded with the model's tokenizer.
    pub examples: PathBuf,
    /// A `tokens` dataset instead of examples: a causal-LM task on windows of `seq_len`
    /// tokens, through a decoder's own LM head (no `head`).
    pub tokens: Option<PathBuf>,
    pub train_split: String,
    /// The split scored at each evaluation; a task whose examples lack it is not
    /// evaluated (and may not count in the composite metric).
    pub validation_split: String,
    pub train_examples: Option<usize>,
    pub validation_examples: Option<usize>,
    pub head: HeadConfig,
    /// The task loss's weight in the sum (joint) or its scale (one task per step).
    pub weight: f64,
    /// Overrides the shared `batch_size`.
    pub batch_size: Option<usize>,
    /// Overrides the shared `seq_len`.
    pub seq_len: Option<usize>,
    /// The dev metric that stands for this task: `accuracy` (classification),
    /// `pearson` (regression) or `exact_match` (instruction) by default.
    pub metric: Option<String>,
}

impl Default for TaskConfig {
    fn default() -> Self {
        Self {
            name: String::new(),
            examples: PathBuf::new(),
            tokens: None,
            train_split: "train".into(),
            validation_split: "validation".into(),
            train_examples: None,
            validation_examples: None,
            head: HeadConfig::default(),
            weight: 1.0,
            batch_size: None,
            seq_len: None,
            metric: None,
        }
    }
}

/// `gradus-multitask`'s TOML: `[[tasks]]`, `[strategy]`, and at the top level the
/// shared training keys of `gradus-finetune` (`model`, `lr`, `epochs`, `batch_size`...;
/// the per-task ones, like `examples` and `head`, go under each task).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MultitaskConfig {
    pub tasks: Vec<TaskConfig>,
    pub strategy: Strategy,
    /// Tasks whose metric the `composite` dev metric averages; all by default.
    pub composite: Option<Vec<String>>,
    /// When present, each task is fine-tuned on its own from the multi-task model
    /// afterwards with these settings (`model`, `examples` and `head` come from the task).
    pub finetune: Option<FinetuneConfig>,
    /// The tasks to fine-tune afterwards; all by default.
    pub finetune_tasks: Option<Vec<String>>,
    #[serde(flatten)]
    pub training: FinetuneConfig,
    /// Keys no part of the config knows (a flattened struct cannot refuse them itself);
    /// `build` reports them.
    #[serde(flatten, skip_serializing)]
    pub unknown: BTreeMap<String, serde_json::Value>,
    /// `Single` for a fine-tuning run: one head named `classifier`, metrics without the
    /// task's prefix, the selection metric the task's own.
    #[serde(skip)]
    pub heads: HeadNames,
}

impl Default for MultitaskConfig {
    fn default() -> Self {
        Self {
            tasks: Vec::new(),
            strategy: Strategy::Joint,
            composite: None,
            finetune: None,
            finetune_tasks: None,
            training: FinetuneConfig::default(),
            unknown: BTreeMap::new(),
            heads: HeadNames::PerTask,
        }
    }
}

/// A task's name, training and dev examples, and head.
type TaskParts = (String, Vec<TaskExample>, Vec<TaskExample>, TaskSpec);

/// The metrics a task's score reports.
fn known_metrics(kind: TaskKind) -> &'static [&'static str] {
    match kind {
        TaskKind::Classification => &["loss", "accuracy", "macro_f1", "mcc"],
        TaskKind::Regression => &["loss", "mse", "pearson", "spearman"],
        TaskKind::Instruction => &["loss", "exact_match"],
        TaskKind::Lm => &["loss", "perplexity"],
    }
}

/// The direction of the composite metric: that of the task metrics it averages, which
/// must all improve the same way (a mean of accuracies and MSEs is no measure).
fn composite_direction<'a>(tasks: impl Iterator<Item = &'a TaskData>) -> Result<Direction> {
    let mut seen: Option<(Direction, &'a TaskData)> = None;
    for task in tasks {
        let direction = Direction::of(&task.metric).ok_or_else(|| {
            config_error(format!(
                "task `{}`: metric `{}` has no known direction",
                task.name, task.metric
            ))
        })?;
        match seen {
            Some((d, first)) if d != direction => {
                return Err(config_error(format!(
                    "the composite metric averages `{}/{}` and `{}/{}`, which improve in \
                     opposite directions; choose metrics that agree or set `composite`",
                    first.name, first.metric, task.name, task.metric
                )));
            }
            Some(_) => {}
            None => seen = Some((direction, task)),
        }
    }
    Ok(seen.map_or(Direction::Up, |(d, _)| d))
}

fn config_error(message: String) -> FinetuneError {
    FinetuneError::Config(message)
}

impl MultitaskConfig {
    /// Points task `name` at the dataset `dir` (a stage's `--input NAME=DIR`): its
    /// examples, or a causal-LM task's tokens.
    pub fn set_examples(&mut self, name: &str, dir: PathBuf) -> Result<()> {
        let Some(task) = self.tasks.iter().position(|t| t.name == name) else {
            let names: Vec<&str> = self.tasks.iter().map(|t| t.name.as_str()).collect();
            return Err(FinetuneError::Config(format!(
                "--input {name}=...: no task `{name}` (tasks: {})",
                names.join(", ")
            )));
        };
        match &mut self.tasks[task].tokens {
            Some(tokens) => *tokens = dir,
            None => self.tasks[task].examples = dir,
        }
        Ok(())
    }

    /// Loads every task and the model and runs every check; nothing is trained yet.
    pub fn build(&self) -> Result<TaskObjective> {
        self.check_shape()?;
        let t = &self.training;
        let device = gradus_model::device(&t.device)?;
        let body = BodyConfig::read(&t.model)?;
        let (mut tasks, mut heads, mut tokenizer) = (Vec::new(), Vec::new(), None);
        let mut pad = 0;
        for (i, task) in self.tasks.iter().enumerate() {
            let data = task.tokens.as_ref().unwrap_or(&task.examples);
            let (tk, task_pad) = check_vocabulary(&t.model, data)?;
            (pad, tokenizer) = (task_pad, tokenizer.or(Some(tk)));
            let max_len = task.seq_len.unwrap_or(t.seq_len).min(body.positions());
            let (data, spec) = self.load_task(task, i, (max_len, &body), &device)?;
            tasks.push(data);
            heads.push(HeadSpec {
                task: spec,
                dropout: task.head.dropout,
            });
        }
        if t.packing && heads.iter().all(|h| h.task.kind != TaskKind::Instruction) {
            return Err(config_error(
                "`packing` packs instruction examples, and no task here has them".into(),
            ));
        }
        let composite = self.composite_tasks(&tasks)?;
        let plan = LrPlan {
            layers: body.layers(),
            decay: t.layer_lr_decay,
            head_scale: t.head_lr.map_or(1.0, |h| h / t.lr),
            freeze_embeddings: t.freeze_embeddings,
            freeze_layers: t.freeze_layers,
        };
        let model = TaskModel::load(
            &t.model,
            t.init,
            heads,
            self.heads,
            &plan.frozen_prefixes(),
            &device,
            t.seed,
        )?;
        for (data, task) in tasks.iter().zip(&self.tasks) {
            if task.head.bias_init == BiasInit::Mean {
                centre_regression_head(
                    &model.params,
                    &model.names.prefix(&data.name),
                    &data.train,
                )?;
            }
        }
        let sizes = tasks.iter().map(|d| d.train.len()).collect();
        let steps = self.train_config(&tasks).steps;
        let horizon = steps * t.accumulation as u64;
        let sampler = TaskSampler::new(self.strategy.clone(), sizes, t.seed, horizon)?;
        let objective = TaskObjective::new(model, tasks, sampler, composite, pad, device, plan)
            .with_eval_batch_size(t.eval_batch_size)
            .with_tokenizer(tokenizer);
        self.check_metric_for_best(&objective)?;
        Ok(objective)
    }

    /// Refuses a key that no part of the config knows (which the flattened training keys
    /// keep deserializing from doing).
    pub fn refuse_unknown(&self) -> Result<()> {
        match self.unknown.keys().next() {
            Some(key) => Err(config_error(format!("unknown setting `{key}`"))),
            None => Ok(()),
        }
    }

    /// Checks that need no data: tasks present and uniquely named, positive sizes, no
    /// per-task keys at the top level.
    fn check_shape(&self) -> Result<()> {
        let t = &self.training;
        self.refuse_unknown()?;
        if self.tasks.is_empty() {
            return Err(config_error("no tasks: add [[tasks]] entries".into()));
        }
        if self.heads == HeadNames::Single && self.tasks.len() > 1 {
            return Err(config_error(format!(
                "{} tasks under one `classifier` head; several tasks need a head each",
                self.tasks.len()
            )));
        }
        let mut names = BTreeSet::new();
        for task in &self.tasks {
            // A fine-tuning run's one task is named by its examples when loaded.
            let unnamed = task.name.is_empty() && self.heads == HeadNames::Single;
            if !unnamed && (task.name.is_empty() || task.name.contains(['/', '.'])) {
                return Err(config_error(format!(
                    "task name {:?}: give each task a name without `/` or `.`",
                    task.name
                )));
            }
            if !names.insert(task.name.as_str()) {
                return Err(config_error(format!(
                    "two tasks are named `{}`; task names must be unique",
                    task.name
                )));
            }
            if let Some(p) = task.head.dropout {
                gradus_model::check_dropout(&[("head.dropout", p)])?;
            }
            if task.examples.as_os_str().is_empty() && task.tokens.is_none() {
                return Err(config_error(match task.name.as_str() {
                    "" => "no examples: pass --examples DIR (an examples dataset) or set \
                           `examples`"
                        .into(),
                    name => format!("task `{name}` has no `examples` (an examples dataset)"),
                }));
            }
            if task.batch_size == Some(0)
                || task.train_examples == Some(0)
                || task.seq_len == Some(0)
                || !non_negative(task.weight)
            {
                let which = match task.name.as_str() {
                    "" => "the task".to_string(),
                    name => format!("task `{name}`"),
                };
                return Err(config_error(format!(
                    "{which}: batch_size, train_examples and seq_len must be positive and \
                     weight non-negative"
                )));
            }
        }
        if t.batch_size == 0 || t.accumulation == 0 || t.eval_batch_size == 0 || t.seq_len == 0 {
            return Err(config_error(
                "batch_size, eval_batch_size, accumulation and seq_len must be positive".into(),
            ));
        }
        // As the HF Trainer's: epochs count only without max_steps, warmup is a share.
        if t.max_steps.is_none() && !(t.epochs.is_finite() && t.epochs > 0.0) {
            return Err(config_error(format!(
                "epochs {}: must be positive (or set max_steps)",
                t.epochs
            )));
        }
        if !(0.0..=1.0).contains(&t.warmup_ratio) {
            return Err(config_error(format!(
                "warmup_ratio {}: a share of the steps, within [0, 1]",
                t.warmup_ratio
            )));
        }
        let base = FinetuneConfig::default();
        let per_task = [
            ("examples", t.examples != base.examples),
            ("head", t.head != base.head),
            ("train_examples", t.train_examples.is_some()),
            ("validation_examples", t.validation_examples.is_some()),
            ("train_split", t.train_split != base.train_split),
            (
                "validation_split",
                t.validation_split != base.validation_split,
            ),
        ];
        if let Some((key, _)) = per_task.iter().find(|(_, set)| *set) {
            return Err(config_error(format!(
                "`{key}` is set for each task under [[tasks]], not at the top level"
            )));
        }
        for name in self.finetune_tasks.iter().flatten() {
            if !names.contains(name.as_str()) {
                return Err(config_error(format!(
                    "finetune_tasks names `{name}`, which is not a task"
                )));
            }
        }
        Ok(())
    }

    /// A task's examples, batcher and head, checked against each other.
    fn load_task(
        &self,
        task: &TaskConfig,
        index: usize,
        (max_len, body): (usize, &BodyConfig),
        device: &candle_core::Device,
    ) -> Result<(TaskData, TaskSpec)> {
        let t = &self.training;
        let (name, train, dev, spec) = match &task.tokens {
            Some(tokens) => self.lm_data(task, tokens, (max_len, body))?,
            None => self.examples_data(task, (max_len, body))?,
        };
        let metric = task.metric.clone().unwrap_or_else(|| {
            match spec.kind {
                TaskKind::Classification => "accuracy",
                TaskKind::Regression => "pearson",
                TaskKind::Instruction => "exact_match",
                TaskKind::Lm => "loss",
            }
            .into()
        });
        if !known_metrics(spec.kind).contains(&metric.as_str()) {
            return Err(config_error(format!(
                "task `{name}`: metric `{metric}` is not one of {:?}",
                known_metrics(spec.kind)
            )));
        }
        let class_weights = task
            .head
            .class_weights
            .as_ref()
            .map(|w| Tensor::from_vec(w.clone(), w.len(), device))
            .transpose()?;
        let lengths = train.iter().map(|e| e.input_ids.len()).collect();
        // Each task of several shuffles with its own stream; a fine-tuning run's one task
        // with the run's.
        let seed = match self.heads {
            HeadNames::Single => t.seed,
            HeadNames::PerTask => t.seed ^ ((index as u64 + 1) << 32),
        };
        let batch_size = task.batch_size.unwrap_or(t.batch_size);
        let data = TaskData {
            name,
            dev_source: format!(
                "split `{}` of {}",
                task.validation_split,
                task.examples.display()
            ),
            batcher: Batcher::new(lengths, batch_size, t.bucket_by_length, seed),
            pack: (t.packing && spec.kind == TaskKind::Instruction).then_some(max_len),
            train,
            dev,
            weight: task.weight,
            metric,
            class_weights,
        };
        Ok((data, spec))
    }

    /// A task's name, training and dev examples, and head, from its examples dataset.
    fn examples_data(
        &self,
        task: &TaskConfig,
        (max_len, body): (usize, &BodyConfig),
    ) -> Result<TaskParts> {
        let t = &self.training;
        let train = load_examples(&task.examples, Some(&task.train_split), max_len)?;
        let Some(first) = train.first() else {
            return Err(FinetuneError::data(
                &task.examples,
                format!("no examples in split `{}`", task.train_split),
            ));
        };
        let name = match task.name.as_str() {
            "" => first.task.clone(),
            given => given.to_string(),
        };
        let train = subset(train, task.train_examples, t.seed);
        let dev = subset(
            load_examples(&task.examples, Some(&task.validation_split), max_len)?,
            task.validation_examples,
            t.seed,
        );
        // A fine-tuning run selects on its dev split; several tasks may leave one out.
        if dev.is_empty() && self.heads == HeadNames::Single {
            return Err(FinetuneError::data(
                &task.examples,
                format!(
                    "no examples in the dev split `{}` (name another with `validation_split`, \
                     or hold some out with the examples stage's `validation_fraction`)",
                    task.validation_split
                ),
            ));
        }
        let spec = task_spec(&name, &task.head, &task.examples, &train, (max_len, body))?;
        references(&dev, &task.examples)?;
        Ok((name, train, dev, spec))
    }

    /// A causal-LM task: windows of `tokens` (its train and dev splits), read by the
    /// decoder's own LM head.
    fn lm_data(
        &self,
        task: &TaskConfig,
        tokens: &Path,
        (max_len, body): (usize, &BodyConfig),
    ) -> Result<TaskParts> {
        let t = &self.training;
        let name = task.name.clone();
        if let BodyConfig::Encoder(_) = body {
            return Err(config_error(format!(
                "task `{name}` is a causal-LM task (`tokens`), which needs a decoder (gpt2, llama)"
            )));
        }
        if task.examples != PathBuf::new() || task.head != HeadConfig::default() {
            return Err(config_error(format!(
                "task `{name}`: a causal-LM task reads `tokens`; it has no `examples` or `head`"
            )));
        }
        let tk = gradus_tokenize::load(&tokens.join("tokenizer.json"))?;
        let eos = gradus_tokenize::SpecialTokens::of(&tk).eos;
        let load = |split: &str| load_windows(tokens, &name, split, max_len, eos);
        let train = subset(load(&task.train_split)?, task.train_examples, t.seed);
        if train.is_empty() {
            return Err(FinetuneError::data(
                tokens,
                format!(
                    "no windows of 2 or more tokens in split `{}`",
                    task.train_split
                ),
            ));
        }
        let dev = subset(
            load(&task.validation_split)?,
            task.validation_examples,
            t.seed,
        );
        let spec = TaskSpec {
            name: name.clone(),
            kind: TaskKind::Lm,
            labels: Vec::new(),
            pooling: Pooling::Last,
            max_len,
            template: None,
        };
        Ok((name, train, dev, spec))
    }

    /// Indices of the tasks the composite metric averages; each must have dev data.
    fn composite_tasks(&self, tasks: &[TaskData]) -> Result<Vec<usize>> {
        let chosen: Vec<usize> = match &self.composite {
            Some(names) => names
                .iter()
                .map(|n| {
                    tasks.iter().position(|d| &d.name == n).ok_or_else(|| {
                        config_error(format!("composite names `{n}`, which is not a task"))
                    })
                })
                .collect::<Result<_>>()?,
            None => (0..tasks.len()).collect(),
        };
        let needs = if self.training.early_stopping_patience.is_some() {
            "early stopping and the best checkpoint need"
        } else {
            "the best checkpoint needs"
        };
        composite_direction(chosen.iter().map(|&i| &tasks[i]))?;
        if self.metric_for_best(tasks) == "composite"
            && let Some(d) = chosen.iter().map(|&i| &tasks[i]).find(|d| d.dev.is_empty())
        {
            return Err(config_error(format!(
                "task `{}` has no dev examples ({}), but {needs} its `{}` in the composite \
                 metric; give it a dev split or leave it out of `composite`",
                d.name, d.dev_source, d.metric
            )));
        }
        Ok(chosen)
    }

    /// The metric that picks the best checkpoint: the config's, else `composite`, or
    /// for one task ([`HeadNames::Single`]) the task's `metric` (`accuracy` or `pearson`
    /// by default).
    pub fn metric_for_best(&self, tasks: &[TaskData]) -> String {
        let default = match (self.heads, tasks.first()) {
            (HeadNames::Single, Some(task)) => task.metric.clone(),
            _ => "composite".into(),
        };
        self.training.metric_for_best.clone().unwrap_or(default)
    }

    fn check_metric_for_best(&self, objective: &TaskObjective) -> Result<()> {
        let metric = self.metric_for_best(&objective.tasks);
        if self.heads == HeadNames::Single {
            let kind = objective.model.specs[0].kind;
            if !known_metrics(kind).contains(&metric.as_str()) {
                return Err(config_error(format!(
                    "metric_for_best `{metric}`: the task reports {:?}",
                    known_metrics(kind)
                )));
            }
            return Ok(());
        }
        if metric == "composite" {
            return Ok(());
        }
        if metric == "loss" {
            if objective.tasks.iter().all(|d| d.dev.is_empty()) {
                return Err(config_error(
                    "metric_for_best `loss` needs dev examples in at least one task".into(),
                ));
            }
            return Ok(());
        }
        let (task, name) = metric.split_once('/').unwrap_or(("", ""));
        let Some(i) = objective.tasks.iter().position(|d| d.name == task) else {
            return Err(config_error(format!(
                "metric_for_best `{metric}`: use `composite`, `loss` or `<task>/<metric>`"
            )));
        };
        let kind = objective.model.specs[i].kind;
        if !known_metrics(kind).contains(&name) {
            return Err(config_error(format!(
                "metric_for_best `{metric}`: task `{task}` reports {:?}",
                known_metrics(kind)
            )));
        }
        if objective.tasks[i].dev.is_empty() {
            return Err(config_error(format!(
                "metric_for_best `{metric}`: task `{task}` has no dev examples ({})",
                objective.tasks[i].dev_source
            )));
        }
        Ok(())
    }

    /// Batches in one epoch: one pass over the largest task (joint, where every step
    /// takes a batch of each), or over all tasks' batches together (one task per step).
    fn batches_per_epoch(&self, tasks: &[TaskData]) -> usize {
        let per_task = tasks.iter().map(|d| d.batcher.batches_per_epoch());
        match self.strategy {
            Strategy::Joint => per_task.max().unwrap_or(1),
            _ => per_task.sum(),
        }
    }

    /// The trainer's settings for these tasks.
    pub fn train_config(&self, tasks: &[TaskData]) -> TrainConfig {
        let mut config = self
            .training
            .train_config(self.batches_per_epoch(tasks), self.metric_for_best(tasks));
        if config.metric_for_best == "composite" && config.greater_is_better.is_none() {
            let direction = self
                .composite_tasks(tasks)
                .and_then(|chosen| composite_direction(chosen.iter().map(|&i| &tasks[i])));
            config.greater_is_better = direction.ok().map(Direction::greater_is_better);
        }
        config
    }

    /// The fine-tuning run of task `task` from the exported single-task checkpoint
    /// `model`, when the config asks for one.
    pub fn finetune_config(&self, task: &TaskConfig, model: PathBuf) -> Option<FinetuneConfig> {
        let base = self.finetune.as_ref()?;
        // A causal-LM task keeps the model a language model; alone it is pretraining.
        if task.tokens.is_some() {
            return None;
        }
        if self
            .finetune_tasks
            .as_ref()
            .is_some_and(|names| !names.contains(&task.name))
        {
            return None;
        }
        Some(FinetuneConfig {
            model,
            examples: task.examples.clone(),
            train_split: task.train_split.clone(),
            validation_split: task.validation_split.clone(),
            train_examples: task.train_examples,
            validation_examples: task.validation_examples,
            head: task.head.clone(),
            seq_len: task.seq_len.unwrap_or(base.seq_len),
            batch_size: task.batch_size.unwrap_or(base.batch_size),
            metric_for_best: base.metric_for_best.clone().or(task.metric.clone()),
            ..base.clone()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_input_names_its_task_or_is_refused_listing_them() {
        let mut config = MultitaskConfig {
            tasks: ["sst2", "stsb"]
                .map(|name| TaskConfig {
                    name: name.into(),
                    ..TaskConfig::default()
                })
                .into(),
            ..MultitaskConfig::default()
        };
        config
            .set_examples("stsb", "runs/stsb-examples".into())
            .unwrap();
        assert_eq!(
            config.tasks[1].examples,
            PathBuf::from("runs/stsb-examples")
        );
        assert_eq!(config.tasks[0].examples, PathBuf::new());
        let err = config
            .set_examples("agnews", "x".into())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("no task `agnews` (tasks: sst2, stsb)"),
            "{err}"
        );
    }
}
