//! Settings of the clean stage: the pipeline TOML's shape.

use serde::{Deserialize, Serialize};

use crate::decontaminate::DecontaminateConfig;
use crate::filters::{FilterSpec, default_filters};
use crate::ingest::{InputSpec, OnError};
use crate::lines::LineConfig;
use crate::minhash::MinHashConfig;
use crate::normalize::NormalizeConfig;
use crate::pii::PiiConfig;

/// Near-duplicate detection: a preset, settings of one's own, or none.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NearMode {
    Off,
    /// Word 5-grams, 14 bands × 8 rows ([`MinHashConfig::fineweb`]).
    #[default]
    Fineweb,
    /// Character 24-grams, 20 bands × 13 rows ([`MinHashConfig::nemo`]).
    Nemo,
    /// The settings in `[dedup.minhash]`.
    Custom,
}

/// `[dedup]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DedupConfig {
    /// Drop documents whose cleaned text is identical to an earlier one.
    pub exact: bool,
    pub near: NearMode,
    /// Used when `near = "custom"`.
    pub minhash: MinHashConfig,
    /// Above 0: a candidate pair only counts when the share of equal MinHash values
    /// (an estimate of their Jaccard similarity) reaches this.
    pub verify: f64,
}

impl Default for DedupConfig {
    fn default() -> Self {
        Self {
            exact: true,
            near: NearMode::default(),
            minhash: MinHashConfig::default(),
            verify: 0.0,
        }
    }
}

impl DedupConfig {
    /// The MinHash settings in force, or `None` with near dedup off.
    pub fn near_config(&self) -> Option<MinHashConfig> {
        match self.near {
            NearMode::Off => None,
            NearMode::Fineweb => Some(MinHashConfig::fineweb()),
            NearMode::Nemo => Some(MinHashConfig::nemo()),
            NearMode::Custom => Some(self.minhash),
        }
    }
}

/// Everything the clean stage does, in the order it does it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CleanConfig {
    /// Inputs from the TOML; `--input PATH` adds more with default settings.
    pub inputs: Vec<InputSpec>,
    pub on_error: OnError,
    pub normalize: NormalizeConfig,
    pub pii: PiiConfig,
    /// Identify each document's language (`lang`, `lang_score`). Off, `lang` is
    /// `und` and rules may not use it.
    pub detect_language: bool,
    pub lines: LineConfig,
    /// Presets and rules of one's own, applied in order after the `empty` rule.
    pub filters: Vec<FilterSpec>,
    pub dedup: DedupConfig,
    /// Drop documents that share a long run of words with evaluation sets.
    pub decontaminate: DecontaminateConfig,
    /// Also write dropped documents, with the reason, to `OUTPUT/rejected`.
    pub keep_rejected: bool,
    /// Input files read at once and DataFusion's partitions for dedup; 0 = one per
    /// thread. The output does not depend on it.
    pub partitions: usize,
    /// Documents per batch through the plan.
    pub batch_rows: usize,
    /// DataFusion memory pool for dedup; beyond it, aggregation spills to disk.
    pub memory_limit_mb: usize,
    pub max_rows_per_shard: usize,
    pub max_bytes_per_shard: u64,
}

impl Default for CleanConfig {
    fn default() -> Self {
        let w = gradus_shard::WriterOptions::default();
        Self {
            inputs: Vec::new(),
            on_error: OnError::Skip,
            normalize: NormalizeConfig::default(),
            pii: PiiConfig::default(),
            detect_language: true,
            lines: LineConfig::default(),
            filters: default_filters(),
            dedup: DedupConfig::default(),
            decontaminate: DecontaminateConfig::default(),
            keep_rejected: false,
            partitions: 0,
            batch_rows: 1024,
            memory_limit_mb: 512,
            max_rows_per_shard: w.max_rows_per_shard,
            max_bytes_per_shard: w.max_bytes_per_shard,
        }
    }
}

impl CleanConfig {
    /// Refuses sizes and thresholds with no meaning, before any input is read (the
    /// filters' SQL is checked when the stage plans it).
    pub fn check(&self) -> Result<(), String> {
        gradus_shard::check_sizes(
            self.batch_rows,
            self.max_rows_per_shard,
            self.max_bytes_per_shard,
        )?;
        if !(0.0..=1.0).contains(&self.dedup.verify) {
            return Err(format!(
                "dedup.verify {}: a share of equal MinHash values, within [0, 1]",
                self.dedup.verify
            ));
        }
        if let Some(near) = self.dedup.near_config() {
            near.validate()?;
        }
        Ok(())
    }

    /// `partitions`, with 0 resolved to the rayon pool's size.
    pub fn partitions(&self) -> usize {
        if self.partitions == 0 {
            rayon::current_num_threads().max(1)
        } else {
            self.partitions
        }
    }
}
