//! int8 matrix products `y = x W^T` for linear layers: the weight quantized symmetrically per
//! output channel once (at load), each row of `x` quantized symmetrically on the fly, products
//! summed exactly in i32 and scaled back to f32.
//!
//! The weight is packed in panels of [`PANEL`] output columns; within a panel, groups of four
//! consecutive inputs, each column's four values side by side: the layout of AVX-512 VNNI's
//! `vpdpbusd`, which multiplies four unsigned bytes by four signed bytes and adds the four
//! products to an i32 lane. The activations are therefore stored as `q + 128` (unsigned), and
//! `128 * sum(w)` of each column is subtracted afterwards. Integer sums are exact, so every
//! instruction set gives bit-identical results.

use super::math::{lane_reduce, multiversion};
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
use super::packed::{debug_check_panel, row_blocks};
use super::packed::{PanelKernel, Panels, RowCode, PANEL};

/// Inputs per group (the bytes one `vpdpbusd` lane takes).
const GROUP: usize = 4;
/// Largest magnitude of a quantized value: symmetric, so that -127..=127 keeps 0 exact.
const QMAX: f32 = 127.0;

/// A weight `[n, k]` (PyTorch's `[out, in]`) in int8, packed for the kernels.
#[derive(Clone, Debug)]
pub(crate) struct Int8Weight {
    panels: Panels<i8>,
    /// Per output column: the f32 value of one quantization step.
    scales: Vec<f32>,
    /// Per output column: `sum_k q[n, k]`, times which the activations' offsets are removed.
    column_sums: Vec<i32>,
}

impl Int8Weight {
    /// Quantizes `w` `[n, k]` (PyTorch's `[out, in]`, row-major) per output:
    /// `q = round(w / s)` with `s = max|w| / 127`.
    pub(crate) fn quantize(w: &[f32], n: usize, k: usize) -> Self {
        let (q, scales) = quantize_symmetric(w, k);
        Self::from_quantized(&q, scales, n, k)
    }

    /// Packs quantized values `q` `[n, k]` with their per-output `scales`.
    pub(crate) fn from_quantized(q: &[i8], scales: Vec<f32>, n: usize, k: usize) -> Self {
        let column_sums = q
            .chunks(k.max(1))
            .take(n)
            .map(|row| row.iter().map(|&v| i32::from(v)).sum::<i32>())
            .chain(std::iter::repeat(0))
            .take(n)
            .collect();
        Int8Weight {
            panels: Panels::pack::<_, GROUP>(q, n, k, |v| v),
            scales,
            column_sums,
        }
    }

    /// The weight back in f32, `[n, k]`.
    #[cfg(test)]
    pub(crate) fn dequantize(&self) -> Vec<f32> {
        let (k, n) = (self.panels.in_features(), self.panels.out_features());
        (0..n * k)
            .map(|at| f32::from(self.panels.get(at / k, at % k)) * self.scales[at / k])
            .collect()
    }
}

impl PanelKernel for Int8Weight {
    type X = u8;
    type W = i8;
    type Acc = i32;
    const LANE: usize = GROUP;
    /// Activations are stored as `q + 128` (see the module documentation).
    const X_ZERO: u8 = 128;

    fn panels(&self) -> &Panels<i8> {
        &self.panels
    }

    fn encode_row(row: &[f32], out: &mut [u8]) -> RowCode {
        quantize_row(row, out)
    }

    fn dot_panel(xq: &[u8], stride: usize, rows: usize, w: &[i8], groups: usize, acc: &mut [i32]) {
        #[cfg(target_arch = "x86_64")]
        {
            use super::math::{isa, Isa};
            if vnni() {
                // SAFETY: vnni() reports AVX-512 F/BW and VNNI only when the CPU has them.
                unsafe { vnni_panel(xq, stride, rows, w, groups, acc) };
                return;
            }
            if isa() >= Isa::Avx2 {
                // SAFETY: isa() reports AVX2 or better only when the CPU has AVX2.
                unsafe { avx2_panel(xq, stride, rows, w, groups, acc) };
                return;
            }
        }
        #[cfg(target_arch = "aarch64")]
        if super::math::isa() == super::math::Isa::DotProd {
            // SAFETY: isa() reports DotProd only when the CPU has the dot-product instructions.
            unsafe { dotprod_panel(xq, stride, rows, w, groups, acc) };
            return;
        }
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        {
            use super::int8_simd128::{dot_panel, wasm::Simd};
            dot_panel::<Simd>(xq, stride, rows, w, groups, acc);
        }
        #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
        dot_panel_portable(xq, stride, rows, w, groups, acc);
    }

