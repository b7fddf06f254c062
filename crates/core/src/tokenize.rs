//! PyLate's tokenization: the prefix token inserted as an id after the first special
//! token, truncation that leaves room for it, MASK expansion of queries, and the skiplist.

use std::collections::HashSet;

use serde_json::{json, Map, Value};
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

/// tokenizer.json as transformers 5 turns it into a tokenizer, when that differs from the file:
/// `None` when the file is used as it is.
///
/// transformers 5 rebuilds the pipeline of a tokenizer class that has a constructor of its
/// own, taking only the vocabulary from the file. For XLM-RoBERTa (`XLMRobertaTokenizer`,
/// also what `XLMRobertaTokenizerFast` now loads) it keeps the `Precompiled` normalizer alone
/// (dropping the ``` `` ```/`''` and repeated-space replacements that converted files
/// hold), pre-tokenizes with WhitespaceSplit then Metaspace (prepend scheme "always", "never"
/// when `add_prefix_space` is false), takes id 3 as UNK without byte fallback, and
/// post-processes as `<s> $A </s>` with the configured BOS and EOS tokens. PyLate's output
/// follows that pipeline: whitespace next to added tokens, `''` and ``` `` ``` tokenize
/// differently from the file's own.
fn rebuilt_as_transformers_does(
    bytes: &[u8],
    tokenizer_config: Option<&Map<String, Value>>,
) -> Option<Vec<u8>> {
    let config = tokenizer_config?;
    let class = config.get("tokenizer_class").and_then(Value::as_str);
    if !matches!(
        class,
        Some("XLMRobertaTokenizer" | "XLMRobertaTokenizerFast")
    ) {
        return None;
    }
    // A file that does not parse is left to the tokenizers crate to report.
    let Ok(Value::Object(mut json)) = serde_json::from_slice::<Value>(bytes) else {
        return None;
    };
    let model = json.get("model")?;
    if model.get("type").and_then(Value::as_str) != Some("Unigram") {
        return None;
    }
    let token = |key: &str, default: &str| {
        token_content(config, key).unwrap_or_else(|| default.to_string())
    };
    let (bos, eos) = (token("bos_token", "<s>"), token("eos_token", "</s>"));
    // The id of a token: an added token's, else its place in the Unigram vocabulary.
    let id_of = |token: &str| -> Option<u64> {
        let added = json.get("added_tokens").and_then(Value::as_array);
        let found = added
            .into_iter()
            .flatten()
            .find_map(|t| (t.get("content")?.as_str()? == token).then(|| t.get("id")?.as_u64())?);
        found.or_else(|| {
            let vocab = model.get("vocab")?.as_array()?;
            let at = vocab
                .iter()
                .position(|entry| entry.get(0).and_then(Value::as_str) == Some(token))?;
            Some(at as u64)
        })
    };
    let post_processor = match (id_of(&bos), id_of(&eos)) {
        (Some(bos_id), Some(eos_id)) => {
            let special = |t: &str| json!({"SpecialToken": {"id": t, "type_id": 0}});
            let sequence = |s: &str| json!({"Sequence": {"id": s, "type_id": 0}});
            let mut tokens = Map::new();
            tokens.insert(
                bos.clone(),
                json!({"id": bos, "ids": [bos_id], "tokens": [bos]}),
            );
            tokens.insert(
                eos.clone(),
                json!({"id": eos, "ids": [eos_id], "tokens": [eos]}),
            );
            Some(json!({
                "type": "TemplateProcessing",
                "single": [special(&bos), sequence("A"), special(&eos)],
                "pair": [
                    special(&bos), sequence("A"), special(&eos),
                    special(&eos), sequence("B"), special(&eos),
                ],
                "special_tokens": tokens,
            }))
        }
        _ => None,
    };
    let precompiled = json.get("normalizer").and_then(|n| {
        let list = match n.get("type").and_then(Value::as_str) {
            Some("Sequence") => n.get("normalizers")?.as_array()?.clone(),
            _ => vec![n.clone()],
        };
        list.into_iter()
            .find(|n| n.get("type").and_then(Value::as_str) == Some("Precompiled"))
    });
    let prepend = if config
        .get("add_prefix_space")
        .and_then(Value::as_bool)
        .unwrap_or(true)
    {
        "always"
    } else {
        "never"
    };
    json.insert("normalizer".into(), precompiled.unwrap_or(Value::Null));
    json.insert(
        "pre_tokenizer".into(),
        json!({
            "type": "Sequence",
            "pretokenizers": [
                {"type": "WhitespaceSplit"},
                {"type": "Metaspace", "replacement": "\u{2581}", "prepend_scheme": prepend, "split": true},
            ],
        }),
    );
    if let Some(post_processor) = post_processor {
        json.insert("post_processor".into(), post_processor);
    }
    let model = json.get_mut("model")?.as_object_mut()?;
    model.insert("unk_id".into(), json!(3));
    model.insert("byte_fallback".into(), json!(false));
    serde_json::to_vec(&Value::Object(json)).ok()
}

impl ColbertTokenizer {
    pub(crate) fn load(source: &Source, dir: &str, settings: ColbertSettings) -> Result<Self> {
        let file = join(dir, "tokenizer.json");
        let bytes = source.read(
            &file,
            "latebird needs the fast tokenizer file (save the model with a recent transformers)",
        )?;
        let mut special: Vec<(String, Map<String, Value>)> = Vec::new();
        for name in ["tokenizer_config.json", "special_tokens_map.json"] {
            let path = join(dir, name);
            if let Some(blob) = source.read_optional(&path)? {
                special.push((path.clone(), parse_json_object(&path, &blob)?));
            }
        }
        let tokenizer_config = special
            .first()
            .filter(|(path, _)| path.ends_with("tokenizer_config.json"))
            .map(|(_, map)| map);
        // tokenizers 0.22 panics (`expect("Helper")` in its decoder deserializer) on some
        // malformed JSON instead of returning an error: check the syntax first.
        if let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(&bytes) {
            return Err(Error::InvalidTokenizer {
                file,
                message: format!("not a valid tokenizers file: not valid JSON: {e}; expected a tokenizers JSON file"),
            });
        }
        let rebuilt = rebuilt_as_transformers_does(&bytes[..], tokenizer_config);
        let mut tokenizer = Tokenizer::from_bytes(rebuilt.as_deref().unwrap_or(&bytes[..]))
            .map_err(|e| Error::InvalidTokenizer {
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
