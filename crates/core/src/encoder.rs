//! ColBERT: tokenizer + backbone + Dense chain + L2 normalisation + row selection.

use std::path::Path;
use std::sync::Arc;

use candle_core::{Device, Tensor};

use crate::config::{ColbertSettings, Modules};
use crate::dense::DenseChain;
use crate::device::DeviceSpec;
use crate::embeddings::Embeddings;
use crate::error::{Error, Result};
use crate::models::{Backbone, Packed, Span};
use crate::overrides::Overrides;
use crate::precision::Precision;
use crate::source::Source;
use crate::tokenize::{ColbertTokenizer, InputKind, TokenizedText};

/// Largest widest-activation tensor of one forward pass, in bytes: about 1,400 tokens of a
/// MiniLM, 900 of a base-size ModernBERT. Enough rows for gemm to run at full speed, few
/// enough that the temporaries of a pass stay small and are recycled by the allocator (the
/// same throughput as 24 MiB passes, 55 MB less resident memory).
const PASS_BYTES: usize = 8 << 20;

/// Overrides of what the model folder says (`None` keeps the folder's value), the default
/// batch size and the device. The settings are those of [`Overrides`], which front ends read
/// from maps and apply with [`Options::with_overrides`].
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
    /// Where the model runs (`"cpu"`, `"cuda:N"`, `"metal:N"`); a device this build or machine
    /// lacks is an [`Error::Device`] when the model is loaded.
    pub device: DeviceSpec,
    /// The arithmetic of the linear layers; `None`: as the weights are stored (int8 for a
    /// folder written by [`crate::quantize`], else float32).
    pub precision: Option<Precision>,
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
            device: DeviceSpec::Cpu,
            precision: None,
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

    /// These options with the given overrides applied (what a front end reads with
    /// [`Overrides::from_map`]); an override that is `None` keeps the option's value.
    pub fn with_overrides(mut self, overrides: Overrides) -> Options {
        let Overrides {
            query_length,
            document_length,
            query_prefix,
            document_prefix,
            do_query_expansion,
            attend_to_expansion_tokens,
            skiplist_words,
            batch_size,
            precision,
            device,
        } = overrides;
        self.query_length = query_length.or(self.query_length);
        self.document_length = document_length.or(self.document_length);
        self.query_prefix = query_prefix.or(self.query_prefix);
        self.document_prefix = document_prefix.or(self.document_prefix);
        self.do_query_expansion = do_query_expansion.or(self.do_query_expansion);
        self.attend_to_expansion_tokens =
            attend_to_expansion_tokens.or(self.attend_to_expansion_tokens);
        self.skiplist_words = skiplist_words.or(self.skiplist_words);
        self.batch_size = batch_size.unwrap_or(self.batch_size);
        self.precision = precision.or(self.precision);
        self.device = device.unwrap_or(self.device);
        self
    }

    /// The settings overrides these options hold (their batch size included).
    pub fn overrides(&self) -> Overrides {
        Overrides {
            query_length: self.query_length,
            document_length: self.document_length,
            query_prefix: self.query_prefix.clone(),
            document_prefix: self.document_prefix.clone(),
            do_query_expansion: self.do_query_expansion,
            attend_to_expansion_tokens: self.attend_to_expansion_tokens,
            skiplist_words: self.skiplist_words.clone(),
            batch_size: Some(self.batch_size),
            precision: self.precision,
            device: Some(self.device),
        }
    }
}

