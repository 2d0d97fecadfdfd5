//! The folder layouts a model is kept in, as read back. In the Hugging Face layout
//! `model.safetensors` holds every tensor. In the sentence-transformers layout it holds
//! the encoder, and the modules listed by `modules.json` hold the rest: a task head that
//! HF has no class for lives in a `Dense` module. The module folders that hold gradus
//! parameters end in a role name, so that they read back under their gradus names.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use serde::Deserialize;

use crate::error::{ModelError, Result};

/// The sentence-transformers module list.
pub const MODULES_FILE: &str = "modules.json";

/// `Dense` modules that hold gradus parameters: the folder's role suffix, and the
/// parameter prefix its `linear.weight` / `linear.bias` stand for.
pub const DENSE_ROLES: &[(&str, &str)] = &[
    ("_Pooler", "bert.pooler.dense"),
    ("_Classifier", "classifier"),
];

/// One entry of `modules.json` (its folder; the module's class is not needed to read
/// gradus's parameters back).
#[derive(Debug, Clone, Deserialize)]
pub struct ModuleEntry {
    pub path: String,
}

/// The tensors of a model folder under their gradus names, whatever its layout; a file
/// is read as a `model.safetensors`.
pub fn read_tensors(path: &Path) -> Result<HashMap<String, Tensor>> {
    if !path.is_dir() {
        return read_file(path);
    }
    let mut tensors = read_file(&path.join("model.safetensors"))?;
    for (module, prefix) in role_modules(path)? {
        let file = path.join(&module).join("model.safetensors");
        for (name, t) in read_file(&file)? {
            let Some(rest) = name.strip_prefix("linear.") else {
                return Err(ModelError::file(
                    &file,
                    format!("unexpected tensor `{name}`"),
                ));
            };
            tensors.insert(format!("{prefix}.{rest}"), t);
        }
    }
    Ok(tensors)
}

/// The `Dense` modules of a sentence-transformers folder that hold gradus parameters,
/// with the parameter prefix of each; none for a folder without `modules.json`.
pub fn role_modules(dir: &Path) -> Result<Vec<(String, &'static str)>> {
    let path = dir.join(MODULES_FILE);
    if !path.is_file() {
        return Ok(Vec::new());
    }
    let text = std::fs::read_to_string(&path).map_err(|e| ModelError::file(&path, e))?;
    let modules: Vec<ModuleEntry> =
        serde_json::from_str(&text).map_err(|e| ModelError::file(&path, e))?;
    Ok(modules
        .into_iter()
        .filter_map(|m| {
            let (_, prefix) = DENSE_ROLES
                .iter()
                .find(|(role, _)| m.path.ends_with(role))?;
            Some((m.path, *prefix))
        })
        .collect())
}

/// Writes `tensors` as a safetensors file at `path`, atomically (a temporary file
/// renamed over it).
pub fn write_tensors(tensors: &HashMap<String, Tensor>, path: &Path) -> Result<()> {
    let tmp = path.with_extension("safetensors.tmp");
    candle_core::safetensors::save(tensors, &tmp).map_err(|e| ModelError::file(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| ModelError::file(path, e))
}

fn read_file(file: &Path) -> Result<HashMap<String, Tensor>> {
    if !file.is_file() {
        return Err(ModelError::file(file, "no such checkpoint file"));
    }
    candle_core::safetensors::load(file, &Device::Cpu)
        .map_err(|e| ModelError::file(file, format!("not a readable safetensors file: {e}")))
}
