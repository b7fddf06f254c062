"""Ranking with MaxSim: PyLate's `rerank` and a `top_k` search over one query's documents.

Ties keep the input order (the sort is stable); PyLate leaves the order of equal scores
unspecified. Candidates are scored on their own rows (see `latebird.scores`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypedDict

from . import _latebird
from ._arrays import as_matrices, as_matrix, invalid, is_array_like, positive_int, to_array

__all__ = ["RerankResult", "rerank", "top_k"]


class RerankResult(TypedDict):
    """One reranked document: its id (as given) and its MaxSim score."""

    id: int | str | Any
    score: float


def _queries(queries_embeddings: Any) -> list:
    # As in PyLate, a single 2-D matrix is one query.
    if is_array_like(queries_embeddings):
        array = to_array(queries_embeddings, "queries_embeddings", "an array")
        if array.ndim == 2:
            return [as_matrix(array, "queries_embeddings[0]")]
    return as_matrices(queries_embeddings, "queries_embeddings")


def rerank(
    documents_ids: Sequence[Sequence[Any]],
    queries_embeddings: Any,
    documents_embeddings: Sequence[Any],
) -> list[list[RerankResult]]:
    """Reranks each query's candidate documents by MaxSim (PyLate's `rank.rerank`).

    Args:
        documents_ids: one list of ids per query, one id per candidate (any objects).
        queries_embeddings: the queries: a list of `[n_tokens, dim]` matrices, a 3-D array, or
            one 2-D matrix for a single query.
        documents_embeddings: one entry per query: its candidates, as a list of matrices or a
            3-D array, in the order of `documents_ids[i]`.

    Returns:
        Per query, `[{"id": id, "score": score}, ...]` for every candidate, best first; equal
        scores keep the input order.

    Raises:
        InvalidInputError: lists of the wrong lengths (naming `documents_ids` or
            `documents_embeddings` and the index), and the matrix checks of `colbert_scores`.
        TypeError: an item that is not an array.
    """
    queries = _queries(queries_embeddings)
    if is_array_like(documents_embeddings) or not isinstance(documents_embeddings, Sequence):
        raise TypeError(
            f"`documents_embeddings` is {type(documents_embeddings).__name__}; expected a list "
            "with one entry (a list of matrices or a 3-D array) per query"
        )
    if not isinstance(documents_ids, Sequence) or isinstance(documents_ids, (str, bytes)):
        raise TypeError(
            f"`documents_ids` is {type(documents_ids).__name__}; expected one list of ids per query"
        )
    n = len(queries)
    if len(documents_embeddings) != n:
        raise invalid(
            "documents_embeddings",
            f"has {len(documents_embeddings)} candidate lists; expected one per query ({n})",
        )
    if len(documents_ids) != n:
        raise invalid(
            "documents_ids", f"has {len(documents_ids)} id lists; expected one per query ({n})"
        )
    candidates = [
        as_matrices(docs, f"documents_embeddings[{i}]")
        for i, docs in enumerate(documents_embeddings)
    ]
    ids = []
    for i, (id_list, docs) in enumerate(zip(documents_ids, candidates)):
        if isinstance(id_list, (str, bytes)) or not hasattr(id_list, "__len__"):
            raise TypeError(
                f"`documents_ids[{i}]` is {type(id_list).__name__}; expected a list of ids"
            )
        id_list = list(id_list)
        if len(id_list) != len(docs):
            raise invalid(
                f"documents_ids[{i}]",
                f"has {len(id_list)} ids; expected one per candidate in "
                f"documents_embeddings[{i}] ({len(docs)})",
            )
        ids.append(id_list)
    ranked = _latebird.rerank(queries, candidates)
    return [
        [RerankResult(id=id_list[j], score=float(score)) for j, score in order]
        for id_list, order in zip(ids, ranked)
    ]


def top_k(query: Any, documents: Any, k: int = 10) -> list[tuple[int, float]]:
    """The `k` documents with the highest MaxSim score against `query`, best first.

    Args:
        query: one `[n_tokens, dim]` matrix.
        documents: a list of `[n_tokens, dim]` matrices or a 3-D array.
        k: how many to return (all of them when there are fewer); at least 1.

    Returns:
        `[(index into documents, score), ...]`, best first; equal scores keep the input order.

    Raises:
        InvalidInputError: `k` below 1, and the matrix checks of `colbert_scores` (naming
            `query` or `documents[j]`).
        TypeError: an item that is not an array.
    """
    k = positive_int(k, "k")
    q = as_matrix(query, "query")
    docs = as_matrices(documents, "documents")
    return [(int(i), float(s)) for i, s in _latebird.top_k(q, docs, k)]
