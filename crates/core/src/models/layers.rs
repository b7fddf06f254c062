//! The layers every backbone is built from: linear (with bias, activation, residual or
//! GeGLU gate), LayerNorm, rotary tables and attention over packed sequences.
//!
//! Each layer holds its parameters as tensors on the model's device and picks, in this file
//! only, how to run: the fused CPU kernels of [`super::kernels`] (Candle custom ops that read
//! the parameter tensors' storage) when the values are f32 in host memory, else Candle ops
//! that every device (CUDA, Metal, the CPU with `LATEBIRD_CPU=generic`) has, batched over
//! the packed sequences. Model files call these layers and never branch on the device.

use std::sync::{Arc, Mutex};

use candle_core::{DType, Device, Tensor, D};

use super::kernels::{
    self, bf16::Bf16Weight, int8::Int8Weight, math::fused_kernels, F32Weight, PackedWeight,
};
pub(crate) use super::kernels::{Activation, Span};
use crate::error::{Error, Result};
use crate::precision::Precision;
use crate::weights::{LinearParts, WeightStore};

/// Large finite negative added to masked attention scores: exp() of it is exactly 0,
/// and a row whose keys are all masked still yields finite (uniform) weights, never NaN.
const MASKED: f32 = f32::MIN;

/// Whether `x` runs on the fused CPU kernels (f32 values in host memory, kernels enabled).
fn fused(x: &Tensor) -> bool {
    x.device().is_cpu() && x.dtype() == DType::F32 && fused_kernels()
}

/// `act(x)` with Candle ops, as torch computes it.
pub(crate) fn activate(x: &Tensor, activation: Activation) -> candle_core::Result<Tensor> {
    match activation {
        Activation::Identity => Ok(x.clone()),
        Activation::Tanh => x.tanh(),
        Activation::Relu => x.relu(),
        Activation::Sigmoid => candle_nn::ops::sigmoid(x),
        Activation::GeluErf => x.gelu_erf(),
        Activation::GeluTanh => x.gelu(),
    }
}

/// Activations by the names configs give them.
impl Activation {
    pub(crate) fn from_torch_name(file: &str, name: &str) -> Result<Self> {
        let short = name.rsplit('.').next().unwrap_or(name);
        Ok(match short {
            "Identity" => Activation::Identity,
            "Tanh" => Activation::Tanh,
            "ReLU" => Activation::Relu,
            "Sigmoid" => Activation::Sigmoid,
            "GELU" => Activation::GeluErf,
            _ => {
                return Err(Error::config(
                    file,
                    format!("unsupported activation_function {name:?}; expected torch.nn Identity, Tanh, ReLU, Sigmoid or GELU"),
                ))
            }
        })
    }

    /// Activation named by a transformers config (`hidden_act`, `hidden_activation`).
    pub(crate) fn from_hf_name(file: &str, key: &str, name: &str) -> Result<Self> {
        Ok(match name {
            "gelu" => Activation::GeluErf,
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Activation::GeluTanh,
            "relu" => Activation::Relu,
            "tanh" => Activation::Tanh,
            "sigmoid" => Activation::Sigmoid,
            "linear" | "identity" => Activation::Identity,
            _ => {
                return Err(Error::config(
                    file,
                    format!("unsupported {key} {name:?}; expected gelu, gelu_new, gelu_pytorch_tanh, relu or tanh"),
                ))
            }
        })
    }
}

/// int8 values `[out, in]` times their steps, as an f32 `[out, in]` tensor.
fn dequantize(parts: LinearParts, device: &Device) -> Result<Tensor> {
    let (values, scales) = match parts {
        LinearParts::F32(weight) => return Ok(weight),
        LinearParts::Int8 { values, scales } => (values, scales),
    };
    let n = scales.len();
    let k = values.len() / n.max(1);
    let weight: Vec<f32> = values
        .chunks_exact(k.max(1))
        .zip(&scales)
        .flat_map(|(row, &step)| row.iter().map(move |&v| f32::from(v) * step))
        .collect();
    Ok(Tensor::from_vec(weight, (n, k), device)?)
}

