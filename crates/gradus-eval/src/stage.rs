//! The evaluation stage: evaluates the runs of a pipeline and writes one report. A run folder
//! says what it holds in its run record (`run.json`): pretraining (a language model on
//! its tokens), fine-tuning (a task head on its dev split) or multi-task training (each
//! exported task, and each task fine-tuned afterwards).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::curves::{Series, read_jsonl, series, smooth};
use crate::plots::{confusion_chart, line_chart, scatter_chart};
use crate::{Plot, Report, Section, SectionKind, Unigram, clm_score, ngram_score};
use anyhow::Context;
use gradus_finetune::MultitaskConfig;
use gradus_finetune::data::{TaskExample, load_examples};
use gradus_finetune::eval::score;
use gradus_finetune::{FinetuneConfig, Init, Predictor, TaskKind};
use gradus_model::generate::{Sampling, generate};
use gradus_model::{DECODER_TYPES, Decoder, DecoderConfig};
use gradus_pretrain::clm::{ClmStream, StreamSpec};
use gradus_record::{Metric, RunKind, RunRecord};
use gradus_train::Objective;
use serde::{Deserialize, Serialize};

use gradus_pretrain::{
    ClmSplits, DataSource, PretrainConfig, PretrainObjective, clm_splits, eos_id, mlm_objective,
};

/// `gradus-eval`'s TOML.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EvalConfig {
    /// The report's heading.
    pub title: String,
    /// Run folders to evaluate (`--input` adds more).
    pub runs: Vec<PathBuf>,
    /// Checkpoint folders to evaluate on a dataset of your choice.
    pub checkpoints: Vec<CheckpointSpec>,
    /// `cpu` or `cuda:N`.
    pub device: String,
    pub batch_size: usize,
    /// Language models: validation windows (or MLM sequences) evaluated.
    pub max_windows: usize,
    /// Order of the Kneser-Ney baseline of causal models.
    pub baseline_order: usize,
    /// Training tokens the baselines count (the start of the training stream).
    pub baseline_tokens: usize,
    /// Causal models: tokens of the sample shown in the report (0: none).
    pub sample_tokens: usize,
    pub seed: u64,
}

impl EvalConfig {
    /// Refuses sizes of 0, by their names here: no batch, window, baseline order or
    /// baseline token would evaluate anything.
    pub fn check(&self) -> anyhow::Result<()> {
        let sizes = [
            ("batch_size", self.batch_size),
            ("max_windows", self.max_windows),
            ("baseline_order", self.baseline_order),
            ("baseline_tokens", self.baseline_tokens),
        ];
        if let Some((name, _)) = sizes.iter().find(|(_, v)| *v == 0) {
            anyhow::bail!("{name} 0: must be positive");
        }
        Ok(())
    }
}

impl Default for EvalConfig {
    fn default() -> Self {
        Self {
            title: "gradus evaluation".into(),
            runs: Vec::new(),
            checkpoints: Vec::new(),
            device: "cpu".into(),
            batch_size: 32,
            max_windows: 512,
            baseline_order: 3,
            baseline_tokens: 2_000_000,
            sample_tokens: 200,
            seed: 42,
        }
    }
}

/// A model folder outside a run: a causal LM (GPT-2 layout: `config.json`,
/// `model.safetensors`) scored on a `tokens` dataset, or a fine-tuned task checkpoint
/// scored on an `examples` dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointSpec {
    /// Section name (default: the folder's name).
    pub name: Option<String>,
    pub model: PathBuf,
    /// Causal LMs: the tokens to score (its `split`) and to train the baseline on (its
    /// `train` split).
    pub tokens: Option<PathBuf>,
    /// Default: the model folder's `tokenizer.json`.
    pub tokenizer: Option<PathBuf>,
    /// Causal LMs: window length (default: the model's context).
    pub seq_len: Option<usize>,
    /// Tasks: the examples to score (its `split`; the baseline learns from `train`).
    pub examples: Option<PathBuf>,
    #[serde(default = "validation")]
    pub split: String,
}

fn validation() -> String {
    "validation".into()
}

/// A run folder, as its run record says, with its resolved config.
#[derive(Debug)]
enum Run {
    Pretrain(Box<PretrainConfig>),
    Finetune(Box<FinetuneConfig>),
    Multitask(Box<MultitaskConfig>),
}

