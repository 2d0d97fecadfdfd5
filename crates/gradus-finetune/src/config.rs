//! `gradus-finetune`'s configuration and the checks that run before any training: the
//! head against the labels, the checkpoint's vocabulary against the tokenizer.

use std::path::{Path, PathBuf};

use gradus_train::TrainConfig;
use gradus_train::optim::OptimizerConfig;
use gradus_train::schedule::Schedule;
use serde::{Deserialize, Serialize};

use crate::body::BodyConfig;
use crate::data::{References, TaskExample, references};
use crate::error::{FinetuneError, Result};
use crate::model::{HeadNames, Init, TaskKind, TaskSpec};
use crate::objective::TaskObjective;
use crate::tasks::{MultitaskConfig, TaskConfig};
use gradus_model::Pooling;

/// The task head.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HeadConfig {
    /// `classification` or `regression`; by default what the examples carry.
    pub kind: Option<TaskKind>,
    /// Classes the head must have; checked against the examples' labels.
    pub num_labels: Option<usize>,
    /// How the body's hidden states become one vector; by default BERT's pooler, or a
    /// decoder's last real token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pooling: Option<Pooling>,
    /// Dropout before the head; the encoder's hidden dropout by default.
    pub dropout: Option<f32>,
    /// Per-class loss weights, in label-id order.
    pub class_weights: Option<Vec<f32>>,
    /// Where a new regression head's bias starts.
    pub bias_init: BiasInit,
}

/// The starting bias of a new regression head.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BiasInit {
    /// 0, as HF's `BertForSequenceClassification`: best at fine-tuning learning rates,
    /// where meeting the targets' offset moves a pretrained encoder usefully.
    #[default]
    Zero,
    /// The mean training target (STS-B's 0–5 scores start at 2.7). At the high learning
    /// rates of a small model trained from scratch a zero bias is first met by bending
    /// the encoder until it predicts the mean (ARCHITECTURE.md, fine-tuning, measures
    /// both).
    Mean,
}

impl Default for HeadConfig {
    fn default() -> Self {
        Self {
            kind: None,
            num_labels: None,
            pooling: None,
            dropout: None,
            class_weights: None,
            bias_init: BiasInit::Zero,
        }
    }
}

/// The learning-rate curve over the run (after warmup).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decay {
    /// Linear to 0, as the HF Trainer.
    #[default]
    Linear,
    Cosine,
    Constant,
}

/// `gradus-finetune`'s TOML. Defaults follow the HF Trainer recipe for BERT sequence
/// classification: 3 epochs, batch 8, learning rate 2e-5 decaying linearly, AdamW.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FinetuneConfig {
    /// A checkpoint folder: `config.json` + `model.safetensors` (a gradus pretraining
    /// `model/` or an HF BERT-family model).
    pub model: PathBuf,
    pub init: Init,
    /// An `examples` dataset (its `tokenizer.json` must match the checkpoint's).
    pub examples: PathBuf,
    pub train_split: String,
    pub validation_split: String,
    /// Train on a seeded subset of this many examples.
    pub train_examples: Option<usize>,
    /// Evaluate on a seeded subset of this many examples.
    pub validation_examples: Option<usize>,
    pub head: HeadConfig,
    /// Longest input (longer examples are cut, keeping the final `[SEP]`).
    pub seq_len: usize,
    pub batch_size: usize,
    pub eval_batch_size: usize,
    /// Batch examples of similar length together.
    pub bucket_by_length: bool,
    /// Instruction tasks: pack each batch's examples into rows of `seq_len` tokens rather
    /// than padding every example to the longest (fewer, fuller rows).
    pub packing: bool,
    pub epochs: f64,
    /// Optimiser updates; overrides `epochs`.
    pub max_steps: Option<u64>,
    pub accumulation: usize,
    /// Encoder learning rate.
    pub lr: f64,
    /// Head learning rate; the encoder's by default.
    pub head_lr: Option<f64>,
    /// Layer-wise learning-rate decay (1: none).
    pub layer_lr_decay: f64,
    pub freeze_embeddings: bool,
    /// Freeze the bottom k encoder layers.
    pub freeze_layers: usize,
    /// Share of the steps spent warming up.
    pub warmup_ratio: f64,
    /// Steps spent warming up; overrides `warmup_ratio` (as the HF Trainer's pair).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warmup_steps: Option<u64>,
    pub decay: Decay,
    pub weight_decay: f64,
    pub grad_clip: f64,
    /// Evaluate every N steps; each epoch when absent.
    pub eval_steps: Option<u64>,
    /// Stop after this many evaluations without a better `metric_for_best`.
    pub early_stopping_patience: Option<u64>,
    /// The dev metric that picks the best checkpoint: `accuracy` (classification),
    /// `pearson` (regression) or `exact_match` (instruction) by default.
    pub metric_for_best: Option<String>,
    /// Whether a larger `metric_for_best` is better; by default the metric's own
    /// direction (up for accuracy and Pearson, down for loss and MSE).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub greater_is_better: Option<bool>,
    pub device: String,
    /// Seeds the head, subsets, batch order and dropout.
    pub seed: u64,
}

