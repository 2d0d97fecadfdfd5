//! The training sample: a seeded, order-independent subset of documents bounded in count
//! and bytes. Each document gets a priority from a seeded hash of its id and the
//! lowest-priority documents that fit are kept (bottom-k sampling), so the sample depends
//! only on the seed and the set of documents, never on shard order or thread count.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use arrow::array::{Array, AsArray};
use gradus_shard::{Dataset, ReadOptions};
use xxhash_rust::xxh3::xxh3_64_with_seed;

use crate::error::Result;

/// A bounded bottom-k sample of texts.
#[derive(Debug)]
pub struct Sampler {
    seed: u64,
    max_docs: usize,
    max_bytes: u64,
    bytes: u64,
    /// Max-heap on priority: the top is the first to leave.
    heap: BinaryHeap<(u64, String, String)>,
}

impl Sampler {
    pub fn new(seed: u64, max_docs: usize, max_bytes: u64) -> Self {
        Self {
            seed,
            max_docs,
            max_bytes,
            bytes: 0,
            heap: BinaryHeap::new(),
        }
    }

    /// Offers one document.
    pub fn offer(&mut self, id: &str, text: &str) {
        let priority = xxh3_64_with_seed(id.as_bytes(), self.seed);
        let full = self.heap.len() >= self.max_docs || self.bytes >= self.max_bytes;
        if full
            && self
                .heap
                .peek()
                .is_some_and(|top| (priority, id) > (top.0, top.1.as_str()))
        {
            return;
        }
        self.bytes += text.len() as u64;
        self.heap.push((priority, id.to_string(), text.to_string()));
        while self.heap.len() > self.max_docs || self.bytes > self.max_bytes {
            match self.heap.pop() {
                Some((_, _, t)) => self.bytes -= t.len() as u64,
                None => break,
            }
        }
    }

    /// The sampled texts in priority order.
    pub fn into_texts(self) -> Vec<String> {
        let mut items: Vec<_> = self.heap.into_iter().map(Reverse).collect();
        items.sort();
        items
            .into_iter()
            .map(|Reverse((_, _, text))| text)
            .collect()
    }
}

/// Samples the `text` column of a `documents` dataset, streaming it once.
pub fn sample_dataset(
    ds: &Dataset,
    seed: u64,
    max_docs: usize,
    max_bytes: u64,
) -> Result<Vec<String>> {
    let mut sampler = Sampler::new(seed, max_docs, max_bytes);
    for batch in ds.batches(&ReadOptions::default().columns(&["id", "text"])) {
        let batch = batch?;
        let ids = batch.column(0).as_string::<i32>();
        let texts = batch.column(1).as_string::<i32>();
        for i in 0..batch.num_rows() {
            if ids.is_valid(i) && texts.is_valid(i) {
                sampler.offer(ids.value(i), texts.value(i));
            }
        }
    }
    Ok(sampler.into_texts())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(order: &[usize], max_docs: usize, max_bytes: u64) -> Vec<String> {
        let mut s = Sampler::new(7, max_docs, max_bytes);
        for &i in order {
            s.offer(&format!("doc{i}"), &format!("text number {i}"));
        }
        s.into_texts()
    }

    #[test]
    fn the_sample_ignores_input_order() {
        let forward: Vec<usize> = (0..100).collect();
        let backward: Vec<usize> = (0..100).rev().collect();
        assert_eq!(
            sample(&forward, 10, u64::MAX),
            sample(&backward, 10, u64::MAX)
        );
        assert_eq!(sample(&forward, 10, u64::MAX).len(), 10);
    }

    #[test]
    fn the_byte_budget_holds() {
        let all: Vec<usize> = (0..100).collect();
        let kept = sample(&all, 1000, 100);
        let bytes: usize = kept.iter().map(String::len).sum();
        assert!(
            bytes <= 100 && kept.len() >= 6,
            "{bytes} bytes in {} docs",
            kept.len()
        );
    }

    #[test]
    fn another_seed_gives_another_sample() {
        let mut a = Sampler::new(1, 5, u64::MAX);
        let mut b = Sampler::new(2, 5, u64::MAX);
        for i in 0..100 {
            a.offer(&i.to_string(), &i.to_string());
            b.offer(&i.to_string(), &i.to_string());
        }
        assert_ne!(a.into_texts(), b.into_texts());
    }
}
