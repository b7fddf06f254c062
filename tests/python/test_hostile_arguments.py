"""Every integer argument of the Python API, given something that is not a valid count
(negative, zero where 1 is the least, fractional, a string, a bool, beyond 64 bits), raises
`InvalidInputError` naming the argument: never a bare OverflowError or TypeError from the
conversion, never a crash. And a panic inside the engine reaches Python as a
`LatebirdError`, with the interpreter and the models still usable."""

from __future__ import annotations

import subprocess
import sys

import latebird
import numpy as np
import pytest
from conftest import model_dir
from latebird import _latebird, pooling, rank

MATRIX = np.eye(4, 8, dtype=np.float32)


def _expect_invalid(name: str, call) -> None:
    with pytest.raises(latebird.InvalidInputError) as info:
        call()
    assert f"`{name}`" in str(info.value)
    assert "expected an integer" in str(info.value)


@pytest.mark.parametrize("value", [-1, 0, 2.5, "3", True, 10**30, -(10**30)])
@pytest.mark.parametrize("name", ["query_length", "document_length"])
def test_model_lengths(name, value):
    _expect_invalid(name, lambda: latebird.ColBERT(model_dir("modernbert-v4"), **{name: value}))


@pytest.mark.parametrize("value", [-1, 0, 2.5, "3", True, 10**30, -(10**30), 10**30 + 0.5])
@pytest.mark.parametrize("name", ["batch_size", "pool_factor"])
def test_encode_counts(modernbert, name, value):
    _expect_invalid(name, lambda: modernbert.encode(["a text"], is_query=False, **{name: value}))


@pytest.mark.parametrize("value", [-1, 0, 2.5, "3", True, 10**30])
def test_native_encode_counts(modernbert, value):
    """The extension checks too, for callers that bypass the Python wrapper."""
    native = modernbert._model
    _expect_invalid("batch_size", lambda: native.encode(["a"], False, value))
    _expect_invalid("pool_factor", lambda: native.encode(["a"], False, 4, value))


def test_a_length_too_long_for_the_model_names_it():
    with pytest.raises(latebird.InvalidInputError, match="document_length"):
        latebird.ColBERT(model_dir("modernbert-v4"), document_length=2**62)


def test_numpy_integers_are_counts(modernbert):
    out = modernbert.encode(["a text"], is_query=False, batch_size=np.int64(2))
    assert out[0].ndim == 2
    model = latebird.ColBERT(model_dir("modernbert-v4"), document_length=np.int32(20))
    assert model.document_length == 20


@pytest.mark.parametrize("value", [-1, 0, 2.5, "3", True, 10**30])
def test_top_k(value):
    _expect_invalid("k", lambda: rank.top_k(MATRIX, [MATRIX], k=value))
    _expect_invalid("k", lambda: _latebird.top_k(MATRIX, [MATRIX], value))


@pytest.mark.parametrize("value", [-1, 0, 2.5, "3", True, 10**30])
def test_pooling_counts(value):
    _expect_invalid(
        "pool_factor", lambda: pooling.pool_embeddings_hierarchical([MATRIX], pool_factor=value)
    )
    _expect_invalid("pool_factor", lambda: _latebird.pool_hierarchical([MATRIX], value, 1))


@pytest.mark.parametrize("value", [-1, 2.5, "3", 10**30])
def test_protected_tokens(value):
    _expect_invalid(
        "protected_tokens",
        lambda: pooling.pool_embeddings_hierarchical([MATRIX], 2, protected_tokens=value),
    )
    _expect_invalid("protected_tokens", lambda: _latebird.pool_hierarchical([MATRIX], 2, value))


def test_huge_values_that_are_valid_counts(modernbert):
    """Beyond any real input, but meaningful: a batch larger than the input, k larger than
    the candidates, a pool factor that leaves one cluster."""
    out = modernbert.encode(["a", "b"], is_query=False, batch_size=2**40, pool_factor=2**40)
    assert len(out) == 2
    assert len(rank.top_k(MATRIX, [MATRIX, MATRIX], k=2**40)) == 2


def test_scores_that_overflow_are_errors():
    big = np.full((2, 4), 1e20, dtype=np.float32)
    with pytest.raises(latebird.InvalidInputError, match="overflow"):
        latebird.scores.colbert_scores([big], [big])


def test_a_panic_is_a_latebird_error_and_the_model_still_works(modernbert):
    before = modernbert.encode("same text", is_query=True)
    with pytest.raises(latebird.LatebirdError) as info:
        _latebird._panic_for_tests("injected for the test")
    assert type(info.value) is latebird.LatebirdError
    assert "internal error" in str(info.value)
    assert "injected for the test" in str(info.value)
    assert "please report" in str(info.value)
    after = modernbert.encode("same text", is_query=True)
    np.testing.assert_array_equal(before, after)


def test_a_panic_does_not_kill_the_interpreter():
    code = (
        "import latebird\n"
        "from latebird import _latebird\n"
        "try:\n"
        "    _latebird._panic_for_tests('boom')\n"
        "except latebird.LatebirdError as e:\n"
        "    print('caught', type(e).__name__)\n"
        "print('alive')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["caught", "LatebirdError", "alive"]


@pytest.mark.parametrize("text", ["\ud800", "ok \udfff then", "\ud83d"])
def test_lone_surrogates_are_invalid_input(modernbert, text):
    with pytest.raises(latebird.InvalidInputError, match=r"sentences\[1\]"):
        modernbert.encode(["fine", text], is_query=False)
    with pytest.raises(latebird.InvalidInputError, match="`text`"):
        modernbert.tokenize(text)
    with pytest.raises(latebird.InvalidInputError, match="query_prefix"):
        latebird.ColBERT(model_dir("modernbert-v4"), query_prefix=text)
    with pytest.raises(latebird.InvalidInputError, match=r"skiplist_words\[0\]"):
        latebird.ColBERT(model_dir("modernbert-v4"), skiplist_words=[text])
