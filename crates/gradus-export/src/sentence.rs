//! The sentence-transformers files: `modules.json` (the encoder, its pooling, then the
//! `Dense` modules), each module's config, and the longest input.

use std::collections::HashMap;
use std::path::Path;

use serde_json::{Value, json};

use crate::error::{ExportError, Result};
use gradus_model::Pooling;

use crate::kind::{ModelFolder, ModelKind};
use crate::tensors::{DenseModule, save};
use crate::write_json;

/// Writes the module files of `folder` into `to`, with `dense` after the pooling.
pub fn write_modules(
    folder: &ModelFolder,
    dense: &[DenseModule],
    max_len: usize,
    to: &Path,
) -> Result<()> {
    let hidden = folder
        .usize_field("hidden_size")
        .ok_or_else(|| ExportError::file(&folder.dir.join("config.json"), "no `hidden_size`"))?;
    let mut modules = vec![
        module(0, "", "Transformer"),
        module(1, "1_Pooling", "Pooling"),
    ];
    let pooling = to.join("1_Pooling");
    std::fs::create_dir_all(&pooling).map_err(|e| ExportError::file(&pooling, e))?;
    let cls = matches!(folder.kind, ModelKind::Task(Pooling::Cls | Pooling::Pooler));
    write_json(
        &pooling.join("config.json"),
        &json!({
            "word_embedding_dimension": hidden,
            "pooling_mode_cls_token": cls,
            "pooling_mode_mean_tokens": !cls,
            "pooling_mode_max_tokens": false,
            "pooling_mode_mean_sqrt_len_tokens": false,
        }),
    )?;
    for (i, d) in dense.iter().enumerate() {
        modules.push(module(2 + i, &d.path, "Dense"));
        write_dense(d, &to.join(&d.path))?;
    }
    write_json(
        &to.join(gradus_model::layout::MODULES_FILE),
        &Value::Array(modules),
    )?;
    write_json(
        &to.join("sentence_bert_config.json"),
        &json!({"max_seq_length": max_len, "do_lower_case": false}),
    )?;
    write_json(
        &to.join("config_sentence_transformers.json"),
        &json!({"prompts": {}, "default_prompt_name": null, "similarity_fn_name": "cosine"}),
    )
}

fn module(idx: usize, path: &str, class: &str) -> Value {
    json!({
        "idx": idx,
        "name": idx.to_string(),
        "path": path,
        "type": format!("sentence_transformers.models.{class}"),
    })
}

fn write_dense(d: &DenseModule, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| ExportError::file(dir, e))?;
    let (out, inp) = d.weight.dims2()?;
    write_json(
        &dir.join("config.json"),
        &json!({
            "in_features": inp,
            "out_features": out,
            "bias": true,
            "activation_function": d.activation,
        }),
    )?;
    let tensors = HashMap::from([
        ("linear.weight".to_string(), d.weight.clone()),
        ("linear.bias".to_string(), d.bias.clone()),
    ]);
    save(&tensors, &dir.join("model.safetensors"))
}
