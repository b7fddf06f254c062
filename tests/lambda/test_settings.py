"""LATEBIRD_SETTINGS (the engine's settings overrides, a JSON object) is read by the one
contract library in every runtime: {"precision": "int8"} makes each function answer with the
embeddings `ColBERT(model, precision="int8")` gives, and bad settings fail the init with the
same message."""

from __future__ import annotations

import json

import latebird
import numpy as np
import pytest
from functions import KINDS, missing, model_folder, start

D = ["ColBERT keeps one vector per token.", "Paris is in France.", "Cats purr."]


@pytest.mark.parametrize("kind", KINDS)
def test_int8_settings(kind: str, tmp_path) -> None:
    if missing(kind):
        pytest.skip(missing(kind))
    settings = json.dumps({"precision": "int8", "document_length": 40})
    fn = start(kind, tmp_path, LATEBIRD_MODEL=str(model_folder()), LATEBIRD_SETTINGS=settings)
    try:
        fn.wait_ready()
        outcome, answer = fn.api.invoke({"documents": D, "return": "embeddings"})
        assert outcome == "response", answer
        assert answer["statusCode"] == 200, answer
        want = latebird.ColBERT(model_folder(), precision="int8", document_length=40).encode(
            D, is_query=False
        )
        got = answer["document_embeddings"]
        assert len(got) == len(want)
        for g, w in zip(got, want):
            np.testing.assert_allclose(np.asarray(g, dtype=np.float32), w, rtol=0, atol=1e-6)
    finally:
        fn.close()


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    ("settings", "needle"),
    [
        ('{"precison": "int8"}', "`precison`: unknown setting"),
        ('{"precision": "int4"}', "expected one of float32, bfloat16, int8"),
        ("[1]", "LATEBIRD_SETTINGS is an array"),
        ('{"device": "gpu"}', '`device`: is "gpu"; expected "cpu", "cuda"'),
        ('{"device": "cuda"}', "device cuda:0: this build of latebird was compiled without"),
    ],
)
def test_bad_settings_fail_the_init(kind: str, tmp_path, settings: str, needle: str) -> None:
    if missing(kind):
        pytest.skip(missing(kind))
    fn = start(kind, tmp_path, LATEBIRD_MODEL=str(model_folder()), LATEBIRD_SETTINGS=settings)
    try:
        with pytest.raises(RuntimeError) as failed:
            fn.wait_ready(timeout=60)
        assert needle in str(failed.value), str(failed.value)[-2000:]
    finally:
        fn.close()
