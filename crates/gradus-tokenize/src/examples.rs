//! Labeled task files to an `examples` dataset: column mapping, label maps, sentence
//! pairs with token type ids, `longest_first` truncation, per-row error policy.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use gradus_shard::{
    DatasetKind, DatasetWriter, Example, InputRef, Manifest, OpenMode, Producer, Record,
    WriterOptions,
};
use serde::{Deserialize, Serialize};
use tokenizers::{EncodeInput, Tokenizer, TruncationParams, TruncationStrategy};

use crate::error::{Result, TokenizeError};
use crate::spec::fingerprint;
use crate::table::{Row, Table, read_table};
use crate::template::{Template, TemplateEncoder};

pub use gradus_shard::OnError;

/// Settings of example encoding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExamplesConfig {
    /// Task name stored in every row.
    pub task: String,
    /// Column of the (first) text.
    pub text: String,
    /// Column of the second text of a sentence pair.
    pub text_pair: Option<String>,
    /// Column of class labels (classification); without `label` and `score`, a column
    /// named `label` is used when the files have one.
    pub label: Option<String>,
    /// Column of numeric targets (regression).
    pub score: Option<String>,
    /// Class names in id order; inferred from the files when absent (integers in numeric
    /// order, names alphabetically).
    pub labels: Option<Vec<String>>,
    /// Whether TSV/CSV files start with a header; without one, columns are `0`, `1`, ...
    pub has_header: bool,
    /// Longest encoded example, special tokens included (`longest_first` truncation).
    pub seq_len: usize,
    pub on_error: OnError,
    /// Examples per encode batch.
    pub batch_rows: usize,
    /// Moves this seeded share of the `train` split's rows into `validation` (a dev set
    /// cut from a file that has no separate one); 0 moves none.
    pub validation_fraction: f64,
    /// Seeds which rows `validation_fraction` moves.
    pub seed: u64,
    /// Instruction examples: the column of the responses. Each row becomes its prompt
    /// in `template`, then its response and `eos`; the response's tokens are segment 1
    /// (what a loss counts), the prompt's segment 0.
    pub response: Option<String>,
    /// Instruction examples: the column of the prompts.
    pub prompt: String,
    /// Instruction examples: the text around each prompt, with one `{prompt}`.
    pub template: String,
    /// Instruction examples: the token after each response; by default the tokenizer's
    /// end-of-text token.
    pub eos: Option<String>,
}

/// A seeded, reproducible share of split `from`'s rows relabelled as split `to`.
#[derive(Debug, Clone, PartialEq)]
pub struct Holdout {
    pub from: String,
    pub to: String,
    /// Share of `from`'s rows moved, in (0, 1).
    pub fraction: f64,
    pub seed: u64,
}

impl Holdout {
    /// The split of a row of split `split` at `line`: each row is decided on its own
    /// by a hash of the seed and its line, so the choice does not depend on the order
    /// or number of the other rows.
    pub fn split_of<'a>(&'a self, split: &'a str, line: usize) -> &'a str {
        if split != self.from {
            return split;
        }
        let mut z = self.seed ^ (line as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        // splitmix64's finaliser: a well-mixed 64-bit value per (seed, line).
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        if ((z >> 11) as f64 / (1u64 << 53) as f64) < self.fraction {
            &self.to
        } else {
            split
        }
    }
}

impl ExamplesConfig {
    /// Refuses settings no dataset can be encoded with, before any file is read.
    pub fn check(&self) -> Result<()> {
        let refuse = |message: String| Err(TokenizeError::Config(message));
        if self.task.is_empty() || self.task.contains(['/', '.']) {
            return refuse(format!(
                "task {:?}: name the task, without `/` or `.` (it names the task's head and \
                 folders downstream)",
                self.task
            ));
        }
        if self.seq_len == 0 {
            return refuse("seq_len 0: examples need room for their tokens".into());
        }
        if !(0.0..1.0).contains(&self.validation_fraction) {
            return refuse(format!(
                "validation_fraction {} is not in [0, 1)",
                self.validation_fraction
            ));
        }
        if self.label.is_some() && self.score.is_some() {
            return refuse("set `label` (classification) or `score` (regression), not both".into());
        }
        if self.response.is_some() && (self.label.is_some() || self.score.is_some()) {
            return refuse("instruction examples (`response`) have no `label` or `score`".into());
        }
        Ok(())
    }

