//! Tasks on a decoder's LM head through the binaries. Instruction tuning:
//! `gradus-tokenize examples` with a prompt template, `gradus-finetune` on a tiny GPT,
//! `gradus-generate` framing prompts with the saved template (or not, with `--raw`), and
//! `gradus-eval` reporting exact match beside the model before fine-tuning. A causal-LM
//! task beside a head in `gradus-multitask`, reported as a language model.

#![allow(clippy::unwrap_used)] // test helpers fail loudly by design

mod common;

use std::path::{Path, PathBuf};

use common::s;
use gradus_testkit::{run_bin as run, succeeded as ok};
use serde_json::Value;

const TEMPLATE: &str = "Q: {prompt}\nA: ";

/// Reversals of every word of two of the letters `abcdef` (all for training, a fourth
/// again for dev), and a character tokenizer with an end-of-text token.
fn reversals(root: &Path) -> (PathBuf, PathBuf) {
    let letters = ['a', 'b', 'c', 'd', 'e', 'f'];
    let mut rows = String::from("prompt\tresponse\n");
    let mut dev = rows.clone();
    for (i, (a, b)) in letters
        .iter()
        .flat_map(|a| letters.iter().map(move |b| (a, b)))
        .enumerate()
    {
        let row = format!("reverse: {a}{b}\t{b}{a}\n");
        if i % 4 == 0 {
            dev.push_str(&row);
        }
        rows.push_str(&row);
    }
    std::fs::write(root.join("train.tsv"), rows).unwrap();
    std::fs::write(root.join("dev.tsv"), dev).unwrap();
    let tk = gradus_tokenize::char_tokenizer(
        ["Q: reverse abcdef\nA:"].iter(),
        &["<|endoftext|>".to_string()],
    )
    .unwrap();
    let path = root.join("tokenizer.json");
    gradus_tokenize::save(&tk, &path).unwrap();
    (path, root.join("examples"))
}

/// A tiny random GPT of `tokenizer`'s vocabulary, with the tokenizer beside it.
fn tiny_gpt(tokenizer: &Path, dir: &Path) -> PathBuf {
    let vocab = gradus_tokenize::load(tokenizer)
        .unwrap()
        .get_vocab_size(true);
    let config = gradus_model::DecoderConfig::Gpt(
        gradus_model::GptConfig {
            vocab_size: vocab,
            n_positions: 32,
            n_embd: 64,
            n_layer: 2,
            n_head: 4,
            ..gradus_model::GptConfig::default()
        }
        .with_dropout(0.0),
    );
    std::fs::create_dir_all(dir).unwrap();
    let mut params = gradus_model::Params::new(candle_core::Device::Cpu, 3);
    gradus_model::Decoder::new(&config, &mut params).unwrap();
    params.save(&dir.join("model.safetensors")).unwrap();
    std::fs::write(dir.join("config.json"), config.to_json().to_string()).unwrap();
    std::fs::copy(tokenizer, dir.join("tokenizer.json")).unwrap();
    dir.to_path_buf()
}

fn generate(model: &Path, extra: &[&str]) -> String {
    let tokenizer = model.join("tokenizer.json");
    let mut args = vec![
        "--model",
        s(model),
        "--tokenizer",
        s(&tokenizer),
        "--temperature",
        "0",
        "--max-new-tokens",
        "6",
    ];
    args.extend_from_slice(extra);
    ok(&run(env!("CARGO_BIN_EXE_gradus-generate"), &args))
}

/// `gradus-eval`'s `report.json` for run folder `folder`, written into `dir`.
fn eval_report(folder: &Path, dir: &Path) -> Value {
    ok(&run(
        env!("CARGO_BIN_EXE_gradus-eval"),
        &["--input", s(folder), "-o", s(dir)],
    ));
    serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap()
}

