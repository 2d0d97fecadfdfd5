//! Multi-task training: one shared BERT-style encoder, a classification or regression
//! head per task, on the shared gradus trainer.
//!
//! - Tasks declared in TOML (`[[tasks]]`): an `examples` dataset each, a head, a loss
//!   weight, optional batch size, length and the dev metric that stands for the task.
//! - Strategies ([`Strategy`]): `joint` (a batch of every task per step, the weighted sum
//!   of their losses), `alternating` (round-robin, k steps per task), and one task per
//!   step drawn `proportional`ly to dataset size, `uniform`ly, by `temperature` (with a
//!   cap and optional annealing) or with given `probabilities`. The sampler's state is a
//!   draw counter kept in every checkpoint, so resume is exact.
//! - Per-task training losses in `train.jsonl`, per-task dev metrics and their
//!   `composite` mean in `eval.jsonl`; the best checkpoint and early stopping follow the
//!   composite or one task's metric.
//! - The result exports each task as a single-task checkpoint, which `gradus-finetune`
//!   can refine further (MT-DNN's recipe) and `gradus-predict` can label text with.
//!
//! Reuses the fine-tuning crate for data, heads, losses, learning-rate plans and metrics.

mod config;
mod error;
mod objective;
pub mod run;
mod sampler;

pub use config::{MultitaskConfig, TaskConfig};
pub use error::{MultitaskError, Result};
pub use objective::{MultiBatch, MultitaskObjective, TaskData};
pub use sampler::{Strategy, TaskSampler};