    /// The rows `validation_fraction` moves from `train` to `validation`, if any.
    pub fn holdout(&self) -> Option<Holdout> {
        (self.validation_fraction > 0.0).then(|| Holdout {
            from: "train".into(),
            to: "validation".into(),
            fraction: self.validation_fraction,
            seed: self.seed,
        })
    }
}

impl Default for ExamplesConfig {
    fn default() -> Self {
        Self {
            task: "task".into(),
            text: "sentence".into(),
            text_pair: None,
            label: None,
            score: None,
            labels: None,
            has_header: true,
            seq_len: 128,
            on_error: OnError::Fail,
            batch_rows: 1024,
            validation_fraction: 0.0,
            seed: 42,
            response: None,
            prompt: "prompt".into(),
            template: "{prompt}\n".into(),
            eos: None,
        }
    }
}

/// One input file and the split its rows belong to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SplitFile {
    pub split: String,
    pub path: PathBuf,
}

impl SplitFile {
    /// Parses `SPLIT=PATH`, or a bare `PATH` that gets `default_split`.
    pub fn parse(text: &str, default_split: &str) -> Self {
        match text.split_once('=') {
            Some((split, path)) if !split.contains('/') => Self {
                split: split.to_string(),
                path: path.into(),
            },
            _ => Self {
                split: default_split.to_string(),
                path: text.into(),
            },
        }
    }
}

/// Where each file's rows go: the writer's source key (its path; `SPLIT=PATH` for a path
/// read for several splits) and the start of its rows' ids. A split's only file gives
/// ids `task:split:line`; with several files in a split, `task:split:NAME:line`, NAME the
/// file's name (its path where two share a name), so that ids stay unique. The same file
/// twice in one split is refused: its rows would be written twice under the same ids.
fn file_keys(task: &str, files: &[SplitFile]) -> Result<Vec<(String, String)>> {
    let same = |a: &Path, b: &Path| {
        a == b
            || std::fs::canonicalize(a)
                .ok()
                .is_some_and(|a| std::fs::canonicalize(b).ok() == Some(a))
    };
    let name = |f: &SplitFile| f.path.file_name().map(|n| n.to_string_lossy().into_owned());
    let mut keys = Vec::with_capacity(files.len());
    for (i, f) in files.iter().enumerate() {
        let others = || {
            files
                .iter()
                .enumerate()
                .filter(move |&(j, _)| j != i)
                .map(|(_, g)| g)
        };
        if others().any(|g| g.split == f.split && same(&g.path, &f.path)) {
            return Err(TokenizeError::Config(format!(
                "{}: given twice for split `{}` (its rows would be written twice)",
                f.path.display(),
                f.split
            )));
        }
        let path = f.path.display().to_string();
        let key = if others().any(|g| same(&g.path, &f.path)) {
            format!("{}={path}", f.split)
        } else {
            path.clone()
        };
        let in_split: Vec<&SplitFile> = others().filter(|g| g.split == f.split).collect();
        let id = if in_split.is_empty() {
            format!("{task}:{}", f.split)
        } else if in_split.iter().all(|g| name(g) != name(f)) {
            format!("{task}:{}:{}", f.split, name(f).unwrap_or(path))
        } else {
            format!("{task}:{}:{path}", f.split)
        };
        keys.push((key, id));
    }
    Ok(keys)
}

/// The mapping of class names to ids, saved as `labels.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelMap {
    pub task: String,
    pub names: Vec<String>,
}

impl LabelMap {
    fn id(&self, name: &str) -> Option<i64> {
        self.names.iter().position(|n| n == name).map(|i| i as i64)
    }
}

/// A file's rows with the positions of the mapped columns.
struct Mapped {
    file: SplitFile,
    table: Table,
    /// The text, or an instruction's prompt.
    text: usize,
    /// The second text, or an instruction's response.
    pair: Option<usize>,
    label: Option<usize>,
    score: Option<usize>,
}

impl Mapped {
    fn load(file: &SplitFile, config: &ExamplesConfig) -> Result<Self> {
        let table = read_table(&file.path, config.has_header)?;
        let col = |name: &Option<String>| -> Result<Option<usize>> {
            name.as_deref()
                .map(|n| table.column(&file.path, n))
                .transpose()
        };
        if config.response.is_some() {
            return Ok(Self {
                text: table.column(&file.path, &config.prompt)?,
                pair: col(&config.response)?,
                label: None,
                score: None,
                file: file.clone(),
                table,
            });
        }
        Ok(Self {
            text: table.column(&file.path, &config.text)?,
            pair: col(&config.text_pair)?,
            label: match &config.label {
                Some(name) => Some(table.column(&file.path, name)?),
                None if config.score.is_none() => table.columns.iter().position(|c| c == "label"),
                None => None,
            },
            score: col(&config.score)?,
            file: file.clone(),
            table,
        })
    }

