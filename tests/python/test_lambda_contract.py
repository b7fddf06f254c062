"""The Lambda contract through the extension (what latebird.lambda_handler calls): answers as
JSON text, argument checks, limits from the environment, threads. The contract itself is
tested in crates/service/tests/contract.rs, both runtimes end to end in tests/lambda."""

from __future__ import annotations

import importlib
import json
import sys
import threading

import latebird
import pytest
from conftest import model_dir
from latebird import _latebird

DOCS = ["ColBERT keeps one vector per token.", "Paris is in France.", "Cats purr."]


@pytest.fixture(scope="module")
def model() -> _latebird.Model:
    return latebird.ColBERT(model_dir("modernbert-v4"))._model


def test_answers_are_the_contract_json(model) -> None:
    event = json.dumps({"queries": ["capital of france"], "documents": DOCS, "top_k": 2,
                        "document_ids": ["a", "b", "c"]})  # fmt: skip
    status, body = _latebird.handle_request(model, event, 16, 1000)
    answer = json.loads(body)
    assert status == answer["statusCode"] == 200
    (ranking,) = answer["ranking"]
    assert len(ranking) == 2 and {r["id"] for r in ranking} <= {"a", "b", "c"}
    assert ranking[0]["score"] >= ranking[1]["score"]
    assert [r["id"] for r in ranking] == ["abc"[r["index"]] for r in ranking]
    status, body = _latebird.handle_request(model, "[1, 2]", 16, 1000)
    assert status == 400
    assert body == (
        '{"error":{"message":"expected a JSON object {\\"queries\\": [...], \\"documents\\": '
        '[...], ...}","type":"InvalidRequest"},"statusCode":400}'
    )
    status, body = _latebird.handle_request(model, json.dumps({"documents": DOCS}), 2, 1000)
    assert status == 413 and "LATEBIRD_MAX_TEXTS" in json.loads(body)["error"]["message"]
    assert _latebird.refuse_request("nested") == (
        400,
        '{"error":{"message":"nested","type":"InvalidRequest"},"statusCode":400}',
    )


@pytest.mark.parametrize(("max_texts", "max_chars"), [(0, 10), (True, 10), (5, -1), (5, "7")])
def test_bad_limits_are_input_errors(model, max_texts, max_chars) -> None:
    with pytest.raises(latebird.InvalidInputError, match="invalid argument `max_"):
        _latebird.handle_request(model, "{}", max_texts, max_chars)


def test_lone_surrogate_text_is_an_input_error(model) -> None:
    with pytest.raises(latebird.InvalidInputError, match="event_json"):
        _latebird.handle_request(model, '{"queries": ["\ud800"]}', 5, 100)


def test_limits_from_the_environment(monkeypatch) -> None:
    monkeypatch.delenv("LATEBIRD_MAX_TEXTS", raising=False)
    monkeypatch.setenv("LATEBIRD_MAX_CHARS", " 77 ")
    assert _latebird.request_limits() == (1024, 77)
    monkeypatch.setenv("LATEBIRD_MAX_TEXTS", "0")
    with pytest.raises(latebird.InvalidInputError, match='LATEBIRD_MAX_TEXTS="0": expected an'):
        _latebird.request_limits()


def test_threads_get_the_same_answers(model) -> None:
    """Calls run with the GIL released, from several threads on one model."""
    event = json.dumps({"queries": ["what purrs?"], "documents": DOCS * 4, "return": "scores"})
    want = json.loads(_latebird.handle_request(model, event, 64, 10_000)[1])["scores"]
    got: list[object] = []

    def work() -> None:
        for _ in range(5):
            got.append(json.loads(_latebird.handle_request(model, event, 64, 10_000)[1])["scores"])

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert got == [want] * 20


def test_python_handler_is_a_thin_wrapper(monkeypatch) -> None:
    monkeypatch.setenv("LATEBIRD_MODEL", str(model_dir("modernbert-v4")))
    monkeypatch.setenv("LATEBIRD_MAX_TEXTS", "8")
    monkeypatch.delenv("LATEBIRD_MAX_CHARS", raising=False)
    monkeypatch.delitem(sys.modules, "latebird.lambda_handler", raising=False)
    handler = importlib.import_module("latebird.lambda_handler").handler
    answer = handler({"queries": ["cats"], "documents": DOCS, "return": "scores"})
    assert answer["statusCode"] == 200 and len(answer["scores"][0]) == 3
    answer = handler({"documents": DOCS * 3})
    assert answer["statusCode"] == 413 and "at most 8" in answer["error"]["message"]
    http = handler({"requestContext": {}, "body": json.dumps({"documents": DOCS})})
    assert http["statusCode"] == 200 and http["headers"]["content-type"] == "application/json"
    assert len(json.loads(http["body"])["document_embeddings"]) == 3
    # Events the handler cannot write back as JSON (not from a runtime, or nested too deeply
    # for json.dumps): a 400 all the same.
    assert handler({"queries": {"a", "b"}})["error"]["message"].startswith("the event is not JSON")
    deep: list = []
    for _ in range(100_000):
        deep = [deep]
    answer = handler({"queries": deep})
    assert answer["statusCode"] == 400 and "nested too deeply" in answer["error"]["message"]
