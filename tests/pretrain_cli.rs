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
