//! GELU, x·Φ(x), in its exact (erf) form and GPT-2's tanh form, with a backward pass. The
//! composed candle version is a dozen tensor ops and scalar `erf` calls; here it is one
//! pass forward and one backward.

use std::f32::consts::FRAC_2_SQRT_PI;

use candle_core::{Result, Shape, Tensor, bail};

use crate::math::{normal_cdf, normal_pdf, tanh};
use crate::op::{Inputs, Kernel, Op};
use crate::par::{Out, map1, map2};
use crate::simd::wide;

/// Which GELU: `Erf` is x·Φ(x) (BERT's `gelu`, nanoGPT's `nn.GELU()`), `Tanh` is
/// GPT-2's `gelu_new`, 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GeluForm {
    Erf,
    Tanh,
}

/// √(2/π).
const K: f32 = FRAC_2_SQRT_PI * std::f32::consts::FRAC_1_SQRT_2;
const A: f32 = 0.044_715;

#[inline(always)]
fn gelu_erf(x: f32) -> f32 {
    x * normal_cdf(x)
}

#[inline(always)]
fn gelu_erf_grad(x: f32, g: f32) -> f32 {
    g * (normal_cdf(x) + x * normal_pdf(x))
}

#[inline(always)]
fn gelu_tanh(x: f32) -> f32 {
    0.5 * x * (1.0 + tanh(K * (x + A * x * x * x)))
}

#[inline(always)]
fn gelu_tanh_grad(x: f32, g: f32) -> f32 {
    let th = tanh(K * (x + A * x * x * x));
    g * (0.5 * (1.0 + th) + 0.5 * x * (1.0 - th * th) * K * (1.0 + 3.0 * A * x * x))
}

wide! {
    fn gelu_erf_chunk(out: &mut Out, x: &[f32]) {
        for (o, &x) in out.iter_mut().zip(x) {
            o.write(gelu_erf(x));
        }
    }
}

wide! {
    fn gelu_tanh_chunk(out: &mut Out, x: &[f32]) {
        for (o, &x) in out.iter_mut().zip(x) {
            o.write(gelu_tanh(x));
        }
    }
}

wide! {
    fn gelu_erf_grad_chunk(out: &mut Out, x: &[f32], g: &[f32]) {
        for ((o, &x), &g) in out.iter_mut().zip(x).zip(g) {
            o.write(gelu_erf_grad(x, g));
        }
    }
}

wide! {
    fn gelu_tanh_grad_chunk(out: &mut Out, x: &[f32], g: &[f32]) {
        for ((o, &x), &g) in out.iter_mut().zip(x).zip(g) {
            o.write(gelu_tanh_grad(x, g));
        }
    }
}

struct Gelu(GeluForm);

impl Kernel<1> for Gelu {
    const INPUTS: [&'static str; 1] = ["gelu input"];

    fn name(&self) -> &'static str {
        "gradus-gelu"
    }

    fn forward(&self, x: &Inputs<'_, 1>) -> Result<(Vec<f32>, Shape)> {
        let y = match self.0 {
            GeluForm::Erf => map1(x.f32(0)?, gelu_erf_chunk),
            GeluForm::Tanh => map1(x.f32(0)?, gelu_tanh_chunk),
        };
        Ok((y, x.shape(0).clone()))
    }

    fn backward(&self, [x]: [&Tensor; 1], _y: &Tensor, dy: &Tensor) -> Result<[Option<Tensor>; 1]> {
        Ok([Some(x.apply_op2_no_bwd(
            &dy.contiguous()?,
            &Op(GeluGrad(self.0)),
        )?)])
    }
}

/// dL/dx from x and dL/dy.
struct GeluGrad(GeluForm);

impl Kernel<2> for GeluGrad {
    const INPUTS: [&'static str; 2] = ["gelu input", "gelu gradient"];

    fn name(&self) -> &'static str {
        "gradus-gelu-grad"
    }

    fn forward(&self, i: &Inputs<'_, 2>) -> Result<(Vec<f32>, Shape)> {
        let (x, g) = (i.f32(0)?, i.f32(1)?);
        if x.len() != g.len() {
            bail!("gelu backward: {} inputs, {} gradients", x.len(), g.len())
        }
        let dx = match self.0 {
            GeluForm::Erf => map2(x, g, gelu_erf_grad_chunk),
            GeluForm::Tanh => map2(x, g, gelu_tanh_grad_chunk),
        };
        Ok((dx, i.shape(0).clone()))
    }
}

/// GELU of an f32 CPU tensor of any shape, differentiable.
pub fn gelu(x: &Tensor, form: GeluForm) -> Result<Tensor> {
    x.contiguous()?.apply_op1(Op(Gelu(form)))
}
