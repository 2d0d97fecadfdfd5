//! Generation speed with the key/value cache against recomputing every step: new tokens
//! per second, greedy, one sequence, for a GPT and a Llama-style decoder of the
//! Shakespeare recipe's size (4 layers × 128 wide, 65 tokens) with a context of 1,024.
//! `cargo bench` generates 256 new tokens after a 256-token prompt; as a test, 16 after 16.

#![allow(clippy::print_stdout)] // a benchmark reports on stdout

use std::time::Instant;

use candle_core::Device;
use gradus_model::generate::{Generation, Sampling, generate_batch};
use gradus_model::{Decoder, DecoderConfig, GptConfig, LlamaConfig, Params};
use serde_json::json;

fn models() -> Vec<(&'static str, Decoder)> {
    let gpt = GptConfig {
        vocab_size: 65,
        n_positions: 1024,
        n_embd: 128,
        n_layer: 4,
        n_head: 4,
        bias: false,
        activation_function: "gelu".into(),
        ..GptConfig::default()
    };
    let llama = LlamaConfig {
        vocab_size: 65,
        hidden_size: 128,
        intermediate_size: 344,
        num_hidden_layers: 4,
        num_attention_heads: 4,
        max_position_embeddings: 1024,
        tie_word_embeddings: true,
        ..LlamaConfig::default()
    };
    let build = |c| {
        let mut params = Params::new(Device::Cpu, 1);
        Decoder::new(&c, &mut params).unwrap_or_else(|e| panic!("{e}"))
    };
    vec![
        ("gpt", build(DecoderConfig::Gpt(gpt))),
        ("llama", build(DecoderConfig::Llama(llama))),
    ]
}

/// New tokens per second generating `new` tokens after `prompt` tokens.
fn tokens_per_second(model: &Decoder, prompt: usize, new: usize, cache: bool) -> f64 {
    let ids: Vec<u32> = (0..prompt).map(|i| (i * 7 % 65) as u32).collect();
    let generation = Generation {
        max_new_tokens: new,
        sampling: Sampling {
            temperature: 0.0,
            ..Sampling::default()
        },
        cache,
    };
    let start = Instant::now();
    let out = generate_batch(model, &[ids], &generation, &mut |_, _| false)
        .unwrap_or_else(|e| panic!("{e}"));
    let seconds = start.elapsed().as_secs_f64();
    assert_eq!(out[0].len(), new);
    new as f64 / seconds
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let (prompt, new) = if bench { (256, 256) } else { (16, 16) };
    let machine = gradus_testkit::machine::Machine::here();
    println!("{}", machine.line());
    println!("generation: {new} new tokens after {prompt}, greedy, one sequence");
    let mut results = vec![json!({ "machine": machine.json() })];
    for (name, model) in models() {
        let cached = tokens_per_second(&model, prompt, new, true);
        let recomputed = tokens_per_second(&model, prompt, new, false);
        println!(
            "{name:6} cached {cached:8.0} tok/s   recomputed {recomputed:8.0} tok/s   ×{:.1}",
            cached / recomputed
        );
        results.push(json!({
            "model": name, "prompt": prompt, "new_tokens": new,
            "cached_tokens_per_s": cached, "recomputed_tokens_per_s": recomputed,
            "speedup": cached / recomputed,
        }));
    }
    let dir = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into());
    let path = std::path::Path::new(&dir).join("bench-generate.json");
    std::fs::write(
        &path,
        serde_json::to_string_pretty(&results).unwrap_or_default(),
    )
    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    println!("results: {}", path.display());
}
