//! Each fused kernel against the composed candle ops it replaces (run in f64), on several
//! shapes (odd sizes, length 1): values and gradients within 1e-5 relative, with the
//! values' mean magnitude as the floor near zero; finite results on large-magnitude
//! inputs; bad shapes and targets as errors.
#![allow(clippy::unwrap_used)]

use candle_core::{D, DType, Device, Tensor, Var};
use gradus_kernels::{
    GeluForm, add_rows, attention, cross_entropy, gelu, layer_norm, rms_norm, rope, swiglu,
};

/// Deterministic values in [−scale, scale].
fn values(n: usize, seed: f32, scale: f32) -> Vec<f32> {
    (0..n)
        .map(|i| ((i as f32 * 12.989_8 + seed * 78.233).sin() * 43_758.547).fract() * scale)
        .collect()
}

fn var(shape: &[usize], seed: f32, scale: f32) -> Var {
    let n = shape.iter().product();
    Var::from_tensor(&Tensor::from_vec(values(n, seed, scale), shape, &Device::Cpu).unwrap())
        .unwrap()
}

/// |a − b| ≤ 1e-5·(|b| + mean|b|) element by element: relative, with the tensor's own
/// scale as the floor for elements near zero.
fn assert_close(what: &str, a: &Tensor, b: &Tensor) {
    assert_eq!(a.dims(), b.dims(), "{what}: shapes");
    let a = a.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let b = b.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let scale = b.iter().map(|x| x.abs()).sum::<f32>() / b.len().max(1) as f32;
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        assert!(
            (x - y).abs() <= 1e-5 * (y.abs() + scale),
            "{what}[{i}]: fused {x} vs composed {y} (scale {scale})"
        );
    }
}

fn assert_finite(what: &str, t: &Tensor) {
    let v = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert!(v.iter().all(|x| x.is_finite()), "{what}: not finite");
}

/// Runs `f` on the variables' tensors and returns the output and, for a loss of
/// Σ output·R with fixed R, each variable's gradient.
fn with_grads(vars: &[&Var], f: impl Fn(&[Tensor]) -> Tensor) -> (Tensor, Vec<Tensor>) {
    let inputs: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
    let out = f(&inputs);
    let r = Tensor::from_vec(
        values(out.elem_count(), 99.0, 1.0),
        out.shape(),
        &Device::Cpu,
    )
    .unwrap()
    .to_dtype(out.dtype())
    .unwrap();
    let grads = (&out * &r).unwrap().sum_all().unwrap().backward().unwrap();
    let grads = vars
        .iter()
        .map(|v| grads.get(v.as_tensor()).expect("a gradient").clone())
        .collect();
    (out, grads)
}

fn compare(
    what: &str,
    vars: &[&Var],
    fused: impl Fn(&[Tensor]) -> Tensor,
    composed: impl Fn(&[Tensor]) -> Tensor,
) {
    let (fo, fg) = with_grads(vars, fused);
    // The reference runs in f64, so that what is compared is the fused kernel's rounding
    // and not the composed ops' own.
    let wide: Vec<Var> = vars
        .iter()
        .map(|v| Var::from_tensor(&v.as_tensor().to_dtype(DType::F64).unwrap()).unwrap())
        .collect();
    let (co, cg) = with_grads(&wide.iter().collect::<Vec<_>>(), composed);
    let narrow = |t: &Tensor| t.to_dtype(DType::F32).unwrap();
    assert_close(&format!("{what} value"), &fo, &narrow(&co));
    for (i, (f, c)) in fg.iter().zip(&cg).enumerate() {
        assert_close(&format!("{what} gradient {i}"), f, &narrow(c));
    }
}

