//! Best-checkpoint selection, early stopping and checkpoint pruning, driven by an
//! objective whose evaluations follow a script.

#![allow(clippy::unwrap_used)] // test helpers fail loudly by design

use std::collections::BTreeMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use gradus_model::{Ctx, ParamKind, Params};
use gradus_train::{Objective, TrainConfig, Trainer};

/// One weight pulled towards 3; evaluation `k` reports `accuracy = script[k]` and
/// `loss = 1 - accuracy`, or each named script's `k`-th value.
struct Scripted {
    params: Params,
    w: Tensor,
    scripts: Vec<(String, Vec<f64>)>,
    evals: usize,
}

impl Scripted {
    fn new(script: &[f64]) -> Self {
        let loss = script.iter().map(|a| 1.0 - a).collect::<Vec<_>>();
        Self::with(&[("accuracy", script), ("loss", &loss)])
    }

    fn with(scripts: &[(&str, &[f64])]) -> Self {
        let mut params = Params::new(Device::Cpu, 0);
        let w = params.constant("w", &[1], 0.0, ParamKind::Weight).unwrap();
        Self {
            params,
            w,
            scripts: scripts
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_vec()))
                .collect(),
            evals: 0,
        }
    }
}

impl Objective for Scripted {
    type Batch = ();

    fn params(&self) -> &Params {
        &self.params
    }
    fn next_batch(&mut self) -> gradus_train::Result<()> {
        Ok(())
    }
    fn weight(&self, _: &()) -> usize {
        1
    }
    fn loss_sum(&self, _: &(), _: &mut Ctx<'_>) -> gradus_train::Result<Tensor> {
        Ok((&self.w - 3.0)?.sqr()?.sum_all()?)
    }
    fn evaluate(&mut self) -> gradus_train::Result<BTreeMap<String, f64>> {
        let k = self.evals;
        self.evals += 1;
        Ok(self
            .scripts
            .iter()
            .map(|(name, v)| (name.clone(), v[k.min(v.len() - 1)]))
            .collect())
    }
    fn data_state(&self) -> gradus_train::Result<serde_json::Value> {
        Ok(serde_json::Value::Null)
    }
    fn restore_data(&mut self, _: serde_json::Value) -> gradus_train::Result<()> {
        Ok(())
    }
    fn save_model(&self, dir: &Path) -> gradus_train::Result<()> {
        Ok(self.params.save(&dir.join("model.safetensors"))?)
    }
    fn flops_per_unit(&self) -> f64 {
        1.0
    }
}

fn weight_in(path: &Path) -> f32 {
    let t = candle_core::safetensors::load(path, &Device::Cpu).unwrap();
    t["w"].to_vec1::<f32>().unwrap()[0]
}

#[test]
fn early_stopping_keeps_and_restores_the_best_evaluation() {
    let tmp = tempfile::tempdir().unwrap();
    let config = TrainConfig {
        steps: 100,
        lr: 0.1,
        eval_interval: 2,
        keep_last: 2,
        early_stopping_patience: Some(2),
        metric_for_best: "accuracy".into(),
        load_best_at_end: true,
        ..TrainConfig::default()
    };
    let mut obj = Scripted::new(&[0.5, 0.7, 0.6, 0.65, 0.9]);
    let report = Trainer::new(config, tmp.path())
        .run(&mut obj, &mut |_| {})
        .unwrap();
    // Best at the 2nd evaluation (step 4); two without improvement stop the run at step 8.
    assert!(report.early_stopped);
    assert_eq!(
        (report.steps, report.best_step, report.best_value),
        (8, Some(4), Some(0.7))
    );
    let ckpts = tmp.path().join("checkpoints");
    let mut kept: Vec<String> = std::fs::read_dir(&ckpts)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    kept.sort();
    // Checkpoints come at improvements and at the stop; the newest two are kept, beside
    // the log positions of the run's start.
    assert_eq!(
        kept,
        ["best", "start.json", "step-00000004", "step-00000008"]
    );
    let best = weight_in(&ckpts.join("best/model.safetensors"));
    assert_eq!(weight_in(&tmp.path().join("model/model.safetensors")), best);
    assert_ne!(
        weight_in(&ckpts.join("step-00000008/model.safetensors")),
        best
    );
    let flags: Vec<bool> = gradus_testkit::jsonl_rows(&tmp.path().join("eval.jsonl"))
        .iter()
        .map(|v| v["best"].as_bool().unwrap())
        .collect();
    assert_eq!(flags, [true, true, false, false]);
}

/// Why a two-step run in `dir` selected on `metric` is refused.
fn refused_on(metric: &str, dir: &Path) -> String {
    let config = TrainConfig {
        steps: 2,
        eval_interval: 1,
        metric_for_best: metric.into(),
        ..TrainConfig::default()
    };
    Trainer::new(config, dir)
        .run(&mut Scripted::new(&[0.5]), &mut |_| {})
        .unwrap_err()
        .to_string()
}

