//! A BERT style encoder: token + position + token-type embeddings, post-LN blocks of
//! padded self-attention and a GELU MLP, a tanh pooler; and the heads on top of it.
//! Parameter names and `[out, in]` weights are those of HF `BertForPreTraining` /
//! `BertForSequenceClassification`.

use candle_core::{D, DType, Device, Tensor};

use crate::config::{BertConfig, PositionEmbedding, activate};
use crate::error::{ModelError, Result};
use crate::kernels::Kernels;
use crate::layers::{AttentionMask, Ctx, LayerNorm, Linear, self_attention};
use crate::params::{ParamKind, Params, WeightLayout};

#[derive(Debug, Clone)]
struct Layer {
    query: Linear,
    key: Linear,
    value: Linear,
    attn_out: Linear,
    attn_ln: LayerNorm,
    intermediate: Linear,
    output: Linear,
    output_ln: LayerNorm,
}

/// The encoder body (HF `BertModel`).
#[derive(Debug, Clone)]
pub struct Bert {
    config: BertConfig,
    word: Tensor,
    /// Learned (a parameter) or sinusoidal (a constant).
    position: Tensor,
    token_type: Tensor,
    emb_ln: LayerNorm,
    layers: Vec<Layer>,
    pooler: Linear,
    kernels: Kernels,
}

fn linear(p: &mut Params, name: &str, io: (usize, usize), std: f64) -> Result<Linear> {
    Linear::new(p, name, io, WeightLayout::OutIn, std, true)
}

