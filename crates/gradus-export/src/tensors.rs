//! The tensors a layout stores, and where: what HF's classes expect beyond what gradus
//! keeps (zero biases of a biasless GPT, the fixed sinusoids of a BERT's positions), and
//! the heads that sentence-transformers keeps in `Dense` modules.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use gradus_model::layout::DENSE_ROLES;
use gradus_model::{Gpt, GptConfig};
use serde_json::Value;

use crate::error::{ExportError, Result};
use gradus_model::Pooling;

use crate::kind::{Decoder, ModelFolder, ModelKind};
use crate::layout::Layout;

/// A `Dense` module: a linear layer and its activation.
#[derive(Debug)]
pub struct DenseModule {
    /// Folder name, ending in its role (`2_Pooler`, `3_Classifier`).
    pub path: String,
    pub weight: Tensor,
    pub bias: Tensor,
    /// The torch class applied after it.
    pub activation: &'static str,
}

/// What a layout writes: `model.safetensors`, then each `Dense` module.
#[derive(Debug)]
pub struct Stored {
    pub main: HashMap<String, Tensor>,
    pub dense: Vec<DenseModule>,
}

/// The tensors of `folder` as `layout` stores them.
pub fn stored(folder: &ModelFolder, layout: Layout) -> Result<Stored> {
    let mut main = folder.tensors.clone();
    add_zero_biases(folder, &mut main)?;
    add_sinusoids(folder, &mut main)?;
    let mut dense = Vec::new();
    if layout == Layout::SentenceTransformers {
        main.retain(|name, _| !name.starts_with("cls."));
        if let ModelKind::Task(pooling) = folder.kind {
            if pooling == Pooling::Pooler {
                dense.push(take_dense(folder, &main, "bert.pooler.dense", 2, TANH)?);
            }
            let head = take_dense(folder, &main, "classifier", 2 + dense.len(), IDENTITY)?;
            main.retain(|name, _| !name.starts_with("classifier."));
            dense.push(head);
        }
    }
    Ok(Stored { main, dense })
}

pub const TANH: &str = "torch.nn.modules.activation.Tanh";
pub const IDENTITY: &str = "torch.nn.modules.linear.Identity";

fn take_dense(
    folder: &ModelFolder,
    tensors: &HashMap<String, Tensor>,
    prefix: &str,
    index: usize,
    activation: &'static str,
) -> Result<DenseModule> {
    let (role, _) = DENSE_ROLES
        .iter()
        .find(|(_, p)| *p == prefix)
        .ok_or_else(|| ExportError::Refused(format!("no module role holds `{prefix}`")))?;
    let get = |part: &str| {
        let name = format!("{prefix}.{part}");
        tensors
            .get(&name)
            .cloned()
            .ok_or_else(|| ExportError::file(&folder.dir, format!("tensor `{name}` is missing")))
    };
    Ok(DenseModule {
        path: format!("{index}{role}"),
        weight: get("weight")?,
        bias: get("bias")?,
        activation,
    })
}

/// A biasless GPT gets zero biases, so that `GPT2LMHeadModel` (which always has them)
/// computes exactly the same and reports nothing missing.
fn add_zero_biases(folder: &ModelFolder, tensors: &mut HashMap<String, Tensor>) -> Result<()> {
    if folder.kind != ModelKind::CausalLm(Decoder::Gpt2)
        || folder.config.get("bias") != Some(&Value::Bool(false))
    {
        return Ok(());
    }
    let config: GptConfig = serde_json::from_value(Value::Object(folder.config.clone()))
        .map_err(|e| ExportError::file(&folder.dir.join("config.json"), e))?;
    for (name, width) in Gpt::bias_names(&config) {
        if let std::collections::hash_map::Entry::Vacant(slot) = tensors.entry(name) {
            slot.insert(Tensor::zeros(width, DType::F32, &Device::Cpu)?);
        }
    }
    Ok(())
}

/// A BERT with sinusoidal positions gets them as the position embedding table that
/// transformers' BERT reads.
fn add_sinusoids(folder: &ModelFolder, tensors: &mut HashMap<String, Tensor>) -> Result<()> {
    let name = "bert.embeddings.position_embeddings.weight";
    let sinusoidal =
        folder.config.get("position_embedding_type") == Some(&Value::String("sinusoidal".into()));
    if matches!(folder.kind, ModelKind::CausalLm(_)) || !sinusoidal || tensors.contains_key(name) {
        return Ok(());
    }
    let field = |key: &str| {
        folder.usize_field(key).ok_or_else(|| {
            ExportError::file(&folder.dir.join("config.json"), format!("no `{key}`"))
        })
    };
    let table = gradus_model::sinusoids(
        field("max_position_embeddings")?,
        field("hidden_size")?,
        &Device::Cpu,
    )?;
    tensors.insert(name.into(), table);
    Ok(())
}

/// Writes `tensors` as a safetensors file at `path`, atomically.
pub fn save(tensors: &HashMap<String, Tensor>, path: &Path) -> Result<()> {
    Ok(gradus_model::layout::write_tensors(tensors, path)?)
}
