//! Models: gradients against finite differences, dropout, checkpoints and their errors,
//! the real all-MiniLM-L6-v2 against its reference outputs, sampling.

#![allow(clippy::unwrap_used)] // test helpers fail loudly by design

use std::path::{Path, PathBuf};

use candle_core::{D, Device, Tensor};
use gradus_model::generate::{Generation, Sampling, generate, generate_batch};
use gradus_model::{
    Bert, BertConfig, BertHeads, Ctx, Decoder, DecoderConfig, Gpt, GptConfig, Kernels, Llama,
    LlamaConfig, ModelError, Params, TaskHead, loss,
};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn tiny_gpt() -> GptConfig {
    GptConfig {
        vocab_size: 13,
        n_positions: 8,
        n_embd: 8,
        n_layer: 2,
        n_head: 2,
        ..GptConfig::default()
    }
}

/// Grouped-query attention (4 heads sharing 2 key/value heads), tied or not.
fn tiny_llama(tied: bool) -> LlamaConfig {
    LlamaConfig {
        vocab_size: 13,
        hidden_size: 8,
        intermediate_size: 12,
        num_hidden_layers: 2,
        num_attention_heads: 4,
        num_key_value_heads: Some(2),
        max_position_embeddings: 8,
        tie_word_embeddings: tied,
        ..LlamaConfig::default()
    }
}

fn tiny_bert() -> BertConfig {
    BertConfig {
        vocab_size: 17,
        hidden_size: 8,
        num_hidden_layers: 2,
        num_attention_heads: 2,
        intermediate_size: 16,
        max_position_embeddings: 10,
        ..BertConfig::default()
    }
}

fn scalar(t: &Tensor) -> f64 {
    f64::from(t.to_scalar::<f32>().unwrap())
}

/// Central differences on a few elements of every parameter against backprop; and
/// every parameter must get a non-zero gradient (catches ops that drop gradients).
fn check_gradients(params: &Params, loss: &dyn Fn() -> Tensor) {
    let grads = loss().backward().unwrap();
    for (name, var, _) in params.iter() {
        let g = grads
            .get(var.as_tensor())
            .unwrap_or_else(|| panic!("no gradient for {name}"));
        let g: Vec<f32> = g.flatten_all().unwrap().to_vec1().unwrap();
        assert!(g.iter().any(|x| *x != 0.0), "zero gradient for {name}");
        let n = g.len();
        for &i in &[0, n / 2, n - 1] {
            let original = var.as_tensor().flatten_all().unwrap().copy().unwrap();
            // Small against the 0.02 scale of the weights, which layer norm makes curvy.
            let eps = 1e-3f32;
            let nudge = |delta: f32| {
                let mut d = vec![0f32; n];
                d[i] = delta;
                let d = Tensor::from_vec(d, n, &Device::Cpu).unwrap();
                var.set(&(&original + d).unwrap().reshape(var.shape()).unwrap())
                    .unwrap();
                let l = scalar(&loss());
                var.set(&original.reshape(var.shape()).unwrap()).unwrap();
                l
            };
            let numeric = (nudge(eps) - nudge(-eps)) / (2.0 * f64::from(eps));
            let analytic = f64::from(g[i]);
            let tol = 5e-3 + 2e-2 * analytic.abs().max(numeric.abs());
            assert!(
                (numeric - analytic).abs() <= tol,
                "{name}[{i}]: backprop {analytic}, finite differences {numeric}"
            );
        }
    }
}

