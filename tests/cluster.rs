//! The data stages on a Ballista cluster on loopback ports (`gradus-scheduler` and two
//! `gradus-executor`s): the cc-web cleaning pipeline's output, and its tokenization, are
//! byte for byte the local run's, also when an executor is killed mid-run.

#![allow(clippy::unwrap_used)] // test helpers fail loudly by design

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use gradus_testkit::cluster::{LocalCluster, free_port};
use gradus_testkit::{run_bin, shared, succeeded, temp_file, workspace_root};

fn start_cluster(executors: usize, work: &Path) -> LocalCluster {
    LocalCluster::start(
        env!("CARGO_BIN_EXE_gradus-scheduler"),
        env!("CARGO_BIN_EXE_gradus-executor"),
        executors,
        1,
        work,
    )
}

fn clean_args<'a>(input: &'a str, out: &'a str, config: &'a str) -> Vec<&'a str> {
    vec![
        "-c",
        config,
        "--input",
        input,
        "--output",
        out,
        "--overwrite",
    ]
}

/// Every file of a cleaned output that must not depend on where the plan ran: the
/// shards (kept and rejected), byte for byte, and each manifest's shard list.
fn contents(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for entry in walk(dir) {
        let rel = entry.strip_prefix(dir).unwrap().display().to_string();
        if rel.ends_with(".parquet") {
            out.insert(rel, std::fs::read(&entry).unwrap());
        } else if rel.ends_with("manifest.json") {
            let m: serde_json::Value =
                serde_json::from_slice(&std::fs::read(&entry).unwrap()).unwrap();
            out.insert(rel, m["shards"].to_string().into_bytes());
        }
    }
    out
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files.sort();
    files
}

fn assert_same(local: &Path, remote: &Path) {
    let (a, b) = (contents(local), contents(remote));
    assert!(
        a.keys().any(|k| k.ends_with(".parquet")),
        "no shards in {}",
        local.display()
    );
    assert_eq!(
        a.keys().collect::<Vec<_>>(),
        b.keys().collect::<Vec<_>>(),
        "different files"
    );
    for (name, bytes) in &a {
        assert!(bytes == &b[name], "{name} differs from the local run's");
    }
}

#[test]
fn cc_web_cleaning_on_a_loopback_cluster_matches_the_local_run() {
    let Some(input) = shared("cc-web-sample") else {
        return;
    };
    let input = input.display().to_string();
    let config = workspace_root().join("pipelines/webtext/clean.toml");
    let config = config.display().to_string();
    let tmp = tempfile::tempdir().unwrap();
    let clean = env!("CARGO_BIN_EXE_gradus-clean");

    // Decontamination against SST-2's dev sentences runs on the executors too (the
    // index travels with the plan).
    let dev = shared("glue-sst2/dev.tsv").unwrap();
    let decontaminate = format!(
        "decontaminate={{against=[{{name=\"sst2-dev\", inputs=[{{path=\"{}\", text_field=\"sentence\"}}]}}]}}",
        dev.display()
    );
    let local = tmp.path().join("local");
    let local_s = local.display().to_string();
    let mut args = clean_args(&input, &local_s, &config);
    args.extend(["--set", &decontaminate]);
    succeeded(&run_bin(clean, &args));

    let cluster = start_cluster(2, tmp.path());
    let remote = tmp.path().join("remote");
    let remote_s = remote.display().to_string();
    let mut args = clean_args(&input, &remote_s, &config);
    let url = cluster.url();
    args.extend(["--cluster", &url, "--set", &decontaminate]);
    succeeded(&run_bin(clean, &args));
    assert_same(&local, &remote);

    // Tokenization fans out the same way: each executor encodes whole shards.
    let tokenize = env!("CARGO_BIN_EXE_gradus-tokenize");
    let root = workspace_root().join("pipelines/webtext");
    let (tk_config, enc_config) = (root.join("tokenizer.toml"), root.join("encode.toml"));
    let tk_dir = tmp.path().join("tokenizer").display().to_string();
    let train = [
        "train",
        "-c",
        tk_config.to_str().unwrap(),
        "--input",
        &local_s,
        "--output",
        &tk_dir,
    ];
    succeeded(&run_bin(tokenize, &train));
    let tokenizer = format!("{tk_dir}/tokenizer.json");
    let encode = |out: &Path, cluster: Option<&str>| {
        let out = out.display().to_string();
        let mut args = vec![
            "encode",
            "-c",
            enc_config.to_str().unwrap(),
            "-t",
            &tokenizer,
        ];
        args.extend(["--input", &local_s, "--output", &out]);
        if let Some(url) = cluster {
            args.extend(["--cluster", url]);
        }
        succeeded(&run_bin(tokenize, &args));
    };
    let (tokens_local, tokens_remote) = (tmp.path().join("tok-l"), tmp.path().join("tok-r"));
    encode(&tokens_local, None);
    encode(&tokens_remote, Some(&url));
    assert_same(&tokens_local, &tokens_remote);
    assert!(!tokens_remote.join(".work").exists());
    let stats = |dir: &Path| -> serde_json::Value {
        let m: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
        m["stats"].clone()
    };
    assert_eq!(stats(&tokens_local), stats(&tokens_remote));
    assert!(stats(&tokens_local)["tokens"].as_u64().unwrap() > 10_000);
}

