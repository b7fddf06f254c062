//! Hierarchical token pooling, as PyLate's `pool_embeddings_hierarchical`.
//!
//! For a document's `[rows, dim]` matrix, the first `protected_tokens` rows (1 in PyLate's
//! `encode`) are kept as they are. On the other `n` rows, with `k = max(n / pool_factor, 1)`
//! (nothing changes when `k >= n`):
//!
//! 1. distances `1 - cos` between rows, where `cos` is the f32 dot product of the (already
//!    normalised) rows, as PyLate's `torch.mm`; the dot products are accumulated in f64 and
//!    rounded to f32, then `1 - cos` is taken in f32 and widened to f64, like the f32 numpy
//!    array scipy receives. Negative distances (two identical rows whose dot product rounds
//!    above 1) are clamped to 0: scipy rejects a linkage with negative heights, so PyLate raises
//!    an error there while latebird pools them as identical rows;
//! 2. Ward linkage exactly as scipy's `linkage(..., method="ward")` computes it on these values:
//!    the nearest-neighbour chain, the Lance-Williams Ward update in f64, a stable sort of the
//!    merges by height and the union-find relabelling;
//! 3. the cut of scipy's `fcluster(Z, t=k, criterion="maxclust")`: a binary search over the
//!    merge heights for the smallest one that leaves at most `k` clusters (so equal heights can
//!    leave fewer than `k` clusters), then the labels in scipy's traversal order;
//! 4. each cluster's vector is the plain f32 mean of its rows (sum in row order, divided by the
//!    count; not re-normalised).
//!
//! The output is the protected rows, then the clusters in scipy's label order, which is the
//! order PyLate returns.

use crate::embeddings::{check_finite, check_shape, AsMatrix, Embeddings, MatrixRef};
use crate::error::{Error, Result};

/// Most rows one call pools: 16,384 rows need 134 million distances (1 GiB of f64), twice
/// the longest document any ColBERT model encodes.
pub(crate) const MAX_POOLED_ROWS: usize = 1 << 14;

/// Pools a document's token embeddings with PyLate's defaults (`protected_tokens = 1`).
///
/// `pool_factor` 1 returns the rows unchanged; 0 is an [`Error::InvalidArgument`], as are a
/// zero width, `data.len() != rows * dim` and NaN or infinite values (named `embeddings`).
/// A matrix with too few rows to pool (`(rows - 1) / pool_factor` clusters or more) comes
/// back unchanged, as in PyLate.
pub fn pool(embeddings: impl AsMatrix, pool_factor: usize) -> Result<Embeddings> {
    pool_hierarchical(embeddings, pool_factor, 1)
}

/// [`pool`] with a chosen number of leading rows kept out of the clustering.
pub fn pool_hierarchical(
    embeddings: impl AsMatrix,
    pool_factor: usize,
    protected_tokens: usize,
) -> Result<Embeddings> {
    let m = embeddings.as_matrix();
    if pool_factor == 0 {
        return Err(Error::argument(
            "pool_factor",
            "is 0; expected at least 1 (1 keeps every row)",
        ));
    }
    let name = || "embeddings".to_string();
    check_shape(m, &name)?;
    check_finite(m, name)?;
    let copy = || Embeddings {
        rows: m.rows,
        dim: m.dim,
        data: m.data.to_vec(),
    };
    let protected = protected_tokens.min(m.rows);
    let n = m.rows - protected;
    let k = (n / pool_factor).max(1);
    if pool_factor == 1 || k >= n {
        return Ok(copy());
    }
    if n > MAX_POOLED_ROWS {
        return Err(Error::argument(
            "embeddings",
            format!(
                "has {n} rows to pool; hierarchical pooling keeps all n * (n - 1) / 2 pairwise distances in memory, so at most {MAX_POOLED_ROWS} rows are accepted (a ColBERT document has at most its document_length)"
            ),
        ));
    }
    let dim = m.dim;
    let (head, rest) = m.data.split_at(protected * dim);
    let to_pool = MatrixRef::new(n, dim, rest);

    let condensed = cosine_distances(to_pool);
    // Finite rows of huge magnitude overflow float32 in the dot products: an infinite
    // distance would leave the linkage without a nearest neighbour (and the means below
    // would overflow too).
    if let Some(at) = condensed.iter().position(|d| !d.is_finite()) {
        // Back from the condensed index to the pair of rows (protected rows come first).
        let (mut i, mut rest) = (0, at);
        while rest >= n - 1 - i {
            rest -= n - 1 - i;
            i += 1;
        }
        return Err(Error::argument(
            "embeddings",
            format!(
                "the distance 1 - cos between rows {} and {} is {} (float32 overflow in their dot product); expected embeddings of moderate magnitude (ColBERT's rows are L2-normalised)",
                protected + i,
                protected + i + 1 + rest,
                condensed[at]
            ),
        ));
    }
    let z = ward_linkage(&condensed, n);
    let labels = fcluster_maxclust(&z, n, k);

    let clusters = labels.iter().copied().max().unwrap_or(0);
    let mut sums = vec![0f32; clusters * dim];
    let mut counts = vec![0usize; clusters];
    for (row, &label) in rest.chunks_exact(dim).zip(&labels) {
        let c = label.saturating_sub(1);
        if let (Some(sum), Some(count)) = (sums.get_mut(c * dim..(c + 1) * dim), counts.get_mut(c))
        {
            sum.iter_mut().zip(row).for_each(|(s, v)| *s += v);
            *count += 1;
        }
    }
    let mut data = head.to_vec();
    let mut rows = protected;
    for (sum, &count) in sums.chunks_exact(dim).zip(&counts) {
        if count == 0 {
            continue;
        }
        let c = count as f32;
        data.extend(sum.iter().map(|s| s / c));
        rows += 1;
    }
    if let Some(at) = data.iter().position(|v| !v.is_finite()) {
        return Err(Error::argument(
            "embeddings",
            format!(
                "the mean of a cluster overflows float32 (pooled row {}, column {}); expected embeddings of moderate magnitude (ColBERT's rows are L2-normalised)",
                at / dim,
                at % dim
            ),
        ));
    }
    Ok(Embeddings { rows, dim, data })
}

