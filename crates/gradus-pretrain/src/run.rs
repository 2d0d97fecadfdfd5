//! What a pretraining run records and leaves behind: the run record's facts, the model
//! folder completed with its tokenizer, `report.json`, and the line that sums it up.

use std::path::Path;

use anyhow::Context;
use gradus_record::{RunFacts, RunKind};
use gradus_train::{RunSpec, TrainReport};

use crate::PretrainConfig;

/// How the output folder of `config`'s run is opened, once its settings are checked
/// ([`PretrainConfig::check`]): its record names the tokens, the tokenizer, the seed and
/// the selection metric.
pub fn spec(config: &PretrainConfig, overwrite: bool) -> anyhow::Result<RunSpec> {
    config.check()?;
    let facts = RunFacts {
        model: Some("model".into()),
        base_model: config.init_from.clone(),
        data: config
            .data
            .sources()
            .map_err(anyhow::Error::msg)?
            .into_iter()
            .map(|s| s.tokens)
            .collect(),
        tokenizer: Some(config.data.tokenizer.clone()),
        seed: config.seed,
        selection: Some(config.train.selection()?),
    };
    Ok(RunSpec::new(RunKind::Pretrain, config, overwrite)?.with_facts(facts))
}

/// Completes a finished run's folder: the model carries its tokenizer (so that it is
/// complete for fine-tuning), and `report.json` holds the trainer's report.
pub fn write_outputs(
    config: &PretrainConfig,
    output: &Path,
    report: &TrainReport,
) -> anyhow::Result<()> {
    let model_dir = output.join("model");
    if model_dir.is_dir() {
        // Through the loader, so a folder or a vocab.txt also ends as tokenizer.json.
        let tk = gradus_tokenize::load(&config.data.tokenizer)?;
        let path = model_dir.join("tokenizer.json");
        tk.save(&path, false)
            .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
    }
    let path = output.join("report.json");
    std::fs::write(&path, serde_json::to_string_pretty(report)?)
        .with_context(|| format!("writing {}", path.display()))
}

/// The line a finished run prints: steps, validation loss, speed, time, model folder.
pub fn summary_line(output: &Path, report: &TrainReport) -> String {
    let val = report
        .last_eval
        .as_ref()
        .and_then(|e| e.get("loss"))
        .copied()
        .unwrap_or(f64::NAN);
    format!(
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
    )
}
