//! `gradus-generate`: sample text from a causal-LM model folder.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use gradus::cli::exit_with;
use gradus_model::generate::{Sampling, generate};

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
    /// Tokenizer (`tokenizer.json`).
    #[arg(long)]
    tokenizer: PathBuf,
    /// Prompts; each is continued separately.
    prompts: Vec<String>,
    /// A file of prompts, one per line.
    #[arg(long)]
    prompt_file: Option<PathBuf>,
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
    /// `cpu` or `cuda:N`.
    #[arg(long, default_value = "cpu")]
    device: String,
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let device = gradus_model::device(&cli.device)?;
    let (model, _params) = gradus_model::Decoder::load(&cli.model, device)?;
    let tk = gradus_tokenize::load(&cli.tokenizer)
        .with_context(|| format!("tokenizer {}", cli.tokenizer.display()))?;
    let (size, vocab) = (tk.get_vocab_size(true), model.vocab_size());
    if size > vocab {
        anyhow::bail!(
            "tokenizer {}: {size} tokens, but the model {} has {vocab} embeddings: not its tokenizer",
            cli.tokenizer.display(),
            cli.model.display()
        );
    }
    let mut prompts = cli.prompts.clone();
    if let Some(file) = &cli.prompt_file {
        let text = std::fs::read_to_string(file).with_context(|| format!("{}", file.display()))?;
        prompts.extend(text.lines().filter(|l| !l.is_empty()).map(str::to_string));
    }
    if prompts.is_empty() {
        prompts.push("\n".into());
    }
    let sampling = Sampling {
        temperature: cli.temperature,
        top_k: cli.top_k,
        top_p: cli.top_p,
        seed: cli.seed,
    };
    let stop = gradus_tokenize::SpecialTokens::of(&tk).eos;
    let mut out = std::io::stdout().lock();
    for prompt in &prompts {
        let ids = tk
            .encode(prompt.as_str(), false)
            .map_err(|e| anyhow::anyhow!("encoding the prompt: {e}"))?
            .get_ids()
            .to_vec();
        if ids.is_empty() {
            anyhow::bail!("prompt {prompt:?} encodes to no tokens: give some text");
        }
        let new = generate(&model, &ids, cli.max_new_tokens, &sampling, stop)?;
        let text = tk
            .decode(&new, false)
            .map_err(|e| anyhow::anyhow!("decoding: {e}"))?;
        writeln!(out, "{prompt}{text}")?;
    }
    Ok(())
}

fn main() -> ExitCode {
    exit_with(run(Cli::parse()))
}
