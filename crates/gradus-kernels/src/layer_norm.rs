//! Layer norm over the last dimension, `y = (x − μ)/√(σ² + ε) · w (+ b)`, with a backward
//! pass (candle's fused `layer_norm` has none). Forward is one pass per row after the
//! statistics; backward recomputes μ and 1/σ per row rather than keeping them, and sums
//! the weight and bias gradients per fixed block of rows, then adds the blocks in order,
//! so the result is the same on any number of threads.

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor, bail};
use rayon::prelude::*;

use crate::math::{dot, sum, sum_squared_deviation};
use crate::norm_grad::NormGrad;
use crate::par::{rows_backward, rows_per_task};
use crate::simd::wide;
use crate::storage::f32s;

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

/// The forward kernel on candle's storage (input, weight, optional bias).
fn forward_storage(
    (xs, xl): (&CpuStorage, &Layout),
    (ws, wl): (&CpuStorage, &Layout),
    bias: Option<(&CpuStorage, &Layout)>,
    eps: f32,
) -> Result<(CpuStorage, Shape)> {
    let x = f32s(xs, xl, "layer norm input")?;
    let w = f32s(ws, wl, "layer norm weight")?;
    let b = bias
        .map(|(bs, bl)| f32s(bs, bl, "layer norm bias"))
        .transpose()?;
    Ok((CpuStorage::F32(forward(x, w, b, eps)?), xl.shape().clone()))
}

struct LayerNorm {
    eps: f32,
}

impl CustomOp3 for LayerNorm {
    fn name(&self) -> &'static str {
        "gradus-layer-norm"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
        bs: &CpuStorage,
        bl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        forward_storage((xs, xl), (ws, wl), Some((bs, bl)), self.eps)
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (dx, dw, db) = unpack(x, w, &self.grad(x, w, dy)?)?;
        Ok((Some(dx), Some(dw), Some(db)))
    }
}

impl LayerNorm {
    fn grad(&self, x: &Tensor, w: &Tensor, dy: &Tensor) -> Result<Tensor> {
        let grad = NormGrad {
            name: "gradus-layer-norm-grad",
            eps: self.eps,
            backward,
        };
        x.apply_op3_no_bwd(w, &dy.contiguous()?, &grad)
    }
}

/// Splits the packed `[dx, dw, db]` buffer into tensors shaped like x and w.
fn unpack(x: &Tensor, w: &Tensor, packed: &Tensor) -> Result<(Tensor, Tensor, Tensor)> {
    let (n, d) = (x.elem_count(), w.elem_count());
    Ok((
        packed.narrow(0, 0, n)?.reshape(x.shape())?,
        packed.narrow(0, n, d)?.reshape(w.shape())?,
        packed.narrow(0, n + d, d)?.reshape(w.shape())?,
    ))
}

/// Layer norm without a bias: the same kernels, the bias gradient dropped.
struct LayerNormNoBias {
    eps: f32,
}

impl CustomOp2 for LayerNormNoBias {
    fn name(&self) -> &'static str {
        "gradus-layer-norm-no-bias"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        forward_storage((xs, xl), (ws, wl), None, self.eps)
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let packed = LayerNorm { eps: self.eps }.grad(x, w, dy)?;
        let (dx, dw, _) = unpack(x, w, &packed)?;
        Ok((Some(dx), Some(dw)))
    }
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
        Some(b) => x.apply_op3(&weight.contiguous()?, &b.contiguous()?, LayerNorm { eps }),
        None => x.apply_op2(&weight.contiguous()?, LayerNormNoBias { eps }),
    }
}
