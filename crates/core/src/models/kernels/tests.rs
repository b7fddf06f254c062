//! Every layer against a naive f64 reference, on every instruction set's kernels and on the
//! Candle-ops path (`forced::each`), in one `cargo test`: bias and no bias, every
//! activation, few rows (the column-panel matmul) and many, attention global and windowed,
//! with rotary tables, query-expansion rows, and rows that have no key to attend to.

use candle_core::{Device, Tensor};

use super::math::forced::{self, Choice};
use super::{Activation, Span};
use crate::models::layers::{packed_attention, LayerNorm, Linear, Packed, Rotary};

/// Deterministic values in [-scale, scale).
fn values(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
        })
        .collect()
}

fn tensor(values: &[f32], shape: &[usize]) -> Tensor {
    Tensor::from_slice(values, shape, &Device::Cpu).unwrap()
}

fn host(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1().unwrap()
}

fn assert_close(got: &[f32], want: &[f64], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let err = (f64::from(*g) - w).abs();
        assert!(
            err <= 2e-5 * (1.0 + w.abs()),
            "{what}: value {i} is {g}, expected {w} (error {err:e})"
        );
    }
}

fn act64(x: f64, activation: Activation) -> f64 {
    let erf = candle_core::cpu::erf::erf_f64;
    match activation {
        Activation::Identity => x,
        Activation::Tanh => x.tanh(),
        Activation::Relu => x.max(0.0),
        Activation::Sigmoid => 1.0 / (1.0 + (-x).exp()),
        Activation::GeluErf => 0.5 * x * (1.0 + erf(x / std::f64::consts::SQRT_2)),
        Activation::GeluTanh => {
            let c = (2.0 / std::f64::consts::PI).sqrt();
            0.5 * x * (1.0 + (c * (x + 0.044715 * x * x * x)).tanh())
        }
    }
}

const ACTIVATIONS: [Activation; 6] = [
    Activation::Identity,
    Activation::Tanh,
    Activation::Relu,
    Activation::Sigmoid,
    Activation::GeluErf,
    Activation::GeluTanh,
];

/// `x W^T + b` in f64, `W` given transposed (`[in, out]`).
fn linear64(x: &[f32], w: &[f32], bias: Option<&[f32]>, rows: usize, n_in: usize) -> Vec<f64> {
    let n_out = w.len() / n_in;
    let mut y = vec![0f64; rows * n_out];
    for r in 0..rows {
        for o in 0..n_out {
            let mut acc = bias.map_or(0.0, |b| f64::from(b[o]));
            for i in 0..n_in {
                acc += f64::from(x[r * n_in + i]) * f64::from(w[o * n_in + i]);
            }
            y[r * n_out + o] = acc;
        }
    }
    y
}

#[test]
fn linear_layers_match_the_reference() {
    // Two panels of outputs, the second partial.
    let (n_in, n_out) = (48, 100);
    let w = values(n_out * n_in, 1, 0.3);
    let b = values(n_out, 2, 0.5);
    forced::each(|choice| {
        // One block of rows, then several with a partial last one.
        for rows in [3, 200, 450] {
            let x = values(rows * n_in, rows as u64, 1.0);
            let res = values(rows * n_out, 7, 1.0);
            for bias in [Some(&b[..]), None] {
                let layer = Linear::new(
                    tensor(&w, &[n_out, n_in]),
                    bias.map(|b| tensor(b, &[n_out])),
                )
                .unwrap();
                let xt = tensor(&x, &[rows, n_in]);
                let want = linear64(&x, &w, bias, rows, n_in);
                for activation in ACTIVATIONS {
                    let got = host(&layer.forward_act(&xt, activation).unwrap());
                    let want: Vec<f64> = want.iter().map(|&v| act64(v, activation)).collect();
                    let what = format!(
                        "{choice:?} rows {rows} bias {} {activation:?}",
                        bias.is_some()
                    );
                    assert_close(&got, &want, &what);
                }
                let got = host(
                    &layer
                        .forward_residual(&xt, &tensor(&res, &[rows, n_out]))
                        .unwrap(),
                );
                let want_res: Vec<f64> = want
                    .iter()
                    .zip(&res)
                    .map(|(y, r)| y + f64::from(*r))
                    .collect();
                assert_close(&got, &want_res, &format!("{choice:?} residual rows {rows}"));
                let half = n_out / 2;
                for activation in [Activation::GeluErf, Activation::GeluTanh] {
                    let got = host(&layer.forward_gated(&xt, activation).unwrap());
                    let want_gated: Vec<f64> = want
                        .chunks_exact(n_out)
                        .flat_map(|row| {
                            (0..half).map(move |i| act64(row[i], activation) * row[half + i])
                        })
                        .collect();
                    assert_close(&got, &want_gated, &format!("{choice:?} gated rows {rows}"));
                }
            }
        }
    });
}

