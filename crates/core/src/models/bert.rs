//! BERT (post-norm) as transformers' `BertModel` computes it, pooler unused. XLM-RoBERTa
//! (`super::xlm_roberta`) is this network with other position ids.

use candle_core::Tensor;

use super::layers::Activation;
use super::layers::{concat_outputs, packed_attention, LayerNorm, Linear, Packed};
use crate::config::Fields;
use crate::error::{Error, Result};
use crate::weights::LinearParts;
use crate::weights::{EmbeddingTable, WeightStore};

struct Layer {
    qkv: Linear,
    attention_out: Linear,
    attention_norm: LayerNorm,
    intermediate: Linear,
    output: Linear,
    output_norm: LayerNorm,
}

pub(crate) struct Bert {
    word_embeddings: EmbeddingTable,
    position_embeddings: Tensor,
    token_type_embedding: Tensor,
    embedding_norm: LayerNorm,
    layers: Vec<Layer>,
    activation: Activation,
    hidden_size: usize,
    heads: usize,
    intermediate: usize,
}

/// Name prefixes a BERT checkpoint's tensors may carry.
const PREFIXES: &[&str] = &["", "bert.", "model.", "encoder."];

impl Bert {
    pub(crate) fn load(config: &Fields, store: WeightStore) -> Result<Self> {
        Self::load_with_prefixes(config, store, PREFIXES)
    }

    /// Loads the network from tensors named under one of `prefixes` (tried in order).
    pub(crate) fn load_with_prefixes(
        config: &Fields,
        mut store: WeightStore,
        prefixes: &[&str],
    ) -> Result<Self> {
        let hidden = config.usize("hidden_size")?;
        let heads = config.usize("num_attention_heads")?;
        let layers = config.usize("num_hidden_layers")?;
        let intermediate = config.usize("intermediate_size")?;
        let vocab = config.usize("vocab_size")?;
        let positions = config.opt_usize("max_position_embeddings")?.unwrap_or(512);
        let type_vocab = config.opt_usize("type_vocab_size")?.unwrap_or(2);
        let eps = config.opt_eps("layer_norm_eps")?.unwrap_or(1e-12);
        let activation = Activation::from_hf_name(
            config.file,
            "hidden_act",
            config.opt_str("hidden_act")?.unwrap_or("gelu"),
        )?;
        if let Some(kind) = config.opt_str("position_embedding_type")? {
            if kind != "absolute" {
                return Err(Error::config(
                    config.file,
                    format!(
                        "position_embedding_type {kind:?} is not supported; expected \"absolute\""
                    ),
                ));
            }
        }
        if heads == 0 || hidden % heads != 0 {
            return Err(Error::config(
                config.file,
                format!("hidden_size {hidden} is not a multiple of num_attention_heads {heads}"),
            ));
        }
        if type_vocab == 0 {
            return Err(Error::config(
                config.file,
                "type_vocab_size is 0; expected at least 1",
            ));
        }
        store.detect_prefix("embeddings.word_embeddings.weight", prefixes)?;
        store.check_layer_count(config.file, "num_hidden_layers", layers, "encoder.layer")?;
        let word_embeddings =
            store.get_table("embeddings.word_embeddings.weight", [vocab, hidden])?;
        let position_embeddings = store.get(
            "embeddings.position_embeddings.weight",
            &[positions, hidden],
        )?;
        // BERT gets token_type_ids of zeros: only row 0 is ever used.
        let token_type_embedding = store
            .get(
                "embeddings.token_type_embeddings.weight",
                &[type_vocab, hidden],
            )?
            .narrow(0, 0, 1)?
            .contiguous()?;
        let embedding_norm = LayerNorm::load(&store, "embeddings.LayerNorm", hidden, true, eps)?;
        let mut all = Vec::with_capacity(layers);
        for i in 0..layers {
            let p = format!("encoder.layer.{i}");
            let part = |name: &str| -> Result<(LinearParts, Tensor)> {
                Ok((
                    store.get_linear(
                        &format!("{p}.attention.self.{name}.weight"),
                        hidden,
                        hidden,
                    )?,
                    store.get(&format!("{p}.attention.self.{name}.bias"), &[hidden])?,
                ))
            };
            let (qw, qb) = part("query")?;
            let (kw, kb) = part("key")?;
            let (vw, vb) = part("value")?;
            // One matmul for q, k and v.
            let qkv = Linear::from_parts(
                concat_outputs(vec![qw, kw, vw], store.device())?,
                Some(Tensor::cat(&[qb, kb, vb], 0)?),
                &store,
            )?;
            all.push(Layer {
                qkv,
                attention_out: Linear::load(
                    &store,
                    &format!("{p}.attention.output.dense"),
                    hidden,
                    hidden,
                    true,
                )?,
                attention_norm: LayerNorm::load(
                    &store,
                    &format!("{p}.attention.output.LayerNorm"),
                    hidden,
                    true,
                    eps,
                )?,
                intermediate: Linear::load(
                    &store,
                    &format!("{p}.intermediate.dense"),
                    hidden,
                    intermediate,
                    true,
                )?,
                output: Linear::load(
                    &store,
                    &format!("{p}.output.dense"),
                    intermediate,
                    hidden,
                    true,
                )?,
                output_norm: LayerNorm::load(
                    &store,
                    &format!("{p}.output.LayerNorm"),
                    hidden,
                    true,
                    eps,
                )?,
            });
        }
        Ok(Bert {
            word_embeddings,
            position_embeddings,
            token_type_embedding,
            embedding_norm,
            layers: all,
            activation,
            hidden_size: hidden,
            heads,
            intermediate,
        })
    }

    pub(crate) fn hidden_size(&self) -> usize {
        self.hidden_size
    }

    pub(crate) fn max_positions(&self) -> usize {
        self.position_embeddings.dim(0).unwrap_or(0)
    }

    pub(crate) fn vocab_size(&self) -> usize {
        self.word_embeddings.rows()
    }

    pub(crate) fn widest_row(&self) -> usize {
        (3 * self.hidden_size).max(self.intermediate)
    }

    pub(crate) fn forward(&self, batch: &Packed) -> candle_core::Result<Tensor> {
        self.forward_at(batch, &batch.positions)
    }

    /// The forward pass with the position ids `positions` (`[T]`, u32) instead of the
    /// batch's 0, 1, ... per text.
    pub(crate) fn forward_at(
        &self,
        batch: &Packed,
        positions: &Tensor,
    ) -> candle_core::Result<Tensor> {
        // transformers' order: (words + token type) + positions.
        let words = self
            .word_embeddings
            .gather(&batch.ids, positions.device())?;
        let x = (words.broadcast_add(&self.token_type_embedding)?
            + self.position_embeddings.index_select(positions, 0)?)?;
        let mut x = self.embedding_norm.forward(&x)?;
        for layer in &self.layers {
            let qkv = layer.qkv.forward(&x)?;
            let context = packed_attention(&qkv, batch, self.heads, None, None)?;
            let attended = layer
                .attention_norm
                .forward(&layer.attention_out.forward_residual(&context, &x)?)?;
            let inner = layer.intermediate.forward_act(&attended, self.activation)?;
            x = layer
                .output_norm
                .forward(&layer.output.forward_residual(&inner, &attended)?)?;
        }
        Ok(x)
    }
}
