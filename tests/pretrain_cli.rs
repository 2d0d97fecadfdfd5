//! `gradus-pretrain` end to end: what the stage needs of its tokenizer, and the run record
//! it leaves.

#![allow(clippy::unwrap_used)] // test helpers fail loudly by design

mod common;

use common::{corpus_of, pretrain_args, record};
use gradus_record::{Direction, RunKind};
use gradus_testkit::{run_bin as run, succeeded as ok};

/// A SentencePiece-style tokenizer spells its mask `<mask>` and frames sequences with
/// `<s> … </s>`: MLM finds them by role.
#[test]
fn mlm_pretraining_runs_on_a_unigram_tokenizer_and_records_the_run() {
    let tmp = tempfile::tempdir().unwrap();
    let train = tmp.path().join("train.tsv");
    gradus_testkit::toy_sentiment_tsv(&train, 200, 1);
    let corpus = corpus_of(tmp.path(), &train, "unigram");
    let out = tmp.path().join("pretrain");
    let args = pretrain_args(&corpus, &out, 12);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let line = ok(&run(env!("CARGO_BIN_EXE_gradus-pretrain"), &args));
    assert!(line.contains("validation loss"), "{line}");

    let r = record(&out);
    assert_eq!(r.kind, RunKind::Pretrain);
    assert!(r.finished);
    assert_eq!(
        r.facts.model.as_deref(),
        Some(std::path::Path::new("model"))
    );
    assert_eq!(r.facts.data, std::slice::from_ref(&corpus.tokens));
    assert_eq!(r.facts.tokenizer.as_ref(), Some(&corpus.tokenizer));
    let selection = r.facts.selection.unwrap();
    assert_eq!(
        (selection.name.as_str(), selection.direction),
        ("loss", Direction::Down)
    );
    let loss = r.figures["loss"];
    assert!(
        loss.is_finite() && r.figures.contains_key("mlm_accuracy"),
        "{:?}",
        r.figures
    );
    assert!(
        line.contains(&format!("validation loss {loss:.4}")),
        "{line}"
    );

    // The same run as a killed one leaves it (no kept model, the record unfinished):
    // eval refuses it in one line, pointing at its checkpoints, and writes nothing.
    std::fs::remove_dir_all(out.join("model")).unwrap();
    let text = std::fs::read_to_string(out.join("run.json")).unwrap();
    let mut json: serde_json::Value = serde_json::from_str(&text).unwrap();
    json["finished"] = false.into();
    std::fs::write(out.join("run.json"), json.to_string()).unwrap();
    let eval_dir = tmp.path().join("eval");
    let eval = run(
        env!("CARGO_BIN_EXE_gradus-eval"),
        &[out.to_str().unwrap(), "-o", eval_dir.to_str().unwrap()],
    );
    let err = String::from_utf8_lossy(&eval.stderr);
    assert!(
        !eval.status.success()
            && err.trim().lines().count() == 1
            && err.contains("has not finished")
            && err.contains("checkpoints/step-N"),
        "{err}"
    );
    assert!(!eval_dir.exists(), "nothing written");
}

/// The evaluation reads what a folder holds from its run record, not from the keys its
/// config happens to have.
#[test]
fn eval_refuses_a_folder_without_a_run_record() {
    let tmp = tempfile::tempdir().unwrap();
    let folder = tmp.path().join("looks-like-a-run");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join("config.toml"), "objective = \"clm\"\n").unwrap();
    let out = run(
        env!("CARGO_BIN_EXE_gradus-eval"),
        &[
            folder.to_str().unwrap(),
            "-o",
            tmp.path().join("eval").to_str().unwrap(),
        ],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("run.json") && err.contains("not written by a gradus run"),
        "{err}"
    );
    assert!(!tmp.path().join("eval").exists(), "nothing written");
}

/// The unigram baseline of a masked LM guesses among the tokens MLM may mask: on short
/// documents framed `[CLS] … [SEP]` the framing tokens are the commonest, and a baseline
/// that counted them would never be right.
#[test]
fn the_mlm_baseline_guesses_among_maskable_tokens() {
    let tmp = tempfile::tempdir().unwrap();
    let train = tmp.path().join("train.tsv");
    gradus_testkit::toy_sentiment_tsv(&train, 400, 1);
    let model = common::pretrain(tmp.path(), &train);
    let out = tmp.path().join("eval");
    ok(&run(
        env!("CARGO_BIN_EXE_gradus-eval"),
        &[
            model.parent().unwrap().to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ],
    ));
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    let unigram = report["sections"][0]["baselines"]["unigram"]["mlm_accuracy"]
        .as_f64()
        .unwrap();
    assert!(
        unigram > 0.05,
        "unigram MLM accuracy {unigram}: {}",
        report["sections"][0]
    );
}

