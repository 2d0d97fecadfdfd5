//! `gradus-predict`: label texts with a fine-tuned checkpoint: arguments or a file (JSON
//! lines on stdout), or an `examples` dataset (a `predictions` dataset).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use gradus::cli::{exit_with, require_model_folder};
use gradus_finetune::Predictor;
use gradus_finetune::data::load_examples;
use gradus_record::{claim_output_with_config, write_resolved_config};
use gradus_shard::{
    DatasetKind, DatasetWriter, InputRef, OpenMode, Prediction, Producer, Record, WriterOptions,
};
use gradus_telemetry::init_tracing;
use serde::Serialize;

#[derive(Debug, Parser)]
#[command(
    name = "gradus-predict",
    version,
    about = "Label texts with a fine-tuned classification or regression model"
)]
struct Cli {
    /// A folder written by gradus-finetune (RUN/model).
    #[arg(long)]
    model: PathBuf,
    /// Texts to label; `first<TAB>second` is a sentence pair.
    texts: Vec<String>,
    /// A file of texts, one per line (a tab separates a pair).
    #[arg(long)]
    file: Option<PathBuf>,
    /// An examples dataset to label (encoded with the model's tokenizer).
    #[arg(long, conflicts_with_all = ["texts", "file"])]
    examples: Option<PathBuf>,
    /// Only this split of `--examples`.
    #[arg(long)]
    split: Option<String>,
    /// Where `--examples` predictions go (a predictions dataset).
    #[arg(long, short = 'o', requires = "examples")]
    output: Option<PathBuf>,
    /// Replace an existing output.
    #[arg(long)]
    overwrite: bool,
    /// `cpu` or `cuda:N`.
    #[arg(long, default_value = "cpu")]
    device: String,
    #[arg(long, short = 'v')]
    verbose: bool,
}

fn pair(line: &str) -> (String, Option<String>) {
    match line.split_once('\t') {
        Some((a, b)) => (a.to_string(), Some(b.to_string())),
        None => (line.to_string(), None),
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    init_tracing(cli.verbose);
    let device = gradus_model::device(&cli.device)?;
    require_model_folder(&cli.model)?;
    let predictor = Predictor::load(&cli.model, &device)?;
    if let Some(dir) = &cli.examples {
        let output = cli
            .output
            .as_ref()
            .context("--examples needs --output DIR")?;
        return predict_dataset(&predictor, &cli, dir, output);
    }
    let mut texts: Vec<(String, Option<String>)> = cli.texts.iter().map(|t| pair(t)).collect();
    if let Some(file) = &cli.file {
        let text =
            std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        texts.extend(text.lines().filter(|l| !l.trim().is_empty()).map(pair));
    }
    if texts.is_empty() {
        anyhow::bail!("nothing to label: pass texts, --file or --examples");
    }
    let examples = predictor.encode(&texts)?;
    let mut out = std::io::stdout().lock();
    for p in predictor.predict(&examples)? {
        let line = serde_json::json!({
            "text": p.text,
            "text_pair": p.text_pair,
            "label": p.predicted_name,
            "label_id": p.predicted,
            "score": p.score,
            "probs": p.probs,
        });
        writeln!(out, "{line}")?;
    }
    Ok(())
}

/// What a predictions dataset was made from, as its `config.toml` records it.
#[derive(Serialize)]
struct PredictSettings {
    model: PathBuf,
    examples: PathBuf,
    #[serde(skip_serializing_if = "Option::is_none")]
    split: Option<String>,
}

/// Labels every example of `dir` into a sealed predictions dataset at `output`.
fn predict_dataset(
    predictor: &Predictor,
    cli: &Cli,
    dir: &std::path::Path,
    output: &std::path::Path,
) -> anyhow::Result<()> {
    gradus_finetune::check_vocabulary(&cli.model, dir)?;
    let examples = load_examples(dir, cli.split.as_deref(), predictor.model.spec().max_len)?;
    let identity = serde_json::json!({
        "model": cli.model.join("model.safetensors").display().to_string(),
        "split": cli.split,
    });
    let producer = Producer::new("predict", &identity)?;
    let inputs = vec![InputRef::dataset(dir, output, DatasetKind::Examples)];
    let opts = WriterOptions {
        mode: if cli.overwrite {
            OpenMode::Overwrite
        } else {
            OpenMode::Resume
        },
        ..WriterOptions::default()
    };
    let settings = PredictSettings {
        model: cli.model.clone(),
        examples: dir.to_path_buf(),
        split: cli.split.clone(),
    };
    let input = [dir.display().to_string()];
    claim_output_with_config(output, "predict", cli.overwrite, &input, &settings)?;
    let mut writer =
        DatasetWriter::create(output, DatasetKind::Predictions, producer, inputs, opts)?;
    let manifest = if writer.is_sealed() {
        writer.manifest().clone()
    } else {
        let key = dir.display().to_string();
        let rows = predictor.predict(&examples)?;
        writer.write(&key, &Prediction::to_batch(&rows)?)?;
        writer.finish_source(&key)?;
        writer.seal()?
    };
    write_resolved_config(output, "predict", &input, &settings)?;
    writeln!(
        std::io::stdout().lock(),
        "{}: {} predictions",
        output.display(),
        manifest.rows()
    )?;
    Ok(())
}

fn main() -> ExitCode {
    exit_with(run(Cli::parse()))
}
