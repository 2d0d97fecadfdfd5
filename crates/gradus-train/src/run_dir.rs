//! The output folder of a run, as every training stage and the evaluation open it:
//! locked for the run's lifetime, emptied by `--overwrite` only of what gradus wrote
//! there, and refused for a resume under settings other than those it was started with.
//! The run record (`run.json`, [`gradus_record::RunRecord`]) makes the last two possible.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use gradus_record::{Best, RUN_RECORD, RecordError, RunFacts, RunKind, RunRecord};
use gradus_shard::{FolderLock, LOCK_FILE, LockError, config_hash};
use serde::Serialize;
use serde_json::Value;

use crate::error::{Result, TrainError};

/// What the training stages write into their output folder.
pub const TRAINING_OUTPUTS: &[&str] = &[
    "config.toml",
    RUN_RECORD,
    "train.jsonl",
    "eval.jsonl",
    "metrics.jsonl",
    "checkpoints",
    "model",
    "report.json",
    "metrics.json",
    "summary.txt",
    "tasks",
    "finetune",
];

/// Settings that cannot change what a run computes, so a resume may change them.
const EXEMPT: &[&str] = &["checkpoint_interval", "keep_last"];

/// How a stage opens its run folder.
#[derive(Debug, Clone)]
pub struct RunSpec {
    pub kind: RunKind,
    /// The stage's resolved config, as compared on resume.
    pub settings: Value,
    /// Files and folders the run reads: never deleted, never inside what is.
    pub inputs: Vec<PathBuf>,
    /// What the stage writes there (top-level names).
    pub outputs: Vec<String>,
    /// Model, data, tokenizer, seed and selection metric, for the run record.
    pub facts: RunFacts,
    /// Start again: delete what an earlier run wrote.
    pub overwrite: bool,
    /// Whether a rerun continues the earlier run (training), so that it must have the
    /// same settings, or replaces its outputs (evaluation).
    pub resumes: bool,
}

impl RunSpec {
    /// The run of kind `kind` under `settings`, writing the training stages' outputs
    /// (evaluation names its own), continued by a rerun.
    pub fn new(kind: RunKind, settings: &impl Serialize, overwrite: bool) -> Result<Self> {
        Ok(Self {
            kind,
            settings: serde_json::to_value(settings)
                .map_err(|e| TrainError::Config(format!("{kind} settings: {e}")))?,
            inputs: Vec::new(),
            outputs: TRAINING_OUTPUTS.iter().map(|s| s.to_string()).collect(),
            facts: RunFacts::default(),
            overwrite,
            resumes: true,
        })
    }

    pub fn with_inputs(mut self, inputs: impl IntoIterator<Item = PathBuf>) -> Self {
        self.inputs.extend(inputs);
        self
    }

    /// What the run is about, for its record; its data and base model are inputs too.
    pub fn with_facts(mut self, facts: RunFacts) -> Self {
        let read = facts
            .base_model
            .iter()
            .chain(&facts.data)
            .chain(&facts.tokenizer);
        for path in read {
            if !self.inputs.contains(path) {
                self.inputs.push(path.clone());
            }
        }
        self.facts = facts;
        self
    }
}

/// How a run ended, for its record.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunEnd {
    /// The kept model's figures.
    pub figures: BTreeMap<String, f64>,
    pub best: Option<Best>,
    /// Optimiser steps taken.
    pub steps: Option<u64>,
    /// What was drawn from each dataset of mixed training data.
    pub data_seen: BTreeMap<String, gradus_record::SourceSeen>,
}

impl RunEnd {
    /// The end of a trainer's run: its last evaluation and best selection value.
    pub fn of(report: &crate::TrainReport) -> Self {
        Self {
            figures: report.last_eval.clone().unwrap_or_default(),
            best: Best::of(report.best_value, report.best_step),
            steps: Some(report.steps),
            data_seen: report.data_seen.clone(),
        }
    }

    pub fn with_figures(mut self, figures: BTreeMap<String, f64>) -> Self {
        self.figures = figures;
        self
    }
}

/// A locked run folder; the lock goes with it.
#[derive(Debug)]
pub struct RunDir {
    dir: PathBuf,
    record: RunRecord,
    /// What the folder held when the run started, to tell what the run added.
    before: BTreeSet<String>,
    _lock: FolderLock,
}

