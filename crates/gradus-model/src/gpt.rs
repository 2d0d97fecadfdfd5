//! GPT-2: learned token and position embeddings, pre-LN blocks of causal self-attention
//! and a GELU MLP, a final layer norm, the output projection tied to the token embedding.
//! Parameter names and `[in, out]` weights are those of HF `GPT2LMHeadModel`.

use candle_core::{Device, Tensor};

use crate::cache::{DecoderCache, StepInput, cached_attention};
use crate::config::GptConfig;
use crate::error::{ModelError, Result};
use crate::kernels::Kernels;
use crate::layers::{AttentionMask, Ctx, LayerNorm, Linear, self_attention};
use crate::params::{ParamKind, Params, WeightLayout};

#[derive(Debug, Clone)]
struct Block {
    ln_1: LayerNorm,
    c_attn: Linear,
    attn_proj: Linear,
    ln_2: LayerNorm,
    c_fc: Linear,
    mlp_proj: Linear,
}

/// A GPT-2 style decoder with its tied LM head.
#[derive(Debug, Clone)]
pub struct Gpt {
    config: GptConfig,
    wte: Tensor,
    wpe: Tensor,
    blocks: Vec<Block>,
    ln_f: LayerNorm,
    kernels: Kernels,
}

impl Gpt {
    /// Creates the parameters in `params` (seeded GPT-2 initialisation: N(0, 0.02), the
    /// residual projections scaled by 1/√(2·layers)), or takes them from its checkpoint.
    pub fn new(config: &GptConfig, params: &mut Params) -> Result<Self> {
        config.validate()?;
        let (d, std, bias) = (config.n_embd, config.initializer_range, config.bias);
        let proj_std = std / (2.0 * config.n_layer as f64).sqrt();
        let eps = config.layer_norm_epsilon;
        let wte = params.normal(
            "transformer.wte.weight",
            &[config.vocab_size, d],
            std,
            ParamKind::Embedding,
        )?;
        let wpe = params.normal(
            "transformer.wpe.weight",
            &[config.n_positions, d],
            std,
            ParamKind::Embedding,
        )?;
        let mut blocks = Vec::with_capacity(config.n_layer);
        for i in 0..config.n_layer {
            let n = |s: &str| format!("transformer.h.{i}.{s}");
            blocks.push(Block {
                ln_1: LayerNorm::new(params, &n("ln_1"), d, eps, bias)?,
                c_attn: Linear::new(
                    params,
                    &n("attn.c_attn"),
                    (d, 3 * d),
                    WeightLayout::InOut,
                    std,
                    bias,
                )?,
                attn_proj: Linear::new(
                    params,
                    &n("attn.c_proj"),
                    (d, d),
                    WeightLayout::InOut,
                    proj_std,
                    bias,
                )?,
                ln_2: LayerNorm::new(params, &n("ln_2"), d, eps, bias)?,
                c_fc: Linear::new(
                    params,
                    &n("mlp.c_fc"),
                    (d, 4 * d),
                    WeightLayout::InOut,
                    std,
                    bias,
                )?,
                mlp_proj: Linear::new(
                    params,
                    &n("mlp.c_proj"),
                    (4 * d, d),
                    WeightLayout::InOut,
                    proj_std,
                    bias,
                )?,
            });
        }
        let ln_f = LayerNorm::new(params, "transformer.ln_f", d, eps, bias)?;
        if !bias {
            for (name, _) in Self::bias_names(config) {
                params.expect_zero(&name)?;
            }
        }
        Ok(Self {
            config: config.clone(),
            wte,
            wpe,
            blocks,
            ln_f,
            kernels: params.kernels(),
        })
    }

    /// The biases of a GPT-2 with `config`'s shape, with their widths: the layer norms'
    /// and the linear layers', which a biasless model lacks.
    pub fn bias_names(config: &GptConfig) -> Vec<(String, usize)> {
        let d = config.n_embd;
        let layers = [
            ("ln_1", d),
            ("attn.c_attn", 3 * d),
            ("attn.c_proj", d),
            ("ln_2", d),
            ("mlp.c_fc", 4 * d),
            ("mlp.c_proj", d),
        ];
        let mut names: Vec<(String, usize)> = (0..config.n_layer)
            .flat_map(|i| layers.map(|(l, w)| (format!("transformer.h.{i}.{l}.bias"), w)))
            .collect();
        names.push(("transformer.ln_f.bias".into(), d));
        names
    }

    pub fn config(&self) -> &GptConfig {
        &self.config
    }

    pub fn device(&self) -> &Device {
        self.wte.device()
    }

    /// The kernels the model runs on (chosen by its [`Params`]).
    pub fn kernels(&self) -> Kernels {
        self.kernels
    }

    /// Loads a model folder (`config.json` + `model.safetensors`, ours or HF GPT-2's).
    pub fn load(dir: &std::path::Path, device: Device) -> Result<(Self, Params)> {
        let path = dir.join("config.json");
        let text = std::fs::read_to_string(&path).map_err(|e| ModelError::file(&path, e))?;
        let config: GptConfig =
            serde_json::from_str(&text).map_err(|e| ModelError::file(&path, e))?;
        let mut params = Params::from_checkpoint(dir, device, 0, &[])?;
        let model = Self::new(&config, &mut params)?;
        Ok((model, params))
    }

