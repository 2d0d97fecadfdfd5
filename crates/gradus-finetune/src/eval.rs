//! Running a head over examples and scoring its outputs with the shared task metrics.

use std::collections::BTreeMap;

use candle_core::{Device, Tensor};
use gradus_metrics::{ClassificationReport, RegressionReport};
use serde::Serialize;

use crate::data::{PaddedBatch, TaskExample};
use crate::error::{FinetuneError, Result};
use crate::model::{TaskKind, TaskSpec};

/// The head's output row of every example, in the examples' order. Examples are run in
/// length order, `batch_size` at a time, so that batches carry little padding.
pub fn head_outputs(
    examples: &[TaskExample],
    batch_size: usize,
    pad: u32,
    device: &Device,
    mut forward: impl FnMut(&PaddedBatch) -> Result<Tensor>,
) -> Result<Vec<Vec<f32>>> {
    let mut order: Vec<usize> = (0..examples.len()).collect();
    order.sort_by_key(|&i| examples[i].input_ids.len());
    let mut rows = vec![Vec::new(); examples.len()];
    for chunk in order.chunks(batch_size.max(1)) {
        let refs: Vec<&TaskExample> = chunk.iter().map(|&i| &examples[i]).collect();
        let batch = PaddedBatch::new(&refs, pad, device)?;
        let out = forward(&batch)?.to_device(&Device::Cpu)?.to_vec2::<f32>()?;
        for (&i, row) in chunk.iter().zip(out) {
            rows[i] = row;
        }
    }
    Ok(rows)
}

/// Class probabilities from logits (a stable softmax).
pub fn probabilities(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f32> = logits.iter().map(|&l| (l - max).exp()).collect();
    let sum: f32 = exps.iter().sum();
    exps.iter().map(|e| e / sum).collect()
}

/// Index of the largest value (the first on ties).
pub fn argmax(values: &[f32]) -> usize {
    values
        .iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |(bi, bv), (i, &v)| {
            if v > bv { (i, v) } else { (bi, bv) }
        })
        .0
}

/// A task's figures on one set of examples: scalars for the training log and early
/// stopping, and the full report (confusion matrix included) for `metrics.json`.
#[derive(Debug, Clone, Serialize)]
pub struct TaskScore {
    pub scalars: BTreeMap<String, f64>,
    pub report: serde_json::Value,
}

/// Scores head `outputs` against the examples' references. Scalars: `loss` and
/// `accuracy`, `macro_f1`, `mcc` (classification) or `mse`, `pearson`, `spearman`
/// (regression; a correlation the outputs leave undefined is NaN, its reason in the
/// report).
pub fn score(spec: &TaskSpec, examples: &[TaskExample], outputs: &[Vec<f32>]) -> Result<TaskScore> {
    let metric =
        |e: gradus_metrics::MetricError| FinetuneError::Config(format!("{}: {e}", spec.name));
    match spec.kind {
        TaskKind::Classification => {
            let (mut truth, mut pred, mut nll) = (Vec::new(), Vec::new(), 0.0f64);
            for (e, out) in examples.iter().zip(outputs) {
                let label = e
                    .label
                    .and_then(|l| usize::try_from(l).ok())
                    .ok_or_else(|| {
                        FinetuneError::Config(format!(
                            "{}: example {} has no class label",
                            spec.name, e.id
                        ))
                    })?;
                let p = probabilities(out);
                nll -= f64::from(p.get(label).copied().unwrap_or(0.0).max(1e-12)).ln();
                truth.push(label);
                pred.push(argmax(out));
            }
            let r = ClassificationReport::new(&truth, &pred, spec.outputs()).map_err(metric)?;
            let scalars = BTreeMap::from([
                ("loss".to_string(), nll / examples.len().max(1) as f64),
                ("accuracy".to_string(), r.accuracy),
                ("macro_f1".to_string(), r.macro_f1),
                ("mcc".to_string(), r.mcc),
            ]);
            let mut report = serde_json::to_value(&r).unwrap_or_default();
            if let Some(obj) = report.as_object_mut() {
                obj.insert("labels".into(), serde_json::json!(spec.labels));
            }
            Ok(TaskScore { scalars, report })
        }
        TaskKind::Regression => {
            let mut truth = Vec::new();
            let mut pred = Vec::new();
            for (e, out) in examples.iter().zip(outputs) {
                let t = e.target.ok_or_else(|| {
                    FinetuneError::Config(format!(
                        "{}: example {} has no target value",
                        spec.name, e.id
                    ))
                })?;
                truth.push(f64::from(t));
                pred.push(f64::from(out.first().copied().unwrap_or(f32::NAN)));
            }
            let mse = gradus_metrics::mse(&pred, &truth).map_err(metric)?;
            let (report, pearson, spearman) = match RegressionReport::new(&pred, &truth) {
                Ok(r) => (
                    serde_json::to_value(&r).unwrap_or_default(),
                    r.pearson,
                    r.spearman,
                ),
                Err(e) => (
                    serde_json::json!({ "examples": truth.len(), "mse": mse, "error": e.to_string() }),
                    f64::NAN,
                    f64::NAN,
                ),
            };
            let scalars = BTreeMap::from([
                ("loss".to_string(), mse),
                ("mse".to_string(), mse),
                ("pearson".to_string(), pearson),
                ("spearman".to_string(), spearman),
            ]);
            Ok(TaskScore { scalars, report })
        }
        TaskKind::Instruction | TaskKind::Lm => Err(FinetuneError::Config(format!(
            "{}: a task on the LM head is scored on its tokens, not head outputs",
            spec.name
        ))),
    }
}
