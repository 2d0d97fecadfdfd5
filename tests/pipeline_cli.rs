//! `gradus run`: the demo pipeline end to end (reduced), incremental reruns, a stage that
//! follows a slow upstream, failures, and resuming after Ctrl-C.

#![allow(clippy::unwrap_used)] // test helpers fail loudly by design

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use gradus_record::{RunKind, RunRecord};
use gradus_testkit::{run_bin, succeeded};
use serde_json::Value;

const GRADUS: &str = env!("CARGO_BIN_EXE_gradus");
const GRADUS_EVAL: &str = env!("CARGO_BIN_EXE_gradus-eval");

/// `gradus-eval` on one checkpoint folder (`spec`: the `checkpoints` entry's keys).
fn eval_checkpoint(spec: &str, output: &Path) -> Value {
    let set = format!("checkpoints=[{{ {spec} }}]");
    succeeded(&run_bin(
        GRADUS_EVAL,
        &["--set", &set, "--output", output.to_str().unwrap()],
    ));
    read_json(&output.join("report.json"))
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// Stage name → status in the run folder's `pipeline.json`.
fn statuses(run: &Path) -> Vec<(String, String)> {
    read_json(&run.join("pipeline.json"))["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["stage"].as_str().unwrap().to_string(),
                s["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn status_of(run: &Path, stage: &str) -> String {
    statuses(run)
        .into_iter()
        .find(|(s, _)| s == stage)
        .unwrap_or_else(|| panic!("no stage {stage}"))
        .1
}

fn sealed(dir: &Path) -> bool {
    read_json(&dir.join("manifest.json"))["sealed"] == Value::Bool(true)
}

fn stage_table<'a>(pipeline: &'a mut toml::Table, name: &str) -> &'a mut toml::Table {
    pipeline["stage"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .map(|s| s.as_table_mut().unwrap())
        .find(|s| s["name"].as_str() == Some(name))
        .unwrap_or_else(|| panic!("no stage {name}"))
}

fn set(pipeline: &mut toml::Table, stage: &str, key: &str, value: toml::Value) {
    let t = stage_table(pipeline, stage);
    let sets = t
        .entry("set")
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    sets.as_table_mut().unwrap().insert(key.into(), value);
}

fn run_pipeline(file: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["run", file.to_str().unwrap()];
    args.extend_from_slice(extra);
    run_bin(GRADUS, &args)
}

/// The shipped demo, smaller: fewer pretraining steps and epochs, its tokenizer config
/// copied so the test can change it.
fn reduced_demo(dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string("pipelines/demo.toml").unwrap();
    let mut p: toml::Table = toml::from_str(&text).unwrap();
    p.insert(
        "run_dir".into(),
        dir.join("run").display().to_string().into(),
    );
    let tok = dir.join("tokenizer.toml");
    std::fs::copy("pipelines/demo/tokenizer.toml", &tok).unwrap();
    stage_table(&mut p, "tokenizer").insert("config".into(), tok.display().to_string().into());
    for (key, value) in [
        ("train.steps", 600),
        ("train.eval_interval", 300),
        ("train.checkpoint_interval", 300),
        ("train.schedule.warmup_steps", 60),
    ] {
        set(&mut p, "pretrain", key, value.into());
    }
    set(&mut p, "finetune", "epochs", 3.into());
    set(&mut p, "finetune-scratch", "epochs", 3.into());
    set(&mut p, "multitask", "epochs", 3.into());
    let file = dir.join("demo.toml");
    std::fs::write(&file, toml::to_string(&p).unwrap()).unwrap();
    file
}

fn section<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["sections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no section {name} in {report}"))
}

