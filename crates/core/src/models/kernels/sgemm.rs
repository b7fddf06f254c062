//! The float32 matrix product the linear layers' panels and attention run:
//! `dst[i][j] = sum_p lhs[i][p] * rhs[p][j]`, single-threaded (callers split the work).
//!
//! Native targets call the `gemm` crate. WebAssembly builds with `simd128` run register
//! blocks of [`ROWS`] x [`COLUMNS`] over 128-bit vectors instead: gemm's own wasm kernels
//! repack both operands on every call, and these operands are already laid out for streaming
//! (a weight panel is a row-major `[k, 64]` block). Builds with `relaxed-simd` accumulate
//! with `f32x4.relaxed_madd`, a fused multiply-add where the CPU has one; the others with a
//! multiply and an add. Both sum over `p` in order, as the gemm crate does within a block.

/// Rows of `lhs` per register block.
#[cfg_attr(not(any(test, target_arch = "wasm32")), allow(dead_code))]
const ROWS: usize = 4;
/// Columns of `rhs` per register block: two vectors.
#[cfg_attr(not(any(test, target_arch = "wasm32")), allow(dead_code))]
const COLUMNS: usize = 8;

/// A matrix operand: element `(i, j)` at `ptr + i * row_stride + j * col_stride`.
#[derive(Clone, Copy)]
pub(crate) struct Operand {
    pub(crate) ptr: *const f32,
    pub(crate) row_stride: usize,
    pub(crate) col_stride: usize,
}

impl Operand {
    /// A row-major matrix with rows `row_stride` apart.
    pub(crate) fn rows(ptr: *const f32, row_stride: usize) -> Self {
        Operand {
            ptr,
            row_stride,
            col_stride: 1,
        }
    }
}

/// `dst[m, n] = lhs[m, k] rhs[k, n]`, `dst` row-major with rows `dst_stride` apart and `lhs`
/// row-major; `dst` is overwritten (all zeros when `k` is 0).
///
/// # Safety
/// Every element of the three matrices at the given strides is inside its buffer, and `dst`
/// overlaps neither operand nor values another thread uses meanwhile.
pub(crate) unsafe fn sgemm(
    (m, n, k): (usize, usize, usize),
    dst: *mut f32,
    dst_stride: usize,
    lhs: Operand,
    rhs: Operand,
) {
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    blocked::sgemm::<wasm::Simd>((m, n, k), dst, dst_stride, lhs, rhs);
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    gemm::gemm(
        m,
        n,
        k,
        dst,
        1,
        dst_stride as isize,
        false,
        lhs.ptr,
        lhs.col_stride as isize,
        lhs.row_stride as isize,
        rhs.ptr,
        rhs.col_stride as isize,
        rhs.row_stride as isize,
        0.0,
        1.0,
        false,
        false,
        false,
        gemm::Parallelism::None,
    );
}

