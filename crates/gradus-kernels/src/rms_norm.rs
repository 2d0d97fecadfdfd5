//! RMS norm over the last dimension, `y = x/√(mean(x²) + ε) · w` (Llama's `RMSNorm`),
//! with a backward pass (candle's fused `rms_norm` has none). As the layer norm kernel:
//! one pass per row forward, the row statistic recomputed in backward, and the weight
//! gradient summed per fixed block of rows, then in block order, so the result is the
//! same on any number of threads.

use candle_core::{Result, Shape, Tensor, bail};
use rayon::prelude::*;

use crate::math::dot;
use crate::norm_grad::NormGrad;
use crate::op::{Inputs, Kernel, Op, unpack};
use crate::par::{rows_backward, rows_per_task};
use crate::simd::wide;

/// 1/√(mean(x²) + ε) of a row.
#[inline(always)]
fn rstd(row: &[f32], eps: f32) -> f32 {
    1.0 / (dot(row, row) / row.len() as f32 + eps).sqrt()
}

fn check(x: usize, w: usize, what: &str) -> Result<()> {
    if w == 0 || !x.is_multiple_of(w) {
        bail!("rms norm{what}: input of {x} values, weight {w}")
    }
    Ok(())
}

fn forward(x: &[f32], w: &[f32], eps: f32) -> Result<Vec<f32>> {
    check(x.len(), w.len(), "")?;
    let mut y = vec![0.0f32; x.len()];
    let rows = rows_per_task(w.len()) * w.len();
    y.par_chunks_mut(rows)
        .zip(x.par_chunks(rows))
        .for_each(|(y, x)| forward_rows(y, x, w, eps));
    Ok(y)
}

wide! {
    fn forward_rows(y: &mut [f32], x: &[f32], w: &[f32], eps: f32) {
        let d = w.len();
        for (y, x) in y.chunks_exact_mut(d).zip(x.chunks_exact(d)) {
            let r = rstd(x, eps);
            for ((y, &x), &w) in y.iter_mut().zip(x).zip(w) {
                *y = x * r * w;
            }
        }
    }
}

/// `[dx…, dw…]` in one buffer: dx = r·(g − x̂·mean(g·x̂)) with g = dy·w and x̂ = x·r,
/// dw = Σ dy·x̂ over rows.
fn backward(x: &[f32], w: &[f32], dy: &[f32], eps: f32) -> Result<Vec<f32>> {
    check(x.len(), w.len(), " backward")?;
    if dy.len() != x.len() {
        bail!(
            "rms norm backward: {} inputs, {} gradients",
            x.len(),
            dy.len()
        )
    }
    let d = w.len();
    Ok(rows_backward(x, dy, d, d, |dx, x, dy| {
        backward_rows(dx, x, dy, w, eps)
    }))
}

wide! {
    /// dx of a block of rows, and its rows' Σ dy·x̂.
    fn backward_rows(dx: &mut [f32], x: &[f32], dy: &[f32], w: &[f32], eps: f32) -> Vec<f32> {
        let d = w.len();
        let mut dw = vec![0.0f32; d];
        let mut g = vec![0.0f32; d];
        let mut xhat = vec![0.0f32; d];
        for ((dx, x), dy) in dx
            .chunks_exact_mut(d)
            .zip(x.chunks_exact(d))
            .zip(dy.chunks_exact(d))
        {
            let r = rstd(x, eps);
            for ((xh, g), ((&x, &dy), &w)) in xhat
                .iter_mut()
                .zip(g.iter_mut())
                .zip(x.iter().zip(dy).zip(w))
            {
                *xh = x * r;
                *g = dy * w;
            }
            let mean_gx = dot(&g, &xhat) / d as f32;
            for ((dx, &g), &xh) in dx.iter_mut().zip(&g).zip(&xhat) {
                *dx = r * (g - xh * mean_gx);
            }
            for ((dw, &dy), &xh) in dw.iter_mut().zip(dy).zip(&xhat) {
                *dw += dy * xh;
            }
        }
        dw
    }
}

struct RmsNorm {
    eps: f32,
}

impl Kernel<2> for RmsNorm {
    const INPUTS: [&'static str; 2] = ["rms norm input", "rms norm weight"];

    fn name(&self) -> &'static str {
        "gradus-rms-norm"
    }

    fn forward(&self, x: &Inputs<'_, 2>) -> Result<(Vec<f32>, Shape)> {
        Ok((forward(x.f32(0)?, x.f32(1)?, self.eps)?, x.shape(0).clone()))
    }

    fn backward(
        &self,
        [x, w]: [&Tensor; 2],
        _y: &Tensor,
        dy: &Tensor,
    ) -> Result<[Option<Tensor>; 2]> {
        let grad = NormGrad {
            name: "gradus-rms-norm-grad",
            eps: self.eps,
            backward,
        };
        let [dx, dw] = unpack(&grad.apply(x, w, dy)?, [x, w])?;
        Ok([Some(dx), Some(dw)])
    }
}

/// RMS norm over the last dimension of an f32 CPU tensor, differentiable in x and the
/// weight.
pub fn rms_norm(x: &Tensor, weight: &Tensor, eps: f64) -> Result<Tensor> {
    let x = x.contiguous()?;
    if x.dim(candle_core::D::Minus1)? != weight.elem_count() {
        bail!(
            "rms norm: input {:?} against a weight of {}",
            x.dims(),
            weight.elem_count()
        )
    }
    x.apply_op2(&weight.contiguous()?, Op(RmsNorm { eps: eps as f32 }))
}
