//! Documents to a `tokens` dataset: each upstream shard is one source, encoded in
//! parallel batches (`encode_batch_fast`, on the tokenizers' rayon pool) and written as it
//! goes. In follow mode the stage encodes upstream shards as they are committed.

use std::path::Path;
use std::time::Duration;

use arrow::array::{Array, AsArray};
use arrow::record_batch::RecordBatch;
use gradus_shard::{
    Dataset, DatasetKind, DatasetWriter, InputRef, Manifest, OpenMode, Producer, ReadOptions,
    ShardEntry, TokensBuilder, WriterOptions, follow,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokenizers::Tokenizer;
use xxhash_rust::xxh3::xxh3_64;

use crate::error::{Result, TokenizeError};
use crate::spec::fingerprint;
use crate::special::SpecialTokens;
use crate::stats::EncodeStats;

/// Settings of document encoding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EncodeConfig {
    /// Token appended to each document: `auto` (the tokenizer's end-of-text token if it
    /// has one, such as `<|endoftext|>` or `</s>`; BERT-style tokenizers add `[CLS]` and
    /// `[SEP]` themselves), `none`, or a token of the vocabulary.
    pub eos: String,
    /// Share of documents in the `validation` split, chosen by a hash of the document id.
    pub validation_fraction: f64,
    /// Documents per encode batch.
    pub batch_rows: usize,
    pub max_rows_per_shard: usize,
    pub max_bytes_per_shard: u64,
}

impl Default for EncodeConfig {
    fn default() -> Self {
        let w = WriterOptions::default();
        Self {
            eos: "auto".into(),
            validation_fraction: 0.1,
            batch_rows: 1024,
            max_rows_per_shard: w.max_rows_per_shard,
            max_bytes_per_shard: w.max_bytes_per_shard,
        }
    }
}

impl EncodeConfig {
    /// Refuses a held-out share outside [0, 1] and sizes of 0 (which used to write one
    /// document per shard).
    pub fn check(&self) -> Result<()> {
        if !(0.0..=1.0).contains(&self.validation_fraction) {
            return Err(TokenizeError::Config(format!(
                "validation_fraction {} is not between 0 and 1",
                self.validation_fraction
            )));
        }
        gradus_shard::check_sizes(
            self.batch_rows,
            self.max_rows_per_shard,
            self.max_bytes_per_shard,
        )
        .map_err(TokenizeError::Config)
    }
}

/// `validation` for a `fraction` of ids, `train` for the rest; depends on the id alone.
pub fn split_of(doc_id: &str, fraction: f64) -> &'static str {
    let unit = (xxh3_64(doc_id.as_bytes()) >> 11) as f64 / (1u64 << 53) as f64;
    if unit < fraction {
        "validation"
    } else {
        "train"
    }
}

/// A tokenizer bound to the encoding settings.
#[derive(Debug, Clone)]
pub struct Encoder {
    tokenizer: Tokenizer,
    eos: Option<u32>,
    unk: Option<u32>,
    validation_fraction: f64,
}

impl Encoder {
    pub fn new(tokenizer: Tokenizer, config: &EncodeConfig) -> Result<Self> {
        config.check()?;
        let eos = match config.eos.as_str() {
            "none" => None,
            "auto" => SpecialTokens::of(&tokenizer).eos,
            token => Some(tokenizer.token_to_id(token).ok_or_else(|| {
                TokenizeError::Config(format!("eos token {token:?} is not in the vocabulary"))
            })?),
        };
        let unk = SpecialTokens::of(&tokenizer).unk;
        Ok(Self {
            tokenizer,
            eos,
            unk,
            validation_fraction: config.validation_fraction,
        })
    }

    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// The id appended to every document, if any.
    pub fn eos(&self) -> Option<u32> {
        self.eos
    }

    /// Encodes one batch of documents into a `tokens` batch, recording counts in `stats`.
    pub fn encode(
        &self,
        ids: &[&str],
        texts: &[&str],
        stats: &mut EncodeStats,
    ) -> Result<RecordBatch> {
        let encodings = self
            .tokenizer
            .encode_batch_fast(texts.to_vec(), true)
            .map_err(|e| {
                TokenizeError::tk(
                    format!("encoding document {}", ids.first().unwrap_or(&"")),
                    e,
                )
            })?;
        let tokens = encodings.iter().map(|e| e.len() + 1).sum();
        let mut rows = TokensBuilder::with_capacity(encodings.len(), tokens);
        for (enc, (id, text)) in encodings.iter().zip(ids.iter().zip(texts)) {
            let split = split_of(id, self.validation_fraction);
            stats.add(enc.get_ids(), self.eos, text.len(), self.unk, split);
            rows.push(id, enc.get_ids(), self.eos, split);
        }
        rows.finish()
            .map_err(|e| TokenizeError::Config(e.to_string()))
    }
}

