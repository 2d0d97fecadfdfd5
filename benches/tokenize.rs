//! Tokenize stage throughput against bare `encode_batch`, and tokenizer training cost.
//!
//! Text: Tiny Shakespeare, WikiText-2 valid, SST-2 train and the AG News sample from the
//! shared datasets (about 8 MB), repeated to size. Under `cargo bench` the encode runs use
//! 32 MB and training uses 100 MB; run as a test (`cargo test --benches`) everything is
//! 1 MB and runs once. Results print as a table and go to
//! `$CARGO_TARGET_DIR/bench-tokenize.json`.

#![allow(clippy::print_stdout)] // a benchmark reports on stdout

use std::path::{Path, PathBuf};
use std::time::Instant;

use gradus_shard::{DatasetKind, DatasetWriter, Document, Producer, Record, WriterOptions};
use gradus_tokenize::{
    EncodeConfig, EncodeRun, Encoder, Tokenizer, TokenizerKind, TrainConfig, encode_dataset, train,
};
use serde_json::json;

const BATCH: usize = 1024;

fn shared_texts() -> Vec<String> {
    let mut texts = Vec::new();
    let read = |rel: &str| {
        gradus_testkit::shared(rel).map(|p| std::fs::read_to_string(p).unwrap_or_default())
    };
    if let Some(t) = read("tinyshakespeare/input.txt") {
        texts.extend(t.split("\n\n").map(str::to_string));
    }
    if let Some(t) = read("wikitext-2/wiki.valid.tokens") {
        texts.extend(t.lines().filter(|l| l.trim().len() > 1).map(str::to_string));
    }
    if let Some(t) = read("glue-sst2/train.tsv") {
        texts.extend(
            t.lines()
                .skip(1)
                .filter_map(|l| l.split('\t').next())
                .map(str::to_string),
        );
    }
    if let Some(t) = read("agnews-sample/dev.tsv") {
        texts.extend(
            t.lines()
                .filter_map(|l| l.split('\t').next())
                .map(str::to_string),
        );
    }
    texts.retain(|t| !t.trim().is_empty());
    texts
}

/// `base` repeated (each copy with distinct ids) until it holds `bytes` of text.
fn sized(base: &[String], bytes: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut total = 0;
    'outer: loop {
        for t in base {
            if total >= bytes {
                break 'outer;
            }
            total += t.len();
            out.push(t.clone());
        }
    }
    out
}

fn write_documents(dir: &Path, texts: &[String]) {
    let producer = Producer::new("bench", &()).expect("producer");
    let opts = WriterOptions {
        mode: gradus_shard::OpenMode::Overwrite,
        max_rows_per_shard: 50_000,
        ..WriterOptions::default()
    };
    let mut w =
        DatasetWriter::create(dir, DatasetKind::Documents, producer, vec![], opts).expect("writer");
    for (i, chunk) in texts.chunks(8192).enumerate() {
        let docs: Vec<Document> = chunk
            .iter()
            .enumerate()
            .map(|(j, t)| Document {
                id: format!("bench:{i}:{j}"),
                text: t.clone(),
                source: "bench".into(),
                metadata: None,
            })
            .collect();
        let key = format!("chunk{i}");
        w.write(&key, &Document::to_batch(&docs).expect("batch"))
            .expect("write");
        w.finish_source(&key).expect("finish");
    }
    w.seal().expect("seal");
}

/// Peak resident memory since the last reset, in MiB (Linux; 0 elsewhere).
fn peak_rss_mib() -> f64 {
    status_mib("VmHWM:")
}

/// Resident memory now, in MiB.
fn rss_mib() -> f64 {
    status_mib("VmRSS:")
}

