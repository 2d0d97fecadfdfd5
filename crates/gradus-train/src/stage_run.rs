//! A training stage's output folder, open for its run: locked, checked and (with
//! `--overwrite`) emptied of an earlier run's files by [`RunDir::open`], then with the
//! stage's telemetry writing `metrics.jsonl` there and its resolved `config.toml` beside
//! it. Every training stage and the evaluation open their folder this one way.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use gradus_record::write_resolved_config;
use gradus_telemetry::Telemetry;
use serde::Serialize;

use crate::error::Result;
use crate::run_dir::{RunDir, RunEnd, RunSpec, record_error};
use crate::trainer::{TrainConfig, Trainer};

#[derive(Debug)]
pub struct StageRun {
    pub dir: RunDir,
    pub telemetry: Telemetry,
}

impl StageRun {
    /// Opens `output` for `spec`, its metrics also served on `prometheus` when given.
    /// Call after every check of the inputs: nothing is written or deleted before this.
    pub fn open<T: Serialize>(
        output: &Path,
        inputs: &[String],
        prometheus: Option<SocketAddr>,
        spec: RunSpec,
        config: &T,
    ) -> Result<Self> {
        let stage = spec.kind.name();
        let dir = open_with_config(output, inputs, spec, config)?;
        let telemetry = Telemetry::install(stage, &output.join("metrics.jsonl"), prometheus)?;
        Ok(Self { dir, telemetry })
    }

    /// Opens `output` for a run nested in this one (a task's fine-tuning after
    /// multi-task training), whose metrics go to this run's `metrics.jsonl`.
    pub fn open_nested<T: Serialize>(
        &self,
        output: &Path,
        inputs: &[String],
        spec: RunSpec,
        config: &T,
    ) -> Result<RunDir> {
        open_with_config(output, inputs, spec, config)
    }

    /// A trainer into this folder.
    pub fn trainer(&self, config: TrainConfig) -> Trainer {
        self.trainer_in(self.dir.path(), config)
    }

    /// A trainer into `dir` (this folder or a nested run's), its checkpoints also
    /// recording where `metrics.jsonl` stood, so that a resume cuts that back as well.
    pub fn trainer_in(&self, dir: &Path, config: TrainConfig) -> Trainer {
        Trainer::new(config, dir).with_side_log(
            "metrics.jsonl",
            self.telemetry.path(),
            Arc::new(self.telemetry.flusher()),
        )
    }

    /// Records the run as finished, with its final figures (its run record lists every
    /// file it wrote).
    pub fn finish(self, end: RunEnd) -> Result<()> {
        self.dir.finish(end)
    }
}

/// `output` opened for `spec`, with the resolved `config` written beside its outputs.
fn open_with_config<T: Serialize>(
    output: &Path,
    inputs: &[String],
    spec: RunSpec,
    config: &T,
) -> Result<RunDir> {
    let stage = spec.kind.name();
    let dir = RunDir::open(output, spec)?;
    write_resolved_config(output, stage, inputs, config).map_err(record_error)?;
    Ok(dir)
}
