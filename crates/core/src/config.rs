//! Reading a PyLate model folder: `modules.json`, `config_sentence_transformers.json`,
//! the backbone's `config.json` (both transformers dialects) and the Dense chain.

use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::source::Source;

/// The ASCII punctuation characters PyLate skips in documents by default.
pub const DEFAULT_SKIPLIST: &str = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";

/// The ColBERT settings of a model folder (`config_sentence_transformers.json`), with
/// PyLate's defaults for keys an older save lacks. [`ColbertSettings::to_map`] gives them
/// as a map, with the names spelt as a front end spells them.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ColbertSettings {
    /// Prefix token inserted after the first special token of queries (`""`: none).
    pub query_prefix: String,
    /// Prefix token inserted after the first special token of documents (`""`: none).
    pub document_prefix: String,
    /// Query length in tokens, prefix and special tokens included.
    pub query_length: usize,
    /// Maximum document length in tokens, prefix and special tokens included.
    pub document_length: usize,
    /// Whether queries are padded with MASK tokens to `query_length` and all rows kept.
    pub do_query_expansion: bool,
    /// Whether the expansion tokens are attended to.
    pub attend_to_expansion_tokens: bool,
    /// Words whose token rows are dropped from document outputs.
    pub skiplist_words: Vec<String>,
}

impl Default for ColbertSettings {
    fn default() -> Self {
        ColbertSettings {
            query_prefix: "[Q] ".into(),
            document_prefix: "[D] ".into(),
            query_length: 32,
            document_length: 180,
            do_query_expansion: true,
            attend_to_expansion_tokens: false,
            skiplist_words: DEFAULT_SKIPLIST.chars().map(String::from).collect(),
        }
    }
}

/// Largest integer a config file may give for a count, a size or a length (2^28): far above
/// any real model's, and small enough that a few multiples of it fit a 32-bit `usize` (wasm).
pub(crate) const MAX_CONFIG_INTEGER: usize = 1 << 28;

/// Parses a JSON file of the model into an object.
pub(crate) fn read_json(source: &Source, file: &str, why: &str) -> Result<Map<String, Value>> {
    let blob = source.read(file, why)?;
    parse_json_object(file, &blob)
}

pub(crate) fn parse_json_object(file: &str, bytes: &[u8]) -> Result<Map<String, Value>> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(Error::config(
            file,
            format!("expected a JSON object, found {}", json_kind(&other)),
        )),
        Err(e) => Err(Error::config(file, format!("not valid JSON: {e}"))),
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Typed accessors for config objects that name the file in their errors.
pub(crate) struct Fields<'a> {
    pub(crate) file: &'a str,
    pub(crate) map: &'a Map<String, Value>,
}

impl<'a> Fields<'a> {
    pub(crate) fn new(file: &'a str, map: &'a Map<String, Value>) -> Self {
        Fields { file, map }
    }

    fn present(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    fn wrong(&self, key: &str, expected: &str, v: &Value) -> Error {
        Error::config(
            self.file,
            format!("`{key}` is {} ({v}); expected {expected}", json_kind(v)),
        )
    }

    /// A non-negative integer of at most [`MAX_CONFIG_INTEGER`]: no count, size or length in
    /// a model's config comes near it, and the bound keeps arithmetic on these numbers
    /// (`3 * hidden_size`, products of shapes) from overflowing before they are checked
    /// against the weights.
    pub(crate) fn opt_usize(&self, key: &str) -> Result<Option<usize>> {
        match self.present(key) {
            None => Ok(None),
            Some(v) => match v.as_u64() {
                Some(n) if n <= MAX_CONFIG_INTEGER as u64 => Ok(Some(n as usize)),
                Some(n) => Err(Error::config(
                    self.file,
                    format!("`{key}` is {n}; expected an integer of at most {MAX_CONFIG_INTEGER}"),
                )),
                None => Err(self.wrong(key, "a non-negative integer", v)),
            },
        }
    }

    pub(crate) fn usize(&self, key: &str) -> Result<usize> {
        self.opt_usize(key)?.ok_or_else(|| {
            Error::config(
                self.file,
                format!("`{key}` is missing; expected an integer"),
            )
        })
    }

    pub(crate) fn opt_f64(&self, key: &str) -> Result<Option<f64>> {
        match self.present(key) {
            None => Ok(None),
            Some(v) => v
                .as_f64()
                .map(Some)
                .ok_or_else(|| self.wrong(key, "a number", v)),
        }
    }

    /// A LayerNorm epsilon: a finite number >= 0 (a negative one turns outputs into NaN).
    pub(crate) fn opt_eps(&self, key: &str) -> Result<Option<f64>> {
        match self.opt_f64(key)? {
            Some(eps) if !(eps.is_finite() && eps >= 0.0) => Err(Error::config(
                self.file,
                format!("`{key}` is {eps}; expected a small non-negative number such as 1e-12"),
            )),
            other => Ok(other),
        }
    }

    pub(crate) fn opt_bool(&self, key: &str) -> Result<Option<bool>> {
        match self.present(key) {
            None => Ok(None),
            Some(v) => v
                .as_bool()
                .map(Some)
                .ok_or_else(|| self.wrong(key, "true or false", v)),
        }
    }

    pub(crate) fn opt_str(&self, key: &str) -> Result<Option<&'a str>> {
        match self.present(key) {
            None => Ok(None),
            Some(v) => v
                .as_str()
                .map(Some)
                .ok_or_else(|| self.wrong(key, "a string", v)),
        }
    }

