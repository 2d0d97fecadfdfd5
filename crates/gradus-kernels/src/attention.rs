//! Multi-head self-attention straight from the fused `[batch, seq, 3·width]` projection
//! to the merged `[batch, seq, width]` output: no split or merge of heads, no `[seq, seq]`
//! score or mask tensor. Each query row computes its scores into a buffer of one row,
//! takes the softmax and the weighted sum of values; the backward pass recomputes those
//! probabilities (as flash attention does) instead of keeping them. Causal attention
//! stops each row at its own position; a key mask (1 = token, 0 = padding) drops padded
//! keys, as BERT's additive −∞ mask does.

use std::sync::Arc;

use candle_core::{CpuStorage, CustomOp1, CustomOp3, Layout, Result, Shape, Tensor, bail};
use rayon::prelude::*;

use crate::math::{axpy, dot, exp, max, sum};
use crate::simd::wide;
use crate::storage::f32s;

/// The shape and options shared by the forward and backward kernels.
#[derive(Debug, Clone)]
struct Spec {
    batch: usize,
    seq: usize,
    width: usize,
    heads: usize,
    causal: bool,
    /// `[batch, seq]` key weights (1 keep, 0 drop), or every key kept.
    keys: Option<Arc<[f32]>>,
    /// The output's shape: the input's leading dimensions, then `width`.
    out_dims: Vec<usize>,
}

impl Spec {
    #[inline(always)]
    fn head_dim(&self) -> usize {
        self.width / self.heads
    }

    #[inline(always)]
    fn scale(&self) -> f32 {
        1.0 / (self.head_dim() as f32).sqrt()
    }

    /// Keys row `i` attends to.
    #[inline(always)]
    fn span(&self, i: usize) -> usize {
        if self.causal { i + 1 } else { self.seq }
    }

    fn check(&self, qkv: &[f32]) -> Result<()> {
        if qkv.len() != self.batch * self.seq * 3 * self.width {
            bail!("attention: {} projected values for {:?}", qkv.len(), self)
        }
        Ok(())
    }

    /// Copies one head's keys (`part` 1) or values (`part` 2) of a batch element out of
    /// `qkv` transposed, `[head_dim][seq]`: the score loops then run along keys, which
    /// vectorises without a horizontal sum per key.
    #[inline(always)]
    fn transposed(&self, qkv: &[f32], part: usize, h: usize, out: &mut [f32]) {
        let (t, w3, dh) = (self.seq, 3 * self.width, self.head_dim());
        let off = part * self.width + h * dh;
        for j in 0..t {
            for (d, &x) in qkv[j * w3 + off..][..dh].iter().enumerate() {
                out[d * t + j] = x;
            }
        }
    }

    /// Softmax probabilities of query `i` of head `h` over its keys, written to
    /// `p[..span]`, from the batch element's `qkv`, its transposed keys `kt` and key mask.
    #[inline(always)]
    fn probs(
        &self,
        qkv: &[f32],
        kt: &[f32],
        keep: Option<&[f32]>,
        h: usize,
        i: usize,
        p: &mut [f32],
    ) {
        let (t, dh) = (self.seq, self.head_dim());
        let q = &qkv[i * 3 * self.width + h * dh..][..dh];
        let p = &mut p[..self.span(i)];
        let n = p.len();
        p.fill(0.0);
        let scale = self.scale();
        for (d, &qd) in q.iter().enumerate() {
            axpy(p, qd * scale, &kt[d * t..][..n]);
        }
        if let Some(keep) = keep {
            for (s, &k) in p.iter_mut().zip(keep) {
                *s = if k == 0.0 { f32::NEG_INFINITY } else { *s };
            }
        }
        let m = max(p);
        if m == f32::NEG_INFINITY {
            // Every key masked: no weight anywhere, a zero output.
            p.fill(0.0);
            return;
        }
        for s in p.iter_mut() {
            *s = exp(*s - m);
        }
        if let Some(keep) = keep {
            // exp clamps −∞ to a tiny positive number; masked keys must weigh exactly 0.
            for (s, &k) in p.iter_mut().zip(keep) {
                *s *= k;
            }
        }
        let inv = 1.0 / sum(p);
        p.iter_mut().for_each(|s| *s *= inv);
    }

