//! Layouts on small models built with gradus-model: what each layout refuses, the special
//! ids taken from the tokenizer, the sentence-transformers heads read back under gradus
//! names, completion in place written twice to the same bytes, and a biasless GPT whose
//! folder has a non-zero bias refused.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use gradus_export::{Decoder, Layout, ModelFolder, ModelKind, Provenance};
use gradus_model::{Bert, BertConfig, Gpt, GptConfig, Params, Pooling, TaskHead};
use gradus_tokenize::{TokenizerKind, TrainConfig};
use serde_json::{Value, json};

const TEXT: &[&str] = &["the cat sat on the mat", "a dog ran in the park today"];

fn gpt_folder(dir: &Path) -> PathBuf {
    let config = GptConfig {
        vocab_size: 300,
        n_positions: 8,
        n_embd: 8,
        n_layer: 1,
        n_head: 2,
        bias: false,
        ..GptConfig::default()
    };
    let mut params = Params::new(Device::Cpu, 0);
    Gpt::new(&config, &mut params).unwrap();
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("config.json"),
        serde_json::to_string(&config).unwrap(),
    )
    .unwrap();
    params.save(&dir.join("model.safetensors")).unwrap();
    dir.to_path_buf()
}

/// A BERT with a `classifier` head and the `gradus_task` that a fine-tuning run saves.
fn task_folder(dir: &Path, pooling: &str) -> PathBuf {
    let config = BertConfig {
        vocab_size: 40,
        hidden_size: 8,
        num_hidden_layers: 1,
        num_attention_heads: 2,
        intermediate_size: 16,
        max_position_embeddings: 16,
        ..BertConfig::default()
    };
    let mut params = Params::new(Device::Cpu, 0);
    let bert = Bert::new(&config, &mut params).unwrap();
    TaskHead::new(&bert, &mut params, "classifier", 2).unwrap();
    let mut value = serde_json::to_value(&config).unwrap();
    value["gradus_task"] = json!({"name": "t", "kind": "classification",
        "labels": ["no", "yes"], "pooling": pooling, "max_len": 16});
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("config.json"), value.to_string()).unwrap();
    params.save(&dir.join("model.safetensors")).unwrap();
    dir.to_path_buf()
}

fn tokenizer(kind: TokenizerKind) -> gradus_tokenize::Tokenizer {
    let config = TrainConfig {
        kind,
        vocab_size: 280,
        ..TrainConfig::default()
    };
    gradus_tokenize::train(&config, TEXT).unwrap()
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// A task head on a decoder has no class in either ecosystem: it is read as such (not as
/// the causal LM its `model_type` names), both layouts refuse it, and a finished run
/// keeps it as gradus wrote it.
#[test]
fn a_task_head_on_a_decoder_is_refused_by_both_layouts() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = gpt_folder(&tmp.path().join("gpt-task"));
    let path = dir.join("config.json");
    let mut config: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    config["gradus_task"] = json!({"name": "t", "kind": "classification", "labels": ["a", "b"],
        "pooling": "last", "max_len": 8});
    std::fs::write(&path, config.to_string()).unwrap();
    let folder = ModelFolder::read(&dir).unwrap();
    assert_eq!(folder.kind, ModelKind::DecoderTask);
    for layout in [Layout::Hf, Layout::SentenceTransformers] {
        let e = layout.check(folder.kind).unwrap_err().to_string();
        assert!(e.contains("decoder") && e.contains("gradus-predict"), "{e}");
    }
    let record: gradus_record::RunRecord = serde_json::from_value(json!({
        "kind": "finetune", "gradus_version": "0.1.0", "config_hash": "h", "settings": {},
        "inputs": [], "outputs": [], "finished": true, "seed": 7
    }))
    .unwrap();
    let before = std::fs::read(&path).unwrap();
    assert_eq!(gradus_export::complete(&dir, &record).unwrap(), None);
    assert_eq!(std::fs::read(&path).unwrap(), before);
}

#[test]
fn each_layout_refuses_what_it_cannot_hold_and_says_why() {
    let refused = |layout: Layout, kind| layout.check(kind).unwrap_err().to_string();
    let e = refused(Layout::Hf, ModelKind::Task(Pooling::Mean));
    assert!(
        e.contains("mean") && e.contains("use the sentence-transformers layout"),
        "{e}"
    );
    let e = refused(Layout::Hf, ModelKind::Task(Pooling::Cls));
    assert!(e.contains("first hidden state"), "{e}");
    let e = refused(
        Layout::SentenceTransformers,
        ModelKind::CausalLm(Decoder::Gpt2),
    );
    assert!(e.contains("causal language model"), "{e}");
    assert!(
        Layout::SentenceTransformers
            .check(ModelKind::Task(Pooling::Pooler))
            .is_ok()
    );
    assert!(Layout::Hf.check(ModelKind::Task(Pooling::Pooler)).is_ok());
    assert_eq!(
        Layout::natural(ModelKind::Task(Pooling::Mean)),
        Layout::SentenceTransformers
    );
    assert_eq!(Layout::natural(ModelKind::Pretraining), Layout::Hf);
    assert!(
        Layout::parse("onnx")
            .unwrap_err()
            .to_string()
            .contains("unknown layout")
    );
}

