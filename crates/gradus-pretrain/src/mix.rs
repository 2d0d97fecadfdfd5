//! Training data mixed from several tokens datasets by weight, as Megatron's blended
//! datasets do: each next item comes from the source furthest behind its share of the
//! tokens drawn so far. The shares seen therefore stay within one item of the weights at
//! every step, and the mixture's whole state is its sources' cursors and the tokens drawn
//! from each, so a resumed run draws the same items. Each source keeps its own seeded
//! order ([`crate::order`]).

use std::collections::BTreeMap;

use gradus_record::SourceSeen;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use gradus_train::{Result, TrainError};

/// A stream a [`Mixture`] draws from.
pub trait Source {
    type Item;
    type Cursor: Serialize + DeserializeOwned;

    fn next_item(&mut self) -> Result<Self::Item>;
    /// The tokens an item counts for in the shares.
    fn tokens(item: &Self::Item) -> u64;
    fn cursor(&self) -> &Self::Cursor;
    fn set_cursor(&mut self, cursor: Self::Cursor);
}

/// One named source with its weight.
#[derive(Debug)]
pub struct Weighted<S> {
    pub name: String,
    pub path: std::path::PathBuf,
    pub weight: f64,
    pub stream: S,
}

/// Several sources drawn by weight.
#[derive(Debug)]
pub struct Mixture<S> {
    sources: Vec<Weighted<S>>,
    /// Tokens drawn from each source so far.
    drawn: Vec<u64>,
}

/// A mixture's position: each source's cursor and the tokens drawn from each.
#[derive(Debug, Serialize, Deserialize)]
struct MixCursor<C> {
    sources: Vec<C>,
    drawn: Vec<u64>,
}

impl<S: Source> Mixture<S> {
    /// Weights must be positive and finite; they are normalised.
    pub fn new(mut sources: Vec<Weighted<S>>) -> Result<Self> {
        if sources.is_empty() {
            return Err(TrainError::Config("data: no tokens dataset to read".into()));
        }
        if let Some(bad) = sources
            .iter()
            .find(|s| !(s.weight > 0.0 && s.weight.is_finite()))
        {
            return Err(TrainError::Config(format!(
                "data.mix.{}: weight {} is not a positive number",
                bad.name, bad.weight
            )));
        }
        let total: f64 = sources.iter().map(|s| s.weight).sum();
        for s in &mut sources {
            s.weight /= total;
        }
        let drawn = vec![0; sources.len()];
        Ok(Self { sources, drawn })
    }

    /// One source of weight 1.
    pub fn single(name: &str, path: &std::path::Path, stream: S) -> Self {
        Self {
            sources: vec![Weighted {
                name: name.into(),
                path: path.to_path_buf(),
                weight: 1.0,
                stream,
            }],
            drawn: vec![0],
        }
    }

    /// The source furthest below its share of the tokens drawn so far (ties: the first).
    fn pick(&self) -> usize {
        let total: u64 = self.drawn.iter().sum();
        let behind = |i: usize| self.sources[i].weight * total as f64 - self.drawn[i] as f64;
        (1..self.sources.len()).fold(0, |best, i| if behind(i) > behind(best) { i } else { best })
    }

    pub fn next_item(&mut self) -> Result<S::Item> {
        let i = self.pick();
        let item = self.sources[i].stream.next_item()?;
        self.drawn[i] += S::tokens(&item);
        Ok(item)
    }

    pub fn sources(&self) -> &[Weighted<S>] {
        &self.sources
    }

    /// The first source's stream (the only one of an unmixed run).
    pub fn first(&self) -> &S {
        &self.sources[0].stream
    }

    /// Each source's weight, tokens drawn and share of all tokens drawn.
    pub fn seen(&self) -> BTreeMap<String, SourceSeen> {
        let total: u64 = self.drawn.iter().sum();
        self.sources
            .iter()
            .zip(&self.drawn)
            .map(|(s, &tokens)| {
                let share = if total == 0 {
                    0.0
                } else {
                    tokens as f64 / total as f64
                };
                let seen = SourceSeen {
                    data: s.path.clone(),
                    weight: s.weight,
                    tokens,
                    share,
                };
                (s.name.clone(), seen)
            })
            .collect()
    }

