//! Fine-tuning end to end: a synthetic task on a tiny random encoder (frozen layers,
//! best-checkpoint selection, exact resume, the checks before training, prediction), the
//! same task on tiny GPT-2 and Llama decoders, and real slices of SST-2 and STS-B from
//! all-MiniLM-L6-v2.

#![allow(clippy::unwrap_used)] // test helpers fail loudly by design

mod common;

use std::path::{Path, PathBuf};

use gradus_finetune::{BiasInit, FinetuneConfig, HeadConfig, Pooling, TaskKind, TaskObjective};
use gradus_shard::OpenMode;
use gradus_tokenize::{ExamplesConfig, SplitFile, TokenizerKind, TrainConfig as TkConfig};
use gradus_train::{Objective, Trainer};

/// An examples dataset of the synthetic task (train 400, validation 120) with its own
/// WordPiece tokenizer, and a tiny random BERT checkpoint of that vocabulary.
fn synthetic(root: &Path) -> (PathBuf, PathBuf) {
    let (train, dev) = (root.join("train.tsv"), root.join("dev.tsv"));
    let mut texts = gradus_testkit::toy_sentiment_tsv(&train, 400, 1);
    texts.extend(gradus_testkit::toy_sentiment_tsv(&dev, 120, 2));
    let tk = common::wordpiece(&texts);
    let examples = root.join("examples");
    common::encode(&tk, "toy", (&train, &dev), None, &examples);
    (examples, common::tiny_bert(&tk, &root.join("tiny-bert")))
}

fn toy_config(examples: &Path, model: &Path) -> FinetuneConfig {
    FinetuneConfig {
        model: model.to_path_buf(),
        examples: examples.to_path_buf(),
        batch_size: 16,
        epochs: 3.0,
        lr: 3e-3,
        head: HeadConfig {
            pooling: Some(Pooling::Mean),
            ..HeadConfig::default()
        },
        seed: 7,
        ..FinetuneConfig::default()
    }
}

fn train(
    config: &FinetuneConfig,
    out: &Path,
    stop_after: Option<u64>,
) -> (TaskObjective, gradus_train::TrainReport) {
    let tasks = config.as_tasks();
    let mut objective = tasks.build().unwrap();
    let tc = tasks.train_config(&objective.tasks);
    let mut trainer = Trainer::new(tc, out);
    trainer.stop_after = stop_after;
    let report = trainer.run(&mut objective, &mut |_| {}).unwrap();
    (objective, report)
}

fn snapshot(objective: &TaskObjective) -> Vec<(String, Vec<f32>)> {
    objective
        .params()
        .iter()
        .map(|(n, v, _)| {
            (
                n.to_string(),
                v.as_tensor()
                    .flatten_all()
                    .unwrap()
                    .to_vec1::<f32>()
                    .unwrap(),
            )
        })
        .collect()
}

#[test]
fn frozen_parts_stay_put_while_the_rest_learns_and_the_best_epoch_is_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let (examples, model) = synthetic(tmp.path());
    let config = FinetuneConfig {
        freeze_embeddings: true,
        freeze_layers: 1,
        ..toy_config(&examples, &model)
    };
    let before = snapshot(&config.build().unwrap());
    let out = tmp.path().join("run");
    let (objective, report) = train(&config, &out, None);
    let after = snapshot(&objective);
    // Mean pooling leaves the pooler out of the graph.
    for ((name, a), (_, b)) in before
        .iter()
        .zip(&after)
        .filter(|((n, _), _)| !n.contains("pooler"))
    {
        let frozen = name.contains("embeddings.") || name.contains("encoder.layer.0.");
        let same = a == b;
        assert_eq!(frozen, same, "{name}: frozen {frozen}, unchanged {same}");
    }
    // Three epochs evaluated; the best accuracy's step is the one kept and restored.
    let lines = gradus_testkit::jsonl_rows(&out.join("eval.jsonl"));
    assert_eq!(lines.len(), 3);
    let best = lines
        .iter()
        .fold(None::<&serde_json::Value>, |b, l| match b {
            Some(b) if b["accuracy"].as_f64() >= l["accuracy"].as_f64() => Some(b),
            _ => Some(l),
        })
        .unwrap();
    assert_eq!(report.best_step, best["step"].as_u64());
    let kept: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("checkpoints/best/trainer.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(kept["step"], best["step"]);
    let final_model = std::fs::read(out.join("model/model.safetensors")).unwrap();
    let best_model = std::fs::read(out.join("checkpoints/best/model.safetensors")).unwrap();
    assert!(
        final_model == best_model,
        "model/ is not the best checkpoint"
    );
    // The toy task is learnable: well above the 50% of chance.
    let score = objective.score_task(0, &objective.tasks[0].dev).unwrap();
    assert!(score.scalars["accuracy"] > 0.8, "{:?}", score.scalars);
}

