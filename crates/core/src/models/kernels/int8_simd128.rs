//! The int8 panel product on 128-bit vectors without a byte dot product: WebAssembly SIMD's
//! `i32x4.dot_i16x8_s` (x86's `pmaddwd`), which multiplies eight i16 pairs and adds
//! neighbours into four i32 lanes.
//!
//! The activations (`q + 128`, at most 255) are widened to i16 once per call, four inputs of a
//! group side by side; a vector of the panel holds four columns' groups of four weights, whose
//! low and high halves widen to the i16 values of two columns each. `dot(x, w)` then leaves
//! each column's sum in two lanes, added once at the end: products of at most 255 * 127 and
//! pair sums in i32, exact, so the sums equal every other instruction set's.
//!
//! Register blocks of up to [`ROWS`] rows by one vector of four columns: eight i32
//! accumulators, four activation vectors and two weight halves.

use super::packed::{debug_check_panel, PANEL};

/// Inputs per group, as the packing's.
const GROUP: usize = 4;
/// Rows per register block.
const ROWS: usize = 4;

/// Eight i16 / four i32 lanes: WebAssembly's `v128` in the wasm builds, arrays in the tests.
pub(super) trait Lanes: Copy {
    fn zero() -> Self;
    /// The four i16 at `p`, twice.
    ///
    /// # Safety
    /// `p..p + 4` is readable.
    unsafe fn splat4(p: *const i16) -> Self;
    /// The sixteen bytes at `p`, widened: (first eight, last eight).
    ///
    /// # Safety
    /// `p..p + 16` is readable.
    unsafe fn widen(p: *const i8) -> (Self, Self);
    /// `acc + dot(x, w)`: lane `i` gains `x[2i] w[2i] + x[2i + 1] w[2i + 1]`.
    fn dot_add(x: Self, w: Self, acc: Self) -> Self;
    /// The four column sums of two accumulators: `[a0 + a1, a2 + a3, b0 + b1, b2 + b3]`.
    fn pair_sums(a: Self, b: Self) -> [i32; 4];
}

