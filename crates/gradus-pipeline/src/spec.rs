//! The pipeline file: stages with their kind, config, inputs and overrides.
//!
//! ```toml
//! name = "demo"
//! run_dir = "runs/demo"          # each stage writes RUN_DIR/<stage>
//!
//! [[stage]]
//! name = "documents"
//! kind = "clean"
//! config = "pipelines/demo/clean.toml"
//! watch = ["data/web"]           # files whose contents count as the stage's input
//!
//! [[stage]]
//! name = "tokens"
//! kind = "encode"
//! input = ["@documents"]         # `@stage` is that stage's output folder
//! tokenizer = "@tokenizer"
//!
//! [[stage]]
//! name = "pretrain"
//! kind = "pretrain"
//! config = "pipelines/demo/pretrain.toml"
//! input = ["@tokens"]            # every stage's upstream data, as `--input`
//! tokenizer = "@tokenizer/tokenizer.json"
//! set = { "train.steps" = 500 }  # config overrides, as `--set`
//! ```
//!
//! `${NAME}` and `${NAME:-default}` anywhere in the file are environment variables, as
//! in a shell. Relative paths are relative to the folder `gradus run` runs in.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// What a stage runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StageKind {
    /// `gradus import`: text or JSONL files to documents, unchanged.
    Import,
    /// `gradus-clean`: raw text to clean documents.
    Clean,
    /// `gradus-tokenize train`: a tokenizer from documents.
    Tokenizer,
    /// `gradus-tokenize encode`: documents to tokens.
    Encode,
    /// `gradus-tokenize examples`: labelled files to task examples.
    Examples,
    /// `gradus-pretrain`: a language model from tokens.
    Pretrain,
    /// `gradus-finetune`: a task head on a pretrained encoder.
    Finetune,
    /// `gradus-multitask`: several task heads on one encoder.
    Multitask,
    /// `gradus-eval`: the report.
    Eval,
}

impl StageKind {
    /// The binary and its subcommand.
    pub fn program(self) -> (&'static str, Option<&'static str>) {
        match self {
            Self::Import => ("gradus", Some("import")),
            Self::Clean => ("gradus-clean", None),
            Self::Tokenizer => ("gradus-tokenize", Some("train")),
            Self::Encode => ("gradus-tokenize", Some("encode")),
            Self::Examples => ("gradus-tokenize", Some("examples")),
            Self::Pretrain => ("gradus-pretrain", None),
            Self::Finetune => ("gradus-finetune", None),
            Self::Multitask => ("gradus-multitask", None),
            Self::Eval => ("gradus-eval", None),
        }
    }

    /// Whether the output is a shard dataset (sealed by its `manifest.json`).
    pub fn writes_shards(self) -> bool {
        matches!(
            self,
            Self::Import | Self::Clean | Self::Encode | Self::Examples
        )
    }

    /// Whether the stage can consume its input's shards while they are written: encode
    /// its `input` documents, pretraining its `input` tokens.
    pub fn can_follow(self) -> bool {
        matches!(self, Self::Encode | Self::Pretrain)
    }

    /// The files (relative to the output) that exist only once the stage has finished
    /// and whose contents identify what it produced.
    pub fn output_files(self) -> &'static [&'static str] {
        match self {
            Self::Import | Self::Clean | Self::Encode | Self::Examples => &["manifest.json"],
            Self::Tokenizer => &["tokenizer.json"],
            Self::Pretrain => &["model/config.json", "model/model.safetensors"],
            Self::Finetune | Self::Multitask => &["metrics.json", "model/model.safetensors"],
            Self::Eval => &["report.json"],
        }
    }

    /// The flag that passes a tokenizer, for kinds that take one.
    pub fn tokenizer_flag(self) -> Option<&'static str> {
        matches!(self, Self::Encode | Self::Examples | Self::Pretrain).then_some("--tokenizer")
    }

    /// The key of `set` that the stage's upstream data or tokenizer once went through,
    /// and how a pipeline passes it now: upstreams are passed one way, as `input` (and
    /// `tokenizer`), in every kind.
    pub fn replaced_key(self, key: &str) -> Option<&'static str> {
        let task_examples = || {
            let rest = key.strip_prefix("tasks.")?;
            let (index, field) = rest.split_once('.')?;
            (index.parse::<usize>().is_ok() && field == "examples").then_some(())
        };
        match (self, key) {
            (Self::Pretrain, "data.tokens") => Some("input = [\"@tokens\"]"),
            (Self::Pretrain, "data.tokenizer") => Some("tokenizer = \"...\""),
            (Self::Finetune, "examples") => Some("input = [\"@examples\"]"),
            (Self::Multitask, _) if task_examples().is_some() => {
                Some("input = [\"TASK=@examples\", ...]")
            }
            _ => None,
        }
    }

    /// The flag that passes a starting model, for kinds that take one (pretraining
    /// continues from it).
    pub fn model_flag(self) -> Option<&'static str> {
        match self {
            Self::Finetune | Self::Multitask => Some("--model"),
            Self::Pretrain => Some("--init-from"),
            _ => None,
        }
    }
}

/// The TOML file as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineFile {
    /// Shown in the progress view and the summary; defaults to the file's stem.
    pub name: Option<String>,
    /// Where stage outputs, logs and run records go; default `runs/<name>`.
    pub run_dir: Option<PathBuf>,
    /// Stages run at once at most (default: as many as are ready).
    pub jobs: Option<usize>,
    #[serde(rename = "stage", default)]
    pub stages: Vec<StageSpec>,
}

/// One `[[stage]]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageSpec {
    /// Also the output folder's name under the run folder; `@name` refers to it.
    pub name: String,
    pub kind: StageKind,
    /// The stage's own TOML.
    pub config: Option<PathBuf>,
    /// `--input` values; `@stage` and `SPLIT=@stage` refer to stage outputs.
    #[serde(default)]
    pub input: Vec<String>,
    /// Tokenizer (encode, examples): a path or `@stage`.
    pub tokenizer: Option<String>,
    /// Starting model (pretraining's `init_from`, fine-tuning, multi-task): a path or
    /// `@stage/model`.
    pub model: Option<String>,
    /// Config overrides (`--set key=value`); nested tables become dotted keys and
    /// `@stage` strings become paths.
    #[serde(default)]
    pub set: toml::Table,
    /// Files or folders the stage reads through its config: their contents are part of
    /// what decides whether it must run again.
    #[serde(default)]
    pub watch: Vec<PathBuf>,
    /// Stages to wait for besides those referred to with `@`.
    #[serde(default)]
    pub after: Vec<String>,
    /// Encode and pretrain: consume the input's shards while they are written (default
    /// true when the input is another stage's dataset).
    pub follow: Option<bool>,
    /// With `follow`: start once the followed stage has committed this many shards
    /// (default 1).
    pub start_after_shards: Option<usize>,
    /// Worker threads of the stage (default: every core).
    pub threads: Option<usize>,
    /// The stage's seed (`--seed`).
    pub seed: Option<u64>,
}