/// A loaded late-interaction model. Cheap to share across threads (`Send + Sync`).
pub struct ColBERT {
    tokenizer: ColbertTokenizer,
    backbone: Backbone,
    dense: DenseChain,
    device: Device,
    device_spec: DeviceSpec,
    batch_size: usize,
    precision: Precision,
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
        let device = options.device.open()?;
        let modules = Modules::read(&source)?;
        let settings = options.overrides().apply(ColbertSettings::read(&source)?);
        let longest = settings.query_length.max(settings.document_length);
        let (backbone, precision) = Backbone::load(
            &source,
            &modules.transformer,
            &device,
            longest,
            options.precision,
        )?;
        for (name, length) in [
            ("query_length", settings.query_length),
            ("document_length", settings.document_length),
        ] {
            if length > backbone.max_positions() {
                return Err(options.length_error(
                    name,
                    format!(
                        "{length} exceeds the backbone's {}",
                        backbone.max_positions_note()
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
        let dense = DenseChain::load(&source, &modules.dense, backbone.hidden_size(), &device)?;
        Ok(ColBERT {
            tokenizer,
            backbone,
            dense,
            device,
            device_spec: options.device,
            batch_size: options.batch_size,
            precision,
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

    /// The arithmetic the linear layers run in: the one asked for in [`Options::precision`],
    /// else the one the model folder stores ([`Precision::Int8`] for a folder written by
    /// [`crate::quantize`]).
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// The device the model runs on.
    pub fn device(&self) -> DeviceSpec {
        self.device_spec
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
    /// Pooling applies to documents only: `pool_factor` 1 keeps every row, and queries take
    /// no other (PyLate ignores `pool_factor` for queries; here every front end refuses it
    /// alike instead of leaving queries unpooled silently). 0, or more than 1 with
    /// [`InputKind::Query`], is an [`Error::InvalidArgument`], checked before anything is
    /// encoded.
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
        if kind == InputKind::Query && pool_factor > 1 {
            return Err(Error::argument(
                "pool_factor",
                format!("is {pool_factor} for queries; pooling applies to documents only and queries are never pooled (PyLate ignores it for queries); expected 1 for queries"),
            ));
        }
        let encoded = self.encode_with(texts, kind, batch_size, progress)?;
        if pool_factor == 1 {
            return Ok(encoded);
        }
        encoded
            .iter()
            .map(|e| crate::pool::pool(e, pool_factor))
            .collect()
    }

    /// Runs texts through the model and returns each one's kept, normalised rows. The
    /// texts are packed without padding into passes of at most [`PASS_BYTES`] of widest
    /// activation (so that the large temporaries are recycled by the allocator instead of
    /// mapped afresh), and only the kept rows go through the Dense layers.
    fn forward(&self, items: &[&TokenizedText]) -> Result<Vec<Embeddings>> {
        let budget = (PASS_BYTES / (4 * self.backbone.widest_row().max(1))).max(1);
        let mut out = Vec::with_capacity(items.len());
        let mut rest = items;
        while !rest.is_empty() {
            // At least one text per pass, however long.
            let mut tokens = rest[0].ids.len();
            let mut count = 1;
            while count < rest.len() && tokens + rest[count].ids.len() <= budget {
                tokens += rest[count].ids.len();
                count += 1;
            }
            let (pass, next) = rest.split_at(count);
            out.extend(self.forward_packed(pass)?);
            rest = next;
        }
        Ok(out)
    }

    fn forward_packed(&self, items: &[&TokenizedText]) -> Result<Vec<Embeddings>> {
        let dim = self.dim();
        let total: usize = items.iter().map(|x| x.ids.len()).sum();
        let mut ids = Vec::with_capacity(total);
        let mut positions = Vec::with_capacity(total);
        let mut spans = Vec::with_capacity(items.len());
        let mut kept = Vec::new();
        for item in items {
            let start = ids.len();
            ids.extend_from_slice(&item.ids);
            positions.extend(0..item.ids.len() as u32);
            // Attended tokens come first; expansion tokens (attention 0) follow them.
            let keys = item.attention.iter().take_while(|&&a| a != 0).count();
            spans.push(Span {
                start,
                len: item.ids.len(),
                keys,
            });
            kept.extend(
                item.keep
                    .iter()
                    .enumerate()
                    .filter(|(_, &k)| k)
                    .map(|(j, _)| (start + j) as u32),
            );
        }
        let values = if kept.is_empty() {
            Vec::new()
        } else {
            let batch = Packed::new(
                ids,
                Tensor::from_vec(positions, total, &self.device)?,
                spans,
            );
            let hidden = self.backbone.forward(&batch)?;
            let count = kept.len();
            let index = Tensor::from_vec(kept, count, &self.device)?;
            // Dense layers act row by row: only the rows that are returned are projected.
            let selected = hidden.index_select(&index, 0)?;
            let projected = self.dense.forward(&selected)?;
            let mut values: Vec<f32> = projected.flatten_all()?.to_vec1()?;
            // Finite weights of huge magnitude can still overflow float32 in a layer; the
            // normalisation would turn the infinities into NaN rows. Name the culprit instead
            // (the check of the backbone's rows only runs on this error path).
            if values.iter().any(|v| !v.is_finite()) {
                let rows: Vec<f32> = selected.flatten_all()?.to_vec1()?;
                let file = if rows.iter().all(|v| v.is_finite()) {
                    "the Dense layers' model.safetensors"
                } else {
                    "model.safetensors (the backbone)"
                };
                return Err(Error::weights(
                    file,
                    "the model's output overflows float32 (NaN or infinite values); expected finite weights of moderate magnitude, as a trained model has",
                ));
            }
            // torch.nn.functional.normalize: x / max(||x||, 1e-12).
            for row in values.chunks_exact_mut(dim) {
                let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
                row.iter_mut().for_each(|x| *x /= norm);
            }
            values
        };
        let mut out = Vec::with_capacity(items.len());
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
