//! Multi-task training end to end on two synthetic tasks (a classification and a
//! regression) and a tiny random encoder: the joint loss, learning both tasks, exact
//! resume with the sampler's state, the checks before training, and the exported
//! single-task checkpoints; the same two tasks on a tiny Llama.

#![allow(clippy::unwrap_used)] // test helpers fail loudly by design

mod common;

use std::path::{Path, PathBuf};

use candle_core::Device;
use gradus_finetune::{BiasInit, FinetuneConfig, HeadConfig, Pooling, TaskKind, task_loss};
use gradus_finetune::{MultitaskConfig, Strategy, TaskConfig, TaskObjective};
use gradus_model::Ctx;
use gradus_testkit::{assert_numbers, jsonl_rows};
use gradus_train::{Objective, TrainReport, Trainer};

struct Fixture {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    sentiment: PathBuf,
    intensity: PathBuf,
    model: PathBuf,
}

/// Two examples datasets sharing one WordPiece tokenizer, `sentiment` (2 classes) and
/// `intensity` (a score 0-3), each 400 training and 120 validation rows, and a tiny
/// random BERT of that vocabulary.
fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_path_buf();
    let tsv = |name: &str| root.join(format!("{name}.tsv"));
    let mut texts = gradus_testkit::toy_sentiment_tsv(&tsv("s-train"), 400, 1);
    texts.extend(gradus_testkit::toy_sentiment_tsv(&tsv("s-dev"), 120, 2));
    texts.extend(gradus_testkit::toy_intensity_tsv(&tsv("i-train"), 400, 3));
    texts.extend(gradus_testkit::toy_intensity_tsv(&tsv("i-dev"), 120, 4));
    let tk = common::wordpiece(&texts);
    let encode = |task: &str, prefix: &str, score: Option<&str>| {
        let (train, dev) = (
            tsv(&format!("{prefix}-train")),
            tsv(&format!("{prefix}-dev")),
        );
        let out = root.join(task);
        common::encode(&tk, task, (&train, &dev), score, &out);
        out
    };
    let sentiment = encode("sentiment", "s", None);
    let intensity = encode("intensity", "i", Some("score"));
    let model = common::tiny_bert(&tk, &root.join("tiny-bert"));
    Fixture {
        _tmp: tmp,
        root,
        sentiment,
        intensity,
        model,
    }
}

fn task(name: &str, examples: &Path) -> TaskConfig {
    TaskConfig {
        name: name.into(),
        examples: examples.to_path_buf(),
        head: HeadConfig {
            pooling: Some(Pooling::Mean),
            ..HeadConfig::default()
        },
        ..TaskConfig::default()
    }
}

fn two_tasks(f: &Fixture, strategy: Strategy) -> MultitaskConfig {
    let mut config = MultitaskConfig {
        tasks: vec![
            task("sentiment", &f.sentiment),
            task("intensity", &f.intensity),
        ],
        strategy,
        ..MultitaskConfig::default()
    };
    config.training.model = f.model.clone();
    config.training.batch_size = 16;
    config.training.epochs = 3.0;
    config.training.lr = 3e-3;
    config.training.seed = 7;
    // At this learning rate a regression head starts best at the mean target.
    config.tasks[1].head.bias_init = BiasInit::Mean;
    config
}

fn train(
    config: &MultitaskConfig,
    out: &Path,
    stop_after: Option<u64>,
) -> (TaskObjective, TrainReport) {
    let mut objective = config.build().unwrap();
    let mut trainer = Trainer::new(config.train_config(&objective.tasks), out);
    trainer.stop_after = stop_after;
    let report = trainer.run(&mut objective, &mut |_| {}).unwrap();
    (objective, report)
}

/// Trains `config` in `dir` for `stop` steps, then again to the end: the second run must
/// resume at `stop` and log `full`'s losses from there. Returns the first run's objective.
fn stop_and_resume(
    config: &MultitaskConfig,
    dir: &Path,
    stop: u64,
    full: &TrainReport,
) -> TaskObjective {
    let (first, _) = train(config, dir, Some(stop));
    let (_, second) = train(config, dir, None);
    assert_eq!(second.resumed_from, Some(stop));
    assert_eq!(
        second.losses[..],
        full.losses[stop as usize..],
        "losses after resume differ"
    );
    first
}

