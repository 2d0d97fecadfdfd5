//! The backward kernel of the norms as one candle op: `(x, w, dy)` to the input gradient
//! and the weight's (and bias's) gradients packed into one 1-D tensor, which the norm's
//! `bwd` splits.

use candle_core::{Result, Shape, Tensor};

use crate::op::{Inputs, Kernel, Op};

/// A norm's backward: `(x, w, dy, eps) → [dx…, column sums…]`.
pub(crate) type Backward = fn(&[f32], &[f32], &[f32], f32) -> Result<Vec<f32>>;

pub(crate) struct NormGrad {
    pub name: &'static str,
    pub eps: f32,
    pub backward: Backward,
}

impl NormGrad {
    /// The packed gradients of a norm of `x` with weight `w`, given the output's `dy`.
    pub fn apply(self, x: &Tensor, w: &Tensor, dy: &Tensor) -> Result<Tensor> {
        x.apply_op3_no_bwd(w, &dy.contiguous()?, &Op(self))
    }
}

impl Kernel<3> for NormGrad {
    const INPUTS: [&'static str; 3] = ["norm input", "norm weight", "norm gradient"];

    fn name(&self) -> &'static str {
        self.name
    }

    fn forward(&self, x: &Inputs<'_, 3>) -> Result<(Vec<f32>, Shape)> {
        let out = (self.backward)(x.f32(0)?, x.f32(1)?, x.f32(2)?, self.eps)?;
        let n = out.len();
        Ok((out, Shape::from(n)))
    }
}
