//! Interpolated Kneser-Ney n-gram language model over token ids.
//!
//! The highest order uses raw counts, each lower order continuation counts (how many
//! distinct tokens precede an n-gram), and every order gives `discount` of each seen
//! n-gram's mass to the order below; the lowest order falls back to a uniform
//! distribution over the vocabulary, so no token has probability 0. Each sequence starts
//! with `order - 1` beginning-of-sequence markers.

use std::collections::HashMap;

use crate::error::EvalError;

/// The id standing for "before the sequence"; never predicted.
const BOS: u32 = u32::MAX;

/// Next-token counts of one context, and their total.
#[derive(Debug, Default)]
struct Table {
    next: HashMap<u32, f64>,
    total: f64,
}

/// A trained model: one table of contexts per order (context length 0 to order − 1).
#[derive(Debug)]
pub struct KneserNey {
    order: usize,
    discount: f64,
    vocab: usize,
    /// `levels[k]`: contexts of `k` tokens.
    levels: Vec<HashMap<Vec<u32>, Table>>,
}

impl KneserNey {
    /// Counts the n-grams of `sequences` (ids below `vocab`).
    pub fn train(
        sequences: &[Vec<u32>],
        order: usize,
        discount: f64,
        vocab: usize,
    ) -> Result<Self, EvalError> {
        if order == 0 || !(discount > 0.0 && discount < 1.0) || vocab == 0 {
            return Err(EvalError::Config(format!(
                "order {order}, discount {discount}, vocabulary {vocab}: need order ≥ 1, \
                 0 < discount < 1 and a vocabulary"
            )));
        }
        let mut levels: Vec<HashMap<Vec<u32>, Table>> =
            (0..order).map(|_| HashMap::new()).collect();
        // Distinct n-grams of each length, for the continuation counts below the top.
        let mut seen: Vec<std::collections::HashSet<Vec<u32>>> =
            vec![Default::default(); order + 1];
        for seq in sequences {
            let padded = pad(seq, order, vocab)?;
            for end in order - 1..padded.len() {
                let top = &padded[end + 1 - order..=end];
                add(
                    &mut levels[order - 1],
                    &top[..order - 1],
                    top[order - 1],
                    1.0,
                );
                for len in 2..=order {
                    let gram = &padded[end + 1 - len..=end];
                    seen[len].insert(gram.to_vec());
                }
            }
        }
        // A lower-order context's count of w: the distinct tokens seen before (context, w).
        for len in 2..=order {
            let k = len - 2;
            for gram in &seen[len] {
                add(&mut levels[k], &gram[1..len - 1], gram[len - 1], 1.0);
            }
        }
        Ok(Self {
            order,
            discount,
            vocab,
            levels,
        })
    }

    /// P(`token` | `context`), `context` holding the preceding ids (BOS-padded).
    fn prob(&self, context: &[u32], token: u32) -> f64 {
        let k = context.len();
        let lower = if k == 0 {
            1.0 / self.vocab as f64
        } else {
            self.prob(&context[1..], token)
        };
        let Some(table) = self.levels[k].get(context) else {
            return lower;
        };
        let count = table.next.get(&token).copied().unwrap_or(0.0);
        let types = table.next.len() as f64;
        ((count - self.discount).max(0.0) + self.discount * types * lower) / table.total
    }

    /// The natural-log probability of every token of `seq`.
    pub fn log_probs(&self, seq: &[u32]) -> Result<Vec<f64>, EvalError> {
        let padded = pad(seq, self.order, self.vocab)?;
        Ok((self.order - 1..padded.len())
            .map(|end| {
                let context = &padded[end + 1 - self.order..end];
                self.prob(context, padded[end]).ln()
            })
            .collect())
    }

    /// exp of the mean negative log-probability over every token of `sequences`.
    pub fn perplexity(&self, sequences: &[Vec<u32>]) -> Result<f64, EvalError> {
        let (mut nll, mut n) = (0.0, 0usize);
        for seq in sequences {
            let lp = self.log_probs(seq)?;
            nll -= lp.iter().sum::<f64>();
            n += lp.len();
        }
        if n == 0 {
            return Err(EvalError::Config("no tokens to evaluate".into()));
        }
        Ok((nll / n as f64).exp())
    }
}

