//! Element-wise maps split over rayon's pool in fixed-size chunks: the chunking (and so
//! every result) does not depend on the number of threads.

use std::mem::MaybeUninit;

use rayon::prelude::*;

/// Elements per parallel task: large enough that a task outweighs its scheduling.
pub(crate) const CHUNK: usize = 1 << 14;

/// An output chunk not yet written. A chunk function handed one must write every element
/// of it (the output's length is set afterwards, unchecked); in return the output is
/// never zero-filled first, a memset as long as the op itself for these memory-bound
/// element-wise ops.
pub(crate) type Out = [MaybeUninit<f32>];

/// `f(out_chunk, x_chunk)` over `x` in chunks: `f` writes each element of its output
/// chunk from the same place in its input chunk.
pub(crate) fn map1(x: &[f32], f: fn(&mut Out, &[f32])) -> Vec<f32> {
    filled(x.len(), |out| {
        out.par_chunks_mut(CHUNK)
            .zip(x.par_chunks(CHUNK))
            .for_each(|(out, x)| f(out, x))
    })
}

/// `f(out_chunk, x_chunk, y_chunk)` over `x` and `y` (same length) in chunks.
pub(crate) fn map2(x: &[f32], y: &[f32], f: fn(&mut Out, &[f32], &[f32])) -> Vec<f32> {
    let n = x.len().min(y.len());
    filled(n, |out| {
        out.par_chunks_mut(CHUNK)
            .zip(x.par_chunks(CHUNK).zip(y.par_chunks(CHUNK)))
            .for_each(|(out, (x, y))| f(out, x, y))
    })
}

/// A vector of `len` values that `fill` writes, every one of them.
fn filled(len: usize, fill: impl FnOnce(&mut Out)) -> Vec<f32> {
    let mut out = Vec::with_capacity(len);
    fill(&mut out.spare_capacity_mut()[..len]);
    #[allow(unsafe_code)]
    // SAFETY: `map1` and `map2` hand every chunk of the `len` values to a chunk function,
    // and every chunk function writes each element of its output chunk (an output as
    // long as its input, which is as long as the output chunk).
    unsafe {
        out.set_len(len)
    };
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
