//! The pretraining stage's configuration and the wiring of model, data and trainer.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use gradus_model::{BertConfig, GptConfig, Kernels, LlamaConfig};
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
    /// Or several, mixed by weight: `[data.mix.web] tokens = "…", weight = 0.7`. All were
    /// made with `tokenizer`. Training draws each next window (example) from the source
    /// furthest below its share of the tokens drawn so far; validation holds each
    /// source's validation data in the same shares. The run record and `report.json`
    /// give the tokens drawn from each.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub mix: BTreeMap<String, MixSource>,
    /// The tokenizer that made it (for the vocabulary size and special tokens); unset,
    /// the binary reads the one the tokens dataset holds ([`Self::default_tokenizer`]).
    pub tokenizer: PathBuf,
    pub seq_len: usize,
    pub batch_size: usize,
    /// Hold out this share of the end of the training stream for validation (one long
    /// text, as nanoGPT's 90/10 split); 0 uses the dataset's `validation` split (whole
    /// documents, chosen by a hash of their id). With several documents the tail starts
    /// at the document boundary nearest the share, so validation shares no document with
    /// training.
    pub validation_fraction: f64,
    /// Validation windows evaluated each time.
    pub eval_windows: usize,
    /// Shuffle the training data: each epoch in a new seeded order, the shards shuffled,
    /// then the documents (MLM) or the windows (causal LM) of each block of 8 shards
    /// shuffled together. `false` reads the dataset's order; with `follow`, the first
    /// epoch is read in order, as the shards arrive.
    pub shuffle: bool,
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
    /// `validation_fraction` the stage waits for the seal, since the tail is a share of the whole.
    pub follow: bool,
    /// With `follow`: give up after this many seconds without a new shard.
    pub follow_timeout_secs: u64,
}

impl Default for PretrainData {
    fn default() -> Self {
        Self {
            tokens: PathBuf::new(),
            mix: BTreeMap::new(),
            tokenizer: PathBuf::new(),
            seq_len: 256,
            batch_size: 16,
            validation_fraction: 0.0,
            eval_windows: 512,
            shuffle: true,
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
    /// The model of `clm`: a GPT-2 style decoder, unless `llama` is given.
    pub gpt: GptConfig,
    /// The model of `clm` when given: a Llama-style decoder (RoPE, RMS norm, SwiGLU,
    /// grouped-query attention), in HF `LlamaConfig` names.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub llama: Option<LlamaConfig>,
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
            seed: 42,
            init_from: None,
            freeze: Vec::new(),
            gpt: GptConfig::default(),
            llama: None,
            bert: BertConfig::default(),
            mask_prob: 0.15,
            pack_documents: true,
            data: PretrainData::default(),
            train: TrainConfig::default(),
            ranks: None,
        }
    }
}

/// One of the tokens datasets that mixed training data is drawn from.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MixSource {
    /// A `tokens` dataset (`--input NAME=DIR` sets it).
    pub tokens: PathBuf,
    /// Its share of the training tokens (weights are normalised).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight: Option<f64>,
    /// Or: a weight of this many times its training tokens, so that sources are read
    /// in proportion to their size times `epochs`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub epochs: Option<f64>,
}

/// How much of the mixture a source is to be, before its size is known.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Share {
    Weight(f64),
    /// Times the source's training tokens.
    Epochs(f64),
}

/// A named tokens dataset of the training data.
#[derive(Debug, Clone, PartialEq)]
pub struct DataSource {
    pub name: String,
    pub tokens: PathBuf,
    pub share: Share,
}

impl PretrainConfig {
    /// Refuses settings no run can train with before anything is read or written: the
    /// training settings ([`gradus_train::TrainConfig::check`]) and the data's sizes.
    pub fn check(&self) -> anyhow::Result<()> {
        self.train.check()?;
        let d = &self.data;
        if d.seq_len == 0 || d.batch_size == 0 || d.eval_windows == 0 {
            // No validation window would make every evaluation's loss NaN.
            anyhow::bail!("data: seq_len, batch_size and eval_windows must be positive");
        }
        let masks = self.objective != PretrainObjective::Clm;
        if masks && !(self.mask_prob > 0.0 && self.mask_prob < 1.0) {
            anyhow::bail!(
                "mask_prob {}: the share of tokens masked, within (0, 1)",
                self.mask_prob
            );
        }
        if !(0.0..1.0).contains(&d.validation_fraction) {
            anyhow::bail!(
                "data.validation_fraction {}: a share of the training text, within [0, 1)",
                d.validation_fraction
            );
        }
        Ok(())
    }
}

impl PretrainData {
    /// Where the tokenizer is when `tokenizer` is not set: the `tokenizer.json` that the
    /// tokenize stage leaves in its tokens dataset (the first source's, when mixing).
    pub fn default_tokenizer(&mut self) -> Result<(), String> {
        if !self.tokenizer.as_os_str().is_empty() {
            return Ok(());
        }
        let sources = self.sources()?;
        let first = sources.first().map(|s| &s.tokens);
        match first.filter(|t| !t.as_os_str().is_empty()) {
            Some(tokens) => {
                self.tokenizer = tokens.join("tokenizer.json");
                Ok(())
            }
            None => Err(
                "no training data: pass --input DIR (a tokens dataset) or set data.tokens".into(),
            ),
        }
    }

    /// The datasets training reads: `tokens` alone (named `tokens`), or each of `mix`.
    pub fn sources(&self) -> Result<Vec<DataSource>, String> {
        if self.mix.is_empty() {
            return Ok(vec![DataSource {
                name: "tokens".into(),
                tokens: self.tokens.clone(),
                share: Share::Weight(1.0),
            }]);
        }
        if self.tokens != Path::new("") {
            return Err(
                "data.tokens and data.mix are both set: give one dataset or a mixture".into(),
            );
        }
        self.mix
            .iter()
            .map(|(name, m)| {
                let share = match (m.weight, m.epochs) {
                    (Some(w), None) => Share::Weight(w),
                    (None, Some(e)) => Share::Epochs(e),
                    _ => {
                        return Err(format!(
                            "data.mix.{name}: give one of `weight` and `epochs`"
                        ));
                    }
                };
                if m.tokens == Path::new("") {
                    return Err(format!(
                        "data.mix.{name}: no `tokens` (set it, or pass --input {name}=DIR)"
                    ));
                }
                Ok(DataSource {
                    name: name.clone(),
                    tokens: m.tokens.clone(),
                    share,
                })
            })
            .collect()
    }

    /// Points source `name` at `dir` (`--input NAME=DIR`); the source must be in `mix`.
    pub fn set_source(&mut self, name: &str, dir: PathBuf) -> Result<(), String> {
        let known: Vec<String> = self.mix.keys().cloned().collect();
        let source = self.mix.get_mut(name).ok_or_else(|| {
            format!(
                "--input {name}=…: no data.mix.{name} in the config (it has: {})",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            )
        })?;
        source.tokens = dir;
        Ok(())
    }

    /// How long a following stream waits for a shard; `None` when not following.
    pub fn follow_timeout(&self) -> Option<std::time::Duration> {
        self.follow
            .then(|| std::time::Duration::from_secs(self.follow_timeout_secs))
    }
}
