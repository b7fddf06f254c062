//! Backbone forward passes and the layers they share.

pub(crate) mod bert;
mod kernels;
pub(crate) mod modernbert;
pub(crate) mod xlm_roberta;

use candle_core::{CpuStorage, DType, Device, Storage, Tensor, D};

// The scoring kernels follow the same instruction-set choice as the model kernels.
#[cfg(target_arch = "x86_64")]
pub(crate) use kernels::math::{isa, Isa};
pub(crate) use kernels::Span;

use crate::config::{parse_json_object, Activation, Fields};
use crate::error::{Error, Result};
use crate::source::{join, Source};
use crate::weights::WeightStore;

/// Large finite negative added to masked attention scores: exp() of it is exactly 0,
/// and a row whose keys are all masked still yields finite (uniform) weights, never NaN.
pub(crate) const MASKED: f32 = f32::MIN;

/// Whether the fused CPU kernels apply to `x` (f32 values in host memory).
fn on_cpu(x: &Tensor) -> bool {
    x.device().is_cpu() && x.dtype() == DType::F32 && kernels::math::fused_kernels()
}

/// `y = x W^T + b` with `W` stored `[out, in]` as in PyTorch.
pub(crate) struct Linear {
    weight_t: Tensor,
    bias: Option<Tensor>,
    /// Host copy of the bias for the fused CPU kernels.
    bias_host: Option<Vec<f32>>,
}

impl Linear {
    pub(crate) fn load(
        store: &WeightStore,
        name: &str,
        in_features: usize,
        out_features: usize,
        bias: bool,
    ) -> Result<Self> {
        let weight_t =
            store.get_transposed(&format!("{name}.weight"), [out_features, in_features])?;
        let bias = if bias {
            Some(store.get(&format!("{name}.bias"), &[out_features])?)
        } else {
            None
        };
        Self::new(weight_t, bias)
    }

    /// A layer from its weight already transposed to a contiguous `[in, out]`, the layout
    /// the matmul streams best (gemm reads it row by row without repacking).
    pub(crate) fn new(weight_t: Tensor, bias: Option<Tensor>) -> Result<Self> {
        Ok(Linear {
            weight_t,
            bias_host: bias.as_ref().map(Tensor::to_vec1).transpose()?,
            bias,
        })
    }

    fn out_features(&self) -> usize {
        self.weight_t.dims().last().copied().unwrap_or(0)
    }

    /// `y + b` with Candle ops (devices without the fused kernels).
    fn add_bias(&self, y: Tensor) -> candle_core::Result<Tensor> {
        match &self.bias {
            Some(b) => y.broadcast_add(b),
            None => Ok(y),
        }
    }

    /// `x W^T` of `[rows, in]`, without the bias.
    fn matmul(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        if on_cpu(x) && x.dim(0)? <= kernels::SMALL_ROWS {
            let (storage, layout) = self.weight_t.storage_and_layout();
            if let (Storage::Cpu(CpuStorage::F32(values)), Some((start, end))) =
                (&*storage, layout.contiguous_offsets())
            {
                return x.contiguous()?.apply_op1_no_bwd(&kernels::SmallMatmul {
                    weight: &values[start..end],
                    n: self.out_features(),
                });
            }
        }
        x.matmul(&self.weight_t)
    }

    /// `act(x W^T + b)` of `[rows, in]`; on the CPU, bias and activation in one pass.
    pub(crate) fn forward_act(
        &self,
        x: &Tensor,
        activation: Activation,
    ) -> candle_core::Result<Tensor> {
        let y = self.matmul(x)?;
        if on_cpu(&y) {
            y.inplace_op1(&kernels::BiasActivation {
                bias: self.bias_host.as_deref(),
                width: self.out_features(),
                activation,
            })?;
            return Ok(y);
        }
        activation.apply(&self.add_bias(y)?)
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
        let y = self.matmul(x)?;
        if on_cpu(&y) && on_cpu(residual) {
            y.inplace_op2(
                &residual.contiguous()?,
                &kernels::AddResidual {
                    bias: self.bias_host.as_deref(),
                    width: self.out_features(),
                },
            )?;
            return Ok(y);
        }
        self.add_bias(y)? + residual
    }