fn detect(dir: &Path) -> anyhow::Result<Run> {
    let record = RunRecord::require(dir)?;
    // Its kept model is written when it ends; a checkpoint is there before.
    if !record.finished && record.kind != RunKind::Eval {
        anyhow::bail!(
            "{}: the run has not finished, so it has no model yet; resume it with its own \
             command (a causal LM's or a task's checkpoint can also be evaluated: \
             `checkpoints = [{{ model = \"{}\" }}]`)",
            dir.display(),
            dir.join("checkpoints/step-N").display()
        );
    }
    let path = dir.join("config.toml");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("{}: not a run folder", path.display()))?;
    let parse = || format!("config {}", path.display());
    Ok(match record.kind {
        RunKind::Pretrain => Run::Pretrain(Box::new(toml::from_str(&text).with_context(parse)?)),
        RunKind::Finetune => Run::Finetune(Box::new(toml::from_str(&text).with_context(parse)?)),
        RunKind::Multitask => Run::Multitask(Box::new(toml::from_str(&text).with_context(parse)?)),
        RunKind::Eval => anyhow::bail!(
            "{}: an evaluation's folder; name the runs it evaluated instead",
            dir.display()
        ),
    })
}

/// Checks that every run and checkpoint `config` names is there and of a known kind,
/// before anything is written.
pub fn check(config: &EvalConfig) -> anyhow::Result<()> {
    if config.runs.is_empty() && config.checkpoints.is_empty() {
        anyhow::bail!("nothing to evaluate: name run folders (`runs` or --input) or `checkpoints`");
    }
    for dir in &config.runs {
        detect(dir)?;
    }
    for spec in &config.checkpoints {
        let path = spec.model.join("config.json");
        if !path.is_file() {
            anyhow::bail!("checkpoint {}: no config.json", spec.model.display());
        }
    }
    Ok(())
}

/// What `gradus-eval` writes besides one chart per figure (which its run record lists
/// once written).
pub const EVAL_OUTPUTS: &[&str] = &[
    "config.toml",
    gradus_record::RUN_RECORD,
    "metrics.jsonl",
    "report.json",
    "report.md",
];

/// The run folder spec of an evaluation: it reads every run and checkpoint it names,
/// and a rerun replaces its report rather than continuing it.
pub fn run_spec(config: &EvalConfig, overwrite: bool) -> anyhow::Result<gradus_train::RunSpec> {
    let mut spec = gradus_train::RunSpec::new(RunKind::Eval, config, overwrite)?;
    spec.outputs = EVAL_OUTPUTS.iter().map(|s| s.to_string()).collect();
    spec.resumes = false;
    let checkpoints = config.checkpoints.iter().flat_map(|c| {
        std::iter::once(c.model.clone())
            .chain(c.tokens.clone())
            .chain(c.tokenizer.clone())
    });
    Ok(spec.with_inputs(config.runs.iter().cloned().chain(checkpoints)))
}

/// Evaluates every run of `config` into a report in `output` (charts beside it);
/// `on_model` hears the name of each run or checkpoint as its turn comes.
pub fn evaluate(
    config: &EvalConfig,
    output: &Path,
    on_model: &mut dyn FnMut(&str),
) -> anyhow::Result<Report> {
    if config.runs.is_empty() && config.checkpoints.is_empty() {
        anyhow::bail!("nothing to evaluate: name run folders (`runs` or --input) or `checkpoints`");
    }
    std::fs::create_dir_all(output).with_context(|| format!("output {}", output.display()))?;
    let mut sections = Vec::new();
    let mut used = std::collections::HashSet::new();
    let mut tuned = Vec::new();
    for dir in &config.runs {
        let name = unique_name(dir, &mut used);
        on_model(&name);
        let first = sections.len();
        match detect(dir)? {
            Run::Pretrain(c) => sections.extend(lm_sections(config, dir, &name, &c, output)?),
            Run::Finetune(c) => {
                tuned.push((sections.len(), RunRecord::require(dir)?));
                sections.push(task_section(config, dir, &name, &c, output)?);
            }
            Run::Multitask(c) => {
                sections.extend(multitask_sections(config, dir, &name, &c, output)?)
            }
        }
        let base = RunRecord::require(dir)?.facts.base_model;
        for s in &mut sections[first..] {
            s.started_from = base.as_ref().map(|b| b.display().to_string());
        }
    }
    for spec in &config.checkpoints {
        let name = match &spec.name {
            Some(n) => n.clone(),
            None => unique_name(&spec.model, &mut used),
        };
        on_model(&name);
        sections.push(checkpoint_section(config, spec, &name, output)?);
    }
    compare_with_random_init(&mut sections, &tuned);
    let report = Report {
        title: config.title.clone(),
        sections,
    };
    report.write(output)?;
    Ok(report)
}

