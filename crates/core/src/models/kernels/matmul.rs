//! `y = x W` for few rows of `x` (a query, a short batch). gemm's own threading splits such
//! a product poorly; here the columns of `W` `[K, N]` are cut into panels spread over the
//! thread pool, each multiplied by a single-threaded gemm call: every weight is read once,
//! by one thread, and the threads never wait for each other inside the product.

use candle_core::{CpuStorage, CustomOp2, Layout, Shape};
use gemm::{gemm, Parallelism};
use rayon::prelude::*;

use super::contiguous;

/// Up to this many rows of `x`, column panels beat gemm's own threading.
pub(crate) const SMALL_ROWS: usize = 256;

/// Columns per task.
const PANEL: usize = 128;

/// Operands: `x` `[m, k]` and the weight `[k, n]`, both contiguous and row-major.
pub(crate) struct SmallMatmul;

#[derive(Clone, Copy)]
struct Out(*mut f32);
// SAFETY: each task writes only its own columns.
unsafe impl Send for Out {}
unsafe impl Sync for Out {}

impl Out {
    /// The pointer `offset` values in (a method, so that closures capture the whole `Out`).
    fn at(self, offset: usize) -> *mut f32 {
        self.0.wrapping_add(offset)
    }
}

impl CustomOp2 for SmallMatmul {
    fn name(&self) -> &'static str {
        "latebird-small-matmul"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
        weight_s: &CpuStorage,
        weight_l: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = contiguous(storage, layout, self.name())?;
        let weight = contiguous(weight_s, weight_l, self.name())?;
        let (m, k) = layout.shape().dims2()?;
        let (wk, n) = weight_l.shape().dims2()?;
        if wk != k {
            candle_core::bail!("{}: [{m}, {k}] against a weight [{wk}, {n}]", self.name());
        }
        let mut out = vec![0f32; m * n];
        let y = Out(out.as_mut_ptr());
        (0..n.div_ceil(PANEL)).into_par_iter().for_each(|p| {
            let first = p * PANEL;
            let width = PANEL.min(n - first);
            // SAFETY: x is [m, k] and the weight [k, n], both row-major; the task writes
            // columns first..first + width of the [m, n] output, which no other task touches.
            unsafe {
                gemm(
                    m,
                    width,
                    k,
                    y.at(first),
                    1,
                    n as isize,
                    false,
                    x.as_ptr(),
                    1,
                    k as isize,
                    weight.as_ptr().add(first),
                    1,
                    n as isize,
                    0.0,
                    1.0,
                    false,
                    false,
                    false,
                    Parallelism::None,
                )
            }
        });
        Ok((CpuStorage::F32(out), Shape::from((m, n))))
    }
}
