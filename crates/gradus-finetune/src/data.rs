//! Task examples in memory, length-bucketed shuffled batches with a resumable cursor, and
//! padding to the longest example of a batch.

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use gradus_shard::{Dataset, DatasetKind, Example, ReadOptions, Record};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::error::{FinetuneError, Result};

/// One encoded example with its reference.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskExample {
    pub id: String,
    pub task: String,
    pub split: String,
    pub text: String,
    pub text_pair: Option<String>,
    pub input_ids: Vec<u32>,
    pub token_type_ids: Vec<u8>,
    pub label: Option<i64>,
    pub target: Option<f32>,
}

/// What the examples of a split carry as references.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum References {
    Labels,
    Targets,
    None,
}

/// Reads the examples of `split` (all splits when `None`) from an `examples` dataset,
/// cut to `max_len` tokens (the last one, `[SEP]`, kept; instruction examples are cut
/// plainly, as their end token must not close a cut response).
pub fn load_examples(dir: &Path, split: Option<&str>, max_len: usize) -> Result<Vec<TaskExample>> {
    let dataset = Dataset::open_kind(dir, DatasetKind::Examples)?;
    let keep_last = !dir.join(gradus_tokenize::INSTRUCTION_FILE).is_file();
    let mut out = Vec::new();
    for batch in dataset.batches(&ReadOptions::default()) {
        let rows = Example::from_batch(&batch?).map_err(|e| FinetuneError::data(dir, e))?;
        for row in rows {
            if split.is_some_and(|s| s != row.split) {
                continue;
            }
            out.push(TaskExample {
                input_ids: truncate(&row.input_ids, max_len, keep_last),
                token_type_ids: truncate(&row.token_type_ids, max_len, keep_last),
                id: row.id,
                task: row.task,
                split: row.split,
                text: row.text,
                text_pair: row.text_pair,
                label: row.label,
                target: row.target,
            });
        }
    }
    Ok(out)
}

fn truncate<T: Copy>(values: &[T], max_len: usize, keep_last: bool) -> Vec<T> {
    if !keep_last {
        return values[..values.len().min(max_len)].to_vec();
    }
    if values.len() <= max_len || max_len < 2 {
        return values.to_vec();
    }
    let mut out = values[..max_len - 1].to_vec();
    out.extend(values.last().copied());
    out
}

/// The references every example of `examples` has (an error names the first without).
pub fn references(examples: &[TaskExample], dir: &Path) -> Result<References> {
    let Some(first) = examples.first() else {
        return Ok(References::None);
    };
    let kind = match (first.label, first.target) {
        (Some(_), _) => References::Labels,
        (None, Some(_)) => References::Targets,
        (None, None) => References::None,
    };
    let mixed = examples.iter().find(|e| match kind {
        References::Labels => e.label.is_none(),
        References::Targets => e.target.is_none(),
        References::None => e.label.is_some() || e.target.is_some(),
    });
    if let Some(e) = mixed {
        return Err(FinetuneError::data(
            dir,
            format!(
                "example {} does not have the same kind of reference as the others",
                e.id
            ),
        ));
    }
    Ok(kind)
}

/// A seeded subset of `n` examples (all when `n` is larger), in the dataset's order.
pub fn subset(examples: Vec<TaskExample>, n: Option<usize>, seed: u64) -> Vec<TaskExample> {
    let Some(n) = n.filter(|&n| n < examples.len()) else {
        return examples;
    };
    let mut keep: Vec<usize> = (0..examples.len()).collect();
    keep.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    keep.truncate(n);
    keep.sort_unstable();
    let mut flags = vec![false; examples.len()];
    for i in keep {
        flags[i] = true;
    }
    examples
        .into_iter()
        .zip(flags)
        .filter_map(|(e, k)| k.then_some(e))
        .collect()
}

/// Where the training data stands: the epoch and the next batch of its plan.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchCursor {
    pub epoch: u64,
    pub batch: usize,
}

/// Endless epochs of shuffled batches of example indices. With bucketing, each run of
/// `BUCKET_BATCHES` batches' worth of shuffled examples is sorted by length before it is
/// cut into batches, and the batches are shuffled again, so a batch holds examples of
/// similar length (less padding) while the order stays random. An epoch's plan depends
/// only on the seed and the epoch, so the cursor alone resumes it.
#[derive(Debug, Clone)]
pub struct Batcher {
    lengths: Vec<usize>,
    batch_size: usize,
    bucket: bool,
    seed: u64,
    pub cursor: BatchCursor,
    plan: Option<(u64, Vec<Vec<usize>>)>,
}

