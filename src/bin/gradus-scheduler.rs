//! `gradus-scheduler`: a Ballista scheduler that understands gradus's plans (the clean
//! stage's scan and functions); clients reach it at `df://HOST:PORT`.

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Parser;
use gradus::cli::{block_on, exit_with};
use gradus_cluster::{Liveness, run_scheduler};
use gradus_telemetry::init_cluster_tracing;

#[derive(Debug, Parser)]
#[command(
    name = "gradus-scheduler",
    version,
    about = "Ballista scheduler with gradus's codecs"
)]
struct Cli {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:50050")]
    bind: SocketAddr,
    /// Seconds without a heartbeat after which an executor counts as lost (its tasks
    /// are run elsewhere).
    #[arg(long, default_value_t = Liveness::default().timeout_s)]
    executor_timeout: u64,
    #[arg(short, long)]
    verbose: bool,
}

fn run(cli: Cli) -> anyhow::Result<()> {
    init_cluster_tracing(cli.verbose);
    let liveness = Liveness {
        timeout_s: cli.executor_timeout,
        ..Liveness::default()
    };
    block_on(run_scheduler(cli.bind, liveness))
}

fn main() -> ExitCode {
    exit_with(run(Cli::parse()))
}
