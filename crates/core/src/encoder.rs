//! ColBERT: tokenizer + backbone + Dense chain + L2 normalisation + row selection.

use std::path::Path;
use std::sync::Arc;

use candle_core::{DType, Device, Tensor};

use crate::config::{ColbertSettings, Modules};
use crate::dense::DenseChain;
use crate::error::{Error, Result};
use crate::models::Backbone;
use crate::source::Source;
use crate::tokenize::{ColbertTokenizer, InputKind, TokenizedText};

/// Overrides of what the model folder says; `None` keeps the folder's value.
#[derive(Debug, Clone)]
pub struct Options {
    /// Query length in tokens (prefix and special tokens included).
    pub query_length: Option<usize>,
    /// Maximum document length in tokens.
    pub document_length: Option<usize>,
    /// Query prefix token (`""`: none).
    pub query_prefix: Option<String>,
    /// Document prefix token (`""`: none).
    pub document_prefix: Option<String>,
    /// Pad queries with MASK tokens to `query_length` and keep every row.
    pub do_query_expansion: Option<bool>,
    /// Let the model attend to the expansion tokens.
    pub attend_to_expansion_tokens: Option<bool>,
    /// Words whose rows are dropped from document outputs.
    pub skiplist_words: Option<Vec<String>>,
    /// Texts per forward pass in [`ColBERT::encode`].
    pub batch_size: usize,
    /// Where the tensors live.
    pub device: Device,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            query_length: None,
            document_length: None,
            query_prefix: None,
            document_prefix: None,
            do_query_expansion: None,
            attend_to_expansion_tokens: None,
            skiplist_words: None,
            batch_size: 32,
            device: Device::Cpu,
        }
    }
}

impl Options {
    /// An error about `query_length` or `document_length`: the caller's argument when the
    /// options set it, else the model's `config_sentence_transformers.json` (or PyLate's
    /// default, which that file did not override).
    fn length_error(&self, name: &str, message: String) -> Error {
        let given = match name {
            "query_length" => self.query_length.is_some(),
            "document_length" => self.document_length.is_some(),
            _ => true,
        };
        if given {
            Error::argument(name, message)
        } else {
            Error::config(
                "config_sentence_transformers.json",
                format!("`{name}` {message} (the model's value, or PyLate's default when the file does not set it; pass {name} to override)"),
            )
        }
    }

    fn apply(&self, mut settings: ColbertSettings) -> ColbertSettings {
        if let Some(v) = self.query_length {
            settings.query_length = v;
        }
        if let Some(v) = self.document_length {
            settings.document_length = v;
        }
        if let Some(v) = &self.query_prefix {
            settings.query_prefix = v.clone();
        }
        if let Some(v) = &self.document_prefix {
            settings.document_prefix = v.clone();
        }
        if let Some(v) = self.do_query_expansion {
            settings.do_query_expansion = v;
        }
        if let Some(v) = self.attend_to_expansion_tokens {
            settings.attend_to_expansion_tokens = v;
        }
        if let Some(v) = &self.skiplist_words {
            settings.skiplist_words = v.clone();
        }
        settings
    }
}

/// One text's token embeddings: a row-major `[rows, dim]` f32 matrix.
#[derive(Debug, Clone, PartialEq)]
pub struct Embeddings {
    /// Number of token rows.
    pub rows: usize,
    /// Width of each row.
    pub dim: usize,
    /// `rows * dim` values, row after row.
    pub data: Vec<f32>,
}

impl Embeddings {
    /// Row `i` as a slice.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }
}

/// A loaded late-interaction model. Cheap to share across threads (`Send + Sync`).
pub struct ColBERT {
    tokenizer: ColbertTokenizer,
    backbone: Backbone,
    dense: DenseChain,
    device: Device,
    batch_size: usize,
}

impl ColBERT {
    /// Loads a PyLate model folder; the safetensors files are memory-mapped.
    pub fn from_folder(path: impl AsRef<Path>, options: Options) -> Result<Self> {
        Self::load(Source::folder(path.as_ref())?, options)
    }

