//! A task model: a body (a BERT-style encoder, or a GPT-2 or Llama-style decoder), a
//! pooling of its hidden states and a linear head per task (one for fine-tuning, named as
//! HF `BertForSequenceClassification` names it), loaded from a model folder of either
//! layout and saved as a checkpoint folder.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use gradus_model::{Bert, BertConfig, Ctx, Decoder, Params, Pooling, TaskHead};
use serde::{Deserialize, Serialize};

use crate::body::{Body, BodyConfig};
use crate::data::{PaddedBatch, TaskExample};
use crate::error::{FinetuneError, Result};

/// What the head predicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskKind {
    /// One of n classes, cross-entropy.
    Classification,
    /// One value, mean squared error.
    Regression,
}

/// A task's head, as saved with the model (`gradus_task` in `config.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskSpec {
    /// Task name; also the head's parameter prefix in multi-task models.
    pub name: String,
    pub kind: TaskKind,
    /// Class names in id order; empty for regression.
    #[serde(default)]
    pub labels: Vec<String>,
    pub pooling: Pooling,
    /// Longest input, special tokens included.
    pub max_len: usize,
}

impl TaskSpec {
    /// Width of the head's output.
    pub fn outputs(&self) -> usize {
        match self.kind {
            TaskKind::Classification => self.labels.len(),
            TaskKind::Regression => 1,
        }
    }
}

/// Where the encoder's weights come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Init {
    /// The checkpoint's weights (the head is new unless the checkpoint has one).
    #[default]
    Pretrained,
    /// The checkpoint's architecture with seeded random weights (a baseline).
    Random,
}

/// Reads the encoder configuration of a checkpoint folder (`config.json`).
pub fn read_bert_config(dir: &Path) -> Result<BertConfig> {
    let path = dir.join("config.json");
    let text = std::fs::read_to_string(&path).map_err(|e| FinetuneError::file(&path, e))?;
    let config: BertConfig =
        serde_json::from_str(&text).map_err(|e| FinetuneError::file(&path, e))?;
    if config.model_type != "bert" {
        return Err(FinetuneError::file(
            &path,
            format!(
                "model_type `{}`: fine-tuning needs a BERT-family encoder",
                config.model_type
            ),
        ));
    }
    Ok(config)
}

/// The `gradus_task` section of a fine-tuned checkpoint's `config.json`, if it has one.
pub fn read_task_spec(dir: &Path) -> Result<Option<TaskSpec>> {
    let path = dir.join("config.json");
    let text = std::fs::read_to_string(&path).map_err(|e| FinetuneError::file(&path, e))?;
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| FinetuneError::file(&path, e))?;
    value
        .get("gradus_task")
        .map(|t| serde_json::from_value(t.clone()).map_err(|e| FinetuneError::file(&path, e)))
        .transpose()
}

/// How a model names its heads' parameters: one task's head is `classifier`, as in HF
/// `BertForSequenceClassification`; several tasks' heads are `heads.<task>`. A task
/// model and a multi-task model differ only by this prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadNames {
    /// One head, `classifier`.
    Single,
    /// A head per task, `heads.<task>`.
    PerTask,
}

impl HeadNames {
    /// The parameter prefix of `task`'s head.
    pub fn prefix(self, task: &str) -> String {
        match self {
            Self::Single => "classifier".into(),
            Self::PerTask => format!("heads.{task}"),
        }
    }

    /// What a checkpoint may lack: the heads and the pooler are initialised then.
    fn optional(self) -> [&'static str; 2] {
        match self {
            Self::Single => ["classifier", "bert.pooler"],
            Self::PerTask => ["heads.", "bert.pooler"],
        }
    }
}

/// One new head of a [`TaskModel`]: its task, and the dropout before it when the task
/// replaces the encoder's.
#[derive(Debug, Clone)]
pub struct HeadSpec {
    pub task: TaskSpec,
    pub dropout: Option<f32>,
}

/// A body with one pooling and head per task: a fine-tuning model has one task, a
/// multi-task model several, on one shared body.
#[derive(Debug)]
pub struct TaskModel {
    pub body: Body,
    pub heads: Vec<TaskHead>,
    pub specs: Vec<TaskSpec>,
    pub names: HeadNames,
    pub params: Params,
}

