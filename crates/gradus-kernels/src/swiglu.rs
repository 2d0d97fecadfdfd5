//! SwiGLU's gating, silu(g)·u with silu(g) = g·σ(g) (the Llama MLP), with a backward
//! pass. Composed it is four tensor ops and a scalar `exp` per element, forward and more
//! backward; here one pass each way.

use candle_core::{Result, Shape, Tensor, bail};
use rayon::prelude::*;

use crate::math::exp;
use crate::op::{Inputs, Kernel, Op, unpack};
use crate::par::{CHUNK, Out, map2};
use crate::simd::wide;

#[inline(always)]
fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

wide! {
    fn forward_chunk(out: &mut Out, g: &[f32], u: &[f32]) {
        for ((o, &g), &u) in out.iter_mut().zip(g).zip(u) {
            o.write(g * sigmoid(g) * u);
        }
    }
}

wide! {
    /// dg = dy·u·σ(g)·(1 + g·(1 − σ(g))), du = dy·g·σ(g).
    fn backward_chunk(dg: &mut [f32], du: &mut [f32], g: &[f32], u: &[f32], dy: &[f32]) {
        for ((dg, du), ((&g, &u), &dy)) in dg.iter_mut().zip(du.iter_mut()).zip(g.iter().zip(u).zip(dy)) {
            let s = sigmoid(g);
            *dg = dy * u * s * (1.0 + g * (1.0 - s));
            *du = dy * g * s;
        }
    }
}

fn check(g: usize, u: usize, what: &str) -> Result<()> {
    if g != u {
        bail!("swiglu{what}: {g} gate values against {u} up values")
    }
    Ok(())
}

struct SwiGlu;

impl Kernel<2> for SwiGlu {
    const INPUTS: [&'static str; 2] = ["swiglu gate", "swiglu up"];

    fn name(&self) -> &'static str {
        "gradus-swiglu"
    }

    fn forward(&self, x: &Inputs<'_, 2>) -> Result<(Vec<f32>, Shape)> {
        let (g, u) = (x.f32(0)?, x.f32(1)?);
        check(g.len(), u.len(), "")?;
        Ok((map2(g, u, forward_chunk), x.shape(0).clone()))
    }

    fn backward(
        &self,
        [g, u]: [&Tensor; 2],
        _y: &Tensor,
        dy: &Tensor,
    ) -> Result<[Option<Tensor>; 2]> {
        let packed = g.apply_op3_no_bwd(u, &dy.contiguous()?, &Op(SwiGluGrad))?;
        let [dg, du] = unpack(&packed, [g, u])?;
        Ok([Some(dg), Some(du)])
    }
}

/// `(g, u, dy) → [dg…, du…]` in one 1-D tensor.
struct SwiGluGrad;

impl Kernel<3> for SwiGluGrad {
    const INPUTS: [&'static str; 3] = ["swiglu gate", "swiglu up", "swiglu gradient"];

    fn name(&self) -> &'static str {
        "gradus-swiglu-grad"
    }

    fn forward(&self, x: &Inputs<'_, 3>) -> Result<(Vec<f32>, Shape)> {
        let (g, u, dy) = (x.f32(0)?, x.f32(1)?, x.f32(2)?);
        check(g.len(), u.len(), " backward")?;
        check(g.len(), dy.len(), " backward")?;
        let n = g.len();
        let mut out = vec![0.0f32; 2 * n];
        let (dg, du) = out.split_at_mut(n);
        dg.par_chunks_mut(CHUNK)
            .zip(du.par_chunks_mut(CHUNK))
            .zip(
                g.par_chunks(CHUNK)
                    .zip(u.par_chunks(CHUNK))
                    .zip(dy.par_chunks(CHUNK)),
            )
            .for_each(|((dg, du), ((g, u), dy))| backward_chunk(dg, du, g, u, dy));
        Ok((out, Shape::from(2 * n)))
    }
}

/// silu(`gate`)·`up` of two f32 CPU tensors of one shape, differentiable in both.
pub fn swiglu(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    if gate.dims() != up.dims() {
        bail!("swiglu: gate {:?} against up {:?}", gate.dims(), up.dims())
    }
    gate.contiguous()?.apply_op2(&up.contiguous()?, Op(SwiGlu))
}
