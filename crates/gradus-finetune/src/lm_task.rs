//! A causal-LM task among task heads: windows of a `tokens` dataset whose every next token
//! counts, so that a decoder stays a language model while it learns other tasks.

use std::path::Path;

use gradus_shard::{Dataset, DatasetKind, ReadOptions, Record, TokenSeq};

use crate::data::TaskExample;
use crate::error::{FinetuneError, Result};

/// The documents of `split` in `dir`, joined by `eos` (when the tokenizer has one) and cut
/// into windows of `len` tokens; a last window shorter than 2 tokens predicts nothing and
/// is left out. Every token of a window is segment 1: all its next tokens count.
pub fn load_windows(
    dir: &Path,
    task: &str,
    split: &str,
    len: usize,
    eos: Option<u32>,
) -> Result<Vec<TaskExample>> {
    if len < 2 {
        return Err(FinetuneError::Config(format!(
            "task `{task}`: windows of {len} tokens predict nothing; give seq_len of 2 or more"
        )));
    }
    let dataset = Dataset::open_kind(dir, DatasetKind::Tokens)?;
    let mut stream = Vec::new();
    for batch in dataset.batches(&ReadOptions::default()) {
        let rows = TokenSeq::from_batch(&batch?).map_err(|e| FinetuneError::data(dir, e))?;
        for row in rows.into_iter().filter(|r| r.split == split) {
            stream.extend(row.input_ids);
            stream.extend(eos);
        }
    }
    Ok(stream
        .chunks(len)
        .filter(|w| w.len() >= 2)
        .enumerate()
        .map(|(i, w)| TaskExample {
            id: format!("{task}:{split}:{i}"),
            task: task.to_string(),
            split: split.to_string(),
            text: String::new(),
            text_pair: None,
            input_ids: w.to_vec(),
            token_type_ids: vec![1; w.len()],
            label: None,
            target: None,
        })
        .collect())
}
