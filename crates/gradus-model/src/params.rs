//! The parameter store: every trainable tensor of a model under its Hugging Face name,
//! created by a seeded initialiser or taken from a checkpoint.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor, Var};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

use crate::error::{ModelError, Result};
use crate::kernels::Kernels;

/// How a linear layer's weight is stored: `[in, out]` (GPT-2's `Conv1D`) or `[out, in]`
/// (PyTorch `nn.Linear`, as BERT).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightLayout {
    InOut,
    OutIn,
}

/// What a parameter is, for weight decay (off by default for all but `Weight`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamKind {
    Weight,
    Bias,
    Norm,
    Embedding,
}

/// Tensors of a checkpoint waiting to be claimed by a model's constructor.
#[derive(Debug)]
struct Source {
    file: PathBuf,
    tensors: HashMap<String, Tensor>,
    /// Names starting with one of these may be absent: they are initialised instead (a
    /// new task head on a pretrained body).
    fresh: Vec<String>,
}

/// Named trainable parameters, in name order.
#[derive(Debug)]
pub struct Params {
    device: Device,
    rng: ChaCha8Rng,
    vars: BTreeMap<String, (Var, ParamKind)>,
    source: Option<Source>,
    /// Names initialised because the checkpoint lacked them.
    fresh_names: Vec<String>,
    /// Name prefixes of frozen parameters: the model gets them as constants, so that
    /// backward computes no gradient for them.
    frozen: Vec<String>,
    /// The kernels the models built from this store use.
    kernels: Kernels,
}

impl Params {
    /// An empty store that initialises parameters from `seed`: the same seed gives the
    /// same values on every device.
    pub fn new(device: Device, seed: u64) -> Self {
        Self {
            device,
            rng: ChaCha8Rng::seed_from_u64(seed),
            vars: BTreeMap::new(),
            source: None,
            fresh_names: Vec::new(),
            frozen: Vec::new(),
            kernels: Kernels::default(),
        }
    }

    /// Chooses the kernels of the models built from this store from now on (fused by
    /// default).
    pub fn with_kernels(mut self, kernels: Kernels) -> Self {
        self.kernels = kernels;
        self
    }

    pub fn kernels(&self) -> Kernels {
        self.kernels
    }

    /// Freezes the parameters created from now on whose names start with one of
    /// `prefixes`: they are saved and restored like the others but get no gradient.
    pub fn freeze(&mut self, prefixes: &[String]) {
        self.frozen.extend(prefixes.iter().cloned());
    }

    pub fn is_frozen(&self, name: &str) -> bool {
        self.frozen.iter().any(|p| name.starts_with(p.as_str()))
    }

    /// A store whose parameters come from `file` (a `model.safetensors`, or a folder
    /// holding one). Names under a prefix in `fresh` may be missing and are initialised.
    pub fn from_checkpoint(file: &Path, device: Device, seed: u64, fresh: &[&str]) -> Result<Self> {
        let tensors = crate::layout::read_tensors(file)?;
        let file = if file.is_dir() {
            file.join("model.safetensors")
        } else {
            file.to_path_buf()
        };
        let mut params = Self::new(device, seed);
        params.source = Some(Source {
            file,
            tensors,
            fresh: fresh.iter().map(|s| (*s).to_string()).collect(),
        });
        Ok(params)
    }

