//! Task metrics shared by fine-tuning, multi-task training and evaluation, so that a
//! figure means the same thing wherever gradus reports it.
//!
//! Definitions follow scikit-learn and SciPy: macro F1 averages the per-class F1 over
//! every class (a class never predicted nor present scores 0), MCC is the multi-class
//! (Gorodkin) form, Spearman is Pearson over average ranks (ties share their mean rank).
//! Where a statistic is undefined (a constant vector for Pearson) the functions return an
//! error instead of NaN.
//!
//! ```
//! use gradus_metrics::{ClassificationReport, pearson};
//!
//! let report = ClassificationReport::new(&[0, 1, 1, 0], &[0, 1, 0, 0], 2).unwrap();
//! assert_eq!(report.accuracy, 0.75);
//! assert!((pearson(&[1.0, 2.0, 3.0], &[2.0, 4.0, 6.5]).unwrap() - 0.99795).abs() < 1e-4);
//! ```

mod classification;
mod direction;
mod regression;

pub use classification::{ClassificationReport, ConfusionMatrix};
pub use direction::{Direction, Metric, UnknownDirection};
pub use regression::{RegressionReport, mse, pearson, ranks, spearman};

/// Why a metric has no value.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MetricError {
    #[error("{what}: no examples")]
    Empty { what: &'static str },
    #[error("{what}: {left} predictions for {right} references")]
    Length {
        what: &'static str,
        left: usize,
        right: usize,
    },
    #[error("{what} is undefined: the {which} values are all equal")]
    Constant {
        what: &'static str,
        which: &'static str,
    },
    #[error("class {class} is outside 0..{classes}")]
    Class { class: usize, classes: usize },
    #[error("{what}: a value is not finite")]
    NonFinite { what: &'static str },
}

pub type Result<T> = std::result::Result<T, MetricError>;

fn check_lengths(what: &'static str, left: usize, right: usize) -> Result<()> {
    if left != right {
        return Err(MetricError::Length { what, left, right });
    }
    if left == 0 {
        return Err(MetricError::Empty { what });
    }
    Ok(())
}
