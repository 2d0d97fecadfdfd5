//! From a pretraining config to a trainable objective: the model sized to the
//! tokenizer, the training and validation streams, and the ranks of a data-parallel run.

use std::path::Path;

use anyhow::Context;
use gradus_model::{Bert, BertHeads};
use gradus_tokenize::Role;
use gradus_train::dist::RankShards;

use crate::clm::{ClmObjective, ClmStream, StreamSpec};
use crate::config::{DataSource, PretrainConfig, PretrainObjective, Share};
use crate::mix::{Mixture, Weighted};
use crate::mlm::{MlmObjective, MlmSpec, MlmStream, SpecialTokens, fixed_examples};

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
        "auto" => Ok(gradus_tokenize::SpecialTokens::of(tk).eos),
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

/// The training and validation streams of the tokens dataset `tokens`: its `train` and
/// `validation` splits, or the head and tail of `train` with `data.validation_fraction`.
pub fn clm_splits(
    config: &PretrainConfig,
    tokens: &Path,
    tk: &gradus_tokenize::Tokenizer,
) -> anyhow::Result<ClmSplits> {
    let d = &config.data;
    let eos = eos_id(tk, &d.eos)?;
    let follow = d.follow_timeout();
    let (train, validation) = if d.validation_fraction > 0.0 {
        if config.ranks.is_some() {
            anyhow::bail!(
                "data.validation_fraction splits one token stream by position, which ranks reading \
                 their own shards cannot share; hold out a validation split instead"
            );
        }
        if let Some(timeout) = follow {
            wait_sealed(tokens, timeout)?;
        }
        let cut = ClmStream::tail_cut(tokens, Some("train"), eos, d.validation_fraction)?;
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

/// The training datasets with their weights: `epochs` become the source's training
/// tokens times the epochs.
fn weighted_sources(
    config: &PretrainConfig,
    eos: Option<u32>,
) -> anyhow::Result<Vec<(DataSource, f64)>> {
    let sources = config.data.sources().map_err(anyhow::Error::msg)?;
    sources
        .into_iter()
        .map(|source| {
            // `Mixture::new` refuses a weight that is not positive, naming the source.
            let weight = match source.share {
                Share::Weight(w) => w,
                Share::Epochs(e) => {
                    e * ClmStream::count_tokens(&source.tokens, Some("train"), eos)? as f64
                }
            };
            Ok((source, weight))
        })
        .collect()
}

/// Source `i`'s seed: the run's seed for the first (an unmixed run reads as before), a
/// different one for each other.
fn source_seed(seed: u64, i: usize) -> u64 {
    seed ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// Validation items of source `weight` out of `total`: all `n` of an unmixed run, else
/// its share of them (at least one).
fn validation_share(n: usize, weight: f64, total: f64) -> usize {
    ((n as f64 * weight / total).round() as usize).max(1).min(n)
}

/// Builds the causal-LM objective: model sized to the tokenizer, streams, validation.
pub fn clm_objective(config: &PretrainConfig) -> anyhow::Result<ClmObjective> {
    config.check()?;
    crate::init::check_folder(config)?;
    if config.dtype != "f32" {
        anyhow::bail!("dtype `{}`: only f32 is supported", config.dtype);
    }
    let device = gradus_model::device(&config.device)?;
    let d = &config.data;
    let tk = gradus_tokenize::load(&d.tokenizer)?;
    let vocab = tk.get_vocab_size(true);
    let (model, params) = crate::init::build_decoder(config, vocab, &device)?;
    let sources = weighted_sources(config, eos_id(&tk, &d.eos)?)?;
    let total: f64 = sources.iter().map(|(_, w)| w).sum();
    let (mut validation, mut streams) = (Vec::new(), Vec::new());
    for (i, (source, weight)) in sources.into_iter().enumerate() {
        let splits = clm_splits(config, &source.tokens, &tk)?;
        let n = validation_share(d.eval_windows, weight, total);
        validation.extend(ClmStream::first_windows(
            &source.tokens,
            splits.validation,
            splits.eos,
            d.seq_len,
            n,
        )?);
        let stream = ClmStream::open(
            &source.tokens,
            splits.train,
            splits.eos,
            d.seq_len,
            source_seed(config.seed, i),
            d.shuffle,
        )?
        .with_sampling(d.sampling)?;
        streams.push(Weighted {
            name: source.name,
            path: source.tokens,
            weight,
            stream,
        });
    }
    Ok(ClmObjective {
        model,
        params,
        train: Mixture::new(streams)?,
        validation,
        batch_size: d.batch_size,
        device,
    })
}

/// Builds the MLM (+NSP) objective: a BERT sized to the tokenizer, with its heads.
pub fn mlm_objective(config: &PretrainConfig) -> anyhow::Result<MlmObjective> {
    // Here as well as where the config is read: flags (`--objective`) come after.
    config.check()?;
    if config.llama.is_some() {
        anyhow::bail!(
            "[llama] configures a decoder, which objective `{}` cannot train: it needs a [bert] \
             encoder",
            serde_json::to_value(config.objective)?
                .as_str()
                .unwrap_or("mlm")
        );
    }
    crate::init::check_folder(config)?;
    let device = gradus_model::device(&config.device)?;
    let d = &config.data;
    let tk = gradus_tokenize::load(&d.tokenizer)?;
    let found = gradus_tokenize::SpecialTokens::of(&tk);
    let id = |role| found.require(role, "MLM");
    let special = SpecialTokens {
        cls: id(Role::Cls)?,
        sep: id(Role::Sep)?,
        mask: id(Role::Mask)?,
        pad: id(Role::Pad)?,
    };
    let vocab = tk.get_vocab_size(true);
    let (mut bert, mut params) = crate::init::bert(config, vocab, &device)?;
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
        shuffle: false,
    };
    let sources = weighted_sources(config, None)?;
    let total: f64 = sources.iter().map(|(_, w)| w).sum();
    let (mut validation, mut streams) = (Vec::new(), Vec::new());
    for (i, (source, weight)) in sources.into_iter().enumerate() {
        let n = validation_share(d.eval_windows, weight, total);
        validation.extend(fixed_examples(&source.tokens, spec("validation"), n)?);
        let train_spec = MlmSpec {
            ranks: config.ranks,
            shuffle: d.shuffle,
            ..spec("train")
        };
        let stream = MlmStream::open(&source.tokens, train_spec, source_seed(config.seed, i))?;
        streams.push(Weighted {
            name: source.name,
            path: source.tokens,
            weight,
            stream,
        });
    }
    let model = Bert::new(&bert, &mut params)?;
    let heads = BertHeads::new(&model, &mut params)?;
    if !params.fresh_names().is_empty() {
        tracing::info!(
            "{} has no {}: initialised (the MLM decoder is tied to the word embeddings)",
            config
                .init_from
                .as_deref()
                .unwrap_or(Path::new(""))
                .display(),
            params.fresh_names().join(", ")
        );
    }
    Ok(MlmObjective {
        model,
        heads,
        params,
        train: Mixture::new(streams)?,
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