    /// Refuses a checkpoint tensor `name` that the model does not have unless it is all
    /// zeros: a biasless model's folder carries zero biases for HF's classes, and a
    /// non-zero one would otherwise be dropped silently.
    pub fn expect_zero(&self, name: &str) -> Result<()> {
        let Some(source) = &self.source else {
            return Ok(());
        };
        for candidate in candidates(name) {
            let Some(t) = source.tensors.get(&candidate) else {
                continue;
            };
            let largest = t.abs()?.flatten_all()?.max(0)?.to_dtype(DType::F32)?;
            if largest.to_scalar::<f32>()? != 0.0 {
                return Err(ModelError::file(
                    &source.file,
                    format!(
                        "tensor `{candidate}` is not zero, but config.json says the model has \
                         no biases (`\"bias\": false`)"
                    ),
                ));
            }
        }
        Ok(())
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Parameters that were initialised because the checkpoint did not have them.
    pub fn fresh_names(&self) -> &[String] {
        &self.fresh_names
    }

    /// Whether parameter `name` was initialised here rather than loaded from a checkpoint.
    pub fn is_fresh(&self, name: &str) -> bool {
        self.source.is_none() || self.fresh_names.iter().any(|n| n == name)
    }

    /// A parameter drawn from N(0, std²) (or loaded).
    pub fn normal(
        &mut self,
        name: &str,
        shape: &[usize],
        std: f64,
        kind: ParamKind,
    ) -> Result<Tensor> {
        let normal = Normal::new(0.0, std).map_err(|e| ModelError::Config(e.to_string()))?;
        self.create(name, shape, kind, |rng, n| {
            (0..n).map(|_| normal.sample(rng) as f32).collect()
        })
    }

    /// A parameter filled with `value` (or loaded).
    pub fn constant(
        &mut self,
        name: &str,
        shape: &[usize],
        value: f32,
        kind: ParamKind,
    ) -> Result<Tensor> {
        self.create(name, shape, kind, |_, n| vec![value; n])
    }

    fn create(
        &mut self,
        name: &str,
        shape: &[usize],
        kind: ParamKind,
        init: impl FnOnce(&mut ChaCha8Rng, usize) -> Vec<f32>,
    ) -> Result<Tensor> {
        if self.vars.contains_key(name) {
            return Err(ModelError::Config(format!(
                "parameter `{name}` defined twice"
            )));
        }
        // Draw even when loading, so that a fresh head gets the same values whatever the
        // checkpoint holds.
        let values = init(&mut self.rng, shape.iter().product());
        let tensor = match self.take(name, shape)? {
            Some(t) => t,
            None => Tensor::from_vec(values, shape, &Device::Cpu)?,
        };
        let var = Var::from_tensor(&tensor.to_device(&self.device)?)?;
        // A detached view shares the variable's storage, so updates and restores reach it.
        let t = if self.is_frozen(name) {
            var.as_tensor().detach()
        } else {
            var.as_tensor().clone()
        };
        self.vars.insert(name.to_string(), (var, kind));
        Ok(t)
    }

    /// The checkpoint's tensor for `name`, if loading; `None` to initialise.
    fn take(&mut self, name: &str, shape: &[usize]) -> Result<Option<Tensor>> {
        let Some(source) = self.source.as_mut() else {
            return Ok(None);
        };
        let found = candidates(name)
            .into_iter()
            .find_map(|c| source.tensors.remove(&c));
        let Some(t) = found else {
            if source.fresh.iter().any(|p| name.starts_with(p.as_str())) {
                self.fresh_names.push(name.to_string());
                return Ok(None);
            }
            return Err(ModelError::MissingTensor {
                file: source.file.clone(),
                name: name.to_string(),
            });
        };
        if t.dims() != shape {
            return Err(ModelError::Shape {
                file: source.file.clone(),
                name: name.to_string(),
                got: t.dims().to_vec(),
                want: shape.to_vec(),
            });
        }
        Ok(Some(t.to_dtype(DType::F32)?))
    }

    /// `(name, variable, kind)` of every parameter, in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Var, ParamKind)> {
        self.vars.iter().map(|(n, (v, k))| (n.as_str(), v, *k))
    }

    pub fn get(&self, name: &str) -> Option<&Var> {
        self.vars.get(name).map(|(v, _)| v)
    }

    /// Number of scalar parameters.
    pub fn count(&self) -> usize {
        self.vars.values().map(|(v, _)| v.elem_count()).sum()
    }

    /// Writes every parameter to `path` (safetensors), atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        let tensors: HashMap<String, Tensor> = self
            .vars
            .iter()
            .map(|(n, (v, _))| (n.clone(), v.as_tensor().clone()))
            .collect();
        crate::layout::write_tensors(&tensors, path)
    }

    /// Overwrites every parameter with the tensors in `path` (same names and shapes).
    pub fn restore(&self, path: &Path) -> Result<()> {
        let tensors = candle_core::safetensors::load(path, &Device::Cpu)
            .map_err(|e| ModelError::file(path, format!("not a readable safetensors file: {e}")))?;
        for (name, (var, _)) in &self.vars {
            let t = tensors.get(name).ok_or_else(|| ModelError::MissingTensor {
                file: path.to_path_buf(),
                name: name.clone(),
            })?;
            if t.dims() != var.dims() {
                return Err(ModelError::Shape {
                    file: path.to_path_buf(),
                    name: name.clone(),
                    got: t.dims().to_vec(),
                    want: var.dims().to_vec(),
                });
            }
            var.set(&t.to_dtype(DType::F32)?.to_device(&self.device)?)?;
        }
        Ok(())
    }
}

/// Names a checkpoint may use for `name`: with or without the `bert.` / `transformer.`
/// prefix, and old TensorFlow-style `gamma` / `beta` for layer norms.
fn candidates(name: &str) -> Vec<String> {
    let mut out = vec![name.to_string()];
    for prefix in ["bert.", "transformer."] {
        if let Some(rest) = name.strip_prefix(prefix) {
            out.push(rest.to_string());
        }
    }
    let base = out.clone();
    for n in base {
        if n.contains("LayerNorm.") {
            out.push(
                n.replace("LayerNorm.weight", "LayerNorm.gamma")
                    .replace("LayerNorm.bias", "LayerNorm.beta"),
            );
        }
    }
    out
}
