//! Building blocks with a backward pass: linear, layer norm and RMS norm (fused, or
//! composed: candle's fused norms have no gradient), rotary position embeddings, dropout
//! driven by a seeded generator, self-attention from a fused q/k/v projection.

use candle_core::{D, DType, Device, Tensor};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::error::Result;
use crate::kernels::Kernels;
use crate::params::{ParamKind, Params, WeightLayout};

/// Training or evaluation, and in training the generator dropout draws from (so that a
/// resumed run draws the same masks).
#[derive(Debug)]
pub struct Ctx<'r> {
    rng: Option<&'r mut ChaCha8Rng>,
}

impl<'r> Ctx<'r> {
    /// Evaluation: dropout is off.
    pub fn eval() -> Self {
        Self { rng: None }
    }

    /// Training: dropout draws its masks from `rng`.
    pub fn train(rng: &'r mut ChaCha8Rng) -> Self {
        Self { rng: Some(rng) }
    }

    pub fn is_train(&self) -> bool {
        self.rng.is_some()
    }

    /// Inverted dropout: zeroes each element with probability `p` and scales the rest by
    /// `1 / (1 - p)`; the identity in evaluation or when `p` is 0.
    pub fn dropout(&mut self, x: &Tensor, p: f32) -> Result<Tensor> {
        let Some(rng) = self.rng.as_deref_mut() else {
            return Ok(x.clone());
        };
        if p <= 0.0 {
            return Ok(x.clone());
        }
        let scale = 1.0 / (1.0 - p);
        let mask: Vec<f32> = (0..x.elem_count())
            .map(|_| if rng.random::<f32>() < p { 0.0 } else { scale })
            .collect();
        let mask = Tensor::from_vec(mask, x.shape(), &Device::Cpu)?.to_device(x.device())?;
        Ok(x.mul(&mask)?)
    }
}

/// `y = x W (+ b)` for `x` of any rank.
#[derive(Debug, Clone)]
pub struct Linear {
    /// Stored as `[in, out]` whatever the checkpoint layout, so the forward is one matmul.
    weight_in_out: Tensor,
    bias: Option<Tensor>,
    kernels: Kernels,
}

