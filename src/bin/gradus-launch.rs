//! `gradus-launch --gpus N -- gradus-pretrain ARGS…`: data-parallel training, one process
//! per GPU. Each process gets `GRADUS_RANK`, `GRADUS_WORLD_SIZE` and
//! `GRADUS_NCCL_ID_FILE` (where rank 0 publishes the NCCL id); with `device = "cuda"`
//! rank r trains on `cuda:r`. If one rank fails the others are stopped, and the launch
//! exits with the failed rank's status.

use std::path::PathBuf;
use std::process::{Child, Command, ExitCode};
use std::time::Duration;

use clap::Parser;
use gradus::cli::exit_with;

#[derive(Debug, Parser)]
#[command(
    name = "gradus-launch",
    version,
    about = "Start one training process per GPU (data-parallel, NCCL)"
)]
struct Cli {
    /// Processes (ranks) to start, one per GPU.
    #[arg(long)]
    gpus: usize,
    /// The stage and its arguments, after `--`.
    #[arg(last = true, required = true)]
    command: Vec<String>,
}

/// The ranks, stopped when dropped unless they have all ended.
struct Ranks(Vec<Child>);

impl Drop for Ranks {
    fn drop(&mut self) {
        for child in &mut self.0 {
            if matches!(child.try_wait(), Ok(None)) {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    if cli.gpus == 0 {
        anyhow::bail!("--gpus must be at least 1");
    }
    let (program, args) = cli
        .command
        .split_first()
        .ok_or_else(|| anyhow::anyhow!("no command after --"))?;
    let meeting = std::env::temp_dir().join(format!("gradus-launch-{}", std::process::id()));
    std::fs::create_dir_all(&meeting)?;
    let id_file: PathBuf = meeting.join("nccl-id");
    let mut ranks = Ranks(Vec::new());
    for rank in 0..cli.gpus {
        let child = Command::new(program)
            .args(args)
            .env("GRADUS_RANK", rank.to_string())
            .env("GRADUS_WORLD_SIZE", cli.gpus.to_string())
            .env("GRADUS_NCCL_ID_FILE", &id_file)
            .spawn()
            .map_err(|e| anyhow::anyhow!("starting {program}: {e}"))?;
        ranks.0.push(child);
    }
    let result = wait_all(&mut ranks);
    let _ = std::fs::remove_dir_all(&meeting);
    result
}

/// Waits for every rank; the first to fail stops the launch (the others are killed
/// when `ranks` drops).
fn wait_all(ranks: &mut Ranks) -> anyhow::Result<()> {
    let mut running: Vec<usize> = (0..ranks.0.len()).collect();
    while !running.is_empty() {
        let mut still = Vec::new();
        for rank in running {
            match ranks.0[rank].try_wait()? {
                Some(status) if !status.success() => {
                    anyhow::bail!("rank {rank} failed ({status}); stopping the others")
                }
                Some(_) => {}
                None => still.push(rank),
            }
        }
        running = still;
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

fn main() -> ExitCode {
    exit_with(run(Cli::parse()))
}
