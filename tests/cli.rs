//! The `gradus` binary as a user drives it: import, inspect, verify, bad input.

#![allow(clippy::unwrap_used)] // test helpers fail loudly by design

use std::path::Path;
use std::process::{Command, Output};

use gradus_testkit::temp_file;

fn gradus(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gradus"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn write_inputs(dir: &Path) -> String {
    let input = dir.join("raw");
    std::fs::create_dir_all(&input).unwrap();
    std::fs::write(
        input.join("a.jsonl"),
        "{\"text\": \"first\", \"url\": \"u1\"}\n{\"text\": \"second\"}\n",
    )
    .unwrap();
    std::fs::write(input.join("b.txt"), "para one\nline two\n\npara two\n").unwrap();
    input.display().to_string()
}

#[test]
fn import_inspect_verify() {
    let tmp = tempfile::tempdir().unwrap();
    let input = write_inputs(tmp.path());
    let out = tmp.path().join("docs");
    let out_s = out.to_str().unwrap();
    let run = gradus(&["import", "-i", &input, "-o", out_s]);
    assert!(run.status.success(), "{}", stderr(&run));
    assert!(stdout(&run).contains("4 documents"), "{}", stdout(&run));
    assert!(out.join("config.toml").exists());
    let metrics = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    assert!(metrics.contains("\"name\":\"docs_imported\""), "{metrics}");

    let inspect = gradus(&["inspect", out_s, "--json", "--head", "2"]);
    assert!(inspect.status.success(), "{}", stderr(&inspect));
    let summary: serde_json::Value = serde_json::from_str(&stdout(&inspect)).unwrap();
    assert_eq!(summary["kind"], "documents");
    assert_eq!(summary["rows"], 4);
    assert_eq!(summary["sealed"], true);
    assert_eq!(summary["head"][0]["id"], "a:1");
    assert_eq!(summary["head"][0]["metadata"], "{\"url\":\"u1\"}");
    assert_eq!(summary["head"].as_array().unwrap().len(), 2);

    let verify = gradus(&["verify", out_s]);
    assert!(verify.status.success(), "{}", stderr(&verify));
    for command in ["inspect", "verify"] {
        let not_one = gradus(&[command, &input]);
        let err = stderr(&not_one);
        assert!(
            !not_one.status.success()
                && err.trim() == format!("error: {input}: no dataset here (no manifest.json)"),
            "{command}: {err}"
        );
    }
    assert!(stdout(&verify).starts_with("ok:"), "{}", stdout(&verify));

    // A rerun finds the dataset complete and changes nothing.
    let before = std::fs::read(out.join("manifest.json")).unwrap();
    let again = gradus(&["import", "-i", &input, "-o", out_s]);
    assert!(again.status.success(), "{}", stderr(&again));
    assert_eq!(std::fs::read(out.join("manifest.json")).unwrap(), before);
}

