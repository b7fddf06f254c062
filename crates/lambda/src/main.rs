//! AWS Lambda function (custom runtime `provided.al2023`, binary `bootstrap`) that encodes
//! queries and documents with latebird and scores or ranks them. The model is loaded once per
//! container, at init, from `LATEBIRD_MODEL` with the settings of `LATEBIRD_SETTINGS`. This is the Runtime API loop only: every event is
//! answered by the contract library `latebird_service` (crates/service), which the Python
//! handler runs too. Request and response schema: README.md.

use std::time::Instant;

use lambda_runtime::layers::TracingLayer;
use lambda_runtime::tower::util::MapRequestLayer;
use lambda_runtime::{service_fn, LambdaEvent, LambdaInvocation, Runtime};
use latebird::ColBERT;
use latebird_service::Limits;
use serde_json::value::RawValue;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    let start = Instant::now();
    let env = |name: &str| std::env::var(name).ok();
    let folder = latebird_service::model_folder(env);
    let (limits, options) = match (Limits::from_env(), latebird_service::options(env)) {
        (Ok(limits), Ok(options)) => (limits, options),
        (Err(err), _) | (_, Err(err)) => {
            eprintln!("latebird-lambda: {err}");
            std::process::exit(1);
        }
    };
    let model = match ColBERT::from_folder(&folder, options) {
        Ok(model) => model,
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
    let (model, limits) = (&model, &limits);
    let function = service_fn(
        move |event: LambdaEvent<Result<String, Vec<u8>>>| async move {
            let event = match &event.payload {
                Ok(text) => text.as_bytes(),
                Err(bytes) => bytes.as_slice(),
            };
            let response = latebird_service::handle(model, limits, event);
            // The answer is JSON text already: returned as it is, not parsed again.
            Ok::<Box<RawValue>, lambda_runtime::Error>(RawValue::from_string(response.body_json)?)
        },
    );
    // What lambda_runtime::run does, plus `event_as_text` ahead of the runtime's own parsing.
    Runtime::new(function)
        .layer(TracingLayer::new())
        .layer(MapRequestLayer::new(event_as_text))
        .run()
        .await
}

/// Hands the event to the contract as it came: its text (`{"Ok": text}`), or its bytes when
/// they are not UTF-8 (`{"Err": [bytes]}`), so that an event serde_json cannot read reaches
/// the contract, which answers it with a 400, instead of failing the invocation in the runtime.
fn event_as_text(mut invocation: LambdaInvocation) -> LambdaInvocation {
    let event: Result<&str, &[u8]> =
        std::str::from_utf8(&invocation.body).map_err(|_| invocation.body.as_ref());
    invocation.body = serde_json::to_vec(&event)
        .expect("a string or bytes serialize")
        .into();
    invocation
}
