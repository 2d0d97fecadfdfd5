//! Pretrain → fine-tune → predict as a user drives it, on a toy sentiment task: a tiny
//! BERT pretrained by `gradus-pretrain`, fine-tuned by `gradus-finetune`, then used by
//! `gradus-predict` on arguments and on a whole examples dataset; and a head that does
//! not fit the labels refused before anything is written. Then `gradus-multitask` on the
//! same model with a second (regression) task, fine-tuning one task afterwards.

#![allow(clippy::unwrap_used)] // test helpers fail loudly by design

use std::path::Path;
use std::process::Command;

mod common;

use common::{examples, pretrain, record, s};
use gradus_testkit::{run_bin as run, succeeded as ok};

#[test]
fn pretrain_finetune_predict() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let (train, dev) = (root.join("train.tsv"), root.join("dev.tsv"));
    gradus_testkit::toy_sentiment_tsv(&train, 400, 1);
    gradus_testkit::toy_sentiment_tsv(&dev, 100, 2);
    let model = pretrain(root, &train);
    let examples = root.join("examples");
    ok(&run(
        env!("CARGO_BIN_EXE_gradus-tokenize"),
        &[
            "examples",
            "-t",
            s(&model.join("tokenizer.json")),
            "-i",
            &format!("train={}", train.display()),
            "-i",
            &format!("validation={}", dev.display()),
            "-o",
            s(&examples),
            "--set",
            "task=toy",
            "--set",
            "seq_len=24",
        ],
    ));
    let finetune = env!("CARGO_BIN_EXE_gradus-finetune");
    let common = [
        "--model",
        s(&model),
        "--examples",
        s(&examples),
        "--set",
        "epochs=3",
        "--set",
        "lr=3e-3",
        "--set",
        "batch_size=16",
        "--set",
        "head.pooling=\"mean\"",
    ];

    // A 3-class head for 2 labels: refused, one line, nothing written.
    let refused = root.join("refused");
    let out = run(
        finetune,
        &[
            &common[..],
            &["-o", s(&refused), "--set", "head.num_labels=3"],
        ]
        .concat(),
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("3 classes") && err.contains("2 labels"),
        "{err}"
    );
    assert!(!refused.exists());

    // No examples, or the model folder itself as the output: one line, nothing written.
    let model_files = std::fs::read_dir(&model).unwrap().count();
    for (args, needle) in [
        (
            vec!["--model", s(&model), "-o", s(&refused)],
            "no examples: pass --examples DIR",
        ),
        (
            [&common[..], &["-o", s(&model)]].concat(),
            "is no stage's output folder",
        ),
    ] {
        let out = run(finetune, &args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.trim().lines().count() == 1,
            "{err}"
        );
        assert!(err.contains(needle), "{err}");
    }
    assert!(!refused.exists());
    assert_eq!(std::fs::read_dir(&model).unwrap().count(), model_files);

    let run_dir = root.join("finetune");
    let line = ok(&run(
        finetune,
        &[&common[..], &["-o", s(&run_dir)]].concat(),
    ));
    assert!(line.contains("dev accuracy"), "{line}");
    let metrics: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("metrics.json")).unwrap())
            .unwrap();
    assert!(
        metrics["dev"]["accuracy"].as_f64().unwrap() > 0.8,
        "{metrics}"
    );
    assert_eq!(
        metrics["dev_report"]["confusion"]["counts"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        std::fs::read_to_string(run_dir.join("eval.jsonl"))
            .unwrap()
            .lines()
            .count(),
        3
    );
    // The run record says what the run was, where it started and how it chose its model.
    let r = record(&run_dir);
    assert_eq!(r.kind, gradus_record::RunKind::Finetune);
    assert_eq!(r.facts.base_model.as_ref(), Some(&model));
    assert_eq!(r.facts.data, std::slice::from_ref(&examples));
    assert_eq!(r.facts.seed, 42);
    let selection = r.facts.selection.clone().unwrap();
    assert_eq!(selection.name, "accuracy");
    assert_eq!(selection.direction, gradus_record::Direction::Up);
    assert_eq!(
        r.best.unwrap().value,
        metrics["best_value"].as_f64().unwrap()
    );
    assert_eq!(
        r.figures["accuracy"],
        metrics["dev"]["accuracy"].as_f64().unwrap()
    );
    assert_eq!(
        record(model.parent().unwrap()).kind,
        gradus_record::RunKind::Pretrain
    );

    let predict = env!("CARGO_BIN_EXE_gradus-predict");
    let labels = ok(&run(
        predict,
        &[
            "--model",
            s(&run_dir.join("model")),
            "a very good film",
            "the story was awful",
        ],
    ));
    let rows: Vec<serde_json::Value> = labels
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows[0]["label"], "1", "{labels}");
    assert_eq!(rows[1]["label"], "0", "{labels}");

    let preds = root.join("predictions");
    let to = |out: &Path| {
        run(
            predict,
            &[
                "--model",
                s(&run_dir.join("model")),
                "--examples",
                s(&examples),
                "--split",
                "validation",
                "-o",
                s(out),
            ],
        )
    };
    ok(&to(&preds));
    ok(&to(&preds)); // a rerun finds its own sealed output
    // A run folder where a model folder is wanted: one line naming where its model is.
    let wrong = run(predict, &["--model", s(&run_dir), "a fine film"]);
    let err = String::from_utf8_lossy(&wrong.stderr);
    assert!(
        err.trim()
            .ends_with("is a finetune run, not a model folder: name its `model` folder"),
        "{err}"
    );
    let into_run = to(&run_dir);
    let err = String::from_utf8_lossy(&into_run.stderr);
    assert!(
        err.contains("holds the output of `finetune`, not of `predict`"),
        "{err}"
    );
    let verified = ok(&run(env!("CARGO_BIN_EXE_gradus"), &["verify", s(&preds)]));
    assert!(
        verified.starts_with("ok:") && verified.contains("100 rows"),
        "{verified}"
    );
    let inspect = ok(&run(env!("CARGO_BIN_EXE_gradus"), &["inspect", s(&preds)]));
    assert!(inspect.contains("predictions.toy.validation"), "{inspect}");
    python_layouts(&model, &run_dir.join("model"), &examples, root);
}

