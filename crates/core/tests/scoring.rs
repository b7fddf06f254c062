//! MaxSim scoring, reranking, top-k and hierarchical pooling against PyLate
//! (references from scripts/make_scoring_references.py in tests/fixtures/scoring/).

mod common;

use std::collections::HashMap;

use common::tests_dir;

use latebird::{
    maxsim, pool, rerank, scores, top_k, ColBERT, Embeddings, Error, InputKind, MatrixRef, Options,
};

const TOLERANCE: f64 = 1e-5;
const MODELS: [&str; 2] = ["minilm-colbert", "modernbert-v4"];

struct Fixture {
    name: String,
    meta: HashMap<String, String>,
    tensors: HashMap<String, (Vec<usize>, Vec<f64>)>,
}

impl Fixture {
    fn load(name: &str) -> Fixture {
        let path = tests_dir().join(format!("fixtures/scoring/{name}.safetensors"));
        let bytes = std::fs::read(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e}; run scripts/make_scoring_references.py",
                path.display()
            )
        });
        let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).expect("header");
        let meta = meta.metadata().clone().unwrap_or_default();
        let tensors = common::read_tensors(&bytes, name);
        Fixture {
            name: name.to_string(),
            meta,
            tensors,
        }
    }

    fn has(&self, key: &str) -> bool {
        self.tensors.contains_key(key)
    }

    fn values(&self, key: &str) -> &[f64] {
        &self
            .tensors
            .get(key)
            .unwrap_or_else(|| panic!("{}: no tensor {key}", self.name))
            .1
    }

    fn indices(&self, key: &str) -> Vec<usize> {
        self.values(key).iter().map(|&v| v as usize).collect()
    }

    fn matrix(&self, key: &str) -> Embeddings {
        let (shape, values) = self
            .tensors
            .get(key)
            .unwrap_or_else(|| panic!("{}: no tensor {key}", self.name));
        assert_eq!(shape.len(), 2, "{}: {key} is not a matrix", self.name);
        Embeddings {
            rows: shape[0],
            dim: shape[1],
            data: values.iter().map(|&v| v as f32).collect(),
        }
    }

    fn list(&self, prefix: &str) -> Vec<Embeddings> {
        (0..)
            .map(|i| format!("{prefix}.{i}"))
            .take_while(|k| self.has(k))
            .map(|k| self.matrix(&k))
            .collect()
    }
}

fn expect_invalid<T: std::fmt::Debug>(result: latebird::Result<T>, name: &str, needle: &str) {
    let shown = match &result {
        Err(e) => e.to_string(),
        Ok(v) => panic!("expected InvalidArgument `{name}` ({needle}), got Ok({v:?})"),
    };
    match result {
        Err(Error::InvalidArgument { name: got, message }) => {
            assert_eq!(got, name, "wrong argument named in {message:?}");
            assert!(
                message.contains(needle),
                "message {message:?} for `{name}` lacks {needle:?}"
            );
            assert!(shown.contains(name), "{shown}");
        }
        other => panic!("expected InvalidArgument `{name}` ({needle}), got {other:?}"),
    }
}

#[test]
fn scores_match_pylate() {
    for model in MODELS {
        let f = Fixture::load(model);
        let queries = f.list("query");
        let documents = f.list("document");
        assert!(queries.len() > 5 && documents.len() > 5);
        let ours = scores(&queries, &documents).unwrap();
        assert_eq!(
            (ours.queries, ours.documents),
            (queries.len(), documents.len())
        );
        let padded = f.values("scores");
        let unpadded = f.values("scores_unpadded");
        let (mut worst, mut worst_padded, mut raised) = (0f64, 0f64, 0);
        for (q, query) in queries.iter().enumerate() {
            for (d, document) in documents.iter().enumerate() {
                let got = ours.get(q, d).unwrap() as f64;
                let i = q * documents.len() + d;
                // latebird scores the real rows only, as PyLate does for a document alone.
                worst = worst.max((got - unpadded[i]).abs());
                // PyLate's zero padding counts 0 in the maximum: it can only raise a score.
                assert!(got <= padded[i] + TOLERANCE, "{model} q{q} d{d}");
                if (padded[i] - unpadded[i]).abs() <= 1e-6 {
                    worst_padded = worst_padded.max((got - padded[i]).abs());
                } else {
                    raised += 1;
                }
                // The single-pair function gives the same value.
                let single = maxsim(query, MatrixRef::from(document)).unwrap();
                assert_eq!(single, got as f32, "{model} q{q} d{d}: maxsim vs scores");
            }
        }
        eprintln!(
            "{model}: worst |score - PyLate| = {worst:.2e} (unpadded), {worst_padded:.2e} \
             (padded batch, {raised} pairs raised by PyLate's padding excluded)"
        );
        assert!(worst <= TOLERANCE, "{model}: {worst}");
        assert!(worst_padded <= TOLERANCE, "{model}: {worst_padded}");
        let padding: serde_json::Value =
            serde_json::from_str(&f.meta["padding"]).expect("padding metadata");
        assert_eq!(padding["pairs_raised_by_padding"].as_u64(), Some(raised));
    }
}

