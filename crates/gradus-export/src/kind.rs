//! What a model folder holds, read from its `config.json` and its tensor names.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::Tensor;
use gradus_model::Pooling;
use serde_json::{Map, Value};

use crate::error::{ExportError, Result};

/// Which decoder a causal LM is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decoder {
    Gpt2,
    Llama,
}

/// The model a folder holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelKind {
    /// A decoder with its LM head.
    CausalLm(Decoder),
    /// A BERT encoder with its MLM and next-sentence heads.
    Pretraining,
    /// A BERT encoder alone.
    Encoder,
    /// One task's head (`classifier`) on a BERT encoder.
    Task(Pooling),
    /// A head per task (`heads.<task>`) on one BERT encoder.
    MultiTask,
    /// Task heads on a decoder: no transformers or sentence-transformers class computes
    /// them (HF's decoder classifiers have a bias-free `score`), so gradus keeps its own
    /// layout and gradus-predict runs them.
    DecoderTask,
}

impl ModelKind {
    /// The transformers class a folder of this kind opens in, in the HF layout.
    pub fn hf_class(self) -> Option<&'static str> {
        match self {
            Self::CausalLm(Decoder::Gpt2) => Some("GPT2LMHeadModel"),
            Self::CausalLm(Decoder::Llama) => Some("LlamaForCausalLM"),
            Self::Pretraining => Some("BertForPreTraining"),
            Self::Encoder | Self::MultiTask => Some("BertModel"),
            Self::Task(Pooling::Pooler) => Some("BertForSequenceClassification"),
            Self::Task(_) | Self::DecoderTask => None,
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Self::CausalLm(_) => "causal language model",
            Self::Pretraining => "masked language model with next-sentence prediction",
            Self::Encoder => "encoder",
            Self::Task(_) => "task model",
            Self::MultiTask => "multi-task encoder",
            Self::DecoderTask => "task model on a decoder",
        }
    }
}

/// A model folder as read: its config, its tensors under gradus names, and its kind.
#[derive(Debug)]
pub struct ModelFolder {
    pub dir: PathBuf,
    pub config: Map<String, Value>,
    pub tensors: HashMap<String, Tensor>,
    pub kind: ModelKind,
}

impl ModelFolder {
    /// Reads `dir` (`config.json` and the tensors of either layout).
    pub fn read(dir: &Path) -> Result<Self> {
        let path = dir.join("config.json");
        let text = std::fs::read_to_string(&path).map_err(|e| ExportError::file(&path, e))?;
        let config: Map<String, Value> =
            serde_json::from_str(&text).map_err(|e| ExportError::file(&path, e))?;
        let tensors = gradus_model::layout::read_tensors(dir)?;
        let kind = kind_of(&config, &tensors).map_err(|m| ExportError::file(&path, m))?;
        Ok(Self {
            dir: dir.to_path_buf(),
            config,
            tensors,
            kind,
        })
    }

    /// The task the folder's head was trained for (`gradus_task`).
    pub fn task(&self) -> Option<&Map<String, Value>> {
        self.config.get("gradus_task").and_then(Value::as_object)
    }

    /// An integer field of the config.
    pub fn usize_field(&self, key: &str) -> Option<usize> {
        self.config
            .get(key)
            .and_then(Value::as_u64)
            .map(|v| v as usize)
    }
}

fn kind_of(
    config: &Map<String, Value>,
    tensors: &HashMap<String, Tensor>,
) -> std::result::Result<ModelKind, String> {
    let model_type = config
        .get("model_type")
        .and_then(Value::as_str)
        .unwrap_or("");
    // Instruction tuning and an LM task keep a decoder a language model: no head.
    let head_task = config.get("gradus_task").is_some_and(|t| {
        let kind = t.get("kind").and_then(Value::as_str);
        !matches!(kind, Some("instruction" | "lm"))
    });
    match model_type {
        "gpt2" | "llama" if head_task => return Ok(ModelKind::DecoderTask),
        "gpt2" => return Ok(ModelKind::CausalLm(Decoder::Gpt2)),
        "llama" => return Ok(ModelKind::CausalLm(Decoder::Llama)),
        "bert" => {}
        other => {
            return Err(format!(
                "model_type `{other}`: gradus writes `gpt2`, `llama` and `bert` models"
            ));
        }
    }
    let tasks = config
        .get("gradus_tasks")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    if tasks > 1 || tensors.keys().any(|n| n.starts_with("heads.")) {
        return Ok(ModelKind::MultiTask);
    }
    if let Some(task) = config.get("gradus_task") {
        let pooling = task.get("pooling").cloned().unwrap_or_default();
        let pooling: Pooling =
            serde_json::from_value(pooling).map_err(|e| format!("gradus_task.pooling: {e}"))?;
        return Ok(ModelKind::Task(pooling));
    }
    if tensors.contains_key("cls.predictions.bias") {
        return Ok(ModelKind::Pretraining);
    }
    Ok(ModelKind::Encoder)
}
