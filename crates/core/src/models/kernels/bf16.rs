//! bfloat16 matrix products `y = x W^T` for linear layers: the weight rounded to bf16 once (at
//! load), each row of `x` rounded to bf16 on the fly, products summed in f32.
//!
//! The weight is packed in panels of [`PANEL`] output columns; within a panel, pairs of
//! consecutive inputs, each column's two values side by side: the layout of AVX512-BF16's
//! `vdpbf16ps`, which multiplies two bf16 pairs and adds both products to an f32 lane (32
//! multiply-adds per instruction, twice float32's). CPUs without it decode the pairs to f32 and
//! multiply in f32: the same storage, half the memory of float32.

use rayon::prelude::*;

use super::math::multiversion;

/// Output columns per panel: four vectors of sixteen f32 lanes.
pub(crate) const PANEL: usize = 64;
/// Inputs per pair (the values one `vdpbf16ps` lane takes).
const PAIR: usize = 2;
/// Rows of `x` per register block (of the x86-64 kernels).
#[cfg(target_arch = "x86_64")]
const MR: usize = 4;

/// `x` rounded to the nearest bf16 (ties to even), as its bits.
#[inline(always)]
fn to_bf16(x: f32) -> u16 {
    half::bf16::from_f32(x).to_bits()
}

#[inline(always)]
fn from_bf16(bits: u16) -> f32 {
    f32::from_bits(u32::from(bits) << 16)
}

/// A weight `[n, k]` (PyTorch's `[out, in]`) in bf16, packed for the kernels.
#[derive(Clone, Debug)]
pub(crate) struct Bf16Weight {
    k: usize,
    n: usize,
    /// `ceil(k / 2)` pairs of inputs.
    pairs: usize,
    /// `[ceil(n / PANEL)][pairs][PANEL][2]` bf16 bits, zeros past `k` and `n`.
    packed: Vec<u16>,
}

impl Bf16Weight {
    /// Rounds `w_t` `[k, n]` (the transposed weight, row-major) to bf16 and packs it.
    pub(crate) fn from_f32(w_t: &[f32], k: usize, n: usize) -> Self {
        let pairs = k.div_ceil(PAIR);
        let panels = n.div_ceil(PANEL);
        let mut packed = vec![0u16; panels * pairs * PANEL * PAIR];
        for (i, row) in w_t.chunks_exact(n).enumerate() {
            for (j, &w) in row.iter().enumerate() {
                let (panel, column) = (j / PANEL, j % PANEL);
                packed[((panel * pairs + i / PAIR) * PANEL + column) * PAIR + i % PAIR] =
                    to_bf16(w);
            }
        }
        Bf16Weight {
            k,
            n,
            pairs,
            packed,
        }
    }

    pub(crate) fn in_features(&self) -> usize {
        self.k
    }

    pub(crate) fn out_features(&self) -> usize {
        self.n
    }

    /// The weight's bf16 values as f32, `[k, n]` (transposed, as the f32 form stores it).
    #[cfg(test)]
    pub(crate) fn to_f32_t(&self) -> Vec<f32> {
        let mut w_t = vec![0f32; self.k * self.n];
        for j in 0..self.n {
            let (panel, column) = (j / PANEL, j % PANEL);
            for i in 0..self.k {
                let at = ((panel * self.pairs + i / PAIR) * PANEL + column) * PAIR + i % PAIR;
                w_t[i * self.n + j] = from_bf16(self.packed[at]);
            }
        }
        w_t
    }