#[test]
fn rerank_matches_pylate() {
    for model in MODELS {
        let f = Fixture::load(model);
        let queries = f.list("query");
        let documents = f.list("document");
        let mut candidates: Vec<Vec<&Embeddings>> = Vec::new();
        let mut ids: Vec<Vec<i64>> = Vec::new();
        for i in 0..queries.len() {
            let cands = f.indices(&format!("rerank.{i}.candidates"));
            candidates.push(cands.iter().map(|&c| &documents[c]).collect());
            ids.push(
                f.values(&format!("rerank.{i}.input_ids"))
                    .iter()
                    .map(|&v| v as i64)
                    .collect(),
            );
        }
        let ranked = rerank(&queries, &candidates, &ids).unwrap();
        assert_eq!(ranked.len(), queries.len());
        let mut compared = 0;
        for (i, list) in ranked.iter().enumerate() {
            let input_ids = &ids[i];
            let expected_ids: Vec<i64> = f
                .values(&format!("rerank.{i}.ids"))
                .iter()
                .map(|&v| v as i64)
                .collect();
            let expected_scores = f.values(&format!("rerank.{i}.scores"));
            let raised = f.values(&format!("rerank.{i}.raised_by_padding"));
            assert_eq!(list.len(), input_ids.len());
            // Best first, and stable: equal scores keep the input order.
            for w in list.windows(2) {
                assert!(w[0].score >= w[1].score, "{model} query {i}: not sorted");
                if w[0].score == w[1].score {
                    let pos = |id| input_ids.iter().position(|x| *x == id).unwrap();
                    assert!(pos(w[0].id) < pos(w[1].id), "{model} query {i}: tie order");
                }
            }
            // Every id once, with PyLate's score (where its padding did not raise it).
            let ours: HashMap<i64, f32> = list.iter().map(|r| (r.id, r.score)).collect();
            assert_eq!(ours.len(), input_ids.len());
            for ((id, score), raised) in expected_ids.iter().zip(expected_scores).zip(raised) {
                if *raised == 0.0 {
                    let diff = (ours[id] as f64 - score).abs();
                    assert!(diff <= TOLERANCE, "{model} query {i} id {id}: {diff}");
                }
            }
            if raised.iter().all(|&r| r == 0.0) {
                // Same order as PyLate, up to the order inside groups of equal PyLate scores.
                let group = |scores: &[f64], ids: &[i64], k: usize| -> Vec<i64> {
                    let mut g: Vec<i64> = ids
                        .iter()
                        .zip(scores)
                        .filter(|(_, s)| **s == scores[k])
                        .map(|(id, _)| *id)
                        .collect();
                    g.sort();
                    g
                };
                for (k, r) in list.iter().enumerate() {
                    if r.id != expected_ids[k] {
                        let g = group(expected_scores, &expected_ids, k);
                        assert!(g.contains(&r.id), "{model} query {i}: position {k}");
                    }
                }
                compared += 1;
            }
        }
        eprintln!(
            "{model}: {compared} of {} rankings compared in full with PyLate's",
            queries.len()
        );
        assert!(compared >= 3, "{model}: too few rankings compared");
        // Query 0's candidate list holds one document twice: an exact tie, in input order.
        let first = &ranked[0];
        let dup_ids = (ids[0][0], *ids[0].last().unwrap());
        let a = first.iter().position(|r| r.id == dup_ids.0).unwrap();
        let b = first.iter().position(|r| r.id == dup_ids.1).unwrap();
        assert_eq!(first[a].score, first[b].score);
        assert_eq!(b, a + 1, "{model}: the tie is not kept in input order");
    }
}

