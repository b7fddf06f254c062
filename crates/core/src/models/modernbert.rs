//! ModernBERT (pre-norm, rotary, alternating global and sliding-window attention, GeGLU)
//! as transformers' `ModernBertModel` computes it with eager/sdpa attention.

use candle_core::Tensor;

use super::layers::Activation;
use super::layers::{packed_attention, LayerNorm, Linear, Packed, Rotary};
use crate::config::Fields;
use crate::error::{Error, Result};
use crate::weights::{EmbeddingTable, WeightStore};

/// Longest sequence a config may declare. Rotary positions have no weights to check a
/// config's `max_position_embeddings` against, and the rotary tables grow with it: 2^17
/// (131,072) is well beyond any ModernBERT checkpoint's context (8,192 today).
const MAX_POSITIONS: usize = 1 << 17;

struct Layer {
    attn_norm: Option<LayerNorm>,
    qkv: Linear,
    attn_out: Linear,
    mlp_norm: LayerNorm,
    mlp_in: Linear,
    mlp_out: Linear,
    global: bool,
}

pub(crate) struct ModernBert {
    embeddings: EmbeddingTable,
    embedding_norm: LayerNorm,
    layers: Vec<Layer>,
    final_norm: LayerNorm,
    global_rope: Rotary,
    local_rope: Rotary,
    activation: Activation,
    hidden_size: usize,
    intermediate: usize,
    heads: usize,
    /// A local layer's query at i sees keys j with |i - j| <= half_window.
    half_window: usize,
    max_positions: usize,
}

/// Which layers attend globally and which rope bases apply: the transformers 4 keys
/// (`global_attn_every_n_layers`, `global_rope_theta`, `local_rope_theta`) or the
/// transformers 5 ones (`layer_types`, `rope_parameters`).
fn layer_plan(config: &Fields, layers: usize) -> Result<(Vec<bool>, f64, f64)> {
    let file = config.file;
    let global_theta_v4 = config.opt_f64("global_rope_theta")?;
    let local_theta_v4 = config.opt_f64("local_rope_theta")?;
    let from_parameters = |kind: &str| -> Result<Option<f64>> {
        let Some(params) = config.opt_object("rope_parameters")? else {
            return Ok(None);
        };
        // Either one set of parameters per layer type, or a single flat set.
        let entry = match params.get(kind) {
            Some(serde_json::Value::Object(m)) => m,
            Some(_) => {
                return Err(Error::config(
                    file,
                    format!(
                        "rope_parameters.{kind} is not an object; expected {{\"rope_theta\": ...}}"
                    ),
                ))
            }
            None => params,
        };
        Fields::new(file, entry).opt_f64("rope_theta")
    };
    let global_theta = match global_theta_v4 {
        Some(t) => t,
        None => from_parameters("full_attention")?.unwrap_or(160_000.0),
    };
    let local_theta = match local_theta_v4 {
        Some(t) => t,
        None => match from_parameters("sliding_attention")? {
            Some(t) => t,
            // transformers 4 falls back to the global base when local_rope_theta is null.
            None if config.map.contains_key("local_rope_theta") => global_theta,
            None => 10_000.0,
        },
    };
    let kinds = match config.opt_strings("layer_types")? {
        Some(types) => {
            if types.len() != layers {
                return Err(Error::config(
                    file,
                    format!(
                        "layer_types has {} entries; expected num_hidden_layers = {layers}",
                        types.len()
                    ),
                ));
            }
            types
                .iter()
                .map(|t| match t.as_str() {
                    "full_attention" => Ok(true),
                    "sliding_attention" => Ok(false),
                    other => Err(Error::config(
                        file,
                        format!("layer_types holds {other:?}; expected \"full_attention\" or \"sliding_attention\""),
                    )),
                })
                .collect::<Result<Vec<_>>>()?
        }
        None => {
            let every = config.opt_usize("global_attn_every_n_layers")?.unwrap_or(3);
            if every == 0 {
                return Err(Error::config(
                    file,
                    "global_attn_every_n_layers is 0; expected at least 1",
                ));
            }
            (0..layers).map(|l| l % every == 0).collect()
        }
    };
    for (name, theta) in [("global", global_theta), ("local", local_theta)] {
        if !(theta.is_finite() && theta > 1.0) {
            return Err(Error::config(
                file,
                format!("{name} rope theta {theta} is not a base > 1"),
            ));
        }
    }
    Ok((kinds, global_theta, local_theta))
}

