"""Parity with PyLate through the Python API, on every committed reference."""

from __future__ import annotations

import latebird
import numpy as np
import pytest
from conftest import load_reference, model_dir, reference_paths

TOLERANCE = 1e-5


@pytest.mark.parametrize("path", reference_paths(), ids=lambda p: p.stem)
def test_embeddings_match_pylate(path):
    ref = load_reference(path)
    model = latebird.ColBERT(model_dir(ref.model), **ref.overrides)
    for is_query, texts, key in (
        (True, ref.queries, "query"),
        (False, ref.documents, "document"),
    ):
        outputs = model.encode(texts, is_query=is_query, batch_size=4)
        assert len(outputs) == len(texts)
        for i, out in enumerate(outputs):
            expected = ref.tensors[f"{key}.{i}"]
            assert out.dtype == np.float32
            assert out.shape == expected.shape, f"{key} {i} {texts[i]!r}"
            diff = float(np.abs(out - expected).max()) if out.size else 0.0
            assert diff <= TOLERANCE, f"{key} {i} {texts[i]!r}: {diff:.3e}"


@pytest.mark.parametrize("path", reference_paths(), ids=lambda p: p.stem)
def test_tokenization_matches_pylate(path):
    ref = load_reference(path)
    model = latebird.ColBERT(model_dir(ref.model), **ref.overrides)
    for is_query, texts, key in (
        (True, ref.queries, "query"),
        (False, ref.documents, "document"),
    ):
        for i, text in enumerate(texts):
            ids, mask = model.tokenize(text, is_query=is_query)
            assert ids == ref.tensors[f"{key}_ids.{i}"].tolist(), f"{key} {i} {text!r}"
            assert mask == ref.tensors[f"{key}_mask.{i}"].tolist(), f"{key} {i} {text!r}"


def test_references_cover_every_backbone_family():
    models = {load_reference(p).model for p in reference_paths()}
    for name in ("minilm-colbert", "modernbert-v4", "modernbert-v5", "xlm-roberta"):
        assert name in models, f"no reference for {name}"