#[test]
fn gpt_gradients_match_finite_differences() {
    for kernels in [Kernels::Fused, Kernels::Composed] {
        let mut params = Params::new(Device::Cpu, 1).with_kernels(kernels);
        // Dropout configured but off in evaluation, where the check runs.
        let gpt = Gpt::new(&tiny_gpt().with_dropout(0.3), &mut params).unwrap();
        let ids = Tensor::new(&[[1u32, 5, 7, 2, 9], [3, 3, 12, 0, 4]], &Device::Cpu).unwrap();
        let targets = Tensor::new(&[5u32, 7, 2, 9, 1, 3, 12, 0, 4, 4], &Device::Cpu).unwrap();
        check_gradients(&params, &|| {
            let logits = gpt
                .logits(&ids, &mut Ctx::eval())
                .unwrap()
                .reshape((10, 13))
                .unwrap();
            loss::nll_sum(&logits, &targets, None, kernels).unwrap()
        });
    }
}

#[test]
fn llama_gradients_match_finite_differences() {
    for (kernels, tied) in [
        (Kernels::Fused, false),
        (Kernels::Composed, false),
        (Kernels::Fused, true),
    ] {
        let mut params = Params::new(Device::Cpu, 1).with_kernels(kernels);
        let llama = Llama::new(&tiny_llama(tied), &mut params).unwrap();
        assert_eq!(params.get("lm_head.weight").is_some(), !tied);
        assert_eq!(params.count(), tiny_llama(tied).num_params());
        let ids = Tensor::new(&[[1u32, 5, 7, 2, 9], [3, 3, 12, 0, 4]], &Device::Cpu).unwrap();
        let targets = Tensor::new(&[5u32, 7, 2, 9, 1, 3, 12, 0, 4, 4], &Device::Cpu).unwrap();
        check_gradients(&params, &|| {
            let logits = llama.logits_rows(&ids, &mut Ctx::eval()).unwrap();
            loss::nll_sum(&logits, &targets, None, kernels).unwrap()
        });
    }
}

/// The fused RMS norm, rotary embeddings and attention give the composed ops' loss and
/// gradients on a Llama, so either path trains the same model.
#[test]
fn llama_fused_and_composed_kernels_agree() {
    let ids = Tensor::new(&[[1u32, 5, 7, 2, 9, 4, 4, 0]], &Device::Cpu).unwrap();
    let targets = Tensor::new(&[5u32, 7, 2, 9, 4, 4, 0, 1], &Device::Cpu).unwrap();
    let run = |kernels| {
        let mut params = Params::new(Device::Cpu, 3).with_kernels(kernels);
        let llama = Llama::new(&tiny_llama(false), &mut params).unwrap();
        let logits = llama.logits_rows(&ids, &mut Ctx::eval()).unwrap();
        let l = loss::nll_sum(&logits, &targets, None, kernels).unwrap();
        let grads = l.backward().unwrap();
        let g: Vec<Vec<f32>> = params
            .iter()
            .map(|(_, v, _)| {
                grads
                    .get(v.as_tensor())
                    .unwrap()
                    .flatten_all()
                    .unwrap()
                    .to_vec1()
                    .unwrap()
            })
            .collect();
        (scalar(&l), g)
    };
    let (fused, fused_grads) = run(Kernels::Fused);
    let (composed, composed_grads) = run(Kernels::Composed);
    assert!(
        (fused - composed).abs() < 1e-5 * composed.abs(),
        "{fused} vs {composed}"
    );
    for (f, c) in fused_grads
        .iter()
        .flatten()
        .zip(composed_grads.iter().flatten())
    {
        assert!(
            (f - c).abs() < 1e-4 * c.abs().max(1e-2),
            "gradient {f} vs {c}"
        );
    }
}

