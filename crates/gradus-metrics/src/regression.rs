//! Regression metrics: mean squared error and the two correlations GLUE's STS-B uses.

use serde::Serialize;

use crate::{MetricError, Result, check_lengths};

fn check(what: &'static str, predicted: &[f64], truth: &[f64]) -> Result<()> {
    check_lengths(what, predicted.len(), truth.len())?;
    if predicted.iter().chain(truth).any(|v| !v.is_finite()) {
        return Err(MetricError::NonFinite { what });
    }
    Ok(())
}

pub fn mse(predicted: &[f64], truth: &[f64]) -> Result<f64> {
    check("MSE", predicted, truth)?;
    let sum: f64 = predicted
        .iter()
        .zip(truth)
        .map(|(p, t)| (p - t) * (p - t))
        .sum();
    Ok(sum / truth.len() as f64)
}

/// Pearson's r; an error when either side is constant (its deviation is zero).
pub fn pearson(predicted: &[f64], truth: &[f64]) -> Result<f64> {
    check("Pearson correlation", predicted, truth)?;
    let n = truth.len() as f64;
    let (mp, mt) = (
        predicted.iter().sum::<f64>() / n,
        truth.iter().sum::<f64>() / n,
    );
    let (mut cov, mut vp, mut vt) = (0.0, 0.0, 0.0);
    for (p, t) in predicted.iter().zip(truth) {
        let (dp, dt) = (p - mp, t - mt);
        cov += dp * dt;
        vp += dp * dp;
        vt += dt * dt;
    }
    let what = "Pearson correlation";
    if vp == 0.0 {
        return Err(MetricError::Constant {
            what,
            which: "predicted",
        });
    }
    if vt == 0.0 {
        return Err(MetricError::Constant {
            what,
            which: "reference",
        });
    }
    Ok((cov / (vp.sqrt() * vt.sqrt())).clamp(-1.0, 1.0))
}

/// 1-based ranks, ties given the mean of the ranks they span (SciPy's `rankdata`).
pub fn ranks(values: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let mut out = vec![0.0; values.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && values[order[j + 1]] == values[order[i]] {
            j += 1;
        }
        let mean_rank = (i + j) as f64 / 2.0 + 1.0;
        for &k in &order[i..=j] {
            out[k] = mean_rank;
        }
        i = j + 1;
    }
    out
}

/// Spearman's ρ: Pearson over tie-averaged ranks.
pub fn spearman(predicted: &[f64], truth: &[f64]) -> Result<f64> {
    check("Spearman correlation", predicted, truth)?;
    pearson(&ranks(predicted), &ranks(truth)).map_err(|e| match e {
        MetricError::Constant { which, .. } => MetricError::Constant {
            what: "Spearman correlation",
            which,
        },
        other => other,
    })
}

/// Every regression figure gradus reports.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RegressionReport {
    pub examples: u64,
    pub mse: f64,
    pub pearson: f64,
    pub spearman: f64,
}

impl RegressionReport {
    pub fn new(predicted: &[f64], truth: &[f64]) -> Result<Self> {
        Ok(Self {
            examples: truth.len() as u64,
            mse: mse(predicted, truth)?,
            pearson: pearson(predicted, truth)?,
            spearman: spearman(predicted, truth)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() < 1e-9, "{a} != {b}");
    }

    #[test]
    fn mse_and_pearson_by_hand() {
        let (p, t) = ([1.0, 2.0, 3.0, 4.0], [1.0, 3.0, 2.0, 4.0]);
        close(mse(&p, &t).unwrap(), 0.5);
        // Deviations (−1.5, −.5, .5, 1.5) · (−1.5, .5, −.5, 1.5) = 4, variances 5 → 0.8.
        close(pearson(&p, &t).unwrap(), 0.8);
    }

    #[test]
    fn ties_share_their_mean_rank() {
        assert_eq!(ranks(&[10.0, 20.0, 10.0, 30.0]), vec![1.5, 3.0, 1.5, 4.0]);
        // scipy.stats.spearmanr([1, 2, 2, 3], [1, 3, 2, 4]).statistic = 0.9486832980505138
        close(
            spearman(&[1.0, 2.0, 2.0, 3.0], &[1.0, 3.0, 2.0, 4.0]).unwrap(),
            0.948_683_298_050_513_8,
        );
    }

    #[test]
    fn a_constant_vector_is_a_defined_error_not_nan() {
        let err = pearson(&[2.0, 2.0, 2.0], &[1.0, 2.0, 3.0]).unwrap_err();
        assert_eq!(
            err,
            MetricError::Constant {
                what: "Pearson correlation",
                which: "predicted"
            }
        );
        assert!(matches!(
            spearman(&[1.0, 2.0, 3.0], &[5.0, 5.0, 5.0]),
            Err(MetricError::Constant {
                which: "reference",
                ..
            })
        ));
        assert!(RegressionReport::new(&[1.0, f64::NAN], &[1.0, 2.0]).is_err());
    }
}