#[test]
fn resume_is_exact() {
    let tmp = tempfile::tempdir().unwrap();
    let (examples, model) = synthetic(tmp.path());
    let config = FinetuneConfig {
        max_steps: Some(20),
        eval_steps: Some(10),
        // Dropout on, so that the restored generator matters.
        head: HeadConfig {
            dropout: Some(0.2),
            pooling: Some(Pooling::Cls),
            ..HeadConfig::default()
        },
        ..toy_config(&examples, &model)
    };
    let (_, full) = train(&config, &tmp.path().join("full"), None);
    let split = tmp.path().join("split");
    let (_, first) = train(&config, &split, Some(10));
    let (_, second) = train(&config, &split, None);
    assert_eq!(first.losses.len(), 10);
    assert_eq!(second.resumed_from, Some(10));
    assert_eq!(first.losses[..], full.losses[..10]);
    assert_eq!(
        second.losses[..],
        full.losses[10..],
        "losses after resume differ"
    );
}

/// A GPT-2 and a Llama (untied head, grouped-query attention) learn the synthetic task
/// through a head on their last real token, save a folder gradus-predict labels with,
/// and resume exactly; transformers is told to refuse the folder.
#[test]
fn decoders_learn_a_task_through_their_last_token_and_resume_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let (examples, _) = synthetic(tmp.path());
    for model in common::tiny_decoders(&examples, tmp.path()) {
        let config = FinetuneConfig {
            head: HeadConfig::default(),
            ..toy_config(&examples, &model)
        };
        let out = model.with_extension("run");
        let (objective, report) = train(&config, &out, None);
        assert_eq!(objective.model.spec().pooling, Pooling::Last);
        let accuracy = report.best_value.unwrap();
        assert!(
            accuracy > 0.9,
            "{}: dev accuracy {accuracy}",
            model.display()
        );
        common::labels_the_toy_sentences(&out.join("model"));
        let saved = std::fs::read_to_string(out.join("model/config.json")).unwrap();
        assert!(saved.contains("not a transformers model"), "{saved}");

        let short = FinetuneConfig {
            max_steps: Some(20),
            eval_steps: Some(10),
            ..config.clone()
        };
        let (_, full) = train(&short, &model.with_extension("full"), None);
        let split = model.with_extension("split");
        train(&short, &split, Some(10));
        let (_, second) = train(&short, &split, None);
        assert_eq!(second.losses[..], full.losses[10..], "{}", model.display());
    }
}

