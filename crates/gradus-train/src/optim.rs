//! Optimisers whose state is saved and restored with a checkpoint.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor, Var};
use gradus_kernels::{AdamwStep, adamw_in_place};
use gradus_model::{ParamKind, Params};
use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};

/// Which optimiser, with its hyper-parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum OptimizerConfig {
    /// AdamW (Loshchilov & Hutter): weight decay applied to the weights directly.
    Adamw {
        #[serde(default = "beta1")]
        beta1: f64,
        #[serde(default = "beta2")]
        beta2: f64,
        #[serde(default = "eps")]
        eps: f64,
        #[serde(default)]
        weight_decay: f64,
        /// Parameter kinds exempt from decay: `bias`, `norm`, `embedding`.
        #[serde(default = "no_decay")]
        no_decay: Vec<String>,
    },
    /// SGD with (PyTorch-style) momentum and L2 weight decay.
    Sgd {
        #[serde(default)]
        momentum: f64,
        #[serde(default)]
        weight_decay: f64,
        #[serde(default = "no_decay")]
        no_decay: Vec<String>,
    },
}

fn beta1() -> f64 {
    0.9
}
fn beta2() -> f64 {
    0.999
}
fn eps() -> f64 {
    1e-8
}
fn no_decay() -> Vec<String> {
    vec!["bias".into(), "norm".into(), "embedding".into()]
}

impl OptimizerConfig {
    /// Refuses constants outside their range (a β of 1 never forgets, a negative decay
    /// grows the weights), naming the key.
    pub fn check(&self) -> Result<()> {
        let within = |name: &str, v: f64, ok: bool| {
            if ok && v.is_finite() {
                Ok(())
            } else {
                Err(TrainError::Config(format!(
                    "optimizer.{name} {v} is out of its range"
                )))
            }
        };
        match *self {
            Self::Adamw {
                beta1,
                beta2,
                eps,
                weight_decay,
                ..
            } => {
                within("beta1", beta1, (0.0..1.0).contains(&beta1))?;
                within("beta2", beta2, (0.0..1.0).contains(&beta2))?;
                within("eps", eps, eps > 0.0)?;
                within("weight_decay", weight_decay, weight_decay >= 0.0)
            }
            Self::Sgd {
                momentum,
                weight_decay,
                ..
            } => {
                within("momentum", momentum, (0.0..1.0).contains(&momentum))?;
                within("weight_decay", weight_decay, weight_decay >= 0.0)
            }
        }
    }
}

impl Default for OptimizerConfig {
    fn default() -> Self {
        Self::Adamw {
            beta1: beta1(),
            beta2: beta2(),
            eps: eps(),
            weight_decay: 0.0,
            no_decay: no_decay(),
        }
    }
}

fn kind_name(kind: ParamKind) -> &'static str {
    match kind {
        ParamKind::Weight => "weight",
        ParamKind::Bias => "bias",
        ParamKind::Norm => "norm",
        ParamKind::Embedding => "embedding",
    }
}

/// One parameter and its optimiser state.
#[derive(Debug)]
struct Slot {
    name: String,
    var: Var,
    decay: bool,
    /// This parameter's learning rate as a multiple of the step's.
    lr_scale: f64,
    /// AdamW: first moment; SGD: momentum buffer.
    m: Tensor,
    /// AdamW: second moment (unused by SGD).
    v: Tensor,
}

/// An optimiser over every parameter of a [`Params`] store.
#[derive(Debug)]
pub struct Optimizer {
    config: OptimizerConfig,
    slots: Vec<Slot>,
    /// Updates done (AdamW's bias correction needs it).
    pub steps: u64,
}

impl Optimizer {
    /// An optimiser over every parameter of `params`.
    pub fn new(config: &OptimizerConfig, params: &Params) -> Result<Self> {
        Self::with_scales(config, params, |_| Some(1.0))
    }