/// Puts a fine-tuning run from random weights beside each run that fine-tuned a
/// pretrained model on the same examples, as the baseline `random init`: whether the
/// pretraining step paid for itself, in the pretrained run's section.
fn compare_with_random_init(sections: &mut [Section], tuned: &[(usize, RunRecord)]) {
    for (pretrained, scratch) in random_init_pairs(tuned) {
        let metrics = sections[scratch].metrics.clone();
        sections[pretrained]
            .baselines
            .insert("random init".to_string(), metrics);
    }
}

/// (pretrained run's section, its random-init run's section) for each fine-tuning run
/// from a pretrained model: the run from random weights on the same examples with the
/// same seed, else the first on the same examples.
fn random_init_pairs(tuned: &[(usize, RunRecord)]) -> Vec<(usize, usize)> {
    let scratch = |data: &[PathBuf], seed: u64| {
        let on_data = |r: &RunRecord| r.facts.base_model.is_none() && r.facts.data == data;
        tuned
            .iter()
            .find(|(_, r)| on_data(r) && r.facts.seed == seed)
            .or_else(|| tuned.iter().find(|(_, r)| on_data(r)))
            .map(|(i, _)| *i)
    };
    tuned
        .iter()
        .filter(|(_, r)| r.facts.base_model.is_some())
        .filter_map(|(i, r)| Some((*i, scratch(&r.facts.data, r.facts.seed)?)))
        .collect()
}

