//! Where a pretraining run's weights start: seeded random initialisation, or the model
//! folder `init_from` names (continued pretraining, as nanoGPT's `init_from` and
//! torchtitan's `initial_load_in_hf`). The folder can be a gradus pretraining or
//! fine-tuning checkpoint, an HF GPT-2 or Llama folder, or an HF BERT-family folder; its
//! architecture must suit the objective and its vocabulary the tokenizer. Only the
//! weights are taken: the optimiser and the schedule start fresh.

use std::path::Path;

use anyhow::Context;
use candle_core::Device;
use gradus_model::{BertConfig, DECODER_TYPES, Decoder, DecoderConfig, Params};

use crate::config::{PretrainConfig, PretrainObjective};

/// Parameters a BERT folder may lack when MLM continues from it: the pretraining heads
/// (an encoder such as all-MiniLM-L6-v2 ships none; the MLM decoder is tied to the word
/// embeddings, so only its transform and bias are new) and the pooler.
const BERT_MAY_LACK: &[&str] = &["cls.", "bert.pooler."];

/// The `config.json` of a model folder, as JSON.
fn folder_config(dir: &Path) -> anyhow::Result<serde_json::Value> {
    let path = dir.join("config.json");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("init_from {}: no model folder", dir.display()))?;
    serde_json::from_str(&text).with_context(|| format!("init_from {}", path.display()))
}

/// The architecture a folder holds: its `model_type`.
fn model_type(dir: &Path, config: &serde_json::Value) -> anyhow::Result<String> {
    config
        .get("model_type")
        .and_then(serde_json::Value::as_str)
        .map(str::to_string)
        .with_context(|| format!("init_from {}: config.json has no model_type", dir.display()))
}

/// Refuses an `init_from` folder whose architecture the objective cannot train; the
/// first check of a run, before the tokenizer is asked for what the objective needs.
pub fn check_folder(config: &PretrainConfig) -> anyhow::Result<()> {
    let Some(dir) = &config.init_from else {
        return Ok(());
    };
    check_architecture(dir, &model_type(dir, &folder_config(dir)?)?, config)
}

/// Refuses a folder whose architecture the objective cannot train.
fn check_architecture(dir: &Path, found: &str, config: &PretrainConfig) -> anyhow::Result<()> {
    let (wants, objective): (&[&str], _) = match config.objective {
        PretrainObjective::Clm => (DECODER_TYPES, "clm"),
        PretrainObjective::Mlm => (&["bert"], "mlm"),
        PretrainObjective::MlmNsp => (&["bert"], "mlm+nsp"),
    };
    if !wants.contains(&found) {
        anyhow::bail!(
            "init_from {}: a `{found}` model cannot be trained with objective `{objective}`, \
             which needs a `{}` model",
            dir.display(),
            wants.join("` or `")
        );
    }
    Ok(())
}

/// Refuses a folder whose vocabulary is not the tokenizer's.
fn check_vocabulary(dir: &Path, model: usize, tokenizer: usize) -> anyhow::Result<()> {
    if model != tokenizer {
        anyhow::bail!(
            "init_from {}: the model has a vocabulary of {model} tokens but the tokenizer has \
             {tokenizer}; continue with the tokenizer the model was trained with",
            dir.display()
        );
    }
    Ok(())
}

/// The `config.json` of `dir`, checked against the run: an architecture the objective
/// trains, the tokenizer's vocabulary, and room for `data.seq_len` positions (the
/// vocabulary and positions `size` finds in it).
fn checked_config(
    dir: &Path,
    config: &PretrainConfig,
    vocab: usize,
    size: impl Fn(&serde_json::Value) -> anyhow::Result<(usize, usize)>,
) -> anyhow::Result<serde_json::Value> {
    let json = folder_config(dir)?;
    check_architecture(dir, &model_type(dir, &json)?, config)?;
    let (model_vocab, positions) =
        size(&json).with_context(|| format!("init_from {}", dir.display()))?;
    check_vocabulary(dir, model_vocab, vocab)?;
    if config.data.seq_len > positions {
        anyhow::bail!(
            "init_from {}: data.seq_len {} is longer than the model's {positions} positions",
            dir.display(),
            config.data.seq_len
        );
    }
    Ok(json)
}

