"""`latebird encode` on large inputs: streaming, Parquet in and out, resume, progress."""

from __future__ import annotations

import json
import os
import pty
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import model_dir

MODEL = str(model_dir("minilm-colbert"))
# More texts than one engine call takes (256), in shards that end mid-chunk.
N = 700
DOCS = [f"Document {i} is about topic {i % 23}: {'word ' * (i % 11)}end." for i in range(N)]
ENV = {**os.environ, "RAYON_NUM_THREADS": "1"}


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "latebird", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
        env=ENV,
    )


def encode_docs(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return run("encode", "--model", MODEL, *args, stdin=stdin)


@pytest.fixture(scope="module")
def want(minilm) -> list[np.ndarray]:
    return minilm.encode(DOCS, is_query=False)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("inputs")
    txt = folder / "docs.txt"
    txt.write_text("\n".join(DOCS) + "\n", encoding="utf-8")
    jsonl = folder / "docs.jsonl"
    jsonl.write_text(
        "".join(json.dumps({"id": f"d{i}", "text": t}) + "\n" for i, t in enumerate(DOCS)),
        encoding="utf-8",
    )
    return {"text": txt, "jsonl": jsonl}


def parquet_input(path: Path, texts: list, ids: list | None = None) -> Path:
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    columns = {"text": pa.array(texts, pa.string())}
    if ids is not None:
        columns["id"] = pa.array(ids)
    pq.write_table(pa.table(columns), path, row_group_size=97)
    return path


def read_folder(folder: Path) -> tuple[list[str], list[np.ndarray]]:
    pytest.importorskip("pyarrow")
    from latebird.parquet import read_embeddings

    ids, embeddings = read_embeddings(folder)
    # One shard alone reads the same rows as its part of the folder.
    first_ids, first = read_embeddings(folder / "part-00000.parquet")
    assert first_ids == ids[: len(first_ids)]
    assert all(np.array_equal(a, b) for a, b in zip(first, embeddings))
    return ids, embeddings


def assert_same(got: list[np.ndarray], want: list[np.ndarray]) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.dtype == np.float32 and g.shape == w.shape
        np.testing.assert_array_equal(g, w)


@pytest.mark.parametrize("source", ["text", "jsonl", "parquet"])
def test_every_input_to_parquet_shards(tmp_path: Path, inputs, want, source: str) -> None:
    if source == "parquet":
        path = parquet_input(tmp_path / "docs.parquet", DOCS, [f"d{i}" for i in range(N)])
    else:
        path = inputs[source]
    out = tmp_path / "out"
    r = encode_docs("--documents", str(path), "--output", f"{out}/", "--shard-size", "300")
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    assert sorted(p.name for p in out.iterdir()) == [
        "_latebird_manifest.json",
        "part-00000.parquet",
        "part-00001.parquet",
        "part-00002.parquet",
    ]
    ids, got = read_folder(out)
    assert ids == ([str(i) for i in range(N)] if source == "text" else [f"d{i}" for i in range(N)])
    assert_same(got, want)
    manifest = json.loads((out / "_latebird_manifest.json").read_text())
    assert manifest["complete"] and manifest["texts"] == N and manifest["shards"] == 3


def test_parquet_shards_read_by_polars_and_duckdb(tmp_path: Path, inputs, want) -> None:
    pl = pytest.importorskip("polars")
    duckdb = pytest.importorskip("duckdb")
    out = tmp_path / "out"
    r = encode_docs("--documents", str(inputs["jsonl"]), "--output", str(out),
                    "--format", "parquet", "--shard-size", "400", "--threads", "1")  # fmt: skip
    assert r.returncode == 0, r.stderr
    frame = pl.read_parquet(str(out / "*.parquet"))
    assert frame["id"].to_list()[:2] == ["d0", "d1"] and frame.height == N
    np.testing.assert_array_equal(np.array(frame["embedding"][5].to_list(), np.float32), want[5])
    rows = duckdb.sql(
        f"SELECT id, len(embedding), embedding[1][1] FROM read_parquet('{out}/*.parquet') "
        "WHERE id = 'd650'"
    ).fetchall()
    assert rows == [("d650", want[650].shape[0], pytest.approx(float(want[650][0, 0])))]


@pytest.mark.parametrize("fmt", ["npz", "npy", "jsonl"])
def test_single_file_outputs_stream_many_chunks(tmp_path: Path, inputs, want, fmt: str) -> None:
    out = tmp_path / f"docs.{fmt}"
    r = encode_docs("--documents", str(inputs["jsonl"]), "--output", str(out))
    assert r.returncode == 0, r.stderr
    assert [p.name for p in tmp_path.iterdir()] == [out.name]  # no temporary files left
    if fmt == "npz":
        with np.load(out) as z:
            assert list(z["ids"]) == [f"d{i}" for i in range(N)]
            assert list(z["lengths"]) == [w.shape[0] for w in want]
            assert_same([z[f"embedding_{i}"] for i in range(N)], want)
    elif fmt == "npy":
        padded = np.load(out)
        longest = max(w.shape[0] for w in want)
        assert padded.shape == (N, longest, want[0].shape[1])
        for row, w in zip(padded, want):
            np.testing.assert_array_equal(row[: w.shape[0]], w)
            assert not row[w.shape[0] :].any()
    else:
        lines = [json.loads(line) for line in out.read_text().splitlines()]
        assert [line["id"] for line in lines] == [f"d{i}" for i in range(N)]
        assert_same([np.array(line["embedding"], np.float32) for line in lines], want)


def test_resume_after_kill(tmp_path: Path, inputs, want) -> None:
    """A run killed mid-way (SIGKILL, no clean-up) and restarted with the same command gives
    exactly the uninterrupted output: finished shards kept, the partial one redone."""
    out = tmp_path / "out"
    args = [sys.executable, "-m", "latebird", "encode", "--model", MODEL, "--documents",
            str(inputs["jsonl"]), "--output", f"{out}/", "--shard-size", "50"]  # fmt: skip
    process = subprocess.Popen(args, env=ENV, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    # Killed while it writes a shard: after three are finished and the next is begun.
    while not (out / "part-00003.parquet").exists() or not list(out.glob("*.parquet.tmp")):
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        assert time.monotonic() < deadline
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert list(out.glob("part-*.parquet.tmp")), "killed between two shards"
    assert process.stderr is not None
    process.stderr.close()
    kept = {p.name: p.stat().st_mtime_ns for p in out.glob("part-*.parquet")}
    assert 4 <= len(kept) < 14, kept  # killed part-way
    assert not json.loads((out / "_latebird_manifest.json").read_text())["complete"]

    r = subprocess.run(args, env=ENV, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    # The shards of the first run were kept as they were, not written again.
    for name, mtime in kept.items():
        assert (out / name).stat().st_mtime_ns == mtime
    assert not list(out.glob("*.tmp"))
    ids, got = read_folder(out)
    assert ids == [f"d{i}" for i in range(N)]  # nothing twice, nothing lost
    assert_same(got, want)


def test_resume_refuses_a_different_run(tmp_path: Path, inputs) -> None:
    out = tmp_path / "out"
    first = ["--documents", str(inputs["jsonl"]), "--output", f"{out}/", "--shard-size", "400"]
    r = encode_docs(*first)
    assert r.returncode == 0, r.stderr
    r = encode_docs(*first)
    assert r.returncode == 0 and "already complete" in r.stderr

    changed = tmp_path / "changed.jsonl"
    changed.write_text(inputs["jsonl"].read_text().replace("topic 3:", "topic 4:"))
    cases = [
        (["--pool-factor", "2"], "encoding.pool_factor: 1 then, 2 now"),
        (["--shard-size", "100"], "encoding.shard_size: 400 then, 100 now"),
        (["--precision", "int8"], "model.precision"),
        (["--field", "id"], "input.field"),
    ]
    for extra, message in cases:
        r = encode_docs(*first, *extra)  # a repeated option: argparse keeps the last
        assert r.returncode == 2, (extra, r.stderr)
        assert "cannot be resumed" in r.stderr and message in r.stderr, (extra, r.stderr)
    r = encode_docs("--documents", str(changed), "--output", f"{out}/", "--shard-size", "400")
    assert r.returncode == 2 and "input.sha256" in r.stderr, r.stderr
    r = run("encode", "--model", str(model_dir("minilm-colbert-f16-2dense")),
            *first)  # fmt: skip
    assert r.returncode == 2 and "model." in r.stderr, r.stderr

    stranger = tmp_path / "stranger"
    stranger.mkdir()
    (stranger / "notes.txt").write_text("mine")
    r = encode_docs("--documents", str(inputs["jsonl"]), "--output", str(stranger),
                    "--format", "parquet")  # fmt: skip
    assert r.returncode == 2 and "holds no latebird manifest" in r.stderr, r.stderr
    assert sorted(p.name for p in stranger.iterdir()) == ["notes.txt"]


def test_parquet_without_pyarrow_names_the_extra(tmp_path: Path, inputs) -> None:
    script = (
        "import sys; sys.modules['pyarrow'] = None\n"
        "from latebird.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    for extra in (["--output", str(tmp_path / "out"), "--format", "parquet"],
                  ["--output", str(tmp_path / "o.npz"), "--input-format", "parquet"]):  # fmt: skip
        r = subprocess.run(
            [sys.executable, "-c", script, "encode", "--model", MODEL, "--documents",
             str(inputs["jsonl"]), *extra],
            capture_output=True, text=True, timeout=120, env=ENV,
        )  # fmt: skip
        assert r.returncode == 2, r.stderr
        assert "needs pyarrow" in r.stderr and "pip install 'latebird[parquet]'" in r.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("texts", "column", "message"),
    [
        (["a", None, "c"], "text", r"docs\.parquet: row 2: field 'text' is null"),
        (["a"], "body", r"no column 'body' \(columns: text\); see --field"),
        ([1, 2], "text", r"column 'text' is int64; expected strings"),
        ([], "text", "no texts"),
    ],
)
def test_bad_parquet_input_exits_2(tmp_path: Path, texts, column, message) -> None:
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    path = tmp_path / "docs.parquet"
    kind = pa.int64() if texts and isinstance(texts[0], int) else pa.string()
    pq.write_table(pa.table({"text": pa.array(texts, kind)}), path)
    r = encode_docs("--documents", str(path), "--field", column, "--output",
                    str(tmp_path / "out"), "--format", "parquet")  # fmt: skip
    assert r.returncode == 2, r.stderr
    assert re.search(message, r.stderr), r.stderr
    assert not (tmp_path / "out").exists()
    not_parquet = tmp_path / "fake.parquet"
    not_parquet.write_text("hello")
    r = encode_docs("--documents", str(not_parquet), "--output", str(tmp_path / "o.npz"))
    assert r.returncode == 2 and "not a readable Parquet file" in r.stderr, r.stderr


def test_bad_line_on_stdin_mid_stream(tmp_path: Path) -> None:
    """Standard input is checked as it is encoded: an error after some chunks were written
    still exits 2 with the line number and leaves no partial file."""
    lines = [json.dumps({"text": t}) for t in DOCS[:600]] + ["{broken"]
    out = tmp_path / "o.npz"
    r = encode_docs("--documents", "-", "--input-format", "jsonl", "--output", str(out),
                    stdin="\n".join(lines) + "\n")  # fmt: skip
    assert r.returncode == 2
    assert "-:601: invalid JSON" in r.stderr, r.stderr
    assert list(tmp_path.iterdir()) == []
    lone = json.dumps({"text": "ok"}) + "\n" + '{"text": "bad \\ud800 half"}\n'
    r = encode_docs("--documents", "-", "--input-format", "jsonl", "--output", str(out),
                    stdin=lone)  # fmt: skip
    assert r.returncode == 2 and "-:2: field 'text' has a lone surrogate" in r.stderr, r.stderr


def test_stdin_to_parquet_cannot_resume(tmp_path: Path, want) -> None:
    out = tmp_path / "out"
    stdin = "\n".join(DOCS[:300]) + "\n"
    r = encode_docs("--documents", "-", "--output", f"{out}/", "--shard-size", "200",
                    stdin=stdin)  # fmt: skip
    assert r.returncode == 0, r.stderr
    ids, got = read_folder(out)
    assert ids == [str(i) for i in range(300)]
    assert_same(got, want[:300])
    r = encode_docs("--documents", "-", "--output", f"{out}/", "--shard-size", "200",
                    stdin=stdin)  # fmt: skip
    assert r.returncode == 2 and "standard input cannot be checked" in r.stderr, r.stderr


def test_progress_bar_with_rate_and_eta_in_a_terminal(tmp_path: Path, inputs) -> None:
    leader, follower = pty.openpty()
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "latebird", "encode", "--model", MODEL, "--documents",
             str(inputs["jsonl"]), "--output", str(tmp_path / "o.npz"), "--batch-size", "8"],
            stderr=follower, env=ENV,
        )  # fmt: skip
        os.close(follower)
        output = b""
        while True:
            try:
                data = os.read(leader, 4096)
            except OSError:  # the terminal closed with the process
                break
            if not data:
                break
            output += data
        assert process.wait(timeout=300) == 0
    finally:
        os.close(leader)
    text = output.decode()
    assert re.search(r"Encoding documents \[[#.]{30}\] \d+/700 [\d.]+/s ETA \d\d:\d\d", text), text
    assert f"[{'#' * 30}] 700/700" in text, text
