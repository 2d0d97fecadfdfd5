//! `gradus-executor`: a Ballista executor that can run gradus's plans (the clean stage's
//! scan and functions). Inputs and outputs must be on a path it sees as the client does.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use gradus::cli::{block_on, exit_with};
use gradus_cluster::{ExecutorOptions, Liveness, run_executor};
use gradus_telemetry::init_cluster_tracing;

#[derive(Debug, Parser)]
#[command(
    name = "gradus-executor",
    version,
    about = "Ballista executor with gradus's functions and codecs"
)]
struct Cli {
    /// The scheduler's address.
    #[arg(long, default_value = "127.0.0.1:50050")]
    scheduler: SocketAddr,
    /// Host to bind and advertise to the scheduler and clients.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Arrow Flight port (task output is fetched from here).
    #[arg(long, default_value_t = 50051)]
    port: u16,
    /// gRPC port.
    #[arg(long, default_value_t = 50052)]
    grpc_port: u16,
    /// Tasks run at once (default: the number of CPUs).
    #[arg(long)]
    slots: Option<usize>,
    /// Where task output waits to be fetched (default: a temporary folder).
    #[arg(long)]
    work_dir: Option<PathBuf>,
    #[arg(short, long)]
    verbose: bool,
}

fn run(cli: Cli) -> anyhow::Result<()> {
    init_cluster_tracing(cli.verbose);
    let slots = cli
        .slots
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let opts = ExecutorOptions {
        scheduler: cli.scheduler,
        host: cli.host,
        port: cli.port,
        grpc_port: cli.grpc_port,
        slots,
        work_dir: cli.work_dir,
        liveness: Liveness::default(),
    };
    block_on(run_executor(opts))
}

fn main() -> ExitCode {
    exit_with(run(Cli::parse()))
}
