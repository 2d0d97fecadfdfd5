//! The cluster's processes with gradus's codecs: a Ballista scheduler, and an executor
//! that can rebuild gradus's scans and functions (the `gradus-scheduler` and
//! `gradus-executor` binaries are thin wrappers over these).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use ballista_core::error::{BallistaError, Result};
use ballista_executor::executor_process::{ExecutorProcessConfig, start_executor_process};
use ballista_scheduler::cluster::BallistaCluster;
use ballista_scheduler::config::SchedulerConfig;
use ballista_scheduler::scheduler_process::start_server;

use crate::codec::{LogicalCodec, PhysicalCodec};

/// How quickly the cluster notices a lost executor: an executor reports every
/// `heartbeat` seconds and counts as dead after `timeout` without one (Ballista's own
/// defaults, 60 s and 180 s, are for long-lived clusters).
#[derive(Debug, Clone, Copy)]
pub struct Liveness {
    pub heartbeat_s: u64,
    pub timeout_s: u64,
}

impl Default for Liveness {
    fn default() -> Self {
        Self {
            heartbeat_s: 2,
            timeout_s: 10,
        }
    }
}

/// Runs a scheduler listening on `addr` until the process ends.
pub async fn run_scheduler(addr: SocketAddr, liveness: Liveness) -> Result<()> {
    let mut config = SchedulerConfig::default()
        .with_hostname(addr.ip().to_string())
        .with_port(addr.port());
    config.bind_host = addr.ip().to_string();
    config.executor_timeout_seconds = liveness.timeout_s;
    config.expire_dead_executor_interval_seconds = liveness.heartbeat_s.max(1);
    config.no_executors_grace_period_seconds = liveness.timeout_s;
    config.override_logical_codec = Some(Arc::new(LogicalCodec::default()));
    config.override_physical_codec = Some(Arc::new(PhysicalCodec::default()));
    let cluster = BallistaCluster::new_from_config(&config).await?;
    start_server(cluster, addr, Arc::new(config)).await
}

/// Where an executor listens and whom it serves.
#[derive(Debug, Clone)]
pub struct ExecutorOptions {
    pub scheduler: SocketAddr,
    /// Host the executor binds and advertises.
    pub host: String,
    /// Arrow Flight port (task output is fetched from here).
    pub port: u16,
    /// gRPC port.
    pub grpc_port: u16,
    /// Tasks run at once.
    pub slots: usize,
    /// Where task output is kept until fetched.
    pub work_dir: Option<PathBuf>,
    pub liveness: Liveness,
}

/// Runs an executor until the process ends.
pub async fn run_executor(opts: ExecutorOptions) -> Result<()> {
    if opts.slots == 0 {
        return Err(BallistaError::Configuration(
            "an executor needs at least one slot".into(),
        ));
    }
    let config = ExecutorProcessConfig {
        bind_host: opts.host.clone(),
        external_host: Some(opts.host.clone()),
        port: opts.port,
        grpc_port: opts.grpc_port,
        scheduler_host: opts.scheduler.ip().to_string(),
        scheduler_port: opts.scheduler.port(),
        vcores: opts.slots,
        work_dir: opts.work_dir.map(|p| p.to_string_lossy().into_owned()),
        executor_heartbeat_interval_seconds: opts.liveness.heartbeat_s,
        override_logical_codec: Some(Arc::new(LogicalCodec::default())),
        override_physical_codec: Some(Arc::new(PhysicalCodec::default())),
        ..ExecutorProcessConfig::default()
    };
    start_executor_process(Arc::new(config)).await
}
