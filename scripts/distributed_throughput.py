#!/usr/bin/env python3
"""Documents/s of one process, latebird.ray (local, 2 one-CPU workers) and latebird.spark
(local[2]) on the same texts: the README's "Large corpora" figures.

    python scripts/distributed_throughput.py /tmp/docs-10k.jsonl [--limit 4000] [--workers 2]

Each engine runs one thread per worker. The time of each path runs from the first row asked
to the last row received (cluster start-up is printed separately), and each output is
checked bitwise against the one-process embeddings.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "python"))
# Ray's and Spark's worker processes import latebird from the same place.
os.environ["PYTHONPATH"] = os.pathsep.join(
    [str(REPO / "python"), *filter(None, [os.environ.get("PYTHONPATH")])]
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("corpus", help="JSONL with a text field")
    parser.add_argument("--model", default=str(REPO / "tests" / "models" / "minilm-colbert"))
    parser.add_argument("--limit", type=int, default=4000)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    os.environ["RAYON_NUM_THREADS"] = "1"
    with open(args.corpus, encoding="utf-8") as f:
        texts = [json.loads(line)["text"] for line, _ in zip(f, range(args.limit))]
    n = len(texts)

    import latebird

    model = latebird.ColBERT(args.model)
    start = time.perf_counter()
    want = model.encode(texts, is_query=False)
    single = time.perf_counter() - start
    print(f"one process, 1 thread: {n / single:.0f} documents/s ({single:.1f} s for {n})")

    import latebird.ray
    import ray

    start = time.perf_counter()
    ray.init(num_cpus=args.workers, include_dashboard=False, logging_level="ERROR")
    ray.data.DataContext.get_current().enable_progress_bars = False
    print(f"Ray start-up: {time.perf_counter() - start:.1f} s")
    try:
        dataset = ray.data.from_items(
            [{"i": i, "text": t} for i, t in enumerate(texts)], override_num_blocks=16
        )
        start = time.perf_counter()
        encoded = latebird.ray.encode(dataset, args.model, workers=args.workers)
        rows = encoded.take_all()
        took = time.perf_counter() - start
    finally:
        ray.shutdown()
    for row in rows:
        np.testing.assert_array_equal(np.array(row["embeddings"], np.float32), want[row["i"]])
    print(f"Ray, {args.workers} workers x 1 CPU: {n / took:.0f} documents/s ({took:.1f} s, "
          "including actor start and model loads); bitwise equal")  # fmt: skip

    import latebird.spark
    from pyspark import SparkContext
    from pyspark.sql import SparkSession

    os.environ["PYSPARK_PYTHON"] = sys.executable
    start = time.perf_counter()
    spark = (
        SparkSession.builder.master(f"local[{args.workers}]")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.execution.arrow.maxRecordsPerBatch", "256")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    gateway = SparkContext._gateway
    print(f"Spark start-up: {time.perf_counter() - start:.1f} s")
    try:
        frame = spark.createDataFrame(list(enumerate(texts)), "i long, text string")
        frame = frame.repartition(args.workers * 4).cache()
        frame.count()
        start = time.perf_counter()
        table = latebird.spark.encode(frame, args.model).toArrow()
        took = time.perf_counter() - start
    finally:
        spark.stop()
        if gateway is not None:
            gateway.shutdown()
            process = getattr(gateway, "proc", None)
            if process is not None:
                process.terminate()
                process.wait(timeout=60)
    for i, e in zip(table.column("i").to_pylist(), table.column("embeddings").to_pylist()):
        np.testing.assert_array_equal(np.array(e, np.float32), want[i])
    print(f"Spark local[{args.workers}]: {n / took:.0f} documents/s ({took:.1f} s, "
          "including Python worker start and model loads); bitwise equal")  # fmt: skip


if __name__ == "__main__":
    main()
