//! Continued pretraining (`init_from`): a run that starts from a model folder's weights
//! (an HF GPT-2, a gradus MLM checkpoint, a BERT folder without pretraining heads), the
//! checks that refuse a folder before training, and what its run record says.

#![allow(clippy::unwrap_used)] // test helpers fail loudly by design

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Corpus, corpus_from_lines, pretrain, pretrain_args, record, s};
use gradus_testkit::{run_bin as run, succeeded as ok};
use serde_json::Value;

const PRETRAIN: &str = env!("CARGO_BIN_EXE_gradus-pretrain");

/// The tiny GPT-2 that transformers wrote (vocabulary 20, 16 positions).
fn hf_gpt2() -> PathBuf {
    gradus_testkit::workspace_root().join("crates/gradus-model/tests/fixtures/tiny-gpt2")
}

/// Documents over `alphabet`, a character tokenizer (one id per character) and their
/// tokens with a validation split.
fn char_corpus(root: &Path, alphabet: &str) -> Corpus {
    let chars: Vec<char> = alphabet.chars().collect();
    let mut state = 7u64;
    let lines: Vec<String> = (0..300)
        .map(|i| {
            // Each line walks the alphabet from a start, with a seeded skip now and then,
            // so the next character is mostly predictable; every character appears.
            (0..20)
                .map(|j| {
                    state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
                    let skip = usize::from((state >> 60) == 0);
                    chars[(i + j + skip) % chars.len()]
                })
                .collect()
        })
        .collect();
    let text = root.join("text.txt");
    std::fs::write(&text, lines.join("\n")).unwrap();
    let tokenizer = ["--set", "kind=char"];
    corpus_from_lines(root, &text, &tokenizer, "validation_fraction=0.2")
}

/// Flags of a causal-LM run on `corpus` continuing from `init` into `out`.
fn clm_args(corpus: &Corpus, init: &Path, out: &Path, steps: u64) -> Vec<String> {
    [
        "-o",
        s(out),
        "--objective",
        "clm",
        "--set",
        &format!("init_from=\"{}\"", init.display()),
        "--set",
        &format!("data.tokens=\"{}\"", corpus.tokens.display()),
        "--set",
        &format!("data.tokenizer=\"{}\"", corpus.tokenizer.display()),
        "--set",
        "data.seq_len=8",
        "--set",
        "data.batch_size=8",
        "--set",
        "data.eval_windows=512",
        "--set",
        &format!("train.steps={steps}"),
        "--set",
        "train.lr=1e-2",
        "--set",
        "train.eval_at_start=true",
    ]
    .iter()
    .map(|a| a.to_string())
    .collect()
}

fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

fn eval_lines(run: &Path) -> Vec<Value> {
    gradus_testkit::jsonl_rows(&run.join("eval.jsonl"))
}

fn refused(out: &std::process::Output) -> String {
    assert!(!out.status.success(), "not refused");
    let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
    assert_eq!(err.lines().count(), 1, "{err}");
    err
}

#[test]
fn continuing_from_an_hf_gpt2_starts_at_its_own_loss_then_trains() {
    let tmp = tempfile::tempdir().unwrap();
    // 19 letters and a space: the fixture's 20-token vocabulary.
    let corpus = char_corpus(tmp.path(), "abcdefghijklmnopqrs ");

    // The fixture's loss on the validation windows, computed by the evaluation alone.
    let alone = tmp.path().join("alone");
    let set = format!(
        "checkpoints=[{{ model = \"{}\", tokens = \"{}\", tokenizer = \"{}\", seq_len = 8 }}]",
        hf_gpt2().display(),
        corpus.tokens.display(),
        corpus.tokenizer.display()
    );
    ok(&run(
        env!("CARGO_BIN_EXE_gradus-eval"),
        &["--set", &set, "-o", s(&alone)],
    ));
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(alone.join("report.json")).unwrap()).unwrap();
    let untrained = report["sections"][0]["metrics"]["loss"].as_f64().unwrap();

    let out = tmp.path().join("continued");
    ok(&run(
        PRETRAIN,
        &strs(&clm_args(&corpus, &hf_gpt2(), &out, 40)),
    ));
    let evals = eval_lines(&out);
    assert_eq!(evals[0]["step"], 0);
    let start = evals[0]["loss"].as_f64().unwrap();
    assert!(
        (start - untrained).abs() < 1e-5,
        "step 0 {start} vs the fixture alone {untrained}"
    );
    let end = evals.last().unwrap()["loss"].as_f64().unwrap();
    assert!(end < start - 0.1, "it trains: {start} -> {end}");

    let r = record(&out);
    assert_eq!(r.facts.base_model, Some(hf_gpt2()));
    // The continued model is a GPT-2 of the fixture's shape.
    let config: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("model/config.json")).unwrap())
            .unwrap();
    assert_eq!(
        (config["n_embd"].as_u64(), config["n_layer"].as_u64()),
        (Some(8), Some(2))
    );
}

#[test]
fn a_folder_that_does_not_fit_is_refused_before_training_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    // 25 characters: not the fixture's vocabulary of 20.
    let corpus = char_corpus(tmp.path(), "abcdefghijklmnopqrstuvwx ");
    let out = tmp.path().join("refused");
    let err = refused(&run(
        PRETRAIN,
        &strs(&clm_args(&corpus, &hf_gpt2(), &out, 5)),
    ));
    assert!(
        err.contains(s(&hf_gpt2())) && err.contains("20 tokens") && err.contains("has 25"),
        "{err}"
    );
    assert!(!out.exists(), "nothing written");

    // A causal LM asked for masked-LM training.
    let mut mlm = clm_args(&corpus, &hf_gpt2(), &out, 5);
    let at = mlm.iter().position(|a| a == "clm").unwrap();
    mlm[at] = "mlm".into();
    let err = refused(&run(PRETRAIN, &strs(&mlm)));
    assert!(
        err.contains(s(&hf_gpt2())) && err.contains("`gpt2` model") && err.contains("`mlm`"),
        "{err}"
    );
    assert!(!out.exists(), "nothing written");
}

