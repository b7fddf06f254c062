//! Request checking and answering, independent of the Lambda runtime.

use std::time::Instant;

use latebird::{ColBERT, Embeddings, InputKind, Options};
use serde::Deserialize;
use serde_json::{json, Value};

/// Size limits, checked before anything is encoded.
pub struct Limits {
    /// Most texts in one request, queries and documents together (`LATEBIRD_MAX_TEXTS`).
    pub max_texts: usize,
    /// Most characters in one request, all texts together (`LATEBIRD_MAX_CHARS`).
    pub max_chars: usize,
}

impl Limits {
    pub fn from_env() -> Result<Self, String> {
        let read = |name: &str, default: usize| match std::env::var(name) {
            Ok(v) if !v.trim().is_empty() => v
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("{name}={v:?}: expected an integer >= 1")),
            _ => Ok(default),
        };
        Ok(Limits {
            max_texts: read("LATEBIRD_MAX_TEXTS", 1024)?,
            max_chars: read("LATEBIRD_MAX_CHARS", 1_000_000)?,
        })
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

/// An answer that is not a success: HTTP-style status, error type and message.
struct Failure {
    status: u16,
    kind: &'static str,
    message: String,
}

fn bad_request(message: impl Into<String>) -> Failure {
    Failure {
        status: 400,
        kind: "InvalidRequest",
        message: message.into(),
    }
}

pub struct Handler {
    model: ColBERT,
    limits: Limits,
}

impl Handler {
    pub fn load(folder: &str, limits: Limits) -> latebird::Result<Self> {
        let model = ColBERT::from_folder(folder, Options::default())?;
        Ok(Handler { model, limits })
    }

    /// [`Handler::handle`] for an event given as its JSON text: JSON that serde_json cannot
    /// read (a lone surrogate escape such as `"\ud800"`, nesting deeper than 128 levels) is
    /// a bad request like any other, answered with a 400.
    pub fn handle_json(&self, event: &str) -> Value {
        match serde_json::from_str::<Value>(event) {
            Ok(event) => self.handle(event),
            Err(e) => failure_json(&bad_request(format!("the event is not valid JSON: {e}"))),
        }
    }

    /// Answers a direct invocation (the request object itself) or an HTTP event (API Gateway,
    /// function URL: the request in `body`, the answer as an HTTP response).
    pub fn handle(&self, event: Value) -> Value {
        if let Some(body) = http_body(&event) {
            let (status, answer) = match body.and_then(|text| {
                serde_json::from_str::<Value>(&text)
                    .map_err(|e| bad_request(format!("body is not JSON: {e}")))
            }) {
                Ok(request) => {
                    let answer = self.answer(request);
                    let status = answer["statusCode"].as_u64().unwrap_or(200);
                    (status, answer)
                }
                Err(failure) => (u64::from(failure.status), failure_json(&failure)),
            };
            return json!({
                "statusCode": status,
                "headers": {"content-type": "application/json"},
                "body": answer.to_string(),
            });
        }
        self.answer(event)
    }

