//! MaxSim (late-interaction) scoring: one query against one document, many against many,
//! reranking of candidate lists and top-k selection.
//!
//! `maxsim(q, d) = sum over the query rows of (max over the document rows of <q_i, d_j>)`,
//! as in PyLate's `colbert_scores`. The engine never materialises the
//! `[queries, documents, query rows, document rows]` tensor: documents are packed into small
//! column tiles and a register-blocked kernel keeps, for a few query rows at a time, the running
//! maximum over each document's rows (AVX2 + FMA when the CPU has them, portable code otherwise).
//!
//! Semantics (see each function for the argument checks):
//! - every matrix must have at least one row, a non-zero width shared by all arguments,
//!   exactly `rows * dim` values and only finite values; anything else is an
//!   [`Error::InvalidArgument`] naming the argument (`queries[3]`, `documents[1][4]`, ...).
//!   PyLate instead scores a zero-row document as 0 (its padding rows count as 0);
//! - PyLate pads shorter documents with zero rows that count as 0 in the maximum, so when every
//!   dot product of a query row with a (shorter than the longest) document is negative it
//!   counts 0 for that row where latebird counts the true (negative) maximum. With ColBERT
//!   embeddings that case does not arise in practice; latebird always uses the real rows only;
//! - rankings are sorted by decreasing score and are stable: equal scores keep the input order
//!   (PyLate's `torch.sort` leaves the order of ties unspecified).

use rayon::prelude::*;
use std::cmp::Ordering;

use crate::embeddings::{check_dim, check_matrix, AsMatrix, MatrixRef};
use crate::error::{Error, Result};

/// A dense `[queries, documents]` score matrix, row-major (one row per query).
#[derive(Debug, Clone, PartialEq)]
pub struct ScoreMatrix {
    /// Number of queries (rows).
    pub queries: usize,
    /// Number of documents (columns).
    pub documents: usize,
    /// `queries * documents` scores; `data[q * documents + d]` is query `q` against document `d`.
    pub data: Vec<f32>,
}

impl ScoreMatrix {
    /// The score of query `query` against document `document`, if both are in range.
    pub fn get(&self, query: usize, document: usize) -> Option<f32> {
        if document >= self.documents {
            return None;
        }
        self.row(query)?.get(document).copied()
    }

    /// The scores of query `query` against every document, if `query` is in range.
    pub fn row(&self, query: usize) -> Option<&[f32]> {
        if query >= self.queries {
            return None;
        }
        let start = query * self.documents;
        self.data.get(start..start + self.documents)
    }

    /// One `Vec` per query.
    pub fn to_rows(&self) -> Vec<Vec<f32>> {
        (0..self.queries)
            .map(|q| self.row(q).unwrap_or_default().to_vec())
            .collect()
    }
}

/// One entry of a ranking: the caller's id for a document and its score.
#[derive(Debug, Clone, PartialEq)]
pub struct Ranked<I> {
    /// The document's id (for [`top_k`]: its index in the input).
    pub id: I,
    /// Its MaxSim score against the query.
    pub score: f32,
}

/// MaxSim score of one query against one document.
///
/// Errors ([`Error::InvalidArgument`] named `query` or `document`): zero rows, zero width,
/// `data.len() != rows * dim`, a NaN or infinite value, or widths that differ.
pub fn maxsim(query: impl AsMatrix, document: impl AsMatrix) -> Result<f32> {
    let q = query.as_matrix();
    let d = document.as_matrix();
    check_matrix(q, || "query".to_string())?;
    check_matrix(d, || "document".to_string())?;
    check_dim(d, q.dim, || "document".to_string(), "query")?;
    let matrix = score_core(&[q], &[d], q.dim, false);
    let matrix = finite_scores(matrix, 1, |_, _| ("query".into(), "document".into()))?;
    Ok(matrix.first().copied().unwrap_or(0.0))
}

