"""Load test of the Lambda functions through the local Runtime API emulator: a pool of
function processes (execution environments, one invocation at a time each) serves many
concurrent clients, and a share of the requests is malformed or oversized.

Checked: every valid request answers 200 with the right result (against this checkout's
`latebird.ColBERT` and `latebird.scores.colbert_scores` on the same model, within 1e-5), every
bad one a 4xx JSON error with a type and a message, never a 5xx, the function processes all
survive (no restart) and their memory stays bounded. Timing is reported, never asserted.

    python -m pytest -q tests/lambda/test_load.py        # a short run of each function
    python tests/lambda/test_load.py --requests 500 --clients 8 --processes 2   # the figures
"""

from __future__ import annotations

import argparse
import base64
import json
import random
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import latebird
import numpy as np
import pytest
from functions import KINDS, OUT, missing, model_folder, start_pool
from latebird.scores import colbert_scores
from runtime_api import Outcome, Pool

MAX_TEXTS = 16
MAX_CHARS = 6000
MODEL = model_folder()
SENTENCES = [
    "ColBERT keeps one vector per token and scores with MaxSim.",
    "Paris is the capital and largest city of France.",
    "Cats purr when they are content.",
    "Late interaction compares every query token with every document token.",
    "what is late interaction?",
    "capital of france",
    "The quick brown fox jumps over the lazy dog.",
    "Rust guarantees memory safety without a garbage collector.",
    "AWS Lambda runs one invocation at a time in each execution environment.",
    "Tokyo (東京) is the capital of Japan.",
    "Crème brûlée is a dessert of custard with caramelised sugar. 🍮",
    "how do cats communicate",
    "A B C",
    "",  # an empty text is a valid one
    "x" * 3000,  # one long text, within the character limit
]


def http_event(body: str, base64_body: bool = False) -> dict:
    """An API Gateway HTTP API (payload 2.0) / function URL event around `body`."""
    if base64_body:
        body = base64.b64encode(body.encode()).decode()
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": "/",
        "headers": {"content-type": "application/json"},
        "requestContext": {"http": {"method": "POST", "path": "/"}},
        "body": body,
        "isBase64Encoded": base64_body,
    }


