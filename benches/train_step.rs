//! Tokens per second of one training step (forward + backward + AdamW update), split
//! into its phases, with gradus's fused CPU kernels and with candle's composed ops:
//! nanoGPT's CPU Shakespeare config (4 × 4 × 128, block 64, batch 12) and a BERT-mini MLM
//! step (4 layers, 256 wide, seq 128, batch 32, 15% of tokens predicted). Also counts
//! the page faults per step (minor faults of the process).
//!
//! Under `cargo bench` 60 timed steps (15 for BERT-mini) after 3 warm-up ones, each phase
//! its median over the steps; as a test, 2 of each. When `python3` has `torch` (or `$GRADUS_TORCH_PYTHON` names such a Python),
//! `benches/train_step_torch.py` runs the same two steps in PyTorch in the same
//! invocation and the ratio is printed: this machine is noisy, so the ratio measured side
//! by side is the figure to compare. Results go to `$CARGO_TARGET_DIR/bench-train.json`.
//! It runs with the binaries' allocator and thread plan, on a worker of the pool as the
//! training stages do. An argument `gpt` or `bert` runs only that model, `fused` or
//! `composed` only those kernels.

#![allow(clippy::print_stdout)] // a benchmark reports on stdout

use std::collections::HashMap;
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use gradus_model::{Bert, BertConfig, BertHeads, Ctx, Gpt, GptConfig, Kernels, Params, loss};
use gradus_train::optim::{Optimizer, OptimizerConfig};
use serde_json::{Value, json};

/// Seconds per step of each phase, and minor page faults per step.
#[derive(Debug, Default, Clone, Copy)]
struct Phases {
    forward: f64,
    backward: f64,
    optimizer: f64,
    faults: f64,
}

impl Phases {
    fn total(&self) -> f64 {
        self.forward + self.backward + self.optimizer
    }
}

/// Minor page faults of this process so far (`/proc/self/stat`, field 10); 0 elsewhere.
fn minor_faults() -> f64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            // Fields after the parenthesised command name, which may hold spaces.
            let rest = s.rsplit_once(')')?.1;
            rest.split_whitespace().nth(7)?.parse::<f64>().ok()
        })
        .unwrap_or(0.0)
}

/// One training step's phases, each a closure over the state the previous one returned.
trait Step {
    fn forward(&mut self) -> Tensor;
    fn backward(&mut self, loss: &Tensor) -> HashMap<String, Tensor>;
    fn update(&mut self, grads: &HashMap<String, Tensor>);
}

