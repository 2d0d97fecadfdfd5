//! Decontamination: a document that shares a run of `ngram` words with an evaluation
//! set's texts is dropped, its reason naming the set (`decontaminate.<set>`), or, with
//! `action = "flag"`, kept with the set's name in its `contaminated_by` column. Words are
//! the text lower-cased with everything but letters and digits as spaces, as datatrove's
//! n-gram decontamination and GPT-3 (13 words) compare them. An evaluation text shorter
//! than `ngram` words indexes nothing, so a near-miss below the length is not found.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::OnceLock;

use arrow::array::AsArray;
use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_64;

use crate::error::CleanError;
use crate::filters::Rule;
use crate::ingest::{self, ErrorCounts, InputSpec, OnError};

/// `[decontaminate]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DecontaminateConfig {
    /// The evaluation sets to keep out of the corpus.
    pub against: Vec<EvalSet>,
    /// Words in a shared run that makes a document contaminated.
    pub ngram: usize,
    /// What becomes of a contaminated document.
    pub action: Action,
    /// The sets' n-grams, read once when the stage starts.
    #[serde(skip)]
    index: OnceLock<NgramIndex>,
}

impl Default for DecontaminateConfig {
    fn default() -> Self {
        Self {
            against: Vec::new(),
            ngram: 13,
            action: Action::Drop,
            index: OnceLock::new(),
        }
    }
}

impl PartialEq for DecontaminateConfig {
    fn eq(&self, other: &Self) -> bool {
        self.against == other.against && self.ngram == other.ngram && self.action == other.action
    }
}

/// What becomes of a contaminated document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Dropped, counted under `decontaminate.<set>`.
    #[default]
    Drop,
    /// Kept, with `contaminated_by` naming the set (empty for clean documents), and
    /// counted in the report's `flagged`.
    Flag,
}

/// One evaluation set: a name for the report, and the files holding its texts (read as
/// the stage's inputs are: JSONL, text, TSV/CSV or Parquet, with a text field).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalSet {
    pub name: String,
    pub inputs: Vec<InputSpec>,
}

impl DecontaminateConfig {
    pub fn enabled(&self) -> bool {
        !self.against.is_empty()
    }

    /// The index, reading the evaluation sets the first time; `None` when off.
    pub fn index(&self) -> Result<Option<&NgramIndex>, CleanError> {
        if !self.enabled() {
            return Ok(None);
        }
        if self.index.get().is_none() {
            let built = NgramIndex::build(self)?;
            let _ = self.index.set(built);
        }
        Ok(self.index.get())
    }

    /// The index if it has been read.
    pub fn built(&self) -> Option<&NgramIndex> {
        self.index.get()
    }

    /// Whether contaminated documents are kept and marked.
    pub fn flags(&self) -> bool {
        self.enabled() && self.action == Action::Flag
    }

    /// A rule per set: documents contaminated by it are dropped under its name (none
    /// when flagging).
    pub fn rules(&self) -> Vec<Rule> {
        if self.action == Action::Flag {
            return Vec::new();
        }
        self.against
            .iter()
            .map(|set| Rule {
                name: format!("decontaminate.{}", set.name),
                keep: format!("contaminated_by <> '{}'", set.name.replace('\'', "''")),
            })
            .collect()
    }
}

/// The hashed n-grams of every evaluation set.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NgramIndex {
    pub n: usize,
    pub sets: Vec<String>,
    /// N-gram hash → the first set that has it.
    grams: HashMap<u64, u32>,
    /// Texts read per set, and of those the ones shorter than `n` words.
    pub texts: Vec<u64>,
    pub short: Vec<u64>,
    /// Identifies the contents, for the plan's function equality.
    fingerprint: u64,
}

impl NgramIndex {
    fn build(config: &DecontaminateConfig) -> Result<Self, CleanError> {
        let n = config.ngram;
        if n == 0 {
            return Err(CleanError::Config(
                "decontaminate.ngram must be at least 1".into(),
            ));
        }
        let mut index = Self {
            n,
            sets: Vec::new(),
            grams: HashMap::new(),
            texts: Vec::new(),
            short: Vec::new(),
            fingerprint: n as u64,
        };
        for (i, set) in config.against.iter().enumerate() {
            if set.name.is_empty() || index.sets.contains(&set.name) {
                return Err(CleanError::Config(format!(
                    "decontaminate.against: set names must be given and distinct (`{}`)",
                    set.name
                )));
            }
            index.sets.push(set.name.clone());
            let (mut texts, mut short) = (0, 0);
            for text in read_texts(set)? {
                texts += 1;
                let hashes = ngram_hashes(&text, n);
                short += u64::from(hashes.is_empty());
                for h in hashes {
                    index.grams.entry(h).or_insert(i as u32);
                    index.fingerprint = index.fingerprint.rotate_left(5) ^ h;
                }
            }
            index.texts.push(texts);
            index.short.push(short);
        }
        Ok(index)
    }