@dataclass
class Case:
    name: str
    event: Any = None
    raw: bytes | None = None  # the payload as bytes, for JSON that json.dumps cannot write
    request: dict | None = None  # a valid case: the request (also when wrapped in `event`)
    status: int = 200  # a bad case: the 4xx expected
    message: str = ""  # ... and a fragment of its message
    # A bad case that a runtime's own JSON parser may refuse before the handler sees it:
    # an invocation error of type Runtime.UnmarshalError is then accepted from it.
    runtime_may_refuse: bool = False


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def bad_cases() -> list[Case]:
    q, d = SENTENCES[:2], SENTENCES[2:6]
    cases = [
        Case("array event", [1, 2], message="JSON object"),
        Case("string event", "rank these", message="JSON object"),
        Case("number event", 42, message="JSON object"),
        Case("null event", None, message="JSON object"),
        Case("unknown field", {"queries": q, "documnets": d}, message="documnets"),
        Case("queries a string", {"queries": "cats", "documents": d}, message="queries"),
        Case("query a number", {"queries": [1], "documents": d}, message="queries"),
        Case("documents an object", {"queries": q, "documents": {"a": 1}}, message="documents"),
        Case("return unknown", {"queries": q, "documents": d, "return": "sums"}, message="sums"),
        Case("return a number", {"queries": q, "documents": d, "return": 5}),
        Case(
            "ids not a list",
            {"queries": q, "documents": d, "document_ids": "x"},
            message="document_ids",
        ),
        Case(
            "ids too few",
            {"queries": q, "documents": d, "document_ids": ["a"]},
            message="document_ids",
        ),
        Case("scores without documents", {"queries": q, "return": "scores"}, message="need both"),
        Case("no texts", {}, message="no texts"),
        Case("empty lists", {"queries": [], "documents": []}, message="no texts"),
        Case(
            "too many texts",
            {"documents": ["a"] * (MAX_TEXTS + 1)},
            status=413,
            message="LATEBIRD_MAX_TEXTS",
        ),
        Case(
            "too many characters",
            {"queries": ["q"], "documents": ["y" * MAX_CHARS]},
            status=413,
            message="LATEBIRD_MAX_CHARS",
        ),
        Case("lone surrogate", {"queries": ["\ud800 cats"], "documents": d}),
        Case("lone surrogate in a document", {"queries": q, "documents": ["a\udfffb"]}),
        Case("nested 200 deep", raw=b'{"queries": ' + nested(200).encode() + b', "documents": []}'),
        Case("nested 100000 deep", raw=nested(100_000).encode(), runtime_may_refuse=True),
        Case("not UTF-8", raw=b'{"queries": ["\xff"]}', runtime_may_refuse=True),
    ]
    for field in ("top_k", "pool_factor"):
        for value in (10**30, 2**64, -1, 0, 2.5, "3", True, [], {}):
            cases.append(
                Case(
                    f"{field}={value!r}",
                    {"queries": q, "documents": d, field: value},
                    message=field,
                )
            )
    http = [
        Case("http: body not JSON", http_event("{not json"), message="not JSON"),
        Case("http: body empty", http_event(""), message="not JSON"),
        Case("http: no body", {"requestContext": {"http": {"method": "POST"}}}, message="not JSON"),
        Case("http: body a number", {**http_event(""), "body": 7}, message="not JSON"),
        Case(
            "http: broken base64",
            {**http_event(""), "body": "eyJx!!!", "isBase64Encoded": True},
            message="body is not",
        ),
        Case(
            "http: base64 of non-UTF-8",
            {
                **http_event(""),
                "isBase64Encoded": True,
                "body": base64.b64encode(b"\xff\xfe{}").decode(),
            },
            message="body is not",
        ),
        Case("http: body nested 100000 deep", http_event(nested(100_000)), message="not JSON"),
        Case("http: body an array", http_event("[1, 2]"), message="JSON object"),
        Case(
            "http: unknown field", http_event(json.dumps({"queries": q, "nope": 1})), message="nope"
        ),
        Case(
            "http: top_k negative, base64",
            http_event(json.dumps({"queries": q, "documents": d, "top_k": -1}), True),
            message="top_k",
        ),
        Case(
            "http: too many texts",
            http_event(json.dumps({"documents": ["a"] * 99})),
            status=413,
            message="LATEBIRD_MAX_TEXTS",
        ),
    ]
    return cases + http


def valid_case(rng: random.Random, i: int) -> Case:
    """A random valid request; some at the limits, some wrapped in HTTP events."""
    shape = rng.random()
    if shape < 0.05:  # exactly the most texts
        queries = rng.choices(SENTENCES[:13], k=2)
        documents = rng.choices(SENTENCES[:13], k=MAX_TEXTS - 2)
    elif shape < 0.1:  # exactly the most characters
        queries, documents = ["what is this about?"], ["z" * (MAX_CHARS - 19)]
    else:
        queries = rng.sample(SENTENCES[:-1], rng.randint(0, 3))  # one long text at most
        documents = rng.sample(SENTENCES, rng.randint(0 if queries else 1, 6))
    request: dict[str, Any] = {}
    if queries or rng.random() < 0.5:
        request["queries"] = queries
    request["documents"] = documents
    kinds = ["embeddings"] + (["ranking", "scores", None] if queries and documents else [None])
    kind = rng.choice(kinds)
    if kind is not None:
        request["return"] = kind
    if rng.random() < 0.5:
        request["top_k"] = rng.choice([1, 2, 3, 10, 2**40, 2**64 - 1])
    if rng.random() < 0.5:
        request["pool_factor"] = rng.choice([1, 2, 3, 1000])
    if documents and rng.random() < 0.3:
        request["document_ids"] = [rng.choice([f"doc-{j}", j, None]) for j in range(len(documents))]
    wrap = rng.random()
    if wrap < 0.15:
        return Case(f"valid {i} (http)", http_event(json.dumps(request)), request=request)
    if wrap < 0.25:
        return Case(
            f"valid {i} (http, base64)", http_event(json.dumps(request), True), request=request
        )
    return Case(f"valid {i}", request, request=request)


