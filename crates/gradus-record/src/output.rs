//! A stage's output folder before the stage writes anything there: whose output it
//! holds, and whether this stage may write it. A folder belongs to one stage; its
//! `config.toml` (or, for a run killed before writing it, its `run.json`) says which.

use std::path::Path;

use serde::Serialize;

use crate::{RecordError, RunRecord};

/// The file in which a stage leaves the settings it ran with.
pub const RESOLVED_CONFIG: &str = "config.toml";

/// The first line of every `config.toml`, naming the stage.
const HEADER: &str = "# resolved configuration of `";

/// Files a listing of a refused folder names, at most.
const SHOWN: usize = 3;

/// How a folder stands for the stage that claimed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Nothing of this stage's is there yet: the folder is absent or empty, or (with
    /// overwrite) holds only files gradus did not write, which stay.
    New,
    /// This stage's own earlier output, for the stage to resume or replace.
    Own,
}

/// Checks that `dir` may take `stage`'s output, before anything is written there. A
/// folder holding another stage's output is refused even with `overwrite`: that output is
/// the other stage's to replace. A folder of files gradus did not write is refused
/// unless `overwrite` says to write there anyway.
pub fn claim_output(dir: &Path, stage: &str, overwrite: bool) -> Result<Claim, RecordError> {
    let names = visible_entries(dir)?;
    if names.is_empty() {
        return Ok(Claim::New);
    }
    match output_stage(dir)? {
        Some(owner) if owner == stage => Ok(Claim::Own),
        Some(owner) => Err(RecordError::Refused(format!(
            "{} holds the output of `{owner}`, not of `{stage}`; choose another output",
            dir.display()
        ))),
        None if overwrite => Ok(Claim::New),
        None => Err(RecordError::Refused(format!(
            "{} is not empty and is no stage's output folder ({}); choose another output, or \
             pass --overwrite to write there (`{stage}` replaces only its own files)",
            dir.display(),
            listing(&names)
        ))),
    }
}

/// [`claim_output`], then, for a new folder, the resolved config at once: a kill at any
/// later moment leaves a folder a rerun knows as this stage's. An earlier output keeps its
/// config until the stage has checked it may resume or replace it; the stage writes the
/// config again when it is done.
pub fn claim_output_with_config<T: Serialize>(
    dir: &Path,
    stage: &str,
    overwrite: bool,
    inputs: &[String],
    config: &T,
) -> Result<Claim, RecordError> {
    let claim = claim_output(dir, stage, overwrite)?;
    if claim == Claim::New {
        write_resolved_config(dir, stage, inputs, config)?;
    }
    Ok(claim)
}

/// The stage whose output `dir` holds: the one its `config.toml` names, else the kind of
/// its run record; `None` when it has neither.
pub fn output_stage(dir: &Path) -> Result<Option<String>, RecordError> {
    let path = dir.join(RESOLVED_CONFIG);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let stage = text
                .lines()
                .next()
                .and_then(|line| line.strip_prefix(HEADER))
                .and_then(|rest| rest.strip_suffix('`'));
            Ok(stage.map(str::to_string))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Ok(RunRecord::read(dir)?.map(|r| r.kind.name().to_string()))
        }
        Err(source) => Err(RecordError::Io { path, source }),
    }
}

/// Top-level names in `dir` other than hidden ones (the lock, temporary files), sorted;
/// none when it does not exist.
fn visible_entries(dir: &Path) -> Result<Vec<String>, RecordError> {
    let io = |source| RecordError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(e)),
    };
    let mut names = Vec::new();
    for entry in entries {
        let name = entry
            .map_err(io)?
            .file_name()
            .to_string_lossy()
            .into_owned();
        if !name.starts_with('.') {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

fn listing(names: &[String]) -> String {
    let mut text = names[..names.len().min(SHOWN)].join(", ");
    if names.len() > SHOWN {
        text.push_str(&format!(" and {} more", names.len() - SHOWN));
    }
    text
}

/// Writes `config` as `config.toml` inside `output` (created when missing), under a header
/// that names the stage, its inputs and its output, so that any output can be traced to
/// the exact settings. The file is replaced whole (written beside it, then renamed), so a
/// kill never leaves half a header.
pub fn write_resolved_config<T: Serialize>(
    output: &Path,
    stage: &str,
    inputs: &[String],
    config: &T,
) -> Result<(), RecordError> {
    let path = output.join(RESOLVED_CONFIG);
    let tmp = output.join(format!(".{RESOLVED_CONFIG}.tmp"));
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| RecordError::Io { path, source }
    };
    std::fs::create_dir_all(output).map_err(io(output))?;
    let body = toml::to_string_pretty(config).map_err(|e| io(&path)(std::io::Error::other(e)))?;
    let mut text = format!("{HEADER}{stage}`\n");
    for input in inputs {
        text.push_str(&format!("# input: {input}\n"));
    }
    text.push_str(&format!("# output: {}\n{body}", output.display()));
    std::fs::write(&tmp, text).map_err(io(&tmp))?;
    std::fs::rename(&tmp, &path).map_err(io(&path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct Settings {
        lr: f64,
    }

    fn claim(dir: &Path, stage: &str, overwrite: bool) -> Result<Claim, String> {
        claim_output(dir, stage, overwrite).map_err(|e| e.to_string())
    }

    #[test]
    fn a_folder_belongs_to_the_stage_that_wrote_it() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("out");
        assert_eq!(claim(&dir, "clean", false), Ok(Claim::New), "absent");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join(".gradus.lock"), "1").unwrap();
        assert_eq!(claim(&dir, "clean", false), Ok(Claim::New), "only hidden");

        write_resolved_config(&dir, "clean", &[], &Settings { lr: 1.0 }).unwrap();
        assert_eq!(output_stage(&dir).unwrap().as_deref(), Some("clean"));
        assert_eq!(claim(&dir, "clean", false), Ok(Claim::Own));
        for overwrite in [false, true] {
            let refused = claim(&dir, "eval", overwrite).unwrap_err();
            assert!(
                refused.contains("holds the output of `clean`, not of `eval`"),
                "{refused}"
            );
        }
    }

    #[test]
    fn files_gradus_did_not_write_are_written_beside_only_on_overwrite() {
        let tmp = tempfile::tempdir().unwrap();
        for name in ["a.txt", "b.txt", "c.txt", "d.txt"] {
            std::fs::write(tmp.path().join(name), "mine").unwrap();
        }
        let refused = claim(tmp.path(), "tokenize", false).unwrap_err();
        assert!(
            refused.contains("no stage's output folder (a.txt, b.txt, c.txt and 1 more)"),
            "{refused}"
        );
        assert_eq!(claim(tmp.path(), "tokenize", true), Ok(Claim::New));
    }

    #[test]
    fn a_run_killed_before_its_config_is_known_by_its_record() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(
            tmp.path().join(crate::RUN_RECORD),
            r#"{"kind":"pretrain","gradus_version":"0","config_hash":"h","settings":{},
               "inputs":[],"outputs":[],"facts":{},"finished":false}"#,
        )
        .unwrap();
        assert_eq!(claim(tmp.path(), "pretrain", false), Ok(Claim::Own));
        assert!(claim(tmp.path(), "finetune", false).is_err());
    }
}
