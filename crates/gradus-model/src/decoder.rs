//! The causal language models gradus trains and samples, as one type: a GPT-2 style or a
//! Llama-style decoder, told apart by `model_type` as in HF's `config.json`.

use std::path::Path;

use candle_core::{Device, Tensor};

use crate::cache::{DecoderCache, StepInput, last_rows};
use crate::config::{GptConfig, LlamaConfig};
use crate::error::{ModelError, Result};
use crate::gpt::Gpt;
use crate::kernels::Kernels;
use crate::layers::Ctx;
use crate::llama::Llama;
use crate::params::Params;

/// The `model_type`s a [`Decoder`] can be.
pub const DECODER_TYPES: &[&str] = &["gpt2", "llama"];

/// A decoder's configuration.
#[derive(Debug, Clone, PartialEq)]
pub enum DecoderConfig {
    Gpt(GptConfig),
    Llama(LlamaConfig),
}

impl DecoderConfig {
    /// Reads a `config.json`, by its `model_type`.
    pub fn from_json(json: serde_json::Value) -> Result<Self> {
        let found = json
            .get("model_type")
            .and_then(serde_json::Value::as_str)
            .unwrap_or("")
            .to_string();
        let bad = |e: serde_json::Error| ModelError::Config(e.to_string());
        match found.as_str() {
            "gpt2" => Ok(Self::Gpt(serde_json::from_value(json).map_err(bad)?)),
            "llama" => Ok(Self::Llama(serde_json::from_value(json).map_err(bad)?)),
            other => Err(ModelError::Config(format!(
                "model_type `{other}` is not a decoder gradus runs ({})",
                DECODER_TYPES.join(", ")
            ))),
        }
    }

    /// The `config.json` of a model folder.
    pub fn to_json(&self) -> serde_json::Value {
        let value = match self {
            Self::Gpt(c) => serde_json::to_value(c),
            Self::Llama(c) => serde_json::to_value(c.for_folder()),
        };
        value.unwrap_or_default()
    }

    pub fn model_type(&self) -> &str {
        match self {
            Self::Gpt(c) => &c.model_type,
            Self::Llama(c) => &c.model_type,
        }
    }

    pub fn vocab_size(&self) -> usize {
        match self {
            Self::Gpt(c) => c.vocab_size,
            Self::Llama(c) => c.vocab_size,
        }
    }

    /// The longest sequence the model reads.
    pub fn context(&self) -> usize {
        match self {
            Self::Gpt(c) => c.n_positions,
            Self::Llama(c) => c.max_position_embeddings,
        }
    }

    /// (layers, width): what the attention term of the FLOP count needs.
    pub fn layers_and_width(&self) -> (usize, usize) {
        match self {
            Self::Gpt(c) => (c.n_layer, c.n_embd),
            Self::Llama(c) => (c.num_hidden_layers, c.num_attention_heads * c.head_width()),
        }
    }
}

/// A GPT-2 style or Llama-style decoder with its LM head.
#[derive(Debug, Clone)]
pub enum Decoder {
    Gpt(Gpt),
    Llama(Llama),
}

impl Decoder {
    /// Creates (or loads from `params`' checkpoint) the model `config` describes.
    pub fn new(config: &DecoderConfig, params: &mut Params) -> Result<Self> {
        Ok(match config {
            DecoderConfig::Gpt(c) => Self::Gpt(Gpt::new(c, params)?),
            DecoderConfig::Llama(c) => Self::Llama(Llama::new(c, params)?),
        })
    }

