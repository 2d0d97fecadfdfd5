//! The gradus binaries' shared code: CLI conventions every stage follows, and the
//! dataset tools (`inspect`, `verify`, `import`).
//!
//! The stages themselves live in their own crates (`gradus-shard` for the dataset
//! contract, `gradus-telemetry` for metrics and progress); this crate wires them to the
//! command line.

/// Every gradus binary allocates through mimalloc, which keeps freed pages for reuse
/// instead of returning them to the OS (see ARCHITECTURE.md, "Training speed").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub mod cli;
pub mod eval;
pub mod finetune;
pub mod import;
pub mod inspect;
pub mod multitask;
pub mod pretrain;
