//! `gradus export`: a model folder or checkpoint written as a standalone folder in a
//! chosen layout, with its tokenizer and its card.

use std::path::{Path, PathBuf};

use gradus_record::RunRecord;

use crate::card::Provenance;
use crate::error::{ExportError, Result};
use crate::kind::{ModelFolder, ModelKind};
use crate::layout::Layout;

/// What to export, and where.
#[derive(Debug, Clone)]
pub struct ExportSpec {
    /// A model folder, a checkpoint (`RUN/checkpoints/step-N`) or a run folder (its
    /// kept model).
    pub from: PathBuf,
    pub to: PathBuf,
    /// The folder's natural layout when not given.
    pub layout: Option<Layout>,
    /// The tokenizer, when the folder and its run record name none.
    pub tokenizer: Option<PathBuf>,
    /// Replace an existing `to` (after every check).
    pub overwrite: bool,
}

/// What was written.
#[derive(Debug, Clone, Copy)]
pub struct Exported {
    pub kind: ModelKind,
    pub layout: Layout,
}

/// Writes `spec.from` into `spec.to`. Everything is checked, and the folder written
/// beside `to`, before an existing `to` is replaced.
pub fn export(spec: &ExportSpec) -> Result<Exported> {
    let source = model_dir(&spec.from);
    let folder = ModelFolder::read(&source)?;
    let layout = spec.layout.unwrap_or(Layout::natural(folder.kind));
    layout.check(folder.kind)?;
    let (run_dir, record) = run_of(&source)?;
    let tokenizer = tokenizer(
        &source,
        spec.tokenizer.as_deref(),
        run_dir.as_deref(),
        record.as_ref(),
    )?;
    check_target(spec, &source)?;
    let taken = taken(&source, run_dir.as_deref());
    let from = Provenance {
        record: record.as_ref(),
        taken: Some(&taken),
    };
    let tmp = sibling(&spec.to, "export-tmp");
    std::fs::create_dir_all(tmp.parent().unwrap_or(Path::new(".")))
        .map_err(|e| ExportError::file(&tmp, e))?;
    std::fs::create_dir(&tmp).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => ExportError::Refused(format!(
            "{} exists: another export is writing {}, or one was stopped (remove it)",
            tmp.display(),
            spec.to.display()
        )),
        _ => ExportError::file(&tmp, e),
    })?;
    let written = crate::write(&folder, layout, &tmp, Some(&tokenizer), from);
    if let Err(e) = written {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    if spec.to.exists() {
        std::fs::remove_dir_all(&spec.to).map_err(|e| ExportError::file(&spec.to, e))?;
    }
    std::fs::rename(&tmp, &spec.to).map_err(|e| ExportError::file(&spec.to, e))?;
    Ok(Exported {
        kind: folder.kind,
        layout,
    })
}

/// A run folder stands for its kept model.
fn model_dir(from: &Path) -> PathBuf {
    let model = from.join("model");
    if from.join(gradus_record::RUN_RECORD).is_file() && model.join("config.json").is_file() {
        model
    } else {
        from.to_path_buf()
    }
}

/// The run folder `source` lies in (up to `RUN/checkpoints/step-N` or `RUN/tasks/T`),
/// with its record.
fn run_of(source: &Path) -> Result<(Option<PathBuf>, Option<RunRecord>)> {
    for dir in source.ancestors().skip(1).take(3) {
        if dir.join(gradus_record::RUN_RECORD).is_file() {
            let record = RunRecord::read(dir).map_err(|e| ExportError::Refused(e.to_string()))?;
            return Ok((Some(dir.to_path_buf()), record));
        }
    }
    Ok((None, None))
}

/// The tokenizer: the folder's own, else the one given, else its run's (the record's,
/// the kept model's, the base model's).
fn tokenizer(
    source: &Path,
    given: Option<&Path>,
    run: Option<&Path>,
    record: Option<&RunRecord>,
) -> Result<gradus_tokenize::Tokenizer> {
    let own = source.join("tokenizer.json");
    let of_run = [
        record.and_then(|r| r.facts.tokenizer.clone()),
        run.map(|r| r.join("model/tokenizer.json")),
        record.and_then(|r| Some(r.facts.base_model.as_ref()?.join("tokenizer.json"))),
    ];
    let path = std::iter::once(Some(own))
        .chain([given.map(Path::to_path_buf)])
        .chain(of_run)
        .flatten()
        .find(|p| p.exists())
        .ok_or_else(|| {
            ExportError::Refused(format!(
                "{} has no tokenizer.json and its run names none: give one with --tokenizer",
                source.display()
            ))
        })?;
    gradus_tokenize::load(&path).map_err(|e| ExportError::file(&path, e))
}

/// `to` must be new or empty, unless replacing it is asked for; it never holds the
/// source, nor a stage's output.
fn check_target(spec: &ExportSpec, source: &Path) -> Result<()> {
    let to = &spec.to;
    if let (Some(target), Ok(src)) = (resolved(to), source.canonicalize())
        && (src.starts_with(&target) || target.starts_with(&src))
    {
        return Err(ExportError::Refused(format!(
            "{} and the model being exported {} lie one inside the other; choose another \
             output",
            spec.to.display(),
            source.display()
        )));
    }
    let occupied = std::fs::read_dir(to).is_ok_and(|mut d| d.next().is_some());
    // --overwrite replaces an earlier export, never a stage's output or a run.
    if occupied
        && let Some(stage) =
            gradus_record::output_stage(to).map_err(|e| ExportError::file(to, e))?
    {
        return Err(ExportError::Refused(format!(
            "{} holds the output of `{stage}`, which an export does not replace; choose \
             another output",
            to.display()
        )));
    }
    if occupied && !spec.overwrite {
        return Err(ExportError::Refused(format!(
            "{} is not empty (use --overwrite to replace it)",
            to.display()
        )));
    }
    if to.is_file() {
        return Err(ExportError::Refused(format!("{} is a file", to.display())));
    }
    Ok(())
}

/// `path` made absolute through its nearest existing ancestor (it may not exist yet).
fn resolved(path: &Path) -> Option<PathBuf> {
    let absolute = std::path::absolute(path).ok()?;
    let mut rest = Vec::new();
    let mut at = absolute.as_path();
    loop {
        if let Ok(real) = at.canonicalize() {
            return Some(rest.iter().rev().fold(real, |p, name| p.join(name)));
        }
        rest.push(at.file_name()?.to_os_string());
        at = at.parent()?;
    }
}

/// How the folder was taken from its run, for the card.
fn taken(source: &Path, run: Option<&Path>) -> String {
    let relative = run
        .and_then(|r| source.strip_prefix(r).ok())
        .map(|p| p.display().to_string());
    match relative.as_deref() {
        Some("model") | None => "the kept model".into(),
        Some(other) => format!("`{other}` of the run"),
    }
}

/// `DIR/.NAME.suffix` beside `path`.
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let name = path
        .file_name()
        .map_or("export".into(), |n| n.to_string_lossy());
    path.with_file_name(format!(".{name}.{suffix}"))
}