impl TaskModel {
    /// Builds the model on `dir`'s architecture, with its weights unless `init` is
    /// `Random`, and a head per entry of `heads`; the pooler and heads are initialised
    /// when the checkpoint lacks them.
    pub fn load(
        dir: &Path,
        init: Init,
        heads: Vec<HeadSpec>,
        names: HeadNames,
        frozen: &[String],
        device: &Device,
        seed: u64,
    ) -> Result<Self> {
        let config = BodyConfig::read(dir)?;
        if let Some(long) = heads.iter().find(|h| h.task.max_len > config.positions()) {
            return Err(FinetuneError::Config(format!(
                "seq_len {} is longer than the {} positions of {}",
                long.task.max_len,
                config.positions(),
                dir.display()
            )));
        }
        for h in &heads {
            config
                .check_pooling(h.task.pooling)
                .map_err(|m| FinetuneError::Config(format!("task `{}`: {m}", h.task.name)))?;
        }
        let mut params = match init {
            Init::Pretrained => {
                Params::from_checkpoint(dir, device.clone(), seed, &names.optional())?
            }
            Init::Random => Params::new(device.clone(), seed),
        };
        params.freeze(frozen);
        let body = match &config {
            BodyConfig::Encoder(c) => Body::Encoder(Bert::new(c, &mut params)?),
            BodyConfig::Decoder(c) => Body::Decoder(Decoder::new(c, &mut params)?),
        };
        let mut built = Vec::with_capacity(heads.len());
        for h in &heads {
            let (name, outputs) = (names.prefix(&h.task.name), h.task.outputs());
            let head = match &body {
                Body::Encoder(bert) => TaskHead::new(bert, &mut params, &name, outputs)?,
                Body::Decoder(d) => TaskHead::sized(
                    &mut params,
                    &name,
                    (d.width(), outputs),
                    d.initializer_range(),
                )?,
            };
            built.push(match h.dropout {
                Some(p) => head.with_dropout(p),
                None => head,
            });
        }
        Ok(Self {
            body,
            heads: built,
            specs: heads.into_iter().map(|h| h.task).collect(),
            names,
            params,
        })
    }

    /// The first (for a fine-tuning model, the only) task.
    pub fn spec(&self) -> &TaskSpec {
        &self.specs[0]
    }

    /// The parameter prefix of task `task`'s head.
    pub fn head_prefix(&self, task: usize) -> String {
        self.names.prefix(&self.specs[task].name)
    }

    /// Task `task`'s head outputs `[batch, outputs]`.
    pub fn forward(&self, task: usize, batch: &PaddedBatch, ctx: &mut Ctx<'_>) -> Result<Tensor> {
        let pooled = self.body.pooled(self.specs[task].pooling, batch, ctx)?;
        Ok(self.heads[task].forward(&pooled, ctx)?)
    }

    /// Writes `model.safetensors` and an HF `config.json` carrying every task into `dir`.
    pub fn save(&self, dir: &Path) -> Result<()> {
        self.params.save(&dir.join("model.safetensors"))?;
        let specs: Vec<&TaskSpec> = self.specs.iter().collect();
        write_config(dir, &self.body.config(), &specs)
    }

    /// Writes task `task` alone into `dir`: the encoder and its head renamed to
    /// `classifier`, a single-task checkpoint that `gradus-finetune`, `gradus-predict`
    /// and HF tools load.
    pub fn export_task(&self, task: usize, dir: &Path) -> Result<()> {
        let prefix = format!("{}.", self.head_prefix(task));
        let own = |name: &str| {
            name.strip_prefix(&prefix)
                .map(|rest| format!("classifier.{rest}"))
        };
        let heads: Vec<String> = (0..self.specs.len()).map(|i| self.head_prefix(i)).collect();
        let tensors: HashMap<String, Tensor> = self
            .params
            .iter()
            .filter_map(|(name, var, _)| {
                let renamed = match own(name) {
                    Some(renamed) => renamed,
                    None if heads.iter().any(|h| name.starts_with(&format!("{h}."))) => {
                        return None;
                    }
                    None => name.to_string(),
                };
                Some((renamed, var.as_tensor().clone()))
            })
            .collect();
        std::fs::create_dir_all(dir).map_err(|e| FinetuneError::file(dir, e))?;
        let file = dir.join("model.safetensors");
        candle_core::safetensors::save(&tensors, &file)
            .map_err(|e| FinetuneError::file(&file, e))?;
        write_config(dir, &self.body.config(), &[&self.specs[task]])
    }
}

