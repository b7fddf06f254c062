//! Branch-free f32 math that the compiler vectorises: exp, erf and the activations built on
//! them. Accuracy is a few ulp (checked against f64 references in the tests below), well
//! inside the 1e-5 parity budget; no fused multiply-add is used, so every instruction set
//! computes bit-identical values.

/// An elementwise activation, as torch computes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Activation {
    Identity,
    Tanh,
    Relu,
    Sigmoid,
    /// `torch.nn.functional.gelu` (exact, through erf).
    GeluErf,
    /// GELU with the tanh approximation.
    GeluTanh,
}

const LOG2_E: f32 = std::f32::consts::LOG2_E;
/// ln 2 split so that `n * LN2_HI` is exact for the `n` that occur (Cody and Waite).
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;

/// `e^x`, to about 2 ulp; inputs are clamped to [-87.3, 88], where the result stays a
/// finite, normal f32 (below -87.3 it returns ~1e-38 instead of a denormal or 0).
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    // Adding 1.5 * 2^23 rounds x * log2(e) to the nearest integer n and leaves n in the low
    // mantissa bits, from where it becomes the exponent of 2^n: bit casts and integer adds
    // only, which vectorise (a float-to-int `as` conversion would not).
    const SHIFTER: f32 = 12_582_912.0;
    let x = x.clamp(-87.3, 88.0);
    let t = x * LOG2_E + SHIFTER;
    let n = t - SHIFTER;
    let r = x - n * LN2_HI - n * LN2_LO;
    // |r| <= ln(2) / 2: the Taylor series to degree 7 is within 1e-8 of e^r there.
    let p = 1.0 / 5040.0;
    let p = p * r + 1.0 / 720.0;
    let p = p * r + 1.0 / 120.0;
    let p = p * r + 1.0 / 24.0;
    let p = p * r + 1.0 / 6.0;
    let p = p * r + 0.5;
    let p = p * r + 1.0;
    let p = p * r + 1.0;
    p * f32::from_bits(t.to_bits().wrapping_add(127) << 23)
}

// Least-squares fits by scripts/fit_erf.py: erf(x) / x as a polynomial in x^2 on [0, 1],
// erfc(x) e^(x^2) as a polynomial in x on [1, 4]. Largest error, evaluated in f32: 1.5e-7.
const ERF_SMALL: [f32; 7] = [
    std::f32::consts::FRAC_2_SQRT_PI, // fitted: 1.128_379_2
    -0.376_126_3,
    0.112_836_26,
    -0.026_855_4,
    0.005_191_218_6,
    -0.000_803_484_64,
    7.933_494e-5,
];
const ERFC_SCALED: [f32; 11] = [
    0.992_931_9,
    -1.085_411_3,
    0.880_790_65,
    -0.550_569_8,
    0.264_513_9,
    -0.096_099_68,
    0.025_758_35,
    -0.004_912_156_6,
    0.000_628_234_8,
    -4.818_113e-5,
    1.671_801_8e-6,
];

#[inline(always)]
fn horner<const N: usize>(c: &[f32; N], x: f32) -> f32 {
    let mut acc = c[N - 1];
    for &value in c[..N - 1].iter().rev() {
        acc = acc * x + value;
    }
    acc
}

/// The error function, within 1.5e-7 of the exact value.
#[inline(always)]
pub(crate) fn erf(x: f32) -> f32 {
    let a = x.abs();
    let small = x * horner(&ERF_SMALL, x * x);
    let b = a.clamp(1.0, 4.0);
    let large = (1.0 - horner(&ERFC_SCALED, b) * exp(-(b * b))).copysign(x);
    if a < 1.0 {
        small
    } else {
        large
    }
}

