//! Training runs under abuse, as the data stages are tested: killed with SIGKILL between
//! checkpoints at a moment read from their own log and rerun (same model bytes, same
//! logs as an uninterrupted run), two runs on one folder, a resume under other
//! settings, `--overwrite` with a bad input or over its own input, and a damaged
//! upstream shard.

#![allow(clippy::unwrap_used)] // test helpers fail loudly by design

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{Corpus, corpus, examples, pretrain, pretrain_args, s};
use gradus_testkit::{run_bin, succeeded as ok};
use serde_json::Value;

const PRETRAIN: &str = env!("CARGO_BIN_EXE_gradus-pretrain");
const FINETUNE: &str = env!("CARGO_BIN_EXE_gradus-finetune");
const MULTITASK: &str = env!("CARGO_BIN_EXE_gradus-multitask");

fn run(bin: &str, args: &[String]) -> Output {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run_bin(bin, &args)
}

fn with(args: &[String], more: &[&str]) -> Vec<String> {
    args.iter()
        .cloned()
        .chain(more.iter().map(|a| a.to_string()))
        .collect()
}

/// One line on stderr and a failed exit.
fn refused(out: &Output) -> String {
    assert!(!out.status.success(), "expected a refusal");
    let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
    assert_eq!(err.lines().count(), 1, "{err}");
    err
}

/// The complete lines of `train.jsonl` (a line being written is not one yet).
fn train_lines(run: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(run.join("train.jsonl")).unwrap_or_default();
    let complete = text.rfind('\n').map_or("", |i| &text[..i]);
    complete
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn last_logged_step(run: &Path) -> u64 {
    train_lines(run)
        .last()
        .map_or(0, |v| v["step"].as_u64().unwrap())
}

fn newest_checkpoint(run: &Path) -> Option<u64> {
    std::fs::read_dir(run.join("checkpoints"))
        .ok()?
        .filter_map(|e| {
            let name = e.ok()?.file_name().to_string_lossy().into_owned();
            name.strip_prefix("step-")?.parse().ok()
        })
        .max()
}

/// When to kill a run.
#[derive(Clone, Copy)]
enum Moment {
    /// A few steps after its first checkpoint, before the next.
    BetweenCheckpoints,
    /// A few steps in, before any checkpoint.
    BeforeFirstCheckpoint,
}

/// Starts `bin args` writing `run`, watches its `train.jsonl` and kills it with SIGKILL
/// at `moment`, asserting that the kill landed there (steps logged past the newest
/// checkpoint, so that the resume has steps to replay). A loaded machine can starve the
/// watcher past the moment; that attempt is discarded and the run started again.
fn kill_at(bin: &str, args: &[String], run: &Path, moment: Moment) {
    for _ in 0..5 {
        if try_kill_at(bin, args, run, moment) {
            assert!(!run.join("model").exists(), "killed before the end");
            return;
        }
        std::fs::remove_dir_all(run).unwrap();
    }
    panic!("{bin} could not be killed at the moment asked in five attempts");
}

fn try_kill_at(bin: &str, args: &[String], run: &Path, moment: Moment) -> bool {
    let mut child = Command::new(bin)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let step = last_logged_step(run);
        let due = match (moment, newest_checkpoint(run)) {
            (Moment::BetweenCheckpoints, Some(c)) => step >= c + 3,
            (Moment::BetweenCheckpoints, None) => false,
            (Moment::BeforeFirstCheckpoint, _) => step >= 3,
        };
        if due {
            break;
        }
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        assert!(Instant::now() < deadline, "{bin} made no progress");
        std::thread::sleep(Duration::from_millis(1));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let (step, checkpoint) = (last_logged_step(run), newest_checkpoint(run));
    match moment {
        Moment::BetweenCheckpoints => checkpoint.is_some_and(|c| c < step),
        Moment::BeforeFirstCheckpoint => checkpoint.is_none(),
    }
}

/// A run's logs without what depends on the clock: `train.jsonl` without throughput
/// and memory, `eval.jsonl` whole, and the trainer's gauges of `metrics.jsonl` in order.
fn logs(run: &Path) -> (Vec<Value>, String, Vec<(String, f64)>) {
    let train = train_lines(run)
        .into_iter()
        .map(|mut v| {
            let o = v.as_object_mut().unwrap();
            for timed in ["tokens_per_second", "flops_per_second", "peak_rss_mib"] {
                o.remove(timed);
            }
            v
        })
        .collect();
    let eval = std::fs::read_to_string(run.join("eval.jsonl")).unwrap();
    let gauges = std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| ["train_loss", "lr", "grad_norm"].contains(&v["name"].as_str().unwrap()))
        .map(|v| {
            (
                v["name"].as_str().unwrap().to_string(),
                v["value"].as_f64().unwrap(),
            )
        })
        .collect();
    (train, eval, gauges)
}