/// Index of pair `(i, j)`, `i < j`, in scipy's condensed upper triangle.
#[inline]
fn condensed_index(n: usize, i: usize, j: usize) -> usize {
    let (i, j) = if i < j { (i, j) } else { (j, i) };
    n * i - i * (i + 1) / 2 + (j - i - 1)
}

/// Condensed `1 - cos` distances of the rows (see the module documentation).
fn cosine_distances(m: MatrixRef<'_>) -> Vec<f64> {
    let n = m.rows;
    let rows: Vec<&[f32]> = m.data.chunks_exact(m.dim).collect();
    let mut out = Vec::with_capacity(n * n.saturating_sub(1) / 2);
    for (i, a) in rows.iter().enumerate() {
        for b in rows.iter().skip(i + 1) {
            let dot: f64 = a
                .iter()
                .zip(b.iter())
                .map(|(&x, &y)| x as f64 * y as f64)
                .sum();
            let distance = (1.0f32 - dot as f32) as f64;
            out.push(if distance < 0.0 { 0.0 } else { distance });
        }
    }
    out
}

/// One merge of the linkage matrix: clusters `a < b` joined at `height` into `size` points.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Merge {
    a: usize,
    b: usize,
    height: f64,
    size: usize,
}

/// scipy's Lance-Williams update for Ward's method.
#[inline]
fn ward_update(
    d_xi: f64,
    d_yi: f64,
    d_xy: f64,
    size_x: usize,
    size_y: usize,
    size_i: usize,
) -> f64 {
    let t = 1.0 / (size_x + size_y + size_i) as f64;
    ((size_i + size_x) as f64 * t * d_xi * d_xi + (size_i + size_y) as f64 * t * d_yi * d_yi
        - size_i as f64 * t * d_xy * d_xy)
        .sqrt()
}

