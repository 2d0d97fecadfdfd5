//! Sampling from a causal LM: temperature, top-k, top-p (nucleus), seeded.

use candle_core::{D, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::gpt::Gpt;
use crate::layers::Ctx;

/// How to pick each next token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sampling {
    /// 0 picks the most likely token (greedy).
    pub temperature: f64,
    /// Keep only the `k` most likely tokens (0: all).
    pub top_k: usize,
    /// Keep the smallest set of tokens whose probability reaches `p` (1: all).
    pub top_p: f64,
    pub seed: u64,
}

impl Default for Sampling {
    fn default() -> Self {
        Self {
            temperature: 0.8,
            top_k: 200,
            top_p: 1.0,
            seed: 0,
        }
    }
}

/// Continues `prompt` by `new_tokens` tokens (stopping early at `stop`, if given).
pub fn generate(
    model: &Gpt,
    prompt: &[u32],
    new_tokens: usize,
    sampling: &Sampling,
    stop: Option<u32>,
) -> Result<Vec<u32>> {
    let mut rng = ChaCha8Rng::seed_from_u64(sampling.seed);
    let window = model.config().n_positions;
    let device = model_device(model)?;
    let mut ids = prompt.to_vec();
    for _ in 0..new_tokens {
        let start = ids.len().saturating_sub(window);
        let input = Tensor::new(&ids[start..], &device)?.unsqueeze(0)?;
        let logits = model.logits(&input, &mut Ctx::eval())?;
        let last = logits.narrow(1, logits.dim(1)? - 1, 1)?.flatten_all()?;
        let next = pick(&last, sampling, &mut rng)?;
        ids.push(next);
        if Some(next) == stop {
            break;
        }
    }
    Ok(ids[prompt.len()..].to_vec())
}

fn model_device(model: &Gpt) -> Result<candle_core::Device> {
    Ok(model.device().clone())
}

/// Samples one token id from `logits` `[vocab]`.
fn pick(logits: &Tensor, s: &Sampling, rng: &mut ChaCha8Rng) -> Result<u32> {
    if s.temperature <= 0.0 {
        return Ok(logits.argmax(D::Minus1)?.to_scalar::<u32>()?);
    }
    let probs = candle_nn::ops::softmax(&(logits / s.temperature)?, D::Minus1)?.to_vec1::<f32>()?;
    let mut order: Vec<usize> = (0..probs.len()).collect();
    // Descending probability; ties by id so the order is the same everywhere.
    order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]).then(a.cmp(&b)));
    if s.top_k > 0 {
        order.truncate(s.top_k);
    }
    if s.top_p < 1.0 {
        let mut mass = 0.0;
        let keep = order
            .iter()
            .position(|&i| {
                mass += f64::from(probs[i]);
                mass >= s.top_p
            })
            .map_or(order.len(), |p| p + 1);
        order.truncate(keep);
    }
    let total: f64 = order.iter().map(|&i| f64::from(probs[i])).sum();
    let mut u = rng.random::<f64>() * total;
    for &i in &order {
        u -= f64::from(probs[i]);
        if u <= 0.0 {
            return Ok(i as u32);
        }
    }
    Ok(order.last().copied().unwrap_or(0) as u32)
}