impl Default for FinetuneConfig {
    fn default() -> Self {
        Self {
            model: PathBuf::new(),
            init: Init::Pretrained,
            examples: PathBuf::new(),
            train_split: "train".into(),
            validation_split: "validation".into(),
            train_examples: None,
            validation_examples: None,
            head: HeadConfig::default(),
            seq_len: 128,
            batch_size: 8,
            eval_batch_size: 64,
            bucket_by_length: true,
            packing: false,
            epochs: 3.0,
            max_steps: None,
            accumulation: 1,
            lr: 2e-5,
            head_lr: None,
            layer_lr_decay: 1.0,
            freeze_embeddings: false,
            freeze_layers: 0,
            warmup_ratio: 0.0,
            warmup_steps: None,
            decay: Decay::Linear,
            weight_decay: 0.0,
            grad_clip: 1.0,
            eval_steps: None,
            early_stopping_patience: None,
            metric_for_best: None,
            greater_is_better: None,
            device: "cpu".into(),
            seed: 42,
        }
    }
}

/// The class names of an examples dataset (`labels.json`), if it has them.
pub fn dataset_labels(dir: &Path) -> Result<Option<Vec<String>>> {
    let path = dir.join("labels.json");
    if !path.is_file() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&path).map_err(|e| FinetuneError::file(&path, e))?;
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| FinetuneError::file(&path, e))?;
    let names = value
        .get("names")
        .and_then(|n| serde_json::from_value(n.clone()).ok())
        .ok_or_else(|| FinetuneError::file(&path, "no `names` list"))?;
    Ok(Some(names))
}

/// The head a task needs, checked against what its examples carry.
pub fn task_spec(
    name: &str,
    head: &HeadConfig,
    examples_dir: &Path,
    train: &[TaskExample],
    (max_len, body): (usize, &BodyConfig),
) -> Result<TaskSpec> {
    if let Some(template) = gradus_tokenize::instruction_template(examples_dir)? {
        return instruction_spec(name, head, examples_dir, template, (max_len, body));
    }
    if head.kind == Some(TaskKind::Lm) {
        return Err(FinetuneError::Config(format!(
            "task `{name}`: a causal-LM task reads a `tokens` dataset, not examples"
        )));
    }
    if head.kind == Some(TaskKind::Instruction) {
        return Err(FinetuneError::data(
            examples_dir,
            format!(
                "task `{name}` is an instruction task, but these are not instruction examples \
                 (encode them with `response` and `template`)"
            ),
        ));
    }
    let pooling = head.pooling.unwrap_or(body.default_pooling());
    body.check_pooling(pooling)
        .map_err(|m| FinetuneError::Config(format!("task `{name}`: {m}")))?;
    let paired = train
        .iter()
        .find(|e| e.token_type_ids.iter().any(|&t| t != 0));
    if let (BodyConfig::Decoder(c), Some(e)) = (body, paired) {
        return Err(FinetuneError::data(
            examples_dir,
            format!(
                "example {} is a text pair with token types, which only a BERT encoder reads; \
                 a `{}` decoder takes one text per example",
                e.id,
                c.model_type()
            ),
        ));
    }
    let refs = references(train, examples_dir)?;
    let labels = dataset_labels(examples_dir)?;
    let kind = match (head.kind, refs) {
        (Some(TaskKind::Regression), References::Labels) => {
            return Err(FinetuneError::data(
                examples_dir,
                format!(
                    "task `{name}` is a regression, but these examples carry class labels {:?}",
                    labels.unwrap_or_default()
                ),
            ));
        }
        (Some(TaskKind::Classification), References::Targets) => {
            return Err(FinetuneError::data(
                examples_dir,
                format!(
                    "task `{name}` is a classification, but these examples carry numeric targets"
                ),
            ));
        }
        (_, References::None) => {
            return Err(FinetuneError::data(
                examples_dir,
                "the training examples have neither labels nor targets",
            ));
        }
        (Some(kind), _) => kind,
        (None, References::Labels) => TaskKind::Classification,
        (None, References::Targets) => TaskKind::Regression,
    };
    let labels = match kind {
        TaskKind::Regression | TaskKind::Instruction | TaskKind::Lm => Vec::new(),
        TaskKind::Classification => labels.ok_or_else(|| {
            FinetuneError::data(examples_dir, "classification examples without labels.json")
        })?,
    };
    if let Some(n) = head
        .num_labels
        .filter(|&n| kind == TaskKind::Classification && n != labels.len())
    {
        return Err(FinetuneError::data(
            examples_dir,
            format!(
                "the head of task `{name}` has {n} classes, the examples have {} labels {labels:?}",
                labels.len()
            ),
        ));
    }
    if let Some(e) = train.iter().find(|e| {
        e.label
            .is_some_and(|l| l < 0 || l as usize >= labels.len().max(1))
            && kind == TaskKind::Classification
    }) {
        return Err(FinetuneError::data(
            examples_dir,
            format!(
                "example {} has label id {:?}, outside the {} labels",
                e.id,
                e.label,
                labels.len()
            ),
        ));
    }
    if let Some(w) = &head.class_weights
        && (kind != TaskKind::Classification || w.len() != labels.len())
    {
        return Err(FinetuneError::Config(format!(
            "task `{name}`: {} class weights for {} classes",
            w.len(),
            labels.len()
        )));
    }
    if head.bias_init == BiasInit::Mean && kind != TaskKind::Regression {
        return Err(FinetuneError::Config(format!(
            "task `{name}`: `bias_init = \"mean\"` is for regression heads"
        )));
    }
    Ok(TaskSpec {
        name: name.to_string(),
        kind,
        labels,
        pooling,
        max_len,
        template: None,
    })
}