/// Eight renamed copies of the cc-web sample's large page file and its two small files
/// (ten files): enough that the cluster is still busy when an executor is killed.
fn copies_of_cc_web(cc_web: &Path, dir: &Path) -> String {
    std::fs::create_dir_all(dir).unwrap();
    for entry in std::fs::read_dir(cc_web).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !name.ends_with(".jsonl.gz") {
            continue;
        }
        let copies = if std::fs::metadata(&path).unwrap().len() > 1 << 20 {
            8
        } else {
            1
        };
        for i in 0..copies {
            std::fs::copy(&path, dir.join(format!("{i}-{name}"))).unwrap();
        }
    }
    dir.display().to_string()
}

#[test]
fn killing_an_executor_mid_run_still_gives_the_local_output() {
    let Some(cc_web) = shared("cc-web-sample") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let input = copies_of_cc_web(&cc_web, &tmp.path().join("corpus"));
    let config = workspace_root().join("pipelines/webtext/clean.toml");
    let config = config.display().to_string();
    let clean = env!("CARGO_BIN_EXE_gradus-clean");
    let local = tmp.path().join("local");
    let local_s = local.display().to_string();
    succeeded(&run_bin(clean, &clean_args(&input, &local_s, &config)));

    let mut cluster = start_cluster(2, tmp.path());
    let killed = tmp.path().join("killed");
    let killed_s = killed.display().to_string();
    let url = cluster.url();
    let mut args = clean_args(&input, &killed_s, &config);
    args.extend(["--cluster", &url]);
    let run = Command::new(clean)
        .args(&args)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Kill once the first file is staged: the others are being worked on.
    let staging = killed.join(".work/staging");
    let start = std::time::Instant::now();
    while staged(&staging) == 0 {
        assert!(start.elapsed() < Duration::from_secs(120), "nothing staged");
        std::thread::sleep(Duration::from_millis(20));
    }
    cluster.kill_executor(0);
    let files = std::fs::read_dir(tmp.path().join("corpus"))
        .unwrap()
        .count();
    let left = files - staged(&staging);
    let out = run.wait_with_output().unwrap();
    succeeded(&out);
    assert!(left > 0, "every file was staged before the kill");
    assert_same(&local, &killed);
}

fn staged(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |d| {
        d.filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "parquet"))
        })
        .count()
    })
}

#[test]
fn a_cluster_nobody_runs_is_a_clear_error() {
    let (tmp, input) = temp_file("a.jsonl", "{\"text\": \"Some words here.\"}\n");
    let out = tmp.path().join("out");
    let clean_on = |cluster: &str| {
        run_bin(
            env!("CARGO_BIN_EXE_gradus-clean"),
            &[
                "--input",
                &input.display().to_string(),
                "--output",
                &out.display().to_string(),
                "--cluster",
                cluster,
            ],
        )
    };
    let url = format!("df://127.0.0.1:{}", free_port());
    let o = clean_on(&url);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(&url[5..]), "{err}");
    let o = clean_on("http://somewhere");
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("df://HOST:PORT"));
}

#[test]
fn bad_input_on_the_cluster_is_counted_or_named_as_locally() {
    let tmp = tempfile::tempdir().unwrap();
    let good = r#"{"text": "A perfectly fine line of text for the corpus."}"#;
    let jsonl = tmp.path().join("mixed.jsonl");
    let mut bytes = format!("{good}\n{{not json\n").into_bytes();
    bytes.extend(b"{\"text\": \"bad \xff utf8\"}\n");
    bytes.extend(format!("{good}\n").as_bytes());
    std::fs::write(&jsonl, bytes).unwrap();
    let jsonl_s = jsonl.display().to_string();
    let clean = env!("CARGO_BIN_EXE_gradus-clean");
    let cluster = start_cluster(1, tmp.path());
    let url = cluster.url();
    let report = |dir: &Path| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(dir.join("report.json")).unwrap()).unwrap()
    };
    let mut outputs = Vec::new();
    for remote in [false, true] {
        let out = tmp.path().join(if remote { "remote" } else { "local" });
        let out_s = out.display().to_string();
        let mut args = vec!["--input", &jsonl_s, "--output", &out_s];
        if remote {
            args.extend(["--cluster", &url]);
        }
        succeeded(&run_bin(clean, &args));
        outputs.push(report(&out)["input_errors"].clone());
    }
    assert_eq!(
        outputs[0],
        serde_json::json!({"invalid_utf8": 1, "malformed_json": 1})
    );
    assert_eq!(outputs[0], outputs[1]);

    // Under `on_error = "fail"` the error from the executor names the file and line.
    let out = tmp.path().join("fail").display().to_string();
    let o = run_bin(
        clean,
        &[
            "--input",
            &jsonl_s,
            "--output",
            &out,
            "--set",
            "on_error=\"fail\"",
            "--cluster",
            &url,
        ],
    );
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!("{jsonl_s}:2: malformed json")),
        "{err}"
    );
}
