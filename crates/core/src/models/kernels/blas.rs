//! float32 linear layers on a vendor BLAS, in builds that ask for one: Intel MKL (`mkl`) with
//! weights packed once at load by `cblas_sgemm_pack`, Apple Accelerate (`accelerate`) with
//! `cblas_sgemm`. Each takes the place of [`super::matmul::F32Weight`] (the same
//! `new(w, n, k)` and [`PackedWeight`]), so layers never know which one runs.
//!
//! MKL is linked sequential (no OpenMP runtime: nothing to preload, one thread pool in the
//! process); the products are split over the rayon pool in tasks of (block of outputs, block
//! of rows), as the other kernels are, each task one `cblas_sgemm_compute` call writing its
//! part of the output in place.

use super::packed::PackedWeight;
#[cfg(feature = "mkl")]
use super::packed::SharedOut;

#[cfg(all(feature = "mkl", not(target_arch = "x86_64")))]
compile_error!("the `mkl` feature needs an x86_64 target (Intel MKL); on macOS use `accelerate`");

/// The CBLAS constants of the calls below (`mkl_cblas.h`, `cblas.h`), and their integers.
#[allow(dead_code)]
mod cblas {
    /// A dimension as CBLAS's 32-bit integer (LP64).
    pub(super) fn int(v: usize) -> std::ffi::c_int {
        std::ffi::c_int::try_from(v).expect("matrix dimension beyond CBLAS's 32-bit interface")
    }

    pub(super) const ROW_MAJOR: i32 = 101;
    pub(super) const NO_TRANS: i32 = 111;
    pub(super) const TRANS: i32 = 112;
    pub(super) const PACKED: i32 = 151;
    pub(super) const B_MATRIX: i32 = 162;
}

#[cfg(feature = "mkl")]
mod mkl {
    use std::alloc::{alloc, dealloc, Layout};
    use std::ffi::c_int;

    use rayon::prelude::*;

    use super::cblas::{self, int};
    use super::{PackedWeight, SharedOut};

    // Linked from MKL's static libraries (intel-mkl-src, LP64: MKL_INT is a C int).
    extern "C" {
        fn cblas_sgemm_pack_get_size(identifier: c_int, m: c_int, n: c_int, k: c_int) -> usize;
        fn cblas_sgemm_pack(
            layout: c_int,
            identifier: c_int,
            trans: c_int,
            m: c_int,
            n: c_int,
            k: c_int,
            alpha: f32,
            src: *const f32,
            ld: c_int,
            dest: *mut f32,
        );
        fn cblas_sgemm_compute(
            layout: c_int,
            transa: c_int,
            transb: c_int,
            m: c_int,
            n: c_int,
            k: c_int,
            a: *const f32,
            lda: c_int,
            b: *const f32,
            ldb: c_int,
            beta: f32,
            c: *mut f32,
            ldc: c_int,
        );
    }

    /// Outputs per packed block are a multiple of this.
    const BLOCK_STEP: usize = 64;
    /// Rows per task: MKL's own cache blocking pays off from a few hundred rows.
    const ROWS_PER_TASK: usize = 512;
    /// The rows the packing is told of (MKL's packed B serves any number of rows).
    const ROWS_HINT: usize = ROWS_PER_TASK;

    /// MKL's packed copy of `W^T` for outputs `first..first + width`, in a buffer that never
    /// moves (MKL forbids moving a packed matrix).
    struct Block {
        first: usize,
        width: usize,
        data: *mut f32,
        layout: Layout,
    }

    // SAFETY: the buffer is written once, by `pack`, and only read afterwards.
    unsafe impl Send for Block {}
    unsafe impl Sync for Block {}

    impl Drop for Block {
        fn drop(&mut self) {
            // SAFETY: allocated in `MklWeight::new` with this layout.
            unsafe { dealloc(self.data.cast(), self.layout) }
        }
    }

    /// A weight `[n, k]` (PyTorch's `[out, in]`) packed by MKL in blocks of outputs.
    pub(crate) struct MklWeight {
        blocks: Vec<Block>,
        n: usize,
        k: usize,
    }

