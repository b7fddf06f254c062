//! The request/response contract of latebird's AWS Lambda functions, with no Lambda runtime in
//! it: the Rust function (`crates/lambda`, its runtime loop) and the Python handler (through
//! the extension, `crates/py`) both answer every event with [`handle`], so they give the same
//! answers and the same errors, byte for byte. Schema: `crates/lambda/README.md`.
//!
//! ```no_run
//! use latebird::{ColBERT, Options};
//! use latebird_service::{handle, Limits};
//!
//! let model = ColBERT::from_folder("model", Options::default())?;
//! let event = br#"{"queries": ["what is late interaction?"], "documents": ["ColBERT."]}"#;
//! let response = handle(&model, &Limits::from_env()?, event);
//! assert_eq!(response.status, 200);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

mod error;

use std::time::Instant;

use latebird::{Case, ColBERT, Embeddings, InputKind, Options, Overrides, ScoreMatrix};
use serde::Deserialize;
use serde_json::{json, Value};

pub use error::Error;

/// Size limits of one request, checked before anything is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most texts in one request, queries and documents together (`LATEBIRD_MAX_TEXTS`).
    pub max_texts: usize,
    /// Most characters (Unicode scalar values) in one request, all texts together
    /// (`LATEBIRD_MAX_CHARS`).
    pub max_chars: usize,
}

impl Default for Limits {
    /// 1024 texts and 1,000,000 characters.
    fn default() -> Self {
        Limits {
            max_texts: 1024,
            max_chars: 1_000_000,
        }
    }
}

impl Limits {
    /// The limits from `LATEBIRD_MAX_TEXTS` and `LATEBIRD_MAX_CHARS`; an unset or blank
    /// variable keeps the default.
    pub fn from_env() -> Result<Self, Error> {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// [`Limits::from_env`] with the variables read by `lookup` (name to value).
    pub fn from_vars(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, Error> {
        let read = |name: &str, default: usize| match lookup(name) {
            Some(value) if !value.trim().is_empty() => value
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| Error::InvalidLimit {
                    name: name.to_string(),
                    value,
                }),
            _ => Ok(default),
        };
        let default = Limits::default();
        Ok(Limits {
            max_texts: read("LATEBIRD_MAX_TEXTS", default.max_texts)?,
            max_chars: read("LATEBIRD_MAX_CHARS", default.max_chars)?,
        })
    }
}

/// The function's model folder, as both runtimes find it at init: `LATEBIRD_MODEL`, else
/// `model/` in the function package (`LAMBDA_TASK_ROOT`) when it holds `modules.json`, else
/// `/opt/model` (a layer). `lookup` reads a variable (`|name| std::env::var(name).ok()`).
pub fn model_folder(lookup: impl Fn(&str) -> Option<String>) -> String {
    if let Some(path) = lookup("LATEBIRD_MODEL") {
        if !path.trim().is_empty() {
            return path;
        }
    }
    let task_root = lookup("LAMBDA_TASK_ROOT").unwrap_or_else(|| ".".to_string());
    let packaged = std::path::Path::new(&task_root).join("model");
    if packaged.join("modules.json").is_file() {
        return packaged.to_string_lossy().into_owned();
    }
    "/opt/model".to_string()
}

/// The engine options of the function: `LATEBIRD_SETTINGS`, a JSON object of the engine's
/// settings overrides in snake_case (`{"precision": "int8", "query_length": 32}`: the keys
/// of [`latebird::Overrides`]); unset or blank keeps the model folder's settings. Bad JSON,
/// an unknown key or a bad value is an [`Error::InvalidSettings`], which fails the init.
pub fn options(lookup: impl Fn(&str) -> Option<String>) -> Result<Options, Error> {
    let Some(text) = lookup("LATEBIRD_SETTINGS").filter(|t| !t.trim().is_empty()) else {
        return Ok(Options::default());
    };
    let invalid = |message: String| Error::InvalidSettings { message };
    let map = match serde_json::from_str::<Value>(&text) {
        Ok(Value::Object(map)) => map,
        Ok(other) => {
            let kind = match other {
                Value::Array(_) => "an array",
                Value::String(_) => "a string",
                Value::Number(_) => "a number",
                Value::Bool(_) => "a boolean",
                _ => "null",
            };
            return Err(invalid(format!(
                "is {kind}; expected a JSON object of settings such as {{\"precision\": \"int8\"}}"
            )));
        }
        Err(e) => return Err(invalid(format!("is not valid JSON: {e}"))),
    };
    let overrides = Overrides::from_map(&map, Case::Snake).map_err(|e| invalid(e.to_string()))?;
    Ok(Options::default().with_overrides(overrides))
}

/// The answer to one event: its status (also the answer's `statusCode`) and the JSON text the
/// function returns (the answer object, or for an HTTP event the HTTP response around it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// 200, or the error's status (400, 413, 500).
    pub status: u16,
    /// The JSON text to return from the invocation.
    pub body_json: String,
}