/// Options only an encoder has are refused on a decoder by name, and a decoder's
/// pooling on an encoder.
#[test]
fn encoder_and_decoder_options_are_refused_on_the_other() {
    let tmp = tempfile::tempdir().unwrap();
    let (examples, bert) = synthetic(tmp.path());
    let gpt = common::tiny_decoders(&examples, tmp.path()).remove(0);
    let with = |model: &Path, pooling| FinetuneConfig {
        head: HeadConfig {
            pooling: Some(pooling),
            ..HeadConfig::default()
        },
        ..toy_config(&examples, model)
    };
    let e = with(&gpt, Pooling::Pooler).build().unwrap_err().to_string();
    assert!(e.contains("\"pooler\"") && e.contains("gpt2"), "{e}");
    let e = with(&bert, Pooling::Last).build().unwrap_err().to_string();
    assert!(e.contains("\"last\"") && e.contains("decoders"), "{e}");
    // Text pairs: each toy sentence beside itself.
    let pairs = tmp.path().join("pairs");
    let (train_tsv, dev_tsv) = (tmp.path().join("p-train.tsv"), tmp.path().join("p-dev.tsv"));
    for (file, seed) in [(&train_tsv, 1), (&dev_tsv, 2)] {
        let sentences = gradus_testkit::toy_sentiment_tsv(file, 20, seed);
        let mut text = String::from("sentence\tsecond\tlabel\n");
        for (i, s) in sentences.iter().enumerate() {
            text.push_str(&format!("{s}\t{s}\t{}\n", i % 2));
        }
        std::fs::write(file, text).unwrap();
    }
    let files = [
        SplitFile::parse(&format!("train={}", train_tsv.display()), "train"),
        SplitFile::parse(&format!("validation={}", dev_tsv.display()), "train"),
    ];
    let tk = gradus_tokenize::load(&examples.join("tokenizer.json")).unwrap();
    let pair_config = ExamplesConfig {
        task: "pairs".into(),
        text_pair: Some("second".into()),
        seq_len: 32,
        ..ExamplesConfig::default()
    };
    gradus_tokenize::encode_examples(&tk, &pair_config, &files, &pairs, OpenMode::Overwrite)
        .unwrap();
    let e = toy_config(&pairs, &gpt).build().unwrap_err().to_string();
    assert!(e.contains("token types") && e.contains("text pair"), "{e}");
}

#[test]
fn mismatches_fail_before_training() {
    let tmp = tempfile::tempdir().unwrap();
    let (examples, model) = synthetic(tmp.path());
    let base = toy_config(&examples, &model);
    let err = |c: FinetuneConfig| c.build().unwrap_err().to_string();

    // Heads that do not fit the two-class examples: three classes, a regression head,
    // and centred bias (a regression setting) on a classifier.
    let d = HeadConfig::default;
    for (head, wants) in [
        (
            HeadConfig {
                num_labels: Some(3),
                ..d()
            },
            ["3 classes", "2 labels"],
        ),
        (
            HeadConfig {
                kind: Some(TaskKind::Regression),
                ..d()
            },
            ["regression", "class labels"],
        ),
        (
            HeadConfig {
                bias_init: BiasInit::Mean,
                ..d()
            },
            ["bias_init", "regression heads"],
        ),
    ] {
        let e = err(FinetuneConfig {
            head,
            ..base.clone()
        });
        assert!(wants.iter().all(|w| e.contains(w)), "{e}");
    }

    // A checkpoint that carries another tokenizer.
    let other = gradus_tokenize::train(
        &TkConfig {
            kind: TokenizerKind::Wordpiece,
            vocab_size: 60,
            min_frequency: 1,
            ..TkConfig::default()
        },
        &["completely different words here".to_string()],
    )
    .unwrap();
    gradus_tokenize::save(&other, &model.join("tokenizer.json")).unwrap();
    let e = err(base.clone());
    assert!(e.contains("vocabulary") && e.contains("tiny-bert"), "{e}");
    std::fs::remove_file(model.join("tokenizer.json")).unwrap();

    let no_dev = FinetuneConfig {
        validation_split: "test".into(),
        ..base
    };
    let e = err(no_dev);
    assert!(e.contains("dev split `test`"), "{e}");
    assert!(e.contains("validation_fraction"), "{e}");
}

#[test]
fn a_finetuned_folder_labels_new_text() {
    let tmp = tempfile::tempdir().unwrap();
    let (examples, model) = synthetic(tmp.path());
    let out = tmp.path().join("run");
    train(&toy_config(&examples, &model), &out, None);
    let rows = common::labels_the_toy_sentences(&out.join("model"));
    assert!(
        rows.iter()
            .all(|p| (p.probs.iter().sum::<f32>() - 1.0).abs() < 1e-5)
    );
    // The folder names its task; the class that opens it elsewhere is written when a
    // run ends (gradus-export).
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("model/config.json")).unwrap())
            .unwrap();
    assert_eq!(
        config["gradus_task"]["labels"],
        serde_json::json!(["0", "1"])
    );
    assert_eq!(config["gradus_task"]["kind"], "classification");
}

