//! `gradus-finetune`: a pretrained encoder + a classification or regression head, trained
//! on an `examples` dataset; the best checkpoint on the dev metric ends in `OUTPUT/model`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use gradus::cli::{StageArgs, exit_with, write_resolved_config};
use gradus::finetune::{FinetuneSummary, announce_eval};
use gradus_finetune::FinetuneConfig;
use gradus_telemetry::{Progress, Telemetry, init_tracing};
use gradus_train::Trainer;

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
    /// Examples dataset (overrides the config's `examples`).
    #[arg(long)]
    examples: Option<PathBuf>,
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let args = cli.args;
    init_tracing(args.verbose);
    args.apply_threads()?;
    let output = args.output()?.to_path_buf();
    let mut config: FinetuneConfig = args.resolve_config()?;
    if let Some(model) = cli.model {
        config.model = model;
    }
    if let Some(examples) = cli.examples {
        config.examples = examples;
    }
    // Every check runs before anything is written or deleted.
    let mut objective = config.build()?;
    let kind = objective.model.spec.kind;
    let train = config.train_config(objective.batcher.batches_per_epoch(), kind);
    if args.overwrite && output.exists() {
        std::fs::remove_dir_all(&output)?;
    }
    std::fs::create_dir_all(&output)?;
    let _telemetry = Telemetry::install(
        "finetune",
        &output.join("metrics.jsonl"),
        args.metrics_addr()?,
    )?;
    write_resolved_config(&output, "finetune", &args, &config)?;
    tracing::info!(
        "task `{}` ({kind:?}, {} outputs): {} training / {} dev examples, {} parameters, {} steps",
        objective.model.spec.name,
        objective.model.spec.outputs(),
        objective.train.len(),
        objective.dev.len(),
        objective.model.params.count(),
        train.steps
    );
    if !objective.model.params.fresh_names().is_empty() {
        tracing::info!("new: {}", objective.model.params.fresh_names().join(", "));
    }
    let metric = train.metric_for_best.clone();
    let progress = Progress::new("finetune", Some(train.steps), "steps");
    let trainer = Trainer::new(train, &output);
    let report = trainer.run(&mut objective, &mut |s| {
        progress.inc(1);
        progress.set_message(announce_eval(s, &metric));
    })?;
    progress.finish();
    let summary = FinetuneSummary::new(&objective, &report, &metric)?;
    summary.write(&output.join("metrics.json"))?;
    writeln!(std::io::stdout().lock(), "{}", summary.line(&output))?;
    Ok(())
}

fn main() -> ExitCode {
    exit_with(run(Cli::parse()))
}
