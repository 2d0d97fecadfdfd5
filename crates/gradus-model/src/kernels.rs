//! The one switch between gradus's fused CPU kernels (`gradus-kernels`) and candle's
//! composed ops for GELU, SwiGLU, the norms, attention, the cross-entropy loss and
//! broadcast adds.

use candle_core::{DType, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::Result;

/// Which implementation the models and losses use. `Fused` takes the fused kernels where
/// they exist (f32 on the CPU) and candle's ops elsewhere (CUDA, other dtypes), so GPU
/// results do not depend on it; `Composed` always takes candle's ops.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kernels {
    #[default]
    Fused,
    Composed,
}

impl Kernels {
    /// Whether `x` goes through a fused kernel.
    pub fn fuse(self, x: &Tensor) -> bool {
        self == Self::Fused && x.device().is_cpu() && x.dtype() == DType::F32
    }

    /// `x + b` with `b` repeated along `x` (a bias over rows, position embeddings over
    /// sequences): the fused kernel, whose backward sums the bias gradient row-wise, or
    /// candle's broadcast add.
    pub fn add_rows(self, x: &Tensor, b: &Tensor) -> Result<Tensor> {
        if self.fuse(x) && self.fuse(b) {
            return Ok(gradus_kernels::add_rows(x, b)?);
        }
        // `x` as repeats of `b`'s shape, so that the broadcast lines up.
        let mut repeats = vec![x.elem_count() / b.elem_count().max(1)];
        repeats.extend_from_slice(b.dims());
        Ok(x.reshape(repeats)?.broadcast_add(b)?.reshape(x.shape())?)
    }

    /// SwiGLU's gating silu(`gate`)·`up`: the fused kernel, or candle's ops.
    pub fn swiglu(self, gate: &Tensor, up: &Tensor) -> Result<Tensor> {
        if self.fuse(gate) && self.fuse(up) {
            return Ok(gradus_kernels::swiglu(gate, up)?);
        }
        Ok((gate.silu()? * up)?)
    }
}
