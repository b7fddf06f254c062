"""The Rust function and the Python handler (under both runtime loops) run one contract
library (crates/service): the same bad request must get the same error from each, and the
same valid request the same answer.

The answer object of a direct invocation is written out by each runtime (Rust: as the
contract wrote it; Python: json.dumps of the parsed answer), so it is compared as JSON; the
`body` of an HTTP response is the contract's own JSON text in every runtime, so it is
compared byte for byte."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest
from functions import KINDS, missing, model_folder, start
from runtime_api import Function

MAX_TEXTS = 6
MAX_CHARS = 500
Q = ["what is late interaction?", "capital of france"]
D = ["ColBERT keeps one vector per token.", "Paris is in France.", "Cats purr."]


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def _bad_requests() -> list[Any]:
    requests: list[Any] = [
        [1, 2],
        "rank these",
        42,
        None,
        {"queries": Q, "documnets": D},
        {"queries": Q, "documents": D, "nope": 1, "other": 2},
        {"queries": "cats", "documents": D},
        {"queries": [1], "documents": D},
        {"queries": Q, "documents": {"a": 1}},
        {"queries": Q, "documents": D, "return": "sums"},
        {"queries": Q, "documents": D, "return": 5},
        {"queries": Q, "documents": D, "document_ids": "x"},
        {"queries": Q, "documents": D, "document_ids": ["a"]},
        {"queries": Q, "return": "scores"},
        {"documents": D, "return": "ranking"},
        {},
        {"queries": [], "documents": []},
        {"documents": ["a"] * (MAX_TEXTS + 1)},
        {"queries": ["q"], "documents": ["y" * MAX_CHARS]},
        {"queries": ["\ud800 cats"], "documents": D},
        {"queries": Q, "documents": ["a\udfffb"]},
        {"queries": [json.loads(_nested(200))], "documents": D},
    ]
    for field in ("top_k", "pool_factor"):
        for value in (10**30, 2**64, -1, 0, 2.5, 1e30, "3", True, [], {}, None):
            if value is not None:
                requests.append({"queries": Q, "documents": D, field: value})
    return requests


BAD = _bad_requests()
# Events only as bytes. NaN and Infinity are not JSON: json.loads (the stand-in runtime) reads
# them, simplejson (awslambdaric) refuses them with an invocation error before the handler.
RAW = [
    b'{"queries": ' + _nested(200).encode() + b', "documents": []}',
    b'{"queries": ["q"], "documents": ["d"], "top_k": NaN}',
    b'{"queries": ["q"], "documents": ["d"], "top_k": Infinity}',
]
HTTP_BODIES: list[tuple[Any, bool]] = [
    (7, False),
    (None, False),
    ("", False),
    ("{not json", False),
    (_nested(100_000), False),
    ("eyJx!!!", True),
    (base64.b64encode(b"\xff\xfe{}").decode(), True),
]
VALID = [
    {"queries": Q, "documents": D, "top_k": 2, "document_ids": ["a", 7, None]},
    {"queries": Q, "documents": D, "return": "scores"},
    {"queries": Q[:1], "documents": D, "pool_factor": 2, "return": "embeddings"},
]


def _http(body: Any, base64_body: bool = False) -> dict:
    return {"requestContext": {"http": {"method": "POST"}}, "body": body,
            "isBase64Encoded": base64_body}  # fmt: skip


@pytest.fixture(scope="module")
def functions(tmp_path_factory) -> Iterator[dict[str, Function]]:
    available = [kind for kind in KINDS if not missing(kind)]
    if "rust" not in available or len(available) < 2:
        pytest.skip("needs the Rust and the Python packages: " + "; ".join(
            problem for kind in KINDS if (problem := missing(kind))))  # fmt: skip
    started: dict[str, Function] = {}
    try:
        env = {"LATEBIRD_MODEL": str(model_folder()), "LATEBIRD_MAX_TEXTS": str(MAX_TEXTS),
               "LATEBIRD_MAX_CHARS": str(MAX_CHARS)}  # fmt: skip
        for kind in available:
            fn = start(kind, tmp_path_factory.mktemp(kind), **env)
            started[kind] = fn
            fn.wait_ready()
        yield started
    finally:
        for fn in started.values():
            fn.close()


def _answers(functions: dict[str, Function], event: Any = None, raw: bytes | None = None) -> dict:
    answers = {}
    for kind, fn in functions.items():
        outcome = fn.api.invocations.invoke_timed(event, raw=raw)
        if raw is not None and kind != "rust" and outcome.kind == "error":
            assert outcome.payload["errorType"] == "Runtime.UnmarshalError", (kind, outcome)
            continue  # the runtime refused the bytes; the handler never saw them
        assert outcome.kind == "response", (kind, outcome)
        answers[kind] = outcome.payload
    return answers


def _same(answers: dict, shown: Any) -> None:
    rust = answers["rust"]
    for kind, answer in answers.items():
        assert answer == rust, f"{shown!r:.200}: {kind} {answer!r:.400} != rust {rust!r:.400}"


@pytest.mark.parametrize("request_", BAD, ids=range(len(BAD)))
def test_same_error(functions: dict[str, Function], request_: Any) -> None:
    answers = _answers(functions, request_)
    assert 400 <= answers["rust"]["statusCode"] < 500, answers["rust"]
    assert set(answers["rust"]) == {"statusCode", "error"}, answers["rust"]
    _same(answers, request_)
    # Wrapped in an HTTP event: the body, the contract's JSON text, byte for byte.
    try:
        body = json.dumps(request_)
    except ValueError:
        return
    bodies = {kind: a["body"] for kind, a in _answers(functions, _http(body)).items()}
    assert len(set(bodies.values())) == 1, bodies
    # The same type (an unreadable text is "body is not JSON" there, not "the event is not").
    assert json.loads(bodies["rust"])["error"]["type"] == answers["rust"]["error"]["type"]


@pytest.mark.parametrize("raw", RAW)
def test_same_error_raw(functions: dict[str, Function], raw: bytes) -> None:
    answers = _answers(functions, raw=raw)
    assert answers["rust"]["statusCode"] == 400, answers["rust"]
    assert "python" not in functions or "python" in answers  # json.loads reads them all
    _same(answers, raw)


@pytest.mark.parametrize(("body", "base64_body"), HTTP_BODIES)
def test_same_http_error(functions: dict[str, Function], body: Any, base64_body: bool) -> None:
    answers = _answers(functions, _http(body, base64_body))
    assert answers["rust"]["statusCode"] == 400, answers["rust"]
    _same(answers, body)


@pytest.mark.parametrize("request_", VALID, ids=range(len(VALID)))
def test_same_answer(functions: dict[str, Function], request_: dict) -> None:
    answers = _answers(functions, request_)
    for answer in answers.values():
        assert answer["statusCode"] == 200, answer
        assert answer.pop("elapsed_ms") >= 0
    _same(answers, request_)