/// What a [`RemoteEncoder`] calls with each encoded shard: its tokens batches, in row
/// order, and its counts.
pub type ShardDone<'a> = dyn FnMut(&ShardEntry, Vec<RecordBatch>, EncodeStats) -> Result<()> + 'a;

/// Encodes whole upstream shards outside this process (on a cluster) and hands them
/// back in order, for this process to commit. `gradus-cluster` implements it for
/// Ballista; this crate does not depend on one.
pub trait RemoteEncoder: Send + Sync + std::fmt::Debug {
    /// Encodes `shards` of the documents dataset at `input` with the tokenizer saved at
    /// `tokenizer` (both on a path the cluster sees) and calls `done` with each shard's
    /// tokens batches and counts, in the order of `shards`. `work` is a folder of the
    /// output the cluster may leave files in; it is removed once the output is sealed.
    fn encode_shards(
        &self,
        input: &Path,
        tokenizer: &Path,
        work: &Path,
        config: &EncodeConfig,
        shards: &[ShardEntry],
        done: &mut ShardDone<'_>,
    ) -> Result<()>;
}

/// Where encoding reads from and how it runs; not part of the output's identity.
#[derive(Debug, Clone, Default)]
pub struct EncodeRun {
    pub mode: OpenMode,
    /// Follow an upstream still being written, giving up after this long without news.
    pub follow: Option<Duration>,
    /// Encode the shards there instead of in this process (the output is the same).
    pub remote: Option<std::sync::Arc<dyn RemoteEncoder>>,
}

/// Encodes the `documents` dataset at `input` into a `tokens` dataset at `output`; the
/// tokenizer is saved beside the shards as `tokenizer.json`. `progress` is called with
/// the rows of each finished upstream shard.
pub fn encode_dataset(
    encoder: &Encoder,
    config: &EncodeConfig,
    input: &Path,
    output: &Path,
    run: &EncodeRun,
    mut progress: impl FnMut(u64),
) -> Result<Manifest> {
    let identity = serde_json::json!({
        "encode": config,
        "tokenizer": fingerprint(encoder.tokenizer())?,
    });
    let producer =
        Producer::new("tokenize", &identity).map_err(|e| TokenizeError::Config(e.to_string()))?;
    let upstream = InputRef::dataset(input, output, DatasetKind::Documents);
    let opts = WriterOptions {
        max_rows_per_shard: config.max_rows_per_shard,
        max_bytes_per_shard: config.max_bytes_per_shard,
        mode: run.mode,
        ..WriterOptions::default()
    };
    let mut writer = DatasetWriter::create(
        output,
        DatasetKind::Tokens,
        producer,
        vec![upstream.clone()],
        opts,
    )?;
    crate::spec::save(encoder.tokenizer(), &output.join("tokenizer.json"))?;
    if writer.is_sealed() {
        return Ok(writer.manifest().clone());
    }
    let done: std::collections::HashSet<String> =
        writer.manifest().done_sources.iter().cloned().collect();
    prune_stats(writer.stats_mut(), |k| done.contains(k));
    if let Some(remote) = &run.remote {
        if run.follow.is_some() {
            return Err(TokenizeError::Config(
                "follow mode encodes in this process; drop --follow to encode on a cluster".into(),
            ));
        }
        return encode_remotely(remote.as_ref(), config, input, output, writer, progress);
    }
    let shards: Box<dyn Iterator<Item = Result<ShardEntry>>> = match run.follow {
        Some(timeout) => Box::new(
            follow(input)
                .timeout(timeout)
                .map(|r| r.map_err(Into::into)),
        ),
        None => {
            let ds = Dataset::open_kind(input, DatasetKind::Documents)?;
            if !ds.manifest().sealed {
                return Err(TokenizeError::Config(format!(
                    "{} is not sealed (still being written?); follow it instead",
                    input.display()
                )));
            }
            Box::new(ds.manifest().shards.clone().into_iter().map(Ok))
        }
    };
    for shard in shards {
        let shard = shard?;
        let key = upstream.source_key(&shard.file);
        if writer.is_done(&key) {
            progress(shard.rows);
            continue;
        }
        let stats = encode_shard(encoder, config, input, &shard, &key, &mut writer)?;
        stats.record(writer.stats_mut(), &key);
        writer.finish_source(&key)?;
        // Output shards end where upstream shards end, in follow mode and batch mode
        // alike (so both write the same dataset): a stage following this one sees each
        // upstream shard's tokens as soon as they are encoded.
        writer.flush()?;
        progress(shard.rows);
    }
    EncodeStats::summarise(writer.stats_mut());
    Ok(writer.seal()?)
}

