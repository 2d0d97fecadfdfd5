//! Training tasks on a pretrained BERT-style encoder or GPT-2 / Llama-style decoder, on
//! the shared gradus trainer: fine-tuning one task, or several tasks at once; and
//! labelling new text with the result. Tasks are classification and regression heads,
//! instruction tuning on a decoder's own LM head ([`instruct`]), and, among several
//! tasks, a causal-LM task on a `tokens` dataset. Fine-tuning is multi-task training with one task ([`FinetuneConfig::as_tasks`]):
//! one model type, one objective, one config.
//!
//! - Start from a gradus pretraining checkpoint or any HF BERT-family folder
//!   (`config.json` + `model.safetensors`), or from the same architecture at random
//!   ([`Init::Random`]) as a baseline.
//! - Heads on the `[CLS]` state, BERT's pooler or the token mean, with their own dropout
//!   and optional class weights; single sentences or sentence pairs. One task's head is
//!   `classifier`, several tasks' are `heads.<task>` ([`HeadNames`]).
//! - Batches padded to their longest example and bucketed by length; per-group and
//!   layer-wise learning rates, frozen embeddings or bottom layers; evaluation each epoch
//!   or every N steps, early stopping and the best checkpoint on a chosen dev metric.
//! - Several tasks ([`MultitaskConfig`], `[[tasks]]`): a loss weight, batch size, length
//!   and dev metric each; strategies ([`Strategy`]) `joint` (a batch of every task per
//!   step, the weighted sum of their losses), `alternating`, and one task per step drawn
//!   `proportional`ly, `uniform`ly, by `temperature` or with given `probabilities`. The
//!   sampler's state is a draw counter kept in every checkpoint, so resume is exact.
//!   Per-task losses in `train.jsonl`, per-task dev metrics and their `composite` mean in
//!   `eval.jsonl`; each task exported as its own checkpoint, which can be fine-tuned on
//!   its own afterwards (MT-DNN's recipe).
//! - Metrics from `gradus-metrics`, the same code that evaluation reports with.
//!
//! Mismatches that would waste a run (labels vs head, a regression on class labels, a
//! checkpoint whose vocabulary is not the tokenizer's) fail in [`MultitaskConfig::build`],
//! before any training.

mod body;
mod config;
pub mod data;
mod error;
pub mod eval;
pub mod instruct;
mod lm_task;
mod model;
pub mod multitask_run;
mod objective;
pub mod plan;
mod predict;
pub mod run;
mod sampler;
mod tasks;

pub use body::{Body, BodyConfig};
pub use config::{
    BiasInit, Decay, FinetuneConfig, HeadConfig, check_vocabulary, dataset_labels, task_spec,
};
pub use error::{FinetuneError, Result};
/// How a head reads the encoder (the model crate's, which export reads too).
pub use gradus_model::Pooling;
pub use model::{
    HeadNames, HeadSpec, Init, TaskKind, TaskModel, TaskSpec, centre_regression_head,
    copy_tokenizer, pool, read_bert_config, read_task_spec, write_config,
};
pub use objective::{TaskBatch, TaskData, TaskObjective, task_loss};
pub use predict::Predictor;
pub use sampler::{Strategy, TaskSampler};
pub use tasks::{MultitaskConfig, TaskConfig};
