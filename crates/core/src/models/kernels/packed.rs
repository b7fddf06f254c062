//! What the packed matrix products (int8 in [`super::int8`], bfloat16 in [`super::bf16`])
//! share: the weight layout, the thread split and the op Candle calls.
//!
//! A weight `[n, k]` (PyTorch's `[out, in]`) is packed in panels of [`PANEL`] output columns;
//! within a panel, groups of `lane` consecutive inputs, each column's `lane` values side by
//! side: the operand layout of the dot-product instructions (`vpdpbusd` takes four bytes per
//! lane, `vdpbf16ps` two bf16 values). A product encodes each row of `x` once (quantized or
//! rounded), then tasks of (panel, block of rows) run the kernel's panel routine and write
//! their own columns of their own rows.

use candle_core::{CpuStorage, CustomOp1, Layout, Shape};
use rayon::prelude::*;

use super::contiguous;

/// Output columns per panel: four vectors of sixteen 32-bit lanes.
pub(crate) const PANEL: usize = 64;

/// The output buffer, shared by tasks that each write a disjoint set of its values.
#[derive(Clone, Copy)]
pub(crate) struct SharedOut(*mut f32);
// SAFETY: users hand each task its own values (documented at every `slice`/`at` call).
unsafe impl Send for SharedOut {}
unsafe impl Sync for SharedOut {}

impl SharedOut {
    pub(crate) fn new(out: &mut [f32]) -> Self {
        SharedOut(out.as_mut_ptr())
    }

    /// The pointer `offset` values in.
    pub(crate) fn at(self, offset: usize) -> *mut f32 {
        self.0.wrapping_add(offset)
    }

    /// The `len` values from `offset`.
    ///
    /// # Safety
    /// `offset + len` is within the buffer, and no other task reads or writes those values
    /// while the slice lives.
    pub(crate) unsafe fn slice<'a>(self, offset: usize, len: usize) -> &'a mut [f32] {
        std::slice::from_raw_parts_mut(self.at(offset), len)
    }
}

/// Runs `$block!(R, first_row)` over `$rows` rows in register blocks of `$full` rows, then
/// one block of the rows left, of one of the sizes `$rest` (the kernels' block sizes are
/// compile-time constants).
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
macro_rules! row_blocks {
    ($rows:expr, $block:ident, $full:literal, [$($rest:literal),*]) => {{
        let rows = $rows;
        let mut r = 0;
        while r + $full <= rows {
            $block!($full, r);
            r += $full;
        }
        match rows - r {
            $($rest => $block!($rest, r),)*
            _ => {}
        }
    }};
}
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub(crate) use row_blocks;

/// The bounds a panel routine (`PanelKernel::dot_panel` and its register blocks) relies on,
/// checked in debug builds: `rows` rows of `inputs` encoded values, `stride` apart, in `x`; a
/// panel of `inputs` by [`PANEL`] weights in `w`; `rows` rows of [`PANEL`] sums in `acc`.
#[inline(always)]
pub(crate) fn debug_check_panel<X, W, A>(
    x: &[X],
    stride: usize,
    rows: usize,
    inputs: usize,
    w: &[W],
    acc: &[A],
) {
    debug_assert!(rows == 0 || x.len() >= (rows - 1) * stride + inputs);
    debug_assert!(w.len() >= inputs * PANEL);
    debug_assert!(acc.len() >= rows * PANEL);
}

/// A weight `[n, k]` packed in panels (see the module documentation).
#[derive(Clone, Debug)]
pub(crate) struct Panels<W> {
    k: usize,
    n: usize,
    lane: usize,
    /// `ceil(k / lane)`.
    groups: usize,
    /// `[ceil(n / PANEL)][groups][PANEL][lane]`, `W::default()` past `k` and `n`.
    values: Vec<W>,
}