/// A Llama saved and loaded through the decoder type: HF's names, no `lm_head` when
/// tied, the same logits back; HF options gradus does not implement are refused.
#[test]
fn llama_folders_round_trip_and_refuse_what_gradus_cannot_run() {
    let dir = tempfile::tempdir().unwrap();
    let ids = Tensor::new(&[[1u32, 5, 7, 2]], &Device::Cpu).unwrap();
    for tied in [true, false] {
        let config = DecoderConfig::Llama(tiny_llama(tied));
        let mut params = Params::new(Device::Cpu, 4);
        let model = Decoder::new(&config, &mut params).unwrap();
        params.save(&dir.path().join("model.safetensors")).unwrap();
        let json = config.to_json();
        assert_eq!(json["num_key_value_heads"], 2);
        assert_eq!(json["rope_parameters"]["rope_theta"], 10000.0);
        std::fs::write(dir.path().join("config.json"), json.to_string()).unwrap();
        let names: Vec<String> = gradus_model::layout::read_tensors(dir.path())
            .unwrap()
            .into_keys()
            .collect();
        assert_eq!(names.contains(&"lm_head.weight".to_string()), !tied);
        assert!(names.contains(&"model.layers.1.mlp.down_proj.weight".to_string()));
        let (back, _) = Decoder::load(dir.path(), Device::Cpu).unwrap();
        assert_eq!(
            back.config(),
            DecoderConfig::Llama(tiny_llama(tied).for_folder())
        );
        let logits = |m: &Decoder| -> Vec<f32> {
            let l = m.logits(&ids, &mut Ctx::eval()).unwrap();
            l.flatten_all().unwrap().to_vec1().unwrap()
        };
        assert_eq!(logits(&model), logits(&back));
    }
    let refused = |edit: serde_json::Value| {
        let mut json = DecoderConfig::Llama(tiny_llama(true)).to_json();
        json.as_object_mut()
            .unwrap()
            .extend(edit.as_object().unwrap().clone());
        let config = DecoderConfig::from_json(json).unwrap();
        Decoder::new(&config, &mut Params::new(Device::Cpu, 0))
            .unwrap_err()
            .to_string()
    };
    assert!(
        refused(serde_json::json!({"rope_scaling": {"type": "linear", "factor": 2.0}}))
            .contains("rope_scaling")
    );
    assert!(
        refused(serde_json::json!({"rope_parameters": {"rope_type": "yarn", "rope_theta": 1e4}}))
            .contains("yarn")
    );
    assert!(refused(serde_json::json!({"attention_bias": true})).contains("biases"));
    assert!(refused(serde_json::json!({"hidden_act": "gelu"})).contains("silu"));
    assert!(refused(serde_json::json!({"num_key_value_heads": 3})).contains("key/value heads"));
    let bert = DecoderConfig::from_json(serde_json::json!({"model_type": "bert"})).unwrap_err();
    assert!(bert.to_string().contains("gpt2, llama"), "{bert}");
}

#[test]
fn bert_and_heads_gradients_match_finite_differences() {
    for kernels in [Kernels::Fused, Kernels::Composed] {
        let mut params = Params::new(Device::Cpu, 2).with_kernels(kernels);
        let bert = Bert::new(&tiny_bert(), &mut params).unwrap();
        let heads = BertHeads::new(&bert, &mut params).unwrap();
        let classifier = TaskHead::new(&bert, &mut params, "classifier", 3).unwrap();
        let ids = Tensor::new(&[[2u32, 5, 7, 3, 0], [2, 9, 3, 11, 3]], &Device::Cpu).unwrap();
        let types = Tensor::new(&[[0u32, 0, 0, 0, 0], [0, 0, 0, 1, 1]], &Device::Cpu).unwrap();
        let mask = Tensor::new(
            &[[1f32, 1., 1., 1., 0.], [1., 1., 1., 1., 1.]],
            &Device::Cpu,
        )
        .unwrap();
        let mlm_targets = Tensor::new(&[5u32, 7, 9, 11], &Device::Cpu).unwrap();
        let positions = Tensor::new(&[1u32, 2, 6, 8], &Device::Cpu).unwrap();
        check_gradients(&params, &|| {
            let mut ctx = Ctx::eval();
            let h = bert.forward(&ids, &types, &mask, &mut ctx).unwrap();
            let pooled = bert.pool(&h).unwrap();
            let flat = h
                .reshape((10, 8))
                .unwrap()
                .index_select(&positions, 0)
                .unwrap();
            let mlm_logits = heads.mlm.forward(&flat).unwrap();
            let mlm = loss::nll_sum(&mlm_logits, &mlm_targets, None, kernels).unwrap();
            let nsp = loss::nll_sum(
                &heads.nsp(&pooled).unwrap(),
                &Tensor::new(&[0u32, 1], &Device::Cpu).unwrap(),
                None,
                kernels,
            )
            .unwrap();
            let cls = loss::nll_sum(
                &classifier.forward(&pooled, &mut ctx).unwrap(),
                &Tensor::new(&[2u32, 0], &Device::Cpu).unwrap(),
                None,
                kernels,
            )
            .unwrap();
            (mlm + nsp + cls).unwrap()
        });
    }
}

