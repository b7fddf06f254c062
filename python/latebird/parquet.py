"""Reading back what `latebird encode --format parquet` writes (needs `latebird[parquet]`).

    from latebird.parquet import read_embeddings
    ids, embeddings = read_embeddings("corpus-embeddings/")  # float32 [n_tokens, dim] each

The folder holds `part-NNNNN.parquet` shards with an `id` string column and an `embedding`
column of `list<fixed_size_list<float32, dim>>`; pyarrow, Polars and DuckDB read them too.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ._outputs import arrow_to_embeddings, embeddings_to_arrow

__all__ = ["embeddings_from_arrow", "embeddings_to_arrow", "read_embeddings"]


def embeddings_from_arrow(column: Any) -> list[np.ndarray]:
    """One float32 `[n_tokens, dim]` array per row of an Arrow `list<fixed_size_list<float32,
    dim>>` column (a ChunkedArray or an Array), viewing the Arrow buffers without a copy."""
    return arrow_to_embeddings(column)


def read_embeddings(path: str | os.PathLike[str]) -> tuple[list[str], list[np.ndarray]]:
    """The ids and embeddings of one shard, or of every shard of a folder in order."""
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise ImportError(
            "reading Parquet needs pyarrow: pip install 'latebird[parquet]'"
        ) from None
    path = os.fspath(path)
    if os.path.isdir(path):
        shards = sorted(
            os.path.join(path, name)
            for name in os.listdir(path)
            if name.startswith("part-") and name.endswith(".parquet")
        )
    else:
        shards = [path]
    ids: list[str] = []
    embeddings: list[np.ndarray] = []
    for shard in shards:
        table = pq.read_table(shard, columns=["id", "embedding"])
        ids += table.column("id").to_pylist()
        embeddings += arrow_to_embeddings(table.column("embedding"))
    return ids, embeddings
