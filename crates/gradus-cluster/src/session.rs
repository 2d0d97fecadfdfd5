//! A Ballista scheduler as a [`gradus_clean::cluster::Cluster`]: sessions whose queries
//! run on its executors, with gradus's codecs.

use std::sync::Arc;

use ballista::prelude::SessionContextExt;
use ballista_core::extension::SessionConfigExt;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::SessionStateBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};
use futures::future::BoxFuture;
use gradus_clean::cluster::Cluster;

use crate::codec::{LogicalCodec, PhysicalCodec};

/// The scheduler at `df://HOST:PORT`.
#[derive(Debug, Clone)]
pub struct BallistaCluster {
    url: String,
    jobs: usize,
}

impl BallistaCluster {
    /// Checks the address's form; the scheduler is first contacted by the first query.
    pub fn new(url: &str) -> Result<Self> {
        let rest = url.strip_prefix("df://").ok_or_else(|| {
            DataFusionError::Configuration(format!(
                "cluster address {url:?} should look like df://HOST:PORT"
            ))
        })?;
        if rest.is_empty() || rest.contains('/') {
            return Err(DataFusionError::Configuration(format!(
                "cluster address {url:?} should look like df://HOST:PORT"
            )));
        }
        Ok(Self {
            url: url.into(),
            jobs: crate::encode::JOBS,
        })
    }

    /// Jobs a stage keeps in flight where it decides (tokenization; the clean stage
    /// runs `partitions` at a time).
    pub fn with_jobs(mut self, jobs: usize) -> Self {
        self.jobs = jobs.max(1);
        self
    }

    pub fn jobs(&self) -> usize {
        self.jobs
    }

    /// A session with `config`'s settings whose queries run on the cluster.
    pub async fn session(&self, config: SessionConfig) -> Result<SessionContext> {
        let config = config
            .upgrade_for_ballista()
            .with_ballista_logical_extension_codec(Arc::new(LogicalCodec::default()))
            .with_ballista_physical_extension_codec(Arc::new(PhysicalCodec::default()));
        let state = SessionStateBuilder::new()
            .with_config(config)
            .with_default_features()
            .build();
        SessionContext::remote_with_state(&self.url, state).await
    }
}

impl Cluster for BallistaCluster {
    fn session(&self, config: SessionConfig) -> BoxFuture<'_, Result<SessionContext>> {
        Box::pin(BallistaCluster::session(self, config))
    }

    fn address(&self) -> &str {
        &self.url
    }
}