/// [`encode_dataset`]'s loop with the shards encoded by `remote`: this process only
/// commits what comes back, shard by shard in upstream order.
fn encode_remotely(
    remote: &dyn RemoteEncoder,
    config: &EncodeConfig,
    input: &Path,
    output: &Path,
    mut writer: DatasetWriter,
    mut progress: impl FnMut(u64),
) -> Result<Manifest> {
    let ds = Dataset::open_kind(input, DatasetKind::Documents)?;
    if !ds.manifest().sealed {
        return Err(TokenizeError::Config(format!(
            "{} is not sealed (still being written?); a cluster encodes sealed datasets",
            input.display()
        )));
    }
    let upstream = InputRef::dataset(input, output, DatasetKind::Documents);
    let mut todo = Vec::new();
    for shard in &ds.manifest().shards {
        if writer.is_done(&upstream.source_key(&shard.file)) {
            progress(shard.rows);
        } else {
            todo.push(shard.clone());
        }
    }
    let tokenizer = output.join("tokenizer.json");
    let work = output.join(".work");
    std::fs::create_dir_all(&work).map_err(|e| TokenizeError::io(&work, e))?;
    remote.encode_shards(
        input,
        &tokenizer,
        &work,
        config,
        &todo,
        &mut |shard, batches, stats| {
            let key = upstream.source_key(&shard.file);
            for batch in &batches {
                writer.write(&key, batch)?;
            }
            stats.record(writer.stats_mut(), &key);
            writer.finish_source(&key)?;
            writer.flush()?;
            progress(shard.rows);
            Ok(())
        },
    )?;
    EncodeStats::summarise(writer.stats_mut());
    let manifest = writer.seal()?;
    std::fs::remove_dir_all(&work).map_err(|e| TokenizeError::io(&work, e))?;
    Ok(manifest)
}

/// Encodes one upstream shard. A writer thread takes finished batches while the next one
/// is encoded, so Parquet encoding and compression overlap with tokenization.
fn encode_shard(
    encoder: &Encoder,
    config: &EncodeConfig,
    input: &Path,
    shard: &ShardEntry,
    key: &str,
    writer: &mut DatasetWriter,
) -> Result<EncodeStats> {
    std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<RecordBatch>(2);
        let writing = scope.spawn(move || -> Result<()> {
            for batch in rx {
                writer.write(key, &batch)?;
            }
            Ok(())
        });
        // A failed send means the writer stopped; its error is the one to report.
        let encoded = encode_shard_batches(encoder, config, input, shard, |b| tx.send(b).is_ok());
        drop(tx);
        writing
            .join()
            .map_err(|_| TokenizeError::Config("the shard writer thread panicked".into()))??;
        encoded
    })
}

/// Encodes upstream shard `shard` of the documents dataset at `input`, handing each
/// tokens batch to `sink` (which returns false to stop early); returns the shard's
/// counts. The unit of work a cluster executor runs, too.
pub fn encode_shard_batches(
    encoder: &Encoder,
    config: &EncodeConfig,
    input: &Path,
    shard: &ShardEntry,
    mut sink: impl FnMut(RecordBatch) -> bool,
) -> Result<EncodeStats> {
    let ds = Dataset::open_kind(input, DatasetKind::Documents)?;
    let opts = ReadOptions::default()
        .columns(&["id", "text"])
        .batch_size(config.batch_rows.max(1));
    let mut stats = EncodeStats::default();
    for batch in ds.read_shard(shard, &opts)? {
        let batch = batch?;
        let ids = batch.column(0).as_string::<i32>();
        let texts = batch.column(1).as_string::<i32>();
        let id_refs: Vec<&str> = (0..ids.len()).map(|i| ids.value(i)).collect();
        let text_refs: Vec<&str> = (0..texts.len()).map(|i| texts.value(i)).collect();
        let before = stats.tokens;
        let out = encoder.encode(&id_refs, &text_refs, &mut stats)?;
        metrics::counter!("tokens_written").increment(stats.tokens - before);
        metrics::counter!("docs_encoded").increment(out.num_rows() as u64);
        if !sink(out) {
            break;
        }
    }
    Ok(stats)
}

/// Drops per-source statistics of sources a resumed writer rolled back, so that every
/// source is counted once.
pub(crate) fn prune_stats(stats: &mut Map<String, Value>, done: impl Fn(&str) -> bool) {
    if let Some(Value::Object(sources)) = stats.get_mut(crate::stats::SOURCES_KEY) {
        sources.retain(|k, _| done(k));
    }
}
