//! The training loop.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use candle_core::Tensor;
use gradus_metrics::Metric;
use gradus_model::{Ctx, Params};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::checkpoint::{Checkpoints, RankState, TrainerState, read_json, write_json};
use crate::dist::{Collective, RankShards, rank_state_path};
use crate::error::{Result, TrainError};
use crate::logs::{Flush, RunLogs, SideLog};
use crate::optim::{Optimizer, OptimizerConfig};
use crate::schedule::Schedule;

/// What a training stage brings to the loop: its parameters, data and loss.
pub trait Objective {
    type Batch;

    fn params(&self) -> &Params;
    /// The next training micro-batch; advances the data cursor.
    fn next_batch(&mut self) -> Result<Self::Batch>;
    /// What the batch's loss is a sum over (tokens, or examples).
    fn weight(&self, batch: &Self::Batch) -> usize;
    /// The loss summed over the batch's [`weight`](Objective::weight) units.
    fn loss_sum(&self, batch: &Self::Batch, ctx: &mut Ctx<'_>) -> Result<Tensor>;
    /// Metrics on the validation data; must include `loss`.
    fn evaluate(&mut self) -> Result<BTreeMap<String, f64>>;
    /// The data cursor, for checkpoints.
    fn data_state(&self) -> Result<serde_json::Value>;
    fn restore_data(&mut self, state: serde_json::Value) -> Result<()>;
    /// Writes `model.safetensors` and `config.json` into `dir`.
    fn save_model(&self, dir: &Path) -> Result<()>;
    /// Forward + backward FLOPs per unit of weight (for the FLOP/s estimate).
    fn flops_per_unit(&self) -> f64;
    /// Each parameter's learning rate as a multiple of the schedule's (per-group rates,
    /// layer-wise decay); `None` freezes it.
    fn lr_scale(&self, _name: &str) -> Option<f64> {
        Some(1.0)
    }
    /// Extra figures of the step just taken (per-task losses in multi-task training),
    /// written into its `train.jsonl` line.
    fn step_metrics(&mut self) -> BTreeMap<String, f64> {
        BTreeMap::new()
    }

    /// For data mixed from several datasets: what was drawn from each so far.
    fn data_seen(&self) -> BTreeMap<String, gradus_record::SourceSeen> {
        BTreeMap::new()
    }
}

/// A data cursor as the JSON a checkpoint stores (for [`Objective::data_state`]).
pub fn cursor_to_json(cursor: &impl Serialize) -> Result<serde_json::Value> {
    serde_json::to_value(cursor).map_err(|e| TrainError::Data(e.to_string()))
}

/// A data cursor back from a checkpoint (for [`Objective::restore_data`]).
pub fn cursor_from_json<T: for<'de> Deserialize<'de>>(state: serde_json::Value) -> Result<T> {
    serde_json::from_value(state).map_err(|e| TrainError::Data(format!("data cursor: {e}")))
}

/// The loop's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// Optimiser updates in the run.
    pub steps: u64,
    /// Peak learning rate.
    pub lr: f64,
    pub schedule: Schedule,
    pub optimizer: OptimizerConfig,
    /// Global gradient-norm clip; 0 switches it off.
    pub grad_clip: f64,
    /// Micro-batches per update.
    pub accumulation: usize,
    /// Evaluate every N steps (and at the end); 0: only at the end.
    pub eval_interval: u64,
    /// Also evaluate the starting weights, as step 0 of `eval.jsonl` (where a continued
    /// run starts from); it does not take part in choosing the best checkpoint.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub eval_at_start: bool,
    /// Checkpoint every N steps (and at the end); 0: only at the end.
    pub checkpoint_interval: u64,
    /// Step checkpoints kept (the best one is kept apart).
    pub keep_last: usize,
    /// Stop after this many evaluations without a better selection metric.
    pub early_stopping_patience: Option<u64>,
    /// The evaluation metric that picks the best checkpoint and drives early stopping.
    pub metric_for_best: String,
    /// Whether a larger `metric_for_best` is better; by default the metric's own
    /// direction ([`Metric`]): up for accuracy or Pearson, down for loss or MSE.
    pub greater_is_better: Option<bool>,
    /// End with the best checkpoint's weights in `model/` instead of the last step's.
    pub load_best_at_end: bool,
    /// Seeds dropout (the data and initialisation have their own seeds).
    pub seed: u64,
}

