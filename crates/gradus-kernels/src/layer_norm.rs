//! Layer norm over the last dimension, `y = (x − μ)/√(σ² + ε) · w (+ b)`, with a backward
//! pass (candle's fused `layer_norm` has none). Forward is one pass per row after the
//! statistics; backward recomputes μ and 1/σ per row rather than keeping them, and sums
//! the weight and bias gradients per fixed block of rows, then adds the blocks in order,
//! so the result is the same on any number of threads.

use candle_core::{Result, Shape, Tensor, bail};
use rayon::prelude::*;

use crate::math::{dot, sum, sum_squared_deviation};
use crate::norm_grad::NormGrad;
use crate::op::{Inputs, Kernel, Op, unpack};
use crate::par::{rows_backward, rows_per_task};
use crate::simd::wide;

/// (μ, 1/√(σ² + ε)) of a row, σ² from the centred values (two passes, as PyTorch).
#[inline(always)]
fn stats(row: &[f32], eps: f32) -> (f32, f32) {
    let n = row.len() as f32;
    let mean = sum(row) / n;
    let var = sum_squared_deviation(row, mean) / n;
    (mean, 1.0 / (var + eps).sqrt())
}

fn forward(x: &[f32], w: &[f32], b: Option<&[f32]>, eps: f32) -> Result<Vec<f32>> {
    let d = w.len();
    if d == 0 || !x.len().is_multiple_of(d) || b.is_some_and(|b| b.len() != d) {
        bail!("layer norm: input of {} values, weight {d}", x.len())
    }
    let mut y = vec![0.0f32; x.len()];
    let rows = rows_per_task(d) * d;
    y.par_chunks_mut(rows)
        .zip(x.par_chunks(rows))
        .for_each(|(y, x)| forward_rows(y, x, w, b, eps));
    Ok(y)
}

wide! {
    fn forward_rows(y: &mut [f32], x: &[f32], w: &[f32], b: Option<&[f32]>, eps: f32) {
        let d = w.len();
        for (y, x) in y.chunks_exact_mut(d).zip(x.chunks_exact(d)) {
            let (mean, rstd) = stats(x, eps);
            match b {
                Some(b) => {
                    for (((y, &x), &w), &b) in y.iter_mut().zip(x).zip(w).zip(b) {
                        *y = (x - mean) * rstd * w + b;
                    }
                }
                None => {
                    for ((y, &x), &w) in y.iter_mut().zip(x).zip(w) {
                        *y = (x - mean) * rstd * w;
                    }
                }
            }
        }
    }
}

/// `[dx…, dw…, db…]` in one buffer: dx = (1/σ)·(g − mean(g) − x̂·mean(g·x̂)) with g = dy·w,
/// dw = Σ dy·x̂, db = Σ dy over rows.
fn backward(x: &[f32], w: &[f32], dy: &[f32], eps: f32) -> Result<Vec<f32>> {
    let d = w.len();
    if d == 0 || !x.len().is_multiple_of(d) || dy.len() != x.len() {
        bail!(
            "layer norm backward: {} inputs, {} gradients, width {d}",
            x.len(),
            dy.len()
        )
    }
    Ok(rows_backward(x, dy, d, 2 * d, |dx, x, dy| {
        backward_rows(dx, x, dy, w, eps)
    }))
}

