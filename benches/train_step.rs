//! Tokens per second of one training step (forward + backward + AdamW update) on the
//! default threads: nanoGPT's CPU Shakespeare config (4 × 4 × 128, block 64, batch 12)
//! and a BERT-mini MLM step (4 layers, 256 wide, seq 128, 15% of tokens predicted).
//! Under `cargo bench` 30 timed steps after 3 warm-up ones; as a test, 2 of each.
//! Results go to `$CARGO_TARGET_DIR/bench-train.json`.

#![allow(clippy::print_stdout)] // a benchmark reports on stdout

use std::collections::HashMap;
use std::time::Instant;

use candle_core::{Device, Tensor};
use gradus_model::{Bert, BertConfig, BertHeads, Ctx, Gpt, GptConfig, Params, loss};
use gradus_train::optim::{Optimizer, OptimizerConfig};
use serde_json::json;

fn grads_of(params: &Params, l: &Tensor) -> HashMap<String, Tensor> {
    let g = l.backward().expect("backward");
    params
        .iter()
        .filter_map(|(n, v, _)| g.get(v.as_tensor()).map(|t| (n.to_string(), t.clone())))
        .collect()
}

/// Seconds per step of `step`, after warm-up.
fn time(steps: usize, mut step: impl FnMut()) -> f64 {
    for _ in 0..3.min(steps) {
        step();
    }
    let start = Instant::now();
    for _ in 0..steps {
        step();
    }
    start.elapsed().as_secs_f64() / steps as f64
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let steps = if bench { 30 } else { 2 };
    let dev = Device::Cpu;
    let mut results = Vec::new();

    // nanoGPT CPU recipe: 65 characters, block 64, batch 12.
    let config = GptConfig {
        vocab_size: 65,
        n_positions: 64,
        n_embd: 128,
        n_layer: 4,
        n_head: 4,
        bias: false,
        activation_function: "gelu".into(),
        ..GptConfig::default()
    }
    .with_dropout(0.0);
    let mut params = Params::new(dev.clone(), 0);
    let gpt = Gpt::new(&config, &mut params).expect("gpt");
    let mut opt = Optimizer::new(&OptimizerConfig::default(), &params).expect("optimizer");
    let ids: Vec<u32> = (0..12 * 65).map(|i| (i * 7 % 65) as u32).collect();
    let x = Tensor::from_vec(ids[..12 * 64].to_vec(), (12, 64), &dev).expect("x");
    let y = Tensor::from_vec(ids[1..=12 * 64].to_vec(), 12 * 64, &dev).expect("y");
    let secs = time(steps, || {
        let logits = gpt
            .logits(&x, &mut Ctx::eval())
            .expect("fwd")
            .reshape((12 * 64, 65))
            .expect("reshape");
        let l = (loss::nll_sum(&logits, &y, None).expect("loss") / (12.0 * 64.0)).expect("mean");
        let g = grads_of(&params, &l);
        opt.step(&g, 1e-3).expect("step");
    });
    let tps = 12.0 * 64.0 / secs;
    println!(
        "gpt nanoGPT-cpu (4x4x128, block 64, batch 12): {:.1} ms/step, {tps:.0} tokens/s (PyTorch 2.15, 2 threads: ~10,400)",
        secs * 1e3
    );
    results.push(
        json!({"run": "gpt_nanogpt_cpu", "ms_per_step": secs * 1e3, "tokens_per_second": tps}),
    );

    // BERT-mini MLM: batch 8 × 128 tokens, every 7th token predicted (~15%).
    let config = BertConfig {
        vocab_size: 8192,
        hidden_size: 256,
        num_hidden_layers: 4,
        num_attention_heads: 4,
        intermediate_size: 1024,
        hidden_dropout_prob: 0.0,
        attention_probs_dropout_prob: 0.0,
        ..BertConfig::default()
    };
    let mut params = Params::new(dev.clone(), 0);
    let bert = Bert::new(&config, &mut params).expect("bert");
    let heads = BertHeads::new(&bert, &mut params).expect("heads");
    let mut opt = Optimizer::new(&OptimizerConfig::default(), &params).expect("optimizer");
    let (b, t) = (8usize, 128usize);
    let ids = Tensor::from_vec(
        (0..b * t)
            .map(|i| (i * 31 % 8192) as u32)
            .collect::<Vec<_>>(),
        (b, t),
        &dev,
    )
    .expect("ids");
    let types = ids.zeros_like().expect("types");
    let mask = Tensor::ones((b, t), candle_core::DType::F32, &dev).expect("mask");
    let picked: Vec<u32> = (0..(b * t) as u32).filter(|i| i % 7 == 3).collect();
    let targets = Tensor::from_vec(
        picked.iter().map(|i| i * 13 % 8192).collect::<Vec<_>>(),
        picked.len(),
        &dev,
    )
    .expect("targets");
    let positions = Tensor::from_vec(picked.clone(), picked.len(), &dev).expect("positions");
    let secs = time(steps, || {
        let h = bert
            .forward(&ids, &types, &mask, &mut Ctx::eval())
            .expect("fwd");
        let flat = h
            .reshape((b * t, 256))
            .expect("flat")
            .index_select(&positions, 0)
            .expect("select");
        let l = (loss::nll_sum(&heads.mlm.forward(&flat).expect("mlm"), &targets, None)
            .expect("loss")
            / picked.len() as f64)
            .expect("mean");
        let g = grads_of(&params, &l);
        opt.step(&g, 1e-4).expect("step");
    });
    let tps = (b * t) as f64 / secs;
    println!(
        "bert-mini MLM (4x256, seq 128, batch 8): {:.1} ms/step, {tps:.0} tokens/s",
        secs * 1e3
    );
    results
        .push(json!({"run": "bert_mini_mlm", "ms_per_step": secs * 1e3, "tokens_per_second": tps}));

    let dir = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into());
    let path = std::path::Path::new(&dir).join("bench-train.json");
    std::fs::write(
        &path,
        serde_json::to_string_pretty(&results).unwrap_or_default(),
    )
    .expect("write results");
    println!("results: {}", path.display());
}