impl<W: Copy + Default + Send + Sync> Panels<W> {
    /// Packs `w` `[n, k]`, row-major, converting each value with `convert`, `LANE` inputs per
    /// group (a constant, so that the index arithmetic is shifts and masks).
    pub(crate) fn pack<T: Copy + Sync, const LANE: usize>(
        w: &[T],
        n: usize,
        k: usize,
        convert: impl Fn(T) -> W + Sync,
    ) -> Self {
        let lane = LANE;
        debug_assert_eq!(w.len(), n * k);
        let groups = k.div_ceil(lane);
        let panel_len = groups * PANEL * lane;
        let mut values = vec![W::default(); n.div_ceil(PANEL) * panel_len];
        if k > 0 {
            // Tiles of 16 outputs by 64 inputs: the rows read and the panel rows written
            // stay in the L1 cache while a tile is copied.
            const COLUMNS: usize = 16;
            const INPUTS: usize = 64;
            values
                .par_chunks_mut(panel_len)
                .zip(w.par_chunks(PANEL * k))
                .for_each(|(panel, rows)| {
                    let width = rows.len() / k;
                    for c0 in (0..width).step_by(COLUMNS) {
                        for i0 in (0..k).step_by(INPUTS) {
                            let inputs = i0..(i0 + INPUTS).min(k);
                            for column in c0..(c0 + COLUMNS).min(width) {
                                let row = &rows[column * k..(column + 1) * k];
                                for i in inputs.clone() {
                                    panel[((i / lane) * PANEL + column) * lane + i % lane] =
                                        convert(row[i]);
                                }
                            }
                        }
                    }
                });
        }
        Panels {
            k,
            n,
            lane,
            groups,
            values,
        }
    }

    pub(crate) fn in_features(&self) -> usize {
        self.k
    }

    pub(crate) fn out_features(&self) -> usize {
        self.n
    }

    /// Panel `p`: `groups` groups of `PANEL * lane` values.
    fn panel(&self, p: usize) -> &[W] {
        let len = self.groups * PANEL * self.lane;
        &self.values[p * len..(p + 1) * len]
    }

    /// The stored value of output `j`, input `i`.
    #[cfg(test)]
    pub(crate) fn get(&self, j: usize, i: usize) -> W {
        let (panel, column) = (j / PANEL, j % PANEL);
        self.panel(panel)[((i / self.lane) * PANEL + column) * self.lane + i % self.lane]
    }
}

/// How an encoded row of `x` maps back to its values: `x ~ scale * (q - zero)`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct RowCode {
    pub(crate) scale: f32,
    pub(crate) zero: i32,
}

impl RowCode {
    /// Values kept as they are (the float formats).
    pub(crate) const IDENTITY: RowCode = RowCode {
        scale: 1.0,
        zero: 0,
    };
}

/// One packed number format: how rows of `x` are encoded, how a panel is multiplied and how
/// its sums become outputs.
pub(crate) trait PanelKernel: Sync {
    /// An encoded activation.
    type X: Copy + Send + Sync;
    /// A stored weight value.
    type W: Copy + Default + Send + Sync;
    /// A sum.
    type Acc: Copy + Default + Send;
    /// Inputs per instruction lane (the packing's group).
    const LANE: usize;
    /// The encoded zero, padding rows past `k`.
    const X_ZERO: Self::X;
    /// Rows of `x` per task when there are more than this many (fewer: one block of all rows).
    const ROWS_PER_TASK: usize = 64;

    fn panels(&self) -> &Panels<Self::W>;

    /// Encodes `row` into `out` (as long as `row`, then padding); returns how to decode it.
    fn encode_row(row: &[f32], out: &mut [Self::X]) -> RowCode;

    /// `acc[r][c] = sum_i x[r][i] * w[c][i]` for `rows` encoded rows (`stride` apart) and
    /// one panel, `acc` (zeroed by the caller) rows `PANEL` wide.
    fn dot_panel(
        x: &[Self::X],
        stride: usize,
        rows: usize,
        panel: &[Self::W],
        groups: usize,
        acc: &mut [Self::Acc],
    );

