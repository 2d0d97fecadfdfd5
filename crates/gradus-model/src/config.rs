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
        check_dropout(&[
            ("embd_pdrop", self.embd_pdrop),
            ("attn_pdrop", self.attn_pdrop),
            ("resid_pdrop", self.resid_pdrop),
        ])?;
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

/// A Llama-style decoder (HF `LlamaConfig` names): rotary positions, RMS norms, a SwiGLU
/// MLP, grouped-query attention, no biases. The keys of HF features gradus does not
/// implement are read so that a folder using them is refused rather than misread.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LlamaConfig {
    pub model_type: String,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    /// Key/value heads, each shared by `num_attention_heads / num_key_value_heads`
    /// query heads; none: as many as query heads.
    pub num_key_value_heads: Option<usize>,
    /// Width of a head; none: `hidden_size / num_attention_heads`.
    pub head_dim: Option<usize>,
    /// Context length.
    pub max_position_embeddings: usize,
    pub rms_norm_eps: f64,
    pub rope_theta: f64,
    /// transformers ≥ 5 keeps `rope_theta` here; only the `default` rope type is
    /// supported.
    pub rope_parameters: Option<serde_json::Value>,
    /// Scaled rotary embeddings (not supported: refused when set).
    pub rope_scaling: Option<serde_json::Value>,
    /// The output layer is the token embedding (no `lm_head.weight`).
    pub tie_word_embeddings: bool,
    pub initializer_range: f64,
    /// `silu`, the only activation of a SwiGLU MLP gradus implements.
    pub hidden_act: String,
    /// Biases (not supported: refused when true).
    pub attention_bias: bool,
    pub mlp_bias: bool,
    pub attention_dropout: f32,
}

impl Default for LlamaConfig {
    fn default() -> Self {
        Self {
            model_type: "llama".into(),
            vocab_size: 32000,
            hidden_size: 4096,
            intermediate_size: 11008,
            num_hidden_layers: 32,
            num_attention_heads: 32,
            num_key_value_heads: None,
            head_dim: None,
            max_position_embeddings: 2048,
            rms_norm_eps: 1e-6,
            rope_theta: 10000.0,
            rope_parameters: None,
            rope_scaling: None,
            tie_word_embeddings: false,
            initializer_range: 0.02,
            hidden_act: "silu".into(),
            attention_bias: false,
            mlp_bias: false,
            attention_dropout: 0.0,
        }
    }
}

impl LlamaConfig {
    pub fn kv_heads(&self) -> usize {
        self.num_key_value_heads.unwrap_or(self.num_attention_heads)
    }

    pub fn head_width(&self) -> usize {
        self.head_dim
            .unwrap_or(self.hidden_size / self.num_attention_heads.max(1))
    }

    /// The rotary base: `rope_parameters.rope_theta` (transformers ≥ 5) or `rope_theta`.
    pub fn theta(&self) -> f64 {
        self.rope_parameters
            .as_ref()
            .and_then(|p| p.get("rope_theta"))
            .and_then(serde_json::Value::as_f64)
            .unwrap_or(self.rope_theta)
    }

    /// The config as written to a model folder: the resolved head counts and the rotary
    /// base under both the old key and transformers 5's `rope_parameters`, so that either
    /// version reads the same model.
    pub fn for_folder(&self) -> Self {
        let theta = self.theta();
        Self {
            num_key_value_heads: Some(self.kv_heads()),
            head_dim: Some(self.head_width()),
            rope_theta: theta,
            rope_parameters: Some(serde_json::json!({"rope_theta": theta, "rope_type": "default"})),
            ..self.clone()
        }
    }