    /// The sums are of the stored `q + 128`: `(128 + zero) * sum(w)` comes off each.
    fn finish(&self, acc: &[i32], code: RowCode, c0: usize, y: &mut [f32]) {
        let offset = 128 + code.zero;
        for (((y, &a), &sum), &sw) in y
            .iter_mut()
            .zip(acc)
            .zip(&self.column_sums[c0..])
            .zip(&self.scales[c0..])
        {
            *y = (a - offset * sum) as f32 * (code.scale * sw);
        }
    }
}

/// Quantizes each row of `w` (rows of `cols` values: a weight `[out, in]`) symmetrically:
/// `q = round(w / s)` with `s = max|w| / 127` per row (1 for a row of zeros). The one
/// quantizer of the engine: at load and in [`crate::quantize`], so that both give the same
/// values.
pub(crate) fn quantize_symmetric(w: &[f32], cols: usize) -> (Vec<i8>, Vec<f32>) {
    use rayon::prelude::*;
    let cols = cols.max(1);
    let mut q = vec![0i8; w.len()];
    let mut scales = vec![0f32; w.len() / cols];
    q.par_chunks_exact_mut(cols)
        .zip(w.par_chunks_exact(cols))
        .zip(scales.par_iter_mut())
        .for_each(|((out, row), scale)| quantize_weight_row(row, out, scale));
    (q, scales)
}

multiversion! {
    /// One row of [`quantize_symmetric`]; vectorised (`round` and the division included) on
    /// the x86-64 instruction sets that have them, the same values everywhere.
    fn quantize_weight_row(row: &[f32], out: &mut [i8], scale_out: &mut f32) {
        let max = lane_reduce(row, 0.0, |m, x| if x.abs() > m { x.abs() } else { m });
        let scale = if max > 0.0 { max / QMAX } else { 1.0 };
        for (o, x) in out.iter_mut().zip(row) {
            *o = (x / scale).round().clamp(-QMAX, QMAX) as i8;
        }
        *scale_out = scale;
    }
}

/// Quantizes one row to `q + 128` in `out` (the padding past the row, whose weights are 0,
/// is left as it is), `q` in -127..=127 with a step
/// and a zero point of its own: `x ~ scale * (q - zero)`, the 255 levels spread from the row's
/// smallest value to its largest (each widened to include 0, which stays exact). A row
/// symmetric about 0 gets `zero = 0` and `scale = max|x| / 127`; a skewed one (the GELU
/// outputs the FFN's second layer reads) up to twice the resolution. A row of zeros (or with
/// a value that is not finite) gets step 1.
fn quantize_row(row: &[f32], out: &mut [u8]) -> RowCode {
    let mut code = RowCode::IDENTITY;
    quantize_row_into(row, out, &mut code);
    code
}

multiversion! {
    /// [`quantize_row`], in arithmetic the compiler vectorises: smallest and largest over
    /// sixteen lanes, and rounding to the nearest integer (ties to even) by adding and
    /// subtracting 1.5 * 2^23, whose bits then hold the integer (no float-to-int conversion,
    /// no call to `roundf`); the same values on every instruction set.
    fn quantize_row_into(row: &[f32], out: &mut [u8], code: &mut RowCode) {
        const SHIFTER: f32 = 12_582_912.0;
        // Extremes starting from 0: the range always holds 0.
        let lo = lane_reduce(row, 0.0, |m, x| if x < m { x } else { m });
        let hi = lane_reduce(row, 0.0, |m, x| if x > m { x } else { m });
        let range = hi - lo;
        let rounded = |v: f32| (v + SHIFTER).to_bits() as i32 - SHIFTER.to_bits() as i32;
        *code = if range > 0.0 && range.is_finite() {
            let scale = range / (2.0 * QMAX);
            // The level of 0: lo goes to -127.
            let zero = rounded(-QMAX - lo / scale).clamp(-127, 127);
            RowCode { scale, zero }
        } else {
            RowCode::IDENTITY
        };
        let inv = 1.0 / code.scale;
        let zero = code.zero as f32;
        for (q, x) in out.iter_mut().zip(row) {
            let v = (x * inv + zero).clamp(-QMAX, QMAX);
            *q = (rounded(v) + 128) as u8;
        }
    }
}