impl TrainConfig {
    /// Refuses settings no run can train with, so that a stage can say so before it
    /// touches its output folder: no steps, a negative or non-finite learning rate,
    /// optimiser or schedule constants out of their range.
    pub fn check(&self) -> Result<()> {
        if self.accumulation == 0 || self.steps == 0 {
            return Err(TrainError::Config(
                "steps and accumulation must be positive".into(),
            ));
        }
        let non_negative = |name: &str, v: f64| {
            (v.is_finite() && v >= 0.0).then_some(()).ok_or_else(|| {
                TrainError::Config(format!("{name} {v}: must be a finite number ≥ 0"))
            })
        };
        non_negative("lr", self.lr)?;
        non_negative("grad_clip", self.grad_clip)?;
        if self.early_stopping_patience == Some(0) {
            // As HF's callback: stop after this many evaluations without improvement.
            return Err(TrainError::Config(
                "early_stopping_patience 0: at least 1 evaluation without improvement".into(),
            ));
        }
        self.optimizer.check()?;
        self.schedule.check()
    }

    /// The metric that picks the best checkpoint and drives early stopping, with the
    /// direction it improves in; a name of unknown direction needs `greater_is_better`.
    pub fn selection(&self) -> Result<Metric> {
        Metric::new(&self.metric_for_best, self.greater_is_better)
            .map_err(|e| TrainError::Config(e.to_string()))
    }
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            steps: 1000,
            lr: 1e-3,
            schedule: Schedule::Constant,
            optimizer: OptimizerConfig::default(),
            grad_clip: 1.0,
            accumulation: 1,
            eval_interval: 0,
            eval_at_start: false,
            checkpoint_interval: 0,
            keep_last: 2,
            early_stopping_patience: None,
            metric_for_best: "loss".into(),
            greater_is_better: None,
            load_best_at_end: false,
            seed: 42,
        }
    }
}

/// One finished optimiser step.
#[derive(Debug, Clone, Serialize)]
pub struct StepOutput {
    pub step: u64,
    pub loss: f64,
    pub lr: f64,
    pub grad_norm: f64,
    pub tokens: u64,
    pub tokens_per_second: f64,
    pub flops_per_second: f64,
    pub peak_rss_mib: f64,
    /// The objective's own figures ([`Objective::step_metrics`]).
    #[serde(flatten)]
    pub details: BTreeMap<String, f64>,
    /// Validation metrics when this step evaluated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eval: Option<BTreeMap<String, f64>>,
}

/// How a run ended.
#[derive(Debug, Clone, Serialize)]
pub struct TrainReport {
    pub steps: u64,
    pub resumed_from: Option<u64>,
    pub losses: Vec<f64>,
    /// The evaluation of the starting weights (`eval_at_start`), when this process ran it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_eval: Option<BTreeMap<String, f64>>,
    pub last_eval: Option<BTreeMap<String, f64>>,
    /// The best value of `metric_for_best` and the step that reached it.
    pub best_value: Option<f64>,
    pub best_step: Option<u64>,
    pub early_stopped: bool,
    pub seconds: f64,
    pub tokens_per_second: f64,
    /// The median step and the spread of step times; `None` when no step ran.
    pub step_times: Option<crate::StepTimes>,
    /// What the run drew from each of its datasets ([`Objective::data_seen`]).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub data_seen: BTreeMap<String, gradus_record::SourceSeen>,
}

/// Runs an [`Objective`] under a [`TrainConfig`], writing into `out`:
/// `checkpoints/`, `model/` (the final model) and `train.jsonl` (one line per step).
#[derive(Debug)]
pub struct Trainer {
    pub config: TrainConfig,
    pub out: PathBuf,
    /// Stop (as if killed) after this step; for tests of resume.
    pub stop_after: Option<u64>,
    /// Data-parallel training: this process is one rank of several ([`crate::dist`]).
    pub collective: Option<Arc<dyn Collective>>,
    /// Logs written beside the trainer's own, cut back with them on resume.
    pub side_logs: Vec<SideLog>,
}