#[test]
fn demo_pipeline_runs_end_to_end_then_reruns_only_what_changed() {
    let dir = tempfile::tempdir().unwrap();
    let file = reduced_demo(dir.path());
    let run = dir.path().join("run");

    let out = succeeded(&run_pipeline(&file, &[]));
    assert!(out.contains("report: "), "{out}");
    for (stage, status) in statuses(&run) {
        assert_eq!(status, "done", "{stage}");
    }
    for ds in [
        "documents",
        "tokens",
        "sentiment-examples",
        "rating-examples",
    ] {
        assert!(sealed(&run.join(ds)), "{ds} is not sealed");
    }
    let report = read_json(&run.join("eval/report.json"));
    let pre = section(&report, "pretrain");
    let (acc, unigram) = (
        pre["metrics"]["mlm_accuracy"].as_f64().unwrap(),
        pre["baselines"]["unigram"]["mlm_accuracy"]
            .as_f64()
            .unwrap(),
    );
    assert!(
        acc.is_finite() && acc > unigram,
        "MLM accuracy {acc} vs unigram {unigram}"
    );
    for (name, metric, floor) in [
        ("finetune", "accuracy", 0.6),
        ("multitask/sentiment", "accuracy", 0.6),
        ("multitask/rating", "pearson", 0.3),
    ] {
        let v = section(&report, name)["metrics"][metric].as_f64().unwrap();
        assert!(v.is_finite() && v > floor, "{name} {metric} = {v}");
    }
    for s in report["sections"].as_array().unwrap() {
        for p in s["plots"].as_array().unwrap() {
            let svg = run.join("eval").join(p["file"].as_str().unwrap());
            assert!(std::fs::read_to_string(&svg).unwrap().starts_with("<svg"));
        }
    }
    assert!(run.join("eval/report.md").is_file());

    // Every training stage and the evaluation leave a typed run record, and the
    // runner's summary takes each stage's figure from it.
    let figures: Vec<(String, Value)> = read_json(&run.join("pipeline.json"))["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["stage"].as_str().unwrap().to_string(),
                s["figure"].clone(),
            )
        })
        .collect();
    let figure = |stage: &str| {
        let f = &figures.iter().find(|(s, _)| s == stage).unwrap().1;
        f.as_str()
            .unwrap_or_else(|| panic!("{stage}: no figure"))
            .to_string()
    };
    for (stage, kind) in [
        ("pretrain", RunKind::Pretrain),
        ("finetune", RunKind::Finetune),
        ("multitask", RunKind::Multitask),
        ("eval", RunKind::Eval),
    ] {
        let r = RunRecord::require(&run.join(stage)).unwrap();
        assert_eq!(r.kind, kind, "{stage}");
        assert!(r.finished && !r.figures.is_empty(), "{stage}: {r:?}");
        if matches!(kind, RunKind::Finetune | RunKind::Multitask) {
            assert_eq!(figure(stage), r.best_line().unwrap(), "{stage}");
        }
    }
    let pre = RunRecord::require(&run.join("pretrain")).unwrap();
    assert_eq!(
        figure("pretrain"),
        format!(
            "validation loss {:.4}, MLM accuracy {:.3}",
            pre.figures["loss"], pre.figures["mlm_accuracy"]
        )
    );
    // The same fine-tuning from random weights stands beside the pretrained run.
    // Each section says where its run started: the chain base model → fine-tuned.
    let from = section(&report, "finetune")["started_from"]
        .as_str()
        .unwrap();
    assert_eq!(Path::new(from), run.join("pretrain/model"));
    assert!(
        section(&report, "finetune-scratch")
            .get("started_from")
            .is_none()
    );
    let scratch = section(&report, "finetune-scratch")["metrics"].clone();
    assert_eq!(
        section(&report, "finetune")["baselines"]["random init"],
        scratch
    );
    assert_eq!(
        RunRecord::require(&run.join("finetune-scratch"))
            .unwrap()
            .facts
            .base_model,
        None
    );
    let eval = RunRecord::require(&run.join("eval")).unwrap();
    let finetune_accuracy = section(&report, "finetune")["metrics"]["accuracy"].as_f64();
    assert_eq!(
        eval.figures.get("finetune/accuracy").copied(),
        finetune_accuracy
    );

    // The fine-tuned checkpoint alone, on the same examples, scores what its run did.
    let alone = eval_checkpoint(
        &format!(
            "model = \"{}\", examples = \"{}\"",
            run.join("finetune/model").display(),
            run.join("sentiment-examples").display()
        ),
        &dir.path().join("checkpoint-eval"),
    );
    assert_eq!(
        section(&alone, "model")["metrics"]["accuracy"],
        section(&report, "finetune")["metrics"]["accuracy"]
    );

    // Nothing changed: every stage is skipped.
    succeeded(&run_pipeline(&file, &[]));
    for (stage, status) in statuses(&run) {
        assert_eq!(status, "skipped", "{stage}");
    }

    // A tokenizer setting changed: the tokenizer and everything after it would rerun,
    // not clean (the rerun itself is tested on a smaller pipeline below).
    let tok = dir.path().join("tokenizer.toml");
    let text = std::fs::read_to_string(&tok).unwrap();
    std::fs::write(&tok, text.replace("vocab_size = 1000", "vocab_size = 900")).unwrap();
    let plan = succeeded(&run_pipeline(&file, &["--dry-run"]));
    let line = |stage: &str| {
        plan.lines()
            .find(|l| l.starts_with(&format!("{stage} ")))
            .unwrap_or_else(|| panic!("no {stage} in {plan}"))
            .to_string()
    };
    assert!(line("documents").contains("up to date"), "{plan}");
    assert!(
        line("tokenizer").contains("settings or input files changed"),
        "{plan}"
    );
    for stage in [
        "tokens",
        "sentiment-examples",
        "pretrain",
        "finetune",
        "multitask",
        "eval",
    ] {
        assert!(line(stage).contains("would run"), "{plan}");
    }
    for (stage, status) in statuses(&run) {
        assert_eq!(status, "skipped", "a dry run ran {stage}");
    }
}

