"""Shared fixtures: model folders and the committed PyLate references."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import pytest
from safetensors import safe_open

TESTS = Path(__file__).resolve().parent.parent
REFERENCES = TESTS / "fixtures" / "references"


def model_dir(name: str) -> Path:
    for base in (TESTS / "fixtures" / "models", TESTS / "models"):
        if (base / name / "modules.json").is_file():
            return base / name
    raise FileNotFoundError(
        f"test model {name!r} not found; build it with `python scripts/build_test_models.py`"
    )


@dataclass
class Reference:
    name: str
    model: str
    overrides: dict
    queries: list[str]
    documents: list[str]
    tensors: dict[str, np.ndarray]


@cache
def load_reference(path: Path) -> Reference:
    tensors = {}
    with safe_open(str(path), framework="numpy") as f:
        meta = f.metadata()
        for key in f.keys():
            tensors[key] = f.get_tensor(key)
    texts = json.loads(meta["texts"])
    return Reference(
        name=path.stem,
        model=meta["model"],
        overrides=json.loads(meta["overrides"]),
        queries=texts["queries"],
        documents=texts["documents"],
        tensors=tensors,
    )


def reference_paths() -> list[Path]:
    paths = sorted(REFERENCES.glob("*.safetensors"))
    assert paths, f"no reference files in {REFERENCES}"
    return paths


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    return model_dir("minilm-colbert")


@pytest.fixture(scope="session")
def minilm(minilm_dir):
    import latebird

    return latebird.ColBERT(minilm_dir)


@pytest.fixture(scope="session")
def modernbert():
    import latebird

    return latebird.ColBERT(model_dir("modernbert-v4"))
