//! Fused CPU kernels for the element-wise work around the matmuls. Each has a generic
//! Candle-ops twin used on other devices; both compute the same thing.

use candle_core::{CpuStorage, CustomOp1, Layout, Shape};

/// Rows handed to one worker at a time: enough work to amortise the scheduling.
const ROWS_PER_TASK: usize = 64;

/// LayerNorm over the last dimension, variance taken around the mean (two passes, as
/// PyTorch does), scale and optional shift fused into one read and one write per value.
pub(crate) struct FusedLayerNorm<'a> {
    pub(crate) weight: &'a [f32],
    pub(crate) bias: Option<&'a [f32]>,
    pub(crate) eps: f32,
}

/// Sum of `f(x)` over a slice with eight independent accumulators, so that it vectorises.
#[inline]
fn lane_sum(xs: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut acc = [0f32; 8];
    let chunks = xs.chunks_exact(8);
    let tail: f32 = chunks.remainder().iter().map(|&x| f(x)).sum();
    for chunk in chunks {
        for (a, &x) in acc.iter_mut().zip(chunk) {
            *a += f(x);
        }
    }
    acc.iter().sum::<f32>() + tail
}

impl FusedLayerNorm<'_> {
    fn row(&self, src: &[f32], dst: &mut [f32]) {
        let n = src.len() as f32;
        let mean = lane_sum(src, |x| x) / n;
        let var = lane_sum(src, |x| (x - mean) * (x - mean)) / n;
        let inv = 1.0 / (var + self.eps).sqrt();
        match self.bias {
            Some(bias) => {
                for (((d, s), w), b) in dst.iter_mut().zip(src).zip(self.weight).zip(bias) {
                    *d = (s - mean) * inv * w + b;
                }
            }
            None => {
                for ((d, s), w) in dst.iter_mut().zip(src).zip(self.weight) {
                    *d = (s - mean) * inv * w;
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
        use rayon::prelude::*;
        let CpuStorage::F32(values) = storage else {
            candle_core::bail!("layer norm expects f32 values");
        };
        let Some((start, end)) = layout.contiguous_offsets() else {
            candle_core::bail!("layer norm expects a contiguous input");
        };
        let dim = self.weight.len();
        let src = &values[start..end];
        if dim == 0 || src.len() % dim != 0 {
            candle_core::bail!("layer norm over {dim} values does not divide {}", src.len());
        }
        let mut out = vec![0f32; src.len()];
        out.par_chunks_mut(dim * ROWS_PER_TASK)
            .zip(src.par_chunks(dim * ROWS_PER_TASK))
            .for_each(|(dst, src)| {
                for (d, s) in dst.chunks_exact_mut(dim).zip(src.chunks_exact(dim)) {
                    self.row(s, d);
                }
            });
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }
}
