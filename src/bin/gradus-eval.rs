//! `gradus-eval`: evaluates pretraining, fine-tuning and multi-task runs against
//! baselines and writes `report.json`, `report.md` and SVG charts into the output.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use gradus::cli::{StageArgs, exit_with};
use gradus_eval::stage::{EvalConfig, check, evaluate, run_spec};
use gradus_telemetry::Progress;
use gradus_train::RunEnd;

#[derive(Debug, Parser)]
#[command(
    name = "gradus-eval",
    version,
    about = "Evaluate trained models against baselines and write a report with charts"
)]
struct Cli {
    #[command(flatten)]
    args: StageArgs,
    /// Run folders to evaluate (added to the config's `runs`).
    runs: Vec<PathBuf>,
}

/// The stage itself, on a worker of the thread pool ([`gradus::cli::run_stage`]).
fn stage(cli: Cli) -> anyhow::Result<()> {
    let args = cli.args;
    let output = args.output()?.to_path_buf();
    let mut config: EvalConfig = args.resolve_config_checked(EvalConfig::check)?;
    config.runs.extend(args.input.iter().map(PathBuf::from));
    config.runs.extend(cli.runs);
    // Every run it reads is checked before the output is touched.
    check(&config)?;
    let run = args.open_run(run_spec(&config, args.overwrite)?, &config)?;
    let total = config.runs.len() + config.checkpoints.len();
    let progress = Progress::new("eval", Some(total as u64), "models");
    // Counts the models begun, naming the one under way.
    let report = evaluate(&config, &output, &mut |name| {
        progress.set_message(name.to_string());
        progress.inc(1);
    })?;
    progress.finish();
    let mut out = std::io::stdout().lock();
    for s in &report.sections {
        let value = s.key_value().map_or("–".into(), |v| format!("{v:.4}"));
        let base: Vec<String> = s
            .key_baselines()
            .into_iter()
            .map(|(b, v)| format!("{b}: {v:.4}"))
            .collect();
        let base = if base.is_empty() {
            String::new()
        } else {
            format!(" ({})", base.join(", "))
        };
        writeln!(out, "{}: {} {value}{base}", s.name, s.key_metric)?;
    }
    writeln!(out, "report: {}", output.join("report.md").display())?;
    // The record's figures: each section's key metric, named `<section>/<metric>`.
    let figures = report
        .sections
        .iter()
        .filter_map(|s| Some((format!("{}/{}", s.name, s.key_metric), s.key_value()?)))
        .collect();
    Ok(run.finish(RunEnd::default().with_figures(figures))?)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    exit_with(gradus::cli::run_stage(&cli.args.clone(), cli, stage))
}
