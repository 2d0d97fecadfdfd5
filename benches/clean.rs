//! Clean stage throughput and memory.
//!
//! Corpus: the cc-web sample (697 real Common Crawl pages) replicated with small random
//! word edits per copy. Under `cargo bench`:
//! 1. the filter set alone (Gopher repetition + Gopher quality + C4 + FineWeb; no
//!    normalisation, PII, language identification or dedup) on one thread over ×20 (13,940 documents), the setting datatrove's
//!    172 documents/s per core was measured in; drop counts per filter are printed;
//! 2. the full default chain (normalise + PII + filters + exact + MinHash dedup) through
//!    the `gradus-clean` binary on about 50 MB and 500 MB, with and without near dedup:
//!    documents/s, MB/s and the child's peak RSS;
//! 3. the same chain over 50 MB in 8 files locally and on a loopback Ballista cluster
//!    with 1 and 2 executors (the cluster's overhead on one machine).
//!
//! Run as a test (`cargo test --benches`) it uses ×2 and 5 MB and runs once. Results go
//! to `$CARGO_TARGET_DIR/bench-clean.json`.

#![allow(clippy::print_stdout)] // a benchmark reports on stdout

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use gradus_clean::normalize::{NormalizeConfig, UnicodeForm};
use gradus_clean::{CleanConfig, CleanRun, InputSpec, NearMode};
use gradus_shard::OpenMode;
use gradus_testkit::cluster::LocalCluster;
use serde_json::{Value, json};

const CC: &str = "cc-web-sample/CC-MAIN-20190717121559-20190717143559-00140.jsonl.gz";

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// `text` with a few words replaced, dropped or doubled (about one edit per 100 words).
fn edited(text: &str, rng: &mut u64) -> String {
    let mut words: Vec<&str> = text.split(' ').collect();
    let edits = 1 + words.len() / 100;
    for _ in 0..edits {
        if words.is_empty() {
            break;
        }
        let i = (splitmix(rng) as usize) % words.len();
        match splitmix(rng) % 3 {
            0 => words[i] = "edited",
            1 => {
                words.remove(i);
            }
            _ => words.insert(i, words[i]),
        }
    }
    words.join(" ")
}

fn cc_records() -> Option<Vec<Value>> {
    let path = gradus_testkit::shared(CC)?;
    let file = std::fs::File::open(path).ok()?;
    let reader = BufReader::new(flate2::read::MultiGzDecoder::new(file));
    Some(
        reader
            .lines()
            .map_while(Result::ok)
            .filter_map(|l| serde_json::from_str(&l).ok())
            .collect(),
    )
}

/// Writes copies of the sample (the first unchanged, the others edited) until `bytes`
/// of JSON are written or `copies` are made; returns (documents, text bytes).
fn write_corpus(records: &[Value], path: &Path, copies: usize, bytes: u64) -> (u64, u64) {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).expect("corpus file"));
    let (mut docs, mut text_bytes, mut written) = (0u64, 0u64, 0u64);
    let mut rng = 42u64;
    'copies: for copy in 0..copies {
        for r in records {
            let mut r = r.clone();
            let text = r["text"].as_str().unwrap_or_default();
            let text = if copy == 0 {
                text.to_string()
            } else {
                edited(text, &mut rng)
            };
            text_bytes += text.len() as u64;
            r["text"] = Value::String(text);
            let line = r.to_string();
            written += line.len() as u64 + 1;
            writeln!(out, "{line}").expect("write corpus");
            docs += 1;
            if written >= bytes {
                break 'copies;
            }
        }
    }
    (docs, text_bytes)
}