def mix(requests: int, bad_share: float, seed: int = 13) -> list[Case]:
    """`requests` cases, round(bad_share * requests) of them bad (every bad case at least once
    when there are enough), the rest valid, shuffled."""
    rng = random.Random(seed)
    bad = bad_cases()
    rng.shuffle(bad)
    n_bad = round(requests * bad_share)
    cases = [bad[i % len(bad)] for i in range(n_bad)]
    cases += [valid_case(rng, i) for i in range(requests - n_bad)]
    rng.shuffle(cases)
    return cases


class Reference:
    """The expected answers, from the Python package (each text encoded alone, cached)."""

    def __init__(self) -> None:
        self.model = latebird.ColBERT(MODEL)
        self.cache: dict[tuple[str, bool, int], np.ndarray] = {}

    def encode(self, text: str, is_query: bool, pool_factor: int = 1) -> np.ndarray:
        key = (text, is_query, pool_factor)
        if key not in self.cache:
            kwargs = {} if is_query else {"pool_factor": pool_factor}
            self.cache[key] = self.model.encode([text], is_query=is_query, **kwargs)[0]
        return self.cache[key]

    def check(self, request: dict, answer: dict) -> None:
        queries, documents = request.get("queries", []), request.get("documents", [])
        pool_factor = request.get("pool_factor", 1)
        kind = request.get("return") or ("ranking" if queries and documents else "embeddings")
        q = [self.encode(t, True) for t in queries]
        d = [self.encode(t, False, pool_factor) for t in documents]
        tol = {"rtol": 1e-5, "atol": 1e-5}
        if kind == "embeddings":
            for name, want in (("query_embeddings", q), ("document_embeddings", d)):
                if not want:
                    assert name not in answer, name
                    continue
                assert len(answer[name]) == len(want), name
                for got, w in zip(answer[name], want):
                    got = np.array(got, np.float32).reshape(-1, w.shape[1])
                    assert got.shape == w.shape, (name, got.shape, w.shape)
                    np.testing.assert_allclose(got, w, **tol)
            return
        scores = colbert_scores(q, d)
        if kind == "scores":
            np.testing.assert_allclose(np.array(answer["scores"]), scores, **tol)
            return
        top_k = min(request.get("top_k", 10), len(documents))
        ids = request.get("document_ids")
        assert len(answer["ranking"]) == len(queries)
        for row, ranking in zip(scores, answer["ranking"]):
            got = [r["score"] for r in ranking]
            index = [r["index"] for r in ranking]
            assert len(ranking) == top_k and len(set(index)) == top_k, ranking
            # The scores of the documents named, and the best scores there are (the order of
            # near-ties may differ within the tolerance).
            np.testing.assert_allclose(got, row[index], **tol)
            np.testing.assert_allclose(got, np.sort(row)[::-1][:top_k], **tol)
            if ids is None:
                assert all("id" not in r for r in ranking), ranking
            else:
                assert [r["id"] for r in ranking] == [ids[j] for j in index], ranking


def unwrap(case: Case, outcome: Outcome) -> tuple[int, dict]:
    """The status and the answer object (the JSON body of an HTTP response)."""
    assert outcome.kind == "response", f"{case.name}: invocation error {outcome.payload}"
    answer = outcome.payload
    assert isinstance(answer, dict) and "statusCode" in answer, f"{case.name}: {answer!r:.300}"
    is_http = isinstance(case.event, dict) and "requestContext" in case.event
    if not is_http:
        return answer["statusCode"], answer
    assert answer["headers"]["content-type"] == "application/json", answer
    body = json.loads(answer["body"])
    assert body["statusCode"] == answer["statusCode"], answer
    return answer["statusCode"], body


