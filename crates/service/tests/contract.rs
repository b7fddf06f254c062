//! The Lambda contract through its one entry point, `handle`: request checking and its
//! messages, limits, answers (scores, rankings, embeddings, pooling) and HTTP events.

use std::path::Path;
use std::sync::OnceLock;

use latebird::{ColBERT, InputKind, Options};
use latebird_service::{handle, Error, Limits, Response};
use serde_json::{json, Value};

const QUERIES: [&str; 2] = ["what is late interaction?", "capital of france"];
const DOCUMENTS: [&str; 3] = [
    "ColBERT keeps one vector per token and scores with MaxSim.",
    "Paris is the capital and largest city of France.",
    "Cats purr when they are content.",
];

fn model() -> &'static ColBERT {
    static MODEL: OnceLock<ColBERT> = OnceLock::new();
    MODEL.get_or_init(|| {
        let folder =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/models/modernbert-v4");
        ColBERT::from_folder(folder, Options::default()).expect("the committed fixture model")
    })
}

const LIMITS: Limits = Limits {
    max_texts: 8,
    max_chars: 400,
};

fn call(event: &Value) -> (u16, Value) {
    let response = handle(model(), &LIMITS, event.to_string().as_bytes());
    let answer: Value = serde_json::from_str(&response.body_json).expect("the answer is JSON");
    assert_eq!(answer["statusCode"], json!(response.status), "{answer}");
    (response.status, answer)
}

fn ok(event: Value) -> Value {
    let (status, answer) = call(&event);
    assert_eq!(status, 200, "{event} -> {answer}");
    assert!(answer["elapsed_ms"].as_f64().is_some_and(|ms| ms >= 0.0));
    answer
}

/// Asserts the answer to `event` is an error of `status` and `kind` whose message holds
/// `needle`; returns the message.
fn refused(event: Value, status: u16, kind: &str, needle: &str) -> String {
    let (got, answer) = call(&event);
    assert_eq!(got, status, "{event} -> {answer}");
    assert_eq!(answer["error"]["type"], kind, "{event} -> {answer}");
    let message = answer["error"]["message"].as_str().expect("a message");
    assert!(
        message.contains(needle),
        "{event}: {message:?} lacks {needle:?}"
    );
    assert_eq!(answer.as_object().map(|o| o.len()), Some(2), "{answer}");
    message.to_string()
}

fn bad(event: Value, needle: &str) -> String {
    refused(event, 400, "InvalidRequest", needle)
}

fn request(extra: Value) -> Value {
    let mut event = json!({"queries": QUERIES, "documents": DOCUMENTS});
    for (key, value) in extra.as_object().expect("an object") {
        event[key] = value.clone();
    }
    event
}

fn scores() -> Vec<Vec<f32>> {
    let q = model().encode(&QUERIES, InputKind::Query).unwrap();
    let d = model().encode(&DOCUMENTS, InputKind::Document).unwrap();
    latebird::scores(&q, &d).unwrap().to_rows()
}

fn floats(value: &Value) -> Vec<f32> {
    value
        .as_array()
        .expect("an array")
        .iter()
        .map(|v| v.as_f64().expect("a number") as f32)
        .collect()
}

#[test]
fn unreadable_events() {
    for (raw, needle) in [
        (
            &b"{not json"[..],
            "the event is not valid JSON: key must be a string",
        ),
        (b"", "the event is not valid JSON: EOF"),
        (
            b"{\"queries\": [\"\\ud800\"]}",
            "the event is not valid JSON",
        ),
        (b"{\"queries\": [\"\xff\"]}", "the event is not UTF-8 text"),
    ] {
        let response = handle(model(), &LIMITS, raw);
        assert_eq!(response.status, 400);
        let answer: Value = serde_json::from_str(&response.body_json).unwrap();
        assert_eq!(answer["error"]["type"], "InvalidRequest");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains(needle), "{message:?} lacks {needle:?}");
    }
    let deep = "[".repeat(200) + &"]".repeat(200);
    let response = handle(model(), &LIMITS, deep.as_bytes());
    assert_eq!(response.status, 400);
    assert!(response.body_json.contains("recursion limit exceeded"));
}