#[test]
fn top_k_is_the_head_of_the_full_ranking() {
    let f = Fixture::load("modernbert-v4");
    let queries = f.list("query");
    let documents = f.list("document");
    let unpadded = f.values("scores_unpadded");
    let views: Vec<MatrixRef<'_>> = documents.iter().map(MatrixRef::from).collect();
    for (q, query) in queries.iter().enumerate() {
        let all = top_k(query, &views, documents.len() + 10).unwrap();
        assert_eq!(all.len(), documents.len());
        let head = top_k(query, &views, 4).unwrap();
        assert_eq!(head, all[..4].to_vec());
        for r in &all {
            let expected = unpadded[q * documents.len() + r.id];
            assert!((r.score as f64 - expected).abs() <= TOLERANCE);
        }
        for w in all.windows(2) {
            assert!(w[0].score > w[1].score || (w[0].score == w[1].score && w[0].id < w[1].id));
        }
    }
    // Duplicated documents tie and keep their input order.
    let docs = [&documents[3], &documents[0], &documents[3]];
    let ranked = top_k(&queries[0], &docs, 3).unwrap();
    let order: Vec<usize> = ranked.iter().map(|r| r.id).collect();
    let p0 = order.iter().position(|&i| i == 0).unwrap();
    let p2 = order.iter().position(|&i| i == 2).unwrap();
    assert_eq!(p2, p0 + 1);
    assert!(top_k(&queries[0], &[] as &[Embeddings], 3)
        .unwrap()
        .is_empty());
}

/// Pooled outputs equal PyLate's as sets: same count, protected row first, each of our vectors
/// matched to its nearest PyLate vector one to one.
fn assert_same_set(ours: &Embeddings, expected: &Embeddings, what: &str) -> f64 {
    assert_eq!(
        (ours.rows, ours.dim),
        (expected.rows, expected.dim),
        "{what}: shape differs from PyLate's"
    );
    if ours.rows == 0 {
        return 0.0;
    }
    let diff = |a: &[f32], b: &[f32]| {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs() as f64)
            .fold(0.0, f64::max)
    };
    let mut worst = diff(ours.row(0), expected.row(0));
    let mut used = vec![false; expected.rows];
    for i in 1..ours.rows {
        let (j, d) = (1..expected.rows)
            .filter(|&j| !used[j])
            .map(|j| (j, diff(ours.row(i), expected.row(j))))
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .unwrap();
        used[j] = true;
        worst = worst.max(d);
    }
    assert!(worst <= TOLERANCE, "{what}: max abs diff {worst:.3e}");
    worst
}

#[test]
fn pooling_matches_pylate() {
    let mut worst = 0f64;
    let mut cases = 0;
    for model in MODELS {
        let f = Fixture::load(model);
        let documents = f.list("document");
        for factor in [2, 3] {
            for (j, document) in documents.iter().enumerate() {
                let expected = f.matrix(&format!("pool{factor}.{j}"));
                let ours = pool(document, factor).unwrap();
                worst = worst.max(assert_same_set(
                    &ours,
                    &expected,
                    &format!("{model} document {j} pool_factor {factor}"),
                ));
                cases += 1;
            }
        }
    }
    let f = Fixture::load("synthetic");
    for (case, factors) in [("ties", &[2, 3, 4, 7, 13][..]), ("random", &[2, 3, 5][..])] {
        let input = f.matrix(&format!("{case}.input"));
        for &factor in factors {
            let expected = f.matrix(&format!("{case}.pool{factor}"));
            let ours = pool(&input, factor).unwrap();
            worst = worst.max(assert_same_set(
                &ours,
                &expected,
                &format!("{case} pool_factor {factor}"),
            ));
            cases += 1;
        }
    }
    eprintln!("pooling: {cases} cases, worst |pooled - PyLate| = {worst:.2e}");
    // pool_factor 1 and too-short inputs come back unchanged.
    let input = f.matrix("random.input");
    assert_eq!(pool(&input, 1).unwrap(), input);
    let short = Embeddings {
        rows: 2,
        dim: 16,
        data: input.data[..32].to_vec(),
    };
    assert_eq!(pool(&short, 2).unwrap(), short);
    let empty = Embeddings {
        rows: 0,
        dim: 16,
        data: Vec::new(),
    };
    assert_eq!(pool(&empty, 2).unwrap(), empty);
}

