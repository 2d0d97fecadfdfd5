//! `gradus`: dataset tools (`inspect`, `verify`, `import`) and the pipeline runner (`run`).

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use gradus::cli::{StageArgs, exit_with};
use gradus_clean::import;
use gradus_shard::inspect;
use gradus_telemetry::{Progress, Telemetry, init_tracing};

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
        /// Accept a dataset that is not sealed (its producer is still writing it, or
        /// stopped before the end) as long as what it holds checks out.
        #[arg(long)]
        unsealed_ok: bool,
    },
    /// Write raw files (JSON lines, text, or the text column of a TSV, CSV or Parquet
    /// table) into a `documents` dataset as they are.
    Import {
        #[command(flatten)]
        args: StageArgs,
    },
    /// Write a model folder, checkpoint or run's kept model as a standalone folder that
    /// opens in transformers (`hf`) or sentence-transformers, with its tokenizer and card.
    Export {
        /// A model folder, a checkpoint (`RUN/checkpoints/step-N`) or a run folder.
        model: PathBuf,
        /// Output folder.
        #[arg(long, short = 'o')]
        output: PathBuf,
        /// `hf` or `sentence-transformers` (default: the layout that holds the model).
        #[arg(long)]
        layout: Option<String>,
        /// Tokenizer, when the folder has none and its run names none.
        #[arg(long)]
        tokenizer: Option<PathBuf>,
        /// Replace an existing output folder (after every check).
        #[arg(long)]
        overwrite: bool,
    },
    /// Print what a model folder computes on texts, a JSON line each: a causal LM's
    /// logits and greedy continuation, an MLM's logits, an encoder's hidden states, a
    /// task model's head outputs (to compare the folder in another framework).
    Outputs {
        /// A model folder.
        model: PathBuf,
        /// Texts, one per argument.
        #[arg(required = true)]
        texts: Vec<String>,
    },
    /// Run a pipeline file: every stage whose output is not up to date, concurrently
    /// where the graph allows, with one progress view and a summary table.
    Run {
        /// Pipeline file (TOML).
        pipeline: PathBuf,
        /// Print what would run and why; run nothing.
        #[arg(long)]
        dry_run: bool,
        /// Run this stage even if it is up to date (repeatable).
        #[arg(long, value_name = "STAGE")]
        force: Vec<String>,
        /// Run this stage and everything downstream of it.
        #[arg(long, value_name = "STAGE")]
        from: Option<String>,
        /// Stages at once at most.
        #[arg(long, short = 'j')]
        jobs: Option<usize>,
        /// Folder for stage outputs, logs and run records (overrides the file's `run_dir`).
        #[arg(long)]
        run_dir: Option<PathBuf>,
        /// Override a stage's config key, e.g. `--set pretrain.train.steps=500`
        /// (repeatable; values are TOML, bare words are strings).
        #[arg(long = "set", value_name = "STAGE.KEY=VALUE")]
        overrides: Vec<String>,
        /// More log output.
        #[arg(long, short = 'v')]
        verbose: bool,
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
            refuse_non_dataset(&dataset)?;
            let summary = inspect::summarize(&dataset, head)?;
            if json {
                serde_json::to_writer_pretty(&mut stdout, &summary)?;
                writeln!(stdout)?;
            } else {
                inspect::render(&summary, &mut stdout).context("writing to stdout")?;
            }
            Ok(())
        }
        Command::Verify {
            dataset,
            unsealed_ok,
        } => {
            refuse_non_dataset(&dataset)?;
            let found = inspect::verify(&dataset, unsealed_ok)?;
            let Some(first) = found.problems.first() else {
                writeln!(
                    stdout,
                    "ok: {}: checksums, schemas and lineage verified",
                    found.summary
                )?;
                return Ok(());
            };
            for p in &found.problems {
                writeln!(stdout, "problem: {p}")?;
            }
            anyhow::bail!(
                "{}: {} problem(s), first: {first}",
                dataset.display(),
                found.problems.len()
            )
        }
        Command::Import { args } => {
            init_tracing(args.verbose);
            let config: import::ImportConfig = args.resolve_config()?;
            let output = args.output()?;
            args.claim_output(output, "import", &config)?;
            let _telemetry = Telemetry::install(
                "import",
                &output.join("metrics.jsonl"),
                args.metrics_addr()?,
            )?;
            let import = import::Import::open(output, &args.input, args.mode(), &config)?;
            let progress = Progress::new("import", Some(import.files().len() as u64), "files");
            let rows = import.run(&mut || progress.inc(1))?;
            progress.finish();
            args.write_config(output, "import", &config)?;
            writeln!(stdout, "{}: {rows} documents", output.display())?;
            Ok(())
        }
        Command::Export {
            model,
            output,
            layout,
            tokenizer,
            overwrite,
        } => {
            let spec = gradus_export::ExportSpec {
                from: model,
                to: output,
                layout: layout
                    .as_deref()
                    .map(gradus_export::Layout::parse)
                    .transpose()?,
                tokenizer,
                overwrite,
            };
            let done = gradus_export::export(&spec)?;
            writeln!(
                stdout,
                "{}: {} in the {} layout",
                spec.to.display(),
                done.kind.describe(),
                done.layout
            )?;
            Ok(())
        }
        Command::Outputs { model, texts } => {
            gradus::cli::require_model_folder(&model)?;
            for line in gradus::outputs::model_outputs(&model, &texts)? {
                writeln!(stdout, "{line}")?;
            }
            Ok(())
        }
        Command::Run {
            pipeline,
            dry_run,
            force,
            from,
            jobs,
            run_dir,
            overrides,
            verbose,
        } => {
            init_tracing(verbose);
            let plan = gradus_pipeline::Plan::load(&pipeline, run_dir.as_deref(), &overrides)?;
            let opts = gradus_pipeline::RunOptions {
                force,
                from,
                jobs,
                bin_dir: None,
            };
            let report = if dry_run {
                gradus_pipeline::dry_run(&plan, &opts)?
            } else {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .context("starting the runtime")?;
                let report = runtime.block_on(gradus_pipeline::run(&plan, &opts))?;
                // The stage lines end without a newline on a terminal.
                if std::io::stderr().is_terminal() {
                    writeln!(std::io::stderr())?;
                }
                report
            };
            write!(stdout, "{}", report.table())?;
            if dry_run {
                for (stage, r) in plan.stages.iter().zip(&report.stages) {
                    if r.status == gradus_pipeline::Outcome::WouldRun {
                        let resume = r.reason.starts_with("resume");
                        let command = gradus_pipeline::command_line(stage, resume).join(" ");
                        writeln!(stdout, "  {}: {command}", stage.name)?;
                    }
                }
            }
            Ok(())
        }
    }
}

/// `inspect` and `verify` read datasets; another folder is named for what it is.
fn refuse_non_dataset(dir: &std::path::Path) -> anyhow::Result<()> {
    if dir.join(gradus_shard::MANIFEST_FILE).is_file() {
        return Ok(());
    }
    match gradus_record::output_stage(dir)? {
        Some(stage) => anyhow::bail!(
            "{} is not a dataset: it holds the output of `{stage}` (its record is run.json \
             when it is a run; `gradus-eval` reports on runs)",
            dir.display()
        ),
        None => anyhow::bail!("{}: no dataset here (no manifest.json)", dir.display()),
    }
}

fn main() -> ExitCode {
    exit_with(run(Cli::parse()))
}