    fn forward(&self, qkv: &[f32]) -> Result<Vec<f32>> {
        self.check(qkv)?;
        let (t, d) = (self.seq, self.width);
        let mut out = vec![0.0f32; self.batch * t * d];
        out.par_chunks_mut(t * d)
            .zip(qkv.par_chunks(t * 3 * d))
            .enumerate()
            .for_each(|(b, (out, qkv))| forward_batch(self, b, out, qkv));
        Ok(out)
    }

    /// d(qkv) from qkv, the output and its gradient: with P the probabilities and
    /// dS = P ⊙ (dO·Vᵀ − rowsum(dO ⊙ O)), dQ = dS·K·scale, dK = dSᵀ·Q·scale, dV = Pᵀ·dO.
    fn backward(&self, qkv: &[f32], out: &[f32], dout: &[f32]) -> Result<Vec<f32>> {
        self.check(qkv)?;
        let (t, d) = (self.seq, self.width);
        if out.len() != self.batch * t * d || dout.len() != out.len() {
            bail!(
                "attention backward: {} outputs, {} gradients",
                out.len(),
                dout.len()
            )
        }
        let mut dqkv = vec![0.0f32; qkv.len()];
        dqkv.par_chunks_mut(t * 3 * d)
            .zip(qkv.par_chunks(t * 3 * d))
            .zip(out.par_chunks(t * d).zip(dout.par_chunks(t * d)))
            .enumerate()
            .for_each(|(b, ((dqkv, qkv), (out, dout)))| {
                backward_batch(self, b, dqkv, qkv, out, dout)
            });
        Ok(dqkv)
    }
}

wide! {
    /// One batch element of the forward pass: every head, every query row.
    fn forward_batch(spec: &Spec, b: usize, out: &mut [f32], qkv: &[f32]) {
        let (t, d, dh) = (spec.seq, spec.width, spec.head_dim());
        let keep = spec.keys.as_deref().map(|k| &k[b * t..(b + 1) * t]);
        let (mut p, mut kt) = (vec![0.0f32; t], vec![0.0f32; dh * t]);
        for h in 0..spec.heads {
            spec.transposed(qkv, 1, h, &mut kt);
            for i in 0..t {
                spec.probs(qkv, &kt, keep, h, i, &mut p);
                let o = &mut out[i * d + h * dh..][..dh];
                for (j, &pj) in p[..spec.span(i)].iter().enumerate() {
                    axpy(o, pj, &qkv[j * 3 * d + 2 * d + h * dh..][..dh]);
                }
            }
        }
    }
}

wide! {
    /// One batch element of the backward pass.
    fn backward_batch(
        spec: &Spec,
        b: usize,
        dqkv: &mut [f32],
        qkv: &[f32],
        out: &[f32],
        dout: &[f32],
    ) {
        let (t, d, dh) = (spec.seq, spec.width, spec.head_dim());
        let keep = spec.keys.as_deref().map(|k| &k[b * t..(b + 1) * t]);
        let (mut p, mut ds) = (vec![0.0f32; t], vec![0.0f32; t]);
        let (mut kt, mut vt) = (vec![0.0f32; dh * t], vec![0.0f32; dh * t]);
        let mut dq = vec![0.0f32; dh];
        let scale = spec.scale();
        for h in 0..spec.heads {
            let off = h * dh;
            spec.transposed(qkv, 1, h, &mut kt);
            spec.transposed(qkv, 2, h, &mut vt);
            for i in 0..t {
                let n = spec.span(i);
                spec.probs(qkv, &kt, keep, h, i, &mut p);
                let o_grad = &dout[i * d + off..][..dh];
                let rowsum = dot(o_grad, &out[i * d + off..][..dh]);
                // ds = dO·Vᵀ along the keys, then P ⊙ (ds − rowsum)·scale.
                let ds = &mut ds[..n];
                ds.fill(0.0);
                for (dd, &g) in o_grad.iter().enumerate() {
                    axpy(ds, g, &vt[dd * t..][..n]);
                }
                for (s, &pj) in ds.iter_mut().zip(&p[..n]) {
                    *s = pj * (*s - rowsum) * scale;
                }
                let q = &qkv[i * 3 * d + off..][..dh];
                dq.fill(0.0);
                for (j, (&sj, &pj)) in ds.iter().zip(&p[..n]).enumerate() {
                    let base = j * 3 * d + off;
                    axpy(&mut dq, sj, &qkv[base + d..][..dh]);
                    axpy(&mut dqkv[base + d..][..dh], sj, q);
                    axpy(&mut dqkv[base + 2 * d..][..dh], pj, o_grad);
                }
                axpy(&mut dqkv[i * 3 * d + off..][..dh], 1.0, &dq);
            }
        }
    }
}