/// scipy's `linkage(condensed, method="ward")`: nearest-neighbour chain, then a stable sort by
/// height and relabelling. `condensed` holds `n (n - 1) / 2` distances, `n >= 2`.
fn ward_linkage(condensed: &[f64], n: usize) -> Vec<Merge> {
    let mut d = condensed.to_vec();
    let mut size = vec![1usize; n];
    let mut chain: Vec<usize> = Vec::with_capacity(n);
    let mut z = Vec::with_capacity(n.saturating_sub(1));
    let mut y = 0usize;
    let at = |d: &[f64], i: usize, j: usize| {
        d.get(condensed_index(n, i, j))
            .copied()
            .unwrap_or(f64::INFINITY)
    };
    for _ in 0..n.saturating_sub(1) {
        if chain.is_empty() {
            if let Some(first) = size.iter().position(|&s| s > 0) {
                chain.push(first);
            }
        }
        let mut x;
        let mut current_min;
        loop {
            let len = chain.len();
            x = chain.last().copied().unwrap_or(0);
            // Prefer the previous element of the chain on ties, to avoid cycles.
            if len > 1 {
                y = chain[len - 2];
                current_min = at(&d, x, y);
            } else {
                current_min = f64::INFINITY;
            }
            for (i, &s) in size.iter().enumerate() {
                if s == 0 || i == x {
                    continue;
                }
                let dist = at(&d, x, i);
                if dist < current_min {
                    current_min = dist;
                    y = i;
                }
            }
            if len > 1 && y == chain[len - 2] {
                break;
            }
            if len >= n {
                // Cannot happen with finite distances; stop rather than loop forever.
                break;
            }
            chain.push(y);
        }
        chain.truncate(chain.len().saturating_sub(2));
        let (x, y) = if x > y { (y, x) } else { (x, y) };
        let (nx, ny) = (size[x], size[y]);
        z.push(Merge {
            a: x,
            b: y,
            height: current_min,
            size: nx + ny,
        });
        size[x] = 0;
        size[y] = nx + ny;
        for (i, &ni) in size.iter().enumerate() {
            if ni == 0 || i == y {
                continue;
            }
            let updated = ward_update(at(&d, i, x), at(&d, i, y), current_min, nx, ny, ni);
            if let Some(slot) = d.get_mut(condensed_index(n, i, y)) {
                *slot = updated;
            }
        }
    }
    // numpy's stable argsort: NaN heights last.
    z.sort_by(|p, q| match (p.height.is_nan(), q.height.is_nan()) {
        (false, false) => p
            .height
            .partial_cmp(&q.height)
            .unwrap_or(std::cmp::Ordering::Equal),
        (a, b) => a.cmp(&b),
    });
    relabel(&mut z, n);
    z
}

/// scipy's `label`: node ids in the order of the sorted merges (union-find).
fn relabel(z: &mut [Merge], n: usize) {
    let total = 2 * n - 1;
    let mut parent: Vec<usize> = (0..total).collect();
    let mut size = vec![1usize; total];
    let mut next = n;
    let find = |parent: &mut Vec<usize>, mut x: usize| {
        let mut p = x;
        while parent[x] != x {
            x = parent[x];
        }
        while parent[p] != x {
            let up = parent[p];
            parent[p] = x;
            p = up;
        }
        x
    };
    for merge in z.iter_mut() {
        let xr = find(&mut parent, merge.a);
        let yr = find(&mut parent, merge.b);
        (merge.a, merge.b) = if xr < yr { (xr, yr) } else { (yr, xr) };
        parent[xr] = next;
        parent[yr] = next;
        size[next] = size[xr] + size[yr];
        merge.size = size[next];
        next += 1;
    }
}

/// scipy's `fcluster(z, t=max_clusters, criterion="maxclust")`: labels `1..=c`, `c <= max_clusters`.
fn fcluster_maxclust(z: &[Merge], n: usize, max_clusters: usize) -> Vec<usize> {
    if max_clusters >= n {
        return (1..=n).collect();
    }
    // Largest merge height in each subtree (children always come earlier).
    let mut max_dist = vec![0f64; z.len()];
    for (i, merge) in z.iter().enumerate() {
        let mut m = merge.height;
        for child in [merge.a, merge.b] {
            if child >= n {
                if let Some(&c) = max_dist.get(child - n) {
                    if c > m {
                        m = c;
                    }
                }
            }
        }
        max_dist[i] = m;
    }
    let criterion = |i: usize| max_dist.get(i).copied().unwrap_or(f64::INFINITY);
    let children = |node: usize| {
        z.get(node.wrapping_sub(n))
            .map(|m| (m.a, m.b))
            .unwrap_or((0, 0))
    };
    let root = 2 * n - 2;
    let mut visited = vec![false; 2 * n - 1];

    // Binary search over the merge indices for the smallest threshold giving <= max_clusters.
    let mut lower: isize = -1;
    let mut upper: isize = n as isize - 1;
    while upper - lower > 1 {
        let i = (lower + upper) >> 1;
        let threshold = criterion(i as usize);
        visited.iter_mut().for_each(|v| *v = false);
        let mut clusters = 0usize;
        let mut stack = vec![root];
        while let Some(&node) = stack.last() {
            let (lc, rc) = children(node);
            if criterion(node - n) <= threshold {
                clusters += 1;
                if clusters > max_clusters {
                    break;
                }
                stack.pop();
                visited[lc] = true;
                visited[rc] = true;
                continue;
            }
            if !visited[lc] {
                visited[lc] = true;
                if lc >= n {
                    stack.push(lc);
                    continue;
                }
                clusters += 1;
                if clusters > max_clusters {
                    break;
                }
            }
            if !visited[rc] {
                visited[rc] = true;
                if rc >= n {
                    stack.push(rc);
                    continue;
                }
                clusters += 1;
                if clusters > max_clusters {
                    break;
                }
            }
            stack.pop();
        }
        if clusters > max_clusters {
            lower = i;
        } else {
            upper = i;
        }
    }
    cluster_monocrit(z, &max_dist, criterion(upper as usize), n)
}

