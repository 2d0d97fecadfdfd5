//! The gradus binaries' shared code: CLI conventions every stage follows, and the
//! dataset tools (`inspect`, `verify`, `import`).
//!
//! The stages themselves live in their own crates (`gradus-shard` for the dataset
//! contract, `gradus-telemetry` for metrics and progress); this crate wires them to the
//! command line.

pub mod cli;
pub mod import;
pub mod inspect;
pub mod pretrain;