fn status_mib(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn best_of<T>(reps: usize, mut f: impl FnMut() -> T) -> (f64, T) {
    let mut best = f64::INFINITY;
    let mut last = None;
    for _ in 0..reps {
        let start = Instant::now();
        let out = f();
        best = best.min(start.elapsed().as_secs_f64());
        last = Some(out);
    }
    (best, last.expect("at least one repetition"))
}

fn bare_tokens(tk: &Tokenizer, texts: &[String], fast: bool) -> u64 {
    texts
        .chunks(BATCH)
        .map(|chunk| {
            let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
            let encs = if fast {
                tk.encode_batch_fast(refs, true)
            } else {
                tk.encode_batch(refs, true)
            };
            encs.expect("encode")
                .iter()
                .map(|e| e.len() as u64)
                .sum::<u64>()
        })
        .sum()
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let machine = gradus_testkit::machine::Machine::here();
    println!("{}", machine.line());
    let base = shared_texts();
    if base.is_empty() {
        return;
    }
    let (encode_mb, train_mb, reps) = if full { (32, 100, 3) } else { (1, 1, 1) };
    let tmp = tempfile::tempdir().expect("tempdir");
    let texts = sized(&base, encode_mb << 20);
    let docs = tmp.path().join("docs");
    write_documents(&docs, &texts);
    // What verifying the input costs: hashing every upstream shard once, which is the
    // whole of the extra work, timed alone (the stage's own time drifts more than this).
    let shard_files: Vec<PathBuf> = std::fs::read_dir(&docs)
        .expect("documents")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "parquet"))
        .collect();
    let (verify_s, _) = best_of(5, || {
        for f in &shard_files {
            gradus_shard::checksum_file(f).expect("checksum");
        }
    });
    let hashed: u64 = shard_files
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum();
    println!(
        "verifying the input: {} shards, {:.1} MB, hashed in {:.2} ms",
        shard_files.len(),
        hashed as f64 / 1e6,
        verify_s * 1e3
    );
    let train_sample = sized(&base, if full { 8 << 20 } else { 1 << 20 });
    let mut results = Vec::new();
    println!(
        "{:<14} {:>12} {:>12} {:>12} {:>10} {:>12} {:>12}",
        "tokenizer", "encode_fast", "encode", "stage", "stage/bare", "verify on-off", "hash/stage"
    );
    for (name, kind, vocab) in [
        ("bpe-8k", TokenizerKind::ByteBpe, 8_192),
        ("bpe-32k", TokenizerKind::ByteBpe, 32_768),
        ("wordpiece-30k", TokenizerKind::Wordpiece, 30_522),
    ] {
        let config = TrainConfig {
            kind,
            vocab_size: vocab,
            ..TrainConfig::default()
        };
        let tk = train(&config, &train_sample).expect("train");
        let enc_config = EncodeConfig {
            eos: "none".into(),
            batch_rows: BATCH,
            ..EncodeConfig::default()
        };
        let encoder = Encoder::new(tk, &enc_config).expect("encoder");
        let run = EncodeRun {
            mode: gradus_shard::OpenMode::Overwrite,
            follow: None,
            remote: None,
        };
        let out = tmp.path().join(name);
        // Interleaved repetitions, best of each: this machine's speed drifts.
        let (mut t_fast, mut t_slow, mut t_stage) = (f64::INFINITY, f64::INFINITY, f64::INFINITY);
        let mut t_unverified = f64::INFINITY;
        let (mut tokens, mut manifest) = (0, None);
        let stage = |verify: bool| {
            gradus_shard::verify_checksums_by_default(verify);
            best_of(1, || {
                encode_dataset(&encoder, &enc_config, &docs, &out, &run, |_| {}).expect("stage")
            })
        };
        for _ in 0..reps {
            let (t, n) = best_of(1, || bare_tokens(encoder.tokenizer(), &texts, true));
            (t_fast, tokens) = (t_fast.min(t), n);
            t_slow = t_slow.min(best_of(1, || bare_tokens(encoder.tokenizer(), &texts, false)).0);
            // The stage as it runs by default (upstream checksums verified), then with
            // `--no-verify-inputs`: the difference is what verification costs.
            let (t, m) = stage(true);
            (t_stage, manifest) = (t_stage.min(t), Some(m));
            t_unverified = t_unverified.min(stage(false).0);
        }
        gradus_shard::verify_checksums_by_default(true);
        let manifest = manifest.expect("at least one repetition");
        assert_eq!(manifest.stats["tokens"].as_u64(), Some(tokens));
        let (fast, slow, stage) = (
            tokens as f64 / t_fast,
            tokens as f64 / t_slow,
            tokens as f64 / t_stage,
        );
        let bare = fast.max(slow);
        let verify_cost = t_stage / t_unverified - 1.0;
        println!(
            "{name:<14} {fast:>12.0} {slow:>12.0} {stage:>12.0} {:>9.1}% {:>12.1}% {:>11.2}%",
            100.0 * stage / bare,
            100.0 * verify_cost,
            100.0 * verify_s / t_stage
        );
        results.push(json!({
            "tokenizer": name, "tokens": tokens, "text_mb": encode_mb,
            "bare_encode_batch_fast_tokens_per_s": fast, "bare_encode_batch_tokens_per_s": slow,
            "stage_tokens_per_s": stage, "stage_vs_best_bare": stage / bare,
            "stage_unverified_tokens_per_s": tokens as f64 / t_unverified,
            "verify_inputs_cost": verify_cost, "verify_hash_seconds": verify_s,
            "verify_hash_share_of_stage": verify_s / t_stage,
        }));
    }

    let train_texts = sized(&base, train_mb << 20);
    let mut training = Vec::new();
    for (name, kind, vocab) in [
        ("bpe-8k", TokenizerKind::ByteBpe, 8_192),
        ("wordpiece-30k", TokenizerKind::Wordpiece, 30_522),
    ] {
        let config = TrainConfig {
            kind,
            vocab_size: vocab,
            ..TrainConfig::default()
        };
        reset_peak_rss();
        let before = rss_mib();
        let start = Instant::now();
        let tk = train(&config, &train_texts).expect("train");
        let secs = start.elapsed().as_secs_f64();
        let peak = peak_rss_mib();
        println!(
            "train {name} on {train_mb} MB: {secs:.1} s, peak RSS {peak:.0} MiB (text held: {before:.0} MiB before), vocab {}",
            tk.get_vocab_size(true)
        );
        training.push(json!({"tokenizer": name, "text_mb": train_mb, "seconds": secs, "peak_rss_mib": peak, "rss_before_mib": before}));
    }
    let report = json!({"machine": machine.json(), "encode": results, "train": training});
    let dir =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| PathBuf::from("target"), PathBuf::from);
    let _ = std::fs::create_dir_all(&dir);
    let _ = std::fs::write(
        dir.join("bench-tokenize.json"),
        serde_json::to_string_pretty(&report).unwrap_or_default(),
    );
}
