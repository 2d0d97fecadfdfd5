//! Tasks on a decoder's own LM head. Instruction tasks: the loss on response tokens only,
//! and scoring by that loss and by the exact match of greedy answers to the dev prompts.
//! A causal-LM task's windows are all response: scored by loss and perplexity.

use std::collections::BTreeMap;

use candle_core::{DType, Device, Tensor};
use gradus_model::generate::{Generation, Sampling, generate_batch};
use gradus_model::{Ctx, Decoder, loss};
use tokenizers::Tokenizer;

use crate::data::{PaddedBatch, TaskExample};
use crate::error::{FinetuneError, Result};
use crate::eval::TaskScore;
use crate::model::{TaskKind, TaskSpec};

/// Dev examples whose answers a score shows.
const SAMPLES: usize = 5;

/// Next-token targets u32 `[batch · len]` and their loss weights f32 `[batch · len]`:
/// position t predicts token t + 1, which counts when it is a response token (segment 1);
/// the prompt and the padding weigh 0.
pub fn response_targets(batch: &PaddedBatch) -> Result<(Tensor, Tensor)> {
    let (b, len) = batch.ids.dims2()?;
    let device = batch.ids.device();
    let shift = |t: &Tensor, dtype: DType| -> Result<Tensor> {
        let last = Tensor::zeros((b, 1), dtype, device)?;
        let next = match len {
            0 | 1 => last,
            _ => Tensor::cat(&[&t.narrow(1, 1, len - 1)?.to_dtype(dtype)?, &last], 1)?,
        };
        Ok(next.flatten_all()?)
    };
    Ok((
        shift(&batch.ids, DType::U32)?,
        shift(&batch.type_ids, DType::F32)?,
    ))
}

/// The summed response-token loss of `logits` `[batch · len, vocab]` and the number of
/// response tokens it sums over.
pub fn response_loss(
    logits: &Tensor,
    batch: &PaddedBatch,
    kernels: gradus_model::Kernels,
) -> Result<(Tensor, f64)> {
    let (targets, weights) = response_targets(batch)?;
    let tokens = f64::from(weights.sum_all()?.to_scalar::<f32>()?);
    let sum = loss::nll_sum(logits, &targets, Some(&weights), kernels)?;
    Ok((sum, tokens))
}

/// The prompt (segment 0) and the reference response with its end token (segment 1) of
/// an encoded instruction example.
pub fn split_example(e: &TaskExample) -> (&[u32], &[u32]) {
    let prompt = e.token_type_ids.iter().take_while(|&&s| s == 0).count();
    let prompt = prompt.min(e.input_ids.len());
    e.input_ids.split_at(prompt)
}

/// What scoring a task on the LM head needs besides the examples.
#[derive(Debug)]
pub struct Scorer<'a> {
    pub decoder: &'a Decoder,
    pub spec: &'a TaskSpec,
    pub batch_size: usize,
    pub pad: u32,
    pub device: &'a Device,
    /// The task's tokenizer: the template's end token, and the answers in the report.
    pub tokenizer: &'a Tokenizer,
}

