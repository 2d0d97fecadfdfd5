//! Every folder gradus writes for the Python ecosystem, checked without Python against
//! what transformers and sentence-transformers write for the same classes on the same
//! tiny configs (`tests/fixtures/hf-expectations.json`, made by
//! `scripts/hf-expectations.py`): the same tensor names and shapes, the config keys
//! that describe the model, the sentence-transformers modules. A renamed tensor or a
//! dropped config key fails here.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use candle_core::Device;
use gradus_export::{Layout, ModelFolder, Provenance};
use gradus_finetune::{HeadNames, HeadSpec, Init, Pooling, TaskKind, TaskModel, TaskSpec};
use gradus_model::{Bert, BertConfig, BertHeads, Gpt, GptConfig, Params};
use serde_json::Value;

fn expectations() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hf-expectations.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn gpt_config(e: &Value) -> GptConfig {
    let mut config: GptConfig = serde_json::from_value(e["gpt"].clone()).unwrap();
    config.bias = false; // nanoGPT's recipes: the case transformers needs zero biases for
    config
}

fn bert_config(e: &Value) -> BertConfig {
    serde_json::from_value(e["bert"].clone()).unwrap()
}

fn write_config(dir: &Path, config: &impl serde::Serialize) {
    std::fs::create_dir_all(dir).unwrap();
    let text = serde_json::to_string(config).unwrap();
    std::fs::write(dir.join("config.json"), text).unwrap();
}

/// A folder as the stage writes it, then completed as a finished run completes it.
fn completed(dir: &Path, layout: Layout) -> PathBuf {
    let folder = ModelFolder::read(dir).unwrap();
    let out = dir.with_extension(format!("{layout}"));
    gradus_export::write(&folder, layout, &out, None, Provenance::default()).unwrap();
    out
}

fn gpt_folder(root: &Path, e: &Value) -> PathBuf {
    let dir = root.join("gpt");
    let config = gpt_config(e);
    let mut params = Params::new(Device::Cpu, 0);
    Gpt::new(&config, &mut params).unwrap();
    write_config(&dir, &config);
    params.save(&dir.join("model.safetensors")).unwrap();
    dir
}

fn mlm_folder(root: &Path, e: &Value) -> PathBuf {
    let dir = root.join("mlm");
    let config = bert_config(e);
    let mut params = Params::new(Device::Cpu, 0);
    let bert = Bert::new(&config, &mut params).unwrap();
    BertHeads::new(&bert, &mut params).unwrap();
    write_config(&dir, &config);
    params.save(&dir.join("model.safetensors")).unwrap();
    dir
}

fn task_folder(root: &Path, e: &Value, pooling: Pooling) -> PathBuf {
    let body = root.join("body");
    Bert::save_random(&bert_config(e), &body, 0).unwrap();
    let labels: Vec<String> = serde_json::from_value(e["labels"].clone()).unwrap();
    let task = TaskSpec {
        name: "t".into(),
        kind: TaskKind::Classification,
        labels,
        pooling,
        max_len: 16,
        template: None,
    };
    let heads = vec![HeadSpec {
        task,
        dropout: None,
    }];
    let model = TaskModel::load(
        &body,
        Init::Random,
        heads,
        HeadNames::Single,
        &[],
        &Device::Cpu,
        0,
    )
    .unwrap();
    let dir = root.join(format!("task-{pooling:?}"));
    std::fs::create_dir_all(&dir).unwrap();
    model.save(&dir).unwrap();
    dir
}

/// Tensor names and shapes of a safetensors file; `strip` drops a name prefix (HF's
/// `BertModel` saves its tensors without `bert.`, and loads them with or without).
fn shapes(file: &Path, strip: &str) -> BTreeMap<String, Vec<usize>> {
    candle_core::safetensors::load(file, &Device::Cpu)
        .unwrap()
        .into_iter()
        .map(|(n, t)| {
            let name = n.strip_prefix(strip).unwrap_or(&n).to_string();
            (name, t.dims().to_vec())
        })
        .collect()
}

