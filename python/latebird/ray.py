"""latebird on Ray Data: encode a `ray.data.Dataset` of texts on every node of a cluster.

    import ray, latebird.ray
    ds = ray.data.read_parquet("s3://bucket/corpus/")          # a `text` column
    ds = latebird.ray.encode(ds, "lightonai/GTE-ModernColBERT-v1", workers=8, cpus_per_worker=4)
    ds.write_parquet("s3://bucket/embeddings/")                 # id, text, embeddings

`Encoder` is the callable class given to `Dataset.map_batches`: each actor loads the model
once and sizes the engine's thread pool to the CPUs Ray gave it. Batches come in and go out
as Arrow tables (numpy dicts and pandas frames work too), the embeddings as an Arrow column
`list<fixed_size_list<float32, dim>>` (numpy: an object array of `[n_tokens, dim]` arrays).
The embeddings are bitwise those of `latebird.ColBERT.encode` in one process: the engine's
output does not depend on how the texts are split into batches.

Needs `pip install 'latebird[ray]'` (Ray Data and pyarrow) on the driver and every node.
"""

from __future__ import annotations

import os
from typing import Any

from ._inputs import check_column_texts
from .colbert import ColBERT

RAY_EXTRA = "pip install 'latebird[ray]'"


def _assigned_cpus() -> int | None:
    """Whole CPUs Ray reserved for this actor, when running inside Ray."""
    try:
        import ray

        if not ray.is_initialized():
            return None
        cpus = ray.get_runtime_context().get_assigned_resources().get("CPU")
    except Exception:
        return None
    return max(1, int(cpus)) if cpus else None


class Encoder:
    """Encodes the `text_column` of each batch into `output_column`; one model per instance.

    `threads`: the engine's threads in this process (default: the CPUs Ray assigned to the
    actor, else RAYON_NUM_THREADS, else every core). The pool is process-wide and set when
    the engine first runs, so the first model of a process decides it. The other keyword
    arguments go to `latebird.ColBERT` (`query_length`, `precision`, ...).
    """

    def __init__(
        self,
        model: str,
        *,
        text_column: str = "text",
        output_column: str = "embeddings",
        is_query: bool = False,
        batch_size: int = 32,
        pool_factor: int = 1,
        threads: int | None = None,
        **model_kwargs: Any,
    ) -> None:
        threads = threads or _assigned_cpus()
        if threads:
            os.environ["RAYON_NUM_THREADS"] = str(threads)
        self.threads = threads
        self.model = ColBERT(model, **model_kwargs)
        self.text_column = text_column
        self.output_column = output_column
        self.is_query = is_query
        self.batch_size = batch_size
        self.pool_factor = pool_factor

    def _encode(self, texts: list[Any]) -> list[Any]:
        check_column_texts(texts, self.text_column)
        return self.model.encode(
            texts,
            is_query=self.is_query,
            batch_size=self.batch_size,
            pool_factor=self.pool_factor,
            show_progress_bar=False,
        )

    def __call__(self, batch: Any) -> Any:
        import numpy as np

        if isinstance(batch, dict):  # batch_format="numpy"
            embeddings = self._encode(list(batch[self.text_column]))
            column = np.empty(len(embeddings), dtype=object)
            column[:] = embeddings
            return {**batch, self.output_column: column}
        if hasattr(batch, "column_names") and hasattr(batch, "append_column"):  # Arrow
            from ._outputs import embeddings_to_arrow

            embeddings = self._encode(batch.column(self.text_column).to_pylist())
            if self.output_column in batch.column_names:
                batch = batch.drop_columns([self.output_column])
            arrow = embeddings_to_arrow(embeddings, self.model.embedding_dim)
            return batch.append_column(self.output_column, arrow)
        if hasattr(batch, "assign"):  # pandas
            embeddings = self._encode(batch[self.text_column].tolist())
            return batch.assign(**{self.output_column: embeddings})
        raise TypeError(f"unsupported batch type {type(batch).__name__}")


def encode(
    dataset: Any,
    model: str,
    text_column: str = "text",
    *,
    output_column: str = "embeddings",
    is_query: bool = False,
    batch_size: int = 32,
    pool_factor: int = 1,
    workers: int | tuple[int, int] | None = None,
    cpus_per_worker: int = 1,
    rows_per_batch: int = 256,
    **model_kwargs: Any,
) -> Any:
    """Returns `dataset` with an `output_column` of embeddings (lazily, as Ray Data does).

    `workers`: actors (each loads the model once): a number, a `(min, max)` autoscaling
    range, or None for Ray's default autoscaling pool. `cpus_per_worker`: CPUs reserved per
    actor, which is also its engine's thread count. `rows_per_batch`: texts per
    `map_batches` call (`batch_size` is the engine's batch, as in `ColBERT.encode`).
    """
    try:
        import ray.data
    except ImportError:
        raise ImportError(f"latebird.ray needs Ray Data: {RAY_EXTRA}") from None
    if isinstance(workers, tuple):
        compute = ray.data.ActorPoolStrategy(min_size=workers[0], max_size=workers[1])
    elif workers is not None:
        compute = ray.data.ActorPoolStrategy(size=workers)
    else:
        compute = None
    return dataset.map_batches(
        Encoder,
        fn_constructor_kwargs={
            "model": model,
            "text_column": text_column,
            "output_column": output_column,
            "is_query": is_query,
            "batch_size": batch_size,
            "pool_factor": pool_factor,
            "threads": cpus_per_worker,
            **model_kwargs,
        },
        batch_size=rows_per_batch,
        batch_format="pyarrow",
        compute=compute,
        num_cpus=cpus_per_worker,
    )
