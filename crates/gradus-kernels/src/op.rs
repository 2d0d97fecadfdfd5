//! One adapter between the fused kernels and candle's custom-op traits. A kernel says what
//! it computes (its output from its borrowed inputs, and its inputs' gradients); reaching
//! into candle's CPU storage, wrapping the output and matching each trait's arity are
//! written here once.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};

use crate::storage::elems;

/// The `N` inputs of one call, as candle's CPU storage holds them.
pub(crate) struct Inputs<'a, const N: usize> {
    args: [(&'a CpuStorage, &'a Layout); N],
    names: [&'static str; N],
}

impl<'a, const N: usize> Inputs<'a, N> {
    /// Input `i` as contiguous f32 values.
    pub fn f32(&self, i: usize) -> Result<&'a [f32]> {
        let (s, l) = self.args[i];
        elems(s, l, self.names[i])
    }

    /// Input `i` as contiguous u32 values.
    pub fn u32(&self, i: usize) -> Result<&'a [u32]> {
        let (s, l) = self.args[i];
        elems(s, l, self.names[i])
    }

    pub fn shape(&self, i: usize) -> &'a Shape {
        self.args[i].1.shape()
    }
}

/// A fused CPU kernel of `N` inputs giving one f32 output.
pub(crate) trait Kernel<const N: usize>: Send + Sync {
    /// What each input is, for the error that says one is not what the kernel takes.
    const INPUTS: [&'static str; N];

    fn name(&self) -> &'static str;

    /// The output's values and shape.
    fn forward(&self, x: &Inputs<'_, N>) -> Result<(Vec<f32>, Shape)>;

    /// The inputs' gradients, given the inputs, the output and the output's gradient.
    /// Kernels that are only applied without a backward pass keep this default.
    fn backward(&self, _x: [&Tensor; N], _y: &Tensor, _dy: &Tensor) -> Result<[Option<Tensor>; N]> {
        Err(candle_core::Error::BackwardNotSupported { op: self.name() })
    }
}

/// A [`Kernel`] as candle applies it.
pub(crate) struct Op<K>(pub K);

impl<K> Op<K> {
    fn run<const N: usize>(&self, args: [(&CpuStorage, &Layout); N]) -> Result<(CpuStorage, Shape)>
    where
        K: Kernel<N>,
    {
        let (y, shape) = self.0.forward(&Inputs {
            args,
            names: K::INPUTS,
        })?;
        Ok((CpuStorage::F32(y), shape))
    }
}

impl<K: Kernel<1>> CustomOp1 for Op<K> {
    fn name(&self) -> &'static str {
        self.0.name()
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        self.run([(s, l)])
    }

    fn bwd(&self, x: &Tensor, y: &Tensor, dy: &Tensor) -> Result<Option<Tensor>> {
        let [dx] = self.0.backward([x], y, dy)?;
        Ok(dx)
    }
}

impl<K: Kernel<2>> CustomOp2 for Op<K> {
    fn name(&self) -> &'static str {
        self.0.name()
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        self.run([(s1, l1), (s2, l2)])
    }

    fn bwd(
        &self,
        x1: &Tensor,
        x2: &Tensor,
        y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let [d1, d2] = self.0.backward([x1, x2], y, dy)?;
        Ok((d1, d2))
    }
}

impl<K: Kernel<3>> CustomOp3 for Op<K> {
    fn name(&self) -> &'static str {
        self.0.name()
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        self.run([(s1, l1), (s2, l2), (s3, l3)])
    }

    fn bwd(
        &self,
        x1: &Tensor,
        x2: &Tensor,
        x3: &Tensor,
        y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let [d1, d2, d3] = self.0.backward([x1, x2, x3], y, dy)?;
        Ok((d1, d2, d3))
    }
}

/// Splits a 1-D tensor of several gradients packed end to end into tensors shaped like
/// `like`, in order (a backward kernel gives all its gradients in one buffer).
pub(crate) fn unpack<const M: usize>(packed: &Tensor, like: [&Tensor; M]) -> Result<[Tensor; M]> {
    let mut start = 0;
    let mut parts = Vec::with_capacity(M);
    for t in like {
        let n = t.elem_count();
        parts.push(packed.narrow(0, start, n)?.reshape(t.shape())?);
        start += n;
    }
    // One part per tensor of `like`, so the conversion holds.
    parts
        .try_into()
        .map_err(|_: Vec<Tensor>| candle_core::Error::Msg("unpack: parts lost".into()))
}
