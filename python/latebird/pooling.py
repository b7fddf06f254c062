"""Hierarchical token pooling of document embeddings (PyLate's `pool_embeddings_hierarchical`).

The first `protected_tokens` rows are kept as they are; the other `n` rows are clustered into at
most `max(n // pool_factor, 1)` clusters (Ward linkage on `1 - cos` distances, cut with scipy's
`maxclust`) and each cluster is replaced by the mean of its rows. A document with too few rows to
reduce comes back unchanged. The result equals PyLate's as a set of rows (the order of the
clusters may differ).
"""

from __future__ import annotations

from typing import Any

from . import _latebird
from ._arrays import Matrix, as_matrices, positive_int

__all__ = ["pool_embeddings_hierarchical"]


def pool_embeddings_hierarchical(
    documents_embeddings: Any, pool_factor: int = 1, protected_tokens: int = 1
) -> list[Matrix]:
    """Pools each document's token embeddings; returns one float32 `[n_pooled, dim]` array per
    document, in input order (new arrays; the inputs are not modified).

    Args:
        documents_embeddings: a list of `[n_tokens, dim]` matrices (or a 3-D array).
        pool_factor: 1 keeps every row; `f` leaves about `n / f` rows.
        protected_tokens: leading rows kept out of the clustering (PyLate: 1, the [CLS] row).

    Raises:
        InvalidInputError: `pool_factor` below 1, `protected_tokens` below 0, a NaN or infinite
            value or a wrong shape (naming `documents_embeddings[i]`).
        TypeError: an item that is not an array.
    """
    pool_factor = positive_int(pool_factor, "pool_factor")
    protected_tokens = positive_int(protected_tokens, "protected_tokens", minimum=0)
    documents = as_matrices(documents_embeddings, "documents_embeddings")
    return _latebird.pool_hierarchical(documents, pool_factor, protected_tokens)
