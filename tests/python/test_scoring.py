"""latebird.scores, .rank and .pooling against PyLate's references
(tests/fixtures/scoring/*.safetensors, made by scripts/make_scoring_references.py; the same
checks as crates/core/tests/scoring.rs), plus argument handling and errors."""

from __future__ import annotations

import json
import threading
import tracemalloc
from functools import cache
from pathlib import Path

import latebird
import numpy as np
import pytest
from latebird import InvalidInputError
from latebird.pooling import pool_embeddings_hierarchical
from latebird.rank import rerank, top_k
from latebird.scores import colbert_scores, maxsim
from safetensors import safe_open

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "scoring"
MODELS = ["minilm-colbert", "modernbert-v4"]
TOLERANCE = 1e-5


class Fixture:
    def __init__(self, name: str) -> None:
        path = FIXTURES / f"{name}.safetensors"
        assert path.is_file(), f"{path}: missing; run scripts/make_scoring_references.py"
        self.tensors: dict[str, np.ndarray] = {}
        with safe_open(str(path), framework="numpy") as f:
            self.meta = f.metadata()
            for key in f.keys():
                self.tensors[key] = f.get_tensor(key)

    def list(self, prefix: str) -> list[np.ndarray]:
        out = []
        while f"{prefix}.{len(out)}" in self.tensors:
            out.append(self.tensors[f"{prefix}.{len(out)}"])
        return out


@cache
def fixture(name: str) -> Fixture:
    return Fixture(name)


