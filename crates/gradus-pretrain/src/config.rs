//! The pretraining stage's configuration and the wiring of model, data and trainer.

use std::path::PathBuf;

use gradus_model::{BertConfig, GptConfig, Kernels};
use gradus_train::TrainConfig;
use gradus_train::dist::RankShards;
use serde::{Deserialize, Serialize};

use crate::clm::Sampling;

/// What the model learns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PretrainObjective {
    Clm,
    Mlm,
    #[serde(rename = "mlm+nsp")]
    MlmNsp,
}

impl std::str::FromStr for PretrainObjective {
    type Err = String;

    /// `clm`, `mlm` or `mlm+nsp`, as in the config.
    fn from_str(s: &str) -> Result<Self, String> {
        serde_json::from_value(serde_json::Value::String(s.to_string()))
            .map_err(|_| format!("objective `{s}`: expected clm, mlm or mlm+nsp"))
    }
}

/// The pretraining data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PretrainData {
    /// A `tokens` dataset.
    pub tokens: PathBuf,
    /// The tokenizer that made it (for the vocabulary size and special tokens).
    pub tokenizer: PathBuf,
    pub seq_len: usize,
    pub batch_size: usize,
    /// Hold out this share of the end of the training stream for validation (one long
    /// text, as nanoGPT's 90/10 split); 0 uses the dataset's `validation` split.
    pub holdout_tail: f64,
    /// Validation windows evaluated each time.
    pub eval_windows: usize,
    /// Shuffle the training data: MLM documents in a new seeded order each epoch (the
    /// shards, then the documents of each block of shards), causal-LM windows through
    /// `shuffle_buffer`. `false` reads the dataset's order; with `follow`, MLM reads the
    /// first epoch in order, as the shards arrive.
    pub shuffle: bool,
    /// Causal-LM windows held for shuffling.
    pub shuffle_buffer: usize,
    /// Causal LM: `epochs` (windows cut back to back, each token a target once an epoch)
    /// or `random` (each window at a random offset, with replacement, as nanoGPT's
    /// `get_batch`; the training tokens are held in memory).
    pub sampling: Sampling,
    /// Token appended between documents that lack it; `auto`: the tokenizer's
    /// end-of-text token if it has one.
    pub eos: String,
    /// Start on a `tokens` dataset still being written and follow it: the first epoch
    /// waits for each next shard (validation waits until it has its windows), which
    /// reads exactly what the sealed dataset holds, in the same order. With
    /// `holdout_tail` the stage waits for the seal, since the tail is a share of the whole.
    pub follow: bool,
    /// With `follow`: give up after this many seconds without a new shard.
    pub follow_timeout_secs: u64,
}

impl Default for PretrainData {
    fn default() -> Self {
        Self {
            tokens: PathBuf::new(),
            tokenizer: PathBuf::new(),
            seq_len: 256,
            batch_size: 16,
            holdout_tail: 0.0,
            eval_windows: 512,
            shuffle: true,
            shuffle_buffer: 8192,
            sampling: Sampling::Epochs,
            eos: "auto".into(),
            follow: false,
            follow_timeout_secs: 3600,
        }
    }
}

/// `gradus-pretrain`'s TOML.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PretrainConfig {
    pub objective: PretrainObjective,
    /// `cpu` or `cuda:N`.
    pub device: String,
    /// `f32` (bf16 is not supported yet).
    pub dtype: String,
    /// `fused` (gradus-kernels' fused GELU, layer norm, attention and loss on the CPU;
    /// candle's ops on other devices) or `composed` (candle's ops everywhere).
    pub kernels: Kernels,
    /// Seeds initialisation and data order (dropout: `train.seed`).
    pub seed: u64,
    /// Continue from this model folder's weights (a gradus checkpoint, an HF GPT-2 or
    /// BERT-family folder) instead of random ones; its architecture replaces `gpt` /
    /// `bert` (dropout aside), heads it lacks are initialised, and the optimiser and
    /// schedule start fresh.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub init_from: Option<PathBuf>,
    /// Parameters whose names start with one of these stay as they are (saved, but given
    /// no gradient): `["bert."]` trains only a new MLM head on a loaded encoder, so that
    /// the encoder later learns through a head that predicts something.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub freeze: Vec<String>,
    /// The model of `clm`.
    pub gpt: GptConfig,
    /// The model of `mlm` and `mlm+nsp`.
    pub bert: BertConfig,
    /// Share of tokens chosen for MLM prediction.
    pub mask_prob: f64,
    /// MLM: join short documents until a sequence is full (as BERT's pretraining data).
    pub pack_documents: bool,
    pub data: PretrainData,
    pub train: TrainConfig,
    /// In data-parallel training (`gradus-launch`), this process's rank: it trains on
    /// its own shards. Set at run time, never in the TOML.
    #[serde(skip)]
    pub ranks: Option<RankShards>,
}

impl Default for PretrainConfig {
    fn default() -> Self {
        Self {
            objective: PretrainObjective::Clm,
            device: "cpu".into(),
            dtype: "f32".into(),
            kernels: Kernels::default(),
            seed: 0,
            init_from: None,
            freeze: Vec::new(),
            gpt: GptConfig::default(),
            bert: BertConfig::default(),
            mask_prob: 0.15,
            pack_documents: true,
            data: PretrainData::default(),
            train: TrainConfig::default(),
            ranks: None,
        }
    }
}

impl PretrainData {
    /// How long a following stream waits for a shard; `None` when not following.
    pub fn follow_timeout(&self) -> Option<std::time::Duration> {
        self.follow
            .then(|| std::time::Duration::from_secs(self.follow_timeout_secs))
    }
}