#[test]
fn config_overrides_reach_the_stage() {
    let tmp = tempfile::tempdir().unwrap();
    let input = write_inputs(tmp.path());
    let cfg = tmp.path().join("import.toml");
    std::fs::write(&cfg, "text_unit = \"paragraph\"\n").unwrap();
    let out = tmp.path().join("lines");
    let run = gradus(&[
        "import",
        "-c",
        cfg.to_str().unwrap(),
        "--set",
        "text_unit=line",
        "-i",
        &input,
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(run.status.success(), "{}", stderr(&run));
    // Two JSONL records and three non-empty lines.
    assert!(stdout(&run).contains("5 documents"), "{}", stdout(&run));

    let typo = gradus(&[
        "import",
        "--set",
        "text_unt=line",
        "-i",
        &input,
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(!typo.status.success());
    assert!(stderr(&typo).contains("text_unt"), "{}", stderr(&typo));
}

#[test]
fn a_changed_config_does_not_silently_resume() {
    let tmp = tempfile::tempdir().unwrap();
    let input = write_inputs(tmp.path());
    let out = tmp.path().join("docs");
    let out_s = out.to_str().unwrap();
    assert!(
        gradus(&["import", "-i", &input, "-o", out_s])
            .status
            .success()
    );
    let changed = gradus(&[
        "import",
        "--set",
        "text_unit=line",
        "-i",
        &input,
        "-o",
        out_s,
    ]);
    assert!(!changed.status.success());
    assert!(
        stderr(&changed).contains("another configuration"),
        "{}",
        stderr(&changed)
    );
    let config = std::fs::read_to_string(out.join("config.toml")).unwrap();
    assert!(
        !config.contains("text_unit = \"line\""),
        "a refused run keeps the settings the output was written with: {config}"
    );
    let forced = gradus(&[
        "import",
        "--set",
        "text_unit=line",
        "--overwrite",
        "-i",
        &input,
        "-o",
        out_s,
    ]);
    assert!(forced.status.success(), "{}", stderr(&forced));
    assert!(stdout(&forced).contains("5 documents"));
}

/// Every file of `dir`, with its bytes.
fn contents(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(contents(&path));
        } else {
            files.push((path.clone(), std::fs::read(&path).unwrap()));
        }
    }
    files.sort();
    files
}

/// A folder holds one stage's output: another stage is refused there before writing
/// anything, even with `--overwrite`; a folder of other files takes an output only with
/// `--overwrite`, and keeps them.
#[test]
fn a_folder_is_written_by_one_stage_only() {
    let tmp = tempfile::tempdir().unwrap();
    let input = write_inputs(tmp.path());
    let docs = tmp.path().join("docs");
    let docs_s = docs.to_str().unwrap();
    assert!(
        gradus(&["import", "-i", &input, "-o", docs_s])
            .status
            .success()
    );
    let before = contents(&docs);
    let tokenize = env!("CARGO_BIN_EXE_gradus-tokenize");
    let clean = env!("CARGO_BIN_EXE_gradus-clean");
    let others: [(&str, &[&str], &str); 4] = [
        (clean, &["-i", &input], "clean"),
        (tokenize, &["train", "-i", docs_s], "tokenize-train"),
        (
            tokenize,
            &["train", "-i", docs_s, "--overwrite"],
            "tokenize-train",
        ),
        (
            tokenize,
            &["encode", "-i", docs_s, "-t", "tok.json"],
            "tokenize",
        ),
    ];
    for (bin, args, stage) in others {
        let run = Command::new(bin)
            .args(args)
            .args(["-o", docs_s])
            .output()
            .unwrap();
        let err = stderr(&run);
        assert!(
            !run.status.success()
                && err.lines().count() == 1
                && err.contains(&format!("holds the output of `import`, not of `{stage}`")),
            "{stage}: {err}"
        );
        assert_eq!(contents(&docs), before, "{stage} changed the folder");
    }

    // What is not a dataset is named for what it is by the dataset tools.
    let tok = tmp.path().join("tok");
    let trained = Command::new(tokenize)
        .args(["train", "-i", docs_s, "-o", tok.to_str().unwrap()])
        .args(["--set", "vocab_size=100"])
        .output()
        .unwrap();
    assert!(trained.status.success(), "{}", stderr(&trained));
    let inspect = gradus(&["inspect", tok.to_str().unwrap()]);
    assert!(
        stderr(&inspect).contains("is not a dataset: it holds the output of `tokenize-train`"),
        "{}",
        stderr(&inspect)
    );

    let mine = tmp.path().join("mine");
    std::fs::create_dir(&mine).unwrap();
    std::fs::write(mine.join("notes.txt"), "mine").unwrap();
    let mine_s = mine.to_str().unwrap();
    let refused = gradus(&["import", "-i", &input, "-o", mine_s]);
    assert!(
        stderr(&refused).contains("no stage's output folder (notes.txt)"),
        "{}",
        stderr(&refused)
    );
    assert_eq!(
        std::fs::read_dir(&mine).unwrap().count(),
        1,
        "nothing written"
    );
    let told = gradus(&["import", "-i", &input, "-o", mine_s, "--overwrite"]);
    assert!(told.status.success(), "{}", stderr(&told));
    assert_eq!(
        std::fs::read_to_string(mine.join("notes.txt")).unwrap(),
        "mine"
    );
}

/// `--check-config` on every stage: a valid config exits 0, an unknown key is one line
/// naming it, and neither writes anything (the output folder is never made).
#[test]
fn every_stage_checks_its_config_without_writing() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let tokenize = env!("CARGO_BIN_EXE_gradus-tokenize");
    let stages: [(&str, &[&str]); 9] = [
        (env!("CARGO_BIN_EXE_gradus"), &["import"]),
        (env!("CARGO_BIN_EXE_gradus-clean"), &[]),
        (tokenize, &["train"]),
        (tokenize, &["encode", "--tokenizer", "tokenizer.json"]),
        (tokenize, &["examples", "--tokenizer", "tokenizer.json"]),
        (env!("CARGO_BIN_EXE_gradus-pretrain"), &[]),
        (env!("CARGO_BIN_EXE_gradus-finetune"), &[]),
        (env!("CARGO_BIN_EXE_gradus-multitask"), &[]),
        (env!("CARGO_BIN_EXE_gradus-eval"), &[]),
    ];
    for (bin, head) in stages {
        let check = |extra: &[&str]| {
            Command::new(bin)
                .args(head)
                .args(["--output", out.to_str().unwrap(), "--check-config"])
                .args(extra)
                .env("RUST_LOG", "warn")
                .output()
                .unwrap()
        };
        let ok = check(&[]);
        assert!(ok.status.success(), "{bin} {head:?}: {}", stderr(&ok));
        let bad = check(&["--set", "no_such_key=1"]);
        let err = stderr(&bad);
        assert!(
            !bad.status.success() && err.lines().count() == 1 && err.contains("`no_such_key`"),
            "{bin} {head:?}: {err}"
        );
        assert!(!out.exists(), "{bin} {head:?} wrote {}", out.display());
    }
}

/// Values that parse but mean nothing are refused by `--check-config` as by a run, in
/// one line naming the setting; nothing is written. Each used to be accepted silently
/// (`vocab_size = 0` wrote a tokenizer of special tokens alone, `max_rows_per_shard = 0`
/// one document per shard).
#[test]
fn settings_with_no_meaning_are_refused_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let tokenize = env!("CARGO_BIN_EXE_gradus-tokenize");
    let clean = env!("CARGO_BIN_EXE_gradus-clean");
    let eval = env!("CARGO_BIN_EXE_gradus-eval");
    let cases: [(&str, &[&str], &str, &str); 9] = [
        (clean, &[], "dedup.verify=2", "dedup.verify 2"),
        (clean, &[], "max_rows_per_shard=0", "max_rows_per_shard"),
        (tokenize, &["train"], "vocab_size=0", "vocab_size 0"),
        (tokenize, &["train"], "sample_docs=0", "sample_docs"),
        (
            tokenize,
            &["encode", "-t", "t.json"],
            "max_rows_per_shard=0",
            "max_rows_per_shard",
        ),
        (
            tokenize,
            &["examples", "-t", "t.json"],
            "seq_len=0",
            "seq_len 0",
        ),
        (
            tokenize,
            &["examples", "-t", "t.json"],
            "task=\"glue/sst2\"",
            "task \"glue/sst2\"",
        ),
        (eval, &[], "max_windows=0", "max_windows 0"),
        (eval, &[], "baseline_order=0", "baseline_order 0"),
    ];
    for (bin, head, setting, needle) in cases {
        for check in [true, false] {
            let run = Command::new(bin)
                .args(head)
                .args(["--output", out.to_str().unwrap(), "--set", setting])
                .args(check.then_some("--check-config"))
                .output()
                .unwrap();
            let err = stderr(&run);
            assert!(
                !run.status.success() && err.lines().count() == 1 && err.contains(needle),
                "{setting} (check {check}): {err}"
            );
            assert!(!out.exists(), "{setting} wrote {}", out.display());
        }
    }
}