    /// GeGLU-style gated layer: the `2w` outputs split into `input` and `gate` halves,
    /// `act(input) * gate`, giving `[rows, w]`.
    pub(crate) fn forward_gated(
        &self,
        x: &Tensor,
        activation: Activation,
    ) -> candle_core::Result<Tensor> {
        let y = self.matmul(x)?;
        let width = self.out_features() / 2;
        if on_cpu(&y) {
            return y.apply_op1_no_bwd(&kernels::GatedActivation {
                bias: self.bias_host.as_deref(),
                width,
                activation,
            });
        }
        let y = self.add_bias(y)?;
        let input = y.narrow(1, 0, width)?;
        let gate = y.narrow(1, width, width)?;
        activation.apply(&input)? * gate
    }
}

/// LayerNorm over the last dimension, with the variance taken around the mean
/// (two passes) as PyTorch does, not as `E[x^2] - E[x]^2`.
pub(crate) struct LayerNorm {
    weight: Tensor,
    bias: Option<Tensor>,
    eps: f64,
    /// Host copies of the parameters for the fused CPU kernel.
    weight_host: Vec<f32>,
    bias_host: Option<Vec<f32>>,
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
        Ok(LayerNorm {
            weight_host: weight.to_vec1()?,
            bias_host: bias.as_ref().map(Tensor::to_vec1).transpose()?,
            weight,
            bias,
            eps,
        })
    }

    pub(crate) fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        if on_cpu(x) {
            return x.contiguous()?.apply_op1_no_bwd(&kernels::FusedLayerNorm {
                weight: &self.weight_host,
                bias: self.bias_host.as_deref(),
                eps: self.eps as f32,
            });
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

/// Texts packed one after the other, without padding: token ids and positions `[T]` (u32)
/// and where each text's rows are.
pub(crate) struct Packed {
    pub(crate) ids: Vec<u32>,
    pub(crate) positions: Tensor,
    pub(crate) spans: Vec<Span>,
}

/// Rotary embedding tables for one base (rotate-half form): row `p` holds the `head_dim / 2`
/// cosines and sines of position `p`, computed in f32 as transformers computes them.
pub(crate) struct Rotary {
    cos: Vec<f32>,
    sin: Vec<f32>,
    half: usize,
}

impl Rotary {
    pub(crate) fn new(base: f64, head_dim: usize, positions: usize) -> Self {
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
        Rotary { cos, sin, half }
    }

    /// Rotates `[1, H, n, d]` on devices without the fused kernel.
    fn apply(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let n = x.dim(2)?;
        let table = |values: &[f32]| {
            Tensor::from_slice(&values[..n * self.half], (n, self.half), x.device())
        };
        candle_nn::rotary_emb::rope(x, &table(&self.cos)?, &table(&self.sin)?)
    }
}

/// Multi-head attention of packed sequences: `qkv` `[T, 3 * hidden]` (q, k and v side by
/// side, heads within each) to the context `[T, hidden]`. Each sequence attends within
/// itself to its first `keys` tokens, within `half_window` when given, after rotating q and
/// k by `rope` when given.
pub(crate) fn packed_attention(
    qkv: &Tensor,
    spans: &[Span],
    heads: usize,
    rope: Option<&Rotary>,
    half_window: Option<usize>,
) -> candle_core::Result<Tensor> {
    if on_cpu(qkv) {
        return qkv
            .contiguous()?
            .apply_op1_no_bwd(&kernels::PackedAttention {
                spans,
                heads,
                rope: rope.map(|r| kernels::Rope {
                    cos: &r.cos,
                    sin: &r.sin,
                }),
                half_window,
            });
    }
    // Other devices: one padded batch of one per sequence, with Candle ops.
    let mut parts = Vec::with_capacity(spans.len());
    for span in spans {
        let x = qkv.narrow(0, span.start, span.len)?.unsqueeze(0)?;
        let [mut q, mut k, v] = split_heads(&x, heads)?;
        if let Some(rope) = rope {
            q = rope.apply(&q)?;
            k = rope.apply(&k)?;
        }
        let n = span.len;
        let mask: Vec<f32> = (0..n)
            .flat_map(|i| {
                (0..n).map(move |j| {
                    let near = half_window.is_none_or(|w| i.abs_diff(j) <= w);
                    if j < span.keys && near {
                        0.0
                    } else {
                        MASKED
                    }
                })
            })
            .collect();
        let mask = AttentionMask::new(Tensor::from_vec(mask, (1, 1, n, n), qkv.device())?)?;
        parts.push(merge_heads(&attention(&q, &k, &v, &mask)?)?.squeeze(0)?);
    }
    Tensor::cat(&parts, 0)
}

/// An additive attention mask (0 or [`MASKED`]) and, when some query row has no key to
/// attend to, a factor that zeroes that row's output. PyTorch's
/// scaled_dot_product_attention (the reference) returns 0 for such rows; a plain softmax
/// would spread them uniformly over masked keys instead.
struct AttentionMask {
    additive: Tensor,
    live_rows: Option<Tensor>,
}

impl AttentionMask {
    fn new(additive: Tensor) -> candle_core::Result<Self> {
        let live = additive.eq(0f64)?.max_keepdim(D::Minus1)?;
        let all_live = live.flatten_all()?.min(0)?.to_scalar::<u8>()? == 1;
        Ok(AttentionMask {
            additive,
            live_rows: if all_live {
                None
            } else {
                Some(live.to_dtype(DType::F32)?)
            },
        })
    }
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

/// Scaled dot-product attention of `[B, H, T, d]` tensors.
fn attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: &AttentionMask,
) -> candle_core::Result<Tensor> {
    let head_dim = q.dim(D::Minus1)?;
    let scale = 1.0 / (head_dim as f64).sqrt();
    let scores = (q.matmul(&k.t()?)? * scale)?.broadcast_add(&mask.additive)?;
    let mut weights = candle_nn::ops::softmax_last_dim(&scores)?;
    if let Some(live) = &mask.live_rows {
        weights = weights.broadcast_mul(live)?;
    }
    weights.matmul(v)
}

/// A backbone, chosen from `config.json` among [`FAMILIES`].
pub(crate) enum Backbone {
    Bert(bert::Bert),
    ModernBert(modernbert::ModernBert),
    XlmRoberta(xlm_roberta::XlmRoberta),
}

/// A backbone family latebird implements, as `config.json` names it.
pub(crate) struct Family {
    /// The family's name, for messages.
    pub(crate) name: &'static str,
    /// transformers class names that `architectures` may give first.
    pub(crate) architectures: &'static [&'static str],
    /// transformers' `model_type`.
    pub(crate) model_type: &'static str,
    /// Loads the backbone from its config and weights; the `usize` is the longest sequence
    /// it will be given.
    load: fn(&Fields, WeightStore, usize) -> Result<Backbone>,
}