impl ModernBert {
    pub(crate) fn load(config: &Fields, mut store: WeightStore, longest: usize) -> Result<Self> {
        let file = config.file;
        let hidden = config.usize("hidden_size")?;
        let heads = config.usize("num_attention_heads")?;
        let layers = config.usize("num_hidden_layers")?;
        let intermediate = config.usize("intermediate_size")?;
        let vocab = config.usize("vocab_size")?;
        let max_positions = config.opt_usize("max_position_embeddings")?.unwrap_or(8192);
        let eps = config.opt_eps("norm_eps")?.unwrap_or(1e-5);
        let norm_bias = config.opt_bool("norm_bias")?.unwrap_or(false);
        let attention_bias = config.opt_bool("attention_bias")?.unwrap_or(false);
        let mlp_bias = config.opt_bool("mlp_bias")?.unwrap_or(false);
        let activation = Activation::from_hf_name(
            file,
            "hidden_activation",
            config.opt_str("hidden_activation")?.unwrap_or("gelu"),
        )?;
        let window = match config.opt_usize("local_attention")? {
            Some(w) => w,
            None => config
                .opt_usize("sliding_window")?
                .map(|half| half * 2)
                .unwrap_or(128),
        };
        if heads == 0 || hidden % heads != 0 || (hidden / heads) % 2 != 0 {
            return Err(Error::config(
                file,
                format!("hidden_size {hidden} / num_attention_heads {heads} must give an even head size"),
            ));
        }
        if max_positions > MAX_POSITIONS {
            return Err(Error::config(
                file,
                format!("`max_position_embeddings` is {max_positions}; expected at most {MAX_POSITIONS}"),
            ));
        }
        store.detect_prefix(
            "embeddings.tok_embeddings.weight",
            &["", "model.", "backbone."],
        )?;
        store.check_layer_count(file, "num_hidden_layers", layers, "layers")?;
        let (kinds, global_theta, local_theta) = layer_plan(config, layers)?;
        let head_dim = hidden / heads;

        let embeddings = store.get_table("embeddings.tok_embeddings.weight", [vocab, hidden])?;
        let embedding_norm = LayerNorm::load(&store, "embeddings.norm", hidden, norm_bias, eps)?;
        let mut all = Vec::with_capacity(layers);
        for (i, global) in kinds.into_iter().enumerate() {
            let p = format!("layers.{i}");
            // Layer 0 reads the (already normalised) embeddings: its attn_norm is the identity.
            let attn_norm = if i == 0 {
                None
            } else {
                Some(LayerNorm::load(
                    &store,
                    &format!("{p}.attn_norm"),
                    hidden,
                    norm_bias,
                    eps,
                )?)
            };
            all.push(Layer {
                attn_norm,
                qkv: Linear::load(
                    &store,
                    &format!("{p}.attn.Wqkv"),
                    hidden,
                    3 * hidden,
                    attention_bias,
                )?,
                attn_out: Linear::load(
                    &store,
                    &format!("{p}.attn.Wo"),
                    hidden,
                    hidden,
                    attention_bias,
                )?,
                mlp_norm: LayerNorm::load(
                    &store,
                    &format!("{p}.mlp_norm"),
                    hidden,
                    norm_bias,
                    eps,
                )?,
                mlp_in: Linear::load(
                    &store,
                    &format!("{p}.mlp.Wi"),
                    hidden,
                    2 * intermediate,
                    mlp_bias,
                )?,
                mlp_out: Linear::load(
                    &store,
                    &format!("{p}.mlp.Wo"),
                    intermediate,
                    hidden,
                    mlp_bias,
                )?,
                global,
            });
        }
        let final_norm = LayerNorm::load(&store, "final_norm", hidden, norm_bias, eps)?;
        Ok(ModernBert {
            embeddings,
            embedding_norm,
            layers: all,
            final_norm,
            global_rope: Rotary::new(
                global_theta,
                head_dim,
                longest.min(max_positions),
                store.device(),
            )?,
            local_rope: Rotary::new(
                local_theta,
                head_dim,
                longest.min(max_positions),
                store.device(),
            )?,
            activation,
            hidden_size: hidden,
            intermediate,
            heads,
            half_window: window / 2,
            max_positions,
        })
    }

    pub(crate) fn hidden_size(&self) -> usize {
        self.hidden_size
    }

    pub(crate) fn max_positions(&self) -> usize {
        self.max_positions
    }

    pub(crate) fn vocab_size(&self) -> usize {
        self.embeddings.rows()
    }

    pub(crate) fn widest_row(&self) -> usize {
        (3 * self.hidden_size).max(2 * self.intermediate)
    }

    pub(crate) fn forward(&self, batch: &Packed) -> candle_core::Result<Tensor> {
        let x = self
            .embeddings
            .gather(&batch.ids, batch.positions.device())?;
        let mut x = self.embedding_norm.forward(&x)?;
        for layer in &self.layers {
            let normed = match &layer.attn_norm {
                Some(norm) => norm.forward(&x)?,
                None => x.clone(),
            };
            let qkv = layer.qkv.forward(&normed)?;
            let (rope, window) = if layer.global {
                (&self.global_rope, None)
            } else {
                (&self.local_rope, Some(self.half_window))
            };
            let context = packed_attention(&qkv, batch, self.heads, Some(rope), window)?;
            x = layer.attn_out.forward_residual(&context, &x)?;
            let gated = layer
                .mlp_in
                .forward_gated(&layer.mlp_norm.forward(&x)?, self.activation)?;
            x = layer.mlp_out.forward_residual(&gated, &x)?;
        }
        self.final_norm.forward(&x)
    }
}