fn model_bytes(run: &Path) -> Vec<u8> {
    std::fs::read(run.join("model/model.safetensors")).unwrap()
}

/// Runs `args` into `whole` uninterrupted, and into `killed` killed at `moment` then
/// rerun; the two end with the same model and the same logs.
fn assert_resume_is_seamless(
    bin: &str,
    args: &dyn Fn(&Path) -> Vec<String>,
    root: &Path,
    moment: Moment,
) {
    let (whole, killed) = (root.join("whole"), root.join("killed"));
    ok(&run(bin, &args(&whole)));
    kill_at(bin, &args(&killed), &killed, moment);
    ok(&run(bin, &args(&killed)));
    assert!(
        model_bytes(&killed) == model_bytes(&whole),
        "the models differ"
    );
    let (a, b) = (logs(&whole), logs(&killed));
    same_lines("train.jsonl", &a.0, &b.0);
    same_lines(
        "eval.jsonl",
        &a.1.lines().collect::<Vec<_>>(),
        &b.1.lines().collect::<Vec<_>>(),
    );
    same_lines("metrics.jsonl's training gauges", &a.2, &b.2);
}

/// The first line where two logs differ, if any, and their lengths.
fn same_lines<T: PartialEq + std::fmt::Debug>(what: &str, whole: &[T], resumed: &[T]) {
    let first = whole.iter().zip(resumed).position(|(a, b)| a != b);
    if let Some(i) = first {
        panic!(
            "{what}: line {i} differs: {:?} vs {:?}",
            whole[i], resumed[i]
        );
    }
    assert_eq!(whole.len(), resumed.len(), "{what}: lengths differ");
}

fn toy_corpus(root: &Path) -> Corpus {
    let train = root.join("train.tsv");
    gradus_testkit::toy_sentiment_tsv(&train, 400, 1);
    corpus(root, &train)
}

fn mlm_args(corpus: &Corpus, out: &Path) -> Vec<String> {
    with(
        &pretrain_args(corpus, out, 1000),
        &[
            "--set",
            "train.checkpoint_interval=250",
            "--set",
            "train.eval_interval=250",
        ],
    )
}

#[test]
fn mlm_pretraining_killed_between_checkpoints_resumes_seamlessly() {
    let tmp = tempfile::tempdir().unwrap();
    let corpus = toy_corpus(tmp.path());
    let args = |out: &Path| mlm_args(&corpus, out);
    assert_resume_is_seamless(PRETRAIN, &args, tmp.path(), Moment::BetweenCheckpoints);
}

/// The MLM run's arguments for causal-LM pretraining of the model `model` sets.
fn clm_args(corpus: &Corpus, out: &Path, model: &[&str]) -> Vec<String> {
    let mlm = mlm_args(corpus, out);
    let mut a = Vec::new();
    let mut i = 0;
    while i < mlm.len() {
        if mlm[i] == "--set" && mlm[i + 1].starts_with("bert.") {
            i += 2;
            continue;
        }
        a.push(if mlm[i] == "mlm" {
            "clm".into()
        } else {
            mlm[i].clone()
        });
        i += 1;
    }
    for setting in model {
        a.extend(["--set".to_string(), setting.to_string()]);
    }
    a
}

#[test]
fn clm_pretraining_killed_between_checkpoints_resumes_seamlessly() {
    let tmp = tempfile::tempdir().unwrap();
    let corpus = toy_corpus(tmp.path());
    let gpt = [
        "gpt.n_embd=32",
        "gpt.n_layer=1",
        "gpt.n_head=2",
        "gpt.n_positions=16",
    ];
    let args = |out: &Path| clm_args(&corpus, out, &gpt);
    assert_resume_is_seamless(PRETRAIN, &args, tmp.path(), Moment::BetweenCheckpoints);
}