fn run_name(dir: &Path) -> String {
    dir.file_name().map_or_else(
        || dir.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// The folder's name, or with its parent's (`seed-2/pretrain`) when another run already
/// took it: section names are also chart file names.
fn unique_name(dir: &Path, used: &mut std::collections::HashSet<String>) -> String {
    let mut name = run_name(dir);
    if used.contains(&name) {
        let parent = dir.parent().map_or_else(String::new, run_name);
        name = format!("{parent}/{name}");
    }
    let mut candidate = name.clone();
    let mut n = 2;
    while !used.insert(candidate.clone()) {
        candidate = format!("{name}-{n}");
        n += 1;
    }
    candidate
}

fn file_stem(name: &str) -> String {
    name.replace(['/', ' '], "-")
}

/// Loss and learning-rate charts from a run's `train.jsonl` and `eval.jsonl`.
/// `extra_train` names further per-step series (e.g. each task's loss).
fn curves(
    dir: &Path,
    name: &str,
    extra_train: &[String],
    output: &Path,
) -> anyhow::Result<Vec<Plot>> {
    let train = read_jsonl(&dir.join("train.jsonl"))?;
    let eval = read_jsonl(&dir.join("eval.jsonl"))?;
    let window = (train.len() / 50).max(1);
    let mut lines: Vec<Series> = Vec::new();
    let mut push = |s: Series| {
        if !s.points.is_empty() {
            lines.push(s);
        }
    };
    push(smooth(&series(&train, "step", "loss", "train"), window));
    for key in extra_train {
        push(smooth(&series(&train, "step", key, key), window));
    }
    push(series(&eval, "step", "loss", "validation"));
    let mut plots = Vec::new();
    let stem = file_stem(name);
    if !lines.is_empty() {
        let file = format!("{stem}-loss.svg");
        line_chart(
            &output.join(&file),
            &format!("{name}: loss"),
            "step",
            "loss",
            &lines,
        )?;
        plots.push(Plot {
            title: format!("{name}: loss"),
            file,
        });
    }
    let lr = series(&train, "step", "lr", "learning rate");
    if !lr.points.is_empty() {
        let file = format!("{stem}-lr.svg");
        line_chart(
            &output.join(&file),
            &format!("{name}: learning rate"),
            "step",
            "lr",
            &[lr],
        )?;
        plots.push(Plot {
            title: format!("{name}: learning rate"),
            file,
        });
    }
    Ok(plots)
}

/// The sections of a pretraining run: a causal LM scored on each of its datasets'
/// validation data, a masked LM on the mixture's. A run mixed from several datasets
/// says what it drew from each.
fn lm_sections(
    ec: &EvalConfig,
    dir: &Path,
    name: &str,
    config: &PretrainConfig,
    output: &Path,
) -> anyhow::Result<Vec<Section>> {
    let mut config = config.clone();
    config.device.clone_from(&ec.device);
    config.data.eval_windows = ec.max_windows;
    let sources = config.data.sources().map_err(anyhow::Error::msg)?;
    let mut sections = match config.objective {
        PretrainObjective::Clm => {
            let d = &config.data;
            let which = if d.validation_fraction > 0.0 {
                format!("last {:.0}% of train", d.validation_fraction * 100.0)
            } else {
                "validation split".to_string()
            };
            let tokenizer = load_tokenizer(&d.tokenizer)?;
            let mut sections = Vec::new();
            for source in &sources {
                let lm = ClmData {
                    model: dir.join("model"),
                    tokens: &source.tokens,
                    splits: clm_splits(&config, &source.tokens, &tokenizer)?,
                    tokenizer: tokenizer.clone(),
                    seq_len: d.seq_len,
                    which: which.clone(),
                };
                let section_name = if sources.len() > 1 {
                    format!("{name} · {}", source.name)
                } else {
                    name.to_string()
                };
                sections.push(clm_section(ec, &section_name, dir, &lm)?);
            }
            sections
        }
        PretrainObjective::Mlm | PretrainObjective::MlmNsp => {
            vec![mlm_section(ec, dir, name, &config, &sources)?]
        }
    };
    let seen = RunRecord::require(dir)?.data_seen;
    if !seen.is_empty() {
        let total: u64 = seen.values().map(|s| s.tokens).sum();
        let shares: Vec<String> = seen
            .iter()
            .map(|(n, s)| {
                format!(
                    "{n} {:.1}% (weight {:.1}%)",
                    100.0 * s.share,
                    100.0 * s.weight
                )
            })
            .collect();
        for section in &mut sections {
            section.data = format!(
                "{}; training drew {} of {total} tokens",
                section.data,
                shares.join(", ")
            );
            section.details["data_seen"] = serde_json::to_value(&seen)?;
        }
    }
    if let Some(first) = sections.first_mut() {
        first.plots = curves(dir, name, &[], output)?;
    }
    Ok(sections)
}

/// The start of the training stream, as whole windows of `len` tokens, for baselines:
/// long ones keep an n-gram's context, short ones lose less of a small dataset's tail.
fn baseline_train(
    dataset: &Path,
    splits: &ClmSplits,
    tokens: usize,
    len: usize,
) -> anyhow::Result<Vec<Vec<u32>>> {
    let windows = tokens.div_ceil(len).max(1);
    Ok(ClmStream::first_windows(
        dataset,
        splits.train.clone(),
        splits.eos,
        len - 1,
        windows,
    )?)
}

fn load_tokenizer(path: &Path) -> anyhow::Result<gradus_tokenize::Tokenizer> {
    gradus_tokenize::load(path).with_context(|| format!("tokenizer {}", path.display()))
}

/// A causal model and the tokens it is scored on.
struct ClmData<'a> {
    model: PathBuf,
    tokens: &'a Path,
    tokenizer: gradus_tokenize::Tokenizer,
    splits: ClmSplits,
    seq_len: usize,
    /// Which part of `tokens` is scored, for the report.
    which: String,
}

fn clm_section(
    ec: &EvalConfig,
    name: &str,
    source: &Path,
    lm: &ClmData<'_>,
) -> anyhow::Result<Section> {
    let device = gradus_model::device(&ec.device)?;
    let (model, _params) = Decoder::load(&lm.model, device.clone())?;
    let (tk, splits) = (&lm.tokenizer, &lm.splits);
    let windows = ClmStream::first_windows(
        lm.tokens,
        splits.validation.clone(),
        splits.eos,
        lm.seq_len,
        ec.max_windows,
    )?;
    let mut bytes = 0u64;
    for w in &windows {
        let text = tk
            .decode(&w[1..], false)
            .map_err(|e| anyhow::anyhow!("decoding validation tokens: {e}"))?;
        bytes += text.len() as u64;
    }
    let neural = clm_score(&model, &windows, ec.batch_size, &device, Some(bytes))?;
    let train = baseline_train(lm.tokens, splits, ec.baseline_tokens, 4096)?;
    let vocab = model.vocab_size();
    let ngram = ngram_score(&train, &windows, ec.baseline_order, vocab, Some(bytes))?;
    let metrics = |s: &crate::LmScore| {
        let mut m = BTreeMap::from([
            ("loss".to_string(), s.loss),
            ("perplexity".to_string(), s.perplexity),
        ]);
        if let Some(b) = s.bits_per_byte {
            m.insert("bits_per_byte".into(), b);
        }
        m
    };
    let sample = if ec.sample_tokens > 0 {
        let prompt = match splits.eos {
            Some(eos) => vec![eos],
            None => windows.first().map(|w| w[..1].to_vec()).unwrap_or_default(),
        };
        let sampling = Sampling {
            seed: ec.seed,
            ..Sampling::default()
        };
        let ids = generate(&model, &prompt, ec.sample_tokens, &sampling, None)?;
        Some(
            tk.decode(&ids, false)
                .map_err(|e| anyhow::anyhow!("decoding the sample: {e}"))?,
        )
    } else {
        None
    };
    Ok(Section {
        name: name.to_string(),
        kind: SectionKind::LanguageModel,
        source: source.display().to_string(),
        started_from: None,
        data: format!(
            "{} ({}, {} tokens)",
            lm.tokens.display(),
            lm.which,
            neural.tokens
        ),
        key_metric: "perplexity".into(),
        higher_is_better: false,
        metrics: metrics(&neural),
        baselines: [(format!("kneser-ney-{}", ec.baseline_order), metrics(&ngram))].into(),
        details: serde_json::json!({ "bytes": bytes, "windows": windows.len(), "seq_len": lm.seq_len }),
        plots: Vec::new(),
        sample,
    })
}

fn mlm_section(
    ec: &EvalConfig,
    dir: &Path,
    name: &str,
    config: &PretrainConfig,
    sources: &[DataSource],
) -> anyhow::Result<Section> {
    let mut objective = mlm_objective(config)?;
    objective
        .params
        .restore(&dir.join("model").join("model.safetensors"))?;
    let metrics = objective.evaluate()?;
    let targets: Vec<u32> = objective
        .validation
        .iter()
        .flat_map(|e| e.targets.iter().map(|&(_, t)| t))
        .collect();
    let tk = load_tokenizer(&config.data.tokenizer)?;
    // A unigram needs no context: short windows, so that a small dataset counts; an
    // equal part from each dataset of a mixture.
    let mut train = Vec::new();
    for source in sources {
        let splits = clm_splits(config, &source.tokens, &tk)?;
        let budget = ec.baseline_tokens / sources.len();
        train.extend(baseline_train(&source.tokens, &splits, budget, 64)?);
    }
    // The baseline counts only what MLM may mask: a tokenizer that frames every short
    // document with `[CLS] … [SEP]` would otherwise make a special token its guess.
    let special = gradus_tokenize::SpecialTokens::of(&tk);
    let never_masked = [special.cls, special.sep, special.pad, special.mask];
    let maskable: Vec<Vec<u32>> = train
        .iter()
        .map(|s| {
            s.iter()
                .copied()
                .filter(|t| !never_masked.contains(&Some(*t)))
                .collect()
        })
        .collect();
    let unigram = Unigram::train(
        maskable.iter().map(Vec::as_slice),
        objective.model.config().vocab_size,
    )
    .score(&targets)?;
    let mut baseline = BTreeMap::from([
        ("mlm_loss".to_string(), unigram.loss),
        ("perplexity".to_string(), unigram.perplexity),
        ("mlm_accuracy".to_string(), unigram.accuracy),
    ]);
    let nsp: Vec<u32> = objective.validation.iter().filter_map(|e| e.nsp).collect();
    if !nsp.is_empty() {
        let ones = nsp.iter().filter(|&&l| l == 1).count();
        let majority = ones.max(nsp.len() - ones) as f64 / nsp.len() as f64;
        baseline.insert("nsp_accuracy".into(), majority);
    }
    Ok(Section {
        name: name.to_string(),
        kind: SectionKind::LanguageModel,
        source: dir.display().to_string(),
        started_from: None,
        data: format!(
            "{} (validation, {} masked tokens)",
            sources
                .iter()
                .map(|s| s.tokens.display().to_string())
                .collect::<Vec<_>>()
                .join(" + "),
            targets.len()
        ),
        key_metric: "mlm_accuracy".into(),
        higher_is_better: true,
        metrics,
        baselines: [("unigram".to_string(), baseline)].into(),
        details: serde_json::json!({ "sequences": objective.validation.len() }),
        plots: Vec::new(),
        sample: None,
    })
}

/// A checkpoint folder on the dataset its spec names.
fn checkpoint_section(
    ec: &EvalConfig,
    spec: &CheckpointSpec,
    name: &str,
    output: &Path,
) -> anyhow::Result<Section> {
    let path = spec.model.join("config.json");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("checkpoint {}", path.display()))?;
    let config: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("checkpoint {}", path.display()))?;
    let need = |what: &str, v: Option<&PathBuf>| -> anyhow::Result<PathBuf> {
        v.cloned().with_context(|| {
            format!(
                "checkpoint {}: give `{what}` to evaluate it on",
                spec.model.display()
            )
        })
    };
    // A causal-LM task's folder is a language model, scored on tokens.
    let head_task = config
        .get("gradus_task")
        .is_some_and(|t| t.get("kind").and_then(serde_json::Value::as_str) != Some("lm"));
    if head_task {
        let examples = need("examples", spec.examples.as_ref())?;
        let run = TaskRun {
            name,
            dir: None,
            model: spec.model.clone(),
            examples: &examples,
            train_split: "train",
            validation_split: &spec.split,
            key_metric: None,
            base: None,
        };
        return evaluate_task(ec, &run, output);
    }
    let model_type = config.get("model_type").and_then(serde_json::Value::as_str);
    if !model_type.is_some_and(|t| DECODER_TYPES.contains(&t)) {
        anyhow::bail!(
            "checkpoint {}: neither a causal LM ({}) nor a fine-tuned task; masked LMs \
             are evaluated from their pretraining run folder",
            spec.model.display(),
            DECODER_TYPES.join(", ")
        );
    }
    let tokens = need("tokens", spec.tokens.as_ref())?;
    let tokenizer_path = spec
        .tokenizer
        .clone()
        .unwrap_or_else(|| spec.model.join("tokenizer.json"));
    let tokenizer = load_tokenizer(&tokenizer_path)?;
    let context = DecoderConfig::from_json(config.clone())
        .ok()
        .map(|c| c.context() as u64);
    let split = |s: &str| StreamSpec::whole(Some(s));
    let lm = ClmData {
        model: spec.model.clone(),
        tokens: &tokens,
        splits: ClmSplits {
            train: split("train"),
            validation: split(&spec.split),
            eos: eos_id(&tokenizer, "auto")?,
        },
        tokenizer,
        seq_len: spec.seq_len.or(context.map(|c| c as usize)).unwrap_or(256),
        which: format!("{} split", spec.split),
    };
    clm_section(ec, name, &spec.model, &lm)
}

