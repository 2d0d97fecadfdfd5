//! Model folders for the Python ecosystem. Every model folder a gradus run keeps is
//! completed here in the layout that opens with the same outputs: Hugging Face
//! transformers' where it has a class that computes the model, sentence-transformers'
//! for task heads it lacks (mean or first-token pooling). A layout that cannot hold a
//! model refuses it, saying why, rather than claim a class that computes something else.
//!
//! A folder gets its tokenizer files (`tokenizer.json`, `tokenizer_config.json`,
//! `special_tokens_map.json`), special-token ids in `config.json` taken from the
//! tokenizer, and a model card (`README.md`) naming the run it came from.
//! [`complete`] does this in place when a run ends; [`export`] writes a chosen folder or
//! checkpoint as a standalone folder in a chosen layout.

mod card;
mod config;
mod error;
mod export;
mod kind;
mod layout;
mod sentence;
mod tensors;
mod tokenizer;

use std::path::Path;

use gradus_record::RunRecord;
use gradus_tokenize::Tokenizer;

pub use card::Provenance;
pub use error::{ExportError, Result};
pub use export::{ExportSpec, Exported, export};
pub use kind::{Decoder, ModelFolder, ModelKind};
pub use layout::Layout;

/// Writes `folder` into `to` in `layout`, with `tokenizer`'s files when there is one;
/// `model.safetensors` comes last, so that a folder with it is whole.
pub fn write(
    folder: &ModelFolder,
    layout: Layout,
    to: &Path,
    tokenizer: Option<&Tokenizer>,
    from: Provenance<'_>,
) -> Result<()> {
    layout.check(folder.kind)?;
    let stored = tensors::stored(folder, layout)?;
    std::fs::create_dir_all(to).map_err(|e| ExportError::file(to, e))?;
    let max_len = max_len(folder);
    let specials = tokenizer
        .map(|tk| tokenizer::write_files(tk, folder.kind, max_len, to))
        .transpose()?;
    if layout == Layout::SentenceTransformers {
        sentence::write_modules(folder, &stored.dense, max_len, to)?;
    }
    let config = config::config_for(folder, layout, specials.as_ref());
    write_json(&to.join("config.json"), &serde_json::Value::Object(config))?;
    write_text(&to.join("README.md"), &card::render(folder, layout, from))?;
    tensors::save(&stored.main, &to.join("model.safetensors"))
}

/// Completes the model folder `dir` of a finished run in place, in its natural layout
/// ([`Layout::natural`]); the record is its card's provenance. A model no layout holds
/// (task heads on a decoder) stays as gradus wrote it, marked for transformers to
/// refuse: `None`.
pub fn complete(dir: &Path, record: &RunRecord) -> Result<Option<Layout>> {
    let folder = ModelFolder::read(dir)?;
    if folder.kind == ModelKind::DecoderTask {
        return Ok(None);
    }
    let layout = Layout::natural(folder.kind);
    let path = dir.join("tokenizer.json");
    let tokenizer = path
        .is_file()
        .then(|| Tokenizer::from_file(&path).map_err(|e| ExportError::file(&path, e)))
        .transpose()?;
    let from = Provenance {
        record: Some(record),
        taken: None,
    };
    write(&folder, layout, dir, tokenizer.as_ref(), from)?;
    Ok(Some(layout))
}

/// The `config.json` key that makes transformers refuse a folder: it reads it as a torch
/// dtype and fails naming the value, which says why.
const REFUSAL_KEY: &str = "dtype";
const REFUSAL_PREFIX: &str = "not a transformers model: ";

/// Marks `config` (of a checkpoint, which stays in gradus's own layout) so that
/// transformers refuses to load it, saying `why`, instead of loading it as a class that
/// computes something else (a mean-pooled head read through the pooler).
pub fn refuse_in_transformers(config: &mut serde_json::Map<String, serde_json::Value>, why: &str) {
    config.insert(REFUSAL_KEY.into(), format!("{REFUSAL_PREFIX}{why}").into());
}

/// Takes a refusal mark off `config`.
pub(crate) fn clear_refusal(config: &mut serde_json::Map<String, serde_json::Value>) {
    let marked = config
        .get(REFUSAL_KEY)
        .and_then(serde_json::Value::as_str)
        .is_some_and(|v| v.starts_with(REFUSAL_PREFIX));
    if marked {
        config.remove(REFUSAL_KEY);
    }
}

/// The longest input the folder's model takes: its task's, else its positions.
fn max_len(folder: &ModelFolder) -> usize {
    let task = folder
        .task()
        .and_then(|t| t.get("max_len"))
        .and_then(serde_json::Value::as_u64)
        .map(|v| v as usize);
    task.or_else(|| folder.usize_field("max_position_embeddings"))
        .or_else(|| folder.usize_field("n_positions"))
        .unwrap_or(512)
}

/// Writes pretty JSON at `path`, atomically.
pub(crate) fn write_json(path: &Path, value: &serde_json::Value) -> Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(|e| ExportError::file(path, e))?;
    write_text(path, &(text + "\n"))
}

/// Writes `text` at `path` through a temporary file renamed over it.
pub(crate) fn write_text(path: &Path, text: &str) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).map_err(|e| ExportError::file(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| ExportError::file(path, e))
}