/// A Llama-style decoder with grouped-query attention trains through the same stage and
/// resumes bit-exactly; its folder is HF's `LlamaForCausalLM` layout.
#[test]
fn llama_pretraining_killed_between_checkpoints_resumes_seamlessly() {
    let tmp = tempfile::tempdir().unwrap();
    let corpus = toy_corpus(tmp.path());
    let llama = [
        "llama.hidden_size=32",
        "llama.intermediate_size=64",
        "llama.num_hidden_layers=2",
        "llama.num_attention_heads=4",
        "llama.num_key_value_heads=2",
        "llama.max_position_embeddings=16",
    ];
    let args = |out: &Path| clm_args(&corpus, out, &llama);
    assert_resume_is_seamless(PRETRAIN, &args, tmp.path(), Moment::BetweenCheckpoints);
    let model = tmp.path().join("whole/model");
    let config: Value =
        serde_json::from_str(&std::fs::read_to_string(model.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["model_type"], "llama");
    assert_eq!(config["num_key_value_heads"], 2);
    let (decoder, _) = gradus_model::Decoder::load(&model, candle_core::Device::Cpu).unwrap();
    assert!(matches!(decoder, gradus_model::Decoder::Llama(_)));
}

/// A BERT-only objective on a decoder's table is one clear line.
#[test]
fn a_decoder_model_for_a_bert_objective_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let corpus = toy_corpus(tmp.path());
    let args = with(
        &mlm_args(&corpus, &tmp.path().join("run")),
        &["--set", "llama.hidden_size=32"],
    );
    let err = refused(&run(PRETRAIN, &args));
    assert!(err.contains("[llama]") && err.contains("[bert]"), "{err}");
    assert!(!tmp.path().join("run/model").exists());
}

#[test]
fn a_resume_under_other_settings_is_refused_and_the_log_level_is_not_a_setting() {
    let tmp = tempfile::tempdir().unwrap();
    let corpus = toy_corpus(tmp.path());
    let out = tmp.path().join("run");
    let args = mlm_args(&corpus, &out);
    kill_at(PRETRAIN, &args, &out, Moment::BetweenCheckpoints);
    let checkpoint = newest_checkpoint(&out);
    let config = std::fs::read_to_string(out.join("config.toml")).unwrap();
    let err = refused(&run(PRETRAIN, &with(&args, &["--set", "train.lr=5e-4"])));
    assert!(
        err.contains("train.lr") && err.contains("--overwrite"),
        "{err}"
    );
    assert_eq!(newest_checkpoint(&out), checkpoint, "nothing was touched");
    assert_eq!(
        std::fs::read_to_string(out.join("config.toml")).unwrap(),
        config
    );
    // Checkpointing more often changes nothing a run computes.
    let more = with(&args, &["-v", "--set", "train.checkpoint_interval=100"]);
    let line = ok(&run(PRETRAIN, &more));
    assert!(line.contains("1000 steps"), "{line}");
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["resumed_from"].as_u64(), checkpoint);
}

