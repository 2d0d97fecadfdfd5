//! Sampling from a causal LM: temperature, top-k, top-p (nucleus), seeded; a batch of
//! prompts of different lengths at once; keys and values cached between steps.
//!
//! With the cache, the prompts are read once and each step reads one new token per
//! sequence. Past the model's context, both decoders recompute each step over the last
//! `context` tokens: a GPT's learned positions stop at its context, and a Llama's rotary
//! tables end there too (its keys, rotated at their own positions, would need
//! positions it never trained on).

use candle_core::{D, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::cache::DecoderCache;
use crate::decoder::Decoder;
use crate::error::Result;

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
            seed: 42,
        }
    }
}

impl Sampling {
    /// Refuses settings with no meaning, as HF's generation config does: a temperature
    /// that is negative or not a number, a `top_p` outside (0, 1].
    pub fn check(&self) -> std::result::Result<(), String> {
        if !(self.temperature.is_finite() && self.temperature >= 0.0) {
            return Err(format!(
                "temperature {}: must be a number ≥ 0 (0 is greedy)",
                self.temperature
            ));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(format!(
                "top_p {}: must be within (0, 1] (1 keeps every token)",
                self.top_p
            ));
        }
        Ok(())
    }
}

/// What to generate for each prompt.
#[derive(Debug, Clone, PartialEq)]
pub struct Generation {
    pub max_new_tokens: usize,
    pub sampling: Sampling,
    /// Keep keys and values between steps (false: recompute every step, for comparison).
    pub cache: bool,
}

/// Continues `prompt` by `new_tokens` tokens (stopping early at `stop`, if given).
pub fn generate(
    model: &Decoder,
    prompt: &[u32],
    new_tokens: usize,
    sampling: &Sampling,
    stop: Option<u32>,
) -> Result<Vec<u32>> {
    let generation = Generation {
        max_new_tokens: new_tokens,
        sampling: sampling.clone(),
        cache: true,
    };
    let mut done = |_: usize, new: &[u32]| stop.is_some() && new.last().copied() == stop;
    let mut out = generate_batch(model, &[prompt.to_vec()], &generation, &mut done)?;
    Ok(out.pop().unwrap_or_default())
}

/// Continues each of `prompts` (non-empty, of any lengths) by up to `max_new_tokens`,
/// as if each were continued alone: every sequence samples from its own generator
/// seeded with the sampling seed. `done(i, new)` says whether sequence i stops after its
/// newest token (an end-of-text token, a stop string); a stopped sequence is padding from
/// then on. Returns each sequence's new tokens.
pub fn generate_batch(
    model: &Decoder,
    prompts: &[Vec<u32>],
    generation: &Generation,
    done: &mut dyn FnMut(usize, &[u32]) -> bool,
) -> Result<Vec<Vec<u32>>> {
    if prompts.iter().any(Vec::is_empty) {
        return Err(crate::error::ModelError::Config(
            "an empty prompt: give each sequence at least one token".into(),
        ));
    }
    let s = &generation.sampling;
    s.check().map_err(crate::error::ModelError::Config)?;
    let mut rngs: Vec<ChaCha8Rng> = prompts
        .iter()
        .map(|_| ChaCha8Rng::seed_from_u64(s.seed))
        .collect();
    let mut seqs = prompts.to_vec();
    let mut new: Vec<Vec<u32>> = vec![Vec::new(); prompts.len()];
    let mut finished = vec![false; prompts.len()];
    let mut cache: Option<DecoderCache> = None;
    for _ in 0..generation.max_new_tokens {
        let logits = next_logits(model, &seqs, &finished, generation.cache, &mut cache)?;
        for (i, seq) in seqs.iter_mut().enumerate() {
            if finished[i] {
                continue;
            }
            let next = pick(&logits.get(i)?, s, &mut rngs[i])?;
            seq.push(next);
            new[i].push(next);
            finished[i] = done(i, &new[i]);
        }
        if finished.iter().all(|&f| f) {
            break;
        }
    }
    Ok(new)
}

/// Logits `[batch, vocab]` of each sequence's next token: one cached step when the
/// cache holds the sequences and has room, else the sequences' last `context` tokens
/// read afresh.
fn next_logits(
    model: &Decoder,
    seqs: &[Vec<u32>],
    finished: &[bool],
    use_cache: bool,
    cache: &mut Option<DecoderCache>,
) -> Result<Tensor> {
    let device = model.device().clone();
    if let Some(c) = cache.as_mut().filter(|c| c.len() < model.context()) {
        let column: Vec<Vec<Option<u32>>> = seqs
            .iter()
            .zip(finished)
            .map(|(s, &f)| vec![if f { None } else { s.last().copied() }])
            .collect();
        let input = c.step(&column, &device)?;
        return model.step_logits(&input, c);
    }
    let window = model.context();
    let longest = seqs.iter().map(|s| s.len().min(window)).max().unwrap_or(0);
    // Past the context the cache would be full: every later step reads afresh too.
    let keep = use_cache && longest < window;
    if !keep && seqs.iter().all(|s| s.len().min(window) == longest) {
        *cache = None;
        return forward_logits(model, seqs, longest);
    }
    let rows: Vec<Vec<Option<u32>>> = seqs
        .iter()
        .map(|s| {
            let tail = &s[s.len().saturating_sub(window)..];
            let pad = std::iter::repeat_n(None, longest - tail.len());
            pad.chain(tail.iter().map(|&t| Some(t))).collect()
        })
        .collect();
    let mut fresh = model.cache(seqs.len());
    let input = fresh.step(&rows, &device)?;
    let logits = model.step_logits(&input, &mut fresh)?;
    *cache = keep.then_some(fresh);
    Ok(logits)
}

/// Logits `[batch, vocab]` of each sequence's next token by the model's training
/// forward pass (fused kernels) over its last `window` tokens: recomputation when no
/// padding is needed.
fn forward_logits(model: &Decoder, seqs: &[Vec<u32>], window: usize) -> Result<Tensor> {
    let ids: Vec<u32> = seqs
        .iter()
        .flat_map(|s| s[s.len() - window..].iter().copied())
        .collect();
    let ids = Tensor::from_vec(ids, (seqs.len(), window), model.device())?;
    let logits = model.logits(&ids, &mut crate::layers::Ctx::eval())?;
    Ok(logits.narrow(1, window - 1, 1)?.squeeze(1)?)
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