#[test]
fn layer_norm_matches_the_reference() {
    let dim = 72;
    let weight = values(dim, 3, 1.5);
    let bias = values(dim, 4, 0.5);
    // Rows with a large common offset: a one-pass variance would lose them.
    let rows = 70;
    let mut x = values(rows * dim, 5, 2.0);
    for v in &mut x[..dim] {
        *v += 100.0;
    }
    forced::each(|choice| {
        for with_bias in [true, false] {
            let norm = LayerNorm::new(
                tensor(&weight, &[dim]),
                with_bias.then(|| tensor(&bias, &[dim])),
                1e-5,
            );
            let got = host(&norm.forward(&tensor(&x, &[rows, dim])).unwrap());
            let (weight, bias) = (&weight, &bias);
            let want: Vec<f64> = x
                .chunks_exact(dim)
                .flat_map(|row| {
                    let n = dim as f64;
                    let mean = row.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
                    let var = row
                        .iter()
                        .map(|&v| (f64::from(v) - mean).powi(2))
                        .sum::<f64>()
                        / n;
                    let inv = 1.0 / (var + 1e-5).sqrt();
                    row.iter()
                        .enumerate()
                        .map(move |(i, &v)| {
                            (f64::from(v) - mean) * inv * f64::from(weight[i])
                                + if with_bias { f64::from(bias[i]) } else { 0.0 }
                        })
                        .collect::<Vec<_>>()
                })
                .collect();
            assert_close(&got, &want, &format!("{choice:?} bias {with_bias}"));
        }
    });
}

/// Attention of one packed batch in f64: per span and head, q and k rotated by position
/// (rotate-half form) when `theta` is given, scores over keys `j < keys` within the window,
/// softmax, weighted values; a row with no key gets zeros.
fn attention64(
    qkv: &[f32],
    spans: &[Span],
    heads: usize,
    hidden: usize,
    theta: Option<f64>,
    half_window: Option<usize>,
) -> Vec<f64> {
    let d = hidden / heads;
    let width = 3 * hidden;
    let t = qkv.len() / width;
    let mut out = vec![0f64; t * hidden];
    let rotate = |v: &[f64], p: usize| -> Vec<f64> {
        let Some(theta) = theta else {
            return v.to_vec();
        };
        let half = d / 2;
        let mut r = v.to_vec();
        for i in 0..half {
            let inv = 1.0 / theta.powf((2 * i) as f64 / d as f64);
            let (c, s) = ((p as f64 * inv).cos(), (p as f64 * inv).sin());
            r[i] = v[i] * c - v[half + i] * s;
            r[half + i] = v[half + i] * c + v[i] * s;
        }
        r
    };
    let head = |row: usize, part: usize, h: usize| -> Vec<f64> {
        let at = row * width + part * hidden + h * d;
        qkv[at..at + d].iter().map(|&v| f64::from(v)).collect()
    };
    for span in spans {
        for h in 0..heads {
            for i in 0..span.len {
                let q = rotate(&head(span.start + i, 0, h), i);
                let visible: Vec<usize> = (0..span.keys.min(span.len))
                    .filter(|&j| half_window.is_none_or(|w| i.abs_diff(j) <= w))
                    .collect();
                if visible.is_empty() {
                    continue;
                }
                let scores: Vec<f64> = visible
                    .iter()
                    .map(|&j| {
                        let k = rotate(&head(span.start + j, 1, h), j);
                        q.iter().zip(&k).map(|(a, b)| a * b).sum::<f64>() / (d as f64).sqrt()
                    })
                    .collect();
                let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let weights: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
                let total: f64 = weights.iter().sum();
                for (&j, w) in visible.iter().zip(&weights) {
                    let v = head(span.start + j, 2, h);
                    for (c, x) in v.iter().enumerate() {
                        out[(span.start + i) * hidden + h * d + c] += w / total * x;
                    }
                }
            }
        }
    }
    out
}

#[test]
fn attention_matches_the_reference() {
    let (heads, d) = (3, 8);
    let hidden = heads * d;
    // Spans: a long one (several query blocks), query expansion (keys < len), a text whose
    // rows see no key at all, and short ones.
    let lens = [(150, 150), (12, 3), (5, 0), (1, 1), (40, 33)];
    let mut spans = Vec::new();
    let mut start = 0;
    for &(len, keys) in &lens {
        spans.push(Span { start, len, keys });
        start += len;
    }
    let t = start;
    let qkv = values(t * 3 * hidden, 11, 2.0);
    let rotary = Rotary::new(10_000.0, d, 160, &Device::Cpu).unwrap();
    let batch = Packed::new(
        vec![0; t],
        Tensor::zeros(t, candle_core::DType::U32, &Device::Cpu).unwrap(),
        spans.clone(),
    );
    forced::each(|choice| {
        for rope in [false, true] {
            // Window 2 leaves rows 5.. of the (12, 3) span without any key.
            for half_window in [None, Some(2), Some(64)] {
                let got = packed_attention(
                    &tensor(&qkv, &[t, 3 * hidden]),
                    &batch,
                    heads,
                    rope.then_some(&rotary),
                    half_window,
                )
                .unwrap();
                let want = attention64(
                    &qkv,
                    &spans,
                    heads,
                    hidden,
                    rope.then_some(10_000.0),
                    half_window,
                );
                let what = format!("{choice:?} rope {rope} window {half_window:?}");
                assert_close(&host(&got), &want, &what);
            }
        }
    });
}

#[test]
fn every_choice_is_tested() {
    let all = forced::all();
    assert!(all.contains(&Choice::Generic));
    assert!(all.contains(&Choice::Kernels(super::math::Isa::Baseline)));
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
        assert!(all.contains(&Choice::Kernels(super::math::Isa::Avx2)));
    }
    #[cfg(target_arch = "aarch64")]
    if std::arch::is_aarch64_feature_detected!("dotprod") {
        assert!(all.contains(&Choice::Kernels(super::math::Isa::DotProd)));
    }
}
