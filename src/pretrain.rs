//! `gradus-pretrain`: the stage configuration and the wiring of model, data and trainer.

use std::path::PathBuf;

use anyhow::Context;
use gradus_model::{Bert, BertConfig, BertHeads, Gpt, GptConfig, Kernels, Params};
use gradus_train::TrainConfig;
use gradus_train::clm::{ClmObjective, ClmStream, Sampling, StreamSpec};
use gradus_train::dist::RankShards;
use gradus_train::mlm::{MlmObjective, MlmSpec, MlmStream, SpecialTokens, fixed_examples};
use serde::{Deserialize, Serialize};

/// What the model learns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum PretrainObjective {
    Clm,
    Mlm,
    #[serde(rename = "mlm+nsp")]
    #[value(name = "mlm+nsp")]
    MlmNsp,
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
    /// Windows held for shuffling.
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

/// Waits until the dataset in `dir` is sealed (a tail hold-out needs all of it): follows
/// its shards to the end.
fn wait_sealed(dir: &std::path::Path, timeout: std::time::Duration) -> anyhow::Result<()> {
    for shard in gradus_shard::follow(dir).timeout(timeout) {
        shard?;
    }
    Ok(())
}

/// The end-of-text token id `eos` names, if any.
pub fn eos_id(tk: &gradus_tokenize::Tokenizer, eos: &str) -> anyhow::Result<Option<u32>> {
    match eos {
        "none" => Ok(None),
        "auto" => Ok(["<|endoftext|>", "</s>", "<eos>", "[EOS]"]
            .iter()
            .find_map(|t| tk.token_to_id(t))),
        token => tk
            .token_to_id(token)
            .map(Some)
            .with_context(|| format!("eos token `{token}` is not in the vocabulary")),
    }
}

/// Where a causal model's training and validation windows come from.
#[derive(Debug, Clone)]
pub struct ClmSplits {
    pub train: StreamSpec,
    pub validation: StreamSpec,
    /// Token put between documents.
    pub eos: Option<u32>,
}

/// The training and validation streams `config.data` describes: the dataset's `train`
/// and `validation` splits, or the head and tail of `train` with `holdout_tail`.
pub fn clm_splits(
    config: &PretrainConfig,
    tk: &gradus_tokenize::Tokenizer,
) -> anyhow::Result<ClmSplits> {
    let d = &config.data;
    let eos = eos_id(tk, &d.eos)?;
    let follow = d.follow_timeout();
    let (train, validation) = if d.holdout_tail > 0.0 {
        if config.ranks.is_some() {
            anyhow::bail!(
                "data.holdout_tail splits one token stream by position, which ranks reading \
                 their own shards cannot share; hold out a validation split instead"
            );
        }
        if let Some(timeout) = follow {
            wait_sealed(&d.tokens, timeout)?;
        }
        let total = ClmStream::count_tokens(&d.tokens, Some("train"), eos)?;
        let cut = (total as f64 * (1.0 - d.holdout_tail)).round() as u64;
        let spec = |start, end| StreamSpec {
            split: Some("train".into()),
            start,
            end,
            follow: None,
            ranks: None,
        };
        (spec(0, Some(cut)), spec(cut, None))
    } else {
        let spec = |s: &str, ranks| StreamSpec {
            split: Some(s.into()),
            start: 0,
            end: None,
            follow,
            ranks,
        };
        // Every rank evaluates on all of the validation split.
        (spec("train", config.ranks), spec("validation", None))
    };
    Ok(ClmSplits {
        train,
        validation,
        eos,
    })
}