#[test]
fn dropout_drops_in_training_only() {
    let mut params = Params::new(Device::Cpu, 3);
    let gpt = Gpt::new(&tiny_gpt().with_dropout(0.5), &mut params).unwrap();
    let ids = Tensor::new(&[[1u32, 2, 3, 4]], &Device::Cpu).unwrap();
    let eval_a = gpt.logits(&ids, &mut Ctx::eval()).unwrap();
    let eval_b = gpt.logits(&ids, &mut Ctx::eval()).unwrap();
    assert_eq!(
        eval_a.to_vec3::<f32>().unwrap(),
        eval_b.to_vec3::<f32>().unwrap()
    );
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let train = gpt.logits(&ids, &mut Ctx::train(&mut rng)).unwrap();
    assert_ne!(
        train.to_vec3::<f32>().unwrap(),
        eval_a.to_vec3::<f32>().unwrap()
    );
    // About half of a large tensor is zeroed, the rest doubled.
    let x = Tensor::ones(10_000, candle_core::DType::F32, &Device::Cpu).unwrap();
    let y: Vec<f32> = Ctx::train(&mut rng)
        .dropout(&x, 0.5)
        .unwrap()
        .to_vec1()
        .unwrap();
    let zeros = y.iter().filter(|v| **v == 0.0).count();
    assert!((4_700..5_300).contains(&zeros), "{zeros} zeros");
    assert!(y.iter().all(|v| *v == 0.0 || *v == 2.0));
}

