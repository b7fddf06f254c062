//! The backbones: a registry of families ([`FAMILIES`]), one file per family describing its
//! architecture with the device- and precision-generic [`layers`], which run on the fused
//! CPU [`kernels`] or on Candle ops.

pub(crate) mod bert;
mod kernels;
pub(crate) mod layers;
pub(crate) mod modernbert;
pub(crate) mod xlm_roberta;

use candle_core::{Device, Tensor};

// The scoring kernels follow the same instruction-set choice as the model kernels.
pub(crate) use kernels::int8::quantize_symmetric;
#[cfg(target_arch = "x86_64")]
pub(crate) use kernels::math::{isa, Isa};
pub(crate) use layers::{Activation, Linear, Packed, Span};

use crate::config::{parse_json_object, Fields};
use crate::error::{Error, Result};
use crate::precision::Precision;
use crate::source::{join, Source};
use crate::weights::WeightStore;

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
    /// (rotary tables are computed that far, within `max_position_embeddings`). Its linear
    /// layers run in `precision` (`None`: as the file stores them), which is returned.
    ///
    /// The family is the one whose class names hold the first of `architectures`, else the
    /// one of `model_type` (which is what transformers' AutoModel goes by: a checkpoint saved
    /// as, say, `BertForPreTraining` is still a BERT).
    pub(crate) fn load(
        source: &Source,
        dir: &str,
        device: &Device,
        longest: usize,
        precision: Option<Precision>,
    ) -> Result<(Self, Precision)> {
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
        let mut store = WeightStore::parse(&weights_file, &blob, device)?;
        let stored = if store.holds_int8() {
            Precision::Int8
        } else {
            Precision::Float32
        };
        let effective = precision.unwrap_or(stored);
        if effective == Precision::Int8 && !device.is_cpu() {
            let why = match precision {
                Some(_) => format!("is {effective}"),
                None => format!("is {effective} (the precision {weights_file} stores)"),
            };
            return Err(Error::argument(
                "precision",
                format!("{why} on {:?}; int8 runs on the CPU only: expected float32, bfloat16 or float16 on this device (int8 weights are then dequantized), or the CPU", device.location()),
            ));
        }
        if effective == Precision::Float16 && device.is_cpu() && kernels::math::fused_kernels() {
            return Err(Error::argument(
                "precision",
                "is float16, which the CPU kernels do not run; expected bfloat16 (half the weight memory too), int8 or float32 on the CPU, or float16 on a GPU device",
            ));
        }
        store.set_precision(Some(effective));
        Ok(((family.load)(&fields, store, longest)?, effective))
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
