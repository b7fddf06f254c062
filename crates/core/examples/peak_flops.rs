//! Measures this machine's peak f32 FMA throughput, the ceiling for the benchmark's GFLOP/s.
//!
//! ```text
//! cargo run --release -p latebird --example peak_flops [-- --threads 2 --seconds 0.5]
//! ```
//!
//! Every thread runs a loop of fused multiply-adds on many independent accumulators (so the
//! FMA latency is hidden and every FMA port is busy), once with AVX-512F (16 f32 lanes, 24
//! accumulators) and once with AVX2+FMA (8 lanes, 12 accumulators), each when the CPU has it
//! (detected at run time). One FMA counts as 2 FLOPs per lane. Each figure is the best of
//! five timed runs; the last line names the best ISA. Lines look like
//! `avx512f: 2 threads, 24 accumulators x 16 lanes: 345.6 GFLOP/s`.
//!
//! The AVX-512 intrinsics are stable since Rust 1.89 (the workspace's minimum).

use std::hint::black_box;
use std::sync::Barrier;
use std::time::{Duration, Instant};

/// One timed kernel: runs `iters` loop trips and returns the FLOPs done.
type Kernel = fn(u64) -> f64;

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;
    use std::hint::black_box;

    pub const AVX512_ACC: usize = 24;
    pub const AVX2_ACC: usize = 12;

    /// AVX-512F: `AVX512_ACC` zmm accumulators, each `acc = acc * a + b` per trip.
    ///
    /// # Safety
    /// The CPU must support AVX-512F.
    #[target_feature(enable = "avx512f")]
    unsafe fn fma512(iters: u64) -> f32 {
        let a = _mm512_set1_ps(black_box(0.999_999));
        let b = _mm512_set1_ps(black_box(1e-6));
        let mut acc = [_mm512_set1_ps(black_box(0.5)); AVX512_ACC];
        for _ in 0..iters {
            for x in acc.iter_mut() {
                *x = _mm512_fmadd_ps(*x, a, b);
            }
        }
        let mut sum = _mm512_setzero_ps();
        for x in acc {
            sum = _mm512_add_ps(sum, x);
        }
        _mm512_reduce_add_ps(sum)
    }

    /// AVX2+FMA: `AVX2_ACC` ymm accumulators (16 registers in all).
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn fma256(iters: u64) -> f32 {
        let a = _mm256_set1_ps(black_box(0.999_999));
        let b = _mm256_set1_ps(black_box(1e-6));
        let mut acc = [_mm256_set1_ps(black_box(0.5)); AVX2_ACC];
        for _ in 0..iters {
            for x in acc.iter_mut() {
                *x = _mm256_fmadd_ps(*x, a, b);
            }
        }
        let mut sum = _mm256_setzero_ps();
        for x in acc {
            sum = _mm256_add_ps(sum, x);
        }
        let mut lanes = [0f32; 8];
        _mm256_storeu_ps(lanes.as_mut_ptr(), sum);
        lanes.iter().sum()
    }

    pub fn avx512(iters: u64) -> f64 {
        // SAFETY: only called after is_x86_feature_detected!("avx512f").
        black_box(unsafe { fma512(iters) });
        (iters * AVX512_ACC as u64 * 16 * 2) as f64
    }

    pub fn avx2(iters: u64) -> f64 {
        // SAFETY: only called after is_x86_feature_detected!("avx2") and ("fma").
        black_box(unsafe { fma256(iters) });
        (iters * AVX2_ACC as u64 * 8 * 2) as f64
    }

    pub fn kernels() -> Vec<(&'static str, usize, usize, super::Kernel)> {
        let mut out: Vec<(&'static str, usize, usize, super::Kernel)> = Vec::new();
        if is_x86_feature_detected!("avx512f") {
            out.push(("avx512f", AVX512_ACC, 16, avx512));
        }
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            out.push(("avx2+fma", AVX2_ACC, 8, avx2));
        }
        out
    }
}

#[cfg(not(target_arch = "x86_64"))]
mod x86 {
    pub fn kernels() -> Vec<(&'static str, usize, usize, super::Kernel)> {
        Vec::new()
    }
}

/// GFLOP/s of `kernel` on `threads` threads started together, each running `iters` trips.
/// The time is the slowest thread's, so idle cores are not hidden.
fn measure(kernel: Kernel, threads: usize, iters: u64) -> f64 {
    let barrier = Barrier::new(threads);
    let results: Vec<(f64, Duration)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    let start = Instant::now();
                    let flops = kernel(black_box(iters));
                    (flops, start.elapsed())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("worker thread"))
            .collect()
    });
    let flops: f64 = results.iter().map(|r| r.0).sum();
    let slowest = results
        .iter()
        .map(|r| r.1)
        .max()
        .expect("at least one thread");
    flops / slowest.as_secs_f64() / 1e9
}

fn arg<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> T {
    match args.iter().position(|a| a == name) {
        Some(i) => args
            .get(i + 1)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} needs a value")),
        None => default,
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let threads: usize = arg(&args, "--threads", 2);
    let seconds: f64 = arg(&args, "--seconds", 0.5);
    let kernels = x86::kernels();
    if kernels.is_empty() {
        eprintln!("no AVX-512F or AVX2+FMA on this CPU: nothing to measure");
        std::process::exit(1);
    }
    let mut best: Option<(&str, f64)> = None;
    for (name, accumulators, lanes, kernel) in kernels {
        // Calibrate the trip count so that one run lasts about `seconds`.
        let mut iters = 1u64 << 16;
        loop {
            let start = Instant::now();
            kernel(black_box(iters));
            let took = start.elapsed().as_secs_f64();
            if took > 0.05 {
                iters = ((iters as f64) * seconds / took).max(1.0) as u64;
                break;
            }
            iters *= 4;
        }
        let gflops = (0..5)
            .map(|_| measure(kernel, threads, iters))
            .fold(0.0f64, f64::max);
        println!("{name}: {threads} threads, {accumulators} accumulators x {lanes} lanes: {gflops:.1} GFLOP/s");
        if best.is_none_or(|(_, g)| gflops > g) {
            best = Some((name, gflops));
        }
    }
    let (name, gflops) = best.expect("one kernel ran");
    println!("best: {gflops:.1} GFLOP/s ({name}, {threads} threads)");
}
