//! One shared BERT-style encoder with a head per task (`heads.<task>.weight` /
//! `.bias`), saved as one checkpoint and exported per task as a single-task HF
//! `BertForSequenceClassification` folder.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use gradus_finetune::data::PaddedBatch;
use gradus_finetune::{Init, TaskSpec, pool, read_bert_config, write_config};
use gradus_model::{Bert, Ctx, Params, TaskHead};

use crate::error::{MultitaskError, Result};

/// Encoder + one pooling and head per task.
#[derive(Debug)]
pub struct MultitaskModel {
    pub bert: Bert,
    pub heads: Vec<TaskHead>,
    pub specs: Vec<TaskSpec>,
    pub params: Params,
}

/// The parameter prefix of a task's head.
pub fn head_prefix(task: &str) -> String {
    format!("heads.{task}")
}

impl MultitaskModel {
    /// The encoder of `dir` (its weights unless `init` is `Random`) with a new head per
    /// spec; `dropouts[i]` replaces task i's dropout before its head.
    pub fn load(
        dir: &Path,
        init: Init,
        specs: Vec<TaskSpec>,
        dropouts: &[Option<f32>],
        frozen: &[String],
        device: &Device,
        seed: u64,
    ) -> Result<Self> {
        let config = read_bert_config(dir)?;
        let mut params = match init {
            Init::Pretrained => {
                Params::from_checkpoint(dir, device.clone(), seed, &["heads.", "bert.pooler"])?
            }
            Init::Random => Params::new(device.clone(), seed),
        };
        params.freeze(frozen);
        let bert = Bert::new(&config, &mut params)?;
        let mut heads = Vec::with_capacity(specs.len());
        for (spec, dropout) in specs.iter().zip(dropouts) {
            let head = TaskHead::new(&bert, &mut params, &head_prefix(&spec.name), spec.outputs())?;
            heads.push(match dropout {
                Some(p) => head.with_dropout(*p),
                None => head,
            });
        }
        Ok(Self {
            bert,
            heads,
            specs,
            params,
        })
    }

    /// Task `task`'s head outputs `[batch, outputs]`.
    pub fn forward(&self, task: usize, batch: &PaddedBatch, ctx: &mut Ctx<'_>) -> Result<Tensor> {
        let hidden = self
            .bert
            .forward(&batch.ids, &batch.type_ids, &batch.mask, ctx)?;
        let pooled = pool(&self.bert, self.specs[task].pooling, &hidden, &batch.mask)?;
        Ok(self.heads[task].forward(&pooled, ctx)?)
    }

    /// Writes `model.safetensors` and a `config.json` listing every task.
    pub fn save(&self, dir: &Path) -> Result<()> {
        self.params.save(&dir.join("model.safetensors"))?;
        let specs: Vec<&TaskSpec> = self.specs.iter().collect();
        Ok(write_config(dir, self.bert.config(), &specs)?)
    }

    /// Writes task `task` alone into `dir`: the encoder and its head renamed to
    /// `classifier`, which `gradus-finetune`, `gradus-predict` and HF tools load as a
    /// single-task checkpoint.
    pub fn export_task(&self, task: usize, dir: &Path) -> Result<()> {
        let prefix = format!("{}.", head_prefix(&self.specs[task].name));
        let tensors: HashMap<String, Tensor> = self
            .params
            .iter()
            .filter_map(|(name, var, _)| {
                let renamed = if let Some(rest) = name.strip_prefix(&prefix) {
                    format!("classifier.{rest}")
                } else if name.starts_with("heads.") {
                    return None;
                } else {
                    name.to_string()
                };
                Some((renamed, var.as_tensor().clone()))
            })
            .collect();
        std::fs::create_dir_all(dir)
            .map_err(|e| MultitaskError::Config(format!("{}: {e}", dir.display())))?;
        let file = dir.join("model.safetensors");
        candle_core::safetensors::save(&tensors, &file)
            .map_err(|e| MultitaskError::Config(format!("{}: {e}", file.display())))?;
        Ok(write_config(dir, self.bert.config(), &[&self.specs[task]])?)
    }
}