    pub fn validate(&self) -> Result<()> {
        let unsupported = |what: &str| {
            Err(ModelError::Config(format!(
                "a Llama model with {what} is not supported"
            )))
        };
        if self.hidden_act != "silu" {
            return unsupported(&format!("hidden_act `{}` (only silu)", self.hidden_act));
        }
        if self.attention_bias || self.mlp_bias {
            return unsupported("biases (attention_bias / mlp_bias)");
        }
        if self.rope_scaling.as_ref().is_some_and(|v| !v.is_null()) {
            return unsupported("rope_scaling");
        }
        let rope_type = self
            .rope_parameters
            .as_ref()
            .and_then(|p| p.get("rope_type"))
            .and_then(serde_json::Value::as_str);
        if rope_type.is_some_and(|t| t != "default") {
            return unsupported(&format!("rope_type `{}`", rope_type.unwrap_or_default()));
        }
        check_dropout(&[("attention_dropout", self.attention_dropout)])?;
        if self.head_dim.is_none() {
            check_heads(self.hidden_size, self.num_attention_heads)?;
        }
        let (heads, kv) = (self.num_attention_heads, self.kv_heads());
        if kv == 0 || !heads.is_multiple_of(kv) {
            return Err(ModelError::Config(format!(
                "{heads} attention heads do not share {kv} key/value heads evenly"
            )));
        }
        if !self.head_width().is_multiple_of(2) {
            return Err(ModelError::Config(format!(
                "rotary embeddings need an even head width, not {}",
                self.head_width()
            )));
        }
        check_nonzero(&[
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("max_position_embeddings", self.max_position_embeddings),
            ("head_dim", self.head_width()),
        ])
    }

    /// Parameters in the model (a tied output layer counted once).
    pub fn num_params(&self) -> usize {
        let (d, hd) = (self.hidden_size, self.head_width());
        let attn = d * self.num_attention_heads * hd * 2 + d * self.kv_heads() * hd * 2;
        let block = 2 * d + attn + 3 * d * self.intermediate_size;
        let head = if self.tie_word_embeddings {
            0
        } else {
            self.vocab_size * d
        };
        self.vocab_size * d + self.num_hidden_layers * block + d + head
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

/// How a model's hidden states become one vector per example.
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
    /// The last real token's hidden state: a decoder's, which has seen the whole input
    /// (HF `GPT2ForSequenceClassification`, `LlamaForSequenceClassification`).
    Last,
}

impl Pooling {
    /// Whether a decoder can pool this way (the others read BERT's `[CLS]` or pooler).
    pub fn suits_decoder(self) -> bool {
        matches!(self, Self::Mean | Self::Last)
    }
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
        check_dropout(&[
            ("hidden_dropout_prob", self.hidden_dropout_prob),
            (
                "attention_probs_dropout_prob",
                self.attention_probs_dropout_prob,
            ),
        ])?;
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

/// Dropout rates are probabilities of dropping, below 1 (1 would drop everything).
pub fn check_dropout(rates: &[(&str, f32)]) -> Result<()> {
    match rates.iter().find(|(_, p)| !(0.0..1.0).contains(p)) {
        Some((name, p)) => Err(ModelError::Config(format!(
            "{name} {p}: a dropout rate, within [0, 1)"
        ))),
        None => Ok(()),
    }
}

fn check_nonzero(fields: &[(&str, usize)]) -> Result<()> {
    match fields.iter().find(|(_, v)| *v == 0) {
        Some((name, _)) => Err(ModelError::Config(format!("{name} must be positive"))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A dropout rate is a probability below 1 in every architecture: 2 used to train
    /// (and a fine-tuned head with it scored at chance), and 1 would drop everything.
    #[test]
    fn dropout_rates_outside_zero_to_one_are_refused_by_name() {
        let gpt = GptConfig {
            vocab_size: 65,
            ..GptConfig::default()
        };
        assert!(gpt.validate().is_ok());
        let err = gpt.clone().with_dropout(1.0).validate().unwrap_err();
        assert!(
            err.to_string().contains("embd_pdrop 1: a dropout rate"),
            "{err}"
        );
        let bert = BertConfig {
            vocab_size: 100,
            attention_probs_dropout_prob: -0.1,
            ..BertConfig::default()
        };
        let err = bert.validate().unwrap_err().to_string();
        assert!(err.contains("attention_probs_dropout_prob -0.1"), "{err}");
        let llama = LlamaConfig {
            vocab_size: 100,
            attention_dropout: 1.5,
            ..LlamaConfig::default()
        };
        assert!(
            llama
                .validate()
                .unwrap_err()
                .to_string()
                .contains("attention_dropout 1.5")
        );
        assert!(check_dropout(&[("head.dropout", 0.0), ("x", 0.99)]).is_ok());
    }
}
