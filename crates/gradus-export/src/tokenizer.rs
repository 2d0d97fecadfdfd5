//! The tokenizer files transformers' `AutoTokenizer` reads beside `tokenizer.json`: the
//! class, the longest input, and each special token by its role.

use std::path::Path;

use gradus_tokenize::{SpecialTokens, Tokenizer};
use serde_json::{Map, Value, json};

use crate::error::{ExportError, Result};
use crate::kind::ModelKind;
use crate::{write_json, write_text};

/// Writes `tokenizer.json`, `tokenizer_config.json` and `special_tokens_map.json` into
/// `to`; returns the special tokens found.
pub fn write_files(
    tokenizer: &Tokenizer,
    kind: ModelKind,
    max_len: usize,
    to: &Path,
) -> Result<SpecialTokens> {
    let path = to.join("tokenizer.json");
    let text = tokenizer
        .to_string(false)
        .map_err(|e| ExportError::file(&path, e))?;
    write_text(&path, &text)?;
    let specials = SpecialTokens::of(tokenizer);
    let map = special_map(tokenizer, kind, &specials);
    let mut config = json!({
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": max_len,
        "clean_up_tokenization_spaces": false,
    });
    if let Some(obj) = config.as_object_mut() {
        obj.extend(map.clone());
    }
    write_json(&to.join("tokenizer_config.json"), &config)?;
    write_json(&to.join("special_tokens_map.json"), &Value::Object(map))?;
    Ok(specials)
}

/// `cls_token`, `sep_token`, … by content: what the tokenizer has of each role. A GPT
/// begins and ends text with its end-of-text token, as GPT-2 does.
fn special_map(tokenizer: &Tokenizer, kind: ModelKind, s: &SpecialTokens) -> Map<String, Value> {
    let roles: Vec<(&str, Option<u32>)> = if matches!(kind, ModelKind::CausalLm(_)) {
        vec![
            ("bos_token", s.eos),
            ("eos_token", s.eos),
            ("pad_token", s.pad),
            ("unk_token", s.unk),
        ]
    } else {
        vec![
            ("cls_token", s.cls),
            ("sep_token", s.sep),
            ("pad_token", s.pad),
            ("mask_token", s.mask),
            ("unk_token", s.unk),
        ]
    };
    roles
        .into_iter()
        .filter_map(|(key, id)| {
            let token = tokenizer.id_to_token(id?)?;
            Some((key.to_string(), Value::String(token)))
        })
        .collect()
}