impl Trainer {
    pub fn new(config: TrainConfig, out: &Path) -> Self {
        Self {
            config,
            out: out.to_path_buf(),
            stop_after: None,
            collective: None,
            side_logs: Vec::new(),
        }
    }

    /// Keeps `path` (written by someone else, flushed by `flush`) in step with the
    /// checkpoints, as `train.jsonl` is.
    pub fn with_side_log(mut self, name: &str, path: &Path, flush: Flush) -> Self {
        self.side_logs.push(SideLog {
            name: name.to_string(),
            path: path.to_path_buf(),
            flush,
        });
        self
    }

    /// Trains as one rank of several, summing gradients through `collective`.
    pub fn with_collective(mut self, collective: Arc<dyn Collective>) -> Self {
        self.collective = Some(collective);
        self
    }

    /// This process's rank (0 when alone).
    fn rank(&self) -> usize {
        self.collective.as_ref().map_or(0, |c| c.ranks().rank)
    }

    /// Trains, resuming from the newest checkpoint in `out/checkpoints` when there is one.
    pub fn run<O: Objective>(
        &self,
        obj: &mut O,
        on_step: &mut dyn FnMut(&StepOutput),
    ) -> Result<TrainReport> {
        let c = &self.config;
        c.check()?;
        let selection = c.selection()?;
        let ckpts = Checkpoints::new(&self.out.join("checkpoints"));
        let mut opt = Optimizer::with_scales(&c.optimizer, obj.params(), |n| obj.lr_scale(n))?;
        let rank = self.rank();
        let lead = rank == 0;
        let mut state = TrainerState {
            step: 0,
            // Each rank its own dropout: the same masks on different data add nothing.
            rng: ChaCha8Rng::seed_from_u64(c.seed + rank as u64),
            data: serde_json::Value::Null,
            best_value: None,
            best_step: None,
            evals_since_best: 0,
            tokens_seen: 0,
            ranks: Vec::new(),
            logs: Default::default(),
        };
        // Rank 0 moves an unreadable checkpoint aside; the others only pass over it.
        let resumed_from = ckpts.resume_point(lead)?;
        if let Some(step) = resumed_from {
            let dir = ckpts.step_dir(step);
            obj.params().restore(&dir.join("model.safetensors"))?;
            state = read_json(&dir.join("trainer.json"))?;
            opt.load(&dir.join("optimizer.safetensors"), state.step)?;
            if rank > 0 {
                let own = state.ranks.get(rank - 1).cloned().ok_or_else(|| {
                    TrainError::Config(format!(
                        "{} holds no state for rank {rank}: it was written by fewer ranks",
                        dir.display()
                    ))
                })?;
                (state.rng, state.data) = (own.rng, own.data);
            }
            obj.restore_data(state.data.clone())?;
            tracing::info!("resuming from {}", dir.display());
        }
        std::fs::create_dir_all(&self.out).map_err(|e| TrainError::file(&self.out, e))?;
        let mut early_stopped = c
            .early_stopping_patience
            .is_some_and(|p| state.evals_since_best >= p);
        let logs = RunLogs {
            own: vec![
                ("train.jsonl", self.out.join("train.jsonl")),
                ("eval.jsonl", self.out.join("eval.jsonl")),
            ],
            side: &self.side_logs,
        };
        // Rank 0 speaks for all ranks: the others would log the same steps.
        if lead {
            let finished = state.step >= c.steps || early_stopped;
            align_logs(&logs, &ckpts, resumed_from.map(|s| (s, &state)), finished)?;
        }
        let mut log = JsonLines::open(&self.out.join("train.jsonl"), lead)?;
        let mut eval_log = JsonLines::open(&self.out.join("eval.jsonl"), lead)?;
        // A rerun before the first checkpoint has cut the logs back to the start, so it
        // evaluates the start again, as an uninterrupted run did.
        let start_eval = if c.eval_at_start && resumed_from.is_none() {
            let eval = obj.evaluate()?;
            eval_log.write(&EvalLine {
                step: 0,
                metrics: &eval,
                best: false,
            })?;
            Some(eval)
        } else {
            None
        };
        let start = Instant::now();
        let start_tokens = state.tokens_seen;
        let (mut losses, mut last_eval) = (Vec::new(), None);
        let mut step_times = Vec::new();
        while state.step < c.steps && !early_stopped {
            let t0 = Instant::now();
            let lr = c.schedule.lr(c.lr, state.step, c.steps);
            let (loss, grad_norm, tokens) = self.step(obj, &mut opt, &mut state, lr)?;
            state.step += 1;
            state.tokens_seen += tokens;
            losses.push(loss);
            let secs = t0.elapsed().as_secs_f64();
            step_times.push((secs, tokens));
            let mut out = StepOutput {
                step: state.step,
                loss,
                lr,
                grad_norm,
                tokens,
                tokens_per_second: tokens as f64 / secs,
                flops_per_second: tokens as f64 * obj.flops_per_unit() / secs,
                peak_rss_mib: peak_rss_mib(),
                details: obj.step_metrics(),
                eval: None,
            };
            let last = state.step == c.steps;
            let mut improved = false;
            if last || (c.eval_interval > 0 && state.step.is_multiple_of(c.eval_interval)) {
                let eval = obj.evaluate()?;
                let value = eval.get(&c.metric_for_best).copied().ok_or_else(|| {
                    TrainError::Config(format!(
                        "metric_for_best `{}` is not among the evaluation's metrics {:?}",
                        c.metric_for_best,
                        eval.keys().collect::<Vec<_>>()
                    ))
                })?;
                improved = value.is_finite() && selection.improves(value, state.best_value);
                eval_log.write(&EvalLine {
                    step: state.step,
                    metrics: &eval,
                    best: improved,
                })?;
                if improved {
                    (state.best_value, state.best_step, state.evals_since_best) =
                        (Some(value), Some(state.step), 0);
                } else {
                    state.evals_since_best += 1;
                }
                early_stopped = c
                    .early_stopping_patience
                    .is_some_and(|p| state.evals_since_best >= p);
                out.eval = Some(eval.clone());
                last_eval = Some(eval);
            }
            metrics::gauge!("train_loss").set(loss);
            metrics::gauge!("lr").set(lr);
            metrics::gauge!("grad_norm").set(grad_norm);
            metrics::gauge!("tokens_per_second").set(out.tokens_per_second);
            // Logged before the checkpoint, so the checkpoint's log positions hold it.
            log.write(&out)?;
            let stop_now = self.stop_after == Some(state.step);
            if last
                || early_stopped
                || stop_now
                || improved
                || (c.checkpoint_interval > 0 && state.step.is_multiple_of(c.checkpoint_interval))
            {
                if lead {
                    state.logs = logs.positions()?;
                }
                self.checkpoint(obj, &opt, &mut state, &ckpts, improved)?;
            }
            on_step(&out);
            if early_stopped || stop_now {
                break;
            }
        }
        if lead && (state.step == c.steps || early_stopped) {
            let model_dir = self.out.join("model");
            std::fs::create_dir_all(&model_dir).map_err(|e| TrainError::file(&model_dir, e))?;
            let best = ckpts.best_dir().join("model.safetensors");
            if c.load_best_at_end && best.is_file() {
                obj.params().restore(&best)?;
            }
            obj.save_model(&model_dir)?;
        }
        let seconds = start.elapsed().as_secs_f64();
        Ok(TrainReport {
            steps: state.step,
            resumed_from,
            losses,
            start_eval,
            last_eval,
            best_value: state.best_value,
            best_step: state.best_step,
            early_stopped,
            seconds,
            tokens_per_second: (state.tokens_seen - start_tokens) as f64 / seconds,
            step_times: crate::StepTimes::new(&step_times),
            data_seen: obj.data_seen(),
        })
    }