    /// Next-token logits `[batch, seq, vocab]` for `ids` `[batch, seq]` (u32).
    pub fn logits(&self, ids: &Tensor, ctx: &mut Ctx<'_>) -> Result<Tensor> {
        let (b, t) = ids.dims2()?;
        Ok(self
            .logits_rows(ids, ctx)?
            .reshape((b, t, self.config.vocab_size))?)
    }

    /// Next-token logits as `[batch · seq, vocab]`, the layout the loss takes.
    pub fn logits_rows(&self, ids: &Tensor, ctx: &mut Ctx<'_>) -> Result<Tensor> {
        self.head(&self.hidden_rows(ids, ctx)?)
    }

    /// The final hidden states `[batch, seq, n_embd]`.
    pub fn hidden(&self, ids: &Tensor, ctx: &mut Ctx<'_>) -> Result<Tensor> {
        let (b, t) = ids.dims2()?;
        Ok(self
            .hidden_rows(ids, ctx)?
            .reshape((b, t, self.config.n_embd))?)
    }

    /// The final hidden states as `[batch · seq, n_embd]`. Inside the model every
    /// activation keeps this two-dimensional layout: a reshape is a node of the backward
    /// graph, and candle accumulates each node's gradient into a fresh zero tensor.
    pub fn hidden_rows(&self, ids: &Tensor, ctx: &mut Ctx<'_>) -> Result<Tensor> {
        let (b, t) = ids.dims2()?;
        if t > self.config.n_positions {
            return Err(ModelError::Config(format!(
                "sequence of {t} tokens is longer than n_positions = {}",
                self.config.n_positions
            )));
        }
        let tok = self.wte.index_select(&ids.flatten_all()?, 0)?;
        let pos = self.wpe.narrow(0, 0, t)?;
        // `[batch · seq, n_embd]` rows plus the `[seq, n_embd]` positions repeated per
        // sequence.
        let x = self.kernels.add_rows(&tok, &pos)?;
        let mut x = ctx.dropout(&x, self.config.embd_pdrop)?;
        for block in &self.blocks {
            x = self.block(block, &x, b, ctx)?;
        }
        self.ln_f.forward(&x)
    }

    /// One block over `[batch · seq, n_embd]` rows of `batch` sequences.
    fn block(&self, blk: &Block, x: &Tensor, batch: usize, ctx: &mut Ctx<'_>) -> Result<Tensor> {
        let qkv = blk.c_attn.forward(&blk.ln_1.forward(x)?)?;
        let y = self_attention(
            &qkv,
            batch,
            self.config.n_head,
            AttentionMask::Causal,
            self.config.attn_pdrop,
            self.kernels,
            ctx,
        )?;
        let y = blk.attn_proj.forward(&y)?;
        let x = (x + ctx.dropout(&y, self.config.resid_pdrop)?)?;
        self.mlp(blk, &x, ctx)
    }

    /// A block's MLP half with its residual: `x + mlp(ln_2(x))`.
    fn mlp(&self, blk: &Block, x: &Tensor, ctx: &mut Ctx<'_>) -> Result<Tensor> {
        let m = blk.c_fc.forward(&blk.ln_2.forward(x)?)?;
        let m = crate::config::activate(&self.config.activation_function, &m, self.kernels)?;
        let m = blk.mlp_proj.forward(&m)?;
        Ok((x + ctx.dropout(&m, self.config.resid_pdrop)?)?)
    }

    /// The final hidden states `[batch · new, n_embd]` of a generation step's tokens,
    /// attending to `cache` and extending it (evaluation mode, no gradient).
    pub fn hidden_cached(&self, input: &StepInput, cache: &mut DecoderCache) -> Result<Tensor> {
        let tok = self.wte.index_select(&input.ids.flatten_all()?, 0)?;
        let mut x = (tok + self.wpe.index_select(&input.positions, 0)?)?;
        let (d, heads) = (self.config.n_embd, self.config.n_head);
        for (i, blk) in self.blocks.iter().enumerate() {
            let qkv = blk.c_attn.forward(&blk.ln_1.forward(&x)?)?;
            let (q, k, v) = (
                qkv.narrow(1, 0, d)?,
                qkv.narrow(1, d, d)?,
                qkv.narrow(1, 2 * d, d)?,
            );
            let y = cached_attention((&q, &k, &v), cache.layer(i), (heads, heads), &input.bias)?;
            x = (x + blk.attn_proj.forward(&y)?)?;
            x = self.mlp(blk, &x, &mut Ctx::eval())?;
        }
        self.ln_f.forward(&x)
    }

    /// The output layer: hidden rows to logits.
    pub fn head(&self, hidden: &Tensor) -> Result<Tensor> {
        Ok(hidden.matmul(&self.wte.t()?)?)
    }
}