def check(case: Case, outcome: Outcome, reference: Reference) -> None:
    if case.request is not None:
        status, answer = unwrap(case, outcome)
        assert status == 200, f"{case.name}: {status} {answer!r:.500}"
        try:
            reference.check(case.request, answer)
        except AssertionError as e:
            raise AssertionError(f"{case.name}: {json.dumps(case.request)[:300]}: {e}") from e
        return
    if case.runtime_may_refuse and outcome.kind == "error":
        assert "Unmarshal" in str(outcome.payload.get("errorType")), f"{case.name}: {outcome}"
        return
    status, answer = unwrap(case, outcome)
    shown = f"{case.name}: {status} {answer!r:.500}"
    assert 400 <= status < 500, shown
    if case.status != 200:
        assert status == case.status, shown
    error = answer.get("error")
    assert isinstance(error, dict), shown
    assert error.get("type") in ("InvalidRequest", "PayloadTooLarge"), shown
    assert isinstance(error.get("message"), str) and error["message"], shown
    assert case.message in error["message"], shown


@dataclass
class Run:
    kind: str
    processes: int
    clients: int
    cases: list[Case]
    outcomes: list[Outcome]
    seconds: float
    rss_kib: list[list[int]]  # per process: after warm-up, half-way, at the end
    served: list[int]


def load(
    kind: str,
    requests: int = 500,
    clients: int = 8,
    processes: int = 2,
    bad_share: float = 0.25,
    reference: Reference | None = None,
) -> Run:
    """Runs the load against a fresh pool of `kind`; checks every answer and the processes."""
    reference = reference or Reference()
    cases = mix(requests, bad_share)
    with tempfile.TemporaryDirectory(prefix="latebird-load-") as tmp:
        pool = start_pool(
            kind,
            Path(tmp),
            processes,
            LATEBIRD_MODEL=str(MODEL),
            LATEBIRD_MAX_TEXTS=str(MAX_TEXTS),
            LATEBIRD_MAX_CHARS=str(MAX_CHARS),
        )
        try:
            pool.wait_ready(timeout=120)
            pids = [f.process.pid for f in pool.functions]
            warm_up(pool)
            rss = [[f.rss_kib()] for f in pool.functions]
            outcomes: list[Outcome | None] = [None] * len(cases)
            done = 0
            lock = threading.Lock()

            def send(i: int) -> None:
                nonlocal done
                case = cases[i]
                outcomes[i] = invoke(pool, case)
                with lock:
                    done += 1
                    if done == len(cases) // 2:
                        for f, r in zip(pool.functions, rss):
                            r.append(f.rss_kib())

            start = time.perf_counter()
            with ThreadPoolExecutor(clients) as executor:
                list(executor.map(send, range(len(cases))))
            seconds = time.perf_counter() - start
            for f, r in zip(pool.functions, rss):
                r.append(f.rss_kib())
            problems = []
            for case, outcome in zip(cases, outcomes):
                assert outcome is not None
                try:
                    check(case, outcome, reference)
                except AssertionError as e:
                    problems.append(str(e))
            for f, pid in zip(pool.functions, pids):
                if f.process.poll() is not None or f.process.pid != pid:
                    problems.append(f"{kind}: function process {pid} exited:\n{f.output()[-3000:]}")
                if f.api.init_error is not None:
                    problems.append(f"{kind}: init error {f.api.init_error}")
            assert not problems, f"{len(problems)} problems:\n" + "\n".join(problems[:20])
            return Run(
                kind,
                processes,
                clients,
                cases,
                [o for o in outcomes if o is not None],
                seconds,
                rss,
                [f.api.served for f in pool.functions],
            )
        finally:
            pool.close()


def invoke(pool: Pool, case: Case) -> Outcome:
    return pool.invoke_timed(case.event, timeout=120, raw=case.raw)