/// Several linear layers' weights stacked (their outputs concatenated, as one fused
/// projection): int8 when all are int8, else f32.
pub(crate) fn concat_outputs(parts: Vec<LinearParts>, device: &Device) -> Result<LinearParts> {
    if parts.iter().all(|p| matches!(p, LinearParts::Int8 { .. })) {
        let (mut all_values, mut all_scales) = (Vec::new(), Vec::new());
        for part in parts {
            if let LinearParts::Int8 { values, scales } = part {
                all_values.extend(values);
                all_scales.extend(scales);
            }
        }
        return Ok(LinearParts::Int8 {
            values: all_values,
            scales: all_scales,
        });
    }
    let tensors = parts
        .into_iter()
        .map(|p| dequantize(p, device))
        .collect::<Result<Vec<_>>>()?;
    Ok(LinearParts::F32(Tensor::cat(&tensors, 0)?))
}

/// A linear layer's weight, in the storage form chosen when the model is loaded.
pub(crate) enum LinearWeight {
    /// `[out, in]` on the model's device, as the checkpoint stores it, in float32, bfloat16 or
    /// float16: the matmul reads it as the transposed operand, in its type (devices other than
    /// the CPU, `LATEBIRD_CPU=generic`).
    Device { weight: Tensor },
    /// float32, packed for the CPU kernels.
    F32Packed(F32Weight),
    /// int8, packed for the int8 kernels (host memory).
    Int8(Int8Weight),
    /// bfloat16, packed for the bf16 kernels (host memory).
    Bf16(Bf16Weight),
}

/// The values of a host tensor `[n, k]`, borrowed when it is contiguous f32.
fn with_host_values<R>(t: &Tensor, f: impl FnOnce(&[f32], usize, usize) -> R) -> Result<R> {
    let (n, k) = t.dims2()?;
    let (storage, layout) = t.storage_and_layout();
    if let (candle_core::Storage::Cpu(candle_core::CpuStorage::F32(values)), Some((a, b))) =
        (&*storage, layout.contiguous_offsets())
    {
        return Ok(f(&values[a..b], n, k));
    }
    drop(storage);
    let values: Vec<f32> = t.flatten_all()?.to_vec1()?;
    Ok(f(&values, n, k))
}

impl LinearWeight {
    /// The weight as the checkpoint stores it, in `precision` (`None`: as stored).
    fn new(parts: LinearParts, precision: Option<Precision>, device: &Device) -> Result<Self> {
        let on_host_kernels = device.is_cpu() && fused_kernels();
        Ok(match (parts, precision) {
            // The device path's half precisions (float16 only there: `Backbone::load` refuses
            // it on the CPU kernels).
            (parts, Some(Precision::Float16)) => LinearWeight::Device {
                weight: dequantize(parts, device)?.to_dtype(DType::F16)?,
            },
            (parts, Some(Precision::Bfloat16)) if !on_host_kernels => LinearWeight::Device {
                weight: dequantize(parts, device)?.to_dtype(DType::BF16)?,
            },
            (LinearParts::F32(weight), Some(Precision::Int8)) => {
                LinearWeight::Int8(with_host_values(&weight, |w, n, k| {
                    Int8Weight::quantize(w, n, k)
                })?)
            }
            (parts, Some(Precision::Bfloat16)) => {
                LinearWeight::Bf16(with_host_values(&dequantize(parts, device)?, |w, n, k| {
                    Bf16Weight::from_f32(w, n, k)
                })?)
            }
            (LinearParts::Int8 { values, scales }, None | Some(Precision::Int8)) => {
                let n = scales.len();
                let k = values.len() / n.max(1);
                LinearWeight::Int8(Int8Weight::from_quantized(&values, scales, n, k))
            }
            (parts, None | Some(Precision::Float32)) => Self::float32(dequantize(parts, device)?)?,
        })
    }