#[test]
fn the_joint_loss_is_the_weighted_sum_of_the_task_losses() {
    let f = fixture();
    let mut config = two_tasks(&f, Strategy::Joint);
    config.tasks[0].weight = 0.7;
    config.tasks[1].weight = 2.5;
    let mut objective = config.build().unwrap();
    let batch = objective.next_batch().unwrap();
    assert_eq!(batch.parts.len(), 2, "joint batches hold every task");
    let joint = objective.loss_sum(&batch, &mut Ctx::eval()).unwrap();
    let joint = f64::from(joint.to_scalar::<f32>().unwrap()) / objective.weight(&batch) as f64;
    let mut expected = 0.0;
    for (t, b) in &batch.parts {
        let out = objective.model.forward(*t, b, &mut Ctx::eval()).unwrap();
        let kind = objective.model.specs[*t].kind;
        let sum = task_loss(kind, &out, b, None, objective.model.body.kernels()).unwrap();
        let mean = f64::from(sum.to_scalar::<f32>().unwrap()) / b.examples as f64;
        expected += config.tasks[*t].weight * mean;
    }
    assert!(
        (joint - expected).abs() < 1e-5 * expected.abs().max(1.0),
        "joint {joint} vs weighted sum {expected}"
    );
}

#[test]
fn joint_training_improves_both_tasks_and_logs_each() {
    let f = fixture();
    let config = two_tasks(&f, Strategy::Joint);
    let before = {
        let o = config.build().unwrap();
        o.metrics(&o.dev_scores().unwrap())
    };
    let out = f.root.join("joint");
    let (objective, report) = train(&config, &out, None);
    let after = objective.metrics(&objective.dev_scores().unwrap());
    for metric in ["sentiment/accuracy", "intensity/pearson"] {
        assert!(
            after[metric] > before[metric] + 0.2,
            "{metric}: {} before, {} after",
            before[metric],
            after[metric]
        );
    }
    assert!(after["sentiment/accuracy"] > 0.8, "{after:?}");
    assert!(after["intensity/pearson"] > 0.8, "{after:?}");
    let composite = (after["sentiment/accuracy"] + after["intensity/pearson"]) / 2.0;
    assert!((after["composite"] - composite).abs() < 1e-12);
    assert_eq!(report.best_value, Some(after["composite"]));
    // Every step logs each task's training loss and epochs; every evaluation each
    // task's metrics.
    assert_numbers(
        &jsonl_rows(&out.join("train.jsonl"))[0],
        &[
            "sentiment/loss",
            "intensity/loss",
            "sentiment/epoch",
            "intensity/epoch",
        ],
    );
    let evals = jsonl_rows(&out.join("eval.jsonl"));
    assert_numbers(
        evals.last().unwrap(),
        &[
            "sentiment/macro_f1",
            "intensity/spearman",
            "composite",
            "loss",
        ],
    );
}

#[test]
fn resume_is_exact_with_the_sampler_state() {
    let f = fixture();
    let mut config = two_tasks(
        &f,
        Strategy::Temperature {
            temperature: 2.0,
            cap: None,
            anneal_to: Some(1.0),
        },
    );
    config.training.max_steps = Some(24);
    config.training.eval_steps = Some(12);
    config.tasks[0].head.dropout = Some(0.2);
    let (_, full) = train(&config, &f.root.join("full"), None);
    let split = f.root.join("split");
    let first = stop_and_resume(&config, &split, 12, &full);
    assert_eq!(first.sampler.draws, 12);
    // The per-task losses show which task each step drew: the same after resume.
    let tasks_of = |dir: &Path| {
        jsonl_rows(&dir.join("train.jsonl"))
            .iter()
            .map(|v| v["sentiment/loss"].is_number())
            .collect::<Vec<_>>()
    };
    let (a, b) = (tasks_of(&f.root.join("full")), tasks_of(&split));
    assert_eq!(a, b);
    assert!(
        a.contains(&true) && a.contains(&false),
        "both tasks drawn: {a:?}"
    );
}

