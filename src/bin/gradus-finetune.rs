//! `gradus-finetune`: a pretrained encoder + a classification or regression head, trained
//! on an `examples` dataset; the best checkpoint on the dev metric ends in `OUTPUT/model`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use gradus::cli::{StageArgs, exit_with, step_progress, write_summary};
use gradus_finetune::FinetuneConfig;
use gradus_finetune::run::{announce_eval, prepare, train as train_task};

#[derive(Debug, Parser)]
#[command(
    name = "gradus-finetune",
    version,
    about = "Fine-tune a pretrained encoder with a classification or regression head"
)]
struct Cli {
    #[command(flatten)]
    args: StageArgs,
    /// Checkpoint folder to start from (overrides the config's `model`).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Examples dataset (overrides the config's `examples`; the same as `--input`).
    #[arg(long)]
    examples: Option<PathBuf>,
}

/// The stage itself, on a worker of the thread pool ([`gradus::cli::run_stage`]).
fn stage(cli: Cli) -> anyhow::Result<()> {
    let args = cli.args;
    let output = args.output()?.to_path_buf();
    let mut config: FinetuneConfig = args.resolve_config()?;
    if let Some(model) = cli.model {
        config.model = model;
    }
    if let Some(examples) = cli.examples.or(args.single_input("examples dataset")?) {
        config.examples = examples;
    }
    // Every check runs before anything is written or deleted.
    let (objective, train, spec) = prepare(&config, args.overwrite)?;
    let run = args.open_run(spec, &config)?;
    let progress = step_progress(&format!("finetune {}", objective.model.spec().name), &train);
    let metric = train.metric_for_best.clone();
    let (summary, end) = train_task(objective, run.trainer(train), &mut |s| {
        progress.inc(1);
        progress.set_message(announce_eval(s, &metric));
    })?;
    progress.finish();
    let line = summary.line(&output);
    write_summary(&output, &format!("{line}\n"))?;
    writeln!(std::io::stdout().lock(), "{line}")?;
    Ok(run.finish(end)?)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    exit_with(gradus::cli::run_stage(&cli.args.clone(), cli, stage))
}
