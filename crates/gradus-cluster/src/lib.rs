//! gradus's data stages on an Apache DataFusion Ballista cluster.
//!
//! The clean stage's per-file plan is a DataFusion plan; on a cluster the same plan runs
//! on Ballista executors. What Ballista cannot serialise by itself — the clean stage's
//! `input` scan and gradus's scalar functions with their settings — travels through
//! [`codec`]; the scheduler and executors run with those codecs ([`process`]; binaries
//! `gradus-scheduler`, `gradus-executor`), and [`BallistaCluster`] hands the clean stage
//! sessions on the cluster. Tokenization fans out the same way ([`encode`]): each
//! executor encodes whole upstream shards and the client commits them in order. Inputs
//! are read, and outputs written, on a filesystem path every process sees.

pub mod codec;
pub mod encode;
pub mod process;
pub mod session;

pub use process::{ExecutorOptions, Liveness, run_executor, run_scheduler};
pub use session::BallistaCluster;