#[test]
fn two_runs_on_one_folder_are_refused_naming_the_holder() {
    let tmp = tempfile::tempdir().unwrap();
    let corpus = toy_corpus(tmp.path());
    let out = tmp.path().join("run");
    let args = with(&pretrain_args(&corpus, &out, 1_000_000), &[]);
    let mut first = Command::new(PRETRAIN)
        .args(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while last_logged_step(&out) == 0 {
        assert!(Instant::now() < deadline, "the first run made no progress");
        std::thread::sleep(Duration::from_millis(5));
    }
    let err = refused(&run(PRETRAIN, &args));
    let overwrite = refused(&run(PRETRAIN, &with(&args, &["--overwrite"])));
    first.kill().unwrap();
    first.wait().unwrap();
    for err in [err, overwrite] {
        assert!(
            err.contains(&format!("PID {}", first.id())) && err.contains(s(&out)),
            "{err}"
        );
    }
    assert!(
        out.join("checkpoints").is_dir(),
        "the refused overwrite deleted nothing"
    );
}

#[test]
fn overwrite_checks_first_and_never_deletes_its_input() {
    let tmp = tempfile::tempdir().unwrap();
    let corpus = toy_corpus(tmp.path());
    let out = tmp.path().join("run");
    let args = pretrain_args(&corpus, &out, 20);
    ok(&run(PRETRAIN, &args));
    std::fs::write(out.join("notes.txt"), "mine").unwrap();
    let model = model_bytes(&out);
    // A missing input: refused before anything is deleted.
    let err = refused(&run(
        PRETRAIN,
        &with(
            &args,
            &["--set", "data.tokens=\"/nonexistent\"", "--overwrite"],
        ),
    ));
    assert!(err.contains("/nonexistent"), "{err}");
    assert!(model_bytes(&out) == model);
    assert!(newest_checkpoint(&out).is_some());
    // Settings no run can train with: each refused by name, nothing deleted.
    for (set, named) in [
        ("train.lr=-1", "lr -1"),
        ("train.steps=0", "steps"),
        (
            "train.optimizer={kind=\"adamw\",beta2=1.0}",
            "optimizer.beta2",
        ),
        (
            "train.schedule={kind=\"wsd\",warmup_steps=0,decay_fraction=2.0,min_lr=0.0}",
            "decay_fraction",
        ),
        ("data.batch_size=0", "batch_size"),
        ("data.validation_fraction=1.5", "validation_fraction"),
        ("data.eval_windows=0", "eval_windows"),
        ("mask_prob=2", "mask_prob 2"),
    ] {
        let err = refused(&run(PRETRAIN, &with(&args, &["--set", set, "--overwrite"])));
        assert!(err.contains(named), "{set}: {err}");
        assert!(model_bytes(&out) == model, "{set} deleted the run");
    }
    // Evaluating a run into a folder that holds it, with --overwrite: refused.
    let eval = env!("CARGO_BIN_EXE_gradus-eval");
    let err = refused(&run_bin(
        eval,
        &[s(&out), "-o", s(tmp.path()), "--overwrite"],
    ));
    assert!(err.contains("holds the input"), "{err}");
    assert!(model_bytes(&out) == model);
    // A good --overwrite starts again, deleting only what gradus wrote.
    ok(&run(PRETRAIN, &with(&args, &["--overwrite"])));
    assert_eq!(
        std::fs::read_to_string(out.join("notes.txt")).unwrap(),
        "mine"
    );
    assert_eq!(train_lines(&out).len(), 20);
}

#[test]
fn a_damaged_upstream_shard_stops_the_next_stage_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let corpus = toy_corpus(tmp.path());
    let shard = corpus.tokens.join("part-00000.parquet");
    let mut bytes = std::fs::read(&shard).unwrap();
    let i = bytes.len() / 2;
    bytes[i] ^= 0x01;
    std::fs::write(&shard, bytes).unwrap();
    let out = tmp.path().join("run");
    let err = refused(&run(PRETRAIN, &pretrain_args(&corpus, &out, 5)));
    assert!(
        err.contains("part-00000.parquet") && err.contains("checksum"),
        "{err}"
    );
    assert!(!out.join("model").exists());
    // Told not to verify, the stage reads the shard as it is.
    let unverified = with(&pretrain_args(&corpus, &out, 5), &["--no-verify-inputs"]);
    let out = run(PRETRAIN, &unverified);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("checksum"), "{err}");
}

/// The fine-tuning fixture: a tiny pretrained BERT and a sentiment examples dataset.
fn sentiment(root: &Path) -> (PathBuf, PathBuf) {
    gradus_testkit::toy_sentiment_tsv(&root.join("sentiment-train.tsv"), 400, 1);
    gradus_testkit::toy_sentiment_tsv(&root.join("sentiment-dev.tsv"), 100, 2);
    let model = pretrain(root, &root.join("sentiment-train.tsv"));
    let examples = examples(&model, root, "sentiment", &[]);
    (model, examples)
}

fn finetune_args(model: &Path, examples: &Path, out: &Path) -> Vec<String> {
    [
        "--model",
        s(model),
        "--examples",
        s(examples),
        "-o",
        s(out),
        "--set",
        "epochs=12",
        "--set",
        "eval_steps=100",
        "--set",
        "lr=3e-3",
        "--set",
        "batch_size=16",
    ]
    .iter()
    .map(|a| a.to_string())
    .collect()
}