#[test]
fn bad_input_is_one_line_naming_file_and_line() {
    let (tmp, bad) = temp_file("bad.jsonl", "{\"text\": \"ok\"}\nnot json\n");
    let out = tmp.path().join("docs");
    let run = gradus(&[
        "import",
        "-i",
        bad.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(run.status.code(), Some(1));
    let err = stderr(&run);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("bad.jsonl:2"), "{err}");
}

#[test]
fn verify_fails_on_a_damaged_shard() {
    let tmp = tempfile::tempdir().unwrap();
    let input = write_inputs(tmp.path());
    let out = tmp.path().join("docs");
    let out_s = out.to_str().unwrap();
    assert!(
        gradus(&["import", "-i", &input, "-o", out_s])
            .status
            .success()
    );
    let shard = out.join("part-00000.parquet");
    let mut bytes = std::fs::read(&shard).unwrap();
    bytes[10] ^= 0xff;
    std::fs::write(&shard, bytes).unwrap();
    let verify = gradus(&["verify", out_s]);
    assert!(!verify.status.success());
    assert!(
        stderr(&verify).contains("part-00000.parquet"),
        "{}",
        stderr(&verify)
    );
}

#[test]
fn import_reads_compressed_json_lines_and_the_text_of_tables() {
    use std::io::Write as _;
    let tmp = tempfile::tempdir().unwrap();
    let gz = tmp.path().join("a.jsonl.gz");
    let mut enc = flate2::write::GzEncoder::new(
        std::fs::File::create(&gz).unwrap(),
        flate2::Compression::default(),
    );
    enc.write_all(b"{\"text\": \"zipped\"}\n{\"text\": \"twice\"}\n")
        .unwrap();
    enc.finish().unwrap();
    let out = tmp.path().join("docs");
    let import = gradus(&[
        "import",
        "-i",
        gz.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(import.status.success(), "{}", stderr(&import));
    let shown = stdout(&gradus(&["inspect", out.to_str().unwrap(), "--head", "2"]));
    assert!(
        shown.contains("zipped") && shown.contains("twice"),
        "{shown}"
    );
    // A table's text column, the other columns as metadata.
    let tsv = tmp.path().join("t.tsv");
    std::fs::write(&tsv, "text\tlabel\nfrom a table\t1\n").unwrap();
    let docs = tmp.path().join("t");
    let import = gradus(&[
        "import",
        "-i",
        tsv.to_str().unwrap(),
        "-o",
        docs.to_str().unwrap(),
    ]);
    assert!(import.status.success(), "{}", stderr(&import));
    let shown = stdout(&gradus(&["inspect", docs.to_str().unwrap(), "--head", "1"]));
    assert!(
        shown.contains("from a table") && shown.contains("label"),
        "{shown}"
    );
    // A table without the text column, or not of its format: one line naming it.
    std::fs::write(&tsv, "body\tlabel\nno text column\t1\n").unwrap();
    let parquet = tmp.path().join("t.parquet");
    std::fs::write(&parquet, b"").unwrap();
    for (bad, says) in [(&tsv, "no column `text`"), (&parquet, "t.parquet")] {
        let out = tmp.path().join("refused");
        let refused = gradus(&[
            "import",
            "-i",
            bad.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ]);
        assert!(!refused.status.success());
        let err = stderr(&refused);
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(err.contains(says), "{err}");
    }
}

#[test]
fn verify_reports_an_unsealed_dataset_unless_told_it_is_expected() {
    let tmp = tempfile::tempdir().unwrap();
    let input = write_inputs(tmp.path());
    let out = tmp.path().join("docs");
    let out_s = out.to_str().unwrap();
    assert!(
        gradus(&["import", "-i", &input, "-o", out_s])
            .status
            .success()
    );
    // As a run that failed before sealing leaves it.
    let path = out.join("manifest.json");
    let mut m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    m["sealed"] = serde_json::Value::Bool(false);
    std::fs::write(&path, m.to_string()).unwrap();
    let verify = gradus(&["verify", out_s]);
    assert!(!verify.status.success());
    assert!(
        stderr(&verify).contains("not sealed"),
        "{}",
        stderr(&verify)
    );
    let allowed = gradus(&["verify", "--unsealed-ok", out_s]);
    assert!(stdout(&allowed).starts_with("ok:"), "{}", stderr(&allowed));
    assert!(stdout(&allowed).contains("unsealed"));
}

#[test]
fn the_prometheus_flag_binds_or_says_why_not() {
    let tmp = tempfile::tempdir().unwrap();
    let input = write_inputs(tmp.path());
    let out = tmp.path().join("docs");
    let out_s = out.to_str().unwrap();
    let served = gradus(&[
        "import",
        "-i",
        &input,
        "-o",
        out_s,
        "--metrics-addr",
        "127.0.0.1:0",
    ]);
    assert!(served.status.success(), "{}", stderr(&served));
    let bad = gradus(&[
        "import",
        "-i",
        &input,
        "-o",
        out_s,
        "--metrics-addr",
        "nowhere",
    ]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        stderr(&bad).contains("--metrics-addr \"nowhere\""),
        "{}",
        stderr(&bad)
    );
}