/// GELU as `torch.nn.functional.gelu(x)`: `x / 2 * (1 + erf(x / sqrt(2)))`.
#[inline(always)]
pub(crate) fn gelu_erf(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// `tanh` through `exp`: `1 - 2 / (e^(2x) + 1)`, within 1.2e-7 of the exact value.
#[inline(always)]
pub(crate) fn tanh(x: f32) -> f32 {
    1.0 - 2.0 / (exp(2.0 * x) + 1.0)
}

/// GELU with the tanh approximation (`gelu(x, approximate="tanh")`, `gelu_new`).
#[inline(always)]
pub(crate) fn gelu_tanh(x: f32) -> f32 {
    const SQRT_2_OVER_PI: f32 = 0.797_884_6;
    0.5 * x * (1.0 + tanh(SQRT_2_OVER_PI * (x + 0.044_715 * x * x * x)))
}

#[inline(always)]
pub(crate) fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

/// Which instruction set the vectorised kernels run with, picked once from the CPU.
/// `LATEBIRD_CPU=avx2` or `baseline` lowers it, and `generic` turns the fused kernels off
/// for the Candle-ops path other devices take: the tests run each of them. On aarch64 the
/// baseline is NEON (every aarch64 CPU has it); `DotProd` adds the int8 dot products of
/// Armv8.2 (`sdot`: Graviton 2 and later, Apple M1 and later).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Isa {
    Baseline,
    #[cfg(target_arch = "x86_64")]
    Avx2,
    #[cfg(target_arch = "x86_64")]
    Avx512,
    #[cfg(target_arch = "aarch64")]
    DotProd,
}

fn cpu_choice() -> (Isa, bool) {
    static CHOICE: std::sync::OnceLock<(Isa, bool)> = std::sync::OnceLock::new();
    *CHOICE.get_or_init(|| {
        let detected = detect();
        match std::env::var("LATEBIRD_CPU").as_deref() {
            Ok("generic") => (Isa::Baseline, false),
            Ok("baseline") => (Isa::Baseline, true),
            #[cfg(target_arch = "x86_64")]
            Ok("avx2") => (detected.min(Isa::Avx2), true),
            _ => (detected, true),
        }
    })
}

// Only the x86_64 and aarch64 builds have instruction sets to choose between.
#[cfg_attr(
    not(any(target_arch = "x86_64", target_arch = "aarch64")),
    allow(dead_code)
)]
pub(crate) fn isa() -> Isa {
    #[cfg(test)]
    if let Some(forced::Choice::Kernels(isa)) = forced::get() {
        return isa;
    }
    cpu_choice().0
}

/// Whether the fused CPU kernels are used (see [`Isa`]).
pub(crate) fn fused_kernels() -> bool {
    #[cfg(test)]
    if let Some(choice) = forced::get() {
        return choice != forced::Choice::Generic;
    }
    cpu_choice().1
}

/// Every instruction set this CPU can run, lowest first.
#[cfg(test)]
pub(crate) fn available() -> Vec<Isa> {
    let all = [
        Isa::Baseline,
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2,
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512,
        #[cfg(target_arch = "aarch64")]
        Isa::DotProd,
    ];
    let detected = detect();
    all.into_iter().filter(|isa| *isa <= detected).collect()
}

/// Unit tests run every kernel on every instruction set, and the Candle-ops path, in one
/// `cargo test`: a test calls [`forced::each`], which sets the choice process-wide (the
/// kernels run on pool threads) for each in turn, one such test at a time.
#[cfg(test)]
pub(crate) mod forced {
    use std::sync::atomic::{AtomicU8, Ordering};
    use std::sync::Mutex;

    use super::{available, Isa};

