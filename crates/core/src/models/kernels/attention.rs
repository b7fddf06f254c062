//! Multi-head attention over packed (unpadded) sequences, straight from the fused QKV
//! projection `[T, 3 * hidden]` to the context `[T, hidden]`: one task per (sequence, head),
//! spread over the thread pool; rotary embedding applied while q and k are gathered; query
//! rows taken in blocks, each multiplied only against the keys its window can reach; a
//! vectorised softmax in between. A query row with no key to attend to gets zeros, as
//! PyTorch's scaled_dot_product_attention gives.

use candle_core::{CpuStorage, CustomOp1, CustomOp3, Layout, Shape};
use rayon::prelude::*;

use super::contiguous;
use super::math::{exp, lane_max, lane_sum, multiversion};
use super::packed::SharedOut;
use super::sgemm::{sgemm, Operand};

/// One sequence of a packed batch: rows `start..start + len` of the `[T, ..]` tensors, of
/// which the first `keys` are attended to (the rest are query expansion tokens).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Span {
    pub(crate) start: usize,
    pub(crate) len: usize,
    pub(crate) keys: usize,
}

/// Rotary tables: row `p` of `cos` and `sin` holds the `head_dim / 2` values for position `p`.
#[derive(Clone, Copy)]
struct Rope<'a> {
    cos: &'a [f32],
    sin: &'a [f32],
}

/// As `CustomOp1`, attention of `qkv` `[T, 3 * hidden]`; as `CustomOp3`, with q and k rotated
/// by the rotary tables `cos` and `sin` (`[positions, head_dim / 2]`, the 2nd and 3rd operands).
pub(crate) struct PackedAttention<'a> {
    pub(crate) spans: &'a [Span],
    pub(crate) heads: usize,
    /// Sliding window: query `i` sees keys `j` with `|i - j| <= half_window`.
    pub(crate) half_window: Option<usize>,
}

/// Query rows per block: the scores of a block stay in the L2 cache.
const BLOCK: usize = 64;

#[derive(Default)]
struct Scratch {
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    scores: Vec<f32>,
}

multiversion! {
    /// Copies `rows` head vectors of `d` values, `stride` apart in `src`, into `dst`,
    /// rotating them by their position (rotate-half form) and multiplying by `scale`.
    fn gather(src: &[f32], stride: usize, rows: usize, dst: &mut [f32], rope: Option<(&[f32], &[f32])>, scale: f32) {
        let d = dst.len() / rows.max(1);
        let half = d / 2;
        for r in 0..rows {
            let x = &src[r * stride..r * stride + d];
            let out = &mut dst[r * d..(r + 1) * d];
            let Some((cos, sin)) = rope else {
                for (o, v) in out.iter_mut().zip(x) {
                    *o = v * scale;
                }
                continue;
            };
            let (c, s) = (&cos[r * half..(r + 1) * half], &sin[r * half..(r + 1) * half]);
            let (x1, x2) = x.split_at(half);
            let (o1, o2) = out.split_at_mut(half);
            for i in 0..half {
                o1[i] = (x1[i] * c[i] - x2[i] * s[i]) * scale;
                o2[i] = (x2[i] * c[i] + x1[i] * s[i]) * scale;
            }
        }
    }
}

multiversion! {
    /// Softmax of each `width`-wide row of `scores` over its own live range of columns
    /// (`live(row) -> (from, to)`), zeros elsewhere; an empty range gives a row of zeros.
    fn softmax_rows(scores: &mut [f32], width: usize, ranges: &[(usize, usize)]) {
        for (row, &(from, to)) in scores.chunks_exact_mut(width).zip(ranges) {
            if from >= to {
                row.fill(0.0);
                continue;
            }
            row[..from].fill(0.0);
            row[to..].fill(0.0);
            let live = &mut row[from..to];
            let max = lane_max(live);
            for x in live.iter_mut() {
                *x = exp(*x - max);
            }
            let inv = 1.0 / lane_sum(live, |x| x);
            for x in live.iter_mut() {
                *x *= inv;
            }
        }
    }
}