#[test]
fn gelu_matches_candle_in_both_forms() {
    for shape in [vec![1], vec![7], vec![3, 129], vec![2, 5, 64]] {
        let x = var(&shape, 1.0, 4.0);
        compare(
            &format!("gelu erf {shape:?}"),
            &[&x],
            |t| gelu(&t[0], GeluForm::Erf).unwrap(),
            |t| t[0].gelu_erf().unwrap(),
        );
        compare(
            &format!("gelu tanh {shape:?}"),
            &[&x],
            |t| gelu(&t[0], GeluForm::Tanh).unwrap(),
            |t| t[0].gelu().unwrap(),
        );
    }
    let big = var(&[64], 2.0, 1e4);
    for form in [GeluForm::Erf, GeluForm::Tanh] {
        let (out, grads) = with_grads(&[&big], |t| gelu(&t[0], form).unwrap());
        assert_finite("gelu of large inputs", &out);
        assert_finite("gelu gradient of large inputs", &grads[0]);
    }
}

/// Layer norm as composed candle ops.
#[test]
fn add_rows_matches_a_broadcast_add() {
    // A bias over rows, positions over sequences, one row, and more rows than one
    // parallel task holds (so the bias gradient is summed over several blocks).
    for (x_shape, b_shape) in [
        (vec![5, 3], vec![3]),
        (vec![6, 4, 7], vec![4, 7]),
        (vec![1, 1], vec![1]),
        (vec![700, 65], vec![65]),
    ] {
        let x = var(&x_shape, 8.0, 2.0);
        let b = var(&b_shape, 9.0, 1.0);
        compare(
            &format!("add rows {x_shape:?} + {b_shape:?}"),
            &[&x, &b],
            |t| add_rows(&t[0], &t[1]).unwrap(),
            |t| t[0].broadcast_add(&t[1]).unwrap(),
        );
    }
    // `[seq · batch, width]` rows with `[seq, width]` positions, as the models call it.
    let x = var(&[12, 5], 10.0, 1.0);
    let b = var(&[4, 5], 11.0, 1.0);
    compare(
        "add rows over flattened sequences",
        &[&x, &b],
        |t| add_rows(&t[0], &t[1]).unwrap(),
        |t| {
            t[0].reshape((3, 4, 5))
                .unwrap()
                .broadcast_add(&t[1])
                .unwrap()
                .reshape((12, 5))
                .unwrap()
        },
    );
    let x = Tensor::zeros((5, 3), DType::F32, &Device::Cpu).unwrap();
    let wrong_width = Tensor::zeros(4, DType::F32, &Device::Cpu).unwrap();
    let not_whole = Tensor::zeros((2, 3), DType::F32, &Device::Cpu).unwrap();
    assert!(add_rows(&x, &wrong_width).is_err());
    assert!(add_rows(&x, &not_whole).is_err());
}

fn composed_layer_norm(x: &Tensor, w: &Tensor, b: Option<&Tensor>, eps: f64) -> Tensor {
    let centred = x
        .broadcast_sub(&x.mean_keepdim(D::Minus1).unwrap())
        .unwrap();
    let var = centred.sqr().unwrap().mean_keepdim(D::Minus1).unwrap();
    let y = centred
        .broadcast_div(&(var + eps).unwrap().sqrt().unwrap())
        .unwrap()
        .broadcast_mul(w)
        .unwrap();
    match b {
        Some(b) => y.broadcast_add(b).unwrap(),
        None => y,
    }
}

#[test]
fn layer_norm_matches_the_composed_version_with_and_without_bias() {
    for (rows, width) in [(1, 1), (1, 5), (3, 33), (130, 128), (2, 7)] {
        let x = var(&[rows, width], 3.0, 2.0);
        let w = var(&[width], 4.0, 1.0);
        let b = var(&[width], 5.0, 1.0);
        if width > 1 {
            // A row of one value has zero variance: its gradient is all rounding error.
            compare(
                &format!("layer norm {rows}×{width}"),
                &[&x, &w, &b],
                |t| layer_norm(&t[0], &t[1], Some(&t[2]), 1e-5).unwrap(),
                |t| composed_layer_norm(&t[0], &t[1], Some(&t[2]), 1e-5),
            );
        }
        compare(
            &format!("layer norm without bias {rows}×{width}"),
            &[&x, &w],
            |t| layer_norm(&t[0], &t[1], None, 1e-5).unwrap(),
            |t| composed_layer_norm(&t[0], &t[1], None, 1e-5),
        );
    }
    let x = var(&[4, 16], 6.0, 1e4);
    let w = var(&[16], 7.0, 1.0);
    let (out, grads) = with_grads(&[&x, &w], |t| layer_norm(&t[0], &t[1], None, 1e-5).unwrap());
    assert_finite("layer norm of large inputs", &out);
    assert_finite("layer norm gradient of large inputs", &grads[0]);
    assert!(
        layer_norm(
            x.as_tensor(),
            &Tensor::ones(15, DType::F32, &Device::Cpu).unwrap(),
            None,
            1e-5
        )
        .is_err()
    );
}