#[test]
fn finetuning_killed_between_checkpoints_or_before_the_first_resumes_seamlessly() {
    let tmp = tempfile::tempdir().unwrap();
    let (model, examples) = sentiment(tmp.path());
    let args = |out: &Path| finetune_args(&model, &examples, out);
    for (name, moment) in [
        ("between", Moment::BetweenCheckpoints),
        ("before", Moment::BeforeFirstCheckpoint),
    ] {
        let root = tmp.path().join(name);
        std::fs::create_dir_all(&root).unwrap();
        assert_resume_is_seamless(FINETUNE, &args, &root, moment);
    }
    let out = tmp.path().join("between/killed");
    let err = refused(&run(FINETUNE, &with(&args(&out), &["--set", "lr=1e-5"])));
    assert!(err.contains("lr: 0.003 -> 0.00001"), "{err}");
    // Settings no run can train with, refused before --overwrite deletes anything.
    let model = model_bytes(&out);
    for (set, named) in [
        ("lr=-1", "lr -1"),
        ("epochs=0", "epochs 0"),
        ("warmup_ratio=2", "warmup_ratio 2"),
        ("train_examples=0", "train_examples"),
        ("weight_decay=-1", "weight_decay"),
        ("head.dropout=2", "head.dropout 2"),
        ("early_stopping_patience=0", "early_stopping_patience 0"),
    ] {
        let err = refused(&run(
            FINETUNE,
            &with(&args(&out), &["--set", set, "--overwrite"]),
        ));
        assert!(err.contains(named), "{set}: {err}");
        assert!(model_bytes(&out) == model, "{set} deleted the run");
    }
}

#[test]
fn multitask_training_killed_between_checkpoints_resumes_seamlessly() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let (model, sentiment) = sentiment(root);
    gradus_testkit::toy_intensity_tsv(&root.join("intensity-train.tsv"), 400, 3);
    gradus_testkit::toy_intensity_tsv(&root.join("intensity-dev.tsv"), 100, 4);
    let intensity = examples(&model, root, "intensity", &["--set", "score=\"score\""]);
    let config = root.join("multitask.toml");
    std::fs::write(
        &config,
        format!(
            r#"
lr = 3e-3
batch_size = 16
epochs = 6
eval_steps = 100
strategy = {{ kind = "temperature", temperature = 2.0 }}

[[tasks]]
name = "sentiment"
examples = "{}"

[[tasks]]
name = "intensity"
examples = "{}"
head = {{ kind = "regression", bias_init = "mean" }}
"#,
            sentiment.display(),
            intensity.display()
        ),
    )
    .unwrap();
    let args = |out: &Path| -> Vec<String> {
        ["-c", s(&config), "--model", s(&model), "-o", s(out)]
            .iter()
            .map(|a| a.to_string())
            .collect()
    };
    assert_resume_is_seamless(MULTITASK, &args, root, Moment::BetweenCheckpoints);
}

/// A continued run (`init_from`) resumes from its own checkpoint, not from the folder it
/// started from: killed between checkpoints and rerun, it ends as an uninterrupted run.
#[test]
fn continued_pretraining_killed_between_checkpoints_resumes_seamlessly() {
    let tmp = tempfile::tempdir().unwrap();
    let train = tmp.path().join("train.tsv");
    gradus_testkit::toy_sentiment_tsv(&train, 400, 1);
    let base = pretrain(tmp.path(), &train);
    let corpus = Corpus {
        tokens: tmp.path().join("tokens"),
        tokenizer: tmp.path().join("tokenizer/tokenizer.json"),
    };
    let args = |out: &Path| {
        with(
            &mlm_args(&corpus, out),
            &[
                "--set",
                &format!("init_from=\"{}\"", base.display()),
                "--set",
                "train.eval_at_start=true",
            ],
        )
    };
    assert_resume_is_seamless(PRETRAIN, &args, tmp.path(), Moment::BetweenCheckpoints);
    let evals = logs(&tmp.path().join("killed")).1;
    assert!(evals.starts_with("{\"step\":0,"), "{evals}");
}
