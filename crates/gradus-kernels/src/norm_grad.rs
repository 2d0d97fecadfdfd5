//! The backward kernel of the norms as one candle op: `(x, w, dy)` to the input gradient
//! and the weight's (and bias's) gradients packed into one 1-D tensor, which the norm's
//! `bwd` splits.

use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape};

use crate::storage::f32s;

/// A norm's backward: `(x, w, dy, eps) → [dx…, column sums…]`.
pub(crate) type Backward = fn(&[f32], &[f32], &[f32], f32) -> Result<Vec<f32>>;

pub(crate) struct NormGrad {
    pub name: &'static str,
    pub eps: f32,
    pub backward: Backward,
}

impl CustomOp3 for NormGrad {
    fn name(&self) -> &'static str {
        self.name
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
        gs: &CpuStorage,
        gl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = f32s(xs, xl, "norm input")?;
        let w = f32s(ws, wl, "norm weight")?;
        let dy = f32s(gs, gl, "norm gradient")?;
        let out = (self.backward)(x, w, dy, self.eps)?;
        let n = out.len();
        Ok((CpuStorage::F32(out), Shape::from(n)))
    }
}
