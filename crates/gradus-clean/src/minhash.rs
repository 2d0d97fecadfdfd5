//! MinHash signatures and LSH band keys for near-duplicate detection.
//!
//! A document becomes a set of shingles (word n-grams of its simplified text, or
//! character n-grams), each shingle a 64-bit hash; `bands × rows` hash functions
//! `h_i(x) = (a_i·x + b_i) mod (2^61 − 1)` give the signature, and each band's `rows`
//! values hash to one 64-bit band key. Two documents whose Jaccard similarity is `s` share
//! at least one band key with probability `1 − (1 − s^rows)^bands`.

use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::{xxh3_64, xxh3_64_with_seed};

const MERSENNE_61: u64 = (1 << 61) - 1;

/// What a shingle is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Shingle {
    /// `n` consecutive words of the simplified text (lower-cased, punctuation removed).
    Words,
    /// `n` consecutive characters of the simplified text.
    Chars,
}

/// Near-duplicate settings (`[dedup.near]` in the pipeline TOML).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MinHashConfig {
    pub shingle: Shingle,
    /// Words or characters per shingle.
    pub n: usize,
    pub bands: usize,
    pub rows: usize,
    /// Seeds the hash functions; documents are only comparable under the same seed.
    pub seed: u64,
}

impl Default for MinHashConfig {
    fn default() -> Self {
        Self::fineweb()
    }
}

impl MinHashConfig {
    /// FineWeb: word 5-grams, 14 bands of 8 rows (datatrove `MinhashConfig` as used for
    /// FineWeb; ~75% similarity is caught with probability ~0.77, 85% with ~0.98).
    pub fn fineweb() -> Self {
        Self {
            shingle: Shingle::Words,
            n: 5,
            bands: 14,
            rows: 8,
            seed: 1,
        }
    }

    /// NeMo Curator's fuzzy dedup: character 24-grams, 20 bands of 13 rows.
    pub fn nemo() -> Self {
        Self {
            shingle: Shingle::Chars,
            n: 24,
            bands: 20,
            rows: 13,
            seed: 42,
        }
    }

    /// Checks the sizes are usable.
    pub fn validate(&self) -> Result<(), String> {
        if self.n == 0 || self.bands == 0 || self.rows == 0 {
            return Err("dedup.near: n, bands and rows must all be at least 1".into());
        }
        Ok(())
    }

    /// The hash functions' coefficients, derived from the seed alone.
    pub fn hashers(&self) -> MinHasher {
        let mut state = self.seed ^ 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            state = splitmix64(state);
            state
        };
        let coeffs = (0..self.bands * self.rows)
            .map(|_| ((next() % (MERSENNE_61 - 1)) + 1, next() % MERSENNE_61))
            .collect();
        MinHasher {
            config: *self,
            coeffs,
        }
    }
}

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// `(a·x + b) mod 2^61−1` without overflow.
fn universal_hash(a: u64, b: u64, x: u64) -> u64 {
    let x = x % MERSENNE_61;
    let prod = (a as u128) * (x as u128) + b as u128;
    let lo = (prod & MERSENNE_61 as u128) as u64;
    let hi = (prod >> 61) as u64;
    let r = lo + hi;
    if r >= MERSENNE_61 { r - MERSENNE_61 } else { r }
}

/// Computes signatures and band keys under one [`MinHashConfig`].
#[derive(Debug, Clone)]
pub struct MinHasher {
    config: MinHashConfig,
    coeffs: Vec<(u64, u64)>,
}

impl MinHasher {
    /// The full signature (`bands × rows` values), or `None` for a text with no shingle.
    pub fn signature(&self, text: &str) -> Option<Vec<u64>> {
        let shingles = shingles(text, self.config.shingle, self.config.n, self.config.seed);
        if shingles.is_empty() {
            return None;
        }
        let sig = self
            .coeffs
            .iter()
            .map(|&(a, b)| {
                shingles
                    .iter()
                    .map(|&x| universal_hash(a, b, x))
                    .min()
                    .unwrap_or(u64::MAX)
            })
            .collect();
        Some(sig)
    }

