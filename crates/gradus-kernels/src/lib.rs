//! Fused CPU kernels for training on candle.
//!
//! Composed candle ops allocate a fresh tensor per op; over a large parameter (a 30k-token
//! embedding matrix) an AdamW update made of a dozen ops spends its time in allocation
//! and page faults. The kernels here work in place, one pass per buffer.

mod adamw;

pub use adamw::{AdamwStep, adamw_in_place};
