"""AWS Lambda handler (managed Python runtime): `latebird.lambda_handler.handler`.

The same request and response contract as the Rust function (crates/lambda/README.md). The
model is loaded once per execution environment, at import (the init phase), from
LATEBIRD_MODEL (default: `model/` in the package if present, else /opt/model, a layer).
Limits: LATEBIRD_MAX_TEXTS (1024) and LATEBIRD_MAX_CHARS (1000000), checked before encoding.
"""

from __future__ import annotations

import base64
import json
import os
import time
from typing import Any

from . import InvalidInputError
from .colbert import ColBERT
from .scores import colbert_scores

FIELDS = {"queries", "documents", "document_ids", "top_k", "pool_factor", "return"}
RETURNS = ("ranking", "scores", "embeddings")
_U64_MAX = 2**64 - 1  # the largest top_k the Rust function reads (a u64)


def _model_folder() -> str:
    configured = os.environ.get("LATEBIRD_MODEL", "").strip()
    if configured:
        return configured
    packaged = os.path.join(os.environ.get("LAMBDA_TASK_ROOT", "."), "model")
    if os.path.isfile(os.path.join(packaged, "modules.json")):
        return packaged
    return "/opt/model"


def _limit(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"{name}={value!r}: expected an integer >= 1")
    return int(value)


MAX_TEXTS = _limit("LATEBIRD_MAX_TEXTS", 1024)
MAX_CHARS = _limit("LATEBIRD_MAX_CHARS", 1_000_000)
# Init: a model that cannot be loaded fails here, and Lambda reports the init error.
MODEL = ColBERT(_model_folder())


class _Failure(Exception):
    def __init__(self, status: int, kind: str, message: str) -> None:
        super().__init__(message)
        self.status, self.kind, self.message = status, kind, message


def _bad(message: str) -> _Failure:
    return _Failure(400, "InvalidRequest", message)


def _positive(request: dict, name: str, default: int, maximum: int | None = None) -> int:
    value = request.get(name, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _bad(f"{name}: invalid value {value!r}; expected a non-negative integer")
    if maximum is not None and value > maximum:
        raise _bad(f"{name}: invalid value {value!r}; expected at most {maximum}")
    if value == 0:
        raise _bad(f'"{name}" is 0; expected at least 1')
    return value


def _texts(request: dict, name: str) -> list[str]:
    value = request.get(name)
    if value is None:
        return []
    if not isinstance(value, list):
        raise _bad(f"{name}: invalid type: expected a list of strings")
    for i, text in enumerate(value):
        if not isinstance(text, str):
            raise _bad(f"{name}[{i}]: invalid type {type(text).__name__}, expected a string")
    return value


def _run(request: Any) -> dict:
    if not isinstance(request, dict):
        raise _bad('expected a JSON object {"queries": [...], "documents": [...], ...}')
    unknown = sorted(set(request) - FIELDS)
    if unknown:
        raise _bad(f"unknown field `{unknown[0]}`, expected one of {sorted(FIELDS)}")
    queries, documents = _texts(request, "queries"), _texts(request, "documents")
    kind = request.get("return")
    if kind is None:
        kind = "ranking" if queries and documents else "embeddings"
    if kind not in RETURNS:
        raise _bad(f"unknown variant `{kind}`, expected one of {list(RETURNS)}")
    total = len(queries) + len(documents)
    if total == 0:
        raise _bad('no texts: give "queries" and/or "documents"')
    if kind != "embeddings" and not (queries and documents):
        raise _bad('"return": "scores" and "ranking" need both "queries" and "documents"')
    if total > MAX_TEXTS:
        raise _Failure(
            413,
            "PayloadTooLarge",
            f"{total} texts; at most {MAX_TEXTS} per request (LATEBIRD_MAX_TEXTS)",
        )
    chars = sum(len(t) for t in queries) + sum(len(t) for t in documents)
    if chars > MAX_CHARS:
        raise _Failure(
            413,
            "PayloadTooLarge",
            f"{chars} characters of text; at most {MAX_CHARS} per request (LATEBIRD_MAX_CHARS)",
        )
    top_k = _positive(request, "top_k", 10, maximum=_U64_MAX)
    pool_factor = _positive(request, "pool_factor", 1)
    ids = request.get("document_ids")
    if ids is not None and (not isinstance(ids, list) or len(ids) != len(documents)):
        count = len(ids) if isinstance(ids, list) else type(ids).__name__
        raise _bad(f'"document_ids" has {count} entries for {len(documents)} documents')
    try:
        q = MODEL.encode(queries, is_query=True) if queries else []
        d = MODEL.encode(documents, is_query=False, pool_factor=pool_factor) if documents else []
    except InvalidInputError as e:
        raise _bad(str(e)) from None
    if kind == "embeddings":
        answer: dict[str, Any] = {}
        if queries:
            answer["query_embeddings"] = [m.tolist() for m in q]
        if documents:
            answer["document_embeddings"] = [m.tolist() for m in d]
        return answer
    scores = colbert_scores(q, d)
    if kind == "scores":
        return {"scores": scores.tolist()}
    ranking = []
    for row in scores:
        order = sorted(range(len(row)), key=lambda j: -row[j])[:top_k]  # stable on ties
        entries = []
        for j in order:
            entry: dict[str, Any] = {"index": j, "score": float(row[j])}
            if ids is not None:
                entry["id"] = ids[j]
            entries.append(entry)
        ranking.append(entries)
    return {"ranking": ranking}


def _answer(request: Any) -> dict:
    start = time.perf_counter()
    try:
        answer = _run(request)
    except _Failure as f:
        return {"statusCode": f.status, "error": {"type": f.kind, "message": f.message}}
    except Exception as e:  # an engine failure: report it as a 500, keep serving
        return {"statusCode": 500, "error": {"type": "InternalError", "message": str(e)}}
    answer["statusCode"] = 200
    answer["elapsed_ms"] = (time.perf_counter() - start) * 1e3
    return answer


def handler(event: Any, context: Any = None) -> dict:
    """Lambda entry point: a direct invocation's request, or an HTTP event (API Gateway,
    function URL) with the request as its JSON body."""
    if isinstance(event, dict) and ("requestContext" in event or "httpMethod" in event):
        body = event.get("body") or ""
        try:
            if not isinstance(body, str):
                raise ValueError(f"expected a string, got {type(body).__name__}")
            if event.get("isBase64Encoded"):
                body = base64.b64decode(body, validate=True).decode("utf-8")
            request = json.loads(body)
        except (ValueError, RecursionError) as e:  # RecursionError: nested too deeply
            answer = {
                "statusCode": 400,
                "error": {"type": "InvalidRequest", "message": f"body is not JSON: {e}"},
            }
        else:
            answer = _answer(request)
        return {
            "statusCode": answer["statusCode"],
            "headers": {"content-type": "application/json"},
            "body": json.dumps(answer),
        }
    return _answer(event)