    pub(crate) fn opt_strings(&self, key: &str) -> Result<Option<Vec<String>>> {
        match self.present(key) {
            None => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| {
                    item.as_str()
                        .map(String::from)
                        .ok_or_else(|| self.wrong(key, "a list of strings", item))
                })
                .collect::<Result<Vec<_>>>()
                .map(Some),
            Some(v) => Err(self.wrong(key, "a list of strings", v)),
        }
    }

    pub(crate) fn opt_object(&self, key: &str) -> Result<Option<&'a Map<String, Value>>> {
        match self.present(key) {
            None => Ok(None),
            Some(Value::Object(m)) => Ok(Some(m)),
            Some(v) => Err(self.wrong(key, "an object", v)),
        }
    }
}

impl ColbertSettings {
    /// Reads `config_sentence_transformers.json`; a missing file or key means PyLate's default.
    pub(crate) fn read(source: &Source) -> Result<Self> {
        const FILE: &str = "config_sentence_transformers.json";
        let mut settings = ColbertSettings::default();
        let Some(blob) = source.read_optional(FILE)? else {
            return Ok(settings);
        };
        let map = parse_json_object(FILE, &blob)?;
        let f = Fields::new(FILE, &map);
        if let Some(v) = f.opt_str("query_prefix")? {
            settings.query_prefix = v.to_string();
        }
        if let Some(v) = f.opt_str("document_prefix")? {
            settings.document_prefix = v.to_string();
        }
        if let Some(v) = f.opt_usize("query_length")? {
            settings.query_length = v;
        }
        if let Some(v) = f.opt_usize("document_length")? {
            settings.document_length = v;
        }
        if let Some(v) = f.opt_bool("do_query_expansion")? {
            settings.do_query_expansion = v;
        }
        if let Some(v) = f.opt_bool("attend_to_expansion_tokens")? {
            settings.attend_to_expansion_tokens = v;
        }
        if let Some(v) = f.opt_strings("skiplist_words")? {
            settings.skiplist_words = v;
        }
        Ok(settings)
    }
}

/// The modules of a sentence-transformers pipeline that matter for ColBERT.
#[derive(Debug, Clone)]
pub(crate) struct Modules {
    /// Folder of the Transformer module (`""` for the root).
    pub(crate) transformer: String,
    /// Folders of the Dense modules, in the order they are applied.
    pub(crate) dense: Vec<String>,
}

impl Modules {
    pub(crate) fn read(source: &Source) -> Result<Self> {
        const FILE: &str = "modules.json";
        let blob = source.read(
            FILE,
            "a PyLate model folder lists its Transformer and Dense modules there",
        )?;
        let list: Vec<Value> = match serde_json::from_slice::<Value>(&blob) {
            Ok(Value::Array(items)) => items,
            Ok(other) => {
                return Err(Error::config(
                    FILE,
                    format!(
                        "expected a JSON array of modules, found {}",
                        json_kind(&other)
                    ),
                ))
            }
            Err(e) => return Err(Error::config(FILE, format!("not valid JSON: {e}"))),
        };
        let mut entries = Vec::with_capacity(list.len());
        for (pos, item) in list.iter().enumerate() {
            let Value::Object(obj) = item else {
                return Err(Error::config(
                    FILE,
                    format!(
                        "entry {pos} is {}; expected an object with `type` and `path`",
                        json_kind(item)
                    ),
                ));
            };
            let f = Fields::new(FILE, obj);
            let kind = f
                .opt_str("type")?
                .ok_or_else(|| Error::config(FILE, format!("entry {pos} has no `type`")))?;
            let path = f.opt_str("path")?.unwrap_or("").to_string();
            let idx = f.opt_usize("idx")?.unwrap_or(pos);
            entries.push((idx, kind.to_string(), path));
        }
        entries.sort_by_key(|e| e.0);
        let mut transformer = None;
        let mut dense = Vec::new();
        for (_, kind, path) in entries {
            let short = kind.rsplit('.').next().unwrap_or(&kind);
            match short {
                "Transformer" => {
                    if transformer.is_some() {
                        return Err(Error::config(FILE, "more than one Transformer module; expected exactly one"));
                    }
                    if !dense.is_empty() {
                        return Err(Error::config(FILE, "a Dense module comes before the Transformer; expected the Transformer first"));
                    }
                    transformer = Some(path);
                }
                "Dense" => {
                    if transformer.is_none() {
                        return Err(Error::config(FILE, "a Dense module comes before the Transformer; expected the Transformer first"));
                    }
                    dense.push(path);
                }
                // Pooling and normalisation modules play no part in ColBERT's token outputs.
                "Pooling" | "Normalize" => {}
                _ => {
                    return Err(Error::config(
                        FILE,
                        format!("unsupported module type {kind:?}; expected a Transformer followed by Dense modules"),
                    ))
                }
            }
        }
        let transformer = transformer.ok_or_else(|| {
            Error::config(
                FILE,
                "no Transformer module; expected one (sentence_transformers.models.Transformer)",
            )
        })?;
        Ok(Modules { transformer, dense })
    }
}
