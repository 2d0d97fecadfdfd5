//! Model configurations, serialised with the Hugging Face `config.json` field names so
//! that our checkpoints and HF's read each other's configs.

use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};

/// A GPT-2 style decoder (HF `GPT2Config` names).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GptConfig {
    pub model_type: String,
    pub vocab_size: usize,
    /// Context length (nanoGPT's `block_size`).
    pub n_positions: usize,
    pub n_embd: usize,
    pub n_layer: usize,
    pub n_head: usize,
    pub embd_pdrop: f32,
    pub attn_pdrop: f32,
    pub resid_pdrop: f32,
    pub layer_norm_epsilon: f64,
    pub initializer_range: f64,
    /// `gelu_new` (tanh approximation, GPT-2) or `gelu` (exact, nanoGPT).
    pub activation_function: String,
    /// Biases in linear layers and layer norms (GPT-2: yes; nanoGPT's recipes: no).
    pub bias: bool,
}

impl Default for GptConfig {
    fn default() -> Self {
        Self {
            model_type: "gpt2".into(),
            vocab_size: 50257,
            n_positions: 1024,
            n_embd: 768,
            n_layer: 12,
            n_head: 12,
            embd_pdrop: 0.1,
            attn_pdrop: 0.1,
            resid_pdrop: 0.1,
            layer_norm_epsilon: 1e-5,
            initializer_range: 0.02,
            activation_function: "gelu_new".into(),
            bias: true,
        }
    }
}

impl GptConfig {
    /// One dropout rate for all three places, as nanoGPT's `dropout`.
    pub fn with_dropout(mut self, p: f32) -> Self {
        (self.embd_pdrop, self.attn_pdrop, self.resid_pdrop) = (p, p, p);
        self
    }

    pub fn validate(&self) -> Result<()> {
        check_heads(self.n_embd, self.n_head)?;
        check_activation(&self.activation_function)?;
        check_nonzero(&[
            ("vocab_size", self.vocab_size),
            ("n_positions", self.n_positions),
            ("n_layer", self.n_layer),
        ])
    }

    /// Parameters in the model (tied output embedding counted once).
    pub fn num_params(&self) -> usize {
        let (d, b) = (self.n_embd, usize::from(self.bias));
        let ln = d + b * d;
        let block = 2 * ln
            + (d * 3 * d + b * 3 * d)
            + (d * d + b * d)
            + (d * 4 * d + b * 4 * d)
            + (4 * d * d + b * d);
        self.vocab_size * d + self.n_positions * d + self.n_layer * block + ln
    }
}

/// How BERT encodes positions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PositionEmbedding {
    /// Learned, as BERT.
    #[default]
    Absolute,
    /// Fixed sinusoids (Vaswani et al.), no parameters.
    Sinusoidal,
}

/// How the encoder's hidden states become one vector per example.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pooling {
    /// The first (`[CLS]`) hidden state.
    Cls,
    /// BERT's pooler: tanh(dense(`[CLS]`)), as HF sequence classification.
    #[default]
    Pooler,
    /// The mean over real tokens (sentence-transformers).
    Mean,
}

/// A BERT style encoder (HF `BertConfig` names).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BertConfig {
    pub model_type: String,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub hidden_act: String,
    pub hidden_dropout_prob: f32,
    pub attention_probs_dropout_prob: f32,
    pub max_position_embeddings: usize,
    pub type_vocab_size: usize,
    pub layer_norm_eps: f64,
    pub initializer_range: f64,
    pub pad_token_id: u32,
    pub position_embedding_type: PositionEmbedding,
}

impl Default for BertConfig {
    fn default() -> Self {
        Self {
            model_type: "bert".into(),
            vocab_size: 30522,
            hidden_size: 768,
            num_hidden_layers: 12,
            num_attention_heads: 12,
            intermediate_size: 3072,
            hidden_act: "gelu".into(),
            hidden_dropout_prob: 0.1,
            attention_probs_dropout_prob: 0.1,
            max_position_embeddings: 512,
            type_vocab_size: 2,
            layer_norm_eps: 1e-12,
            initializer_range: 0.02,
            pad_token_id: 0,
            position_embedding_type: PositionEmbedding::Absolute,
        }
    }
}

impl BertConfig {
    pub fn validate(&self) -> Result<()> {
        check_heads(self.hidden_size, self.num_attention_heads)?;
        check_activation(&self.hidden_act)?;
        check_nonzero(&[
            ("vocab_size", self.vocab_size),
            ("max_position_embeddings", self.max_position_embeddings),
            ("type_vocab_size", self.type_vocab_size),
            ("intermediate_size", self.intermediate_size),
        ])
    }
}

fn check_activation(name: &str) -> Result<()> {
    if matches!(name, "gelu" | "gelu_new" | "relu") {
        return Ok(());
    }
    Err(ModelError::Config(format!(
        "activation `{name}` is not supported (gelu, gelu_new, relu)"
    )))
}

/// Applies a checked activation by its HF name.
pub(crate) fn activate(
    name: &str,
    x: &candle_core::Tensor,
    kernels: crate::Kernels,
) -> candle_core::Result<candle_core::Tensor> {
    use gradus_kernels::GeluForm;
    let fused = kernels.fuse(x);
    match name {
        "gelu_new" if fused => gradus_kernels::gelu(x, GeluForm::Tanh),
        "gelu_new" => x.gelu(),
        "relu" => x.relu(),
        _ if fused => gradus_kernels::gelu(x, GeluForm::Erf),
        _ => x.gelu_erf(),
    }
}

fn check_heads(width: usize, heads: usize) -> Result<()> {
    if heads == 0 || !width.is_multiple_of(heads) {
        return Err(ModelError::Config(format!(
            "width {width} is not a multiple of {heads} heads"
        )));
    }
    Ok(())
}

fn check_nonzero(fields: &[(&str, usize)]) -> Result<()> {
    match fields.iter().find(|(_, v)| *v == 0) {
        Some((name, _)) => Err(ModelError::Config(format!("{name} must be positive"))),
        None => Ok(()),
    }
}
