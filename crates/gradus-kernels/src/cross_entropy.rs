//! Softmax cross-entropy fused with its gradient: the forward pass gives each row's
//! −log p(target) = logsumexp(row) − row[target] without materialising the probabilities;
//! the backward pass writes g·(softmax − one-hot) in one pass over the logits, taking the
//! row's logsumexp back from the loss (loss + row[target]) rather than recomputing it.

use candle_core::{DType, Result, Shape, Tensor, bail};
use rayon::prelude::*;

use crate::math::{exp, max};
use crate::op::{Inputs, Kernel, Op};
use crate::par::rows_per_task;

fn check(logits: &[f32], targets: &[u32], classes: usize) -> Result<()> {
    if classes == 0 || logits.len() != targets.len() * classes {
        bail!(
            "cross-entropy: {} logits for {} targets of {classes} classes",
            logits.len(),
            targets.len()
        )
    }
    if let Some(&t) = targets.iter().find(|&&t| t as usize >= classes) {
        bail!("cross-entropy: target {t} is out of range for {classes} classes")
    }
    Ok(())
}

/// logsumexp of a row, shifted by its maximum.
#[inline]
fn logsumexp(row: &[f32]) -> f32 {
    let m = max(row);
    // Eight partial sums: vectorised, and less rounding than one running sum.
    let (row8, rest) = row.as_chunks::<8>();
    let mut acc = [0.0f32; 8];
    for x in row8 {
        for l in 0..8 {
            acc[l] += exp(x[l] - m);
        }
    }
    let total = acc.iter().sum::<f32>() + rest.iter().map(|&x| exp(x - m)).sum::<f32>();
    m + total.ln()
}

fn forward(logits: &[f32], targets: &[u32], classes: usize) -> Result<Vec<f32>> {
    check(logits, targets, classes)?;
    let rows = rows_per_task(classes);
    let mut loss = vec![0.0f32; targets.len()];
    loss.par_chunks_mut(rows)
        .zip(
            logits
                .par_chunks(rows * classes)
                .zip(targets.par_chunks(rows)),
        )
        .for_each(|(loss, (logits, targets))| {
            for ((l, row), &t) in loss
                .iter_mut()
                .zip(logits.chunks_exact(classes))
                .zip(targets)
            {
                *l = logsumexp(row) - row[t as usize];
            }
        });
    Ok(loss)
}

/// `loss_grad` holds (loss, dL/dloss) per row.
fn backward(
    logits: &[f32],
    targets: &[u32],
    loss_grad: &[f32],
    classes: usize,
) -> Result<Vec<f32>> {
    check(logits, targets, classes)?;
    if loss_grad.len() != 2 * targets.len() {
        bail!(
            "cross-entropy backward: {} loss values for {} rows",
            loss_grad.len() / 2,
            targets.len()
        )
    }
    let rows = rows_per_task(classes);
    let mut grad = vec![0.0f32; logits.len()];
    grad.par_chunks_mut(rows * classes)
        .zip(logits.par_chunks(rows * classes))
        .zip(targets.par_chunks(rows).zip(loss_grad.par_chunks(2 * rows)))
        .for_each(|((grad, logits), (targets, lg))| {
            let rows = grad
                .chunks_exact_mut(classes)
                .zip(logits.chunks_exact(classes));
            for (((g, row), &t), lg) in rows.zip(targets).zip(lg.chunks_exact(2)) {
                let (loss, upstream) = (lg[0], lg[1]);
                let lse = loss + row[t as usize];
                for (g, &x) in g.iter_mut().zip(row) {
                    *g = upstream * exp(x - lse);
                }
                g[t as usize] -= upstream;
            }
        });
    Ok(grad)
}

struct CrossEntropy {
    classes: usize,
}

impl Kernel<2> for CrossEntropy {
    const INPUTS: [&'static str; 2] = ["logits", "cross-entropy targets"];

    fn name(&self) -> &'static str {
        "gradus-cross-entropy"
    }

    fn forward(&self, x: &Inputs<'_, 2>) -> Result<(Vec<f32>, Shape)> {
        let targets = x.u32(1)?;
        let loss = forward(x.f32(0)?, targets, self.classes)?;
        Ok((loss, Shape::from(targets.len())))
    }

    fn backward(
        &self,
        [logits, targets]: [&Tensor; 2],
        loss: &Tensor,
        grad: &Tensor,
    ) -> Result<[Option<Tensor>; 2]> {
        let loss_grad = Tensor::stack(&[loss, grad], 1)?;
        let op = CrossEntropyGrad {
            classes: self.classes,
        };
        Ok([
            Some(logits.apply_op3_no_bwd(targets, &loss_grad, &Op(op))?),
            None,
        ])
    }
}

/// `(logits, targets, [loss, dL/dloss]) → dL/dlogits`.
struct CrossEntropyGrad {
    classes: usize,
}

impl Kernel<3> for CrossEntropyGrad {
    const INPUTS: [&'static str; 3] = [
        "logits",
        "cross-entropy targets",
        "cross-entropy loss gradient",
    ];

    fn name(&self) -> &'static str {
        "gradus-cross-entropy-grad"
    }

    fn forward(&self, x: &Inputs<'_, 3>) -> Result<(Vec<f32>, Shape)> {
        let grad = backward(x.f32(0)?, x.u32(1)?, x.f32(2)?, self.classes)?;
        Ok((grad, x.shape(0).clone()))
    }
}

/// −log softmax(logits)[target] per row, for f32 CPU `logits` `[rows, classes]` and u32
/// `targets` `[rows]`: a `[rows]` tensor, differentiable in the logits.
pub fn cross_entropy(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    let (_, classes) = logits.dims2()?;
    let targets = targets.to_dtype(DType::U32)?.contiguous()?;
    logits
        .contiguous()?
        .apply_op2(&targets, Op(CrossEntropy { classes }))
}
