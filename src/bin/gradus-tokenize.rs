//! `gradus-tokenize`: train tokenizers and encode documents or labeled examples.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use gradus::cli::{StageArgs, exit_with};
use gradus_cluster::BallistaCluster;
use gradus_shard::Dataset;
use gradus_telemetry::{Progress, Telemetry, init_tracing};
use gradus_tokenize::{
    EncodeConfig, EncodeRun, Encoder, ExamplesConfig, SplitFile, TrainConfig, encode_dataset,
    encode_examples,
};
use serde::Serialize;

#[derive(Debug, Parser)]
#[command(
    name = "gradus-tokenize",
    version,
    about = "Train tokenizers and encode text into token datasets"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Train a tokenizer on a documents dataset; writes OUTPUT/tokenizer.json.
    Train {
        #[command(flatten)]
        args: StageArgs,
    },
    /// Encode a documents dataset into a tokens dataset.
    Encode {
        #[command(flatten)]
        args: StageArgs,
        /// tokenizer.json, vocab.txt, or a folder holding one.
        #[arg(long, short = 't')]
        tokenizer: PathBuf,
        /// Encode upstream shards as they are committed, until upstream seals.
        #[arg(long)]
        follow: bool,
        /// With --follow: give up after this many seconds without a new upstream shard.
        #[arg(long, default_value_t = 3600)]
        follow_timeout: u64,
        /// Encode the shards on a Ballista cluster (`gradus-scheduler` with
        /// `gradus-executor`s); each executor encodes whole shards, this process commits
        /// them. The input and OUTPUT must be on a path the executors see.
        #[arg(
            long,
            env = "GRADUS_CLUSTER",
            value_name = "df://HOST:PORT",
            conflicts_with = "follow"
        )]
        cluster: Option<String>,
    },
    /// Encode labeled files (--input [SPLIT=]PATH, repeatable) into an examples dataset.
    Examples {
        #[command(flatten)]
        args: StageArgs,
        /// tokenizer.json, vocab.txt, or a folder holding one.
        #[arg(long, short = 't')]
        tokenizer: PathBuf,
        /// Split of inputs given without `SPLIT=`.
        #[arg(long, default_value = "train")]
        split: String,
    },
}

fn stage_args(command: &Command) -> &StageArgs {
    match command {
        Command::Train { args } | Command::Encode { args, .. } | Command::Examples { args, .. } => {
            args
        }
    }
}

fn single_input(args: &StageArgs) -> anyhow::Result<PathBuf> {
    match args.input.as_slice() {
        [one] => Ok(PathBuf::from(one)),
        [] => anyhow::bail!("no input: pass --input DATASET"),
        _ => anyhow::bail!(
            "this command reads one dataset; got {} inputs",
            args.input.len()
        ),
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let args = stage_args(&cli.command).clone();
    init_tracing(args.verbose);
    args.apply()?;
    let output = args.output()?.to_path_buf();
    let stage = match &cli.command {
        Command::Train { .. } => "tokenize-train",
        Command::Encode { .. } => "tokenize",
        Command::Examples { .. } => "tokenize-examples",
    };
    let mut stdout = std::io::stdout().lock();
    match cli.command {
        Command::Train { .. } => {
            let config: TrainConfig = args
                .resolve_config_checked(|c: &TrainConfig| c.check().map_err(anyhow::Error::from))?;
            let input = single_input(&args)?;
            let _telemetry = start(&args, stage, &config)?;
            let tk = gradus_tokenize::train_from_dataset(&input, &config)?;
            let path = output.join("tokenizer.json");
            gradus_tokenize::save(&tk, &path)?;
            args.write_config(&output, stage, &config)?;
            writeln!(
                stdout,
                "{}: vocabulary of {}",
                path.display(),
                tk.get_vocab_size(true)
            )?;
        }
        Command::Encode {
            tokenizer,
            follow,
            follow_timeout,
            cluster,
            ..
        } => {
            let config: EncodeConfig = args.resolve_config_checked(|c: &EncodeConfig| {
                c.check().map_err(anyhow::Error::from)
            })?;
            let input = single_input(&args)?;
            let _telemetry = start(&args, stage, &config)?;
            let encoder = Encoder::new(gradus_tokenize::load(&tokenizer)?, &config)?;
            let total = Dataset::open(&input)
                .ok()
                .filter(|d| d.manifest().sealed)
                .map(|d| d.num_rows());
            let progress = Progress::new("tokenize", total, "documents");
            let run = EncodeRun {
                mode: args.mode(),
                follow: follow.then(|| Duration::from_secs(follow_timeout)),
                remote: match cluster {
                    Some(url) => Some(Arc::new(BallistaCluster::new(&url)?)),
                    None => None,
                },
            };
            let manifest = encode_dataset(&encoder, &config, &input, &output, &run, |rows| {
                progress.inc(rows)
            })?;
            progress.finish();
            args.write_config(&output, stage, &config)?;
            let tokens = manifest
                .stats
                .get("tokens")
                .and_then(|v| v.as_u64())
                .unwrap_or(0);
            writeln!(
                stdout,
                "{}: {} documents, {tokens} tokens",
                output.display(),
                manifest.rows()
            )?;
        }
        Command::Examples {
            tokenizer, split, ..
        } => {
            let config: ExamplesConfig = args.resolve_config_checked(|c: &ExamplesConfig| {
                c.check().map_err(anyhow::Error::from)
            })?;
            let files: Vec<SplitFile> = args
                .input
                .iter()
                .map(|i| SplitFile::parse(i, &split))
                .collect();
            anyhow::ensure!(!files.is_empty(), "no input: pass --input [SPLIT=]FILE");
            let _telemetry = start(&args, stage, &config)?;
            let tk = gradus_tokenize::load(&tokenizer)?;
            let manifest = encode_examples(&tk, &config, &files, &output, args.mode())
                .with_context(|| format!("task {}", config.task))?;
            args.write_config(&output, stage, &config)?;
            writeln!(stdout, "{}: {} examples", output.display(), manifest.rows())?;
        }
    }
    Ok(())
}

/// Claims the output for `stage` and installs telemetry there, once the config is read
/// and checked: a config error or another stage's folder is refused with nothing written.
fn start<T: Serialize>(args: &StageArgs, stage: &str, config: &T) -> anyhow::Result<Telemetry> {
    let output = args.output()?;
    args.claim_output(output, stage, config)?;
    let path = output.join("metrics.jsonl");
    Ok(Telemetry::install(stage, &path, args.metrics_addr()?)?)
}

fn main() -> ExitCode {
    exit_with(run(Cli::parse()))
}