impl Scorer<'_> {
    /// Scalars `loss` (mean over response tokens) and `exact_match` (the share of prompts
    /// whose greedy answer, up to its end token, is the reference); the report adds a
    /// few answers beside their references. A causal-LM task: `loss` over every next
    /// token and `perplexity`.
    pub fn score(&self, examples: &[TaskExample]) -> Result<TaskScore> {
        if examples.is_empty() {
            return Err(FinetuneError::Config(format!(
                "{}: no examples to score",
                self.spec.name
            )));
        }
        let (sum, tokens) = self.loss(examples)?;
        let loss = sum / tokens.max(1.0);
        if self.spec.kind == TaskKind::Lm {
            let report = serde_json::json!({
                "windows": examples.len(),
                "tokens": tokens,
                "loss": loss,
                "perplexity": loss.exp(),
            });
            let scalars =
                BTreeMap::from([("loss".into(), loss), ("perplexity".into(), loss.exp())]);
            return Ok(TaskScore { scalars, report });
        }
        let eos = self.eos()?;
        let answers = self.answers(examples, eos)?;
        let hits = examples
            .iter()
            .zip(&answers)
            .filter(|(e, a)| split_example(e).1 == a.as_slice())
            .count();
        let exact = hits as f64 / examples.len() as f64;
        let samples: Vec<serde_json::Value> = examples
            .iter()
            .zip(&answers)
            .take(SAMPLES)
            .map(|(e, a)| self.sample(e, a, eos))
            .collect();
        let report = serde_json::json!({
            "examples": examples.len(),
            "response_tokens": tokens,
            "exact_match": exact,
            "loss": loss,
            "samples": samples,
        });
        let scalars = BTreeMap::from([("loss".into(), loss), ("exact_match".into(), exact)]);
        Ok(TaskScore { scalars, report })
    }

    /// The summed response loss over `examples` and the response tokens it counts.
    fn loss(&self, examples: &[TaskExample]) -> Result<(f64, f64)> {
        let mut order: Vec<usize> = (0..examples.len()).collect();
        order.sort_by_key(|&i| examples[i].input_ids.len());
        let (mut sum, mut tokens) = (0.0, 0.0);
        for chunk in order.chunks(self.batch_size.max(1)) {
            let refs: Vec<&TaskExample> = chunk.iter().map(|&i| &examples[i]).collect();
            let batch = PaddedBatch::new(&refs, self.pad, self.device)?;
            let logits = self.decoder.logits_rows(&batch.ids, &mut Ctx::eval())?;
            let (s, n) = response_loss(&logits, &batch, self.decoder.kernels())?;
            sum += f64::from(s.to_scalar::<f32>()?);
            tokens += n;
        }
        Ok((sum, tokens))
    }

    /// Each example's greedy answer, its end token included when it was generated, at
    /// most as long as the longest reference of its batch.
    fn answers(&self, examples: &[TaskExample], eos: u32) -> Result<Vec<Vec<u32>>> {
        let mut order: Vec<usize> = (0..examples.len()).collect();
        order.sort_by_key(|&i| split_example(&examples[i]).0.len());
        let mut answers = vec![Vec::new(); examples.len()];
        for chunk in order.chunks(self.batch_size.max(1)) {
            let prompts: Vec<Vec<u32>> = chunk
                .iter()
                .map(|&i| split_example(&examples[i]).0.to_vec())
                .collect();
            let longest = chunk.iter().map(|&i| split_example(&examples[i]).1.len());
            let generation = Generation {
                max_new_tokens: longest.max().unwrap_or(0),
                sampling: Sampling {
                    temperature: 0.0,
                    top_k: 0,
                    top_p: 1.0,
                    seed: 0,
                },
                cache: true,
            };
            let mut done = |_: usize, new: &[u32]| new.last() == Some(&eos);
            let new = generate_batch(self.decoder, &prompts, &generation, &mut done)?;
            for (&i, answer) in chunk.iter().zip(new) {
                answers[i] = answer;
            }
        }
        Ok(answers)
    }

    fn eos(&self) -> Result<u32> {
        let template = self.spec.template.as_ref().ok_or_else(|| {
            FinetuneError::Config(format!(
                "{}: an instruction task without a template",
                self.spec.name
            ))
        })?;
        Ok(template.encoder(self.tokenizer)?.eos)
    }

    /// An answer beside its reference, both without the end token.
    fn sample(&self, e: &TaskExample, answer: &[u32], eos: u32) -> serde_json::Value {
        let text = match answer.split_last() {
            Some((&last, rest)) if last == eos => rest,
            _ => answer,
        };
        serde_json::json!({
            "id": e.id,
            "prompt": e.text,
            "reference": e.text_pair,
            "answer": self.tokenizer.decode(text, true).unwrap_or_default(),
            "exact": split_example(e).1 == answer,
        })
    }
}

#[cfg(test)]
mod tests {
    use candle_core::Var;
    use gradus_model::Kernels;

    use super::*;
    use crate::objective::task_loss;

    fn example(ids: &[u32], segments: &[u8]) -> TaskExample {
        TaskExample {
            id: "x".into(),
            task: "t".into(),
            split: "train".into(),
            text: String::new(),
            text_pair: None,
            input_ids: ids.to_vec(),
            token_type_ids: segments.to_vec(),
            label: None,
            target: None,
        }
    }

    /// Only the logits that predict a response token get a gradient: the prompt's and the
    /// padding's rows stay exactly zero, with the fused and the composed cross-entropy.
    #[test]
    fn prompt_tokens_get_zero_gradient() {
        let (a, b) = (
            example(&[1, 2, 3, 4, 5], &[0, 0, 0, 1, 1]),
            example(&[6, 7, 8], &[0, 1, 1]),
        );
        let batch = PaddedBatch::new(&[&a, &b], 0, &Device::Cpu).unwrap();
        // Rows predicting a response token: a's positions 2 and 3, b's 0 and 1.
        let counted = [2usize, 3, 5, 6];
        for kernels in [Kernels::Fused, Kernels::Composed] {
            let logits = Var::randn(0f32, 1.0, (10, 9), &Device::Cpu).unwrap();
            let loss = task_loss(TaskKind::Instruction, &logits, &batch, None, kernels).unwrap();
            let grads = loss.backward().unwrap();
            let grad = grads.get(&logits).unwrap().to_vec2::<f32>().unwrap();
            for (row, g) in grad.iter().enumerate() {
                let moved = g.iter().any(|v| *v != 0.0);
                assert_eq!(
                    moved,
                    counted.contains(&row),
                    "{kernels:?} row {row}: {g:?}"
                );
            }
            // The mean over the 4 response tokens, once per example.
            let (sum, tokens) = response_loss(&logits, &batch, kernels).unwrap();
            assert_eq!(tokens, 4.0);
            let mean = sum.to_scalar::<f32>().unwrap() / 4.0;
            let scaled = loss.to_scalar::<f32>().unwrap() / 2.0;
            assert!((mean - scaled).abs() < 1e-5, "{mean} {scaled}");
        }
    }
}