    /// A float32 weight `[out, in]`: packed for the CPU kernels when they run, else kept as
    /// the device tensor.
    fn float32(weight: Tensor) -> Result<Self> {
        if weight.device().is_cpu() && fused_kernels() {
            return Ok(LinearWeight::F32Packed(with_host_values(
                &weight,
                F32Weight::new,
            )?));
        }
        Ok(LinearWeight::Device { weight })
    }

    fn out_features(&self) -> usize {
        match self {
            LinearWeight::Device { weight } => weight.dims().first().copied().unwrap_or(0),
            LinearWeight::F32Packed(w) => w.out_features(),
            LinearWeight::Int8(w) => w.out_features(),
            LinearWeight::Bf16(w) => w.out_features(),
        }
    }

    /// `x W^T` of `[rows, in]`.
    fn matmul(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let packed: &dyn PackedWeight = match self {
            LinearWeight::Device { weight } => {
                // Products in the weight's type, the rest of the layer in float32.
                let y = x.to_dtype(weight.dtype())?.matmul(&weight.t()?)?;
                return y.to_dtype(DType::F32);
            }
            LinearWeight::F32Packed(w) => w,
            LinearWeight::Int8(w) => w,
            LinearWeight::Bf16(w) => w,
        };
        x.contiguous()?
            .apply_op1_no_bwd(&kernels::PackedMatmul { weight: packed })
    }
}

/// `y = x W^T + b` with `W` stored `[out, in]` as in PyTorch.
pub(crate) struct Linear {
    weight: LinearWeight,
    bias: Option<Tensor>,
}

impl Linear {
    pub(crate) fn load(
        store: &WeightStore,
        name: &str,
        in_features: usize,
        out_features: usize,
        bias: bool,
    ) -> Result<Self> {
        let weight = store.get_linear(&format!("{name}.weight"), out_features, in_features)?;
        let bias = if bias {
            Some(store.get(&format!("{name}.bias"), &[out_features])?)
        } else {
            None
        };
        Self::from_parts(weight, bias, store)
    }

    /// A float32 layer from its weight `[out, in]` and its bias `[out]`.
    pub(crate) fn new(weight: Tensor, bias: Option<Tensor>) -> Result<Self> {
        Ok(Linear {
            weight: LinearWeight::float32(weight)?,
            bias,
        })
    }

    /// A layer from its weight as the checkpoint stores it and its bias, in the store's
    /// precision.
    pub(crate) fn from_parts(
        weight: LinearParts,
        bias: Option<Tensor>,
        store: &WeightStore,
    ) -> Result<Self> {
        Ok(Linear {
            weight: LinearWeight::new(weight, store.precision(), store.device())?,
            bias,
        })
    }

    fn out_features(&self) -> usize {
        self.weight.out_features()
    }

    fn add_bias(&self, y: Tensor) -> candle_core::Result<Tensor> {
        match &self.bias {
            Some(b) => y.broadcast_add(b),
            None => Ok(y),
        }
    }

    /// `act(x W^T + b)` of `[rows, in]`; on the CPU, bias and activation in one pass.
    pub(crate) fn forward_act(
        &self,
        x: &Tensor,
        activation: Activation,
    ) -> candle_core::Result<Tensor> {
        let y = self.weight.matmul(x)?;
        if !fused(&y) {
            return activate(&self.add_bias(y)?, activation);
        }
        let op = kernels::BiasActivation {
            width: self.out_features(),
            activation,
        };
        match &self.bias {
            Some(bias) => y.inplace_op2(bias, &op)?,
            None if activation != Activation::Identity => y.inplace_op1(&op)?,
            None => {}
        }
        Ok(y)
    }