#[test]
fn encode_pooled_equals_pool_of_encode() {
    let f = Fixture::load("modernbert-v4");
    let texts: serde_json::Value = serde_json::from_str(&f.meta["texts"]).unwrap();
    let documents: Vec<String> = texts["documents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect();
    let queries: Vec<String> = texts["queries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect();
    let dir = common::model_dir("modernbert-v4");
    let model = ColBERT::from_folder(dir, Options::default()).unwrap();
    // Same batch size on both sides: batching changes the padding and so the last bits.
    let plain = model
        .encode_with(&documents, InputKind::Document, 4, &mut |_| true)
        .unwrap();
    for factor in [2, 3] {
        let mut calls = 0;
        let pooled = model
            .encode_pooled(&documents, InputKind::Document, 4, factor, &mut |_| {
                calls += 1;
                true
            })
            .unwrap();
        assert!(calls > 1);
        let expected: Vec<Embeddings> = plain.iter().map(|e| pool(e, factor).unwrap()).collect();
        assert!(
            pooled == expected,
            "pool_factor {factor}: encode_pooled differs"
        );
        assert!(pooled.iter().zip(&plain).any(|(p, e)| p.rows < e.rows));
    }
    let keep = model
        .encode_pooled(&documents, InputKind::Document, 4, 1, &mut |_| true)
        .unwrap();
    assert!(keep == plain, "pool_factor 1 changed the output");
    // Queries are never pooled: pool_factor 1 leaves them as they are, more is refused
    // (PyLate ignores it; every front end refuses it alike).
    let q = model.encode(&queries, InputKind::Query).unwrap();
    let q_one = model
        .encode_pooled(&queries, InputKind::Query, 8, 1, &mut |_| true)
        .unwrap();
    assert!(q == q_one, "pool_factor 1 changed the queries");
    expect_invalid(
        model.encode_pooled(&queries, InputKind::Query, 8, 2, &mut |_| true),
        "pool_factor",
        "documents only",
    );
    let mut called = false;
    expect_invalid(
        model.encode_pooled(&documents, InputKind::Document, 8, 0, &mut |_| {
            called = true;
            true
        }),
        "pool_factor",
        "is 0",
    );
    assert!(!called, "pool_factor 0 must fail before encoding");
}

#[test]
fn many_by_many_threaded_matches_naive() {
    // Big enough for the threaded path; odd sizes exercise the tile padding.
    let dim = 48;
    let mut seed = 42u64;
    let mut random = |rows: usize| {
        let data: Vec<f32> = (0..rows * dim)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                (seed >> 40) as f32 / (1u64 << 23) as f32 - 1.0
            })
            .collect();
        Embeddings { rows, dim, data }
    };
    let queries: Vec<Embeddings> = (0..9).map(|i| random(20 + i % 5)).collect();
    let documents: Vec<Embeddings> = (0..70).map(|i| random(1 + (i * 7) % 61)).collect();
    let ours = scores(&queries, &documents).unwrap();
    for (q, query) in queries.iter().enumerate() {
        for (d, document) in documents.iter().enumerate() {
            let mut expected = 0f64;
            for i in 0..query.rows {
                let mut best = f64::NEG_INFINITY;
                for j in 0..document.rows {
                    let dot: f64 = query
                        .row(i)
                        .iter()
                        .zip(document.row(j))
                        .map(|(a, b)| *a as f64 * *b as f64)
                        .sum();
                    best = best.max(dot);
                }
                expected += best;
            }
            let got = ours.get(q, d).unwrap() as f64;
            assert!(
                (got - expected).abs() <= 1e-4 * expected.abs().max(1.0),
                "q{q} d{d}: {got} vs {expected}"
            );
        }
    }
    assert_eq!(ours.to_rows().len(), queries.len());
    assert!(ours.get(9, 0).is_none() && ours.get(0, 70).is_none());
    // Empty lists give an empty matrix.
    let empty = scores(&[] as &[Embeddings], &documents).unwrap();
    assert_eq!(
        (empty.queries, empty.documents, empty.data.len()),
        (0, 70, 0)
    );
}