    /// Loads a model from its files' bytes, keyed by their names relative to the model
    /// folder (`"config.json"`, `"1_Dense/model.safetensors"`, ...).
    pub fn from_files<I, K, V>(files: I, options: Options) -> Result<Self>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: Into<Arc<[u8]>>,
    {
        Self::load(Source::files(files)?, options)
    }

    fn load(source: Source, options: Options) -> Result<Self> {
        if options.batch_size == 0 {
            return Err(Error::argument("batch_size", "is 0; expected at least 1"));
        }
        let modules = Modules::read(&source)?;
        let settings = options.apply(ColbertSettings::read(&source)?);
        let backbone = Backbone::load(&source, &modules.transformer, &options.device)?;
        for (name, length) in [
            ("query_length", settings.query_length),
            ("document_length", settings.document_length),
        ] {
            if length > backbone.max_positions() {
                return Err(options.length_error(
                    name,
                    format!(
                        "{length} exceeds the backbone's max_position_embeddings {}",
                        backbone.max_positions()
                    ),
                ));
            }
        }
        let tokenizer = ColbertTokenizer::load(&source, &modules.transformer, settings).map_err(
            |e| match e {
                Error::InvalidArgument { name, message } => options.length_error(&name, message),
                other => other,
            },
        )?;
        if let Some(largest) = tokenizer.largest_id() {
            if largest as usize >= backbone.vocab_size() {
                return Err(Error::InvalidTokenizer {
                    file: crate::source::join(&modules.transformer, "tokenizer.json"),
                    message: format!(
                        "holds token id {largest} but the model's embedding matrix has only {} rows; expected the tokenizer saved with this model",
                        backbone.vocab_size()
                    ),
                });
            }
        }
        let dense = DenseChain::load(
            &source,
            &modules.dense,
            backbone.hidden_size(),
            &options.device,
        )?;
        Ok(ColBERT {
            tokenizer,
            backbone,
            dense,
            device: options.device,
            batch_size: options.batch_size,
        })
    }

    /// The effective ColBERT settings (the folder's, with the options applied).
    pub fn settings(&self) -> &ColbertSettings {
        self.tokenizer.settings()
    }

    /// Width of the output rows.
    pub fn dim(&self) -> usize {
        self.dense.out_features()
    }

    /// The default batch size given in [`Options`].
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// Tokenizes one text exactly as it is fed to the model.
    pub fn tokenize(&self, text: &str, kind: InputKind) -> Result<TokenizedText> {
        self.tokenizer.tokenize(text, kind, 0)
    }

