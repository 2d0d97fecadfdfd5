//! `tracing` set-up for binaries: human-readable lines on stderr, filtered by `RUST_LOG`
//! (default `info`), printed above any progress bars instead of through them.

use std::io::{IsTerminal, Write};

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use crate::progress::multi;

/// A stderr writer that hides the progress bars while a log line is printed.
#[derive(Debug, Clone, Copy)]
struct BarAwareStderr;

impl Write for BarAwareStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        multi().suspend(|| std::io::stderr().write_all(buf))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

impl<'a> MakeWriter<'a> for BarAwareStderr {
    type Writer = BarAwareStderr;

    fn make_writer(&'a self) -> Self::Writer {
        *self
    }
}

/// Installs the global subscriber. `verbose` raises the default level to `debug`.
/// Calling it twice is harmless (the second call keeps the first subscriber). A stage
/// using a cluster hears from the Ballista client only of warnings: at `info` it logs
/// every connection and job.
pub fn init_tracing(verbose: bool) {
    let default = if verbose {
        "debug"
    } else {
        "info,ballista=warn,ballista_core=warn"
    };
    install(default);
}

/// [`init_tracing`] for the cluster's own processes (scheduler, executors), whose
/// `info` lines (executors joining, jobs and tasks run) are their log.
pub fn init_cluster_tracing(verbose: bool) {
    install(if verbose { "debug" } else { "info" });
}

fn install(default: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(BarAwareStderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .try_init();
}