/// The kept folders open in the Python ecosystem's classes: the pretrained MLM as
/// transformers' BERT, the mean-pooled head in sentence-transformers' layout (gradus still
/// reads it: `gradus-predict` ran on it above), with tokenizer files and a card; `gradus
/// export` refuses a layout that cannot hold the head and an occupied folder.
fn python_layouts(pretrained: &Path, finetuned: &Path, examples: &Path, root: &Path) {
    let json = |p: &Path| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
    };
    let config = json(&pretrained.join("config.json"));
    assert_eq!(config["architectures"][0], "BertForPreTraining");
    assert_eq!(
        json(&pretrained.join("tokenizer_config.json"))["mask_token"],
        "[MASK]"
    );
    assert_eq!(
        json(&finetuned.join("config.json"))["architectures"][0],
        "BertModel"
    );
    assert!(finetuned.join("2_Classifier/model.safetensors").is_file());
    assert_eq!(
        json(&finetuned.join("modules.json"))
            .as_array()
            .unwrap()
            .len(),
        3
    );
    let card = std::fs::read_to_string(finetuned.join("README.md")).unwrap();
    assert!(
        card.contains("library_name: sentence-transformers"),
        "{card}"
    );
    assert!(
        card.contains(&format!("| base model | `{}` |", pretrained.display())),
        "{card}"
    );
    assert!(card.contains(&format!("`{}`", examples.display())) && card.contains("| steps |"));

    let gradus = env!("CARGO_BIN_EXE_gradus");
    let to = root.join("exported");
    let out = run(
        gradus,
        &["export", s(finetuned), "-o", s(&to), "--layout", "hf"],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.trim().lines().count() == 1,
        "{err}"
    );
    assert!(
        err.contains("BertForSequenceClassification reads the pooler"),
        "{err}"
    );
    assert!(!to.exists());
    let inside = finetuned.join("exported");
    let out = run(gradus, &["export", s(finetuned), "-o", s(&inside)]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("one inside the other"));
    assert!(!inside.exists());
    let line = ok(&run(gradus, &["export", s(finetuned), "-o", s(&to)]));
    assert!(line.contains("sentence-transformers layout"), "{line}");
    let again = run(gradus, &["export", s(finetuned), "-o", s(&to)]);
    assert!(String::from_utf8_lossy(&again.stderr).contains("--overwrite"));
    ok(&run(
        gradus,
        &["export", s(finetuned), "-o", s(&to), "--overwrite"],
    ));
    // --overwrite replaces an earlier export, never a run: the examples dataset stays.
    let examples_files = std::fs::read_dir(examples).unwrap().count();
    let over_run = run(
        gradus,
        &["export", s(finetuned), "-o", s(examples), "--overwrite"],
    );
    let err = String::from_utf8_lossy(&over_run.stderr);
    assert!(
        err.contains("holds the output of `tokenize-examples`, which an export does not replace"),
        "{err}"
    );
    assert_eq!(std::fs::read_dir(examples).unwrap().count(), examples_files);
    // A checkpoint exports too, its tokenizer found through its run.
    let from_best = root.join("from-best");
    let best = finetuned.parent().unwrap().join("checkpoints/best");
    ok(&run(gradus, &["export", s(&best), "-o", s(&from_best)]));
    let card = std::fs::read_to_string(from_best.join("README.md")).unwrap();
    assert!(card.contains("`checkpoints/best` of the run"), "{card}");
    assert!(from_best.join("tokenizer_config.json").is_file());
    // What gradus computes on the export is what it computes on the run's folder.
    let outputs = |dir: &Path| ok(&run(gradus, &["outputs", s(dir), "a very good film"]));
    assert_eq!(outputs(finetuned), outputs(&to));
}

