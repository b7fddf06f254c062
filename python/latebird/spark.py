"""latebird on PySpark: encode a DataFrame column of texts on the executors, with `mapInArrow`.

    from pyspark.sql import SparkSession
    import latebird.spark
    spark = SparkSession.builder.getOrCreate()
    docs = spark.read.parquet("hdfs:///corpus/")                          # a `text` column
    encoded = latebird.spark.encode(docs, "/models/GTE-ModernColBERT-v1")  # + `embeddings`
    encoded.write.parquet("hdfs:///embeddings/")

The embeddings column is `array<array<float>>` (one `[n_tokens][dim]` matrix per row,
Arrow `list<list<float32>>`), bitwise what `latebird.ColBERT.encode` gives in one process.
Each Python worker loads the model once (kept for the worker's later tasks, as Spark reuses
its Python workers) and runs the engine with `spark.task.cpus` threads. The model folder must
be readable on every executor (a shared file system, or `SparkContext.addFile`/a hub id with
the cache on each node). Needs `pip install 'latebird[spark]'` on the driver and the
executors' Python.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

SPARK_EXTRA = "pip install 'latebird[spark]'"

# One model per (model, settings) in each Python worker process.
_MODELS: dict[tuple, Any] = {}


def _task_cpus() -> int | None:
    try:
        from pyspark import TaskContext

        context = TaskContext.get()
        return int(context.cpus()) if context is not None else None
    except Exception:
        return None


def _model(model: str, threads: int | None, model_kwargs: dict) -> Any:
    key = (model, tuple(sorted((k, repr(v)) for k, v in model_kwargs.items())))
    if key not in _MODELS:
        threads = threads or _task_cpus()
        if threads and not _MODELS:
            # The engine's thread pool is process-wide and starts with the first encode.
            os.environ["RAYON_NUM_THREADS"] = str(threads)
        from .colbert import ColBERT

        _MODELS[key] = ColBERT(model, **model_kwargs)
    return _MODELS[key]


def encode_batches(
    batches: Iterator[Any],
    model: str,
    text_column: str = "text",
    output_column: str = "embeddings",
    is_query: bool = False,
    batch_size: int = 32,
    pool_factor: int = 1,
    threads: int | None = None,
    **model_kwargs: Any,
) -> Iterator[Any]:
    """The function `mapInArrow` runs: Arrow record batches in, the same batches with an
    `output_column` of embeddings out."""
    import pyarrow as pa

    from ._inputs import check_column_texts
    from ._outputs import embeddings_to_arrow

    encoder = _model(model, threads, model_kwargs)
    for batch in batches:
        texts = batch.column(text_column).to_pylist()
        check_column_texts(texts, text_column)
        embeddings = encoder.encode(
            texts,
            is_query=is_query,
            batch_size=batch_size,
            pool_factor=pool_factor,
            show_progress_bar=False,
        )
        column = embeddings_to_arrow(embeddings, encoder.embedding_dim, fixed_size=False)
        keep = [name for name in batch.schema.names if name != output_column]
        yield pa.RecordBatch.from_arrays(
            [batch.column(name) for name in keep] + [column], names=[*keep, output_column]
        )


def encode(
    dataframe: Any,
    model: str,
    text_column: str = "text",
    *,
    output_column: str = "embeddings",
    is_query: bool = False,
    batch_size: int = 32,
    pool_factor: int = 1,
    threads: int | None = None,
    **model_kwargs: Any,
) -> Any:
    """Returns `dataframe` with an `output_column` of `array<array<float>>` embeddings
    (lazily, as Spark does). `threads`: engine threads per Python worker (default
    `spark.task.cpus`). Rows reach the engine in Arrow batches of
    `spark.sql.execution.arrow.maxRecordsPerBatch` (default 10,000); the other keyword
    arguments go to `latebird.ColBERT`."""
    try:
        from pyspark.sql.types import ArrayType, FloatType, StructField, StructType
    except ImportError:
        raise ImportError(f"latebird.spark needs PySpark: {SPARK_EXTRA}") from None
    fields = [f for f in dataframe.schema.fields if f.name != output_column]
    matrix = ArrayType(ArrayType(FloatType(), containsNull=False), containsNull=False)
    schema = StructType([*fields, StructField(output_column, matrix, nullable=False)])
    settings = {
        "model": model,
        "text_column": text_column,
        "output_column": output_column,
        "is_query": is_query,
        "batch_size": batch_size,
        "pool_factor": pool_factor,
        "threads": threads,
        **model_kwargs,
    }

    def run(batches: Iterator[Any]) -> Iterator[Any]:
        return encode_batches(batches, **settings)

    return dataframe.mapInArrow(run, schema)