#[test]
fn swiglu_matches_candle() {
    for shape in [
        vec![1],
        vec![7],
        vec![3, 129],
        vec![2, 5, 344],
        vec![40, 1000],
    ] {
        let g = var(&shape, 17.0, 4.0);
        let u = var(&shape, 18.0, 2.0);
        compare(
            &format!("swiglu {shape:?}"),
            &[&g, &u],
            |t| swiglu(&t[0], &t[1]).unwrap(),
            |t| (t[0].silu().unwrap() * &t[1]).unwrap(),
        );
    }
    let big = var(&[64], 19.0, 1e4);
    let (out, grads) = with_grads(&[&big, &big], |t| swiglu(&t[0], &t[1]).unwrap());
    assert_finite("swiglu of large inputs", &out);
    assert_finite("swiglu gradient of large inputs", &grads[0]);
    let other = Tensor::zeros(6, DType::F32, &Device::Cpu).unwrap();
    assert!(swiglu(big.as_tensor(), &other).is_err());
}

fn composed_rms_norm(x: &Tensor, w: &Tensor, eps: f64) -> Tensor {
    let ms = x.sqr().unwrap().mean_keepdim(D::Minus1).unwrap();
    x.broadcast_div(&(ms + eps).unwrap().sqrt().unwrap())
        .unwrap()
        .broadcast_mul(w)
        .unwrap()
}

#[test]
fn rms_norm_matches_the_composed_version() {
    // Not a row of one value: its x gradient, r·g·(1 − x̂²), is all rounding error.
    for (rows, width) in [(1, 2), (1, 5), (3, 33), (130, 128), (2, 7)] {
        let x = var(&[rows, width], 12.0, 2.0);
        let w = var(&[width], 13.0, 1.0);
        compare(
            &format!("rms norm {rows}×{width}"),
            &[&x, &w],
            |t| rms_norm(&t[0], &t[1], 1e-6).unwrap(),
            |t| composed_rms_norm(&t[0], &t[1], 1e-6),
        );
    }
    let x = var(&[4, 16], 14.0, 1e4);
    let w = var(&[16], 15.0, 1.0);
    let (out, grads) = with_grads(&[&x, &w], |t| rms_norm(&t[0], &t[1], 1e-6).unwrap());
    assert_finite("rms norm of large inputs", &out);
    assert_finite("rms norm gradient of large inputs", &grads[0]);
    let wrong = Tensor::ones(15, DType::F32, &Device::Cpu).unwrap();
    assert!(rms_norm(x.as_tensor(), &wrong, 1e-6).is_err());
}

/// RoPE as composed candle ops on `[batch, seq, heads, head_dim]`: each head's halves
/// rotated by the position's angles.
fn composed_rope(x: &Tensor, cos: &Tensor, sin: &Tensor, batch: usize, heads: usize) -> Tensor {
    let (rows, width) = x.dims2().unwrap();
    let (seq, half) = cos.dims2().unwrap();
    assert_eq!(rows, batch * seq);
    let x = x.reshape((batch, seq, heads, width / heads)).unwrap();
    let a = x.narrow(D::Minus1, 0, half).unwrap();
    let b = x.narrow(D::Minus1, half, half).unwrap();
    let (c, s) = (
        cos.reshape((seq, 1, half)).unwrap(),
        sin.reshape((seq, 1, half)).unwrap(),
    );
    let ya = (a.broadcast_mul(&c).unwrap() - b.broadcast_mul(&s).unwrap()).unwrap();
    let yb = (b.broadcast_mul(&c).unwrap() + a.broadcast_mul(&s).unwrap()).unwrap();
    Tensor::cat(&[ya, yb], D::Minus1)
        .unwrap()
        .reshape((rows, width))
        .unwrap()
}

