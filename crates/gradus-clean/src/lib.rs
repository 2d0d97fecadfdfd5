//! Corpus cleaning for gradus on DataFusion.
//!
//! This crate holds the quality signals of a document ([`signals`]) and their DataFusion
//! scalar functions ([`udf`]): registered on a `SessionContext`, they make the signals
//! columns that SQL filters can use.
//!
//! ```
//! use gradus_clean::signals::compute;
//!
//! let s = compute("The cat sat on the mat.\nThe cat sat on the mat.");
//! assert_eq!(s.words, 12);
//! assert_eq!(s.stop_words, 4);
//! assert_eq!(s.dup_line_frac, 0.5);
//! ```

pub mod signals;
pub mod udf;
