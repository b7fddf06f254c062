"""The Python API: types, shapes, order, arguments, errors, threads, progress, Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import latebird
import numpy as np
import pytest

QUERIES = ["what is late interaction?", "", "capital of France", "   spaced   "]
DOCUMENTS = [
    "ColBERT keeps one vector per token and scores with MaxSim.",
    "Paris is the capital of France.",
    "word " * 400,
    "",
]


def test_single_string_gives_one_array(minilm):
    out = minilm.encode("hello world", is_query=True)
    assert isinstance(out, np.ndarray)
    assert out.dtype == np.float32
    assert out.shape == (minilm.query_length, minilm.embedding_dim)
    assert out.flags.c_contiguous


def test_list_gives_arrays_in_order(minilm):
    outputs = minilm.encode(DOCUMENTS, is_query=False, batch_size=2)
    assert isinstance(outputs, list) and len(outputs) == len(DOCUMENTS)
    for text, out in zip(DOCUMENTS, outputs):
        alone = minilm.encode(text, is_query=False)
        assert out.shape == alone.shape
        np.testing.assert_allclose(out, alone, atol=1e-6)
    reversed_outputs = minilm.encode(DOCUMENTS[::-1], is_query=False)
    for a, b in zip(outputs, reversed_outputs[::-1]):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_rows_are_unit_vectors(minilm):
    for out in minilm.encode(DOCUMENTS, is_query=False):
        np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)


def test_document_length_is_capped(minilm):
    long = minilm.encode("word " * 1000, is_query=False)
    assert long.shape[0] == minilm.document_length


def test_tuple_input_and_empty_list(minilm):
    assert len(minilm.encode(("a", "b"), is_query=False)) == 2
    assert minilm.encode([], is_query=True) == []


def test_padding_gives_one_zero_padded_array(minilm):
    outputs = minilm.encode(DOCUMENTS, is_query=False)
    padded = minilm.encode(DOCUMENTS, is_query=False, padding=True)
    longest = max(o.shape[0] for o in outputs)
    assert padded.shape == (len(DOCUMENTS), longest, minilm.embedding_dim)
    for i, o in enumerate(outputs):
        np.testing.assert_array_equal(padded[i, : o.shape[0]], o)
        assert not padded[i, o.shape[0] :].any()


@pytest.mark.parametrize("bad", [None, 3, b"bytes", {"a": 1}.keys()])
def test_sentences_of_wrong_type(minilm, bad):
    with pytest.raises(TypeError, match="sentences"):
        minilm.encode(bad)


def test_non_string_item_names_its_index(minilm):
    with pytest.raises(TypeError, match=r"sentences\[1\] is int; expected str"):
        minilm.encode(["fine", 7, "fine"])


@pytest.mark.parametrize("batch_size", [0, -3, 2.5, True])
def test_bad_batch_size(minilm, batch_size):
    with pytest.raises(latebird.InvalidInputError, match="batch_size"):
        minilm.encode(["a"], batch_size=batch_size)


def test_tensor_output_is_refused(minilm):
    with pytest.raises(latebird.InvalidInputError, match="numpy"):
        minilm.encode(["a"], convert_to_tensor=True)


def test_exception_hierarchy():
    assert issubclass(latebird.ModelLoadError, latebird.LatebirdError)
    assert issubclass(latebird.InvalidInputError, latebird.LatebirdError)
    assert issubclass(latebird.LatebirdError, Exception)


def test_missing_folder(tmp_path):
    with pytest.raises(latebird.ModelLoadError, match="not a local model folder"):
        latebird.ColBERT(tmp_path / "nope")


def test_folder_without_modules(tmp_path):
    with pytest.raises(latebird.ModelLoadError, match=r"modules\.json: missing"):
        latebird.ColBERT(tmp_path)


def test_corrupt_weights(tmp_path, minilm_dir):
    for item in minilm_dir.iterdir():
        target = tmp_path / item.name
        if item.name == "model.safetensors":
            target.write_bytes(item.read_bytes()[:1000])
        else:
            target.symlink_to(item)
    with pytest.raises(latebird.ModelLoadError, match=r"model\.safetensors: .*safetensors"):
        latebird.ColBERT(tmp_path)


def test_bad_override(minilm_dir):
    with pytest.raises(latebird.InvalidInputError, match="document_length"):
        latebird.ColBERT(minilm_dir, document_length=100_000)
    with pytest.raises(latebird.ModelLoadError, match=r"\[X\] "):
        latebird.ColBERT(minilm_dir, query_prefix="[X] ")
    with pytest.raises(latebird.InvalidInputError, match="device"):
        latebird.ColBERT(minilm_dir, device="tpu")


def test_devices_are_named_and_never_fall_back_to_the_cpu(minilm_dir):
    for name in ("cpu", None):
        assert latebird.ColBERT(minilm_dir, device=name).device == "cpu"
    assert latebird.build_features[0] == "cpu"
    for name, canonical, feature in [
        ("cuda", "cuda:0", "cuda"),
        ("cuda:1", "cuda:1", "cuda"),
        ("mps", "metal:0", "metal"),
        ("metal:0", "metal:0", "metal"),
    ]:
        if feature in latebird.build_features:
            continue  # a GPU build: scripts/gpu_check.sh tests it on a GPU
        with pytest.raises(latebird.DeviceError) as info:
            latebird.ColBERT(minilm_dir, device=name)
        message = str(info.value)
        assert message.startswith(f"device {canonical}: "), message
        assert f"compiled without the `{feature}` feature" in message, message
        assert f"--features {feature}" in message, message
        assert isinstance(info.value, latebird.LatebirdError)
    for bad, needle in [("gpu", 'is "gpu"'), ("cuda:-1", "not a whole number"), (0, "is 0")]:
        with pytest.raises(latebird.InvalidInputError, match="`device`") as info:
            latebird.ColBERT(minilm_dir, device=bad)  # type: ignore[arg-type]
        assert needle in str(info.value)


def test_overrides_are_applied(minilm_dir):
    model = latebird.ColBERT(
        minilm_dir,
        query_length=16,
        document_length=40,
        do_query_expansion=False,
        skiplist_words=["the"],
    )
    assert (model.query_length, model.document_length) == (16, 40)
    assert model.do_query_expansion is False
    assert model.skiplist_words == ["the"]
    assert model.encode("a short query").shape[0] < 16


def test_threads_share_one_model(minilm):
    expected = minilm.encode(DOCUMENTS, is_query=False)
    results: dict[int, list[np.ndarray]] = {}

    def work(i: int) -> None:
        results[i] = minilm.encode(DOCUMENTS, is_query=False, batch_size=1 + i)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 4
    for outputs in results.values():
        for a, b in zip(outputs, expected):
            np.testing.assert_allclose(a, b, atol=1e-6)


def test_gil_is_released_while_encoding(minilm):
    ticks = 0
    stop = threading.Event()

    def count() -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            time.sleep(0.001)

    counter = threading.Thread(target=count)
    counter.start()
    try:
        before = ticks
        minilm.encode(["word " * 150] * 16, is_query=False, batch_size=16)
        during = ticks - before
    finally:
        stop.set()
        counter.join()
    # One batch is one native call; a held GIL would leave the counter at ~0.
    assert during > 5


def test_progress_bar_shown_when_asked(minilm, capsys):
    minilm.encode(["a", "b", "c"], is_query=False, batch_size=1, show_progress_bar=True)
    err = capsys.readouterr().err
    assert "Encoding documents" in err and "3/3" in err


def test_progress_bar_hidden(minilm, capsys):
    minilm.encode(["a", "b", "c"], is_query=False, batch_size=1, show_progress_bar=False)
    minilm.encode(["a", "b", "c"], is_query=False, batch_size=1)  # stderr is not a TTY here
    assert capsys.readouterr().err == ""


def test_ctrl_c_stops_a_long_encode(minilm_dir):
    script = textwrap.dedent(
        f"""
        import sys, latebird
        model = latebird.ColBERT({str(minilm_dir)!r})
        print("ready", flush=True)
        try:
            model.encode(["word " * 170] * 100000, is_query=False, batch_size=8)
        except KeyboardInterrupt:
            print("interrupted", flush=True)
            sys.exit(3)
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(latebird.__file__).parent.parent)},
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)
        # 100000 long documents take hours; an interrupt is honoured within a batch.
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 3
    assert "interrupted" in out
