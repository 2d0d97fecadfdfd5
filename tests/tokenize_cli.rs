//! `gradus-tokenize` as a user drives it: train, encode, examples, bad input.

#![allow(clippy::unwrap_used)] // test helpers fail loudly by design

use std::path::Path;
use std::process::{Command, Output};

use gradus_testkit::{run_bin as run, succeeded as ok};

fn tokenize(args: &[&str]) -> Output {
    run(env!("CARGO_BIN_EXE_gradus-tokenize"), args)
}

fn gradus(args: &[&str]) -> Output {
    run(env!("CARGO_BIN_EXE_gradus"), args)
}

fn corpus(tmp: &Path) -> String {
    let docs = tmp.join("documents");
    let corpus = gradus_testkit::workspace_root().join("data/corpus");
    ok(&gradus(&[
        "import",
        "-i",
        corpus.to_str().unwrap(),
        "-o",
        docs.to_str().unwrap(),
    ]));
    docs.display().to_string()
}

#[test]
fn train_then_encode_then_verify() {
    let tmp = tempfile::tempdir().unwrap();
    let docs = corpus(tmp.path());
    let tk_dir = tmp.path().join("tk");
    let out = ok(&tokenize(&[
        "train",
        "-i",
        &docs,
        "-o",
        tk_dir.to_str().unwrap(),
        "--set",
        "kind=wordpiece",
        "--set",
        "vocab_size=400",
        "--set",
        "min_frequency=1",
    ]));
    assert!(out.contains("vocabulary of 400"), "{out}");
    let tokens = tmp.path().join("tokens");
    let out = ok(&tokenize(&[
        "encode",
        "-i",
        &docs,
        "-o",
        tokens.to_str().unwrap(),
        "-t",
        tk_dir.to_str().unwrap(),
        "--set",
        "validation_fraction=0.5",
    ]));
    assert!(out.contains("20 documents"), "{out}");
    let inspect = ok(&gradus(&["inspect", tokens.to_str().unwrap(), "--json"]));
    let summary: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    assert_eq!(summary["kind"], "tokens");
    let counts = &summary["counts"];
    assert_eq!(
        counts["tokens"].as_u64(),
        Some(
            counts["tokens.train"].as_u64().unwrap()
                + counts["tokens.validation"].as_u64().unwrap()
        )
    );
    // BERT-style: every document is [CLS] ... [SEP], and nothing is unknown.
    assert!(
        summary["head"][0]["input_ids"]
            .as_str()
            .unwrap()
            .starts_with("[2, ")
    );
    assert_eq!(summary["stats"]["unknown_tokens"], 0);
    assert!(ok(&gradus(&["verify", tokens.to_str().unwrap()])).starts_with("ok:"));

    // One worker thread gives the very same shards as all of them.
    let single = tmp.path().join("tokens-1");
    ok(&tokenize(&[
        "encode",
        "-i",
        &docs,
        "-o",
        single.to_str().unwrap(),
        "-t",
        tk_dir.to_str().unwrap(),
        "--set",
        "validation_fraction=0.5",
        "--threads",
        "1",
    ]));
    let shards = |dir: &Path| {
        let m: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap())
                .unwrap();
        m["shards"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["checksum"].clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(shards(&single), shards(&tokens));
}

#[test]
fn examples_with_splits_and_a_bad_row() {
    let tmp = tempfile::tempdir().unwrap();
    let docs = corpus(tmp.path());
    let tk_dir = tmp.path().join("tk");
    ok(&tokenize(&[
        "train",
        "-i",
        &docs,
        "-o",
        tk_dir.to_str().unwrap(),
        "--set",
        "kind=wordpiece",
    ]));
    let train = tmp.path().join("train.tsv");
    let dev = tmp.path().join("dev.tsv");
    std::fs::write(
        &train,
        "sentence\tlabel\nthe harbour wakes\tpos\nthe storm took the wall\tneg\n",
    )
    .unwrap();
    std::fs::write(
        &dev,
        "sentence\tlabel\nthe market opens\tpos\nsharp blades\tmaybe\n",
    )
    .unwrap();
    let out = tmp.path().join("examples");
    let args = |extra: &[&str]| {
        let mut a = vec![
            "examples".to_string(),
            "-t".into(),
            tk_dir.display().to_string(),
            "-o".into(),
            out.display().to_string(),
            "-i".into(),
            format!("train={}", train.display()),
            "-i".into(),
            format!("validation={}", dev.display()),
            "--set".into(),
            "task=mood".into(),
            "--set".into(),
            "labels=[\"neg\", \"pos\"]".into(),
        ];
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let fail = tokenize(&args(&[]).iter().map(String::as_str).collect::<Vec<_>>());
    assert!(!fail.status.success());
    let err = String::from_utf8_lossy(&fail.stderr);
    assert!(err.contains("dev.tsv:3") && err.contains("maybe"), "{err}");

    let skip = args(&["--set", "on_error=skip", "--overwrite"]);
    let done = ok(&tokenize(
        &skip.iter().map(String::as_str).collect::<Vec<_>>(),
    ));
    assert!(done.contains("3 examples"), "{done}");
    let labels: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("labels.json")).unwrap()).unwrap();
    assert_eq!(labels["names"], serde_json::json!(["neg", "pos"]));
    let inspect: serde_json::Value =
        serde_json::from_str(&ok(&gradus(&["inspect", out.to_str().unwrap(), "--json"]))).unwrap();
    assert_eq!(inspect["counts"]["examples.mood.train"], 2);
    assert_eq!(inspect["counts"]["examples.mood.validation"], 1);
    assert_eq!(inspect["stats"]["skipped"]["unknown_label"], 1);
}

#[test]
fn without_a_terminal_progress_becomes_log_lines() {
    let tmp = tempfile::tempdir().unwrap();
    let docs = corpus(tmp.path());
    let tk_dir = tmp.path().join("tk");
    ok(&tokenize(&[
        "train",
        "-i",
        &docs,
        "-o",
        tk_dir.to_str().unwrap(),
        "--set",
        "kind=char",
    ]));
    let out = Command::new(env!("CARGO_BIN_EXE_gradus-tokenize"))
        .args(["encode", "-i", &docs, "-t", tk_dir.to_str().unwrap(), "-o"])
        .arg(tmp.path().join("tokens"))
        .env("RUST_LOG", "info")
        .env("GRADUS_PROGRESS_SECS", "0")
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    // stderr is a pipe here: counts arrive as plain lines, no bar control codes.
    assert!(log.contains("tokenize: 20/20 documents"), "{log}");
    assert!(log.contains("tokenize: done, 20 documents"), "{log}");
    assert!(!log.contains('\u{1b}'), "{log}");
}