/// Batches per length bucket.
const BUCKET_BATCHES: usize = 50;

impl Batcher {
    pub fn new(lengths: Vec<usize>, batch_size: usize, bucket: bool, seed: u64) -> Self {
        Self {
            lengths,
            batch_size: batch_size.max(1),
            bucket,
            seed,
            cursor: BatchCursor::default(),
            plan: None,
        }
    }

    /// Batches in one epoch.
    pub fn batches_per_epoch(&self) -> usize {
        self.lengths.len().div_ceil(self.batch_size)
    }

    fn plan(&self, epoch: u64) -> Vec<Vec<usize>> {
        let mut rng =
            ChaCha8Rng::seed_from_u64(self.seed ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let mut order: Vec<usize> = (0..self.lengths.len()).collect();
        order.shuffle(&mut rng);
        if !self.bucket {
            return order
                .chunks(self.batch_size)
                .map(<[usize]>::to_vec)
                .collect();
        }
        let mut batches = Vec::new();
        for bucket in order.chunks(self.batch_size * BUCKET_BATCHES) {
            let mut bucket = bucket.to_vec();
            bucket.sort_by_key(|&i| self.lengths[i]);
            batches.extend(bucket.chunks(self.batch_size).map(<[usize]>::to_vec));
        }
        batches.shuffle(&mut rng);
        batches
    }

    /// The next batch's example indices.
    pub fn next_batch(&mut self) -> Vec<usize> {
        if self.lengths.is_empty() {
            return Vec::new();
        }
        if self.cursor.batch >= self.batches_per_epoch() {
            self.cursor = BatchCursor {
                epoch: self.cursor.epoch + 1,
                batch: 0,
            };
        }
        let epoch = self.cursor.epoch;
        if self.plan.as_ref().is_none_or(|(e, _)| *e != epoch) {
            self.plan = Some((epoch, self.plan(epoch)));
        }
        let batch = self
            .plan
            .as_ref()
            .map(|(_, plan)| plan[self.cursor.batch].clone())
            .unwrap_or_default();
        self.cursor.batch += 1;
        batch
    }
}

/// Examples padded to the longest of the batch, as tensors.
#[derive(Debug)]
pub struct PaddedBatch {
    /// u32 `[batch, len]`.
    pub ids: Tensor,
    pub type_ids: Tensor,
    /// f32 `[batch, len]`: 1 for tokens, 0 for padding.
    pub mask: Tensor,
    /// Class ids, u32 `[batch]` (classification).
    pub labels: Option<Tensor>,
    /// Values, f32 `[batch]` (regression).
    pub targets: Option<Tensor>,
    /// Examples in the batch (more than its rows when packed).
    pub examples: usize,
    /// Real (unpadded) tokens.
    pub tokens: usize,
}

impl PaddedBatch {
    /// `examples` packed into rows of at most `len` tokens, each example whole, in order
    /// (a new row when the next does not fit), then padded as [`PaddedBatch::new`] pads.
    /// A packed row reads its earlier examples as context, as HF TRL's packing does; the
    /// loss still counts only segment-1 tokens, and `examples` stays the examples' count.
    pub fn packed(
        examples: &[&TaskExample],
        len: usize,
        pad: u32,
        device: &Device,
    ) -> Result<Self> {
        let mut rows: Vec<TaskExample> = Vec::new();
        for e in examples {
            match rows.last_mut() {
                Some(row) if row.input_ids.len() + e.input_ids.len() <= len => {
                    row.input_ids.extend(&e.input_ids);
                    row.token_type_ids.extend(&e.token_type_ids);
                }
                _ => rows.push(TaskExample {
                    label: None,
                    target: None,
                    ..(*e).clone()
                }),
            }
        }
        let refs: Vec<&TaskExample> = rows.iter().collect();
        let mut batch = Self::new(&refs, pad, device)?;
        batch.examples = examples.len();
        Ok(batch)
    }