/// A copy of the BERT folder `model` without its pretraining heads (`cls.*`), as an
/// encoder such as all-MiniLM-L6-v2 ships.
fn without_heads(model: &Path, dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    for f in ["config.json", "tokenizer.json"] {
        std::fs::copy(model.join(f), dir.join(f)).unwrap();
    }
    let device = candle_core::Device::Cpu;
    let tensors = candle_core::safetensors::load(model.join("model.safetensors"), &device).unwrap();
    let kept: std::collections::HashMap<String, candle_core::Tensor> = tensors
        .into_iter()
        .filter(|(n, _)| !n.starts_with("cls."))
        .collect();
    candle_core::safetensors::save(&kept, dir.join("model.safetensors")).unwrap();
    dir.to_path_buf()
}

#[test]
fn mlm_continues_a_gradus_checkpoint_with_its_head_and_a_bare_encoder_with_a_new_one() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let train = root.join("train.tsv");
    gradus_testkit::toy_sentiment_tsv(&train, 400, 1);
    let base = pretrain(root, &train);
    let corpus = Corpus {
        tokens: root.join("tokens"),
        tokenizer: root.join("tokenizer/tokenizer.json"),
    };
    let continued = |init: &Path, out: &Path| {
        let mut args = pretrain_args(&corpus, out, 10);
        args.extend(
            [
                "--set",
                &format!("init_from=\"{}\"", init.display()),
                "--set",
                "train.eval_at_start=true",
            ]
            .map(str::to_string),
        );
        Command::new(PRETRAIN)
            .args(&args)
            .env("RUST_LOG", "info")
            .output()
            .unwrap()
    };

    // Same weights, same validation examples: the continued run starts where the base
    // run ended, which a new head would not.
    let out = root.join("continued");
    let done = continued(&base, &out);
    ok(&done);
    let base_end = eval_lines(&root.join("pretrain")).last().unwrap()["loss"].clone();
    assert_eq!(eval_lines(&out)[0]["loss"], base_end);
    assert!(!String::from_utf8_lossy(&done.stderr).contains("initialised"));
    assert_eq!(record(&out).facts.base_model, Some(base.clone()));

    // An encoder without heads: the MLM head is new, and the log names its tensors.
    let bare = without_heads(&base, &root.join("bare"));
    let out = root.join("from-bare");
    let done = continued(&bare, &out);
    ok(&done);
    let log = String::from_utf8_lossy(&done.stderr);
    assert!(
        log.contains("cls.predictions.bias") && log.contains("cls.predictions.transform.dense"),
        "{log}"
    );
    // A new head predicts worse than the trained one did on the same examples.
    let start = eval_lines(&out)[0]["loss"].as_f64().unwrap();
    assert!(
        start > base_end.as_f64().unwrap(),
        "a new head starts behind the trained one: {start} vs {base_end}"
    );
    let saved = candle_core::safetensors::load(
        out.join("model/model.safetensors"),
        &candle_core::Device::Cpu,
    )
    .unwrap();
    assert!(saved.contains_key("cls.predictions.transform.dense.weight"));
}

/// `freeze = ["bert."]` trains a new head on a loaded encoder and leaves the encoder as
/// it was, byte for byte.
#[test]
fn a_frozen_encoder_stays_as_loaded_while_its_new_head_trains() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let train = root.join("train.tsv");
    gradus_testkit::toy_sentiment_tsv(&train, 400, 1);
    let base = pretrain(root, &train);
    let bare = without_heads(&base, &root.join("bare"));
    let corpus = Corpus {
        tokens: root.join("tokens"),
        tokenizer: root.join("tokenizer/tokenizer.json"),
    };
    let out = root.join("head-only");
    let mut args = pretrain_args(&corpus, &out, 10);
    args.extend(
        [
            "--set",
            &format!("init_from=\"{}\"", bare.display()),
            "--set",
            "freeze=[\"bert.\"]",
            "--set",
            "train.eval_at_start=true",
        ]
        .map(str::to_string),
    );
    ok(&run(PRETRAIN, &strs(&args)));
    let load = |p: &Path| {
        candle_core::safetensors::load(p.join("model.safetensors"), &candle_core::Device::Cpu)
            .unwrap()
    };
    let (before, after) = (load(&bare), load(&out.join("model")));
    let bytes = |t: &candle_core::Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let encoder: Vec<&String> = before.keys().filter(|n| n.starts_with("bert.")).collect();
    assert!(!encoder.is_empty());
    for name in encoder {
        assert_eq!(bytes(&before[name]), bytes(&after[name]), "{name} moved");
    }
    assert!(after.contains_key("cls.predictions.transform.dense.weight"));
    // The head alone learned: the loss fell from where the new head started.
    let evals = eval_lines(&out);
    let (start, end) = (&evals[0], evals.last().unwrap());
    assert_eq!(start["step"], 0);
    assert!(
        end["loss"].as_f64().unwrap() < start["loss"].as_f64().unwrap(),
        "{start} -> {end}"
    );
}