    /// One optimiser update: forward and backward over the micro-batches (the loss of
    /// each divided by the step's total weight), clip, check, update.
    fn step<O: Objective>(
        &self,
        obj: &mut O,
        opt: &mut Optimizer,
        state: &mut TrainerState,
        lr: f64,
    ) -> Result<(f64, f64, u64)> {
        let batches = (0..self.config.accumulation)
            .map(|_| obj.next_batch())
            .collect::<Result<Vec<_>>>()?;
        let local: usize = batches.iter().map(|b| obj.weight(b)).sum();
        // Over all ranks, so that the summed gradient is that of the global mean loss.
        let total = match &self.collective {
            Some(c) => c.sum_scalar(local as f64, obj.params().device())?.round() as usize,
            None => local,
        };
        if total == 0 {
            return Err(TrainError::Data(
                "a training step with nothing to learn from".into(),
            ));
        }
        let mut grads: HashMap<String, Tensor> = HashMap::new();
        let trained: Vec<_> = obj
            .params()
            .iter()
            .filter(|(name, _, _)| opt.trains(name))
            .collect();
        let mut loss = 0.0;
        for batch in &batches {
            let mut ctx = Ctx::train(&mut state.rng);
            let l = (obj.loss_sum(batch, &mut ctx)? / total as f64)?;
            loss += f64::from(l.to_scalar::<f32>()?);
            let g = l.backward()?;
            for (name, var, _) in &trained {
                if let Some(gi) = g.get(var.as_tensor()) {
                    let sum = match grads.remove(*name) {
                        Some(acc) => (acc + gi)?,
                        None => gi.detach(),
                    };
                    grads.insert(name.to_string(), sum);
                }
            }
        }
        if let Some(c) = &self.collective {
            loss = c.sum_scalar(loss, obj.params().device())?;
            let vars: Vec<_> = trained.iter().map(|(n, v, _)| (*n, *v)).collect();
            sum_over_ranks(c.as_ref(), &vars, &mut grads)?;
        }
        let step = state.step + 1;
        if !loss.is_finite() {
            return Err(TrainError::NonFinite {
                step,
                what: format!("the loss ({loss})"),
            });
        }
        // Summed in name order: a map's own order differs between processes, and so
        // would the norm's last bits.
        let mut names: Vec<&String> = grads.keys().collect();
        names.sort();
        let mut sq = 0.0f64;
        for name in names {
            sq += f64::from(grads[name].sqr()?.sum_all()?.to_scalar::<f32>()?);
        }
        let norm = sq.sqrt();
        if !norm.is_finite() {
            return Err(TrainError::NonFinite {
                step,
                what: format!("the gradient norm ({norm})"),
            });
        }
        if self.config.grad_clip > 0.0 && norm > self.config.grad_clip {
            let scale = self.config.grad_clip / (norm + 1e-6);
            for g in grads.values_mut() {
                *g = (&*g * scale)?;
            }
        }
        opt.step(&grads, lr)?;
        Ok((loss, norm, total as u64))
    }

