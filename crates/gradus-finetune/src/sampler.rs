//! Which task (or tasks) each training micro-batch comes from.
//!
//! Every draw is a function of the seed and the draw's number alone, so the sampler's whole
//! state is one counter: a checkpoint stores it and resume continues the same sequence.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::error::{FinetuneError, Result};

/// How tasks share the training steps.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Strategy {
    /// Every micro-batch holds one batch of every task; the loss is the weighted sum of
    /// the task losses.
    #[default]
    Joint,
    /// One task per micro-batch in turn: `phase` consecutive micro-batches of each.
    Alternating {
        #[serde(default = "one")]
        phase: u64,
    },
    /// One task per micro-batch, drawn with probability proportional to its number of
    /// training examples (capped at `cap`).
    Proportional { cap: Option<usize> },
    /// One task per micro-batch, all equally likely.
    Uniform,
    /// One task per micro-batch with probability ∝ n^(1/T) (n its examples, capped at
    /// `cap`): T = 1 is proportional, large T uniform. With `anneal_to`, 1/T moves
    /// linearly from `1/temperature` at the first step to `1/anneal_to` at the last.
    Temperature {
        temperature: f64,
        cap: Option<usize>,
        anneal_to: Option<f64>,
    },
    /// One task per micro-batch with the given probabilities, in task order.
    Probabilities { probabilities: Vec<f64> },
}

fn one() -> u64 {
    1
}

/// `x > 0`, false for NaN.
pub(crate) fn positive(x: f64) -> bool {
    x > 0.0
}

/// `x >= 0`, false for NaN.
pub(crate) fn non_negative(x: f64) -> bool {
    x >= 0.0
}

impl Strategy {
    /// Checks the settings against the number of tasks.
    pub fn check(&self, tasks: usize) -> Result<()> {
        let bad = |m: String| Err(FinetuneError::Config(format!("strategy: {m}")));
        match self {
            Self::Alternating { phase: 0 } => bad("phase must be at least 1".into()),
            Self::Temperature {
                temperature,
                anneal_to,
                ..
            } if !positive(*temperature) || anneal_to.is_some_and(|t| !positive(t)) => {
                bad("temperatures must be positive".into())
            }
            Self::Probabilities { probabilities } if probabilities.len() != tasks => bad(format!(
                "{} probabilities for {tasks} tasks",
                probabilities.len()
            )),
            Self::Probabilities { probabilities }
                if probabilities.iter().any(|p| !non_negative(*p))
                    || !positive(probabilities.iter().sum::<f64>()) =>
            {
                bad("probabilities must be non-negative with a positive sum".into())
            }
            _ => Ok(()),
        }
    }
}

/// Draws the tasks of each micro-batch.
#[derive(Debug, Clone)]
pub struct TaskSampler {
    strategy: Strategy,
    /// Training examples per task.
    sizes: Vec<usize>,
    seed: u64,
    /// Draws in the whole run (for annealing).
    horizon: u64,
    /// Draws made so far: the sampler's state.
    pub draws: u64,
}

impl TaskSampler {
    pub fn new(strategy: Strategy, sizes: Vec<usize>, seed: u64, horizon: u64) -> Result<Self> {
        strategy.check(sizes.len())?;
        if sizes.is_empty() {
            return Err(FinetuneError::Config("no tasks".into()));
        }
        Ok(Self {
            strategy,
            sizes,
            seed,
            horizon: horizon.max(1),
            draws: 0,
        })
    }

    /// The probability of each task at draw `draw` (for the sampled strategies; the
    /// long-run shares of the others).
    pub fn probabilities(&self, draw: u64) -> Vec<f64> {
        let n = self.sizes.len();
        let weights: Vec<f64> = match &self.strategy {
            Strategy::Alternating { .. } | Strategy::Uniform | Strategy::Joint => vec![1.0; n],
            Strategy::Proportional { cap } => self.capped(*cap).collect(),
            Strategy::Temperature {
                temperature,
                cap,
                anneal_to,
            } => {
                let start = 1.0 / temperature;
                let exponent = anneal_to.map_or(start, |end| {
                    let t = draw as f64 / (self.horizon - 1).max(1) as f64;
                    start + (1.0 / end - start) * t.min(1.0)
                });
                self.capped(*cap).map(|s| s.powf(exponent)).collect()
            }
            Strategy::Probabilities { probabilities } => probabilities.clone(),
        };
        let total: f64 = weights.iter().sum();
        weights.iter().map(|w| w / total).collect()
    }

