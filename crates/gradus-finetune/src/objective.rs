//! The objective the shared trainer runs for task heads: batches from the tasks the
//! sampler picks, the weighted sum of their losses, and dev metrics. Fine-tuning is this
//! objective with one task whose head is named `classifier` ([`HeadNames::Single`]).

use std::cell::{OnceCell, RefCell};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use gradus_model::{Ctx, Kernels, Params, loss};
use gradus_train::{Objective, TrainError};
use serde::{Deserialize, Serialize};
use tokenizers::Tokenizer;

use crate::data::{BatchCursor, Batcher, PaddedBatch, TaskExample};
use crate::error::{FinetuneError, Result};
use crate::eval::{TaskScore, head_outputs, score};
use crate::instruct::{Scorer, response_loss};
use crate::model::{HeadNames, TaskKind, TaskModel, copy_tokenizer};
use crate::plan::LrPlan;
use crate::sampler::TaskSampler;

/// One task's data and settings.
#[derive(Debug)]
pub struct TaskData {
    pub name: String,
    /// Where the dev examples come from, for messages.
    pub dev_source: String,
    pub train: Vec<TaskExample>,
    pub dev: Vec<TaskExample>,
    pub batcher: Batcher,
    pub weight: f64,
    /// The dev metric that stands for the task.
    pub metric: String,
    /// Per-class loss weights `[classes]`.
    pub class_weights: Option<Tensor>,
    /// Instruction tasks with `packing`: the length of the rows examples are packed into.
    pub pack: Option<usize>,
}

impl TaskData {
    /// Epochs of this task's training data consumed so far.
    pub fn epochs(&self) -> f64 {
        let c = self.batcher.cursor;
        c.epoch as f64 + c.batch as f64 / self.batcher.batches_per_epoch().max(1) as f64
    }
}

/// One micro-batch: a padded batch of each task the sampler drew.
#[derive(Debug)]
pub struct TaskBatch {
    pub parts: Vec<(usize, PaddedBatch)>,
}

/// Where the data stands: the sampler's draws and each task's cursor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct DataState {
    draws: u64,
    cursors: BTreeMap<String, BatchCursor>,
}

/// The encoder, the tasks and the schedule that interleaves them.
#[derive(Debug)]
pub struct TaskObjective {
    pub model: TaskModel,
    pub tasks: Vec<TaskData>,
    pub sampler: TaskSampler,
    /// Tasks whose metric the `composite` dev metric averages.
    pub composite: Vec<usize>,
    pub eval_batch_size: usize,
    pub pad: u32,
    pub device: Device,
    pub plan: LrPlan,
    /// Copied beside the saved model so that it can label raw text.
    pub tokenizer: Option<PathBuf>,
    /// `tokenizer` read at the first scoring of generated answers and kept for the
    /// evaluations after it.
    loaded_tokenizer: OnceCell<Tokenizer>,
    /// Per task: summed mean losses and micro-batches since the last step's report.
    seen: RefCell<Vec<(f64, usize)>>,
}

/// The summed loss of a batch: cross-entropy (class-weighted when weights are given, on
/// the model's `kernels`) or squared error.
pub fn task_loss(
    kind: TaskKind,
    outputs: &Tensor,
    batch: &PaddedBatch,
    class_weights: Option<&Tensor>,
    kernels: Kernels,
) -> Result<Tensor> {
    let missing = |what: &str| FinetuneError::Config(format!("a batch without {what}"));
    Ok(match kind {
        TaskKind::Classification => {
            let labels = batch
                .labels
                .as_ref()
                .ok_or_else(|| missing("class labels"))?;
            let weights = class_weights
                .map(|w| w.index_select(labels, 0))
                .transpose()?;
            loss::nll_sum(outputs, labels, weights.as_ref(), kernels)?
        }
        TaskKind::Regression => {
            let targets = batch.targets.as_ref().ok_or_else(|| missing("targets"))?;
            loss::squared_error_sum(outputs, targets)?
        }
        TaskKind::Instruction | TaskKind::Lm => {
            // The mean over the batch's response tokens (all of an LM window's), once per
            // example: the trainer divides the step's sum by its examples.
            let (sum, tokens) = response_loss(outputs, batch, kernels)?;
            (sum * (batch.examples as f64 / tokens.max(1.0)))?
        }
    })
}

impl TaskObjective {
    pub fn new(
        model: TaskModel,
        tasks: Vec<TaskData>,
        sampler: TaskSampler,
        composite: Vec<usize>,
        pad: u32,
        device: Device,
        plan: LrPlan,
    ) -> Self {
        let seen = RefCell::new(vec![(0.0, 0); tasks.len()]);
        Self {
            model,
            tasks,
            sampler,
            composite,
            eval_batch_size: 64,
            pad,
            device,
            plan,
            tokenizer: None,
            loaded_tokenizer: OnceCell::new(),
            seen,
        }
    }