/// `acc[r][c] = sum_i x[r][i] * w[c][i]` over one panel (see `PanelKernel::dot_panel`).
pub(super) fn dot_panel<L: Lanes>(
    xq: &[u8],
    stride: usize,
    rows: usize,
    w: &[i8],
    groups: usize,
    acc: &mut [i32],
) {
    debug_check_panel(xq, stride, rows, groups * GROUP, w, acc);
    let width = groups * GROUP;
    thread_local! {
        static WIDE: std::cell::RefCell<Vec<i16>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    WIDE.with_borrow_mut(|wide| {
        wide.clear();
        for r in 0..rows {
            wide.extend(
                xq[r * stride..r * stride + width]
                    .iter()
                    .map(|&v| i16::from(v)),
            );
        }
        let mut r = 0;
        while r < rows {
            let block = ROWS.min(rows - r);
            let x = &wide[r * width..(r + block) * width];
            let out = &mut acc[r * PANEL..(r + block) * PANEL];
            match block {
                4 => rows_block::<L, 4>(x, width, w, groups, out),
                3 => rows_block::<L, 3>(x, width, w, groups, out),
                2 => rows_block::<L, 2>(x, width, w, groups, out),
                _ => rows_block::<L, 1>(x, width, w, groups, out),
            }
            r += block;
        }
    });
}

/// `R` rows of widened activations (`width` apart) against every column of the panel.
#[inline(always)]
fn rows_block<L: Lanes, const R: usize>(
    x: &[i16],
    width: usize,
    w: &[i8],
    groups: usize,
    out: &mut [i32],
) {
    debug_assert!(x.len() >= R * width && out.len() >= R * PANEL);
    for column in (0..PANEL).step_by(4) {
        let mut lo = [L::zero(); R];
        let mut hi = [L::zero(); R];
        for g in 0..groups {
            // SAFETY: group g of the panel holds PANEL * GROUP weights (checked by the caller),
            // 16 of them from column * GROUP; row r of x holds `width` = groups * GROUP values.
            let (wl, wh) = unsafe { L::widen(w.as_ptr().add((g * PANEL + column) * GROUP)) };
            for r in 0..R {
                let xv = unsafe { L::splat4(x.as_ptr().add(r * width + g * GROUP)) };
                lo[r] = L::dot_add(xv, wl, lo[r]);
                hi[r] = L::dot_add(xv, wh, hi[r]);
            }
        }
        for r in 0..R {
            out[r * PANEL + column..r * PANEL + column + 4]
                .copy_from_slice(&L::pair_sums(lo[r], hi[r]));
        }
    }
}

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
pub(super) mod wasm {
    use core::arch::wasm32::*;

    #[derive(Clone, Copy)]
    pub(crate) struct Simd(v128);

    impl super::Lanes for Simd {
        #[inline(always)]
        fn zero() -> Self {
            Simd(i32x4_splat(0))
        }
        #[inline(always)]
        unsafe fn splat4(p: *const i16) -> Self {
            // SAFETY: the caller's; WebAssembly loads need no alignment.
            Simd(unsafe { v128_load64_splat(p.cast()) })
        }
        #[inline(always)]
        unsafe fn widen(p: *const i8) -> (Self, Self) {
            // SAFETY: the caller's.
            let v = unsafe { v128_load(p.cast()) };
            (
                Simd(i16x8_extend_low_i8x16(v)),
                Simd(i16x8_extend_high_i8x16(v)),
            )
        }
        #[inline(always)]
        fn dot_add(x: Self, w: Self, acc: Self) -> Self {
            Simd(i32x4_add(acc.0, i32x4_dot_i16x8(x.0, w.0)))
        }
        #[inline(always)]
        fn pair_sums(a: Self, b: Self) -> [i32; 4] {
            let even = i32x4_shuffle::<0, 2, 4, 6>(a.0, b.0);
            let odd = i32x4_shuffle::<1, 3, 5, 7>(a.0, b.0);
            let sum = i32x4_add(even, odd);
            [
                i32x4_extract_lane::<0>(sum),
                i32x4_extract_lane::<1>(sum),
                i32x4_extract_lane::<2>(sum),
                i32x4_extract_lane::<3>(sum),
            ]
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// Portable lanes with the instructions' semantics, to run the kernel natively.
    #[derive(Clone, Copy)]
    pub(crate) struct Array([i32; 8]);

    impl Lanes for Array {
        fn zero() -> Self {
            Array([0; 8])
        }
        unsafe fn splat4(p: *const i16) -> Self {
            let v = unsafe { std::slice::from_raw_parts(p, 4) };
            Array(std::array::from_fn(|i| i32::from(v[i % 4])))
        }
        unsafe fn widen(p: *const i8) -> (Self, Self) {
            let v = unsafe { std::slice::from_raw_parts(p, 16) };
            (
                Array(std::array::from_fn(|i| i32::from(v[i]))),
                Array(std::array::from_fn(|i| i32::from(v[8 + i]))),
            )
        }
        fn dot_add(x: Self, w: Self, acc: Self) -> Self {
            // Lanes 0..4 hold the i32 sums; the i16 products fit (checked by the test's range).
            let mut out = acc.0;
            for (i, o) in out.iter_mut().take(4).enumerate() {
                *o += x.0[2 * i] * w.0[2 * i] + x.0[2 * i + 1] * w.0[2 * i + 1];
            }
            Array(out)
        }
        fn pair_sums(a: Self, b: Self) -> [i32; 4] {
            [
                a.0[0] + a.0[1],
                a.0[2] + a.0[3],
                b.0[0] + b.0[1],
                b.0[2] + b.0[3],
            ]
        }
    }

    /// The sums of the portable code, on extreme values (255 * -127 everywhere) and mixed ones,
    /// every row count around the block size, strides wider than the rows.
    #[test]
    fn simd128_panels_equal_the_portable_sums() {
        for groups in [1, 3, 96] {
            for rows in [1, 2, 3, 4, 5, 9] {
                for extreme in [false, true] {
                    let stride = groups * GROUP + 8;
                    let xq: Vec<u8> = (0..rows * stride)
                        .map(|i| if extreme { 255 } else { (i * 37 % 256) as u8 })
                        .collect();
                    let w: Vec<i8> = (0..groups * PANEL * GROUP)
                        .map(|i| {
                            if extreme {
                                -127
                            } else {
                                ((i * 53 % 255) as i32 - 127) as i8
                            }
                        })
                        .collect();
                    let mut want = vec![0i32; rows * PANEL];
                    for r in 0..rows {
                        for c in 0..PANEL {
                            want[r * PANEL + c] = (0..groups * GROUP)
                                .map(|i| {
                                    let (g, j) = (i / GROUP, i % GROUP);
                                    i32::from(xq[r * stride + i])
                                        * i32::from(w[(g * PANEL + c) * GROUP + j])
                                })
                                .sum();
                        }
                    }
                    let mut got = vec![0i32; rows * PANEL];
                    dot_panel::<Array>(&xq, stride, rows, &w, groups, &mut got);
                    assert_eq!(got, want, "groups {groups} rows {rows} extreme {extreme}");
                }
            }
        }
    }
}
