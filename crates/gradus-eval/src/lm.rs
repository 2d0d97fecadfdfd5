//! Language-model figures on fixed windows: the neural model's loss, perplexity and bits
//! per byte, and the baselines measured on exactly the same targets.

use std::collections::HashMap;

use candle_core::Device;
use gradus_model::Decoder;
use gradus_pretrain::clm::clm_nll;
use serde::Serialize;

use crate::error::{EvalError, Result};
use crate::ngram::KneserNey;

/// Loss figures of one model (or baseline) on one set of targets.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LmScore {
    /// Mean negative log-likelihood per target token, in nats.
    pub loss: f64,
    pub perplexity: f64,
    /// Predicted tokens.
    pub tokens: u64,
    /// Bits per byte of the targets' text, when their byte count is known.
    pub bits_per_byte: Option<f64>,
}

impl LmScore {
    /// From a summed NLL (nats) over `tokens` targets spanning `bytes` bytes of text.
    pub fn from_sum(nll: f64, tokens: u64, bytes: Option<u64>) -> Result<Self> {
        if tokens == 0 {
            return Err(EvalError::Config("no tokens to evaluate".into()));
        }
        let loss = nll / tokens as f64;
        Ok(Self {
            loss,
            perplexity: loss.exp(),
            tokens,
            bits_per_byte: bytes
                .filter(|&b| b > 0)
                .map(|b| nll / std::f64::consts::LN_2 / b as f64),
        })
    }
}

/// A causal model's score on `windows` of `seq_len + 1` ids: each window's tokens after
/// the first are the targets, as in training.
pub fn clm_score(
    model: &Decoder,
    windows: &[Vec<u32>],
    batch_size: usize,
    device: &Device,
    bytes: Option<u64>,
) -> Result<LmScore> {
    let (nll, tokens) = clm_nll(model, windows, batch_size, device)?;
    LmScore::from_sum(nll, tokens, bytes)
}

/// An interpolated Kneser-Ney model of `order`, trained on `train` sequences, scored on
/// the same targets as [`clm_score`]: every id of each window after the first.
pub fn ngram_score(
    train: &[Vec<u32>],
    windows: &[Vec<u32>],
    order: usize,
    vocab: usize,
    bytes: Option<u64>,
) -> Result<LmScore> {
    let lm = KneserNey::train(train, order, 0.75, vocab)?;
    let (mut nll, mut tokens) = (0.0, 0u64);
    for w in windows {
        let lp = lm.log_probs(w)?;
        nll -= lp.iter().skip(1).sum::<f64>();
        tokens += lp.len().saturating_sub(1) as u64;
    }
    LmScore::from_sum(nll, tokens, bytes)
}

/// Token frequencies of a training stream, the context-free baseline of masked-token
/// prediction.
#[derive(Debug, Clone, Default)]
pub struct Unigram {
    counts: HashMap<u32, u64>,
    total: u64,
    vocab: usize,
}

/// How the unigram baseline does on a set of masked targets.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UnigramScore {
    pub loss: f64,
    pub perplexity: f64,
    /// Share of targets equal to the most frequent training token.
    pub accuracy: f64,
    pub tokens: u64,
}

impl Unigram {
    /// Counts `sequences` over a vocabulary of `vocab` ids (add-one smoothed).
    pub fn train<'a>(sequences: impl IntoIterator<Item = &'a [u32]>, vocab: usize) -> Self {
        let mut u = Self {
            vocab: vocab.max(1),
            ..Self::default()
        };
        for seq in sequences {
            for &id in seq {
                *u.counts.entry(id).or_default() += 1;
                u.total += 1;
            }
        }
        u
    }

    fn prob(&self, id: u32) -> f64 {
        (self.counts.get(&id).copied().unwrap_or(0) + 1) as f64
            / (self.total + self.vocab as u64) as f64
    }

    /// The most frequent id (the smallest among ties).
    pub fn mode(&self) -> Option<u32> {
        self.counts
            .iter()
            .max_by_key(|&(&id, &n)| (n, std::cmp::Reverse(id)))
            .map(|(&id, _)| id)
    }

    /// Loss, perplexity and accuracy on `targets`.
    pub fn score(&self, targets: &[u32]) -> Result<UnigramScore> {
        if targets.is_empty() {
            return Err(EvalError::Config("no masked targets to evaluate".into()));
        }
        let nll: f64 = targets.iter().map(|&t| -self.prob(t).ln()).sum();
        let mode = self.mode();
        let hits = targets.iter().filter(|&&t| Some(t) == mode).count();
        let n = targets.len() as f64;
        Ok(UnigramScore {
            loss: nll / n,
            perplexity: (nll / n).exp(),
            accuracy: hits as f64 / n,
            tokens: targets.len() as u64,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_per_byte_is_the_summed_loss_in_bits_over_bytes() {
        let s = LmScore::from_sum(8.0 * std::f64::consts::LN_2, 4, Some(2)).unwrap();
        assert!((s.bits_per_byte.unwrap() - 4.0).abs() < 1e-12);
        assert!((s.loss - 2.0 * std::f64::consts::LN_2).abs() < 1e-12);
        assert!((s.perplexity - 4.0).abs() < 1e-9);
        assert!(LmScore::from_sum(1.0, 0, None).is_err());
    }

    #[test]
    fn ngram_score_skips_each_windows_first_token() {
        // A stream that always counts 0,1,2,0,1,2: a trigram predicts it almost surely.
        let train: Vec<Vec<u32>> = vec![(0..300).map(|i| i % 3).collect()];
        let windows = vec![vec![0, 1, 2, 0, 1], vec![2, 0, 1, 2, 0]];
        let s = ngram_score(&train, &windows, 3, 3, None).unwrap();
        assert_eq!(s.tokens, 8);
        assert!(s.perplexity < 1.3, "{s:?}");
    }

    #[test]
    fn unigram_baseline_counts_and_smooths() {
        let seqs: Vec<Vec<u32>> = vec![vec![1, 1, 1, 2], vec![1, 3]];
        let u = Unigram::train(seqs.iter().map(Vec::as_slice), 4);
        assert_eq!(u.mode(), Some(1));
        let s = u.score(&[1, 2]).unwrap();
        // P(1) = (4+1)/(6+4) = 0.5, P(2) = (1+1)/10 = 0.2.
        let expect = -(0.5f64.ln() + 0.2f64.ln()) / 2.0;
        assert!((s.loss - expect).abs() < 1e-12);
        assert!((s.accuracy - 0.5).abs() < 1e-12);
    }
}
