//! AWS Lambda function (custom runtime `provided.al2023`, binary `bootstrap`) that encodes
//! queries and documents with latebird and scores or ranks them. The model is loaded once per
//! container, at init, from `LATEBIRD_MODEL`. Request and response schema: README.md.

mod handler;

use std::time::Instant;

use handler::{Handler, Limits};
use lambda_runtime::layers::TracingLayer;
use lambda_runtime::tower::util::MapRequestLayer;
use lambda_runtime::{service_fn, LambdaEvent, LambdaInvocation, Runtime};
use serde_json::Value;

fn model_folder() -> String {
    if let Ok(path) = std::env::var("LATEBIRD_MODEL") {
        if !path.trim().is_empty() {
            return path;
        }
    }
    // The function package (`model/` beside `bootstrap`), else a layer's `/opt/model`.
    let task_root = std::env::var("LAMBDA_TASK_ROOT").unwrap_or_else(|_| ".".to_string());
    let packaged = std::path::Path::new(&task_root).join("model");
    if packaged.join("modules.json").is_file() {
        return packaged.to_string_lossy().into_owned();
    }
    "/opt/model".to_string()
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    let start = Instant::now();
    let folder = model_folder();
    let limits = match Limits::from_env() {
        Ok(limits) => limits,
        Err(message) => {
            eprintln!("latebird-lambda: {message}");
            std::process::exit(1);
        }
    };
    let handler = match Handler::load(&folder, limits) {
        Ok(handler) => handler,
        Err(err) => {
            // Lambda reports a failed init with this output; no invocation is served.
            eprintln!("latebird-lambda: cannot load the model from {folder}: {err}");
            std::process::exit(1);
        }
    };
    eprintln!(
        "latebird-lambda: model {folder} loaded in {:.1} ms",
        start.elapsed().as_secs_f64() * 1e3
    );
    let handler = &handler;
    let function = service_fn(
        move |event: LambdaEvent<Result<String, String>>| async move {
            let answer = match event.payload {
                Ok(text) => handler.handle_json(&text),
                Err(message) => handler::refuse(message),
            };
            Ok::<Value, lambda_runtime::Error>(answer)
        },
    );
    // What lambda_runtime::run does, plus `event_as_text` ahead of the runtime's own parsing.
    Runtime::new(function)
        .layer(TracingLayer::new())
        .layer(MapRequestLayer::new(event_as_text))
        .run()
        .await
}

/// Hands the event to the handler as its JSON text (`{"Ok": text}`, or `{"Err": why}` when it
/// is not UTF-8), so that an event serde_json cannot read reaches the handler, which answers
/// it with a 400, instead of failing the invocation in the runtime.
fn event_as_text(mut invocation: LambdaInvocation) -> LambdaInvocation {
    let text = std::str::from_utf8(&invocation.body)
        .map_err(|e| format!("the event is not UTF-8 text: {e}"));
    invocation.body = serde_json::to_vec(&text)
        .expect("a string serializes")
        .into();
    invocation
}
