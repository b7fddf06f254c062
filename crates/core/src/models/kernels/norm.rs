//! LayerNorm over the last dimension, variance taken around the mean (two passes, as
//! PyTorch does), scale and optional shift fused into one read and one write per value.

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Shape};

use super::math::{lane_sum, multiversion};
use super::{check_width, contiguous, for_row_chunks, parameter};

/// Operands: `x` `[rows, dim]`, the weight `[dim]` and, when the norm has one, the bias.
pub(crate) struct FusedLayerNorm {
    pub(crate) eps: f32,
}

multiversion! {
    fn normalize_rows(src: &[f32], dst: &mut [f32], weight: &[f32], bias: Option<&[f32]>, eps: f32) {
        let dim = weight.len();
        for (s, d) in src.chunks_exact(dim).zip(dst.chunks_exact_mut(dim)) {
            let n = dim as f32;
            let mean = lane_sum(s, |x| x) / n;
            let var = lane_sum(s, |x| (x - mean) * (x - mean)) / n;
            let inv = 1.0 / (var + eps).sqrt();
            match bias {
                Some(bias) => {
                    for (((d, s), w), b) in d.iter_mut().zip(s).zip(weight).zip(bias) {
                        *d = (s - mean) * inv * w + b;
                    }
                }
                None => {
                    for ((d, s), w) in d.iter_mut().zip(s).zip(weight) {
                        *d = (s - mean) * inv * w;
                    }
                }
            }
        }
    }
}

impl FusedLayerNorm {
    fn run(
        &self,
        (storage, layout): (&CpuStorage, &Layout),
        (weight, weight_l): (&CpuStorage, &Layout),
        bias: Option<(&CpuStorage, &Layout)>,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let name = "latebird-layer-norm";
        let src = contiguous(storage, layout, name)?;
        let dim = layout.dims().last().copied().unwrap_or(0);
        let weight = parameter(weight, weight_l, dim, name)?;
        let bias = bias.map(|(b, l)| parameter(b, l, dim, name)).transpose()?;
        check_width(src.len(), dim, name)?;
        let mut out = vec![0f32; src.len()];
        for_row_chunks(&mut out, dim, |first, dst| {
            let src = &src[first * dim..first * dim + dst.len()];
            normalize_rows(src, dst, weight, bias, self.eps);
        });
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }
}

impl CustomOp2 for FusedLayerNorm {
    fn name(&self) -> &'static str {
        "latebird-layer-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        self.run((s1, l1), (s2, l2), None)
    }
}

impl CustomOp3 for FusedLayerNorm {
    fn name(&self) -> &'static str {
        "latebird-layer-norm-bias"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        self.run((s1, l1), (s2, l2), Some((s3, l3)))
    }
}