    /// The vocabulary string of a token id, as the tokenizer writes it (`"##ing"`, `"Ġthe"`),
    /// for showing tokens; `None` when the id is out of range.
    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.tokenizer.id_to_token(id)
    }

    /// Encodes texts into one token-embedding matrix each, in input order.
    pub fn encode<S: AsRef<str>>(&self, texts: &[S], kind: InputKind) -> Result<Vec<Embeddings>> {
        self.encode_with(texts, kind, self.batch_size, &mut |_| true)
    }

    /// Like [`ColBERT::encode`] with a batch size, and `progress` called with the number of
    /// texts done after each batch (and with 0 now and then while a large input is being
    /// tokenized); returning `false` stops with [`Error::Cancelled`].
    pub fn encode_with<S: AsRef<str>>(
        &self,
        texts: &[S],
        kind: InputKind,
        batch_size: usize,
        progress: &mut dyn FnMut(usize) -> bool,
    ) -> Result<Vec<Embeddings>> {
        if batch_size == 0 {
            return Err(Error::argument("batch_size", "is 0; expected at least 1"));
        }
        let mut tokenized = Vec::with_capacity(texts.len());
        for (i, text) in texts.iter().enumerate() {
            // Tokenizing a huge input takes a while too: let the caller stop it.
            if i % 1024 == 1023 && !progress(0) {
                return Err(Error::Cancelled);
            }
            tokenized.push(self.tokenizer.tokenize(text.as_ref(), kind, i)?);
        }
        // Longest first, so that each batch pads to lengths close to its own.
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(tokenized[i].ids.len()));
        let mut out: Vec<Option<Embeddings>> = vec![None; texts.len()];
        let mut done = 0;
        for batch in order.chunks(batch_size) {
            let items: Vec<&TokenizedText> = batch.iter().map(|&i| &tokenized[i]).collect();
            for (&i, emb) in batch.iter().zip(self.forward(&items)?) {
                out[i] = Some(emb);
            }
            done += batch.len();
            if !progress(done) {
                return Err(Error::Cancelled);
            }
        }
        Ok(out.into_iter().flatten().collect())
    }

    /// Like [`ColBERT::encode_with`], then hierarchical token pooling of each document with
    /// [`crate::pool`] (PyLate's `encode(..., pool_factor=...)`, one protected row).
    ///
    /// As in PyLate, pooling applies to documents only: queries come back unpooled whatever
    /// `pool_factor` is. `pool_factor` 1 keeps every row; 0 is an [`Error::InvalidArgument`]
    /// (checked before anything is encoded).
    pub fn encode_pooled<S: AsRef<str>>(
        &self,
        texts: &[S],
        kind: InputKind,
        batch_size: usize,
        pool_factor: usize,
        progress: &mut dyn FnMut(usize) -> bool,
    ) -> Result<Vec<Embeddings>> {
        if pool_factor == 0 {
            return Err(Error::argument(
                "pool_factor",
                "is 0; expected at least 1 (1 keeps every row)",
            ));
        }
        let encoded = self.encode_with(texts, kind, batch_size, progress)?;
        if kind == InputKind::Query || pool_factor == 1 {
            return Ok(encoded);
        }
        encoded
            .iter()
            .map(|e| crate::pool::pool(e, pool_factor))
            .collect()
    }

    /// Runs one padded batch and returns each text's kept, normalised rows.
    fn forward(&self, items: &[&TokenizedText]) -> Result<Vec<Embeddings>> {
        let t = items.iter().map(|x| x.ids.len()).max().unwrap_or(0);
        let b = items.len();
        let dim = self.dim();
        if t == 0 {
            // Only texts that tokenize to nothing (a tokenizer without special tokens, no
            // prefix): no rows to return, and nothing to run.
            return Ok(items
                .iter()
                .map(|_| Embeddings {
                    rows: 0,
                    dim,
                    data: Vec::new(),
                })
                .collect());
        }
        let mut ids = Vec::with_capacity(b * t);
        let mut attention = Vec::with_capacity(b * t);
        let mut kept = Vec::new();
        for (row, item) in items.iter().enumerate() {
            let pad = t - item.ids.len();
            ids.extend_from_slice(&item.ids);
            ids.extend(std::iter::repeat_n(self.tokenizer.pad_id(), pad));
            attention.extend_from_slice(&item.attention);
            attention.extend(std::iter::repeat_n(0u32, pad));
            kept.extend(
                item.keep
                    .iter()
                    .enumerate()
                    .filter(|(_, &k)| k)
                    .map(|(j, _)| (row * t + j) as u32),
            );
        }
        let ids = Tensor::from_vec(ids, (b, t), &self.device)?;
        let attention = Tensor::from_vec(attention, (b, t), &self.device)?;
        let hidden = self.backbone.forward(&ids, &attention)?;
        let flat = hidden.reshape((b * t, self.backbone.hidden_size()))?;
        // Dense layers act row by row: only the rows that are returned are projected.
        let rows = if kept.is_empty() {
            Tensor::zeros((0, dim), DType::F32, &self.device)?
        } else {
            let count = kept.len();
            let index = Tensor::from_vec(kept, count, &self.device)?;
            let projected = self.dense.forward(&flat.index_select(&index, 0)?)?;
            let norm = projected.sqr()?.sum_keepdim(1)?.sqrt()?.maximum(1e-12)?;
            projected.broadcast_div(&norm)?
        };
        let values: Vec<f32> = rows.flatten_all()?.to_vec1()?;
        let mut out = Vec::with_capacity(b);
        let mut offset = 0;
        for item in items {
            let n = item.kept_rows();
            out.push(Embeddings {
                rows: n,
                dim,
                data: values[offset * dim..(offset + n) * dim].to_vec(),
            });
            offset += n;
        }
        Ok(out)
    }
}
