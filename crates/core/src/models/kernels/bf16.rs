//! bfloat16 matrix products `y = x W^T` for linear layers: the weight rounded to bf16 once (at
//! load), each row of `x` rounded to bf16 on the fly, products summed in f32.
//!
//! The weight is packed in panels of [`PANEL`] output columns; within a panel, pairs of
//! consecutive inputs, each column's two values side by side: the layout of AVX512-BF16's
//! `vdpbf16ps`, which multiplies two bf16 pairs and adds both products to an f32 lane (32
//! multiply-adds per instruction, twice float32's). CPUs without it decode the pairs to f32 and
//! multiply in f32: the same storage, half the memory of float32.

use super::math::multiversion;
#[cfg(target_arch = "x86_64")]
use super::packed::{debug_check_panel, row_blocks};
use super::packed::{PanelKernel, Panels, RowCode, PANEL};

/// Inputs per pair (the values one `vdpbf16ps` lane takes).
const PAIR: usize = 2;

/// `x` rounded to the nearest bf16 (ties to even), as its bits: adding `0x7fff` plus the
/// lowest kept bit carries into the kept half exactly when the dropped half is above the
/// midpoint, or at it with an odd kept half. Branch-free, so that it vectorises; NaN stays a
/// quiet NaN.
#[inline(always)]
fn to_bf16(x: f32) -> u16 {
    let bits = x.to_bits();
    let rounded = (bits.wrapping_add(0x7fff + ((bits >> 16) & 1)) >> 16) as u16;
    if x.is_nan() {
        0x7fc0
    } else {
        rounded
    }
}

#[inline(always)]
fn from_bf16(bits: u16) -> f32 {
    f32::from_bits(u32::from(bits) << 16)
}

/// A weight `[n, k]` (PyTorch's `[out, in]`) in bf16, packed for the kernels.
#[derive(Clone, Debug)]
pub(crate) struct Bf16Weight {
    /// bf16 bits.
    panels: Panels<u16>,
}

impl Bf16Weight {
    /// Rounds `w` `[n, k]` (PyTorch's `[out, in]`, row-major) to bf16 and packs it.
    pub(crate) fn from_f32(w: &[f32], n: usize, k: usize) -> Self {
        Bf16Weight {
            panels: Panels::pack::<_, PAIR>(w, n, k, to_bf16),
        }
    }

    /// The weight's bf16 values as f32, `[n, k]`.
    #[cfg(test)]
    pub(crate) fn to_f32(&self) -> Vec<f32> {
        let (k, n) = (self.panels.in_features(), self.panels.out_features());
        (0..n * k)
            .map(|at| from_bf16(self.panels.get(at / k, at % k)))
            .collect()
    }
}

impl PanelKernel for Bf16Weight {
    type X = u16;
    type W = u16;
    type Acc = f32;
    const LANE: usize = PAIR;
    const X_ZERO: u16 = 0;

    fn panels(&self) -> &Panels<u16> {
        &self.panels
    }

    fn encode_row(row: &[f32], out: &mut [u16]) -> RowCode {
        round_row(row, out);
        RowCode::IDENTITY
    }

    fn dot_panel(xb: &[u16], stride: usize, rows: usize, w: &[u16], pairs: usize, acc: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        if avx512_bf16() {
            // SAFETY: avx512_bf16() reports AVX-512 F and BF16 only when the CPU has them.
            unsafe { bf16_panel(xb, stride, rows, w, pairs, acc) };
            return;
        }
        dot_panel_portable(xb, stride, rows, w, pairs, acc);
    }

    fn finish(&self, acc: &[f32], _code: RowCode, _c0: usize, y: &mut [f32]) {
        y.copy_from_slice(acc);
    }
}

multiversion! {
    fn round_row(row: &[f32], out: &mut [u16]) {
        for (b, &v) in out.iter_mut().zip(row) {
            *b = to_bf16(v);
        }
    }
}

multiversion! {
    fn dot_panel_portable(xb: &[u16], stride: usize, rows: usize, w: &[u16], pairs: usize, acc: &mut [f32]) {
        for r in 0..rows {
            let x = &xb[r * stride..(r + 1) * stride];
            let a = &mut acc[r * PANEL..(r + 1) * PANEL];
            for p in 0..pairs {
                let (x0, x1) = (from_bf16(x[p * PAIR]), from_bf16(x[p * PAIR + 1]));
                let ws = &w[p * PANEL * PAIR..(p + 1) * PANEL * PAIR];
                for (a, w2) in a.iter_mut().zip(ws.chunks_exact(PAIR)) {
                    *a += x0 * from_bf16(w2[0]) + x1 * from_bf16(w2[1]);
                }
            }
        }
    }
}

