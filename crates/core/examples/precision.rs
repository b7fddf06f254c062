//! Fidelity and speed of each precision against float32, in one run: the same model, texts
//! and thread count. Texts: a JSONL file with "title" (queries) and "abstract" (documents).
//!
//!   cargo run --release --example precision -- MODEL_DIR TEXTS.jsonl [PRECISION ...]
//!
//! For each precision: load time, documents/s (batch 32, best of 3), single-query latency
//! p50 over 50 queries, token cosine with float32 (mean, min over every document row), the
//! MaxSim score error against float32 (|s - s32| / |s32| over every query-document pair: mean,
//! max), the overlap of each query's top 10 documents with float32's (mean over queries), and
//! retrieval with each title's own abstract as its one relevant document (R@1, MRR@10).

use std::time::Instant;

use latebird::{scores, ColBERT, Embeddings, InputKind, Options, Precision};

struct Run {
    precision: Precision,
    load_ms: f64,
    docs_per_s: f64,
    query_p50_ms: f64,
    documents: Vec<Embeddings>,
    queries: Vec<Embeddings>,
}

fn run(
    dir: &str,
    precision: Precision,
    titles: &[String],
    abstracts: &[String],
) -> Result<Run, latebird::Error> {
    let start = Instant::now();
    let options = Options {
        precision: Some(precision),
        ..Options::default()
    };
    let model = ColBERT::from_folder(dir, options)?;
    let load_ms = start.elapsed().as_secs_f64() * 1e3;
    let mut best = f64::MAX;
    let mut documents = Vec::new();
    for _ in 0..3 {
        let start = Instant::now();
        documents = model.encode_with(abstracts, InputKind::Document, 32, &mut |_| true)?;
        best = best.min(start.elapsed().as_secs_f64());
    }
    let mut latencies = Vec::new();
    for title in titles.iter().cycle().take(50) {
        let start = Instant::now();
        model.encode(&[title], InputKind::Query)?;
        latencies.push(start.elapsed().as_secs_f64() * 1e3);
    }
    latencies.sort_by(f64::total_cmp);
    let queries = model.encode(titles, InputKind::Query)?;
    Ok(Run {
        precision,
        load_ms,
        docs_per_s: abstracts.len() as f64 / best,
        query_p50_ms: latencies[latencies.len() / 2],
        documents,
        queries,
    })
}

fn top10(matrix: &latebird::ScoreMatrix, q: usize) -> Vec<usize> {
    let row = &matrix.data[q * matrix.documents..(q + 1) * matrix.documents];
    let mut order: Vec<usize> = (0..row.len()).collect();
    order.sort_by(|&a, &b| row[b].total_cmp(&row[a]));
    order.truncate(10);
    order
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: precision MODEL_DIR TEXTS.jsonl [PRECISION ...]");
        std::process::exit(2);
    }
    let mut precisions = vec![Precision::Float32];
    for name in &args[3..] {
        let p = Precision::from_name(name).ok_or_else(|| {
            format!("unknown precision {name:?}; expected float32, bfloat16, int8 or float16")
        })?;
        if !precisions.contains(&p) {
            precisions.push(p);
        }
    }
    let raw = std::fs::read_to_string(&args[2])?;
    let (mut titles, mut abstracts) = (Vec::new(), Vec::new());
    for line in raw.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line)?;
        titles.push(v["title"].as_str().unwrap_or_default().to_string());
        abstracts.push(v["abstract"].as_str().unwrap_or_default().to_string());
    }
    let runs = precisions
        .iter()
        .map(|&p| run(&args[1], p, &titles, &abstracts))
        .collect::<Result<Vec<_>, _>>()?;
    let reference = &runs[0];
    let ref_scores = scores(&reference.queries, &reference.documents)?;
    println!(
        "{} documents, {} queries, {} threads",
        abstracts.len(),
        titles.len(),
        candle_core::utils::get_num_threads()
    );
    println!("| precision | load ms | documents/s | query p50 ms | cosine mean | cosine min | MaxSim error mean | MaxSim error max | top-10 overlap | R@1 | MRR@10 |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in &runs {
        let (mut sum, mut min, mut count) = (0f64, f64::MAX, 0usize);
        for (a, b) in r.documents.iter().zip(&reference.documents) {
            for (x, y) in a.data.chunks_exact(a.dim).zip(b.data.chunks_exact(b.dim)) {
                // Rows are L2-normalised: the dot product is the cosine.
                let cos: f64 = x
                    .iter()
                    .zip(y)
                    .map(|(p, q)| f64::from(*p) * f64::from(*q))
                    .sum();
                sum += cos;
                min = min.min(cos);
                count += 1;
            }
        }
        let matrix = scores(&r.queries, &r.documents)?;
        let overlap: f64 = (0..matrix.queries)
            .map(|q| {
                let mine = top10(&matrix, q);
                let theirs = top10(&ref_scores, q);
                mine.iter().filter(|d| theirs.contains(d)).count() as f64 / 10.0
            })
            .sum::<f64>()
            / matrix.queries.max(1) as f64;
        let (mut err_sum, mut err_max) = (0f64, 0f64);
        for (s, s32) in matrix.data.iter().zip(&ref_scores.data) {
            let err = f64::from((s - s32).abs()) / f64::from(s32.abs()).max(1e-12);
            err_sum += err;
            err_max = err_max.max(err);
        }
        let (mut hits, mut reciprocal) = (0usize, 0f64);
        for q in 0..matrix.queries {
            if let Some(rank) = top10(&matrix, q).iter().position(|&d| d == q) {
                hits += usize::from(rank == 0);
                reciprocal += 1.0 / (rank + 1) as f64;
            }
        }
        let n_queries = matrix.queries.max(1) as f64;
        println!(
            "| {} | {:.0} | {:.1} | {:.2} | {:.5} | {:.5} | {:.2e} | {:.2e} | {:.3} | {:.3} | {:.4} |",
            r.precision,
            r.load_ms,
            r.docs_per_s,
            r.query_p50_ms,
            sum / count.max(1) as f64,
            min,
            err_sum / matrix.data.len().max(1) as f64,
            err_max,
            overlap,
            hits as f64 / n_queries,
            reciprocal / n_queries
        );
    }
    Ok(())
}
