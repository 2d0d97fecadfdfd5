//! Labelling new text with a fine-tuned checkpoint.

use std::path::Path;

use candle_core::Device;
use gradus_model::Ctx;
use gradus_shard::Prediction;
use tokenizers::{EncodeInput, Tokenizer, TruncationParams, TruncationStrategy};

use crate::body::BodyConfig;
use crate::data::TaskExample;
use crate::error::{FinetuneError, Result};
use crate::eval::{TaskScore, argmax, head_outputs, probabilities, score};
use crate::instruct::Scorer;
use crate::model::{HeadNames, HeadSpec, Init, TaskKind, TaskModel, read_task_spec};

/// A fine-tuned model with its tokenizer.
#[derive(Debug)]
pub struct Predictor {
    pub model: TaskModel,
    tokenizer: Tokenizer,
    pad: u32,
    device: Device,
    pub batch_size: usize,
}

impl Predictor {
    /// Loads a folder written by `gradus-finetune` (`config.json` with `gradus_task`,
    /// `model.safetensors`, `tokenizer.json`).
    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        let spec = read_task_spec(dir)?.ok_or_else(|| {
            FinetuneError::file(
                &dir.join("config.json"),
                "no `gradus_task`: not a fine-tuned checkpoint",
            )
        })?;
        let mut tokenizer = gradus_tokenize::load(&dir.join("tokenizer.json"))?;
        let (size, vocab) = (
            tokenizer.get_vocab_size(true),
            BodyConfig::read(dir)?.vocab_size(),
        );
        if size > vocab {
            return Err(FinetuneError::file(
                &dir.join("tokenizer.json"),
                format!(
                    "{size} tokens, but the model has {vocab} embeddings: not this model's tokenizer"
                ),
            ));
        }
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: spec.max_len,
                strategy: TruncationStrategy::LongestFirst,
                ..TruncationParams::default()
            }))
            .map_err(|e| FinetuneError::Config(format!("tokenizer truncation: {e}")))?;
        tokenizer.with_padding(None);
        let pad = gradus_tokenize::SpecialTokens::of(&tokenizer)
            .pad
            .unwrap_or(0);
        let head = HeadSpec {
            task: spec,
            dropout: None,
        };
        let mut model = TaskModel::load(
            dir,
            Init::Pretrained,
            vec![head],
            HeadNames::Single,
            &[],
            device,
            0,
        )?;
        // A fine-tuned checkpoint must carry its head: nothing may be initialised.
        if let Some(name) = model.params.fresh_names().first() {
            return Err(FinetuneError::file(
                &dir.join("model.safetensors"),
                format!("tensor `{name}` is missing"),
            ));
        }
        model.specs[0].max_len = model.specs[0].max_len.max(1);
        Ok(Self {
            model,
            tokenizer,
            pad,
            device: device.clone(),
            batch_size: 64,
        })
    }

    /// Encodes texts (or sentence pairs) as the model's examples.
    pub fn encode(&self, texts: &[(String, Option<String>)]) -> Result<Vec<TaskExample>> {
        let inputs: Vec<EncodeInput<'_>> = texts
            .iter()
            .map(|(a, b)| match b {
                Some(b) => (a.as_str(), b.as_str()).into(),
                None => a.as_str().into(),
            })
            .collect();
        let encodings = self
            .tokenizer
            .encode_batch(inputs, true)
            .map_err(|e| FinetuneError::Config(format!("encoding: {e}")))?;
        Ok(texts
            .iter()
            .zip(encodings)
            .enumerate()
            .map(|(i, ((a, b), enc))| TaskExample {
                id: format!("input:{i}"),
                task: self.model.spec().name.clone(),
                split: "input".into(),
                text: a.clone(),
                text_pair: b.clone(),
                input_ids: enc.get_ids().to_vec(),
                token_type_ids: enc
                    .get_type_ids()
                    .iter()
                    .map(|&t| t.min(255) as u8)
                    .collect(),
                label: None,
                target: None,
            })
            .collect())
    }

    /// The padding id batches are padded with.
    pub fn pad(&self) -> u32 {
        self.pad
    }

    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// The task scored on `examples` with references: head outputs against labels or
    /// targets, or generated answers against responses.
    pub fn score(&self, examples: &[TaskExample]) -> Result<(TaskScore, Vec<Vec<f32>>)> {
        let spec = self.model.spec();
        if spec.kind.uses_lm_head() {
            let decoder = self.model.decoder().ok_or_else(|| {
                FinetuneError::Config(format!("task `{}`: no decoder", spec.name))
            })?;
            let scorer = Scorer {
                decoder,
                spec,
                batch_size: self.batch_size,
                pad: self.pad,
                device: &self.device,
                tokenizer: &self.tokenizer,
            };
            return Ok((scorer.score(examples)?, Vec::new()));
        }
        let outputs = self.outputs(examples)?;
        Ok((score(spec, examples, &outputs)?, outputs))
    }

    /// The head's raw outputs for each example: logits, or the one regression value.
    pub fn outputs(&self, examples: &[TaskExample]) -> Result<Vec<Vec<f32>>> {
        head_outputs(examples, self.batch_size, self.pad, &self.device, |b| {
            self.model.forward(0, b, &mut Ctx::eval())
        })
    }

    /// The model's prediction for each example.
    pub fn predict(&self, examples: &[TaskExample]) -> Result<Vec<Prediction>> {
        let spec = self.model.spec();
        if spec.kind.uses_lm_head() {
            return Err(FinetuneError::Config(format!(
                "task `{}` is on the LM head: generate with gradus-generate, or score it with \
                 gradus-eval",
                spec.name
            )));
        }
        let outputs = self.outputs(examples)?;
        Ok(examples
            .iter()
            .zip(outputs)
            .map(|(e, out)| {
                let (predicted, name, score, probs) = match spec.kind {
                    TaskKind::Classification => {
                        let probs = probabilities(&out);
                        let k = argmax(&probs);
                        (Some(k as i64), spec.labels.get(k).cloned(), probs[k], probs)
                    }
                    TaskKind::Regression | TaskKind::Instruction | TaskKind::Lm => (
                        None,
                        None,
                        out.first().copied().unwrap_or(f32::NAN),
                        Vec::new(),
                    ),
                };
                Prediction {
                    id: e.id.clone(),
                    task: spec.name.clone(),
                    split: e.split.clone(),
                    text: e.text.clone(),
                    text_pair: e.text_pair.clone(),
                    predicted,
                    predicted_name: name,
                    score,
                    probs,
                    label: e.label,
                    target: e.target,
                }
            })
            .collect())
    }
}
