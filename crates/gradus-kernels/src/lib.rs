//! Fused CPU kernels for training on candle, each a `CustomOp` with its backward pass.
//!
//! Composed candle ops allocate a fresh tensor per op and call scalar library functions
//! (`exp`, `erf`) per element; GELU, SwiGLU, layer norm, RMS norm, rotary embeddings,
//! attention, the loss and the broadcast adds made of them cost several times PyTorch's
//! fused kernels, forward and backward. Here each is one pass over its data forward and
//! one backward, in loops written to vectorise, split over rayon's pool in fixed chunks
//! (so results do not depend on the thread count). The AdamW update works in place. All
//! kernels take f32 tensors on the CPU; the models use candle's own ops on other devices.

mod adamw;
mod add_rows;
mod attention;
mod cross_entropy;
mod gelu;
mod layer_norm;
pub mod math;
mod norm_grad;
mod op;
mod par;
mod rms_norm;
mod rope;
mod simd;
mod storage;
mod swiglu;

pub use adamw::{AdamwStep, adamw_in_place};
pub use add_rows::add_rows;
pub use attention::attention;
pub use cross_entropy::cross_entropy;
pub use gelu::{GeluForm, gelu};
pub use layer_norm::layer_norm;
pub use rms_norm::rms_norm;
pub use rope::rope;
pub use swiglu::swiglu;
