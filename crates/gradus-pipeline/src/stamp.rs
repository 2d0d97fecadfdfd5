//! Run records: what each stage last ran with, and the rule that decides whether it
//! must run again.
//!
//! A stage's record (`RUN_DIR/.gradus/<stage>.json`) is written when it starts
//! (`running`) and again when it finishes (`done`), with its lineage (its settings and
//! every upstream's), the digests of the upstream outputs it read, and the digest of its
//! own output. A stage is up to date when its record is `done` with the same lineage,
//! the same upstream digests, and an output that still has the recorded digest. A
//! `running` record with the same lineage is an interrupted run, which resumes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use gradus_shard::Manifest;
use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::Xxh3;

use crate::error::{PipelineError, Result};
use crate::plan::{Plan, Stage, hash_path};
use crate::spec::StageKind;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StampStatus {
    Running,
    Done,
}

/// A stage's run record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stamp {
    pub stage: String,
    pub kind: StageKind,
    pub status: StampStatus,
    pub lineage: String,
    pub config_hash: String,
    /// Upstream stage → digest of the output it read.
    pub inputs: BTreeMap<String, String>,
    /// Digest of the stage's output once done.
    pub output: Option<String>,
    pub seconds: Option<f64>,
    pub command: Vec<String>,
}

fn path(plan: &Plan, stage: &Stage) -> PathBuf {
    plan.run_dir
        .join(".gradus")
        .join(format!("{}.json", stage.name))
}

impl Stamp {
    /// The stage's record, if it has one. An unreadable record counts as none.
    pub fn read(plan: &Plan, stage: &Stage) -> Option<Self> {
        let text = std::fs::read_to_string(path(plan, stage)).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// Writes the record atomically.
    pub fn write(&self, plan: &Plan, stage: &Stage) -> Result<()> {
        let file = path(plan, stage);
        if let Some(dir) = file.parent() {
            std::fs::create_dir_all(dir).map_err(|e| PipelineError::file(dir, e))?;
        }
        let tmp = file.with_extension("json.tmp");
        let text = serde_json::to_string_pretty(self).map_err(|e| PipelineError::file(&file, e))?;
        std::fs::write(&tmp, text).map_err(|e| PipelineError::file(&tmp, e))?;
        std::fs::rename(&tmp, &file).map_err(|e| PipelineError::file(&file, e))
    }
}

/// The digest of a finished output, or `None` when it is missing or incomplete (a
/// dataset must be sealed).
pub fn output_digest(kind: StageKind, output: &Path) -> Option<String> {
    let mut h = Xxh3::new();
    for rel in kind.output_files() {
        let file = output.join(rel);
        if !file.is_file() {
            return None;
        }
        hash_path(&mut h, &file);
    }
    if kind.writes_shards() && !is_sealed(output) {
        return None;
    }
    Some(format!("{:016x}", h.digest()))
}

/// A dataset folder's manifest, if it has a readable one.
pub fn manifest(dir: &Path) -> Option<Manifest> {
    Manifest::load_if_exists(dir).ok().flatten()
}

/// Whether a dataset folder's manifest says it is sealed.
pub fn is_sealed(dir: &Path) -> bool {
    manifest(dir).is_some_and(|m| m.sealed)
}

/// Committed shards in a dataset folder (0 when it has no manifest yet).
pub fn committed_shards(dir: &Path) -> usize {
    manifest(dir).map_or(0, |m| m.shards.len())
}

/// What to do with a stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Up to date.
    Skip,
    /// Run it; `resume` continues the output of an interrupted run.
    Run { resume: bool, reason: String },
}

/// The upstream digests a stage would read now (`None` for an upstream not finished).
pub fn input_digests(plan: &Plan, stage: &Stage) -> BTreeMap<String, Option<String>> {
    stage
        .deps
        .iter()
        .map(|&d| {
            let up = &plan.stages[d];
            (up.name.clone(), output_digest(up.kind, &up.output))
        })
        .collect()
}

/// The rule of the module docs. `upstream_changing` names an upstream that runs in this
/// invocation and has not finished, so its output is not known yet.
pub fn decide(plan: &Plan, stage: &Stage, forced: bool, upstream_changing: Option<&str>) -> Action {
    let run = |resume, reason: &str| Action::Run {
        resume,
        reason: reason.to_string(),
    };
    if forced {
        return run(false, "forced");
    }
    let Some(stamp) = Stamp::read(plan, stage) else {
        return run(false, "not run before");
    };
    if stamp.lineage != stage.lineage {
        return if stamp.config_hash == stage.config_hash {
            run(false, "an upstream stage's settings changed")
        } else {
            run(false, "settings or input files changed")
        };
    }
    if stamp.status == StampStatus::Running {
        return run(true, "resuming an interrupted run");
    }
    if let Some(up) = upstream_changing {
        return run(false, &format!("upstream `{up}` runs"));
    }
    for (name, digest) in input_digests(plan, stage) {
        if digest.is_none() || stamp.inputs.get(&name) != digest.as_ref() {
            return run(false, &format!("the output of `{name}` changed"));
        }
    }
    if output_digest(stage.kind, &stage.output) != stamp.output {
        return run(false, "its output is missing or was changed");
    }
    Action::Skip
}