    /// `x W^T + b` of `[rows, in]`.
    pub(crate) fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        self.forward_act(x, Activation::Identity)
    }

    /// `(x W^T + b) + residual`, as a residual connection adds it.
    pub(crate) fn forward_residual(
        &self,
        x: &Tensor,
        residual: &Tensor,
    ) -> candle_core::Result<Tensor> {
        let y = self.weight.matmul(x)?;
        if !(fused(&y) && fused(residual)) {
            return self.add_bias(y)? + residual;
        }
        let op = kernels::AddResidual {
            width: self.out_features(),
        };
        let residual = residual.contiguous()?;
        match &self.bias {
            Some(bias) => y.inplace_op3(&residual, bias, &op)?,
            None => y.inplace_op2(&residual, &op)?,
        }
        Ok(y)
    }

    /// GeGLU-style gated layer: the `2w` outputs split into `input` and `gate` halves,
    /// `act(input) * gate`, giving `[rows, w]`.
    pub(crate) fn forward_gated(
        &self,
        x: &Tensor,
        activation: Activation,
    ) -> candle_core::Result<Tensor> {
        let y = self.weight.matmul(x)?;
        let width = self.out_features() / 2;
        if !fused(&y) {
            let y = self.add_bias(y)?;
            let input = y.narrow(1, 0, width)?;
            let gate = y.narrow(1, width, width)?;
            return activate(&input, activation)? * gate;
        }
        let op = kernels::GatedActivation { width, activation };
        match &self.bias {
            Some(bias) => y.apply_op2_no_bwd(bias, &op),
            None => y.apply_op1_no_bwd(&op),
        }
    }
}

/// LayerNorm over the last dimension, with the variance taken around the mean
/// (two passes) as PyTorch does, not as `E[x^2] - E[x]^2`.
pub(crate) struct LayerNorm {
    weight: Tensor,
    bias: Option<Tensor>,
    eps: f64,
}

impl LayerNorm {
    pub(crate) fn load(
        store: &WeightStore,
        name: &str,
        size: usize,
        bias: bool,
        eps: f64,
    ) -> Result<Self> {
        let weight = store.get(&format!("{name}.weight"), &[size])?;
        let bias = if bias {
            Some(store.get(&format!("{name}.bias"), &[size])?)
        } else {
            None
        };
        Ok(Self::new(weight, bias, eps))
    }

    /// A norm from its weight and bias `[size]`.
    pub(crate) fn new(weight: Tensor, bias: Option<Tensor>, eps: f64) -> Self {
        LayerNorm { weight, bias, eps }
    }

    pub(crate) fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        if fused(x) {
            let op = kernels::FusedLayerNorm {
                eps: self.eps as f32,
            };
            let x = x.contiguous()?;
            return match &self.bias {
                Some(bias) => x.apply_op3_no_bwd(&self.weight, bias, &op),
                None => x.apply_op2_no_bwd(&self.weight, &op),
            };
        }
        let mean = x.mean_keepdim(D::Minus1)?;
        let centered = x.broadcast_sub(&mean)?;
        let var = centered.sqr()?.mean_keepdim(D::Minus1)?;
        let y = centered.broadcast_div(&(var + self.eps)?.sqrt()?)?;
        let y = y.broadcast_mul(&self.weight)?;
        match &self.bias {
            Some(b) => y.broadcast_add(b),
            None => Ok(y),
        }
    }
}

/// Rotary embedding tables for one base (rotate-half form) on the model's device: row `p`
/// of `cos` and `sin` (`[positions, head_dim / 2]`) holds the values for position `p`,
/// computed in f32 as transformers computes them, once, when the model is loaded.
pub(crate) struct Rotary {
    cos: Tensor,
    sin: Tensor,
}

impl Rotary {
    pub(crate) fn new(
        base: f64,
        head_dim: usize,
        positions: usize,
        device: &candle_core::Device,
    ) -> Result<Self> {
        let half = head_dim / 2;
        let base = base as f32;
        let inv_freq: Vec<f32> = (0..half)
            .map(|i| 1.0 / base.powf((2 * i) as f32 / head_dim as f32))
            .collect();
        let mut cos = Vec::with_capacity(positions * half);
        let mut sin = Vec::with_capacity(positions * half);
        for p in 0..positions {
            for f in &inv_freq {
                let angle = p as f32 * f;
                cos.push(angle.cos());
                sin.push(angle.sin());
            }
        }
        Ok(Rotary {
            cos: Tensor::from_vec(cos, (positions, half), device)?,
            sin: Tensor::from_vec(sin, (positions, half), device)?,
        })
    }