/// Starts a new regression head at the mean training target (`bias_init = "mean"`): its
/// bias (`<head>.bias`) is set to the mean when it was just initialised, so the encoder
/// need not be bent to make up an offset far from 0 (STS-B's 0–5, a 1–5 rating).
pub fn centre_regression_head(params: &Params, head: &str, train: &[TaskExample]) -> Result<()> {
    let name = format!("{head}.bias");
    if !params.is_fresh(&name) {
        return Ok(());
    }
    let targets: Vec<f64> = train
        .iter()
        .filter_map(|e| e.target.map(f64::from))
        .collect();
    let Some(var) = params.get(&name).filter(|_| !targets.is_empty()) else {
        return Ok(());
    };
    let mean = targets.iter().sum::<f64>() / targets.len() as f64;
    var.set(&Tensor::full(mean as f32, var.dims(), var.device())?)?;
    Ok(())
}

/// Copies the tokenizer (when there is one) beside a saved model, so that the folder
/// labels raw text on its own.
pub fn copy_tokenizer(tokenizer: Option<&Path>, dir: &Path) -> Result<()> {
    if let Some(tk) = tokenizer {
        let to = dir.join("tokenizer.json");
        std::fs::copy(tk, &to).map_err(|e| FinetuneError::file(&to, e))?;
    }
    Ok(())
}

/// One vector per example `[batch, hidden]`; BERT's pooler needs the `bert` it belongs to.
pub fn pool(
    bert: Option<&Bert>,
    pooling: Pooling,
    hidden: &Tensor,
    mask: &Tensor,
) -> Result<Tensor> {
    Ok(match (pooling, bert) {
        (Pooling::Cls, _) => hidden.narrow(1, 0, 1)?.squeeze(1)?,
        (Pooling::Pooler, Some(bert)) => bert.pool(hidden)?,
        (Pooling::Pooler, None) => {
            return Err(FinetuneError::Config(
                "pooling \"pooler\" needs a BERT encoder".into(),
            ));
        }
        (Pooling::Mean, _) => Bert::mean_pool(hidden, mask)?,
        (Pooling::Last, _) => TaskHead::last_token(hidden, mask)?,
    })
}

/// A task model's `config.json`: the encoder's fields and every task, the first under
/// `gradus_task` and all under `gradus_tasks`. The class that opens it in the Python
/// ecosystem is written when the run ends (`gradus-export`); until then a head that
/// transformers would read through the pooler is marked for it to refuse.
pub fn write_config(dir: &Path, config: &BodyConfig, tasks: &[&TaskSpec]) -> Result<()> {
    let path = dir.join("config.json");
    let mut value = config.to_json();
    if let (Some(obj), Some(first)) = (value.as_object_mut(), tasks.first()) {
        if let BodyConfig::Decoder(_) = config {
            let why = "a gradus task head on a decoder (`classifier`, with a bias, where \
                       transformers' sequence classifiers have `score` without one); use \
                       gradus-predict";
            gradus_export::refuse_in_transformers(obj, why);
        } else if first.pooling != Pooling::Pooler {
            let reads = match first.pooling {
                Pooling::Mean => "the mean of the hidden states",
                _ => "the first hidden state without the pooler",
            };
            let why = format!(
                "a gradus checkpoint whose head reads {reads}, which no transformers class \
                 computes; open the run's model folder with sentence-transformers, or write \
                 one with `gradus export`"
            );
            gradus_export::refuse_in_transformers(obj, &why);
        }
        let spec = |t: &TaskSpec| serde_json::to_value(t).unwrap_or_default();
        obj.insert("gradus_task".into(), spec(first));
        if tasks.len() > 1 {
            obj.insert(
                "gradus_tasks".into(),
                tasks.iter().map(|t| spec(t)).collect(),
            );
        }
    }
    let text = serde_json::to_string_pretty(&value).map_err(|e| FinetuneError::file(&path, e))?;
    std::fs::write(&path, text).map_err(|e| FinetuneError::file(&path, e))
}
