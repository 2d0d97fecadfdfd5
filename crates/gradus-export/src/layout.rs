//! The two layouts a folder can be written in, and which models each can hold.

use std::fmt;

use crate::error::{ExportError, Result};
use gradus_model::Pooling;

use crate::kind::ModelKind;

/// Where a folder is meant to open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Hugging Face transformers: `config.json` names the class that computes the model.
    Hf,
    /// sentence-transformers: the encoder, a pooling module and `Dense` modules for the
    /// pooler and the head, listed by `modules.json`.
    SentenceTransformers,
}

impl Layout {
    /// Parses `hf` or `sentence-transformers` (`st`).
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "hf" | "transformers" => Ok(Self::Hf),
            "sentence-transformers" | "st" => Ok(Self::SentenceTransformers),
            other => Err(ExportError::Refused(format!(
                "unknown layout `{other}` (use `hf` or `sentence-transformers`)"
            ))),
        }
    }

    /// The layout a stage writes its model folder in: HF's where transformers has a class
    /// that gives the model's outputs, sentence-transformers' for the heads it lacks.
    pub fn natural(kind: ModelKind) -> Self {
        match kind.hf_class() {
            Some(_) => Self::Hf,
            None => Self::SentenceTransformers,
        }
    }

    /// Refuses a model this layout cannot hold, saying why.
    pub fn check(self, kind: ModelKind) -> Result<()> {
        let why = match (self, kind) {
            (Self::Hf, ModelKind::Task(Pooling::Mean)) => {
                "the head reads the mean of the hidden states, and transformers' \
                 BertForSequenceClassification reads the pooler"
            }
            (Self::Hf, ModelKind::Task(Pooling::Cls)) => {
                "the head reads the first hidden state as it is, and transformers' \
                 BertForSequenceClassification passes it through the pooler first"
            }
            (Self::SentenceTransformers, ModelKind::CausalLm(_)) => {
                "a causal language model has no sentence-transformers form"
            }
            (_, ModelKind::DecoderTask) => {
                "no class there computes a task head on a decoder (transformers' decoder \
                 classifiers have a `score` layer without a bias); gradus-predict runs it"
            }
            (Self::SentenceTransformers, ModelKind::MultiTask) => {
                "sentence-transformers holds one head: export the tasks one by one \
                 (a multi-task run writes them under tasks/)"
            }
            _ => return Ok(()),
        };
        let hint = match self {
            Self::Hf if kind.hf_class().is_none() && kind != ModelKind::DecoderTask => {
                "; use the sentence-transformers layout"
            }
            _ => "",
        };
        Err(ExportError::Refused(format!(
            "the {} layout cannot hold this {}: {why}{hint}",
            self,
            kind.describe()
        )))
    }
}

impl fmt::Display for Layout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Hf => "transformers",
            Self::SentenceTransformers => "sentence-transformers",
        })
    }
}
