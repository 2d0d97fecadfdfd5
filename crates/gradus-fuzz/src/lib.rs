//! The inputs gradus reads from users, as fuzz targets. Each target takes arbitrary
//! bytes and must return, never panic: whatever the bytes, a reader yields rows or an
//! error. The same functions run under cargo-fuzz (`fuzz/`, nightly) and, from seeds
//! with random damage, under a seeded proptest in `make test` (`tests/fuzz.rs`).
//!
//! - [`raw_file`]: the raw-file readers of the clean stage and of examples encoding
//!   (JSON lines, TSV, CSV, plain text).
//! - [`manifest`]: a dataset's `manifest.json`, then reading and verifying the dataset.
//! - [`stage_config`]: a stage's TOML config, as every stage resolves it.
//! - [`pipeline`]: a pipeline file.
//! - [`tokenizer_json`]: a `tokenizer.json`, loaded and then used to encode and decode.

pub mod seeds;

use std::path::Path;

use gradus::cli::StageArgs;
use gradus_clean::ingest::{ErrorCounts, InputSpec, OnError, expand, read_file};
use gradus_shard::{Dataset, ReadOptions};
use serde::de::DeserializeOwned;

/// The raw formats [`raw_file`] reads, by extension.
pub const RAW_FORMATS: &[&str] = &["jsonl", "tsv", "csv", "txt"];

/// `bytes` as a raw input file with extension `ext`, read by the clean stage's reader
/// (records skipped, then failing on the first bad one) and by the examples reader.
pub fn raw_file(ext: &str, bytes: &[u8]) {
    let dir = scratch();
    let path = dir.path().join(format!("input.{ext}"));
    write(&path, bytes);
    if let Ok((files, _)) = expand(&[InputSpec::path(path.display().to_string())]) {
        for file in &files {
            for on_error in [OnError::Skip, OnError::Fail] {
                let _ = read_file(file, 64, on_error, &ErrorCounts::default(), &mut |_| true);
            }
        }
    }
    for header in [true, false] {
        let _ = gradus_tokenize::read_table(&path, header);
    }
}

/// `bytes` as a dataset's `manifest.json` beside one real shard: opened, read and
/// verified.
pub fn manifest(bytes: &[u8]) {
    let dir = scratch();
    seeds::write_dataset(dir.path());
    write(&dir.path().join(gradus_shard::MANIFEST_FILE), bytes);
    let Ok(ds) = Dataset::open(dir.path()) else {
        return;
    };
    for batch in ds.batches(&ReadOptions::default()) {
        if batch.is_err() {
            break;
        }
    }
    let _ = ds.verify();
}

/// `bytes` as the TOML config of every stage, resolved as the binaries resolve it.
pub fn stage_config(bytes: &[u8]) {
    let dir = scratch();
    let path = dir.path().join("config.toml");
    write(&path, bytes);
    let args = StageArgs {
        config: Some(path),
        ..StageArgs::default()
    };
    resolve::<gradus_clean::CleanConfig>(&args);
    resolve::<gradus_tokenize::TrainConfig>(&args);
    resolve::<gradus_tokenize::EncodeConfig>(&args);
    resolve::<gradus_tokenize::ExamplesConfig>(&args);
    resolve::<gradus_clean::import::ImportConfig>(&args);
    resolve::<gradus_pretrain::PretrainConfig>(&args);
    resolve::<gradus_finetune::FinetuneConfig>(&args);
    resolve::<gradus_finetune::MultitaskConfig>(&args);
    resolve::<gradus_eval::stage::EvalConfig>(&args);
}

fn resolve<T: DeserializeOwned>(args: &StageArgs) {
    let _ = args.resolve_config::<T>();
}

/// `bytes` as a pipeline file, planned.
pub fn pipeline(bytes: &[u8]) {
    let dir = scratch();
    let path = dir.path().join("pipeline.toml");
    write(&path, bytes);
    let _ = gradus_pipeline::Plan::load(&path, Some(&dir.path().join("run")), &[]);
}

/// `bytes` as a `tokenizer.json`: loaded, and if that succeeds, used.
pub fn tokenizer_json(bytes: &[u8]) {
    let dir = scratch();
    let path = dir.path().join("tokenizer.json");
    write(&path, bytes);
    let Ok(tk) = gradus_tokenize::load(&path) else {
        return;
    };
    if let Ok(enc) = tk.encode("Hello, world! A second sentence.", true) {
        let _ = tk.decode(enc.get_ids(), true);
    }
}

fn scratch() -> tempfile::TempDir {
    tempfile::tempdir().unwrap_or_else(|e| panic!("a scratch folder: {e}"))
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
}