#[test]
fn bad_configs_fail_before_training() {
    let f = fixture();
    let err = |c: MultitaskConfig| c.build().unwrap_err().to_string();

    let mut twins = two_tasks(&f, Strategy::Joint);
    twins.tasks[1].name = "sentiment".into();
    let e = err(twins);
    assert!(e.contains("two tasks are named `sentiment`"), "{e}");

    let mut three = two_tasks(&f, Strategy::Joint);
    three.tasks[0].head.num_labels = Some(3);
    let e = err(three);
    assert!(e.contains("3 classes") && e.contains("2 labels"), "{e}");

    let mut regression_on_labels = two_tasks(&f, Strategy::Joint);
    regression_on_labels.tasks[0].head.kind = Some(TaskKind::Regression);
    let e = err(regression_on_labels);
    assert!(
        e.contains("regression") && e.contains("class labels"),
        "{e}"
    );

    let mut no_dev = two_tasks(&f, Strategy::Joint);
    no_dev.tasks[1].validation_split = "test".into();
    no_dev.training.early_stopping_patience = Some(2);
    let e = err(no_dev.clone());
    assert!(
        e.contains("task `intensity` has no dev examples") && e.contains("early stopping"),
        "{e}"
    );
    // Left out of the composite, the task needs no dev data.
    no_dev.composite = Some(vec!["sentiment".into()]);
    assert!(no_dev.build().is_ok());

    let mut bad_metric = two_tasks(&f, Strategy::Joint);
    bad_metric.training.metric_for_best = Some("intensity/accuracy".into());
    let e = err(bad_metric);
    assert!(e.contains("intensity") && e.contains("pearson"), "{e}");

    let mut per_task_key = two_tasks(&f, Strategy::Joint);
    per_task_key.training.examples = f.sentiment.clone();
    let e = err(per_task_key);
    assert!(e.contains("`examples` is set for each task"), "{e}");

    let e = err(two_tasks(
        &f,
        Strategy::Probabilities {
            probabilities: vec![1.0],
        },
    ));
    assert!(e.contains("1 probabilities for 2 tasks"), "{e}");
}

#[test]
fn the_seed_recipe_is_a_few_lines_of_toml() {
    let f = fixture();
    let text = format!(
        r#"
model = "{model}"
lr = 2e-5
strategy = {{ kind = "joint" }}

[[tasks]]
name = "sentiment"
examples = "{sentiment}"
head = {{ kind = "classification", num_labels = 2 }}

[[tasks]]
name = "intensity"
examples = "{intensity}"
head = {{ kind = "regression" }}
"#,
        model = f.model.display(),
        sentiment = f.sentiment.display(),
        intensity = f.intensity.display(),
    );
    let config: MultitaskConfig = toml::from_str(&text).unwrap();
    let objective = config.build().unwrap();
    let kinds: Vec<_> = objective.model.specs.iter().map(|s| s.kind).collect();
    assert_eq!(kinds, [TaskKind::Classification, TaskKind::Regression]);
    assert_eq!(config.train_config(&objective.tasks).lr, 2e-5);
    // Unknown keys are errors: at the top level before training, in a task when read.
    let typo: MultitaskConfig = toml::from_str(&format!("learning_rate = 1e-4\n{text}")).unwrap();
    let e = typo.build().unwrap_err().to_string();
    assert!(e.contains("unknown setting `learning_rate`"), "{e}");
    let bad_task = "[[tasks]]\nname = \"x\"\nwieght = 2";
    assert!(toml::from_str::<MultitaskConfig>(bad_task).is_err());
}

