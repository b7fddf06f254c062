//! Scoring and pooling on matrices built from the input: `maxsim`, `scores`, `rerank`,
//! `top_k`, `pool` and `pool_hierarchical`, with NaN and infinite values, zero rows, zero
//! width, mismatched widths and data lengths that disagree with `rows * dim`.
//!
//! Input: `[queries, documents, k, pool_factor, protected_tokens, split, _, _]`, then per
//! matrix `[rows, dim, tweak]` and its values. Values are little-endian f32 (any bit pattern,
//! so NaN and infinities too), or one byte each from `SPECIAL` when tweak bit 3 is set.
//! Tweak bits 0-1: data length exact, one short, one long, or whatever input is left;
//! bit 2: a huge row count (the length check must catch the overflow, not allocate).
#![no_main]

use latebird::{
    maxsim, pool, pool_hierarchical, rerank, scores, top_k, ErrorKind, MatrixRef, Ranked,
};
use libfuzzer_sys::fuzz_target;

const SPECIAL: [f32; 8] = [
    0.0,
    1.0,
    -0.5,
    f32::NAN,
    f32::INFINITY,
    f32::NEG_INFINITY,
    3.0e38,
    1.0e-40,
];

struct Matrix {
    rows: usize,
    dim: usize,
    data: Vec<f32>,
}

impl Matrix {
    fn view(&self) -> MatrixRef<'_> {
        MatrixRef::new(self.rows, self.dim, &self.data)
    }
}

fn take<'a>(input: &mut &'a [u8], n: usize) -> &'a [u8] {
    let n = n.min(input.len());
    let (head, tail) = input.split_at(n);
    *input = tail;
    head
}

fn byte(input: &mut &[u8]) -> u8 {
    take(input, 1).first().copied().unwrap_or(0)
}

fn matrix(input: &mut &[u8]) -> Matrix {
    let rows = usize::from(byte(input) % 64);
    let dim = usize::from(byte(input) % 40);
    let tweak = byte(input);
    let exact = rows * dim;
    let wanted = match tweak & 3 {
        0 => exact,
        1 => exact.saturating_sub(1),
        2 => exact + 1,
        _ => 4096,
    };
    let data: Vec<f32> = if tweak & 8 != 0 {
        take(input, wanted)
            .iter()
            .map(|&b| SPECIAL[usize::from(b) % SPECIAL.len()])
            .collect()
    } else {
        take(input, wanted * 4)
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    };
    // A short input leaves fewer values than asked for: a length mismatch, which is fine.
    let rows = if tweak & 4 != 0 {
        usize::MAX / 2 + rows
    } else {
        rows
    };
    Matrix { rows, dim, data }
}

fn check_ok_or_input<T>(what: &str, r: &Result<T, latebird::Error>) {
    if let Err(e) = r {
        assert_eq!(e.kind(), ErrorKind::Input, "{what}: {e:?}");
        assert!(!e.to_string().is_empty());
    }
}

fn check_ranking(r: &[Ranked<usize>]) {
    for pair in r.windows(2) {
        assert!(pair[0].score >= pair[1].score, "ranking not sorted: {r:?}");
    }
    assert!(
        r.iter().all(|x| x.score.is_finite()),
        "non-finite score: {r:?}"
    );
}

fuzz_target!(|data: &[u8]| {
    let mut input = data;
    let head = take(&mut input, 8);
    let at = |i: usize| head.get(i).copied().unwrap_or(0);
    let (n_q, n_d) = (usize::from(at(0) % 5), usize::from(at(1) % 7));
    let k = usize::from(at(2) % 9);
    let pool_factor = usize::from(at(3) % 6);
    let protected = usize::from(at(4) % 4);
    let split = usize::from(at(5));
    let queries: Vec<Matrix> = (0..n_q).map(|_| matrix(&mut input)).collect();
    let documents: Vec<Matrix> = (0..n_d).map(|_| matrix(&mut input)).collect();
    let q: Vec<MatrixRef<'_>> = queries.iter().map(Matrix::view).collect();
    let d: Vec<MatrixRef<'_>> = documents.iter().map(Matrix::view).collect();

    if let (Some(&q0), Some(&d0)) = (q.first(), d.first()) {
        let r = maxsim(q0, d0);
        check_ok_or_input("maxsim", &r);
        if let Ok(s) = r {
            assert!(s.is_finite(), "maxsim gave {s}");
        }
    }

    let r = scores(&q, &d);
    check_ok_or_input("scores", &r);
    if let Ok(m) = &r {
        assert_eq!((m.queries, m.documents), (q.len(), d.len()));
        assert_eq!(m.data.len(), q.len() * d.len());
        assert!(m.data.iter().all(|v| v.is_finite()), "scores: {m:?}");
    }

    // Candidates: documents dealt out to the queries from `split`; ids one short when
    // split's top bit is set.
    let mut lists: Vec<Vec<MatrixRef<'_>>> = vec![Vec::new(); q.len()];
    if !lists.is_empty() {
        for (j, m) in d.iter().enumerate() {
            let n = lists.len();
            lists[(j + split) % n].push(*m);
        }
    }
    let mut ids: Vec<Vec<usize>> = lists.iter().map(|l| (0..l.len()).collect()).collect();
    if split & 0x80 != 0 {
        if let Some(last) = ids.last_mut() {
            last.pop();
        }
    }
    if split & 0x40 != 0 {
        lists.push(Vec::new());
    }
    let r = rerank(&q, &lists, &ids);
    check_ok_or_input("rerank", &r);
    if let Ok(ranked) = &r {
        assert_eq!(ranked.len(), q.len());
        for (list, r) in lists.iter().zip(ranked) {
            assert_eq!(list.len(), r.len());
            check_ranking(r);
        }
    }

    if let Some(&q0) = q.first() {
        let r = top_k(q0, &d, k);
        check_ok_or_input("top_k", &r);
        if let Ok(r) = &r {
            assert!(r.len() <= k && r.len() <= d.len());
            check_ranking(r);
        }
    }

    for m in q.iter().chain(&d) {
        for r in [
            pool(*m, pool_factor),
            pool_hierarchical(*m, pool_factor, protected),
        ] {
            check_ok_or_input("pool", &r);
            if let Ok(p) = &r {
                assert_eq!(p.dim, m.dim);
                assert_eq!(p.data.len(), p.rows * p.dim);
                assert!(p.rows <= m.rows);
                assert!(p.data.iter().all(|v| v.is_finite()), "pool: {p:?}");
            }
        }
    }
});