    /// [`Self::seen`] for a mixture of several sources; nothing for one.
    pub fn seen_if_mixed(&self) -> BTreeMap<String, SourceSeen> {
        if self.sources.len() > 1 {
            self.seen()
        } else {
            BTreeMap::new()
        }
    }

    pub fn state(&self) -> Result<serde_json::Value> {
        gradus_train::cursor_to_json(&MixCursor {
            sources: self.sources.iter().map(|s| s.stream.cursor()).collect(),
            drawn: self.drawn.clone(),
        })
    }

    pub fn restore(&mut self, state: serde_json::Value) -> Result<()> {
        let c: MixCursor<S::Cursor> = gradus_train::cursor_from_json(state)?;
        if c.sources.len() != self.sources.len() || c.drawn.len() != self.sources.len() {
            return Err(TrainError::Data(format!(
                "the checkpoint's data position has {} sources, this run {}",
                c.sources.len(),
                self.sources.len()
            )));
        }
        for (s, cursor) in self.sources.iter_mut().zip(c.sources) {
            s.stream.set_cursor(cursor);
        }
        self.drawn = c.drawn;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Items of a fixed number of tokens, counted.
    #[derive(Debug)]
    struct Counter {
        tokens: u64,
        next: u64,
    }

    impl Source for Counter {
        type Item = u64;
        type Cursor = u64;

        fn next_item(&mut self) -> Result<u64> {
            self.next += 1;
            Ok(self.tokens)
        }
        fn tokens(item: &u64) -> u64 {
            *item
        }
        fn cursor(&self) -> &u64 {
            &self.next
        }
        fn set_cursor(&mut self, cursor: u64) {
            self.next = cursor;
        }
    }

    fn mixture(weights: &[(f64, u64)]) -> Mixture<Counter> {
        let sources = weights
            .iter()
            .enumerate()
            .map(|(i, &(weight, tokens))| Weighted {
                name: format!("s{i}"),
                path: format!("data/s{i}").into(),
                weight,
                stream: Counter { tokens, next: 0 },
            })
            .collect();
        Mixture::new(sources).unwrap()
    }

    #[test]
    fn token_shares_follow_the_weights_at_every_step() {
        // Items of unequal sizes: the shares are of tokens, not of items.
        let mut m = mixture(&[(7.0, 100), (2.0, 30), (1.0, 500)]);
        for step in 1..=20_000u64 {
            m.next_item().unwrap();
            if step >= 2_000 {
                let seen = m.seen();
                for (want, s) in [0.7, 0.2, 0.1].iter().zip(seen.values()) {
                    assert!((s.share - want).abs() < 0.01, "step {step}: {seen:?}");
                }
            }
        }
    }

    #[test]
    fn a_restored_mixture_draws_the_same_sources() {
        let mut whole = mixture(&[(0.5, 10), (0.3, 10), (0.2, 10)]);
        let mut part = mixture(&[(0.5, 10), (0.3, 10), (0.2, 10)]);
        for _ in 0..37 {
            whole.next_item().unwrap();
            part.next_item().unwrap();
        }
        let state = part.state().unwrap();
        let mut resumed = mixture(&[(0.5, 10), (0.3, 10), (0.2, 10)]);
        resumed.restore(state).unwrap();
        for _ in 0..100 {
            assert_eq!(whole.pick(), resumed.pick());
            whole.next_item().unwrap();
            resumed.next_item().unwrap();
        }
        assert_eq!(whole.seen(), resumed.seen());
        let two = mixture(&[(0.5, 10), (0.5, 10)]);
        assert!(mixture(&[(1.0, 1)]).restore(two.state().unwrap()).is_err());
    }

    #[test]
    fn weights_must_be_positive() {
        let bad = Mixture::new(vec![Weighted {
            name: "web".into(),
            path: "web".into(),
            weight: 0.0,
            stream: Counter { tokens: 1, next: 0 },
        }]);
        assert!(bad.unwrap_err().to_string().contains("data.mix.web"));
    }
}
