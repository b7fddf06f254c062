//! Fused CPU kernels for the work around the matmuls: LayerNorm, bias + activation,
//! residual adds, GeGLU and attention over packed sequences. Each is a Candle custom op with
//! a generic Candle-ops twin in the model code for other devices; both compute the same.

mod attention;
pub(crate) mod math;
mod matmul;
mod norm;

use candle_core::{CpuStorage, CustomOp1, InplaceOp1, InplaceOp2, Layout, Shape};
use rayon::prelude::*;

pub(crate) use attention::{PackedAttention, Rope, Span};
pub(crate) use matmul::{SmallMatmul, SMALL_ROWS};
pub(crate) use norm::FusedLayerNorm;

use crate::config::Activation;
use math::{bias_activation, bias_activation_inline, multiversion};

/// Rows handed to one worker at a time: enough work to amortise the scheduling.
const ROWS_PER_TASK: usize = 32;

/// The f32 values of a contiguous tensor.
fn contiguous<'a>(
    storage: &'a CpuStorage,
    layout: &Layout,
    op: &str,
) -> candle_core::Result<&'a [f32]> {
    let CpuStorage::F32(values) = storage else {
        candle_core::bail!("{op} expects f32 values");
    };
    let Some((start, end)) = layout.contiguous_offsets() else {
        candle_core::bail!("{op} expects a contiguous tensor");
    };
    Ok(&values[start..end])
}

fn contiguous_mut<'a>(
    storage: &'a mut CpuStorage,
    layout: &Layout,
    op: &str,
) -> candle_core::Result<&'a mut [f32]> {
    let CpuStorage::F32(values) = storage else {
        candle_core::bail!("{op} expects f32 values");
    };
    let Some((start, end)) = layout.contiguous_offsets() else {
        candle_core::bail!("{op} expects a contiguous tensor");
    };
    Ok(&mut values[start..end])
}

/// Runs `f(first_row, rows)` over chunks of whole `dim`-wide rows of `out`, in parallel.
fn for_row_chunks(out: &mut [f32], dim: usize, f: impl Fn(usize, &mut [f32]) + Sync) {
    out.par_chunks_mut(dim * ROWS_PER_TASK)
        .enumerate()
        .for_each(|(i, chunk)| f(i * ROWS_PER_TASK, chunk));
}

fn check_width(len: usize, dim: usize, op: &str) -> candle_core::Result<()> {
    if dim == 0 || !len.is_multiple_of(dim) {
        candle_core::bail!("{op}: rows of {dim} values do not divide {len}");
    }
    Ok(())
}

/// `x = act(x + bias)` in place.
pub(crate) struct BiasActivation<'a> {
    pub(crate) bias: Option<&'a [f32]>,
    pub(crate) width: usize,
    pub(crate) activation: Activation,
}

impl InplaceOp1 for BiasActivation<'_> {
    fn name(&self) -> &'static str {
        "latebird-bias-activation"
    }

    fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> candle_core::Result<()> {
        let xs = contiguous_mut(storage, layout, self.name())?;
        check_width(xs.len(), self.width, self.name())?;
        for_row_chunks(xs, self.width, |_, rows| {
            bias_activation(rows, self.bias, self.activation)
        });
        Ok(())
    }
}

multiversion! {
    fn add_rows(dst: &mut [f32], src: &[f32], bias: Option<&[f32]>) {
        bias_activation_inline(dst, bias, Activation::Identity);
        for (d, s) in dst.iter_mut().zip(src) {
            *d += s;
        }
    }
}

/// `x = (x + bias) + other` in place: a residual connection after a linear layer's matmul,
/// summed in PyTorch's order.
pub(crate) struct AddResidual<'a> {
    pub(crate) bias: Option<&'a [f32]>,
    pub(crate) width: usize,
}

impl InplaceOp2 for AddResidual<'_> {
    fn name(&self) -> &'static str {
        "latebird-add-residual"
    }

    fn cpu_fwd(
        &self,
        dst: &mut CpuStorage,
        dst_l: &Layout,
        src: &CpuStorage,
        src_l: &Layout,
    ) -> candle_core::Result<()> {
        let src = contiguous(src, src_l, self.name())?;
        let xs = contiguous_mut(dst, dst_l, self.name())?;
        if src.len() != xs.len() {
            candle_core::bail!("{}: {} values against {}", self.name(), xs.len(), src.len());
        }
        check_width(xs.len(), self.width, self.name())?;
        for_row_chunks(xs, self.width, |first, rows| {
            let start = first * self.width;
            add_rows(rows, &src[start..start + rows.len()], self.bias);
        });
        Ok(())
    }
}

multiversion! {
    fn gate_rows(src: &[f32], dst: &mut [f32], width: usize, bias: Option<&[f32]>, activation: Activation) {
        for (s, d) in src.chunks_exact(2 * width).zip(dst.chunks_exact_mut(width)) {
            let (input, gate) = s.split_at(width);
            d.copy_from_slice(input);
            bias_activation_inline(d, bias.map(|b| &b[..width]), activation);
            match bias {
                Some(b) => {
                    for ((d, g), b) in d.iter_mut().zip(gate).zip(&b[width..]) {
                        *d *= g + b;
                    }
                }
                None => {
                    for (d, g) in d.iter_mut().zip(gate) {
                        *d *= g;
                    }
                }
            }
        }
    }
}

/// GeGLU: `[T, 2w] -> [T, w]`, `act(input + b_in) * (gate + b_gate)` where `input` and
/// `gate` are the two halves of each row and the bias is the linear layer's.
pub(crate) struct GatedActivation<'a> {
    pub(crate) bias: Option<&'a [f32]>,
    pub(crate) width: usize,
    pub(crate) activation: Activation,
}

impl CustomOp1 for GatedActivation<'_> {
    fn name(&self) -> &'static str {
        "latebird-gated-activation"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let src = contiguous(storage, layout, self.name())?;
        check_width(src.len(), 2 * self.width, self.name())?;
        let rows = src.len() / (2 * self.width);
        let mut out = vec![0f32; rows * self.width];
        for_row_chunks(&mut out, self.width, |first, dst| {
            let start = first * 2 * self.width;
            let src = &src[start..start + 2 * dst.len()];
            gate_rows(src, dst, self.width, self.bias, self.activation);
        });
        Ok((CpuStorage::F32(out), Shape::from((rows, self.width))))
    }
}