    /// `y = x W^T` for `x` `[m, k]`, into `out` `[m, n]`, on the thread pool.
    pub(crate) fn matmul(&self, x: &[f32], m: usize, out: &mut [f32]) {
        let (k, n, pairs) = (self.k, self.n, self.pairs);
        debug_assert_eq!(x.len(), m * k);
        debug_assert_eq!(out.len(), m * n);
        let stride = pairs * PAIR;
        let mut xb = vec![0u16; m * stride];
        xb.par_chunks_mut(stride)
            .zip(x.par_chunks(k))
            .for_each(|(b, row)| {
                for (b, &v) in b.iter_mut().zip(row) {
                    *b = to_bf16(v);
                }
            });
        let panels = n.div_ceil(PANEL);
        let rows_per_task = if m <= 64 { m.max(1) } else { 64 };
        let blocks = m.div_ceil(rows_per_task);
        let out_ptr = OutPtr(out.as_mut_ptr());
        (0..panels * blocks).into_par_iter().for_each(|task| {
            let (panel, block) = (task % panels, task / panels);
            let first = block * rows_per_task;
            let rows = rows_per_task.min(m - first);
            let weights = &self.packed[panel * pairs * PANEL * PAIR..][..pairs * PANEL * PAIR];
            let mut acc = vec![0f32; rows * PANEL];
            dot_panel(
                &xb[first * stride..(first + rows) * stride],
                stride,
                rows,
                weights,
                pairs,
                &mut acc,
            );
            let c0 = panel * PANEL;
            let width = PANEL.min(n - c0);
            for r in 0..rows {
                // SAFETY: row first + r, columns c0..c0 + width of the [m, n] output belong to
                // this task alone.
                let y = unsafe {
                    std::slice::from_raw_parts_mut(out_ptr.at((first + r) * n + c0), width)
                };
                y.copy_from_slice(&acc[r * PANEL..r * PANEL + width]);
            }
        });
    }
}

#[derive(Clone, Copy)]
struct OutPtr(*mut f32);
// SAFETY: tasks write disjoint (rows, columns) blocks.
unsafe impl Send for OutPtr {}
unsafe impl Sync for OutPtr {}

impl OutPtr {
    fn at(self, offset: usize) -> *mut f32 {
        self.0.wrapping_add(offset)
    }
}

/// `acc[r][c] = sum_i x[r][i] * w[c][i]` for one panel, on the best instruction set the CPU
/// has.
fn dot_panel(xb: &[u16], stride: usize, rows: usize, w: &[u16], pairs: usize, acc: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if avx512_bf16() {
        // SAFETY: avx512_bf16() reports AVX-512 F and BF16 only when the CPU has them.
        unsafe { bf16_panel(xb, stride, rows, w, pairs, acc) };
        return;
    }
    dot_panel_portable(xb, stride, rows, w, pairs, acc);
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
    let mut r = 0;
    while r + MR <= rows {
        bf16_block::<MR>(&xb[r * stride..], stride, w, pairs, &mut acc[r * PANEL..]);
        r += MR;
    }
    match rows - r {
        3 => bf16_block::<3>(&xb[r * stride..], stride, w, pairs, &mut acc[r * PANEL..]),
        2 => bf16_block::<2>(&xb[r * stride..], stride, w, pairs, &mut acc[r * PANEL..]),
        1 => bf16_block::<1>(&xb[r * stride..], stride, w, pairs, &mut acc[r * PANEL..]),
        _ => {}
    }
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
    debug_assert!(xb.len() >= (R - 1) * stride + pairs * PAIR);
    debug_assert!(w.len() >= pairs * PANEL * PAIR);
    debug_assert!(acc.len() >= R * PANEL);
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
            let w_t = values(k * n, 3 + k as u64);
            let x = values(m * k, 5 + m as u64);
            let w = Bf16Weight::from_f32(&w_t, k, n);
            let wb = w.to_f32_t();
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
                            .map(|i| xb[r * k + i] * f64::from(wb[i * n + j]))
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
    fn bf16_rounding_is_to_nearest_even() {
        assert_eq!(to_bf16(1.0), 0x3f80);
        // 1 + 2^-8 lies halfway between two bf16 values: ties go to the even one (1.0).
        assert_eq!(to_bf16(1.0 + 1.0 / 256.0), 0x3f80);
        assert_eq!(from_bf16(to_bf16(-2.5)), -2.5);
        let w = Bf16Weight::from_f32(&[0.1, -0.2, 0.3, 0.4], 2, 2);
        let back = w.to_f32_t();
        for (b, v) in back.iter().zip([0.1f32, -0.2, 0.3, 0.4]) {
            assert!((b - v).abs() <= v.abs() / 256.0, "{b} vs {v}");
        }
    }
}