/// MaxSim scores of every query against every document (`colbert_scores`).
///
/// Runs on the engine's thread pool (rayon's global pool, sized by `RAYON_NUM_THREADS`).
/// Empty `queries` or `documents` give an empty matrix. Errors ([`Error::InvalidArgument`]
/// named `queries[i]` or `documents[j]`): as for [`maxsim`], and every matrix must have the
/// width of `queries[0]` (or `documents[0]` when there are no queries).
pub fn scores<Q: AsMatrix, D: AsMatrix>(queries: &[Q], documents: &[D]) -> Result<ScoreMatrix> {
    let q: Vec<MatrixRef<'_>> = queries.iter().map(AsMatrix::as_matrix).collect();
    let d: Vec<MatrixRef<'_>> = documents.iter().map(AsMatrix::as_matrix).collect();
    let dim = check_all(&q, &d, "queries", |j| format!("documents[{j}]"))?;
    let data = match dim {
        Some(dim) if !q.is_empty() && !d.is_empty() => {
            let n_d = d.len();
            finite_scores(score_core(&q, &d, dim, true), n_d, |i, j| {
                (format!("queries[{i}]"), format!("documents[{j}]"))
            })?
        }
        _ => Vec::new(),
    };
    Ok(ScoreMatrix {
        queries: q.len(),
        documents: d.len(),
        data,
    })
}

/// Reranks each query's own candidate documents (PyLate's `rank.rerank`): for query `i`,
/// `documents[i]` are its candidates and `ids[i]` their ids, in the same order. Returns, per
/// query, every candidate with its score, best first; equal scores keep the input order.
///
/// Errors ([`Error::InvalidArgument`]): `documents` or `ids` not one list per query, `ids[i]`
/// not one id per candidate, and the matrix checks of [`scores`] (named `queries[i]` and
/// `documents[i][j]`; all widths must equal `queries[0]`'s).
pub fn rerank<Q, D, DS, I, IS>(
    queries: &[Q],
    documents: &[DS],
    ids: &[IS],
) -> Result<Vec<Vec<Ranked<I>>>>
where
    Q: AsMatrix,
    D: AsMatrix,
    DS: AsRef<[D]>,
    I: Clone,
    IS: AsRef<[I]>,
{
    if documents.len() != queries.len() {
        return Err(Error::argument(
            "documents",
            format!(
                "has {} candidate lists; expected one per query ({})",
                documents.len(),
                queries.len()
            ),
        ));
    }
    if ids.len() != queries.len() {
        return Err(Error::argument(
            "ids",
            format!(
                "has {} id lists; expected one per query ({})",
                ids.len(),
                queries.len()
            ),
        ));
    }
    for (i, (docs, list)) in documents.iter().zip(ids).enumerate() {
        let (n_docs, n_ids) = (docs.as_ref().len(), list.as_ref().len());
        if n_docs != n_ids {
            return Err(Error::argument(
                format!("ids[{i}]"),
                format!("has {n_ids} ids; expected one per candidate in documents[{i}] ({n_docs})"),
            ));
        }
    }
    let q: Vec<MatrixRef<'_>> = queries.iter().map(AsMatrix::as_matrix).collect();
    let mut dim = None;
    for (i, m) in q.iter().enumerate() {
        check_matrix(*m, || format!("queries[{i}]"))?;
        match dim {
            None => dim = Some(m.dim),
            Some(dim) => check_dim(*m, dim, || format!("queries[{i}]"), "queries[0]")?,
        }
    }
    let mut candidates = Vec::with_capacity(q.len());
    for (i, docs) in documents.iter().enumerate() {
        let d: Vec<MatrixRef<'_>> = docs.as_ref().iter().map(AsMatrix::as_matrix).collect();
        for (j, m) in d.iter().enumerate() {
            check_matrix(*m, || format!("documents[{i}][{j}]"))?;
            if let Some(dim) = dim {
                check_dim(*m, dim, || format!("documents[{i}][{j}]"), "queries[0]")?;
            }
        }
        candidates.push(d);
    }
    let mut out = Vec::with_capacity(q.len());
    for ((query, docs), list) in q.iter().zip(&candidates).zip(ids) {
        let scored = if docs.is_empty() {
            Vec::new()
        } else {
            finite_scores(
                score_core(std::slice::from_ref(query), docs, query.dim, true),
                docs.len(),
                |_, j| {
                    (
                        format!("queries[{}]", out.len()),
                        format!("documents[{}][{j}]", out.len()),
                    )
                },
            )?
        };
        let ranked = list
            .as_ref()
            .iter()
            .zip(scored)
            .map(|(id, score)| Ranked {
                id: id.clone(),
                score,
            })
            .collect();
        out.push(sort_ranked(ranked));
    }
    Ok(out)
}

