//! `gradus-pretrain`: a `tokens` dataset to a pretrained model (causal LM, or masked LM
//! with optional next-sentence prediction).

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use gradus::cli::{StageArgs, exit_with};
use gradus_pretrain::{
    PretrainConfig, PretrainObjective, clm_objective, connect_ranks, mlm_objective,
};
use gradus_telemetry::{Progress, Telemetry};
use gradus_train::{Objective, RunEnd, Trainer};

#[derive(Debug, Parser)]
#[command(
    name = "gradus-pretrain",
    version,
    about = "Pretrain a GPT (causal LM) or a BERT (masked LM, next-sentence prediction) on a tokens dataset"
)]
struct Cli {
    #[command(flatten)]
    args: StageArgs,
    /// Overrides the config's `objective`: clm, mlm or mlm+nsp.
    #[arg(long)]
    objective: Option<PretrainObjective>,
    /// Continue from this model folder's weights (overrides the config's `init_from`).
    #[arg(long, value_name = "DIR")]
    init_from: Option<std::path::PathBuf>,
    /// The tokens' tokenizer, `tokenizer.json` (overrides the config's `data.tokenizer`;
    /// by default the one in the tokens dataset).
    #[arg(long, value_name = "FILE")]
    tokenizer: Option<std::path::PathBuf>,
}

/// The stage itself, on a worker of the thread pool ([`gradus::cli::run_stage`]).
fn stage(cli: Cli) -> anyhow::Result<()> {
    let args = cli.args;
    let mut config: PretrainConfig = args.resolve_config_checked(PretrainConfig::check)?;
    // One rank of several (gradus-launch): rank 0 owns the output folder.
    let ranks = gradus_train::dist::rank_from_env()?;
    if let Some(r) = ranks {
        gradus_pretrain::ranks_supported(r)?;
        config.ranks = Some(r);
        if config.device == "cuda" {
            config.device = format!("cuda:{}", r.rank);
        }
    }
    if let Some(objective) = cli.objective {
        config.objective = objective;
    }
    set_inputs(&args, &mut config)?;
    if let Some(tokenizer) = cli.tokenizer {
        config.data.tokenizer = tokenizer;
    }
    config
        .data
        .default_tokenizer()
        .map_err(anyhow::Error::msg)?;
    if let Some(dir) = cli.init_from {
        config.init_from = Some(dir);
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

/// `--input DIR` is the tokens dataset; `--input NAME=DIR` points source `NAME` of
/// `data.mix` at `DIR`.
fn set_inputs(args: &StageArgs, config: &mut PretrainConfig) -> anyhow::Result<()> {
    let named = args
        .input
        .iter()
        .any(|i| i.split_once('=').is_some_and(|(n, _)| !n.contains('/')));
    if !named {
        if let Some(tokens) =
            args.single_input("tokens dataset (or NAME=DIR per source of data.mix)")?
        {
            config.data.tokens = tokens;
        }
        return Ok(());
    }
    for (name, dir) in args.named_inputs()? {
        config
            .data
            .set_source(&name, dir)
            .map_err(anyhow::Error::msg)?;
    }
    Ok(())
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
    // rank: nobody reads or writes the folder before it is claimed and ready.
    let run = if rank == 0 {
        let spec = gradus_pretrain::run::spec(config, args.overwrite)?;
        Some(args.open_run(spec, config)?)
    } else {
        None
    };
    let collective = config.ranks.map(|r| connect_ranks(config, r)).transpose()?;
    let telemetry = if rank > 0 {
        let path = output.join(format!("metrics-rank-{rank}.jsonl"));
        Some(Telemetry::install("pretrain", &path, args.metrics_addr()?)?)
    } else {
        None
    };
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
    gradus_pretrain::run::write_outputs(config, &output, &report)?;
    let line = gradus_pretrain::run::summary_line(&output, &report);
    writeln!(std::io::stdout().lock(), "{line}")?;
    Ok(run.finish(RunEnd::of(&report))?)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    exit_with(gradus::cli::run_stage(&cli.args.clone(), cli, stage))
}