#[test]
fn sft_through_the_binaries_answers_in_its_template() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let (tokenizer, examples) = reversals(root);
    let train = format!("train={}", root.join("train.tsv").display());
    let dev = format!("validation={}", root.join("dev.tsv").display());
    let template = format!("template={TEMPLATE:?}");
    ok(&run(
        env!("CARGO_BIN_EXE_gradus-tokenize"),
        &[
            "examples",
            "-t",
            s(&tokenizer),
            "-i",
            &train,
            "-i",
            &dev,
            "-o",
            s(&examples),
            "--set",
            "response=response",
            "--set",
            &template,
            "--set",
            "seq_len=32",
        ],
    ));
    let model = tiny_gpt(&tokenizer, &root.join("gpt"));
    let out = root.join("sft");
    ok(&run(
        env!("CARGO_BIN_EXE_gradus-finetune"),
        &[
            "--model",
            s(&model),
            "--input",
            s(&examples),
            "-o",
            s(&out),
            "--set",
            "seq_len=32",
            "--set",
            "batch_size=16",
            "--set",
            "epochs=160",
            "--set",
            "lr=3e-3",
            "--set",
            "warmup_ratio=0.05",
            "--set",
            "eval_steps=200",
            "--seed",
            "5",
        ],
    ));

    // The prompt as the model was trained on it, then its answer up to the end token.
    let answered = generate(&out.join("model"), &["reverse: ab", "reverse: fd"]);
    assert_eq!(answered, "Q: reverse: ab\nA: ba\nQ: reverse: fd\nA: df\n");
    // Raw, the same prompt is read as it is: no template, no end at its token.
    let raw = generate(&out.join("model"), &["--raw", "reverse: ab"]);
    assert!(
        raw.starts_with("reverse: ab") && !raw.starts_with("Q:"),
        "{raw:?}"
    );

    let report = eval_report(&out, &root.join("eval"));
    let section = &report["sections"][0];
    assert_eq!(section["key_metric"], "exact_match");
    let exact = section["metrics"]["exact_match"].as_f64().unwrap();
    let before = section["baselines"]["before fine-tuning"]["exact_match"]
        .as_f64()
        .unwrap();
    assert!(
        exact >= 0.75 && before < 0.1,
        "{exact} after, {before} before"
    );
    let sample = section["sample"].as_str().unwrap();
    assert!(sample.contains("\"reverse: "), "{sample}");
}

/// A classification task and a causal-LM task on one tiny GPT through `gradus-multitask`;
/// `gradus-eval` scores the LM task's exported folder as a language model on its tokens.
#[test]
fn a_causal_lm_task_beside_a_head_is_reported_as_a_language_model() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let (train, dev) = (root.join("toy-train.tsv"), root.join("toy-dev.tsv"));
    gradus_testkit::toy_sentiment_tsv(&train, 200, 1);
    gradus_testkit::toy_sentiment_tsv(&dev, 40, 2);
    std::fs::create_dir_all(root.join("corpus")).unwrap();
    let corpus = common::corpus(&root.join("corpus"), &train);
    let model = tiny_gpt(&corpus.tokenizer, &root.join("gpt"));
    let examples = common::examples(&model, root, "toy", &[]);
    let config = root.join("multitask.toml");
    let toml = format!(
        "max_steps = 30\nbatch_size = 8\nlr = 3e-3\neval_steps = 15\nseq_len = 24\n\
         composite = [\"toy\"]\n\n[[tasks]]\nname = \"toy\"\nexamples = \"{}\"\n\n\
         [[tasks]]\nname = \"lm\"\ntokens = \"{}\"\nweight = 0.5\n",
        examples.display(),
        corpus.tokens.display()
    );
    std::fs::write(&config, toml).unwrap();
    let out = root.join("mt");
    ok(&run(
        env!("CARGO_BIN_EXE_gradus-multitask"),
        &["-c", s(&config), "--model", s(&model), "-o", s(&out)],
    ));
    let evals = std::fs::read_to_string(out.join("eval.jsonl")).unwrap();
    assert!(evals.contains("\"lm/perplexity\""), "{evals}");

    let report = eval_report(&out, &root.join("eval"));
    let sections = report["sections"].as_array().unwrap();
    let names: Vec<&str> = sections.iter().filter_map(|s| s["name"].as_str()).collect();
    assert_eq!(names, ["mt/toy", "mt/lm"]);
    let lm = &sections[1]["metrics"];
    assert!(lm["loss"].as_f64().unwrap().is_finite(), "{lm}");
    assert!(lm["perplexity"].as_f64().unwrap() > 1.0, "{lm}");
}