    impl MklWeight {
        /// Packs `w` `[n, k]` (row-major).
        pub(crate) fn new(w: &[f32], n: usize, k: usize) -> Self {
            assert_eq!(
                w.len(),
                n * k,
                "weight of {} values for [{n}, {k}]",
                w.len()
            );
            // One block of outputs per thread: a single query's product still spreads over
            // every thread, and each packed matrix carries several MB of MKL's padding, so no
            // more blocks than that.
            let width = n
                .div_ceil(rayon::current_num_threads().max(1))
                .div_ceil(BLOCK_STEP)
                .max(1)
                * BLOCK_STEP;
            let firsts: Vec<usize> = (0..n).step_by(width).collect();
            let blocks = firsts
                .into_par_iter()
                .map(|first| {
                    let width = width.min(n - first);
                    // SAFETY: plain queries and a write into a buffer of the size MKL asks
                    // for; `src` holds `width` rows of `k` values.
                    unsafe {
                        let bytes = cblas_sgemm_pack_get_size(
                            cblas::B_MATRIX,
                            int(ROWS_HINT),
                            int(width),
                            int(k),
                        );
                        let layout = Layout::from_size_align(bytes.max(64), 64)
                            .expect("packed size within isize");
                        let data = alloc(layout).cast::<f32>();
                        if data.is_null() {
                            std::alloc::handle_alloc_error(layout);
                        }
                        // B = W^T: the block's rows of W read transposed.
                        cblas_sgemm_pack(
                            cblas::ROW_MAJOR,
                            cblas::B_MATRIX,
                            cblas::TRANS,
                            int(ROWS_HINT),
                            int(width),
                            int(k),
                            1.0,
                            w.as_ptr().add(first * k),
                            int(k.max(1)),
                            data,
                        );
                        Block {
                            first,
                            width,
                            data,
                            layout,
                        }
                    }
                })
                .collect();
            MklWeight { blocks, n, k }
        }
    }

    impl PackedWeight for MklWeight {
        fn in_features(&self) -> usize {
            self.k
        }

        fn out_features(&self) -> usize {
            self.n
        }

        fn matmul(&self, x: &[f32], m: usize, out: &mut [f32]) {
            let (n, k) = (self.n, self.k);
            assert!(x.len() >= m * k && out.len() >= m * n);
            if m == 0 || n == 0 {
                return;
            }
            if k == 0 {
                out[..m * n].fill(0.0);
                return;
            }
            let shared = SharedOut::new(out);
            let row_blocks = m.div_ceil(ROWS_PER_TASK);
            (0..self.blocks.len() * row_blocks)
                .into_par_iter()
                .for_each(|task| {
                    let block = &self.blocks[task / row_blocks];
                    let r0 = (task % row_blocks) * ROWS_PER_TASK;
                    let rows = ROWS_PER_TASK.min(m - r0);
                    // SAFETY: x holds m rows of k values; the task writes rows r0..r0+rows
                    // of columns first..first+width of the [m, n] output, which no other
                    // task touches.
                    unsafe {
                        cblas_sgemm_compute(
                            cblas::ROW_MAJOR,
                            cblas::NO_TRANS,
                            cblas::PACKED,
                            int(rows),
                            int(block.width),
                            int(k),
                            x.as_ptr().add(r0 * k),
                            int(k),
                            block.data,
                            int(k),
                            0.0,
                            shared.at(r0 * n + block.first),
                            int(n),
                        );
                    }
                });
        }
    }
}

#[cfg(feature = "accelerate")]
mod accelerate {
    use std::ffi::c_int;

    use super::cblas::{self, int};
    use super::PackedWeight;

    // From the Accelerate framework (linked by accelerate-src through Candle's feature).
    extern "C" {
        fn cblas_sgemm(
            layout: c_int,
            transa: c_int,
            transb: c_int,
            m: c_int,
            n: c_int,
            k: c_int,
            alpha: f32,
            a: *const f32,
            lda: c_int,
            b: *const f32,
            ldb: c_int,
            beta: f32,
            c: *mut f32,
            ldc: c_int,
        );
    }

    /// A weight `[n, k]` kept as stored: Accelerate reads it transposed and threads the
    /// product itself (on Apple silicon, on its matrix units).
    pub(crate) struct AccelerateWeight {
        w: Vec<f32>,
        n: usize,
        k: usize,
    }

    impl AccelerateWeight {
        pub(crate) fn new(w: &[f32], n: usize, k: usize) -> Self {
            assert_eq!(
                w.len(),
                n * k,
                "weight of {} values for [{n}, {k}]",
                w.len()
            );
            AccelerateWeight {
                w: w.to_vec(),
                n,
                k,
            }
        }
    }

    impl PackedWeight for AccelerateWeight {
        fn in_features(&self) -> usize {
            self.k
        }

        fn out_features(&self) -> usize {
            self.n
        }

        fn matmul(&self, x: &[f32], m: usize, out: &mut [f32]) {
            let (n, k) = (self.n, self.k);
            assert!(x.len() >= m * k && out.len() >= m * n);
            if m == 0 || n == 0 {
                return;
            }
            // SAFETY: x is [m, k], w is [n, k] and out [m, n], all row-major.
            unsafe {
                cblas_sgemm(
                    cblas::ROW_MAJOR,
                    cblas::NO_TRANS,
                    cblas::TRANS,
                    int(m),
                    int(n),
                    int(k),
                    1.0,
                    x.as_ptr(),
                    int(k.max(1)),
                    self.w.as_ptr(),
                    int(k.max(1)),
                    0.0,
                    out.as_mut_ptr(),
                    int(n),
                );
            }
        }
    }
}

#[cfg(all(feature = "accelerate", not(feature = "mkl")))]
pub(crate) use accelerate::AccelerateWeight as F32Weight;
#[cfg(feature = "mkl")]
pub(crate) use mkl::MklWeight as F32Weight;
