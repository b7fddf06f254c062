"""The `latebird` command line, run as a subprocess (`python -m latebird`)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import latebird
import numpy as np
import pytest
from conftest import model_dir

MODEL = str(model_dir("modernbert-v4"))
DOCS = ["ColBERT keeps one vector per token.", "Paris is the capital of France.", "Cats purr."]
QUERIES = ["what is colbert?", "capital of france"]


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "latebird", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def model() -> latebird.ColBERT:
    return latebird.ColBERT(MODEL)


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    docs_txt = tmp_path / "docs.txt"
    docs_txt.write_text("\n".join([DOCS[0], "", DOCS[1], DOCS[2]]) + "\n", encoding="utf-8")
    docs_jsonl = tmp_path / "docs.jsonl"
    docs_jsonl.write_text(
        "".join(json.dumps({"id": f"d{i}", "body": t}) + "\n" for i, t in enumerate(DOCS)),
        encoding="utf-8",
    )
    queries = tmp_path / "queries.txt"
    queries.write_text("\n".join(QUERIES) + "\n", encoding="utf-8")
    return {"txt": docs_txt, "jsonl": docs_jsonl, "queries": queries}


def test_encode_npz_equals_api(tmp_path: Path, files, model) -> None:
    out = tmp_path / "docs.npz"
    r = run("encode", "--model", MODEL, "--documents", str(files["txt"]), "--output", str(out))
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""  # no progress bar when stderr is not a terminal
    want = model.encode(DOCS, is_query=False)
    with np.load(out) as z:
        assert list(z["ids"]) == ["0", "1", "2"]  # blank lines skipped
        assert list(z["lengths"]) == [w.shape[0] for w in want]
        for i, w in enumerate(want):
            np.testing.assert_array_equal(z[f"embedding_{i}"], w)


def test_encode_jsonl_in_npy_out_pooled(tmp_path: Path, files, model) -> None:
    out = tmp_path / "docs.npy"
    r = run("encode", "--model", MODEL, "--documents", str(files["jsonl"]), "--field", "body",
            "--output", str(out), "--pool-factor", "2", "--batch-size", "2")  # fmt: skip
    assert r.returncode == 0, r.stderr
    want = model.encode(DOCS, is_query=False, pool_factor=2, padding=True)
    np.testing.assert_allclose(np.load(out), want, atol=1e-5)  # batch size 2 vs 32


def test_encode_queries_jsonl_to_stdout(files, model) -> None:
    r = run("encode", "--model", MODEL, "--queries", "-", "--output", "-", "--format", "jsonl",
            stdin="\n".join(QUERIES))  # fmt: skip
    assert r.returncode == 0, r.stderr
    lines = [json.loads(line) for line in r.stdout.splitlines()]
    assert [line["id"] for line in lines] == [0, 1]
    for line, want in zip(lines, model.encode(QUERIES, is_query=True)):
        np.testing.assert_allclose(np.array(line["embedding"], dtype=np.float32), want)


def test_rank(tmp_path: Path, files, model) -> None:
    out = tmp_path / "ranking.jsonl"
    r = run("rank", "--model", MODEL, "--queries", str(files["queries"]),
            "--documents", str(files["jsonl"]), "--field", "body", "--top-k", "2",
            "--output", str(out))  # fmt: skip
    assert r.returncode == 0, r.stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    scores = model.similarity(
        model.encode(QUERIES, is_query=True), model.encode(DOCS, is_query=False)
    )
    assert [line["query_id"] for line in lines] == [0, 1]
    for row, line in enumerate(lines):
        best = np.argsort(-scores[row], kind="stable")[:2]
        assert [res["id"] for res in line["results"]] == [f"d{j}" for j in best]
        assert [res["rank"] for res in line["results"]] == [1, 2]
        np.testing.assert_allclose([res["score"] for res in line["results"]], scores[row, best])
    # Without --output the ranking goes to stdout.
    r = run("rank", "--model", MODEL, "--queries", str(files["queries"]),
            "--documents", str(files["txt"]))  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert len(r.stdout.splitlines()) == 2
    assert len(json.loads(r.stdout.splitlines()[0])["results"]) == 3  # top-k capped at n


@pytest.mark.parametrize(
    ("content", "extra", "message"),
    [
        ('{"text": "a"}\nnot json\n', [], r"docs\.jsonl:2: invalid JSON"),
        ('{"body": "a"}\n', [], r"docs\.jsonl:1: no field 'text' \(fields: body\)"),
        ('{"text": 3}\n', [], "field 'text' is int; expected a string"),
        ("[1]\n", [], "expected a JSON object"),
        ("\n\n", [], "no texts"),
    ],
)
def test_bad_input_exits_2(tmp_path: Path, content: str, extra: list, message: str) -> None:
    path = tmp_path / "docs.jsonl"
    path.write_text(content)
    r = run("encode", "--model", MODEL, "--documents", str(path), "--output",
            str(tmp_path / "o.npz"), *extra)  # fmt: skip
    assert r.returncode == 2
    assert r.stderr.startswith("latebird: error:")
    assert __import__("re").search(message, r.stderr), r.stderr
    assert not (tmp_path / "o.npz").exists()


def test_usage_errors(tmp_path: Path, files) -> None:
    out = str(tmp_path / "o.npz")
    encode_docs = ["encode", "--model", MODEL, "--documents", str(files["txt"]), "--output", out]
    cases = [
        (["encode", "--model", MODEL, "--output", out], "one of the arguments"),
        (
            [
                "encode",
                "--model",
                MODEL,
                "--queries",
                str(files["queries"]),
                "--documents",
                str(files["txt"]),
                "--output",
                out,
            ],
            "not allowed with",
        ),
        (
            [
                "encode",
                "--model",
                MODEL,
                "--queries",
                str(files["queries"]),
                "--output",
                out,
                "--pool-factor",
                "2",
            ],
            "documents only",
        ),
        (
            [
                "encode",
                "--model",
                MODEL,
                "--documents",
                str(tmp_path / "nope.txt"),
                "--output",
                out,
            ],
            "nope.txt: no such file",
        ),
        (
            [
                "encode",
                "--model",
                MODEL,
                "--documents",
                str(files["txt"]),
                "--output",
                out,
                "--batch-size",
                "0",
            ],
            "must be >= 1",
        ),
        (
            [
                "encode",
                "--model",
                MODEL,
                "--documents",
                str(files["txt"]),
                "--output",
                str(tmp_path / "no" / "dir" / "o.npz"),
            ],
            "does not exist",
        ),
        (
            ["encode", "--model", MODEL, "--documents", str(files["txt"]), "--output", "-"],
            "cannot be written to stdout",
        ),
        (["rank", "--model", MODEL, "--queries", str(files["queries"])], "--documents"),
        # Numbers no machine can hold: the engine's message, not a traceback.
        ([*encode_docs, "--batch-size", str(10**30)], "`batch_size`"),
        ([*encode_docs, "--pool-factor", str(10**30)], "`pool_factor`"),
    ]
    for args, message in cases:
        r = run(*args)
        assert r.returncode == 2, (args, r.stderr)
        assert message in r.stderr, (args, r.stderr)


def test_model_errors_exit_1(tmp_path: Path, files) -> None:
    r = run("encode", "--model", str(tmp_path), "--documents", str(files["txt"]), "--output",
            str(tmp_path / "o.npz"))  # fmt: skip
    assert r.returncode == 1
    assert "cannot load model" in r.stderr and "modules.json" in r.stderr


def test_devices_the_build_lacks_are_errors(tmp_path: Path, files) -> None:
    out = ["--documents", str(files["txt"]), "--output", str(tmp_path / "o.npz")]
    r = run("encode", "--model", MODEL, "--device", "gpu", *out)
    assert r.returncode == 2, r.stderr
    assert '`device`: is "gpu"; expected "cpu", "cuda"' in r.stderr
    if "cuda" not in latebird.build_features:
        r = run("encode", "--model", MODEL, "--device", "cuda:1", *out)
        assert r.returncode == 1, r.stderr
        assert "device cuda:1: this build of latebird was compiled without the `cuda`" in r.stderr
    assert not (tmp_path / "o.npz").exists()
    r = run("--version")
    assert r.returncode == 0 and f"(backends: {', '.join(latebird.build_features)})" in r.stdout


def test_console_script_installed() -> None:
    script = Path(sys.executable).parent / "latebird"
    if not script.exists():
        pytest.skip("package not installed with its scripts (run maturin develop or pip install)")
    r = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.startswith("latebird ")