/// Where a task's data and model are.
struct TaskRun<'a> {
    name: &'a str,
    /// Run folder (curves), if the task was trained on its own.
    dir: Option<&'a Path>,
    model: PathBuf,
    examples: &'a Path,
    train_split: &'a str,
    validation_split: &'a str,
    key_metric: Option<String>,
    /// The model folder whose weights the run started from, when it started from one.
    base: Option<&'a Path>,
}

fn task_section(
    ec: &EvalConfig,
    dir: &Path,
    name: &str,
    config: &FinetuneConfig,
    output: &Path,
) -> anyhow::Result<Section> {
    evaluate_task(
        ec,
        &TaskRun {
            name,
            dir: Some(dir),
            model: dir.join("model"),
            examples: &config.examples,
            train_split: &config.train_split,
            validation_split: &config.validation_split,
            key_metric: config.metric_for_best.clone(),
            base: (config.init == Init::Pretrained).then_some(config.model.as_path()),
        },
        output,
    )
}

fn multitask_sections(
    ec: &EvalConfig,
    dir: &Path,
    name: &str,
    config: &MultitaskConfig,
    output: &Path,
) -> anyhow::Result<Vec<Section>> {
    let mut out = Vec::new();
    for task in &config.tasks {
        let section_name = format!("{name}/{}", task.name);
        let model = dir.join("tasks").join(&task.name);
        if let Some(tokens) = &task.tokens {
            let lm = CheckpointSpec {
                name: Some(section_name.clone()),
                model,
                tokens: Some(tokens.clone()),
                tokenizer: None,
                seq_len: Some(task.seq_len.unwrap_or(config.training.seq_len)),
                examples: None,
                split: task.validation_split.clone(),
            };
            out.push(checkpoint_section(ec, &lm, &section_name, output)?);
            continue;
        }
        out.push(evaluate_task(
            ec,
            &TaskRun {
                name: &section_name,
                dir: None,
                model,
                examples: &task.examples,
                train_split: &task.train_split,
                validation_split: &task.validation_split,
                key_metric: task.metric.clone(),
                base: None,
            },
            output,
        )?);
        let tuned = dir.join("finetune").join(&task.name);
        if tuned.join(gradus_record::RUN_RECORD).is_file()
            && let Run::Finetune(c) = detect(&tuned)?
        {
            let tuned_name = format!("{section_name} (fine-tuned)");
            out.push(task_section(ec, &tuned, &tuned_name, &c, output)?);
        }
    }
    // The shared training curves go with the first task's section.
    let per_task: Vec<String> = config
        .tasks
        .iter()
        .map(|t| format!("{}/loss", t.name))
        .collect();
    if let Some(first) = out.first_mut() {
        first
            .plots
            .splice(0..0, curves(dir, name, &per_task, output)?);
    }
    Ok(out)
}

