//! The step-time distribution of a run: the median says how fast training goes, the
//! spread whether the machine was steady while it did (a wide one means other work,
//! evaluations or checkpoints shared the steps' time).

use serde::Serialize;

/// Step times of the steps this process ran (a resumed run counts its own steps).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct StepTimes {
    pub steps: usize,
    pub median_seconds: f64,
    /// The 10th and 90th percentile step times.
    pub p10_seconds: f64,
    pub p90_seconds: f64,
    /// Tokens of the median step over its time: the figure to compare between runs.
    pub median_tokens_per_second: f64,
}

impl StepTimes {
    /// From each step's seconds and tokens (examples for task training).
    pub fn new(steps: &[(f64, u64)]) -> Option<Self> {
        if steps.is_empty() {
            return None;
        }
        let mut by_time = steps.to_vec();
        by_time.sort_by(|a, b| a.0.total_cmp(&b.0));
        let at = |q: f64| by_time[((by_time.len() - 1) as f64 * q).round() as usize];
        let (median, median_tokens) = at(0.5);
        Some(Self {
            steps: steps.len(),
            median_seconds: median,
            p10_seconds: at(0.1).0,
            p90_seconds: at(0.9).0,
            median_tokens_per_second: median_tokens as f64 / median,
        })
    }

    /// `median 21,300 tokens/s (step 36.0 ms, p10–p90 35.1–38.2 ms)`.
    pub fn describe(&self, unit: &str) -> String {
        format!(
            "median {:.0} {unit}/s (step {:.1} ms, p10-p90 {:.1}-{:.1} ms)",
            self.median_tokens_per_second,
            self.median_seconds * 1e3,
            self.p10_seconds * 1e3,
            self.p90_seconds * 1e3
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_spread_ignore_slow_outliers() {
        // Eight steady steps of 10 ms and two of 1 s (the machine busy with other work).
        let mut steps = vec![(0.010, 100u64); 8];
        steps.extend([(1.0, 100), (1.0, 100)]);
        let t = StepTimes::new(&steps).unwrap();
        assert_eq!(t.steps, 10);
        assert_eq!(t.median_seconds, 0.010);
        assert_eq!(t.p10_seconds, 0.010);
        assert_eq!(t.p90_seconds, 1.0);
        assert!((t.median_tokens_per_second - 10_000.0).abs() < 1e-6);
        assert!(
            t.describe("tokens")
                .starts_with("median 10000 tokens/s (step 10.0 ms")
        );
        assert_eq!(StepTimes::new(&[]), None);
    }
}
