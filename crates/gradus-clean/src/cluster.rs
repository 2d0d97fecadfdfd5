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

/// Times a job is submitted before its failure fails the stage: a job whose executor
/// died after running it (its output lost with it) succeeds when resubmitted.
pub const ATTEMPTS: usize = 3;

/// Runs `job` until it succeeds, fails in a way `permanent` says will not change, or
/// has failed [`ATTEMPTS`] times, waiting a little longer after each failure (a
/// scheduler restarting, an executor being replaced). `what` names the job in warnings.
pub async fn with_attempts<T, E, Fut>(
    what: &str,
    cluster: &str,
    permanent: impl Fn(&E) -> bool,
    mut job: impl FnMut() -> Fut,
) -> std::result::Result<T, E>
where
    E: std::fmt::Display,
    Fut: Future<Output = std::result::Result<T, E>>,
{
    let mut attempt = 1;
    loop {
        match job().await {
            Ok(done) => return Ok(done),
            Err(e) if attempt >= ATTEMPTS || permanent(&e) => return Err(e),
            Err(e) => tracing::warn!(
                "{what} on {cluster} (attempt {attempt} of {ATTEMPTS}): {e}; resubmitting"
            ),
        }
        tokio::time::sleep(std::time::Duration::from_millis(500 * attempt as u64)).await;
        attempt += 1;
    }
}