#[test]
fn checkpoints_round_trip_and_name_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let mut params = Params::new(Device::Cpu, 4);
    let gpt = Gpt::new(&tiny_gpt(), &mut params).unwrap();
    std::fs::write(
        dir.path().join("config.json"),
        serde_json::to_string(gpt.config()).unwrap(),
    )
    .unwrap();
    let file = dir.path().join("model.safetensors");
    params.save(&file).unwrap();
    let (loaded, _) = Gpt::load(dir.path(), Device::Cpu).unwrap();
    let ids = Tensor::new(&[[1u32, 2, 3]], &Device::Cpu).unwrap();
    let a = gpt
        .logits(&ids, &mut Ctx::eval())
        .unwrap()
        .to_vec3::<f32>()
        .unwrap();
    assert_eq!(
        loaded
            .logits(&ids, &mut Ctx::eval())
            .unwrap()
            .to_vec3::<f32>()
            .unwrap(),
        a
    );

    // HF names: the body under `transformer.`, as GPT2LMHeadModel writes it.
    let names = safetensors::SafeTensors::deserialize(&std::fs::read(&file).unwrap())
        .unwrap()
        .names()
        .len();
    assert_eq!(names, params.iter().count());
    assert!(params.iter().all(|(n, _, _)| n.starts_with("transformer.")));

    // A missing tensor is named, with the file.
    let mut tensors = candle_core::safetensors::load(&file, &Device::Cpu).unwrap();
    tensors.remove("transformer.h.1.mlp.c_fc.weight");
    candle_core::safetensors::save(&tensors, &file).unwrap();
    let err = Gpt::load(dir.path(), Device::Cpu).unwrap_err();
    assert!(matches!(err, ModelError::MissingTensor { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("transformer.h.1.mlp.c_fc.weight") && msg.contains("model.safetensors"),
        "{msg}"
    );

    // A truncated file is named.
    params.save(&file).unwrap();
    let bytes = std::fs::read(&file).unwrap();
    std::fs::write(&file, &bytes[..bytes.len() / 2]).unwrap();
    let msg = Gpt::load(dir.path(), Device::Cpu).unwrap_err().to_string();
    assert!(msg.contains("model.safetensors"), "{msg}");
}

#[test]
fn sampling_is_seeded_and_top_k_one_is_greedy() {
    let mut params = Params::new(Device::Cpu, 5);
    let gpt = Decoder::Gpt(Gpt::new(&tiny_gpt(), &mut params).unwrap());
    let s = |seed, top_k, temperature| Sampling {
        temperature,
        top_k,
        top_p: 0.9,
        seed,
    };
    let a = generate(&gpt, &[1, 2], 20, &s(1, 0, 1.0), None).unwrap();
    assert_eq!(a.len(), 20);
    assert_eq!(a, generate(&gpt, &[1, 2], 20, &s(1, 0, 1.0), None).unwrap());
    assert_ne!(a, generate(&gpt, &[1, 2], 20, &s(2, 0, 1.0), None).unwrap());
    let greedy = generate(&gpt, &[1, 2], 20, &s(0, 0, 0.0), None).unwrap();
    assert_eq!(
        generate(&gpt, &[1, 2], 20, &s(9, 1, 1.0), None).unwrap(),
        greedy
    );
}

/// A GPT and a Llama (grouped-query attention) of context 12, as decoders; weights
/// large enough that greedy continuations vary.
fn tiny_decoders() -> Vec<Decoder> {
    let gpt = GptConfig {
        n_positions: 12,
        initializer_range: 0.5,
        ..tiny_gpt()
    };
    let llama = LlamaConfig {
        max_position_embeddings: 12,
        initializer_range: 0.5,
        ..tiny_llama(false)
    };
    let mut params = Params::new(Device::Cpu, 6);
    vec![
        Decoder::new(&DecoderConfig::Gpt(gpt), &mut params).unwrap(),
        Decoder::new(&DecoderConfig::Llama(llama), &mut params).unwrap(),
    ]
}

fn run_batch(
    model: &Decoder,
    prompts: &[Vec<u32>],
    sampling: &Sampling,
    cache: bool,
) -> Vec<Vec<u32>> {
    let generation = Generation {
        max_new_tokens: 20,
        sampling: sampling.clone(),
        cache,
    };
    generate_batch(model, prompts, &generation, &mut |_, _| false).unwrap()
}

/// Greedy continuation the way training computes: the whole window through the
/// model's forward pass for every token.
fn greedy_by_forward(model: &Decoder, prompt: &[u32], n: usize) -> Vec<u32> {
    let mut ids = prompt.to_vec();
    for _ in 0..n {
        let window = &ids[ids.len().saturating_sub(model.context())..];
        let input = Tensor::new(window, &Device::Cpu)
            .unwrap()
            .unsqueeze(0)
            .unwrap();
        let logits = model.logits(&input, &mut Ctx::eval()).unwrap();
        let last = logits.squeeze(0).unwrap().get(window.len() - 1).unwrap();
        ids.push(last.argmax(D::Minus1).unwrap().to_scalar::<u32>().unwrap());
    }
    ids[prompt.len()..].to_vec()
}

/// Last-token pooling picks each sequence's last real token, with padding on the right
/// or on the left, and passes the gradient to that token only.
#[test]
fn last_token_pooling_finds_the_last_real_token_on_either_side() {
    let hidden = candle_core::Var::from_tensor(
        &Tensor::arange(0f32, 24.0, &Device::Cpu)
            .unwrap()
            .reshape((2, 4, 3))
            .unwrap(),
    )
    .unwrap();
    let right = Tensor::new(&[[1f32, 1.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0]], &Device::Cpu).unwrap();
    let left = Tensor::new(&[[0f32, 0.0, 1.0, 1.0], [0.0, 1.0, 1.0, 1.0]], &Device::Cpu).unwrap();
    let pooled = |mask: &Tensor| TaskHead::last_token(hidden.as_tensor(), mask).unwrap();
    let rows = |t: Tensor| t.to_vec2::<f32>().unwrap();
    assert_eq!(rows(pooled(&right)), [[3.0, 4.0, 5.0], [21.0, 22.0, 23.0]]);
    assert_eq!(rows(pooled(&left)), [[9.0, 10.0, 11.0], [21.0, 22.0, 23.0]]);
    let grads = pooled(&right).sum_all().unwrap().backward().unwrap();
    let g: Vec<f32> = grads
        .get(hidden.as_tensor())
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let touched: Vec<usize> = (0..24).filter(|&i| g[i] != 0.0).collect();
    assert_eq!(touched, [3, 4, 5, 21, 22, 23]);
}

/// A decoder's logits at a position do not depend on the tokens after it (the causal
/// mask of the training forward pass), with both kernel choices.
#[test]
fn decoder_logits_ignore_later_tokens() {
    for kernels in [Kernels::Fused, Kernels::Composed] {
        let mut params = Params::new(Device::Cpu, 8).with_kernels(kernels);
        let models = [
            Decoder::new(&DecoderConfig::Gpt(tiny_gpt()), &mut params).unwrap(),
            Decoder::new(&DecoderConfig::Llama(tiny_llama(true)), &mut params).unwrap(),
        ];
        for model in models {
            let logits = |ids: &[u32]| -> Vec<Vec<f32>> {
                let input = Tensor::new(ids, &Device::Cpu)
                    .unwrap()
                    .unsqueeze(0)
                    .unwrap();
                model
                    .logits(&input, &mut Ctx::eval())
                    .unwrap()
                    .squeeze(0)
                    .unwrap()
                    .to_vec2()
                    .unwrap()
            };
            let (a, b) = (logits(&[1, 5, 7, 2, 9, 3]), logits(&[1, 5, 7, 11, 0, 12]));
            assert_eq!(
                a[..3],
                b[..3],
                "{kernels:?}: a later token changed earlier logits"
            );
            assert_ne!(a[3], b[3]);
        }
    }
}

/// Generation with the key/value cache gives the tokens of recomputing every step and of
/// the training forward pass, for both decoders, past the context window too (a 5-token
/// prompt and 20 new tokens in a context of 12).
#[test]
fn cached_generation_equals_recomputation() {
    let greedy = Sampling {
        temperature: 0.0,
        ..Sampling::default()
    };
    for model in tiny_decoders() {
        let prompt = vec![1u32, 5, 7, 2, 9];
        let cached = run_batch(&model, std::slice::from_ref(&prompt), &greedy, true);
        let recomputed = run_batch(&model, std::slice::from_ref(&prompt), &greedy, false);
        assert_eq!(cached, recomputed);
        assert_eq!(cached[0], greedy_by_forward(&model, &prompt, 20));
        // Enough distinct tokens that a wrong position or mask would show.
        let distinct: std::collections::BTreeSet<_> = cached[0].iter().collect();
        assert!(distinct.len() > 2, "{:?}", cached[0]);
    }
}

/// Prompts of different lengths generated as one batch (left-padded) give each prompt's
/// own continuation, greedy and sampled, with and without the cache.
#[test]
fn batched_prompts_equal_one_by_one() {
    let prompts = vec![vec![3u32], vec![1, 5, 7, 2], vec![4, 4, 0, 12, 8, 6, 2]];
    let sampled = Sampling {
        temperature: 1.0,
        top_k: 0,
        top_p: 0.95,
        seed: 7,
    };
    for model in tiny_decoders() {
        for sampling in [
            Sampling {
                temperature: 0.0,
                ..sampled.clone()
            },
            sampled.clone(),
        ] {
            for cache in [true, false] {
                let batch = run_batch(&model, &prompts, &sampling, cache);
                for (prompt, got) in prompts.iter().zip(&batch) {
                    let alone = run_batch(&model, std::slice::from_ref(prompt), &sampling, cache);
                    assert_eq!(got, &alone[0], "prompt {prompt:?}, cache {cache}");
                }
            }
        }
    }
    let stop_at_2 = generate(&tiny_decoders()[1], &[1, 5], 20, &sampled, Some(2)).unwrap();
    assert!(stop_at_2.len() == 20 || stop_at_2.last() == Some(&2));
    assert!(!stop_at_2[..stop_at_2.len() - 1].contains(&2));
}

/// A fixture folder written by transformers (`tests/fixtures/NAME`) and its
/// `reference.json`: the input ids and the logits transformers gives for them.
type Reference = (PathBuf, Vec<Vec<u32>>, Vec<Vec<Vec<f32>>>);

fn hf_fixture(name: &str) -> Reference {
    // Found at run time: a path compiled in goes stale when one target folder serves
    // several checkouts.
    let dir = gradus_testkit::workspace_root()
        .join("crates/gradus-model/tests/fixtures")
        .join(name);
    let reference: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("reference.json")).unwrap())
            .unwrap();
    let ids = serde_json::from_value(reference["input_ids"].clone()).unwrap();
    let want = serde_json::from_value(reference["logits"].clone()).unwrap();
    (dir, ids, want)
}