    /// How the layers run while a test forces it.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub(crate) enum Choice {
        /// The fused kernels, compiled for this instruction set.
        Kernels(Isa),
        /// The Candle ops other devices run.
        Generic,
    }

    /// 0: not forced; GENERIC; otherwise 1 + the position in [`available`].
    static FORCED: AtomicU8 = AtomicU8::new(0);
    const GENERIC: u8 = u8::MAX;
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

    pub(crate) fn get() -> Option<Choice> {
        match FORCED.load(Ordering::Relaxed) {
            0 => None,
            GENERIC => Some(Choice::Generic),
            i => available()
                .get(usize::from(i) - 1)
                .map(|&isa| Choice::Kernels(isa)),
        }
    }

    /// Every choice this CPU can run: each instruction set's kernels, then the Candle ops.
    pub(crate) fn all() -> Vec<Choice> {
        let mut all: Vec<Choice> = available().into_iter().map(Choice::Kernels).collect();
        all.push(Choice::Generic);
        all
    }

    /// Runs `f(choice)` with each of [`all`] forced in turn.
    pub(crate) fn each(mut f: impl FnMut(Choice)) {
        let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
        let isas = available();
        for choice in all() {
            let code = match choice {
                Choice::Generic => GENERIC,
                Choice::Kernels(isa) => 1 + isas.iter().position(|&i| i == isa).unwrap_or(0) as u8,
            };
            FORCED.store(code, Ordering::Relaxed);
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(choice)));
            FORCED.store(0, Ordering::Relaxed);
            if let Err(panic) = outcome {
                std::panic::resume_unwind(panic);
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
fn detect() -> Isa {
    if is_x86_feature_detected!("avx512f")
        && is_x86_feature_detected!("avx512bw")
        && is_x86_feature_detected!("avx512dq")
        && is_x86_feature_detected!("avx512vl")
        && is_x86_feature_detected!("fma")
    {
        Isa::Avx512
    } else if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
        Isa::Avx2
    } else {
        Isa::Baseline
    }
}