    fn answer(&self, request: Value) -> Value {
        let start = Instant::now();
        // A bug in the engine answers this request with a 500 and leaves the function serving.
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.run(request)))
            .unwrap_or_else(|payload| {
                Err(internal(latebird::Error::Internal {
                    message: latebird::panic_message(payload.as_ref()),
                }))
            });
        match outcome {
            Ok(mut answer) => {
                answer["statusCode"] = json!(200);
                answer["elapsed_ms"] = json!(start.elapsed().as_secs_f64() * 1e3);
                answer
            }
            Err(failure) => failure_json(&failure),
        }
    }

    fn run(&self, request: Value) -> Result<Value, Failure> {
        if !request.is_object() {
            return Err(bad_request(
                "expected a JSON object {\"queries\": [...], \"documents\": [...], ...}",
            ));
        }
        // The error names the field: "top_k: invalid value: integer `-1`, expected usize".
        let request: Request =
            serde_path_to_error::deserialize(request).map_err(|e| bad_request(e.to_string()))?;
        let queries = request.queries.unwrap_or_default();
        let documents = request.documents.unwrap_or_default();
        let kind = match request.kind {
            Some(kind) => kind,
            None if !queries.is_empty() && !documents.is_empty() => ReturnKind::Ranking,
            None => ReturnKind::Embeddings,
        };
        let texts = queries.len() + documents.len();
        if texts == 0 {
            return Err(bad_request(
                "no texts: give \"queries\" and/or \"documents\"",
            ));
        }
        if kind != ReturnKind::Embeddings && (queries.is_empty() || documents.is_empty()) {
            return Err(bad_request(
                "\"return\": \"scores\" and \"ranking\" need both \"queries\" and \"documents\"",
            ));
        }
        if texts > self.limits.max_texts {
            return Err(Failure {
                status: 413,
                kind: "PayloadTooLarge",
                message: format!(
                    "{texts} texts; at most {} per request (LATEBIRD_MAX_TEXTS)",
                    self.limits.max_texts
                ),
            });
        }
        let chars: usize = queries
            .iter()
            .chain(&documents)
            .map(|t| t.chars().count())
            .sum();
        if chars > self.limits.max_chars {
            return Err(Failure {
                status: 413,
                kind: "PayloadTooLarge",
                message: format!(
                    "{chars} characters of text; at most {} per request (LATEBIRD_MAX_CHARS)",
                    self.limits.max_chars
                ),
            });
        }
        let top_k = request.top_k.unwrap_or(10);
        if top_k == 0 {
            return Err(bad_request("\"top_k\" is 0; expected at least 1"));
        }
        let pool_factor = request.pool_factor.unwrap_or(1);
        if pool_factor == 0 {
            return Err(bad_request(
                "\"pool_factor\" is 0; expected at least 1 (1 keeps every token)",
            ));
        }
        if let Some(ids) = &request.document_ids {
            if ids.len() != documents.len() {
                return Err(bad_request(format!(
                    "\"document_ids\" has {} entries for {} documents",
                    ids.len(),
                    documents.len()
                )));
            }
        }

        let q = self.encode(&queries, InputKind::Query, 1)?;
        let d = self.encode(&documents, InputKind::Document, pool_factor)?;
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
            ReturnKind::Scores => {
                let matrix = latebird::scores(&q, &d).map_err(internal)?;
                answer["scores"] = json!(matrix.to_rows());
            }
            ReturnKind::Ranking => {
                // One score matrix for every query (the documents are checked and packed
                // once), then each row ranked: best first, ties in input order.
                let matrix = latebird::scores(&q, &d).map_err(internal)?;
                let ranking: Vec<Value> = (0..matrix.queries)
                    .map(|qi| {
                        let row = matrix.row(qi).unwrap_or_default();
                        let mut order: Vec<usize> = (0..row.len()).collect();
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
                                    if let Some(ids) = &request.document_ids {
                                        entry["id"] = ids[j].clone();
                                    }
                                    entry
                                })
                                .collect(),
                        )
                    })
                    .collect();
                answer["ranking"] = Value::Array(ranking);
            }
        }
        Ok(answer)
    }

    fn encode(
        &self,
        texts: &[String],
        kind: InputKind,
        pool_factor: usize,
    ) -> Result<Vec<Embeddings>, Failure> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        self.model
            .encode_pooled(
                texts,
                kind,
                self.model.batch_size(),
                pool_factor,
                &mut |_| true,
            )
            .map_err(|e| match e.kind() {
                latebird::ErrorKind::Input => bad_request(e.to_string()),
                _ => internal(e),
            })
    }
}

fn internal(err: latebird::Error) -> Failure {
    Failure {
        status: 500,
        kind: "InternalError",
        message: err.to_string(),
    }
}

/// The 400 answer to an event that cannot be read at all.
pub fn refuse(message: String) -> Value {
    failure_json(&bad_request(message))
}

fn failure_json(failure: &Failure) -> Value {
    json!({
        "statusCode": failure.status,
        "error": {"type": failure.kind, "message": failure.message},
    })
}

fn matrices_json(matrices: &[Embeddings]) -> Value {
    Value::Array(
        matrices
            .iter()
            .map(|m| Value::Array((0..m.rows).map(|i| json!(m.row(i))).collect()))
            .collect(),
    )
}

/// `Some(body)` for an HTTP event (API Gateway v1/v2, function URL), `None` for a direct
/// invocation.
fn http_body(event: &Value) -> Option<Result<String, Failure>> {
    let object = event.as_object()?;
    let is_http = object.contains_key("requestContext") || object.contains_key("httpMethod");
    if !is_http {
        return None;
    }
    let body = object.get("body").and_then(Value::as_str).unwrap_or("");
    if object.get("isBase64Encoded").and_then(Value::as_bool) == Some(true) {
        use base64::Engine;
        return Some(
            base64::engine::general_purpose::STANDARD
                .decode(body)
                .ok()
                .and_then(|bytes| String::from_utf8(bytes).ok())
                .ok_or_else(|| bad_request("body is not base64-encoded UTF-8")),
        );
    }
    Some(Ok(body.to_string()))
}
