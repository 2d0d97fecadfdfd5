//! What a task model's heads sit on: a BERT-style encoder or a GPT-2 / Llama-style
//! decoder, as a model folder's `config.json` says, and what only one of them can do
//! (BERT's pooler and token types, a decoder's last-token pooling).

use std::path::Path;

use candle_core::Tensor;
use gradus_model::{Bert, BertConfig, Ctx, DECODER_TYPES, Decoder, DecoderConfig, Pooling};

use crate::data::PaddedBatch;
use crate::error::{FinetuneError, Result};
use crate::model::{pool, read_bert_config};

/// The architecture under a task model's heads, as its folder's `config.json` says.
#[derive(Debug, Clone, PartialEq)]
pub enum BodyConfig {
    Encoder(BertConfig),
    Decoder(DecoderConfig),
}

impl BodyConfig {
    /// Reads a checkpoint folder's `config.json`: a BERT-family encoder, or a decoder
    /// gradus runs (`gpt2`, `llama`).
    pub fn read(dir: &Path) -> Result<Self> {
        let path = dir.join("config.json");
        let text = std::fs::read_to_string(&path).map_err(|e| FinetuneError::file(&path, e))?;
        let json: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| FinetuneError::file(&path, e))?;
        let model_type = json.get("model_type").and_then(serde_json::Value::as_str);
        if model_type.is_some_and(|t| DECODER_TYPES.contains(&t)) {
            let config =
                DecoderConfig::from_json(json).map_err(|e| FinetuneError::file(&path, e))?;
            return Ok(Self::Decoder(config));
        }
        read_bert_config(dir).map(Self::Encoder)
    }

    pub fn vocab_size(&self) -> usize {
        match self {
            Self::Encoder(c) => c.vocab_size,
            Self::Decoder(c) => c.vocab_size(),
        }
    }

    /// The longest input.
    pub fn positions(&self) -> usize {
        match self {
            Self::Encoder(c) => c.max_position_embeddings,
            Self::Decoder(c) => c.context(),
        }
    }

    pub fn layers(&self) -> usize {
        match self {
            Self::Encoder(c) => c.num_hidden_layers,
            Self::Decoder(c) => c.layers_and_width().0,
        }
    }

    /// The padding id when the tokenizer names none.
    pub fn pad_token_id(&self) -> u32 {
        match self {
            Self::Encoder(c) => c.pad_token_id,
            Self::Decoder(_) => 0,
        }
    }

    /// The pooling a head gets when its config names none: BERT's pooler (as HF's
    /// sequence classifier), a decoder's last real token (as HF's
    /// `GPT2ForSequenceClassification`).
    pub fn default_pooling(&self) -> Pooling {
        match self {
            Self::Encoder(_) => Pooling::Pooler,
            Self::Decoder(_) => Pooling::Last,
        }
    }

    /// Refuses a pooling the body cannot do.
    pub fn check_pooling(&self, pooling: Pooling) -> std::result::Result<(), String> {
        let name = serde_json::to_value(pooling).unwrap_or_default();
        match self {
            Self::Decoder(c) if !pooling.suits_decoder() => Err(format!(
                "pooling {name} reads BERT's first token; a `{}` decoder pools \"last\" (the \
                 default) or \"mean\"",
                c.model_type()
            )),
            Self::Encoder(_) if pooling == Pooling::Last => Err(format!(
                "pooling {name} is for decoders; a BERT encoder pools \"pooler\", \"cls\" or \"mean\""
            )),
            _ => Ok(()),
        }
    }

    /// The `config.json` fields of the body.
    pub(crate) fn to_json(&self) -> serde_json::Value {
        match self {
            Self::Encoder(c) => serde_json::to_value(c).unwrap_or_default(),
            Self::Decoder(c) => c.to_json(),
        }
    }
}

/// A task model's body, built.
#[derive(Debug)]
pub enum Body {
    Encoder(Bert),
    Decoder(Decoder),
}

impl Body {
    pub fn kernels(&self) -> gradus_model::Kernels {
        match self {
            Self::Encoder(b) => b.kernels(),
            Self::Decoder(d) => d.kernels(),
        }
    }

    pub(crate) fn config(&self) -> BodyConfig {
        match self {
            Self::Encoder(b) => BodyConfig::Encoder(b.config().clone()),
            Self::Decoder(d) => BodyConfig::Decoder(d.config()),
        }
    }

    /// One vector per example `[batch, width]`, pooled as `pooling` says.
    pub(crate) fn pooled(
        &self,
        pooling: Pooling,
        batch: &PaddedBatch,
        ctx: &mut Ctx<'_>,
    ) -> Result<Tensor> {
        match self {
            Self::Encoder(bert) => {
                let hidden = bert.forward(&batch.ids, &batch.type_ids, &batch.mask, ctx)?;
                pool(Some(bert), pooling, &hidden, &batch.mask)
            }
            // Inputs are padded on the right, so causal attention keeps padding out of
            // every real token's state without a key mask.
            Self::Decoder(decoder) => {
                let hidden = decoder.hidden(&batch.ids, ctx)?;
                pool(None, pooling, &hidden, &batch.mask)
            }
        }
    }
}
