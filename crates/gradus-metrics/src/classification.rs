//! Classification metrics from a confusion matrix.

use serde::Serialize;

use crate::{MetricError, Result, check_lengths};

/// Counts of (true class, predicted class): `counts[truth][predicted]`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConfusionMatrix {
    pub counts: Vec<Vec<u64>>,
}

impl ConfusionMatrix {
    pub fn new(truth: &[usize], predicted: &[usize], classes: usize) -> Result<Self> {
        check_lengths("confusion matrix", predicted.len(), truth.len())?;
        let mut counts = vec![vec![0u64; classes]; classes];
        for (&t, &p) in truth.iter().zip(predicted) {
            for class in [t, p] {
                if class >= classes {
                    return Err(MetricError::Class { class, classes });
                }
            }
            counts[t][p] += 1;
        }
        Ok(Self { counts })
    }

    pub fn classes(&self) -> usize {
        self.counts.len()
    }

    pub fn total(&self) -> u64 {
        self.counts.iter().flatten().sum()
    }

    fn diagonal(&self) -> u64 {
        (0..self.classes()).map(|k| self.counts[k][k]).sum()
    }

    /// Examples whose true class is `k`.
    fn actual(&self, k: usize) -> u64 {
        self.counts[k].iter().sum()
    }

    /// Examples predicted as `k`.
    fn predicted(&self, k: usize) -> u64 {
        self.counts.iter().map(|row| row[k]).sum()
    }

    pub fn accuracy(&self) -> f64 {
        self.diagonal() as f64 / self.total().max(1) as f64
    }

    /// F1 of each class; 0 where precision and recall are both undefined or zero
    /// (scikit-learn's `zero_division=0`).
    pub fn f1_per_class(&self) -> Vec<f64> {
        (0..self.classes())
            .map(|k| {
                let tp = self.counts[k][k] as f64;
                let denom = (self.actual(k) + self.predicted(k)) as f64;
                if denom == 0.0 { 0.0 } else { 2.0 * tp / denom }
            })
            .collect()
    }

    pub fn macro_f1(&self) -> f64 {
        let f1 = self.f1_per_class();
        f1.iter().sum::<f64>() / f1.len().max(1) as f64
    }

    /// Matthews correlation coefficient, multi-class form (equal to the binary one for
    /// two classes); 0 when a marginal is constant, as scikit-learn reports it.
    pub fn mcc(&self) -> f64 {
        let (c, s) = (self.diagonal() as f64, self.total() as f64);
        let (mut pk_tk, mut pk2, mut tk2) = (0.0, 0.0, 0.0);
        for k in 0..self.classes() {
            let (p, t) = (self.predicted(k) as f64, self.actual(k) as f64);
            pk_tk += p * t;
            pk2 += p * p;
            tk2 += t * t;
        }
        let denom = ((s * s - pk2) * (s * s - tk2)).sqrt();
        if denom == 0.0 {
            0.0
        } else {
            (c * s - pk_tk) / denom
        }
    }
}

/// Every classification figure gradus reports.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassificationReport {
    pub examples: u64,
    pub accuracy: f64,
    pub macro_f1: f64,
    pub mcc: f64,
    pub f1_per_class: Vec<f64>,
    pub confusion: ConfusionMatrix,
}

impl ClassificationReport {
    pub fn new(truth: &[usize], predicted: &[usize], classes: usize) -> Result<Self> {
        let confusion = ConfusionMatrix::new(truth, predicted, classes)?;
        Ok(Self {
            examples: confusion.total(),
            accuracy: confusion.accuracy(),
            macro_f1: confusion.macro_f1(),
            mcc: confusion.mcc(),
            f1_per_class: confusion.f1_per_class(),
            confusion,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() < 1e-12, "{a} != {b}");
    }

    #[test]
    fn binary_figures_match_hand_computation() {
        // truth:     1 1 1 0 0 0 0 1
        // predicted: 1 0 1 0 1 0 0 1   → tp 3, fn 1, fp 1, tn 3
        let truth = [1, 1, 1, 0, 0, 0, 0, 1];
        let pred = [1, 0, 1, 0, 1, 0, 0, 1];
        let r = ClassificationReport::new(&truth, &pred, 2).unwrap();
        assert_eq!(r.confusion.counts, vec![vec![3, 1], vec![1, 3]]);
        close(r.accuracy, 0.75);
        // F1 of each class = 2·3 / (4 + 4) = 0.75.
        close(r.macro_f1, 0.75);
        // MCC = (tp·tn − fp·fn) / sqrt(4·4·4·4) = (9 − 1) / 16.
        close(r.mcc, 0.5);
    }

    #[test]
    fn multiclass_mcc_and_macro_f1() {
        // scikit-learn: matthews_corrcoef([0,0,1,1,2,2], [0,1,1,2,2,0]) = 0.25,
        // f1_score(..., average="macro") = 0.5.
        let r = ClassificationReport::new(&[0, 0, 1, 1, 2, 2], &[0, 1, 1, 2, 2, 0], 3).unwrap();
        close(r.mcc, 0.25);
        close(r.macro_f1, 0.5);
        close(r.accuracy, 0.5);
    }

    #[test]
    fn a_class_never_seen_scores_zero_f1_and_constant_predictions_zero_mcc() {
        let r = ClassificationReport::new(&[0, 0, 1], &[0, 0, 0], 3).unwrap();
        assert_eq!(r.f1_per_class[2], 0.0);
        assert_eq!(r.f1_per_class[1], 0.0);
        close(r.f1_per_class[0], 0.8);
        assert_eq!(r.mcc, 0.0);
    }

    #[test]
    fn bad_input_is_an_error() {
        assert!(matches!(
            ClassificationReport::new(&[0, 3], &[0, 1], 2),
            Err(MetricError::Class { class: 3, .. })
        ));
        assert!(matches!(
            ClassificationReport::new(&[0], &[0, 1], 2),
            Err(MetricError::Length { .. })
        ));
        assert!(matches!(
            ClassificationReport::new(&[], &[], 2),
            Err(MetricError::Empty { .. })
        ));
    }
}
