//! Backbone forward passes and the layers they share.

pub(crate) mod bert;
mod kernels;
pub(crate) mod modernbert;

use candle_core::{DType, Device, Tensor, D};

use crate::config::{parse_json_object, Fields};
use crate::error::{Error, Result};
use crate::source::{join, Source};
use crate::weights::WeightStore;

/// Large finite negative added to masked attention scores: exp() of it is exactly 0,
/// and a row whose keys are all masked still yields finite (uniform) weights, never NaN.
pub(crate) const MASKED: f32 = f32::MIN;

/// `y = x W^T + b` with `W` stored `[out, in]` as in PyTorch.
pub(crate) struct Linear {
    weight_t: Tensor,
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
        let weight = store.get(&format!("{name}.weight"), &[out_features, in_features])?;
        let bias = if bias {
            Some(store.get(&format!("{name}.bias"), &[out_features])?)
        } else {
            None
        };
        Self::new(weight, bias)
    }

    pub(crate) fn new(weight: Tensor, bias: Option<Tensor>) -> Result<Self> {
        // A transposed view, not a copy: the matmul reads the [out, in] storage as
        // [in, out] through its strides at the same speed, and loading stays copy-free.
        Ok(Linear {
            weight_t: weight.t()?,
            bias,
        })
    }

    /// Applies the layer to `[.., in]`.
    pub(crate) fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let dims = x.dims().to_vec();
        let Some((last, lead)) = dims.split_last() else {
            candle_core::bail!("linear layer applied to a scalar")
        };
        let rows: usize = lead.iter().product();
        let y = x.reshape((rows, *last))?.matmul(&self.weight_t)?;
        let y = match &self.bias {
            Some(b) => y.broadcast_add(b)?,
            None => y,
        };
        let mut out = lead.to_vec();
        out.push(y.dim(1)?);
        y.reshape(out)
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
        if x.device().is_cpu() && x.dtype() == DType::F32 {
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

/// An attention mask: additive scores (0 or [`MASKED`]) and, when some query row has no
/// key to attend to, a `[B, 1, T, 1]` factor that zeroes that row's output. PyTorch's
/// scaled_dot_product_attention (the reference) returns 0 for such rows; a plain softmax
/// would spread them uniformly over masked keys instead.
pub(crate) struct AttentionMask {
    additive: Tensor,
    live_rows: Option<Tensor>,
}

impl AttentionMask {
    /// Key mask `[B, 1, 1, T]` from the attention vector `[B, T]` (1 attended, 0 not).
    pub(crate) fn keys(attention: &Tensor) -> candle_core::Result<Self> {
        let (b, t) = attention.dims2()?;
        let attention = attention.to_dtype(DType::F32)?;
        let masked = ((attention.ones_like()? - &attention)? * f64::from(MASKED))?;
        Self::new(masked.reshape((b, 1, 1, t))?)
    }

    /// Combines with a `[T, T]` additive mask (the minimum keeps MASKED where either masks).
    pub(crate) fn restrict(&self, extra: &Tensor) -> candle_core::Result<Self> {
        let (t, _) = extra.dims2()?;
        Self::new(
            self.additive
                .broadcast_minimum(&extra.reshape((1, 1, t, t))?)?,
        )
    }

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
pub(crate) fn split_heads(qkv: &Tensor, heads: usize) -> candle_core::Result<[Tensor; 3]> {
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
pub(crate) fn merge_heads(x: &Tensor) -> candle_core::Result<Tensor> {
    let (b, h, t, d) = x.dims4()?;
    x.transpose(1, 2)?.reshape((b, t, h * d))
}

/// Scaled dot-product attention of `[B, H, T, d]` tensors.
pub(crate) fn attention(
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

/// A backbone, chosen from `config.json`.
pub(crate) enum Backbone {
    Bert(bert::Bert),
    ModernBert(modernbert::ModernBert),
}

impl Backbone {
    pub(crate) fn load(source: &Source, dir: &str, device: &Device) -> Result<Self> {
        let file = join(dir, "config.json");
        let blob = source.read(&file, "the backbone's transformers config")?;
        let config = parse_json_object(&file, &blob)?;
        let fields = Fields::new(&file, &config);
        let architecture = fields
            .opt_strings("architectures")?
            .and_then(|a| a.into_iter().next());
        let model_type = fields.opt_str("model_type")?.map(String::from);
        let family = match (architecture.as_deref(), model_type.as_deref()) {
            (Some(a), _) if a.starts_with("ModernBert") => "modernbert",
            (Some(a), _) if a.starts_with("Bert") => "bert",
            (Some(a), _) => {
                return Err(Error::UnsupportedArchitecture {
                    file,
                    found: a.to_string(),
                })
            }
            (None, Some("modernbert")) => "modernbert",
            (None, Some("bert")) => "bert",
            (None, other) => {
                return Err(Error::UnsupportedArchitecture {
                    file,
                    found: other
                        .unwrap_or("nothing: neither `architectures` nor `model_type` is set")
                        .to_string(),
                })
            }
        };
        let (weights_file, blob) = source.read_weights(dir, "the backbone's weights")?;
        let store = WeightStore::parse(&weights_file, &blob, device)?;
        match family {
            "bert" => Ok(Backbone::Bert(bert::Bert::load(&fields, store)?)),
            _ => Ok(Backbone::ModernBert(modernbert::ModernBert::load(
                &fields, store, device,
            )?)),
        }
    }

    pub(crate) fn hidden_size(&self) -> usize {
        match self {
            Backbone::Bert(m) => m.hidden_size(),
            Backbone::ModernBert(m) => m.hidden_size(),
        }
    }

    /// Rows of the token embedding matrix.
    pub(crate) fn vocab_size(&self) -> usize {
        match self {
            Backbone::Bert(m) => m.vocab_size(),
            Backbone::ModernBert(m) => m.vocab_size(),
        }
    }

    /// Longest sequence the position embeddings allow.
    pub(crate) fn max_positions(&self) -> usize {
        match self {
            Backbone::Bert(m) => m.max_positions(),
            Backbone::ModernBert(m) => m.max_positions(),
        }
    }

    /// Last hidden state `[B, T, hidden]` of `ids` `[B, T]` (u32) under `attention` `[B, T]` (u32).
    pub(crate) fn forward(&self, ids: &Tensor, attention: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            Backbone::Bert(m) => m.forward(ids, attention),
            Backbone::ModernBert(m) => m.forward(ids, attention),
        }
    }
}
