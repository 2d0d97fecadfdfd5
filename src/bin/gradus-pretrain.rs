//! `gradus-pretrain`: a `tokens` dataset to a pretrained model (causal LM, or masked LM
//! with optional next-sentence prediction).

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use gradus::cli::{StageArgs, StageRun, exit_with};
use gradus::pretrain::{
    PretrainConfig, PretrainObjective, clm_objective, connect_ranks, mlm_objective,
};
use gradus_telemetry::{Progress, Telemetry, init_tracing};
use gradus_train::{Objective, RunSpec, Trainer};

#[derive(Debug, Parser)]
#[command(
    name = "gradus-pretrain",
    version,
    about = "Pretrain a GPT (causal LM) or a BERT (masked LM, next-sentence prediction) on a tokens dataset"
)]
struct Cli {
    #[command(flatten)]
    args: StageArgs,
    /// Overrides the config's `objective`.
    #[arg(long, value_enum)]
    objective: Option<PretrainObjective>,
}

fn run(cli: Cli) -> anyhow::Result<()> {
    init_tracing(cli.args.verbose);
    cli.args.apply()?;
    gradus::cli::on_worker(move || stage(cli))
}

/// The stage itself, on a worker of the thread pool ([`gradus::cli::on_worker`]).
fn stage(cli: Cli) -> anyhow::Result<()> {
    let args = cli.args;
    let mut config: PretrainConfig = args.resolve_config()?;
    // One rank of several (gradus-launch): rank 0 owns the output folder.
    let ranks = gradus_train::dist::rank_from_env()?;
    if let Some(r) = ranks {
        gradus::pretrain::ranks_supported(r)?;
        config.ranks = Some(r);
        if config.device == "cuda" {
            config.device = format!("cuda:{}", r.rank);
        }
    }
    if let Some(objective) = cli.objective {
        config.objective = objective;
    }
    if let Some(seed) = args.seed {
        config.seed = seed;
        config.train.seed = seed;
    }
    // Every input is read before the output folder is touched.
    match config.objective {
        PretrainObjective::Clm => {
            let objective = clm_objective(&config)?;
            tracing::info!("GPT with {} parameters", objective.params.count());
            pretrain(&args, &config, objective)
        }
        PretrainObjective::Mlm | PretrainObjective::MlmNsp => {
            let objective = mlm_objective(&config)?;
            tracing::info!("BERT with {} parameters", objective.params.count());
            pretrain(&args, &config, objective)
        }
    }
}

/// Trains a built objective into the output folder and reports.
fn pretrain<O: Objective>(
    args: &StageArgs,
    config: &PretrainConfig,
    mut objective: O,
) -> anyhow::Result<()> {
    let output = args.output()?.to_path_buf();
    let rank = config.ranks.map_or(0, |r| r.rank);
    // Rank 0 opens the folder before it joins the others, and joining waits for every
    // rank: nobody reads the folder before it is ready.
    let (run, telemetry) = if rank == 0 {
        let spec = RunSpec::new("pretrain", config, args.overwrite)?
            .with_inputs([config.data.tokens.clone(), config.data.tokenizer.clone()]);
        (Some(StageRun::open(args, spec, config)?), None)
    } else {
        let path = output.join(format!("metrics-rank-{rank}.jsonl"));
        let telemetry = Telemetry::install("pretrain", &path, args.metrics_addr()?)?;
        (None, Some(telemetry))
    };
    let collective = config.ranks.map(|r| connect_ranks(config, r)).transpose()?;
    let progress = Progress::new("pretrain", Some(config.train.steps), "steps");
    let mut trainer = match &run {
        Some(run) => run.trainer(config.train.clone()),
        None => Trainer::new(config.train.clone(), &output),
    };
    if let Some(c) = collective {
        trainer = trainer.with_collective(c);
    }
    let mut on_step = |s: &gradus_train::StepOutput| {
        progress.inc(1);
        let eval = s
            .eval
            .as_ref()
            .and_then(|e| e.get("loss"))
            .map_or(String::new(), |v| format!(" val {v:.4}"));
        progress.set_message(format!(
            "loss {:.4}{eval} {:.0} tok/s",
            s.loss, s.tokens_per_second
        ));
    };
    let report = trainer.run(&mut objective, &mut on_step)?;
    progress.finish();
    drop(telemetry);
    let Some(run) = run else {
        return Ok(());
    };
    // The model folder carries its tokenizer, so that it is complete for fine-tuning.
    let model_dir = output.join("model");
    if model_dir.is_dir() {
        // Through the loader, so a folder or a vocab.txt also ends as tokenizer.json.
        let tk = gradus_tokenize::load(&config.data.tokenizer)?;
        let path = model_dir.join("tokenizer.json");
        tk.save(&path, false)
            .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
    }
    std::fs::write(
        output.join("report.json"),
        serde_json::to_string_pretty(&report)?,
    )?;
    let val = report
        .last_eval
        .as_ref()
        .and_then(|e| e.get("loss"))
        .copied()
        .unwrap_or(f64::NAN);
    writeln!(
        std::io::stdout().lock(),
        "{}: {} steps, validation loss {val:.4}, {:.0} tokens/s{}, {:.1} s; model in {}",
        output.display(),
        report.steps,
        report.tokens_per_second,
        report
            .step_times
            .as_ref()
            .map_or(String::new(), |t| format!(", {}", t.describe("tokens"))),
        report.seconds,
        output.join("model").display()
    )?;
    run.finish()
}

fn main() -> ExitCode {
    exit_with(run(Cli::parse()))
}
