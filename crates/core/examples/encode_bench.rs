//! Encodes a text file (one text per line, or JSONL with an "abstract"/"title" field) and
//! reports throughput. Profiling aid; the benchmark proper is scripts/benchmark.py.
//!
//!   cargo run --release --example encode_bench -- MODEL_DIR TEXTS [query|document] [BATCH] [REPEATS] [PRECISION]

use std::time::Instant;

use latebird::{ColBERT, InputKind, Options, Precision};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!(
            "usage: encode_bench MODEL_DIR TEXTS [query|document] [BATCH] [REPEATS] [PRECISION]"
        );
        std::process::exit(2);
    }
    let kind = match args.get(3).map(String::as_str) {
        Some("query") => InputKind::Query,
        _ => InputKind::Document,
    };
    let batch: usize = args.get(4).map_or(Ok(32), |s| s.parse())?;
    let repeats: usize = args.get(5).map_or(Ok(3), |s| s.parse())?;
    let raw = std::fs::read_to_string(&args[2])?;
    let field = if kind == InputKind::Query {
        "title"
    } else {
        "abstract"
    };
    let texts: Vec<String> = raw
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| match serde_json::from_str::<serde_json::Value>(l) {
            Ok(v) if v.is_object() => v[field].as_str().unwrap_or_default().to_string(),
            _ => l.to_string(),
        })
        .collect();
    let start = Instant::now();
    let precision = match args.get(6) {
        Some(name) => Some(Precision::from_name(name).ok_or("unknown precision")?),
        None => None,
    };
    let model = ColBERT::from_folder(
        &args[1],
        Options {
            precision,
            ..Options::default()
        },
    )?;
    println!("load: {:.1} ms", start.elapsed().as_secs_f64() * 1e3);
    for _ in 0..repeats {
        let start = Instant::now();
        let out = model.encode_with(&texts, kind, batch, &mut |_| true)?;
        let secs = start.elapsed().as_secs_f64();
        let rows: usize = out.iter().map(|e| e.rows).sum();
        println!(
            "{} texts, {rows} rows: {:.3} s, {:.1} texts/s",
            texts.len(),
            secs,
            texts.len() as f64 / secs
        );
    }
    Ok(())
}
