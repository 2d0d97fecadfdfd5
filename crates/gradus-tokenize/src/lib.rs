//! Tokenization for gradus: train a tokenizer from a `documents` dataset, or load one,
//! then encode documents into a `tokens` dataset and labeled task files into an
//! `examples` dataset.
//!
//! - [`TrainConfig`] / [`train_from_dataset`]: byte-level BPE, WordPiece, Unigram or
//!   characters, trained on a seeded, bounded sample; saved as a standard `tokenizer.json`.
//! - [`load`]: any `tokenizer.json`, a BERT `vocab.txt`, or a model folder.
//! - [`encode_dataset`]: parallel, streaming, resumable; follows an upstream still being
//!   written; a deterministic train/validation split by document id.
//! - [`encode_examples`]: TSV/CSV/JSONL/Parquet with a column mapping, label maps, pairs,
//!   truncation.
//!
//! ```
//! use gradus_tokenize::{TokenizerKind, TrainConfig, train};
//!
//! let config = TrainConfig { kind: TokenizerKind::Char, ..TrainConfig::default() };
//! let tk = train(&config, &["to be, or not to be"]).unwrap();
//! assert_eq!(tk.get_vocab_size(true), 8); // ' ' , b e n o r t
//! let ids = tk.encode("not to be", false).unwrap().get_ids().to_vec();
//! assert_eq!(tk.decode(&ids, false).unwrap(), "not to be");
//! ```

mod deterministic;
mod encode;
mod error;
mod examples;
mod sample;
mod spec;
mod special;
mod stats;
mod table;
mod template;

use std::collections::BTreeSet;
use std::path::Path;

use arrow::array::{Array, AsArray};
use gradus_shard::{Dataset, DatasetKind, ReadOptions};
pub use tokenizers::Tokenizer;

pub use encode::{
    EncodeConfig, EncodeRun, Encoder, RemoteEncoder, ShardDone, encode_dataset,
    encode_shard_batches, split_of,
};
pub use error::{Result, TokenizeError};
pub use examples::{
    ExamplesConfig, Holdout, INSTRUCTION_FILE, LabelMap, OnError, SplitFile, encode_examples,
    instruction_template,
};
pub use sample::{Sampler, sample_dataset};
pub use spec::{
    TokenizerKind, TrainConfig, bert_template, char_tokenizer, char_tokenizer_from, fingerprint,
    load, save, train,
};
pub use special::{Role, SpecialTokens};
pub use stats::EncodeStats;
pub use table::{Row, Table, read_table};
pub use template::{PROMPT, Template, TemplateEncoder};

/// Trains a tokenizer on the `documents` dataset at `input`: characters over every
/// document, the other kinds over the seeded sample the config bounds.
pub fn train_from_dataset(input: &Path, config: &TrainConfig) -> Result<Tokenizer> {
    let ds = Dataset::open_kind(input, DatasetKind::Documents)?;
    if config.kind == TokenizerKind::Char {
        let mut chars = BTreeSet::new();
        for batch in ds.batches(&ReadOptions::default().columns(&["text"])) {
            let batch = batch?;
            let texts = batch.column(0).as_string::<i32>();
            for i in 0..texts.len() {
                chars.extend(texts.value(i).chars());
            }
        }
        if chars.is_empty() {
            return Err(TokenizeError::Config(format!(
                "{}: no text to train on",
                input.display()
            )));
        }
        return char_tokenizer_from(&chars, &config.special_tokens());
    }
    let sample = sample_dataset(&ds, config.seed, config.sample_docs, config.sample_bytes)?;
    tracing::info!(
        documents = sample.len(),
        bytes = sample.iter().map(String::len).sum::<usize>(),
        "training sample"
    );
    train(config, &sample)
}