impl Bert {
    /// Writes a seeded, randomly initialised encoder of `config` as a checkpoint folder
    /// (`config.json` + `model.safetensors`): a from-scratch starting point or baseline.
    pub fn save_random(config: &BertConfig, dir: &std::path::Path, seed: u64) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| ModelError::file(dir, e))?;
        let mut params = Params::new(Device::Cpu, seed);
        Bert::new(config, &mut params)?;
        params.save(&dir.join("model.safetensors"))?;
        let path = dir.join("config.json");
        let text = serde_json::to_string_pretty(config).map_err(|e| ModelError::file(&path, e))?;
        std::fs::write(&path, text).map_err(|e| ModelError::file(&path, e))
    }

    pub fn new(config: &BertConfig, params: &mut Params) -> Result<Self> {
        config.validate()?;
        let (d, std, eps) = (
            config.hidden_size,
            config.initializer_range,
            config.layer_norm_eps,
        );
        let word = params.normal(
            "bert.embeddings.word_embeddings.weight",
            &[config.vocab_size, d],
            std,
            ParamKind::Embedding,
        )?;
        let position = match config.position_embedding_type {
            PositionEmbedding::Absolute => params.normal(
                "bert.embeddings.position_embeddings.weight",
                &[config.max_position_embeddings, d],
                std,
                ParamKind::Embedding,
            )?,
            PositionEmbedding::Sinusoidal => {
                sinusoids(config.max_position_embeddings, d, params.device())?
            }
        };
        let token_type = params.normal(
            "bert.embeddings.token_type_embeddings.weight",
            &[config.type_vocab_size, d],
            std,
            ParamKind::Embedding,
        )?;
        let emb_ln = LayerNorm::new(params, "bert.embeddings.LayerNorm", d, eps, true)?;
        let mut layers = Vec::with_capacity(config.num_hidden_layers);
        let inner = config.intermediate_size;
        for i in 0..config.num_hidden_layers {
            let n = |s: &str| format!("bert.encoder.layer.{i}.{s}");
            layers.push(Layer {
                query: linear(params, &n("attention.self.query"), (d, d), std)?,
                key: linear(params, &n("attention.self.key"), (d, d), std)?,
                value: linear(params, &n("attention.self.value"), (d, d), std)?,
                attn_out: linear(params, &n("attention.output.dense"), (d, d), std)?,
                attn_ln: LayerNorm::new(params, &n("attention.output.LayerNorm"), d, eps, true)?,
                intermediate: linear(params, &n("intermediate.dense"), (d, inner), std)?,
                output: linear(params, &n("output.dense"), (inner, d), std)?,
                output_ln: LayerNorm::new(params, &n("output.LayerNorm"), d, eps, true)?,
            });
        }
        let pooler = linear(params, "bert.pooler.dense", (d, d), std)?;
        Ok(Self {
            config: config.clone(),
            word,
            position,
            token_type,
            emb_ln,
            layers,
            pooler,
            kernels: params.kernels(),
        })
    }

    pub fn config(&self) -> &BertConfig {
        &self.config
    }

    /// The kernels the model runs on (chosen by its [`Params`]).
    pub fn kernels(&self) -> Kernels {
        self.kernels
    }

    /// The token embedding matrix `[vocab, hidden]`, which the MLM decoder shares.
    pub fn word_embeddings(&self) -> &Tensor {
        &self.word
    }

    /// Hidden states `[batch, seq, hidden]`. `ids` and `type_ids` are u32 `[batch, seq]`,
    /// `attention_mask` is 1 for tokens and 0 for padding (any dtype).
    pub fn forward(
        &self,
        ids: &Tensor,
        type_ids: &Tensor,
        attention_mask: &Tensor,
        ctx: &mut Ctx<'_>,
    ) -> Result<Tensor> {
        let (b, t) = ids.dims2()?;
        if t > self.config.max_position_embeddings {
            return Err(ModelError::Config(format!(
                "sequence of {t} tokens is longer than max_position_embeddings = {}",
                self.config.max_position_embeddings
            )));
        }
        let d = self.config.hidden_size;
        // The layers work on `[batch · seq, hidden]` rows: a reshape is a node of the
        // backward graph, and candle accumulates each node's gradient into fresh zeros.
        let lookup = |table: &Tensor, ids: &Tensor| -> Result<Tensor> {
            Ok(table.index_select(&ids.flatten_all()?, 0)?)
        };
        let x = lookup(&self.word, ids)?.add(&lookup(&self.token_type, type_ids)?)?;
        let x = self.kernels.add_rows(&x, &self.position.narrow(0, 0, t)?)?;
        let x = self.emb_ln.forward(&x)?;
        let mut x = ctx.dropout(&x, self.config.hidden_dropout_prob)?;
        for layer in &self.layers {
            x = self.layer(layer, &x, b, attention_mask, ctx)?;
        }
        Ok(x.reshape((b, t, d))?)
    }

    /// One layer over `[batch · seq, hidden]` rows of `batch` sequences.
    fn layer(
        &self,
        l: &Layer,
        x: &Tensor,
        batch: usize,
        keys: &Tensor,
        ctx: &mut Ctx<'_>,
    ) -> Result<Tensor> {
        let (heads, p) = (
            self.config.num_attention_heads,
            self.config.hidden_dropout_prob,
        );
        let qkv = Linear::concat(&[&l.query, &l.key, &l.value])?.forward(x)?;
        let a = self_attention(
            &qkv,
            batch,
            heads,
            AttentionMask::Keys(keys),
            self.config.attention_probs_dropout_prob,
            self.kernels,
            ctx,
        )?;
        let a = ctx.dropout(&l.attn_out.forward(&a)?, p)?;
        let x = l.attn_ln.forward(&(x + a)?)?;
        let m = activate(
            &self.config.hidden_act,
            &l.intermediate.forward(&x)?,
            self.kernels,
        )?;
        let m = ctx.dropout(&l.output.forward(&m)?, p)?;
        l.output_ln.forward(&(x + m)?)
    }

    /// The pooled output `[batch, hidden]`: tanh of a dense layer over the first token.
    pub fn pool(&self, hidden: &Tensor) -> Result<Tensor> {
        let first = hidden.narrow(1, 0, 1)?.squeeze(1)?;
        Ok(self.pooler.forward(&first)?.tanh()?)
    }

    /// Mean of the hidden states over the tokens the mask keeps `[batch, hidden]`
    /// (sentence-transformers' pooling).
    pub fn mean_pool(hidden: &Tensor, attention_mask: &Tensor) -> Result<Tensor> {
        let m = attention_mask.to_dtype(DType::F32)?.unsqueeze(D::Minus1)?;
        let sum = hidden.broadcast_mul(&m)?.sum(1)?;
        Ok(sum.broadcast_div(&m.sum(1)?.clamp(1e-9, f64::MAX)?)?)
    }
}

/// Fixed sinusoidal position encodings `[positions, width]`.
pub fn sinusoids(positions: usize, width: usize, device: &Device) -> Result<Tensor> {
    let mut values = Vec::with_capacity(positions * width);
    for pos in 0..positions {
        for i in 0..width {
            let rate = 1.0 / 10000f64.powf((2 * (i / 2)) as f64 / width as f64);
            let angle = pos as f64 * rate;
            values.push(if i % 2 == 0 { angle.sin() } else { angle.cos() } as f32);
        }
    }
    Ok(Tensor::from_vec(values, (positions, width), device)?)
}