/// Per-phase medians over `steps` timed steps (after 3 warm-up ones): the median keeps a
/// step slowed by other work on the machine from moving the figure.
fn measure(steps: usize, step: &mut dyn Step) -> Phases {
    for _ in 0..3.min(steps) {
        let l = step.forward();
        let g = step.backward(&l);
        step.update(&g);
    }
    let (mut fwd, mut bwd, mut opt) = (Vec::new(), Vec::new(), Vec::new());
    let faults = minor_faults();
    for _ in 0..steps {
        let t = Instant::now();
        let l = step.forward();
        let t1 = Instant::now();
        let g = step.backward(&l);
        let t2 = Instant::now();
        step.update(&g);
        fwd.push((t1 - t).as_secs_f64());
        bwd.push((t2 - t1).as_secs_f64());
        opt.push(t2.elapsed().as_secs_f64());
    }
    Phases {
        forward: median(&mut fwd),
        backward: median(&mut bwd),
        optimizer: median(&mut opt),
        faults: (minor_faults() - faults) / steps as f64,
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

fn grads_of(params: &Params, l: &Tensor) -> HashMap<String, Tensor> {
    let g = l.backward().expect("backward");
    params
        .iter()
        .filter_map(|(n, v, _)| g.get(v.as_tensor()).map(|t| (n.to_string(), t.clone())))
        .collect()
}

/// nanoGPT's CPU recipe: 65 characters, block 64, batch 12, no bias, exact GELU.
struct GptStep {
    gpt: Gpt,
    params: Params,
    opt: Optimizer,
    x: Tensor,
    y: Tensor,
}

const GPT_BATCH: usize = 12;
const GPT_BLOCK: usize = 64;

impl GptStep {
    fn new(kernels: Kernels) -> Self {
        let config = GptConfig {
            vocab_size: 65,
            n_positions: GPT_BLOCK,
            n_embd: 128,
            n_layer: 4,
            n_head: 4,
            bias: false,
            activation_function: "gelu".into(),
            ..GptConfig::default()
        }
        .with_dropout(0.0);
        let mut params = Params::new(Device::Cpu, 0).with_kernels(kernels);
        let gpt = Gpt::new(&config, &mut params).expect("gpt");
        let opt = Optimizer::new(&OptimizerConfig::default(), &params).expect("optimizer");
        let n = GPT_BATCH * GPT_BLOCK;
        let ids: Vec<u32> = (0..=n).map(|i| (i * 7 % 65) as u32).collect();
        let x =
            Tensor::from_vec(ids[..n].to_vec(), (GPT_BATCH, GPT_BLOCK), &Device::Cpu).expect("x");
        let y = Tensor::from_vec(ids[1..].to_vec(), n, &Device::Cpu).expect("y");
        Self {
            gpt,
            params,
            opt,
            x,
            y,
        }
    }
}

impl Step for GptStep {
    fn forward(&mut self) -> Tensor {
        let n = GPT_BATCH * GPT_BLOCK;
        let logits = self
            .gpt
            .logits_rows(&self.x, &mut Ctx::eval())
            .expect("forward");
        let sum = loss::nll_sum(&logits, &self.y, None, self.gpt.kernels()).expect("loss");
        (sum / n as f64).expect("mean")
    }

    fn backward(&mut self, loss: &Tensor) -> HashMap<String, Tensor> {
        grads_of(&self.params, loss)
    }

    fn update(&mut self, grads: &HashMap<String, Tensor>) {
        self.opt.step(grads, 1e-3).expect("step");
    }
}

const BERT_BATCH: usize = 32;
const BERT_SEQ: usize = 128;
const BERT_WIDTH: usize = 256;

/// BERT-mini MLM: 4 layers, 256 wide, 8,192 tokens, every 7th position predicted.
struct BertStep {
    bert: Bert,
    heads: BertHeads,
    params: Params,
    opt: Optimizer,
    ids: Tensor,
    types: Tensor,
    mask: Tensor,
    positions: Tensor,
    targets: Tensor,
}

impl BertStep {
    fn new(kernels: Kernels) -> Self {
        let config = BertConfig {
            vocab_size: 8192,
            hidden_size: BERT_WIDTH,
            num_hidden_layers: 4,
            num_attention_heads: 4,
            intermediate_size: 4 * BERT_WIDTH,
            hidden_dropout_prob: 0.0,
            attention_probs_dropout_prob: 0.0,
            ..BertConfig::default()
        };
        let mut params = Params::new(Device::Cpu, 0).with_kernels(kernels);
        let bert = Bert::new(&config, &mut params).expect("bert");
        let heads = BertHeads::new(&bert, &mut params).expect("heads");
        let opt = Optimizer::new(&OptimizerConfig::default(), &params).expect("optimizer");
        let n = BERT_BATCH * BERT_SEQ;
        let ids: Vec<u32> = (0..n).map(|i| (i * 31 % 8192) as u32).collect();
        let ids = Tensor::from_vec(ids, (BERT_BATCH, BERT_SEQ), &Device::Cpu).expect("ids");
        let picked: Vec<u32> = (0..n as u32).filter(|i| i % 7 == 3).collect();
        let targets: Vec<u32> = picked.iter().map(|i| i * 13 % 8192).collect();
        let targets = Tensor::from_vec(targets, picked.len(), &Device::Cpu).expect("targets");
        let positions = Tensor::from_vec(picked.clone(), picked.len(), &Device::Cpu).expect("pos");
        Self {
            types: ids.zeros_like().expect("types"),
            mask: Tensor::ones((BERT_BATCH, BERT_SEQ), DType::F32, &Device::Cpu).expect("mask"),
            bert,
            heads,
            params,
            opt,
            ids,
            positions,
            targets,
        }
    }
}

impl Step for BertStep {
    fn forward(&mut self) -> Tensor {
        let h = self
            .bert
            .forward(&self.ids, &self.types, &self.mask, &mut Ctx::eval())
            .expect("forward");
        let flat = h
            .reshape((BERT_BATCH * BERT_SEQ, BERT_WIDTH))
            .expect("flat")
            .index_select(&self.positions, 0)
            .expect("select");
        let logits = self.heads.mlm.forward(&flat).expect("mlm");
        let sum = loss::nll_sum(&logits, &self.targets, None, self.bert.kernels()).expect("loss");
        (sum / self.targets.elem_count() as f64).expect("mean")
    }

    fn backward(&mut self, loss: &Tensor) -> HashMap<String, Tensor> {
        grads_of(&self.params, loss)
    }

    fn update(&mut self, grads: &HashMap<String, Tensor>) {
        self.opt.step(grads, 1e-4).expect("step");
    }
}

fn report(run: &str, kernels: Kernels, tokens: usize, p: &Phases) -> Value {
    let tps = tokens as f64 / p.total();
    println!(
        "{run} [{kernels:?}]: {:.1} ms/step (forward {:.1}, backward {:.1}, optimizer {:.1}), {tps:.0} tokens/s, {:.0} page faults/step",
        p.total() * 1e3,
        p.forward * 1e3,
        p.backward * 1e3,
        p.optimizer * 1e3,
        p.faults
    );
    json!({
        "run": run,
        "kernels": format!("{kernels:?}").to_lowercase(),
        "ms_per_step": p.total() * 1e3,
        "forward_ms": p.forward * 1e3,
        "backward_ms": p.backward * 1e3,
        "optimizer_ms": p.optimizer * 1e3,
        "tokens_per_second": tps,
        "page_faults_per_step": p.faults,
    })
}

/// The PyTorch script's results (`{"gpt_nanogpt_cpu": tokens/s, "bert_mini_mlm": ...,
/// "torch_version": ..., "torch_threads": ...}`), when a Python with torch is there.
/// An empty `GRADUS_TORCH_PYTHON` leaves PyTorch out (scripts/train-speed.sh runs it
/// separately).
fn torch(bench: bool, only: Option<&str>) -> Option<serde_json::Map<String, Value>> {
    let python = std::env::var("GRADUS_TORCH_PYTHON").unwrap_or_else(|_| "python3".into());
    if python.is_empty() {
        return None;
    }
    let script = gradus_testkit::workspace_root().join("benches/train_step_torch.py");
    let mut cmd = std::process::Command::new(&python);
    cmd.arg(script)
        .arg(if bench { "--bench" } else { "--test" });
    if let Some(only) = only {
        cmd.arg(only);
    }
    let out = cmd.output().ok()?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        println!(
            "PyTorch comparison skipped ({python}: {})",
            err.lines().last().unwrap_or("failed")
        );
        return None;
    }
    serde_json::from_slice(&out.stdout).ok()
}

fn main() {
    let machine = gradus_testkit::machine::Machine::here();
    println!("{}", machine.line());
    // The binaries' thread plan, on every core.
    gradus::cli::thread_plan(machine.threads);
    let bench = std::env::args().any(|a| a == "--bench");
    let only = std::env::args().find(|a| a == "gpt" || a == "bert");
    let wants = |m: &str| only.as_deref().is_none_or(|o| o == m);
    let steps = |n: usize| if bench { n } else { 2 };
    let mut results = vec![json!({ "machine": machine.json() })];
    let mut ours = HashMap::new();
    let only_kernels = std::env::args().find(|a| a == "fused" || a == "composed");
    // The fused kernels (what training runs) go first: a step measured after the composed
    // ops' thousands of other allocations runs slower than the same step measured first
    // in the process (ARCHITECTURE.md's measured section), so the figure compared with
    // PyTorch comes from a fresh heap.
    let kernel_runs = [Kernels::Fused, Kernels::Composed].into_iter().filter(|k| {
        only_kernels
            .as_deref()
            .is_none_or(|o| format!("{k:?}").to_lowercase() == o)
    });
    for kernels in kernel_runs {
        if wants("gpt") {
            let p = gradus::cli::on_worker(|| measure(steps(60), &mut GptStep::new(kernels)));
            results.push(report(
                "gpt_nanogpt_cpu",
                kernels,
                GPT_BATCH * GPT_BLOCK,
                &p,
            ));
            ours.insert(
                ("gpt_nanogpt_cpu", kernels),
                (GPT_BATCH * GPT_BLOCK) as f64 / p.total(),
            );
        }
        if wants("bert") {
            let p = gradus::cli::on_worker(|| measure(steps(15), &mut BertStep::new(kernels)));
            results.push(report("bert_mini_mlm", kernels, BERT_BATCH * BERT_SEQ, &p));
            ours.insert(
                ("bert_mini_mlm", kernels),
                (BERT_BATCH * BERT_SEQ) as f64 / p.total(),
            );
        }
    }
    match torch(bench, only.as_deref()) {
        Some(theirs) => {
            println!(
                "PyTorch {} on {} threads",
                theirs
                    .get("torch_version")
                    .and_then(Value::as_str)
                    .unwrap_or("?"),
                theirs
                    .get("torch_threads")
                    .and_then(Value::as_u64)
                    .unwrap_or(0)
            );
            results.push(json!({
                "torch_version": theirs.get("torch_version"),
                "torch_threads": theirs.get("torch_threads"),
            }));
            let runs = theirs.iter().filter_map(|(k, v)| Some((k, v.as_f64()?)));
            for (run, tps) in runs {
                if let Some(mine) = ours.get(&(run.as_str(), Kernels::Fused)) {
                    println!(
                        "{run}: gradus {mine:.0} tokens/s, PyTorch {tps:.0} tokens/s, ratio {:.2}",
                        mine / tps
                    );
                    results.push(
                        json!({"run": run, "pytorch_tokens_per_second": tps, "ratio": mine / tps}),
                    );
                }
            }
        }
        None => println!(
            "(no PyTorch here: set GRADUS_TORCH_PYTHON to a Python with torch for the ratio)"
        ),
    }
    let dir = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into());
    let path = std::path::Path::new(&dir).join("bench-train.json");
    std::fs::create_dir_all(&dir).expect("results folder");
    std::fs::write(
        &path,
        serde_json::to_string_pretty(&results).unwrap_or_default(),
    )
    .expect("write results");
    println!("results: {}", path.display());
}
