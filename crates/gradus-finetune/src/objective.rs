//! The fine-tuning objective the shared trainer runs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use gradus_model::{Ctx, Kernels, Params, loss};
use gradus_train::Objective;

use crate::data::{Batcher, PaddedBatch, TaskExample};
use crate::eval::{TaskScore, head_outputs, score};
use crate::model::{TaskKind, TaskModel, copy_tokenizer};
use crate::plan::LrPlan;

/// One task's model, data and learning-rate plan.
#[derive(Debug)]
pub struct FinetuneObjective {
    pub model: TaskModel,
    pub train: Vec<TaskExample>,
    pub dev: Vec<TaskExample>,
    pub batcher: Batcher,
    pub eval_batch_size: usize,
    pub pad: u32,
    pub device: Device,
    /// Per-class loss weights `[classes]`.
    pub class_weights: Option<Tensor>,
    pub plan: LrPlan,
    /// Copied beside the saved model so that it can label raw text.
    pub tokenizer: Option<PathBuf>,
}

impl FinetuneObjective {
    /// Scores the model on `examples` (dropout off).
    pub fn score(&self, examples: &[TaskExample]) -> crate::Result<TaskScore> {
        let outputs = head_outputs(
            examples,
            self.eval_batch_size,
            self.pad,
            &self.device,
            |b| self.model.forward(0, b, &mut Ctx::eval()),
        )?;
        score(self.model.spec(), examples, &outputs)
    }

    /// Mean real tokens per training example.
    fn mean_tokens(&self) -> f64 {
        let total: usize = self.train.iter().map(|e| e.input_ids.len()).sum();
        total as f64 / self.train.len().max(1) as f64
    }
}

/// The summed loss of a batch: cross-entropy (class-weighted when weights are given, on
/// the model's `kernels`) or squared error.
pub fn task_loss(
    kind: TaskKind,
    outputs: &Tensor,
    batch: &PaddedBatch,
    class_weights: Option<&Tensor>,
    kernels: Kernels,
) -> crate::Result<Tensor> {
    let missing = |what: &str| crate::FinetuneError::Config(format!("a batch without {what}"));
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
    })
}

impl Objective for FinetuneObjective {
    type Batch = PaddedBatch;

    fn params(&self) -> &Params {
        &self.model.params
    }

    fn next_batch(&mut self) -> gradus_train::Result<PaddedBatch> {
        let indices = self.batcher.next_batch();
        let refs: Vec<&TaskExample> = indices.iter().map(|&i| &self.train[i]).collect();
        Ok(PaddedBatch::new(&refs, self.pad, &self.device)?)
    }

    fn weight(&self, batch: &PaddedBatch) -> usize {
        batch.examples
    }

    fn loss_sum(&self, batch: &PaddedBatch, ctx: &mut Ctx<'_>) -> gradus_train::Result<Tensor> {
        let outputs = self.model.forward(0, batch, ctx)?;
        Ok(task_loss(
            self.model.spec().kind,
            &outputs,
            batch,
            self.class_weights.as_ref(),
            self.model.bert.kernels(),
        )?)
    }

    fn evaluate(&mut self) -> gradus_train::Result<BTreeMap<String, f64>> {
        Ok(self.score(&self.dev)?.scalars)
    }

    fn data_state(&self) -> gradus_train::Result<serde_json::Value> {
        gradus_train::cursor_to_json(&self.batcher.cursor)
    }

    fn restore_data(&mut self, state: serde_json::Value) -> gradus_train::Result<()> {
        self.batcher.cursor = gradus_train::cursor_from_json(state)?;
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
}