    fn cell<'a>(&self, row: &'a Row, col: usize) -> Option<&'a str> {
        row.cells.get(col).and_then(|c| c.as_deref())
    }
}

/// Infers class names from every file's label column.
fn infer_labels(files: &[Mapped]) -> Vec<String> {
    let mut names = BTreeSet::new();
    for f in files {
        if let Some(col) = f.label {
            for row in &f.table.rows {
                if let Some(v) = f.cell(row, col).map(str::trim).filter(|v| !v.is_empty()) {
                    names.insert(v.to_string());
                }
            }
        }
    }
    let mut names: Vec<String> = names.into_iter().collect();
    if names.iter().all(|n| n.parse::<i64>().is_ok()) {
        names.sort_by_key(|n| n.parse::<i64>().unwrap_or_default());
    }
    names
}

/// Counts of what was encoded and left out.
#[derive(Debug, Default, Serialize)]
struct Counts {
    rows: BTreeMap<String, u64>,
    skipped: BTreeMap<String, u64>,
    truncated: u64,
}

/// Encodes labeled `files` into an `examples` dataset at `output`, with `labels.json`
/// (classification) and `tokenizer.json` beside the shards.
pub fn encode_examples(
    tokenizer: &Tokenizer,
    config: &ExamplesConfig,
    files: &[SplitFile],
    output: &Path,
    mode: OpenMode,
) -> Result<Manifest> {
    config.check()?;
    let added = tokenizer.get_post_processor().map_or(0, |p| {
        tokenizers::PostProcessor::added_tokens(p, config.text_pair.is_some())
    });
    if config.response.is_none() && config.seq_len <= added {
        return Err(TokenizeError::Config(format!(
            "seq_len {}: leaves no room for text beside the {added} special tokens the \
             tokenizer adds",
            config.seq_len
        )));
    }
    let template = config
        .response
        .as_ref()
        .map(|_| Template::new(&config.template, config.eos.as_deref(), tokenizer))
        .transpose()?;
    let keys = file_keys(&config.task, files)?;
    let mapped = files
        .iter()
        .map(|f| Mapped::load(f, config))
        .collect::<Result<Vec<_>>>()?;
    let classification = mapped.iter().any(|m| m.label.is_some());
    let labels = classification.then(|| LabelMap {
        task: config.task.clone(),
        names: config
            .labels
            .clone()
            .unwrap_or_else(|| infer_labels(&mapped)),
    });
    let mut tk = tokenizer.clone();
    tk.with_truncation(Some(TruncationParams {
        max_length: config.seq_len,
        strategy: TruncationStrategy::LongestFirst,
        ..TruncationParams::default()
    }))
    .map_err(|e| TokenizeError::tk("truncation", e))?;
    tk.with_padding(None);

    let identity = serde_json::json!({
        "examples": config,
        "files": files,
        "labels": labels,
        "template": template,
        "tokenizer": fingerprint(tokenizer)?,
    });
    let producer = Producer::new("tokenize-examples", &identity)
        .map_err(|e| TokenizeError::Config(e.to_string()))?;
    let inputs = files
        .iter()
        .map(|f| InputRef::files(&f.path.display().to_string()))
        .collect();
    let opts = WriterOptions {
        mode,
        ..WriterOptions::default()
    };
    let mut writer = DatasetWriter::create(output, DatasetKind::Examples, producer, inputs, opts)?;
    crate::spec::save(tokenizer, &output.join("tokenizer.json"))?;
    if let Some(map) = &labels {
        write_json(&output.join("labels.json"), map)?;
    }
    if let Some(template) = &template {
        write_json(&output.join(INSTRUCTION_FILE), template)?;
    }
    let encoder = template
        .as_ref()
        .map(|t| t.encoder(tokenizer))
        .transpose()?;
    let rows = Rows {
        tk: &tk,
        template: encoder.as_ref(),
        seq_len: config.seq_len,
    };
    if writer.is_sealed() {
        return Ok(writer.manifest().clone());
    }
    let mut counts = Counts::default();
    for (f, (key, id)) in mapped.iter().zip(&keys) {
        if writer.is_done(key) {
            continue;
        }
        let file = FileRows { f, key, id };
        encode_file(
            &rows,
            config,
            &file,
            labels.as_ref(),
            &mut writer,
            &mut counts,
        )?;
        writer.finish_source(key)?;
    }
    let stats = writer.stats_mut();
    if let Ok(serde_json::Value::Object(fields)) = serde_json::to_value(&counts) {
        stats.extend(fields);
    }
    if let Some(map) = &labels {
        stats.insert("labels".into(), serde_json::json!(map.names));
    }
    Ok(writer.seal()?)
}