    /// Rotates `[B, H, n, d]` (positions `0..n` of each sequence) with Candle's rope op.
    fn apply(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let n = x.dim(2)?;
        candle_nn::rotary_emb::rope(x, &self.cos.narrow(0, 0, n)?, &self.sin.narrow(0, 0, n)?)
    }
}

/// Texts packed one after the other, without padding: token ids and positions `[T]` (u32)
/// and where each text's rows are. Other devices' attention runs on a padded view of the
/// batch whose indices and masks are built once per batch, on first use, and shared by all
/// layers.
pub(crate) struct Packed {
    pub(crate) ids: Vec<u32>,
    pub(crate) positions: Tensor,
    pub(crate) spans: Vec<Span>,
    padded: Mutex<Option<Arc<Padded>>>,
}

impl Packed {
    pub(crate) fn new(ids: Vec<u32>, positions: Tensor, spans: Vec<Span>) -> Self {
        Packed {
            ids,
            positions,
            spans,
            padded: Mutex::new(None),
        }
    }

    fn padded(&self) -> candle_core::Result<Arc<Padded>> {
        let mut slot = self.padded.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(padded) = &*slot {
            return Ok(padded.clone());
        }
        let padded = Arc::new(Padded::new(&self.spans, self.positions.device())?);
        *slot = Some(padded.clone());
        Ok(padded)
    }
}

/// The batch as `[B, L]` (B sequences, padded to the longest, L): row indices to gather the
/// packed rows into that shape and to scatter them back, and attention masks by window.
struct Padded {
    sequences: usize,
    longest: usize,
    /// `[B * L]`: the packed row each padded slot reads (padding slots repeat a real row;
    /// the mask hides them as keys and `scatter` drops them as queries).
    gather: Tensor,
    /// `[T]`: the padded slot of each packed row.
    scatter: Tensor,
    spans: Vec<Span>,
    masks: Mutex<Vec<(Option<usize>, Arc<Mask>)>>,
}

/// An additive attention mask `[B, 1, L, L]` (0 or [`MASKED`]) and, when some real query
/// row has no key to attend to, a factor `[B, 1, L, 1]` that zeroes that row's output.
/// PyTorch's scaled_dot_product_attention (the reference) returns 0 for such rows; a plain
/// softmax would spread them uniformly over masked keys instead.
struct Mask {
    additive: Tensor,
    live_rows: Option<Tensor>,
}

impl Padded {
    fn new(spans: &[Span], device: &candle_core::Device) -> candle_core::Result<Self> {
        let sequences = spans.len();
        let longest = spans.iter().map(|s| s.len).max().unwrap_or(0).max(1);
        let mut gather = Vec::with_capacity(sequences * longest);
        let mut scatter = Vec::with_capacity(spans.iter().map(|s| s.len).sum());
        for (b, span) in spans.iter().enumerate() {
            for j in 0..longest {
                gather.push((span.start + j.min(span.len.saturating_sub(1))) as u32);
            }
            scatter.extend((0..span.len).map(|j| (b * longest + j) as u32));
        }
        let count = scatter.len();
        Ok(Padded {
            sequences,
            longest,
            gather: Tensor::from_vec(gather, sequences * longest, device)?,
            scatter: Tensor::from_vec(scatter, count, device)?,
            spans: spans.to_vec(),
            masks: Mutex::new(Vec::new()),
        })
    }

