//! Evaluation for gradus. So far: the n-gram baseline that a language model's perplexity is
//! reported against — interpolated Kneser-Ney (Chen & Goodman's formulation with one
//! discount), trained on the same token ids the neural model saw.
//!
//! ```
//! use gradus_eval::KneserNey;
//! let train = vec![vec![0u32, 1, 0, 1]];
//! let lm = KneserNey::train(&train, 2, 0.5, 3).unwrap();
//! let ppl = lm.perplexity(&[vec![0, 1, 2]]).unwrap();
//! assert!(ppl > 1.0 && ppl < 3.1);
//! ```

mod ngram;

pub use ngram::{EvalError, KneserNey};
