//! `gradus-generate` end to end on a small Llama-style model trained here: prompts from
//! arguments, a whole prompt file (newlines kept) and a JSONL of prompts, generated as one
//! batch with and without the key/value cache, stop strings.

#![allow(clippy::unwrap_used)] // test helpers fail loudly by design

mod common;

use std::path::Path;

use common::{corpus, pretrain_args};
use gradus_testkit::{run_bin as run, succeeded as ok, temp_file};

const PRETRAIN: &str = env!("CARGO_BIN_EXE_gradus-pretrain");
const GENERATE: &str = env!("CARGO_BIN_EXE_gradus-generate");

/// A Llama-style causal LM trained for a few steps, and its tokenizer.
fn llama(root: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let train = root.join("train.tsv");
    gradus_testkit::toy_sentiment_tsv(&train, 200, 1);
    let corpus = corpus(root, &train);
    let out = root.join("run");
    let mut args: Vec<String> = pretrain_args(&corpus, &out, 30)
        .into_iter()
        .map(|a| if a == "mlm" { "clm".into() } else { a })
        .collect();
    for s in [
        "llama.hidden_size=32",
        "llama.intermediate_size=48",
        "llama.num_hidden_layers=1",
        "llama.num_attention_heads=4",
        "llama.num_key_value_heads=2",
        "llama.max_position_embeddings=64",
    ] {
        args.extend(["--set".into(), s.into()]);
    }
    let args: Vec<String> = args
        .chunks(2)
        .filter(|p| !(p[0] == "--set" && p.get(1).is_some_and(|v| v.starts_with("bert."))))
        .flatten()
        .cloned()
        .collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    ok(&run(PRETRAIN, &args));
    (out.join("model"), corpus.tokenizer)
}

fn generate(model: &Path, tokenizer: &Path, extra: &[&str]) -> String {
    let mut args = vec![
        "--model",
        model.to_str().unwrap(),
        "--tokenizer",
        tokenizer.to_str().unwrap(),
        "--temperature",
        "0",
        "--max-new-tokens",
        "12",
    ];
    args.extend_from_slice(extra);
    let out = run(GENERATE, &args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn prompts_from_files_batch_cache_and_stop_strings() {
    let tmp = tempfile::tempdir().unwrap();
    let (model, tokenizer) = llama(tmp.path());
    let whole = tmp.path().join("prompt.txt");
    std::fs::write(&whole, "the film\nwas").unwrap();
    let jsonl = tmp.path().join("prompts.jsonl");
    std::fs::write(&jsonl, "\"a dull\"\n{\"prompt\": \"great\"}\n").unwrap();
    let files = [
        "--prompt-file",
        whole.to_str().unwrap(),
        "--prompt-file",
        jsonl.to_str().unwrap(),
        "movie",
    ];
    let batched = generate(&model, &tokenizer, &files);
    // Arguments first, then the files in order; the whole file is one prompt: its
    // newline is kept, not a second prompt.
    assert!(batched.starts_with("movie"), "{batched}");
    assert!(batched.contains("\nthe film\nwas"), "{batched}");
    for prompt in ["a dull", "great", "movie"] {
        assert!(batched.contains(prompt), "{batched}");
    }
    let one_by_one = generate(
        &model,
        &tokenizer,
        &[&files[..], &["--batch-size", "1"]].concat(),
    );
    let recomputed = generate(&model, &tokenizer, &[&files[..], &["--no-cache"]].concat());
    assert_eq!(batched, one_by_one);
    assert_eq!(batched, recomputed);

    // A stop string cuts the continuation where it starts.
    let free = generate(&model, &tokenizer, &["movie"]);
    // Without --tokenizer, the model folder's own.
    let own = ok(&run(
        GENERATE,
        &[
            "--model",
            model.to_str().unwrap(),
            "--temperature",
            "0",
            "--max-new-tokens",
            "12",
            "movie",
        ],
    ));
    assert_eq!(own, free);
    let bare = tmp.path().join("bare");
    std::fs::create_dir_all(&bare).unwrap();
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(model.join(f), bare.join(f)).unwrap();
    }
    let out = run(GENERATE, &["--model", bare.to_str().unwrap(), "movie"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success()
            && err.trim().lines().count() == 1
            && err.contains("pass --tokenizer"),
        "{err}"
    );
    let continuation = &free["movie".len()..free.len() - 1];
    let stop: String = continuation.chars().skip(3).take(2).collect();
    if !stop.trim().is_empty() {
        let stopped = generate(&model, &tokenizer, &["movie", "--stop", &stop]);
        let at = continuation.find(&stop).unwrap();
        assert_eq!(stopped, format!("movie{}\n", &continuation[..at]));
    }
}

#[test]
fn a_bad_prompt_file_is_one_clear_line() {
    let (tmp, jsonl) = temp_file("prompts.jsonl", "\"fine\"\n{\"text\": \"no prompt\"}\n");
    let (model, tokenizer) = llama(tmp.path());
    let args = [
        "--model",
        model.to_str().unwrap(),
        "--tokenizer",
        tokenizer.to_str().unwrap(),
        "--prompt-file",
        jsonl.to_str().unwrap(),
    ];
    let out = run(GENERATE, &args);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("prompts.jsonl:2") && err.contains("prompt"),
        "{err}"
    );
}

/// Sampling settings with no meaning are refused, as HF's generation config refuses them,
/// instead of sampling garbage (a NaN temperature picked one token forever).
#[test]
fn sampling_settings_out_of_range_are_one_clear_line() {
    let tmp = tempfile::tempdir().unwrap();
    let (model, _) = llama(tmp.path());
    for (flag, needle) in [
        ("--temperature=nan", "temperature NaN: must be a number ≥ 0"),
        ("--temperature=-1", "temperature -1: must be a number ≥ 0"),
        ("--top-p=0", "top_p 0: must be within (0, 1]"),
        ("--top-p=1.5", "top_p 1.5: must be within (0, 1]"),
    ] {
        let out = run(GENERATE, &["--model", model.to_str().unwrap(), flag, "hi"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.trim().lines().count() == 1,
            "{err}"
        );
        assert!(err.contains(needle), "{flag}: {err}");
        assert!(out.stdout.is_empty(), "{flag}: nothing generated");
    }
}
