"""latebird.spark on a local[2] Spark session: bitwise the single-process output."""

from __future__ import annotations

import os
import shutil
import sys

import numpy as np
import pytest
from conftest import model_dir

pytest.importorskip("pyarrow")
pytest.importorskip("pyspark")
if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
    pytest.skip(
        "PySpark needs Java (apt-get install openjdk-17-jre-headless)", allow_module_level=True
    )

import latebird.spark

MODEL = str(model_dir("minilm-colbert"))
TEXTS = [f"Row {i} is about theme {i % 13}. {'Some filler. ' * (i % 9)}" for i in range(400)]
TEXTS[3] = ""
TEXTS[4] = "Émile's 東京 café ☕ [MASK] [SEP]"


@pytest.fixture(scope="module")
def spark():
    from pyspark import SparkContext
    from pyspark.sql import SparkSession

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PYSPARK_PYTHON", sys.executable)
        patch.setenv("PYSPARK_DRIVER_PYTHON", sys.executable)
        session = (
            SparkSession.builder.master("local[2]")
            .appName("latebird-test")
            .config("spark.ui.enabled", "false")
            .config("spark.sql.shuffle.partitions", "2")
            .config("spark.sql.execution.arrow.maxRecordsPerBatch", "64")
            .getOrCreate()
        )
        session.sparkContext.setLogLevel("ERROR")
        gateway = SparkContext._gateway
        try:
            yield session
        finally:
            session.stop()
            # Stop the JVM too: nothing keeps running after the tests.
            if gateway is not None:
                gateway.shutdown()
                process = getattr(gateway, "proc", None)
                if process is not None:
                    process.terminate()
                    process.wait(timeout=60)
            SparkContext._gateway = None
            SparkContext._jvm = None


def collect(frame) -> dict:
    table = frame.toArrow()
    ids = table.column("id").to_pylist()
    return {
        i: np.array(e, dtype=np.float32)
        for i, e in zip(ids, table.column("embeddings").to_pylist())
    }


def test_local2_equals_one_process(spark, minilm) -> None:
    frame = spark.createDataFrame([(i, t) for i, t in enumerate(TEXTS)], "id long, text string")
    frame = frame.repartition(2)
    encoded = latebird.spark.encode(frame, MODEL)
    assert encoded.schema.simpleString() == (
        "struct<id:bigint,text:string,embeddings:array<array<float>>>"
    )
    got = collect(encoded)
    assert sorted(got) == list(range(len(TEXTS)))
    for i, want in enumerate(minilm.encode(TEXTS, is_query=False)):
        np.testing.assert_array_equal(got[i], want)


def test_queries_and_settings(spark) -> None:
    frame = spark.createDataFrame([(i, t) for i, t in enumerate(TEXTS[:50])], "id long, q string")
    encoded = latebird.spark.encode(frame, MODEL, "q", is_query=True, query_length=20)
    got = collect(encoded)
    want = latebird.ColBERT(MODEL, query_length=20).encode(TEXTS[:50], is_query=True)
    for i, w in enumerate(want):
        assert w.shape[0] == 20
        np.testing.assert_array_equal(got[i], w)


def test_null_text_is_a_clear_error(spark) -> None:
    frame = spark.createDataFrame([(0, "a"), (1, None)], "id long, text string")
    with pytest.raises(
        Exception, match=r"column 'text': row \d of the batch is NoneType; expected"
    ):
        latebird.spark.encode(frame, MODEL).collect()