wide! {
    /// dx of a block of rows, and its rows' [Σ dy·x̂, Σ dy].
    fn backward_rows(dx: &mut [f32], x: &[f32], dy: &[f32], w: &[f32], eps: f32) -> Vec<f32> {
        let d = w.len();
        let mut acc = vec![0.0f32; 2 * d];
        let mut g = vec![0.0f32; d];
        let mut xhat = vec![0.0f32; d];
        for ((dx, x), dy) in dx
            .chunks_exact_mut(d)
            .zip(x.chunks_exact(d))
            .zip(dy.chunks_exact(d))
        {
            let (mean, rstd) = stats(x, eps);
            for ((xh, g), ((&x, &dy), &w)) in xhat
                .iter_mut()
                .zip(g.iter_mut())
                .zip(x.iter().zip(dy).zip(w))
            {
                *xh = (x - mean) * rstd;
                *g = dy * w;
            }
            let mean_g = sum(&g) / d as f32;
            let mean_gx = dot(&g, &xhat) / d as f32;
            for ((dx, &g), &xh) in dx.iter_mut().zip(&g).zip(&xhat) {
                *dx = rstd * (g - mean_g - xh * mean_gx);
            }
            let (dw, db) = acc.split_at_mut(d);
            for (((dw, db), &dy), &xh) in dw.iter_mut().zip(db.iter_mut()).zip(dy).zip(&xhat) {
                *dw += dy * xh;
                *db += dy;
            }
        }
        acc
    }
}

struct LayerNorm {
    eps: f32,
}

impl Kernel<3> for LayerNorm {
    const INPUTS: [&'static str; 3] = ["layer norm input", "layer norm weight", "layer norm bias"];

    fn name(&self) -> &'static str {
        "gradus-layer-norm"
    }

    fn forward(&self, x: &Inputs<'_, 3>) -> Result<(Vec<f32>, Shape)> {
        let y = forward(x.f32(0)?, x.f32(1)?, Some(x.f32(2)?), self.eps)?;
        Ok((y, x.shape(0).clone()))
    }

    fn backward(
        &self,
        [x, w, _]: [&Tensor; 3],
        _y: &Tensor,
        dy: &Tensor,
    ) -> Result<[Option<Tensor>; 3]> {
        let [dx, dw, db] = grads(self.eps, x, w, dy)?;
        Ok([Some(dx), Some(dw), Some(db)])
    }
}

/// Layer norm without a bias: the same kernels, the bias gradient dropped.
struct LayerNormNoBias {
    eps: f32,
}

impl Kernel<2> for LayerNormNoBias {
    const INPUTS: [&'static str; 2] = ["layer norm input", "layer norm weight"];

    fn name(&self) -> &'static str {
        "gradus-layer-norm-no-bias"
    }

    fn forward(&self, x: &Inputs<'_, 2>) -> Result<(Vec<f32>, Shape)> {
        let y = forward(x.f32(0)?, x.f32(1)?, None, self.eps)?;
        Ok((y, x.shape(0).clone()))
    }

    fn backward(
        &self,
        [x, w]: [&Tensor; 2],
        _y: &Tensor,
        dy: &Tensor,
    ) -> Result<[Option<Tensor>; 2]> {
        let [dx, dw, _] = grads(self.eps, x, w, dy)?;
        Ok([Some(dx), Some(dw)])
    }
}

/// The gradients of x, the weight and the bias, shaped like them.
fn grads(eps: f32, x: &Tensor, w: &Tensor, dy: &Tensor) -> Result<[Tensor; 3]> {
    let grad = NormGrad {
        name: "gradus-layer-norm-grad",
        eps,
        backward,
    };
    unpack(&grad.apply(x, w, dy)?, [x, w, w])
}

/// Layer norm over the last dimension of an f32 CPU tensor, differentiable in x, the
/// weight and the bias.
pub fn layer_norm(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>, eps: f64) -> Result<Tensor> {
    let x = x.contiguous()?;
    if x.dim(candle_core::D::Minus1)? != weight.elem_count() {
        bail!(
            "layer norm: input {:?} against a weight of {}",
            x.dims(),
            weight.elem_count()
        )
    }
    let eps = eps as f32;
    match bias {
        Some(b) => x.apply_op3(
            &weight.contiguous()?,
            &b.contiguous()?,
            Op(LayerNorm { eps }),
        ),
        None => x.apply_op2(&weight.contiguous()?, Op(LayerNormNoBias { eps })),
    }
}