/// A constant predictor from the training split: the majority class, or the mean target.
fn constant_outputs(kind: TaskKind, classes: usize, train: &[TaskExample]) -> Vec<f32> {
    match kind {
        TaskKind::Classification => {
            let mut counts = vec![0usize; classes.max(1)];
            for l in train.iter().filter_map(|e| e.label) {
                if let Some(c) = usize::try_from(l).ok().and_then(|l| counts.get_mut(l)) {
                    *c += 1;
                }
            }
            let best = (0..counts.len()).max_by_key(|&i| (counts[i], std::cmp::Reverse(i)));
            (0..counts.len())
                .map(|i| if Some(i) == best { 1.0 } else { 0.0 })
                .collect()
        }
        // Tasks on the LM head are scored apart.
        TaskKind::Regression | TaskKind::Instruction | TaskKind::Lm => {
            let t: Vec<f32> = train.iter().filter_map(|e| e.target).collect();
            vec![t.iter().sum::<f32>() / t.len().max(1) as f32]
        }
    }
}

fn evaluate_task(ec: &EvalConfig, run: &TaskRun<'_>, output: &Path) -> anyhow::Result<Section> {
    let device = gradus_model::device(&ec.device)?;
    let mut predictor = Predictor::load(&run.model, &device)?;
    predictor.batch_size = ec.batch_size.max(1);
    let spec = predictor.model.spec().clone();
    let dev = load_examples(run.examples, Some(run.validation_split), spec.max_len)?;
    if dev.is_empty() {
        anyhow::bail!(
            "{}: no examples in split `{}`",
            run.examples.display(),
            run.validation_split
        );
    }
    if spec.kind == TaskKind::Instruction {
        return evaluate_instructions(ec, run, &predictor, &dev, output);
    }
    let (scored, outputs) = predictor.score(&dev)?;
    let train = load_examples(run.examples, Some(run.train_split), spec.max_len)?;
    let constant = constant_outputs(spec.kind, spec.labels.len(), &train);
    let base = score(&spec, &dev, &vec![constant; dev.len()])?;
    let baseline: BTreeMap<String, f64> = base
        .scalars
        .into_iter()
        // A constant has no correlation, and its logits no calibrated loss.
        .filter(|(k, v)| v.is_finite() && !(k == "loss" && spec.kind == TaskKind::Classification))
        .collect();
    let (default_key, baseline_name) = match spec.kind {
        TaskKind::Classification => ("accuracy", "majority class"),
        TaskKind::Regression | TaskKind::Instruction | TaskKind::Lm => ("pearson", "mean target"),
    };
    let mut plots = run_curves(run, output)?;
    plots.push(task_chart(
        run.name,
        &spec,
        &dev,
        &outputs,
        &scored.report,
        output,
    )?);
    let baselines = [(baseline_name.to_string(), baseline)].into();
    let section = TaskSection {
        dev: dev.len(),
        default_key,
        baselines,
        plots,
        sample: None,
    };
    section.build(run, scored)
}

