//! Learning-rate schedules, as functions of the step (0-based) and the run's length.

use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};

/// The shape of the learning rate over a run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Schedule {
    Constant,
    /// Linear warmup from 0 to the peak over `warmup_steps` steps, then cosine decay to
    /// `min_lr` at `decay_steps` (the run's length when absent), flat after.
    Cosine {
        warmup_steps: u64,
        min_lr: f64,
        #[serde(default)]
        decay_steps: Option<u64>,
    },
    /// Linear warmup, then linear decay to `min_lr`.
    Linear {
        warmup_steps: u64,
        min_lr: f64,
        #[serde(default)]
        decay_steps: Option<u64>,
    },
    /// Warmup-stable-decay: warmup, the peak held, then linear decay to `min_lr` over the
    /// last `decay_fraction` of the run.
    Wsd {
        warmup_steps: u64,
        decay_fraction: f64,
        min_lr: f64,
    },
}

impl Schedule {
    /// Refuses a floor below 0 or a decay share outside [0, 1], naming the key.
    pub fn check(&self) -> Result<()> {
        let (min_lr, share) = match *self {
            Self::Constant => return Ok(()),
            Self::Cosine { min_lr, .. } | Self::Linear { min_lr, .. } => (min_lr, 0.0),
            Self::Wsd {
                min_lr,
                decay_fraction,
                ..
            } => (min_lr, decay_fraction),
        };
        if !(min_lr.is_finite() && min_lr >= 0.0) {
            return Err(TrainError::Config(format!(
                "schedule.min_lr {min_lr}: must be a finite number ≥ 0"
            )));
        }
        if !(0.0..=1.0).contains(&share) {
            return Err(TrainError::Config(format!(
                "schedule.decay_fraction {share}: must be within [0, 1]"
            )));
        }
        Ok(())
    }

    /// The learning rate at `step` of a `total`-step run peaking at `peak`.
    pub fn lr(&self, peak: f64, step: u64, total: u64) -> f64 {
        let warm = |warmup: u64| {
            (warmup > 0 && step < warmup).then(|| peak * (step + 1) as f64 / (warmup + 1) as f64)
        };
        match *self {
            Self::Constant => peak,
            Self::Cosine {
                warmup_steps,
                min_lr,
                decay_steps,
            } => warm(warmup_steps).unwrap_or_else(|| {
                let t = progress(step, warmup_steps, decay_steps.unwrap_or(total));
                min_lr + 0.5 * (1.0 + (std::f64::consts::PI * t).cos()) * (peak - min_lr)
            }),
            Self::Linear {
                warmup_steps,
                min_lr,
                decay_steps,
            } => warm(warmup_steps).unwrap_or_else(|| {
                let t = progress(step, warmup_steps, decay_steps.unwrap_or(total));
                peak + t * (min_lr - peak)
            }),
            Self::Wsd {
                warmup_steps,
                decay_fraction,
                min_lr,
            } => warm(warmup_steps).unwrap_or_else(|| {
                let decay = (total as f64 * decay_fraction).round() as u64;
                let start = total.saturating_sub(decay);
                if step < start || decay == 0 {
                    peak
                } else {
                    let t = ((step - start) as f64 / decay as f64).min(1.0);
                    peak + t * (min_lr - peak)
                }
            }),
        }
    }
}

/// Share of the decay phase done at `step`, in [0, 1].
fn progress(step: u64, warmup: u64, end: u64) -> f64 {
    if end <= warmup {
        return 1.0;
    }
    ((step.saturating_sub(warmup)) as f64 / (end - warmup) as f64).min(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosine_warms_up_then_decays_to_the_floor() {
        // nanoGPT's shape: warmup 100, cosine to 1e-4 at 2000.
        let s = Schedule::Cosine {
            warmup_steps: 100,
            min_lr: 1e-4,
            decay_steps: None,
        };
        assert!((s.lr(1e-3, 0, 2000) - 1e-3 / 101.0).abs() < 1e-12);
        assert!((s.lr(1e-3, 100, 2000) - 1e-3).abs() < 1e-12);
        assert!((s.lr(1e-3, 1050, 2000) - 5.5e-4).abs() < 1e-12, "half way");
        assert!((s.lr(1e-3, 2000, 2000) - 1e-4).abs() < 1e-12);
        assert!((s.lr(1e-3, 5000, 2000) - 1e-4).abs() < 1e-12);
    }

    #[test]
    fn linear_and_wsd() {
        let l = Schedule::Linear {
            warmup_steps: 0,
            min_lr: 0.0,
            decay_steps: None,
        };
        assert!((l.lr(1.0, 25, 100) - 0.75).abs() < 1e-12);
        let w = Schedule::Wsd {
            warmup_steps: 10,
            decay_fraction: 0.2,
            min_lr: 0.0,
        };
        assert!((w.lr(1.0, 50, 100) - 1.0).abs() < 1e-12);
        assert!((w.lr(1.0, 90, 100) - 0.5).abs() < 1e-12);
        assert!(w.lr(1.0, 5, 100) < 1.0);
        assert_eq!(Schedule::Constant.lr(0.3, 7, 10), 0.3);
    }
}
