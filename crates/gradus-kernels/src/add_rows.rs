//! `x + b` where `b` repeats down `x`: a bias `[width]` added to every row of
//! `[rows, width]`, or position embeddings `[seq, width]` added to each sequence of
//! `[batch · seq, width]`. candle's broadcast add computes the same forward, but its
//! backward sums the gradient over the broadcast dimension with a divide and a modulo per
//! element (its reduction is fast only over the last dimensions), which cost BERT-mini's
//! step more than its layer norms. Here the bias gradient is a sum of whole periods of
//! the output gradient, in fixed blocks of periods added in order, so the result does not
//! depend on the number of threads.

use candle_core::{Result, Shape, Tensor, bail};
use rayon::prelude::*;

use crate::op::{Inputs, Kernel, Op};
use crate::par::{add_in_order, rows_per_task};
use crate::simd::wide;

wide! {
    /// `y = x + b` over whole periods of `b.len()` values.
    fn add_periods(y: &mut [f32], x: &[f32], b: &[f32]) {
        for (y, x) in y.chunks_exact_mut(b.len()).zip(x.chunks_exact(b.len())) {
            for ((y, &x), &b) in y.iter_mut().zip(x).zip(b) {
                *y = x + b;
            }
        }
    }
}

wide! {
    /// `acc += Σ` of the whole periods of `dy`, period by period.
    fn sum_periods(acc: &mut [f32], dy: &[f32]) {
        for dy in dy.chunks_exact(acc.len()) {
            for (a, &g) in acc.iter_mut().zip(dy) {
                *a += g;
            }
        }
    }
}

/// Values per parallel task: a whole number of periods of `period` values.
fn block(period: usize) -> usize {
    rows_per_task(period) * period
}

fn check(x: usize, period: usize) -> Result<()> {
    if period == 0 || !x.is_multiple_of(period) {
        bail!("add rows: {x} values are not whole periods of {period}")
    }
    Ok(())
}

struct AddRows;

impl Kernel<2> for AddRows {
    const INPUTS: [&'static str; 2] = ["add rows input", "add rows addend"];

    fn name(&self) -> &'static str {
        "gradus-add-rows"
    }

    fn forward(&self, i: &Inputs<'_, 2>) -> Result<(Vec<f32>, Shape)> {
        let (x, b) = (i.f32(0)?, i.f32(1)?);
        check(x.len(), b.len())?;
        let mut y = vec![0.0f32; x.len()];
        let n = block(b.len());
        y.par_chunks_mut(n)
            .zip(x.par_chunks(n))
            .for_each(|(y, x)| add_periods(y, x, b));
        Ok((y, i.shape(0).clone()))
    }

    fn backward(
        &self,
        [_, b]: [&Tensor; 2],
        _y: &Tensor,
        dy: &Tensor,
    ) -> Result<[Option<Tensor>; 2]> {
        let sum = SumPeriods {
            period: b.elem_count(),
        };
        let db = dy
            .contiguous()?
            .apply_op1_no_bwd(&Op(sum))?
            .reshape(b.shape())?;
        Ok([Some(dy.clone()), Some(db)])
    }
}

/// `dy → Σ` of its periods of `period` values, a 1-D tensor of `period`.
struct SumPeriods {
    period: usize,
}

impl Kernel<1> for SumPeriods {
    const INPUTS: [&'static str; 1] = ["add rows gradient"];

    fn name(&self) -> &'static str {
        "gradus-sum-periods"
    }

    fn forward(&self, x: &Inputs<'_, 1>) -> Result<(Vec<f32>, Shape)> {
        let dy = x.f32(0)?;
        let p = self.period;
        check(dy.len(), p)?;
        let partial: Vec<Vec<f32>> = dy
            .par_chunks(block(p))
            .map(|dy| {
                let mut acc = vec![0.0f32; p];
                sum_periods(&mut acc, dy);
                acc
            })
            .collect();
        let mut out = vec![0.0f32; p];
        add_in_order(&mut out, partial);
        Ok((out, Shape::from(p)))
    }
}

/// `x + b` for f32 CPU tensors where `b`'s values repeat along `x` (`x.elem_count()` a
/// multiple of `b.elem_count()`, row-major): differentiable in both.
pub fn add_rows(x: &Tensor, b: &Tensor) -> Result<Tensor> {
    let last = |t: &Tensor| t.dims().last().copied().unwrap_or(1);
    if last(x) != last(b) {
        bail!("add rows: {:?} against {:?}", x.dims(), b.dims())
    }
    x.contiguous()?.apply_op2(&b.contiguous()?, Op(AddRows))
}