#[cfg(target_arch = "aarch64")]
fn detect() -> Isa {
    if std::arch::is_aarch64_feature_detected!("dotprod") {
        Isa::DotProd
    } else {
        Isa::Baseline
    }
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
fn detect() -> Isa {
    Isa::Baseline
}

/// Defines a function whose body is compiled three times, for AVX-512, for AVX2 and for the
/// baseline target, and runs the copy the CPU supports: one source, vectorised by the
/// compiler for each instruction set, chosen at run time.
macro_rules! multiversion {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $body:block) => {
        $(#[$meta])*
        $vis fn $name($($arg: $ty),*) {
            #[inline(always)]
            fn body($($arg: $ty),*) $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")]
                unsafe fn avx512($($arg: $ty),*) {
                    body($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                unsafe fn avx2($($arg: $ty),*) {
                    body($($arg),*)
                }
                match $crate::models::kernels::math::isa() {
                    // SAFETY: isa() reports these features only when the CPU has them.
                    $crate::models::kernels::math::Isa::Avx512 => return unsafe { avx512($($arg),*) },
                    $crate::models::kernels::math::Isa::Avx2 => return unsafe { avx2($($arg),*) },
                    $crate::models::kernels::math::Isa::Baseline => {}
                }
            }
            body($($arg),*)
        }
    };
}
pub(crate) use multiversion;

/// Sum of `f(x)` over a slice with sixteen independent accumulators, so that it vectorises.
#[inline(always)]
pub(crate) fn lane_sum(xs: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut acc = [0f32; 16];
    let chunks = xs.chunks_exact(16);
    let tail: f32 = chunks.remainder().iter().map(|&x| f(x)).sum();
    for chunk in chunks {
        for (a, &x) in acc.iter_mut().zip(chunk) {
            *a += f(x);
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// Largest value of a slice (`-inf` when empty), vectorised like [`lane_sum`].
#[inline(always)]
pub(crate) fn lane_max(xs: &[f32]) -> f32 {
    lane_reduce(xs, f32::NEG_INFINITY, |m, x| if x > m { x } else { m })
}

/// `pick` folded over `xs` from `init`, over sixteen independent lanes so that it vectorises
/// (`pick` a comparison-select such as max or min, for which the order does not matter).
#[inline(always)]
pub(crate) fn lane_reduce(xs: &[f32], init: f32, pick: impl Fn(f32, f32) -> f32) -> f32 {
    let mut acc = [init; 16];
    let chunks = xs.chunks_exact(16);
    let tail = chunks.remainder().iter().fold(init, |m, &x| pick(m, x));
    for chunk in chunks {
        for (a, &x) in acc.iter_mut().zip(chunk) {
            *a = pick(*a, x);
        }
    }
    acc.iter().fold(tail, |m, &x| pick(m, x))
}

/// `xs = act(xs + bias)` row by row (`bias` has one value per column); inlined into the
/// multiversioned kernels that use it.
#[inline(always)]
pub(crate) fn bias_activation_inline(xs: &mut [f32], bias: Option<&[f32]>, activation: Activation) {
    if let Some(bias) = bias {
        for row in xs.chunks_exact_mut(bias.len()) {
            for (x, b) in row.iter_mut().zip(bias) {
                *x += b;
            }
        }
    }
    // Plain loops, not `for_each` closures: everything must inline into the caller's
    // instruction set to vectorise.
    match activation {
        Activation::Identity => {}
        Activation::GeluErf => {
            for x in xs.iter_mut() {
                *x = gelu_erf(*x);
            }
        }
        Activation::GeluTanh => {
            for x in xs.iter_mut() {
                *x = gelu_tanh(*x);
            }
        }
        Activation::Relu => {
            for x in xs.iter_mut() {
                *x = x.max(0.0);
            }
        }
        Activation::Sigmoid => {
            for x in xs.iter_mut() {
                *x = sigmoid(*x);
            }
        }
        Activation::Tanh => {
            for x in xs.iter_mut() {
                *x = tanh(*x);
            }
        }
    }
}

multiversion! {
    /// [`bias_activation_inline`], vectorised for the CPU.
    pub(crate) fn bias_activation(xs: &mut [f32], bias: Option<&[f32]>, activation: Activation) {
        bias_activation_inline(xs, bias, activation)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid() -> impl Iterator<Item = f32> {
        (-200_000..=200_000).map(|i| i as f32 * 6e-5)
    }

    fn worst(f: impl Fn(f32) -> f32, reference: impl Fn(f64) -> f64, relative: bool) -> f64 {
        grid()
            .map(|x| {
                let exact = reference(f64::from(x));
                let diff = (f64::from(f(x)) - exact).abs();
                if relative {
                    diff / exact.abs().max(f64::MIN_POSITIVE)
                } else {
                    diff
                }
            })
            .fold(0.0, f64::max)
    }

    #[test]
    fn exp_is_within_a_few_ulp() {
        let err = worst(exp, f64::exp, true);
        assert!(err < 2.5e-7, "exp relative error {err:e}");
        for x in [-1e30, -200.0, -87.4, 88.5, 1e30, f32::NEG_INFINITY] {
            let y = exp(x);
            assert!(y.is_finite() && y >= 0.0, "exp({x}) = {y}");
        }
        assert!(exp(-100.0) < 2e-38);
    }

    #[test]
    fn erf_and_gelu_match_f64_references() {
        let erf64 = candle_core::cpu::erf::erf_f64;
        let err = worst(erf, erf64, false);
        assert!(err < 2e-7, "erf absolute error {err:e}");
        let gelu64 = |x: f64| 0.5 * x * (1.0 + erf64(x / std::f64::consts::SQRT_2));
        let err = worst(gelu_erf, gelu64, false);
        assert!(err < 1e-6, "gelu absolute error {err:e}");
        let err = worst(tanh, f64::tanh, false);
        assert!(err < 2.5e-7, "tanh absolute error {err:e}");
        let err = worst(sigmoid, |x| 1.0 / (1.0 + (-x).exp()), false);
        assert!(err < 2e-7, "sigmoid absolute error {err:e}");
        assert_eq!(gelu_erf(0.0), 0.0);
        assert_eq!(erf(1e-30), 1e-30 * ERF_SMALL[0]);
        assert_eq!(erf(10.0), 1.0);
        assert_eq!(erf(-10.0), -1.0);
    }

    #[test]
    fn every_instruction_set_gives_the_same_values() {
        let xs: Vec<f32> = grid().step_by(97).collect();
        let scalar: Vec<f32> = xs.iter().map(|&x| gelu_erf(x)).collect();
        let mut seen = Vec::new();
        forced::each(|choice| {
            if let forced::Choice::Kernels(isa) = choice {
                assert_eq!(super::isa(), isa);
            }
            let mut vectorised = xs.clone();
            bias_activation(&mut vectorised, None, Activation::GeluErf);
            assert_eq!(vectorised, scalar, "{choice:?}");
            seen.push(choice);
        });
        assert_eq!(seen, forced::all());
    }
}