    fn checkpoint<O: Objective>(
        &self,
        obj: &O,
        opt: &Optimizer,
        state: &mut TrainerState,
        ckpts: &Checkpoints,
        best: bool,
    ) -> Result<()> {
        state.data = obj.data_state()?;
        if let Some(c) = &self.collective {
            return self.checkpoint_ranks(c.as_ref(), obj, opt, state, ckpts, best);
        }
        self.write_checkpoint(obj, opt, state, ckpts, best)
    }

    /// Every rank leaves its state in a file, then rank 0 writes the checkpoint with all
    /// of them; no rank goes on before it is complete.
    fn checkpoint_ranks<O: Objective>(
        &self,
        c: &dyn Collective,
        obj: &O,
        opt: &Optimizer,
        state: &mut TrainerState,
        ckpts: &Checkpoints,
        best: bool,
    ) -> Result<()> {
        let RankShards { rank, world } = c.ranks();
        let device = obj.params().device().clone();
        if rank > 0 {
            let own = RankState {
                rng: state.rng.clone(),
                data: state.data.clone(),
            };
            let path = rank_state_path(&ckpts.dir, rank);
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(|e| TrainError::file(dir, e))?;
            }
            write_json(&path, &own)?;
        }
        c.barrier(&device)?;
        if rank == 0 {
            state.ranks = (1..world)
                .map(|r| read_json(&rank_state_path(&ckpts.dir, r)))
                .collect::<Result<_>>()?;
            self.write_checkpoint(obj, opt, state, ckpts, best)?;
        }
        c.barrier(&device)
    }

    fn write_checkpoint<O: Objective>(
        &self,
        obj: &O,
        opt: &Optimizer,
        state: &TrainerState,
        ckpts: &Checkpoints,
        best: bool,
    ) -> Result<()> {
        let dir = ckpts.save(state.step, self.config.keep_last, |dir| {
            obj.save_model(dir)?;
            opt.save(&dir.join("optimizer.safetensors"))?;
            write_json(&dir.join("trainer.json"), state)
        })?;
        if best {
            ckpts.mark_best(&dir)?;
        }
        Ok(())
    }
}