/// The training curves of a task trained on its own.
fn run_curves(run: &TaskRun<'_>, output: &Path) -> anyhow::Result<Vec<Plot>> {
    match run.dir {
        Some(dir) => curves(dir, run.name, &[], output),
        None => Ok(Vec::new()),
    }
}

/// What a task's section shows besides its score.
struct TaskSection {
    /// Dev examples scored.
    dev: usize,
    /// The key metric when the run names none it reports.
    default_key: &'static str,
    baselines: BTreeMap<String, BTreeMap<String, f64>>,
    plots: Vec<Plot>,
    sample: Option<String>,
}

impl TaskSection {
    fn build(
        self,
        run: &TaskRun<'_>,
        scored: gradus_finetune::eval::TaskScore,
    ) -> anyhow::Result<Section> {
        let key_metric = run
            .key_metric
            .clone()
            .filter(|k| scored.scalars.contains_key(k))
            .unwrap_or_else(|| self.default_key.into());
        Ok(Section {
            name: run.name.to_string(),
            kind: SectionKind::Task,
            source: run.model.display().to_string(),
            started_from: None,
            data: format!(
                "{} ({}, {} examples)",
                run.examples.display(),
                run.validation_split,
                self.dev
            ),
            higher_is_better: Metric::new(&key_metric, None)?
                .direction
                .greater_is_better(),
            key_metric,
            metrics: scored.scalars,
            baselines: self.baselines,
            details: scored.report,
            plots: self.plots,
            sample: self.sample,
        })
    }
}

