//! The causal-LM data stream: windows per second reading each epoch in a seeded shuffled
//! order (shards shuffled, then each block of 8 shards' documents and windows) against
//! dataset order, side by side on one dataset, and the peak memory of reading a whole
//! shuffled epoch of a dataset 4× larger: it should stay that of one block. Each reading
//! runs in a child process of its own, so its peak RSS is its own. 64 M tokens under
//! `cargo bench`, 256 k when run as a test.

#![allow(clippy::print_stdout)] // a benchmark reports on stdout

use std::path::{Path, PathBuf};
use std::time::Instant;

use gradus_pretrain::clm::{ClmStream, StreamSpec};
use gradus_shard::{DatasetKind, DatasetWriter, Producer, Record, TokenSeq, WriterOptions};
use serde_json::{Value, json};

const SEQ_LEN: usize = 256;
const CHILD: &str = "GRADUS_STREAM_CHILD";

/// A tokens dataset of about `shards` shards of about `shard_tokens` tokens, in documents
/// of 200–2,000 pseudo-random ids (1,100 on average); the shards it has.
fn write_dataset(dir: &Path, shards: usize, shard_tokens: usize) -> usize {
    let producer = Producer::new("bench", &()).unwrap_or_else(|e| panic!("{e}"));
    let opts = WriterOptions {
        max_rows_per_shard: shard_tokens / 1100,
        ..WriterOptions::default()
    };
    let mut w = DatasetWriter::create(dir, DatasetKind::Tokens, producer, vec![], opts)
        .unwrap_or_else(|e| panic!("{e}"));
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut doc = 0usize;
    for s in 0..shards {
        let mut rows = Vec::new();
        let mut tokens = 0;
        while tokens < shard_tokens {
            let len = 200 + (next() % 1800) as usize;
            let input_ids = (0..len).map(|_| (next() % 50_000) as u32).collect();
            rows.push(TokenSeq {
                doc_id: format!("d{doc}"),
                input_ids,
                split: "train".into(),
            });
            tokens += len;
            doc += 1;
        }
        let source = format!("s{s}");
        let batch = TokenSeq::to_batch(&rows).unwrap_or_else(|e| panic!("{e}"));
        w.write(&source, &batch).unwrap_or_else(|e| panic!("{e}"));
        w.finish_source(&source).unwrap_or_else(|e| panic!("{e}"));
    }
    w.seal().unwrap_or_else(|e| panic!("{e}"));
    let ds = gradus_shard::Dataset::open(dir).unwrap_or_else(|e| panic!("{e}"));
    ds.manifest().shards.len()
}

/// This process's peak resident memory, MiB.
fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// In the child: reads one whole epoch of `dir` and prints what it measured.
fn child(arg: &str) {
    let (dir, shuffle) = arg.split_once('|').unwrap_or((arg, "true"));
    let spec = StreamSpec::whole(Some("train"));
    let before = peak_rss_mib();
    let start = Instant::now();
    let mut s = ClmStream::open(Path::new(dir), spec, None, SEQ_LEN, 7, shuffle == "true")
        .unwrap_or_else(|e| panic!("{e}"));
    let mut windows = 0u64;
    while s.cursor.epoch == 0 {
        s.next_window().unwrap_or_else(|e| panic!("{e}"));
        windows += 1;
    }
    let seconds = start.elapsed().as_secs_f64();
    let out = json!({
        "windows": windows - 1,
        "seconds": seconds,
        "windows_per_second": (windows - 1) as f64 / seconds,
        "peak_rss_mib": peak_rss_mib(),
        "rss_at_start_mib": before,
    });
    println!("{out}");
}

/// One epoch of `dir` read in a child process.
fn read_epoch(dir: &Path, shuffle: bool) -> Value {
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("{e}"));
    let out = std::process::Command::new(exe)
        .env(CHILD, format!("{}|{shuffle}", dir.display()))
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().last().unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    if let Ok(arg) = std::env::var(CHILD) {
        child(&arg);
        return;
    }
    let machine = gradus_testkit::machine::Machine::here();
    println!("{}", machine.line());
    let bench = std::env::args().any(|a| a == "--bench");
    let (shards, shard_tokens, runs) = if bench {
        (16, 1 << 20, 3)
    } else {
        (2, 1 << 16, 1)
    };
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let small: PathBuf = tmp.path().join("small");
    let large: PathBuf = tmp.path().join("large");
    let small_shards = write_dataset(&small, shards, shard_tokens);
    let large_shards = write_dataset(&large, 4 * shards, shard_tokens);
    // Side by side, alternating, on the larger dataset.
    let (mut ordered, mut shuffled) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        ordered.push(
            read_epoch(&large, false)["windows_per_second"]
                .as_f64()
                .unwrap_or(0.0),
        );
        shuffled.push(
            read_epoch(&large, true)["windows_per_second"]
                .as_f64()
                .unwrap_or(0.0),
        );
    }
    let (ordered, shuffled) = (median(ordered), median(shuffled));
    let small_epoch = read_epoch(&small, true);
    let large_epoch = read_epoch(&large, true);
    let tokens = |n: usize| n * shard_tokens;
    println!(
        "causal-LM stream, {SEQ_LEN}-token windows: {shuffled:.0} windows/s shuffled, \
         {ordered:.0} in dataset order ({:.3}×)",
        shuffled / ordered
    );
    for (name, n, files, epoch) in [
        ("1×", shards, small_shards, &small_epoch),
        ("4×", 4 * shards, large_shards, &large_epoch),
    ] {
        println!(
            "one shuffled epoch of {name} ({files} shards, {:.1} M tokens, {:.0} MiB as u32): \
             peak RSS {:.0} MiB",
            tokens(n) as f64 / 1e6,
            (tokens(n) * 4) as f64 / (1 << 20) as f64,
            epoch["peak_rss_mib"].as_f64().unwrap_or(f64::NAN)
        );
    }
    let result = json!({
        "machine": machine.json(),
        "seq_len": SEQ_LEN,
        "windows_per_second_shuffled": shuffled,
        "windows_per_second_ordered": ordered,
        "epoch_1x": small_epoch,
        "epoch_4x": large_epoch,
        "tokens_1x": tokens(shards),
        "tokens_4x": tokens(4 * shards),
        "shards_1x": small_shards,
        "shards_4x": large_shards,
    });
    println!("{result}");
}
