//! Scalar math written as straight-line arithmetic (no libm calls, branches only as
//! selects) so that LLVM vectorises the loops that call it. `f32::exp` and candle's `erf`
//! are scalar library calls, which is most of why composed GELU and softmax are slow.

use std::f32::consts::{FRAC_1_SQRT_2, LN_2, LOG2_E};

/// 1.5 · 2²³: adding it to a float of magnitude below 2²² leaves the nearest integer in
/// the low mantissa bits.
const ROUND: f32 = 12_582_912.0;

/// eˣ within a few ulp (Cephes `expf`): x = n·ln2 + r, a degree-6 polynomial in r, and
/// 2ⁿ built from its exponent bits. Inputs are clamped to [−87, 88], so −∞ gives ~1e−38.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    let x = x.clamp(-87.0, 88.0);
    let t = x * LOG2_E + ROUND;
    let n = t - ROUND;
    // ln 2 split in two so that n·ln2 is exact in the first part.
    let r = x - n * 0.693_359_4 - n * (LN_2 - 0.693_359_4);
    let p = ((((1.987_569_1e-4 * r + 1.398_2e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r
        + 0.166_666_65)
        * r
        + 0.5;
    let p = p * r * r + r + 1.0;
    let n = t.to_bits().wrapping_sub(ROUND.to_bits()) as i32;
    p * f32::from_bits(((n + 127) << 23) as u32)
}

/// Φ(x), the standard normal CDF, through erfc (Abramowitz & Stegun 7.1.26, |error| below
/// 1.5·10⁻⁷). Computed from the tail on each side, so that Φ of a very negative x is not
/// the difference of two numbers near 1.
#[inline(always)]
pub fn normal_cdf(x: f32) -> f32 {
    let z = x.abs() * FRAC_1_SQRT_2;
    let t = 1.0 / (1.0 + 0.327_591_1 * z);
    let poly = t
        * (0.254_829_6
            + t * (-0.284_496_74 + t * (1.421_413_8 + t * (-1.453_152 + t * 1.061_405_4))));
    let half_tail = 0.5 * poly * exp(-z * z);
    if x >= 0.0 { 1.0 - half_tail } else { half_tail }
}

/// φ(x), the standard normal density.
#[inline(always)]
pub fn normal_pdf(x: f32) -> f32 {
    const INV_SQRT_2PI: f32 = 0.398_942_3;
    INV_SQRT_2PI * exp(-0.5 * x * x)
}

/// tanh through e^(−2|x|), which never overflows.
#[inline(always)]
pub fn tanh(x: f32) -> f32 {
    let e = exp(-2.0 * x.abs());
    let t = (1.0 - e) / (1.0 + e);
    if x < 0.0 { -t } else { t }
}

/// Σ aᵢbᵢ in eight independent lanes, which the compiler keeps in vector registers (a
/// single running sum is a serial dependency it may not reorder).
#[inline(always)]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let (a8, a_rest) = a.as_chunks::<8>();
    let (b8, b_rest) = b.as_chunks::<8>();
    let mut acc = [0.0f32; 8];
    for (x, y) in a8.iter().zip(b8) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    let tail: f32 = a_rest.iter().zip(b_rest).map(|(x, y)| x * y).sum();
    acc.iter().sum::<f32>() + tail
}

/// Σ aᵢ in eight lanes.
#[inline(always)]
pub fn sum(a: &[f32]) -> f32 {
    let (a8, rest) = a.as_chunks::<8>();
    let mut acc = [0.0f32; 8];
    for x in a8 {
        for l in 0..8 {
            acc[l] += x[l];
        }
    }
    acc.iter().sum::<f32>() + rest.iter().sum::<f32>()
}

/// Σ (aᵢ − c)² in eight lanes.
#[inline(always)]
pub fn sum_squared_deviation(a: &[f32], c: f32) -> f32 {
    let (a8, rest) = a.as_chunks::<8>();
    let mut acc = [0.0f32; 8];
    for x in a8 {
        for l in 0..8 {
            acc[l] += (x[l] - c) * (x[l] - c);
        }
    }
    acc.iter().sum::<f32>() + rest.iter().map(|&x| (x - c) * (x - c)).sum::<f32>()
}

/// max aᵢ (−∞ for an empty slice), in eight lanes.
#[inline(always)]
pub fn max(a: &[f32]) -> f32 {
    let (a8, rest) = a.as_chunks::<8>();
    let mut acc = [f32::NEG_INFINITY; 8];
    for x in a8 {
        for l in 0..8 {
            acc[l] = if x[l] > acc[l] { x[l] } else { acc[l] };
        }
    }
    acc.iter()
        .chain(rest)
        .fold(f32::NEG_INFINITY, |m, &x| m.max(x))
}

/// y ← y + a·x.
#[inline(always)]
pub fn axpy(y: &mut [f32], a: f32, x: &[f32]) {
    for (y, &x) in y.iter_mut().zip(x) {
        *y += a * x;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_matches_the_library_within_a_few_ulp() {
        for i in -8_700..8_800 {
            let x = i as f32 * 0.01;
            let (got, want) = (exp(x), x.exp());
            assert!(
                (got - want).abs() <= 4.0 * f32::EPSILON * want,
                "exp({x}): {got} vs {want}"
            );
        }
        assert!(exp(f32::NEG_INFINITY) < 1e-37);
        assert!(exp(f32::NAN).is_nan());
    }

    #[test]
    fn normal_cdf_and_tanh_match_the_library() {
        for i in -1_000..1_000 {
            let x = i as f32 * 0.01;
            let want = 0.5 * (1.0 + libm_erf(f64::from(x) / std::f64::consts::SQRT_2));
            assert!(
                (f64::from(normal_cdf(x)) - want).abs() < 5e-7,
                "Φ({x}): {} vs {want}",
                normal_cdf(x)
            );
            assert!((tanh(x) - x.tanh()).abs() < 2e-7, "tanh({x})");
        }
    }

    #[test]
    fn lane_sums_match_plain_sums() {
        let a: Vec<f32> = (0..37).map(|i| i as f32 * 0.5 - 3.0).collect();
        let b: Vec<f32> = (0..37).map(|i| 1.0 / (i as f32 + 1.0)).collect();
        let plain: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert!((dot(&a, &b) - plain).abs() < 1e-4);
        assert!((sum(&a) - a.iter().sum::<f32>()).abs() < 1e-4);
        assert_eq!(max(&a), 15.0);
        assert_eq!(
            max(&a[..9]),
            a[..9].iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x))
        );
        assert_eq!(max(&[]), f32::NEG_INFINITY);
        assert_eq!(dot(&[], &[]), 0.0);
    }

    /// erf to double precision (Abramowitz & Stegun 7.1.28 is not enough; use the series
    /// for small x and the continued fraction of erfc for large x).
    fn libm_erf(x: f64) -> f64 {
        if x.abs() < 2.5 {
            // Maclaurin series: erf x = 2/√π Σ (−1)ⁿ x^(2n+1) / (n! (2n+1)).
            let (mut term, mut total) = (x, x);
            for n in 1..80 {
                term *= -x * x / n as f64;
                total += term / (2 * n + 1) as f64;
            }
            total * 2.0 / std::f64::consts::PI.sqrt()
        } else {
            // erfc x = e^(−x²)/√π · 1/(x + 1/2/(x + 1/(x + 3/2/(x + ...)))).
            let z = x.abs();
            let mut f = z;
            for k in (1..60).rev() {
                f = z + (k as f64 / 2.0) / f;
            }
            let erfc = (-z * z).exp() / std::f64::consts::PI.sqrt() / f;
            (1.0 - erfc).copysign(x)
        }
    }
}