impl RunDir {
    /// Opens `dir` for the run `spec`, checking everything before changing anything:
    /// that the folder is this stage's ([`gradus_record::claim_output`]), the lock, then
    /// (with overwrite) that no input lies inside the folder, or else (for a resume) that
    /// the earlier run's settings are the same.
    pub fn open(dir: &Path, spec: RunSpec) -> Result<Self> {
        if spec.overwrite {
            refuse_inputs_inside(dir, &spec.inputs)?;
        }
        gradus_record::claim_output(dir, spec.kind.name(), spec.overwrite).map_err(record_error)?;
        std::fs::create_dir_all(dir).map_err(|e| TrainError::file(dir, e))?;
        let lock = FolderLock::take(dir).map_err(|e| match e {
            LockError::Held { .. } => TrainError::Refused(e.to_string()),
            LockError::Io { path, source } => TrainError::file(&path, source),
        })?;
        let earlier = read_record(dir)?;
        if spec.overwrite {
            let mut names: BTreeSet<String> = spec.outputs.iter().cloned().collect();
            names.extend(earlier.iter().flat_map(|r| r.outputs.iter().cloned()));
            remove_outputs(dir, &names)?;
        } else if let Some(earlier) = earlier.as_ref().filter(|_| spec.resumes) {
            refuse_other_settings(dir, earlier, &spec)?;
        }
        // A resumed run keeps what the earlier one recorded until it has better to say:
        // a rerun of a finished run trains nothing and evaluates nothing.
        let kept = earlier.filter(|_| spec.resumes && !spec.overwrite);
        let mut outputs: BTreeSet<String> = spec.outputs.into_iter().collect();
        outputs.extend(kept.iter().flat_map(|r| r.outputs.iter().cloned()));
        let record = RunRecord {
            kind: spec.kind,
            gradus_version: env!("CARGO_PKG_VERSION").to_string(),
            config_hash: config_hash(&without_exempt(&spec.settings)),
            settings: spec.settings,
            inputs: spec.inputs,
            outputs: outputs.into_iter().collect(),
            facts: spec.facts,
            finished: false,
            figures: kept.as_ref().map(|r| r.figures.clone()).unwrap_or_default(),
            best: kept.as_ref().and_then(|r| r.best),
            steps: kept.as_ref().and_then(|r| r.steps),
            data_seen: kept
                .as_ref()
                .map(|r| r.data_seen.clone())
                .unwrap_or_default(),
        };
        let run = Self {
            before: entries(dir)?,
            dir: dir.to_path_buf(),
            record,
            _lock: lock,
        };
        run.write_record()?;
        Ok(run)
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    pub fn record(&self) -> &RunRecord {
        &self.record
    }

    /// Records the run as finished, with its final figures and every top-level file it
    /// added.
    pub fn finish(mut self, end: RunEnd) -> Result<()> {
        let added = entries(&self.dir)?;
        let mut outputs: BTreeSet<String> = self.record.outputs.iter().cloned().collect();
        outputs.extend(added.difference(&self.before).cloned());
        self.record.outputs = outputs.into_iter().collect();
        self.record.finished = true;
        if !end.figures.is_empty() {
            self.record.figures = end.figures;
        }
        self.record.best = end.best.or(self.record.best);
        self.record.steps = end.steps.or(self.record.steps);
        if !end.data_seen.is_empty() {
            self.record.data_seen = end.data_seen;
        }
        for model in model_folders(&self.dir) {
            gradus_export::complete(&model, &self.record)
                .map_err(|e| TrainError::Refused(format!("completing {}: {e}", model.display())))?;
        }
        self.write_record()
    }

    fn write_record(&self) -> Result<()> {
        self.record.write(&self.dir).map_err(record_error)
    }
}

/// The model folders a run keeps: `model`, and each task's under `tasks` (a multi-task
/// run's exports).
fn model_folders(dir: &Path) -> Vec<PathBuf> {
    let mut folders = vec![dir.join("model")];
    if let Ok(tasks) = std::fs::read_dir(dir.join("tasks")) {
        let mut names: Vec<PathBuf> = tasks.flatten().map(|e| e.path()).collect();
        names.sort();
        folders.extend(names);
    }
    folders.retain(|f| f.join("config.json").is_file());
    folders
}

fn read_record(dir: &Path) -> Result<Option<RunRecord>> {
    RunRecord::read(dir).map_err(record_error)
}

pub(crate) fn record_error(e: RecordError) -> TrainError {
    match e {
        RecordError::Io { path, source } => TrainError::file(&path, source),
        RecordError::Invalid { path, message } => TrainError::file(&path, message),
        RecordError::Refused(message) => TrainError::Refused(message),
    }
}

/// Top-level names in `dir`, besides the lock and temporary files.
fn entries(dir: &Path) -> Result<BTreeSet<String>> {
    let mut names = BTreeSet::new();
    for entry in std::fs::read_dir(dir).map_err(|e| TrainError::file(dir, e))? {
        let entry = entry.map_err(|e| TrainError::file(dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name != LOCK_FILE && !name.starts_with('.') {
            names.insert(name);
        }
    }
    Ok(names)
}

/// With `--overwrite`, the folder is emptied: an input inside it would go with it.
fn refuse_inputs_inside(dir: &Path, inputs: &[PathBuf]) -> Result<()> {
    let Ok(out) = dir.canonicalize() else {
        return Ok(()); // not there yet: nothing to delete
    };
    for input in inputs {
        let Ok(real) = input.canonicalize() else {
            continue;
        };
        if real.starts_with(&out) {
            return Err(TrainError::Refused(format!(
                "--overwrite would empty {}, which holds the input {}; choose another output",
                dir.display(),
                input.display()
            )));
        }
    }
    Ok(())
}

/// Deletes the named top-level entries of `dir` that exist; anything else stays.
fn remove_outputs(dir: &Path, names: &BTreeSet<String>) -> Result<()> {
    for name in names {
        // A record is data: a name that leaves the folder is not ours to delete.
        if name.is_empty() || name.contains(['/', '\\']) || name == ".." || name == "." {
            continue;
        }
        let path = dir.join(name);
        let removed = match std::fs::symlink_metadata(&path) {
            Ok(m) if m.is_dir() => std::fs::remove_dir_all(&path),
            Ok(_) => std::fs::remove_file(&path),
            Err(_) => continue,
        };
        removed.map_err(|e| TrainError::file(&path, e))?;
    }
    Ok(())
}

fn refuse_other_settings(dir: &Path, earlier: &RunRecord, spec: &RunSpec) -> Result<()> {
    if earlier.kind != spec.kind {
        return Err(TrainError::Refused(format!(
            "{} holds a {} run, not a {} run; choose another output or pass --overwrite",
            dir.display(),
            earlier.kind,
            spec.kind
        )));
    }
    let changed = changed_settings(&earlier.settings, &spec.settings);
    if changed.is_empty() {
        return Ok(());
    }
    Err(TrainError::Refused(format!(
        "{} was trained with other settings ({}); rerun with the same settings to resume, or pass --overwrite to start again",
        dir.display(),
        changed.join(", ")
    )))
}

/// `key: old -> new` for every setting that differs, exempt keys aside.
fn changed_settings(old: &Value, new: &Value) -> Vec<String> {
    let (mut a, mut b) = (BTreeMap::new(), BTreeMap::new());
    flatten("", old, &mut a);
    flatten("", new, &mut b);
    let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    let show = |v: Option<&Value>| v.map_or("(unset)".to_string(), Value::to_string);
    keys.into_iter()
        .filter(|k| !is_exempt(k) && a.get(*k) != b.get(*k))
        .map(|k| format!("{k}: {} -> {}", show(a.get(k)), show(b.get(k))))
        .collect()
}

fn is_exempt(key: &str) -> bool {
    EXEMPT.contains(&key.rsplit('.').next().unwrap_or(key))
}

fn flatten(prefix: &str, value: &Value, out: &mut BTreeMap<String, Value>) {
    let join = |k: &str| {
        if prefix.is_empty() {
            k.to_string()
        } else {
            format!("{prefix}.{k}")
        }
    };
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                flatten(&join(k), v, out);
            }
        }
        Value::Array(items) if items.iter().any(|v| v.is_object()) => {
            for (i, v) in items.iter().enumerate() {
                flatten(&join(&i.to_string()), v, out);
            }
        }
        other => {
            out.insert(prefix.to_string(), other.clone());
        }
    }
}