struct Attention(Spec);

impl CustomOp1 for Attention {
    fn name(&self) -> &'static str {
        "gradus-attention"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let out = self.0.forward(f32s(s, l, "attention projection")?)?;
        Ok((CpuStorage::F32(out), Shape::from(self.0.out_dims.clone())))
    }

    fn bwd(&self, qkv: &Tensor, out: &Tensor, dout: &Tensor) -> Result<Option<Tensor>> {
        let grad =
            qkv.apply_op3_no_bwd(out, &dout.contiguous()?, &AttentionGrad(self.0.clone()))?;
        Ok(Some(grad))
    }
}

/// `(qkv, out, dout) → d(qkv)`.
struct AttentionGrad(Spec);

impl CustomOp3 for AttentionGrad {
    fn name(&self) -> &'static str {
        "gradus-attention-grad"
    }

    fn cpu_fwd(
        &self,
        qs: &CpuStorage,
        ql: &Layout,
        os: &CpuStorage,
        ol: &Layout,
        gs: &CpuStorage,
        gl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let qkv = f32s(qs, ql, "attention projection")?;
        let out = f32s(os, ol, "attention output")?;
        let dout = f32s(gs, gl, "attention gradient")?;
        let grad = self.0.backward(qkv, out, dout)?;
        Ok((CpuStorage::F32(grad), ql.shape().clone()))
    }
}

/// Scaled dot-product self-attention of `heads` heads over an f32 CPU projection `qkv` of
/// `batch` sequences, `[batch · seq, 3·width]` or `[batch, seq, 3·width]` (queries, keys,
/// values side by side, each `width` wide with the heads side by side), giving the same
/// leading shape with `width` values. `causal` lets position i see positions ≤ i;
/// `key_mask` `[batch, seq]` (1 token, 0 padding) hides padded keys. Differentiable in
/// `qkv`.
pub fn attention(
    qkv: &Tensor,
    batch: usize,
    heads: usize,
    causal: bool,
    key_mask: Option<&Tensor>,
) -> Result<Tensor> {
    let w3 = qkv.dim(candle_core::D::Minus1)?;
    let rows = qkv.elem_count() / w3.max(1);
    if batch == 0 || !rows.is_multiple_of(batch) || (qkv.rank() == 3 && qkv.dim(0)? != batch) {
        bail!("attention: {:?} is not {batch} sequences", qkv.dims())
    }
    let seq = rows / batch;
    if heads == 0 || w3 % 3 != 0 || (w3 / 3) % heads != 0 {
        bail!("attention: a projection {w3} wide does not split into q, k, v of {heads} heads")
    }
    let keys = match key_mask {
        Some(m) => {
            let m = m
                .to_dtype(candle_core::DType::F32)?
                .flatten_all()?
                .to_vec1::<f32>()?;
            if m.len() != batch * seq {
                bail!(
                    "attention: a key mask of {} values for {batch} × {seq} tokens",
                    m.len()
                )
            }
            Some(m.into())
        }
        None => None,
    };
    let mut out_dims = qkv.dims().to_vec();
    if let Some(last) = out_dims.last_mut() {
        *last = w3 / 3;
    }
    let spec = Spec {
        batch,
        seq,
        width: w3 / 3,
        heads,
        causal,
        keys,
        out_dims,
    };
    qkv.contiguous()?.apply_op1(Attention(spec))
}
