//! float32 matrix products `y = x W^T` for linear layers on the CPU, in the packed layout of
//! [`super::packed`] with one input per lane: each panel is a row-major `[k, PANEL]` block
//! (the weight's transpose, one panel of outputs at a time), which gemm's kernels stream
//! without repacking, and which packing builds from the checkpoint's `[out, in]` rows in one
//! cache-friendly pass at load. Tasks of (panel, block of rows) each run a single-threaded
//! gemm: every weight is read by one thread per block, and the threads never wait for each
//! other inside a product, which gemm's own threading does poorly for a few rows.

use super::packed::{PanelKernel, Panels, RowCode, PANEL};
use super::sgemm::{sgemm, Operand};

/// A weight `[n, k]` (PyTorch's `[out, in]`) in f32, packed for gemm.
#[derive(Clone, Debug)]
pub(crate) struct F32Weight {
    panels: Panels<f32>,
}

impl F32Weight {
    /// Packs `w` `[n, k]` (row-major).
    pub(crate) fn new(w: &[f32], n: usize, k: usize) -> Self {
        F32Weight {
            panels: Panels::pack::<_, 1>(w, n, k, |v| v),
        }
    }
}

impl PanelKernel for F32Weight {
    type X = f32;
    type W = f32;
    type Acc = f32;
    const LANE: usize = 1;
    const X_ZERO: f32 = 0.0;
    /// Blocks of rows large enough for gemm's cache blocking to pay off.
    const ROWS_PER_TASK: usize = 512;

    fn panels(&self) -> &Panels<f32> {
        &self.panels
    }

    fn encode_row(row: &[f32], out: &mut [f32]) -> RowCode {
        out.copy_from_slice(row);
        RowCode::IDENTITY
    }

    fn dot_panel(x: &[f32], stride: usize, rows: usize, w: &[f32], k: usize, acc: &mut [f32]) {
        debug_assert!(x.len() >= (rows.max(1) - 1) * stride + k);
        debug_assert!(w.len() >= k * PANEL);
        debug_assert!(acc.len() >= rows * PANEL);
        // SAFETY: x holds `rows` rows of k values `stride` apart, the panel k rows of PANEL
        // values and acc `rows` rows of PANEL values (checked above).
        unsafe {
            sgemm(
                (rows, PANEL, k),
                acc.as_mut_ptr(),
                PANEL,
                Operand::rows(x.as_ptr(), stride),
                Operand::rows(w.as_ptr(), PANEL),
            )
        }
    }

    fn finish(&self, acc: &[f32], _code: RowCode, _c0: usize, y: &mut [f32]) {
        y.copy_from_slice(acc);
    }
}