/// The file beside instruction examples that holds their [`Template`].
pub const INSTRUCTION_FILE: &str = "instruction.json";

fn write_json(path: &Path, value: &impl Serialize) -> Result<()> {
    let text =
        serde_json::to_string_pretty(value).map_err(|e| TokenizeError::Config(e.to_string()))?;
    std::fs::write(path, text).map_err(|e| TokenizeError::io(path, e))
}

/// The template of the instruction examples at `dir`, when they are instruction examples.
pub fn instruction_template(dir: &Path) -> Result<Option<Template>> {
    let path = dir.join(INSTRUCTION_FILE);
    if !path.is_file() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&path).map_err(|e| TokenizeError::io(&path, e))?;
    let template = serde_json::from_str(&text)
        .map_err(|e| TokenizeError::Config(format!("{}: {e}", path.display())))?;
    Ok(Some(template))
}

/// How rows become tokens: the tokenizer (text and pairs), or an instruction template.
struct Rows<'a> {
    tk: &'a Tokenizer,
    template: Option<&'a TemplateEncoder<'a>>,
    seq_len: usize,
}

/// One file's rows, with where they go ([`file_keys`]).
struct FileRows<'a> {
    f: &'a Mapped,
    key: &'a str,
    /// Each row's id up to its line.
    id: &'a str,
}

fn encode_file(
    rows: &Rows<'_>,
    config: &ExamplesConfig,
    file: &FileRows<'_>,
    labels: Option<&LabelMap>,
    writer: &mut DatasetWriter,
    counts: &mut Counts,
) -> Result<()> {
    let (f, key) = (file.f, file.key);
    let skip = |counts: &mut Counts, reason: &str, line: usize, detail: String| -> Result<()> {
        match config.on_error {
            OnError::Fail => Err(TokenizeError::Row {
                path: f.file.path.clone(),
                line,
                reason: detail,
            }),
            OnError::Skip => {
                *counts.skipped.entry(reason.to_string()).or_default() += 1;
                Ok(())
            }
        }
    };
    for bad in &f.table.bad_lines {
        skip(
            counts,
            bad.kind.name(),
            bad.line as usize,
            bad.detail.clone(),
        )?;
    }
    let holdout = config.holdout();
    let mut pending: Vec<Example> = Vec::new();
    for row in &f.table.rows {
        let text = f.cell(row, f.text).unwrap_or("");
        let pair = f.pair.map(|c| f.cell(row, c).unwrap_or("").to_string());
        if rows.template.is_some() && pair.as_deref().is_none_or(str::is_empty) {
            skip(
                counts,
                "missing_response",
                row.line,
                "the response is empty".into(),
            )?;
            continue;
        }
        let (label, target) = match parse_target(f, row, labels) {
            Ok(v) => v,
            Err((reason, detail)) => {
                skip(counts, reason, row.line, detail)?;
                continue;
            }
        };
        let split = holdout.as_ref().map_or(f.file.split.as_str(), |h| {
            h.split_of(&f.file.split, row.line)
        });
        pending.push(Example {
            // The file's own split: ids stay unique when a held-out row meets a row
            // of the same line in the target split's file.
            id: format!("{}:{}", file.id, row.line),
            task: config.task.clone(),
            text: text.to_string(),
            text_pair: pair,
            label,
            target,
            input_ids: Vec::new(),
            token_type_ids: Vec::new(),
            split: split.to_string(),
        });
        if pending.len() >= config.batch_rows.max(1) {
            flush(rows, &mut pending, key, writer, counts)?;
        }
    }
    flush(rows, &mut pending, key, writer, counts)
}