    fn capped(&self, cap: Option<usize>) -> impl Iterator<Item = f64> + '_ {
        self.sizes
            .iter()
            .map(move |&s| s.min(cap.unwrap_or(usize::MAX)) as f64)
    }

    /// The tasks of the next micro-batch: all of them (joint) or one.
    pub fn next_tasks(&mut self) -> Vec<usize> {
        let draw = self.draws;
        self.draws += 1;
        match &self.strategy {
            Strategy::Joint => (0..self.sizes.len()).collect(),
            Strategy::Alternating { phase } => {
                vec![((draw / phase) % self.sizes.len() as u64) as usize]
            }
            _ => vec![self.sample(draw)],
        }
    }

    fn sample(&self, draw: u64) -> usize {
        let mut rng =
            ChaCha8Rng::seed_from_u64(self.seed ^ draw.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let u: f64 = rng.random();
        let probs = self.probabilities(draw);
        let mut acc = 0.0;
        for (i, p) in probs.iter().enumerate() {
            acc += p;
            if u < acc {
                return i;
            }
        }
        // Rounding left `u` past the last boundary: the last task with any mass.
        probs.iter().rposition(|&p| p > 0.0).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frequencies(strategy: Strategy, sizes: &[usize], draws: u64) -> Vec<f64> {
        let mut s = TaskSampler::new(strategy, sizes.to_vec(), 11, draws).unwrap();
        let mut counts = vec![0u64; sizes.len()];
        for _ in 0..draws {
            for t in s.next_tasks() {
                counts[t] += 1;
            }
        }
        counts.iter().map(|&c| c as f64 / draws as f64).collect()
    }

    fn assert_close(got: &[f64], want: &[f64], tol: f64) {
        for (g, w) in got.iter().zip(want) {
            assert!(
                (g - w).abs() < tol,
                "frequencies {got:?}, expected {want:?}"
            );
        }
    }

    const SIZES: [usize; 3] = [6000, 3000, 1000];

    #[test]
    fn proportional_follows_dataset_sizes_and_the_cap() {
        let f = frequencies(Strategy::Proportional { cap: None }, &SIZES, 40_000);
        assert_close(&f, &[0.6, 0.3, 0.1], 0.01);
        let f = frequencies(Strategy::Proportional { cap: Some(3000) }, &SIZES, 40_000);
        assert_close(&f, &[3.0 / 7.0, 3.0 / 7.0, 1.0 / 7.0], 0.01);
    }

    #[test]
    fn temperature_flattens_by_the_root_of_the_sizes() {
        let f = frequencies(
            Strategy::Temperature {
                temperature: 2.0,
                cap: None,
                anneal_to: None,
            },
            &SIZES,
            40_000,
        );
        let roots: Vec<f64> = SIZES.iter().map(|&s| (s as f64).sqrt()).collect();
        let total: f64 = roots.iter().sum();
        let want: Vec<f64> = roots.iter().map(|r| r / total).collect();
        assert_close(&f, &want, 0.01);
        assert!(
            f[0] < 0.6 && f[2] > 0.1,
            "T = 2 is flatter than proportional"
        );
    }

    #[test]
    fn uniform_and_given_probabilities() {
        let f = frequencies(Strategy::Uniform, &SIZES, 30_000);
        assert_close(&f, &[1.0 / 3.0; 3], 0.01);
        let f = frequencies(
            Strategy::Probabilities {
                probabilities: vec![0.5, 0.0, 1.5],
            },
            &SIZES,
            30_000,
        );
        assert_close(&f, &[0.25, 0.0, 0.75], 0.01);
    }

    #[test]
    fn annealing_moves_from_the_start_to_the_end_temperature() {
        let s = TaskSampler::new(
            Strategy::Temperature {
                temperature: 1.0,
                cap: None,
                anneal_to: Some(f64::INFINITY),
            },
            SIZES.to_vec(),
            1,
            101,
        )
        .unwrap();
        assert_close(&s.probabilities(0), &[0.6, 0.3, 0.1], 1e-12);
        assert_close(&s.probabilities(100), &[1.0 / 3.0; 3], 1e-12);
        let mid = s.probabilities(50);
        assert!(mid[0] < 0.6 && mid[0] > 1.0 / 3.0, "{mid:?}");
    }

    #[test]
    fn alternating_is_round_robin_in_phases() {
        let order = |phase| {
            let mut s =
                TaskSampler::new(Strategy::Alternating { phase }, vec![5, 5, 5], 0, 9).unwrap();
            (0..9).flat_map(|_| s.next_tasks()).collect::<Vec<_>>()
        };
        assert_eq!(order(1), [0, 1, 2, 0, 1, 2, 0, 1, 2]);
        assert_eq!(order(2), [0, 0, 1, 1, 2, 2, 0, 0, 1]);
    }

    #[test]
    fn joint_takes_every_task_and_draws_depend_only_on_the_counter() {
        let mut joint = TaskSampler::new(Strategy::Joint, vec![3, 4], 0, 1).unwrap();
        assert_eq!(joint.next_tasks(), [0, 1]);
        let mut a = TaskSampler::new(Strategy::Uniform, vec![1; 4], 9, 100).unwrap();
        let all: Vec<_> = (0..50).flat_map(|_| a.next_tasks()).collect();
        let mut b = TaskSampler::new(Strategy::Uniform, vec![1; 4], 9, 100).unwrap();
        b.draws = 20;
        let rest: Vec<_> = (0..30).flat_map(|_| b.next_tasks()).collect();
        assert_eq!(all[20..], rest[..]);
    }

    #[test]
    fn bad_settings_are_refused() {
        for s in [
            Strategy::Alternating { phase: 0 },
            Strategy::Temperature {
                temperature: 0.0,
                cap: None,
                anneal_to: None,
            },
            Strategy::Probabilities {
                probabilities: vec![1.0],
            },
            Strategy::Probabilities {
                probabilities: vec![0.0, 0.0],
            },
        ] {
            assert!(
                TaskSampler::new(s.clone(), vec![1, 1], 0, 1).is_err(),
                "{s:?}"
            );
        }
    }
}