#[test]
fn multitask_then_finetune_one_task() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let mut texts = gradus_testkit::toy_sentiment_tsv(&root.join("sentiment-train.tsv"), 400, 1);
    gradus_testkit::toy_sentiment_tsv(&root.join("sentiment-dev.tsv"), 100, 2);
    texts.extend(gradus_testkit::toy_intensity_tsv(
        &root.join("intensity-train.tsv"),
        400,
        3,
    ));
    gradus_testkit::toy_intensity_tsv(&root.join("intensity-dev.tsv"), 100, 4);
    // The pretraining corpus holds both tasks' sentences.
    let corpus = root.join("corpus.tsv");
    std::fs::write(&corpus, format!("sentence\n{}\n", texts.join("\n"))).unwrap();
    let model = pretrain(root, &corpus);
    let sentiment = examples(&model, root, "sentiment", &[]);
    let intensity = examples(&model, root, "intensity", &["--set", "score=\"score\""]);
    let config = root.join("multitask.toml");
    let write_config = |second_name: &str| {
        std::fs::write(
            &config,
            format!(
                r#"
lr = 3e-3
batch_size = 16
epochs = 3
strategy = {{ kind = "temperature", temperature = 2.0 }}
finetune_tasks = ["sentiment"]

[finetune]
epochs = 1
lr = 1e-3

[[tasks]]
name = "sentiment"
examples = "{}"
head = {{ pooling = "mean" }}

[[tasks]]
name = "{second_name}"
examples = "{}"
head = {{ kind = "regression", pooling = "mean", bias_init = "mean" }}
"#,
                sentiment.display(),
                intensity.display()
            ),
        )
        .unwrap();
    };
    let multitask = env!("CARGO_BIN_EXE_gradus-multitask");
    let args = |out: &Path| {
        vec![
            "-c".to_string(),
            s(&config).to_string(),
            "--model".into(),
            s(&model).into(),
            "-o".into(),
            s(out).into(),
        ]
    };

    // Two tasks of one name: refused, one line, nothing written.
    write_config("sentiment");
    let refused = root.join("refused");
    let out = Command::new(multitask)
        .args(args(&refused))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("two tasks are named `sentiment`"), "{err}");
    assert!(!refused.exists());

    write_config("intensity");
    // A composite of an accuracy and an MSE has no direction: refused, naming both.
    let mixed = Command::new(multitask)
        .args(args(&refused))
        .args(["--set", "tasks.1.metric=mse"])
        .output()
        .unwrap();
    assert!(!mixed.status.success());
    let err = String::from_utf8_lossy(&mixed.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("`sentiment/accuracy`") && err.contains("`intensity/mse`"),
        "{err}"
    );
    assert!(!refused.exists());

    let run_dir = root.join("multitask");
    let out = Command::new(multitask)
        .args(args(&run_dir))
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let table = ok(&out);
    assert!(table.contains("composite"), "{table}");
    let metrics: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("metrics.json")).unwrap())
            .unwrap();
    let tasks = &metrics["tasks"];
    assert!(
        tasks["sentiment"]["dev"]["accuracy"].as_f64().unwrap() > 0.8,
        "{metrics}"
    );
    assert!(
        tasks["intensity"]["dev"]["pearson"].as_f64().unwrap() > 0.5,
        "{metrics}"
    );
    // Only the task asked for is fine-tuned afterwards, from its exported checkpoint.
    let tuned = &tasks["sentiment"]["finetuned"];
    assert!(
        tuned["dev"]["accuracy"].as_f64().unwrap() > 0.8,
        "{metrics}"
    );
    assert!(tasks["intensity"].get("finetuned").is_none());
    assert!(
        run_dir
            .join("finetune/sentiment/model/model.safetensors")
            .is_file()
    );
    assert!(!run_dir.join("finetune/intensity").exists());
    let r = record(&run_dir);
    assert_eq!(r.kind, gradus_record::RunKind::Multitask);
    let selection = r.facts.selection.clone().unwrap();
    assert_eq!(
        (selection.name.as_str(), selection.direction),
        ("composite", gradus_record::Direction::Up)
    );
    assert_eq!(
        r.figures["composite"],
        metrics["dev"]["composite"].as_f64().unwrap()
    );
    let tuned_record = record(&run_dir.join("finetune/sentiment"));
    assert_eq!(tuned_record.kind, gradus_record::RunKind::Finetune);
    assert_eq!(
        tuned_record.facts.base_model.as_ref(),
        Some(&run_dir.join("tasks/sentiment"))
    );
    // Each exported task labels text on its own.
    let labels = ok(&run(
        env!("CARGO_BIN_EXE_gradus-predict"),
        &[
            "--model",
            s(&run_dir.join("tasks/intensity")),
            "the very very very plot",
        ],
    ));
    let row: serde_json::Value = serde_json::from_str(labels.lines().next().unwrap()).unwrap();
    assert!(row["score"].as_f64().unwrap() > 1.5, "{labels}");
}
