//! Borrowing the f32 / u32 buffers behind candle's CPU storage. Every kernel here works on
//! contiguous row-major data; the public wrappers make their inputs contiguous first.

use candle_core::{CpuStorage, Layout, Result, bail};

pub(crate) fn f32s<'a>(s: &'a CpuStorage, l: &Layout, what: &str) -> Result<&'a [f32]> {
    let CpuStorage::F32(data) = s else {
        bail!("{what} is not f32")
    };
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&data[a..b]),
        None => bail!("{what} is not contiguous"),
    }
}

pub(crate) fn f32s_mut<'a>(s: &'a mut CpuStorage, l: &Layout, what: &str) -> Result<&'a mut [f32]> {
    let CpuStorage::F32(data) = s else {
        bail!("{what} is not f32")
    };
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&mut data[a..b]),
        None => bail!("{what} is not contiguous"),
    }
}

pub(crate) fn u32s<'a>(s: &'a CpuStorage, l: &Layout, what: &str) -> Result<&'a [u32]> {
    let CpuStorage::U32(data) = s else {
        bail!("{what} is not u32")
    };
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&data[a..b]),
        None => bail!("{what} is not contiguous"),
    }
}