#[test]
fn error_body_is_exact() {
    // What both runtimes return, byte for byte: keys in order, no spaces.
    let response = handle(model(), &LIMITS, b"[1, 2]");
    assert_eq!(
        response,
        Response {
            status: 400,
            body_json: r#"{"error":{"message":"expected a JSON object {\"queries\": [...], \"documents\": [...], ...}","type":"InvalidRequest"},"statusCode":400}"#
                .to_string(),
        }
    );
}

#[test]
fn not_an_object() {
    for event in [json!([1, 2]), json!("rank these"), json!(42), json!(null)] {
        bad(event, "expected a JSON object");
    }
}

#[test]
fn unknown_field() {
    let message = bad(
        json!({"queries": QUERIES, "documnets": DOCUMENTS}),
        "unknown field `documnets`",
    );
    assert!(
        message.contains("expected one of `queries`, `documents`"),
        "{message}"
    );
}

#[test]
fn wrong_types_name_the_field() {
    let cases = [
        (
            json!({"queries": "cats"}),
            "queries: invalid type: string \"cats\"",
        ),
        (
            json!({"queries": [1]}),
            "queries[0]: invalid type: integer `1`",
        ),
        (
            json!({"documents": {"a": 1}}),
            "documents: invalid type: map",
        ),
        (
            request(json!({"top_k": -1})),
            "top_k: invalid value: integer `-1`",
        ),
        (
            request(json!({"top_k": 1e30})),
            "top_k: invalid type: floating point",
        ),
        (
            request(json!({"top_k": 2.5})),
            "top_k: invalid type: floating point `2.5`",
        ),
        (
            request(json!({"top_k": true})),
            "top_k: invalid type: boolean",
        ),
        (
            request(json!({"pool_factor": "3"})),
            "pool_factor: invalid type: string \"3\"",
        ),
        (
            request(json!({"pool_factor": []})),
            "pool_factor: invalid type: sequence",
        ),
        (
            request(json!({"return": "sums"})),
            "return: unknown variant `sums`",
        ),
        (
            request(json!({"return": 5})),
            "return: invalid type: integer `5`",
        ),
        (
            request(json!({"document_ids": "x"})),
            "document_ids: invalid type: string",
        ),
    ];
    for (event, needle) in cases {
        bad(event, needle);
    }
    // Beyond u64: serde_json reads the number as a float.
    let event = format!(
        r#"{{"queries": ["q"], "documents": ["d"], "top_k": {}}}"#,
        "1".repeat(30)
    );
    let response = handle(model(), &LIMITS, event.as_bytes());
    assert_eq!(response.status, 400);
    assert!(response
        .body_json
        .contains("top_k: invalid type: floating point"));
}

#[test]
fn inconsistent_requests() {
    bad(json!({}), "no texts: give \"queries\" and/or \"documents\"");
    bad(json!({"queries": [], "documents": []}), "no texts");
    bad(json!({"queries": null, "documents": null}), "no texts");
    bad(json!({"queries": QUERIES, "return": "scores"}), "need both");
    bad(
        json!({"documents": DOCUMENTS, "return": "ranking"}),
        "need both",
    );
    bad(
        request(json!({"top_k": 0})),
        "\"top_k\" is 0; expected at least 1",
    );
    bad(request(json!({"pool_factor": 0})), "\"pool_factor\" is 0");
    bad(
        request(json!({"document_ids": ["a"]})),
        "\"document_ids\" has 1 entries for 3 documents",
    );
    bad(
        json!({"queries": QUERIES, "document_ids": ["a"]}),
        "\"document_ids\" has 1 entries for 0 documents",
    );
}

