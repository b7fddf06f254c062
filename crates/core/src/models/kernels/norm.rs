//! LayerNorm over the last dimension, variance taken around the mean (two passes, as
//! PyTorch does), scale and optional shift fused into one read and one write per value.

use candle_core::{CpuStorage, CustomOp1, Layout, Shape};

use super::math::{lane_sum, multiversion};
use super::{check_width, contiguous, for_row_chunks};

pub(crate) struct FusedLayerNorm<'a> {
    pub(crate) weight: &'a [f32],
    pub(crate) bias: Option<&'a [f32]>,
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

impl CustomOp1 for FusedLayerNorm<'_> {
    fn name(&self) -> &'static str {
        "latebird-layer-norm"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let src = contiguous(storage, layout, self.name())?;
        let dim = self.weight.len();
        check_width(src.len(), dim, self.name())?;
        let mut out = vec![0f32; src.len()];
        for_row_chunks(&mut out, dim, |first, dst| {
            let src = &src[first * dim..first * dim + dst.len()];
            normalize_rows(src, dst, self.weight, self.bias, self.eps);
        });
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }
}