def pad(matrices: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    longest = max(len(m) for m in matrices)
    padded = np.zeros((len(matrices), longest, matrices[0].shape[1]), dtype=np.float32)
    mask = np.zeros((len(matrices), longest), dtype=np.float32)
    for i, m in enumerate(matrices):
        padded[i, : len(m)] = m
        mask[i, : len(m)] = 1
    return padded, mask


# --- scores -------------------------------------------------------------------------------


@pytest.mark.parametrize("model", MODELS)
def test_scores_match_pylate(model):
    f = fixture(model)
    queries, documents = f.list("query"), f.list("document")
    assert len(queries) > 5 and len(documents) > 5
    ours = colbert_scores(queries, documents)
    assert isinstance(ours, np.ndarray) and ours.dtype == np.float32
    assert ours.shape == (len(queries), len(documents))
    padded, unpadded = f.tensors["scores"], f.tensors["scores_unpadded"]
    # latebird scores each document on its real rows, as PyLate does for a document alone.
    np.testing.assert_allclose(ours, unpadded, rtol=0, atol=TOLERANCE)
    # PyLate's zero padding counts 0 in the maximum: it can only raise a score.
    assert (ours <= padded + TOLERANCE).all()
    same = np.abs(padded - unpadded) <= 1e-6
    np.testing.assert_allclose(ours[same], padded[same], rtol=0, atol=TOLERANCE)
    raised = int((~same).sum())
    assert raised == json.loads(f.meta["padding"])["pairs_raised_by_padding"]
    # The single-pair function gives the same values, bit for bit.
    for i, q in enumerate(queries):
        for j, d in enumerate(documents):
            assert maxsim(q, d) == float(ours[i, j]), (model, i, j)


@pytest.mark.parametrize("model", MODELS)
def test_padded_inputs(model):
    f = fixture(model)
    queries, documents = f.list("query"), f.list("document")
    reference = colbert_scores(queries, documents)
    (q, q_mask), (d, d_mask) = pad(queries), pad(documents)
    # With masks, the masked rows are dropped: the same as the unpadded lists.
    np.testing.assert_array_equal(colbert_scores(q, d, q_mask, d_mask), reference)
    np.testing.assert_array_equal(
        colbert_scores(q, d, queries_mask=q_mask.astype(bool), documents_mask=d_mask), reference
    )
    # Without masks the zero rows count: PyLate's padded scores.
    np.testing.assert_allclose(colbert_scores(q, d), f.tensors["scores"], rtol=0, atol=TOLERANCE)
    # Mixed: a list of queries against a padded 3-D array of documents.
    np.testing.assert_array_equal(colbert_scores(queries, d, documents_mask=d_mask), reference)
    # A mask with holes (not a prefix) drops exactly those rows.
    holes = d_mask.copy()
    holes[:, 1] = 0
    expected = colbert_scores(queries, [np.delete(m, 1, axis=0) for m in documents])
    np.testing.assert_array_equal(colbert_scores(queries, d, documents_mask=holes), expected)


def test_other_input_types():
    f = fixture("minilm-colbert")
    queries, documents = f.list("query")[:3], f.list("document")[:4]
    reference = colbert_scores(queries, documents)

    class Tensor:  # anything with __array__, like a CPU torch tensor
        def __init__(self, a):
            self.a = a

        def __array__(self, dtype=None, copy=None):
            return self.a if dtype is None else self.a.astype(dtype)

    np.testing.assert_array_equal(
        colbert_scores([Tensor(q) for q in queries], tuple(documents)), reference
    )
    # float64 and nested lists are converted to float32 once.
    as64 = [d.astype(np.float64) for d in documents]
    np.testing.assert_array_equal(colbert_scores(queries, as64), reference)
    np.testing.assert_array_equal(
        colbert_scores([q.tolist() for q in queries], documents), reference
    )
    # Non-contiguous views are made contiguous.
    strided = [np.asfortranarray(d) for d in documents]
    np.testing.assert_array_equal(colbert_scores(queries, strided), reference)
    wide = [np.repeat(d, 2, axis=1)[:, ::2] for d in documents]
    np.testing.assert_array_equal(colbert_scores(queries, wide), reference)
    # Empty lists give empty matrices of the right shape.
    assert colbert_scores([], documents).shape == (0, 4)
    assert colbert_scores(queries, []).shape == (3, 0)


def test_similarity_is_colbert_scores(minilm):
    queries = minilm.encode(["late interaction", "capital of France"], is_query=True)
    documents = minilm.encode(["Paris is the capital of France.", "MaxSim"], is_query=False)
    np.testing.assert_array_equal(
        minilm.similarity(queries, documents), colbert_scores(queries, documents)
    )


def test_no_copy_of_float32_inputs():
    rng = np.random.default_rng(0)
    documents = rng.standard_normal((300, 180, 128)).astype(np.float32)  # 27.6 MB
    queries = rng.standard_normal((4, 32, 128)).astype(np.float32)
    from latebird._arrays import as_matrices

    views = as_matrices(documents, "documents_embeddings")
    assert all(np.shares_memory(v, documents) for v in views)
    listed = [d for d in documents]
    assert all(a is b for a, b in zip(as_matrices(listed, "d"), listed))
    _, mask = pad([d[: 100 + i % 50] for i, d in enumerate(documents)])
    masked = as_matrices(documents[:, : mask.shape[1]], "d", mask, "m")
    assert all(np.shares_memory(v, documents) for v in masked)
    colbert_scores(queries, documents)  # warm-up
    tracemalloc.start()
    try:
        colbert_scores(queries, documents)
        colbert_scores(queries, listed)
        _, peak_f32 = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        colbert_scores(queries, documents.astype(np.float64))
        _, peak_f64 = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak_f32 < 1_000_000, f"float32 input copied? peak {peak_f32} bytes"
    assert peak_f64 > documents.nbytes  # the float64 input was converted (once)


def test_threads_share_the_scorer():
    f = fixture("modernbert-v4")
    queries, documents = f.list("query"), f.list("document")
    reference = colbert_scores(queries, documents)
    results: list[np.ndarray] = []

    def work():
        for _ in range(20):
            results.append(colbert_scores(queries, documents))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 80
    for r in results:
        np.testing.assert_array_equal(r, reference)


# --- rerank and top-k ----------------------------------------------------------------------


@pytest.mark.parametrize("model", MODELS)
def test_rerank_matches_pylate(model):
    f = fixture(model)
    queries, documents = f.list("query"), f.list("document")
    candidates, ids = [], []
    for i in range(len(queries)):
        candidates.append([documents[c] for c in f.tensors[f"rerank.{i}.candidates"]])
        ids.append([int(x) for x in f.tensors[f"rerank.{i}.input_ids"]])
    ranked = rerank(ids, queries, candidates)
    assert len(ranked) == len(queries)
    compared = 0
    for i, results in enumerate(ranked):
        expected_ids = [int(x) for x in f.tensors[f"rerank.{i}.ids"]]
        expected_scores = f.tensors[f"rerank.{i}.scores"].astype(np.float64)
        raised = f.tensors[f"rerank.{i}.raised_by_padding"]
        assert [set(r) for r in results] == [{"id", "score"}] * len(ids[i])
        assert all(isinstance(r["score"], float) for r in results)
        scores = [r["score"] for r in results]
        # Best first, and stable: equal scores keep the input order.
        for a, b in zip(results, results[1:]):
            assert a["score"] >= b["score"], (model, i)
            if a["score"] == b["score"]:
                assert ids[i].index(a["id"]) < ids[i].index(b["id"]), (model, i)
        ours = {r["id"]: r["score"] for r in results}
        assert len(ours) == len(ids[i])
        for eid, escore, r in zip(expected_ids, expected_scores, raised):
            if not r:
                assert abs(ours[eid] - escore) <= TOLERANCE, (model, i, eid)
        if not raised.any():
            # PyLate's order, up to the order inside groups of equal PyLate scores.
            for k, r in enumerate(results):
                if r["id"] != expected_ids[k]:
                    group = {
                        e for e, s in zip(expected_ids, expected_scores) if s == expected_scores[k]
                    }
                    assert r["id"] in group, (model, i, k)
            compared += 1
        assert scores == sorted(scores, reverse=True)
    assert compared >= 3
    # Query 0's candidates hold one document twice: an exact tie, kept in input order.
    first = [r["id"] for r in ranked[0]]
    a, b = first.index(ids[0][0]), first.index(ids[0][-1])
    assert ranked[0][a]["score"] == ranked[0][b]["score"]
    assert b == a + 1


def test_rerank_inputs():
    f = fixture("minilm-colbert")
    queries, documents = f.list("query"), f.list("document")
    one = rerank([["a", "b", "c"]], queries[0], [documents[:3]])  # a 2-D matrix: one query
    both = rerank([["a", "b", "c"], ["x"]], queries[:2], [documents[:3], [documents[5]]])
    assert one[0] == both[0]
    assert [r["id"] for r in both[1]] == ["x"]
    padded, _ = pad(documents[:3])
    # Padded candidates without a mask: zero rows count, as in PyLate's own padding.
    assert [r["id"] for r in rerank([["a", "b", "c"]], [queries[0]], [padded])[0]] == [
        r["id"] for r in one[0]
    ]
    assert rerank([[]], queries[:1], [[]]) == [[]]


def test_top_k_is_the_head_of_the_ranking():
    f = fixture("modernbert-v4")
    queries, documents = f.list("query"), f.list("document")
    unpadded = f.tensors["scores_unpadded"]
    for i, q in enumerate(queries):
        everything = top_k(q, documents, k=len(documents) + 10)
        assert len(everything) == len(documents)
        assert top_k(q, documents, 4) == everything[:4]
        assert all(isinstance(j, int) and isinstance(s, float) for j, s in everything)
        for j, s in everything:
            assert abs(s - unpadded[i, j]) <= TOLERANCE
        for (j1, s1), (j2, s2) in zip(everything, everything[1:]):
            assert s1 > s2 or (s1 == s2 and j1 < j2)
    # Duplicated documents tie and keep their input order.
    order = [j for j, _ in top_k(queries[0], [documents[3], documents[0], documents[3]], 3)]
    assert order.index(2) == order.index(0) + 1
    assert top_k(queries[0], [], 3) == []
    heads = [d[:3] for d in documents]
    assert top_k(queries[0], np.stack(heads), 5) == top_k(queries[0], heads, 5)


# --- pooling -------------------------------------------------------------------------------


def assert_same_set(ours: np.ndarray, expected: np.ndarray, what: str) -> float:
    """Same shape, protected row first, every other row matched one to one to its nearest."""
    assert ours.shape == expected.shape, what
    if len(ours) == 0:
        return 0.0
    worst = float(np.abs(ours[0] - expected[0]).max())
    free = list(range(1, len(expected)))
    for row in ours[1:]:
        diffs = [float(np.abs(row - expected[j]).max()) for j in free]
        k = int(np.argmin(diffs))
        worst = max(worst, diffs[k])
        free.pop(k)
    assert worst <= TOLERANCE, f"{what}: max abs diff {worst:.3e}"
    return worst


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("factor", [2, 3])
def test_pooling_matches_pylate(model, factor):
    f = fixture(model)
    documents = f.list("document")
    pooled = pool_embeddings_hierarchical(documents, pool_factor=factor)
    assert isinstance(pooled, list) and len(pooled) == len(documents)
    for j, p in enumerate(pooled):
        assert p.dtype == np.float32 and p.flags.c_contiguous
        assert_same_set(p, f.tensors[f"pool{factor}.{j}"], f"{model} document {j} pool {factor}")


@pytest.mark.parametrize("case, factors", [("ties", [2, 3, 4, 7, 13]), ("random", [2, 3, 5])])
def test_pooling_synthetic(case, factors):
    f = fixture("synthetic")
    rows = f.tensors[f"{case}.input"]
    for factor in factors:
        (ours,) = pool_embeddings_hierarchical([rows], factor, protected_tokens=1)
        assert_same_set(ours, f.tensors[f"{case}.pool{factor}"], f"{case} pool {factor}")


def test_pooling_edge_cases():
    rows = fixture("synthetic").tensors["random.input"]
    (same,) = pool_embeddings_hierarchical([rows], 1)
    np.testing.assert_array_equal(same, rows)
    assert not np.shares_memory(same, rows)
    (short,) = pool_embeddings_hierarchical([rows[:2]], 2)
    np.testing.assert_array_equal(short, rows[:2])
    (empty,) = pool_embeddings_hierarchical([np.zeros((0, 16), np.float32)], 2)
    assert empty.shape == (0, 16)
    assert pool_embeddings_hierarchical([], 2) == []
    # protected_tokens=0 clusters every row; more protected rows keep more rows.
    (none,) = pool_embeddings_hierarchical([rows[:41]], 4, protected_tokens=0)
    (three,) = pool_embeddings_hierarchical([rows[:41]], 4, protected_tokens=3)
    assert len(none) == 10 and len(three) == 3 + 38 // 4
    np.testing.assert_array_equal(three[:3], rows[:3])
    method = latebird.ColBERT.pool_embeddings_hierarchical([rows], 3)
    np.testing.assert_array_equal(method[0], pool_embeddings_hierarchical([rows], 3)[0])


@pytest.mark.parametrize("factor", [2, 3])
def test_encode_pool_factor_equals_pooling_the_encoding(modernbert, minilm, factor):
    texts = json.loads(fixture("modernbert-v4").meta["texts"])["documents"]
    for model in (modernbert, minilm):
        plain = model.encode(texts, is_query=False)
        pooled = model.encode(texts, is_query=False, pool_factor=factor)
        again = pool_embeddings_hierarchical(plain, factor)
        assert len(pooled) == len(again) == len(texts)
        for a, b in zip(pooled, again):
            np.testing.assert_array_equal(a, b)


# --- bad input -----------------------------------------------------------------------------

Q = np.random.default_rng(1).standard_normal((4, 8)).astype(np.float32)
D = [np.random.default_rng(2 + i).standard_normal((3 + i, 8)).astype(np.float32) for i in range(3)]
NAN = D[1].copy()
NAN[2, 5] = np.nan
INF = D[0].copy()
INF[0, 1] = -np.inf


@pytest.mark.parametrize(
    "call, error, needles",
    [
        # wrong widths
        (
            lambda: colbert_scores([Q], [D[0], D[1][:, :6]]),
            InvalidInputError,
            ["`documents_embeddings[1]`", "dim 6", "queries_embeddings[0] has dim 8"],
        ),
        (
            lambda: colbert_scores([Q, Q[:, :4]], D),
            InvalidInputError,
            ["`queries_embeddings[1]`", "dim 4"],
        ),
        (lambda: maxsim(Q, D[0][:, :7]), InvalidInputError, ["`document`", "dim 7"]),
        (lambda: top_k(Q, [D[0], D[1][:, :3]], 2), InvalidInputError, ["`documents[1]`", "dim 3"]),
        # empty matrices
        (
            lambda: colbert_scores([Q], [D[0], np.zeros((0, 8), np.float32)]),
            InvalidInputError,
            ["`documents_embeddings[1]`", "0 rows"],
        ),
        (
            lambda: maxsim(np.zeros((0, 8), np.float32), D[0]),
            InvalidInputError,
            ["`query`", "0 rows"],
        ),
        (
            lambda: colbert_scores([Q], [np.zeros((3, 0), np.float32)]),
            InvalidInputError,
            ["`documents_embeddings[0]`", "dim 0"],
        ),
        (
            lambda: colbert_scores(
                np.stack([Q, Q]),
                np.stack([D[0], D[0]]),
                documents_mask=np.array([[1, 1, 1], [0, 0, 0]]),
            ),
            InvalidInputError,
            ["`documents_embeddings[1]`", "masked out", "documents_mask[1]"],
        ),
        # NaN / inf
        (
            lambda: colbert_scores([Q], [*D[:1], NAN]),
            InvalidInputError,
            ["`documents_embeddings[1]`", "row 2, column 5", "NaN", "finite"],
        ),
        (
            lambda: colbert_scores([INF], D),
            InvalidInputError,
            ["`queries_embeddings[0]`", "row 0, column 1", "inf"],
        ),
        (
            lambda: rerank([[1, 2]], [Q], [[D[0], NAN]]),
            InvalidInputError,
            ["`documents_embeddings[0][1]`", "NaN"],
        ),
        (
            lambda: pool_embeddings_hierarchical([D[0], NAN], 2),
            InvalidInputError,
            ["`documents_embeddings[1]`", "NaN"],
        ),
        # wrong number of dimensions
        (
            lambda: colbert_scores(Q, D),
            InvalidInputError,
            ["`queries_embeddings`", "one 2-D matrix", "wrap a single matrix in a list"],
        ),
        (
            lambda: colbert_scores([Q], [D[0], D[1][0]]),
            InvalidInputError,
            ["`documents_embeddings[1]`", "shape (8,)", "2-D"],
        ),
        (
            lambda: colbert_scores([Q], np.zeros((2, 3, 4, 8), np.float32)),
            InvalidInputError,
            ["`documents_embeddings`", "shape (2, 3, 4, 8)"],
        ),
        (lambda: maxsim(Q[None], D[0]), InvalidInputError, ["`query`", "shape (1, 4, 8)"]),
        # ragged input
        (
            lambda: colbert_scores([Q], [[[1.0, 2.0], [3.0]]]),
            InvalidInputError,
            ["`documents_embeddings[0]`", "ragged"],
        ),
        (
            lambda: colbert_scores([Q], np.array([D[0], D[1]], dtype=object)),
            InvalidInputError,
            ["`documents_embeddings`", "ragged"],
        ),
        # lists of the wrong lengths
        (
            lambda: rerank([[1], [2]], [Q], [[D[0]], [D[1]]]),
            InvalidInputError,
            ["`documents_embeddings`", "2 candidate lists", "one per query (1)"],
        ),
        (
            lambda: rerank([[1], [2]], [Q, Q, Q], [[D[0]], [D[1]], [D[2]]]),
            InvalidInputError,
            ["`documents_ids`", "2 id lists", "one per query (3)"],
        ),
        (
            lambda: rerank([[1, 2, 3]], [Q], [[D[0], D[1]]]),
            InvalidInputError,
            ["`documents_ids[0]`", "3 ids", "(2)"],
        ),
        (
            lambda: colbert_scores(np.stack([Q, Q]), [D[0]], queries_mask=np.ones((3, 4))),
            InvalidInputError,
            ["`queries_mask`", "3 masks", "(2)"],
        ),
        (
            lambda: colbert_scores(np.stack([Q, Q]), [D[0]], queries_mask=np.ones((2, 5))),
            InvalidInputError,
            ["`queries_mask[0]`", "5 entries", "(4)"],
        ),
        (
            lambda: colbert_scores([Q], [D[0]], documents_mask=[np.array([1, 0.5, 1])]),
            InvalidInputError,
            ["`documents_mask[0]`", "0 and 1"],
        ),
        # scalar arguments
        (lambda: top_k(Q, D, 0), InvalidInputError, ["`k`", ">= 1"]),
        (lambda: top_k(Q, D, True), InvalidInputError, ["`k`"]),
        (lambda: pool_embeddings_hierarchical(D, 0), InvalidInputError, ["`pool_factor`"]),
        (
            lambda: pool_embeddings_hierarchical(D, 2, protected_tokens=-1),
            InvalidInputError,
            ["`protected_tokens`", ">= 0"],
        ),
        # not arrays / not numbers
        (
            lambda: colbert_scores([Q], [D[0], "text"]),
            TypeError,
            ["`documents_embeddings[1]`", "str", "float32"],
        ),
        (lambda: colbert_scores([Q], [D[0], None]), TypeError, ["`documents_embeddings[1]`"]),
        (lambda: colbert_scores([Q], 42), TypeError, ["`documents_embeddings`", "int"]),
        (
            lambda: colbert_scores([Q], [D[0], D[1].astype(np.complex64)]),
            TypeError,
            ["`documents_embeddings[1]`", "complex64", "float32"],
        ),
        (lambda: colbert_scores([Q], [D[0] > 0]), TypeError, ["`documents_embeddings[0]`", "bool"]),
        (lambda: colbert_scores([Q], [[["a", "b"]]]), TypeError, ["`documents_embeddings[0]`"]),
        (
            lambda: rerank([[1]], [Q], [D[0]]),
            InvalidInputError,
            ["`documents_embeddings[0]`", "one 2-D matrix"],
        ),
        (lambda: rerank("ab", [Q], [[D[0]]]), TypeError, ["`documents_ids`"]),
    ],
)
def test_bad_input(call, error, needles):
    with pytest.raises(error) as info:
        call()
    message = str(info.value)
    for needle in needles:
        assert needle in message, f"{needle!r} not in {message!r}"
    if error is InvalidInputError:
        assert message.startswith("invalid argument `"), message
        assert isinstance(info.value, latebird.LatebirdError)