    /// The decoder configuration of a model folder.
    pub fn read_config(dir: &Path) -> Result<DecoderConfig> {
        let path = dir.join("config.json");
        let text = std::fs::read_to_string(&path).map_err(|e| ModelError::file(&path, e))?;
        let json: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| ModelError::file(&path, e))?;
        DecoderConfig::from_json(json).map_err(|e| ModelError::file(&path, e))
    }

    /// Loads a model folder (`config.json` + `model.safetensors`, gradus's or HF's).
    pub fn load(dir: &Path, device: Device) -> Result<(Self, Params)> {
        let config = Self::read_config(dir)?;
        let mut params = Params::from_checkpoint(dir, device, 0, &[])?;
        let model = Self::new(&config, &mut params)?;
        Ok((model, params))
    }

    pub fn config(&self) -> DecoderConfig {
        match self {
            Self::Gpt(m) => DecoderConfig::Gpt(m.config().clone()),
            Self::Llama(m) => DecoderConfig::Llama(m.config().clone()),
        }
    }

    pub fn device(&self) -> &Device {
        match self {
            Self::Gpt(m) => m.device(),
            Self::Llama(m) => m.device(),
        }
    }

    pub fn kernels(&self) -> Kernels {
        match self {
            Self::Gpt(m) => m.kernels(),
            Self::Llama(m) => m.kernels(),
        }
    }

    pub fn vocab_size(&self) -> usize {
        self.config().vocab_size()
    }

    /// The longest sequence the model reads.
    pub fn context(&self) -> usize {
        self.config().context()
    }

    /// The final hidden states `[batch, seq, width]`.
    pub fn hidden(&self, ids: &Tensor, ctx: &mut Ctx<'_>) -> Result<Tensor> {
        let (b, t) = ids.dims2()?;
        let rows = match self {
            Self::Gpt(m) => m.hidden_rows(ids, ctx)?,
            Self::Llama(m) => m.hidden_rows(ids, ctx)?,
        };
        let width = rows.dim(1)?;
        Ok(rows.reshape((b, t, width))?)
    }

    /// The width of the hidden states.
    pub fn width(&self) -> usize {
        match self {
            Self::Gpt(m) => m.config().n_embd,
            Self::Llama(m) => m.config().hidden_size,
        }
    }

    /// The standard deviation new weights on top of it (task heads) start from.
    pub fn initializer_range(&self) -> f64 {
        match self {
            Self::Gpt(m) => m.config().initializer_range,
            Self::Llama(m) => m.config().initializer_range,
        }
    }

    /// Its blocks.
    pub fn layers(&self) -> usize {
        self.config().layers_and_width().0
    }

    /// Next-token logits as `[batch · seq, vocab]`, the layout the loss takes.
    pub fn logits_rows(&self, ids: &Tensor, ctx: &mut Ctx<'_>) -> Result<Tensor> {
        match self {
            Self::Gpt(m) => m.logits_rows(ids, ctx),
            Self::Llama(m) => m.logits_rows(ids, ctx),
        }
    }

    /// An empty generation cache for `batch` sequences.
    pub fn cache(&self, batch: usize) -> DecoderCache {
        let (layers, _) = self.config().layers_and_width();
        DecoderCache::new(layers, batch, self.context())
    }

    /// Next-token logits `[batch, vocab]` after a generation step: `input` (from
    /// [`DecoderCache::step`]) read against what `cache` holds, which it then extends.
    pub fn step_logits(&self, input: &StepInput, cache: &mut DecoderCache) -> Result<Tensor> {
        let batch = input.ids.dim(0)?;
        match self {
            Self::Gpt(m) => m.head(&last_rows(&m.hidden_cached(input, cache)?, batch)?),
            Self::Llama(m) => m.head(&last_rows(&m.hidden_cached(input, cache)?, batch)?),
        }
    }

    /// Next-token logits `[batch, seq, vocab]` for `ids` `[batch, seq]` (u32).
    pub fn logits(&self, ids: &Tensor, ctx: &mut Ctx<'_>) -> Result<Tensor> {
        let (b, t) = ids.dims2()?;
        Ok(self
            .logits_rows(ids, ctx)?
            .reshape((b, t, self.vocab_size()))?)
    }
}

impl From<Gpt> for Decoder {
    fn from(gpt: Gpt) -> Self {
        Self::Gpt(gpt)
    }
}
