//! `gradus-multitask`: one pretrained encoder trained on several tasks at once (joint,
//! alternating or sampled), each task exported as its own checkpoint in
//! `OUTPUT/tasks/<task>`, then optionally fine-tuned on its own (`OUTPUT/finetune/<task>`).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use gradus::cli::{
    StageArgs, StageRun, exit_with, in_step_with_metrics, step_progress, write_resolved_config,
    write_summary,
};
use gradus_finetune::run::{announce_eval, prepare};
use gradus_multitask::MultitaskConfig;
use gradus_multitask::run::{MultitaskSummary, announce};
use gradus_telemetry::Progress;
use gradus_train::{RunDir, RunEnd, RunFacts, RunKind, RunSpec, Trainer};

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
    let mut config: MultitaskConfig = args.resolve_config()?;
    if let Some(model) = cli.model {
        config.training.model = model;
    }
    // Every check runs before anything is written or deleted.
    let mut objective = config.build()?;
    let train = config.train_config(&objective.tasks);
    let facts = RunFacts {
        model: Some("tasks".into()),
        base_model: (config.training.init == gradus_finetune::Init::Pretrained)
            .then(|| config.training.model.clone()),
        data: config.tasks.iter().map(|t| t.examples.clone()).collect(),
        tokenizer: None,
        seed: config.training.seed,
        selection: Some(train.selection()?),
    };
    let spec = RunSpec::new(RunKind::Multitask, &config, args.overwrite)?
        .with_inputs([config.training.model.clone()])
        .with_facts(facts);
    let run = StageRun::open(&args, spec, &config)?;
    for (data, spec) in objective.tasks.iter().zip(&objective.model.specs) {
        tracing::info!(
            "task `{}` ({:?}, {} outputs, weight {}): {} training / {} dev examples",
            data.name,
            spec.kind,
            spec.outputs(),
            data.weight,
            data.train.len(),
            data.dev.len()
        );
    }
    tracing::info!(
        "{:?}: {} steps, {} parameters",
        config.strategy,
        train.steps,
        objective.model.params.count()
    );
    let names: Vec<String> = objective.tasks.iter().map(|d| d.name.clone()).collect();
    let metric = train.metric_for_best.clone();
    let progress = Progress::new("multitask", Some(train.steps), "steps");
    let report = run.trainer(train).run(&mut objective, &mut |s| {
        progress.inc(1);
        progress.set_message(announce(s, &names, &metric));
    })?;
    progress.finish();
    let exported = objective.export_tasks(&output.join("tasks"))?;
    let mut summary = MultitaskSummary::new(&config, &objective, &report, &exported)?;
    drop(objective);
    for (task, dir) in config.tasks.iter().zip(&exported) {
        let Some(refine) = config.finetune_config(task, dir.clone()) else {
            continue;
        };
        let out = output.join("finetune").join(&task.name);
        // Not emptied: a rerun resumes the fine-tuning from its checkpoints.
        let (objective, train, spec) = prepare(&refine, false)?;
        let dir = RunDir::open(&out, spec)?;
        write_resolved_config(&out, "finetune", &args, &refine)?;
        let trainer = in_step_with_metrics(Trainer::new(train, &out), &run.telemetry);
        let progress = step_progress(&format!("finetune {}", task.name), &trainer.config);
        let metric = trainer.config.metric_for_best.clone();
        let result = gradus_finetune::run::train(objective, trainer, &mut |s| {
            progress.inc(1);
            progress.set_message(announce_eval(s, &metric));
        })?;
        progress.finish();
        dir.finish(result.end())?;
        if let Some(t) = summary.tasks.get_mut(&task.name) {
            t.finetuned = Some(result);
        }
    }
    summary.write(&output.join("metrics.json"))?;
    let text = format!(
        "{}{}: {} steps ({:.1} s); tasks in {}\n",
        summary.table(),
        output.display(),
        summary.steps,
        summary.train_seconds,
        output.join("tasks").display()
    );
    write_summary(&output, &text)?;
    write!(std::io::stdout().lock(), "{text}")?;
    run.finish(RunEnd::of(&report).with_figures(summary.dev.clone()))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    exit_with(gradus::cli::run_stage(&cli.args.clone(), cli, stage))
}
