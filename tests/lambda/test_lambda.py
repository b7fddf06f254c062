"""End-to-end tests of the Lambda functions through a local Runtime API emulator: the Rust
`bootstrap` of target/lambda/latebird-lambda.zip (scripts/build_lambda.sh) and the Python
handler of target/lambda/latebird-lambda-python.zip (scripts/build_lambda_python.sh). Both
answer the same contract (crates/lambda/README.md). Cold init and warm latency go to
target/lambda/figures-{kind}.json."""

from __future__ import annotations

import json
import statistics
import sys
import time
import zipfile
from pathlib import Path

import latebird
import numpy as np
import pytest
from runtime_api import Function

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "target" / "lambda"
ZIPS = {"rust": OUT / "latebird-lambda.zip", "python": OUT / "latebird-lambda-python.zip"}
MAX_TEXTS = 12
MAX_CHARS = 4000


def model_folder() -> Path:
    for name in ("tests/models/minilm-colbert", "tests/fixtures/models/modernbert-v4"):
        folder = ROOT / name
        if (folder / "modules.json").is_file():
            return folder
    raise FileNotFoundError("no test model; run python scripts/build_test_models.py")


MODEL = model_folder()
QUERIES = ["what is late interaction?", "capital of france"]
DOCS = [
    "ColBERT keeps one vector per token and scores with MaxSim.",
    "Paris is the capital and largest city of France.",
    "Cats purr when they are content.",
    "Late interaction compares every query token with every document token.",
]


def unpack(kind: str, tmp: Path) -> tuple[list[str], Path]:
    archive = ZIPS[kind]
    if not archive.is_file():
        script = "build_lambda.sh" if kind == "rust" else "build_lambda_python.sh"
        pytest.skip(f"{archive} not built (bash scripts/{script})")
    root = tmp / kind
    with zipfile.ZipFile(archive) as z:
        z.extractall(root)
    if kind == "rust":
        (root / "bootstrap").chmod(0o755)
        return [str(root / "bootstrap")], root
    # The managed runtime runs the handler in its own loop; python_runtime.py stands in for
    # it, with this interpreter (the test package is built for its Python version).
    return [sys.executable, str(Path(__file__).with_name("python_runtime.py"))], root


def start(kind: str, tmp: Path, **env: str) -> Function:
    command, root = unpack(kind, tmp)
    extra = {"LAMBDA_TASK_ROOT": str(root), "PYTHONPATH": str(root), "PYTHONNOUSERSITE": "1"}
    return Function(command, cwd=str(root), **{**extra, **env})


@pytest.fixture(scope="module", params=["rust", "python"])
def function(request, tmp_path_factory):
    kind = request.param
    fn = start(kind, tmp_path_factory.mktemp("lambda"), LATEBIRD_MODEL=str(MODEL),
               LATEBIRD_MAX_TEXTS=str(MAX_TEXTS), LATEBIRD_MAX_CHARS=str(MAX_CHARS))  # fmt: skip
    fn.kind = kind
    fn.cold_init = fn.wait_ready()
    yield fn
    fn.close()


@pytest.fixture(scope="module")
def model() -> latebird.ColBERT:
    return latebird.ColBERT(MODEL)


def ok(fn: Function, event: dict) -> dict:
    kind, answer = fn.api.invoke(event)
    assert kind == "response", answer
    assert answer["statusCode"] == 200, answer
    return answer


def test_ranking(function: Function, model) -> None:
    start = time.perf_counter()
    answer = ok(function, {"queries": QUERIES, "documents": DOCS, "top_k": 2,
                           "document_ids": ["a", "b", "c", "d"]})  # fmt: skip
    function.first_invocation = time.perf_counter() - start
    scores = model.similarity(model.encode(QUERIES), model.encode(DOCS, is_query=False))
    assert len(answer["ranking"]) == 2
    for row, ranking in enumerate(answer["ranking"]):
        best = np.argsort(-scores[row], kind="stable")[:2]
        assert [r["index"] for r in ranking] == list(best)
        assert [r["id"] for r in ranking] == ["abcd"[j] for j in best]
        np.testing.assert_allclose([r["score"] for r in ranking], scores[row, best], rtol=1e-5)


def test_scores(function: Function, model) -> None:
    answer = ok(function, {"queries": QUERIES, "documents": DOCS, "return": "scores"})
    want = model.similarity(model.encode(QUERIES), model.encode(DOCS, is_query=False))
    np.testing.assert_allclose(np.array(answer["scores"]), want, rtol=1e-5, atol=1e-5)