/// Two sources mixed 3 : 1 through `--input NAME=DIR`: the run record gives the shares
/// drawn; a source the config lacks, or a mixture beside `data.tokens`, is one clear line.
#[test]
fn mixed_sources_are_drawn_by_weight_and_recorded() {
    let tmp = tempfile::tempdir().unwrap();
    let train = tmp.path().join("train.tsv");
    gradus_testkit::toy_sentiment_tsv(&train, 200, 1);
    let corpus = corpus_of(tmp.path(), &train, "wordpiece");
    let tokens = corpus.tokens.display().to_string();
    let out = tmp.path().join("mixed");
    // The tiny BERT's flags without the single dataset (`--set data.tokens=…`).
    let mut cleaned: Vec<String> = Vec::new();
    for a in pretrain_args(&corpus, &out, 30) {
        if a.starts_with("data.tokens=") {
            cleaned.pop();
            continue;
        }
        cleaned.push(a);
    }
    let mix = [
        "--set",
        "data.mix.a.weight=3",
        "--set",
        "data.mix.b.weight=1",
        "--input",
        &format!("a={tokens}"),
        "--input",
        &format!("b={tokens}"),
    ];
    let with_mix: Vec<&str> = cleaned
        .iter()
        .map(String::as_str)
        .chain(mix.iter().copied())
        .collect();
    ok(&run(env!("CARGO_BIN_EXE_gradus-pretrain"), &with_mix));
    let seen = record(&out).data_seen;
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!((seen["a"].share - 0.75).abs() < 0.01, "{seen:?}");
    assert!((seen["b"].share - 0.25).abs() < 0.01, "{seen:?}");
    assert!(seen["a"].tokens > 0 && seen["a"].data == corpus.tokens);

    let one_line = |extra: &[&str], needle: &str| {
        let args: Vec<&str> = cleaned
            .iter()
            .map(String::as_str)
            .chain(extra.iter().copied())
            .collect();
        let o = run(env!("CARGO_BIN_EXE_gradus-pretrain"), &args);
        assert!(!o.status.success());
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(err.contains(needle), "{err}");
    };
    let before = std::fs::read(out.join("run.json")).unwrap();
    let unknown = format!("c={tokens}");
    one_line(
        &["--set", "data.mix.a.weight=1", "--input", &unknown],
        "no data.mix.c",
    );
    let both = format!("data.tokens=\"{tokens}\"");
    let a_tokens = format!("data.mix.a.tokens=\"{tokens}\"");
    let a_weight = "data.mix.a.weight=1";
    one_line(
        &["--set", &both, "--set", a_weight, "--set", &a_tokens],
        "data.tokens and data.mix are both set",
    );
    assert_eq!(
        std::fs::read(out.join("run.json")).unwrap(),
        before,
        "nothing written"
    );
}

/// `args` without the `--set KEY=…` pairs of the named keys.
fn without(args: &[String], keys: &[&str]) -> Vec<String> {
    let mut kept: Vec<String> = Vec::new();
    for a in args {
        if keys.iter().any(|k| a.starts_with(&format!("{k}="))) {
            kept.pop();
            continue;
        }
        kept.push(a.clone());
    }
    kept
}

/// With no tokenizer named, the stage reads the one the tokenize stage left in the tokens
/// dataset; no data at all, or a tokenizer that is not there, is one line saying so.
#[test]
fn the_tokenizer_defaults_to_the_one_in_the_tokens_dataset() {
    let tmp = tempfile::tempdir().unwrap();
    let train = tmp.path().join("train.tsv");
    gradus_testkit::toy_sentiment_tsv(&train, 200, 1);
    let corpus = corpus_of(tmp.path(), &train, "wordpiece");
    let out = tmp.path().join("pretrain");
    let args = without(&pretrain_args(&corpus, &out, 2), &["data.tokenizer"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    ok(&run(env!("CARGO_BIN_EXE_gradus-pretrain"), &args));
    let own = corpus.tokens.join("tokenizer.json");
    assert_eq!(record(&out).facts.tokenizer, Some(own));

    let one_line = |args: &[String], extra: &[&str], needle: &str| {
        let args: Vec<&str> = args
            .iter()
            .map(String::as_str)
            .chain(extra.iter().copied())
            .collect();
        let o = run(env!("CARGO_BIN_EXE_gradus-pretrain"), &args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            !o.status.success() && err.trim().lines().count() == 1,
            "{err}"
        );
        assert!(err.contains(needle), "{err}");
    };
    let elsewhere = tmp.path().join("other");
    let no_data = without(
        &pretrain_args(&corpus, &elsewhere, 2),
        &["data.tokenizer", "data.tokens"],
    );
    one_line(&no_data, &[], "no training data: pass --input DIR");
    let missing = tmp.path().join("missing.json");
    let named = format!("error: {}: no such file", missing.display());
    let args = pretrain_args(&corpus, &elsewhere, 2);
    one_line(&args, &["--tokenizer", missing.to_str().unwrap()], &named);
    assert!(!elsewhere.exists(), "nothing written");
}