fn expected_shapes(e: &Value) -> BTreeMap<String, Vec<usize>> {
    serde_json::from_value(e.clone()).unwrap()
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The folder holds what `class` saves: the same tensors, the model's config keys with
/// the same values, and `class` as its architecture.
fn assert_like(folder: &Path, e: &Value, class: &str, strip: &str) {
    let want = &e[class];
    assert_eq!(
        shapes(&folder.join("model.safetensors"), strip),
        expected_shapes(&want["tensors"]),
        "{class}: tensor names and shapes"
    );
    let config = read_json(&folder.join("config.json"));
    for (key, value) in want["config"].as_object().unwrap() {
        assert_eq!(&config[key], value, "{class}: config key `{key}`");
    }
    let architecture = if class == "SentenceTransformer" {
        "BertModel"
    } else {
        class
    };
    assert_eq!(config["architectures"], serde_json::json!([architecture]));
}

#[test]
fn a_biasless_gpt_is_saved_as_gpt2_saves_itself() {
    let e = expectations();
    let tmp = tempfile::tempdir().unwrap();
    let dir = completed(&gpt_folder(tmp.path(), &e), Layout::Hf);
    assert_like(&dir, &e, "GPT2LMHeadModel", "");
    // The zero biases read back: gradus loads its own export.
    let (model, _) = Gpt::load(&dir, Device::Cpu).unwrap();
    assert!(!model.config().bias);
}

#[test]
fn an_mlm_is_saved_as_bert_for_pretraining_saves_itself() {
    let e = expectations();
    let tmp = tempfile::tempdir().unwrap();
    let dir = completed(&mlm_folder(tmp.path(), &e), Layout::Hf);
    assert_like(&dir, &e, "BertForPreTraining", "");
}

#[test]
fn a_pooler_head_is_saved_as_bert_for_sequence_classification_saves_itself() {
    let e = expectations();
    let tmp = tempfile::tempdir().unwrap();
    let dir = completed(&task_folder(tmp.path(), &e, Pooling::Pooler), Layout::Hf);
    assert_like(&dir, &e, "BertForSequenceClassification", "");
}

#[test]
fn a_mean_pooled_head_is_saved_as_sentence_transformers_saves_it() {
    let e = expectations();
    let tmp = tempfile::tempdir().unwrap();
    let dir = completed(
        &task_folder(tmp.path(), &e, Pooling::Mean),
        Layout::SentenceTransformers,
    );
    // The encoder is a BertModel; the head is not in it, so no class reads it wrongly.
    assert_like(&dir, &e, "BertModel", "bert.");
    let st = &e["SentenceTransformer"];
    let modules = read_json(&dir.join("modules.json"));
    let modules = modules.as_array().unwrap();
    let class = |t: &Value| t.as_str().unwrap().rsplit('.').next().unwrap().to_string();
    let ours: Vec<String> = modules.iter().map(|m| class(&m["type"])).collect();
    let theirs: Vec<String> = st["module_types"]
        .as_array()
        .unwrap()
        .iter()
        .map(class)
        .collect();
    assert_eq!(ours, theirs);
    let dense = dir.join(modules[2]["path"].as_str().unwrap());
    assert_eq!(
        shapes(&dense.join("model.safetensors"), ""),
        expected_shapes(&st["dense_tensors"])
    );
    let known: Vec<&str> = st["dense_config_keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap())
        .collect();
    let config = read_json(&dense.join("config.json"));
    for key in config.as_object().unwrap().keys() {
        assert!(known.contains(&key.as_str()), "Dense config key `{key}`");
    }
    let pooling = read_json(&dir.join("1_Pooling/config.json"));
    assert_eq!(pooling["pooling_mode_mean_tokens"], true);
}
