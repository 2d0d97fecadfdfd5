//! Borrowing the buffers behind candle's CPU storage. Every kernel here works on
//! contiguous row-major data; the public wrappers make their inputs contiguous first.

use candle_core::{CpuStorage, Layout, Result, WithDType, bail};

/// The values of a contiguous `D` storage; `what` names it in the error.
pub(crate) fn elems<'a, D: WithDType>(
    s: &'a CpuStorage,
    l: &Layout,
    what: &str,
) -> Result<&'a [D]> {
    let Ok(data) = s.as_slice::<D>() else {
        bail!("{what} is not {}", D::DTYPE.as_str())
    };
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&data[a..b]),
        None => bail!("{what} is not contiguous"),
    }
}

/// The same, to update in place (candle has no mutable `as_slice`).
pub(crate) fn f32s_mut<'a>(s: &'a mut CpuStorage, l: &Layout, what: &str) -> Result<&'a mut [f32]> {
    let CpuStorage::F32(data) = s else {
        bail!("{what} is not f32")
    };
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&mut data[a..b]),
        None => bail!("{what} is not contiguous"),
    }
}