/// The checkpoint in `dir` with `kernels`, for a decoder built on it.
fn hf_params(dir: &Path, kernels: Kernels) -> Params {
    Params::from_checkpoint(dir, Device::Cpu, 0, &[])
        .unwrap()
        .with_kernels(kernels)
}

/// `model`'s logits for `ids`, evaluated.
fn logits_of(model: &Decoder, ids: &[Vec<u32>]) -> Vec<Vec<Vec<f32>>> {
    let input = Tensor::new(ids.to_vec(), &Device::Cpu).unwrap();
    model
        .logits(&input, &mut Ctx::eval())
        .unwrap()
        .to_vec3()
        .unwrap()
}

/// A GPT-2 written by Hugging Face transformers (`tests/fixtures/make_tiny_gpt2.py`:
/// `GPT2LMHeadModel.save_pretrained`, HF `config.json`, Conv1D weights, biases, tied
/// head) loads and gives transformers' own logits, with both kernel choices.
#[test]
fn an_hf_gpt2_checkpoint_gives_transformers_logits() {
    let (dir, ids, want) = hf_fixture("tiny-gpt2");
    let (gpt, _) = Gpt::load(&dir, Device::Cpu).unwrap();
    assert_eq!(gpt.config().activation_function, "gelu_new");
    for kernels in [Kernels::Fused, Kernels::Composed] {
        let mut params = hf_params(&dir, kernels);
        let model = Decoder::Gpt(Gpt::new(gpt.config(), &mut params).unwrap());
        let got = logits_of(&model, &ids);
        for (s, (g, w)) in got.iter().zip(&want).enumerate() {
            for (t, (g, w)) in g.iter().zip(w).enumerate() {
                for (v, (g, w)) in g.iter().zip(w).enumerate() {
                    assert!(
                        (g - w).abs() < 1e-5 * w.abs().max(1.0),
                        "{kernels:?} logits[{s}][{t}][{v}]: {g} vs transformers' {w}"
                    );
                }
            }
        }
    }
}