#[test]
fn a_gpt_config_carries_its_tokenizers_special_ids_or_none() {
    let tmp = tempfile::tempdir().unwrap();
    let folder = ModelFolder::read(&gpt_folder(&tmp.path().join("gpt"))).unwrap();
    let write = |name: &str, kind| {
        let tk = tokenizer(kind);
        let out = tmp.path().join(name);
        gradus_export::write(&folder, Layout::Hf, &out, Some(&tk), Provenance::default()).unwrap();
        (read_json(&out.join("config.json")), tk, out)
    };
    let (config, tk, out) = write("bpe", TokenizerKind::ByteBpe);
    let eos = tk.token_to_id("<|endoftext|>").unwrap();
    assert_eq!(config["eos_token_id"], eos);
    assert_eq!(config["bos_token_id"], eos);
    assert_eq!(
        read_json(&out.join("tokenizer_config.json"))["eos_token"],
        "<|endoftext|>"
    );
    // A tokenizer without an end-of-text token: none, rather than GPT-2's 50256.
    let (config, _, _) = write("char", TokenizerKind::Char);
    assert_eq!(config["eos_token_id"], Value::Null);
    assert_eq!(config["architectures"], json!(["GPT2LMHeadModel"]));
}

#[test]
fn a_sentence_transformers_head_reads_back_under_its_gradus_names() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = task_folder(&tmp.path().join("task"), "pooler");
    let before = gradus_model::layout::read_tensors(&dir).unwrap();
    let folder = ModelFolder::read(&dir).unwrap();
    let out = tmp.path().join("st");
    gradus_export::write(
        &folder,
        Layout::SentenceTransformers,
        &out,
        None,
        Provenance::default(),
    )
    .unwrap();
    let main = candle_core::safetensors::load(out.join("model.safetensors"), &Device::Cpu).unwrap();
    assert!(!main.keys().any(|n| n.starts_with("classifier.")));
    assert!(out.join("2_Pooler/model.safetensors").is_file());
    assert_eq!(
        read_json(&out.join("2_Pooler/config.json"))["activation_function"],
        "torch.nn.modules.activation.Tanh"
    );
    let after = gradus_model::layout::read_tensors(&out).unwrap();
    for name in [
        "classifier.weight",
        "classifier.bias",
        "bert.pooler.dense.weight",
    ] {
        assert_eq!(values(&before[name]), values(&after[name]), "{name}");
    }
    // The head's labels stay with gradus; transformers' classification keys do not.
    let config = read_json(&out.join("config.json"));
    assert!(config.get("id2label").is_none() && config["gradus_task"]["labels"][1] == "yes");
}

#[test]
fn completing_a_folder_twice_writes_the_same_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = task_folder(&tmp.path().join("task"), "mean");
    let record: gradus_record::RunRecord = serde_json::from_value(json!({
        "kind": "finetune", "gradus_version": "0.1.0", "config_hash": "h", "settings": {},
        "inputs": [], "outputs": [], "finished": true, "seed": 7, "steps": 12,
        "figures": {"accuracy": 0.75}
    }))
    .unwrap();
    assert_eq!(
        gradus_export::complete(&dir, &record).unwrap(),
        Some(Layout::SentenceTransformers)
    );
    let first = snapshot(&dir);
    gradus_export::complete(&dir, &record).unwrap();
    assert_eq!(first, snapshot(&dir));
    let card = &first[Path::new("README.md")];
    let card = String::from_utf8_lossy(card);
    assert!(
        card.contains("| steps | 12 |") && card.contains("| accuracy | 0.7500 |"),
        "{card}"
    );
}

#[test]
fn a_biasless_gpt_folder_with_a_nonzero_bias_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = gpt_folder(&tmp.path().join("gpt"));
    let folder = ModelFolder::read(&dir).unwrap();
    let out = tmp.path().join("hf");
    gradus_export::write(&folder, Layout::Hf, &out, None, Provenance::default()).unwrap();
    assert!(Gpt::load(&out, Device::Cpu).is_ok());
    let file = out.join("model.safetensors");
    let mut tensors: HashMap<String, Tensor> =
        candle_core::safetensors::load(&file, &Device::Cpu).unwrap();
    let name = "transformer.h.0.mlp.c_fc.bias";
    let bias = tensors[name].ones_like().unwrap();
    tensors.insert(name.into(), bias);
    candle_core::safetensors::save(&tensors, &file).unwrap();
    let e = Gpt::load(&out, Device::Cpu).unwrap_err().to_string();
    assert!(e.contains(name) && e.contains("no biases"), "{e}");
}

fn values(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1().unwrap()
}

fn snapshot(dir: &Path) -> std::collections::BTreeMap<PathBuf, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let rel = path.strip_prefix(dir).unwrap().to_path_buf();
                out.insert(rel, std::fs::read(&path).unwrap());
            }
        }
    }
    out
}