    pub fn with_eval_batch_size(mut self, n: usize) -> Self {
        self.eval_batch_size = n.max(1);
        self
    }

    pub fn with_tokenizer(mut self, tokenizer: Option<PathBuf>) -> Self {
        self.tokenizer = tokenizer;
        self.loaded_tokenizer = OnceCell::new();
        self
    }

    /// A fine-tuning run's objective: one task, its head named `classifier`.
    pub fn is_single(&self) -> bool {
        self.model.names == HeadNames::Single
    }

    /// Each part's summed loss (class-weighted cross-entropy or squared error), in the
    /// batch's order, before the task weights.
    pub fn task_losses(&self, batch: &TaskBatch, ctx: &mut Ctx<'_>) -> Result<Vec<Tensor>> {
        batch
            .parts
            .iter()
            .map(|(task, b)| {
                let outputs = self.model.forward(*task, b, ctx)?;
                task_loss(
                    self.model.specs[*task].kind,
                    &outputs,
                    b,
                    self.tasks[*task].class_weights.as_ref(),
                    self.model.body.kernels(),
                )
            })
            .collect()
    }

    /// Task `task` scored on `examples` (dropout off).
    pub fn score_task(&self, task: usize, examples: &[TaskExample]) -> Result<TaskScore> {
        let spec = &self.model.specs[task];
        if spec.kind.uses_lm_head() {
            let (Some(decoder), Some(path)) = (self.model.decoder(), &self.tokenizer) else {
                return Err(FinetuneError::Config(format!(
                    "task `{}`: scoring answers needs a decoder and its tokenizer",
                    spec.name
                )));
            };
            let tokenizer = match self.loaded_tokenizer.get() {
                Some(tokenizer) => tokenizer,
                None => {
                    let loaded = gradus_tokenize::load(path)?;
                    self.loaded_tokenizer.get_or_init(|| loaded)
                }
            };
            let scorer = Scorer {
                decoder,
                spec,
                batch_size: self.eval_batch_size,
                pad: self.pad,
                device: &self.device,
                tokenizer,
            };
            return scorer.score(examples);
        }
        let outputs = head_outputs(
            examples,
            self.eval_batch_size,
            self.pad,
            &self.device,
            |b| self.model.forward(task, b, &mut Ctx::eval()),
        )?;
        score(&self.model.specs[task], examples, &outputs)
    }

    /// Every task with dev examples, scored on them.
    pub fn dev_scores(&self) -> Result<Vec<Option<TaskScore>>> {
        (0..self.tasks.len())
            .map(|i| {
                let dev = &self.tasks[i].dev;
                (!dev.is_empty())
                    .then(|| self.score_task(i, dev))
                    .transpose()
            })
            .collect()
    }

    /// The flat metrics of `scores`. One task ([`is_single`](Self::is_single)): its own
    /// (`accuracy`, `loss`...). Several: `<task>/<metric>` for each, `loss` (the mean of
    /// the task losses) and `composite` (the mean of the chosen tasks' metrics).
    pub fn metrics(&self, scores: &[Option<TaskScore>]) -> BTreeMap<String, f64> {
        if self.is_single() {
            return scores
                .first()
                .and_then(|s| s.as_ref())
                .map(|s| s.scalars.clone())
                .unwrap_or_default();
        }
        let mut out = BTreeMap::new();
        let mut losses = Vec::new();
        for (data, score) in self.tasks.iter().zip(scores) {
            let Some(score) = score else { continue };
            for (k, v) in &score.scalars {
                out.insert(format!("{}/{k}", data.name), *v);
            }
            losses.extend(score.scalars.get("loss"));
        }
        if !losses.is_empty() {
            out.insert("loss".into(), mean(&losses));
        }
        let chosen: Vec<f64> = self
            .composite
            .iter()
            .filter_map(|&i| {
                let s = scores[i].as_ref()?;
                s.scalars.get(&self.tasks[i].metric).copied()
            })
            .collect();
        if !chosen.is_empty() {
            out.insert("composite".into(), mean(&chosen));
        }
        out
    }

    /// Writes each task as a single-task checkpoint `dir/<task>` (with the tokenizer);
    /// returns the folders in task order.
    pub fn export_tasks(&self, dir: &Path) -> Result<Vec<PathBuf>> {
        let mut out = Vec::new();
        for (i, data) in self.tasks.iter().enumerate() {
            let to = dir.join(&data.name);
            self.model.export_task(i, &to)?;
            copy_tokenizer(self.tokenizer.as_deref(), &to)?;
            out.push(to);
        }
        Ok(out)
    }

