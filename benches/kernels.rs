//! Forward + backward time of each fused kernel against the composed candle ops it
//! replaces, at the shapes of nanoGPT's CPU step (batch 12 × block 64, 128 wide, 4 heads,
//! 65 classes): where a training step's element-wise time goes. Under `cargo bench` 200
//! repetitions, as a test 2.

#![allow(clippy::print_stdout)] // a benchmark reports on stdout

use std::time::Instant;

use candle_core::{D, Device, Tensor, Var};
use gradus_kernels::GeluForm;
use gradus_model::{AttentionMask, Ctx, Kernels, LayerNorm, Params, self_attention};

fn input(shape: &[usize], seed: u64) -> Var {
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n)
        .map(|i| (((i as u64 * 2_654_435_761 + seed) % 1000) as f32 / 500.0) - 1.0)
        .collect();
    Var::from_tensor(&Tensor::from_vec(v, shape, &Device::Cpu).expect("input")).expect("var")
}

/// Milliseconds per forward + backward of `f` on `x` (loss = Σ f(x)).
fn time(reps: usize, x: &Var, f: &dyn Fn(&Tensor) -> Tensor) -> f64 {
    let run = || {
        let y = f(x.as_tensor());
        let g = y.sum_all().expect("sum").backward().expect("backward");
        assert!(g.get(x.as_tensor()).is_some(), "no gradient");
    };
    run();
    let start = Instant::now();
    for _ in 0..reps {
        run();
    }
    start.elapsed().as_secs_f64() * 1e3 / reps as f64
}

fn row(name: &str, fused: f64, composed: f64) {
    println!(
        "{name:<28} fused {fused:7.3} ms   composed {composed:7.3} ms   {:5.1}x",
        composed / fused
    );
}

fn main() {
    let machine = gradus_testkit::machine::Machine::here();
    println!("{}", machine.line());
    gradus::cli::thread_plan(machine.threads);
    let reps = if std::env::args().any(|a| a == "--bench") {
        200
    } else {
        2
    };
    let (rows, d, heads, classes) = (12 * 64, 128, 4, 65);

    let x = input(&[rows, 4 * d], 1);
    row(
        "gelu (erf) 768x512",
        time(reps, &x, &|t| {
            gradus_kernels::gelu(t, GeluForm::Erf).expect("gelu")
        }),
        time(reps, &x, &|t| t.gelu_erf().expect("gelu")),
    );

    let x = input(&[rows, d], 2);
    let ln = |kernels| {
        let mut p = Params::new(Device::Cpu, 0).with_kernels(kernels);
        LayerNorm::new(&mut p, "ln", d, 1e-5, false).expect("layer norm")
    };
    let (fused_ln, composed_ln) = (ln(Kernels::Fused), ln(Kernels::Composed));
    row(
        "layer norm 768x128",
        time(reps, &x, &|t| fused_ln.forward(t).expect("ln")),
        time(reps, &x, &|t| composed_ln.forward(t).expect("ln")),
    );

    let qkv = input(&[rows, 3 * d], 3);
    let attend = |kernels| {
        move |t: &Tensor| {
            self_attention(
                t,
                12,
                heads,
                AttentionMask::Causal,
                0.0,
                kernels,
                &mut Ctx::eval(),
            )
            .expect("attention")
        }
    };
    row(
        "causal attention 12x64x384",
        time(reps, &qkv, &attend(Kernels::Fused)),
        time(reps, &qkv, &attend(Kernels::Composed)),
    );

    let logits = input(&[rows, classes], 4);
    let targets = Tensor::from_vec(
        (0..rows as u32)
            .map(|i| i % classes as u32)
            .collect::<Vec<_>>(),
        rows,
        &Device::Cpu,
    )
    .expect("targets");
    row(
        "cross-entropy 768x65",
        time(reps, &logits, &|t| {
            gradus_kernels::cross_entropy(t, &targets).expect("loss")
        }),
        time(reps, &logits, &|t| {
            candle_nn_free_log_softmax(t)
                .gather(&targets.unsqueeze(1).expect("u"), 1)
                .expect("gather")
                .neg()
                .expect("neg")
        }),
    );
}

/// log-softmax composed of candle ops (as `candle_nn::ops::log_softmax`).
fn candle_nn_free_log_softmax(x: &Tensor) -> Tensor {
    let max = x.max_keepdim(D::Minus1).expect("max");
    let shifted = x.broadcast_sub(&max).expect("sub");
    let lse = shifted
        .exp()
        .expect("exp")
        .sum_keepdim(D::Minus1)
        .expect("sum")
        .log()
        .expect("log");
    shifted.broadcast_sub(&lse).expect("sub")
}
