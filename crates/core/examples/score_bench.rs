//! Times `latebird::scores` on many queries x many documents.
//!
//! With the files written by `python scripts/make_scoring_references.py --bench`
//! (`/tmp/latebird-bench/{queries,documents,scores}.f32`, or the folder given as the first
//! argument), it scores exactly PyLate's data and compares with PyLate's scores; otherwise it
//! makes random unit rows. Threads: `RAYON_NUM_THREADS` (default: all cores).
//!
//! ```text
//! RAYON_NUM_THREADS=2 cargo run --release --example score_bench
//! ```

use std::path::PathBuf;
use std::time::Instant;

use latebird::{scores, MatrixRef};

const QUERIES: usize = 1000;
const DOCUMENTS: usize = 1000;
const QUERY_ROWS: usize = 32;
const DOCUMENT_ROWS: usize = 180;
const DIM: usize = 128;

fn read_f32(path: &PathBuf) -> Option<Vec<f32>> {
    let bytes = std::fs::read(path).ok()?;
    Some(
        bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
    )
}

fn random_unit_rows(rows: usize, seed: u64) -> Vec<f32> {
    let mut state = seed;
    let mut data: Vec<f32> = (0..rows * DIM)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect();
    for row in data.chunks_exact_mut(DIM) {
        let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
        row.iter_mut().for_each(|v| *v /= norm);
    }
    data
}

fn main() -> latebird::Result<()> {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "/tmp/latebird-bench".to_string()),
    );
    let pylate = (
        read_f32(&dir.join("queries.f32")),
        read_f32(&dir.join("documents.f32")),
        read_f32(&dir.join("scores.f32")),
    );
    let (q, d, reference) = match pylate {
        (Some(q), Some(d), Some(s))
            if q.len() == QUERIES * QUERY_ROWS * DIM
                && d.len() == DOCUMENTS * DOCUMENT_ROWS * DIM
                && s.len() == QUERIES * DOCUMENTS =>
        {
            println!("data: PyLate's, from {}", dir.display());
            (q, d, Some(s))
        }
        _ => {
            println!(
                "data: random unit rows (no PyLate files in {})",
                dir.display()
            );
            (
                random_unit_rows(QUERIES * QUERY_ROWS, 1),
                random_unit_rows(DOCUMENTS * DOCUMENT_ROWS, 2),
                None,
            )
        }
    };
    let queries: Vec<MatrixRef<'_>> = q
        .chunks_exact(QUERY_ROWS * DIM)
        .map(|c| MatrixRef::new(QUERY_ROWS, DIM, c))
        .collect();
    let documents: Vec<MatrixRef<'_>> = d
        .chunks_exact(DOCUMENT_ROWS * DIM)
        .map(|c| MatrixRef::new(DOCUMENT_ROWS, DIM, c))
        .collect();

    // Warm-up on a slice, then the full run.
    scores(&queries[..16], &documents)?;
    let start = Instant::now();
    let matrix = scores(&queries, &documents)?;
    let elapsed = start.elapsed().as_secs_f64();
    let flops = 2.0 * (QUERIES * DOCUMENTS * QUERY_ROWS * DOCUMENT_ROWS * DIM) as f64;
    println!(
        "latebird scores {QUERIES} x {DOCUMENTS} ({QUERY_ROWS} x {DIM} vs {DOCUMENT_ROWS} x {DIM}), \
         {} threads: {elapsed:.2} s ({:.0} GFLOP/s)",
        candle_core::utils::get_num_threads(),
        flops / elapsed / 1e9
    );
    if let Some(reference) = reference {
        let worst = matrix
            .data
            .iter()
            .zip(&reference)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        println!("max |latebird - PyLate| = {worst:.2e}");
    }
    Ok(())
}
