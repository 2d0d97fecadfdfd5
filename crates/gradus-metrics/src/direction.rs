//! Which way a metric improves, decided once for every stage: the trainer's best
//! checkpoint and early stopping, the multi-task composite and the evaluation report all
//! ask [`Metric`].

use serde::{Deserialize, Serialize};

/// Whether a larger or a smaller value of a metric is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Larger is better: accuracy, F1, MCC, Pearson, Spearman.
    Up,
    /// Smaller is better: loss, MSE, perplexity.
    Down,
}

/// Metrics where larger is better. A task-scoped name (`sst2/accuracy`) is looked up by
/// its last part.
const UP: &[&str] = &[
    "accuracy",
    "macro_f1",
    "f1",
    "mcc",
    "pearson",
    "spearman",
    "composite",
    "mlm_accuracy",
    "nsp_accuracy",
    "exact_match",
];

/// Metrics where smaller is better.
const DOWN: &[&str] = &[
    "loss",
    "mse",
    "rmse",
    "mae",
    "perplexity",
    "bits_per_byte",
    "mlm_loss",
    "nsp_loss",
    "response_loss",
];

impl Direction {
    /// The direction of a known metric name, or `None` for a name gradus does not know.
    pub fn of(name: &str) -> Option<Self> {
        let base = name.rsplit('/').next().unwrap_or(name);
        if UP.contains(&base) {
            Some(Self::Up)
        } else if DOWN.contains(&base) {
            Some(Self::Down)
        } else {
            None
        }
    }

    /// `Up` for `greater_is_better = true`.
    pub fn from_greater_is_better(greater: bool) -> Self {
        if greater { Self::Up } else { Self::Down }
    }

    pub fn greater_is_better(self) -> bool {
        self == Self::Up
    }

    /// Whether `value` beats `best` (anything beats no value; NaN beats nothing).
    pub fn improves(self, value: f64, best: Option<f64>) -> bool {
        if value.is_nan() {
            return false;
        }
        best.is_none_or(|b| match self {
            Self::Up => value > b,
            Self::Down => value < b,
        })
    }
}

/// A metric by name with the direction it improves in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metric {
    pub name: String,
    pub direction: Direction,
}

/// A metric whose direction is neither known nor given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "metric `{0}`: gradus does not know whether larger or smaller is better; set \
     greater_is_better"
)]
pub struct UnknownDirection(pub String);

impl Metric {
    /// `name` with its known direction, or the one `greater_is_better` gives (which wins
    /// over the known one, as in the HF Trainer).
    pub fn new(name: &str, greater_is_better: Option<bool>) -> Result<Self, UnknownDirection> {
        let direction = greater_is_better
            .map(Direction::from_greater_is_better)
            .or_else(|| Direction::of(name))
            .ok_or_else(|| UnknownDirection(name.to_string()))?;
        Ok(Self {
            name: name.to_string(),
            direction,
        })
    }

    pub fn improves(&self, value: f64, best: Option<f64>) -> bool {
        self.direction.improves(value, best)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_go_down_and_agreement_goes_up() {
        for name in ["loss", "mse", "perplexity", "sts/mse", "bits_per_byte"] {
            assert_eq!(Direction::of(name), Some(Direction::Down), "{name}");
        }
        for name in ["accuracy", "macro_f1", "mcc", "pearson", "sts/spearman"] {
            assert_eq!(Direction::of(name), Some(Direction::Up), "{name}");
        }
        assert_eq!(Direction::of("lossy_thing"), None);
    }

    #[test]
    fn a_smaller_mse_improves_and_a_larger_pearson_does() {
        let mse = Metric::new("mse", None).unwrap();
        assert!(mse.improves(1.39, Some(5.0)));
        assert!(!mse.improves(5.0, Some(1.39)));
        let pearson = Metric::new("pearson", None).unwrap();
        assert!(pearson.improves(0.9, Some(0.8)));
        assert!(!pearson.improves(0.8, Some(0.9)));
        assert!(pearson.improves(0.1, None));
        assert!(!pearson.improves(f64::NAN, None));
    }

    #[test]
    fn greater_is_better_overrides_and_unknown_names_are_refused() {
        let m = Metric::new("mse", Some(true)).unwrap();
        assert_eq!(m.direction, Direction::Up);
        let e = Metric::new("wer_ish", None).unwrap_err();
        assert!(e.to_string().contains("greater_is_better"), "{e}");
        assert_eq!(
            Metric::new("wer_ish", Some(false)).unwrap().direction,
            Direction::Down
        );
    }
}