#[test]
fn each_task_exports_as_a_single_task_checkpoint_that_finetunes_further() {
    let f = fixture();
    let mut config = two_tasks(&f, Strategy::Alternating { phase: 2 });
    config.finetune = Some(FinetuneConfig {
        epochs: 1.0,
        ..FinetuneConfig::default()
    });
    config.finetune_tasks = Some(vec!["sentiment".into()]);
    let (objective, _) = train(&config, &f.root.join("alt"), None);
    let dirs = objective.export_tasks(&f.root.join("alt/tasks")).unwrap();
    common::labels_the_toy_sentences(&dirs[0]);
    // The run's own model holds every task's head: prediction points at the task models.
    let Err(err) = gradus_finetune::Predictor::load(&f.root.join("alt/model"), &Device::Cpu) else {
        panic!("a multi-task model loaded as one task's");
    };
    let err = err.to_string();
    assert!(
        err.contains("multi-task model (sentiment, intensity)") && err.contains("tasks/<task>"),
        "{err}"
    );
    // Fine-tuning the exported task starts from its trained head and encoder.
    let refine = config
        .finetune_config(&config.tasks[0], dirs[0].clone())
        .unwrap();
    assert!(
        config
            .finetune_config(&config.tasks[1], dirs[1].clone())
            .is_none()
    );
    assert_eq!(
        (refine.epochs, refine.examples.clone()),
        (1.0, f.sentiment.clone())
    );
    let start = refine.build().unwrap();
    assert!(start.model.params.fresh_names().is_empty());
    let score = start.score_task(0, &start.tasks[0].dev).unwrap();
    assert!(score.scalars["accuracy"] > 0.8, "{:?}", score.scalars);
}

/// Two heads on one Llama, each on its last real token: both tasks learn, and each
/// exports as a single-task folder that gradus-predict labels with.
#[test]
fn a_decoder_learns_two_tasks_and_exports_each() {
    let f = fixture();
    let mut config = two_tasks(&f, Strategy::Joint);
    config.training.model = common::tiny_llama(&f.sentiment, &f.root.join("llama"));
    for t in &mut config.tasks {
        t.head.pooling = None;
    }
    let (objective, _) = train(&config, &f.root.join("llama-joint"), None);
    assert!(
        objective
            .model
            .specs
            .iter()
            .all(|s| s.pooling == Pooling::Last)
    );
    let after = objective.metrics(&objective.dev_scores().unwrap());
    assert!(after["sentiment/accuracy"] > 0.8, "{after:?}");
    assert!(after["intensity/pearson"] > 0.5, "{after:?}");
    let dirs = objective
        .export_tasks(&f.root.join("llama-joint/tasks"))
        .unwrap();
    common::labels_the_toy_sentences(&dirs[0]);
}

#[test]
fn a_new_regression_head_starts_at_zero_or_at_the_mean_target() {
    let f = fixture();
    let bias = |objective: &TaskObjective, name: &str| {
        let v = objective.model.params.get(name).unwrap();
        v.as_tensor().to_vec1::<f32>().unwrap()
    };
    let mut config = two_tasks(&f, Strategy::Joint);
    // The default head: a zero bias, as HF's.
    config.tasks[1].head = task("intensity", &f.intensity).head;
    let zero = config.build().unwrap();
    assert_eq!(bias(&zero, "heads.intensity.bias"), [0.0]);

    config.tasks[1].head.bias_init = BiasInit::Mean;
    let centred = config.build().unwrap();
    let targets: Vec<f32> = centred.tasks[1]
        .train
        .iter()
        .map(|e| e.target.unwrap())
        .collect();
    let mean = targets.iter().sum::<f32>() / targets.len() as f32;
    assert!(mean > 1.0, "the toy scores average about 1.5: {mean}");
    let regression = bias(&centred, "heads.intensity.bias");
    assert!(
        (regression[0] - mean).abs() < 1e-5,
        "{regression:?} vs {mean}"
    );
    // Classification heads keep their zero bias, and refuse a mean one.
    assert_eq!(bias(&centred, "heads.sentiment.bias"), [0.0, 0.0]);
    config.tasks[0].head.bias_init = BiasInit::Mean;
    let e = config.build().unwrap_err().to_string();
    assert!(e.contains("sentiment") && e.contains("bias_init"), "{e}");
}