impl Linear {
    /// Creates (or loads) `{name}.weight` and, with `bias`, `{name}.bias`.
    pub fn new(
        p: &mut Params,
        name: &str,
        (inputs, outputs): (usize, usize),
        layout: WeightLayout,
        std: f64,
        bias: bool,
    ) -> Result<Self> {
        let wname = format!("{name}.weight");
        let weight = match layout {
            WeightLayout::InOut => p.normal(&wname, &[inputs, outputs], std, ParamKind::Weight)?,
            WeightLayout::OutIn => p
                .normal(&wname, &[outputs, inputs], std, ParamKind::Weight)?
                .t()?,
        };
        let bias = if bias {
            Some(p.constant(&format!("{name}.bias"), &[outputs], 0.0, ParamKind::Bias)?)
        } else {
            None
        };
        Ok(Self {
            weight_in_out: weight,
            bias,
            kernels: p.kernels(),
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = matmul_rows(x, &self.weight_in_out)?;
        match &self.bias {
            Some(b) => self.kernels.add_rows(&y, b),
            None => Ok(y),
        }
    }

    /// One linear layer whose outputs are those of `parts` side by side (BERT's query,
    /// key and value as one projection): one matmul instead of three, and the fused
    /// attention reads its input in that layout.
    pub fn concat(parts: &[&Linear]) -> Result<Self> {
        let weights: Vec<&Tensor> = parts.iter().map(|l| &l.weight_in_out).collect();
        let biases: Option<Vec<&Tensor>> = parts.iter().map(|l| l.bias.as_ref()).collect();
        Ok(Self {
            weight_in_out: Tensor::cat(&weights, 1)?,
            bias: biases.map(|b| Tensor::cat(&b, 0)).transpose()?,
            kernels: parts.first().map_or(Kernels::default(), |l| l.kernels),
        })
    }
}

/// `x W` for `x` `[..., in]` and `W` `[in, out]`, as one `[rows, in] × [in, out]` matrix
/// product. (A broadcast batched matmul gives the same forward, but its backward computes
/// dW as one small product per batch element and then sums them.)
pub fn matmul_rows(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    if x.rank() == 2 {
        return Ok(x.matmul(w)?);
    }
    let mut dims = x.dims().to_vec();
    let Some(inputs) = dims.pop() else {
        return Ok(x.broadcast_matmul(w)?);
    };
    let rows = dims.iter().product::<usize>();
    let y = x.reshape((rows, inputs))?.matmul(w)?;
    dims.push(w.dim(1)?);
    Ok(y.reshape(dims)?)
}

/// Layer norm over the last dimension: the fused kernel, or composed of candle ops.
#[derive(Debug, Clone)]
pub struct LayerNorm {
    weight: Tensor,
    bias: Option<Tensor>,
    eps: f64,
    kernels: Kernels,
}

impl LayerNorm {
    pub fn new(p: &mut Params, name: &str, width: usize, eps: f64, bias: bool) -> Result<Self> {
        let weight = p.constant(&format!("{name}.weight"), &[width], 1.0, ParamKind::Norm)?;
        let bias = if bias {
            Some(p.constant(&format!("{name}.bias"), &[width], 0.0, ParamKind::Norm)?)
        } else {
            None
        };
        Ok(Self {
            weight,
            bias,
            eps,
            kernels: p.kernels(),
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if self.kernels.fuse(x) {
            return Ok(gradus_kernels::layer_norm(
                x,
                &self.weight,
                self.bias.as_ref(),
                self.eps,
            )?);
        }
        let centred = x.broadcast_sub(&x.mean_keepdim(D::Minus1)?)?;
        let var = centred.sqr()?.mean_keepdim(D::Minus1)?;
        let normed = centred.broadcast_div(&(var + self.eps)?.sqrt()?)?;
        let y = normed.broadcast_mul(&self.weight)?;
        Ok(match &self.bias {
            Some(b) => y.broadcast_add(b)?,
            None => y,
        })
    }
}

/// RMS norm over the last dimension (Llama's, no bias): the fused kernel, or composed of
/// candle ops (candle's fused `rms_norm` has no gradient).
#[derive(Debug, Clone)]
pub struct RmsNorm {
    weight: Tensor,
    eps: f64,
    kernels: Kernels,
}

impl RmsNorm {
    pub fn new(p: &mut Params, name: &str, width: usize, eps: f64) -> Result<Self> {
        let weight = p.constant(&format!("{name}.weight"), &[width], 1.0, ParamKind::Norm)?;
        Ok(Self {
            weight,
            eps,
            kernels: p.kernels(),
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if self.kernels.fuse(x) {
            return Ok(gradus_kernels::rms_norm(x, &self.weight, self.eps)?);
        }
        let ms = x.sqr()?.mean_keepdim(D::Minus1)?;
        let normed = x.broadcast_div(&(ms + self.eps)?.sqrt()?)?;
        Ok(normed.broadcast_mul(&self.weight)?)
    }
}

/// Rotary position embeddings as Llama's HF implementation computes them: head width
/// `dim`, the angle of position p and pair i being p · θ^(−2i/dim) in f32, each head's
/// first and second halves rotated as pairs.
#[derive(Debug, Clone)]
pub struct Rotary {
    /// `[positions, dim / 2]`.
    cos: Tensor,
    sin: Tensor,
    head_dim: usize,
    kernels: Kernels,
}

impl Rotary {
    pub fn new(head_dim: usize, positions: usize, theta: f64, p: &Params) -> Result<Self> {
        let half = head_dim / 2;
        let inv_freq: Vec<f32> = (0..half)
            .map(|i| (1.0 / theta.powf((2 * i) as f64 / head_dim as f64)) as f32)
            .collect();
        let angles: Vec<f32> = (0..positions)
            .flat_map(|pos| inv_freq.iter().map(move |f| pos as f32 * f))
            .collect();
        let table = |f: fn(f32) -> f32| {
            let values: Vec<f32> = angles.iter().map(|&a| f(a)).collect();
            Tensor::from_vec(values, (positions, half), p.device())
        };
        Ok(Self {
            cos: table(f32::cos)?,
            sin: table(f32::sin)?,
            head_dim,
            kernels: p.kernels(),
        })
    }

    /// Rotates `x` `[batch · seq, heads · head_dim]` (rows in sequence order, each
    /// sequence starting at position 0).
    pub fn forward(&self, x: &Tensor, seq: usize) -> Result<Tensor> {
        let cos = self.cos.narrow(0, 0, seq)?;
        let sin = self.sin.narrow(0, 0, seq)?;
        if self.kernels.fuse(x) {
            return Ok(gradus_kernels::rope(x, &cos, &sin, self.head_dim)?);
        }
        let (rows, width) = x.dims2()?;
        let x = x.reshape((rows / seq, seq, width))?;
        Ok(self.rotate(&x, &cos, &sin)?.reshape((rows, width))?)
    }

    /// Rotates each row of `x` `[rows, heads · head_dim]` by the angles of its own
    /// position in `positions` `[rows]` (u32): generation, where rows of one column sit
    /// at different positions. Composed of candle ops.
    pub fn forward_at(&self, x: &Tensor, positions: &Tensor) -> Result<Tensor> {
        let cos = self.cos.index_select(positions, 0)?;
        let sin = self.sin.index_select(positions, 0)?;
        self.rotate(x, &cos, &sin)
    }

    /// `x` `[…, n, heads · head_dim]` rotated by `cos` / `sin` `[n, head_dim / 2]`.
    fn rotate(&self, x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
        let mut dims = x.dims().to_vec();
        let width = dims.pop().unwrap_or(0);
        let n = cos.dim(0)?;
        let half = self.head_dim / 2;
        let mut split = dims.clone();
        split.extend([width / self.head_dim, self.head_dim]);
        let x = x.reshape(split)?;
        let a = x.narrow(D::Minus1, 0, half)?;
        let b = x.narrow(D::Minus1, half, half)?;
        let c = cos.reshape((n, 1, half))?.to_dtype(x.dtype())?;
        let s = sin.reshape((n, 1, half))?.to_dtype(x.dtype())?;
        let ya = (a.broadcast_mul(&c)? - b.broadcast_mul(&s)?)?;
        let yb = (b.broadcast_mul(&c)? + a.broadcast_mul(&s)?)?;
        dims.push(width);
        Ok(Tensor::cat(&[ya, yb], D::Minus1)?.reshape(dims)?)
    }
}

/// What a self-attention layer attends to.
#[derive(Debug, Clone, Copy)]
pub enum AttentionMask<'a> {
    /// Each position sees itself and the positions before it.
    Causal,
    /// `[batch, seq]`, 1 for tokens and 0 for padding that no position may see.
    Keys(&'a Tensor),
}

/// Multi-head self-attention from a fused projection `qkv` `[batch · seq, 3·width]` of
/// `batch` sequences (queries, keys, values side by side) to `[batch · seq, width]`: the
/// fused kernel unless attention dropout is active in training (the kernel has none),
/// else composed.
pub fn self_attention(
    qkv: &Tensor,
    batch: usize,
    heads: usize,
    mask: AttentionMask<'_>,
    dropout: f32,
    kernels: Kernels,
    ctx: &mut Ctx<'_>,
) -> Result<Tensor> {
    if kernels.fuse(qkv) && (dropout <= 0.0 || !ctx.is_train()) {
        let out = match mask {
            AttentionMask::Causal => gradus_kernels::attention(qkv, batch, heads, true, None),
            AttentionMask::Keys(keys) => {
                gradus_kernels::attention(qkv, batch, heads, false, Some(keys))
            }
        };
        return Ok(out?);
    }
    let (rows, w3) = qkv.dims2()?;
    let (b, t, d) = (batch, rows / batch.max(1), w3 / 3);
    let qkv = qkv.reshape((b, t, w3))?;
    let q = split_heads(&qkv.narrow(D::Minus1, 0, d)?, heads)?;
    let k = split_heads(&qkv.narrow(D::Minus1, d, d)?, heads)?;
    let v = split_heads(&qkv.narrow(D::Minus1, 2 * d, d)?, heads)?;
    let additive = match mask {
        AttentionMask::Causal => causal_mask(t, qkv.device())?,
        // 0 where attending is allowed, −1e9 at padding: [batch, 1, 1, seq].
        AttentionMask::Keys(keys) => {
            ((keys.to_dtype(DType::F32)? - 1.0)? * 1e9)?.reshape((b, 1, 1, t))?
        }
    };
    let y = attention(&q, &k, &v, &additive.to_dtype(qkv.dtype())?, dropout, ctx)?;
    Ok(merge_heads(&y)?.reshape((rows, d))?)
}

/// `[seq, seq]`: 0 on and below the diagonal, −∞ above it.
fn causal_mask(t: usize, device: &candle_core::Device) -> Result<Tensor> {
    let values: Vec<f32> = (0..t)
        .flat_map(|i| (0..t).map(move |j| if j <= i { 0.0 } else { f32::NEG_INFINITY }))
        .collect();
    Ok(Tensor::from_vec(values, (t, t), device)?)
}

/// Multi-head attention over `[batch, heads, seq, head_dim]` tensors; `mask` is added to
/// the scores (0 where allowed, a large negative number where not) and broadcast.
fn attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: &Tensor,
    dropout: f32,
    ctx: &mut Ctx<'_>,
) -> Result<Tensor> {
    let scale = 1.0 / (q.dim(D::Minus1)? as f64).sqrt();
    let scores = (q.matmul(&k.t()?)? * scale)?.broadcast_add(mask)?;
    // The composed softmax: `softmax_last_dim` has no backward.
    let probs = candle_nn::ops::softmax(&scores, D::Minus1)?;
    let probs = ctx.dropout(&probs, dropout)?;
    Ok(probs.matmul(v)?)
}

/// `[batch, seq, heads * dim]` → `[batch, heads, seq, dim]`.
fn split_heads(x: &Tensor, heads: usize) -> Result<Tensor> {
    let (b, t, width) = x.dims3()?;
    Ok(x.reshape((b, t, heads, width / heads))?
        .transpose(1, 2)?
        .contiguous()?)
}

/// `[batch, heads, seq, dim]` → `[batch, seq, heads * dim]`.
fn merge_heads(x: &Tensor) -> Result<Tensor> {
    let (b, h, t, d) = x.dims4()?;
    Ok(x.transpose(1, 2)?.contiguous()?.reshape((b, t, h * d))?)
}
