//! Rotary position embedding (RoPE) in the layout Llama's Hugging Face implementation
//! uses: each head's first half and second half are the two coordinates of a pair
//! (`rotate_half`), rotated by the angle of the row's position. Works on the projection
//! as the model keeps it, `[batch · seq, heads · head_dim]`, so no split of heads. The
//! backward pass is the same rotation by the opposite angle.

use candle_core::{Result, Shape, Tensor, bail};
use rayon::prelude::*;

use crate::op::{Inputs, Kernel, Op};
use crate::par::rows_per_task;
use crate::simd::wide;

struct Rope {
    /// 1 forward, −1 backward (the inverse rotation).
    sign: f32,
    head_dim: usize,
}

impl Rope {
    fn apply(&self, x: &[f32], cos: &[f32], sin: &[f32], width: usize) -> Result<Vec<f32>> {
        let half = self.head_dim / 2;
        let seq = cos.len() / half.max(1);
        if half == 0 || !self.head_dim.is_multiple_of(2) || !width.is_multiple_of(self.head_dim) {
            bail!(
                "rope: width {width} is not heads of an even head width {}",
                self.head_dim
            )
        }
        if sin.len() != cos.len() || seq == 0 || !x.len().is_multiple_of(width * seq) {
            bail!(
                "rope: {} values of width {width} against {seq} positions",
                x.len()
            )
        }
        let mut y = vec![0.0f32; x.len()];
        let rows = rows_per_task(width);
        y.par_chunks_mut(rows * width)
            .zip(x.par_chunks(rows * width))
            .enumerate()
            .for_each(|(task, (y, x))| {
                for (r, (y, x)) in y
                    .chunks_exact_mut(width)
                    .zip(x.chunks_exact(width))
                    .enumerate()
                {
                    let p = (task * rows + r) % seq;
                    let (c, s) = (&cos[p * half..][..half], &sin[p * half..][..half]);
                    rotate_row(y, x, c, s, self.sign, half);
                }
            });
        Ok(y)
    }
}

wide! {
    /// Rotates every head of one row: (a, b) → (a·c − b·s, b·c + a·s).
    fn rotate_row(y: &mut [f32], x: &[f32], c: &[f32], s: &[f32], sign: f32, half: usize) {
        for (y, x) in y.chunks_exact_mut(2 * half).zip(x.chunks_exact(2 * half)) {
            let (ya, yb) = y.split_at_mut(half);
            let (xa, xb) = x.split_at(half);
            for i in 0..half {
                let s = sign * s[i];
                ya[i] = xa[i] * c[i] - xb[i] * s;
                yb[i] = xb[i] * c[i] + xa[i] * s;
            }
        }
    }
}

impl Kernel<3> for Rope {
    const INPUTS: [&'static str; 3] = ["rope input", "rope cosines", "rope sines"];

    fn name(&self) -> &'static str {
        "gradus-rope"
    }

    fn forward(&self, x: &Inputs<'_, 3>) -> Result<(Vec<f32>, Shape)> {
        let width = x.shape(0).dims().last().copied().unwrap_or(0);
        let y = self.apply(x.f32(0)?, x.f32(1)?, x.f32(2)?, width)?;
        Ok((y, x.shape(0).clone()))
    }

    fn backward(
        &self,
        [_, cos, sin]: [&Tensor; 3],
        _y: &Tensor,
        dy: &Tensor,
    ) -> Result<[Option<Tensor>; 3]> {
        let inverse = Rope {
            sign: -self.sign,
            head_dim: self.head_dim,
        };
        let dx = dy.contiguous()?.apply_op3_no_bwd(cos, sin, &Op(inverse))?;
        Ok([Some(dx), None, None])
    }
}

/// Rotates `x` (f32, CPU; `[batch · seq, heads · head_dim]` or `[batch, seq, …]`, rows
/// in sequence order) by the angles whose cosines and sines `cos` and `sin` hold,
/// `[seq, head_dim / 2]`, one row per position of the sequence. Differentiable in `x`.
pub fn rope(x: &Tensor, cos: &Tensor, sin: &Tensor, head_dim: usize) -> Result<Tensor> {
    let op = Rope {
        sign: 1.0,
        head_dim,
    };
    x.contiguous()?
        .apply_op3(&cos.contiguous()?, &sin.contiguous()?, Op(op))
}