#[test]
fn limits() {
    refused(
        json!({"documents": vec!["a"; 9]}),
        413,
        "PayloadTooLarge",
        "9 texts; at most 8 per request (LATEBIRD_MAX_TEXTS)",
    );
    refused(
        json!({"queries": vec!["q"; 4], "documents": vec!["d"; 5]}),
        413,
        "PayloadTooLarge",
        "LATEBIRD_MAX_TEXTS",
    );
    refused(
        json!({"queries": ["q"], "documents": ["y".repeat(400)]}),
        413,
        "PayloadTooLarge",
        "401 characters of text; at most 400 per request (LATEBIRD_MAX_CHARS)",
    );
    // Characters, not bytes: 400 two-byte characters are within the limit.
    ok(json!({"documents": ["é".repeat(400)]}));
    ok(json!({"documents": vec!["a"; 8]}));
    // The limits come before the checks of the other fields.
    refused(
        json!({"documents": vec!["a"; 9], "top_k": 0}),
        413,
        "PayloadTooLarge",
        "LATEBIRD_MAX_TEXTS",
    );
}

#[test]
fn limits_from_the_environment() {
    let vars = |texts: Option<&str>, chars: Option<&str>| {
        let (texts, chars) = (texts.map(String::from), chars.map(String::from));
        Limits::from_vars(move |name| match name {
            "LATEBIRD_MAX_TEXTS" => texts.clone(),
            "LATEBIRD_MAX_CHARS" => chars.clone(),
            _ => None,
        })
    };
    assert_eq!(vars(None, None), Ok(Limits::default()));
    assert_eq!(Limits::default().max_texts, 1024);
    assert_eq!(Limits::default().max_chars, 1_000_000);
    assert_eq!(
        vars(Some(" 12 "), Some("")),
        Ok(Limits {
            max_texts: 12,
            max_chars: 1_000_000
        })
    );
    for value in ["0", "-1", "abc", "1.5"] {
        let err = vars(None, Some(value)).unwrap_err();
        assert!(matches!(err, Error::InvalidLimit { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            format!("LATEBIRD_MAX_CHARS={value:?}: expected an integer >= 1")
        );
    }
}

#[test]
fn scores_are_one_matrix() {
    let answer = ok(request(json!({"return": "scores"})));
    let rows = answer["scores"].as_array().unwrap();
    assert_eq!(rows.len(), QUERIES.len());
    for (got, want) in rows.iter().zip(scores()) {
        assert_eq!(floats(got), want);
    }
    assert_eq!(answer.as_object().unwrap().len(), 3, "{answer}");
}

#[test]
fn ranking_with_ids() {
    let ids = json!(["a", 7, {"k": null}]);
    let answer = ok(request(json!({"top_k": 2, "document_ids": ids})));
    let ranking = answer["ranking"].as_array().unwrap();
    assert_eq!(ranking.len(), QUERIES.len());
    for (entries, row) in ranking.iter().zip(scores()) {
        let entries = entries.as_array().unwrap();
        assert_eq!(entries.len(), 2);
        let mut order: Vec<usize> = (0..row.len()).collect();
        order.sort_by(|&a, &b| row[b].partial_cmp(&row[a]).unwrap());
        for (entry, &j) in entries.iter().zip(&order) {
            assert_eq!(entry["index"], json!(j));
            assert_eq!(entry["score"].as_f64().unwrap() as f32, row[j]);
            assert_eq!(entry["id"], ids[j]);
            assert_eq!(entry.as_object().unwrap().len(), 3);
        }
    }
    // Without ids: no `id`; top_k beyond the documents gives them all; ranking by default.
    let answer = ok(request(json!({"top_k": u64::MAX})));
    for entries in answer["ranking"].as_array().unwrap() {
        let entries = entries.as_array().unwrap();
        assert_eq!(entries.len(), DOCUMENTS.len());
        assert!(entries.iter().all(|e| e.get("id").is_none()));
    }
    let default = ok(request(json!({})));
    assert_eq!(
        default["ranking"].as_array().unwrap()[0]
            .as_array()
            .unwrap()
            .len(),
        3
    );
}

#[test]
fn ranking_ties_keep_input_order() {
    let same = DOCUMENTS[1];
    let answer = ok(
        json!({"queries": ["capital"], "documents": [same, DOCUMENTS[2], same, same],
                           "document_ids": ["w", "x", "y", "z"]}),
    );
    let entries = answer["ranking"][0].as_array().unwrap();
    let ids: Vec<&str> = entries.iter().map(|e| e["id"].as_str().unwrap()).collect();
    let tied: Vec<&str> = ids.iter().copied().filter(|id| *id != "x").collect();
    assert_eq!(tied, ["w", "y", "z"], "{ids:?}");
    assert_eq!(entries[0]["score"], entries[1]["score"]);
}

#[test]
fn embeddings_and_pool_factor() {
    let answer = ok(request(json!({"return": "embeddings", "pool_factor": 2})));
    let model = model();
    let queries = model.encode(&QUERIES, InputKind::Query).unwrap();
    let pooled = model
        .encode_pooled(
            &DOCUMENTS,
            InputKind::Document,
            model.batch_size(),
            2,
            &mut |_| true,
        )
        .unwrap();
    let full = model.encode(&DOCUMENTS, InputKind::Document).unwrap();
    for (name, want) in [
        ("query_embeddings", &queries),
        ("document_embeddings", &pooled),
    ] {
        let got = answer[name].as_array().unwrap();
        assert_eq!(got.len(), want.len(), "{name}");
        for (matrix, w) in got.iter().zip(want) {
            let rows = matrix.as_array().unwrap();
            assert_eq!(rows.len(), w.rows, "{name}");
            for (i, row) in rows.iter().enumerate() {
                assert_eq!(floats(row), w.row(i), "{name} row {i}");
            }
        }
    }
    // Pooling shortened the documents (and only them).
    let rows = |m: &Value| m.as_array().unwrap().len();
    let document_rows: Vec<usize> = answer["document_embeddings"]
        .as_array()
        .unwrap()
        .iter()
        .map(rows)
        .collect();
    assert!(document_rows.iter().zip(&full).all(|(p, f)| *p < f.rows));
    // Only documents (no return given): embeddings, and no query key.
    let answer = ok(json!({"documents": DOCUMENTS}));
    assert!(answer.get("query_embeddings").is_none());
    assert_eq!(answer["document_embeddings"].as_array().unwrap().len(), 3);
    let answer = ok(json!({"queries": QUERIES}));
    assert!(answer.get("document_embeddings").is_none());
}

#[test]
fn http_events() {
    let body = json!({"queries": QUERIES, "documents": DOCUMENTS, "top_k": 1}).to_string();
    let http = |body: Value, base64: bool| {
        json!({"requestContext": {"http": {"method": "POST"}}, "body": body,
               "isBase64Encoded": base64})
    };
    let unwrap = |event: Value| {
        let (status, response) = call(&event);
        assert_eq!(response["headers"]["content-type"], "application/json");
        let answer: Value = serde_json::from_str(response["body"].as_str().unwrap()).unwrap();
        assert_eq!(answer["statusCode"], json!(status));
        (status, answer)
    };
    let (status, answer) = unwrap(http(json!(body), false));
    assert_eq!(status, 200);
    assert_eq!(answer["ranking"][0].as_array().unwrap().len(), 1);
    use base64::Engine;
    let encoded = base64::engine::general_purpose::STANDARD.encode(&body);
    assert_eq!(unwrap(http(json!(encoded), true)).0, 200);
    // API Gateway v1 (`httpMethod`).
    assert_eq!(unwrap(json!({"httpMethod": "POST", "body": body})).0, 200);
    for (event, status, needle) in [
        (http(json!("{not json"), false), 400, "body is not JSON"),
        (http(json!(""), false), 400, "body is not JSON: EOF"),
        (json!({"requestContext": {}}), 400, "body is not JSON: EOF"),
        (
            http(json!(7), false),
            400,
            "body is not JSON: expected a string holding the request, got a number",
        ),
        (
            http(json!("eyJx!!!"), true),
            400,
            "body is not base64-encoded UTF-8",
        ),
        (
            http(json!("//79"), true),
            400,
            "body is not base64-encoded UTF-8",
        ),
        (http(json!("[1, 2]"), false), 400, "expected a JSON object"),
        (
            http(json!(r#"{"queries": ["q"], "nope": 1}"#), false),
            400,
            "unknown field `nope`",
        ),
        (
            http(
                json!(format!(r#"{{"documents": {}}}"#, json!(vec!["a"; 9]))),
                false,
            ),
            413,
            "LATEBIRD_MAX_TEXTS",
        ),
    ] {
        let (got, answer) = unwrap(event.clone());
        assert_eq!(got, status, "{event}");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains(needle), "{message:?} lacks {needle:?}");
    }
}

#[test]
fn errors_map_to_statuses() {
    let cases = [
        (
            Error::InvalidRequest {
                message: "m".into(),
            },
            400,
            "InvalidRequest",
        ),
        (
            Error::PayloadTooLarge {
                message: "m".into(),
            },
            413,
            "PayloadTooLarge",
        ),
        (
            Error::Internal {
                message: "m".into(),
            },
            500,
            "InternalError",
        ),
    ];
    for (err, status, kind) in cases {
        assert_eq!((err.status(), err.error_type()), (status, kind));
        let response = Response::error(&err);
        assert_eq!(response.status, status);
        let answer: Value = serde_json::from_str(&response.body_json).unwrap();
        assert_eq!(
            answer,
            json!({"statusCode": status, "error": {"type": kind, "message": "m"}})
        );
    }
    // An engine input error is the caller's (400); the others are the function's (500).
    let input: Error = latebird::Error::InvalidArgument {
        name: "x".into(),
        message: "bad".into(),
    }
    .into();
    assert_eq!(input.status(), 400);
}

#[test]
fn settings_from_the_environment() {
    let vars = |settings: Option<&str>| {
        let settings = settings.map(String::from);
        latebird_service::options(move |name| match name {
            "LATEBIRD_SETTINGS" => settings.clone(),
            _ => None,
        })
    };
    for unset in [None, Some(""), Some("  ")] {
        let options = vars(unset).unwrap();
        assert_eq!(options.precision, None);
        assert_eq!(options.query_length, None);
    }
    let options = vars(Some(r#"{"precision": "int8", "query_length": 24}"#)).unwrap();
    assert_eq!(options.precision, Some(latebird::Precision::Int8));
    assert_eq!(options.query_length, Some(24));
    for (value, needle) in [
        ("{", "LATEBIRD_SETTINGS is not valid JSON"),
        (
            "[1]",
            "LATEBIRD_SETTINGS is an array; expected a JSON object of settings",
        ),
        (
            "\"int8\"",
            "LATEBIRD_SETTINGS is a string; expected a JSON object",
        ),
        (
            r#"{"precison": "int8"}"#,
            "`precison`: unknown setting; expected one of",
        ),
        (r#"{"queryLength": 3}"#, "`queryLength`: unknown setting"),
        (
            r#"{"precision": "int4"}"#,
            "expected one of float32, bfloat16, int8",
        ),
        (r#"{"query_length": 0}"#, "`query_length`: is 0"),
    ] {
        let err = vars(Some(value)).unwrap_err();
        assert!(matches!(err, Error::InvalidSettings { .. }), "{err:?}");
        assert_eq!(
            (err.status(), err.error_type()),
            (500, "InvalidConfiguration")
        );
        assert!(err.to_string().contains(needle), "{value}: {err}");
    }
}

#[test]
fn model_folder_from_the_environment() {
    let vars = |model: Option<&str>, root: Option<&str>| {
        let (model, root) = (model.map(String::from), root.map(String::from));
        latebird_service::model_folder(move |name| match name {
            "LATEBIRD_MODEL" => model.clone(),
            "LAMBDA_TASK_ROOT" => root.clone(),
            _ => None,
        })
    };
    assert_eq!(vars(Some("/m"), None), "/m");
    assert_eq!(vars(Some(" "), Some("/nowhere")), "/opt/model");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures");
    let packaged = packaged_root(&root);
    assert_eq!(vars(None, Some(&packaged)), format!("{packaged}/model"));
}

/// A folder holding `model/modules.json`: the fixtures folder has `models/`, not `model/`,
/// so one is made under the target directory.
fn packaged_root(fixtures: &Path) -> String {
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("lambda-root");
    let model = root.join("model");
    std::fs::create_dir_all(&model).unwrap();
    std::fs::copy(
        fixtures.join("models/modernbert-v4/modules.json"),
        model.join("modules.json"),
    )
    .unwrap();
    root.to_string_lossy().into_owned()
}
