//! The one switch between gradus's fused CPU kernels (`gradus-kernels`) and candle's
//! composed ops for GELU, layer norm, attention and the cross-entropy loss.

use candle_core::{DType, Tensor};
use serde::{Deserialize, Serialize};

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
}