/// The `k` best documents for one query, best first, as ([`Ranked::id`] = index into
/// `documents`, score); equal scores keep the input order. Fewer than `k` documents give them
/// all. Errors: `k == 0`, and the matrix checks of [`scores`] (`query`, `documents[j]`).
pub fn top_k<Q: AsMatrix, D: AsMatrix>(
    query: Q,
    documents: &[D],
    k: usize,
) -> Result<Vec<Ranked<usize>>> {
    if k == 0 {
        return Err(Error::argument("k", "is 0; expected at least 1"));
    }
    let q = query.as_matrix();
    check_matrix(q, || "query".to_string())?;
    let d: Vec<MatrixRef<'_>> = documents.iter().map(AsMatrix::as_matrix).collect();
    for (j, m) in d.iter().enumerate() {
        check_matrix(*m, || format!("documents[{j}]"))?;
        check_dim(*m, q.dim, || format!("documents[{j}]"), "query")?;
    }
    if d.is_empty() {
        return Ok(Vec::new());
    }
    let scored = finite_scores(score_core(&[q], &d, q.dim, true), d.len(), |_, j| {
        ("query".into(), format!("documents[{j}]"))
    })?;
    let ranked = scored
        .into_iter()
        .enumerate()
        .map(|(id, score)| Ranked { id, score })
        .collect();
    let mut ranked = sort_ranked(ranked);
    ranked.truncate(k);
    Ok(ranked)
}

/// Checks that every score of a `[queries, documents]` matrix (`n_d` columns) is finite:
/// finite inputs of huge magnitude can still overflow float32 in the dot products, which
/// would rank as NaN or infinity. `names(i, j)` names the query and the document.
fn finite_scores(
    values: Vec<f32>,
    n_d: usize,
    names: impl Fn(usize, usize) -> (String, String),
) -> Result<Vec<f32>> {
    match values.iter().position(|v| !v.is_finite()) {
        None => Ok(values),
        Some(at) => {
            let (query, document) = names(at / n_d.max(1), at % n_d.max(1));
            Err(Error::argument(
                document.clone(),
                format!(
                    "its MaxSim score against {query} is {} (float32 overflow); expected embeddings of moderate magnitude (ColBERT's rows are L2-normalised)",
                    values[at]
                ),
            ))
        }
    }
}

/// Stable sort by decreasing score; NaN scores (only possible when products overflow) go last.
fn sort_ranked<I>(mut ranked: Vec<Ranked<I>>) -> Vec<Ranked<I>> {
    ranked.sort_by(|a, b| match (a.score.is_nan(), b.score.is_nan()) {
        (false, false) => b.score.partial_cmp(&a.score).unwrap_or(Ordering::Equal),
        (x, y) => x.cmp(&y),
    });
    ranked
}