    /// One key per band; the band index is hashed in, so equal keys mean the same band.
    pub fn band_keys(&self, signature: &[u64]) -> Vec<u64> {
        signature
            .chunks(self.config.rows)
            .enumerate()
            .map(|(band, rows)| {
                let mut bytes = Vec::with_capacity(8 * (rows.len() + 1));
                bytes.extend((band as u64).to_le_bytes());
                rows.iter().for_each(|r| bytes.extend(r.to_le_bytes()));
                xxh3_64(&bytes)
            })
            .collect()
    }
}

/// The fraction of equal positions in two signatures: an estimate of Jaccard similarity.
pub fn estimated_jaccard(a: &[u64], b: &[u64]) -> f64 {
    if a.is_empty() || a.len() != b.len() {
        return 0.0;
    }
    a.iter().zip(b).filter(|(x, y)| x == y).count() as f64 / a.len() as f64
}

/// Lower-cased alphanumeric words: the text shingles are taken from, so that case and
/// punctuation edits do not make documents look different.
fn simplified_words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// The distinct shingle hashes of `text`, sorted (so the set is the same however it
/// was built).
pub fn shingles(text: &str, kind: Shingle, n: usize, seed: u64) -> Vec<u64> {
    let words = simplified_words(text);
    let mut out: Vec<u64> = match kind {
        Shingle::Words => {
            if words.is_empty() {
                return Vec::new();
            }
            let n = n.min(words.len());
            words
                .windows(n)
                .map(|w| xxh3_64_with_seed(w.join(" ").as_bytes(), seed))
                .collect()
        }
        Shingle::Chars => {
            let chars: Vec<char> = words.join(" ").chars().collect();
            if chars.is_empty() {
                return Vec::new();
            }
            let n = n.min(chars.len());
            chars
                .windows(n)
                .map(|w| xxh3_64_with_seed(w.iter().collect::<String>().as_bytes(), seed))
                .collect()
        }
    };
    out.sort_unstable();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "The committee met on Tuesday to discuss the budget for the coming \
        year, and after a long debate agreed to fund the new library, repair the bridge \
        over the river and hire two more teachers for the primary school in the village.";

    #[test]
    fn universal_hash_matches_u128_arithmetic() {
        for (a, b, x) in [(3, 5, 7), (MERSENNE_61 - 2, MERSENNE_61 - 1, u64::MAX)] {
            let want =
                ((a as u128 * (x % MERSENNE_61) as u128 + b as u128) % MERSENNE_61 as u128) as u64;
            assert_eq!(universal_hash(a, b, x), want);
        }
    }

    #[test]
    fn small_edits_share_bands_and_unrelated_texts_do_not() {
        let h = MinHashConfig::fineweb().hashers();
        let base = h.signature(BASE).unwrap();
        let edited = h
            .signature(&BASE.replace("Tuesday", "Wednesday").to_uppercase())
            .unwrap();
        let other = h
            .signature("A completely different text about cooking pasta with tomatoes, garlic, olive oil and fresh basil from the garden, served with bread.")
            .unwrap();
        assert!(estimated_jaccard(&base, &edited) > 0.7);
        assert!(estimated_jaccard(&base, &other) < 0.1);
        let shared = |a: &[u64], b: &[u64]| {
            h.band_keys(a)
                .iter()
                .zip(h.band_keys(b))
                .any(|(x, y)| *x == y)
        };
        assert!(shared(&base, &edited));
        assert!(!shared(&base, &other));
    }

    #[test]
    fn signatures_depend_on_the_seed_only() {
        let a = MinHashConfig::nemo().hashers().signature(BASE);
        let b = MinHashConfig::nemo().hashers().signature(BASE);
        assert_eq!(a, b);
        let other_seed = MinHashConfig {
            seed: 7,
            ..MinHashConfig::nemo()
        };
        assert_ne!(a, other_seed.hashers().signature(BASE));
        assert_eq!(a.map(|s| s.len()), Some(20 * 13));
    }

    #[test]
    fn empty_text_has_no_signature() {
        assert_eq!(MinHashConfig::default().hashers().signature(" .. "), None);
    }
}