    pub fn new(examples: &[&TaskExample], pad: u32, device: &Device) -> Result<Self> {
        let (b, len) = (
            examples.len(),
            examples
                .iter()
                .map(|e| e.input_ids.len())
                .max()
                .unwrap_or(0),
        );
        let (mut ids, mut types, mut mask) =
            (vec![pad; b * len], vec![0u32; b * len], vec![0f32; b * len]);
        for (r, e) in examples.iter().enumerate() {
            for (c, &id) in e.input_ids.iter().enumerate() {
                ids[r * len + c] = id;
                mask[r * len + c] = 1.0;
                types[r * len + c] = u32::from(e.token_type_ids.get(c).copied().unwrap_or(0));
            }
        }
        let labels = examples
            .iter()
            .map(|e| e.label.and_then(|l| u32::try_from(l).ok()))
            .collect::<Option<Vec<u32>>>();
        let targets = examples
            .iter()
            .map(|e| e.target)
            .collect::<Option<Vec<f32>>>();
        Ok(Self {
            ids: Tensor::from_vec(ids, (b, len), device)?,
            type_ids: Tensor::from_vec(types, (b, len), device)?,
            mask: Tensor::from_vec(mask, (b, len), device)?.to_dtype(DType::F32)?,
            labels: labels
                .filter(|_| b > 0)
                .map(|l| Tensor::from_vec(l, b, device))
                .transpose()?,
            targets: targets
                .filter(|_| b > 0)
                .map(|t| Tensor::from_vec(t, b, device))
                .transpose()?,
            examples: b,
            tokens: examples.iter().map(|e| e.input_ids.len()).sum(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_example_once_per_epoch_and_buckets_are_tight() {
        let lengths: Vec<usize> = (0..1000).map(|i| (i * 7919) % 97 + 3).collect();
        let mut b = Batcher::new(lengths.clone(), 8, true, 5);
        let mut seen = vec![0u32; lengths.len()];
        let mut spread = 0;
        for _ in 0..b.batches_per_epoch() {
            let batch = b.next_batch();
            let (lo, hi) = batch.iter().fold((usize::MAX, 0), |(lo, hi), &i| {
                (lo.min(lengths[i]), hi.max(lengths[i]))
            });
            spread += hi - lo;
            for i in batch {
                seen[i] += 1;
            }
        }
        assert!(seen.iter().all(|&n| n == 1));
        // Random batches of 8 from lengths 3..100 would spread ~75 tokens each.
        assert!(spread / b.batches_per_epoch() < 10, "mean spread {spread}");
        let next = b.next_batch();
        assert_eq!(b.cursor, BatchCursor { epoch: 1, batch: 1 });
        let mut resumed = Batcher::new(lengths, 8, true, 5);
        resumed.cursor = BatchCursor { epoch: 1, batch: 0 };
        assert_eq!(resumed.next_batch(), next);
    }

    #[test]
    fn packing_fills_rows_with_whole_examples_and_counts_them_all() {
        let example = |n: usize, first: u32| TaskExample {
            id: format!("e{first}"),
            task: "t".into(),
            split: "train".into(),
            text: String::new(),
            text_pair: None,
            input_ids: (first..first + n as u32).collect(),
            token_type_ids: [vec![0u8; n / 2], vec![1u8; n - n / 2]].concat(),
            label: None,
            target: None,
        };
        let es = [
            example(4, 10),
            example(3, 20),
            example(5, 30),
            example(2, 40),
        ];
        let refs: Vec<&TaskExample> = es.iter().collect();
        let b = PaddedBatch::packed(&refs, 8, 0, &Device::Cpu).unwrap();
        assert_eq!((b.examples, b.tokens), (4, 14));
        let ids = b.ids.to_vec2::<u32>().unwrap();
        // Two rows, padded to the longer (7) rather than to 8.
        assert_eq!(ids[0], [10, 11, 12, 13, 20, 21, 22]);
        assert_eq!(ids[1], [30, 31, 32, 33, 34, 40, 41]);
        let types = b.type_ids.to_vec2::<u32>().unwrap();
        assert_eq!(types[0], [0, 0, 1, 1, 0, 1, 1]);
        assert_eq!(types[1], [0, 0, 1, 1, 1, 0, 1]);
    }

    #[test]
    fn truncation_keeps_the_closing_token() {
        assert_eq!(
            truncate(&[101u32, 5, 6, 7, 102], 4, true),
            vec![101, 5, 6, 102]
        );
        assert_eq!(truncate(&[101u32, 102], 4, true), vec![101, 102]);
        assert_eq!(truncate(&[1u32, 2, 3, 4, 0], 4, false), vec![1, 2, 3, 4]);
    }
}
