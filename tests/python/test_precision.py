"""int8 from Python: `precision="int8"` at load, `latebird.quantize` and `latebird quantize`
write folders that load in int8 with the same embeddings, and bad requests are
InvalidInputError with nothing overwritten."""

from __future__ import annotations

import latebird
import numpy as np
import pytest
from conftest import model_dir
from latebird.cli import main

TEXTS = ["late interaction in int8", "a quarter of the memory", "b"]


def _encode(model: latebird.ColBERT) -> list[np.ndarray]:
    return model.encode(TEXTS, is_query=False) + model.encode(TEXTS, is_query=True)


def _min_cosine(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    return min(float(np.min(np.sum(x * y, axis=1))) for x, y in zip(a, b))


@pytest.mark.parametrize("name", ["minilm-colbert", "modernbert-v4", "xlm-roberta"])
def test_quantized_folder_equals_int8_at_load(tmp_path, name):
    source = model_dir(name)
    out = tmp_path / "int8"
    report = latebird.quantize(source, out)
    assert report["quantized"] >= 4
    assert report["bytes_after"] < report["bytes_before"]
    assert "tokenizer.json" in report["copied"]

    float_model = latebird.ColBERT(source)
    assert float_model.precision == "float32"
    at_load = latebird.ColBERT(source, precision="int8")
    assert at_load.precision == "int8"
    folder = latebird.ColBERT(out)
    assert folder.precision == "int8"
    for a, b in zip(_encode(at_load), _encode(folder)):
        np.testing.assert_array_equal(a, b)
    assert _min_cosine(_encode(float_model), _encode(folder)) > 0.95
    assert latebird.ColBERT(out, precision="float32").precision == "float32"


@pytest.mark.parametrize("name", ["minilm-colbert", "modernbert-v4", "xlm-roberta"])
def test_bfloat16_is_close_to_float32(name):
    source = model_dir(name)
    bf16 = latebird.ColBERT(source, precision="bfloat16")
    assert bf16.precision == "bfloat16"
    got = _encode(bf16)
    assert _min_cosine(_encode(latebird.ColBERT(source)), got) > 0.99
    for a, b in zip(_encode(bf16), got):
        np.testing.assert_array_equal(a, b)


def test_quantize_refusals_overwrite_nothing(tmp_path):
    source = model_dir("modernbert-v4")
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "mine.txt").write_text("keep")
    with pytest.raises(latebird.InvalidInputError, match="not empty"):
        latebird.quantize(source, busy)
    assert (busy / "mine.txt").read_text() == "keep"
    with pytest.raises(latebird.InvalidInputError, match="expected int8"):
        latebird.quantize(source, tmp_path / "f", "float32")  # type: ignore[arg-type]
    with pytest.raises(latebird.InvalidInputError, match='"int4"'):
        latebird.quantize(source, tmp_path / "g", "int4")  # type: ignore[arg-type]
    with pytest.raises(latebird.ModelLoadError):
        latebird.quantize(tmp_path, tmp_path / "h")
    assert not (tmp_path / "h").exists()
    with pytest.raises(latebird.InvalidInputError, match="expected one of float32, bfloat16, int8"):
        latebird.ColBERT(source, precision="int4")  # type: ignore[arg-type]


def test_cli_quantize_float16_halves_the_weights_and_encodes_in_float32(tmp_path, capsys):
    source = model_dir("minilm-colbert")
    out = tmp_path / "f16"
    assert main(["quantize", str(source), str(out), "--precision", "float16"]) == 0
    assert "tensors in float16" in capsys.readouterr().err
    weights = out / "model.safetensors"
    assert weights.stat().st_size < 0.52 * (source / "model.safetensors").stat().st_size
    copy = latebird.ColBERT(out)
    assert copy.precision == "float32"
    want = latebird.ColBERT(source).encode(TEXTS, is_query=False)
    got = copy.encode(TEXTS, is_query=False)
    for a, b in zip(want, got):
        assert a.shape == b.shape
        cosine = (a * b).sum(axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
        assert cosine.min() > 0.999
        assert not np.array_equal(a, b)


def test_cli_quantize_and_encode_in_int8(tmp_path, capsys):
    source = model_dir("modernbert-v4")
    out = tmp_path / "q"
    assert main(["quantize", str(source), str(out)]) == 0
    assert "tensors in int8" in capsys.readouterr().err
    docs = tmp_path / "docs.txt"
    docs.write_text("\n".join(TEXTS) + "\n")
    for model, precision in [(out, None), (source, "int8")]:
        target = tmp_path / f"{precision}.npz"
        args = ["encode", "--model", str(model), "--documents", str(docs), "--output", str(target)]
        if precision:
            args += ["--precision", precision]
        assert main(args) == 0
    a, b = np.load(tmp_path / "None.npz"), np.load(tmp_path / "int8.npz")
    for key in a.files:
        np.testing.assert_array_equal(a[key], b[key])
    with pytest.raises(SystemExit) as exit_info:
        main(["quantize", str(source), str(out)])
    assert exit_info.value.code == 2
    assert "not empty" in capsys.readouterr().err
