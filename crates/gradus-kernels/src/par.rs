//! Element-wise maps split over rayon's pool in fixed-size chunks: the chunking (and so
//! every result) does not depend on the number of threads.

use rayon::prelude::*;

/// Elements per parallel task: large enough that a task outweighs its scheduling.
pub(crate) const CHUNK: usize = 1 << 14;

/// `f` over every element of `x`.
pub(crate) fn map1(x: &[f32], f: impl Fn(f32) -> f32 + Sync) -> Vec<f32> {
    let mut out = vec![0.0f32; x.len()];
    out.par_chunks_mut(CHUNK)
        .zip(x.par_chunks(CHUNK))
        .for_each(|(out, x)| {
            for (o, &x) in out.iter_mut().zip(x) {
                *o = f(x);
            }
        });
    out
}

/// `f` over every pair of elements of `x` and `y` (same length).
pub(crate) fn map2(x: &[f32], y: &[f32], f: impl Fn(f32, f32) -> f32 + Sync) -> Vec<f32> {
    let mut out = vec![0.0f32; x.len()];
    out.par_chunks_mut(CHUNK)
        .zip(x.par_chunks(CHUNK).zip(y.par_chunks(CHUNK)))
        .for_each(|(out, (x, y))| {
            for ((o, &x), &y) in out.iter_mut().zip(x).zip(y) {
                *o = f(x, y);
            }
        });
    out
}

/// Rows of `width` elements per parallel task, so that a task holds about `CHUNK`
/// elements (at least one row).
pub(crate) fn rows_per_task(width: usize) -> usize {
    (CHUNK / width.max(1)).max(1)
}