multiversion! {
    #[cfg_attr(all(target_arch = "wasm32", target_feature = "simd128"), allow(dead_code))]
    fn dot_panel_portable(xq: &[u8], stride: usize, rows: usize, w: &[i8], groups: usize, acc: &mut [i32]) {
        for r in 0..rows {
            let x = &xq[r * stride..(r + 1) * stride];
            let a = &mut acc[r * PANEL..(r + 1) * PANEL];
            for g in 0..groups {
                let xs = [
                    i32::from(x[g * GROUP]),
                    i32::from(x[g * GROUP + 1]),
                    i32::from(x[g * GROUP + 2]),
                    i32::from(x[g * GROUP + 3]),
                ];
                let ws = &w[g * PANEL * GROUP..(g + 1) * PANEL * GROUP];
                for (a, w4) in a.iter_mut().zip(ws.chunks_exact(GROUP)) {
                    *a += xs[0] * i32::from(w4[0])
                        + xs[1] * i32::from(w4[1])
                        + xs[2] * i32::from(w4[2])
                        + xs[3] * i32::from(w4[3]);
                }
            }
        }
    }
}

/// Whether the VNNI kernel runs: AVX-512 chosen (see `math::isa`) and VNNI present.
#[cfg(target_arch = "x86_64")]
fn vnni() -> bool {
    use super::math::{isa, Isa};
    isa() == Isa::Avx512 && std::arch::is_x86_feature_detected!("avx512vnni")
}