impl Response {
    /// The answer to an event refused before it could be read (`{"statusCode": ...,
    /// "error": {"type": ..., "message": ...}}`).
    pub fn error(err: &Error) -> Self {
        Response {
            status: err.status(),
            body_json: error_json(err).to_string(),
        }
    }
}

/// Answers one event, given as the bytes of its JSON text: a direct invocation (the request
/// object itself), or an HTTP event (API Gateway v1/v2, function URL: the request as the JSON
/// `body`, the answer wrapped as an HTTP response). Never fails: a bad event, a request over
/// the `limits` or an engine failure (a panic included) is answered with a JSON error.
pub fn handle(model: &ColBERT, limits: &Limits, event: &[u8]) -> Response {
    // JSON that serde_json cannot read (a lone surrogate escape such as "\ud800", nesting
    // deeper than 128 levels) is a bad request like any other.
    let event = match std::str::from_utf8(event) {
        Ok(text) => text,
        Err(e) => {
            return Response::error(&Error::invalid(format!("the event is not UTF-8 text: {e}")))
        }
    };
    let event: Value = match serde_json::from_str(event) {
        Ok(event) => event,
        Err(e) => {
            return Response::error(&Error::invalid(format!("the event is not valid JSON: {e}")))
        }
    };
    let Some(body) = http_body(&event) else {
        let (status, answer) = answer(model, limits, event);
        return Response {
            status,
            body_json: answer.to_string(),
        };
    };
    let request = body.and_then(|text| {
        serde_json::from_str::<Value>(&text)
            .map_err(|e| Error::invalid(format!("body is not JSON: {e}")))
    });
    let (status, answer) = match request {
        Ok(request) => answer(model, limits, request),
        Err(err) => (err.status(), error_json(&err)),
    };
    let response = json!({
        "statusCode": status,
        "headers": {"content-type": "application/json"},
        "body": answer.to_string(),
    });
    Response {
        status,
        body_json: response.to_string(),
    }
}

