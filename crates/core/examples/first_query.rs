//! Cold start without Python: loads a model folder, encodes one query and prints, as one JSON
//! line, the wall-clock time (Unix seconds) at which the query's embedding was ready, with the
//! load and query times measured inside the process. The benchmark spawns it and subtracts the
//! spawn time, so that process start-up counts (a Rust Lambda function or CLI starts this way).
//!
//!   cargo run --release --example first_query -- MODEL_DIR [float32|bfloat16|int8]

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use latebird::{ColBERT, InputKind, Options, Precision};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let Some(dir) = args.get(1) else {
        eprintln!("usage: first_query MODEL_DIR [float32|bfloat16|int8]");
        std::process::exit(2);
    };
    let precision = match args.get(2) {
        Some(name) => Some(Precision::from_name(name).ok_or_else(|| {
            format!("unknown precision {name:?}; expected float32, bfloat16, int8 or float16")
        })?),
        None => None,
    };
    let start = Instant::now();
    let model = ColBERT::from_folder(
        dir,
        Options {
            precision,
            ..Options::default()
        },
    )?;
    let loaded = start.elapsed();
    let out = model.encode(&["what is late interaction retrieval?"], InputKind::Query)?;
    let done = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs_f64();
    let total = start.elapsed();
    println!(
        "{{\"first_query_unix\": {done:.6}, \"load_ms\": {:.3}, \"query_ms\": {:.3}, \"rows\": {}}}",
        loaded.as_secs_f64() * 1e3,
        (total - loaded).as_secs_f64() * 1e3,
        out[0].rows
    );
    Ok(())
}
