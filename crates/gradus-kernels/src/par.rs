//! Element-wise maps split over rayon's pool in fixed-size chunks: the chunking (and so
//! every result) does not depend on the number of threads.

use rayon::prelude::*;

/// Elements per parallel task: large enough that a task outweighs its scheduling.
pub(crate) const CHUNK: usize = 1 << 14;

/// `f(out_chunk, x_chunk)` over `x` in chunks: `f` maps each element of its input chunk
/// to the same place in its output chunk.
pub(crate) fn map1(x: &[f32], f: fn(&mut [f32], &[f32])) -> Vec<f32> {
    let mut out = vec![0.0f32; x.len()];
    out.par_chunks_mut(CHUNK)
        .zip(x.par_chunks(CHUNK))
        .for_each(|(out, x)| f(out, x));
    out
}

/// `f(out_chunk, x_chunk, y_chunk)` over `x` and `y` (same length) in chunks.
pub(crate) fn map2(x: &[f32], y: &[f32], f: fn(&mut [f32], &[f32], &[f32])) -> Vec<f32> {
    let mut out = vec![0.0f32; x.len()];
    out.par_chunks_mut(CHUNK)
        .zip(x.par_chunks(CHUNK).zip(y.par_chunks(CHUNK)))
        .for_each(|(out, (x, y))| f(out, x, y));
    out
}

/// Rows of `width` elements per parallel task, so that a task holds about `CHUNK`
/// elements (at least one row).
pub(crate) fn rows_per_task(width: usize) -> usize {
    (CHUNK / width.max(1)).max(1)
}

/// The backward pass of a row-wise op with per-column sums (a norm's weight and bias
/// gradients): `block(dx, x, dy)` fills a block of rows' input gradient and returns its
/// `sums` column sums; returns `[dx…, sums…]`, the blocks' sums added in block order.
pub(crate) fn rows_backward(
    x: &[f32],
    dy: &[f32],
    width: usize,
    sums: usize,
    block: impl Fn(&mut [f32], &[f32], &[f32]) -> Vec<f32> + Sync,
) -> Vec<f32> {
    let mut out = vec![0.0f32; x.len() + sums];
    let (dx, _) = out.split_at_mut(x.len());
    let rows = rows_per_task(width) * width;
    let partial: Vec<Vec<f32>> = dx
        .par_chunks_mut(rows)
        .zip(x.par_chunks(rows).zip(dy.par_chunks(rows)))
        .map(|(dx, (x, dy))| block(dx, x, dy))
        .collect();
    add_in_order(&mut out[x.len()..], partial);
    out
}

/// Adds per-task partial sums into `total` in task order, so that the result is the same
/// on any number of threads (the tasks' chunking does not depend on it either).
pub(crate) fn add_in_order(total: &mut [f32], partials: Vec<Vec<f32>>) {
    for partial in partials {
        for (t, p) in total.iter_mut().zip(partial) {
            *t += p;
        }
    }
}