/// scipy's `cluster_monocrit`: subtrees whose criterion is `<= cutoff` become clusters,
/// numbered in depth-first order.
fn cluster_monocrit(z: &[Merge], criterion: &[f64], cutoff: f64, n: usize) -> Vec<usize> {
    let mut labels = vec![0usize; n];
    let mut visited = vec![false; 2 * n - 1];
    let mut clusters = 0usize;
    let mut leader: Option<usize> = None;
    let mut stack = vec![2 * n - 2];
    while let Some(&node) = stack.last() {
        let root = node - n;
        let Some(merge) = z.get(root) else {
            break;
        };
        let (lc, rc) = (merge.a, merge.b);
        if leader.is_none() && criterion.get(root).is_some_and(|&c| c <= cutoff) {
            leader = Some(root);
            clusters += 1;
        }
        if lc >= n && !visited[lc] {
            visited[lc] = true;
            stack.push(lc);
            continue;
        }
        if rc >= n && !visited[rc] {
            visited[rc] = true;
            stack.push(rc);
            continue;
        }
        for leaf in [lc, rc] {
            if leaf < n {
                if leader.is_none() {
                    clusters += 1;
                }
                labels[leaf] = clusters;
            }
        }
        if leader == Some(root) {
            leader = None;
        }
        stack.pop();
    }
    labels
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    struct Fixture {
        tensors: std::collections::HashMap<String, (Vec<usize>, Vec<f64>)>,
    }

    fn read_fixture() -> Option<Fixture> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures/scoring/synthetic.safetensors");
        let bytes = std::fs::read(path).ok()?;
        let st = safetensors::SafeTensors::deserialize(&bytes).ok()?;
        let mut tensors = std::collections::HashMap::new();
        for (name, view) in st.tensors() {
            let values: Vec<f64> = match view.dtype() {
                safetensors::Dtype::F32 => view
                    .data()
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64)
                    .collect(),
                safetensors::Dtype::F64 => view
                    .data()
                    .chunks_exact(8)
                    .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                    .collect(),
                safetensors::Dtype::I64 => view
                    .data()
                    .chunks_exact(8)
                    .map(|c| {
                        i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f64
                    })
                    .collect(),
                _ => continue,
            };
            tensors.insert(name, (view.shape().to_vec(), values));
        }
        Some(Fixture { tensors })
    }

    /// Linkage and maxclust labels equal scipy's exactly on scipy's own condensed input.
    #[test]
    fn linkage_and_labels_match_scipy() {
        let fixture = read_fixture().expect("tests/fixtures/scoring/synthetic.safetensors");
        let mut cases = 0;
        for case in ["ties", "random"] {
            let (_, condensed) = &fixture.tensors[&format!("{case}.condensed")];
            let (zshape, zref) = &fixture.tensors[&format!("{case}.linkage")];
            let n = zshape[0] + 1;
            let z = ward_linkage(condensed, n);
            for (i, (m, r)) in z.iter().zip(zref.chunks_exact(4)).enumerate() {
                assert_eq!(
                    (m.a as f64, m.b as f64, m.size as f64),
                    (r[0], r[1], r[3]),
                    "{case}: merge {i} differs from scipy's"
                );
                assert!(
                    m.height == r[2],
                    "{case}: merge {i} height {} differs from scipy's {} (expected bitwise equal)",
                    m.height,
                    r[2]
                );
            }
            for (name, (_, labels)) in fixture.tensors.iter() {
                let Some(k) = name.strip_prefix(&format!("{case}.labels_k")) else {
                    continue;
                };
                let k: usize = k.parse().unwrap();
                let ours: Vec<f64> = fcluster_maxclust(&z, n, k)
                    .iter()
                    .map(|&v| v as f64)
                    .collect();
                assert_eq!(&ours, labels, "{case}: fcluster maxclust k={k} differs");
                cases += 1;
            }
        }
        assert!(cases >= 6);
    }

    #[test]
    fn condensed_layout() {
        let n = 5;
        let mut expected = 0;
        for i in 0..n {
            for j in i + 1..n {
                assert_eq!(condensed_index(n, i, j), expected);
                assert_eq!(condensed_index(n, j, i), expected);
                expected += 1;
            }
        }
    }
}
