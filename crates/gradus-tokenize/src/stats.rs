//! Encoding statistics. They are kept per source in the manifest while the stage runs
//! (so a resumed run counts every source exactly once) and summed when it seals.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Manifest stats key of the per-source counts.
pub(crate) const SOURCES_KEY: &str = "sources";

/// Counts over a set of encoded documents.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EncodeStats {
    pub documents: u64,
    pub tokens: u64,
    pub unknown_tokens: u64,
    pub text_bytes: u64,
    /// Tokens per split.
    pub split_tokens: BTreeMap<String, u64>,
    /// Documents by length: bucket k counts documents of [2^k, 2^(k+1)) tokens (0 and 1
    /// tokens in bucket 0).
    pub length_log2_histogram: Vec<u64>,
}

impl EncodeStats {
    /// Adds one document of `ids` (plus `extra`, an appended end-of-text id).
    pub fn add(
        &mut self,
        ids: &[u32],
        extra: Option<u32>,
        text_bytes: usize,
        unk: Option<u32>,
        split: &str,
    ) {
        let n = (ids.len() + usize::from(extra.is_some())) as u64;
        self.documents += 1;
        self.tokens += n;
        self.text_bytes += text_bytes as u64;
        if let Some(unk) = unk {
            let hits = ids.iter().chain(&extra).filter(|&&i| i == unk).count();
            self.unknown_tokens += hits as u64;
        }
        *self.split_tokens.entry(split.to_string()).or_default() += n;
        let bucket = (u64::BITS - n.max(1).leading_zeros() - 1) as usize;
        if self.length_log2_histogram.len() <= bucket {
            self.length_log2_histogram.resize(bucket + 1, 0);
        }
        self.length_log2_histogram[bucket] += 1;
    }

    /// Adds another set of counts.
    pub fn merge(&mut self, other: &EncodeStats) {
        self.documents += other.documents;
        self.tokens += other.tokens;
        self.unknown_tokens += other.unknown_tokens;
        self.text_bytes += other.text_bytes;
        for (k, v) in &other.split_tokens {
            *self.split_tokens.entry(k.clone()).or_default() += v;
        }
        if self.length_log2_histogram.len() < other.length_log2_histogram.len() {
            self.length_log2_histogram
                .resize(other.length_log2_histogram.len(), 0);
        }
        for (a, b) in self
            .length_log2_histogram
            .iter_mut()
            .zip(&other.length_log2_histogram)
        {
            *a += b;
        }
    }

    /// Stores these counts as the stats of `source`.
    pub(crate) fn record(&self, stats: &mut Map<String, Value>, source: &str) {
        let sources = stats
            .entry(SOURCES_KEY)
            .or_insert_with(|| Value::Object(Map::new()));
        if let (Value::Object(map), Ok(v)) = (sources, serde_json::to_value(self)) {
            map.insert(source.to_string(), v);
        }
    }

    /// Replaces the per-source counts by their sum and the derived rates.
    pub(crate) fn summarise(stats: &mut Map<String, Value>) {
        let mut total = EncodeStats::default();
        if let Some(Value::Object(sources)) = stats.remove(SOURCES_KEY) {
            for v in sources.values() {
                if let Ok(s) = serde_json::from_value::<EncodeStats>(v.clone()) {
                    total.merge(&s);
                }
            }
        }
        let tokens = total.tokens.max(1) as f64;
        if let Ok(Value::Object(fields)) = serde_json::to_value(&total) {
            stats.extend(fields);
        }
        stats.insert(
            "unknown_token_rate".into(),
            (total.unknown_tokens as f64 / tokens).into(),
        );
        stats.insert(
            "bytes_per_token".into(),
            (total.text_bytes as f64 / tokens).into(),
        );
        stats.insert(
            "tokens_per_document".into(),
            (total.tokens as f64 / total.documents.max(1) as f64).into(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_powers_of_two() {
        let mut s = EncodeStats::default();
        for n in [0usize, 1, 2, 3, 4, 7, 8] {
            s.add(&vec![5; n], None, n, Some(5), "train");
        }
        assert_eq!(s.length_log2_histogram, vec![2, 2, 2, 1]);
        assert_eq!(s.unknown_tokens, 25);
    }

    #[test]
    fn summary_sums_the_sources() {
        let mut a = EncodeStats::default();
        a.add(&[1, 2], Some(3), 12, None, "train");
        let mut b = EncodeStats::default();
        b.add(&[1], None, 4, None, "validation");
        let mut stats = Map::new();
        a.record(&mut stats, "s0");
        b.record(&mut stats, "s1");
        EncodeStats::summarise(&mut stats);
        assert_eq!(stats["tokens"], 4);
        assert_eq!(stats["documents"], 2);
        assert_eq!(stats["bytes_per_token"], 4.0);
        assert_eq!(stats["split_tokens"]["validation"], 1);
        assert!(!stats.contains_key(SOURCES_KEY));
    }
}
