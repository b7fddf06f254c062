//! PyLate's tokenization: the prefix token inserted as an id after the first special
//! token, truncation that leaves room for it, MASK expansion of queries, and the skiplist.

use std::collections::HashSet;

use serde_json::{Map, Value};
use tokenizers::{Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

use crate::config::{parse_json_object, ColbertSettings};
use crate::error::{Error, Result};
use crate::source::{join, Source};

/// Whether texts are queries or documents; they are tokenized and kept differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InputKind {
    /// Queries: `query_prefix`, `query_length`, MASK expansion.
    Query,
    /// Documents: `document_prefix`, `document_length`, skiplist.
    Document,
}

/// One text as the model sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenizedText {
    /// Token ids, prefix and expansion included.
    pub ids: Vec<u32>,
    /// 1 where the token is attended to, 0 for expansion tokens that are not.
    pub attention: Vec<u32>,
    /// Whether each position's row is part of the output.
    pub keep: Vec<bool>,
}

impl TokenizedText {
    /// Number of rows the output matrix for this text has.
    pub fn kept_rows(&self) -> usize {
        self.keep.iter().filter(|&&k| k).count()
    }
}

/// The tokenizer with everything PyLate derives from it.
pub(crate) struct ColbertTokenizer {
    query: Tokenizer,
    document: Tokenizer,
    query_prefix_id: Option<u32>,
    document_prefix_id: Option<u32>,
    /// The id PyLate pads and expands with: MASK, else EOS, else PAD.
    pad_id: u32,
    skiplist_ids: HashSet<u32>,
    /// `sentence_bert_config.json`'s `do_lower_case`: lowercase after stripping.
    lowercase: bool,
    settings: ColbertSettings,
}

/// Python's `str.strip()`: Unicode whitespace plus the ASCII separators U+001C..U+001F.
fn python_strip(text: &str) -> &str {
    text.trim_matches(|c: char| c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c))
}

/// A special token as `tokenizer_config.json` or `special_tokens_map.json` write it:
/// a string or an object with `content`.
fn token_content(map: &Map<String, Value>, key: &str) -> Option<String> {
    match map.get(key)? {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => o.get("content")?.as_str().map(String::from),
        _ => None,
    }
}

