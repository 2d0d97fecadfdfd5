//! The pretraining stage of gradus: a `tokens` dataset to a language model, a GPT (causal
//! LM) or a BERT (masked LM, optionally with next-sentence prediction).
//!
//! - [`PretrainConfig`]: the stage's TOML.
//! - [`clm`] and [`mlm`]: the data streams (seeded, resumable, following an upstream
//!   still being written) and the objectives the trainer runs; [`order`]: each epoch's
//!   seeded order; [`mix`]: several tokens datasets mixed by weight.
//! - [`clm_objective`] / [`mlm_objective`]: a config to a trainable objective, every input
//!   checked before anything is written.
//! - [`run`]: the run record's facts, the outputs a finished run leaves, its summary line.

pub mod clm;
mod config;
mod init;
pub mod mix;
pub mod mlm;
pub mod order;
pub mod run;
mod setup;

pub use config::{DataSource, MixSource, PretrainConfig, PretrainData, PretrainObjective, Share};
pub use setup::{
    ClmSplits, clm_objective, clm_splits, connect_ranks, eos_id, mlm_objective, ranks_supported,
};