#[test]
fn rope_matches_the_composed_version() {
    // (batch, seq, heads, head_dim); the last has more rows than one parallel task.
    for (b, t, h, hd) in [(1, 1, 1, 2), (2, 5, 3, 4), (3, 7, 2, 16), (4, 300, 4, 32)] {
        let x = var(&[b * t, h * hd], 16.0, 2.0);
        let angles: Vec<f32> = (0..t * hd / 2)
            .map(|i| (i / (hd / 2)) as f32 * (1.0 + (i % (hd / 2)) as f32).recip())
            .collect();
        let cos: Vec<f32> = angles.iter().map(|a| a.cos()).collect();
        let sin: Vec<f32> = angles.iter().map(|a| a.sin()).collect();
        let cos = Tensor::from_vec(cos, (t, hd / 2), &Device::Cpu).unwrap();
        let sin = Tensor::from_vec(sin, (t, hd / 2), &Device::Cpu).unwrap();
        compare(
            &format!("rope {b}×{t}×{h}×{hd}"),
            &[&x],
            |v| rope(&v[0], &cos, &sin, hd).unwrap(),
            |v| {
                let wide = |t: &Tensor| t.to_dtype(DType::F64).unwrap();
                composed_rope(&v[0], &wide(&cos), &wide(&sin), b, h)
            },
        );
    }
    let x = Tensor::zeros((6, 8), DType::F32, &Device::Cpu).unwrap();
    let table = Tensor::zeros((4, 2), DType::F32, &Device::Cpu).unwrap();
    assert!(
        rope(&x, &table, &table, 4).is_err(),
        "6 rows are not sequences of 4"
    );
    assert!(rope(&x, &table, &table, 3).is_err(), "an odd head width");
}

/// Attention as composed candle ops: split heads, scaled scores, additive mask,
/// softmax, weighted values, merged heads.
fn composed_attention(qkv: &Tensor, heads: usize, causal: bool, keys: Option<&Tensor>) -> Tensor {
    let (b, t, w3) = qkv.dims3().unwrap();
    let d = w3 / 3;
    let split = |i: usize| {
        qkv.narrow(2, i * d, d)
            .unwrap()
            .reshape((b, t, heads, d / heads))
            .unwrap()
            .transpose(1, 2)
            .unwrap()
            .contiguous()
            .unwrap()
    };
    let (q, k, v) = (split(0), split(1), split(2));
    let scale = 1.0 / ((d / heads) as f64).sqrt();
    let mut scores = (q.matmul(&k.t().unwrap()).unwrap() * scale).unwrap();
    if causal {
        let mask: Vec<f32> = (0..t)
            .flat_map(|i| (0..t).map(move |j| if j <= i { 0.0 } else { f32::NEG_INFINITY }))
            .collect();
        let mask = Tensor::from_vec(mask, (t, t), &Device::Cpu)
            .unwrap()
            .to_dtype(qkv.dtype())
            .unwrap();
        scores = scores.broadcast_add(&mask).unwrap();
    }
    if let Some(keys) = keys {
        let keys = &keys.to_dtype(qkv.dtype()).unwrap();
        let mask = ((keys - 1.0).unwrap() * 1e9)
            .unwrap()
            .reshape((b, 1, 1, t))
            .unwrap();
        scores = scores.broadcast_add(&mask).unwrap();
    }
    let probs = candle_nn::ops::softmax(&scores, D::Minus1).unwrap();
    probs
        .matmul(&v)
        .unwrap()
        .transpose(1, 2)
        .unwrap()
        .contiguous()
        .unwrap()
        .reshape((b, t, d))
        .unwrap()
}