impl ColbertTokenizer {
    pub(crate) fn load(source: &Source, dir: &str, settings: ColbertSettings) -> Result<Self> {
        let file = join(dir, "tokenizer.json");
        let bytes = source.read(
            &file,
            "latebird needs the fast tokenizer file (save the model with a recent transformers)",
        )?;
        let mut tokenizer =
            Tokenizer::from_bytes(&*bytes).map_err(|e| Error::InvalidTokenizer {
                file: file.clone(),
                message: format!("not a valid tokenizers file: {e}"),
            })?;
        tokenizer
            .with_padding(None)
            .with_truncation(None)
            .map_err(|e| Error::InvalidTokenizer {
                file: file.clone(),
                message: e.to_string(),
            })?;

        let st_file = join(dir, "sentence_bert_config.json");
        let lowercase = match source.read_optional(&st_file)? {
            Some(blob) => {
                let map = parse_json_object(&st_file, &blob)?;
                crate::config::Fields::new(&st_file, &map)
                    .opt_bool("do_lower_case")?
                    .unwrap_or(false)
            }
            None => false,
        };

        let mut special: Vec<(String, Map<String, Value>)> = Vec::new();
        for name in ["tokenizer_config.json", "special_tokens_map.json"] {
            let path = join(dir, name);
            if let Some(blob) = source.read_optional(&path)? {
                special.push((path.clone(), parse_json_object(&path, &blob)?));
            }
        }
        let named = |key: &str| -> Option<u32> {
            special
                .iter()
                .find_map(|(_, map)| token_content(map, key))
                .and_then(|tok| tokenizer.token_to_id(&tok))
        };
        let mask = named("mask_token").or_else(|| {
            ["[MASK]", "<mask>"]
                .iter()
                .find_map(|t| tokenizer.token_to_id(t))
        });
        let pad_id = mask
            .or_else(|| named("eos_token"))
            .or_else(|| named("pad_token"))
            .ok_or_else(|| Error::InvalidTokenizer {
                file: file.clone(),
                message: "has no mask token (nor EOS or PAD token to fall back on); expected `mask_token` in tokenizer_config.json or a [MASK]/<mask> token, which PyLate pads and expands queries with".into(),
            })?;

        let prefix_id = |which: &str, prefix: &str| -> Result<Option<u32>> {
            if prefix.is_empty() {
                return Ok(None);
            }
            tokenizer.token_to_id(prefix).map(Some).ok_or_else(|| Error::InvalidTokenizer {
                file: file.clone(),
                message: format!(
                    "has no token for the {which} {prefix:?}; expected it as an added token (PyLate adds it with tokenizer.add_tokens), or pass an empty prefix"
                ),
            })
        };
        let query_prefix_id = prefix_id("query_prefix", &settings.query_prefix)?;
        let document_prefix_id = prefix_id("document_prefix", &settings.document_prefix)?;

        // PyLate maps each skiplist word with convert_tokens_to_ids: a word that is not one
        // token becomes UNK (so UNK rows are skipped too), and is dropped when there is no UNK.
        let unk = named("unk_token");
        let skiplist_ids = settings
            .skiplist_words
            .iter()
            .filter_map(|w| tokenizer.token_to_id(w).or(unk))
            .collect();

        let truncated = |length: usize, prefix: Option<u32>| -> Result<Tokenizer> {
            let max_length = length - usize::from(prefix.is_some());
            let mut t = tokenizer.clone();
            t.with_truncation(Some(TruncationParams {
                max_length,
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
                direction: TruncationDirection::Right,
            }))
            .map_err(|e| Error::InvalidTokenizer {
                file: file.clone(),
                message: format!("cannot truncate to {max_length} tokens: {e}"),
            })?;
            Ok(t)
        };
        let special_count = tokenizer
            .get_post_processor()
            .map(|p| tokenizers::PostProcessor::added_tokens(p, false))
            .unwrap_or(0);
        for (name, length, prefix) in [
            ("query_length", settings.query_length, query_prefix_id),
            (
                "document_length",
                settings.document_length,
                document_prefix_id,
            ),
        ] {
            let needed = special_count + usize::from(prefix.is_some()) + 1;
            if length < needed {
                return Err(Error::argument(
                    name,
                    format!("{length} leaves no room for text; expected at least {needed} (special tokens, prefix and one text token)"),
                ));
            }
        }
        Ok(ColbertTokenizer {
            query: truncated(settings.query_length, query_prefix_id)?,
            document: truncated(settings.document_length, document_prefix_id)?,
            query_prefix_id,
            document_prefix_id,
            pad_id,
            skiplist_ids,
            lowercase,
            settings,
        })
    }

    pub(crate) fn settings(&self) -> &ColbertSettings {
        &self.settings
    }

    /// The largest id the tokenizer can produce.
    pub(crate) fn largest_id(&self) -> Option<u32> {
        self.query.get_vocab(true).into_values().max()
    }

    /// The vocabulary entry of a token id (`None` when out of range).
    pub(crate) fn id_to_token(&self, id: u32) -> Option<String> {
        self.query.id_to_token(id)
    }

    /// Tokenizes one text as PyLate does; `index` is its position, for error messages.
    pub(crate) fn tokenize(
        &self,
        text: &str,
        kind: InputKind,
        index: usize,
    ) -> Result<TokenizedText> {
        let (tokenizer, prefix) = match kind {
            InputKind::Query => (&self.query, self.query_prefix_id),
            InputKind::Document => (&self.document, self.document_prefix_id),
        };
        let stripped = python_strip(text);
        let lowered;
        let text = if self.lowercase {
            lowered = stripped.to_lowercase();
            lowered.as_str()
        } else {
            stripped
        };
        let encoding = tokenizer
            .encode(text, true)
            .map_err(|e| Error::Tokenization {
                index,
                message: e.to_string(),
            })?;
        let mut ids = encoding.get_ids().to_vec();
        if let Some(prefix) = prefix {
            let at = ids.len().min(1);
            ids.insert(at, prefix);
        }
        let mut attention = vec![1u32; ids.len()];
        let keep = match kind {
            InputKind::Query if self.settings.do_query_expansion => {
                let length = self.settings.query_length;
                let expansion = u32::from(self.settings.attend_to_expansion_tokens);
                attention.resize(length.max(ids.len()), expansion);
                ids.resize(length.max(ids.len()), self.pad_id);
                vec![true; ids.len()]
            }
            InputKind::Query => vec![true; ids.len()],
            InputKind::Document => ids
                .iter()
                .map(|id| !self.skiplist_ids.contains(id))
                .collect(),
        };
        Ok(TokenizedText {
            ids,
            attention,
            keep,
        })
    }
}