impl PackedAttention<'_> {
    /// One head of one sequence. `qkv` holds rows of `3 * hidden` values.
    #[allow(clippy::too_many_arguments)]
    fn head(
        &self,
        qkv: &[f32],
        hidden: usize,
        span: Span,
        h: usize,
        rope: Option<Rope>,
        out: SharedOut,
        s: &mut Scratch,
    ) {
        let d = hidden / self.heads;
        let width = 3 * hidden;
        let (n, nk) = (span.len, span.keys.min(span.len));
        if nk == 0 {
            return; // every row attends to nothing: zeros, already there
        }
        let rows = &qkv[span.start * width..(span.start + n) * width];
        let rope = rope.map(|r| (r.cos, r.sin));
        let scale = 1.0 / (d as f32).sqrt();
        s.q.resize(n * d, 0.0);
        s.k.resize(nk * d, 0.0);
        s.v.resize(nk * d, 0.0);
        gather(&rows[h * d..], width, n, &mut s.q, rope, scale);
        gather(&rows[hidden + h * d..], width, nk, &mut s.k, rope, 1.0);
        gather(&rows[2 * hidden + h * d..], width, nk, &mut s.v, None, 1.0);
        let reach = self.half_window.unwrap_or(usize::MAX);
        let mut ranges = [(0usize, 0usize); BLOCK];
        for first in (0..n).step_by(BLOCK) {
            let last = (first + BLOCK).min(n);
            let m = last - first;
            // Keys any row of the block can see.
            let lo = first.saturating_sub(reach);
            let hi = nk.min((last - 1).saturating_add(reach).saturating_add(1));
            if lo >= hi {
                continue; // rows beyond every key's window: zeros
            }
            let kw = hi - lo;
            for (i, range) in ranges[..m].iter_mut().enumerate() {
                let row = first + i;
                let from = row.saturating_sub(reach).max(lo);
                let to = hi.min(row.saturating_add(reach).saturating_add(1));
                *range = (from.min(to) - lo, to - lo);
            }
            s.scores.resize(m * kw, 0.0);
            // SAFETY: every pointer and stride below stays inside its buffer: q holds n rows
            // of d, k and v nk rows of d, scores m rows of kw, and the output block is rows
            // span.start + first .. + m, columns h * d .. (h + 1) * d of a [T, hidden] buffer.
            unsafe {
                sgemm(
                    (m, kw, d),
                    s.scores.as_mut_ptr(),
                    kw,
                    Operand::rows(s.q.as_ptr().add(first * d), d),
                    Operand {
                        ptr: s.k.as_ptr().add(lo * d),
                        row_stride: 1,
                        col_stride: d,
                    },
                );
            }
            softmax_rows(&mut s.scores, kw, &ranges[..m]);
            unsafe {
                sgemm(
                    (m, d, kw),
                    out.at((span.start + first) * hidden + h * d),
                    hidden,
                    Operand::rows(s.scores.as_ptr(), kw),
                    Operand::rows(s.v.as_ptr().add(lo * d), d),
                );
            }
        }
    }
}

impl PackedAttention<'_> {
    fn run(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
        rope: Option<Rope>,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let qkv = contiguous(storage, layout, "latebird-packed-attention")?;
        let (t, width) = layout.shape().dims2()?;
        let hidden = width / 3;
        if width % 3 != 0 || self.heads == 0 || hidden % self.heads != 0 {
            candle_core::bail!(
                "attention: rows of {width} values do not split into q, k and v of {} heads",
                self.heads
            );
        }
        let d = hidden / self.heads;
        for span in self.spans {
            if span.start + span.len > t {
                candle_core::bail!(
                    "attention: a sequence ends at row {} of {t}",
                    span.start + span.len
                );
            }
            if let Some(rope) = &rope {
                if !d.is_multiple_of(2)
                    || rope.cos.len() < span.len * d / 2
                    || rope.sin.len() < span.len * d / 2
                {
                    candle_core::bail!(
                        "attention: rotary tables too short for {} positions",
                        span.len
                    );
                }
            }
        }
        let mut out = vec![0f32; t * hidden];
        let ptr = SharedOut::new(&mut out);
        let tasks: Vec<(Span, usize)> = self
            .spans
            .iter()
            .flat_map(|&span| (0..self.heads).map(move |h| (span, h)))
            .collect();
        tasks
            .into_par_iter()
            .for_each_init(Scratch::default, |scratch, (span, h)| {
                self.head(qkv, hidden, span, h, rope, ptr, scratch)
            });
        Ok((CpuStorage::F32(out), Shape::from((t, hidden))))
    }
}

impl CustomOp1 for PackedAttention<'_> {
    fn name(&self) -> &'static str {
        "latebird-packed-attention"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        self.run(storage, layout, None)
    }
}

impl CustomOp3 for PackedAttention<'_> {
    fn name(&self) -> &'static str {
        "latebird-packed-rotary-attention"
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
        let name = CustomOp3::name(self);
        let rope = Rope {
            cos: contiguous(s2, l2, name)?,
            sin: contiguous(s3, l3, name)?,
        };
        self.run(s1, l1, Some(rope))
    }
}