/// The MLM head: dense + activation + layer norm, then the decoder tied to the word
/// embeddings plus its own bias.
#[derive(Debug, Clone)]
pub struct MlmHead {
    dense: Linear,
    ln: LayerNorm,
    decoder: Tensor,
    bias: Tensor,
    act: String,
    kernels: Kernels,
}

impl MlmHead {
    pub fn new(bert: &Bert, params: &mut Params) -> Result<Self> {
        let c = bert.config();
        let d = c.hidden_size;
        Ok(Self {
            dense: linear(
                params,
                "cls.predictions.transform.dense",
                (d, d),
                c.initializer_range,
            )?,
            ln: LayerNorm::new(
                params,
                "cls.predictions.transform.LayerNorm",
                d,
                c.layer_norm_eps,
                true,
            )?,
            decoder: bert.word_embeddings().t()?,
            bias: params.constant(
                "cls.predictions.bias",
                &[c.vocab_size],
                0.0,
                ParamKind::Bias,
            )?,
            act: c.hidden_act.clone(),
            kernels: bert.kernels(),
        })
    }

    /// Vocabulary logits for hidden states `[..., hidden]`.
    pub fn forward(&self, hidden: &Tensor) -> Result<Tensor> {
        let h = self.ln.forward(&activate(
            &self.act,
            &self.dense.forward(hidden)?,
            self.kernels,
        )?)?;
        self.kernels
            .add_rows(&crate::layers::matmul_rows(&h, &self.decoder)?, &self.bias)
    }
}

/// The pretraining heads of `BertForPreTraining`: MLM and next-sentence prediction.
#[derive(Debug, Clone)]
pub struct BertHeads {
    pub mlm: MlmHead,
    nsp: Linear,
}

impl BertHeads {
    pub fn new(bert: &Bert, params: &mut Params) -> Result<Self> {
        let c = bert.config();
        Ok(Self {
            mlm: MlmHead::new(bert, params)?,
            nsp: linear(
                params,
                "cls.seq_relationship",
                (c.hidden_size, 2),
                c.initializer_range,
            )?,
        })
    }

    /// Is-next / not-next logits `[batch, 2]` from the pooled output.
    pub fn nsp(&self, pooled: &Tensor) -> Result<Tensor> {
        self.nsp.forward(pooled)
    }
}

/// A sequence-level task head on the pooled output (HF `classifier`): `outputs` classes,
/// or one value for regression.
#[derive(Debug, Clone)]
pub struct TaskHead {
    classifier: Linear,
    dropout: f32,
}

impl TaskHead {
    /// `name` is the parameter prefix (`classifier` for HF compatibility; one per task in
    /// multi-task models).
    pub fn new(bert: &Bert, params: &mut Params, name: &str, outputs: usize) -> Result<Self> {
        let c = bert.config();
        let head = Self::sized(params, name, (c.hidden_size, outputs), c.initializer_range)?;
        Ok(head.with_dropout(c.hidden_dropout_prob))
    }

    /// A head from `width` pooled values to `outputs`, its weight drawn with `std`, without
    /// dropout (a decoder's head: the decoder has no hidden dropout to inherit).
    pub fn sized(
        params: &mut Params,
        name: &str,
        (width, outputs): (usize, usize),
        std: f64,
    ) -> Result<Self> {
        Ok(Self {
            classifier: linear(params, name, (width, outputs), std)?,
            dropout: 0.0,
        })
    }

    /// The last real token's hidden state of each sequence `[batch, width]`, from
    /// `hidden` `[batch, seq, width]` and `mask` `[batch, seq]` (1 token, 0 padding),
    /// whichever side the padding is on.
    pub fn last_token(hidden: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let (b, t, width) = hidden.dims3()?;
        let mask: Vec<Vec<f32>> = mask.to_dtype(DType::F32)?.to_vec2()?;
        let rows: Vec<u32> = mask
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let last = m.iter().rposition(|&x| x > 0.0).unwrap_or(0);
                (i * t + last) as u32
            })
            .collect();
        let rows = Tensor::from_vec(rows, b, hidden.device())?;
        Ok(hidden.reshape((b * t, width))?.index_select(&rows, 0)?)
    }

    /// Replaces the dropout before the classifier (the encoder's hidden dropout by default).
    pub fn with_dropout(mut self, p: f32) -> Self {
        self.dropout = p;
        self
    }

    pub fn forward(&self, pooled: &Tensor, ctx: &mut Ctx<'_>) -> Result<Tensor> {
        self.classifier.forward(&ctx.dropout(pooled, self.dropout)?)
    }
}
