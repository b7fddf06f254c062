//! Batched encoding equals one-by-one encoding, whatever the batch size, the mix of
//! lengths or the number of threads; outputs come back in input order.

mod common;

use common::model_dir;
use latebird::{ColBERT, Embeddings, InputKind, Options};

const TOLERANCE: f32 = 1e-6;
const BATCH_SIZES: [usize; 5] = [1, 3, 8, 32, 64];

// ColBERT can be shared across threads.
const _: fn() = || {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<ColBERT>();
    assert_send_sync::<Embeddings>();
};

/// 37 texts from one word to well past `document_length`, shuffled so that
/// lengths are mixed within every batch, with duplicates.
fn texts() -> Vec<String> {
    let words = [
        "late",
        "interaction",
        "scores",
        "each",
        "query",
        "token",
        "against",
        "every",
        "document",
        "token,",
        "keeping",
        "the",
        "best",
        "match.",
        "Birds",
        "sing",
        "at",
        "dawn;",
        "ColBERT",
        "indexes",
        "passages",
        "quickly!",
    ];
    let sentence = |n: usize, offset: usize| -> String {
        (0..n)
            .map(|i| words[(i * 7 + offset) % words.len()])
            .collect::<Vec<_>>()
            .join(" ")
    };
    let lengths = [
        1, 250, 3, 17, 2, 90, 400, 5, 1, 33, 8, 120, 64, 4, 179, 11, 2, 300, 25, 6, 45, 1, 15, 200,
        9, 70, 3, 13, 150, 7, 28, 2, 600,
    ];
    let mut texts: Vec<String> = lengths
        .iter()
        .enumerate()
        .map(|(i, &n)| sentence(n, i))
        .collect();
    // Edge texts and duplicates.
    texts.push(String::new());
    texts.push(texts[1].clone());
    texts.push(texts[3].clone());
    texts.push("  ".into());
    assert_eq!(texts.len(), 37);
    texts
}

fn max_diff(a: &Embeddings, b: &Embeddings) -> f32 {
    assert_eq!((a.rows, a.dim), (b.rows, b.dim), "shapes differ");
    a.data
        .iter()
        .zip(&b.data)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn one_by_one(model: &ColBERT, texts: &[String], kind: InputKind) -> Vec<Embeddings> {
    texts
        .iter()
        .map(|t| {
            let mut out = model.encode(&[t], kind).unwrap();
            assert_eq!(out.len(), 1);
            out.remove(0)
        })
        .collect()
}

/// The model under test; MiniLM (the larger) gets shorter lengths to keep the tests fast
/// in debug builds, still well below the longest texts.
fn load(name: &str) -> ColBERT {
    let minilm = name == "minilm-colbert";
    let options = Options {
        query_length: minilm.then_some(16),
        document_length: minilm.then_some(40),
        device: common::test_device(),
        ..Options::default()
    };
    ColBERT::from_folder(model_dir(name), options).unwrap()
}

fn check_batch_sizes(name: &str) {
    let model = load(name);
    let texts = texts();
    for kind in [InputKind::Query, InputKind::Document] {
        let single = one_by_one(&model, &texts, kind);
        // Output order is input order: each output has the shape its own text gives.
        for (text, out) in texts.iter().zip(&single) {
            let tokens = model.tokenize(text, kind).unwrap();
            assert_eq!(out.rows, tokens.kept_rows(), "{name} {kind:?} {text:?}");
            assert_eq!(out.dim, model.dim());
        }
        // The lengths really are mixed: short queries and documents cut at document_length.
        if kind == InputKind::Document {
            let rows: Vec<usize> = single.iter().map(|e| e.rows).collect();
            assert!(rows.iter().any(|&r| r <= 4), "{name}: {rows:?}");
            assert!(
                texts
                    .iter()
                    .any(|t| model.tokenize(t, kind).unwrap().ids.len()
                        == model.settings().document_length),
                "{name}: no text reaches document_length"
            );
        }
        for batch_size in BATCH_SIZES {
            let mut progress = Vec::new();
            let batched = model
                .encode_with(&texts, kind, batch_size, &mut |done| {
                    progress.push(done);
                    true
                })
                .unwrap();
            assert_eq!(batched.len(), texts.len());
            assert_eq!(progress.len(), texts.len().div_ceil(batch_size));
            assert_eq!(progress.last(), Some(&texts.len()));
            for (i, (a, b)) in batched.iter().zip(&single).enumerate() {
                let diff = max_diff(a, b);
                assert!(
                    diff <= TOLERANCE,
                    "{name} {kind:?} batch size {batch_size} text {i}: differs by {diff}"
                );
            }
            // Duplicates give the same output within one call (to the batching tolerance: a
            // blocked matmul may round rows at different positions of a batch differently).
            for (dup, original) in [(34, 1), (35, 3), (36, 33)] {
                let (a, b) = (&batched[dup], &batched[original]);
                assert_eq!(
                    (a.rows, a.dim),
                    (b.rows, b.dim),
                    "{name} {kind:?} {batch_size}"
                );
                assert!(
                    max_diff(a, b) <= TOLERANCE,
                    "{name} {kind:?} {batch_size}: duplicate {dup} differs from {original}"
                );
            }
        }
    }
}

#[test]
fn batch_size_does_not_change_bert_outputs() {
    check_batch_sizes("minilm-colbert");
}

#[test]
fn batch_size_does_not_change_modernbert_outputs() {
    check_batch_sizes("modernbert-v4");
}

#[test]
fn many_more_texts_than_the_batch_size() {
    let options = Options {
        batch_size: 2,
        device: common::test_device(),
        ..Options::default()
    };
    let model = ColBERT::from_folder(model_dir("modernbert-v4"), options).unwrap();
    let texts: Vec<String> = (0..101)
        .map(|i| vec!["word"; (i * 13) % 97 + 1].join(" "))
        .collect();
    let out = model.encode(&texts, InputKind::Document).unwrap();
    assert_eq!(out.len(), texts.len());
    for (text, e) in texts.iter().zip(&out) {
        let tokens = model.tokenize(text, InputKind::Document).unwrap();
        assert_eq!(e.rows, tokens.kept_rows());
    }
}

#[test]
fn encoding_from_two_threads() {
    for name in ["modernbert-v4", "minilm-colbert"] {
        let model = load(name);
        let texts = texts();
        let expected_q = model.encode(&texts, InputKind::Query).unwrap();
        let expected_d = model.encode(&texts, InputKind::Document).unwrap();
        let (q, d) = std::thread::scope(|s| {
            let q = s.spawn(|| model.encode_with(&texts, InputKind::Query, 5, &mut |_| true));
            let d = s.spawn(|| model.encode_with(&texts, InputKind::Document, 7, &mut |_| true));
            (q.join().unwrap().unwrap(), d.join().unwrap().unwrap())
        });
        for (a, b) in q.iter().zip(&expected_q).chain(d.iter().zip(&expected_d)) {
            assert!(max_diff(a, b) <= TOLERANCE, "{name}");
        }
    }
}