def test_embeddings(function: Function, model) -> None:
    answer = ok(function, {"queries": QUERIES[:1], "documents": DOCS, "pool_factor": 2,
                           "return": "embeddings"})  # fmt: skip
    np.testing.assert_allclose(answer["query_embeddings"][0], model.encode(QUERIES[0]), atol=1e-5)
    want = model.encode(DOCS, is_query=False, pool_factor=2)
    assert len(answer["document_embeddings"]) == len(want)
    for got, w in zip(answer["document_embeddings"], want):
        np.testing.assert_allclose(np.array(got, dtype=np.float32), w, atol=1e-5)
    only_docs = ok(function, {"documents": DOCS[:1]})  # default return: embeddings
    assert "query_embeddings" not in only_docs and len(only_docs["document_embeddings"]) == 1


@pytest.mark.parametrize(
    ("event", "status", "message"),
    [
        ([1, 2], 400, "JSON object"),
        ({"queries": QUERIES, "documnets": DOCS}, 400, "documnets"),
        ({"queries": QUERIES, "return": "scores"}, 400, "need both"),
        ({"queries": QUERIES, "documents": DOCS, "return": "sums"}, 400, "sums"),
        ({"queries": QUERIES, "documents": DOCS, "top_k": 0}, 400, "top_k"),
        ({"queries": QUERIES, "documents": DOCS, "pool_factor": 0}, 400, "pool_factor"),
        ({"queries": [1], "documents": DOCS}, 400, ""),
        ({"queries": QUERIES, "documents": DOCS, "document_ids": ["x"]}, 400, "document_ids"),
        ({}, 400, "no texts"),
        ({"documents": ["x"] * (MAX_TEXTS + 1)}, 413, "LATEBIRD_MAX_TEXTS"),
        ({"documents": ["y" * (MAX_CHARS + 1)]}, 413, "LATEBIRD_MAX_CHARS"),
    ],
)
def test_bad_requests(function: Function, event, status: int, message: str) -> None:
    kind, answer = function.api.invoke(event)
    assert kind == "response", answer  # a JSON error, not a crashed invocation
    assert answer["statusCode"] == status, answer
    assert message in answer["error"]["message"], answer
    assert answer["error"]["type"] in ("InvalidRequest", "PayloadTooLarge")


def test_http_event(function: Function) -> None:
    body = json.dumps({"queries": QUERIES[:1], "documents": DOCS, "top_k": 1})
    kind, answer = function.api.invoke({"requestContext": {"http": {"method": "POST"}},
                                        "body": body, "isBase64Encoded": False})  # fmt: skip
    assert kind == "response" and answer["statusCode"] == 200, answer
    assert answer["headers"]["content-type"] == "application/json"
    assert len(json.loads(answer["body"])["ranking"][0]) == 1
    kind, answer = function.api.invoke({"requestContext": {}, "body": "{not json"})
    assert answer["statusCode"] == 400
    assert "not JSON" in json.loads(answer["body"])["error"]["message"]


def test_warm_latency(function: Function) -> None:
    event = {"queries": QUERIES[:1], "documents": DOCS * 2, "top_k": 3}
    ok(function, event)
    times = []
    for _ in range(15):
        start = time.perf_counter()
        ok(function, event)
        times.append(time.perf_counter() - start)
    figures = {
        "function": function.kind,
        "model": MODEL.name,
        "cold_init_ms": round(function.cold_init * 1e3, 1),
        "first_invocation_ms": round(getattr(function, "first_invocation", float("nan")) * 1e3, 1),
        "warm_median_ms": round(statistics.median(times) * 1e3, 2),
        "warm_event": "1 query x 8 documents, top_k 3",
        "package_bytes": ZIPS[function.kind].stat().st_size,
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"figures-{function.kind}.json").write_text(json.dumps(figures, indent=1))
    print(json.dumps(figures))
    assert function.process.poll() is None  # still serving after all of the above


@pytest.mark.parametrize("kind", ["rust", "python"])
def test_init_failure(kind: str, tmp_path: Path) -> None:
    fn = start(kind, tmp_path, LATEBIRD_MODEL=str(tmp_path / "no-model"))
    try:
        code = fn.process.wait(timeout=60)
        output = fn.output()
        assert code != 0 or fn.api.init_error is not None, output
        assert "no-model" in output or "no-model" in str(fn.api.init_error), output
    finally:
        fn.close()