/// Every backbone family, in the order they are tried.
pub(crate) const FAMILIES: &[Family] = &[
    Family {
        name: "BERT",
        architectures: &["BertModel", "BertForMaskedLM"],
        model_type: "bert",
        load: |config, store, _| Ok(Backbone::Bert(bert::Bert::load(config, store)?)),
    },
    Family {
        name: "ModernBERT",
        architectures: &["ModernBertModel", "ModernBertForMaskedLM"],
        model_type: "modernbert",
        load: |config, store, longest| {
            Ok(Backbone::ModernBert(modernbert::ModernBert::load(
                config, store, longest,
            )?))
        },
    },
    Family {
        name: "XLM-RoBERTa",
        architectures: &["XLMRobertaModel", "XLMRobertaForMaskedLM"],
        model_type: "xlm-roberta",
        load: |config, store, _| {
            Ok(Backbone::XlmRoberta(xlm_roberta::XlmRoberta::load(
                config, store,
            )?))
        },
    },
];

/// What [`FAMILIES`] accepts, for [`Error::UnsupportedArchitecture`]: `one of BERT
/// (BertModel, BertForMaskedLM, or model_type "bert"), ...`.
pub(crate) fn supported_architectures() -> String {
    let families: Vec<String> = FAMILIES
        .iter()
        .map(|f| {
            format!(
                "{} ({}, or model_type {:?})",
                f.name,
                f.architectures.join(", "),
                f.model_type
            )
        })
        .collect();
    format!("one of {}", families.join(", "))
}

