//! The settings a caller may override, defined once for every front end.
//!
//! [`Overrides`] is the one list of user-overridable settings. Python keyword arguments,
//! JavaScript option objects and JSON settings all become a [`serde_json`] map and go through
//! [`Overrides::from_map`], which checks the keys and the values (types and ranges) once,
//! with messages that name the setting as the caller spells it ([`Case`]). The effective
//! settings go back out through [`ColbertSettings::to_map`], in the same spelling.

use std::sync::OnceLock;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::config::{ColbertSettings, MAX_CONFIG_INTEGER};
use crate::device::DeviceSpec;
use crate::error::{Error, Result};
use crate::precision::Precision;

/// How a front end spells setting and argument names: `Snake` (`query_length`: Rust,
/// Python, JSON settings and requests) or `Camel` (`queryLength`: JavaScript).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Case {
    /// `query_length`, `skiplist_words[0]`.
    Snake,
    /// `queryLength`, `skiplistWords[0]`.
    Camel,
}

impl Case {
    /// `name`, a snake_case name (possibly followed by an index or a field such as `[0]`),
    /// spelt in this case: `Camel` drops each `_` and capitalises the letter after it.
    pub fn spell(self, name: &str) -> String {
        match self {
            Case::Snake => name.to_string(),
            Case::Camel => {
                let mut out = String::with_capacity(name.len());
                let mut upper = false;
                for c in name.chars() {
                    if c == '_' && !out.is_empty() {
                        upper = true;
                    } else if upper {
                        out.extend(c.to_uppercase());
                        upper = false;
                    } else {
                        out.push(c);
                    }
                }
                out
            }
        }
    }
}

/// Overrides of what a model folder's `config_sentence_transformers.json` says (PyLate's
/// `models.ColBERT` arguments), the default batch size and the precision; `None` keeps the
/// folder's value.
///
/// This is the single definition of the settings a caller may override: every front end
/// reads them with [`Overrides::from_map`] (unknown keys are refused, values are checked
/// here), and [`crate::Options::with_overrides`] applies them. Adding a setting means a field
/// here (with its checking function), in [`ColbertSettings`] (and its reading from the model
/// folder), in [`crate::Options`], and a line in [`Overrides::apply`] and
/// [`crate::Options::overrides`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Overrides {
    /// Query length in tokens, prefix and special tokens included (1 to 2^28).
    #[serde(default, deserialize_with = "count")]
    pub query_length: Option<usize>,
    /// Maximum document length in tokens, prefix and special tokens included (1 to 2^28).
    #[serde(default, deserialize_with = "count")]
    pub document_length: Option<usize>,
    /// Prefix token inserted after the first special token of queries (`""`: none).
    #[serde(default, deserialize_with = "text")]
    pub query_prefix: Option<String>,
    /// Prefix token inserted after the first special token of documents (`""`: none).
    #[serde(default, deserialize_with = "text")]
    pub document_prefix: Option<String>,
    /// Pad queries with MASK tokens to `query_length` and keep every row.
    #[serde(default, deserialize_with = "flag")]
    pub do_query_expansion: Option<bool>,
    /// Let the model attend to the expansion tokens.
    #[serde(default, deserialize_with = "flag")]
    pub attend_to_expansion_tokens: Option<bool>,
    /// Words whose rows are dropped from document outputs.
    #[serde(default, deserialize_with = "words")]
    pub skiplist_words: Option<Vec<String>>,
    /// Texts per forward pass when an encode call gives no batch size (1 to 2^28).
    #[serde(default, deserialize_with = "count")]
    pub batch_size: Option<usize>,
    /// The arithmetic of the linear layers, `"float32"`, `"bfloat16"` or `"int8"`
    /// ([`Precision`]); unset: as the model folder stores its weights.
    #[serde(default, deserialize_with = "precision")]
    pub precision: Option<Precision>,
    /// Where the model runs: `"cpu"`, `"cuda"`, `"cuda:N"`, `"mps"`, `"metal"` or `"metal:N"`
    /// ([`DeviceSpec`]); unset: the CPU.
    #[serde(default, deserialize_with = "device")]
    pub device: Option<DeviceSpec>,
}

impl Overrides {
    /// The setting names, in declaration order, spelt in `case`.
    pub fn keys(case: Case) -> Vec<String> {
        fields().iter().map(|f| case.spell(f)).collect()
    }

