//! Building blocks with a backward pass: linear, layer norm (composed: candle's fused
//! biased `LayerNorm` has no gradient), dropout driven by a seeded generator, attention.

use candle_core::{D, Device, Tensor};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::error::Result;
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
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = x.broadcast_matmul(&self.weight_in_out)?;
        Ok(match &self.bias {
            Some(b) => y.broadcast_add(b)?,
            None => y,
        })
    }
}

/// Layer norm over the last dimension, composed of differentiable ops.
#[derive(Debug, Clone)]
pub struct LayerNorm {
    weight: Tensor,
    bias: Option<Tensor>,
    eps: f64,
}

impl LayerNorm {
    pub fn new(p: &mut Params, name: &str, width: usize, eps: f64, bias: bool) -> Result<Self> {
        let weight = p.constant(&format!("{name}.weight"), &[width], 1.0, ParamKind::Norm)?;
        let bias = if bias {
            Some(p.constant(&format!("{name}.bias"), &[width], 0.0, ParamKind::Norm)?)
        } else {
            None
        };
        Ok(Self { weight, bias, eps })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
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

/// Multi-head attention over `[batch, heads, seq, head_dim]` tensors; `mask` is added to
/// the scores (0 where allowed, a large negative number where not) and broadcast.
pub fn attention(
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
pub fn split_heads(x: &Tensor, heads: usize) -> Result<Tensor> {
    let (b, t, width) = x.dims3()?;
    Ok(x.reshape((b, t, heads, width / heads))?
        .transpose(1, 2)?
        .contiguous()?)
}

/// `[batch, heads, seq, dim]` → `[batch, seq, heads * dim]`.
pub fn merge_heads(x: &Tensor) -> Result<Tensor> {
    let (b, h, t, d) = x.dims4()?;
    Ok(x.transpose(1, 2)?.contiguous()?.reshape((b, t, h * d))?)
}
