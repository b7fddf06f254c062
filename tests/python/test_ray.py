"""latebird.ray on a local Ray cluster of two worker nodes: bitwise the single-process output."""

from __future__ import annotations

import os

import numpy as np
import pytest
from conftest import model_dir

pa = pytest.importorskip("pyarrow")
ray = pytest.importorskip("ray")
pytest.importorskip("ray.data")

import latebird.ray  # noqa: E402
from latebird.parquet import embeddings_from_arrow  # noqa: E402

MODEL = str(model_dir("minilm-colbert"))
TEXTS = [f"Text {i} on subject {i % 19}. {'More words. ' * (i % 7)}" for i in range(500)]
TEXTS[7] = ""
TEXTS[8] = "Émile's 東京 café ☕ [MASK] [SEP]"


@pytest.fixture(scope="module")
def cluster():
    """A head node without CPUs (the driver) and two worker nodes of one CPU each, so the
    two encoder actors run on two different nodes as on a real cluster."""
    from ray.cluster_utils import Cluster

    with pytest.MonkeyPatch.context() as patch:
        # The workers import tests/python/ray_probe.py.
        here = os.path.dirname(os.path.abspath(__file__))
        path = os.environ.get("PYTHONPATH")
        patch.setenv("PYTHONPATH", here + (os.pathsep + path if path else ""))
        patch.setenv("RAY_DISABLE_USAGE_STATS", "1")
        nodes = Cluster(
            initialize_head=True,
            head_node_args={"num_cpus": 0, "include_dashboard": False},
        )
        try:
            for _ in range(2):
                nodes.add_node(num_cpus=1)
            ray.init(address=nodes.address, logging_level="ERROR", log_to_driver=False)
            ray.data.DataContext.get_current().enable_progress_bars = False
            yield nodes
        finally:
            ray.shutdown()
            nodes.shutdown()


def test_two_workers_equal_one_process(cluster, minilm) -> None:
    items = [{"id": f"t{i}", "text": t} for i, t in enumerate(TEXTS)]
    dataset = ray.data.from_items(items, override_num_blocks=6)
    encoded = latebird.ray.encode(dataset, MODEL, workers=2, cpus_per_worker=1, rows_per_batch=64)
    table = pa.concat_tables(ray.get(encoded.to_arrow_refs()))
    assert table.column_names == ["id", "text", "embeddings"]
    got = dict(zip(table.column("id").to_pylist(), embeddings_from_arrow(table["embeddings"])))
    assert sorted(got) == sorted(item["id"] for item in items)
    want = minilm.encode(TEXTS, is_query=False)
    for i, w in enumerate(want):
        assert got[f"t{i}"].dtype == np.float32
        np.testing.assert_array_equal(got[f"t{i}"], w)


def test_one_actor_per_node_with_threads_of_its_cpus(cluster) -> None:
    from ray_probe import ProbeEncoder

    dataset = ray.data.from_items([{"text": t} for t in TEXTS[:200]], override_num_blocks=8)
    probed = dataset.map_batches(
        ProbeEncoder,
        fn_constructor_kwargs={"model": MODEL},  # threads: from the actor's CPUs
        batch_size=16,
        batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(size=2),
        num_cpus=1,
    )
    table = pa.concat_tables(ray.get(probed.to_arrow_refs()))
    assert table.num_rows == 200
    worker_nodes = {n["NodeID"] for n in ray.nodes() if n["Resources"].get("CPU")}
    assert set(table.column("node").to_pylist()) == worker_nodes and len(worker_nodes) == 2
    assert set(table.column("threads").to_pylist()) == {"1"}


def test_queries_pooling_and_a_text_column_of_another_name(cluster, minilm) -> None:
    dataset = ray.data.from_items([{"q": t} for t in TEXTS[:40]], override_num_blocks=2)
    queries = latebird.ray.encode(dataset, MODEL, "q", output_column="e", is_query=True,
                                  workers=2, query_length=24)  # fmt: skip
    rows = queries.take_all()
    by_text = {row["q"]: np.array(row["e"], dtype=np.float32) for row in rows}
    want = latebird.ColBERT(MODEL, query_length=24).encode(TEXTS[:40], is_query=True)
    for text, w in zip(TEXTS[:40], want):
        assert w.shape[0] == 24
        np.testing.assert_array_equal(by_text[text], w)
    documents = latebird.ray.encode(dataset, MODEL, "q", pool_factor=2, workers=1)
    pooled = {row["q"]: np.array(row["embeddings"], np.float32) for row in documents.take_all()}
    for text, w in zip(TEXTS[:40], minilm.encode(TEXTS[:40], is_query=False, pool_factor=2)):
        np.testing.assert_array_equal(pooled[text], w)


def test_encoder_takes_numpy_pandas_and_arrow_batches(minilm) -> None:
    encoder = latebird.ray.Encoder(MODEL, threads=1)
    want = minilm.encode(TEXTS[:5], is_query=False)
    out = encoder({"text": np.array(TEXTS[:5], dtype=object), "n": np.arange(5)})
    assert list(out["n"]) == [0, 1, 2, 3, 4]
    for got, w in zip(out["embeddings"], want):
        np.testing.assert_array_equal(got, w)
    pandas = pytest.importorskip("pandas")
    frame = encoder(pandas.DataFrame({"text": TEXTS[:5]}))
    for got, w in zip(frame["embeddings"], want):
        np.testing.assert_array_equal(got, w)
    table = encoder(pa.table({"text": TEXTS[:5]}))
    for got, w in zip(embeddings_from_arrow(table["embeddings"]), want):
        np.testing.assert_array_equal(got, w)
    with pytest.raises(TypeError, match="row 1 of the batch is NoneType"):
        encoder({"text": np.array(["a", None], dtype=object)})