impl Backbone {
    /// Loads the backbone in `dir`; `longest` is the longest sequence it will be given
    /// (rotary tables are computed that far, within `max_position_embeddings`).
    ///
    /// The family is the one whose class names hold the first of `architectures`, else the
    /// one of `model_type` (which is what transformers' AutoModel goes by: a checkpoint saved
    /// as, say, `BertForPreTraining` is still a BERT).
    pub(crate) fn load(
        source: &Source,
        dir: &str,
        device: &Device,
        longest: usize,
    ) -> Result<Self> {
        let file = join(dir, "config.json");
        let blob = source.read(&file, "the backbone's transformers config")?;
        let config = parse_json_object(&file, &blob)?;
        let fields = Fields::new(&file, &config);
        let architecture = fields
            .opt_strings("architectures")?
            .and_then(|a| a.into_iter().next());
        let model_type = fields.opt_str("model_type")?.map(String::from);
        let by_architecture = architecture
            .as_deref()
            .and_then(|a| FAMILIES.iter().find(|f| f.architectures.contains(&a)));
        let by_model_type = model_type
            .as_deref()
            .and_then(|t| FAMILIES.iter().find(|f| f.model_type == t));
        let Some(family) = by_architecture.or(by_model_type) else {
            return Err(Error::UnsupportedArchitecture {
                file,
                found: architecture.or(model_type).unwrap_or_else(|| {
                    "nothing: neither `architectures` nor `model_type` is set".to_string()
                }),
            });
        };
        let (weights_file, blob) = source.read_weights(dir, "the backbone's weights")?;
        let store = WeightStore::parse(&weights_file, &blob, device)?;
        (family.load)(&fields, store, longest)
    }

    pub(crate) fn hidden_size(&self) -> usize {
        match self {
            Backbone::Bert(m) => m.hidden_size(),
            Backbone::ModernBert(m) => m.hidden_size(),
            Backbone::XlmRoberta(m) => m.hidden_size(),
        }
    }

    /// Rows of the token embedding matrix.
    pub(crate) fn vocab_size(&self) -> usize {
        match self {
            Backbone::Bert(m) => m.vocab_size(),
            Backbone::ModernBert(m) => m.vocab_size(),
            Backbone::XlmRoberta(m) => m.vocab_size(),
        }
    }

    /// Longest sequence the position embeddings allow.
    pub(crate) fn max_positions(&self) -> usize {
        match self {
            Backbone::Bert(m) => m.max_positions(),
            Backbone::ModernBert(m) => m.max_positions(),
            Backbone::XlmRoberta(m) => m.max_positions(),
        }
    }

    /// Where [`Backbone::max_positions`] comes from, for messages:
    /// `max_position_embeddings 512`, or for XLM-RoBERTa
    /// `max_position_embeddings 514 less the 2 rows up to padding_idx: 512 tokens`.
    pub(crate) fn max_positions_note(&self) -> String {
        match self {
            Backbone::XlmRoberta(m) => m.max_positions_note(),
            _ => format!("max_position_embeddings {}", self.max_positions()),
        }
    }

    /// Last hidden state `[T, hidden]` of a packed batch.
    pub(crate) fn forward(&self, batch: &Packed) -> candle_core::Result<Tensor> {
        match self {
            Backbone::Bert(m) => m.forward(batch),
            Backbone::ModernBert(m) => m.forward(batch),
            Backbone::XlmRoberta(m) => m.forward(batch),
        }
    }

    /// Widest activation row a forward pass holds, in values (sizes the packed batches).
    pub(crate) fn widest_row(&self) -> usize {
        match self {
            Backbone::Bert(m) => m.widest_row(),
            Backbone::ModernBert(m) => m.widest_row(),
            Backbone::XlmRoberta(m) => m.widest_row(),
        }
    }
}