/// Why a row has no usable target: a counter name and the message for the user.
type RowProblem = (&'static str, String);

/// The label id or regression target of a row, or why it has none.
fn parse_target(
    f: &Mapped,
    row: &Row,
    labels: Option<&LabelMap>,
) -> Result<(Option<i64>, Option<f32>), RowProblem> {
    if let (Some(col), Some(map)) = (f.label, labels) {
        let raw = f.cell(row, col).map(str::trim).unwrap_or("");
        if raw.is_empty() {
            return Err(("missing_label", "the label is missing".into()));
        }
        let id = map.id(raw).ok_or_else(|| {
            (
                "unknown_label",
                format!("label {raw:?} is not one of {:?}", map.names),
            )
        })?;
        return Ok((Some(id), None));
    }
    if let Some(col) = f.score {
        let raw = f.cell(row, col).map(str::trim).unwrap_or("");
        if raw.is_empty() {
            return Err(("missing_label", "the score is missing".into()));
        }
        let v = raw
            .parse::<f32>()
            .ok()
            .filter(|v| v.is_finite())
            .ok_or_else(|| ("bad_score", format!("score {raw:?} is not a number")))?;
        return Ok((None, Some(v)));
    }
    Ok((None, None))
}

fn flush(
    rows: &Rows<'_>,
    pending: &mut Vec<Example>,
    key: &str,
    writer: &mut DatasetWriter,
    counts: &mut Counts,
) -> Result<()> {
    if pending.is_empty() {
        return Ok(());
    }
    match rows.template {
        Some(template) => encode_instructions(template, rows.seq_len, pending, counts)?,
        None => encode_texts(rows.tk, key, pending, counts)?,
    }
    metrics::counter!("examples_encoded").increment(pending.len() as u64);
    let batch = Example::to_batch(pending).map_err(|e| TokenizeError::Config(e.to_string()))?;
    writer.write(key, &batch)?;
    pending.clear();
    Ok(())
}

/// Prompt and response through the template, cut at `seq_len` tokens.
fn encode_instructions(
    template: &TemplateEncoder<'_>,
    seq_len: usize,
    pending: &mut [Example],
    counts: &mut Counts,
) -> Result<()> {
    for example in pending.iter_mut() {
        let response = example.text_pair.as_deref().unwrap_or("");
        let (mut ids, mut segments) = template.encode(&example.text, response)?;
        if ids.len() > seq_len {
            counts.truncated += 1;
            ids.truncate(seq_len);
            segments.truncate(seq_len);
        }
        example.input_ids = ids;
        example.token_type_ids = segments;
        *counts.rows.entry(example.split.clone()).or_default() += 1;
    }
    Ok(())
}

/// Texts and pairs through the tokenizer (its truncation and special tokens).
fn encode_texts(
    tk: &Tokenizer,
    key: &str,
    pending: &mut [Example],
    counts: &mut Counts,
) -> Result<()> {
    let inputs: Vec<EncodeInput<'_>> = pending
        .iter()
        .map(|e| match &e.text_pair {
            Some(b) => (e.text.as_str(), b.as_str()).into(),
            None => e.text.as_str().into(),
        })
        .collect();
    let encodings = tk
        .encode_batch_fast(inputs, true)
        .map_err(|e| TokenizeError::tk(format!("encoding {key}"), e))?;
    for (example, enc) in pending.iter_mut().zip(encodings) {
        counts.truncated += u64::from(!enc.get_overflowing().is_empty());
        example.input_ids = enc.get_ids().to_vec();
        example.token_type_ids = enc
            .get_type_ids()
            .iter()
            .map(|&t| t.min(255) as u8)
            .collect();
        *counts.rows.entry(example.split.clone()).or_default() += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holdout_moves_a_seeded_share_of_one_split() {
        let h = Holdout {
            from: "train".into(),
            to: "validation".into(),
            fraction: 0.2,
            seed: 13,
        };
        let moved: Vec<usize> = (1..=10_000)
            .filter(|&l| h.split_of("train", l) == "validation")
            .collect();
        assert!((1850..2150).contains(&moved.len()), "{}", moved.len());
        // Other splits are left alone; another seed picks other rows.
        assert!((1..100).all(|l| h.split_of("test", l) == "test"));
        let other = Holdout {
            seed: 14,
            ..h.clone()
        };
        let moved_too = (1..=10_000).filter(|&l| other.split_of("train", l) == "validation");
        assert!(moved_too.filter(|l| moved.binary_search(l).is_ok()).count() < 600);
    }

    #[test]
    fn split_prefix_is_optional() {
        assert_eq!(
            SplitFile::parse("validation=dev.tsv", "train").split,
            "validation"
        );
        let bare = SplitFile::parse("data/dev.tsv", "train");
        assert_eq!(
            (bare.split.as_str(), bare.path.to_str()),
            ("train", Some("data/dev.tsv"))
        );
    }
}
