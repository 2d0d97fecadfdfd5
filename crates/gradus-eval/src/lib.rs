//! Evaluation for gradus: the figures, baselines and charts of a report.
//!
//! - [`lm`]: a causal model's loss, perplexity and bits per byte on fixed windows, and
//!   the baselines measured on exactly the same targets — interpolated Kneser-Ney
//!   ([`KneserNey`], Chen & Goodman's formulation with one discount) for causal models, a
//!   unigram for masked-token prediction.
//! - [`curves`]: training and validation curves read back from a run's JSONL metrics.
//! - [`plots`]: SVG charts (curves, confusion matrix, predicted vs true).
//! - [`report`]: `report.json` and `report.md`.
//! - [`stage`]: the evaluation stage: the runs a config names, each evaluated as its run
//!   record says (pretraining, fine-tuning, multi-task), into one report.
//!
//! Task metrics are `gradus-metrics`', the same code fine-tuning reports with.
//!
//! ```
//! use gradus_eval::KneserNey;
//! let train = vec![vec![0u32, 1, 0, 1]];
//! let lm = KneserNey::train(&train, 2, 0.5, 3).unwrap();
//! let ppl = lm.perplexity(&[vec![0, 1, 2]]).unwrap();
//! assert!(ppl > 1.0 && ppl < 3.1);
//! ```

pub mod curves;
mod error;
pub mod lm;
mod ngram;
pub mod plots;
pub mod report;
pub mod stage;

pub use error::{EvalError, Result};
pub use lm::{LmScore, Unigram, UnigramScore, clm_score, ngram_score};
pub use ngram::KneserNey;
pub use report::{Plot, Report, Section, SectionKind};
