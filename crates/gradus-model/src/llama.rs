//! A Llama-style decoder: token embeddings, pre-norm blocks of causal self-attention with
//! rotary positions and grouped-query heads and a SwiGLU MLP, RMS norms, no biases, and
//! an output layer of its own or tied to the embedding. Parameter names and `[out, in]`
//! weights are those of HF `LlamaForCausalLM`.

use candle_core::{Device, Tensor};

use crate::cache::{DecoderCache, StepInput, cached_attention};
use crate::config::LlamaConfig;
use crate::error::{ModelError, Result};
use crate::kernels::Kernels;
use crate::layers::{AttentionMask, Ctx, Linear, RmsNorm, Rotary, self_attention};
use crate::params::{ParamKind, Params, WeightLayout};

#[derive(Debug, Clone)]
struct Layer {
    input_norm: RmsNorm,
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    post_norm: RmsNorm,
    gate: Linear,
    up: Linear,
    down: Linear,
}

/// A Llama-style decoder with its LM head.
#[derive(Debug, Clone)]
pub struct Llama {
    config: LlamaConfig,
    embed: Tensor,
    layers: Vec<Layer>,
    norm: RmsNorm,
    /// `[width, vocab]`: the output layer's weight, or the embedding's transpose.
    head: Tensor,
    rotary: Rotary,
    kernels: Kernels,
}

impl Llama {
    /// Creates the parameters in `params` (seeded: N(0, initializer_range²), the
    /// residual projections `o_proj` and `down_proj` scaled by 1/√(2·layers) as GPT-2
    /// and nanoGPT do; norms 1), or takes them from its checkpoint.
    pub fn new(config: &LlamaConfig, params: &mut Params) -> Result<Self> {
        config.validate()?;
        let c = config;
        let (d, std) = (c.hidden_size, c.initializer_range);
        let proj_std = std / (2.0 * c.num_hidden_layers as f64).sqrt();
        let (q_width, kv_width) = (
            c.num_attention_heads * c.head_width(),
            c.kv_heads() * c.head_width(),
        );
        let embed = params.normal(
            "model.embed_tokens.weight",
            &[c.vocab_size, d],
            std,
            ParamKind::Embedding,
        )?;
        let mut layers = Vec::with_capacity(c.num_hidden_layers);
        for i in 0..c.num_hidden_layers {
            let n = |s: &str| format!("model.layers.{i}.{s}");
            let mut linear = |name: &str, shape, std| {
                Linear::new(params, &n(name), shape, WeightLayout::OutIn, std, false)
            };
            let (q, k, v) = (
                linear("self_attn.q_proj", (d, q_width), std)?,
                linear("self_attn.k_proj", (d, kv_width), std)?,
                linear("self_attn.v_proj", (d, kv_width), std)?,
            );
            let o = linear("self_attn.o_proj", (q_width, d), proj_std)?;
            let gate = linear("mlp.gate_proj", (d, c.intermediate_size), std)?;
            let up = linear("mlp.up_proj", (d, c.intermediate_size), std)?;
            let down = linear("mlp.down_proj", (c.intermediate_size, d), proj_std)?;
            layers.push(Layer {
                input_norm: RmsNorm::new(params, &n("input_layernorm"), d, c.rms_norm_eps)?,
                post_norm: RmsNorm::new(params, &n("post_attention_layernorm"), d, c.rms_norm_eps)?,
                q,
                k,
                v,
                o,
                gate,
                up,
                down,
            });
        }
        let norm = RmsNorm::new(params, "model.norm", d, c.rms_norm_eps)?;
        let head = if c.tie_word_embeddings {
            embed.t()?
        } else {
            params
                .normal("lm_head.weight", &[c.vocab_size, d], std, ParamKind::Weight)?
                .t()?
        };
        let rotary = Rotary::new(c.head_width(), c.max_position_embeddings, c.theta(), params)?;
        Ok(Self {
            config: c.clone(),
            embed,
            layers,
            norm,
            head,
            rotary,
            kernels: params.kernels(),
        })
    }

    pub fn config(&self) -> &LlamaConfig {
        &self.config
    }

    pub fn device(&self) -> &Device {
        self.embed.device()
    }

    pub fn kernels(&self) -> Kernels {
        self.kernels
    }

