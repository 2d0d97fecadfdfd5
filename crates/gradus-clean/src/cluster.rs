//! Running the per-file pass of the clean stage on a distributed engine instead of in
//! this process. The engine is behind a trait so that this crate does not depend on one;
//! `gradus-cluster` implements it for Apache DataFusion Ballista.

use datafusion::error::Result;
use datafusion::prelude::{SessionConfig, SessionContext};
use futures::future::BoxFuture;

/// A cluster that runs DataFusion plans: hands out sessions whose queries execute there.
/// gradus's functions and the `input` table ([`crate::scan`]) must reach its processes,
/// which is the implementation's business (Ballista: codecs).
pub trait Cluster: Send + Sync {
    /// A session on the cluster with `config`'s settings.
    fn session(&self, config: SessionConfig) -> BoxFuture<'_, Result<SessionContext>>;
    /// Where the cluster is, for messages.
    fn address(&self) -> &str;
}

/// Times a file's job is submitted before its failure fails the stage: a job whose
/// executor died after running it (its output lost with it) succeeds when resubmitted.
pub const ATTEMPTS: usize = 3;