    /// The outputs `y` (columns `c0..c0 + y.len()` of a row encoded as `code`) from their
    /// sums.
    fn finish(&self, acc: &[Self::Acc], code: RowCode, c0: usize, y: &mut [f32]);

    /// `y = x W^T` for `x` `[m, k]`, into `out` `[m, n]`, on the thread pool.
    fn matmul(&self, x: &[f32], m: usize, out: &mut [f32]) {
        let panels = self.panels();
        let (k, n, groups) = (panels.k, panels.n, panels.groups);
        debug_assert_eq!(x.len(), m * k);
        debug_assert_eq!(out.len(), m * n);
        if k == 0 {
            out.fill(0.0); // empty sums
            return;
        }
        if m == 0 || n == 0 {
            return;
        }
        let stride = groups * Self::LANE;
        let mut xs = vec![Self::X_ZERO; m * stride];
        let mut codes = vec![RowCode::IDENTITY; m];
        xs.par_chunks_mut(stride)
            .zip(x.par_chunks(k.max(1)))
            .zip(codes.par_iter_mut())
            .for_each(|((encoded, row), code)| *code = Self::encode_row(row, encoded));
        let n_panels = n.div_ceil(PANEL);
        let rows_per_task = m.min(Self::ROWS_PER_TASK);
        let blocks = m.div_ceil(rows_per_task);
        let out = SharedOut::new(out);
        (0..n_panels * blocks).into_par_iter().for_each_init(
            || vec![Self::Acc::default(); rows_per_task * PANEL],
            |acc, task| {
                let (p, block) = (task % n_panels, task / n_panels);
                let first = block * rows_per_task;
                let rows = rows_per_task.min(m - first);
                let acc = &mut acc[..rows * PANEL];
                acc.fill(Self::Acc::default());
                Self::dot_panel(
                    &xs[first * stride..(first + rows) * stride],
                    stride,
                    rows,
                    panels.panel(p),
                    groups,
                    acc,
                );
                let c0 = p * PANEL;
                let width = PANEL.min(n - c0);
                for r in 0..rows {
                    // SAFETY: row first + r, columns c0..c0 + width of the [m, n] output
                    // belong to this task alone.
                    let y = unsafe { out.slice((first + r) * n + c0, width) };
                    self.finish(&acc[r * PANEL..r * PANEL + width], codes[first + r], c0, y);
                }
            },
        );
    }
}

/// A packed weight as the layers see it.
pub(crate) trait PackedWeight: Sync {
    fn in_features(&self) -> usize;
    fn out_features(&self) -> usize;
    fn matmul(&self, x: &[f32], m: usize, out: &mut [f32]);
}

impl<K: PanelKernel> PackedWeight for K {
    fn in_features(&self) -> usize {
        self.panels().in_features()
    }
    fn out_features(&self) -> usize {
        self.panels().out_features()
    }
    fn matmul(&self, x: &[f32], m: usize, out: &mut [f32]) {
        PanelKernel::matmul(self, x, m, out)
    }
}

/// `y = x W^T` with a packed weight, for `x` `[m, k]` f32.
pub(crate) struct PackedMatmul<'a> {
    pub(crate) weight: &'a dyn PackedWeight,
}

impl CustomOp1 for PackedMatmul<'_> {
    fn name(&self) -> &'static str {
        "latebird-packed-matmul"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = contiguous(storage, layout, self.name())?;
        let (m, k) = layout.shape().dims2()?;
        let n = self.weight.out_features();
        if k != self.weight.in_features() {
            candle_core::bail!(
                "{}: [{m}, {k}] against a weight of {} inputs",
                self.name(),
                self.weight.in_features()
            );
        }
        let mut out = vec![0f32; m * n];
        self.weight.matmul(x, m, &mut out);
        Ok((CpuStorage::F32(out), Shape::from((m, n))))
    }
}