/// The spec of an instruction task: a decoder's LM head, none of a classifier's options.
fn instruction_spec(
    name: &str,
    head: &HeadConfig,
    examples_dir: &Path,
    template: gradus_tokenize::Template,
    (max_len, body): (usize, &BodyConfig),
) -> Result<TaskSpec> {
    let refuse = |m: String| Err(FinetuneError::data(examples_dir, m));
    if let BodyConfig::Encoder(_) = body {
        return refuse(format!(
            "task `{name}` has instruction examples, which a decoder (gpt2, llama) learns \
             to answer; a BERT encoder generates no text"
        ));
    }
    if let Some(kind) = head.kind.filter(|&k| k != TaskKind::Instruction) {
        return refuse(format!(
            "task `{name}` is a {kind:?} task, but these are instruction examples"
        ));
    }
    let head_only = [
        ("num_labels", head.num_labels.is_some()),
        ("pooling", head.pooling.is_some()),
        ("dropout", head.dropout.is_some()),
        ("class_weights", head.class_weights.is_some()),
        ("bias_init", head.bias_init != BiasInit::Zero),
    ];
    if let Some((key, _)) = head_only.iter().find(|(_, set)| *set) {
        return Err(FinetuneError::Config(format!(
            "task `{name}`: head.{key} is for classification and regression heads; an \
             instruction task trains the decoder's own LM head"
        )));
    }
    Ok(TaskSpec {
        name: name.to_string(),
        kind: TaskKind::Instruction,
        labels: Vec::new(),
        pooling: Pooling::Last,
        max_len,
        template: Some(template),
    })
}

/// Checks that the checkpoint in `model` and the tokenizer that encoded `examples` share
/// one vocabulary: token for token when the checkpoint has `tokenizer.json` or
/// `vocab.txt`, by size otherwise. Returns the tokenizer file and its padding id.
pub fn check_vocabulary(model: &Path, examples: &Path) -> Result<(PathBuf, u32)> {
    let tk_path = examples.join("tokenizer.json");
    let tk = gradus_tokenize::load(&tk_path)?;
    let config = BodyConfig::read(model)?;
    let ours = tk.get_vocab(true);
    let mismatch = |detail: String| {
        FinetuneError::Config(format!(
            "the vocabulary of checkpoint {} does not match the tokenizer of {} ({detail})",
            model.display(),
            tk_path.display()
        ))
    };
    if ours.len() > config.vocab_size() {
        return Err(mismatch(format!(
            "{} tokens, the model has {} embeddings",
            ours.len(),
            config.vocab_size()
        )));
    }
    let theirs = if model.join("tokenizer.json").is_file() {
        Some(gradus_tokenize::load(&model.join("tokenizer.json"))?.get_vocab(true))
    } else if model.join("vocab.txt").is_file() {
        let path = model.join("vocab.txt");
        let text = std::fs::read_to_string(&path).map_err(|e| FinetuneError::file(&path, e))?;
        Some(
            text.lines()
                .enumerate()
                .map(|(i, t)| (t.to_string(), i as u32))
                .collect(),
        )
    } else {
        None
    };
    if let Some(theirs) = theirs {
        let differs = ours
            .iter()
            .filter(|(t, id)| theirs.get(*t) != Some(id))
            .take(3)
            .map(|(t, id)| format!("{t:?} is {id} here, {:?} there", theirs.get(t)))
            .collect::<Vec<_>>();
        if !differs.is_empty() || ours.len() != theirs.len() {
            return Err(mismatch(format!(
                "{} vs {} tokens; {}",
                ours.len(),
                theirs.len(),
                differs.join("; ")
            )));
        }
    }
    let pad = gradus_tokenize::SpecialTokens::of(&tk)
        .pad
        .unwrap_or(config.pad_token_id());
    Ok((tk_path, pad))
}