    /// Mean real tokens per training example over all tasks.
    fn mean_tokens(&self) -> f64 {
        let (tokens, n) = self.tasks.iter().fold((0usize, 0usize), |(t, n), d| {
            (
                t + d.train.iter().map(|e| e.input_ids.len()).sum::<usize>(),
                n + d.train.len(),
            )
        });
        tokens as f64 / n.max(1) as f64
    }
}

fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len() as f64
}

impl Objective for TaskObjective {
    type Batch = TaskBatch;

    fn params(&self) -> &Params {
        &self.model.params
    }

    fn next_batch(&mut self) -> gradus_train::Result<TaskBatch> {
        let mut parts = Vec::new();
        for task in self.sampler.next_tasks() {
            let data = &mut self.tasks[task];
            let indices = data.batcher.next_batch();
            let refs: Vec<&TaskExample> = indices.iter().map(|&i| &data.train[i]).collect();
            let batch = match data.pack {
                Some(len) => PaddedBatch::packed(&refs, len, self.pad, &self.device)?,
                None => PaddedBatch::new(&refs, self.pad, &self.device)?,
            };
            parts.push((task, batch));
        }
        Ok(TaskBatch { parts })
    }

    /// Examples: the loss is a sum over them, and tokens/s reads as examples/s.
    fn weight(&self, batch: &TaskBatch) -> usize {
        batch.parts.iter().map(|(_, b)| b.examples).sum()
    }

    /// Σ over the parts of weight × mean loss, times the batch's examples (the trainer
    /// divides by the step's examples). A task's share of the loss is thus its weight,
    /// whatever its batch size; one task at weight 1 is its plain summed loss.
    fn loss_sum(&self, batch: &TaskBatch, ctx: &mut Ctx<'_>) -> gradus_train::Result<Tensor> {
        let examples = self.weight(batch) as f64;
        let mut total: Option<Tensor> = None;
        let losses = self.task_losses(batch, ctx)?;
        for ((task, b), sum) in batch.parts.iter().zip(losses) {
            let n = b.examples.max(1) as f64;
            if !self.is_single()
                && let Some(entry) = self.seen.borrow_mut().get_mut(*task)
            {
                entry.0 += f64::from(sum.to_scalar::<f32>()?) / n;
                entry.1 += 1;
            }
            let scale = self.tasks[*task].weight * examples / n;
            // Multiplying by exactly 1 is skipped: it changes nothing but costs an op.
            let part = if scale == 1.0 { sum } else { (sum * scale)? };
            total = Some(match total {
                Some(t) => (t + part)?,
                None => part,
            });
        }
        total.ok_or_else(|| TrainError::Data("an empty multi-task batch".into()))
    }

    fn evaluate(&mut self) -> gradus_train::Result<BTreeMap<String, f64>> {
        let scores = self.dev_scores()?;
        Ok(self.metrics(&scores))
    }

    fn data_state(&self) -> gradus_train::Result<serde_json::Value> {
        gradus_train::cursor_to_json(&DataState {
            draws: self.sampler.draws,
            cursors: self
                .tasks
                .iter()
                .map(|d| (d.name.clone(), d.batcher.cursor))
                .collect(),
        })
    }

    fn restore_data(&mut self, state: serde_json::Value) -> gradus_train::Result<()> {
        let state: DataState = gradus_train::cursor_from_json(state)?;
        self.sampler.draws = state.draws;
        for data in &mut self.tasks {
            data.batcher.cursor = state.cursors.get(&data.name).copied().ok_or_else(|| {
                TrainError::Data(format!(
                    "the checkpoint has no cursor for task `{}`",
                    data.name
                ))
            })?;
        }
        Ok(())
    }

    fn save_model(&self, dir: &Path) -> gradus_train::Result<()> {
        self.model.save(dir)?;
        Ok(copy_tokenizer(self.tokenizer.as_deref(), dir)?)
    }

    fn flops_per_unit(&self) -> f64 {
        6.0 * self.model.params.count() as f64 * self.mean_tokens()
    }

    fn lr_scale(&self, name: &str) -> Option<f64> {
        self.plan.scale(name)
    }

    /// With several tasks: `<task>/loss` (mean training loss of the task's micro-batches
    /// in this step) and `<task>/epoch` (its epochs of data consumed).
    fn step_metrics(&mut self) -> BTreeMap<String, f64> {
        let mut out = BTreeMap::new();
        if self.is_single() {
            return out;
        }
        for (data, (sum, n)) in self.tasks.iter().zip(self.seen.borrow_mut().iter_mut()) {
            if *n > 0 {
                out.insert(format!("{}/loss", data.name), *sum / *n as f64);
            }
            out.insert(format!("{}/epoch", data.name), data.epochs());
            (*sum, *n) = (0.0, 0);
        }
        out
    }
}