/// Checks every query and document; returns the common width (`None` when both are empty).
fn check_all(
    q: &[MatrixRef<'_>],
    d: &[MatrixRef<'_>],
    queries_name: &str,
    doc_name: impl Fn(usize) -> String,
) -> Result<Option<usize>> {
    let mut dim: Option<(usize, String)> = None;
    for (i, m) in q.iter().enumerate() {
        let name = || format!("{queries_name}[{i}]");
        check_matrix(*m, name)?;
        match &dim {
            None => dim = Some((m.dim, name())),
            Some((w, first)) => check_dim(*m, *w, name, first)?,
        }
    }
    for (j, m) in d.iter().enumerate() {
        check_matrix(*m, || doc_name(j))?;
        match &dim {
            None => dim = Some((m.dim, doc_name(j))),
            Some((w, first)) => check_dim(*m, *w, || doc_name(j), first)?,
        }
    }
    Ok(dim.map(|(w, _)| w))
}

// ---------------------------------------------------------------------------------------------
// Kernel. Inputs are checked: every matrix has `rows >= 1`, width `dim >= 1` and
// `data.len() == rows * dim`.

/// Register-tile geometry: `MR` query rows against `NR` document rows at a time.
#[derive(Clone, Copy)]
enum Kernel {
    /// x86-64 with AVX2 and FMA: 8 x 8 tile (8 ymm accumulators; the fastest of the 4 x 24,
    /// 6 x 16, 3 x 32, 8 x 16 and 12 x 8 tiles measured).
    #[cfg(target_arch = "x86_64")]
    Avx2,
    /// Portable code (SSE2 / NEON through auto-vectorisation): 4 x 8 tile.
    Generic,
}

impl Kernel {
    /// The engine's one instruction-set choice (`LATEBIRD_CPU` included): AVX2 + FMA when it
    /// allows them, the portable kernel otherwise.
    fn detect() -> Kernel {
        #[cfg(target_arch = "x86_64")]
        if crate::models::isa() >= crate::models::Isa::Avx2 {
            return Kernel::Avx2;
        }
        Kernel::Generic
    }

    fn mr(self) -> usize {
        match self {
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => 8,
            Kernel::Generic => 4,
        }
    }

    fn nr(self) -> usize {
        match self {
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => 8,
            Kernel::Generic => 8,
        }
    }
}

/// Queries packed for the kernel: each query's rows padded to a multiple of `MR` by repeating
/// its last row, stored as groups of `MR` rows in k-major order (`[dim][MR]`).
struct PackedQueries {
    data: Vec<f32>,
    /// Per query: (offset of its first group in `data`, number of groups, real rows).
    spans: Vec<(usize, usize, usize)>,
}

fn pack_queries(queries: &[MatrixRef<'_>], dim: usize, mr: usize) -> PackedQueries {
    let total: usize = queries.iter().map(|q| q.rows.div_ceil(mr) * mr * dim).sum();
    let mut data = Vec::with_capacity(total);
    let mut spans = Vec::with_capacity(queries.len());
    for q in queries {
        let groups = q.rows.div_ceil(mr);
        spans.push((data.len(), groups, q.rows));
        for g in 0..groups {
            for k in 0..dim {
                for r in 0..mr {
                    let row = (g * mr + r).min(q.rows - 1);
                    data.push(q.data[row * dim + k]);
                }
            }
        }
    }
    PackedQueries { data, spans }
}

/// Packs documents `docs` into `out`: each one's rows padded to a multiple of `NR` by
/// repeating its last row (which leaves the maximum unchanged), as tiles of `[dim][NR]`.
/// Returns per document (offset, number of tiles).
fn pack_documents(
    docs: &[MatrixRef<'_>],
    dim: usize,
    nr: usize,
    out: &mut Vec<f32>,
) -> Vec<(usize, usize)> {
    out.clear();
    let mut spans = Vec::with_capacity(docs.len());
    for d in docs {
        let tiles = d.rows.div_ceil(nr);
        spans.push((out.len(), tiles));
        for t in 0..tiles {
            for k in 0..dim {
                for c in 0..nr {
                    let row = (t * nr + c).min(d.rows - 1);
                    out.push(d.data[row * dim + k]);
                }
            }
        }
    }
    spans
}

/// Maximum over the document tiles of the dot products with `MR` query rows:
/// `best[r] = max_j <q_r, d_j>`.
#[inline(always)]
fn group_max<const MR: usize, const NR: usize, const FMA: bool>(
    group: &[f32],
    tiles: &[f32],
    dim: usize,
    best: &mut [f32; MR],
) {
    let mut maxv = [[f32::NEG_INFINITY; NR]; MR];
    for tile in tiles.chunks_exact(dim * NR) {
        let mut acc = [[0f32; NR]; MR];
        for (d, q) in tile.chunks_exact(NR).zip(group.chunks_exact(MR)) {
            let (Ok(d), Ok(q)) = (<&[f32; NR]>::try_from(d), <&[f32; MR]>::try_from(q)) else {
                continue;
            };
            for r in 0..MR {
                let a = q[r];
                for c in 0..NR {
                    acc[r][c] = if FMA {
                        a.mul_add(d[c], acc[r][c])
                    } else {
                        a * d[c] + acc[r][c]
                    };
                }
            }
        }
        for r in 0..MR {
            for c in 0..NR {
                let v = acc[r][c];
                maxv[r][c] = if v > maxv[r][c] { v } else { maxv[r][c] };
            }
        }
    }
    for r in 0..MR {
        best[r] = maxv[r]
            .iter()
            .fold(f32::NEG_INFINITY, |m, &v| if v > m { v } else { m });
    }
}

/// Scores every packed query against the packed documents of one block into
/// `out[q * n_docs + j]`.
#[inline(always)]
fn block_scores<const MR: usize, const NR: usize, const FMA: bool>(
    queries: &PackedQueries,
    docs: &[f32],
    doc_spans: &[(usize, usize)],
    dim: usize,
    out: &mut [f32],
) {
    let n_docs = doc_spans.len();
    let group_len = MR * dim;
    let mut best = [0f32; MR];
    let mut sums = vec![0f64; n_docs];
    for (qi, &(offset, groups, rows)) in queries.spans.iter().enumerate() {
        sums.iter_mut().for_each(|s| *s = 0.0);
        for g in 0..groups {
            let start = offset + g * group_len;
            let Some(group) = queries.data.get(start..start + group_len) else {
                continue;
            };
            let real = (rows - g * MR).min(MR);
            for (j, &(doc_offset, tiles)) in doc_spans.iter().enumerate() {
                let Some(tiles) = docs.get(doc_offset..doc_offset + tiles * dim * NR) else {
                    continue;
                };
                group_max::<MR, NR, FMA>(group, tiles, dim, &mut best);
                sums[j] += best[..real].iter().map(|&v| v as f64).sum::<f64>();
            }
        }
        if let Some(row) = out.get_mut(qi * n_docs..(qi + 1) * n_docs) {
            for (o, s) in row.iter_mut().zip(&sums) {
                *o = *s as f32;
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn block_scores_avx2(
    queries: &PackedQueries,
    docs: &[f32],
    doc_spans: &[(usize, usize)],
    dim: usize,
    out: &mut [f32],
) {
    block_scores::<8, 8, true>(queries, docs, doc_spans, dim, out)
}

fn run_block(
    kernel: Kernel,
    queries: &PackedQueries,
    docs: &[f32],
    doc_spans: &[(usize, usize)],
    dim: usize,
    out: &mut [f32],
) {
    match kernel {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Kernel::Avx2` is only chosen when the CPU reports AVX2 and FMA.
        Kernel::Avx2 => unsafe { block_scores_avx2(queries, docs, doc_spans, dim, out) },
        Kernel::Generic => block_scores::<4, 8, false>(queries, docs, doc_spans, dim, out),
    }
}

/// Document rows (padded) per block: the packed block stays in L2.
const BLOCK_ROWS: usize = 1536;
/// Below this many multiply-adds one thread does everything.
const PARALLEL_WORK: usize = 1 << 22;

/// The `[queries, documents]` scores, row-major. Inputs must be checked.
fn score_core(
    queries: &[MatrixRef<'_>],
    docs: &[MatrixRef<'_>],
    dim: usize,
    parallel: bool,
) -> Vec<f32> {
    let kernel = Kernel::detect();
    let (mr, nr) = (kernel.mr(), kernel.nr());
    let packed = pack_queries(queries, dim, mr);
    let n_q = queries.len();
    let n_d = docs.len();

    // Contiguous blocks of documents of about BLOCK_ROWS padded rows each.
    let block_rows = (BLOCK_ROWS * 128 / dim.max(1)).max(nr);
    let mut blocks: Vec<(usize, usize)> = Vec::new();
    let mut start = 0;
    let mut rows = 0;
    for (j, d) in docs.iter().enumerate() {
        let padded = d.rows.div_ceil(nr) * nr;
        if rows > 0 && rows + padded > block_rows {
            blocks.push((start, j));
            start = j;
            rows = 0;
        }
        rows += padded;
    }
    if start < n_d {
        blocks.push((start, n_d));
    }

    let q_rows: usize = queries.iter().map(|q| q.rows).sum();
    let d_rows: usize = docs.iter().map(|d| d.rows).sum();
    let work = q_rows.saturating_mul(d_rows).saturating_mul(dim);
    let score_block = |buffer: &mut Vec<f32>, &(lo, hi): &(usize, usize)| {
        let block = &docs[lo..hi];
        let spans = pack_documents(block, dim, nr, buffer);
        let mut out = vec![0f32; n_q * block.len()];
        run_block(kernel, &packed, buffer, &spans, dim, &mut out);
        out
    };
    // The blocks go to the engine's one thread pool (rayon's, as the model kernels); small
    // products stay on the calling thread.
    let results: Vec<Vec<f32>> = if parallel && work >= PARALLEL_WORK && blocks.len() > 1 {
        blocks.par_iter().map_init(Vec::new, score_block).collect()
    } else {
        let mut buffer = Vec::new();
        blocks.iter().map(|b| score_block(&mut buffer, b)).collect()
    };

    let mut matrix = vec![0f32; n_q * n_d];
    for (&(lo, hi), out) in blocks.iter().zip(results) {
        let width = hi - lo;
        for qi in 0..n_q {
            matrix[qi * n_d + lo..qi * n_d + hi]
                .copy_from_slice(&out[qi * width..(qi + 1) * width]);
        }
    }
    matrix
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(q: MatrixRef<'_>, d: MatrixRef<'_>) -> f64 {
        (0..q.rows)
            .map(|i| {
                (0..d.rows)
                    .map(|j| {
                        (0..q.dim)
                            .map(|k| q.data[i * q.dim + k] as f64 * d.data[j * d.dim + k] as f64)
                            .sum::<f64>()
                    })
                    .fold(f64::NEG_INFINITY, f64::max)
            })
            .sum()
    }

    fn random(rows: usize, dim: usize, seed: &mut u64) -> Vec<f32> {
        (0..rows * dim)
            .map(|_| {
                *seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((*seed >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    #[test]
    fn kernels_match_naive_on_odd_shapes() {
        let mut seed = 7;
        for dim in [1, 3, 17, 128] {
            let qs: Vec<Vec<f32>> = [1, 5, 9]
                .iter()
                .map(|&r| random(r, dim, &mut seed))
                .collect();
            let ds: Vec<Vec<f32>> = [1, 7, 25, 49]
                .iter()
                .map(|&r| random(r, dim, &mut seed))
                .collect();
            let q: Vec<MatrixRef<'_>> = qs
                .iter()
                .map(|v| MatrixRef::new(v.len() / dim, dim, v))
                .collect();
            let d: Vec<MatrixRef<'_>> = ds
                .iter()
                .map(|v| MatrixRef::new(v.len() / dim, dim, v))
                .collect();
            for kernel in [Kernel::detect(), Kernel::Generic] {
                let packed = pack_queries(&q, dim, kernel.mr());
                let mut buffer = Vec::new();
                let spans = pack_documents(&d, dim, kernel.nr(), &mut buffer);
                let mut out = vec![0f32; q.len() * d.len()];
                run_block(kernel, &packed, &buffer, &spans, dim, &mut out);
                for (i, qm) in q.iter().enumerate() {
                    for (j, dm) in d.iter().enumerate() {
                        let expected = naive(*qm, *dm);
                        let got = out[i * d.len() + j] as f64;
                        assert!(
                            (got - expected).abs() < 1e-4,
                            "dim {dim} q{i} d{j}: {got} vs {expected}"
                        );
                    }
                }
            }
            // Threaded path, small blocks.
            let all = score_core(&q, &d, dim, true);
            for (i, qm) in q.iter().enumerate() {
                for (j, dm) in d.iter().enumerate() {
                    assert!((all[i * d.len() + j] as f64 - naive(*qm, *dm)).abs() < 1e-4);
                }
            }
        }
    }
}