/// An instruction task: the response loss and exact match of greedy answers on the dev
/// prompts, beside the model the run started from (before fine-tuning), and a few
/// answers.
fn evaluate_instructions(
    ec: &EvalConfig,
    run: &TaskRun<'_>,
    predictor: &Predictor,
    dev: &[TaskExample],
    output: &Path,
) -> anyhow::Result<Section> {
    let (scored, _) = predictor.score(dev)?;
    let mut baselines = BTreeMap::new();
    if let Some(base) = run.base {
        let device = gradus_model::device(&ec.device)?;
        let (decoder, _params) = Decoder::load(base, device.clone())
            .with_context(|| format!("base model {}", base.display()))?;
        let scorer = gradus_finetune::instruct::Scorer {
            decoder: &decoder,
            spec: predictor.model.spec(),
            batch_size: ec.batch_size.max(1),
            pad: predictor.pad(),
            device: &device,
            tokenizer: predictor.tokenizer(),
        };
        baselines.insert("before fine-tuning".into(), scorer.score(dev)?.scalars);
    }
    let section = TaskSection {
        dev: dev.len(),
        default_key: "exact_match",
        baselines,
        plots: run_curves(run, output)?,
        sample: Some(answers_sample(&scored.report)),
    };
    section.build(run, scored)
}

/// The report's sampled answers, one per line: the prompt, the answer, the reference.
fn answers_sample(report: &serde_json::Value) -> String {
    let text = |v: &serde_json::Value| format!("{:?}", v.as_str().unwrap_or(""));
    report["samples"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            let mark = if s["exact"].as_bool() == Some(true) {
                "="
            } else {
                "≠"
            };
            format!(
                "{} → {} {mark} {}",
                text(&s["prompt"]),
                text(&s["answer"]),
                text(&s["reference"])
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The confusion matrix of a classifier, or predicted against true values of a regressor.
fn task_chart(
    name: &str,
    spec: &gradus_finetune::TaskSpec,
    dev: &[TaskExample],
    outputs: &[Vec<f32>],
    report: &serde_json::Value,
    output: &Path,
) -> anyhow::Result<Plot> {
    let stem = file_stem(name);
    match spec.kind {
        TaskKind::Classification => {
            let counts: Vec<Vec<u64>> =
                serde_json::from_value(report["confusion"]["counts"].clone())
                    .context("the task report has no confusion matrix")?;
            let file = format!("{stem}-confusion.svg");
            let title = format!("{name}: confusion matrix");
            confusion_chart(&output.join(&file), &title, &spec.labels, &counts)?;
            Ok(Plot { title, file })
        }
        TaskKind::Regression | TaskKind::Instruction | TaskKind::Lm => {
            let points: Vec<(f64, f64)> = dev
                .iter()
                .zip(outputs)
                .filter_map(|(e, o)| Some((f64::from(e.target?), f64::from(*o.first()?))))
                .collect();
            let file = format!("{stem}-scatter.svg");
            let title = format!("{name}: predicted vs true");
            scatter_chart(&output.join(&file), &title, &points)?;
            Ok(Plot { title, file })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_of_same_named_runs_get_distinct_names() {
        let mut used = std::collections::HashSet::new();
        let names: Vec<String> = ["runs/a/pretrain", "runs/b/pretrain", "runs/b/pretrain", "x"]
            .iter()
            .map(|p| unique_name(Path::new(p), &mut used))
            .collect();
        assert_eq!(names, ["pretrain", "b/pretrain", "b/pretrain-2", "x"]);
    }

    /// Each pretrained run is compared with the random-init run of its own seed.
    #[test]
    fn a_pretrained_run_meets_the_random_init_run_of_its_seed() {
        let run = |seed: u64, base: Option<&str>| -> RunRecord {
            let mut record = serde_json::json!({
                "kind": "finetune", "gradus_version": "0.1.0", "config_hash": "h",
                "settings": {}, "inputs": [], "outputs": [], "finished": true,
                "data": ["examples"], "seed": seed
            });
            if let Some(b) = base {
                record["base_model"] = b.into();
            }
            serde_json::from_value(record).unwrap()
        };
        let tuned = vec![
            (0, run(42, Some("lm"))),
            (1, run(42, None)),
            (2, run(1, Some("lm"))),
            (3, run(1, None)),
            (4, run(7, Some("lm"))),
        ];
        assert_eq!(random_init_pairs(&tuned), [(0, 1), (2, 3), (4, 1)]);
    }
}