/// SST-2 / STS-B encoded with MiniLM's tokenizer into `root`.
fn glue_examples(root: &Path, minilm: &Path, task: &str) -> Option<PathBuf> {
    let dir = gradus_testkit::shared(&format!("glue-{task}"))?;
    let tk = gradus_tokenize::load(&minilm.join("tokenizer.json")).unwrap();
    let config = if task == "sst2" {
        ExamplesConfig {
            task: "sst2".into(),
            ..ExamplesConfig::default()
        }
    } else {
        ExamplesConfig {
            task: "stsb".into(),
            text: "sentence1".into(),
            text_pair: Some("sentence2".into()),
            score: Some("score".into()),
            ..ExamplesConfig::default()
        }
    };
    let files = [
        SplitFile::parse(
            &format!("train={}", dir.join("train.tsv").display()),
            "train",
        ),
        SplitFile::parse(
            &format!("validation={}", dir.join("dev.tsv").display()),
            "train",
        ),
    ];
    let out = root.join(task);
    gradus_tokenize::encode_examples(&tk, &config, &files, &out, OpenMode::Overwrite).unwrap();
    Some(out)
}

fn minilm_config(minilm: &Path, examples: &Path, train: usize, dev: usize) -> FinetuneConfig {
    FinetuneConfig {
        model: minilm.to_path_buf(),
        examples: examples.to_path_buf(),
        train_examples: Some(train),
        validation_examples: Some(dev),
        batch_size: 8,
        epochs: 2.0,
        lr: 1e-4,
        // Frozen word embeddings: a third faster, and little to learn there from 320 rows.
        freeze_embeddings: true,
        warmup_ratio: 0.1,
        head: HeadConfig {
            pooling: Some(Pooling::Mean),
            ..HeadConfig::default()
        },
        seed: 42,
        ..FinetuneConfig::default()
    }
}

#[test]
fn minilm_on_sst2_and_stsb_slices_beats_chance_and_the_mean() {
    let Some(minilm) = gradus_testkit::minilm() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let Some(sst2) = glue_examples(tmp.path(), &minilm, "sst2") else {
        return;
    };
    let Some(stsb) = glue_examples(tmp.path(), &minilm, "stsb") else {
        return;
    };
    let (objective, _) = train(
        &minilm_config(&minilm, &sst2, 320, 200),
        &tmp.path().join("sst2-run"),
        None,
    );
    let acc = objective
        .score_task(0, &objective.tasks[0].dev)
        .unwrap()
        .scalars["accuracy"];
    assert!(acc > 0.7, "SST-2 slice accuracy {acc} (chance 0.5)");

    // A faster head: the output has to grow from 0 to the 0–5 range in 80 steps.
    let config = FinetuneConfig {
        head_lr: Some(1e-3),
        ..minilm_config(&minilm, &stsb, 320, 200)
    };
    let (objective, _) = train(&config, &tmp.path().join("stsb-run"), None);
    let score = objective
        .score_task(0, &objective.tasks[0].dev)
        .unwrap()
        .scalars;
    let mean = objective.tasks[0]
        .train
        .iter()
        .filter_map(|e| e.target)
        .sum::<f32>() as f64
        / objective.tasks[0].train.len() as f64;
    let baseline = objective.tasks[0]
        .dev
        .iter()
        .filter_map(|e| e.target)
        .map(|t| (f64::from(t) - mean).powi(2))
        .sum::<f64>()
        / objective.tasks[0].dev.len() as f64;
    assert!(score["pearson"] > 0.5, "{score:?}");
    assert!(
        score["mse"] < 0.75 * baseline,
        "MSE {} vs {baseline} for predicting the training mean",
        score["mse"]
    );
}
