//! Parity with PyLate: every committed reference, queries and documents, ids and embeddings.

mod common;

use common::{max_abs_diff, references};
use latebird::InputKind;

const TOLERANCE: f64 = 1e-5;

#[test]
fn tokenization_matches_pylate() {
    for reference in references() {
        let model = reference.load_model(32);
        for (kind, texts, key) in [
            (InputKind::Query, &reference.queries, "query"),
            (InputKind::Document, &reference.documents, "document"),
        ] {
            for (i, text) in texts.iter().enumerate() {
                let tokens = model.tokenize(text, kind).unwrap();
                let (_, ids) = reference.matrix(&format!("{key}_ids.{i}"));
                let (_, mask) = reference.matrix(&format!("{key}_mask.{i}"));
                let ours: Vec<f64> = tokens.ids.iter().map(|&v| v as f64).collect();
                let attention: Vec<f64> = tokens.attention.iter().map(|&v| v as f64).collect();
                assert_eq!(
                    ours, ids,
                    "{} {key} {i} ({text:?}): ids differ",
                    reference.name
                );
                assert_eq!(
                    attention, mask,
                    "{} {key} {i} ({text:?}): attention differs",
                    reference.name
                );
            }
        }
    }
}

#[test]
fn embeddings_match_pylate() {
    let mut report = Vec::new();
    for reference in references() {
        let model = reference.load_model(5);
        let mut worst: f64 = 0.0;
        for (kind, texts, key) in [
            (InputKind::Query, &reference.queries, "query"),
            (InputKind::Document, &reference.documents, "document"),
        ] {
            let outputs = model.encode(texts, kind).unwrap();
            assert_eq!(outputs.len(), texts.len());
            for (i, out) in outputs.iter().enumerate() {
                let (shape, expected) = reference.matrix(&format!("{key}.{i}"));
                assert_eq!(
                    vec![out.rows, out.dim],
                    shape,
                    "{} {key} {i} ({:?}): shape differs from PyLate's",
                    reference.name,
                    texts[i]
                );
                let diff = max_abs_diff(&out.data, expected);
                assert!(
                    diff <= TOLERANCE,
                    "{} {key} {i} ({:?}): max abs difference {diff:e} > {TOLERANCE:e}",
                    reference.name,
                    texts[i]
                );
                worst = worst.max(diff);
            }
        }
        report.push(format!("{}: worst |diff| {worst:.2e}", reference.name));
    }
    println!("{}", report.join("\n"));
}
