"""End-to-end tests of the Lambda functions through a local Runtime API emulator: the Rust
`bootstrap` of target/lambda/latebird-lambda.zip (scripts/build_lambda.sh) and the Python
handler of target/lambda/latebird-lambda-python.zip (scripts/build_lambda_python.sh), the
latter under a stand-in runtime loop and under AWS's awslambdaric (functions.py). All answer
the same contract (crates/lambda/README.md). Cold init and warm latency (handler time and
round trip) go to target/lambda/figures-{kind}.json (figures-{kind}-arm64.json for the arm64
packages under emulation: the emulator's speed, not Graviton's)."""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import latebird
import numpy as np
import pytest
from functions import ARCH, KINDS, OUT, missing, model_folder, package, start
from runtime_api import Function

MAX_TEXTS = 12
MAX_CHARS = 4000
MODEL = model_folder()
QUERIES = ["what is late interaction?", "capital of france"]
DOCS = [
    "ColBERT keeps one vector per token and scores with MaxSim.",
    "Paris is the capital and largest city of France.",
    "Cats purr when they are content.",
    "Late interaction compares every query token with every document token.",
]


def nested(depth: int) -> list:
    value: list = []
    for _ in range(depth - 1):
        value = [value]
    return value


@pytest.fixture(scope="module", params=KINDS)
def function(request, tmp_path_factory):
    kind = request.param
    if missing(kind):
        pytest.skip(missing(kind))
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
    began = time.perf_counter()
    answer = ok(function, {"queries": QUERIES, "documents": DOCS, "top_k": 2,
                           "document_ids": ["a", "b", "c", "d"]})  # fmt: skip
    function.first_invocation = time.perf_counter() - began
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
        # Found by test_load.py: a 400, not an invocation error (Rust: the runtime's
        # serde_json refused these events before the handler saw them).
        ({"queries": ["\ud800"], "documents": DOCS}, 400, ""),
        ({"queries": [nested(200)], "documents": DOCS}, 400, ""),
        # ... and the field at fault is named.
        ({"queries": QUERIES, "documents": DOCS, "top_k": -1}, 400, "top_k"),
        ({"queries": QUERIES, "documents": DOCS, "top_k": 10**30}, 400, "top_k"),
        ({"queries": QUERIES, "documents": DOCS, "pool_factor": 10**30}, 400, "pool_factor"),
        ({"queries": QUERIES, "documents": DOCS, "pool_factor": "3"}, 400, "pool_factor"),
        ({"queries": [1], "documents": DOCS}, 400, "queries"),
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


@pytest.mark.parametrize(
    ("body", "base64_body"),
    [
        (7, False),  # not a string
        ("[" * 100_000 + "]" * 100_000, False),  # nested too deeply for any parser
        ("eyJx!!!", True),  # broken base64
        ("//79", True),  # base64 of bytes that are not UTF-8
    ],
)
def test_http_bad_body(function: Function, body, base64_body: bool) -> None:
    event = {"requestContext": {"http": {"method": "POST"}}, "body": body,
             "isBase64Encoded": base64_body}  # fmt: skip
    kind, answer = function.api.invoke(event)
    assert kind == "response" and answer["statusCode"] == 400, answer
    assert "body is not" in json.loads(answer["body"])["error"]["message"], answer


@pytest.mark.parametrize("raw", [b"[" * 100_000 + b"]" * 100_000, b'{"queries": ["\xff"]}'])
def test_unreadable_event(function: Function, raw: bytes) -> None:
    """An event no JSON parser here reads (nested too deeply, not UTF-8): the Rust function
    answers a 400; the Python runtimes parse events before the handler and answer with an
    invocation error, as Lambda's does. Either way the function keeps serving."""
    outcome = function.api.invocations.invoke_timed(raw=raw)
    if function.kind == "rust":
        assert outcome.kind == "response" and outcome.payload["statusCode"] == 400, outcome
        assert "the event is not" in outcome.payload["error"]["message"], outcome
    else:
        assert outcome.kind == "error", outcome
        assert outcome.payload["errorType"] == "Runtime.UnmarshalError", outcome
    ok(function, {"documents": DOCS[:1]})


def test_warm_latency(function: Function) -> None:
    """Handler time (`elapsed_ms` in the answer) and round trip (event queued to answer
    back, what a caller waits) of warm invocations, separately: their difference is the
    runtime loop, JSON and the emulator's HTTP."""
    event = {"queries": QUERIES[:1], "documents": DOCS * 2, "top_k": 3}
    ok(function, event)
    handler, round_trip = [], []
    for _ in range(15):
        outcome = function.api.invocations.invoke_timed(event)
        assert outcome.kind == "response" and outcome.payload["statusCode"] == 200, outcome
        handler.append(outcome.payload["elapsed_ms"])
        round_trip.append(outcome.round_trip * 1e3)
    figures = {
        "function": function.kind,
        "model": MODEL.name,
        "cold_init_ms": round(function.cold_init * 1e3, 1),
        "first_invocation_ms": round(getattr(function, "first_invocation", float("nan")) * 1e3, 1),
        "warm_handler_median_ms": round(statistics.median(handler), 2),
        "warm_round_trip_median_ms": round(statistics.median(round_trip), 2),
        "warm_event": "1 query x 8 documents, top_k 3",
        "package_bytes": package(function.kind).stat().st_size,
    }
    OUT.mkdir(parents=True, exist_ok=True)
    suffix = "" if ARCH == "x86_64" else f"-{ARCH}"
    figures["architecture"] = ARCH
    (OUT / f"figures-{function.kind}{suffix}.json").write_text(json.dumps(figures, indent=1))
    print(json.dumps(figures))
    assert function.process.poll() is None  # still serving after all of the above


@pytest.mark.parametrize("kind", KINDS)
def test_init_failure(kind: str, tmp_path: Path) -> None:
    if missing(kind):
        pytest.skip(missing(kind))
    fn = start(kind, tmp_path, LATEBIRD_MODEL=str(tmp_path / "no-model"))
    try:
        code = fn.process.wait(timeout=60)
        output = fn.output()
        assert code != 0 or fn.api.init_error is not None, output
        assert "no-model" in output or "no-model" in str(fn.api.init_error), output
    finally:
        fn.close()
