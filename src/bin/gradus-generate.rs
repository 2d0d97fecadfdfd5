//! `gradus-generate`: sample text from a causal-LM model folder (GPT-2 or Llama-style),
//! a batch of prompts at a time, keys and values cached between steps. An
//! instruction-tuned folder's template frames each prompt, and its end token ends the
//! answer.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use gradus::cli::exit_with;
use gradus_model::generate::{Generation, Sampling, generate_batch};

#[derive(Debug, Parser)]
#[command(
    name = "gradus-generate",
    version,
    about = "Sample text from a pretrained causal LM"
)]
struct Cli {
    /// Model folder (`config.json` + `model.safetensors`), e.g. RUN/model.
    #[arg(long)]
    model: PathBuf,
    /// Tokenizer (`tokenizer.json`); by default the one in the model folder.
    #[arg(long)]
    tokenizer: Option<PathBuf>,
    /// Prompts; each is continued separately.
    prompts: Vec<String>,
    /// A prompt file: the whole file is one prompt (newlines included); a `.jsonl` file
    /// holds one prompt per line, as a JSON string or an object with a `prompt` field.
    /// Repeatable.
    #[arg(long)]
    prompt_file: Vec<PathBuf>,
    /// Tokens to generate per prompt.
    #[arg(long, default_value_t = 200)]
    max_new_tokens: usize,
    #[arg(long, default_value_t = 0.8)]
    temperature: f64,
    #[arg(long, default_value_t = 200)]
    top_k: usize,
    #[arg(long, default_value_t = 1.0)]
    top_p: f64,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Stop a continuation where this text appears (it is not printed). Repeatable; the
    /// tokenizer's end-of-text token always stops.
    #[arg(long)]
    stop: Vec<String>,
    /// Prompts generated together.
    #[arg(long, default_value_t = 8)]
    batch_size: usize,
    /// Recompute every step instead of caching keys and values (for comparison).
    #[arg(long)]
    no_cache: bool,
    /// Read each prompt as it is, even when the model was instruction-tuned (by default
    /// its prompt template frames the prompt, and its end token stops the answer).
    #[arg(long)]
    raw: bool,
    /// `cpu` or `cuda:N`.
    #[arg(long, default_value = "cpu")]
    device: String,
}

/// The prompts of a prompt file.
fn read_prompt_file(path: &Path) -> anyhow::Result<Vec<String>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
    if path.extension().and_then(|e| e.to_str()) != Some("jsonl") {
        return Ok(vec![text]);
    }
    let mut prompts = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at = || format!("{}:{}", path.display(), i + 1);
        let value: serde_json::Value = serde_json::from_str(line).with_context(at)?;
        let prompt = match &value {
            serde_json::Value::String(s) => s.clone(),
            other => other
                .get("prompt")
                .and_then(serde_json::Value::as_str)
                .map(str::to_string)
                .with_context(|| format!("{}: no string `prompt` field", at()))?,
        };
        prompts.push(prompt);
    }
    Ok(prompts)
}

/// The text of `new` tokens, cut where the first stop string starts.
fn cut_at_stop(text: &str, stops: &[String]) -> (String, bool) {
    match stops.iter().filter_map(|s| text.find(s.as_str())).min() {
        Some(at) => (text[..at].to_string(), true),
        None => (text.to_string(), false),
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let sampling = Sampling {
        temperature: cli.temperature,
        top_k: cli.top_k,
        top_p: cli.top_p,
        seed: cli.seed,
    };
    sampling.check().map_err(anyhow::Error::msg)?;
    let device = gradus_model::device(&cli.device)?;
    gradus::cli::require_model_folder(&cli.model)?;
    let (model, _params) = gradus_model::Decoder::load(&cli.model, device)?;
    let tokenizer = match &cli.tokenizer {
        Some(path) => path.clone(),
        None => {
            let path = cli.model.join("tokenizer.json");
            anyhow::ensure!(
                path.is_file(),
                "{}: no tokenizer.json in the model folder; pass --tokenizer",
                cli.model.display()
            );
            path
        }
    };
    let tk = gradus_tokenize::load(&tokenizer)
        .with_context(|| format!("tokenizer {}", tokenizer.display()))?;
    let (size, vocab) = (tk.get_vocab_size(true), model.vocab_size());
    if size > vocab {
        anyhow::bail!(
            "tokenizer {}: {size} tokens, but the model {} has {vocab} embeddings: not its tokenizer",
            tokenizer.display(),
            cli.model.display()
        );
    }
    let mut prompts = cli.prompts.clone();
    for file in &cli.prompt_file {
        prompts.extend(read_prompt_file(file)?);
    }
    if prompts.is_empty() {
        prompts.push("\n".into());
    }
    // An instruction-tuned model reads its prompts as it was trained to.
    let template = match cli.raw {
        true => None,
        false => gradus_finetune::read_task_spec(&cli.model)?.and_then(|t| t.template),
    };
    let encoder = template
        .as_ref()
        .map(|t| t.encoder(&tk))
        .transpose()
        .with_context(|| format!("the prompt template of {}", cli.model.display()))?;
    let mut ids = Vec::with_capacity(prompts.len());
    for prompt in &mut prompts {
        let encoded = match &encoder {
            Some(e) => e.encode_prompt(prompt)?,
            None => tk
                .encode(prompt.as_str(), false)
                .map_err(|e| anyhow::anyhow!("encoding the prompt: {e}"))?
                .get_ids()
                .to_vec(),
        };
        if encoded.is_empty() {
            anyhow::bail!("prompt {prompt:?} encodes to no tokens: give some text");
        }
        // Printed as the model read it.
        if let Some(t) = &template {
            *prompt = t.apply(prompt);
        }
        ids.push(encoded);
    }
    let generation = Generation {
        max_new_tokens: cli.max_new_tokens,
        sampling,
        cache: !cli.no_cache,
    };
    let eos = match &encoder {
        Some(e) => Some(e.eos),
        None => gradus_tokenize::SpecialTokens::of(&tk).eos,
    };
    let decode = |new: &[u32]| -> String { tk.decode(new, false).unwrap_or_default() };
    let mut done = |_: usize, new: &[u32]| {
        (eos.is_some() && new.last().copied() == eos) || cut_at_stop(&decode(new), &cli.stop).1
    };
    let mut out = std::io::stdout().lock();
    for (chunk, texts) in ids
        .chunks(cli.batch_size.max(1))
        .zip(prompts.chunks(cli.batch_size.max(1)))
    {
        let new = generate_batch(&model, chunk, &generation, &mut done)?;
        for (prompt, mut new) in texts.iter().zip(new) {
            if eos.is_some() && new.last().copied() == eos {
                new.pop();
            }
            let (text, _) = cut_at_stop(&decode(&new), &cli.stop);
            writeln!(out, "{prompt}{text}")?;
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    exit_with(run(Cli::parse()))
}
