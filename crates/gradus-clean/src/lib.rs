//! Corpus cleaning for gradus on DataFusion.
//!
//! The clean stage ([`stage::CleanRun`]) reads raw inputs ([`ingest`]: JSONL, text,
//! TSV/CSV, Parquet, upstream `documents`), normalises them ([`normalize`]), scrubs
//! personal data ([`pii`]), computes quality signals ([`signals`]) and C4 line cleaning
//! ([`lines`]), drops documents by preset and SQL filters ([`filters`]), removes exact
//! and near duplicates ([`minhash`], [`dedup`]) and writes a `documents` dataset with a
//! report ([`report`]). Every step is a DataFusion scalar function ([`udf`]), and the
//! whole per-document chain is one DataFusion plan ([`plan`]). [`import`] takes text that
//! is already clean into a `documents` dataset as it is.
//!
//! ```
//! use gradus_clean::signals::compute;
//!
//! let s = compute("The cat sat on the mat.\nThe cat sat on the mat.");
//! assert_eq!(s.words, 12);
//! assert_eq!(s.stop_words, 1); // distinct: only "the"
//! assert_eq!(s.dup_line_frac, 0.5);
//! ```

pub mod cluster;
pub mod config;
pub mod decontaminate;
pub mod dedup;
pub mod error;
pub mod filters;
pub mod import;
pub mod ingest;
pub mod lines;
pub mod minhash;
pub mod normalize;
pub mod pii;
pub mod plan;
pub mod report;
pub mod scan;
pub mod signals;
pub mod source;
pub mod stage;
pub mod udf;

pub use config::{CleanConfig, DedupConfig, NearMode};
pub use error::{CleanError, InputErrorKind};
pub use ingest::{Format, InputSpec, OnError, TextUnit};
pub use report::Report;
pub use stage::CleanRun;
