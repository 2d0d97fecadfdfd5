//! `gradus-multitask`: one pretrained encoder trained on several tasks at once (joint,
//! alternating or sampled), each task exported as its own checkpoint in
//! `OUTPUT/tasks/<task>`, then optionally fine-tuned on its own (`OUTPUT/finetune/<task>`).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use gradus::cli::{StageArgs, exit_with, step_progress, write_summary};
use gradus_finetune::MultitaskConfig;
use gradus_finetune::multitask_run::{MultitaskSummary, prepare, train};
use gradus_finetune::run::announce_eval;
use gradus_telemetry::Progress;
use gradus_train::StageRun;

#[derive(Debug, Parser)]
#[command(
    name = "gradus-multitask",
    version,
    about = "Train one encoder on several tasks at once, then optionally fine-tune each"
)]
struct Cli {
    #[command(flatten)]
    args: StageArgs,
    /// Checkpoint folder to start from (overrides the config's `model`).
    #[arg(long)]
    model: Option<PathBuf>,
}

/// The stage itself, on a worker of the thread pool ([`gradus::cli::run_stage`]).
fn stage(cli: Cli) -> anyhow::Result<()> {
    let args = cli.args;
    let output = args.output()?.to_path_buf();
    let mut config: MultitaskConfig =
        args.resolve_config_checked(|c: &MultitaskConfig| Ok(c.refuse_unknown()?))?;
    if let Some(model) = cli.model {
        config.training.model = model;
    }
    for (name, examples) in args.named_inputs()? {
        config.set_examples(&name, examples)?;
    }
    // Every check runs before anything is written or deleted.
    let (objective, train_config, spec) = prepare(&config, args.overwrite)?;
    let run = args.open_run(spec, &config)?;
    let progress = Progress::new("multitask", Some(train_config.steps), "steps");
    let (mut summary, end) = train(
        &config,
        objective,
        run.trainer(train_config),
        &mut |_, msg| {
            progress.inc(1);
            progress.set_message(msg.to_string());
        },
    )?;
    progress.finish();
    refine(&config, &args, &run, &mut summary)?;
    summary.write(&output.join("metrics.json"))?;
    let text = format!(
        "{}{}: {} steps ({:.1} s); tasks in {}\n",
        summary.table(),
        output.display(),
        summary.training.steps,
        summary.training.train_seconds,
        output.join("tasks").display()
    );
    write_summary(&output, &text)?;
    write!(std::io::stdout().lock(), "{text}")?;
    Ok(run.finish(end)?)
}

/// Fine-tunes each exported task on its own when the config asks for it, into
/// `OUTPUT/finetune/<task>`; not emptied first, so a rerun resumes from its checkpoints.
fn refine(
    config: &MultitaskConfig,
    args: &StageArgs,
    run: &StageRun,
    summary: &mut MultitaskSummary,
) -> anyhow::Result<()> {
    let output = args.output()?;
    for task in &config.tasks {
        let exported = output.join("tasks").join(&task.name);
        let Some(refine) = config.finetune_config(task, exported) else {
            continue;
        };
        let out = output.join("finetune").join(&task.name);
        let (objective, train, spec) = gradus_finetune::run::prepare(&refine, false)?;
        let dir = run.open_nested(&out, &args.input, spec, &refine)?;
        let trainer = run.trainer_in(&out, train);
        let progress = step_progress(&format!("finetune {}", task.name), &trainer.config);
        let metric = trainer.config.metric_for_best.clone();
        let (result, end) = gradus_finetune::run::train(objective, trainer, &mut |s| {
            progress.inc(1);
            progress.set_message(announce_eval(s, &metric));
        })?;
        progress.finish();
        dir.finish(end)?;
        if let Some(t) = summary.tasks.get_mut(&task.name) {
            t.finetuned = Some(result);
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    exit_with(gradus::cli::run_stage(&cli.args.clone(), cli, stage))
}
