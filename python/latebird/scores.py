"""MaxSim (late-interaction) scores, with PyLate's names: `colbert_scores` and `maxsim`.

Inputs are what `ColBERT.encode` (latebird's or PyLate's) returns: a list of float32
`[n_tokens, dim]` arrays, or a padded 3-D `[n, n_tokens, dim]` array with optional 0/1 masks.
torch tensors and nested lists are accepted too. float32 C-contiguous arrays are read in place
(no copy); other float and integer dtypes are converted to float32 once. The computation runs in
Rust with the GIL released, on up to `RAYON_NUM_THREADS` threads (default: all cores).

Each matrix is scored on its own rows: a document shorter than another is not padded, so a query
row whose dot products with a document are all negative counts its true (negative) maximum,
where PyLate's zero padding counts 0. Rows whose mask is 0 are dropped.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from . import _latebird
from ._arrays import as_matrices, as_matrix

__all__ = ["colbert_scores", "maxsim"]


def colbert_scores(
    queries_embeddings: Any,
    documents_embeddings: Any,
    queries_mask: Any = None,
    documents_mask: Any = None,
) -> npt.NDArray[np.float32]:
    """MaxSim score of every query against every document (PyLate's `colbert_scores`).

    Args:
        queries_embeddings: a list of `[n_tokens, dim]` matrices (lengths may differ), or a
            3-D `[n_queries, n_tokens, dim]` array (numpy array or torch tensor).
        documents_embeddings: the same for the documents.
        queries_mask: optional 0/1 mask, `[n_queries, n_tokens]` (or one 1-D mask per matrix);
            rows with mask 0 are left out. Without a mask every row counts, zero rows too.
        documents_mask: the same for the documents.

    Returns:
        A float32 array `[n_queries, n_documents]`: `scores[i, j]` is
        `sum over the rows of query i of (max over the rows of document j of <q, d>)`.

    Raises:
        InvalidInputError: a matrix with 0 rows (or every row masked), a width different from the
            first query's, a NaN or infinite value, a wrong number of dimensions, a ragged
            nested list, or a mask of the wrong length; the message names the argument and the
            index, e.g. ``invalid argument `documents_embeddings[3]`: ...``.
        TypeError: an item that is not an array, or a dtype that is not a number.
    """
    queries = as_matrices(queries_embeddings, "queries_embeddings", queries_mask, "queries_mask")
    documents = as_matrices(
        documents_embeddings, "documents_embeddings", documents_mask, "documents_mask"
    )
    return _latebird.scores(queries, documents)


def maxsim(query: Any, document: Any) -> float:
    """MaxSim score of one query `[n_query_tokens, dim]` against one document
    `[n_document_tokens, dim]`: the sum over the query rows of the best dot product with a
    document row. Raises `InvalidInputError` or `TypeError` as `colbert_scores` does, naming
    `query` or `document`."""
    return float(_latebird.maxsim(as_matrix(query, "query"), as_matrix(document, "document")))