    /// An optimiser whose `lr_scale(name)` multiplies each parameter's learning rate;
    /// parameters it maps to `None` are frozen and get no state.
    pub fn with_scales(
        config: &OptimizerConfig,
        params: &Params,
        lr_scale: impl Fn(&str) -> Option<f64>,
    ) -> Result<Self> {
        let exempt = match config {
            OptimizerConfig::Adamw { no_decay, .. } | OptimizerConfig::Sgd { no_decay, .. } => {
                no_decay
            }
        };
        if let Some(bad) = exempt
            .iter()
            .find(|k| !["weight", "bias", "norm", "embedding"].contains(&k.as_str()))
        {
            return Err(TrainError::Config(format!(
                "no_decay: unknown parameter kind `{bad}`"
            )));
        }
        let slots = params
            .iter()
            .filter_map(|(name, var, kind)| lr_scale(name).map(|scale| (name, var, kind, scale)))
            .map(|(name, var, kind, lr_scale)| {
                Ok(Slot {
                    name: name.to_string(),
                    var: var.clone(),
                    decay: !exempt.iter().any(|k| k == kind_name(kind)),
                    lr_scale,
                    m: var.zeros_like()?,
                    v: var.zeros_like()?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            config: config.clone(),
            slots,
            steps: 0,
        })
    }

    /// Whether `name` is updated (not frozen).
    pub fn trains(&self, name: &str) -> bool {
        self.slots.iter().any(|s| s.name == name)
    }

    /// One update with learning rate `lr`; `grads` by parameter name, already clipped.
    pub fn step(&mut self, grads: &HashMap<String, Tensor>, lr: f64) -> Result<()> {
        self.steps += 1;
        let t = self.steps as i32;
        for slot in &mut self.slots {
            let Some(g) = grads.get(&slot.name) else {
                continue;
            };
            let lr = lr * slot.lr_scale;
            let p = slot.var.as_tensor();
            match self.config {
                OptimizerConfig::Adamw {
                    beta1,
                    beta2,
                    eps,
                    weight_decay,
                    ..
                } => {
                    if p.device().is_cpu() {
                        // One pass per buffer, nothing allocated (see gradus-kernels).
                        let step = AdamwStep {
                            lr,
                            beta1,
                            beta2,
                            eps,
                            weight_decay: if slot.decay { weight_decay } else { 0.0 },
                            step: self.steps,
                        };
                        adamw_in_place(p, &slot.m, &slot.v, &g.contiguous()?, step)?;
                        continue;
                    }
                    // Detached: the moments must not keep the previous steps' graphs alive.
                    slot.m = ((&slot.m * beta1)? + (g * (1.0 - beta1))?)?.detach();
                    slot.v = ((&slot.v * beta2)? + (g.sqr()? * (1.0 - beta2))?)?.detach();
                    let m_hat = (&slot.m / (1.0 - beta1.powi(t)))?;
                    let v_hat = (&slot.v / (1.0 - beta2.powi(t)))?;
                    let decayed = if slot.decay && weight_decay > 0.0 {
                        (p * (1.0 - lr * weight_decay))?
                    } else {
                        p.clone()
                    };
                    let update = (m_hat / (v_hat.sqrt()? + eps)?)?;
                    slot.var.set(&(decayed - (update * lr)?)?)?;
                }
                OptimizerConfig::Sgd {
                    momentum,
                    weight_decay,
                    ..
                } => {
                    let g = if slot.decay && weight_decay > 0.0 {
                        (g + (p * weight_decay)?)?
                    } else {
                        g.clone()
                    };
                    let dir = if momentum > 0.0 {
                        slot.m = if t == 1 {
                            g.detach()
                        } else {
                            ((&slot.m * momentum)? + g)?.detach()
                        };
                        slot.m.clone()
                    } else {
                        g
                    };
                    slot.var.set(&(p - (dir * lr)?)?)?;
                }
            }
        }
        Ok(())
    }

    /// Writes the moments to `path` (safetensors).
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut tensors = HashMap::new();
        for s in &self.slots {
            tensors.insert(format!("m.{}", s.name), s.m.clone());
            tensors.insert(format!("v.{}", s.name), s.v.clone());
        }
        candle_core::safetensors::save(&tensors, path).map_err(|e| TrainError::file(path, e))
    }

    /// Reads the moments written by [`Optimizer::save`]; `steps` comes from the trainer state.
    pub fn load(&mut self, path: &Path, steps: u64) -> Result<()> {
        let tensors = candle_core::safetensors::load(path, &Device::Cpu)
            .map_err(|e| TrainError::file(path, format!("not a readable optimizer state: {e}")))?;
        for s in &mut self.slots {
            let get = |key: String| {
                tensors
                    .get(&key)
                    .ok_or_else(|| TrainError::file(path, format!("tensor `{key}` is missing")))
                    .and_then(|t| Ok(t.to_device(s.var.device())?))
            };
            s.m = get(format!("m.{}", s.name))?;
            s.v = get(format!("v.{}", s.name))?;
        }
        self.steps = steps;
        Ok(())
    }
}
