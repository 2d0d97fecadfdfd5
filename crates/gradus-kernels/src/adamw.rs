//! AdamW in place: `m ← β1·m + (1−β1)·g`, `v ← β2·v + (1−β2)·g²`, then
//! `p ← p·(1 − lr·wd) − lr · m̂ / (√v̂ + ε)` with bias-corrected `m̂`, `v̂`, the same
//! arithmetic as the composed version in f32. Each pass is split over rayon's pool in
//! chunks, as candle's own element-wise maps are.

use candle_core::{CpuStorage, InplaceOp2, InplaceOp3, Layout, Result, Tensor, bail};

use crate::par::CHUNK;
use crate::storage::{elems, f32s_mut};
use rayon::prelude::*;

/// The hyper-parameters of one update of one parameter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamwStep {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// Decoupled weight decay (0 for exempt parameters).
    pub weight_decay: f64,
    /// Updates done, this one included (for the bias correction).
    pub step: u64,
}

/// `dst ← a·dst + b·f(g)`, with `f` the identity or the square.
struct Moment {
    a: f32,
    b: f32,
    square: bool,
}

impl InplaceOp2 for Moment {
    fn name(&self) -> &'static str {
        "adamw-moment"
    }

    fn cpu_fwd(
        &self,
        dst: &mut CpuStorage,
        dst_l: &Layout,
        g: &CpuStorage,
        g_l: &Layout,
    ) -> Result<()> {
        let m = f32s_mut(dst, dst_l, "a moment")?;
        let g = elems::<f32>(g, g_l, "the gradient")?;
        if m.len() != g.len() {
            bail!("adamw: {} moments for {} gradients", m.len(), g.len())
        }
        let (a, b) = (self.a, self.b);
        if self.square {
            m.iter_mut()
                .zip(g)
                .for_each(|(m, &g)| *m = a * *m + b * (g * g));
        } else {
            m.iter_mut().zip(g).for_each(|(m, &g)| *m = a * *m + b * g);
        }
        Ok(())
    }
}

/// `p ← p·keep − lr·(m/c1) / (√(v/c2) + ε)`.
struct Update {
    keep: f32,
    lr: f32,
    c1: f32,
    c2: f32,
    eps: f32,
}

impl InplaceOp3 for Update {
    fn name(&self) -> &'static str {
        "adamw-update"
    }

    fn cpu_fwd(
        &self,
        dst: &mut CpuStorage,
        dst_l: &Layout,
        m: &CpuStorage,
        m_l: &Layout,
        v: &CpuStorage,
        v_l: &Layout,
    ) -> Result<()> {
        let p = f32s_mut(dst, dst_l, "the parameter")?;
        let (m, v) = (elems::<f32>(m, m_l, "m")?, elems::<f32>(v, v_l, "v")?);
        if p.len() != m.len() || p.len() != v.len() {
            bail!("adamw: parameter, m and v differ in size")
        }
        let Self {
            keep,
            lr,
            c1,
            c2,
            eps,
        } = *self;
        p.par_chunks_mut(CHUNK)
            .zip(m.par_chunks(CHUNK).zip(v.par_chunks(CHUNK)))
            .for_each(|(p, (m, v))| {
                for ((p, &m), &v) in p.iter_mut().zip(m).zip(v) {
                    *p = *p * keep - lr * ((m / c1) / ((v / c2).sqrt() + eps));
                }
            });
        Ok(())
    }
}

/// One AdamW update of `param` (and its moments `m`, `v`) from `grad`, in place. All four
/// must be contiguous f32 tensors on the CPU.
pub fn adamw_in_place(
    param: &Tensor,
    m: &Tensor,
    v: &Tensor,
    grad: &Tensor,
    s: AdamwStep,
) -> Result<()> {
    let t = s.step.min(i32::MAX as u64) as i32;
    m.inplace_op2(
        grad,
        &Moment {
            a: s.beta1 as f32,
            b: (1.0 - s.beta1) as f32,
            square: false,
        },
    )?;
    v.inplace_op2(
        grad,
        &Moment {
            a: s.beta2 as f32,
            b: (1.0 - s.beta2) as f32,
            square: true,
        },
    )?;
    param.inplace_op3(
        m,
        v,
        &Update {
            keep: (1.0 - s.lr * s.weight_decay) as f32,
            lr: s.lr as f32,
            c1: (1.0 - s.beta1.powi(t)) as f32,
            c2: (1.0 - s.beta2.powi(t)) as f32,
            eps: s.eps as f32,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// The composed candle update the trainer used before (and still uses on GPUs).
    fn composed(p: &Tensor, m: &Tensor, v: &Tensor, g: &Tensor, s: AdamwStep) -> [Tensor; 3] {
        let t = s.step as i32;
        let m = ((m * s.beta1).unwrap() + (g * (1.0 - s.beta1)).unwrap()).unwrap();
        let v = ((v * s.beta2).unwrap() + (g.sqr().unwrap() * (1.0 - s.beta2)).unwrap()).unwrap();
        let m_hat = (&m / (1.0 - s.beta1.powi(t))).unwrap();
        let v_hat = (&v / (1.0 - s.beta2.powi(t))).unwrap();
        let upd = (m_hat / (v_hat.sqrt().unwrap() + s.eps).unwrap()).unwrap();
        let p = ((p * (1.0 - s.lr * s.weight_decay)).unwrap() - (upd * s.lr).unwrap()).unwrap();
        [p, m, v]
    }

    #[test]
    fn matches_the_composed_update_over_several_steps() {
        let dev = Device::Cpu;
        for n in [1usize, 7, 1000] {
            let p = Tensor::randn(0f32, 1.0, n, &dev).unwrap();
            let (m, v) = (p.zeros_like().unwrap(), p.zeros_like().unwrap());
            let (p2, m2, v2) = (p.copy().unwrap(), m.copy().unwrap(), v.copy().unwrap());
            let (mut cp, mut cm, mut cv) =
                (p.copy().unwrap(), m.copy().unwrap(), v.copy().unwrap());
            for step in 1..=5 {
                let g = (Tensor::randn(0f32, 1.0, n, &dev).unwrap() * 1e3).unwrap();
                let s = AdamwStep {
                    lr: 1e-3,
                    beta1: 0.9,
                    beta2: 0.99,
                    eps: 1e-8,
                    weight_decay: 0.1,
                    step,
                };
                adamw_in_place(&p2, &m2, &v2, &g, s).unwrap();
                [cp, cm, cv] = composed(&cp, &cm, &cv, &g, s);
            }
            for (a, b) in [(&p2, &cp), (&m2, &cm), (&v2, &cv)] {
                let (a, b) = (a.to_vec1::<f32>().unwrap(), b.to_vec1::<f32>().unwrap());
                for (x, y) in a.iter().zip(&b) {
                    assert!((x - y).abs() <= 1e-5 * y.abs().max(1.0), "{x} vs {y}");
                    assert!(x.is_finite());
                }
            }
        }
    }

    #[test]
    fn non_contiguous_input_is_an_error_not_a_panic() {
        let p = Tensor::zeros((3, 2), candle_core::DType::F32, &Device::Cpu).unwrap();
        let t = p.t().unwrap();
        let s = AdamwStep {
            lr: 1.0,
            beta1: 0.9,
            beta2: 0.9,
            eps: 1e-8,
            weight_decay: 0.0,
            step: 1,
        };
        assert!(adamw_in_place(&p, &p.copy().unwrap(), &p.copy().unwrap(), &t, s).is_err());
    }
}