/// The same sums without VNNI, on AVX2: `vpmaddubsw` multiplies unsigned by signed bytes and
/// adds pairs into i16, which saturates for `q + 128` activations; so the activation's sign is
/// moved onto the weight (`|q| * (w * sign(q))`, pairs at most 2 * 127 * 127, exact), `vpmaddwd`
/// adds the pairs into the i32 sum of each column's four products, and `128 * sum(w)` per
/// column (computed once per panel) gives the sums of the stored `q + 128`, as VNNI's. One row
/// at a time: eight i32 accumulators for the panel's 64 columns.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn avx2_panel(
    xq: &[u8],
    stride: usize,
    rows: usize,
    w: &[i8],
    groups: usize,
    acc: &mut [i32],
) {
    use std::arch::x86_64::*;
    debug_check_panel(xq, stride, rows, groups * GROUP, w, acc);
    const VECTORS: usize = PANEL * GROUP / 32;
    let ones16 = _mm256_set1_epi16(1);
    let ones8 = _mm256_set1_epi8(1);
    let flip = _mm256_set1_epi8(i8::MIN);
    let wp = w.as_ptr();
    // SAFETY (all loads): group g of the panel is PANEL * GROUP bytes at g * PANEL * GROUP,
    // row r has groups * GROUP bytes at r * stride, acc has rows * PANEL values (checked
    // above).
    let weights =
        |g: usize, j: usize| _mm256_loadu_si256(wp.add(g * PANEL * GROUP + j * 32).cast());
    let mut column_sums = [_mm256_setzero_si256(); VECTORS];
    for g in 0..groups {
        for (j, sum) in column_sums.iter_mut().enumerate() {
            let pairs = _mm256_maddubs_epi16(ones8, weights(g, j));
            *sum = _mm256_add_epi32(*sum, _mm256_madd_epi16(pairs, ones16));
        }
    }
    for r in 0..rows {
        let x = xq.as_ptr().add(r * stride);
        let mut sums = [_mm256_setzero_si256(); VECTORS];
        for g in 0..groups {
            let four = x.add(g * GROUP).cast::<i32>().read_unaligned();
            // The stored q + 128 with its top bit flipped is q as a signed byte.
            let q = _mm256_xor_si256(_mm256_set1_epi32(four), flip);
            let magnitude = _mm256_abs_epi8(q);
            for (j, sum) in sums.iter_mut().enumerate() {
                let pairs = _mm256_maddubs_epi16(magnitude, _mm256_sign_epi8(weights(g, j), q));
                *sum = _mm256_add_epi32(*sum, _mm256_madd_epi16(pairs, ones16));
            }
        }
        for (j, (sum, columns)) in sums.iter().zip(&column_sums).enumerate() {
            let total = _mm256_add_epi32(*sum, _mm256_slli_epi32::<7>(*columns));
            _mm256_storeu_si256(acc.as_mut_ptr().add(r * PANEL + j * 8).cast(), total);
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn vnni_panel(
    xq: &[u8],
    stride: usize,
    rows: usize,
    w: &[i8],
    groups: usize,
    acc: &mut [i32],
) {
    macro_rules! block {
        ($n:literal, $r:expr) => {
            vnni_block::<$n>(
                &xq[$r * stride..],
                stride,
                w,
                groups,
                &mut acc[$r * PANEL..],
            )
        };
    }
    row_blocks!(rows, block, 6, [5, 4, 3, 2, 1]);
}

/// `R` rows against one panel: `R x 4` accumulators of sixteen lanes held in registers.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn vnni_block<const R: usize>(
    xq: &[u8],
    stride: usize,
    w: &[i8],
    groups: usize,
    acc: &mut [i32],
) {
    use std::arch::x86_64::*;
    debug_check_panel(xq, stride, R, groups * GROUP, w, acc);
    let mut sums = [[_mm512_setzero_si512(); 4]; R];
    let x = xq.as_ptr();
    let wp = w.as_ptr();
    for g in 0..groups {
        // SAFETY: group g of the panel is PANEL * GROUP bytes at g * PANEL * GROUP, and row r
        // has groups * GROUP bytes at r * stride (checked above).
        let ws = [
            _mm512_loadu_si512(wp.add(g * PANEL * GROUP).cast()),
            _mm512_loadu_si512(wp.add(g * PANEL * GROUP + 64).cast()),
            _mm512_loadu_si512(wp.add(g * PANEL * GROUP + 128).cast()),
            _mm512_loadu_si512(wp.add(g * PANEL * GROUP + 192).cast()),
        ];
        for (r, row) in sums.iter_mut().enumerate() {
            let four = x.add(r * stride + g * GROUP).cast::<i32>().read_unaligned();
            let xs = _mm512_set1_epi32(four);
            for (s, w) in row.iter_mut().zip(&ws) {
                *s = _mm512_dpbusd_epi32(*s, xs, *w);
            }
        }
    }
    for (r, row) in sums.iter().enumerate() {
        for (j, s) in row.iter().enumerate() {
            _mm512_storeu_si512(acc.as_mut_ptr().add(r * PANEL + j * 16).cast(), *s);
        }
    }
}

/// The same sums on aarch64 with the Armv8.2 dot products: `sdot` (by element) adds, to each
/// of four i32 lanes, the products of four signed bytes of a weight vector (one column's group
/// of four inputs, the packed layout as it is) with one group of four activation bytes. The
/// stored `q + 128` with its top bit flipped is `q` as a signed byte, and `128 * sum(w)` per
/// column (one pass over the panel per call) gives the sums of the stored values, as VNNI's.
/// Register blocks of 4 rows by 16 columns: 16 accumulators, 4 weight vectors and 4 rows of
/// 16 activation bytes (four groups, one per `sdot` lane index) out of the 32 registers.
#[cfg(target_arch = "aarch64")]
#[target_feature(enable = "neon,dotprod")]
unsafe fn dotprod_panel(
    xq: &[u8],
    stride: usize,
    rows: usize,
    w: &[i8],
    groups: usize,
    acc: &mut [i32],
) {
    use std::arch::aarch64::*;
    debug_check_panel(xq, stride, rows, groups * GROUP, w, acc);
    let wp = w.as_ptr();
    let ones = vdupq_n_s8(1);
    let mut offsets = [vdupq_n_s32(0); NEON_VECTORS];
    for g in 0..groups {
        for (j, sum) in offsets.iter_mut().enumerate() {
            // SAFETY: group g of the panel is PANEL * GROUP bytes at g * PANEL * GROUP.
            *sum = sdot::<0>(*sum, vld1q_s8(wp.add(g * PANEL * GROUP + j * 16)), ones);
        }
    }
    for sum in offsets.iter_mut() {
        *sum = vshlq_n_s32::<7>(*sum);
    }
    let x = xq.as_ptr();
    let out = acc.as_mut_ptr();
    // SAFETY (the blocks): rows r.. of x and acc exist (checked above).
    macro_rules! block {
        ($n:literal, $r:expr) => {
            dotprod_block::<$n>(
                x.add($r * stride),
                stride,
                wp,
                groups,
                &offsets,
                out.add($r * PANEL),
            )
        };
    }
    row_blocks!(rows, block, 4, [3, 2, 1]);
}

/// i32 vectors of four columns in a panel.
#[cfg(target_arch = "aarch64")]
const NEON_VECTORS: usize = PANEL / 4;

/// `R` rows (at `x`, `stride` bytes apart) against one panel, 16 columns at a time; writes
/// `R * PANEL` sums at `out`.
#[cfg(target_arch = "aarch64")]
#[target_feature(enable = "neon,dotprod")]
unsafe fn dotprod_block<const R: usize>(
    x: *const u8,
    stride: usize,
    wp: *const i8,
    groups: usize,
    offsets: &[std::arch::aarch64::int32x4_t; NEON_VECTORS],
    out: *mut i32,
) {
    use std::arch::aarch64::*;
    let flip = vdupq_n_u8(0x80);
    // SAFETY (all loads): row i has groups * GROUP bytes at i * stride, group g of the panel
    // is PANEL * GROUP bytes at g * PANEL * GROUP; 16 bytes are read from a row only when
    // four whole groups remain.
    let signed = |bytes: uint8x16_t| vreinterpretq_s8_u8(veorq_u8(bytes, flip));
    for quarter in 0..NEON_VECTORS / 4 {
        let weights = |g: usize| -> [int8x16_t; 4] {
            std::array::from_fn(|v| vld1q_s8(wp.add(g * PANEL * GROUP + (quarter * 4 + v) * 16)))
        };
        let mut sums = [[vdupq_n_s32(0); 4]; R];
        let mut g = 0;
        while g + 4 <= groups {
            let xs: [int8x16_t; R] =
                std::array::from_fn(|i| signed(vld1q_u8(x.add(i * stride + g * GROUP))));
            sdot_rows::<0, R>(&mut sums, &weights(g), &xs);
            sdot_rows::<1, R>(&mut sums, &weights(g + 1), &xs);
            sdot_rows::<2, R>(&mut sums, &weights(g + 2), &xs);
            sdot_rows::<3, R>(&mut sums, &weights(g + 3), &xs);
            g += 4;
        }
        while g < groups {
            let xs: [int8x16_t; R] = std::array::from_fn(|i| {
                let four = x.add(i * stride + g * GROUP).cast::<u32>().read_unaligned();
                signed(vreinterpretq_u8_u32(vdupq_n_u32(four)))
            });
            sdot_rows::<0, R>(&mut sums, &weights(g), &xs);
            g += 1;
        }
        for (i, row) in sums.iter().enumerate() {
            for (v, s) in row.iter().enumerate() {
                let j = quarter * 4 + v;
                vst1q_s32(out.add(i * PANEL + j * 4), vaddq_s32(*s, offsets[j]));
            }
        }
    }
}

/// One group (lane `L` of each row's activations) into every row's four accumulators.
#[cfg(target_arch = "aarch64")]
#[inline(always)]
unsafe fn sdot_rows<const L: i32, const R: usize>(
    sums: &mut [[std::arch::aarch64::int32x4_t; 4]; R],
    ws: &[std::arch::aarch64::int8x16_t; 4],
    xs: &[std::arch::aarch64::int8x16_t; R],
) {
    for (row, x) in sums.iter_mut().zip(xs) {
        for (s, w) in row.iter_mut().zip(ws) {
            *s = sdot::<L>(*s, *w, *x);
        }
    }
}

/// `acc[i] += sum_j w[4i + j] * x[4L + j]` (SDOT by element). The intrinsic is not stable in
/// this Rust, the instruction is; callers are compiled with the `dotprod` feature.
#[cfg(target_arch = "aarch64")]
#[inline(always)]
unsafe fn sdot<const L: i32>(
    acc: std::arch::aarch64::int32x4_t,
    w: std::arch::aarch64::int8x16_t,
    x: std::arch::aarch64::int8x16_t,
) -> std::arch::aarch64::int32x4_t {
    let mut acc = acc;
    std::arch::asm!(
        "sdot {acc:v}.4s, {w:v}.16b, {x:v}.4b[{lane}]",
        acc = inout(vreg) acc,
        w = in(vreg) w,
        x = in(vreg) x,
        lane = const L,
        options(pure, nomem, nostack, preserves_flags),
    );
    acc
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

    /// The same arithmetic, spelled out: quantize, multiply in i64, scale.
    fn reference(x: &[f32], m: usize, w: &Int8Weight) -> Vec<f32> {
        let (k, n) = (w.panels.in_features(), w.panels.out_features());
        let mut out = vec![0f32; m * n];
        for r in 0..m {
            let row = &x[r * k..(r + 1) * k];
            let mut q = vec![128u8; k];
            let code = quantize_row(row, &mut q);
            let zero = 128 + i64::from(code.zero);
            for j in 0..n {
                let acc: i64 = q
                    .iter()
                    .enumerate()
                    .map(|(i, &v)| (i64::from(v) - zero) * i64::from(w.panels.get(j, i)))
                    .sum();
                out[r * n + j] = acc as i32 as f32 * (code.scale * w.scales[j]);
            }
        }
        out
    }

    #[test]
    fn int8_products_are_exact_on_every_instruction_set() {
        for (m, k, n) in [
            (1, 4, 1),
            (3, 7, 65),
            (5, 64, 64),
            (70, 130, 200),
            (9, 384, 129),
        ] {
            let weight = values(n * k, 3 + k as u64);
            let x = values(m * k, 5 + m as u64);
            let w = Int8Weight::quantize(&weight, n, k);
            let want = reference(&x, m, &w);
            forced::each(|choice| {
                let mut got = vec![f32::NAN; m * n];
                w.matmul(&x, m, &mut got);
                assert_eq!(got, want, "{choice:?} m {m} k {k} n {n}");
            });
        }
    }

    #[test]
    fn int8_products_are_close_to_float32() {
        let (m, k, n) = (16, 384, 96);
        let weight = values(n * k, 11);
        let x = values(m * k, 12);
        let w = Int8Weight::quantize(&weight, n, k);
        let back = w.dequantize();
        let mut got = vec![0f32; m * n];
        w.matmul(&x, m, &mut got);
        for r in 0..m {
            for j in 0..n {
                let exact: f32 = (0..k).map(|i| x[r * k + i] * weight[j * k + i]).sum();
                // Two roundings of at most half a step each, over k products of values <= 1.
                let bound = (k as f32).sqrt() * 2.0 / 127.0;
                let err = (got[r * n + j] - exact).abs();
                assert!(err < bound, "[{r}, {j}]: {} vs {exact}", got[r * n + j]);
                // The stored weight is within half a step of the original.
                let i = (r * 7 + j) % k;
                assert!((back[j * k + i] - weight[j * k + i]).abs() <= w.scales[j] / 2.0);
            }
        }
    }

    #[test]
    fn activations_round_to_nearest_even_on_every_instruction_set() {
        // max 127: the step is 1, so the values are rounded as they are.
        let row = [
            127.0, -127.0, 2.5, 3.5, -2.5, 0.4999, -0.5001, 126.49, 1e-9, 0.0,
        ];
        let want: Vec<u8> = [127, -127, 2, 4, -2, 0, -1, 126, 0, 0]
            .iter()
            .map(|&q: &i32| (q + 128) as u8)
            .collect();
        forced::each(|choice| {
            let mut out = [0u8; 12];
            assert_eq!(
                quantize_row(&row, &mut out),
                RowCode::IDENTITY,
                "{choice:?}"
            );
            assert_eq!(&out[..row.len()], &want[..], "{choice:?}");
        });
        // A row of zeros: step 1, all 128.
        let mut zeros = vec![0u8; 40];
        assert_eq!(quantize_row(&[0.0; 40], &mut zeros), RowCode::IDENTITY);
        assert!(zeros.iter().all(|&q| q == 128));
    }

    #[test]
    fn skewed_rows_get_a_zero_point() {
        // From -1 to 3 (GELU-like): 254 steps over the range, 0 on a level of its own.
        let mut row = values(100, 9);
        row.iter_mut().for_each(|v| *v = 1.0 + 2.0 * *v);
        row[3] = -1.0;
        row[50] = 3.0;
        row[70] = 0.0;
        forced::each(|choice| {
            let mut out = vec![128u8; 104];
            let code = quantize_row(&row, &mut out);
            assert_eq!(code.scale, 4.0 / 254.0, "{choice:?}");
            // -127 + 1 / step = -63.5: ties to even.
            assert_eq!(code.zero, -64, "{choice:?}");
            assert_eq!((out[3], out[70]), (1, 64), "{choice:?}");
            assert!(out[50] >= 254, "{choice:?}");
            assert!(
                out[100..].iter().all(|&q| q == 128),
                "padding is left alone"
            );
            for (q, x) in out.iter().zip(&row) {
                let back = code.scale * (i32::from(*q) - 128 - code.zero) as f32;
                assert!(
                    (back - x).abs() <= code.scale / 2.0 + 1e-6,
                    "{choice:?}: {x} -> {back}"
                );
            }
        });
        // Only positive values: the range still starts at 0.
        let mut out = vec![0u8; 4];
        let code = quantize_row(&[0.5, 1.0, 2.0, 0.25], &mut out);
        assert_eq!((code.scale, code.zero), (2.0 / 254.0, -127));
    }

    #[test]
    fn extreme_values_do_not_saturate() {
        // Every product at +-127 * 127: the largest pair sums the byte instructions see.
        let (m, k, n) = (3, 64, 70);
        let weight: Vec<f32> = (0..n * k)
            .map(|i| if i % 3 == 0 { -1.0 } else { 1.0 })
            .collect();
        let x: Vec<f32> = (0..m * k)
            .map(|i| if i % 5 < 2 { -1.0 } else { 1.0 })
            .collect();
        let w = Int8Weight::quantize(&weight, n, k);
        let want = reference(&x, m, &w);
        for r in 0..m {
            for j in 0..n {
                let exact: f32 = (0..k).map(|i| x[r * k + i] * weight[j * k + i]).sum();
                assert!(
                    (want[r * n + j] - exact).abs() < 1e-3,
                    "reference [{r}, {j}]"
                );
            }
        }
        forced::each(|choice| {
            let mut got = vec![f32::NAN; m * n];
            w.matmul(&x, m, &mut got);
            assert_eq!(got, want, "{choice:?}");
        });
    }

    #[test]
    fn zero_rows_and_columns_stay_zero() {
        let (k, n) = (8, 3);
        let mut weight = values(n * k, 1);
        weight[k..2 * k].fill(0.0);
        let w = Int8Weight::quantize(&weight, n, k);
        let mut x = values(2 * k, 2);
        x[..k].fill(0.0);
        let mut out = vec![f32::NAN; 2 * n];
        w.matmul(&x, 2, &mut out);
        assert_eq!(&out[..n], &[0.0; 3]);
        assert_eq!(out[n + 1], 0.0);
        assert!(out.iter().all(|v| v.is_finite()));
    }
}