impl FinetuneConfig {
    /// The same run as a config of tasks: this one task, its head named `classifier`.
    pub fn as_tasks(&self) -> MultitaskConfig {
        let base = Self::default();
        let task = TaskConfig {
            name: String::new(),
            examples: self.examples.clone(),
            train_split: self.train_split.clone(),
            validation_split: self.validation_split.clone(),
            train_examples: self.train_examples,
            validation_examples: self.validation_examples,
            head: self.head.clone(),
            ..TaskConfig::default()
        };
        MultitaskConfig {
            tasks: vec![task],
            training: Self {
                examples: base.examples,
                train_split: base.train_split,
                validation_split: base.validation_split,
                train_examples: None,
                validation_examples: None,
                head: base.head,
                ..self.clone()
            },
            heads: HeadNames::Single,
            ..MultitaskConfig::default()
        }
    }

    /// Loads data and model and runs every check; nothing is trained yet.
    pub fn build(&self) -> Result<TaskObjective> {
        self.as_tasks().build()
    }

    /// The trainer's settings for `batches_per_epoch` batches of training data, selecting
    /// on `metric` ([`MultitaskConfig::train_config`] gives both).
    pub(crate) fn train_config(&self, batches_per_epoch: usize, metric: String) -> TrainConfig {
        let per_epoch = batches_per_epoch.div_ceil(self.accumulation).max(1) as u64;
        let steps = self
            .max_steps
            .unwrap_or_else(|| (self.epochs * per_epoch as f64).ceil().max(1.0) as u64);
        let warmup_steps = self
            .warmup_steps
            .unwrap_or_else(|| (self.warmup_ratio * steps as f64).round() as u64);
        let schedule = match self.decay {
            Decay::Linear => Schedule::Linear {
                warmup_steps,
                min_lr: 0.0,
                decay_steps: None,
            },
            Decay::Cosine => Schedule::Cosine {
                warmup_steps,
                min_lr: 0.0,
                decay_steps: None,
            },
            Decay::Constant => Schedule::Constant,
        };
        let eval = self.eval_steps.unwrap_or(per_epoch).max(1);
        TrainConfig {
            steps,
            lr: self.lr,
            schedule,
            optimizer: OptimizerConfig::Adamw {
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
                weight_decay: self.weight_decay,
                no_decay: vec!["bias".into(), "norm".into()],
            },
            grad_clip: self.grad_clip,
            accumulation: self.accumulation,
            eval_interval: eval,
            eval_at_start: false,
            checkpoint_interval: eval,
            keep_last: 1,
            early_stopping_patience: self.early_stopping_patience,
            metric_for_best: metric,
            greater_is_better: self.greater_is_better,
            load_best_at_end: true,
            seed: self.seed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fine-tuning config is one task: its per-task keys move under the task, the
    /// shared ones stay, and the head is named as a single task's.
    #[test]
    fn a_finetune_config_is_a_config_of_one_task() {
        let config = FinetuneConfig {
            model: "m".into(),
            examples: "ex".into(),
            validation_split: "dev".into(),
            train_examples: Some(10),
            lr: 1e-4,
            metric_for_best: Some("mcc".into()),
            head: HeadConfig {
                num_labels: Some(3),
                ..HeadConfig::default()
            },
            ..FinetuneConfig::default()
        };
        let tasks = config.as_tasks();
        assert_eq!(tasks.heads, HeadNames::Single);
        let [task] = tasks.tasks.as_slice() else {
            panic!("{} tasks", tasks.tasks.len())
        };
        assert_eq!(task.examples, PathBuf::from("ex"));
        assert_eq!(task.validation_split, "dev");
        assert_eq!(task.train_examples, Some(10));
        assert_eq!(task.head.num_labels, Some(3));
        assert_eq!(task.weight, 1.0);
        let base = FinetuneConfig::default();
        assert_eq!(tasks.training.examples, base.examples);
        assert_eq!(tasks.training.head, base.head);
        assert_eq!(tasks.training.train_examples, None);
        assert_eq!(tasks.training.model, PathBuf::from("m"));
        assert_eq!(tasks.training.lr, 1e-4);
        assert_eq!(tasks.training.metric_for_best.as_deref(), Some("mcc"));

        // One head named `classifier` serves one task only.
        let mut two = tasks.clone();
        two.tasks.push(TaskConfig {
            name: "other".into(),
            ..TaskConfig::default()
        });
        let e = two.build().unwrap_err().to_string();
        assert!(e.contains("2 tasks under one `classifier` head"), "{e}");
    }
}