    fn mask(
        &self,
        half_window: Option<usize>,
        device: &candle_core::Device,
    ) -> candle_core::Result<Arc<Mask>> {
        let mut masks = self.masks.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, mask)) = masks.iter().find(|(w, _)| *w == half_window) {
            return Ok(mask.clone());
        }
        let (b, l) = (self.sequences, self.longest);
        let mut additive = vec![MASKED; b * l * l];
        let mut live = vec![0f32; b * l];
        for (s, span) in self.spans.iter().enumerate() {
            let keys = span.keys.min(span.len);
            for i in 0..span.len {
                let row = &mut additive[(s * l + i) * l..(s * l + i + 1) * l];
                let (from, to) = match half_window {
                    Some(w) => (
                        i.saturating_sub(w),
                        keys.min(i.saturating_add(w).saturating_add(1)),
                    ),
                    None => (0, keys),
                };
                if from < to {
                    row[from..to].fill(0.0);
                    live[s * l + i] = 1.0;
                }
            }
        }
        let dead_row = self
            .spans
            .iter()
            .enumerate()
            .any(|(s, span)| live[s * l..s * l + span.len].contains(&0.0));
        let mask = Arc::new(Mask {
            additive: Tensor::from_vec(additive, (b, 1, l, l), device)?,
            live_rows: if dead_row {
                Some(Tensor::from_vec(live, (b, 1, l, 1), device)?)
            } else {
                None
            },
        });
        masks.push((half_window, mask.clone()));
        Ok(mask)
    }
}

/// Multi-head attention of packed sequences: `qkv` `[T, 3 * hidden]` (q, k and v side by
/// side, heads within each) to the context `[T, hidden]`. Each sequence attends within
/// itself to its first `keys` tokens, within `half_window` when given, after rotating q and
/// k by `rope` when given; a query row with no key gets zeros.
pub(crate) fn packed_attention(
    qkv: &Tensor,
    batch: &Packed,
    heads: usize,
    rope: Option<&Rotary>,
    half_window: Option<usize>,
) -> candle_core::Result<Tensor> {
    if fused(qkv) {
        let op = kernels::PackedAttention {
            spans: &batch.spans,
            heads,
            half_window,
        };
        let qkv = qkv.contiguous()?;
        return match rope {
            Some(r) => qkv.apply_op3_no_bwd(&r.cos, &r.sin, &op),
            None => qkv.apply_op1_no_bwd(&op),
        };
    }
    // Other devices: every sequence at once, padded to the longest.
    let padded = batch.padded()?;
    let (b, l) = (padded.sequences, padded.longest);
    let width = qkv.dim(1)?;
    let x = qkv
        .index_select(&padded.gather, 0)?
        .reshape((b, l, width))?;
    let [mut q, mut k, v] = split_heads(&x, heads)?;
    if let Some(rope) = rope {
        q = rope.apply(&q)?;
        k = rope.apply(&k)?;
    }
    let mask = padded.mask(half_window, qkv.device())?;
    let scale = 1.0 / (q.dim(D::Minus1)? as f64).sqrt();
    let scores = (q.matmul(&k.t()?)? * scale)?.broadcast_add(&mask.additive)?;
    let mut weights = candle_nn::ops::softmax_last_dim(&scores)?;
    if let Some(live) = &mask.live_rows {
        weights = weights.broadcast_mul(live)?;
    }
    let context = merge_heads(&weights.matmul(&v)?)?;
    context
        .reshape((b * l, width / 3))?
        .index_select(&padded.scatter, 0)
}

/// Splits a fused `[B, T, 3 * H * d]` projection into q, k and v, each `[B, H, T, d]`.
fn split_heads(qkv: &Tensor, heads: usize) -> candle_core::Result<[Tensor; 3]> {
    let (b, t, width) = qkv.dims3()?;
    let qkv = qkv.reshape((b, t, 3, heads, width / (3 * heads)))?;
    let part = |i: usize| {
        qkv.narrow(2, i, 1)?
            .squeeze(2)?
            .transpose(1, 2)?
            .contiguous()
    };
    Ok([part(0)?, part(1)?, part(2)?])
}

/// `[B, H, T, d]` back to `[B, T, H * d]`.
fn merge_heads(x: &Tensor) -> candle_core::Result<Tensor> {
    let (b, h, t, d) = x.dims4()?;
    x.transpose(1, 2)?.reshape((b, t, h * d))
}
