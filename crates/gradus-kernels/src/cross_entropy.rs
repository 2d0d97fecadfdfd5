//! Softmax cross-entropy fused with its gradient: the forward pass gives each row's
//! −log p(target) = logsumexp(row) − row[target] without materialising the probabilities;
//! the backward pass writes g·(softmax − one-hot) in one pass over the logits, taking the
//! row's logsumexp back from the loss (loss + row[target]) rather than recomputing it.

use candle_core::{CpuStorage, CustomOp2, CustomOp3, DType, Layout, Result, Shape, Tensor, bail};
use rayon::prelude::*;

use crate::math::{exp, max};
use crate::par::rows_per_task;
use crate::storage::{f32s, u32s};

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

impl CustomOp2 for CrossEntropy {
    fn name(&self) -> &'static str {
        "gradus-cross-entropy"
    }

    fn cpu_fwd(
        &self,
        ls: &CpuStorage,
        ll: &Layout,
        ts: &CpuStorage,
        tl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let targets = u32s(ts, tl, "cross-entropy targets")?;
        let loss = forward(f32s(ls, ll, "logits")?, targets, self.classes)?;
        Ok((CpuStorage::F32(loss), Shape::from(targets.len())))
    }

    fn bwd(
        &self,
        logits: &Tensor,
        targets: &Tensor,
        loss: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let loss_grad = Tensor::stack(&[loss, grad], 1)?;
        let op = CrossEntropyGrad {
            classes: self.classes,
        };
        Ok((
            Some(logits.apply_op3_no_bwd(targets, &loss_grad, &op)?),
            None,
        ))
    }
}

/// `(logits, targets, [loss, dL/dloss]) → dL/dlogits`.
struct CrossEntropyGrad {
    classes: usize,
}

impl CustomOp3 for CrossEntropyGrad {
    fn name(&self) -> &'static str {
        "gradus-cross-entropy-grad"
    }

    fn cpu_fwd(
        &self,
        ls: &CpuStorage,
        ll: &Layout,
        ts: &CpuStorage,
        tl: &Layout,
        gs: &CpuStorage,
        gl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let grad = backward(
            f32s(ls, ll, "logits")?,
            u32s(ts, tl, "cross-entropy targets")?,
            f32s(gs, gl, "cross-entropy loss gradient")?,
            self.classes,
        )?;
        Ok((CpuStorage::F32(grad), ll.shape().clone()))
    }
}

/// −log softmax(logits)[target] per row, for f32 CPU `logits` `[rows, classes]` and u32
/// `targets` `[rows]`: a `[rows]` tensor, differentiable in the logits.
pub fn cross_entropy(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    let (_, classes) = logits.dims2()?;
    let targets = targets.to_dtype(DType::U32)?.contiguous()?;
    logits
        .contiguous()?
        .apply_op2(&targets, CrossEntropy { classes })
}