fn without_exempt(settings: &Value) -> Value {
    match settings {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(k, _)| !EXEMPT.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), without_exempt(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(without_exempt).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(settings: Value, overwrite: bool) -> RunSpec {
        RunSpec::new(RunKind::Pretrain, &settings, overwrite).unwrap()
    }

    #[test]
    fn a_resume_under_other_settings_names_them() {
        let dir = tempfile::tempdir().unwrap();
        let a = json!({"train": {"lr": 1e-3, "steps": 10, "checkpoint_interval": 5}});
        RunDir::open(dir.path(), spec(a, false)).unwrap();
        let exempt = json!({"train": {"lr": 1e-3, "steps": 10, "checkpoint_interval": 2}});
        RunDir::open(dir.path(), spec(exempt, false)).unwrap();
        let b = json!({"train": {"lr": 5e-4, "steps": 10, "checkpoint_interval": 5}});
        let err = RunDir::open(dir.path(), spec(b.clone(), false))
            .unwrap_err()
            .to_string();
        assert!(err.contains("train.lr: 0.001 -> 0.0005"), "{err}");
        assert!(!err.contains("steps"), "{err}");
        RunDir::open(dir.path(), spec(b, true)).unwrap();
    }

    #[test]
    fn two_runs_never_share_a_folder() {
        let dir = tempfile::tempdir().unwrap();
        let first = RunDir::open(dir.path(), spec(json!({}), false)).unwrap();
        let err = RunDir::open(dir.path(), spec(json!({}), true))
            .unwrap_err()
            .to_string();
        assert!(err.contains("in use by another gradus process"), "{err}");
        assert!(dir.path().join(RUN_RECORD).is_file(), "nothing was deleted");
        drop(first);
    }

    /// A run never writes into a folder that is not its stage's: another stage's output
    /// (even with overwrite), or a folder of other files (a model folder) unless told to.
    #[test]
    fn a_run_writes_only_into_its_own_stages_folder() {
        let dir = tempfile::tempdir().unwrap();
        RunDir::open(dir.path(), spec(json!({}), false)).unwrap();
        let finetune = |overwrite| {
            let spec = RunSpec::new(RunKind::Finetune, &json!({}), overwrite).unwrap();
            RunDir::open(dir.path(), spec).unwrap_err().to_string()
        };
        for overwrite in [false, true] {
            let err = finetune(overwrite);
            assert!(
                err.contains("output of `pretrain`, not of `finetune`"),
                "{err}"
            );
        }
        let model = tempfile::tempdir().unwrap();
        std::fs::write(model.path().join("config.json"), "{}").unwrap();
        let err = RunDir::open(model.path(), spec(json!({}), false))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("no stage's output folder (config.json)"),
            "{err}"
        );
        assert!(
            !model.path().join(RUN_RECORD).exists(),
            "nothing was written"
        );
    }

    #[test]
    fn overwrite_deletes_only_what_gradus_wrote() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::open(dir.path(), spec(json!({}), false)).unwrap();
        std::fs::create_dir_all(dir.path().join("checkpoints/step-1")).unwrap();
        std::fs::write(dir.path().join("train.jsonl"), "{}\n").unwrap();
        std::fs::write(dir.path().join("extra.svg"), "<svg/>").unwrap();
        run.finish(RunEnd::default()).unwrap();
        std::fs::write(dir.path().join("notes.txt"), "mine").unwrap();
        let run = RunDir::open(dir.path(), spec(json!({}), true)).unwrap();
        assert!(dir.path().join("notes.txt").is_file());
        for gone in ["checkpoints", "train.jsonl", "extra.svg"] {
            assert!(!dir.path().join(gone).exists(), "{gone}");
        }
        assert!(!run.record().finished);
    }

    #[test]
    fn overwrite_refuses_a_folder_holding_an_input() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("pretrain");
        std::fs::create_dir_all(&input).unwrap();
        std::fs::write(input.join("train.jsonl"), "{}\n").unwrap();
        let err = RunDir::open(
            dir.path(),
            spec(json!({}), true).with_inputs([input.clone()]),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("holds the input"), "{err}");
        assert!(input.join("train.jsonl").is_file());
    }
}

#[cfg(test)]
mod resume_tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_rerun_that_evaluates_nothing_keeps_the_recorded_figures() {
        let dir = tempfile::tempdir().unwrap();
        let spec = || RunSpec::new(RunKind::Finetune, &json!({"lr": 1}), false).unwrap();
        let end = RunEnd {
            figures: [("accuracy".to_string(), 0.9)].into(),
            best: Some(Best {
                value: 0.9,
                step: 4,
            }),
            steps: Some(4),
            ..RunEnd::default()
        };
        RunDir::open(dir.path(), spec())
            .unwrap()
            .finish(end.clone())
            .unwrap();
        let rerun = RunDir::open(dir.path(), spec()).unwrap();
        rerun.finish(RunEnd::default()).unwrap();
        let r = RunRecord::require(dir.path()).unwrap();
        assert_eq!((r.figures, r.best), (end.figures, end.best));
        // --overwrite starts the record again.
        let again = RunDir::open(
            dir.path(),
            RunSpec::new(RunKind::Finetune, &json!({"lr": 1}), true).unwrap(),
        );
        again.unwrap().finish(RunEnd::default()).unwrap();
        assert!(RunRecord::require(dir.path()).unwrap().figures.is_empty());
    }
}