/// Whether the AVX512-BF16 kernel runs: AVX-512 chosen (see `math::isa`) and BF16 present.
#[cfg(target_arch = "x86_64")]
fn avx512_bf16() -> bool {
    use super::math::{isa, Isa};
    isa() == Isa::Avx512 && std::arch::is_x86_feature_detected!("avx512bf16")
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn bf16_panel(
    xb: &[u16],
    stride: usize,
    rows: usize,
    w: &[u16],
    pairs: usize,
    acc: &mut [f32],
) {
    macro_rules! block {
        ($n:literal, $r:expr) => {
            bf16_block::<$n>(&xb[$r * stride..], stride, w, pairs, &mut acc[$r * PANEL..])
        };
    }
    row_blocks!(rows, block, 6, [5, 4, 3, 2, 1]);
}

/// `R` rows against one panel: `R x 4` accumulators of sixteen f32 lanes held in registers.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn bf16_block<const R: usize>(
    xb: &[u16],
    stride: usize,
    w: &[u16],
    pairs: usize,
    acc: &mut [f32],
) {
    use std::arch::x86_64::*;
    debug_check_panel(xb, stride, R, pairs * PAIR, w, acc);
    let mut sums = [[_mm512_setzero_ps(); 4]; R];
    let x = xb.as_ptr();
    let wp = w.as_ptr();
    for p in 0..pairs {
        // SAFETY: pair p of the panel is PANEL * PAIR values at p * PANEL * PAIR, and row r
        // has pairs * PAIR values at r * stride (checked above). __m512i and __m512bh are the
        // same 64 bytes.
        let load = |offset: usize| -> __m512bh {
            std::mem::transmute(_mm512_loadu_si512(wp.add(p * PANEL * PAIR + offset).cast()))
        };
        let ws = [load(0), load(32), load(64), load(96)];
        for (r, row) in sums.iter_mut().enumerate() {
            let two = x.add(r * stride + p * PAIR).cast::<i32>().read_unaligned();
            let xs: __m512bh = std::mem::transmute(_mm512_set1_epi32(two));
            for (s, w) in row.iter_mut().zip(&ws) {
                *s = _mm512_dpbf16_ps(*s, xs, *w);
            }
        }
    }
    for (r, row) in sums.iter().enumerate() {
        for (j, s) in row.iter().enumerate() {
            _mm512_storeu_ps(acc.as_mut_ptr().add(r * PANEL + j * 16), *s);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::kernels::math::forced;

    fn values(n: usize, seed: u64) -> Vec<f32> {
        let mut state = seed;
        (0..n)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (state >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
            })
            .collect()
    }

    #[test]
    fn bf16_products_match_f64_on_every_instruction_set() {
        for (m, k, n) in [
            (1, 2, 1),
            (3, 7, 65),
            (5, 64, 64),
            (70, 130, 200),
            (9, 384, 129),
        ] {
            let weight = values(n * k, 3 + k as u64);
            let x = values(m * k, 5 + m as u64);
            let w = Bf16Weight::from_f32(&weight, n, k);
            let wb = w.to_f32();
            // The products of the rounded values, in f64.
            let xb: Vec<f64> = x
                .iter()
                .map(|&v| f64::from(from_bf16(to_bf16(v))))
                .collect();
            forced::each(|choice| {
                let mut got = vec![f32::NAN; m * n];
                w.matmul(&x, m, &mut got);
                for r in 0..m {
                    for j in 0..n {
                        let want: f64 = (0..k)
                            .map(|i| xb[r * k + i] * f64::from(wb[j * k + i]))
                            .sum();
                        let g = f64::from(got[r * n + j]);
                        assert!(
                            (g - want).abs() <= 1e-5 * (1.0 + want.abs()) * (k as f64).sqrt(),
                            "{choice:?} m {m} k {k} n {n} [{r}, {j}]: {g} vs {want}"
                        );
                    }
                }
            });
        }
    }

    #[test]
    fn bf16_rounding_matches_the_half_crate() {
        let mut special = vec![
            0.0,
            -0.0,
            1.0,
            f32::MAX,
            f32::MIN,
            f32::MIN_POSITIVE,
            1e-40,
            f32::INFINITY,
            f32::NEG_INFINITY,
        ];
        special.extend(values(2000, 17).iter().map(|v| v * 1e3));
        // Exactly halfway between two bf16 values, with even and odd kept halves.
        special.extend([1.0 + 1.0 / 256.0, 1.0 + 3.0 / 256.0, -(1.0 + 3.0 / 256.0)]);
        for v in special {
            assert_eq!(to_bf16(v), half::bf16::from_f32(v).to_bits(), "{v:e}");
        }
        assert!(from_bf16(to_bf16(f32::NAN)).is_nan());
        let mut out = vec![0u16; 40];
        let row = values(40, 3);
        forced::each(|choice| {
            round_row(&row, &mut out);
            for (b, v) in out.iter().zip(&row) {
                assert_eq!(*b, half::bf16::from_f32(*v).to_bits(), "{choice:?}");
            }
        });
    }

    #[test]
    fn bf16_rounding_is_to_nearest_even() {
        assert_eq!(to_bf16(1.0), 0x3f80);
        // 1 + 2^-8 lies halfway between two bf16 values: ties go to the even one (1.0).
        assert_eq!(to_bf16(1.0 + 1.0 / 256.0), 0x3f80);
        assert_eq!(from_bf16(to_bf16(-2.5)), -2.5);
        let w = Bf16Weight::from_f32(&[0.1, -0.2, 0.3, 0.4], 2, 2);
        let back = w.to_f32();
        for (b, v) in back.iter().zip([0.1f32, -0.2, 0.3, 0.4]) {
            assert!((b - v).abs() <= v.abs() / 256.0, "{b} vs {v}");
        }
    }
}