/// A Llama written by Hugging Face transformers (`tests/fixtures/make_tiny_llama.py`:
/// `LlamaForCausalLM.save_pretrained`, grouped-query attention, an untied output layer,
/// transformers 5's `rope_parameters`) loads and gives transformers' own logits within
/// 1e-4, with both kernel choices.
#[test]
fn an_hf_llama_checkpoint_gives_transformers_logits() {
    let (dir, ids, want) = hf_fixture("tiny-llama");
    let DecoderConfig::Llama(config) = Decoder::read_config(&dir).unwrap() else {
        panic!("not read as a Llama");
    };
    assert_eq!((config.num_attention_heads, config.kv_heads()), (4, 2));
    for kernels in [Kernels::Fused, Kernels::Composed] {
        let mut params = hf_params(&dir, kernels);
        let model = Decoder::Llama(Llama::new(&config, &mut params).unwrap());
        let got = logits_of(&model, &ids);
        let mut worst = 0f32;
        for (g, w) in got
            .iter()
            .flatten()
            .flatten()
            .zip(want.iter().flatten().flatten())
        {
            worst = worst.max((g - w).abs());
        }
        assert!(
            worst <= 1e-4,
            "{kernels:?}: logits differ from transformers' by {worst}"
        );
    }
}

/// all-MiniLM-L6-v2 as sentence-transformers runs it: the hidden values and mean-pooled,
/// normalised embeddings of the reference sentences, number by number.
#[test]
fn minilm_matches_its_reference_outputs() {
    let (Some(model), Some(reference)) = (
        gradus_testkit::minilm(),
        gradus_testkit::shared("minilm-reference/reference.json"),
    ) else {
        return;
    };
    let config: BertConfig =
        serde_json::from_str(&std::fs::read_to_string(model.join("config.json")).unwrap()).unwrap();
    let mut params = Params::from_checkpoint(&model, Device::Cpu, 0, &[]).unwrap();
    let bert = Bert::new(&config, &mut params).unwrap();
    let tk = gradus_tokenize::load(&model.join("tokenizer.json")).unwrap();
    let reference: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(reference).unwrap()).unwrap();
    let sentences = reference["sentences"].as_array().unwrap();
    assert!(sentences.len() >= 3);
    for s in sentences {
        let want_ids: Vec<u32> = serde_json::from_value(s["input_ids"].clone()).unwrap();
        let ids = tk
            .encode(s["text"].as_str().unwrap(), true)
            .unwrap()
            .get_ids()
            .to_vec();
        assert_eq!(ids, want_ids, "token ids of {}", s["text"]);
        let n = ids.len();
        let input = Tensor::new(ids.as_slice(), &Device::Cpu)
            .unwrap()
            .unsqueeze(0)
            .unwrap();
        let types = input.zeros_like().unwrap();
        let mask = Tensor::ones((1, n), candle_core::DType::F32, &Device::Cpu).unwrap();
        let h = bert
            .forward(&input, &types, &mask, &mut Ctx::eval())
            .unwrap();
        let first8: Vec<f32> = h
            .get(0)
            .unwrap()
            .get(0)
            .unwrap()
            .narrow(0, 0, 8)
            .unwrap()
            .to_vec1()
            .unwrap();
        let want8: Vec<f32> =
            serde_json::from_value(s["last_hidden_token0_first8"].clone()).unwrap();
        for (g, w) in first8.iter().zip(&want8) {
            assert!((g - w).abs() < 1e-4, "hidden {first8:?} vs {want8:?}");
        }
        let pooled = Bert::mean_pool(&h, &mask).unwrap();
        let norm = pooled
            .sqr()
            .unwrap()
            .sum_keepdim(D::Minus1)
            .unwrap()
            .sqrt()
            .unwrap();
        let emb: Vec<f32> = pooled
            .broadcast_div(&norm)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let want: Vec<f32> = serde_json::from_value(s["mean_pooled_normalized"].clone()).unwrap();
        assert_eq!(emb.len(), 384);
        for (i, w) in want.iter().enumerate() {
            assert!(
                (emb[i] - w).abs() < 1e-4,
                "embedding[{i}]: {} vs {w}",
                emb[i]
            );
        }
    }
}
