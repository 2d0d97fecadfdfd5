//! Losses as sums over tokens, so that gradient accumulation can divide by the tokens of
//! the whole step rather than by the number of micro-batches.

use candle_core::{D, DType, Tensor};

use crate::error::Result;
use crate::kernels::Kernels;

/// Sum over rows of −log p(target) for `logits` `[rows, classes]` and u32 `targets`
/// `[rows]`; rows whose `weights` (f32 `[rows]`, optional) is 0 do not count. `kernels`
/// is the model's choice (the fused cross-entropy, or log-softmax and gather).
pub fn nll_sum(
    logits: &Tensor,
    targets: &Tensor,
    weights: Option<&Tensor>,
    kernels: Kernels,
) -> Result<Tensor> {
    let nll = if kernels.fuse(logits) {
        gradus_kernels::cross_entropy(logits, targets)?
    } else {
        let logp = candle_nn::ops::log_softmax(logits, D::Minus1)?;
        logp.gather(&targets.unsqueeze(1)?, 1)?.squeeze(1)?.neg()?
    };
    let nll = match weights {
        Some(w) => nll.mul(w)?,
        None => nll,
    };
    Ok(nll.sum_all()?)
}

/// Rows whose arg-max equals the target (and whose weight is non-zero).
pub fn correct(logits: &Tensor, targets: &Tensor, weights: Option<&Tensor>) -> Result<f64> {
    let hits = logits
        .argmax(D::Minus1)?
        .eq(targets)?
        .to_dtype(DType::F32)?;
    let hits = match weights {
        Some(w) => hits.mul(w)?,
        None => hits,
    };
    Ok(f64::from(hits.sum_all()?.to_scalar::<f32>()?))
}

/// Sum of squared errors for regression: `pred` `[rows, 1]` or `[rows]`, `target` `[rows]`.
pub fn squared_error_sum(pred: &Tensor, target: &Tensor) -> Result<Tensor> {
    let pred = pred.flatten_all()?;
    Ok(pred.sub(target)?.sqr()?.sum_all()?)
}
