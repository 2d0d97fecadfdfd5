//! How fast this machine runs the matrix products of training, against its own peak.
//!
//! The peak is measured, not looked up: a loop of independent AVX-512 (or AVX2) fused
//! multiply-adds on registers, one per thread, gives the FLOP/s the cores reach at the
//! frequency they actually run. Then `gemm` (what candle multiplies with) runs the
//! products of the nanoGPT and BERT-mini steps, single-threaded and on the pool, and each
//! is printed as GFLOP/s and as a share of that peak. A machine where the share drops
//! far below the figures in ARCHITECTURE.md is slow for gradus, whatever else it runs.

#![allow(clippy::print_stdout)] // a benchmark reports on stdout
#![allow(unsafe_code)] // raw gemm calls and SIMD intrinsics

use std::time::Instant;

use gemm::Parallelism;

/// FMA lanes per instruction and the name of the widest vector unit this CPU has.
fn vector_unit() -> (&'static str, usize) {
    if std::arch::is_x86_feature_detected!("avx512f") {
        ("avx512f", 16)
    } else if std::arch::is_x86_feature_detected!("fma") {
        ("avx2+fma", 8)
    } else {
        ("scalar", 1)
    }
}

/// GFLOP/s of one thread doing nothing but FMAs on 12 independent registers.
fn fma_peak_one_thread() -> f64 {
    let iters = 20_000_000u64;
    let t = Instant::now();
    let lanes = unsafe { fma_loop(iters) };
    let secs = t.elapsed().as_secs_f64();
    // 12 chains, 2 FLOP per lane per FMA.
    (iters * 12 * 2 * lanes as u64) as f64 / secs / 1e9
}

#[cfg(target_arch = "x86_64")]
unsafe fn fma_loop(iters: u64) -> usize {
    if std::arch::is_x86_feature_detected!("avx512f") {
        unsafe { fma_loop_avx512(iters) };
        16
    } else if std::arch::is_x86_feature_detected!("fma") {
        unsafe { fma_loop_avx2(iters) };
        8
    } else {
        1
    }
}

macro_rules! fma_chains {
    ($name:ident, $feat:literal, $ty:ty, $set:ident, $fma:ident, $store:ident, $lanes:literal) => {
        #[target_feature(enable = $feat)]
        unsafe fn $name(iters: u64) {
            use std::arch::x86_64::*;
            let m = $set(1.000_000_1);
            let a = $set(1e-7);
            let mut acc: [$ty; 12] = [$set(0.0); 12];
            for _ in 0..iters {
                for r in acc.iter_mut() {
                    *r = $fma(*r, m, a);
                }
            }
            let mut out = [0f32; $lanes];
            for r in acc {
                unsafe { $store(out.as_mut_ptr(), r) };
                std::hint::black_box(out);
            }
        }
    };
}
fma_chains!(
    fma_loop_avx512,
    "avx512f",
    __m512,
    _mm512_set1_ps,
    _mm512_fmadd_ps,
    _mm512_storeu_ps,
    16
);
fma_chains!(
    fma_loop_avx2,
    "avx2,fma",
    __m256,
    _mm256_set1_ps,
    _mm256_fmadd_ps,
    _mm256_storeu_ps,
    8
);

/// `[m, k] × [k, n]`, all row-major, as candle lays out a linear layer's product.
fn gemm_gflops(m: usize, k: usize, n: usize, threads: usize, reps: usize) -> f64 {
    let a: Vec<f32> = (0..m * k).map(|i| (i % 7) as f32 * 0.1).collect();
    let b: Vec<f32> = (0..k * n).map(|i| (i % 5) as f32 * 0.1).collect();
    let mut c = vec![0f32; m * n];
    let par = if threads > 1 {
        Parallelism::Rayon(threads)
    } else {
        Parallelism::None
    };
    let run = |c: &mut [f32]| unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            false,
            a.as_ptr(),
            1,
            k as isize,
            b.as_ptr(),
            1,
            n as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            par,
        )
    };
    run(&mut c);
    let mut times = Vec::with_capacity(reps);
    for _ in 0..reps {
        let t = Instant::now();
        run(&mut c);
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    (2 * m * n * k) as f64 / times[reps / 2] / 1e9
}

/// Below this share of the FMA peak, single-threaded at the training shapes, the machine
/// multiplies matrices far slower than the machines gradus's figures come from (70-80%).
const SLOW_SHARE: f64 = 0.5;

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let reps = if bench { 200 } else { 2 };
    let machine = gradus_testkit::machine::Machine::here();
    println!("{}", machine.line());
    let threads = machine.threads;
    let (unit, lanes) = vector_unit();
    let peak1 = fma_peak_one_thread();
    println!("{unit} ({lanes} f32 lanes): FMA peak {peak1:.1} GFLOP/s per thread (measured)");
    let shapes = [
        ("gpt qkv  768x128 * 128x384", 768, 128, 384),
        ("gpt fc   768x128 * 128x512", 768, 128, 512),
        ("gpt proj 768x512 * 512x128", 768, 512, 128),
        ("gpt dW   128x768 * 768x512", 128, 768, 512),
        ("bert fc  4096x256 * 256x1024", 4096, 256, 1024),
        ("bert mlm 1171x256 * 256x8192", 1171, 256, 8192),
        ("square   512x512 * 512x512", 512, 512, 512),
    ];
    let mut results = vec![serde_json::json!({
        "machine": machine.json(),
        "vector_unit": unit,
        "fma_peak_gflops_per_thread": peak1,
    })];
    let mut single = Vec::new();
    for t in [1, threads] {
        for (name, m, k, n) in shapes {
            let g = gemm_gflops(m, k, n, t, reps);
            let share = g / (peak1 * t as f64);
            if t == 1 {
                single.push(share);
            }
            println!(
                "{name}, {t} thread(s): {g:.1} GFLOP/s = {:.0}% of peak",
                share * 100.0
            );
            results.push(serde_json::json!({
                "shape": name, "threads": t, "gflops": g, "share_of_peak": share,
            }));
        }
        if threads == 1 {
            break;
        }
    }
    single.sort_by(f64::total_cmp);
    let median = single[single.len() / 2];
    let verdict = if median < SLOW_SHARE {
        "SLOW for gradus: its matrix products run far below this CPU's peak"
    } else {
        "ok"
    };
    println!(
        "gemm at the training shapes, 1 thread: median {:.0}% of peak (lowest {:.0}%): {verdict}",
        median * 100.0,
        single[0] * 100.0
    );
    let dir = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into());
    std::fs::create_dir_all(&dir).expect("results folder");
    let path = std::path::Path::new(&dir).join("bench-gemm.json");
    std::fs::write(
        &path,
        serde_json::to_string_pretty(&results).unwrap_or_default(),
    )
    .expect("write results");
    println!("results: {}", path.display());
}