#[test]
fn bad_inputs_are_named() {
    let good = Embeddings {
        rows: 2,
        dim: 3,
        data: vec![0.6, 0.8, 0.0, 0.0, 0.6, 0.8],
    };
    let narrow = Embeddings {
        rows: 1,
        dim: 2,
        data: vec![1.0, 0.0],
    };
    let empty = Embeddings {
        rows: 0,
        dim: 3,
        data: vec![],
    };
    let mut nan = good.clone();
    nan.data[4] = f32::NAN;
    let mut inf = good.clone();
    inf.data[2] = f32::INFINITY;
    let short = MatrixRef::new(2, 3, &good.data[..5]);
    let zero_dim = MatrixRef::new(2, 0, &[]);

    expect_invalid(
        maxsim(&good, &narrow),
        "document",
        "dim 2 but query has dim 3",
    );
    expect_invalid(maxsim(&empty, &good), "query", "0 rows");
    expect_invalid(maxsim(&good, &empty), "document", "0 rows");
    expect_invalid(maxsim(&good, &nan), "document", "row 1, column 1 is NaN");
    expect_invalid(maxsim(&inf, &good), "query", "row 0, column 2 is inf");
    expect_invalid(
        maxsim(short, &good),
        "query",
        "holds 5 values; expected rows * dim = 2 * 3 = 6",
    );
    expect_invalid(maxsim(&good, zero_dim), "document", "dim 0");
    expect_invalid(
        maxsim(MatrixRef::new(usize::MAX, 2, &[]), &good),
        "query",
        "overflows",
    );

    let docs = [good.clone(), good.clone(), narrow.clone()];
    expect_invalid(
        scores(std::slice::from_ref(&good), &docs),
        "documents[2]",
        "dim 2 but queries[0] has dim 3",
    );
    expect_invalid(
        scores(&[good.clone(), nan.clone()], &docs[..1]),
        "queries[1]",
        "NaN",
    );
    expect_invalid(
        scores(&[] as &[Embeddings], &[good.clone(), empty.clone()]),
        "documents[1]",
        "0 rows",
    );

    let q = [good.clone(), good.clone()];
    expect_invalid(
        rerank(&q, &[vec![good.clone()]], &[vec![1]]),
        "documents",
        "1 candidate lists; expected one per query (2)",
    );
    expect_invalid(
        rerank(&q, &[vec![good.clone()], vec![]], &[vec![1]]),
        "ids",
        "1 id lists",
    );
    expect_invalid(
        rerank(
            &q,
            &[vec![good.clone()], vec![good.clone()]],
            &[vec![1], vec![]],
        ),
        "ids[1]",
        "0 ids; expected one per candidate in documents[1] (1)",
    );
    expect_invalid(
        rerank(
            &q,
            &[vec![good.clone()], vec![good.clone(), inf.clone()]],
            &[vec![1], vec![2, 3]],
        ),
        "documents[1][1]",
        "inf",
    );
    expect_invalid(
        rerank(
            &q,
            &[vec![good.clone()], vec![narrow.clone()]],
            &[vec![1], vec![2]],
        ),
        "documents[1][0]",
        "dim 2",
    );
    // A query without candidates gets an empty ranking.
    let ranked = rerank(&q, &[vec![good.clone()], vec![]], &[vec!["a"], vec![]]).unwrap();
    assert_eq!((ranked[0].len(), ranked[1].len()), (1, 0));

    expect_invalid(top_k(&good, &docs[..2], 0), "k", "is 0");
    expect_invalid(
        top_k(&good, &docs, 1),
        "documents[2]",
        "dim 2 but query has dim 3",
    );

    expect_invalid(pool(&good, 0), "pool_factor", "is 0");
    expect_invalid(pool(&nan, 2), "embeddings", "NaN");
    expect_invalid(pool(short, 2), "embeddings", "holds 5 values");
    expect_invalid(pool(zero_dim, 2), "embeddings", "dim 0");
}
