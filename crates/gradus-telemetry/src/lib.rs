//! Telemetry for gradus stages.
//!
//! - [`JsonlRecorder`]: a `metrics` recorder that appends every update as a JSON line
//!   (timestamp, stage, name, labels, value) to the run folder's `metrics.jsonl`;
//! - an opt-in Prometheus scrape endpoint (bound where the user says, 127.0.0.1 by
//!   default in the CLI) fed by the same `metrics` calls;
//! - [`Progress`]: progress bars that become periodic log lines when stderr is not a
//!   terminal;
//! - [`init_tracing`]: the `tracing` subscriber binaries use.
//!
//! Libraries only call `metrics::counter!` / `gauge!` / `histogram!` and `tracing`
//! macros; a binary calls [`Telemetry::install`] once.
//!
//! ```
//! use gradus_telemetry::JsonlRecorder;
//!
//! let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("metrics.jsonl");
//! let recorder = JsonlRecorder::open(&path, "example").unwrap();
//! metrics::with_local_recorder(&recorder, || {
//!     metrics::counter!("docs_written").increment(3);
//!     metrics::gauge!("train_loss", "split" => "train").set(2.5);
//! });
//! recorder.flush().unwrap();
//! let text = std::fs::read_to_string(&path).unwrap();
//! assert_eq!(text.lines().count(), 2);
//! assert!(text.contains(r#""name":"train_loss""#));
//! ```

mod jsonl;
mod logging;
mod progress;
mod prometheus;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

pub use jsonl::JsonlRecorder;
pub use logging::{init_cluster_tracing, init_tracing};
pub use progress::{Progress, StatusLine};

/// Why telemetry could not start.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("metrics file {}: {source}", path.display())]
    Metrics {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("prometheus endpoint on {0}: {1}")]
    Prometheus(SocketAddr, String),
    #[error("a metrics recorder is already installed in this process")]
    AlreadyInstalled,
}

/// The installed telemetry of a binary; flushes the metrics file when dropped.
#[derive(Debug)]
pub struct Telemetry {
    jsonl: JsonlRecorder,
    path: PathBuf,
}

impl Telemetry {
    /// Installs the global recorder: JSONL to `metrics_path`, and Prometheus on
    /// `prometheus` when given.
    pub fn install(
        stage: &str,
        metrics_path: &Path,
        prometheus: Option<SocketAddr>,
    ) -> Result<Self, TelemetryError> {
        let jsonl =
            JsonlRecorder::open(metrics_path, stage).map_err(|source| TelemetryError::Metrics {
                path: metrics_path.to_path_buf(),
                source,
            })?;
        let installed = match prometheus {
            None => metrics::set_global_recorder(jsonl.clone()).map_err(|_| ()),
            Some(addr) => {
                let prom = prometheus::serve(addr)?;
                let fanout = metrics_util::layers::FanoutBuilder::default()
                    .add_recorder(jsonl.clone())
                    .add_recorder(prom)
                    .build();
                metrics::set_global_recorder(fanout).map_err(|_| ())
            }
        };
        installed.map_err(|_| TelemetryError::AlreadyInstalled)?;
        Ok(Self {
            jsonl,
            path: metrics_path.to_path_buf(),
        })
    }

    /// Writes buffered metrics out.
    /// A handle that flushes the metrics file, for whoever must know its length (the
    /// trainer records it in each checkpoint).
    pub fn flusher(&self) -> impl Fn() -> std::io::Result<()> + Send + Sync + 'static {
        let jsonl = self.jsonl.clone();
        move || jsonl.flush()
    }

    /// The metrics file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn flush(&self) -> Result<(), TelemetryError> {
        self.jsonl
            .flush()
            .map_err(|source| TelemetryError::Metrics {
                path: self.path.clone(),
                source,
            })
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Err(e) = self.jsonl.flush() {
            tracing::warn!("metrics file {}: {e}", self.path.display());
        }
    }
}