#[test]
fn causal_attention_matches_the_composed_version() {
    // Head widths 4, 16, 32 and 64.
    for (b, t, d, heads) in [
        (1, 1, 4, 1),
        (2, 5, 12, 3),
        (3, 17, 16, 4),
        (2, 64, 64, 4),
        (2, 9, 64, 2),
        (1, 7, 64, 1),
    ] {
        let qkv = var(&[b, t, 3 * d], 8.0, 1.5);
        compare(
            &format!("causal attention {b}×{t}×{d}/{heads}"),
            &[&qkv],
            |x| attention(&x[0], b, heads, true, None).unwrap(),
            |x| composed_attention(&x[0], heads, true, None),
        );
    }
    let big = var(&[2, 9, 24], 9.0, 1e3);
    let (out, grads) = with_grads(&[&big], |x| attention(&x[0], 2, 2, true, None).unwrap());
    assert_finite("attention of large inputs", &out);
    assert_finite("attention gradient of large inputs", &grads[0]);
}

#[test]
fn padded_attention_matches_the_composed_version() {
    let (b, t, d, heads) = (3, 6, 8, 2);
    // Batch rows with 6, 4 and 1 tokens.
    let keys: Vec<f32> = [6, 4, 1]
        .iter()
        .flat_map(|&n| (0..t).map(move |j| if j < n { 1.0 } else { 0.0 }))
        .collect();
    let keys = Tensor::from_vec(keys, (b, t), &Device::Cpu).unwrap();
    let qkv = var(&[b, t, 3 * d], 10.0, 1.0);
    compare(
        "padded attention",
        &[&qkv],
        |x| attention(&x[0], b, heads, false, Some(&keys)).unwrap(),
        |x| composed_attention(&x[0], heads, false, Some(&keys)),
    );
    assert!(attention(qkv.as_tensor(), b, 5, false, None).is_err());
    assert!(attention(qkv.as_tensor(), 2, heads, false, None).is_err());
    // The same projection as rows of one matrix.
    let rows = qkv.as_tensor().reshape((b * t, 3 * d)).unwrap();
    let flat = attention(&rows, b, heads, false, Some(&keys)).unwrap();
    let full = attention(qkv.as_tensor(), b, heads, false, Some(&keys)).unwrap();
    assert_eq!(flat.dims(), &[b * t, d]);
    assert_close("rows layout", &flat, &full.reshape((b * t, d)).unwrap());
}

#[test]
fn cross_entropy_matches_log_softmax_and_gather() {
    for (rows, classes) in [(1, 1), (1, 2), (5, 65), (300, 257), (3, 8192)] {
        let logits = var(&[rows, classes], 11.0, 3.0);
        let targets: Vec<u32> = (0..rows).map(|i| ((i * 7 + 3) % classes) as u32).collect();
        let targets = Tensor::from_vec(targets, rows, &Device::Cpu).unwrap();
        compare(
            &format!("cross-entropy {rows}×{classes}"),
            &[&logits],
            |x| cross_entropy(&x[0], &targets).unwrap(),
            |x| {
                let logp = candle_nn::ops::log_softmax(&x[0], D::Minus1).unwrap();
                logp.gather(&targets.unsqueeze(1).unwrap(), 1)
                    .unwrap()
                    .squeeze(1)
                    .unwrap()
                    .neg()
                    .unwrap()
            },
        );
    }
    let logits = var(&[4, 10], 12.0, 1e4);
    let targets = Tensor::new(&[0u32, 3, 9, 5], &Device::Cpu).unwrap();
    let (out, grads) = with_grads(&[&logits], |x| cross_entropy(&x[0], &targets).unwrap());
    assert_finite("cross-entropy of large logits", &out);
    assert_finite("cross-entropy gradient of large logits", &grads[0]);
    let bad = Tensor::new(&[0u32, 3, 10, 5], &Device::Cpu).unwrap();
    let err = cross_entropy(logits.as_tensor(), &bad)
        .unwrap_err()
        .to_string();
    assert!(err.contains("target 10 is out of range"), "{err}");
}

#[test]
fn an_input_of_another_dtype_is_refused_naming_it() {
    let x = Tensor::zeros((2, 3), DType::F64, &Device::Cpu).unwrap();
    let err = gelu(&x, GeluForm::Erf).unwrap_err().to_string();
    assert!(err.contains("gelu input is not f32"), "{err}");
    let w = Tensor::ones(3, DType::F32, &Device::Cpu).unwrap();
    let err = rms_norm(&x, &w, 1e-5).unwrap_err().to_string();
    assert!(err.contains("rms norm input is not f32"), "{err}");
}
