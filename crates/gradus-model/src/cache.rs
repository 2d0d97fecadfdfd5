//! What a decoder keeps between generation steps: each layer's keys and values, which
//! positions of each sequence are padding, and each sequence's next position. Prompts of
//! different lengths are padded on the left, so that every sequence's next token is in
//! the same column; padding is never attended to and does not count as a position.

use candle_core::{DType, Device, Tensor};
use candle_nn::kv_cache::KvCache;

use crate::error::Result;

/// The additive score of a key a query may not see: finite, so that a padded query that
/// sees nothing gets a uniform average instead of NaN (its output is never read).
const HIDDEN: f32 = -1e9;

/// Keys and values of a batch of sequences, per layer.
#[derive(Debug, Clone)]
pub struct DecoderCache {
    layers: Vec<KvCache>,
    /// Per sequence, per cached column: a real token (not padding).
    real: Vec<Vec<bool>>,
    /// Per sequence, the position its next real token takes.
    next: Vec<usize>,
}

/// One step's input as the model reads it: ids `[batch, new]`, each token's position
/// `[batch · new]`, and the additive attention bias `[batch, 1, new, cached + new]`.
#[derive(Debug)]
pub struct StepInput {
    pub ids: Tensor,
    pub positions: Tensor,
    pub bias: Tensor,
}

impl DecoderCache {
    /// An empty cache for `batch` sequences of at most `context` tokens, `layers` deep.
    pub fn new(layers: usize, batch: usize, context: usize) -> Self {
        Self {
            // Keys and values are `[batch, heads, seq, head_dim]`: appended along dim 2.
            layers: (0..layers).map(|_| KvCache::new(2, context)).collect(),
            real: vec![Vec::new(); batch],
            next: vec![0; batch],
        }
    }

    /// Columns cached so far.
    pub fn len(&self) -> usize {
        self.real.first().map_or(0, Vec::len)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn layer(&mut self, i: usize) -> &mut KvCache {
        &mut self.layers[i]
    }

    /// Takes the next columns: `rows[b]` are sequence b's new tokens, `None` for padding
    /// (all rows the same length). Returns what the model reads for them.
    pub fn step(&mut self, rows: &[Vec<Option<u32>>], device: &Device) -> Result<StepInput> {
        let new = rows.first().map_or(0, Vec::len);
        let before = self.len();
        let total = before + new;
        let (mut ids, mut positions) = (Vec::new(), Vec::new());
        let mut bias = Vec::with_capacity(rows.len() * new * total);
        for (b, row) in rows.iter().enumerate() {
            for token in row {
                ids.push(token.unwrap_or(0));
                positions.push(self.next[b] as u32);
                if token.is_some() {
                    self.next[b] += 1;
                }
                self.real[b].push(token.is_some());
            }
            for i in 0..new {
                let column = before + i;
                bias.extend(
                    self.real[b]
                        .iter()
                        .enumerate()
                        .map(|(j, &real)| if real && j <= column { 0.0 } else { HIDDEN }),
                );
            }
        }
        let batch = rows.len();
        Ok(StepInput {
            ids: Tensor::from_vec(ids, (batch, new), device)?,
            positions: Tensor::from_vec(positions, batch * new, device)?,
            bias: Tensor::from_vec(bias, (batch, 1, new, total), device)?,
        })
    }
}

/// Attention of a step's queries over the cached and new keys (no gradient): `q`
/// `[batch · new, heads · head_dim]`, `k` and `v` `[batch · new, kv_heads · head_dim]`
/// (appended to `cache`), each key/value head shared by `heads / kv_heads` query heads,
/// `bias` from [`DecoderCache::step`]. Returns `[batch · new, heads · head_dim]`.
pub fn cached_attention(
    (q, k, v): (&Tensor, &Tensor, &Tensor),
    cache: &mut KvCache,
    (heads, kv_heads): (usize, usize),
    bias: &Tensor,
) -> Result<Tensor> {
    let (batch, _, new, _) = bias.dims4()?;
    let (rows, width) = q.dims2()?;
    let hd = width / heads;
    let split = |x: &Tensor, h: usize| -> Result<Tensor> {
        Ok(x.reshape((batch, new, h, hd))?
            .transpose(1, 2)?
            .contiguous()?)
    };
    let q = split(q, heads)?;
    let (k, v) = cache.append(&split(k, kv_heads)?, &split(v, kv_heads)?)?;
    let total = k.dim(2)?;
    let repeat = |x: &Tensor| -> Result<Tensor> {
        if heads == kv_heads {
            return Ok(x.contiguous()?);
        }
        Ok(x.unsqueeze(2)?
            .broadcast_as((batch, kv_heads, heads / kv_heads, total, hd))?
            .contiguous()?
            .reshape((batch, heads, total, hd))?)
    };
    let (k, v) = (repeat(&k)?, repeat(&v)?);
    let scale = 1.0 / (hd as f64).sqrt();
    let scores = (q.matmul(&k.t()?)? * scale)?.broadcast_add(&bias.to_dtype(q.dtype())?)?;
    let probs = candle_nn::ops::softmax_last_dim(&scores)?;
    let y = probs.matmul(&v)?;
    Ok(y.transpose(1, 2)?.contiguous()?.reshape((rows, width))?)
}

/// The last column's rows of `[batch · new, width]` hidden states: `[batch, width]`.
pub fn last_rows(hidden: &Tensor, batch: usize) -> Result<Tensor> {
    let (rows, width) = hidden.dims2()?;
    let new = rows / batch.max(1);
    Ok(hidden
        .reshape((batch, new, width))?
        .narrow(1, new - 1, 1)?
        .squeeze(1)?
        .to_dtype(DType::F32)?
        .contiguous()?)
}
