//! Fused CPU kernels for the work around the matmuls: LayerNorm, bias + activation,
//! residual adds, GeGLU, the linear layers' matrix products (float32, bfloat16, int8) and
//! attention over packed sequences. Each is a
//! Candle custom op whose parameters (weights, biases, rotary tables) are tensor operands,
//! read from their CPU storage; `super::layers` picks between these and the Candle-ops form
//! that other devices run, and both compute the same.

mod attention;
pub(crate) mod bf16;
#[cfg(any(feature = "mkl", feature = "accelerate"))]
mod blas;
pub(crate) mod int8;
#[cfg(any(test, all(target_arch = "wasm32", target_feature = "simd128")))]
mod int8_simd128;
pub(crate) mod math;
#[cfg(not(any(feature = "mkl", feature = "accelerate")))]
mod matmul;
mod norm;
mod packed;
mod sgemm;

use candle_core::{
    CpuStorage, CustomOp1, CustomOp2, InplaceOp1, InplaceOp2, InplaceOp3, Layout, Shape,
};
use rayon::prelude::*;

pub(crate) use attention::{PackedAttention, Span};
#[cfg(any(feature = "mkl", feature = "accelerate"))]
pub(crate) use blas::F32Weight;
pub(crate) use math::Activation;
#[cfg(not(any(feature = "mkl", feature = "accelerate")))]
pub(crate) use matmul::F32Weight;
pub(crate) use norm::FusedLayerNorm;
pub(crate) use packed::{PackedMatmul, PackedWeight};

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

/// A parameter operand (bias, LayerNorm weight): its contiguous f32 values, `len` of them.
fn parameter<'a>(
    storage: &'a CpuStorage,
    layout: &Layout,
    len: usize,
    op: &str,
) -> candle_core::Result<&'a [f32]> {
    let values = contiguous(storage, layout, op)?;
    if values.len() != len {
        candle_core::bail!(
            "{op}: a parameter of {} values, expected {len}",
            values.len()
        );
    }
    Ok(values)
}

/// `x = act(x + bias)` in place, on rows of `width` values. As `InplaceOp1` without a bias,
/// as `InplaceOp2` with the bias `[width]` as the operand.
pub(crate) struct BiasActivation {
    pub(crate) width: usize,
    pub(crate) activation: Activation,
}

impl BiasActivation {
    fn run(
        &self,
        storage: &mut CpuStorage,
        layout: &Layout,
        bias: Option<&[f32]>,
    ) -> candle_core::Result<()> {
        let name = "latebird-bias-activation";
        let xs = contiguous_mut(storage, layout, name)?;
        check_width(xs.len(), self.width, name)?;
        for_row_chunks(xs, self.width, |_, rows| {
            bias_activation(rows, bias, self.activation)
        });
        Ok(())
    }
}

impl InplaceOp1 for BiasActivation {
    fn name(&self) -> &'static str {
        "latebird-activation"
    }

    fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> candle_core::Result<()> {
        self.run(storage, layout, None)
    }
}

impl InplaceOp2 for BiasActivation {
    fn name(&self) -> &'static str {
        "latebird-bias-activation"
    }

    fn cpu_fwd(
        &self,
        dst: &mut CpuStorage,
        dst_l: &Layout,
        bias: &CpuStorage,
        bias_l: &Layout,
    ) -> candle_core::Result<()> {
        let bias = parameter(bias, bias_l, self.width, InplaceOp2::name(self))?;
        self.run(dst, dst_l, Some(bias))
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

/// `x = (x + bias) + residual` in place: a residual connection after a linear layer's
/// matmul, summed in PyTorch's order. Operands: the residual, then the bias if there is one.
pub(crate) struct AddResidual {
    pub(crate) width: usize,
}

impl AddResidual {
    fn run(
        &self,
        dst: &mut CpuStorage,
        dst_l: &Layout,
        (src, src_l): (&CpuStorage, &Layout),
        bias: Option<&[f32]>,
    ) -> candle_core::Result<()> {
        let name = "latebird-add-residual";
        let src = contiguous(src, src_l, name)?;
        let xs = contiguous_mut(dst, dst_l, name)?;
        if src.len() != xs.len() {
            candle_core::bail!("{name}: {} values against {}", xs.len(), src.len());
        }
        check_width(xs.len(), self.width, name)?;
        for_row_chunks(xs, self.width, |first, rows| {
            let start = first * self.width;
            add_rows(rows, &src[start..start + rows.len()], bias);
        });
        Ok(())
    }
}

impl InplaceOp2 for AddResidual {
    fn name(&self) -> &'static str {
        "latebird-add-residual"
    }

    fn cpu_fwd(
        &self,
        dst: &mut CpuStorage,
        dst_l: &Layout,
        residual: &CpuStorage,
        residual_l: &Layout,
    ) -> candle_core::Result<()> {
        self.run(dst, dst_l, (residual, residual_l), None)
    }
}

impl InplaceOp3 for AddResidual {
    fn name(&self) -> &'static str {
        "latebird-add-bias-residual"
    }

    fn cpu_fwd(
        &self,
        dst: &mut CpuStorage,
        dst_l: &Layout,
        residual: &CpuStorage,
        residual_l: &Layout,
        bias: &CpuStorage,
        bias_l: &Layout,
    ) -> candle_core::Result<()> {
        let bias = parameter(bias, bias_l, self.width, InplaceOp3::name(self))?;
        self.run(dst, dst_l, (residual, residual_l), Some(bias))
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
/// `gate` are the two halves of each row and the bias `[2w]` (the second operand, when the
/// layer has one) is the linear layer's.
pub(crate) struct GatedActivation {
    pub(crate) width: usize,
    pub(crate) activation: Activation,
}

impl GatedActivation {
    fn run(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
        bias: Option<&[f32]>,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let name = "latebird-gated-activation";
        let src = contiguous(storage, layout, name)?;
        check_width(src.len(), 2 * self.width, name)?;
        let rows = src.len() / (2 * self.width);
        let mut out = vec![0f32; rows * self.width];
        for_row_chunks(&mut out, self.width, |first, dst| {
            let start = first * 2 * self.width;
            let src = &src[start..start + 2 * dst.len()];
            gate_rows(src, dst, self.width, bias, self.activation);
        });
        Ok((CpuStorage::F32(out), Shape::from((rows, self.width))))
    }
}

impl CustomOp1 for GatedActivation {
    fn name(&self) -> &'static str {
        "latebird-gated-activation"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        self.run(storage, layout, None)
    }
}

impl CustomOp2 for GatedActivation {
    fn name(&self) -> &'static str {
        "latebird-gated-bias-activation"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let bias = parameter(s2, l2, 2 * self.width, CustomOp2::name(self))?;
        self.run(s1, l1, Some(bias))
    }
}

#[cfg(test)]
mod tests;