fn add(level: &mut HashMap<Vec<u32>, Table>, context: &[u32], token: u32, by: f64) {
    let table = level.entry(context.to_vec()).or_default();
    *table.next.entry(token).or_default() += by;
    table.total += by;
}

fn pad(seq: &[u32], order: usize, vocab: usize) -> Result<Vec<u32>, EvalError> {
    if let Some(&id) = seq.iter().find(|&&id| id as usize >= vocab) {
        return Err(EvalError::OutOfVocabulary { id, vocab });
    }
    let mut out = vec![BOS; order - 1];
    out.extend_from_slice(seq);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bigram model, discount 1/2, vocabulary {a, b, c} = {0, 1, 2}, trained on "a b a b".
    /// Continuation counts: a follows two distinct tokens (BOS, b), b one (a), of three
    /// distinct bigrams, so P1(a) = (2 − ½ + ½·2·⅓)/3 = 11/18, P1(b) = 5/18, P1(c) = 1/9.
    /// On "a b c": P(a|BOS) = ½ + ½·11/18 = 29/36; P(b|a) = (2 − ½ + ½·5/18)/2 = 59/72;
    /// P(c|b) = ½·1/9 = 1/18.
    #[test]
    fn perplexity_matches_the_hand_computed_value() {
        let lm = KneserNey::train(&[vec![0, 1, 0, 1]], 2, 0.5, 3).unwrap();
        let expected = (29.0 / 36.0 * 59.0 / 72.0 * 1.0 / 18.0_f64).powf(-1.0 / 3.0);
        let got = lm.perplexity(&[vec![0, 1, 2]]).unwrap();
        assert!((got - expected).abs() < 1e-12, "{got} vs {expected}");
    }

    #[test]
    fn every_context_is_a_distribution() {
        let train: Vec<Vec<u32>> = (0..40)
            .map(|i| (0..30).map(|j| ((i * 7 + j * j) % 11) as u32).collect())
            .collect();
        for order in 1..=4 {
            let lm = KneserNey::train(&train, order, 0.75, 13).unwrap();
            for context in [vec![], vec![3], vec![BOS, 5], vec![4, 9, 12]] {
                let context = &context[context.len().saturating_sub(order - 1)..];
                let context: Vec<u32> = if context.len() < order - 1 {
                    let mut c = vec![BOS; order - 1 - context.len()];
                    c.extend_from_slice(context);
                    c
                } else {
                    context.to_vec()
                };
                let total: f64 = (0..13).map(|w| lm.prob(&context, w)).sum();
                assert!(
                    (total - 1.0).abs() < 1e-9,
                    "order {order} {context:?}: {total}"
                );
            }
        }
    }

    #[test]
    fn a_trigram_beats_a_unigram_on_structured_text_and_bad_ids_are_refused() {
        let train: Vec<Vec<u32>> = (0..50)
            .map(|i| (0..40).map(|j| (i + j) % 10).collect())
            .collect();
        let test = vec![(3..33).map(|j| j % 10).collect::<Vec<u32>>()];
        let uni = KneserNey::train(&train, 1, 0.75, 10)
            .unwrap()
            .perplexity(&test)
            .unwrap();
        let tri = KneserNey::train(&train, 3, 0.75, 10)
            .unwrap()
            .perplexity(&test)
            .unwrap();
        assert!(
            (uni - 10.0).abs() < 0.5,
            "unigram of a uniform stream: {uni}"
        );
        assert!(tri < 1.5, "trigram of a counting stream: {tri}");
        let lm = KneserNey::train(&train, 3, 0.75, 10).unwrap();
        assert!(matches!(
            lm.perplexity(&[vec![1, 10]]),
            Err(EvalError::OutOfVocabulary { id: 10, vocab: 10 })
        ));
    }
}