    /// Reads overrides from a map of setting names (spelt in `case`) to values; a `null`
    /// value keeps the model's setting. An unknown key, a value of the wrong type or out of
    /// range is an [`Error::InvalidArgument`] naming the key as the caller spelt it (and, for
    /// an unknown key, listing the accepted ones).
    pub fn from_map(map: &Map<String, Value>, case: Case) -> Result<Overrides> {
        let mut snake = Map::with_capacity(map.len());
        for (key, value) in map {
            let Some(field) = fields().iter().find(|f| case.spell(f) == *key) else {
                return Err(Error::argument(
                    key.as_str(),
                    format!(
                        "unknown setting; expected one of {}",
                        Overrides::keys(case).join(", ")
                    ),
                ));
            };
            // One key at a time, so that an error names the setting it is about.
            let one = Map::from_iter([(field.to_string(), value.clone())]);
            Overrides::deserialize(Value::Object(one))
                .map_err(|e| Error::argument(key.as_str(), e.to_string()))?;
            snake.insert(field.to_string(), value.clone());
        }
        Overrides::deserialize(Value::Object(snake))
            .map_err(|e| Error::argument("settings", e.to_string()))
    }

    /// `settings` with the overridden values replaced (`batch_size` is not a setting of the
    /// model folder; [`crate::Options::with_overrides`] takes it).
    pub fn apply(&self, mut settings: ColbertSettings) -> ColbertSettings {
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

impl ColbertSettings {
    /// The settings as a map of names spelt in `case` to JSON values (what the Python
    /// `settings` dict and the JavaScript `settings` object show).
    pub fn to_map(&self, case: Case) -> Map<String, Value> {
        // A struct of strings, integers and booleans always serialises to an object.
        match serde_json::to_value(self) {
            Ok(Value::Object(map)) => map.into_iter().map(|(k, v)| (case.spell(&k), v)).collect(),
            _ => Map::new(),
        }
    }
}

/// The field names of [`Overrides`], read once from its derived `Deserialize` (so that the
/// struct is the only list of them).
fn fields() -> &'static [&'static str] {
    static FIELDS: OnceLock<&'static [&'static str]> = OnceLock::new();
    FIELDS.get_or_init(|| {
        let mut seen = None;
        // The probe always fails once it has the names.
        let _ = Overrides::deserialize(FieldProbe(&mut seen));
        seen.unwrap_or(&[])
    })
}

/// A deserializer that only records the field names a struct asks for.
struct FieldProbe<'a>(&'a mut Option<&'static [&'static str]>);

impl<'de> Deserializer<'de> for FieldProbe<'_> {
    type Error = de::value::Error;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
        Err(de::Error::custom("only structs are probed"))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Self::Error> {
        *self.0 = Some(fields);
        Err(de::Error::custom("field names recorded"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

// ---------------------------------------------------------------------------------------------
// The checks of each kind of value: one visitor, told which kind it reads. `null` keeps the
// model's value; errors read "is <what was given>; expected <what the setting takes>".

#[derive(Clone, Copy)]
enum Kind {
    /// An integer from 1 to [`MAX_CONFIG_INTEGER`] (a length or a batch size).
    Count,
    /// A string.
    Text,
    /// `true` or `false`.
    Flag,
    /// A list of strings.
    Words,
}

enum Checked {
    Count(usize),
    Text(String),
    Flag(bool),
    Words(Vec<String>),
}

struct Check(Kind);

impl Check {
    fn refuse<E: de::Error>(&self, found: String) -> E {
        E::custom(format!("{found}; expected {}", Expected(self.0)))
    }
}

struct Expected(Kind);

impl std::fmt::Display for Expected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Kind::Count => write!(f, "an integer from 1 to {MAX_CONFIG_INTEGER}"),
            Kind::Text => f.write_str("a string"),
            Kind::Flag => f.write_str("true or false"),
            Kind::Words => f.write_str("a list of strings"),
        }
    }
}