/// The run's weights: `init_from`'s (names under a prefix of `may_lack` may be missing
/// there and are initialised), or seeded random ones.
fn weights(config: &PretrainConfig, device: &Device, may_lack: &[&str]) -> anyhow::Result<Params> {
    let mut params = match &config.init_from {
        Some(dir) => Params::from_checkpoint(dir, device.clone(), config.seed, may_lack)?,
        None => Params::new(device.clone(), config.seed),
    };
    params.freeze(&config.freeze);
    Ok(params.with_kernels(config.kernels))
}

/// The decoder of the run and its weights: `init_from`'s architecture with the run's
/// dropout (the one setting a continued run may change, as in nanoGPT), or the `llama`
/// table if given, else the `gpt` table, sized to the tokenizer and `seq_len`.
pub fn decoder(
    config: &PretrainConfig,
    vocab: usize,
    device: &Device,
) -> anyhow::Result<(DecoderConfig, Params)> {
    if config.llama.is_some() && config.gpt != gradus_model::GptConfig::default() {
        anyhow::bail!("both a [gpt] and a [llama] model are configured: give one");
    }
    let decoder = match &config.init_from {
        Some(dir) => {
            let json = checked_config(dir, config, vocab, |json| {
                let c = DecoderConfig::from_json(json.clone())?;
                Ok((c.vocab_size(), c.context()))
            })?;
            match DecoderConfig::from_json(json)? {
                DecoderConfig::Gpt(mut gpt) => {
                    (gpt.embd_pdrop, gpt.attn_pdrop, gpt.resid_pdrop) = (
                        config.gpt.embd_pdrop,
                        config.gpt.attn_pdrop,
                        config.gpt.resid_pdrop,
                    );
                    DecoderConfig::Gpt(gpt)
                }
                DecoderConfig::Llama(mut llama) => {
                    llama.attention_dropout =
                        config.llama.as_ref().map_or(0.0, |l| l.attention_dropout);
                    DecoderConfig::Llama(llama)
                }
            }
        }
        None => match &config.llama {
            Some(llama) => {
                let mut llama = llama.clone();
                llama.vocab_size = vocab;
                llama.max_position_embeddings =
                    llama.max_position_embeddings.max(config.data.seq_len);
                DecoderConfig::Llama(llama)
            }
            None => {
                let mut gpt = config.gpt.clone();
                gpt.vocab_size = vocab;
                gpt.n_positions = gpt.n_positions.max(config.data.seq_len);
                DecoderConfig::Gpt(gpt)
            }
        },
    };
    Ok((decoder, weights(config, device, &[])?))
}

/// The decoder of the run, built: [`decoder`]'s configuration on its weights.
pub fn build_decoder(
    config: &PretrainConfig,
    vocab: usize,
    device: &Device,
) -> anyhow::Result<(Decoder, Params)> {
    let (decoder, mut params) = decoder(config, vocab, device)?;
    Ok((Decoder::new(&decoder, &mut params)?, params))
}

/// The BERT of the run and its weights: `init_from`'s architecture with the run's
/// dropout, heads it lacks initialised (the caller logs [`Params::fresh_names`]), or the
/// `bert` table sized to the tokenizer and `seq_len`.
pub fn bert(
    config: &PretrainConfig,
    vocab: usize,
    device: &Device,
) -> anyhow::Result<(BertConfig, Params)> {
    let bert = match &config.init_from {
        Some(dir) => {
            let json = checked_config(dir, config, vocab, |json| {
                let b: BertConfig = serde_json::from_value(json.clone())?;
                Ok((b.vocab_size, b.max_position_embeddings))
            })?;
            let mut bert: BertConfig = serde_json::from_value(json)?;
            bert.hidden_dropout_prob = config.bert.hidden_dropout_prob;
            bert.attention_probs_dropout_prob = config.bert.attention_probs_dropout_prob;
            bert
        }
        None => {
            let mut bert = config.bert.clone();
            bert.vocab_size = vocab;
            bert.max_position_embeddings = bert.max_position_embeddings.max(config.data.seq_len);
            bert
        }
    };
    Ok((bert, weights(config, device, BERT_MAY_LACK)?))
}