/// [`write_corpus`] of `bytes`, cut into `parts` files of whole lines in `dir`;
/// returns the documents.
fn split_corpus(records: &[Value], dir: &Path, parts: usize, bytes: u64) -> u64 {
    std::fs::create_dir_all(dir).expect("corpus folder");
    let whole = dir.with_extension("jsonl");
    let (docs, _) = write_corpus(records, &whole, usize::MAX, bytes);
    let text = std::fs::read_to_string(&whole).expect("corpus");
    let lines: Vec<&str> = text.lines().collect();
    for (i, chunk) in lines.chunks(lines.len().div_ceil(parts)).enumerate() {
        let mut part = chunk.join("\n");
        part.push('\n');
        std::fs::write(dir.join(format!("part-{i}.jsonl")), part).expect("corpus part");
    }
    docs
}

/// `gradus-clean` on `input` into `out` (overwritten), its summary line silenced.
fn clean_command(input: &Path, out: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gradus-clean"));
    cmd.arg("--input")
        .arg(input)
        .arg("--output")
        .arg(out)
        .arg("--overwrite")
        .stdout(std::process::Stdio::null());
    cmd
}

fn target_dir() -> PathBuf {
    PathBuf::from(std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into()))
}

/// Peak RSS of a child process in MiB, by polling its VmHWM until it exits.
fn run_child(mut cmd: Command) -> (f64, f64) {
    let start = Instant::now();
    let mut child = cmd.spawn().expect("start gradus-clean");
    let status_path = format!("/proc/{}/status", child.id());
    let mut peak_kb = 0.0f64;
    loop {
        if let Ok(s) = std::fs::read_to_string(&status_path)
            && let Some(kb) = s
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        {
            peak_kb = peak_kb.max(kb);
        }
        if let Some(status) = child.try_wait().expect("wait") {
            assert!(status.success(), "gradus-clean failed");
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    (start.elapsed().as_secs_f64(), peak_kb / 1024.0)
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let machine = gradus_testkit::machine::Machine::here();
    println!("{}", machine.line());
    let Some(records) = cc_records() else {
        println!("cc-web sample not found; nothing to measure");
        return;
    };
    let work = target_dir().join("bench-clean");
    std::fs::create_dir_all(&work).expect("bench folder");
    let mut results = vec![json!({ "machine": machine.json() })];

    // 1. The filter set on one thread.
    let copies = if bench { 20 } else { 2 };
    let corpus = work.join(format!("cc-x{copies}.jsonl"));
    let (docs, text_bytes) = write_corpus(&records, &corpus, copies, u64::MAX);
    rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build_global()
        .expect("one-thread pool");
    let mut config = CleanConfig {
        inputs: vec![InputSpec::path(corpus.to_string_lossy())],
        partitions: 1,
        ..CleanConfig::default()
    };
    // The work datatrove's run did: the four filters (C4's line cleaning included) on the
    // text as read; no normalisation, PII, language identification or dedup.
    config.normalize = NormalizeConfig {
        unicode: UnicodeForm::None,
        strip_control: false,
        whitespace: false,
        lowercase: false,
    };
    config.detect_language = false;
    config.pii.emails = false;
    config.pii.ip_addresses = false;
    config.dedup.exact = false;
    config.dedup.near = NearMode::Off;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let on_docs = |_: u64| {};
    let out = work.join("filters-out");
    let start = Instant::now();
    let report = runtime
        .block_on(
            CleanRun {
                config: &config,
                output: &out,
                mode: OpenMode::Overwrite,
                on_docs: &on_docs,
                stop_after_files: None,
                cluster: None,
            }
            .run(),
        )
        .expect("clean run");
    let secs = start.elapsed().as_secs_f64();
    let per_core = docs as f64 / secs;
    println!(
        "filters, 1 thread, {docs} docs ({:.1} MB text): {secs:.2} s, {per_core:.0} docs/s, {:.2} MB/s (datatrove 0.10.1: 172 docs/s, 0.65 MB/s per core)",
        text_bytes as f64 / 1e6,
        text_bytes as f64 / 1e6 / secs
    );
    println!("  drops per filter: {:?}", report.drops_by_filter);
    results.push(
        json!({"run": "filters_1_thread", "docs": docs, "text_mb": text_bytes as f64 / 1e6,
        "seconds": secs, "docs_per_second": per_core, "drops_by_filter": report.drops_by_filter,
        "drops": report.drops}),
    );

    // 2. The full chain through the binary, at two sizes, with and without near dedup.
    // `GRADUS_BENCH_CLEAN_MB=50,500,2000` picks other sizes (e.g. the 2 GB memory check).
    let sizes: Vec<u64> = match std::env::var("GRADUS_BENCH_CLEAN_MB") {
        Ok(list) => list
            .split(',')
            .filter_map(|s| s.trim().parse().ok())
            .collect(),
        Err(_) if bench => vec![50, 500],
        Err(_) => vec![5],
    };
    for &mb in &sizes {
        let corpus = work.join(format!("cc-{mb}mb.jsonl"));
        let (docs, text_bytes) = write_corpus(&records, &corpus, usize::MAX, mb * 1_000_000);
        for near in ["fineweb", "off"] {
            let out = work.join(format!("full-{mb}mb-{near}"));
            let mut cmd = clean_command(&corpus, &out);
            cmd.arg("--set").arg(format!("dedup.near=\"{near}\""));
            let (secs, peak) = run_child(cmd);
            let report: Value = serde_json::from_str(
                &std::fs::read_to_string(out.join("report.json")).expect("report"),
            )
            .expect("report json");
            println!(
                "full chain, near={near}, {mb} MB JSONL ({docs} docs, {:.0} MB text): {secs:.1} s, {:.0} docs/s, {:.2} MB/s, peak RSS {peak:.0} MiB, kept {}",
                text_bytes as f64 / 1e6,
                docs as f64 / secs,
                text_bytes as f64 / 1e6 / secs,
                report["docs_out"]
            );
            results.push(
                json!({"run": format!("full_{mb}mb_near_{near}"), "docs": docs,
                "text_mb": text_bytes as f64 / 1e6, "seconds": secs,
                "docs_per_second": docs as f64 / secs, "peak_rss_mib": peak,
                "docs_out": report["docs_out"], "drops_by_filter": report["drops_by_filter"]}),
            );
        }
    }
    // 3. The same chain on a Ballista cluster on loopback ports, against the local run
    // on the same files. One machine: this measures the cluster's overhead (plans sent,
    // results fetched over Flight), not a speed-up.
    let mb = if bench { 50 } else { 5 };
    let corpus = work.join(format!("cluster-{mb}mb"));
    let docs = split_corpus(&records, &corpus, 8, mb * 1_000_000);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut local_secs = None;
    for (executors, slots) in [(0, 0), (1, threads), (2, threads.div_ceil(2))] {
        let cluster = (executors > 0).then(|| {
            LocalCluster::start(
                env!("CARGO_BIN_EXE_gradus-scheduler"),
                env!("CARGO_BIN_EXE_gradus-executor"),
                executors,
                slots,
                &work.join(format!("cluster-{executors}")),
            )
        });
        let out = work.join(format!("cluster-out-{executors}"));
        let mut cmd = clean_command(&corpus, &out);
        if let Some(c) = &cluster {
            cmd.arg("--cluster").arg(c.url());
        }
        let (secs, _) = run_child(cmd);
        let base = *local_secs.get_or_insert(secs);
        let run = match executors {
            0 => "local".to_string(),
            n => format!("{n} executor(s) × {slots} slots"),
        };
        println!(
            "cluster comparison, {mb} MB in 8 files ({docs} docs), {run}: {secs:.1} s, {:.0} docs/s, {:.2}× the local time",
            docs as f64 / secs,
            secs / base
        );
        results.push(
            json!({"run": format!("cluster_{executors}_executors"), "docs": docs,
            "seconds": secs, "docs_per_second": docs as f64 / secs, "vs_local": secs / base}),
        );
    }

    let path = target_dir().join("bench-clean.json");
    std::fs::write(
        &path,
        serde_json::to_string_pretty(&results).unwrap_or_default(),
    )
    .expect("write results");
    println!("results: {}", path.display());
}