impl<'de> Visitor<'de> for Check {
    type Value = Option<Checked>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", Expected(self.0))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        match (self.0, usize::try_from(v)) {
            (Kind::Count, Ok(n)) if (1..=MAX_CONFIG_INTEGER).contains(&n) => {
                Ok(Some(Checked::Count(n)))
            }
            _ => Err(self.refuse(format!("is {v}"))),
        }
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        match u64::try_from(v) {
            Ok(n) => self.visit_u64(n),
            Err(_) => Err(self.refuse(format!("is {v}"))),
        }
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        let found = if v.fract() != 0.0 {
            format!("is {v}, not a whole number")
        } else if v.abs() >= 1.8e19 {
            format!("is {v}, far out of range")
        } else {
            format!("is {v:?}, a floating-point number")
        };
        Err(self.refuse(found))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        match self.0 {
            Kind::Text => Ok(Some(Checked::Text(v.to_string()))),
            _ => Err(self.refuse(format!("is the string {v:?}"))),
        }
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        match self.0 {
            Kind::Flag => Ok(Some(Checked::Flag(v))),
            _ => Err(self.refuse(format!("is {v} (a boolean)"))),
        }
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let Kind::Words = self.0 else {
            return Err(self.refuse("is an array (a list)".to_string()));
        };
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(item) = seq.next_element::<Value>()? {
            match item {
                Value::String(s) => out.push(s),
                other => {
                    return Err(self.refuse(format!("has item {} {}", out.len(), describe(&other))))
                }
            }
        }
        Ok(Some(Checked::Words(out)))
    }

    fn visit_map<A: de::MapAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
        Err(self.refuse("is an object (a dict)".to_string()))
    }
}

/// What a JSON value is, for error messages.
fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".to_string(),
        Value::Bool(b) => format!("{b} (a boolean)"),
        Value::Number(n) => format!("{n} (a number)"),
        Value::String(s) => format!("the string {s:?}"),
        Value::Array(_) => "an array (a list)".to_string(),
        Value::Object(_) => "an object (a dict)".to_string(),
    }
}

fn count<'de, D: Deserializer<'de>>(d: D) -> Result<Option<usize>, D::Error> {
    match d.deserialize_any(Check(Kind::Count))? {
        Some(Checked::Count(v)) => Ok(Some(v)),
        _ => Ok(None),
    }
}

fn text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    match d.deserialize_any(Check(Kind::Text))? {
        Some(Checked::Text(v)) => Ok(Some(v)),
        _ => Ok(None),
    }
}

fn precision<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Precision>, D::Error> {
    let Some(name) = text(d)? else {
        return Ok(None);
    };
    Precision::from_name(&name).map(Some).ok_or_else(|| {
        let names: Vec<&str> = Precision::ALL.iter().map(|p| p.name()).collect();
        de::Error::custom(format!(
            "is the string {name:?}; expected one of {}",
            names.join(", ")
        ))
    })
}

fn device<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DeviceSpec>, D::Error> {
    let Some(name) = text(d)? else {
        return Ok(None);
    };
    match DeviceSpec::parse(&name) {
        Ok(spec) => Ok(Some(spec)),
        Err(Error::InvalidArgument { message, .. }) => Err(de::Error::custom(message)),
        Err(other) => Err(de::Error::custom(other)),
    }
}

fn flag<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    match d.deserialize_any(Check(Kind::Flag))? {
        Some(Checked::Flag(v)) => Ok(Some(v)),
        _ => Ok(None),
    }
}

fn words<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    match d.deserialize_any(Check(Kind::Words))? {
        Some(Checked::Words(v)) => Ok(Some(v)),
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_field_list_comes_from_the_struct() {
        assert_eq!(
            Overrides::keys(Case::Snake),
            [
                "query_length",
                "document_length",
                "query_prefix",
                "document_prefix",
                "do_query_expansion",
                "attend_to_expansion_tokens",
                "skiplist_words",
                "batch_size",
                "precision",
                "device"
            ]
        );
        assert_eq!(Overrides::keys(Case::Camel)[5], "attendToExpansionTokens");
    }

    #[test]
    fn devices_are_checked_with_the_setting_named() {
        let map = |v: Value| Map::from_iter([("device".to_string(), v)]);
        let o = Overrides::from_map(&map(Value::from("cuda:2")), Case::Snake).unwrap();
        assert_eq!(o.device, Some(DeviceSpec::Cuda(2)));
        let o = Overrides::from_map(&map(Value::Null), Case::Camel).unwrap();
        assert_eq!(o.device, None);
        for (value, says) in [
            (Value::from("tpu"), "is \"tpu\"; expected \"cpu\""),
            (Value::from(0), "is 0; expected a string"),
            (Value::from("cuda:x"), "not a whole number"),
        ] {
            let text = Overrides::from_map(&map(value), Case::Snake)
                .unwrap_err()
                .to_string();
            assert!(text.starts_with("invalid argument `device`: "), "{text}");
            assert!(text.contains(says), "{text}");
        }
    }

    #[test]
    fn spelling() {
        assert_eq!(Case::Camel.spell("skiplist_words[3]"), "skiplistWords[3]");
        assert_eq!(Case::Camel.spell("k"), "k");
        assert_eq!(Case::Camel.spell("_private_name"), "_privateName");
        assert_eq!(Case::Snake.spell("pool_factor"), "pool_factor");
    }
}