/// Four f32 lanes: WebAssembly's `v128` in the wasm builds, an array in the native tests.
#[cfg_attr(not(any(test, target_arch = "wasm32")), allow(dead_code))]
trait Lanes: Copy {
    fn zero() -> Self;
    fn splat(x: f32) -> Self;
    /// # Safety
    /// `p..p + 4` is readable.
    unsafe fn load(p: *const f32) -> Self;
    /// # Safety
    /// `p..p + 4` is writable.
    unsafe fn store(self, p: *mut f32);
    /// `a * b + acc`.
    fn madd(a: Self, b: Self, acc: Self) -> Self;
}

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod wasm {
    use core::arch::wasm32::*;

    #[derive(Clone, Copy)]
    pub(super) struct Simd(v128);

    impl super::Lanes for Simd {
        #[inline(always)]
        fn zero() -> Self {
            Simd(f32x4_splat(0.0))
        }
        #[inline(always)]
        fn splat(x: f32) -> Self {
            Simd(f32x4_splat(x))
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> Self {
            // SAFETY: the caller's; WebAssembly loads need no alignment.
            Simd(unsafe { v128_load(p.cast()) })
        }
        #[inline(always)]
        unsafe fn store(self, p: *mut f32) {
            // SAFETY: the caller's.
            unsafe { v128_store(p.cast(), self.0) }
        }
        #[inline(always)]
        fn madd(a: Self, b: Self, acc: Self) -> Self {
            #[cfg(target_feature = "relaxed-simd")]
            return Simd(f32x4_relaxed_madd(a.0, b.0, acc.0));
            #[cfg(not(target_feature = "relaxed-simd"))]
            return Simd(f32x4_add(f32x4_mul(a.0, b.0), acc.0));
        }
    }
}

#[cfg_attr(not(any(test, target_arch = "wasm32")), allow(dead_code))]
mod blocked {
    use super::{Lanes, Operand, COLUMNS, ROWS};

    /// [`super::sgemm`] in register blocks of `L` lanes.
    ///
    /// # Safety
    /// As [`super::sgemm`].
    pub(super) unsafe fn sgemm<L: Lanes>(
        (m, n, k): (usize, usize, usize),
        dst: *mut f32,
        dst_stride: usize,
        lhs: Operand,
        rhs: Operand,
    ) {
        if m == 0 || n == 0 {
            return;
        }
        if k == 0 {
            for i in 0..m {
                // SAFETY: row i of dst, n values (the caller's).
                unsafe { std::slice::from_raw_parts_mut(dst.add(i * dst_stride), n) }.fill(0.0);
            }
            return;
        }
        // A transposed or strided rhs (attention's keys) is copied row-major first, and the
        // last 1 to 7 columns into a zero-padded block of full width.
        let full = n - n % COLUMNS;
        let copy = |columns: std::ops::Range<usize>, width: usize| {
            let mut out = vec![0f32; k * width];
            for (p, row) in out.chunks_exact_mut(width).enumerate() {
                for (o, j) in row.iter_mut().zip(columns.clone()) {
                    // SAFETY: element (p, j) of rhs, p < k, j < n.
                    *o = unsafe { *rhs.ptr.add(p * rhs.row_stride + j * rhs.col_stride) };
                }
            }
            out
        };
        let dense;
        let main = if rhs.col_stride == 1 || full == 0 {
            rhs
        } else {
            dense = copy(0..full, full);
            Operand::rows(dense.as_ptr(), full)
        };
        let tail = (full < n).then(|| copy(full..n, COLUMNS));
        let mut i = 0;
        while i < m {
            let rows = ROWS.min(m - i);
            // SAFETY: rows i..i + rows of lhs and dst (the caller's).
            let (lhs_rows, dst_rows) =
                unsafe { (lhs.ptr.add(i * lhs.row_stride), dst.add(i * dst_stride)) };
            let block = Block {
                k,
                lhs: lhs_rows,
                lhs_stride: lhs.row_stride,
            };
            // SAFETY: every block below reads k rows of COLUMNS values of `main` (columns
            // below `full`) or of `tail`, and writes its own columns of these rows of dst.
            unsafe {
                match rows {
                    4 => {
                        block.columns::<L, 4>(main, full, tail.as_deref(), n, dst_rows, dst_stride)
                    }
                    3 => {
                        block.columns::<L, 3>(main, full, tail.as_deref(), n, dst_rows, dst_stride)
                    }
                    2 => {
                        block.columns::<L, 2>(main, full, tail.as_deref(), n, dst_rows, dst_stride)
                    }
                    _ => {
                        block.columns::<L, 1>(main, full, tail.as_deref(), n, dst_rows, dst_stride)
                    }
                }
            }
            i += rows;
        }
    }

    /// Up to [`ROWS`] rows of `lhs`, `k` values each.
    struct Block {
        k: usize,
        lhs: *const f32,
        lhs_stride: usize,
    }

    impl Block {
        /// Every column block of these `R` rows: the full ones from `main`, then `tail`.
        #[inline(always)]
        unsafe fn columns<L: Lanes, const R: usize>(
            &self,
            main: Operand,
            full: usize,
            tail: Option<&[f32]>,
            n: usize,
            dst: *mut f32,
            dst_stride: usize,
        ) {
            let mut j = 0;
            while j < full {
                // SAFETY: the caller's.
                let acc = unsafe { self.tile::<L, R>(main.ptr.add(j), main.row_stride) };
                for (r, acc) in acc.iter().enumerate() {
                    unsafe {
                        let out = dst.add(r * dst_stride + j);
                        acc[0].store(out);
                        acc[1].store(out.add(4));
                    }
                }
                j += COLUMNS;
            }
            if let Some(tail) = tail {
                let acc = unsafe { self.tile::<L, R>(tail.as_ptr(), COLUMNS) };
                let mut row = [0f32; COLUMNS];
                for (r, acc) in acc.iter().enumerate() {
                    unsafe {
                        acc[0].store(row.as_mut_ptr());
                        acc[1].store(row.as_mut_ptr().add(4));
                        std::slice::from_raw_parts_mut(dst.add(r * dst_stride + full), n - full)
                            .copy_from_slice(&row[..n - full]);
                    }
                }
            }
        }

        /// The sums of `R` rows against `COLUMNS` columns of a row-major `rhs`.
        #[inline(always)]
        unsafe fn tile<L: Lanes, const R: usize>(
            &self,
            rhs: *const f32,
            rhs_stride: usize,
        ) -> [[L; 2]; R] {
            let mut acc = [[L::zero(); 2]; R];
            for p in 0..self.k {
                // SAFETY: the caller's: row p of rhs has COLUMNS values from `rhs`, and
                // row r of lhs k values.
                let (b0, b1) = unsafe {
                    let row = rhs.add(p * rhs_stride);
                    (L::load(row), L::load(row.add(4)))
                };
                for (r, acc) in acc.iter_mut().enumerate() {
                    let a = L::splat(unsafe { *self.lhs.add(r * self.lhs_stride + p) });
                    acc[0] = L::madd(a, b0, acc[0]);
                    acc[1] = L::madd(a, b1, acc[1]);
                }
            }
            acc
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Portable lanes, to test the blocking natively.
    #[derive(Clone, Copy)]
    struct Array([f32; 4]);

    impl Lanes for Array {
        fn zero() -> Self {
            Array([0.0; 4])
        }
        fn splat(x: f32) -> Self {
            Array([x; 4])
        }
        unsafe fn load(p: *const f32) -> Self {
            Array(unsafe { *p.cast::<[f32; 4]>() })
        }
        unsafe fn store(self, p: *mut f32) {
            unsafe { p.cast::<[f32; 4]>().write_unaligned(self.0) }
        }
        fn madd(a: Self, b: Self, acc: Self) -> Self {
            Array(std::array::from_fn(|i| a.0[i] * b.0[i] + acc.0[i]))
        }
    }

    fn values(len: usize, seed: usize) -> Vec<f32> {
        (0..len)
            .map(|i| (((i * 7919 + seed * 104_729) % 2003) as f32 - 1001.0) / 997.0)
            .collect()
    }

    /// Every shape around the block sizes, rhs row-major and transposed, strides wider than
    /// the rows, against f64 sums; values past each row must stay untouched.
    #[test]
    fn blocks_match_the_reference_on_every_shape() {
        for m in [1, 2, 3, 4, 5, 7, 8, 9, 13] {
            for n in [1, 3, 7, 8, 9, 15, 16, 17, 64] {
                for k in [0, 1, 2, 5, 33] {
                    for transposed in [false, true] {
                        let (lhs_stride, dst_stride) = (k + 3, n + 2);
                        let lhs = values(m * lhs_stride, 1);
                        // rhs (p, j) at p * rs + j * cs
                        let (rs, cs) = if transposed { (1, k + 1) } else { (n + 5, 1) };
                        let rhs = values((k.max(1) - 1) * rs + (n - 1) * cs + 1, 2);
                        let mut dst = vec![f32::NAN; m * dst_stride];
                        unsafe {
                            blocked::sgemm::<Array>(
                                (m, n, k),
                                dst.as_mut_ptr(),
                                dst_stride,
                                Operand::rows(lhs.as_ptr(), lhs_stride),
                                Operand {
                                    ptr: rhs.as_ptr(),
                                    row_stride: rs,
                                    col_stride: cs,
                                },
                            )
                        };
                        for i in 0..m {
                            for j in 0..dst_stride {
                                let got = dst[i * dst_stride + j];
                                if j >= n {
                                    assert!(got.is_nan(), "({m},{n},{k}) wrote past row {i}");
                                    continue;
                                }
                                let want: f64 = (0..k)
                                    .map(|p| {
                                        f64::from(lhs[i * lhs_stride + p])
                                            * f64::from(rhs[p * rs + j * cs])
                                    })
                                    .sum();
                                assert!(
                                    (f64::from(got) - want).abs() < 1e-5,
                                    "({m},{n},{k},{transposed}) [{i}][{j}]: {got} vs {want}"
                                );
                            }
                        }
                    }
                }
            }
        }
    }

    /// The entry point (gemm natively) agrees with the blocked kernels.
    #[test]
    fn sgemm_matches_the_blocked_kernels() {
        let (m, n, k) = (11, 70, 37);
        let lhs = values(m * k, 3);
        let rhs = values(k * n, 4);
        let mut a = vec![0f32; m * n];
        let mut b = vec![0f32; m * n];
        unsafe {
            sgemm(
                (m, n, k),
                a.as_mut_ptr(),
                n,
                Operand::rows(lhs.as_ptr(), k),
                Operand::rows(rhs.as_ptr(), n),
            );
            blocked::sgemm::<Array>(
                (m, n, k),
                b.as_mut_ptr(),
                n,
                Operand::rows(lhs.as_ptr(), k),
                Operand::rows(rhs.as_ptr(), n),
            );
        }
        for (x, y) in a.iter().zip(&b) {
            assert!((x - y).abs() < 1e-5, "{x} vs {y}");
        }
    }
}