/// Cuts the logs back to where the run continues: the checkpoint resumed from, or the
/// start of a run that never took one (recording that start on a first run). A run with
/// nothing left to do leaves them, since whatever follows in a shared log was written
/// by a later writer.
fn align_logs(
    logs: &RunLogs<'_>,
    ckpts: &Checkpoints,
    resumed: Option<(u64, &TrainerState)>,
    finished: bool,
) -> Result<()> {
    match resumed {
        Some(_) if finished => Ok(()),
        Some((step, state)) => logs.cut_to(&state.logs, &ckpts.step_dir(step)),
        None => match ckpts.start_positions()? {
            Some(start) => logs.cut_to(&start, &ckpts.dir),
            None => {
                // The trainer's own logs start empty; what they hold is a stale attempt's.
                let mut start = logs.positions()?;
                for (name, _) in &logs.own {
                    start.insert((*name).to_string(), 0);
                }
                logs.cut_to(&start, &ckpts.dir)?;
                ckpts.save_start_positions(&start)
            }
        },
    }
}

/// One evaluation, as a line of `eval.jsonl`.
#[derive(Serialize)]
struct EvalLine<'a> {
    step: u64,
    #[serde(flatten)]
    metrics: &'a BTreeMap<String, f64>,
    /// Whether this evaluation is the best so far.
    best: bool,
}

/// Sums every trained parameter's gradient over the ranks, in name order (every rank
/// must make the same calls in the same order); a parameter this rank's batches did not
/// reach takes part with zeros.
fn sum_over_ranks(
    c: &dyn Collective,
    trained: &[(&str, &candle_core::Var)],
    grads: &mut HashMap<String, Tensor>,
) -> Result<()> {
    let mut vars = trained.to_vec();
    vars.sort_by_key(|(name, _)| *name);
    for (name, var) in vars {
        let local = match grads.remove(name) {
            Some(g) => g,
            None => var.as_tensor().zeros_like()?,
        };
        grads.insert(name.to_string(), c.sum(&local)?);
    }
    Ok(())
}

/// An append-only JSON-lines file, or nothing (a rank other than 0).
struct JsonLines {
    path: PathBuf,
    file: Option<std::fs::File>,
}

impl JsonLines {
    fn open(path: &Path, write: bool) -> Result<Self> {
        let file = write
            .then(|| {
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|e| TrainError::file(path, e))
            })
            .transpose()?;
        Ok(Self {
            path: path.to_path_buf(),
            file,
        })
    }

    fn write(&mut self, value: &impl Serialize) -> Result<()> {
        let Some(file) = &mut self.file else {
            return Ok(());
        };
        let line = serde_json::to_string(value).map_err(|e| TrainError::file(&self.path, e))?;
        writeln!(file, "{line}").map_err(|e| TrainError::file(&self.path, e))
    }
}

/// The process's peak resident memory (Linux `VmHWM`), 0 elsewhere.
fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|kb| kb.parse::<f64>().ok())
            })
        })
        .map_or(0.0, |kb| kb / 1024.0)
}
