//! `config.json` as a layout needs it: the class that computes the model, the
//! classification fields of HF's sequence classifier, and the tokenizer's special ids.

use gradus_tokenize::SpecialTokens;
use serde_json::{Map, Value, json};

use gradus_model::Pooling;

use crate::kind::{ModelFolder, ModelKind};
use crate::layout::Layout;

/// What transformers reads to classify; only the HF layout of a pooler head claims it.
const CLASSIFICATION_KEYS: &[&str] = &["num_labels", "id2label", "label2id", "problem_type"];

/// The folder's `config.json` for `layout`.
pub fn config_for(
    folder: &ModelFolder,
    layout: Layout,
    specials: Option<&SpecialTokens>,
) -> Map<String, Value> {
    let mut config = folder.config.clone();
    crate::clear_refusal(&mut config);
    for key in CLASSIFICATION_KEYS {
        config.remove(*key);
    }
    let class = match layout {
        Layout::Hf => folder.kind.hf_class().unwrap_or("BertModel"),
        Layout::SentenceTransformers => "BertModel",
    };
    config.insert("architectures".into(), json!([class]));
    let classifier = layout == Layout::Hf && folder.kind == ModelKind::Task(Pooling::Pooler);
    if let Some(task) = folder.task().filter(|_| classifier) {
        config.extend(classification_fields(task));
    }
    if let Some(specials) = specials {
        special_ids(&mut config, folder.kind, specials);
    }
    config
}

/// `num_labels`, `id2label` / `label2id` and `problem_type` of a `gradus_task`.
fn classification_fields(task: &Map<String, Value>) -> Map<String, Value> {
    let labels: Vec<String> = task
        .get("labels")
        .and_then(Value::as_array)
        .map(|l| {
            l.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let regression = task.get("kind").and_then(Value::as_str) == Some("regression");
    let mut out = Map::new();
    out.insert(
        "num_labels".into(),
        if regression { 1 } else { labels.len() }.into(),
    );
    let problem = if regression {
        "regression"
    } else {
        "single_label_classification"
    };
    out.insert("problem_type".into(), problem.into());
    if !labels.is_empty() {
        let id2label: Map<String, Value> = (labels.iter().enumerate())
            .map(|(i, n)| (i.to_string(), n.clone().into()))
            .collect();
        let label2id: Map<String, Value> = (labels.iter().enumerate())
            .map(|(i, n)| (n.clone(), i.into()))
            .collect();
        out.insert("id2label".into(), id2label.into());
        out.insert("label2id".into(), label2id.into());
    }
    out
}

/// The tokenizer's special ids where the config names them: a GPT's begin, end and
/// padding (`null` when the tokenizer has none, rather than GPT-2's 50256), a BERT's
/// padding.
fn special_ids(config: &mut Map<String, Value>, kind: ModelKind, specials: &SpecialTokens) {
    let id = |v: Option<u32>| v.map_or(Value::Null, Value::from);
    if matches!(kind, ModelKind::CausalLm(_)) {
        config.insert("bos_token_id".into(), id(specials.eos));
        config.insert("eos_token_id".into(), id(specials.eos));
        config.insert("pad_token_id".into(), id(specials.pad));
    } else if let Some(pad) = specials.pad {
        config.insert("pad_token_id".into(), pad.into());
    }
}