/// A `tokens` dataset of the toy sentences in the tokenizer of `examples` (one document
/// each, every fifth held out), with that tokenizer beside it.
fn toy_tokens(examples: &Path, root: &Path) -> PathBuf {
    use gradus_shard::{DatasetKind, DatasetWriter, Producer, Record, TokenSeq, WriterOptions};
    let tk = gradus_tokenize::load(&examples.join("tokenizer.json")).unwrap();
    let sentences = gradus_testkit::toy_sentiment_tsv(&root.join("lm.tsv"), 300, 9);
    let rows: Vec<TokenSeq> = sentences
        .iter()
        .enumerate()
        .map(|(i, s)| TokenSeq {
            doc_id: format!("d{i}"),
            input_ids: tk.encode(s.as_str(), false).unwrap().get_ids().to_vec(),
            split: if i % 5 == 4 { "validation" } else { "train" }.into(),
        })
        .collect();
    let dir = root.join("lm-tokens");
    let producer = Producer::new("test", &()).unwrap();
    let mut w = DatasetWriter::create(
        &dir,
        DatasetKind::Tokens,
        producer,
        vec![],
        WriterOptions::default(),
    )
    .unwrap();
    w.write("s0", &TokenSeq::to_batch(&rows).unwrap()).unwrap();
    w.seal().unwrap();
    std::fs::copy(examples.join("tokenizer.json"), dir.join("tokenizer.json")).unwrap();
    dir
}

/// A causal-LM task on a tokens dataset beside a classification task, on one decoder:
/// sampled steps resume bit-exactly, the LM task's held-out loss falls, and it exports
/// as a plain language model.
#[test]
fn a_decoder_keeps_language_modelling_beside_a_task_and_resumes_exactly() {
    let f = fixture();
    let tokens = toy_tokens(&f.sentiment, &f.root);
    let mut config = two_tasks(
        &f,
        Strategy::Temperature {
            temperature: 2.0,
            cap: None,
            anneal_to: None,
        },
    );
    config.tasks[1] = TaskConfig {
        name: "lm".into(),
        tokens: Some(tokens),
        weight: 0.5,
        seq_len: Some(24),
        ..TaskConfig::default()
    };
    config.tasks[0].head.pooling = None;
    config.training.model = common::tiny_llama(&f.sentiment, &f.root.join("llama"));
    config.training.max_steps = Some(60);
    config.training.eval_steps = Some(30);
    config.composite = Some(vec!["sentiment".into()]);
    let before = config.build().unwrap();
    let before = before.metrics(&before.dev_scores().unwrap());

    let (objective, full) = train(&config, &f.root.join("full"), None);
    let after = objective.metrics(&objective.dev_scores().unwrap());
    assert!(
        after["lm/loss"] < before["lm/loss"] - 0.5,
        "LM loss {} → {}",
        before["lm/loss"],
        after["lm/loss"]
    );
    assert!((after["lm/perplexity"] - after["lm/loss"].exp()).abs() < 1e-6);
    let split = f.root.join("split");
    stop_and_resume(&config, &split, 30, &full);

    let dirs = objective.export_tasks(&f.root.join("tasks")).unwrap();
    let lm = std::fs::read_to_string(dirs[1].join("config.json")).unwrap();
    assert!(
        lm.contains("\"lm\"") && !lm.contains("not a transformers model"),
        "{lm}"
    );
    let classifier = std::fs::read_to_string(dirs[0].join("config.json")).unwrap();
    assert!(
        classifier.contains("not a transformers model"),
        "{classifier}"
    );
    gradus_model::Decoder::load(&dirs[1], candle_core::Device::Cpu).unwrap();

    // An LM task needs a decoder, and reads tokens only.
    config.training.model = f.model.clone();
    let e = config.build().unwrap_err().to_string();
    assert!(e.contains("needs a decoder"), "{e}");
}
