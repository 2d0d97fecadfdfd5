//! Models for gradus on candle: GPT-2 style and Llama-style decoders (one [`Decoder`]
//! type) and a BERT style encoder, with the heads the training stages need (LM head,
//! MLM + NSP, classification, regression).
//!
//! Every parameter lives in one [`Params`] store under its Hugging Face name, so a
//! checkpoint written by [`Params::save`] is a `model.safetensors` that HF tools read,
//! and HF checkpoints (`GPT2LMHeadModel`, `LlamaForCausalLM`, `BertModel`,
//! `BertForPreTraining`, with or without the `bert.` / `transformer.` prefix) load into
//! these models.
//!
//! Only ops with a backward pass are used: candle's fused `softmax_last_dim` and biased
//! `LayerNorm` drop gradients. On the CPU, GELU, layer norm, RMS norm, rotary
//! embeddings, attention and the loss run as `gradus-kernels`' fused ops with their own
//! backward; with [`Kernels::Composed`] (and on other devices) they are composed of
//! candle ops.
//!
//! ```
//! use candle_core::{Device, Tensor};
//! use gradus_model::{Ctx, Gpt, GptConfig, Params};
//!
//! let config = GptConfig { vocab_size: 11, n_positions: 8, n_embd: 8, n_layer: 1, n_head: 2, ..GptConfig::default() };
//! let mut params = Params::new(Device::Cpu, 0);
//! let gpt = Gpt::new(&config, &mut params).unwrap();
//! let ids = Tensor::new(&[[1u32, 2, 3]], &Device::Cpu).unwrap();
//! let logits = gpt.logits(&ids, &mut Ctx::eval()).unwrap();
//! assert_eq!(logits.dims(), &[1, 3, 11]);
//! ```

mod bert;
pub mod cache;
mod config;
mod decoder;
mod error;
pub mod generate;
mod gpt;
mod kernels;
mod layers;
pub mod layout;
mod llama;
pub mod loss;
mod params;

pub use bert::{Bert, BertHeads, MlmHead, TaskHead, sinusoids};
pub use config::{BertConfig, GptConfig, LlamaConfig, Pooling, PositionEmbedding, check_dropout};
pub use decoder::{DECODER_TYPES, Decoder, DecoderConfig};
pub use error::{ModelError, Result};
pub use gpt::Gpt;
pub use kernels::Kernels;
pub use layers::{AttentionMask, Ctx, LayerNorm, Linear, RmsNorm, Rotary, self_attention};
pub use llama::Llama;
pub use params::{ParamKind, Params, WeightLayout};

/// Parses a device name: `cpu` or `cuda:N` (`cuda` alone is `cuda:0`).
pub fn device(name: &str) -> Result<candle_core::Device> {
    match name {
        "cpu" => Ok(candle_core::Device::Cpu),
        cuda if cuda == "cuda" || cuda.starts_with("cuda:") => {
            let ordinal = cuda
                .strip_prefix("cuda:")
                .map_or(Ok(0), str::parse::<usize>)
                .map_err(|_| ModelError::Config(format!("bad device `{name}`")))?;
            candle_core::Device::new_cuda(ordinal).map_err(|e| {
                ModelError::Config(format!(
                    "device `{name}`: {e} (build with `--features cuda` for GPUs)"
                ))
            })
        }
        other => Err(ModelError::Config(format!(
            "unknown device `{other}` (use `cpu` or `cuda:N`)"
        ))),
    }
}