    /// Next-token logits as `[batch · seq, vocab]`.
    pub fn logits_rows(&self, ids: &Tensor, ctx: &mut Ctx<'_>) -> Result<Tensor> {
        self.head(&self.hidden_rows(ids, ctx)?)
    }

    /// The final hidden states as `[batch · seq, hidden_size]`, every activation kept
    /// two-dimensional as in the GPT.
    pub fn hidden_rows(&self, ids: &Tensor, ctx: &mut Ctx<'_>) -> Result<Tensor> {
        let (b, t) = ids.dims2()?;
        if t > self.config.max_position_embeddings {
            return Err(ModelError::Config(format!(
                "sequence of {t} tokens is longer than max_position_embeddings = {}",
                self.config.max_position_embeddings
            )));
        }
        let mut x = self.embed.index_select(&ids.flatten_all()?, 0)?;
        for layer in &self.layers {
            x = self.layer(layer, &x, (b, t), ctx)?;
        }
        self.norm.forward(&x)
    }

    /// One block over `[batch · seq, width]` rows of `batch` sequences of `seq`.
    fn layer(
        &self,
        l: &Layer,
        x: &Tensor,
        (batch, seq): (usize, usize),
        ctx: &mut Ctx<'_>,
    ) -> Result<Tensor> {
        let h = l.input_norm.forward(x)?;
        let q = self.rotary.forward(&l.q.forward(&h)?, seq)?;
        let k = self.rotary.forward(&l.k.forward(&h)?, seq)?;
        let v = l.v.forward(&h)?;
        let qkv = Tensor::cat(&[q, self.repeat_kv(&k)?, self.repeat_kv(&v)?], 1)?;
        let y = self_attention(
            &qkv,
            batch,
            self.config.num_attention_heads,
            AttentionMask::Causal,
            self.config.attention_dropout,
            self.kernels,
            ctx,
        )?;
        let x = (x + l.o.forward(&y)?)?;
        self.mlp(l, &x)
    }

    /// A block's MLP half with its residual: `x + down(silu(gate(h)) · up(h))`, h the
    /// normed x.
    fn mlp(&self, l: &Layer, x: &Tensor) -> Result<Tensor> {
        let h = l.post_norm.forward(x)?;
        let m = self
            .kernels
            .swiglu(&l.gate.forward(&h)?, &l.up.forward(&h)?)?;
        Ok((x + l.down.forward(&m)?)?)
    }

    /// The final hidden states `[batch · new, hidden_size]` of a generation step's tokens,
    /// attending to `cache` and extending it (evaluation mode, no gradient).
    pub fn hidden_cached(&self, input: &StepInput, cache: &mut DecoderCache) -> Result<Tensor> {
        let mut x = self.embed.index_select(&input.ids.flatten_all()?, 0)?;
        let heads = (self.config.num_attention_heads, self.config.kv_heads());
        for (i, l) in self.layers.iter().enumerate() {
            let h = l.input_norm.forward(&x)?;
            let q = self
                .rotary
                .forward_at(&l.q.forward(&h)?, &input.positions)?;
            let k = self
                .rotary
                .forward_at(&l.k.forward(&h)?, &input.positions)?;
            let v = l.v.forward(&h)?;
            let y = cached_attention((&q, &k, &v), cache.layer(i), heads, &input.bias)?;
            x = self.mlp(l, &(x + l.o.forward(&y)?)?)?;
        }
        self.norm.forward(&x)
    }

    /// The output layer: hidden rows to logits.
    pub fn head(&self, hidden: &Tensor) -> Result<Tensor> {
        Ok(hidden.matmul(&self.head)?)
    }

    /// Keys or values `[rows, kv_heads · head_dim]` repeated to one per query head,
    /// query head j reading key/value head j / (heads / kv_heads), as HF's `repeat_kv`.
    fn repeat_kv(&self, x: &Tensor) -> Result<Tensor> {
        let (heads, kv) = (self.config.num_attention_heads, self.config.kv_heads());
        if heads == kv {
            return Ok(x.clone());
        }
        let (rows, _) = x.dims2()?;
        let hd = self.config.head_width();
        Ok(x.reshape((rows, kv, 1, hd))?
            .broadcast_as((rows, kv, heads / kv, hd))?
            .contiguous()?
            .reshape((rows, heads * hd))?)
    }
}