#[test]
fn an_unknown_selection_metric_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let err = refused_on("f1", tmp.path());
    assert!(err.contains("`f1`") && err.contains("accuracy"), "{err}");
}

/// A regression run's evaluations: MSE is lowest at the 2nd, Pearson highest at the 4th.
const MSE: &[f64] = &[3.0, 1.39, 5.0, 2.0];
const PEARSON: &[f64] = &[0.2, 0.5, 0.1, 0.9];

/// The best step, best value and kept weights of a 4-evaluation run selected on `metric`.
fn select_on(metric: &str, greater_is_better: Option<bool>) -> (Option<u64>, Option<f64>, f32) {
    let tmp = tempfile::tempdir().unwrap();
    let config = TrainConfig {
        steps: 8,
        lr: 0.1,
        eval_interval: 2,
        metric_for_best: metric.into(),
        greater_is_better,
        load_best_at_end: true,
        ..TrainConfig::default()
    };
    let mut obj = Scripted::with(&[("mse", MSE), ("pearson", PEARSON), ("loss", MSE)]);
    let report = Trainer::new(config, tmp.path())
        .run(&mut obj, &mut |_| {})
        .unwrap();
    let kept = weight_in(&tmp.path().join("model/model.safetensors"));
    assert_eq!(
        kept,
        weight_in(&tmp.path().join("checkpoints/best/model.safetensors"))
    );
    (report.best_step, report.best_value, kept)
}

#[test]
fn a_regression_task_selected_on_mse_keeps_its_lowest_mse_and_on_pearson_its_highest() {
    let (mse_step, mse_best, mse_kept) = select_on("mse", None);
    assert_eq!((mse_step, mse_best), (Some(4), Some(1.39)));
    let (pearson_step, pearson_best, pearson_kept) = select_on("pearson", None);
    assert_eq!((pearson_step, pearson_best), (Some(8), Some(0.9)));
    // Different evaluations won, so different weights were kept.
    assert_ne!(mse_kept, pearson_kept);
    // `greater_is_better` overrides a metric's own direction.
    let (step, best, _) = select_on("mse", Some(true));
    assert_eq!((step, best), (Some(6), Some(5.0)));
}

#[test]
fn a_metric_of_unknown_direction_needs_greater_is_better() {
    let tmp = tempfile::tempdir().unwrap();
    let err = refused_on("bleu_ish", tmp.path());
    assert!(
        err.contains("bleu_ish") && err.contains("greater_is_better"),
        "{err}"
    );
    assert!(
        !tmp.path().join("train.jsonl").exists(),
        "refused before training"
    );
}

/// Settings no run can train with are refused by name before anything runs; the
/// defaults and the recipes' own settings pass.
#[test]
fn a_config_no_run_can_train_with_is_refused_by_name() {
    use gradus_train::optim::OptimizerConfig;
    use gradus_train::schedule::Schedule;
    assert!(TrainConfig::default().check().is_ok());
    let wsd = |decay_fraction| Schedule::Wsd {
        warmup_steps: 10,
        decay_fraction,
        min_lr: 0.0,
    };
    let adamw = |beta2| OptimizerConfig::Adamw {
        beta1: 0.9,
        beta2,
        eps: 1e-8,
        weight_decay: 0.1,
        no_decay: vec![],
    };
    let ok = TrainConfig {
        schedule: wsd(0.2),
        optimizer: adamw(0.99),
        ..TrainConfig::default()
    };
    assert!(ok.check().is_ok());
    for (config, named) in [
        (
            TrainConfig {
                steps: 0,
                ..ok.clone()
            },
            "steps",
        ),
        (
            TrainConfig {
                accumulation: 0,
                ..ok.clone()
            },
            "accumulation",
        ),
        (
            TrainConfig {
                early_stopping_patience: Some(0),
                ..ok.clone()
            },
            "early_stopping_patience 0",
        ),
        (
            TrainConfig {
                lr: -1.0,
                ..ok.clone()
            },
            "lr -1",
        ),
        (
            TrainConfig {
                lr: f64::NAN,
                ..ok.clone()
            },
            "lr NaN",
        ),
        (
            TrainConfig {
                grad_clip: -0.5,
                ..ok.clone()
            },
            "grad_clip",
        ),
        (
            TrainConfig {
                optimizer: adamw(1.0),
                ..ok.clone()
            },
            "optimizer.beta2",
        ),
        (
            TrainConfig {
                schedule: wsd(1.5),
                ..ok.clone()
            },
            "decay_fraction",
        ),
    ] {
        let err = config.check().unwrap_err().to_string();
        assert!(err.contains(named), "{named}: {err}");
    }
}
