//! Fine-tuning a pretrained BERT-style encoder with a classification or regression head,
//! on the shared gradus trainer; and labelling new text with the result.
//!
//! - Start from a gradus pretraining checkpoint or any HF BERT-family folder
//!   (`config.json` + `model.safetensors`), or from the same architecture at random
//!   ([`Init::Random`]) as a baseline.
//! - Heads on the `[CLS]` state, BERT's pooler or the token mean, with their own dropout
//!   and optional class weights; single sentences or sentence pairs.
//! - Batches padded to their longest example and bucketed by length; per-group and
//!   layer-wise learning rates, frozen embeddings or bottom layers; evaluation each epoch
//!   or every N steps, early stopping and the best checkpoint on a chosen dev metric.
//! - Metrics from `gradus-metrics`, the same code that evaluation and multi-task training
//!   report with.
//!
//! Mismatches that would waste a run (labels vs head, a regression on class labels, a
//! checkpoint whose vocabulary is not the tokenizer's) fail in [`FinetuneConfig::build`],
//! before any training.

mod config;
pub mod data;
mod error;
pub mod eval;
mod model;
mod objective;
pub mod plan;
mod predict;
pub mod run;

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
pub use objective::{FinetuneObjective, task_loss};
pub use predict::Predictor;