/// A pipeline's first stages: `text` (the given stage table, a documents dataset) and
/// `tok`, a character tokenizer trained on it.
fn text_and_char_tokenizer(run: &Path, text: &str) -> String {
    format!(
        r#"run_dir = "{}"
{text}
[[stage]]
name = "tok"
kind = "tokenizer"
config = "pipelines/shakespeare-char/tokenizer.toml"
input = ["@text"]
"#,
        run.display()
    )
}

const IMPORT_REVIEWS: &str = r#"[[stage]]
name = "text"
kind = "import"
input = ["data/reviews/reviews.txt"]"#;

/// Imports a small text and trains a character tokenizer: `dir/setup/tok/tokenizer.json`.
fn char_tokenizer(dir: &Path) -> PathBuf {
    let file = dir.join("setup.toml");
    std::fs::write(
        &file,
        text_and_char_tokenizer(&dir.join("setup"), IMPORT_REVIEWS),
    )
    .unwrap();
    succeeded(&run_pipeline(&file, &[]));
    dir.join("setup/tok/tokenizer.json")
}

fn shard_count(dir: &Path) -> usize {
    std::fs::read_to_string(dir.join("manifest.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        .map_or(0, |m| m["shards"].as_array().map_or(0, Vec::len))
}

fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn encode_and_pretraining_follow_an_upstream_that_is_still_writing() {
    let dir = tempfile::tempdir().unwrap();
    let tokenizer = char_tokenizer(dir.path());
    // The upstream reads a named pipe, so it is exactly as slow as this test writes.
    let fifo = dir.path().join("docs.jsonl");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let import = dir.path().join("import.toml");
    std::fs::write(&import, "max_rows_per_shard = 20\nbatch_rows = 20\n").unwrap();
    let encode = dir.path().join("encode.toml");
    std::fs::write(&encode, "validation_fraction = 0.2\n").unwrap();
    let run = dir.path().join("run");
    let file = dir.path().join("stream.toml");
    std::fs::write(
        &file,
        format!(
            r#"run_dir = "{run}"
[[stage]]
name = "docs"
kind = "import"
config = "{import}"
input = ["{fifo}"]
[[stage]]
name = "tokens"
kind = "encode"
config = "{encode}"
input = ["@docs"]
tokenizer = "{tok}"
[[stage]]
name = "pretrain"
kind = "pretrain"
config = "pipelines/shakespeare-char/pretrain.toml"
start_after_shards = 2
threads = 1
input = ["@tokens"]
tokenizer = "{tok}"
[stage.set]
"data.validation_fraction" = 0.0
"data.seq_len" = 8
"data.eval_windows" = 4
"gpt.n_layer" = 1
"gpt.n_embd" = 16
"gpt.n_head" = 2
"train.steps" = 20
"train.eval_interval" = 20
"train.schedule.warmup_steps" = 2
"#,
            run = run.display(),
            import = import.display(),
            fifo = fifo.display(),
            encode = encode.display(),
            tok = tokenizer.display()
        ),
    )
    .unwrap();
    let runner = Command::new(GRADUS)
        .args(["run", file.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let line = |i: usize| format!("{{\"text\": \"review number {i} was quite good\"}}\n");
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let fifo_path = fifo.clone();
    let writer = std::thread::spawn(move || {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(&fifo_path)
            .unwrap();
        for i in 0..100 {
            f.write_all(line(i).as_bytes()).unwrap();
        }
        f.flush().unwrap();
        rx.recv().unwrap();
        for i in 100..200 {
            f.write_all(line(i).as_bytes()).unwrap();
        }
    });
    let tokens = run.join("tokens");
    wait_for("the first token shard", Duration::from_secs(120), || {
        shard_count(&tokens) > 0
    });
    // Pretraining starts once two token shards exist, while the documents are open.
    let events = run.join("pipeline.jsonl");
    wait_for("pretraining to start", Duration::from_secs(120), || {
        std::fs::read_to_string(&events).is_ok_and(|t| {
            t.lines()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .any(|e| e["stage"] == "pretrain" && e["event"] == "started")
        })
    });
    assert!(
        !sealed(&run.join("docs")),
        "the upstream sealed before its followers started"
    );
    tx.send(()).unwrap();
    writer.join().unwrap();
    let out = runner.wait_with_output().unwrap();
    succeeded(&out);
    assert!(sealed(&run.join("docs")) && sealed(&tokens));
    assert_eq!(status_of(&run, "pretrain"), "done");
    let rows = |d: &Path| -> u64 {
        read_json(&d.join("manifest.json"))["shards"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["rows"].as_u64().unwrap())
            .sum()
    };
    assert_eq!(rows(&run.join("docs")), 200);
    assert_eq!(rows(&tokens), 200);
    assert!(shard_count(&run.join("docs")) >= 10);
}

#[test]
fn a_failed_stage_is_named_and_its_downstream_does_not_run() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let file = dir.path().join("bad.toml");
    let missing = dir.path().join("missing.txt");
    let text = format!(
        "[[stage]]\nname = \"text\"\nkind = \"import\"\ninput = [\"{}\"]",
        missing.display()
    );
    std::fs::write(&file, text_and_char_tokenizer(&run, &text)).unwrap();
    let out = run_pipeline(&file, &[]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let last = err.lines().last().unwrap_or("");
    assert!(
        last.starts_with("error: stage `text` failed")
            && last.contains("missing.txt")
            && last.contains("text.log"),
        "{err}"
    );
    assert_eq!(status_of(&run, "text"), "failed");
    assert_eq!(status_of(&run, "tok"), "not_run");

    let refused = |name: &str, text: &str| {
        let file = dir.path().join(name);
        std::fs::write(&file, text).unwrap();
        let out = run_pipeline(&file, &[]);
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let err = refused(
        "ref.toml",
        "[[stage]]\nname = \"a\"\nkind = \"eval\"\ninput = [\"@nowhere\"]\n",
    );
    assert!(err.contains("no stage called `nowhere`"), "{err}");
    // A stage config's relative path is read from the folder gradus runs in (here the
    // checkout), which the refusal names.
    let err = refused(
        "config.toml",
        "[[stage]]\nname = \"a\"\nkind = \"clean\"\nconfig = \"pipelines/nowhere.toml\"\n",
    );
    let here = std::env::current_dir().unwrap();
    assert!(
        err.contains("stage `a`: config pipelines/nowhere.toml: no such file")
            && err.contains(&here.display().to_string()),
        "{err}"
    );
}

/// A tiny causal LM pipeline: `first` (a stage named `text`) → char tokenizer → tokens
/// (with the encode config `encode`) → pretrain, checkpointing often.
fn tiny_lm(dir: &Path, first: &str, encode: &Path, steps: u32) -> PathBuf {
    let file = dir.join("lm.toml");
    std::fs::write(
        &file,
        format!(
            r#"{head}
[[stage]]
name = "tokens"
kind = "encode"
config = "{encode}"
input = ["@text"]
tokenizer = "@tok"
[[stage]]
name = "pretrain"
kind = "pretrain"
config = "pipelines/shakespeare-char/pretrain.toml"
threads = 1
input = ["@tokens"]
tokenizer = "@tok/tokenizer.json"
[stage.set]
"gpt.n_layer" = 1
"gpt.n_embd" = 32
"gpt.n_head" = 2
"data.seq_len" = 32
"data.eval_windows" = 64
"train.steps" = {steps}
"train.checkpoint_interval" = 10
"train.eval_interval" = 50
"train.schedule.warmup_steps" = 10
[[stage]]
name = "eval"
kind = "eval"
input = ["@pretrain"]
set = {{ sample_tokens = 20, max_windows = 64 }}
"#,
            head = text_and_char_tokenizer(&dir.join("run"), first),
            encode = encode.display(),
        ),
    )
    .unwrap();
    file
}

#[test]
fn changing_the_encode_config_reruns_it_and_what_follows_but_not_clean() {
    let dir = tempfile::tempdir().unwrap();
    let encode = dir.path().join("encode.toml");
    std::fs::copy("pipelines/shakespeare-char/encode.toml", &encode).unwrap();
    let clean = r#"[[stage]]
name = "text"
kind = "clean"
config = "pipelines/demo/clean.toml"
watch = ["data"]"#;
    let file = tiny_lm(dir.path(), clean, &encode, 20);
    let run = dir.path().join("run");
    succeeded(&run_pipeline(&file, &[]));
    for (stage, status) in statuses(&run) {
        assert_eq!(status, "done", "{stage}");
    }
    let text = std::fs::read_to_string(&encode).unwrap();
    assert!(text.contains("validation_fraction = 0.0"), "{text}");
    std::fs::write(
        &encode,
        text.replace("validation_fraction = 0.0", "validation_fraction = 0.1"),
    )
    .unwrap();
    succeeded(&run_pipeline(&file, &[]));
    let got: Vec<(String, String)> = statuses(&run);
    let want = [
        ("text", "skipped"),
        ("tok", "skipped"),
        ("tokens", "done"),
        ("pretrain", "done"),
        ("eval", "done"),
    ];
    assert_eq!(
        got,
        want.map(|(a, b)| (a.to_string(), b.to_string())).to_vec()
    );
    // The causal model's report: perplexity and bits per byte beside a Kneser-Ney
    // trigram on the same characters, and a sample.
    let report = read_json(&run.join("eval/report.json"));
    let pre = section(&report, "pretrain");
    let vocab = read_json(&run.join("tok/tokenizer.json"))["model"]["vocab"]
        .as_object()
        .unwrap()
        .len() as f64;
    for m in [&pre["metrics"], &pre["baselines"]["kneser-ney-3"]] {
        let ppl = m["perplexity"].as_f64().unwrap();
        assert!(
            ppl > 1.0 && ppl < vocab,
            "perplexity {ppl}, vocabulary {vocab}"
        );
        let bpb = m["bits_per_byte"].as_f64().unwrap();
        assert!(
            bpb > 0.0 && bpb < vocab.log2() + 0.01,
            "bits per byte {bpb}"
        );
    }
    assert_eq!(pre["sample"].as_str().map(|t| t.chars().count()), Some(20));
    // The causal checkpoint alone, on the validation split the new encode config made.
    let alone = eval_checkpoint(
        &format!(
            "model = \"{}\", tokens = \"{}\", seq_len = 32",
            run.join("pretrain/model").display(),
            run.join("tokens").display()
        ),
        &dir.path().join("checkpoint-eval"),
    );
    let s = section(&alone, "model");
    assert!(
        s["data"].as_str().unwrap().contains("validation split"),
        "{s}"
    );
    let ppl = s["metrics"]["perplexity"].as_f64().unwrap();
    assert!(ppl > 1.0 && ppl < vocab, "{s}");
    assert!(
        s["baselines"]["kneser-ney-3"]["perplexity"]
            .as_f64()
            .unwrap()
            > 1.0
    );
    // Deleting an output is a change too.
    std::fs::remove_file(run.join("tok/tokenizer.json")).unwrap();
    succeeded(&run_pipeline(&file, &[]));
    assert_eq!(status_of(&run, "text"), "skipped");
    assert_eq!(status_of(&run, "tok"), "done");

    // A mistyped key: every stage checks its config before any starts, so nothing runs
    // and no output is touched, in a dry run as in a run.
    let record = std::fs::read(run.join("pretrain/run.json")).unwrap();
    let events = std::fs::read(run.join("pipeline.jsonl")).unwrap();
    let typo: &[&str] = &["--set", "pretrain.train.stepz=3"];
    for extra in [typo, &[typo, &["--dry-run"]].concat()] {
        let out = run_pipeline(&file, extra);
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err.lines().last().unwrap_or("");
        assert!(
            !out.status.success()
                && last.starts_with("error: stage `pretrain`: ")
                && last.contains("`stepz`")
                && last.ends_with("`train`; no stage was started"),
            "{err}"
        );
    }
    assert_eq!(
        std::fs::read(run.join("pretrain/run.json")).unwrap(),
        record
    );
    assert_eq!(std::fs::read(run.join("pipeline.jsonl")).unwrap(), events);
    // A setting that only the stage's run refuses: it fails, and its earlier output is
    // kept aside until a run of it finishes well.
    let out = run_pipeline(&file, &["--set", "pretrain.train.metric_for_best=bogus"]);
    let kept = run.join(".gradus/previous/pretrain");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains(&format!("kept in {}", kept.display())),
        "{err}"
    );
    assert_eq!(std::fs::read(kept.join("run.json")).unwrap(), record);
    succeeded(&run_pipeline(&file, &[]));
    assert!(run.join("pretrain/run.json").is_file() && !kept.exists());
    // One left by a run killed after its stage was done goes at the next run.
    std::fs::create_dir_all(&kept).unwrap();
    succeeded(&run_pipeline(&file, &[]));
    assert!(!kept.exists());
    // A second runner in the folder is refused while the first holds it: it would move
    // the outputs the first is writing.
    let held = gradus_shard::FolderLock::take(&run.join(".gradus")).unwrap();
    let out = run_pipeline(&file, &["--force", "pretrain"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success()
            && err.contains("another `gradus run`")
            && err.contains(&format!("PID {}", std::process::id())),
        "{err}"
    );
    assert!(run.join("pretrain/run.json").is_file() && !kept.exists());
    drop(held);
}

#[test]
fn ctrl_c_stops_the_pipeline_and_a_rerun_resumes_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = tiny_lm(
        dir.path(),
        IMPORT_REVIEWS,
        Path::new("pipelines/shakespeare-char/encode.toml"),
        400,
    );
    let run = dir.path().join("run");
    let runner = Command::new(GRADUS)
        .args(["run", file.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let checkpoints = run.join("pretrain/checkpoints");
    wait_for("a pretraining checkpoint", Duration::from_secs(180), || {
        std::fs::read_dir(&checkpoints).is_ok_and(|mut d| {
            d.any(|e| e.is_ok_and(|e| e.file_name().to_string_lossy().starts_with("step-")))
        })
    });
    let pid = runner.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success()
    );
    let out = runner.wait_with_output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("interrupted"));
    assert_eq!(status_of(&run, "pretrain"), "interrupted");

    let out = run_pipeline(&file, &[]);
    succeeded(&out);
    assert_eq!(status_of(&run, "tokens"), "skipped");
    assert_eq!(status_of(&run, "pretrain"), "done");
    let reason = read_json(&run.join("pipeline.json"))["stages"][3]["reason"].clone();
    assert_eq!(reason, "resuming an interrupted run");
    let report = read_json(&run.join("pretrain/report.json"));
    assert!(
        report["resumed_from"].as_u64().is_some_and(|s| s >= 10),
        "{report}"
    );
    assert_eq!(report["steps"], 400);

    // --from reruns a stage and what follows it; --dry-run only says so.
    let plan = succeeded(&run_pipeline(&file, &["--dry-run", "--from", "tokens"]));
    let status = |stage: &str| {
        plan.lines()
            .find(|l| l.starts_with(&format!("{stage} ")))
            .unwrap()
            .to_string()
    };
    assert!(status("tok").contains("up to date"), "{plan}");
    assert!(status("tokens").contains("forced"), "{plan}");
    assert!(status("pretrain").contains("forced"), "{plan}");
}
