//! `gradus`: dataset tools (`inspect`, `verify`, `import`).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use gradus::cli::{StageArgs, exit_with};
use gradus::{import, inspect};
use gradus_telemetry::{Telemetry, init_tracing};

#[derive(Debug, Parser)]
#[command(
    name = "gradus",
    version,
    about = "Raw text to trained and evaluated language models"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Summarise a dataset: manifest, schema, counts and first rows.
    Inspect {
        /// Dataset folder.
        dataset: PathBuf,
        /// Rows to show.
        #[arg(long, default_value_t = 3)]
        head: usize,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Check a dataset's checksums, schemas and lineage.
    Verify {
        /// Dataset folder.
        dataset: PathBuf,
    },
    /// Write JSONL or text files into a `documents` dataset as they are.
    Import {
        #[command(flatten)]
        args: StageArgs,
    },
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    match cli.command {
        Command::Inspect {
            dataset,
            head,
            json,
        } => {
            let summary = inspect::summarize(&dataset, head)?;
            if json {
                serde_json::to_writer_pretty(&mut stdout, &summary)?;
                writeln!(stdout)?;
            } else {
                inspect::render(&summary, &mut stdout).context("writing to stdout")?;
            }
            Ok(())
        }
        Command::Verify { dataset } => inspect::verify(&dataset, &mut stdout),
        Command::Import { args } => {
            init_tracing(args.verbose);
            let config: import::ImportConfig = args.resolve_config()?;
            let output = args.output()?;
            let _telemetry = Telemetry::install(
                "import",
                &output.join("metrics.jsonl"),
                args.metrics_addr()?,
            )?;
            let rows = import::run(&args, &config)?;
            writeln!(stdout, "{}: {rows} documents", output.display())?;
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    exit_with(run(Cli::parse()))
}