/// Builds the causal-LM objective: model sized to the tokenizer, streams, validation.
pub fn clm_objective(config: &PretrainConfig) -> anyhow::Result<ClmObjective> {
    if config.dtype != "f32" {
        anyhow::bail!("dtype `{}`: only f32 is supported", config.dtype);
    }
    let device = gradus_model::device(&config.device)?;
    let d = &config.data;
    let tk = gradus_tokenize::load(&d.tokenizer)
        .with_context(|| format!("tokenizer {}", d.tokenizer.display()))?;
    let mut gpt = config.gpt.clone();
    gpt.vocab_size = tk.get_vocab_size(true);
    gpt.n_positions = gpt.n_positions.max(d.seq_len);
    let ClmSplits {
        train: train_spec,
        validation: val_spec,
        eos,
    } = clm_splits(config, &tk)?;
    let validation = ClmStream::first_windows(&d.tokens, val_spec, eos, d.seq_len, d.eval_windows)?;
    let train = ClmStream::open(
        &d.tokens,
        train_spec,
        eos,
        d.seq_len,
        d.shuffle_buffer,
        config.seed,
        true,
    )?
    .with_sampling(d.sampling)?;
    let mut params = Params::new(device.clone(), config.seed).with_kernels(config.kernels);
    let model = Gpt::new(&gpt, &mut params)?;
    Ok(ClmObjective {
        model,
        params,
        train,
        validation,
        batch_size: d.batch_size,
        device,
    })
}

/// Builds the MLM (+NSP) objective: a BERT sized to the tokenizer, with its heads.
pub fn mlm_objective(config: &PretrainConfig) -> anyhow::Result<MlmObjective> {
    let device = gradus_model::device(&config.device)?;
    let d = &config.data;
    let tk = gradus_tokenize::load(&d.tokenizer)
        .with_context(|| format!("tokenizer {}", d.tokenizer.display()))?;
    let id = |t: &str| {
        tk.token_to_id(t)
            .with_context(|| format!("the tokenizer has no `{t}` token, which MLM needs"))
    };
    let special = SpecialTokens {
        cls: id("[CLS]")?,
        sep: id("[SEP]")?,
        mask: id("[MASK]")?,
        pad: id("[PAD]")?,
    };
    let mut bert = config.bert.clone();
    bert.vocab_size = tk.get_vocab_size(true);
    bert.max_position_embeddings = bert.max_position_embeddings.max(d.seq_len);
    bert.pad_token_id = special.pad;
    let spec = |split: &str| MlmSpec {
        split: Some(split.into()),
        seq_len: d.seq_len,
        nsp: config.objective == PretrainObjective::MlmNsp,
        mask_prob: config.mask_prob,
        vocab_size: bert.vocab_size,
        special,
        pack: config.pack_documents,
        follow: d.follow_timeout(),
        ranks: None,
    };
    let validation = fixed_examples(&d.tokens, spec("validation"), d.eval_windows)?;
    let train_spec = MlmSpec {
        ranks: config.ranks,
        ..spec("train")
    };
    let train = MlmStream::open(&d.tokens, train_spec, config.seed)?;
    let mut params = Params::new(device.clone(), config.seed).with_kernels(config.kernels);
    let model = Bert::new(&bert, &mut params)?;
    let heads = BertHeads::new(&model, &mut params)?;
    Ok(MlmObjective {
        model,
        heads,
        params,
        train,
        validation,
        batch_size: d.batch_size,
        device,
    })
}

/// Joins the other ranks of a data-parallel run (NCCL; the `nccl` feature).
#[cfg(feature = "nccl")]
pub fn connect_ranks(
    config: &PretrainConfig,
    ranks: RankShards,
) -> anyhow::Result<std::sync::Arc<dyn gradus_train::dist::Collective>> {
    let device = gradus_model::device(&config.device)?;
    let id_file = gradus_train::dist::nccl_id_file()?;
    let nccl = gradus_train::nccl::NcclCollective::connect(&device, ranks, &id_file)?;
    Ok(std::sync::Arc::new(nccl))
}

/// Joins the other ranks of a data-parallel run: this build has no NCCL.
#[cfg(not(feature = "nccl"))]
pub fn connect_ranks(
    _config: &PretrainConfig,
    ranks: RankShards,
) -> anyhow::Result<std::sync::Arc<dyn gradus_train::dist::Collective>> {
    ranks_supported(ranks)?;
    anyhow::bail!("no NCCL in this build")
}

/// Whether this build can train as one rank of several; checked before anything else,
/// so a missing feature is the first thing said.
pub fn ranks_supported(ranks: RankShards) -> anyhow::Result<()> {
    if cfg!(feature = "nccl") {
        return Ok(());
    }
    anyhow::bail!(
        "{} ranks asked for (GRADUS_WORLD_SIZE), but this build has no NCCL: rebuild with \
         `--features nccl` on a machine with the CUDA toolkit",
        ranks.world
    )
}