def warm_up(pool: Pool) -> None:
    """The largest requests, on every process (concurrently, so that each takes some), before
    the memory is first measured."""
    biggest = [
        {"queries": ["a"], "documents": ["w " * ((MAX_CHARS - 1) // 2)]},
        {"queries": SENTENCES[:4], "documents": SENTENCES[: MAX_TEXTS - 4], "return": "embeddings"},
    ]
    n = len(pool.functions)
    with ThreadPoolExecutor(n) as executor:
        for _ in range(2):
            for event in biggest:
                for outcome in executor.map(lambda e: pool.invoke_timed(e, 120), [event] * n):
                    assert outcome.kind == "response", outcome.payload


def handler_ms(case: Case, outcome: Outcome) -> float | None:
    if case.request is None:
        return None
    answer = outcome.payload
    if "body" in answer and "headers" in answer:
        answer = json.loads(answer["body"])
    return answer.get("elapsed_ms")


def figures(run: Run) -> dict:
    valid = [(c, o) for c, o in zip(run.cases, run.outcomes) if c.request is not None]
    handler = [handler_ms(c, o) for c, o in valid]
    trip = [o.round_trip * 1e3 for _, o in valid]
    inside = [o.in_function * 1e3 for _, o in valid]

    def pct(values: list, p: float) -> float:
        return round(float(np.percentile(np.array(values, dtype=float), p)), 1)

    return {
        "function": run.kind,
        "processes": run.processes,
        "clients": run.clients,
        "requests": len(run.cases),
        "bad_requests": len(run.cases) - len(valid),
        "seconds": round(run.seconds, 2),
        "requests_per_s": round(len(run.cases) / run.seconds, 1),
        "handler_ms_p50": pct(handler, 50),
        "handler_ms_p99": pct(handler, 99),
        "in_function_ms_p50": pct(inside, 50),
        "in_function_ms_p99": pct(inside, 99),
        "round_trip_ms_p50": pct(trip, 50),
        "round_trip_ms_p99": pct(trip, 99),
        "rss_mib": [[round(k / 1024) for k in r] for r in run.rss_kib],
        "served": run.served,
    }


def assert_memory_bounded(run: Run) -> None:
    """No process grows by more than 100 MiB after the warm-up (a leak per request would
    show as growth; the model and the largest request's buffers are in the warm-up figure)."""
    for rss in run.rss_kib:
        assert rss[-1] - rss[0] < 100 * 1024, f"{run.kind}: resident memory {rss} KiB"


@pytest.fixture(scope="module")
def reference() -> Reference:
    return Reference()


@pytest.mark.parametrize("kind", KINDS)
def test_load(kind: str, reference: Reference) -> None:
    """A short run of each function, with every bad case at least once."""
    if missing(kind):
        pytest.skip(missing(kind))
    n_bad = len(bad_cases())
    run = load(kind, 2 * n_bad + 40, clients=8, processes=2, bad_share=0.5, reference=reference)
    assert_memory_bounded(run)
    assert all(run.served), run.served  # every environment took work
    print(json.dumps(figures(run)))


COLUMNS = [
    ("function", "function", "{}"),
    ("req/s", "requests_per_s", "{:.1f}"),
    ("handler p50", "handler_ms_p50", "{:.1f}"),
    ("handler p99", "handler_ms_p99", "{:.1f}"),
    ("in-function p50", "in_function_ms_p50", "{:.1f}"),
    ("in-function p99", "in_function_ms_p99", "{:.1f}"),
    ("round trip p50", "round_trip_ms_p50", "{:.1f}"),
    ("round trip p99", "round_trip_ms_p99", "{:.1f}"),
    ("RSS MiB (warm, half, end)", "rss_mib", "{}"),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--processes", type=int, default=2, help="function processes per pool")
    parser.add_argument("--bad-share", type=float, default=0.25)
    parser.add_argument("--kinds", nargs="+", default=list(KINDS), choices=KINDS)
    args = parser.parse_args()
    reference = Reference()
    rows = []
    for kind in args.kinds:
        if missing(kind):
            print(f"{kind}: skipped, {missing(kind)}", file=sys.stderr)
            continue
        run = load(kind, args.requests, args.clients, args.processes, args.bad_share, reference)
        assert_memory_bounded(run)
        rows.append(figures(run))
        print(json.dumps(rows[-1]), file=sys.stderr)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "figures-load.json").write_text(json.dumps(rows, indent=1))
    print(
        f"\n{args.requests} requests ({args.bad_share:.0%} bad) from {args.clients} clients, "
        f"{args.processes} function processes each; times in ms; model {MODEL.name}\n"
    )
    print("| " + " | ".join(c[0] for c in COLUMNS) + " |")
    print("|" + "---|" * len(COLUMNS))
    for row in rows:
        print("| " + " | ".join(f.format(row[k]) for _, k, f in COLUMNS) + " |")


if __name__ == "__main__":
    main()