    /// The first evaluation set `text` shares an n-gram with.
    pub fn contaminated_by(&self, text: &str) -> Option<&str> {
        ngram_hashes(text, self.n)
            .into_iter()
            .find_map(|h| self.grams.get(&h))
            .map(|&i| self.sets[i as usize].as_str())
    }

    /// Distinct n-grams indexed.
    pub fn len(&self) -> usize {
        self.grams.len()
    }

    pub fn is_empty(&self) -> bool {
        self.grams.is_empty()
    }
}

impl PartialEq for NgramIndex {
    fn eq(&self, other: &Self) -> bool {
        (self.n, &self.sets, self.fingerprint, self.grams.len())
            == (other.n, &other.sets, other.fingerprint, other.grams.len())
    }
}

impl Eq for NgramIndex {}

impl Hash for NgramIndex {
    fn hash<H: Hasher>(&self, state: &mut H) {
        (self.n, &self.sets, self.fingerprint).hash(state);
    }
}

/// Every text of `set`'s files; a missing or unreadable file fails, naming it.
fn read_texts(set: &EvalSet) -> Result<Vec<String>, CleanError> {
    let (files, missing) = ingest::expand(&set.inputs)?;
    if let Some(m) = missing.first() {
        return Err(CleanError::Config(format!(
            "decontaminate set `{}`: no such file, folder or match: {}",
            set.name, m.0
        )));
    }
    let mut texts = Vec::new();
    let errors = ErrorCounts::default();
    for file in &files {
        ingest::read_file(file, 4096, OnError::Fail, &errors, &mut |batch| {
            if let Some(col) = batch.column_by_name("text") {
                texts.extend(col.as_string::<i32>().iter().flatten().map(String::from));
            }
            true
        })?;
    }
    Ok(texts)
}

/// The words of `text` as compared: lower-cased, letters and digits only.
fn words(text: &str) -> Vec<String> {
    let simplified: String = text
        .chars()
        .map(|c| {
            if c.is_alphanumeric() {
                c.to_lowercase().next().unwrap_or(c)
            } else {
                ' '
            }
        })
        .collect();
    simplified.split_whitespace().map(String::from).collect()
}

/// Hashes of the `n`-word runs of `text`; none when it has fewer than `n` words.
fn ngram_hashes(text: &str, n: usize) -> Vec<u64> {
    let words = words(text);
    words
        .windows(n)
        .map(|w| xxh3_64(w.join(" ").as_bytes()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sixteen words (`'s` is a word of its own).
    const DEV: &str = "it 's a charming and often affecting journey that lasts a lifetime and \
                       then some more";

    fn index_of(texts: &[&str], n: usize) -> NgramIndex {
        let mut index = NgramIndex {
            n,
            sets: vec!["dev".into()],
            grams: HashMap::new(),
            texts: vec![texts.len() as u64],
            short: vec![0],
            fingerprint: 0,
        };
        for t in texts {
            for h in ngram_hashes(t, n) {
                index.grams.insert(h, 0);
            }
        }
        index
    }

    #[test]
    fn a_planted_evaluation_text_is_found_whatever_its_case_and_punctuation() {
        let index = index_of(&[DEV], 13);
        let planted = "Some web page text. It's a CHARMING and often affecting journey, that \
                       lasts a lifetime! And then some text after it.";
        assert_eq!(index.contaminated_by(planted), Some("dev"));
        assert_eq!(
            index.contaminated_by("a page about something else entirely"),
            None
        );
    }

    #[test]
    fn a_near_miss_below_the_ngram_length_is_not_found() {
        let index = index_of(&[DEV], 13);
        // Twelve words of it in a row, then another word.
        let near = "it 's a charming and often affecting journey that lasts a lifetime banana";
        assert_eq!(index.contaminated_by(near), None);
        // An evaluation text shorter than n words indexes nothing.
        assert!(index_of(&["too short to index"], 13).is_empty());
    }
}