/// `Some(body)` for an HTTP event (API Gateway v1/v2, function URL), `None` for a direct
/// invocation.
fn http_body(event: &Value) -> Option<Result<String, Error>> {
    let object = event.as_object()?;
    if !(object.contains_key("requestContext") || object.contains_key("httpMethod")) {
        return None;
    }
    let body = match object.get("body") {
        None | Some(Value::Null) => "",
        Some(Value::String(text)) => text,
        Some(other) => {
            return Some(Err(Error::invalid(format!(
                "body is not JSON: expected a string holding the request, got {}",
                json_type(other)
            ))))
        }
    };
    if object.get("isBase64Encoded").and_then(Value::as_bool) == Some(true) {
        use base64::Engine;
        return Some(
            base64::engine::general_purpose::STANDARD
                .decode(body)
                .ok()
                .and_then(|bytes| String::from_utf8(bytes).ok())
                .ok_or_else(|| Error::invalid("body is not base64-encoded UTF-8")),
        );
    }
    Some(Ok(body.to_string()))
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn error_json(err: &Error) -> Value {
    json!({
        "statusCode": err.status(),
        "error": {"type": err.error_type(), "message": err.to_string()},
    })
}

/// The status and answer object of one request.
fn answer(model: &ColBERT, limits: &Limits, request: Value) -> (u16, Value) {
    let start = Instant::now();
    // A bug in the engine answers this request with a 500 and leaves the function serving.
    let outcome =
        latebird::catch_panic(|| Ok(run(model, limits, request))).unwrap_or_else(|panic| {
            Err(Error::Internal {
                message: panic.to_string(),
            })
        });
    match outcome {
        Ok(mut answer) => {
            answer["statusCode"] = json!(200);
            answer["elapsed_ms"] = json!(start.elapsed().as_secs_f64() * 1e3);
            (200, answer)
        }
        Err(err) => (err.status(), error_json(&err)),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Request {
    #[serde(default)]
    queries: Option<Vec<String>>,
    #[serde(default)]
    documents: Option<Vec<String>>,
    #[serde(default)]
    document_ids: Option<Vec<Value>>,
    #[serde(default)]
    top_k: Option<usize>,
    #[serde(default)]
    pool_factor: Option<usize>,
    #[serde(default, rename = "return")]
    kind: Option<ReturnKind>,
}

#[derive(Deserialize, Clone, Copy, PartialEq)]
#[serde(rename_all = "lowercase")]
enum ReturnKind {
    Scores,
    Embeddings,
    Ranking,
}

fn too_large(message: String) -> Error {
    Error::PayloadTooLarge { message }
}

/// Checks a request and computes its answer (without `statusCode` and `elapsed_ms`).
fn run(model: &ColBERT, limits: &Limits, request: Value) -> Result<Value, Error> {
    if !request.is_object() {
        return Err(Error::invalid(
            "expected a JSON object {\"queries\": [...], \"documents\": [...], ...}",
        ));
    }
    // The error names the field: "top_k: invalid value: integer `-1`, expected usize".
    let request: Request =
        serde_path_to_error::deserialize(request).map_err(|e| Error::invalid(e.to_string()))?;
    let queries = request.queries.unwrap_or_default();
    let documents = request.documents.unwrap_or_default();
    let kind = match request.kind {
        Some(kind) => kind,
        None if !queries.is_empty() && !documents.is_empty() => ReturnKind::Ranking,
        None => ReturnKind::Embeddings,
    };
    let texts = queries.len() + documents.len();
    if texts == 0 {
        return Err(Error::invalid(
            "no texts: give \"queries\" and/or \"documents\"",
        ));
    }
    if kind != ReturnKind::Embeddings && (queries.is_empty() || documents.is_empty()) {
        return Err(Error::invalid(
            "\"return\": \"scores\" and \"ranking\" need both \"queries\" and \"documents\"",
        ));
    }
    if texts > limits.max_texts {
        return Err(too_large(format!(
            "{texts} texts; at most {} per request (LATEBIRD_MAX_TEXTS)",
            limits.max_texts
        )));
    }
    let chars: usize = queries
        .iter()
        .chain(&documents)
        .map(|t| t.chars().count())
        .sum();
    if chars > limits.max_chars {
        return Err(too_large(format!(
            "{chars} characters of text; at most {} per request (LATEBIRD_MAX_CHARS)",
            limits.max_chars
        )));
    }
    let top_k = request.top_k.unwrap_or(10);
    if top_k == 0 {
        return Err(Error::invalid("\"top_k\" is 0; expected at least 1"));
    }
    let pool_factor = request.pool_factor.unwrap_or(1);
    if pool_factor == 0 {
        return Err(Error::invalid(
            "\"pool_factor\" is 0; expected at least 1 (1 keeps every token)",
        ));
    }
    if let Some(ids) = &request.document_ids {
        if ids.len() != documents.len() {
            return Err(Error::invalid(format!(
                "\"document_ids\" has {} entries for {} documents",
                ids.len(),
                documents.len()
            )));
        }
    }

    // Pooling applies to documents only; queries keep every token.
    let q = encode(model, &queries, InputKind::Query, 1)?;
    let d = encode(model, &documents, InputKind::Document, pool_factor)?;
    let mut answer = json!({});
    match kind {
        ReturnKind::Embeddings => {
            if !queries.is_empty() {
                answer["query_embeddings"] = matrices_json(&q);
            }
            if !documents.is_empty() {
                answer["document_embeddings"] = matrices_json(&d);
            }
        }
        // One score matrix for every query against every document (the documents are
        // checked and packed once), then read or ranked row by row.
        ReturnKind::Scores => {
            answer["scores"] = json!(score_matrix(&q, &d)?.to_rows());
        }
        ReturnKind::Ranking => {
            let matrix = score_matrix(&q, &d)?;
            answer["ranking"] = ranking(&matrix, top_k, request.document_ids.as_deref());
        }
    }
    Ok(answer)
}

fn encode(
    model: &ColBERT,
    texts: &[String],
    kind: InputKind,
    pool_factor: usize,
) -> Result<Vec<Embeddings>, Error> {
    if texts.is_empty() {
        return Ok(Vec::new());
    }
    // Input errors (a text the tokenizer refuses) are the caller's: 400; the rest are 500s.
    Ok(model.encode_pooled(texts, kind, model.batch_size(), pool_factor, &mut |_| true)?)
}

fn score_matrix(q: &[Embeddings], d: &[Embeddings]) -> Result<ScoreMatrix, Error> {
    // The engine made every matrix itself: a scoring error is its bug, not the caller's.
    latebird::scores(q, d).map_err(|e| Error::Internal {
        message: e.to_string(),
    })
}

/// Per query, the `top_k` best documents (`index`, `score`, and `id` with `ids`), best first;
/// equal scores keep input order.
fn ranking(matrix: &ScoreMatrix, top_k: usize, ids: Option<&[Value]>) -> Value {
    (0..matrix.queries)
        .map(|qi| {
            let row = matrix.row(qi).unwrap_or_default();
            let mut order: Vec<usize> = (0..row.len()).collect();
            // A stable sort: ties stay in input order.
            order.sort_by(|&a, &b| {
                row[b]
                    .partial_cmp(&row[a])
                    .unwrap_or(std::cmp::Ordering::Equal)
            });
            order.truncate(top_k);
            Value::Array(
                order
                    .into_iter()
                    .map(|j| {
                        let mut entry = json!({"index": j, "score": row[j]});
                        if let Some(ids) = ids {
                            entry["id"] = ids[j].clone();
                        }
                        entry
                    })
                    .collect(),
            )
        })
        .collect()
}

fn matrices_json(matrices: &[Embeddings]) -> Value {
    matrices
        .iter()
        .map(|m| Value::Array((0..m.rows).map(|i| json!(m.row(i))).collect()))
        .collect()
}
