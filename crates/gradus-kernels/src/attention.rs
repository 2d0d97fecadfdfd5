//! Multi-head self-attention straight from the fused `[batch, seq, 3·width]` projection
//! to the merged `[batch, seq, width]` output: no split or merge of heads, no `[seq, seq]`
//! score or mask tensor. Each query row computes its scores into a buffer of one row,
//! takes the softmax and the weighted sum of values; for the common head widths rows go
//! in blocks of four, so that each key and value row is read once per block. The
//! backward pass recomputes those probabilities (as flash attention does) instead of
//! keeping them. Causal attention stops each row at its own position; a key mask
//! (1 = token, 0 = padding) drops padded keys, as BERT's additive −∞ mask does.

use std::sync::Arc;

use candle_core::{Result, Shape, Tensor, bail};
use rayon::prelude::*;

use crate::math::{axpy, dot, exp, max, sum};
use crate::op::{Inputs, Kernel, Op};
use crate::simd::wide;

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
    /// `qkv` transposed, `[head_dim][stride]` (`stride` ≥ `seq`; columns past `seq` are
    /// left as they are): the score loops then run along keys, which vectorises without a
    /// horizontal sum per key.
    #[inline(always)]
    fn transposed(&self, qkv: &[f32], part: usize, h: usize, stride: usize, out: &mut [f32]) {
        let (w3, dh) = (3 * self.width, self.head_dim());
        let off = part * self.width + h * dh;
        for j in 0..self.seq {
            for (d, &x) in qkv[j * w3 + off..][..dh].iter().enumerate() {
                out[d * stride + j] = x;
            }
        }
    }

    /// Row stride of the blocked loops' transposed keys and values and of their score
    /// buffers: `seq` rounded up to whole tiles.
    #[inline(always)]
    fn tiled_stride(&self) -> usize {
        self.seq.next_multiple_of(TILE)
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
        softmax(keep, p);
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

/// Turns one query row's scores `p` (its keys, up to its span) into probabilities in
/// place; `keep` weighs the keys (0 drops one), and a row whose every key is dropped gets
/// zero weights.
#[inline(always)]
fn softmax(keep: Option<&[f32]>, p: &mut [f32]) {
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

/// Query rows computed together by the blocked loops: each key and value row is read
/// once per block instead of once per query, and the block's sums stay in registers.
const ROWS: usize = 4;

/// Keys per tile of the blocked score loops: one AVX-512 register (two AVX2, four SSE).
const TILE: usize = 16;

/// `out[r·tp + j] = Σ_d a[r][d]·bt[d·tp + j]` for the block's rows and every key `j < n`
/// (rounded up to whole tiles; `tp` is a multiple of [`TILE`]). Each sum starts at zero
/// and adds its terms in `d` order, exactly as `axpy` over one row at a time does, but a
/// tile's sums stay in registers and each load of `bt` serves all the block's rows.
#[inline(always)]
fn tile_products<const DH: usize>(
    a: &[[f32; DH]; ROWS],
    bt: &[f32],
    tp: usize,
    n: usize,
    out: &mut [f32],
) {
    for j0 in (0..n).step_by(TILE) {
        let mut acc = [[0.0f32; TILE]; ROWS];
        for d in 0..DH {
            let Some(b) = bt[d * tp + j0..].first_chunk::<TILE>() else {
                return;
            };
            for (acc, a) in acc.iter_mut().zip(a) {
                let ad = a[d];
                for (s, &x) in acc.iter_mut().zip(b) {
                    *s += ad * x;
                }
            }
        }
        for (r, acc) in acc.iter().enumerate() {
            out[r * tp + j0..][..TILE].copy_from_slice(acc);
        }
    }
}

/// The block's rows of `m` (rows `stride` apart), `DH` values from column `off`, each
/// times `scale`; the rows past the block's `rows` real ones are zero.
#[inline(always)]
fn block_rows<const DH: usize>(
    m: &[f32],
    stride: usize,
    off: usize,
    (i0, rows): (usize, usize),
    scale: f32,
) -> [[f32; DH]; ROWS] {
    let mut a = [[0.0f32; DH]; ROWS];
    for (r, a) in a.iter_mut().enumerate().take(rows) {
        for (a, &x) in a.iter_mut().zip(&m[(i0 + r) * stride + off..][..DH]) {
            *a = x * scale;
        }
    }
    a
}

/// The block's probabilities from its scores in `p` (rows `tp` apart): each real row's
/// keys up to its span go through [`softmax`], and the rest of the first `n` is zero.
#[inline(always)]
fn block_probs(
    spec: &Spec,
    keep: Option<&[f32]>,
    (i0, rows, n): (usize, usize, usize),
    tp: usize,
    p: &mut [f32],
) {
    for r in 0..ROWS {
        let row = &mut p[r * tp..][..n];
        let span = if r < rows { spec.span(i0 + r) } else { 0 };
        softmax(keep, &mut row[..span]);
        row[span..].fill(0.0);
    }
}

/// A block of `ROWS` query rows starting at `i0`: how many are real (the last block may
/// be short; its missing rows have zero probabilities) and the widest span among them.
#[inline(always)]
fn block(spec: &Spec, i0: usize) -> (usize, usize) {
    let rows = ROWS.min(spec.seq - i0);
    (rows, spec.span(i0 + rows - 1))
}

/// `Σ_j p[r·stride + j]·v_j` over keys `j < n` for the block's rows, `v_j` the `DH`
/// values of key `j` at `voff` in row `j` of `qkv` (`w3` wide). Sums run in key order, as
/// the one-row loop's.
#[inline(always)]
fn weighted_values<const DH: usize>(
    p: &[f32],
    stride: usize,
    n: usize,
    qkv: &[f32],
    w3: usize,
    voff: usize,
) -> [[f32; DH]; ROWS] {
    let mut acc = [[0.0f32; DH]; ROWS];
    for j in 0..n {
        let Some(v) = qkv[j * w3 + voff..].first_chunk::<DH>() else {
            break;
        };
        for (r, acc) in acc.iter_mut().enumerate() {
            let pj = p[r * stride + j];
            for (a, &x) in acc.iter_mut().zip(v) {
                *a += pj * x;
            }
        }
    }
    acc
}

/// The forward pass over blocks of query rows, for a head width known at compile time.
#[inline(always)]
fn forward_blocked<const DH: usize>(spec: &Spec, b: usize, out: &mut [f32], qkv: &[f32]) {
    let (t, d, tp) = (spec.seq, spec.width, spec.tiled_stride());
    let keep = spec.keys.as_deref().map(|k| &k[b * t..(b + 1) * t]);
    let (mut p, mut kt) = (vec![0.0f32; ROWS * tp], vec![0.0f32; DH * tp]);
    for h in 0..spec.heads {
        spec.transposed(qkv, 1, h, tp, &mut kt);
        for i0 in (0..t).step_by(ROWS) {
            let (rows, n) = block(spec, i0);
            let q = block_rows::<DH>(qkv, 3 * d, h * DH, (i0, rows), spec.scale());
            tile_products(&q, &kt, tp, n, &mut p);
            block_probs(spec, keep, (i0, rows, n), tp, &mut p);
            let acc = weighted_values::<DH>(&p, tp, n, qkv, 3 * d, 2 * d + h * DH);
            for (r, acc) in acc.iter().enumerate().take(rows) {
                out[(i0 + r) * d + h * DH..][..DH].copy_from_slice(acc);
            }
        }
    }
}

/// The forward pass one query row at a time, for any head width.
#[inline(always)]
fn forward_rows(spec: &Spec, b: usize, out: &mut [f32], qkv: &[f32]) {
    let (t, d, dh) = (spec.seq, spec.width, spec.head_dim());
    let keep = spec.keys.as_deref().map(|k| &k[b * t..(b + 1) * t]);
    let (mut p, mut kt) = (vec![0.0f32; t], vec![0.0f32; dh * t]);
    for h in 0..spec.heads {
        spec.transposed(qkv, 1, h, t, &mut kt);
        for i in 0..t {
            spec.probs(qkv, &kt, keep, h, i, &mut p);
            let o = &mut out[i * d + h * dh..][..dh];
            for (j, &pj) in p[..spec.span(i)].iter().enumerate() {
                axpy(o, pj, &qkv[j * 3 * d + 2 * d + h * dh..][..dh]);
            }
        }
    }
}

wide! {
    /// One batch element of the forward pass: every head, every query row.
    fn forward_batch(spec: &Spec, b: usize, out: &mut [f32], qkv: &[f32]) {
        match spec.head_dim() {
            16 => forward_blocked::<16>(spec, b, out, qkv),
            32 => forward_blocked::<32>(spec, b, out, qkv),
            64 => forward_blocked::<64>(spec, b, out, qkv),
            _ => forward_rows(spec, b, out, qkv),
        }
    }
}

/// Row `i`'s probabilities into `p[..span]` and dS = P ⊙ (dO·Vᵀ − rowsum(dO ⊙ O))·scale
/// into `ds[..span]`; both zero beyond the span.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn row_grad(
    spec: &Spec,
    (qkv, out, dout): (&[f32], &[f32], &[f32]),
    (kt, vt): (&[f32], &[f32]),
    keep: Option<&[f32]>,
    h: usize,
    i: usize,
    p: &mut [f32],
    ds: &mut [f32],
) {
    let (t, d, dh) = (spec.seq, spec.width, spec.head_dim());
    let off = h * dh;
    let n = spec.span(i);
    p.fill(0.0);
    ds.fill(0.0);
    spec.probs(qkv, kt, keep, h, i, p);
    let o_grad = &dout[i * d + off..][..dh];
    let rowsum = dot(o_grad, &out[i * d + off..][..dh]);
    let ds = &mut ds[..n];
    for (dd, &g) in o_grad.iter().enumerate() {
        axpy(ds, g, &vt[dd * t..][..n]);
    }
    for (s, &pj) in ds.iter_mut().zip(&p[..n]) {
        *s = pj * (*s - rowsum) * spec.scale();
    }
}

/// The backward pass over blocks of query rows, for a head width known at compile time:
/// for each key j, dQ_r += dS_rj·K_j for the block's rows r, and K_j's and V_j's
/// gradients take the block's dS_rj·Q_r and P_rj·dO_r in row order (so every sum runs in
/// the same order as the one-row loop's).
#[inline(always)]
fn backward_blocked<const DH: usize>(
    spec: &Spec,
    b: usize,
    dqkv: &mut [f32],
    qkv: &[f32],
    out: &[f32],
    dout: &[f32],
) {
    let (t, d, tp) = (spec.seq, spec.width, spec.tiled_stride());
    let w3 = 3 * d;
    let keep = spec.keys.as_deref().map(|k| &k[b * t..(b + 1) * t]);
    let (mut p, mut ds) = (vec![0.0f32; ROWS * tp], vec![0.0f32; ROWS * tp]);
    let (mut kt, mut vt) = (vec![0.0f32; DH * tp], vec![0.0f32; DH * tp]);
    for h in 0..spec.heads {
        let off = h * DH;
        spec.transposed(qkv, 1, h, tp, &mut kt);
        spec.transposed(qkv, 2, h, tp, &mut vt);
        for i0 in (0..t).step_by(ROWS) {
            let (rows, n) = block(spec, i0);
            let q = block_rows::<DH>(qkv, w3, off, (i0, rows), 1.0);
            let g = block_rows::<DH>(dout, d, off, (i0, rows), 1.0);
            let scaled_q = block_rows::<DH>(qkv, w3, off, (i0, rows), spec.scale());
            tile_products(&scaled_q, &kt, tp, n, &mut p);
            block_probs(spec, keep, (i0, rows, n), tp, &mut p);
            tile_products(&g, &vt, tp, n, &mut ds);
            for r in 0..ROWS {
                let dsr = &mut ds[r * tp..][..n];
                if r >= rows {
                    dsr.fill(0.0);
                    continue;
                }
                let i = i0 + r;
                let span = spec.span(i);
                let rowsum = dot(&g[r], &out[i * d + off..][..DH]);
                for (s, &pj) in dsr[..span].iter_mut().zip(&p[r * tp..]) {
                    *s = pj * (*s - rowsum) * spec.scale();
                }
                dsr[span..].fill(0.0);
            }
            let mut dq = [[0.0f32; DH]; ROWS];
            for j in 0..n {
                let base = j * w3 + off;
                let mut k = [0.0f32; DH];
                k.copy_from_slice(&qkv[base + d..][..DH]);
                let (mut dk, mut dv) = ([0.0f32; DH], [0.0f32; DH]);
                dk.copy_from_slice(&dqkv[base + d..][..DH]);
                dv.copy_from_slice(&dqkv[base + 2 * d..][..DH]);
                for r in 0..ROWS {
                    let (s, pj) = (ds[r * tp + j], p[r * tp + j]);
                    for l in 0..DH {
                        dq[r][l] += s * k[l];
                        dk[l] += s * q[r][l];
                        dv[l] += pj * g[r][l];
                    }
                }
                dqkv[base + d..][..DH].copy_from_slice(&dk);
                dqkv[base + 2 * d..][..DH].copy_from_slice(&dv);
            }
            for (r, dq) in dq.iter().enumerate().take(rows) {
                axpy(&mut dqkv[(i0 + r) * w3 + off..][..DH], 1.0, dq);
            }
        }
    }
}

/// The backward pass one query row at a time, for any head width.
#[inline(always)]
fn backward_rows(spec: &Spec, b: usize, dqkv: &mut [f32], qkv: &[f32], out: &[f32], dout: &[f32]) {
    let (t, d, dh) = (spec.seq, spec.width, spec.head_dim());
    let keep = spec.keys.as_deref().map(|k| &k[b * t..(b + 1) * t]);
    let (mut p, mut ds) = (vec![0.0f32; t], vec![0.0f32; t]);
    let (mut kt, mut vt) = (vec![0.0f32; dh * t], vec![0.0f32; dh * t]);
    let mut dq = vec![0.0f32; dh];
    for h in 0..spec.heads {
        let off = h * dh;
        spec.transposed(qkv, 1, h, t, &mut kt);
        spec.transposed(qkv, 2, h, t, &mut vt);
        for i in 0..t {
            let n = spec.span(i);
            row_grad(
                spec,
                (qkv, out, dout),
                (&kt, &vt),
                keep,
                h,
                i,
                &mut p,
                &mut ds,
            );
            let o_grad = &dout[i * d + off..][..dh];
            let q = &qkv[i * 3 * d + off..][..dh];
            dq.fill(0.0);
            for (j, (&sj, &pj)) in ds[..n].iter().zip(&p[..n]).enumerate() {
                let base = j * 3 * d + off;
                axpy(&mut dq, sj, &qkv[base + d..][..dh]);
                axpy(&mut dqkv[base + d..][..dh], sj, q);
                axpy(&mut dqkv[base + 2 * d..][..dh], pj, o_grad);
            }
            axpy(&mut dqkv[i * 3 * d + off..][..dh], 1.0, &dq);
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
        match spec.head_dim() {
            16 => backward_blocked::<16>(spec, b, dqkv, qkv, out, dout),
            32 => backward_blocked::<32>(spec, b, dqkv, qkv, out, dout),
            64 => backward_blocked::<64>(spec, b, dqkv, qkv, out, dout),
            _ => backward_rows(spec, b, dqkv, qkv, out, dout),
        }
    }
}

struct Attention(Spec);

impl Kernel<1> for Attention {
    const INPUTS: [&'static str; 1] = ["attention projection"];

    fn name(&self) -> &'static str {
        "gradus-attention"
    }

    fn forward(&self, x: &Inputs<'_, 1>) -> Result<(Vec<f32>, Shape)> {
        let out = self.0.forward(x.f32(0)?)?;
        Ok((out, Shape::from(self.0.out_dims.clone())))
    }

    fn backward(
        &self,
        [qkv]: [&Tensor; 1],
        out: &Tensor,
        dout: &Tensor,
    ) -> Result<[Option<Tensor>; 1]> {
        let grad = AttentionGrad(self.0.clone());
        Ok([Some(qkv.apply_op3_no_bwd(
            out,
            &dout.contiguous()?,
            &Op(grad),
        )?)])
    }
}

/// `(qkv, out, dout) → d(qkv)`.
struct AttentionGrad(Spec);

impl Kernel<3> for AttentionGrad {
    const INPUTS: [&'static str; 3] = [
        "attention projection",
        "attention output",
        "attention gradient",
    ];

    fn name(&self) -> &'static str {
        "gradus-attention-grad"
    }

    fn forward(&self, x: &Inputs<'_, 3>) -> Result<(Vec<f32>, Shape)> {
        let grad = self.0.backward(x.f32(0)?, x.f32(1)?, x.f32(2)?)?;
        Ok((grad, x.shape(0).clone()))
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
    qkv.contiguous()?.apply_op1(Op(Attention(spec)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(n: usize, seed: u64) -> Vec<f32> {
        (0..n as u64)
            .map(|i| ((i * 2_654_435_761 + seed) % 1000) as f32 / 300.0 - 1.6)
            .collect()
    }

    fn bits(x: &[f32]) -> Vec<u32> {
        x.iter().map(|v| v.to_bits()).collect()
    }

    /// The blocked loops (head widths 16, 32, 64) tile their sums differently from the
    /// one-row loops but must add the same terms in the same order: equal bits, forward
    /// and backward, on short and odd lengths, causal and with padded keys.
    #[test]
    fn blocked_loops_give_the_one_row_loops_bits() {
        let batch = 2;
        for head_dim in [16, 32, 64] {
            for (seq, causal, masked) in [
                (1, true, false),
                (5, true, false),
                (37, true, false),
                (37, false, true),
                (64, true, true),
            ] {
                let (heads, width) = (3, 3 * head_dim);
                let keys = masked.then(|| {
                    (0..batch * seq)
                        .map(|i| {
                            if i % seq + 3 * (i / seq) >= seq - 2 {
                                0.0
                            } else {
                                1.0
                            }
                        })
                        .collect::<Vec<f32>>()
                        .into()
                });
                let spec = Spec {
                    batch,
                    seq,
                    width,
                    heads,
                    causal,
                    keys,
                    out_dims: vec![batch * seq, width],
                };
                let case = format!("head width {head_dim}, seq {seq}, causal {causal}");
                let qkv = values(seq * 3 * width, 7);
                let dout = values(seq * width, 11);
                for b in 0..batch {
                    let (mut blocked, mut rows) = (vec![0.0; seq * width], vec![0.0; seq * width]);
                    forward_batch(&spec, b, &mut blocked, &qkv);
                    forward_rows(&spec, b, &mut rows, &qkv);
                    assert_eq!(bits(&blocked), bits(&rows), "forward, {case}");
                    let (mut blocked_grad, mut rows_grad) =
                        (vec![0.0; qkv.len()], vec![0.0; qkv.len()]);
                    backward_batch(&spec, b, &mut blocked_grad, &qkv, &rows, &dout);
                    backward_rows(&spec, b, &mut rows_grad, &qkv, &rows, &dout);
                    assert_eq!(bits(&blocked_grad), bits(&rows_grad), "backward, {case}");
                }
            }
        }
    }
}
